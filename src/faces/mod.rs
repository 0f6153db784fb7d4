//! The faces: one module per wire protocol. Each WebSocket face implements [`crate::session::Face`]
//! for its connection state and provides the encoder the registry uses to turn an event into that
//! face's frame, once per publish.

pub mod custom;
pub mod http;
pub mod streamerbot;

use bytestring::ByteString;

use crate::event::Event;

/// Which wire protocol a session speaks; the registry encodes once per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaceKind {
    Streamerbot,
    Custom,
}

/// Every face's event encoder, held by the registry.
pub struct Encoders {
    pub streamerbot: streamerbot::Encoder,
}

impl Encoders {
    /// The frames of one event, each encoded on first use.
    pub fn frames<'a>(&'a self, event: &'a Event) -> Frames<'a> {
        Frames {
            event,
            encoders: self,
            streamerbot: None,
            custom: None,
        }
    }
}

/// One event's frames: encoded at most once per face; cloning a frame shares its bytes.
pub struct Frames<'a> {
    event: &'a Event,
    encoders: &'a Encoders,
    streamerbot: Option<ByteString>,
    custom: Option<ByteString>,
}

impl Frames<'_> {
    pub fn get(&mut self, face: FaceKind) -> ByteString {
        let event = self.event;
        match face {
            FaceKind::Streamerbot => {
                let encoder = &self.encoders.streamerbot;
                self.streamerbot
                    .get_or_insert_with(|| encoder.encode(event))
                    .clone()
            }
            FaceKind::Custom => self
                .custom
                .get_or_insert_with(|| custom::protocol::encode_event(event))
                .clone(),
        }
    }
}
