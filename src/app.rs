//! Starting and stopping Switchboard: opens the store, loads the documents, starts the registry
//! and the engine, binds every enabled face, prints the banner (ending with `ready`), and on
//! SIGINT/SIGTERM closes every session with 1001 before the listeners stop.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::{dev::ServerHandle, web, App, HttpServer};

use std::num::NonZeroU32;

use crate::config::{Config, Secret};
use crate::engine::{watcher, RuleEngine, Setup};
use crate::faces::streamerbot::{self, catalogue::Catalogue};
use crate::faces::{custom, http, Encoders};
use crate::outbound::{self, OutboundManager, Start};
use crate::registry::{Registry, ShutDown};
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
    #[error("{face}: cannot listen on {bind}")]
    Bind {
        face: &'static str,
        bind: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for a shutdown signal failed")]
    Signal(#[source] std::io::Error),
}

/// A started server: its URLs, and the handles that stop it.
pub struct Running {
    /// (face, URL) in banner order.
    pub urls: Vec<(&'static str, String)>,
    /// The custom face's token, and whether it was generated (not configured).
    custom_token: Option<(Secret, bool)>,
    /// How many documents were loaded, and how many files were refused.
    pub documents: (usize, usize),
    registry: Addr<Registry>,
    outbound: Addr<OutboundManager>,
    servers: Vec<ServerHandle>,
    /// Hot reload of `rules_dir`, while it is held.
    _watcher: Option<watcher::Watcher>,
}

/// How long a graceful stop waits for open connections, in seconds (actix-web's default is 30).
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 1;

/// Starts every enabled face; the returned servers run on the current actix system.
pub async fn start(config: &Config) -> Result<Running, AppError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| AppError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let store = Store::open(&config.data_dir)?;
    let instance_id = store
        .meta_string_or_insert("streamerbot.instanceId", || {
            uuid::Uuid::new_v4().to_string()
        })
        .await?;
    let catalogue = Arc::new(Catalogue::load(store.meta().clone())?);
    let registry = Registry::new(Encoders {
        streamerbot: streamerbot::Encoder {
            catalogue: catalogue.clone(),
        },
    })
    .start();
    let connections = config.outbound.clone();
    let stored_connections = store.table("connections")?;
    let max_frame_bytes = config.limits.max_frame_bytes;
    let outbound = Supervisor::start(move |_| {
        OutboundManager::new(connections, stored_connections, max_frame_bytes)
    });
    let setup = Setup {
        registry: registry.clone(),
        outbound: outbound.clone(),
        catalogue: catalogue.clone(),
        connections: config.outbound.clone(),
        rules_dir: config.rules_dir.clone(),
    };
    let (engine, loaded) = RuleEngine::new(setup, &store).await?;
    let documents = (loaded.documents.documents.len(), loaded.errors.len());
    let engine = engine.start();
    outbound.do_send(Start(engine.clone()));
    let watcher = watcher::watch(&config.rules_dir, engine.clone());
    let limits = SessionLimits {
        max_message_bytes: config.limits.max_frame_bytes,
        send_queue: config.limits.send_queue,
    };

    let mut urls = Vec::new();
    let mut servers = Vec::new();
    if config.http.enabled {
        let shared = web::Data::new(http::Shared {
            engine: engine.clone(),
            outbound: outbound.clone(),
        });
        let max_body = config.limits.max_frame_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .configure(http::routes)
        });
        let (url, handle) = serve(server, "http", config.http.bind, "http", "/")?;
        urls.push(("http", url));
        servers.push(handle);
    }
    let custom_config = &config.custom;
    let mut custom_token = None;
    if custom_config.listener.enabled {
        let token = if custom_config.token.is_empty() {
            Secret(
                store
                    .meta_string_or_insert(custom::TOKEN_KEY, custom::generate_token)
                    .await?,
            )
        } else {
            custom_config.token.clone()
        };
        custom_token = Some((token.clone(), custom_config.token.is_empty()));
        let shared = web::Data::new(Arc::new(custom::Shared {
            token,
            max_connections: custom_config.max_connections as usize,
            rate_limit_per_second: NonZeroU32::new(custom_config.rate_limit_per_second)
                .expect("the configuration refuses a rate of 0"),
            open: Arc::default(),
            registry: registry.clone(),
            engine: engine.clone(),
            limits,
        }));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(custom::upgrade))
        });
        let (url, handle) = serve(server, "custom", custom_config.listener.bind, "ws", "/")?;
        urls.push(("custom", url));
        servers.push(handle);
    }
    let streamerbot_config = &config.streamerbot;
    if streamerbot_config.listener.enabled {
        let shared = web::Data::new(Arc::new(streamerbot::Shared {
            info: streamerbot::protocol::Info::new(instance_id),
            password: streamerbot_config.password.clone(),
            catalogue: catalogue.clone(),
            registry: registry.clone(),
            engine: engine.clone(),
            globals: store.table("globals")?,
            limits,
        }));
        let endpoint = streamerbot_config.endpoint.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route(&endpoint, web::get().to(streamerbot::upgrade))
        });
        let (url, handle) = serve(
            server,
            "streamerbot",
            streamerbot_config.listener.bind,
            "ws",
            &streamerbot_config.endpoint,
        )?;
        urls.push(("streamerbot", url));
        servers.push(handle);
    }
    Ok(Running {
        outbound,
        urls,
        custom_token,
        documents,
        _watcher: watcher,
        registry,
        servers,
    })
}

/// Binds `server` with the settings every listener needs and spawns it.
fn serve<F, I, S, B>(
    server: HttpServer<F, I, S, B>,
    face: &'static str,
    bind: SocketAddr,
    scheme: &str,
    path: &str,
) -> Result<(String, ServerHandle), AppError>
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
    let bind_error = |source| AppError::Bind { face, bind, source };
    let server = server
        // Without it small frames wait for delayed ACKs (measured: p999 ≈ 45 ms).
        .tcp_nodelay(true)
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECONDS)
        .disable_signals()
        .workers(1)
        .bind(bind)
        .map_err(bind_error)?;
    let bound = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(error) = server.await {
            log::error!("{face}: the listener failed: {error}");
        }
    });
    Ok((format!("{scheme}://{bound}{path}"), handle))
}

impl Running {
    /// Closes every session and outbound connection with 1001 and stops the listeners.
    pub async fn stop(self) {
        if let Err(error) = self.registry.send(ShutDown).await {
            log::error!("registry: not answering at shutdown: {error}");
        }
        if let Err(error) = self.outbound.send(outbound::ShutDown).await {
            log::error!("outbound: not answering at shutdown: {error}");
        }
        for server in self.servers {
            server.stop(true).await;
        }
    }
}

/// The banner: version, directories, one line per face, then `ready`.
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
    for (face, url) in &running.urls {
        text.push_str(&format!("  {face:<12} {url}\n"));
    }
    if let Some((token, generated)) = &running.custom_token {
        let origin = if *generated {
            "generated, kept in the data dir"
        } else {
            "from custom.token"
        };
        text.push_str(&format!(
            "  custom token {} ({origin}; send it as Authorization: Bearer or ?token=)\n",
            token.expose()
        ));
    }
    if !config.streamerbot.password.is_empty() {
        text.push_str("  (the streamerbot face asks for the configured password)\n");
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
