//! The HoloBridge-compatible Socket.IO face (docs/socketio.md): bot and overlay clients written for
//! HoloBridge's Socket.IO API with `socket.io-client` or `python-socketio` connect unchanged.
//!
//! socketioxide serves the face: Engine.IO 4 / Socket.IO 5 framing, long-polling with upgrade and
//! WebSocket, ping/pong, CORS through tower-http. It cannot be mounted inside actix-web, so it runs
//! on its own hyper listener, on a thread with its own tokio runtime, in the same process.
//!
//! Each socket takes part in the registry like every other session: it connects with a
//! [`SocketOutlet`] (socketioxide's bounded per-socket queue of `limits.send_queue` packets), its
//! interest is `discord` events without a room plus those of the guilds it joined, and the
//! registry's too-slow and shutdown closes disconnect it. Each event is encoded once per publish
//! (its `discord` payload as JSON); the socket only wraps it in its packet. Handlers are plain
//! closures, so one socket's packets are handled in arrival order.

pub mod protocol;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix::Addr;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts, Value as SioValue};
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError, SocketIo};
use subtle::ConstantTimeEq;
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;
use tower_http::add_extension::AddExtension;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::validate_request::ValidateRequestHeaderLayer;

use crate::config::Secret;
use crate::engine::{self, RuleEngine};
use crate::event::Event;
use crate::faces::{origins, Setup, Slot, StartError, Started};
use crate::log_limit::{more, Limited};
use crate::registry::{
    Closing, Connect, Disconnect, Encode, FaceKind, Frame, Interest, Outgoing, Outlet, Refused,
    Registry, Room, SessionId, SetInterest, ANY,
};
use crate::tls;

/// Socket.IO settings HoloBridge clients expect (docs/socketio.md §1).
const PING_INTERVAL: Duration = Duration::from_millis(25_000);
const PING_TIMEOUT: Duration = Duration::from_millis(20_000);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
const MAX_PAYLOAD: u64 = 1_000_000;
/// How long shutdown waits for the transports to close.
const DRAIN: Duration = Duration::from_secs(1);

/// Starts the face, if enabled: the encoder, then the listener thread.
pub async fn start(setup: &Setup<'_>) -> Result<Option<Started>, StartError> {
    let config = &setup.config.socketio;
    if !config.listener.enabled {
        return Ok(None);
    }
    setup.install(FaceKind::Socketio, Encoder).await?;
    // Before the runtime exists: dropping it on this error here would panic.
    let (acceptor, reloading) = match &config.listener.tls {
        None => (None, None),
        Some(files) => {
            // hyper serves HTTP/1.1 only here.
            let (config, reloading) = tls::server::config("socketio", files, &[b"http/1.1"])
                .map_err(StartError::tls("socketio"))?;
            (Some(TlsAcceptor::from(Arc::new(config))), Some(reloading))
        }
    };
    let bind = config.listener.bind;
    let bind_error = |source| StartError::Bind {
        face: "socketio",
        bind,
        source,
    };
    // Bound here, so that a taken port stops the start like every face's; the runtime too, so
    // that a face listed in the banner is running.
    let listener = std::net::TcpListener::bind(bind).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("socketio")
        .enable_all()
        .build()
        .map_err(bind_error)?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(bind_error)?
    };
    let allowed_origins: Option<Arc<[String]>> =
        config.listener.allowed_origins.clone().map(Into::into);
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let shared = Arc::new(Shared {
        keys: ApiKeys::new(&config.api_keys),
        registry: setup.registry.clone(),
        engine: setup.engine.clone(),
        runtime: runtime.handle().clone(),
    });
    let send_queue = setup.limits.send_queue;
    let max_connections = config.max_connections as usize;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("socketio".into())
        .spawn(move || {
            serve(
                runtime,
                (listener, acceptor),
                shared,
                (send_queue, max_connections),
                allowed_origins,
                stopped,
            )
        })
        .map_err(bind_error)?;
    let mut notes = Vec::new();
    if config.api_keys.is_empty() {
        notes.push(
            "(no socketio.api_keys configured: the socketio face refuses every client)".into(),
        );
    }
    Ok(Some(Started {
        face: "socketio",
        url: format!("{scheme}://{bound}/socket.io/"),
        notes,
        server: None,
        tls: reloading,
        stop: Some(Box::new(move || {
            // The thread may be gone already; nothing to signal then.
            let _ = stop.send(());
            thread
        })),
    }))
}

