//! The Streamer.bot WebSocket Server face (docs/streamerbot.md), for `@streamerbot/client`,
//! `pystreamerbot` and the overlays built on them.
//!
//! [`upgrade`] starts one session per connection with a [`Connection`] as its face: it writes the
//! Hello, checks authentication, answers `GetInfo`, `GetEvents` and the platform requests itself,
//! keeps the connection's subscriptions (and tells the registry), and forwards calls, injects and
//! credits to the engine. [`Encoder`] renders events for the registry, once per publish.
//!
//! A request whose args carry `sbClientResponse` (docs/streamerbot.md §5.5) makes the connection
//! take the `Custom.Event` answering it once, subscribed to it or not, because
//! `@streamerbot/client` subscribes only after it has sent the request: the connection widens
//! its interest with the registry and picks that event out itself ([`Face::accepts`]).

pub mod auth;
pub mod catalogue;
pub mod protocol;
mod rules;
mod subscriptions;
mod variables;

use std::sync::Arc;

use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use self::auth::{Challenge, Lockout};
use self::catalogue::Catalogue;
use self::protocol::{EventFrame, Info, Platform, Reply, Request};
use self::subscriptions::Subscriptions;
use crate::config::Secret;
use crate::engine::loader::DocumentSet;
use crate::engine::{self, Caller, CreditsRequest, EngineError, RuleEngine};
use crate::event::{format_time, normalise, Event};
use crate::faces::{listen, listening, origins, Setup, StartError, Started};
use crate::registry::{
    set_interest, Encode, FaceKind, Frame, Interest, Registry, Room, SessionId, SetInterest,
};
use crate::session::{self, Close, Face, Handled, Link, Out, SessionLimits};
use crate::store::Table;

/// Sent after the third failed `Authenticate` on one connection.
pub const CLOSE_AUTHENTICATION_FAILED: Close = Close {
    code: 1008,
    reason: "Authentication failed",
};
/// How many failed `Authenticate`s a connection may make; the last one closes it.
pub const MAX_AUTHENTICATION_FAILURES: u8 = 3;

/// How many awaited `sbClientResponse` events one connection may hold; older ones are
/// forgotten first.
const MAX_AWAITING: usize = 64;

/// Starts the face, if enabled: the catalogue, the encoder, the listener.
pub async fn start(setup: &Setup<'_>) -> Result<Option<Started>, StartError> {
    let config = &setup.config.streamerbot;
    if !config.listener.enabled {
        return Ok(None);
    }
    let instance_id = setup
        .store
        .meta_string_or_insert("streamerbot.instanceId", || Uuid::new_v4().to_string())
        .await?;
    let catalogue = Arc::new(Catalogue::new(setup.names.clone()));
    setup
        .install(
            FaceKind::Streamerbot,
            Encoder {
                catalogue: catalogue.clone(),
            },
        )
        .await?;
    let platforms = config.broadcaster.clone();
    let connected: Vec<&String> = platforms.keys().collect();
    let broadcaster = json!({"platforms": platforms, "connected": connected, "disconnected": []});
    let shared = web::Data::new(Arc::new(Shared {
        broadcaster,
        info: Info::new(instance_id),
        password: config.password.clone(),
        catalogue,
        registry: setup.registry.clone(),
        engine: setup.engine.clone(),
        globals: setup.store.table("globals")?,
        limits: setup.limits.clone(),
        lockout: Lockout::default(),
        allowed_origins: config.listener.allowed_origins.clone(),
    }));
    let endpoint = config.endpoint.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route(&endpoint, web::get().to(upgrade))
    })
    .on_connect(session::peer::keep);
    let bound = listen(
        server,
        "streamerbot",
        &config.listener,
        "ws",
        &config.endpoint,
    )?;
    let mut started = listening("streamerbot", bound);
    if !config.password.is_empty() {
        started
            .notes
            .push("(the streamerbot face asks for the configured password)".into());
    } else if config.listener.allowed_origins.is_none() {
        started.notes.push(
            "(no streamerbot.password: every program on this computer, and every web page open \
             in its browser, can use the streamerbot face; set a password or allowed_origins)"
                .into(),
        );
    }
    Ok(Some(started))
}

