//! What travels on one outbound link: the foreign server's frames read into whole messages under
//! `limits.max_frame_bytes`, and Switchboard's frames written out.
//!
//! awc's WebSocket codec checks its size limit only once a frame's whole payload is buffered, and
//! hands out each fragment of a message on its own. [`LinkCodec`] reads the length a frame's
//! header announces first: a frame, or a fragment that takes its message past the limit, is
//! refused before a byte of its payload is read. Fragments are put back together, so a message
//! costs at most the limit however it is split.
//!
//! Both halves carry the link's id ([`LinkSink`], and the reader in `connection`), so that
//! whatever an older link still produces can be told from the current one and ignored.
//!
//! What is written waits in actix's `SinkWrite` queue, which has no bound of its own, until
//! [`LinkSink`] takes it; past that point a link holds at most two more frames and 8 KiB (the
//! split sink's slot and the codec's buffer, which waits for the socket beyond 8 KiB). [`Queued`]
//! counts the bytes waiting in between: the writer counts a frame in, [`LinkSink`] counts it out
//! as it takes it, so the writer can refuse a frame once a server that does not read has let
//! `limits.outbound_queue_bytes` pile up.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_codec::{Decoder, Encoder, Framed};
use actix_http::ws::{CloseReason, Codec, Frame, Item, Message};
use actix_web::web::{Bytes, BytesMut};
use awc::error::WsProtocolError as ProtocolError;
use awc::BoxedSocket;
use futures_util::stream::SplitSink;
use futures_util::Sink;

use crate::frame_header::{FrameHeader, CONTINUATION};

/// Why reading a link stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A frame's header announced a message (this frame plus the fragments before it) over the
    /// limit; its payload was not read.
    #[error("a message of {announced} bytes exceeds the limit of {limit} bytes")]
    TooBig { announced: u64, limit: usize },
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> ReadError {
        ReadError::Protocol(ProtocolError::Io(error))
    }
}

/// A whole message or control frame from the foreign server.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Text(Bytes),
    /// A binary message, by its length (nothing reads binary messages).
    Binary(usize),
    Ping(Bytes),
    Pong,
    Close(Option<CloseReason>),
}

/// A fragmented message so far.
struct Partial {
    text: bool,
    bytes: BytesMut,
}

/// awc's client codec, with the limit checked at each frame's header and fragments joined.
pub struct LinkCodec {
    inner: Codec,
    limit: usize,
    partial: Option<Partial>,
}

impl LinkCodec {
    /// `inner` is the codec awc connected with (client mode).
    pub fn new(inner: Codec, limit: usize) -> LinkCodec {
        LinkCodec {
            inner,
            limit,
            partial: None,
        }
    }

    /// The message size the frame at the start of `src` would make, once its header is in.
    fn announced(&self, src: &[u8]) -> Option<u64> {
        let header = FrameHeader::read(src)?;
        let before = match (&self.partial, header.opcode) {
            (Some(partial), CONTINUATION) => partial.bytes.len() as u64,
            _ => 0,
        };
        Some(before.saturating_add(header.length))
    }

    /// Adds a fragment; the whole message once its last fragment is in. (The inner codec
    /// refuses a continuation without a first fragment, and a first one while one is open.)
    fn join(&mut self, item: Item) -> Option<Incoming> {
        let (text, bytes) = match item {
            Item::FirstText(bytes) => (true, bytes),
            Item::FirstBinary(bytes) => (false, bytes),
            Item::Continue(bytes) => {
                if let Some(partial) = &mut self.partial {
                    partial.bytes.extend_from_slice(&bytes);
                }
                return None;
            }
            Item::Last(bytes) => {
                let mut partial = self.partial.take()?;
                partial.bytes.extend_from_slice(&bytes);
                return Some(if partial.text {
                    Incoming::Text(partial.bytes.freeze())
                } else {
                    Incoming::Binary(partial.bytes.len())
                });
            }
        };
        self.partial = Some(Partial {
            text,
            bytes: BytesMut::from(&bytes[..]),
        });
        None
    }
}

impl Decoder for LinkCodec {
    type Item = Incoming;
    type Error = ReadError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, ReadError> {
        // Loops over fragments: a fragment alone is no item, and the frames after it may already
        // be buffered.
        loop {
            if let Some(announced) = self.announced(src) {
                if announced > self.limit as u64 {
                    return Err(ReadError::TooBig {
                        announced,
                        limit: self.limit,
                    });
                }
            }
            let Some(frame) = self.inner.decode(src)? else {
                return Ok(None);
            };
            let incoming = match frame {
                Frame::Text(bytes) => Incoming::Text(bytes),
                Frame::Binary(bytes) => Incoming::Binary(bytes.len()),
                Frame::Ping(bytes) => Incoming::Ping(bytes),
                Frame::Pong(_) => Incoming::Pong,
                Frame::Close(reason) => Incoming::Close(reason),
                Frame::Continuation(item) => match self.join(item) {
                    Some(message) => message,
                    None => continue,
                },
            };
            return Ok(Some(incoming));
        }
    }
}

