//! The VMSC Custom WebSocket face (docs/custom.md part 1), for game engines, chatbots and overlays
//! written against VMSC.
//!
//! [`upgrade`] authenticates the upgrade (bearer header or `?token=`), takes a connection slot,
//! and starts a session whose face is a [`Connection`]: it rate-limits every data message,
//! injects events (acknowledging before the engine has them), force-runs rules by id or name,
//! and keeps the connection's subscription filter with the registry.

pub mod protocol;

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::FutureExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::json;

use self::protocol::{ErrorCode, Refusal, Request};
use crate::config::Secret;
use crate::engine::{self, EngineError, RuleEngine};
use crate::event::{normalise, Event};
use crate::faces::{listen, listening, origins, tokens, Setup, Slot, StartError, Started};
use crate::log_limit::{more, Limited};
use crate::registry::{set_interest, Encode, FaceKind, Frame, Interest, Registry};
use crate::session::{self, Close, Face, Handled, Link, Out, SessionLimits};

/// Starts the face, if enabled: the token (generated and stored on first start when none is
/// configured), the encoder, the listener, and the banner's token line.
pub async fn start(setup: &Setup<'_>) -> Result<Option<Started>, StartError> {
    let config = &setup.config.custom;
    if !config.listener.enabled {
        return Ok(None);
    }
    let (token, provenance) =
        tokens::kept(setup.store, TOKEN_KEY, &config.token, "custom.token").await?;
    let note = format!(
        "custom token {} ({provenance}; send it as Authorization: Bearer or ?token=)",
        token.expose()
    );
    setup.install(FaceKind::Custom, Encoder).await?;
    let shared = web::Data::new(Arc::new(Shared {
        token,
        max_connections: config.max_connections as usize,
        rate_limit_per_second: NonZeroU32::new(config.rate_limit_per_second)
            .expect("the configuration refuses a rate of 0"),
        open: Arc::default(),
        registry: setup.registry.clone(),
        engine: setup.engine.clone(),
        limits: setup.limits.clone(),
        allowed_origins: config.listener.allowed_origins.clone(),
    }));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .default_service(web::to(upgrade))
    })
    .on_connect(session::peer::keep);
    let bound = listen(server, "custom", &config.listener, "ws", "/")?;
    let mut started = listening("custom", bound);
    started.notes.push(note);
    Ok(Some(started))
}

/// Encodes events as this face's `event` frame.
struct Encoder;

impl Encode for Encoder {
    fn encode(&self, event: &Event) -> Frame {
        Frame::Text(protocol::encode_event(event))
    }
}

/// What every connection of the face shares.
pub struct Shared {
    pub token: Secret,
    pub max_connections: usize,
    pub rate_limit_per_second: NonZeroU32,
    /// Authenticated connections open now.
    pub open: Arc<AtomicUsize>,
    pub registry: Addr<Registry>,
    pub engine: Addr<RuleEngine>,
    pub limits: SessionLimits,
    /// The pages that may connect (`custom.allowed_origins`); `None`: every page.
    pub allowed_origins: Option<Vec<String>>,
}

/// Whether a connection may talk: refused, over the cap, or holding a slot.
enum Access {
    Unauthorized,
    Full,
    Open { _slot: Slot },
}

/// The key of the generated token in the store's `meta` tree.
pub const TOKEN_KEY: &str = "custom.token";

/// The upgrade handler (any path).
pub async fn upgrade(
    request: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Arc<Shared>>,
) -> Result<HttpResponse, actix_web::Error> {
    if let Some(refused) = origins::refuse("custom", shared.allowed_origins.as_deref(), &request) {
        return Ok(refused);
    }
    let shared = shared.get_ref().clone();
    let authorized = tokens::bearer(&request)
        .or_else(|| tokens::query(&request))
        .is_some_and(|candidate| !candidate.is_empty() && shared.token.matches(&candidate));
    let access = if !authorized {
        static LIMITED: Limited = Limited::new();
        LIMITED.warn(|left_out| {
            log::warn!(
                "custom: refused a connection from {:?}: invalid or missing token{}",
                request.peer_addr(),
                more(left_out)
            )
        });
        Access::Unauthorized
    } else {
        match Slot::take(&shared.open, shared.max_connections) {
            Some(slot) => Access::Open { _slot: slot },
            None => {
                static LIMITED: Limited = Limited::new();
                LIMITED.warn(|left_out| {
                    log::warn!(
                        "custom: refused a connection from {:?}: {} connections open{}",
                        request.peer_addr(),
                        shared.max_connections,
                        more(left_out)
                    )
                });
                Access::Full
            }
        }
    };
    let connection = Connection {
        limiter: RateLimiter::direct(Quota::per_second(shared.rate_limit_per_second)),
        access,
        shared: shared.clone(),
    };
    session::start(
        connection,
        shared.registry.clone(),
        shared.limits.clone(),
        &request,
        stream,
    )
}

