//! The generic WebSocket session actor, one per connection, parameterised by a face.
//!
//! The session owns the socket: it reassembles fragmented messages, enforces the frame size
//! limits, answers pings, pings its client when the registry says it is time (one heartbeat
//! timer for all sessions, in the registry), and writes what the registry sends it. It registers
//! with the registry in `started()` before reading any frame, and hands each complete text
//! message to its [`Face`], whose replies it writes in request order. Its mailbox is bounded by
//! `limits.send_queue`: the registry `try_send`s frames and drops a session that lets it fill.
//!
//! While a reply waits for another actor (the engine, the registry), the session keeps writing
//! what the registry sends it; the messages the client sends meanwhile wait, in order and within
//! a bound, until the reply is written.
//!
//! Incoming bytes pass a [`guard::FrameGuard`] first, which refuses an oversized frame from its
//! header and bounds what unauthenticated connections hold; every close the server starts is
//! followed by a reset of the connection if the peer has not read it in time ([`peer`]).
//!
//! This is the only module that touches actix-web-actors (deprecated upstream in favour of
//! actix-ws), so that a later move changes one folder.

pub mod guard;
pub mod peer;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use bytestring::ByteString;
use futures_util::future::LocalBoxFuture;

use crate::event::Event;
use crate::registry::{
    Closing, Connect, Disconnect, FaceKind, Frame, Outgoing, Outlet, Refused, Registry, SessionId,
    CLIENT_TIMEOUT,
};
use guard::{Budget, FrameGuard, Trip};
use peer::PeerSocket;

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
/// hands the face no other message of the connection until a `Later` has resolved, so replies
/// stay in request order; frames from the registry are written meanwhile.
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

    /// Frames written as soon as the connection is registered, before any message is handled.
    fn opened(&mut self, link: &Link) -> Handled;
    /// One complete text message no larger than `limits.max_frame_bytes`.
    fn text(&mut self, text: &str, link: &Link) -> Handled;
    /// A message (`text` or binary) larger than `limit` bytes, discarded unparsed.
    fn too_big(&mut self, limit: usize, text: bool, link: &Link) -> Handled;
    /// Called for every complete data message (`text` or binary) before anything else is done
    /// with it; frames returned here are written and the message is dropped (a rate limit).
    fn admit(&mut self, _text: bool, _link: &Link) -> Option<Vec<Out>> {
        None
    }
    /// Whether the connection writes an encoded event, or the part of it labelled `label`
    /// (all of them by default).
    fn accepts(&mut self, _event: &Event, _label: Option<&'static str>) -> bool {
        true
    }
    /// Whether the client has authenticated (by default not: the connection stays in the budget
    /// unauthenticated connections share for unfinished messages).
    fn authenticated(&self) -> bool {
        false
    }
    /// Frames written before the registry's close (by default none).
    fn closing(&mut self, _why: Closing, _link: &Link) -> Vec<Out> {
        Vec::new()
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

/// Frame size, queue and memory limits of the sessions.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    pub max_message_bytes: usize,
    pub send_queue: usize,
    /// Shared by every session: what unauthenticated connections' unfinished messages may hold.
    pub unauthenticated: Arc<Budget>,
    /// How long a closed connection's peer has to read the close before the connection is reset.
    pub close_timeout: Duration,
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
    let mut response = ws::handshake(request)?;
    let socket = PeerSocket::of(request);
    let guarded = Rc::new(guard::Shared::default());
    let stream = FrameGuard::new(
        stream,
        limits.max_frame_bytes(),
        limits.unauthenticated.clone(),
        guarded.clone(),
    );
    let codec = actix_http::ws::Codec::new().max_size(limits.max_frame_bytes());
    let session = Session {
        face,
        registry,
        limits,
        link: Link {
            id: 0,
            peer: request.peer_addr(),
        },
        socket,
        guarded,
        heartbeats: Arc::default(),
        last_heard: Instant::now(),
        fragments: None,
        waiting: false,
        pending: Pending::default(),
        closed: false,
    };
    Ok(response.streaming(ws::WebsocketContext::with_codec(session, stream, codec)))
}

/// A session's end of the registry's fan-out: its mailbox, and its socket to cut when the
/// registry drops it and the peer does not read the close.
struct SessionOutlet {
    recipient: Recipient<Outgoing>,
    peer: Option<SocketAddr>,
    socket: Option<PeerSocket>,
    close_timeout: Duration,
    /// Heartbeats offered and not yet handled by the session.
    heartbeats: Arc<AtomicU32>,
}