/// The listener thread: serves each connection with hyper (upgrades on), over TLS when the
/// face has it, until `stopped`; then disconnects every socket.
fn serve(
    runtime: tokio::runtime::Runtime,
    (listener, acceptor): (tokio::net::TcpListener, Option<TlsAcceptor>),
    shared: Arc<Shared>,
    (send_queue, max_connections): (usize, usize),
    allowed_origins: Option<Arc<[String]>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let (service, io) = SocketIo::builder()
        .req_path("/socket.io")
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .max_payload(MAX_PAYLOAD)
        // Over WebSocket too (socketioxide's defaults: 16 MiB frames, 64 MiB messages, per
        // connection, before any API key is checked). tungstenite refuses a frame from its header.
        .ws_max_frame_size(MAX_PAYLOAD as usize)
        .ws_max_message_size(MAX_PAYLOAD as usize)
        .max_buffer_size(send_queue)
        .build_svc();
    io.ns("/", opened.with(authenticate(shared)));
    let service = ServiceBuilder::new()
        .layer(ValidateRequestHeaderLayer::custom(refuse_other_origins(
            allowed_origins.clone(),
        )))
        .layer(cors(allowed_origins))
        .service(service);
    runtime.block_on(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Some(slot) = Slot::take(&open, max_connections) else {
                            static LIMITED: Limited = Limited::new();
                            LIMITED.warn(|left_out| log::warn!(
                                "socketio: refused a connection from {peer}: \
                                 socketio.max_connections ({max_connections}) are open{}",
                                more(left_out)
                            ));
                            continue;
                        };
                        // Without it small frames wait for delayed ACKs, as on every face.
                        let _ = stream.set_nodelay(true);
                        // The client's address, for every request of the connection.
                        let service = AddExtension::new(service.clone(), Peer(peer));
                        let service = TowerToHyperService::new(service);
                        let stream = Counted { stream, _slot: slot };
                        let serve = |stream: Box<dyn Stream>| async move {
                            let connection = http1::Builder::new()
                                .timer(TokioTimer::new())
                                .serve_connection(TokioIo::new(stream), service)
                                .with_upgrades();
                            if let Err(error) = connection.await {
                                log::debug!("socketio: a connection ended: {error}");
                            }
                        };
                        let Some(acceptor) = &acceptor else {
                            tokio::spawn(serve(Box::new(stream)));
                            continue;
                        };
                        let handshake = acceptor.accept(stream);
                        tokio::spawn(async move {
                            match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(stream)) => serve(Box::new(stream)).await,
                                Ok(Err(error)) => log::debug!(
                                    "socketio: a TLS handshake from {peer} failed: {error}"
                                ),
                                Err(_) => {
                                    log::debug!("socketio: a TLS handshake from {peer} timed out")
                                }
                            }
                        });
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: do not spin.
                        log::warn!("socketio: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        drop(listener);
        // Each transport gets Engine.IO's close packet, on which a client reconnects by itself
        // (after a Socket.IO disconnect packet it would not). A client that does not read is
        // cut off after `DRAIN`.
        if tokio::time::timeout(DRAIN, io.close()).await.is_err() {
            log::debug!("socketio: some transports did not close in time at shutdown");
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Refuses (403) a request from a page whose origin is not in `socketio.allowed_origins`.
fn refuse_other_origins<B, Body: Default>(
    allowed: Option<Arc<[String]>>,
) -> impl FnMut(&mut hyper::Request<B>) -> Result<(), hyper::Response<Body>> + Clone {
    move |request| {
        let origin = request.headers().get(hyper::header::ORIGIN);
        if origins::permits(allowed.as_deref(), origin.map(|origin| origin.as_bytes())) {
            return Ok(());
        }
        static LIMITED: Limited = Limited::new();
        LIMITED.warn(|left_out| {
            log::warn!(
                "socketio: refused a request: its page's origin {origin:?} is not in \
                 socketio.allowed_origins{}",
                more(left_out)
            )
        });
        let mut refused = hyper::Response::new(Body::default());
        *refused.status_mut() = hyper::StatusCode::FORBIDDEN;
        Err(refused)
    }
}

/// CORS as HoloBridge answers it (every origin echoed, credentials allowed), or for the allowed
/// origins only.
fn cors(allowed: Option<Arc<[String]>>) -> CorsLayer {
    let cors = CorsLayer::very_permissive();
    match allowed {
        None => cors,
        Some(allowed) => cors.allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins::permits(Some(&allowed), Some(origin.as_bytes()))
        })),
    }
}
/// A connection's byte stream: [`Counted`], plain or under TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// A connection's stream and its slot among `socketio.max_connections`: the slot is released
/// when the stream is dropped, after an upgrade to WebSocket too (the upgraded connection owns
/// the stream), and under TLS too (the TLS stream owns it).
struct Counted {
    stream: tokio::net::TcpStream,
    _slot: Slot,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Encodes an event as its Socket.IO payloads: `discord`, and `interaction:create` for an
/// interaction in a guild; nothing for an event whose source is not `discord`.
struct Encoder;

impl Encode for Encoder {
    fn encode(&self, event: &Event) -> Frame {
        let payloads = protocol::payloads(event);
        if payloads.is_empty() {
            return Frame::Nothing;
        }
        let parts: Vec<_> = payloads
            .into_iter()
            .filter_map(|(name, json)| match RawValue::from_string(json) {
                Ok(payload) => Some((name, payload)),
                Err(error) => {
                    log::error!("socketio: an encoded payload is not JSON: {error}");
                    None
                }
            })
            .collect();
        Frame::Payloads(parts.into())
    }
}

/// What every socket of the face shares.
struct Shared {
    keys: ApiKeys,
    registry: Addr<Registry>,
    engine: Addr<RuleEngine>,
    /// The face's runtime, for work that must wait (a disconnect that did not fit).
    runtime: tokio::runtime::Handle,
}

/// The configured API keys, by SHA-256 digest.
struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    fn new(keys: &[Secret]) -> ApiKeys {
        ApiKeys(
            keys.iter()
                .map(|key| Sha256::digest(key.expose().as_bytes()).into())
                .collect(),
        )
    }

