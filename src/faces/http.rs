//! The HTTP face (default `127.0.0.1:7474`): `GET /health`, Streamer.bot-compatible
//! `POST /DoAction` and `GET /GetActions`, and `POST /events` to inject an event, so that a game
//! engine without WebSockets can use Switchboard too.
//!
//! Errors are JSON `{"status":"error","error":"<message>"}` with a 4xx status for the caller's
//! mistakes and 500 for internal failures.

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::engine::{self, Caller, EngineError, RuleEngine};
use crate::event::{Event, User};

/// What the HTTP handlers share.
pub struct Shared {
    pub engine: Addr<RuleEngine>,
}

/// Mounts the routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/DoAction", web::post().to(do_action))
        .route("/GetActions", web::get().to(get_actions))
        .route("/events", web::post().to(inject));
}

fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({"status": "error", "error": message.into()}))
}

fn engine_error(engine_error: EngineError) -> HttpResponse {
    match engine_error {
        EngineError::ActionNotFound(_) => error(StatusCode::NOT_FOUND, engine_error.to_string()),
        EngineError::ActionDisabled(_) => error(StatusCode::CONFLICT, engine_error.to_string()),
        EngineError::Invalid(_) => error(StatusCode::BAD_REQUEST, engine_error.to_string()),
        EngineError::Store(ref cause) => {
            log::error!("http: the engine failed: {cause}");
            error(StatusCode::INTERNAL_SERVER_ERROR, engine_error.to_string())
        }
    }
}

fn mailbox_error(cause: actix::MailboxError) -> HttpResponse {
    log::error!("http: the engine is not answering: {cause}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("Internal error: {cause}"),
    )
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
    match shared.engine.send(call).await {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(cause)) => engine_error(cause),
        Err(cause) => mailbox_error(cause),
    }
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
    event.room = request.room;
    match shared.engine.send(engine::Inject(event)).await {
        Ok(Ok(id)) => HttpResponse::Ok().json(json!({"status": "ok", "eventId": id})),
        Ok(Err(cause)) => engine_error(cause),
        Err(cause) => mailbox_error(cause),
    }
}