/// What every connection of the face shares.
pub struct Shared {
    pub info: Info,
    /// The `GetBroadcaster` answer: the configured platforms, as written, all connected.
    pub broadcaster: Value,
    /// Empty: no authentication.
    pub password: Secret,
    pub catalogue: Arc<Catalogue>,
    pub registry: Addr<Registry>,
    pub engine: Addr<RuleEngine>,
    pub globals: Table<Value>,
    pub limits: SessionLimits,
    /// Failed authentications per peer address.
    pub lockout: Lockout,
    /// The pages that may connect (`streamerbot.allowed_origins`); `None`: every page.
    pub allowed_origins: Option<Vec<String>>,
}

/// Renders events as this face's frame for the registry.
pub struct Encoder {
    pub catalogue: Arc<Catalogue>,
}

impl Encode for Encoder {
    /// The event frame of §5.2, with names rendered through the catalogue.
    fn encode(&self, event: &Event) -> Frame {
        let (source, kind) = self.catalogue.render(&event.source, &event.kind);
        Frame::Text(
            serde_json::to_string(&EventFrame::new(event, &source, &kind))
                .expect("event frames serialize to JSON")
                .into(),
        )
    }
}

/// The upgrade handler mounted at `streamerbot.endpoint`.
pub async fn upgrade(
    request: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Arc<Shared>>,
) -> Result<HttpResponse, actix_web::Error> {
    if let Some(refused) =
        origins::refuse("streamerbot", shared.allowed_origins.as_deref(), &request)
    {
        return Ok(refused);
    }
    let shared = shared.get_ref().clone();
    let limits = shared.limits.clone();
    let registry = shared.registry.clone();
    let connection = Connection {
        challenge: (!shared.password.is_empty()).then(Challenge::new),
        authenticated: shared.password.is_empty(),
        failures: 0,
        subscriptions: Subscriptions::default(),
        subscribed: Interest::default(),
        awaiting: Vec::new(),
        session: 0,
        shared,
    };
    session::start(connection, registry, limits, &request, stream)
}

/// One connection's state.
pub struct Connection {
    shared: Arc<Shared>,
    challenge: Option<Challenge>,
    authenticated: bool,
    failures: u8,
    subscriptions: Subscriptions,
    /// `subscriptions` as the registry matches them.
    subscribed: Interest,
    /// `sbClientResponse` ids whose answering `Custom.Event` this connection takes regardless.
    awaiting: Vec<String>,
    session: SessionId,
}

/// A face-level answer to one request, before the `id` is added.
enum Answer {
    Now(Reply),
    Later(LocalBoxFuture<'static, Reply>),
    ThenClose(Reply, Close),
}

fn later(future: impl std::future::Future<Output = Reply> + 'static) -> Answer {
    Answer::Later(future.boxed_local())
}

/// A parameter, with `null` counted as absent.
fn param<'a>(request: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    request.get(key).filter(|value| !value.is_null())
}

