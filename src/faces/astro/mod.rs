//! The StreamElements Astro face (docs/astro.md): overlays and widgets written for Astro
//! subscribe to topics in rooms and receive Switchboard's events as Astro notifications.
//!
//! [`start`] installs the [`Encoder`] (one message per topic an event feeds, encoded once for
//! every subscriber) and listens on every path. Each connection is a [`Connection`]: it checks
//! each `subscribe` against the configured tokens, keeps its (topic, room) subscriptions, tells
//! the registry which event types in which rooms feed them, and writes only the messages of the
//! topics it holds. At shutdown it hands its client a reconnect token that restores the
//! subscriptions after a restart.
//!
//! The pure parts live in their own modules: the wire format ([`protocol`]), the topics and how
//! events are routed to them ([`topics`]), the configured tokens ([`tokens`]) and the reconnect
//! tokens ([`reconnect`]).

pub mod protocol;
pub mod reconnect;
mod subscriptions;
pub mod tokens;
pub mod topics;

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::FutureExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use self::protocol::{Failure, Request};
use self::reconnect::{Keys, Sub};
use self::subscriptions::Subscriptions;
use self::tokens::Tokens;
use self::topics::Topic;
use crate::event::Event;
use crate::faces::{listen, listening, origins, Setup, StartError, Started};
use crate::registry::{
    set_interest, Closing, Encode, FaceKind, Frame, Interest, Registry, Room, SetInterest, ANY,
};
use crate::session::{self, Close, Face, Handled, Link, Out, SessionLimits};

/// The `meta` key of the secret that signs reconnect tokens.
const SECRET_KEY: &str = "astro.reconnectSecret";
/// How long recording a subscription may take before the client is told to try again.
const DEADLINE: Duration = Duration::from_secs(5);
/// The rate limit: a bucket of 100 requests, refilled at 10 per second.
const BURST: u32 = 100;
const PER_SECOND: u32 = 10;
/// Closes a connection that came with an invalid reconnect token.
const CLOSE_INVALID_RECONNECT: Close = Close {
    code: 1008,
    reason: "Invalid reconnect token",
};

/// Starts the face, if enabled.
pub async fn start(setup: &Setup<'_>) -> Result<Option<Started>, StartError> {
    let config = &setup.config.astro;
    if !config.listener.enabled {
        return Ok(None);
    }
    let secret = setup
        .store
        .meta_string_or_insert(SECRET_KEY, || STANDARD.encode(reconnect::new_secret()))
        .await?;
    let secret = STANDARD.decode(&secret).unwrap_or_else(|_| {
        log::error!(
            "astro: the stored reconnect secret is unreadable; its tokens cannot be checked"
        );
        secret.into_bytes()
    });
    setup.install(FaceKind::Astro, Encoder).await?;
    let shared = web::Data::new(Arc::new(Shared {
        tokens: Tokens::new(&config.tokens),
        keys: Keys::new(&secret),
        registry: setup.registry.clone(),
        limits: setup.limits.clone(),
        allowed_origins: config.listener.allowed_origins.clone(),
    }));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .default_service(web::to(upgrade))
    })
    .on_connect(session::peer::keep);
    let bound = listen(server, "astro", &config.listener, "ws", "/")?;
    let mut started = listening("astro", bound);
    if config.tokens.is_empty() {
        started.notes.push(
            "(no [[astro.tokens]] configured: the astro face refuses every subscribe)".into(),
        );
    }
    Ok(Some(started))
}

/// Encodes an event as one notification per topic it feeds (none without a room).
struct Encoder;

impl Encode for Encoder {
    fn encode(&self, event: &Event) -> Frame {
        let notifications = topics::route(event);
        let Some(room) = event.room.as_deref().filter(|_| !notifications.is_empty()) else {
            return Frame::Nothing;
        };
        let parts: Vec<_> = notifications
            .iter()
            .map(|notification| {
                let name = notification.topic.name;
                let text = protocol::notification(name, room, event.timestamp, &notification.data);
                (name, text.into())
            })
            .collect();
        Frame::Labelled(parts.into())
    }
}

/// What every connection of the face shares.
pub struct Shared {
    tokens: Tokens,
    keys: Keys,
    registry: Addr<Registry>,
    limits: SessionLimits,
    /// The pages that may connect (`astro.allowed_origins`); `None`: every page.
    allowed_origins: Option<Vec<String>>,
}