/// One connection's state.
pub struct Connection {
    shared: Arc<Shared>,
    access: Access,
    limiter: DefaultDirectRateLimiter,
}

fn frame(text: String) -> Out {
    Out::Text(text.into())
}

fn refuse(Refusal(code, message): Refusal) -> Handled {
    Handled::Now(vec![frame(protocol::error(code, message))])
}

/// An internal failure, logged here and answered without its details.
fn internal(error: impl std::fmt::Debug) -> Out {
    log::error!("custom: a request failed inside Switchboard: {error:?}");
    frame(protocol::error(ErrorCode::InvalidPayload, "Internal error"))
}

impl Face for Connection {
    const KIND: FaceKind = FaceKind::Custom;
    const NAME: &'static str = "custom";

    fn opened(&mut self, _: &Link) -> Handled {
        let close = |(code, reason): (u16, &'static str)| Out::Close(Close { code, reason });
        Handled::Now(match self.access {
            Access::Open { .. } => Vec::new(),
            Access::Unauthorized => vec![
                frame(protocol::error(
                    ErrorCode::AuthFailed,
                    "Invalid or missing token",
                )),
                close(protocol::CLOSE_UNAUTHORIZED),
            ],
            Access::Full => vec![close(protocol::CLOSE_TRY_AGAIN_LATER)],
        })
    }

    fn authenticated(&self) -> bool {
        matches!(self.access, Access::Open { .. })
    }

    fn admit(&mut self, _: bool, _: &Link) -> Option<Vec<Out>> {
        if self.limiter.check().is_ok() {
            return None;
        }
        let rate = self.shared.rate_limit_per_second;
        Some(vec![frame(protocol::error(
            ErrorCode::RateLimited,
            format!("Rate limit exceeded: {rate} messages per second"),
        ))])
    }

    fn text(&mut self, text: &str, link: &Link) -> Handled {
        match protocol::parse(text) {
            Ok(Request::InjectEvent(event)) => self.inject(*event),
            Ok(Request::TriggerRule { id, name }) => self.trigger_rule(id, name),
            Ok(Request::Subscribe {
                event_types,
                sources,
            }) => self.subscribe(event_types, sources, link),
            Err(refusal) => refuse(refusal),
        }
    }

    fn binary(&mut self, _: usize, _: &Link) -> Handled {
        refuse(Refusal(
            ErrorCode::InvalidPayload,
            "Binary frames are not supported; send JSON in text frames".into(),
        ))
    }

    fn too_big(&mut self, limit: usize, _: bool, _: &Link) -> Handled {
        refuse(Refusal(
            ErrorCode::InvalidPayload,
            format!("Message exceeds {limit} bytes"),
        ))
    }
}

impl Connection {
    /// Acks first, then hands the event to the engine, so the ack precedes the event's broadcast.
    fn inject(&self, event: Event) -> Handled {
        let ack = json!({"action": "injectEvent", "status": "ok", "eventId": event.id}).to_string();
        self.shared.engine.do_send(engine::Inject(event));
        Handled::Now(vec![frame(ack)])
    }

    fn trigger_rule(&self, id: Option<String>, name: Option<String>) -> Handled {
        let engine = self.shared.engine.clone();
        Handled::Later(
            async move {
                let out = match engine.send(engine::TriggerRule { id, name }).await {
                    Ok(Ok((id, name))) => frame(json!({"action": "triggerRule", "status": "ok", "ruleId": id, "ruleName": name}).to_string()),
                    Ok(Err(EngineError::RuleNotFound(message))) => frame(protocol::error(ErrorCode::RuleNotFound, message)),
                    Ok(Err(error)) => internal(error),
                    Err(error) => internal(error),
                };
                vec![out]
            }
            .boxed_local(),
        )
    }

    fn subscribe(&self, event_types: Vec<String>, sources: Vec<String>, link: &Link) -> Handled {
        let set = |names: &[String]| -> Option<BTreeSet<String>> {
            (!names.is_empty()).then(|| names.iter().map(|name| normalise(name)).collect())
        };
        let interest = Interest::every_pair_of(set(&sources).as_ref(), set(&event_types).as_ref());
        let ack = json!({"action": "subscribe", "status": "ok", "eventTypes": event_types, "sources": sources}).to_string();
        let session = link.id;
        let recorded = set_interest(&self.shared.registry, session, interest);
        Handled::Later(
            async move {
                match recorded.await {
                    Ok(()) => vec![frame(ack)],
                    Err(error) => vec![internal(error)],
                }
            }
            .boxed_local(),
        )
    }
}
