//! One outbound connection (docs/custom.md §2.2–§2.7): an actor that dials a foreign WebSocket server
//! with awc, maps every JSON message it receives into an event for the engine, keeps a status,
//! carries `ws.send` frames out, and redials with capped exponential backoff and jitter.

use std::time::{Duration, Instant};

use actix::io::SinkWrite;
use actix::prelude::*;
use awc::error::WsProtocolError as ProtocolError;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use futures_util::stream::SplitSink;
use futures_util::StreamExt;
use serde::Serialize;

use super::mapping::Mapping;
use super::OutboundError;
use crate::config::{AuthMode, OutboundAuth};
use crate::event::format_time;

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

/// Applies new settings: a changed `url`, `auth` or `enabled` redials, anything else applies
/// from the next message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Box<Settings>);

/// The server is stopping: close the link with 1001 (Going Away).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShutDown;

/// The link's state.
enum State {
    Disabled,
    Connecting,
    Connected {
        sink: SinkWrite<Message, SplitSink<actix_codec::Framed<BoxedSocket, Codec>, Message>>,
    },
    Waiting {
        retry_at: DateTime<Utc>,
    },
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
    /// Shutting down: nothing redials; told when the server has answered the close.
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
        self.generation += 1;
        self.enter(State::Connecting);
        let mut request = awc::Client::new()
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
                            let (sink, stream) = framed.split();
                            ctx.add_stream(stream);
                            connection.last_heard = Instant::now();
                            connection.enter(State::Connected {
                                sink: SinkWrite::new(sink, ctx),
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

    /// A dial failed or the connection was lost: schedule the next dial.
    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.stopping {
            if let Some(closed) = self.closed.take() {
                let _ = closed.send(());
            }
            return;
        }
        if let State::Connected { sink } = &mut self.state {
            sink.close();
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
    use awc::error::WsClientError;
    match error {
        WsClientError::InvalidResponseStatus(status) => format!("HTTP {}", status.as_u16()),
        WsClientError::SendRequest(error) => error.to_string(),
        other => other.to_string(),
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.dial(ctx);
        ctx.run_interval(HEARTBEAT_INTERVAL, |connection, ctx| {
            if let State::Connected { sink } = &mut connection.state {
                if connection.last_heard.elapsed() > HEARTBEAT_TIMEOUT {
                    connection.fail("heartbeat timeout".into(), ctx);
                } else {
                    let _ = sink.write(Message::Ping(Default::default()));
                }
            }
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let (false, State::Connected { sink }) = (self.stopping, &mut self.state) {
            let _ = sink.write(Message::Close(Some(awc::ws::CloseCode::Normal.into())));
        }
        Running::Stop
    }
}

impl actix::io::WriteHandler<ProtocolError> for Connection {
    fn error(&mut self, error: ProtocolError, ctx: &mut Self::Context) -> Running {
        self.fail(error.to_string(), ctx);
        Running::Continue
    }

    /// The sink of one link closed; the actor lives on to redial (the default would stop it).
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl StreamHandler<Result<Frame, ProtocolError>> for Connection {
    fn handle(&mut self, frame: Result<Frame, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match frame {
            Ok(Frame::Text(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.message(text),
                Err(_) => log::debug!(
                    "outbound {}: ignored a text frame that is not UTF-8",
                    self.settings.name
                ),
            },
            Ok(Frame::Binary(bytes)) => {
                log::debug!(
                    "outbound {}: ignored a binary frame of {} bytes",
                    self.settings.name,
                    bytes.len()
                )
            }
            Ok(Frame::Ping(payload)) => {
                if let State::Connected { sink } = &mut self.state {
                    let _ = sink.write(Message::Pong(payload));
                }
            }
            Ok(Frame::Pong(_)) | Ok(Frame::Continuation(_)) => {}
            Ok(Frame::Close(reason)) => {
                let (code, text) = reason.map_or((1005, String::new()), |reason| {
                    (
                        u16::from(reason.code),
                        reason.description.unwrap_or_default(),
                    )
                });
                self.fail(
                    format!("closed by server: {code} {text}")
                        .trim_end()
                        .to_owned(),
                    ctx,
                );
            }
            Err(ProtocolError::Overflow) => self.fail(
                format!("message exceeds {} bytes", self.settings.max_frame_bytes),
                ctx,
            ),
            Err(error) => self.fail(error.to_string(), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        if matches!(self.state, State::Connected { .. }) {
            self.fail("connection lost".into(), ctx);
        }
    }
}

impl Handler<Send> for Connection {
    type Result = Result<(), OutboundError>;

    fn handle(&mut self, Send(text): Send, _: &mut Context<Self>) -> Self::Result {
        let status = self.status_name();
        match &mut self.state {
            State::Connected { sink } => sink
                .write(Message::Text(ByteString::from(text)))
                .map_err(|_| OutboundError::NotConnected(self.settings.name.clone(), "error")),
            _ => Err(OutboundError::NotConnected(
                self.settings.name.clone(),
                status,
            )),
        }
    }
}

/// How long shutdown waits for a server to answer the close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Handler<ShutDown> for Connection {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: ShutDown, _: &mut Context<Self>) -> Self::Result {
        self.generation += 1;
        self.stopping = true;
        let (closed, answered) = futures::channel::oneshot::channel();
        if let State::Connected { sink } = &mut self.state {
            let _ = sink.write(Message::Close(Some(awc::ws::CloseCode::Away.into())));
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
            url: self.settings.url.clone(),
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
        match &mut self.state {
            State::Disabled | State::Connecting => return,
            State::Waiting { .. } => {}
            State::Connected { sink } => {
                let _ = sink.write(Message::Close(Some(awc::ws::CloseCode::Normal.into())));
                sink.close();
            }
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
            || settings.auth != self.settings.auth;
        self.settings = *settings;
        if redial {
            if let State::Connected { sink } = &mut self.state {
                let _ = sink.write(Message::Close(Some(awc::ws::CloseCode::Normal.into())));
                sink.close();
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