/// A session that has not handled this many heartbeats is stalled: actix polls a session only
/// while its peer reads, so one whose peer stopped reading would otherwise never time out.
const STALLED_HEARTBEATS: u32 = 2;

impl Outlet for SessionOutlet {
    fn offer(&self, message: Outgoing) -> Result<(), Refused> {
        if matches!(message, Outgoing::Heartbeat)
            && self.heartbeats.fetch_add(1, Ordering::AcqRel) >= STALLED_HEARTBEATS
        {
            return Err(Refused::Full);
        }
        self.recipient.offer(message)
    }

    fn close(&self, why: Closing) {
        self.recipient.close(why);
        if let Some(socket) = &self.socket {
            socket.cut_after(self.close_timeout);
        }
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }
}

/// A fragmented message being reassembled: its bytes so far, or `None` once it went over the limit.
struct Fragments {
    text: bool,
    bytes: Option<Vec<u8>>,
}

/// Client messages that arrived while a reply was waiting, in arrival order.
#[derive(Default)]
struct Pending {
    items: VecDeque<Item>,
    bytes: usize,
}

enum Item {
    /// A complete data message, not yet handed to the face (`None`: over the size limit).
    Message { text: bool, bytes: Option<Vec<u8>> },
    /// Frames already decided (a rate-limit refusal), written in their turn.
    Write(Vec<Out>),
}

/// Sent to a peer whose text message is not UTF-8 (RFC 6455 §8.1).
const CLOSE_NOT_UTF8: Close = Close {
    code: 1007,
    reason: "Text is not UTF-8",
};

/// Sent for a single frame over four times the message limit (RFC 6455 §7.4.1).
const CLOSE_TOO_BIG: Close = Close {
    code: 1009,
    reason: "Message too big",
};

/// Sent to an unauthenticated connection whose unfinished message does not fit the shared budget.
const CLOSE_BUSY: Close = Close {
    code: 1013,
    reason: "Server busy, try again later",
};

/// Sent to a peer that breaks the framing rules (RFC 6455 §7.4.1): a continuation with no
/// message to continue, a new message inside a fragmented one, a control frame over 125 bytes.
const CLOSE_PROTOCOL_ERROR: Close = Close {
    code: 1002,
    reason: "Protocol error",
};

/// How many client messages may wait behind a reply before the connection is closed.
const MAX_PENDING: usize = 1024;

/// Sent when a client sends more than the session may hold while a reply waits.
const CLOSE_TOO_MANY_PENDING: Close = Close {
    code: 1008,
    reason: "Too many requests in flight",
};

struct Session<F: Face> {
    face: F,
    registry: Addr<Registry>,
    limits: SessionLimits,
    link: Link,
    /// The connection's socket, to cut when a close is not read in time.
    socket: Option<PeerSocket>,
    /// What the session shares with the guard over its incoming bytes.
    guarded: Rc<guard::Shared>,
    /// Shared with its outlet: heartbeats not yet handled.
    heartbeats: Arc<AtomicU32>,
    last_heard: Instant,
    fragments: Option<Fragments>,
    /// A reply is waiting for another actor: client messages go to `pending`.
    waiting: bool,
    pending: Pending,
    /// A close was written: nothing more is handled or written.
    closed: bool,
}

impl<F: Face> Session<F> {
    fn write(&mut self, outs: Vec<Out>, ctx: &mut ws::WebsocketContext<Self>) {
        if self.closed {
            return;
        }
        for out in outs {
            match out {
                Out::Text(text) => ctx.text(text),
                Out::Close(close) => {
                    ctx.close(Some(ws::CloseReason {
                        code: ws::CloseCode::from(close.code),
                        description: Some(close.reason.to_owned()),
                    }));
                    self.stop(ctx);
                    return;
                }
            }
        }
    }

    /// Stops the session; the connection is reset if its peer has not read everything by
    /// `limits.close_timeout`.
    fn stop(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.stop();
        self.closed = true;
        self.pending = Pending::default();
        if let Some(socket) = &self.socket {
            socket.cut_after(self.limits.close_timeout);
        }
    }

    fn apply(&mut self, handled: Handled, ctx: &mut ws::WebsocketContext<Self>) {
        self.guarded.trusted.set(self.face.authenticated());
        match handled {
            Handled::Now(outs) => self.write(outs, ctx),
            Handled::Later(future) => {
                // `spawn`, not `wait`: the mailbox (the registry's frames) keeps flowing.
                self.waiting = true;
                ctx.spawn(future.into_actor(self).map(|outs, session, ctx| {
                    session.waiting = false;
                    session.write(outs, ctx);
                    session.resume(ctx);
                }));
            }
        }
    }

