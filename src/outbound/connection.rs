//! One outbound connection (docs/custom.md §2.2–§2.7): an actor that dials a foreign WebSocket server
//! with awc, maps every JSON message it receives into an event for the engine, keeps a status,
//! carries `ws.send` frames out, and redials with capped exponential backoff and jitter.
//!
//! Each dial makes a new [`Link`] with its own id. A link given up is closed for good: its reader
//! is cancelled at once and its socket dropped once its close frame is out (or after
//! [`CLOSE_TIMEOUT`]); whatever it still produced before that is matched against the current
//! link's id and ignored, so an old link can neither raise events nor end the next one.
//!
//! A connection that is deleted, or shut down with the server, is stopped for good ([`Stop`]):
//! its link gets a close frame, nothing it reads becomes an event any more, nothing redials, and
//! the actor (with its heartbeat and reader) ends once the server answers or after
//! [`CLOSE_TIMEOUT`].
//!
//! `ws.send` frames wait in the link's write queue while the server is slow to read; a frame that
//! would take it past `limits.outbound_queue_bytes` is refused ([`OutboundError::QueueFull`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::SinkWrite;
use actix::prelude::*;
use awc::error::WsProtocolError as ProtocolError;
use awc::ws::{CloseCode, CloseReason, Message};
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use futures_util::{future, stream, StreamExt};
use rustls::ClientConfig;
use serde::Serialize;

use super::frames::{payload_len, Incoming, LinkCodec, LinkSink, Queued, ReadError, WriteFailed};
use super::mapping::Mapping;
use super::OutboundError;
use crate::config::{AuthMode, OutboundAuth};
use crate::event::format_time;
use crate::tls;

/// How long a dial may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a ping goes out on an open connection.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// How long without any frame before the connection counts as lost.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(70);
/// How long a connection must stay open before the failure count resets.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// The first retry wait and the cap (before jitter).
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// A connection's settings, resolved from the file or the store.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub source: String,
    pub auth: Option<OutboundAuth>,
    pub mapping: Mapping,
    pub default_type: String,
    pub max_frame_bytes: usize,
    /// `limits.outbound_queue_bytes`.
    pub max_queue_bytes: usize,
    /// Trusted besides the platform's roots, for a `wss://` URL.
    pub ca_file: Option<PathBuf>,
    /// What the URL is dialled with.
    pub tls: Trust,
}

/// What a connection trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// A `ws://` URL.
    Plain,
    /// A `wss://` URL: the platform's roots and `ca_file`'s.
    Ready(Arc<ClientConfig>),
    /// A stored connection whose `ca_file` did not load at start (why): each dial reads it
    /// again, and fails with why until it loads.
    Unloaded(String),
}

/// Dials again now: a link waiting for its next retry stops waiting, an open one is closed and
/// redialled; one that is dialling or disabled is left alone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Redial;

/// What the HTTP API reports (docs/custom.md §2.6).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub status: &'static str,
    pub since: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub failures: u32,
    pub next_retry_at: Option<String>,
}

/// Sends one text frame on this connection.
#[derive(Message)]
#[rtype(result = "Result<(), OutboundError>")]
pub struct Send(pub String);

/// Reports the status.
#[derive(Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// Applies new settings: a changed `url`, `auth`, `enabled` or `ca_file` redials, anything else
/// applies from the next message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Box<Settings>);

/// Stops the connection for good: its link is closed with this code (1000 when it is deleted,
/// 1001 when the server shuts down), nothing more it reads becomes an event, and it never
/// redials. Answered once the server has answered the close, or after [`CLOSE_TIMEOUT`]; the
/// actor ends then.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop(pub CloseCode);

/// The connection's state.
enum State {
    Disabled,
    Connecting,
    Connected { link: Link },
    Waiting { retry_at: DateTime<Utc> },
}

