//! The HTTP face (default `127.0.0.1:7474`): `GET /health`, Streamer.bot-compatible
//! `POST /DoAction` and `GET /GetActions`, `POST /events` to inject an event (so that a game
//! engine without WebSockets can use Switchboard too), and the document API under `/rules` and
//! `/actions` (list, get, put, delete, traces, dry-run test), `GET /metrics` (Prometheus), and the
//! dashboard at `/` with its live feed at `/dashboard/feed` ([`crate::faces::dashboard`]).
//!
//! Errors are JSON `{"status":"error","error":"<message>"}` with a 4xx status for the caller's
//! mistakes and 500 for internal failures.

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::engine::api::{DeleteDocument, GetDocument, ListDocuments, PutDocument};
use crate::engine::document::Kind;
use crate::engine::{self, Caller, CreditsRequest, EngineError, RuleEngine};
use crate::event::{Event, User};
use crate::faces::dashboard::{self, feed};
use crate::faces::{listen, listening, tokens, Setup, StartError, Started};
use crate::outbound::{
    DeleteConnection, ListConnections, OutboundError, OutboundManager, PutConnection,
    ReconnectConnection,
};
use crate::registry::{FaceKind, ListSessions, Registry};
use crate::session;
use crate::store::Table;

mod guard;

use guard::Guard;

/// The key of the generated admin token in the store's `meta` tree.
pub const TOKEN_KEY: &str = "http.token";

/// A configured admin token shorter than this is warned about.
const SHORT_TOKEN: usize = 16;

/// What the HTTP handlers share.
pub struct Shared {
    pub engine: Addr<RuleEngine>,
    pub outbound: Addr<OutboundManager>,
    pub registry: Addr<Registry>,
    /// The store's `globals` tree: global and user variables.
    pub variables: Table<Value>,
}

/// Starts the face, if enabled.
pub async fn start(setup: &Setup<'_>) -> Result<Option<Started>, StartError> {
    let listener = &setup.config.http;
    if !listener.listener.enabled {
        return Ok(None);
    }
    let shared = web::Data::new(Shared {
        engine: setup.engine.clone(),
        outbound: setup.outbound.clone(),
        registry: setup.registry.clone(),
        variables: setup.store.table("globals")?,
    });
    setup.install(FaceKind::Dashboard, feed::Encoder).await?;
    let feed = web::Data::new(feed::Shared {
        registry: setup.registry.clone(),
        limits: setup.limits.clone(),
    });
    let (token, provenance) =
        tokens::kept(setup.store, TOKEN_KEY, &listener.token, "http.token").await?;
    if (1..SHORT_TOKEN).contains(&listener.token.expose().len()) {
        log::warn!(
            "http.token is shorter than {SHORT_TOKEN} characters, which can be guessed; \
             leave it empty for a generated one"
        );
    }
    let note = format!(
        "http token   {} ({provenance}; {})",
        token.expose(),
        if listener.listener.exposed() {
            "every route but /health and the dashboard's files needs it, as Authorization: Bearer"
        } else {
            "scripts send it as Authorization: Bearer to change anything"
        }
    );
    let guard = web::Data::new(Guard {
        token,
        exposed: listener.listener.exposed(),
        allowed_origins: listener
            .listener
            .allowed_origins
            .clone()
            .unwrap_or_default(),
    });
    let max_body = setup.limits.max_message_bytes;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(guard::check))
            // Outside the guard: a browser's preflight carries no token.
            .wrap(guard::cors(&guard.allowed_origins))
            .app_data(guard.clone())
            .app_data(shared.clone())
            .app_data(feed.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .configure(routes)
            .configure(dashboard::routes)
    })
    .on_connect(session::peer::keep);
    let bound = listen(server, "http", &listener.listener, "http", "/")?;
    let mut started = listening("http", bound);
    started.notes.push(note);
    Ok(Some(started))
}

/// Mounts the routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .route("/DoAction", web::post().to(do_action))
        .route("/GetActions", web::get().to(get_actions))
        .route("/events", web::post().to(inject))
        .route("/connections", web::get().to(list_connections))
        .route("/connections/{name}", web::get().to(get_connection))
        .route("/connections/{name}", web::put().to(put_connection))
        .route("/connections/{name}", web::delete().to(delete_connection))
        .route(
            "/connections/{name}/reconnect",
            web::post().to(reconnect_connection),
        )
        .route("/sessions", web::get().to(list_sessions))
        .route("/credits", web::get().to(credits))
        .route("/variables", web::get().to(variables))
        .service(
            web::scope("/rules")
                .app_data(web::Data::new(Kind::Rule))
                .configure(documents),
        )
        .service(
            web::scope("/actions")
                .app_data(web::Data::new(Kind::Action))
                .configure(documents),
        );
}