/// An optional object parameter (`args`): absent or `null` is `{}`.
fn object_param(request: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, Reply> {
    match param(request, key) {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(Reply::error(format!("{key} must be an object"))),
    }
}

/// `persisted`: a boolean, absent or `null` meaning `true`.
fn persisted(request: &Map<String, Value>) -> Result<bool, Reply> {
    match param(request, "persisted") {
        None => Ok(true),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(Reply::error("persisted must be a boolean")),
    }
}

/// The face's wire form of an engine error; internal failures are logged, not shown.
fn engine_error(error: &EngineError) -> Reply {
    match error {
        EngineError::Store(cause) => internal(cause),
        error => Reply::error(error.to_string()),
    }
}

/// An internal failure: logged here, answered without its details.
fn internal(error: impl std::fmt::Debug) -> Reply {
    log::error!("streamerbot: a request failed inside Switchboard: {error:?}");
    Reply::error("Internal error")
}

fn mailbox_error(error: actix::MailboxError) -> Reply {
    internal(error)
}

impl Face for Connection {
    const KIND: FaceKind = FaceKind::Streamerbot;
    const NAME: &'static str = "streamerbot";

    /// Only a client that proved the password: without one, any client is a stranger.
    fn authenticated(&self) -> bool {
        self.authenticated && !self.shared.password.is_empty()
    }

    fn opened(&mut self, link: &Link) -> Handled {
        self.session = link.id;
        let mut hello = json!({
            "timestamp": format_time(&chrono::Utc::now()),
            "session": Uuid::new_v4().to_string(),
            "request": "Hello",
            "info": self.shared.info,
        });
        if let Some(challenge) = &self.challenge {
            hello["authentication"] =
                json!({"salt": challenge.salt, "challenge": challenge.challenge});
        }
        Handled::Now(vec![Out::Text(hello.to_string().into())])
    }

    fn accepts(&mut self, event: &Event, _: Option<&'static str>) -> bool {
        if self.awaiting.is_empty() {
            return true;
        }
        let (source, kind) = (normalise(&event.source), normalise(&event.kind));
        if self.subscribed.wants(&source, &kind, event.room.as_deref()) {
            return true;
        }
        let answers = (source == "custom" && kind == "event")
            .then(|| event.data.get("eventName").and_then(Value::as_str))
            .flatten();
        let Some(at) = answers.and_then(|id| self.awaiting.iter().position(|known| known == id))
        else {
            return false;
        };
        self.awaiting.swap_remove(at);
        if self.awaiting.is_empty() {
            self.shared.registry.do_send(SetInterest {
                session: self.session,
                interest: self.subscribed.clone(),
                recorded: None,
            });
        }
        true
    }

    fn text(&mut self, text: &str, link: &Link) -> Handled {
        let request = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(request)) => request,
            Ok(_) => return reply_now(None, Reply::error("Request must be a JSON object")),
            Err(error) => return reply_now(None, Reply::error(format!("Invalid JSON: {error}"))),
        };
        let id = request.get("id").cloned();
        let answer = self.answer(&request, link);
        match answer {
            Answer::Now(reply) => reply_now(id.as_ref(), reply),
            Answer::ThenClose(reply, close) => Handled::Now(vec![
                Out::Text(reply.encode(id.as_ref()).into()),
                Out::Close(close),
            ]),
            Answer::Later(future) => Handled::Later(
                future
                    .map(move |reply| vec![Out::Text(reply.encode(id.as_ref()).into())])
                    .boxed_local(),
            ),
        }
    }

    fn too_big(&mut self, limit: usize, _: bool, _: &Link) -> Handled {
        reply_now(None, Reply::error(format!("Message exceeds {limit} bytes")))
    }
}

fn reply_now(id: Option<&Value>, reply: Reply) -> Handled {
    Handled::Now(vec![Out::Text(reply.encode(id).into())])
}

impl Connection {
    /// Checks the request in the documented order and dispatches it.
    fn answer(&mut self, request: &Map<String, Value>, link: &Link) -> Answer {
        let Some(name) = request.get("request").and_then(Value::as_str) else {
            return Answer::Now(Reply::error("Missing request"));
        };
        log::debug!("streamerbot session {}: {name}", link.id);
        if !self.authenticated && name != "GetInfo" && name != "Authenticate" {
            return Answer::Now(Reply::error("Authentication required"));
        }
        let Some(kind) = Request::parse(name) else {
            return Answer::Now(Reply::error(format!("Unknown request: {name}")));
        };
        match self.dispatch(kind, request, link) {
            Ok(answer) => answer,
            Err(reply) => Answer::Now(reply),
        }
    }

    fn dispatch(
        &mut self,
        kind: Request,
        request: &Map<String, Value>,
        link: &Link,
    ) -> Result<Answer, Reply> {
        Ok(match kind {
            Request::Authenticate => self.authenticate(request, link),
            Request::GetInfo => Answer::Now(Reply::with(json!({"info": self.shared.info}))),
            Request::GetEvents => Answer::Now(Reply::with(
                json!({"events": self.shared.catalogue.to_json()}),
            )),
            Request::Subscribe => self.subscribe(request, link, true)?,
            Request::UnSubscribe => self.subscribe(request, link, false)?,
            Request::GetActions => self.get_actions(),
            Request::DoAction => self.do_action(request, link)?,
            Request::ExecuteCodeTrigger => self.execute_code_trigger(request, link)?,
            Request::GetCodeTriggers => self.documents(rules::code_triggers),
            Request::GetCommands => self.documents(rules::commands),
            Request::GetCredits => self.credits(CreditsRequest::Get),
            Request::TestCredits => self.credits(CreditsRequest::FillWithTestNames),
            Request::ClearCredits => self.credits(CreditsRequest::Clear),
            Request::GetGlobals => Answer::Now(variables::globals(
                &self.shared.globals,
                persisted(request)?,
            )),
            Request::GetGlobal => Answer::Now(variables::global(
                &self.shared.globals,
                request,
                persisted(request)?,
            )),
            Request::GetUserGlobals(platform) => Answer::Now(variables::user_globals(
                &self.shared.globals,
                platform,
                request,
                persisted(request)?,
            )),
            Request::GetUserGlobal(platform) => Answer::Now(variables::user_global(
                &self.shared.globals,
                platform,
                request,
                persisted(request)?,
            )),
            Request::GetBroadcaster => Answer::Now(Reply::with(self.shared.broadcaster.clone())),
            Request::GetActiveViewers => {
                Answer::Now(Reply::with(json!({"viewers": [], "count": 0})))
            }
            Request::GetMonitoredYouTubeBroadcasts => {
                Answer::Now(Reply::with(json!({"broadcasts": [], "count": 0})))
            }
            Request::GetEmotes(_) => Answer::Now(Reply::with(
                json!({"emotes": {"userEmotes": [], "bttvEmotes": [], "ffzEmotes": [], "sevenTvEmotes": []}}),
            )),
            Request::SendMessage => send_message(request)?,
            Request::GetUserPronouns => get_user_pronouns(request)?,
        })
    }