/// One open link (one successful dial).
struct Link {
    /// The generation of its dial.
    id: u64,
    sink: SinkWrite<Message, LinkSink>,
    /// The bytes in `sink`'s queue.
    queued: Queued,
    /// The stream of [`FromLink`] items.
    reader: SpawnHandle,
}

/// A frame was refused: the link's write queue has no room for it.
struct Full {
    queued: usize,
}

impl Link {
    /// Queues a data, ping or pong frame unless the queue would hold more than `limit` bytes.
    /// (Close frames go out with [`Link::close`], whatever the queue holds.)
    fn write(&mut self, message: Message, limit: usize) -> Result<(), Full> {
        let queued = self.queued.bytes();
        if queued.saturating_add(payload_len(&message)) > limit {
            return Err(Full { queued });
        }
        self.queued.add(&message);
        // Refused only once the sink is closing, which the link never is while it is open.
        let _ = self.sink.write(message);
        Ok(())
    }

    /// Gives the link up: nothing more is read from it, `frame` (a close) goes out if given, and
    /// the socket is dropped once that is flushed, or after [`CLOSE_TIMEOUT`] at the latest.
    fn close(mut self, frame: Option<Message>, ctx: &mut Context<Connection>) {
        ctx.cancel_future(self.reader);
        if let Some(frame) = frame {
            let _ = self.sink.write(frame);
        }
        self.sink.close();
        let writer = self.sink.handle();
        ctx.run_later(CLOSE_TIMEOUT, move |_, ctx| {
            ctx.cancel_future(writer);
        });
    }

    /// Gives up a link whose writer failed (and so ends by itself): nothing more is read.
    fn abandon(self, ctx: &mut Context<Connection>) {
        ctx.cancel_future(self.reader);
    }
}

/// What a link's reader hands the actor: a message, or `None` once the link has ended.
struct FromLink {
    link: u64,
    item: Option<Result<Incoming, ReadError>>,
}

/// Why an open link was given up; it reads as the status's `lastError`.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("message exceeds {limit} bytes")]
    TooBig { announced: u64, limit: usize },
    #[error("closed by server: {}", closed_by(.0))]
    ClosedByServer(Option<CloseReason>),
    #[error("heartbeat timeout")]
    HeartbeatTimeout,
    #[error("connection lost")]
    Ended,
    #[error("{0}")]
    Read(ProtocolError),
    #[error("{0}")]
    Write(ProtocolError),
}

impl Lost {
    /// The close frame the link is sent as it is given up.
    fn close_frame(&self) -> Option<Message> {
        let reason = match self {
            Lost::TooBig { .. } => CloseReason {
                code: CloseCode::Size,
                description: Some("Message too big".into()),
            },
            // The server's own code, echoed (RFC 6455 §5.5.1).
            Lost::ClosedByServer(reason) => {
                return Some(Message::Close(
                    reason.as_ref().map(|reason| reason.code.into()),
                ))
            }
            Lost::HeartbeatTimeout => CloseCode::Normal.into(),
            Lost::Read(_) => CloseCode::Protocol.into(),
            Lost::Ended | Lost::Write(_) => return None,
        };
        Some(Message::Close(Some(reason)))
    }
}

/// `1000 bye`, or `1005` for a close without a code.
fn closed_by(reason: &Option<CloseReason>) -> String {
    match reason {
        None => "1005".into(),
        Some(reason) => format!(
            "{} {}",
            u16::from(reason.code),
            reason.description.as_deref().unwrap_or_default()
        )
        .trim_end()
        .to_owned(),
    }
}

/// One outbound connection.
pub struct Connection {
    settings: Settings,
    events: Recipient<super::Received>,
    state: State,
    since: DateTime<Utc>,
    last_error: Option<(String, DateTime<Utc>)>,
    failures: u32,
    last_heard: Instant,
    /// Counts dials, so that timers of an older connection do nothing.
    generation: u64,
    /// Stopped for good ([`Stop`]): nothing is read into events, nothing redials; told when
    /// the server has answered the close.
    stopping: bool,
    closed: Option<futures::channel::oneshot::Sender<()>>,
}