/// The document routes of one kind.
fn documents(config: &mut web::ServiceConfig) {
    config
        .route("", web::get().to(list_documents))
        .route("/{id}", web::get().to(get_document))
        .route("/{id}", web::put().to(put_document))
        .route("/{id}", web::delete().to(delete_document))
        .route("/{id}/traces", web::get().to(traces))
        .route("/{id}/test", web::post().to(test_document))
        .route("/{id}/tests", web::post().to(run_own_tests));
}

fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({"status": "error", "error": message.into()}))
}

fn engine_error(engine_error: EngineError) -> HttpResponse {
    match engine_error {
        EngineError::ActionNotFound(_) => error(StatusCode::NOT_FOUND, engine_error.to_string()),
        EngineError::ActionDisabled(_) => error(StatusCode::CONFLICT, engine_error.to_string()),
        EngineError::Invalid(ref lines) => HttpResponse::BadRequest().json(json!({
            "status": "error",
            "error": lines,
            "errors": lines.lines().collect::<Vec<_>>(),
        })),
        EngineError::DocumentNotFound(_) | EngineError::RuleNotFound(_) => {
            error(StatusCode::NOT_FOUND, engine_error.to_string())
        }
        EngineError::Store(ref cause) => {
            log::error!("http: the engine failed: {cause}");
            error(StatusCode::INTERNAL_SERVER_ERROR, engine_error.to_string())
        }
    }
}

fn mailbox_error(cause: actix::MailboxError) -> HttpResponse {
    log::error!("http: the engine is not answering: {cause}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
}

/// Sends `message` to the engine and answers with `answer` of its result, or its error form.
async fn ask<M, T>(
    engine: &Addr<RuleEngine>,
    message: M,
    answer: impl FnOnce(T) -> HttpResponse,
) -> HttpResponse
where
    M: actix::Message<Result = Result<T, EngineError>> + Send + 'static,
    T: Send + 'static,
    RuleEngine: actix::Handler<M>,
{
    match engine.send(message).await {
        Ok(Ok(value)) => answer(value),
        Ok(Err(cause)) => engine_error(cause),
        Err(cause) => mailbox_error(cause),
    }
}

/// Parses a JSON body, answering 400 with the parser's message.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Box<HttpResponse>> {
    serde_json::from_slice(bytes).map_err(|cause| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("Invalid body: {cause}"),
        ))
    })
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// `GET /metrics`: every metric in Prometheus' text format (version 0.0.4).
async fn metrics() -> HttpResponse {
    match crate::metrics::install() {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(crate::metrics::render(handle)),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available: another recorder was installed first",
        ),
    }
}

#[derive(Deserialize)]
struct ActionRef {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct DoActionBody {
    action: ActionRef,
    #[serde(default)]
    args: Option<Map<String, Value>>,
}

/// Like Streamer.bot's HTTP server: 204 once the engine has the call.
async fn do_action(shared: web::Data<Shared>, bytes: web::Bytes) -> HttpResponse {
    let request: DoActionBody = match body(&bytes) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let non_empty = |text: Option<String>| text.filter(|text| !text.is_empty());
    let (id, name) = (non_empty(request.action.id), non_empty(request.action.name));
    if id.is_none() && name.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "action must be an object with a non-empty id or name",
        );
    }
    let call = engine::DoAction {
        id,
        name,
        args: request.args.unwrap_or_default(),
        caller: Caller::Http,
    };
    ask(&shared.engine, call, |()| {
        HttpResponse::NoContent().finish()
    })
    .await
}

async fn get_actions(shared: web::Data<Shared>) -> HttpResponse {
    match shared.engine.send(engine::GetDocuments).await {
        Ok(documents) => {
            let actions = documents.callables();
            HttpResponse::Ok().json(json!({"actions": actions, "count": actions.len()}))
        }
        Err(cause) => mailbox_error(cause),
    }
}

