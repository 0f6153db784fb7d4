//! The faces: one folder (or file) per wire protocol, each on its own listener.
//!
//! A face exposes a `start` function that installs its encoder with the registry (if it sends
//! events), binds its listener and says what the banner shows ([`Started`]). A WebSocket face
//! implements [`crate::session::Face`] for its connection state, and maps its errors to its wire
//! form in one place. Adding a face is a folder here, a [`FaceKind`] variant if it sends events,
//! and one line in [`start_all`].
//!
//! Faces sit on top: they use the registry, the engine's messages, outbound and the store;
//! nothing below them uses a face.

pub mod astro;
pub mod custom;
pub mod dashboard;
pub mod exposure;
pub mod http;
pub mod origins;
pub mod socketio;
pub mod streamerbot;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::HttpServer;

use crate::config::{Config, Listener};
use crate::engine::RuleEngine;
use crate::names::Names;
use crate::outbound::OutboundManager;
use crate::registry::{Encode, FaceKind, Registry, SetEncoder};
use crate::session::SessionLimits;
use crate::store::{Store, StoreError};
use crate::tls::{self, server::Reloading, TlsError};

/// Why a face could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{face}: cannot listen on {bind}")]
    Bind {
        face: &'static str,
        bind: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{face}: cannot use the TLS files")]
    Tls {
        face: &'static str,
        #[source]
        source: Box<TlsError>,
    },
    #[error("the registry is not answering")]
    Registry(#[from] actix::MailboxError),
    #[error("cannot read the store")]
    Store(#[from] StoreError),
}

impl StartError {
    /// Turns `face`'s TLS error into its start error (for `map_err`).
    pub fn tls(face: &'static str) -> impl FnOnce(TlsError) -> StartError {
        move |source| StartError::Tls {
            face,
            source: Box::new(source),
        }
    }
}

/// What every face starts with.
pub struct Setup<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub names: &'a Arc<Names>,
    pub registry: &'a Addr<Registry>,
    pub engine: &'a Addr<RuleEngine>,
    pub outbound: &'a Addr<OutboundManager>,
    pub limits: SessionLimits,
}

impl Setup<'_> {
    /// Gives the registry `face`'s encoder; call before the face's listener opens.
    pub async fn install(
        &self,
        face: FaceKind,
        encoder: impl Encode + 'static,
    ) -> Result<(), StartError> {
        Ok(self
            .registry
            .send(SetEncoder(face, Box::new(encoder)))
            .await?)
    }
}

/// A started face, as the banner shows it.
pub struct Started {
    pub face: &'static str,
    /// The URL clients connect to.
    pub url: String,
    /// More banner lines (a token, how authentication works, why a face is not available).
    pub notes: Vec<String>,
    /// Stops an actix-web listener.
    pub server: Option<ServerHandle>,
    /// Stops a listener that is not actix-web's (the Socket.IO face's thread): no new client
    /// from then on, every socket disconnected; answers the thread to wait for.
    pub stop: Option<Box<dyn FnOnce() -> std::thread::JoinHandle<()> + Send>>,
    /// Keeps the TLS certificate reloaded while the face runs.
    pub tls: Option<Reloading>,
}

/// Starts every enabled face, in banner order.
pub async fn start_all(setup: &Setup<'_>) -> Result<Vec<Started>, StartError> {
    let mut started = Vec::new();
    started.extend(http::start(setup).await?);
    started.extend(custom::start(setup).await?);
    started.extend(streamerbot::start(setup).await?);
    started.extend(astro::start(setup).await?);
    started.extend(socketio::start(setup).await?);
    Ok(started)
}

/// How long a graceful stop waits for open connections, in seconds (actix-web's default is 30).
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 1;

/// A listener bound by [`listen`].
pub struct Bound {
    /// `scheme://bound-address path`.
    pub url: String,
    pub handle: ServerHandle,
    pub tls: Option<Reloading>,
}

/// Binds `server` with the settings every listener needs, with TLS when `listener` has it,
/// and spawns it. `scheme` is the plain one (`http`, `ws`); with TLS the URL gets its secure
/// form (`https`, `wss`).
pub fn listen<F, I, S, B>(
    server: HttpServer<F, I, S, B>,
    face: &'static str,
    listener: &Listener,
    scheme: &str,
    path: &str,
) -> Result<Bound, StartError>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: actix_service::IntoServiceFactory<S, actix_http::Request>,
    S: actix_web::dev::ServiceFactory<
            actix_http::Request,
            Config = actix_web::dev::AppConfig,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    S::InitError: std::fmt::Debug,
    B: actix_web::body::MessageBody + 'static,
{
    let bind = listener.bind;
    let bind_error = |source| StartError::Bind { face, bind, source };
    let server = server
        // Without it small frames wait for delayed ACKs (measured: p999 ≈ 45 ms).
        .tcp_nodelay(true)
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECONDS)
        .disable_signals()
        .workers(1);
    let (server, tls, scheme) = match &listener.tls {
        None => (
            server.bind(bind).map_err(bind_error)?,
            None,
            scheme.to_owned(),
        ),
        Some(files) => {
            // actix-web offers `h2` and `http/1.1` by ALPN itself.
            let (config, reloading) =
                tls::server::config(face, files, &[]).map_err(StartError::tls(face))?;
            let server = server
                .tls_handshake_timeout(tls::HANDSHAKE_TIMEOUT)
                // Handshakes in progress at once (actix's default, 256, let 256 connections
                // that never speak stop the face until the timeout dropped them).
                .max_connection_rate(tls::MAX_HANDSHAKES)
                .bind_rustls_0_23(bind, config)
                .map_err(bind_error)?;
            (server, Some(reloading), format!("{scheme}s"))
        }
    };
    let bound = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(error) = server.await {
            log::error!("{face}: the listener failed: {error}");
        }
    });
    Ok(Bound {
        url: format!("{scheme}://{bound}{path}"),
        handle,
        tls,
    })
}

/// A face listening as `bound`.
pub fn listening(face: &'static str, bound: Bound) -> Started {
    Started {
        face,
        url: bound.url,
        notes: Vec::new(),
        server: Some(bound.handle),
        stop: None,
        tls: bound.tls,
    }
}

/// One of a face's connection slots (`max_connections`); released when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a slot atomically, unless `max` are taken.
    pub fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
            (taken < max).then_some(taken + 1)
        })
        .ok()
        .map(|_| Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