impl Connection {
    pub fn new(settings: Settings, events: Recipient<super::Received>) -> Connection {
        Connection {
            settings,
            events,
            state: State::Disabled,
            since: Utc::now(),
            last_error: None,
            failures: 0,
            last_heard: Instant::now(),
            generation: 0,
            stopping: false,
            closed: None,
        }
    }

    /// Whether `link` is the open link (anything else comes from one given up).
    fn is_current(&self, link: u64) -> bool {
        matches!(&self.state, State::Connected { link: current } if current.id == link)
    }

    /// Takes the open link out of the state, if there is one.
    fn take_link(&mut self) -> Option<Link> {
        match std::mem::replace(&mut self.state, State::Disabled) {
            State::Connected { link } => Some(link),
            other => {
                self.state = other;
                None
            }
        }
    }

    fn status_name(&self) -> &'static str {
        match self.state {
            State::Disabled => "disabled",
            State::Connecting => "connecting",
            State::Connected { .. } => "connected",
            State::Waiting { .. } => "error",
        }
    }

    fn enter(&mut self, state: State) {
        self.state = state;
        self.since = Utc::now();
        let name = &self.settings.name;
        let up = matches!(self.state, State::Connected { .. });
        metrics::gauge!(crate::metrics::OUTBOUND_UP, "connection" => name.clone())
            .set(f64::from(u8::from(up)));
        match &self.state {
            State::Waiting { retry_at } => log::warn!(
                "outbound {name}: error ({}), failure {}; next dial at {}",
                self.last_error
                    .as_ref()
                    .map_or("", |(error, _)| error.as_str()),
                self.failures,
                format_time(retry_at)
            ),
            _ => log::info!("outbound {name}: {}", self.status_name()),
        }
    }

    /// The URL to dial, with the token appended in query mode.
    fn dial_url(&self) -> String {
        match &self.settings.auth {
            Some(OutboundAuth {
                token,
                mode: AuthMode::Query,
            }) => {
                let query = serde_urlencoded::to_string([("token", token.expose())])
                    .expect("a token encodes");
                let separator = if self.settings.url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{separator}{query}", self.settings.url)
            }
            _ => self.settings.url.clone(),
        }
    }

    fn dial(&mut self, ctx: &mut Context<Self>) {
        if !self.settings.enabled {
            self.enter(State::Disabled);
            return;
        }
        if let Trust::Unloaded(_) = self.settings.tls {
            self.settings.tls = match tls::client::config(self.settings.ca_file.as_deref()) {
                Ok(config) => Trust::Ready(config),
                Err(error) => Trust::Unloaded(format!("ca_file: {}", error.with_causes())),
            };
        }
        let client = match &self.settings.tls {
            Trust::Ready(tls) => awc::Client::builder()
                .connector(awc::Connector::new().rustls_0_23(tls.clone()))
                .finish(),
            Trust::Plain => awc::Client::new(),
            Trust::Unloaded(why) => {
                let why = why.clone();
                return self.fail(why, ctx);
            }
        };
        self.generation += 1;
        self.enter(State::Connecting);
        let mut request = client
            .ws(self.dial_url())
            .max_frame_size(self.settings.max_frame_bytes);
        if let Some(OutboundAuth {
            token,
            mode: AuthMode::Header,
        }) = &self.settings.auth
        {
            request = request.bearer_auth(token.expose());
        }
        let generation = self.generation;
        let connect =
            async move { actix_rt::time::timeout(CONNECT_TIMEOUT, request.connect()).await };
        ctx.spawn(
            connect
                .into_actor(self)
                .map(move |result, connection, ctx| {
                    if generation != connection.generation {
                        return;
                    }
                    match result {
                        Err(_) => connection.fail("connect timeout".into(), ctx),
                        Ok(Err(error)) => connection.fail(describe(&error), ctx),
                        Ok(Ok((_, framed))) => {
                            let limit = connection.settings.max_frame_bytes;
                            let (sink, stream) = framed
                                .into_map_codec(|codec| LinkCodec::new(codec, limit))
                                .split();
                            let link = generation;
                            let ended = stream::once(future::ready(FromLink { link, item: None }));
                            let reader = ctx.add_stream(
                                stream
                                    .map(move |item| FromLink {
                                        link,
                                        item: Some(item),
                                    })
                                    .chain(ended),
                            );
                            connection.last_heard = Instant::now();
                            let queued = Queued::default();
                            let sink = LinkSink::new(link, queued.clone(), sink);
                            connection.enter(State::Connected {
                                link: Link {
                                    id: link,
                                    sink: SinkWrite::new(sink, ctx),
                                    queued,
                                    reader,
                                },
                            });
                            ctx.run_later(STABLE_AFTER, move |connection, _| {
                                if connection.generation == generation
                                    && matches!(connection.state, State::Connected { .. })
                                {
                                    connection.failures = 0;
                                }
                            });
                        }
                    }
                }),
        );
    }

    /// The open link failed: give it up for good and schedule the next dial.
    fn lose(&mut self, lost: Lost, ctx: &mut Context<Self>) {
        if let Lost::TooBig { announced, limit } = &lost {
            log::warn!(
                "outbound {}: refused a message of {announced} bytes from its header, unread \
                 (limits.max_frame_bytes is {limit}); closing the link with 1009 and dialling again",
                self.settings.name
            );
        }
        if let Some(link) = self.take_link() {
            match &lost {
                Lost::Write(_) => link.abandon(ctx),
                // Shutting down: the 1001 went out already.
                _ if self.stopping => link.close(None, ctx),
                _ => link.close(lost.close_frame(), ctx),
            }
        }
        self.fail(lost.to_string(), ctx);
    }

    /// A dial failed or the link was lost: schedule the next dial.
    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.stopping {
            if let Some(closed) = self.closed.take() {
                let _ = closed.send(());
            }
            return;
        }
        self.generation += 1;
        let now = Utc::now();
        self.last_error = Some((error, now));
        let wait = backoff(self.failures, jitter());
        self.failures += 1;
        let retry_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
        self.enter(State::Waiting { retry_at });
        let generation = self.generation;
        ctx.run_later(wait, move |connection, ctx| {
            if connection.generation == generation {
                connection.dial(ctx);
            }
        });
    }

    fn message(&mut self, text: &str) {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(message) => {
                let event = self.settings.mapping.apply(
                    &message,
                    &self.settings.source,
                    &self.settings.default_type,
                );
                self.events.do_send(super::Received(event));
            }
            Err(_) => log::debug!(
                "outbound {}: ignored a text frame that is not JSON: {}",
                self.settings.name,
                text.chars().take(200).collect::<String>()
            ),
        }
    }
}

