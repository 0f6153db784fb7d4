//! Starting and stopping Switchboard: opens the store, loads the documents, starts the registry
//! and the engine, binds every enabled face, prints the banner (ending with `ready`), and on
//! SIGINT/SIGTERM closes every session with 1001 before the listeners stop.

use std::sync::Arc;

use actix::prelude::*;
use actix_web::dev::ServerHandle;

use crate::config::Config;
use crate::engine::chain::ChainLimits;
use crate::engine::core::RunLimits;
use crate::engine::sandbox::TemplateLimits;
use crate::engine::{watcher, RuleEngine, Setup as EngineSetup};
use crate::faces::{self, StartError, Started};
use crate::names::Names;
use crate::outbound::{self, OutboundManager, Start};
use crate::registry::{Registry, ShutDown};
use crate::session::guard::Budget;
use crate::session::SessionLimits;
use crate::store::{Store, StoreError};

/// Why Switchboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Face(#[from] StartError),
    #[error("waiting for a shutdown signal failed")]
    Signal(#[source] std::io::Error),
}

/// A started server: its faces, and the handles that stop it.
pub struct Running {
    /// Every enabled face, in banner order.
    pub faces: Vec<Started>,
    /// How many documents were loaded, and how many files were refused.
    pub documents: (usize, usize),
    registry: Addr<Registry>,
    outbound: Addr<OutboundManager>,
    /// Hot reload of `rules_dir`, while it is held.
    _watcher: Option<watcher::Watcher>,
}

/// Starts every enabled face; the returned servers run on the current actix system.
pub async fn start(config: &Config) -> Result<Running, AppError> {
    // Before anything counts: the handles made from now on count into the recorder.
    crate::metrics::install();
    raise_file_limit();
    crate::store::create_dir(&config.data_dir).map_err(|source| AppError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let store = Store::open(&config.data_dir)?;
    let names = Arc::new(Names::load(store.meta().clone())?);
    let registry = Registry::default().start();
    let connections = config.outbound.clone();
    let stored_connections = store.table("connections")?;
    let limits = config.limits.clone();
    let outbound =
        Supervisor::start(move |_| OutboundManager::new(connections, stored_connections, limits));
    let setup = EngineSetup {
        registry: registry.clone(),
        outbound: outbound.clone(),
        names: names.clone(),
        connections: config.outbound.clone(),
        rules_dir: config.rules_dir.clone(),
        limits: RunLimits {
            chain: ChainLimits {
                events: config.limits.chain_events,
                runs: config.limits.chain_runs,
            },
            variable_bytes: config.limits.variable_bytes,
        },
        templates: TemplateLimits {
            fuel: config.limits.template_fuel,
            bytes: config.limits.template_bytes,
        },
    };
    let (engine, loaded) = RuleEngine::new(setup, &store).await?;
    let documents = (loaded.documents.documents.len(), loaded.errors.len());
    let engine = engine.start();
    outbound.do_send(Start(engine.clone().recipient()));
    let watcher = watcher::watch(&config.rules_dir, engine.clone());
    let setup = faces::Setup {
        config,
        store: &store,
        names: &names,
        registry: &registry,
        engine: &engine,
        outbound: &outbound,
        limits: SessionLimits {
            max_message_bytes: config.limits.max_frame_bytes,
            send_queue: config.limits.send_queue,
            unauthenticated: Arc::new(Budget::new(config.limits.unauthenticated_bytes)),
            close_timeout: config.limits.close_timeout,
        },
    };
    let faces = faces::start_all(&setup).await?;
    Ok(Running {
        faces,
        documents,
        registry,
        outbound,
        _watcher: watcher,
    })
}

impl Running {
    /// Stops accepting connections, closes every session and outbound connection with 1001, and
    /// stops the listeners.
    pub async fn stop(self) {
        let (servers, others): (Vec<_>, Vec<_>) = self
            .faces
            .into_iter()
            .map(|face| (face.server, face.stop))
            .unzip();
        let servers: Vec<ServerHandle> = servers.into_iter().flatten().collect();
        for server in &servers {
            server.pause().await;
        }
        // Every session first gets its protocol's goodbye (1001; the Socket.IO face closes its
        // transports itself); the listener threads stop after, so as not to cut one short.
        if let Err(error) = self.registry.send(ShutDown).await {
            log::error!("registry: not answering at shutdown: {error}");
        }
        let threads: Vec<_> = others.into_iter().flatten().map(|stop| stop()).collect();
        if let Err(error) = self.outbound.send(outbound::ShutDown).await {
            log::error!("outbound: not answering at shutdown: {error}");
        }
        for server in servers {
            server.stop(true).await;
        }
        // Each thread ends within its runtime's shutdown timeout; waited for off this thread.
        let joined = actix_rt::task::spawn_blocking(move || {
            for thread in threads {
                if thread.join().is_err() {
                    log::error!("a listener thread panicked");
                }
            }
        });
        if joined.await.is_err() {
            log::error!("could not wait for the listener threads");
        }
    }
}

/// The banner: version, directories, one line per face (and its notes), then `ready`.
fn banner(config: &Config, running: &Running) -> String {
    let (loaded, refused) = running.documents;
    let refused = if refused > 0 {
        format!(", {refused} file(s) refused: see the log")
    } else {
        String::new()
    };
    let mut text = format!(
        "Switchboard {}\n  data dir   {}\n  rules dir  {} ({loaded} documents{refused})\n",
        env!("CARGO_PKG_VERSION"),
        config.data_dir.display(),
        config.rules_dir.display()
    );
    for face in &running.faces {
        text.push_str(&format!("  {:<12} {}\n", face.face, face.url));
        for note in &face.notes {
            text.push_str(&format!("  {note}\n"));
        }
    }
    for unguarded in faces::exposure::unguarded(config) {
        let url = running
            .faces
            .iter()
            .find(|face| face.face == unguarded.face)
            .map_or("", |face| face.url.as_str());
        text.push_str(&format!("  {}\n", unguarded.warning(url)));
    }
    text.push_str("ready");
    text
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), AppError> {
    let running = start(&config).await?;
    println!("{}", banner(&config, &running));
    wait_for_signal().await.map_err(AppError::Signal)?;
    log::info!("shutting down");
    running.stop().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use actix_rt::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio_select(actix_rt::signal::ctrl_c(), terminate.recv()).await
}

#[cfg(unix)]
async fn tokio_select(
    interrupt: impl std::future::Future<Output = std::io::Result<()>>,
    terminate: impl std::future::Future<Output = Option<()>>,
) -> std::io::Result<()> {
    use futures_util::future::{select, Either};
    futures_util::pin_mut!(interrupt, terminate);
    match select(interrupt, terminate).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    actix_rt::signal::ctrl_c().await
}

/// Raises the soft limit on open files to the hard one: each WebSocket connection takes two
/// descriptors (its socket and the duplicate kept to reset it, see `session::peer`), and the
/// usual soft limits (1,024 on Linux, 256 on macOS) would halve what the hard limit allows.
fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => log::debug!("open files limit: {limit}"),
        Err(error) => log::warn!("cannot raise the open files limit: {error}"),
    }
}