/// The upgrade handler (any path): `?reconnect_token=` is checked here, its verdict applied
/// once the session is registered.
pub async fn upgrade(
    request: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Arc<Shared>>,
) -> Result<HttpResponse, actix_web::Error> {
    if let Some(refused) = origins::refuse("astro", shared.allowed_origins.as_deref(), &request) {
        return Ok(refused);
    }
    let shared = shared.get_ref().clone();
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    let restore = query
        .into_iter()
        .find(|(key, value)| key == "reconnect_token" && !value.is_empty())
        .map(|(_, token)| {
            shared
                .keys
                .verify(&token, chrono::Utc::now().timestamp())
                .map_err(|error| {
                    log::info!(
                        "astro: refused a reconnect token from {:?}: {error}",
                        request.peer_addr()
                    );
                })
        });
    let per_second = NonZeroU32::new(PER_SECOND).expect("not zero");
    let burst = NonZeroU32::new(BURST).expect("not zero");
    let connection = Connection {
        limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
        subscriptions: Rc::default(),
        restore,
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
    limiter: DefaultDirectRateLimiter,
    /// Shared with the reply being recorded, which takes a subscription back if recording fails.
    subscriptions: Rc<RefCell<Subscriptions>>,
    /// The reconnect token's subscriptions, or `Err` for an invalid one; used when opened.
    restore: Option<Result<Vec<Sub>, ()>>,
}

fn reply(text: String) -> Vec<Out> {
    vec![Out::Text(text.into())]
}

/// The face's wire form of a failed request.
fn refuse(failure: Failure) -> Handled {
    Handled::Now(reply(protocol::failure(&failure)))
}

/// What the registry must send for `subscriptions`: every type that feeds each topic, in its room.
fn interest(subscriptions: &Subscriptions) -> Interest {
    let mut interest = Interest::default();
    for (topic, room, _) in subscriptions.iter() {
        let topic = topics::topic(topic).expect("subscriptions hold known topics");
        for kind in topics::wanted_types(topic) {
            interest.add(Room::Exactly(room), ANY, &kind);
        }
    }
    interest
}

impl Face for Connection {
    const KIND: FaceKind = FaceKind::Astro;
    const NAME: &'static str = "astro";

    fn opened(&mut self, link: &Link) -> Handled {
        let welcome = || reply(protocol::welcome(&ulid::Ulid::generate().to_string()));
        match self.restore.take() {
            None => Handled::Now(welcome()),
            Some(Err(())) => Handled::Now(vec![Out::Close(CLOSE_INVALID_RECONNECT)]),
            Some(Ok(subs)) => {
                // Held only once recorded, so that nothing is written before the welcome.
                let restored = self.restored(subs, link);
                let recorded = set_interest(&self.shared.registry, link.id, interest(&restored));
                let held = self.subscriptions.clone();
                Handled::Later(
                    async move {
                        match recorded.await {
                            Ok(()) => *held.borrow_mut() = restored,
                            Err(error) => {
                                log::error!("astro: the registry is not answering: {error}")
                            }
                        }
                        welcome()
                    }
                    .boxed_local(),
                )
            }
        }
    }

    fn admit(&mut self, text: bool, _: &Link) -> Option<Vec<Out>> {
        // Binary frames are ignored without taking a token.
        if !text || self.limiter.check().is_ok() {
            return None;
        }
        Some(reply(protocol::failure(&Failure::rate_limited())))
    }

    fn text(&mut self, text: &str, link: &Link) -> Handled {
        match protocol::parse(text) {
            Ok(Request::Subscribe {
                nonce,
                topic,
                room,
                token,
            }) => self.subscribe(nonce, topic, room, &token, link),
            Ok(Request::Unsubscribe { nonce, topic, room }) => {
                self.unsubscribe(nonce, topic, room, link)
            }
            Err(failure) => refuse(failure),
        }
    }

    fn too_big(&mut self, limit: usize, text: bool, _: &Link) -> Handled {
        // Binary messages get no answer, whatever their size.
        if !text {
            return Handled::Now(Vec::new());
        }
        refuse(Failure::too_big(limit))
    }

    fn accepts(&mut self, event: &Event, label: Option<&'static str>) -> bool {
        match (label, event.room.as_deref()) {
            (Some(topic), Some(room)) => self.subscriptions.borrow().holds(topic, room),
            _ => false,
        }
    }

    fn closing(&mut self, why: Closing, _: &Link) -> Vec<Out> {
        if why != Closing::ShuttingDown {
            return Vec::new();
        }
        let subs: Vec<Sub> = self
            .subscriptions
            .borrow()
            .iter()
            .map(|(topic, room, fp)| Sub {
                topic: topic.to_owned(),
                room: room.to_owned(),
                fp: fp.to_owned(),
            })
            .collect();
        let token = self
            .shared
            .keys
            .issue(&subs, chrono::Utc::now().timestamp());
        reply(protocol::reconnect(&token))
    }
}

impl Connection {
    /// The subscriptions of a reconnect token that a configured token still grants.
    fn restored(&self, subs: Vec<Sub>, link: &Link) -> Subscriptions {
        let mut subscriptions = Subscriptions::default();
        for sub in subs {
            let grant = self.shared.tokens.by_fp(&sub.fp);
            let topic = topics::topic(&sub.topic);
            match (grant, topic) {
                (Some(grant), Some(topic)) if grant.room == sub.room && grant.grants(topic) => {
                    subscriptions.insert(topic.name, &sub.room, &sub.fp);
                }
                _ => log::info!(
                    "astro session {}: not restoring {} in {}: no configured token grants it any more",
                    link.id,
                    sub.topic,
                    sub.room
                ),
            }
        }
        subscriptions
    }

    /// Checks 10 to 15 of a `subscribe`, then records it with the registry.
    fn subscribe(
        &mut self,
        nonce: Option<String>,
        topic: &'static Topic,
        room: String,
        token: &str,
        link: &Link,
    ) -> Handled {
        let Some(grant) = self.shared.tokens.find(token) else {
            return refuse(Failure::invalid_token(nonce));
        };
        if !room.is_empty() && room != grant.room {
            return refuse(Failure::wrong_room(nonce, &room));
        }
        if !grant.grants(topic) {
            let scope = topic.scope.unwrap_or_default();
            return refuse(Failure::missing_scope(nonce, scope));
        }
        let room = grant.room.clone();
        let subscribed = protocol::subscribed(nonce.as_deref(), topic.name, &room);
        let mut subscriptions = self.subscriptions.borrow_mut();
        if subscriptions.holds(topic.name, &room) {
            return Handled::Now(reply(subscribed));
        }
        if subscriptions.len() >= protocol::MAX_SUBSCRIPTIONS {
            return refuse(Failure::subscription_limit(nonce));
        }
        // The registry is asked now, in order with every other interest this connection sends;
        // the pair is held (its notifications written) only once it is recorded.
        subscriptions.insert(topic.name, &room, &grant.fp);
        let wanted = interest(&subscriptions);
        subscriptions.remove(topic.name, Some(&room));
        drop(subscriptions);
        let (registry, session) = (self.shared.registry.clone(), link.id);
        let recorded = set_interest(&registry, session, wanted);
        let held = self.subscriptions.clone();
        let fp = grant.fp.clone();
        Handled::Later(
            async move {
                let failure = match actix_rt::time::timeout(DEADLINE, recorded).await {
                    Ok(Ok(())) => {
                        log::debug!(
                            "astro session {session}: subscribed to {} in {room}",
                            topic.name
                        );
                        held.borrow_mut().insert(topic.name, &room, &fp);
                        return reply(subscribed);
                    }
                    Err(_) => Failure::deadline_exceeded(nonce),
                    Ok(Err(error)) => {
                        log::error!(
                            "astro session {session}: the registry is not answering: {error}"
                        );
                        Failure::internal_error(nonce)
                    }
                };
                // Not left behind: the registry applies this after the late one.
                let interest = interest(&held.borrow());
                registry.do_send(SetInterest {
                    session,
                    interest,
                    recorded: None,
                });
                reply(protocol::failure(&failure))
            }
            .boxed_local(),
        )
    }

    /// Removes the topic in `room`, or in every room when `room` is empty; always succeeds.
    fn unsubscribe(
        &mut self,
        nonce: Option<String>,
        topic: &'static Topic,
        room: String,
        link: &Link,
    ) -> Handled {
        let unsubscribed = protocol::unsubscribed(nonce.as_deref(), topic.name, &room);
        let mut subscriptions = self.subscriptions.borrow_mut();
        let room = Some(room.as_str()).filter(|room| !room.is_empty());
        if !subscriptions.remove(topic.name, room) {
            return Handled::Now(reply(unsubscribed));
        }
        let interest = interest(&subscriptions);
        let session = link.id;
        let recorded = set_interest(&self.shared.registry, session, interest);
        Handled::Later(
            async move {
                if let Err(error) = recorded.await {
                    log::error!("astro session {session}: the registry is not answering: {error}");
                }
                reply(unsubscribed)
            }
            .boxed_local(),
        )
    }
}