/// Query parameters whose values are credentials: shown as `***` in a connection's status.
const SECRET_PARAMETERS: [&str; 7] = [
    "token",
    "access_token",
    "key",
    "apikey",
    "api_key",
    "password",
    "secret",
];

/// `url` with the values of its credential query parameters replaced by `***`: a token written
/// into the URL is as secret as one given through `auth`.
pub fn without_secrets(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((key, _)) if SECRET_PARAMETERS.contains(&key.to_ascii_lowercase().as_str()) => {
                format!("{key}=***")
            }
            _ => parameter.to_owned(),
        })
        .collect();
    let fragment = fragment.map_or(String::new(), |fragment| format!("#{fragment}"));
    format!("{base}?{}{fragment}", parameters.join("&"))
}

/// `min(1 s × 2^n, 30 s) × r` for `n` consecutive failures before this one.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let base = BACKOFF_BASE.saturating_mul(2u32.saturating_pow(failures.min(16)));
    base.min(BACKOFF_CAP).mul_f64(jitter)
}

/// A factor uniform in [0.8, 1.2].
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).expect("the operating system provides random bytes");
    0.8 + 0.4 * (u32::from_le_bytes(bytes) as f64 / u32::MAX as f64)
}

fn describe(error: &awc::error::WsClientError) -> String {
    use awc::error::{ConnectError, SendRequestError, WsClientError};
    match error {
        WsClientError::InvalidResponseStatus(status) => format!("HTTP {}", status.as_u16()),
        WsClientError::SendRequest(SendRequestError::Connect(ConnectError::Io(error))) => {
            // tokio-rustls reports a failed handshake as an I/O error around rustls's own.
            match error.get_ref().and_then(|inner| inner.downcast_ref()) {
                Some(refused) => tls::client::explain(refused),
                None => error.to_string(),
            }
        }
        WsClientError::SendRequest(error) => error.to_string(),
        other => other.to_string(),
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.dial(ctx);
        ctx.run_interval(HEARTBEAT_INTERVAL, |connection, ctx| {
            let timed_out = connection.last_heard.elapsed() > HEARTBEAT_TIMEOUT;
            match &mut connection.state {
                State::Connected { .. } if timed_out => {
                    connection.lose(Lost::HeartbeatTimeout, ctx)
                }
                State::Connected { link } => {
                    // A full queue means the server is not reading: its pings can wait.
                    let limit = connection.settings.max_queue_bytes;
                    let _ = link.write(Message::Ping(Default::default()), limit);
                }
                _ => {}
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let name = self.settings.name.clone();
        metrics::gauge!(crate::metrics::OUTBOUND_UP, "connection" => name).set(0.0);
    }

    /// The actor ends without a [`Stop`] only when the system does: the link still gets 1000.
    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let (false, State::Connected { link }) = (self.stopping, &mut self.state) {
            let _ = link
                .sink
                .write(Message::Close(Some(CloseCode::Normal.into())));
        }
        Running::Stop
    }
}

impl actix::io::WriteHandler<WriteFailed> for Connection {
    /// The writer stops either way; it is still borrowed here, so the link is abandoned rather
    /// than closed.
    fn error(
        &mut self,
        WriteFailed { link, error }: WriteFailed,
        ctx: &mut Self::Context,
    ) -> Running {
        if self.is_current(link) {
            self.lose(Lost::Write(error), ctx);
        }
        Running::Stop
    }

    /// The writer of one link ended; the actor lives on to redial (the default would stop it).
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl StreamHandler<FromLink> for Connection {
    fn handle(&mut self, FromLink { link, item }: FromLink, ctx: &mut Self::Context) {
        if !self.is_current(link) {
            return;
        }
        self.last_heard = Instant::now();
        if self.stopping
            && matches!(
                item,
                Some(Ok(Incoming::Text(_)
                    | Incoming::Binary(_)
                    | Incoming::Ping(_)))
            )
        {
            // Stopped for good: only the link's end (the server's close) still matters.
            return;
        }
        match item {
            Some(Ok(Incoming::Text(bytes))) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.message(text),
                Err(_) => log::debug!(
                    "outbound {}: ignored a text frame that is not UTF-8",
                    self.settings.name
                ),
            },
            Some(Ok(Incoming::Binary(length))) => log::debug!(
                "outbound {}: ignored a binary frame of {length} bytes",
                self.settings.name
            ),
            Some(Ok(Incoming::Ping(payload))) => {
                let limit = self.settings.max_queue_bytes;
                if let State::Connected { link } = &mut self.state {
                    // A server that pings without reading gets no pong once the queue is full.
                    let _ = link.write(Message::Pong(payload), limit);
                }
            }
            Some(Ok(Incoming::Pong)) => {}
            Some(Ok(Incoming::Close(reason))) => self.lose(Lost::ClosedByServer(reason), ctx),
            Some(Err(ReadError::TooBig { announced, limit })) => {
                self.lose(Lost::TooBig { announced, limit }, ctx)
            }
            Some(Err(ReadError::Protocol(error))) => self.lose(Lost::Read(error), ctx),
            None => self.lose(Lost::Ended, ctx),
        }
    }

    /// Each link's end arrives as its last item; the actor lives on (the default would stop it).
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl Handler<Send> for Connection {
    type Result = Result<(), OutboundError>;

    fn handle(&mut self, Send(text): Send, _: &mut Context<Self>) -> Self::Result {
        let status = self.status_name();
        let limit = self.settings.max_queue_bytes;
        let frame = text.len();
        match &mut self.state {
            State::Connected { link } => link
                .write(Message::Text(ByteString::from(text)), limit)
                .map_err(|Full { queued }| OutboundError::QueueFull {
                    name: self.settings.name.clone(),
                    queued,
                    frame,
                    limit,
                }),
            _ => Err(OutboundError::NotConnected(
                self.settings.name.clone(),
                status,
            )),
        }
    }
}

/// How long shutdown waits for a server to answer the close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Handler<Stop> for Connection {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, Stop(code): Stop, _: &mut Context<Self>) -> Self::Result {
        // Timers and dials of the current generation now do nothing.
        self.generation += 1;
        self.stopping = true;
        log::info!(
            "outbound {}: stopped for good; closing with {}",
            self.settings.name,
            u16::from(code)
        );
        let (closed, answered) = futures::channel::oneshot::channel();
        if let State::Connected { link } = &mut self.state {
            let _ = link.sink.write(Message::Close(Some(code.into())));
            self.closed = Some(closed);
        }
        Box::pin(
            async move {
                let _ = actix_rt::time::timeout(CLOSE_TIMEOUT, answered).await;
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        )
    }
}

impl Handler<GetStatus> for Connection {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Status {
            name: self.settings.name.clone(),
            url: without_secrets(&self.settings.url),
            enabled: self.settings.enabled,
            status: self.status_name(),
            since: format_time(&self.since),
            last_error: self.last_error.as_ref().map(|(error, _)| error.clone()),
            last_error_at: self.last_error.as_ref().map(|(_, at)| format_time(at)),
            failures: self.failures,
            next_retry_at: match &self.state {
                State::Waiting { retry_at } => Some(format_time(retry_at)),
                _ => None,
            },
        })
    }
}

