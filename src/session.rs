//! The generic WebSocket session actor, one per connection, parameterised by a face.
//!
//! The session owns the socket: it reassembles fragmented messages, enforces the frame size
//! limits, answers pings, pings its client when the registry says it is time (one heartbeat
//! timer for all sessions, in the registry), and writes what the registry sends it. It registers
//! with the registry in `started()` before reading any frame, and hands each complete text
//! message to its [`Face`], whose replies it writes in request order. Its mailbox is bounded by
//! `limits.send_queue`: the registry `try_send`s frames and drops a session that lets it fill.
//!
//! This is the only module that touches actix-web-actors (deprecated upstream in favour of
//! actix-ws), so that a later move changes one file.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use bytestring::ByteString;
use futures_util::future::LocalBoxFuture;

use crate::faces::FaceKind;
use crate::registry::{Connect, Disconnect, Outgoing, Registry, SessionId};

/// How often the server pings a silent client.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// How long without a pong (or any frame) before the TCP connection is dropped.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(70);

/// A close the face asks for.
#[derive(Debug, Clone, Copy)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

/// What the session writes for a face.
#[derive(Debug, Clone)]
pub enum Out {
    Text(ByteString),
    Close(Close),
}

/// A face's answer to one message: frames now, or frames once a future resolves. The session
/// handles no other frame of the connection until a `Later` has resolved, so replies stay in
/// request order.
pub enum Handled {
    Now(Vec<Out>),
    Later(LocalBoxFuture<'static, Vec<Out>>),
}

/// What a face knows of its connection.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: SessionId,
    pub peer: Option<SocketAddr>,
}

/// A wire protocol spoken over a WebSocket session.
pub trait Face: Unpin + 'static {
    /// Which encoder the registry uses for this session.
    const KIND: FaceKind;
    /// The face's name in log lines.
    const NAME: &'static str;

    /// Frames written as soon as the connection is registered, before anything is read.
    fn opened(&mut self, link: &Link) -> Vec<Out>;
    /// One complete text message no larger than `limits.max_frame_bytes`.
    fn text(&mut self, text: &str, link: &Link) -> Handled;
    /// A message larger than `limit` bytes, discarded unparsed.
    fn too_big(&mut self, limit: usize, link: &Link) -> Handled;
    /// Called for every complete data message before anything else is done with it; frames
    /// returned here are written and the message is dropped (a rate limit).
    fn admit(&mut self, _link: &Link) -> Option<Vec<Out>> {
        None
    }
    /// A complete binary message (ignored by default).
    fn binary(&mut self, length: usize, link: &Link) -> Handled {
        log::debug!(
            "{} session {}: ignored a binary message of {length} bytes",
            Self::NAME,
            link.id
        );
        Handled::Now(Vec::new())
    }
}

/// Frame size and queue limits of one session.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_message_bytes: usize,
    pub send_queue: usize,
}

impl SessionLimits {
    /// A single frame larger than this cannot be skipped and closes the connection (1009).
    pub fn max_frame_bytes(&self) -> usize {
        self.max_message_bytes.saturating_mul(4)
    }
}

/// Upgrades `request` and starts a session actor speaking `face`.
pub fn start<F: Face>(
    face: F,
    registry: Addr<Registry>,
    limits: SessionLimits,
    request: &HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let session = Session {
        face,
        registry,
        limits,
        link: Link {
            id: 0,
            peer: request.peer_addr(),
        },
        last_heard: Instant::now(),
        fragments: None,
    };
    ws::WsResponseBuilder::new(session, request, stream)
        .frame_size(limits.max_frame_bytes())
        .start()
}

/// A fragmented message being reassembled: its bytes so far, or `None` once it went over the limit.
struct Fragments {
    text: bool,
    bytes: Option<Vec<u8>>,
}

struct Session<F: Face> {
    face: F,
    registry: Addr<Registry>,
    limits: SessionLimits,
    link: Link,
    last_heard: Instant,
    fragments: Option<Fragments>,
}

impl<F: Face> Session<F> {
    fn write(&mut self, outs: Vec<Out>, ctx: &mut ws::WebsocketContext<Self>) {
        for out in outs {
            match out {
                Out::Text(text) => ctx.text(text),
                Out::Close(close) => {
                    ctx.close(Some(ws::CloseReason {
                        code: ws::CloseCode::from(close.code),
                        description: Some(close.reason.to_owned()),
                    }));
                    ctx.stop();
                    return;
                }
            }
        }
    }

    fn apply(&mut self, handled: Handled, ctx: &mut ws::WebsocketContext<Self>) {
        match handled {
            Handled::Now(outs) => self.write(outs, ctx),
            Handled::Later(future) => {
                ctx.wait(
                    future
                        .into_actor(self)
                        .map(|outs, session, ctx| session.write(outs, ctx)),
                );
            }
        }
    }