impl Encoder<Message> for LinkCodec {
    type Error = ProtocolError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.inner.encode(message, dst)
    }
}

/// A write on a link failed.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct WriteFailed {
    /// The link's id.
    pub link: u64,
    pub error: ProtocolError,
}

/// The payload bytes of the frames written to a link that its codec has not taken yet.
#[derive(Debug, Clone, Default)]
pub struct Queued(Rc<Cell<usize>>);

impl Queued {
    pub fn bytes(&self) -> usize {
        self.0.get()
    }

    /// Counts in a frame about to be written.
    pub fn add(&self, message: &Message) {
        self.0
            .set(self.0.get().saturating_add(payload_len(message)));
    }

    fn remove(&self, message: &Message) {
        self.0
            .set(self.0.get().saturating_sub(payload_len(message)));
    }
}

/// The bytes a frame carries (what it costs while it waits).
pub fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        _ => 0,
    }
}

/// The write half of a link: its errors name the link, what it hands the codec leaves the
/// link's [`Queued`] count, and closing it first flushes what was written (actix-codec's
/// `Framed` would shut the socket with a queued close frame unsent).
pub struct LinkSink {
    link: u64,
    queued: Queued,
    inner: SplitSink<Framed<BoxedSocket, LinkCodec>, Message>,
}

impl LinkSink {
    pub fn new(
        link: u64,
        queued: Queued,
        inner: SplitSink<Framed<BoxedSocket, LinkCodec>, Message>,
    ) -> LinkSink {
        LinkSink {
            link,
            queued,
            inner,
        }
    }

    fn failed(&self, error: ProtocolError) -> WriteFailed {
        WriteFailed {
            link: self.link,
            error,
        }
    }
}

impl Sink<Message> for LinkSink {
    type Error = WriteFailed;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WriteFailed>> {
        let polled = Pin::new(&mut self.inner).poll_ready(cx);
        polled.map_err(|error| self.failed(error))
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), WriteFailed> {
        self.queued.remove(&message);
        let sent = Pin::new(&mut self.inner).start_send(message);
        sent.map_err(|error| self.failed(error))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WriteFailed>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        polled.map_err(|error| self.failed(error))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WriteFailed>> {
        ready!(self.as_mut().poll_flush(cx))?;
        let polled = Pin::new(&mut self.inner).poll_close(cx);
        polled.map_err(|error| self.failed(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(limit: usize) -> LinkCodec {
        LinkCodec::new(Codec::new().max_size(limit).client_mode(), limit)
    }

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            length @ 0..=125 => frame.push(length as u8),
            length => {
                frame.push(127);
                frame.extend((length as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn a_header_over_the_limit_is_refused_before_its_payload() {
        let mut codec = codec(1024);
        let mut src = BytesMut::from(&[0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        match codec.decode(&mut src) {
            Err(ReadError::TooBig { announced, limit }) => {
                assert_eq!((announced, limit), (1 << 32, 1024))
            }
            other => panic!("{other:?}"),
        }
        // Half a header is not yet a verdict.
        assert!(codec
            .decode(&mut BytesMut::from(&[0x81, 127, 0][..]))
            .unwrap()
            .is_none());
    }

    #[test]
    fn fragments_are_joined_and_their_total_is_limited() {
        let mut codec = codec(10);
        let mut src = BytesMut::new();
        src.extend_from_slice(&frame(false, 1, b"abc"));
        src.extend_from_slice(&frame(true, 9, b"p"));
        src.extend_from_slice(&frame(false, 0, b"def"));
        src.extend_from_slice(&frame(true, 0, b"g"));
        assert_eq!(
            codec.decode(&mut src).unwrap(),
            Some(Incoming::Ping(Bytes::from_static(b"p")))
        );
        assert_eq!(
            codec.decode(&mut src).unwrap(),
            Some(Incoming::Text(Bytes::from_static(b"abcdefg")))
        );
        src.extend_from_slice(&frame(false, 2, b"123456"));
        src.extend_from_slice(&frame(true, 0, b"78901"));
        match codec.decode(&mut src) {
            Err(ReadError::TooBig { announced: 11, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