    fn authenticate(&mut self, request: &Map<String, Value>, link: &Link) -> Answer {
        let Some(challenge) = &self.challenge else {
            return Answer::Now(Reply::ok());
        };
        let peer = link.peer.map(|peer| peer.ip());
        if peer.is_some_and(|peer| self.shared.lockout.locked(peer)) {
            log::warn!(
                "streamerbot session {}: authentication refused unchecked: {:?} failed {} times within {} s",
                link.id,
                link.peer,
                auth::MAX_PEER_FAILURES,
                auth::LOCKOUT_WINDOW.as_secs()
            );
            return Answer::ThenClose(
                Reply::error("Too many failed authentications from this address; try again later"),
                CLOSE_AUTHENTICATION_FAILED,
            );
        }
        let candidate = request.get("authentication").and_then(Value::as_str);
        if candidate
            .is_some_and(|candidate| challenge.verify(self.shared.password.expose(), candidate))
        {
            self.authenticated = true;
            return Answer::Now(Reply::ok());
        }
        if let Some(peer) = peer {
            self.shared.lockout.failed(peer);
        }
        self.failures += 1;
        log::warn!(
            "streamerbot session {}: authentication failed from {:?} ({} of {MAX_AUTHENTICATION_FAILURES})",
            link.id,
            link.peer,
            self.failures
        );
        let reply = Reply::error("Authentication failed");
        if self.failures >= MAX_AUTHENTICATION_FAILURES {
            Answer::ThenClose(reply, CLOSE_AUTHENTICATION_FAILED)
        } else {
            Answer::Now(reply)
        }
    }

    fn subscribe(
        &mut self,
        request: &Map<String, Value>,
        link: &Link,
        add: bool,
    ) -> Result<Answer, Reply> {
        let events = subscriptions::parse(param(request, "events"))?;
        log::debug!(
            "streamerbot session {}: subscribe={add} {events:?}",
            link.id
        );
        if add {
            self.subscriptions.add(&events)?;
        } else {
            self.subscriptions.remove(&events);
        }
        self.subscribed = self.subscriptions.interest();
        let interest = self.interest();
        let reply =
            Reply::with(json!({"events": self.subscriptions.to_json(&self.shared.catalogue)}));
        // Queued now: the registry applies this connection's interests in the order they were
        // decided (`accepts` narrows one too).
        let recorded = set_interest(&self.shared.registry, link.id, interest);
        Ok(later(async move {
            match recorded.await {
                Ok(()) => reply,
                Err(error) => internal(error),
            }
        }))
    }

    fn get_actions(&self) -> Answer {
        self.documents(|documents| {
            let actions = documents.callables();
            Reply::with(json!({"count": actions.len(), "actions": actions}))
        })
    }

    /// Answers from the engine's current documents.
    fn documents(&self, answer: fn(&DocumentSet) -> Reply) -> Answer {
        let engine = self.shared.engine.clone();
        later(async move {
            match engine.send(engine::GetDocuments).await {
                Ok(documents) => answer(&documents),
                Err(error) => mailbox_error(error),
            }
        })
    }

