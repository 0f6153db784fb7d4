//! Where the registry hands a session what it must write: an [`Outlet`].
//!
//! An actix session's outlet is its address (a bounded mailbox, see `session`); a connection that
//! is not an actix actor (a Socket.IO socket) brings an outlet of its own, a bounded queue. The
//! registry offers without waiting; an outlet that is full is closed as too slow, whatever it is.

use std::sync::Arc;

use actix::prelude::*;

use super::frames::Frame;
use crate::event::Event;

/// What the registry sends a session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Outgoing {
    /// An event, and the face's encoding of it (shared by every session of the face).
    Event(Arc<Event>, Frame),
    /// Time for the session's heartbeat: ping the client, or drop a silent one.
    Heartbeat,
    /// Close the connection (it is no longer in the fan-out).
    Close(Closing),
}

/// Why the registry closes a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// The session let its send queue fill.
    TooSlow,
    /// The server is stopping.
    ShuttingDown,
}

/// Why an offer was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The session's queue is full.
    Full,
    /// The session is gone.
    Closed,
}

/// A session's end of the fan-out.
pub trait Outlet {
    /// Queues `message` without waiting.
    fn offer(&self, message: Outgoing) -> Result<(), Refused>;
    /// Tells the session to close, even when its queue is full.
    fn close(&self, why: Closing);
    /// The client's address, when known (shown by [`super::ListSessions`]).
    fn peer(&self) -> Option<std::net::SocketAddr> {
        None
    }
}

impl Outlet for Recipient<Outgoing> {
    fn offer(&self, message: Outgoing) -> Result<(), Refused> {
        self.try_send(message).map_err(|error| match error {
            SendError::Full(_) => Refused::Full,
            SendError::Closed(_) => Refused::Closed,
        })
    }

    fn close(&self, why: Closing) {
        // `do_send` ignores the mailbox's capacity: one message past it, once.
        self.do_send(Outgoing::Close(why));
    }
}