    /// Whether `key` is one of them, compared in constant time with every key (no early exit).
    fn contains(&self, key: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.0
            .iter()
            .fold(0u8, |found, known| found | known.ct_eq(&digest).unwrap_u8())
            == 1
    }
}

/// Why a client was refused at connect: the message its `connect_error` carries.
#[derive(Debug)]
struct AuthError(&'static str);

impl std::fmt::Display for AuthError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.0)
    }
}

fn check_key(keys: &ApiKeys, auth: &Value) -> Result<(), AuthError> {
    match auth.get("apiKey") {
        None | Some(Value::Null) => Err(AuthError("Missing API key")),
        Some(Value::String(key)) if key.is_empty() => Err(AuthError("Missing API key")),
        Some(Value::String(key)) if keys.contains(key) => Ok(()),
        Some(_) => Err(AuthError("Invalid API key")),
    }
}

/// The connect middleware: checks `auth.apiKey`, then registers the socket with the registry and
/// its handlers, all before socketioxide confirms the connection (so the client cannot emit
/// before the handlers exist).
fn authenticate(
    shared: Arc<Shared>,
) -> impl Fn(
    SocketRef,
    TryData<Value>,
) -> futures_util::future::BoxFuture<'static, Result<(), AuthError>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let shared = shared.clone();
        Box::pin(async move {
            if let Err(refused) = check_key(&shared.keys, &auth.unwrap_or(Value::Null)) {
                log::info!("socketio: refused a client: {}", refused.0);
                return Err(refused);
            }
            let state = Arc::new(State::default());
            let outlet = SocketOutlet {
                socket: socket.clone(),
                state: state.clone(),
                runtime: shared.runtime.clone(),
            };
            let connect = Connect {
                face: FaceKind::Socketio,
                outlet: Box::new(outlet),
            };
            let session = match shared.registry.send(connect).await {
                Ok(session) => session,
                Err(error) => {
                    log::error!("socketio: the registry is not answering: {error}");
                    return Err(AuthError("Internal error"));
                }
            };
            let connection = Arc::new(Connection {
                shared,
                session,
                state,
                guilds: Mutex::default(),
            });
            connection.handle(&socket);
            // The interest is set once the socket is connected (`opened`): no event is offered
            // to a socket that cannot take it yet.
            socket.extensions.insert(connection);
            log::debug!("socketio session {session}: registered ({})", socket.id);
            Ok(())
        })
    }
}