    /// Handles the messages that waited, until one waits again.
    fn resume(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        while !self.waiting && !self.closed {
            let Some(item) = self.pending.items.pop_front() else {
                return;
            };
            match item {
                Item::Write(outs) => self.write(outs, ctx),
                Item::Message { text, bytes } => {
                    self.pending.bytes -= bytes.as_ref().map_or(0, Vec::len);
                    self.handle(text, bytes.as_deref(), ctx);
                }
            }
        }
    }

    /// Queues `item` behind the waiting reply, or closes a client that sends too much meanwhile.
    fn hold(&mut self, item: Item, ctx: &mut ws::WebsocketContext<Self>) {
        if let Item::Message {
            bytes: Some(bytes), ..
        } = &item
        {
            self.pending.bytes += bytes.len();
        }
        self.pending.items.push_back(item);
        if self.pending.items.len() > MAX_PENDING
            || self.pending.bytes > self.limits.max_frame_bytes()
        {
            log::warn!(
                "{} session {}: too many requests while a reply waits, closing",
                F::NAME,
                self.link.id
            );
            self.pending = Pending::default();
            self.write(vec![Out::Close(CLOSE_TOO_MANY_PENDING)], ctx);
        }
    }

    /// A complete data message (`None`: over the size limit, discarded): admitted (or refused)
    /// on arrival, handled in its turn.
    fn message(&mut self, text: bool, bytes: Option<&[u8]>, ctx: &mut ws::WebsocketContext<Self>) {
        if self.closed {
            return;
        }
        let refused = self.face.admit(text, &self.link);
        match (refused, self.waiting) {
            (Some(refused), false) => self.write(refused, ctx),
            (Some(refused), true) => self.hold(Item::Write(refused), ctx),
            (None, false) => self.handle(text, bytes, ctx),
            (None, true) => {
                let bytes = bytes.map(<[u8]>::to_vec);
                self.hold(Item::Message { text, bytes }, ctx)
            }
        }
    }

    /// A whole message, unless over the size limit.
    fn fits<'b>(&self, bytes: &'b [u8]) -> Option<&'b [u8]> {
        (bytes.len() <= self.limits.max_message_bytes).then_some(bytes)
    }

    fn handle(&mut self, text: bool, bytes: Option<&[u8]>, ctx: &mut ws::WebsocketContext<Self>) {
        let handled = match bytes {
            None => self
                .face
                .too_big(self.limits.max_message_bytes, text, &self.link),
            Some(bytes) if !text => self.face.binary(bytes.len(), &self.link),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => self.face.text(text, &self.link),
                Err(_) => {
                    // The protocol requires UTF-8 text frames; a peer that breaks it is closed.
                    self.write(vec![Out::Close(CLOSE_NOT_UTF8)], ctx);
                    return;
                }
            },
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
                    self.message(fragments.text, fragments.bytes.as_deref(), ctx);
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
            outlet: Box::new(SessionOutlet {
                recipient: ctx.address().recipient(),
                peer: self.link.peer,
                socket: self.socket.clone(),
                close_timeout: self.limits.close_timeout,
                heartbeats: self.heartbeats.clone(),
            }),
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
                        let opened = session.face.opened(&session.link);
                        session.apply(opened, ctx);
                    }
                    Err(error) => {
                        log::error!("{} session: the registry is gone: {error}", F::NAME);
                        session.stop(ctx);
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
        if matches!(message, Outgoing::Heartbeat) {
            self.heartbeats.store(0, Ordering::Release);
        }
        match message {
            Outgoing::Event(event, Frame::Text(text)) => {
                if self.face.accepts(&event, None) {
                    ctx.text(text)
                }
            }
            Outgoing::Event(event, Frame::Labelled(parts)) => {
                for (label, text) in parts.iter() {
                    if self.face.accepts(&event, Some(label)) {
                        ctx.text(text.clone());
                    }
                }
            }
            // Payloads are for connections that are not WebSocket sessions.
            Outgoing::Event(_, Frame::Nothing | Frame::Payloads(_)) => {}
            Outgoing::Close(why) => {
                let mut outs = self.face.closing(why, &self.link);
                outs.push(Out::Close(match why {
                    Closing::TooSlow => Close {
                        code: 1008,
                        reason: "Send queue full",
                    },
                    Closing::ShuttingDown => Close {
                        code: 1001,
                        reason: "Server shutting down",
                    },
                }));
                self.write(outs, ctx);
            }
            Outgoing::Heartbeat if self.last_heard.elapsed() > CLIENT_TIMEOUT => {
                log::info!(
                    "{} session {}: no pong for {} s, dropping the connection",
                    F::NAME,
                    self.link.id,
                    CLIENT_TIMEOUT.as_secs()
                );
                self.stop(ctx);
            }
            Outgoing::Heartbeat => ctx.ping(b""),
        }
    }
}