    fn do_action(&mut self, request: &Map<String, Value>, link: &Link) -> Result<Answer, Reply> {
        let target = param(request, "action").and_then(Value::as_object);
        let text = |key: &str| {
            target
                .and_then(|target| target.get(key))
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let (id, name) = (text("id"), text("name"));
        if id.is_none() && name.is_none() {
            return Err(Reply::error(
                "action must be an object with a non-empty id or name",
            ));
        }
        let args = object_param(request, "args")?;
        let awaited = self.await_response(&args, link);
        let call = engine::DoAction {
            id,
            name,
            args: args.clone(),
            caller: Caller::Streamerbot,
        };
        let engine = self.shared.engine.clone();
        Ok(later(async move {
            awaited.await;
            match engine.send(call).await {
                Ok(Ok(())) => Reply::with(json!({"args": args})),
                Ok(Err(error)) => engine_error(&error),
                Err(error) => mailbox_error(error),
            }
        }))
    }

    fn execute_code_trigger(
        &mut self,
        request: &Map<String, Value>,
        link: &Link,
    ) -> Result<Answer, Reply> {
        let name = param(request, "triggerName")
            .and_then(Value::as_str)
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| Reply::error("triggerName must be a non-empty string"))?;
        let args = object_param(request, "args")?;
        let awaited = self.await_response(&args, link);
        let event = Event::new("custom", name, Value::Object(args));
        let engine = self.shared.engine.clone();
        Ok(later(async move {
            awaited.await;
            match engine.send(engine::Inject(event)).await {
                Ok(Ok(id)) => Reply::with(json!({"eventId": id})),
                Ok(Err(error)) => engine_error(&error),
                Err(error) => mailbox_error(error),
            }
        }))
    }

    /// What the registry sends this connection: its subscriptions, and `Custom.Event` while it
    /// awaits responses.
    fn interest(&self) -> Interest {
        let mut interest = self.subscribed.clone();
        if !self.awaiting.is_empty() {
            interest.add(Room::Any, "custom", "event");
        }
        interest
    }

    /// Awaits the `sbClientResponse` of `args`, if any, widening the connection's interest
    /// before the request reaches the engine.
    fn await_response(
        &mut self,
        args: &Map<String, Value>,
        link: &Link,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let response_id = args.get("sbClientResponse").and_then(Value::as_str);
        let recorded = response_id.map(|response_id| {
            if self.awaiting.len() == MAX_AWAITING {
                self.awaiting.remove(0);
            }
            self.awaiting.push(response_id.to_owned());
            // Queued now, in order with the interests `accepts` and `subscribe` send.
            set_interest(&self.shared.registry, link.id, self.interest())
        });
        async move {
            if let Some(recorded) = recorded {
                if let Err(error) = recorded.await {
                    log::error!("streamerbot: the registry is not answering: {error}");
                }
            }
        }
    }

    fn credits(&self, request: CreditsRequest) -> Answer {
        let engine = self.shared.engine.clone();
        later(async move {
            match engine.send(request).await {
                Ok(Ok(_)) if matches!(request, CreditsRequest::Clear) => Reply::ok(),
                Ok(Ok(credits)) => Reply::Ok(credits),
                Ok(Err(error)) => engine_error(&error),
                Err(error) => mailbox_error(error),
            }
        })
    }
}

fn platform_param(request: &Map<String, Value>) -> Result<Platform, Reply> {
    param(request, "platform")
        .and_then(Value::as_str)
        .and_then(Platform::parse)
        .ok_or_else(|| Reply::error("platform must be one of twitch, youtube, trovo, kick"))
}

fn non_empty_string(request: &Map<String, Value>, key: &str) -> Result<(), Reply> {
    match param(request, key).and_then(Value::as_str) {
        Some(text) if !text.is_empty() => Ok(()),
        _ => Err(Reply::error(format!("{key} must be a non-empty string"))),
    }
}

fn send_message(request: &Map<String, Value>) -> Result<Answer, Reply> {
    let platform = platform_param(request)?;
    non_empty_string(request, "message")?;
    for key in ["bot", "internal"] {
        if param(request, key).is_some_and(|value| !value.is_boolean()) {
            return Err(Reply::error(format!("{key} must be a boolean")));
        }
    }
    for key in ["replyId", "broadcastId"] {
        if param(request, key).is_some_and(|value| !value.is_string()) {
            return Err(Reply::error(format!("{key} must be a string")));
        }
    }
    Ok(Answer::Now(Reply::error(format!(
        "No {} connection",
        platform.name()
    ))))
}

fn get_user_pronouns(request: &Map<String, Value>) -> Result<Answer, Reply> {
    platform_param(request)?;
    non_empty_string(request, "userLogin")?;
    Ok(Answer::Now(Reply::error("No pronoun service")))
}

