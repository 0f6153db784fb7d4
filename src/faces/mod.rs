//! The faces: one module per wire protocol. Each WebSocket face implements [`crate::session::Face`]
//! for its connection state and provides the encoder the registry uses to turn an event into that
//! face's frame, once per publish.

pub mod http;
pub mod streamerbot;

use bytestring::ByteString;

use crate::event::Event;

/// Which wire protocol a session speaks; the registry encodes once per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaceKind {
    Streamerbot,
}

/// Every face's event encoder, held by the registry.
pub struct Encoders {
    pub streamerbot: streamerbot::Encoder,
}

impl Encoders {
    /// The frames of one event. The Streamer.bot frame is always rendered, because rendering
    /// records new names in that face's catalogue whether or not anyone is subscribed.
    pub fn frames(&self, event: &Event) -> Frames {
        Frames {
            streamerbot: self.streamerbot.encode(event),
        }
    }
}

/// One event encoded for every face; cloning a frame shares its bytes.
pub struct Frames {
    streamerbot: ByteString,
}

impl Frames {
    pub fn get(&mut self, face: FaceKind) -> ByteString {
        match face {
            FaceKind::Streamerbot => self.streamerbot.clone(),
        }
    }
}