/// The namespace's connect handler, run once the socket is connected: it starts receiving.
async fn opened(socket: SocketRef) {
    if let Some(connection) = socket.extensions.get::<Arc<Connection>>() {
        connection.state.opened.store(true, Ordering::Release);
        connection.record_interest(&connection.guilds.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Whether the client asked for an acknowledgement (`AckSender` does not say).
struct HasAck(bool);

impl<A: Adapter> FromMessageParts<A> for HasAck {
    type Error = Infallible;

    fn from_message_parts(
        _: &Arc<Socket<A>>,
        _: &mut SioValue,
        ack_id: &Option<i64>,
    ) -> Result<HasAck, Infallible> {
        Ok(HasAck(ack_id.is_some()))
    }
}

/// One socket's state.
struct Connection {
    shared: Arc<Shared>,
    session: SessionId,
    state: Arc<State>,
    /// The guilds joined.
    guilds: Mutex<BTreeSet<String>>,
}

/// What the socket's outlet knows of its life.
struct State {
    /// The socket was connected (after its connect middleware).
    opened: AtomicBool,
    registered: Instant,
}

impl Default for State {
    fn default() -> State {
        State {
            opened: AtomicBool::new(false),
            registered: Instant::now(),
        }
    }
}

impl Connection {
    /// Tells the registry what the socket wants: `discord` events without a room, and those of
    /// its `guilds`. Queued at once (and under the guilds' lock, so in the order decided): a
    /// reply sent after it follows it for every later event.
    fn record_interest(&self, guilds: &BTreeSet<String>) {
        let mut interest = Interest::default();
        interest.add(Room::Without, "discord", ANY);
        for guild in guilds {
            interest.add(Room::Exactly(guild), "discord", ANY);
        }
        self.shared.registry.do_send(SetInterest {
            session: self.session,
            interest,
            recorded: None,
        });
    }

    /// Registers the socket's event handlers. They are plain closures: their body runs as each
    /// packet is dispatched, so one socket's packets are handled in arrival order.
    fn handle(self: &Arc<Self>, socket: &SocketRef) {
        let connection = self.clone();
        socket.on(
            "subscribe",
            move |socket: SocketRef, TryData(payload): TryData<Value>| {
                connection.subscribe(&socket, payload.ok().as_ref(), true);
                std::future::ready(())
            },
        );
        let connection = self.clone();
        socket.on(
            "unsubscribe",
            move |socket: SocketRef, TryData(payload): TryData<Value>| {
                connection.subscribe(&socket, payload.ok().as_ref(), false);
                std::future::ready(())
            },
        );
        let connection = self.clone();
        socket.on(
            "inject",
            move |socket: SocketRef,
                  HasAck(has_ack): HasAck,
                  ack: AckSender,
                  TryData(payload): TryData<Value>| {
                connection.inject(&socket, payload.ok().as_ref(), has_ack.then_some(ack));
                std::future::ready(())
            },
        );
        let connection = self.clone();
        socket.on_disconnect(move || {
            log::debug!("socketio session {}: closed", connection.session);
            connection.shared.registry.do_send(Disconnect {
                session: connection.session,
            });
            std::future::ready(())
        });
    }

    /// `subscribe` (join) or `unsubscribe` (leave) guilds, then the answer.
    fn subscribe(&self, socket: &SocketRef, payload: Option<&Value>, join: bool) {
        let ids = match protocol::guild_ids(payload) {
            Ok(ids) => ids,
            Err(refusal) => return emit(socket, "error", &refusal.error()),
        };
        let (answer, ids) = if join {
            ("subscribed", protocol::joined(&ids))
        } else {
            ("unsubscribed", ids)
        };
        {
            let mut guilds = self.guilds.lock().unwrap_or_else(|e| e.into_inner());
            let mut changed = guilds.clone();
            for id in &ids {
                if join {
                    changed.insert(id.clone());
                } else {
                    changed.remove(id);
                }
            }
            if changed.len() > protocol::MAX_GUILDS {
                return emit(socket, "error", &protocol::TOO_MANY.error());
            }
            if changed != *guilds {
                self.record_interest(&changed);
                *guilds = changed;
            }
        }
        emit(socket, answer, &json!({ "guildIds": ids }));
    }

    /// `inject`: the acknowledgement (or an `error` event) first, then the event to the engine.
    fn inject(&self, socket: &SocketRef, payload: Option<&Value>, ack: Option<AckSender>) {
        match (protocol::injected(payload), ack) {
            (Ok(event), ack) => {
                if let Some(ack) = ack {
                    let reply = json!({"status": "ok", "eventId": event.id});
                    if let Err(error) = ack.send(&reply) {
                        log::debug!("socketio session {}: ack not sent: {error}", self.session);
                    }
                }
                self.shared.engine.do_send(engine::Inject(event));
            }
            (Err(refusal), Some(ack)) => {
                if let Err(error) = ack.send(&refusal.ack()) {
                    log::debug!("socketio session {}: ack not sent: {error}", self.session);
                }
            }
            (Err(refusal), None) => emit(socket, "error", &refusal.error()),
        }
    }
}

/// Emits to one socket; a socket whose queue is full or closed misses the reply.
fn emit(socket: &SocketRef, event: &str, payload: &Value) {
    if let Err(error) = socket.emit(event, payload) {
        log::debug!("socketio: `{event}` not sent to {}: {error}", socket.id);
    }
}

/// The address of the client whose request this is.
#[derive(Debug, Clone, Copy)]
struct Peer(std::net::SocketAddr);

/// A socket's end of the registry's fan-out: its bounded packet queue.
struct SocketOutlet {
    socket: SocketRef,
    state: Arc<State>,
    runtime: tokio::runtime::Handle,
}

/// How long a registered socket may take to be connected before the registry forgets it (its
/// client went away during the connect, and socketioxide never tells).
const NEVER_OPENED: Duration = Duration::from_secs(CONNECT_TIMEOUT.as_secs() + 15);

impl Outlet for SocketOutlet {
    fn offer(&self, message: Outgoing) -> Result<(), Refused> {
        let parts = match message {
            Outgoing::Event(_, Frame::Payloads(parts)) => parts,
            Outgoing::Event(..) => return Ok(()),
            // Socket.IO keeps its own ping; the registry's heartbeat only finds sockets gone.
            Outgoing::Heartbeat => return self.alive(),
            Outgoing::Close(why) => {
                self.close(why);
                return Ok(());
            }
        };
        for (name, payload) in parts.iter() {
            // Encoded once for every socket; the packet copies it.
            match self.socket.emit(*name, &**payload) {
                Ok(()) => {}
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    return Err(Refused::Full)
                }
                Err(SendError::Socket(SocketError::Closed)) => return Err(Refused::Closed),
                Err(error) => log::error!("socketio: cannot encode a packet: {error}"),
            }
        }
        Ok(())
    }

    fn peer(&self) -> Option<std::net::SocketAddr> {
        let Peer(peer) = self.socket.req_parts().extensions.get::<Peer>()?;
        Some(*peer)
    }

    fn close(&self, why: Closing) {
        if why == Closing::ShuttingDown {
            // The face's own shutdown closes every transport (see `serve`).
            return;
        }
        let socket = self.socket.clone();
        if let Err(SocketError::InternalChannelFull) = socket.clone().disconnect() {
            // The queue is full: try again as it drains, for as long as the client's ping may
            // take to time out (socketioxide closes the connection then anyway).
            log::debug!(
                "socketio: {} not yet disconnected ({why:?}): its queue is full",
                socket.id
            );
            self.runtime.spawn(async move {
                for _ in 0..(PING_INTERVAL + PING_TIMEOUT).as_millis() / 50 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if !matches!(
                        socket.clone().disconnect(),
                        Err(SocketError::InternalChannelFull)
                    ) {
                        return;
                    }
                }
            });
        }
    }
}

impl SocketOutlet {
    /// `Closed` once a connected socket is gone, or a registered one was never connected.
    fn alive(&self) -> Result<(), Refused> {
        let opened = self.state.opened.load(Ordering::Acquire);
        let gone = if opened {
            !self.socket.connected()
        } else {
            self.state.registered.elapsed() > NEVER_OPENED
        };
        if gone {
            Err(Refused::Closed)
        } else {
            Ok(())
        }
    }
}