#[cfg(test)]
mod tests {
    use proptest::test_runner::TestRunner;

    use super::*;

    /// Valid requests with every parameter the face reads, the mutation seeds.
    fn samples() -> Vec<Value> {
        vec![
            json!({"request": "Subscribe", "id": "s1", "events": {"Twitch": ["Follow", "Cheer"], "General": ["Custom"]}}),
            json!({"request": "UnSubscribe", "id": 7, "events": {"*": ["*"]}}),
            json!({"request": "DoAction", "id": "d1", "action": {"id": "01JC1XMWCEJZ05XHT5GMEJ146S", "name": "Celebrate"}, "args": {"boss": "Dragon", "sbClientResponse": "r1"}}),
            json!({"request": "ExecuteCodeTrigger", "id": "e1", "triggerName": "boss_defeated", "args": {"hp": 0}}),
            json!({"request": "GetGlobal", "id": "g1", "variable": "deaths", "persisted": true}),
            json!({"request": "TwitchGetUserGlobals", "id": "u1", "variable": "score", "persisted": false}),
            json!({"request": "YouTubeGetUserGlobal", "id": "u2", "userId": "42", "variable": "score"}),
            json!({"request": "SendMessage", "id": "m1", "platform": "twitch", "message": "hi", "bot": true, "internal": false, "replyId": "x"}),
            json!({"request": "GetUserPronouns", "id": "p1", "platform": "kick", "userLogin": "bob"}),
            json!({"request": "Authenticate", "id": "a1", "authentication": "abc"}),
            json!({"request": "GetInfo", "id": "i1"}),
        ]
    }

    /// The parameter checks and store reads a request reaches without the engine, as
    /// `dispatch` runs them.
    fn answer(request: &Map<String, Value>, globals: &Table<Value>) -> Vec<Reply> {
        let name = request.get("request").and_then(Value::as_str).unwrap_or("");
        let mut replies = vec![
            subscriptions::parse(param(request, "events"))
                .and_then(|events| {
                    let mut subscriptions = Subscriptions::default();
                    subscriptions.add(&events)?;
                    subscriptions.remove(&events);
                    Ok(Reply::ok())
                })
                .unwrap_or_else(|refused| refused),
            object_param(request, "args").map_or_else(|refused| refused, |_| Reply::ok()),
            send_message(request).map_or_else(|refused| refused, |_| Reply::ok()),
            get_user_pronouns(request).map_or_else(|refused| refused, |_| Reply::ok()),
        ];
        if let Ok(persisted) = persisted(request) {
            replies.push(variables::global(globals, request, persisted));
            replies.push(variables::globals(globals, persisted));
            for platform in Platform::ALL {
                replies.push(variables::user_globals(
                    globals, platform, request, persisted,
                ));
                replies.push(variables::user_global(
                    globals, platform, request, persisted,
                ));
            }
        }
        if Request::parse(name).is_none() {
            replies.push(Reply::error(format!("Unknown request: {name}")));
        }
        replies
    }

    /// Any request is answered with a frame of §4: `status` ok, or error with an `error`
    /// message, and the request's `id` echoed.
    #[test]
    fn every_request_is_answered_in_the_reply_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let globals: Table<Value> = store.table("globals").unwrap();
        globals
            .insert(
                "g/deaths",
                &json!({"value": 3, "updatedAt": "2025-01-01T00:00:00Z"}),
            )
            .unwrap();
        globals
            .insert("u/twitch:42/score", &json!({"value": 1, "username": "bob"}))
            .unwrap();
        let mut runner = TestRunner::default();
        let result = runner.run(&crate::mutate::messages(samples()), |text| {
            let request = match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(request)) => request,
                _ => return Ok(()),
            };
            let id = request.get("id");
            for reply in answer(&request, &globals) {
                let frame: Value = serde_json::from_str(&reply.clone().encode(id)).unwrap();
                proptest::prop_assert_eq!(frame.get("id"), id);
                match (&frame["status"], &reply) {
                    (status, Reply::Ok(_)) => proptest::prop_assert_eq!(status, "ok"),
                    (status, Reply::Error(message)) => {
                        proptest::prop_assert_eq!(status, "error");
                        proptest::prop_assert!(!message.is_empty());
                        proptest::prop_assert_eq!(&frame["error"], &Value::String(message.clone()));
                    }
                }
                proptest::prop_assert!(frame.get("event").is_none());
            }
            Ok(())
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
    }
}
