//! The faces' encodings of an event, made at most once per face per publish.
//!
//! Each face that sends events gives the registry an [`Encode`] for its [`FaceKind`]; on
//! publish the registry asks each kind's encoder once, the first time a session of that kind
//! takes the event, and every session of the kind gets the same bytes. Encoding has no side
//! effects: whatever must be recorded about an event is recorded before it is published.

use std::sync::Arc;

use bytestring::ByteString;

use crate::event::Event;

/// Which wire protocol a session speaks; the registry encodes once per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaceKind {
    Streamerbot,
    Custom,
    Astro,
    Socketio,
    /// The dashboard's live feed (served by the HTTP face).
    Dashboard,
}

impl FaceKind {
    /// How many kinds there are.
    pub const COUNT: usize = 5;

    /// The face's name, as the banner, the configuration and the metrics spell it.
    pub fn name(self) -> &'static str {
        match self {
            FaceKind::Streamerbot => "streamerbot",
            FaceKind::Custom => "custom",
            FaceKind::Astro => "astro",
            FaceKind::Socketio => "socketio",
            FaceKind::Dashboard => "dashboard",
        }
    }

    /// Every kind, in index order.
    pub const ALL: [FaceKind; FaceKind::COUNT] = [
        FaceKind::Streamerbot,
        FaceKind::Custom,
        FaceKind::Astro,
        FaceKind::Socketio,
        FaceKind::Dashboard,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One event as a face writes it.
#[derive(Debug, Clone)]
pub enum Frame {
    /// One text message, the same for every session.
    Text(ByteString),
    /// Several text messages, each labelled (Astro: with its topic); a session writes those
    /// whose label it holds.
    Labelled(Arc<[(&'static str, ByteString)]>),
    /// Named JSON payloads that each connection wraps in a packet of its own protocol (the
    /// Socket.IO face's events), checked as JSON once.
    Payloads(Arc<[(&'static str, Box<serde_json::value::RawValue>)]>),
    /// The face does not send this event at all.
    Nothing,
}

/// A face's encoder, held by the registry.
pub trait Encode: Send {
    fn encode(&self, event: &Event) -> Frame;
}

/// Every face's encoder, by kind.
#[derive(Default)]
pub struct Encoders([Option<Box<dyn Encode>>; FaceKind::COUNT]);

impl Encoders {
    pub fn set(&mut self, kind: FaceKind, encoder: Box<dyn Encode>) {
        self.0[kind.index()] = Some(encoder);
    }

    /// The frames of one event, each encoded on first use.
    pub fn frames<'a>(&'a self, event: &'a Event) -> Frames<'a> {
        Frames {
            event,
            encoders: self,
            frames: Default::default(),
        }
    }
}

/// One event's frames: encoded at most once per face; cloning a frame shares its bytes.
pub struct Frames<'a> {
    event: &'a Event,
    encoders: &'a Encoders,
    frames: [Option<Frame>; FaceKind::COUNT],
}

impl Frames<'_> {
    /// The event as `face` writes it ([`Frame::Nothing`] for a face without an encoder).
    pub fn get(&mut self, face: FaceKind) -> Frame {
        let (event, encoders) = (self.event, self.encoders);
        self.frames[face.index()]
            .get_or_insert_with(|| match &encoders.0[face.index()] {
                Some(encoder) => encoder.encode(event),
                None => Frame::Nothing,
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counting(Arc<AtomicUsize>);

    impl Encode for Counting {
        fn encode(&self, event: &Event) -> Frame {
            self.0.fetch_add(1, Ordering::Relaxed);
            Frame::Text(event.kind.clone().into())
        }
    }

    #[test]
    fn each_face_encodes_once_per_event() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut encoders = Encoders::default();
        encoders.set(FaceKind::Custom, Box::new(Counting(calls.clone())));
        let event = Event::new("twitch", "follow", serde_json::json!({}));
        let mut frames = encoders.frames(&event);
        for _ in 0..3 {
            assert!(matches!(frames.get(FaceKind::Custom), Frame::Text(text) if text == "follow"));
        }
        assert!(matches!(frames.get(FaceKind::Astro), Frame::Nothing));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