impl Handler<Redial> for Connection {
    type Result = ();

    fn handle(&mut self, _: Redial, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Disabled | State::Connecting) || self.stopping {
            return;
        }
        if let Some(link) = self.take_link() {
            link.close(Some(Message::Close(Some(CloseCode::Normal.into()))), ctx);
        }
        log::info!("outbound {}: redialling now, as asked", self.settings.name);
        // `dial` moves the generation on: the waiting timer and the old stream do nothing.
        self.dial(ctx);
    }
}

impl Handler<Reconfigure> for Connection {
    type Result = ();

    fn handle(&mut self, Reconfigure(settings): Reconfigure, ctx: &mut Context<Self>) {
        let redial = settings.url != self.settings.url
            || settings.enabled != self.settings.enabled
            || settings.auth != self.settings.auth
            || settings.ca_file != self.settings.ca_file;
        self.settings = *settings;
        if redial {
            if let Some(link) = self.take_link() {
                link.close(Some(Message::Close(Some(CloseCode::Normal.into()))), ctx);
            }
            self.failures = 0;
            self.dial(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_not_shown() {
        assert_eq!(
            without_secrets("wss://h/p?room=a&Token=s3cret&api_key=k#top"),
            "wss://h/p?room=a&Token=***&api_key=***#top"
        );
        assert_eq!(without_secrets("ws://h:9/p"), "ws://h:9/p");
        assert_eq!(without_secrets("ws://h/?flag"), "ws://h/?flag");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        assert_eq!(backoff(0, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(1, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(5, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(40, 1.2), Duration::from_secs(36));
        assert_eq!(backoff(0, 0.8), Duration::from_millis(800));
        for _ in 0..100 {
            let factor = jitter();
            assert!((0.8..=1.2).contains(&factor));
        }
    }
}
