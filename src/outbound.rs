//! The outbound-client manager: Switchboard's custom WebSocket client connections (custom.md,
//! part 2), one per `[[outbound]]` entry.
//!
//! It is started under a supervisor at boot and holds the configured connections. This build does
//! not dial them yet: every connection reports `notConnected`, and [`SendText`] (the `ws.send`
//! step's way out) fails with that, buffering nothing.

use std::collections::BTreeMap;

use actix::prelude::*;

use crate::config::RawOutbound;

/// Why a frame could not be sent on an outbound connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("no outbound connection named {0:?}")]
    NotFound(String),
    #[error("outbound connection {0:?} is not connected")]
    NotConnected(String),
}

/// Sends one text frame on the named connection.
#[derive(Message)]
#[rtype(result = "Result<(), OutboundError>")]
pub struct SendText {
    pub connection: String,
    pub text: String,
}

/// The manager actor.
pub struct OutboundManager {
    connections: BTreeMap<String, RawOutbound>,
}

impl OutboundManager {
    pub fn new(connections: Vec<RawOutbound>) -> OutboundManager {
        OutboundManager {
            connections: connections
                .into_iter()
                .map(|connection| (connection.name.clone(), connection))
                .collect(),
        }
    }
}

impl Actor for OutboundManager {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        if !self.connections.is_empty() {
            log::warn!(
                "outbound: {} connection(s) configured ({}); this build does not dial outbound connections yet",
                self.connections.len(),
                self.connections.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
}

impl Supervised for OutboundManager {
    fn restarting(&mut self, _: &mut Context<Self>) {
        log::warn!("outbound: the manager restarted");
    }
}

impl Handler<SendText> for OutboundManager {
    type Result = Result<(), OutboundError>;

    fn handle(&mut self, message: SendText, _: &mut Context<Self>) -> Self::Result {
        match self.connections.get(&message.connection) {
            None => Err(OutboundError::NotFound(message.connection)),
            Some(_) => Err(OutboundError::NotConnected(message.connection)),
        }
    }
}