#[derive(Deserialize)]
struct InjectBody {
    source: String,
    #[serde(rename = "type")]
    kind: String,
    user: Option<User>,
    room: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

/// `POST /events`: `{source, type, user?, room?, data?}` → `{"status":"ok","eventId":...}` once
/// the event is published and its credits are on disk.
async fn inject(shared: web::Data<Shared>, bytes: web::Bytes) -> HttpResponse {
    let request: InjectBody = match body(&bytes) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    if request.source.trim().is_empty() || request.kind.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "source and type must be non-empty strings",
        );
    }
    let mut event = Event::new(
        request.source,
        request.kind,
        request.data.unwrap_or_else(|| Value::Object(Map::new())),
    );
    event.user = request.user;
    event.room = request.room.filter(|room| !room.is_empty());
    ask(&shared.engine, engine::Inject(event), |id| {
        HttpResponse::Ok().json(json!({"status": "ok", "eventId": id}))
    })
    .await
}

async fn list_documents(shared: web::Data<Shared>, kind: web::Data<Kind>) -> HttpResponse {
    ask(
        &shared.engine,
        ListDocuments { kind: **kind },
        |documents| {
            HttpResponse::Ok().json(json!({"documents": documents, "count": documents.len()}))
        },
    )
    .await
}

async fn get_document(
    shared: web::Data<Shared>,
    kind: web::Data<Kind>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    let message = GetDocument {
        kind: **kind,
        id: id.clone(),
    };
    ask(&shared.engine, message, |document| match document {
        Some(document) => HttpResponse::Ok().json(document),
        None => engine_error(EngineError::DocumentNotFound(id)),
    })
    .await
}

/// Validates, writes the file atomically and applies it; 400 with `path: pointer: reason` lines.
async fn put_document(
    shared: web::Data<Shared>,
    kind: web::Data<Kind>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let document: Value = match body(&bytes) {
        Ok(document) => document,
        Err(response) => return *response,
    };
    let id = id.into_inner();
    let message = PutDocument {
        kind: **kind,
        id: id.clone(),
        document,
    };
    ask(&shared.engine, message, |path| {
        HttpResponse::Ok().json(json!({"status": "ok", "id": id, "path": path}))
    })
    .await
}

async fn delete_document(
    shared: web::Data<Shared>,
    kind: web::Data<Kind>,
    id: web::Path<String>,
) -> HttpResponse {
    let message = DeleteDocument {
        kind: **kind,
        id: id.into_inner(),
    };
    ask(&shared.engine, message, |()| {
        HttpResponse::NoContent().finish()
    })
    .await
}

/// The last traces of a document, newest first.
async fn traces(
    shared: web::Data<Shared>,
    kind: web::Data<Kind>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    let message = engine::GetTraces {
        kind: **kind,
        id: id.clone(),
    };
    match shared.engine.send(message).await {
        Ok(Some(traces)) => {
            HttpResponse::Ok().json(json!({"traces": traces, "count": traces.len()}))
        }
        Ok(None) => engine_error(EngineError::DocumentNotFound(id)),
        Err(cause) => mailbox_error(cause),
    }
}

/// One dry run on the live state: `{"outcome", "trace", "emitted", "sent", "logs"}`.
async fn test_document(
    shared: web::Data<Shared>,
    kind: web::Data<Kind>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let test: Value = match body(&bytes) {
        Ok(test) => test,
        Err(response) => return *response,
    };
    let message = engine::DryRun {
        kind: **kind,
        id: id.into_inner(),
        test,
    };
    ask(&shared.engine, message, |report| {
        HttpResponse::Ok().json(report)
    })
    .await
}

/// Runs the document's own tests: `{"tests": [{name, passed, …}], "passed": n, "failed": n}`.
async fn run_own_tests(
    shared: web::Data<Shared>,
    kind: web::Data<Kind>,
    id: web::Path<String>,
) -> HttpResponse {
    let message = engine::RunOwnTests {
        kind: **kind,
        id: id.into_inner(),
    };
    ask(&shared.engine, message, |tests| {
        let passed = tests.iter().filter(|test| test["passed"] == true).count();
        HttpResponse::Ok()
            .json(json!({"tests": tests, "passed": passed, "failed": tests.len() - passed}))
    })
    .await
}