impl<F: Face> StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session<F> {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        self.guarded.handled_one();
        match message {
            Ok(ws::Message::Text(text)) => self.message(true, self.fits(text.as_bytes()), ctx),
            Ok(ws::Message::Binary(bytes)) => self.message(false, self.fits(&bytes), ctx),
            Ok(ws::Message::Continuation(item)) => self.fragment(item, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                self.stop(ctx);
            }
            Err(ws::ProtocolError::Overflow) => self.write(vec![Out::Close(CLOSE_TOO_BIG)], ctx),
            // actix-web-actors reports a text frame that is not UTF-8 only as an I/O error
            // carrying the UTF-8 error's text.
            Err(ws::ProtocolError::Io(error)) if error.to_string().starts_with("invalid utf-8") => {
                self.write(vec![Out::Close(CLOSE_NOT_UTF8)], ctx)
            }
            Err(error) => {
                log::debug!(
                    "{} session {}: protocol error: {error}",
                    F::NAME,
                    self.link.id
                );
                self.write(vec![Out::Close(CLOSE_PROTOCOL_ERROR)], ctx);
            }
        }
    }

    /// The incoming bytes ended: the peer went, or the guard refused what came next.
    fn finished(&mut self, ctx: &mut Self::Context) {
        let close = match self.guarded.tripped.get() {
            None => return self.stop(ctx),
            Some(Trip::Oversized(length)) => {
                log::info!(
                    "{} session {}: a frame of {length} bytes is over the limit of {}, closing",
                    F::NAME,
                    self.link.id,
                    self.limits.max_frame_bytes()
                );
                CLOSE_TOO_BIG
            }
            Some(Trip::LongControl) => {
                log::info!(
                    "{} session {}: a control frame over 125 bytes, closing",
                    F::NAME,
                    self.link.id
                );
                CLOSE_PROTOCOL_ERROR
            }
            Some(Trip::OverBudget) => {
                log::warn!(
                    "{} session {}: unauthenticated connections hold too much unfinished input \
                     (limits.unauthenticated_bytes), closing this one",
                    F::NAME,
                    self.link.id
                );
                CLOSE_BUSY
            }
        };
        self.write(vec![Out::Close(close)], ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use actix_web::{App, HttpServer};
    use awc::ws::{Frame as WsFrame, Message};
    use futures::channel::oneshot;
    use futures_util::{SinkExt, StreamExt};

    use super::*;
    use crate::registry::{set_interest, Encode, Interest, Publish, Room, SetEncoder};

    /// A face whose `wait` request is answered only when the test says so.
    struct Slow {
        registry: Addr<Registry>,
        /// One release per `wait`, the last first.
        release: Arc<Mutex<Vec<oneshot::Receiver<()>>>>,
        /// Every text handled.
        handled: Arc<Mutex<Vec<String>>>,
        /// One signal per message that arrived (before it is handled or held).
        arrived: futures::channel::mpsc::UnboundedSender<()>,
    }

    impl Face for Slow {
        const KIND: FaceKind = FaceKind::Custom;
        const NAME: &'static str = "slow";

        fn opened(&mut self, link: &Link) -> Handled {
            let mut interest = Interest::default();
            interest.add(Room::Any, "*", "*");
            let (registry, session) = (self.registry.clone(), link.id);
            Handled::Later(Box::pin(async move {
                set_interest(&registry, session, interest).await.unwrap();
                vec![Out::Text("ready".into())]
            }))
        }

        fn admit(&mut self, _: bool, _: &Link) -> Option<Vec<Out>> {
            self.arrived.unbounded_send(()).unwrap();
            None
        }

        fn text(&mut self, text: &str, _: &Link) -> Handled {
            self.handled.lock().unwrap().push(text.to_owned());
            if text == "close" {
                let bye = Close {
                    code: 1000,
                    reason: "bye",
                };
                return Handled::Now(vec![Out::Close(bye)]);
            }
            if text != "wait" {
                return Handled::Now(vec![Out::Text(format!("re: {text}").into())]);
            }
            let release = self.release.lock().unwrap().pop().unwrap();
            Handled::Later(Box::pin(async move {
                release.await.unwrap();
                vec![Out::Text("waited".into())]
            }))
        }

        fn too_big(&mut self, _: usize, _: bool, _: &Link) -> Handled {
            Handled::Now(Vec::new())
        }
    }

    struct Kind;

    impl Encode for Kind {
        fn encode(&self, event: &Event) -> Frame {
            Frame::Text(event.kind.clone().into())
        }
    }

    /// The next `count` text frames, each within 10 s.
    async fn texts(
        socket: &mut actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
        count: usize,
    ) -> Vec<String> {
        let mut texts = Vec::new();
        for _ in 0..count {
            let frame = actix_rt::time::timeout(Duration::from_secs(10), socket.next());
            match frame.await.expect("a frame within 10 s").unwrap().unwrap() {
                WsFrame::Text(text) => texts.push(String::from_utf8(text.to_vec()).unwrap()),
                other => panic!("not text: {other:?}"),
            }
        }
        texts
    }

    #[actix_rt::test]
    async fn frames_flow_while_a_reply_waits_and_requests_keep_their_order() {
        let registry = Registry::default().start();
        registry
            .send(SetEncoder(FaceKind::Custom, Box::new(Kind)))
            .await
            .unwrap();
        let (release, released) = oneshot::channel();
        let (release_second, released_second) = oneshot::channel();
        let released = Arc::new(Mutex::new(vec![released_second, released]));
        let limits = SessionLimits {
            max_message_bytes: 1024,
            send_queue: 16,
            unauthenticated: Arc::new(Budget::new(1 << 20)),
            close_timeout: Duration::from_secs(5),
        };
        let handled = Arc::new(Mutex::new(Vec::new()));
        let (arrived, mut arrivals) = futures::channel::mpsc::unbounded();
        let shared = (registry.clone(), released, handled.clone(), arrived, limits);
        let server = HttpServer::new(move || {
            let (registry, release, handled, arrived, limits) = shared.clone();
            App::new().default_service(web::to(
                move |request: HttpRequest, stream: web::Payload| {
                    let face = Slow {
                        registry: registry.clone(),
                        release: release.clone(),
                        handled: handled.clone(),
                        arrived: arrived.clone(),
                    };
                    let (registry, limits) = (registry.clone(), limits.clone());
                    async move { start(face, registry, limits, &request, stream) }
                },
            ))
        });
        let listener = crate::config::Listener {
            enabled: true,
            bind: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            allowed_origins: None,
            allow_unauthenticated: false,
        };
        let bound = crate::faces::listen(server, "slow", &listener, "ws", "/").unwrap();
        let (_, mut socket) = awc::Client::new().ws(bound.url).connect().await.unwrap();
        assert_eq!(texts(&mut socket, 1).await, ["ready"]);
        socket.send(Message::Text("wait".into())).await.unwrap();
        socket.send(Message::Text("after".into())).await.unwrap();
        // Nothing answers `wait` yet: each event still reaches the client meanwhile (a paused
        // mailbox would hold the first one until the reply).
        for kind in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            let event = Event::new("test", kind, serde_json::json!({}));
            registry.send(Publish(Arc::new(event))).await.unwrap();
            assert_eq!(texts(&mut socket, 1).await, [kind]);
        }
        release.send(()).unwrap();
        let replies = texts(&mut socket, 2).await;
        assert_eq!(replies, ["waited", "re: after"]);
        // What waits behind a reply is dropped, unhandled, once something closes the session.
        socket.send(Message::Text("wait".into())).await.unwrap();
        for text in ["close", "never"] {
            socket.send(Message::Text(text.into())).await.unwrap();
        }
        // All five messages so far have arrived, the last two held behind the second `wait`.
        for _ in 0..5 {
            let arrival = actix_rt::time::timeout(Duration::from_secs(10), arrivals.next());
            arrival.await.expect("an arrival within 10 s").unwrap();
        }
        release_second.send(()).unwrap();
        assert_eq!(texts(&mut socket, 1).await, ["waited"]);
        let frame = actix_rt::time::timeout(Duration::from_secs(10), socket.next());
        match frame.await.expect("a frame within 10 s").unwrap().unwrap() {
            WsFrame::Close(Some(reason)) => assert_eq!(reason.description.as_deref(), Some("bye")),
            other => panic!("not the close: {other:?}"),
        }
        let handled = handled.lock().unwrap().clone();
        assert_eq!(handled, ["wait", "after", "wait", "close"]);
    }
}