    fn message(&mut self, text: bool, bytes: &[u8], ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(refused) = self.face.admit(&self.link) {
            self.write(refused, ctx);
            return;
        }
        let handled = if bytes.len() > self.limits.max_message_bytes {
            self.face.too_big(self.limits.max_message_bytes, &self.link)
        } else if !text {
            self.face.binary(bytes.len(), &self.link)
        } else {
            match std::str::from_utf8(bytes) {
                Ok(text) => self.face.text(text, &self.link),
                Err(_) => {
                    // The protocol requires UTF-8 text frames; a peer that breaks it is closed.
                    self.write(
                        vec![Out::Close(Close {
                            code: 1007,
                            reason: "Text is not UTF-8",
                        })],
                        ctx,
                    );
                    return;
                }
            }
        };
        self.apply(handled, ctx);
    }

    fn fragment(&mut self, item: actix_http::ws::Item, ctx: &mut ws::WebsocketContext<Self>) {
        let limit = self.limits.max_message_bytes;
        let append = |fragments: &mut Fragments, bytes: &[u8]| {
            if let Some(buffer) = &mut fragments.bytes {
                if buffer.len() + bytes.len() > limit {
                    fragments.bytes = None;
                } else {
                    buffer.extend_from_slice(bytes);
                }
            }
        };
        let is_text = matches!(item, actix_http::ws::Item::FirstText(_));
        match item {
            actix_http::ws::Item::FirstText(bytes) | actix_http::ws::Item::FirstBinary(bytes) => {
                let mut fragments = Fragments {
                    text: is_text,
                    bytes: Some(Vec::new()),
                };
                append(&mut fragments, &bytes);
                self.fragments = Some(fragments);
            }
            actix_http::ws::Item::Continue(bytes) => {
                if let Some(fragments) = &mut self.fragments {
                    append(fragments, &bytes);
                }
            }
            actix_http::ws::Item::Last(bytes) => {
                if let Some(mut fragments) = self.fragments.take() {
                    append(&mut fragments, &bytes);
                    match fragments.bytes {
                        Some(buffer) => self.message(fragments.text, &buffer, ctx),
                        None => {
                            if let Some(refused) = self.face.admit(&self.link) {
                                self.write(refused, ctx);
                                return;
                            }
                            let handled = self.face.too_big(limit, &self.link);
                            self.apply(handled, ctx);
                        }
                    }
                }
            }
        }
    }
}

impl<F: Face> Actor for Session<F> {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.limits.send_queue);
        let connect = Connect {
            face: F::KIND,
            outgoing: ctx.address().recipient(),
        };
        ctx.wait(
            self.registry
                .send(connect)
                .into_actor(self)
                .map(|result, session, ctx| match result {
                    Ok(id) => {
                        session.link.id = id;
                        log::debug!(
                            "{} session {id}: opened from {:?}",
                            F::NAME,
                            session.link.peer
                        );
                        let hello = session.face.opened(&session.link);
                        session.write(hello, ctx);
                    }
                    Err(error) => {
                        log::error!("{} session: the registry is gone: {error}", F::NAME);
                        ctx.stop();
                    }
                }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        log::debug!("{} session {}: closed", F::NAME, self.link.id);
        self.registry.do_send(Disconnect {
            session: self.link.id,
        });
    }
}

impl<F: Face> Handler<Outgoing> for Session<F> {
    type Result = ();

    fn handle(&mut self, message: Outgoing, ctx: &mut Self::Context) {
        match message {
            Outgoing::Frame(frame) => ctx.text(frame),
            Outgoing::TooSlow => self.write(
                vec![Out::Close(Close {
                    code: 1008,
                    reason: "Send queue full",
                })],
                ctx,
            ),
            Outgoing::ShuttingDown => self.write(
                vec![Out::Close(Close {
                    code: 1001,
                    reason: "Server shutting down",
                })],
                ctx,
            ),
            Outgoing::Heartbeat if self.last_heard.elapsed() > CLIENT_TIMEOUT => {
                log::info!(
                    "{} session {}: no pong for {} s, dropping the connection",
                    F::NAME,
                    self.link.id,
                    CLIENT_TIMEOUT.as_secs()
                );
                ctx.stop();
            }
            Outgoing::Heartbeat => ctx.ping(b""),
        }
    }
}

impl<F: Face> StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session<F> {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match message {
            Ok(ws::Message::Text(text)) => self.message(true, text.as_bytes(), ctx),
            Ok(ws::Message::Binary(bytes)) => self.message(false, &bytes, ctx),
            Ok(ws::Message::Continuation(item)) => self.fragment(item, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => self.write(
                vec![Out::Close(Close {
                    code: 1009,
                    reason: "Message too big",
                })],
                ctx,
            ),
            Err(error) => {
                log::debug!(
                    "{} session {}: protocol error: {error}",
                    F::NAME,
                    self.link.id
                );
                ctx.stop();
            }
        }
    }
}