fn outbound_error(cause: OutboundError) -> HttpResponse {
    let status = match cause {
        OutboundError::NotFound(_) => StatusCode::NOT_FOUND,
        OutboundError::Invalid(_) => StatusCode::BAD_REQUEST,
        OutboundError::FromFile(_) => StatusCode::CONFLICT,
        // Only `ws.send` steps meet these two.
        OutboundError::NotConnected(..) | OutboundError::QueueFull { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        OutboundError::Store(_) => {
            log::error!("http: {cause}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error");
        }
    };
    error(status, cause.to_string())
}

/// Every outbound connection's status (docs/custom.md §2.6).
async fn list_connections(shared: web::Data<Shared>) -> HttpResponse {
    match shared.outbound.send(ListConnections).await {
        Ok(statuses) => {
            HttpResponse::Ok().json(json!({"connections": statuses, "count": statuses.len()}))
        }
        Err(cause) => mailbox_error(cause),
    }
}

async fn get_connection(shared: web::Data<Shared>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    match shared.outbound.send(ListConnections).await {
        Ok(statuses) => match statuses.into_iter().find(|status| status.name == name) {
            Some(status) => HttpResponse::Ok().json(status),
            None => outbound_error(OutboundError::NotFound(name)),
        },
        Err(cause) => mailbox_error(cause),
    }
}

/// Creates or replaces a runtime connection (the `[[outbound]]` keys as JSON), persisted.
async fn put_connection(
    shared: web::Data<Shared>,
    name: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let settings: Value = match body(&bytes) {
        Ok(settings) => settings,
        Err(response) => return *response,
    };
    let name = name.into_inner();
    match shared
        .outbound
        .send(PutConnection {
            name: name.clone(),
            settings,
        })
        .await
    {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ok", "name": name})),
        Ok(Err(cause)) => outbound_error(cause),
        Err(cause) => mailbox_error(cause),
    }
}

async fn delete_connection(shared: web::Data<Shared>, name: web::Path<String>) -> HttpResponse {
    match shared
        .outbound
        .send(DeleteConnection {
            name: name.into_inner(),
        })
        .await
    {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(cause)) => outbound_error(cause),
        Err(cause) => mailbox_error(cause),
    }
}

/// Dials an outbound connection again now instead of at its next retry.
async fn reconnect_connection(shared: web::Data<Shared>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    let message = ReconnectConnection { name: name.clone() };
    match shared.outbound.send(message).await {
        Ok(Ok(())) => HttpResponse::Accepted().json(json!({"status": "ok", "name": name})),
        Ok(Err(cause)) => outbound_error(cause),
        Err(cause) => mailbox_error(cause),
    }
}

/// The inbound WebSocket sessions: each one's face, client address and subscriptions, and how
/// many each face has.
async fn list_sessions(shared: web::Data<Shared>) -> HttpResponse {
    match shared.registry.send(ListSessions).await {
        Ok(sessions) => {
            let mut by_face = Map::new();
            for session in &sessions {
                let count = by_face.entry(session.face).or_insert(json!(0));
                *count = json!(count.as_u64().unwrap_or(0) + 1);
            }
            HttpResponse::Ok()
                .json(json!({"sessions": sessions, "count": sessions.len(), "byFace": by_face}))
        }
        Err(cause) => mailbox_error(cause),
    }
}

/// The credits, in the shape of Streamer.bot's `GetCredits` (docs/streamerbot.md).
async fn credits(shared: web::Data<Shared>) -> HttpResponse {
    ask(&shared.engine, CreditsRequest::Get, |credits| {
        HttpResponse::Ok().json(credits)
    })
    .await
}

/// Global and user variables as stored (keys `g/<name>` and `u/<source>:<userId>/<name>`).
async fn variables(shared: web::Data<Shared>) -> HttpResponse {
    let records = match shared.variables.scan("") {
        Ok(records) => records,
        Err(cause) => {
            log::error!("http: cannot read the variables: {cause}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error");
        }
    };
    let field = |record: &Value, name: &str| record.get(name).cloned().unwrap_or(Value::Null);
    let (mut globals, mut users) = (Vec::new(), Vec::new());
    for (key, record) in &records {
        if let Some(name) = key.strip_prefix("g/") {
            globals.push(json!({"name": name, "value": field(record, "value"),
                "updatedAt": field(record, "updatedAt")}));
        } else if let Some((user, name)) =
            key.strip_prefix("u/").and_then(|rest| rest.split_once('/'))
        {
            let (source, user_id) = user.split_once(':').unwrap_or(("", user));
            users.push(json!({"source": source, "userId": user_id, "name": name,
                "username": field(record, "username"), "nickname": field(record, "nickname"),
                "value": field(record, "value"), "updatedAt": field(record, "updatedAt")}));
        }
    }
    HttpResponse::Ok().json(json!({"globals": globals, "users": users}))
}
