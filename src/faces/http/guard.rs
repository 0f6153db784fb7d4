//! Who may use the HTTP API: the admin token, and the checks that keep web pages out.
//!
//! - `/health`, and the dashboard's page and scripts (they hold no data), are open to anyone.
//! - A request that offers the admin token (`Authorization: Bearer`, or `?token=` on the
//!   dashboard's feed, where a browser cannot set headers) must offer the right one.
//! - When the face listens beyond loopback, every other route needs the token.
//! - On a loopback bind, a request without the token must name this computer in `Host` (a page
//!   that rebinds its own name to 127.0.0.1 cannot), must not come from another site's page (an
//!   allowed one included) or through a proxy or tunnel (`Forwarded`, `X-Forwarded-*`), and a
//!   request that changes anything must come from the dashboard's own page (an `Origin` that is
//!   this server, or without `Origin`, `Sec-Fetch-Site: same-origin`). Programs of this computer
//!   can say the same: on loopback the token keeps out web pages, not local programs.
//! - Whatever the credential, a change (`POST`, `PUT`, `DELETE`) is refused when it comes from a
//!   page of another site (`Origin` neither this server nor in `http.allowed_origins`), and a
//!   `POST` or `PUT` must send `Content-Type: application/json`: a page cannot send that to
//!   another site without the browser asking first (CORS), and this server says yes only to the
//!   pages of `http.allowed_origins` ([`cors`]).

use std::net::IpAddr;

use actix_cors::Cors;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::{Condition, Next};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::config::Secret;
use crate::faces::tokens;
use crate::log_limit::{more, Limited};

/// The dashboard's live feed, a WebSocket.
const FEED: &str = "/dashboard/feed";

/// What the guard knows of the face.
pub struct Guard {
    pub token: Secret,
    /// The face listens beyond loopback: every route but the open ones needs the token.
    pub exposed: bool,
    /// Other sites' pages allowed to change things (with the token).
    pub allowed_origins: Vec<String>,
}

/// Why a request was refused; the message is what the caller reads.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this route needs the admin token: send it as Authorization: Bearer <token> (the banner shows it; switchboard token http prints it)")]
    TokenMissing,
    #[error("the admin token is wrong (the banner shows the right one; switchboard token http prints it)")]
    TokenWrong,
    #[error("the Host header does not name this computer: send the admin token")]
    ForeignHost,
    #[error("changes need the admin token, or must come from the dashboard's own page")]
    NotSameOrigin,
    #[error("pages of other sites may not change anything here (see http.allowed_origins)")]
    Origin,
    #[error("send the body as JSON, with Content-Type: application/json")]
    ContentType,
}

impl Refusal {
    fn response(&self) -> HttpResponse {
        let status = match self {
            Refusal::Origin => StatusCode::FORBIDDEN,
            Refusal::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::UNAUTHORIZED,
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({"status": "error", "error": self.to_string()}))
    }
}

/// CORS for the pages of `http.allowed_origins`: their requests with the token (a JSON body, an
/// `Authorization` header) make the browser ask first, and the answer lets those pages, and only
/// them, send the request and read its answer. Without the key there is no CORS at all.
pub fn cors(allowed: &[String]) -> Condition<Cors> {
    let list = allowed.to_vec();
    let cors = Cors::default()
        .allowed_origin_fn(move |origin, _| {
            origin.to_str().is_ok_and(|origin| {
                list.iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(origin))
            })
        })
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        // The guard answers other pages (403 for a change); CORS only adds its headers.
        .block_on_origin_mismatch(false)
        .max_age(600);
    Condition::new(!allowed.is_empty(), cors)
}

/// The middleware: answers a refused request with its 401, 403 or 415.
pub async fn check(
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let verdict = match request.app_data::<web::Data<Guard>>() {
        Some(guard) => guard.admit(request.request()),
        None => Err(Refusal::TokenMissing),
    };
    match verdict {
        Ok(()) => next.call(request).await,
        Err(refusal) => {
            static LIMITED: Limited = Limited::new();
            LIMITED.warn(|left_out| {
                log::warn!(
                    "http: refused {} {} from {:?}: {refusal}{}",
                    request.method(),
                    request.path(),
                    request.peer_addr(),
                    more(left_out)
                )
            });
            Ok(request.into_response(refusal.response()))
        }
    }
}

impl Guard {
    /// Whether `request` may go on to its route.
    fn admit(&self, request: &HttpRequest) -> Result<(), Refusal> {
        if open(request) {
            return Ok(());
        }
        let changes = ![Method::GET, Method::HEAD, Method::OPTIONS].contains(request.method());
        // The feed too: any page may open a WebSocket anywhere, and the feed shows every event.
        let feed = routed_path(request) == FEED;
        if (changes || feed) && !self.origin_allowed(request) {
            return Err(Refusal::Origin);
        }
        let offered =
            tokens::bearer(request).or_else(|| feed.then(|| tokens::query(request)).flatten());
        // A page of an allowed site, and a request a proxy or tunnel forwarded to loopback, are
        // not this computer's own: like the network, they need the token.
        let foreign_page = origin(request).is_some() && !same_origin(request);
        match offered {
            Some(token) if self.token.matches(&token) => {}
            Some(_) => return Err(Refusal::TokenWrong),
            None if self.exposed || foreign_page || forwarded(request) => {
                return Err(Refusal::TokenMissing)
            }
            None if !names_this_computer(request) => return Err(Refusal::ForeignHost),
            None if changes && !same_origin(request) => return Err(Refusal::NotSameOrigin),
            None => {}
        }
        if changes && [Method::POST, Method::PUT].contains(request.method()) && !json(request) {
            return Err(Refusal::ContentType);
        }
        Ok(())
    }

    /// No `Origin` (not a browser, or a same-origin GET), this server, or an allowed one.
    fn origin_allowed(&self, request: &HttpRequest) -> bool {
        match origin(request) {
            None => true,
            Some(origin) => {
                same_origin(request)
                    || self
                        .allowed_origins
                        .iter()
                        .any(|allowed| allowed.eq_ignore_ascii_case(origin))
            }
        }
    }
}

/// `/health`, and the dashboard's page and scripts.
fn open(request: &HttpRequest) -> bool {
    let path = routed_path(request);
    path == "/health"
        || ([Method::GET, Method::HEAD].contains(request.method())
            && (path == "/" || (path.starts_with("/dashboard/") && path != FEED)))
}

/// The path as the router matches it: percent-encoded characters decoded (`/dashboard/%66eed`
/// is the feed), which the raw `request.path()` is not.
fn routed_path(request: &HttpRequest) -> &str {
    request.match_info().as_str()
}

/// The `Origin` header (`"?"` when it is not text, or sent more than once).
fn origin(request: &HttpRequest) -> Option<&str> {
    single(request, header::ORIGIN).map(|origin| origin.unwrap_or("?"))
}

/// The one value of header `name`: `None` when absent, `Some(None)` when it is not text or is
/// sent more than once (a request that says two things is believed in neither).
fn single(request: &HttpRequest, name: header::HeaderName) -> Option<Option<&str>> {
    let mut values = request.headers().get_all(name);
    let first = values.next()?;
    Some(match values.next() {
        None => first.to_str().ok(),
        Some(_) => None,
    })
}

/// The host and port the request was sent to: its `Host` header (HTTP/1.1), or its URI's
/// authority (HTTP/2 has no `Host`, it sends `:authority`). `None` when absent or sent twice.
fn host(request: &HttpRequest) -> Option<&str> {
    match single(request, header::HOST) {
        Some(host) => host,
        None => request
            .uri()
            .authority()
            .map(|authority| authority.as_str()),
    }
}

/// Whether a proxy or a tunnel says it forwarded the request.
fn forwarded(request: &HttpRequest) -> bool {
    let headers = request.headers();
    [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-real-ip",
    ]
    .iter()
    .any(|name| headers.contains_key(*name))
}

/// Whether the browser says the request comes from a page of this server: an `Origin` whose host
/// and port are the `Host` the request was sent to, or, without `Origin`, `Sec-Fetch-Site:
/// same-origin`.
fn same_origin(request: &HttpRequest) -> bool {
    let Some(origin) = origin(request) else {
        return request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    };
    let Some(host) = host(request) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
}

/// Whether `Host` is a name of this computer (`localhost`, a loopback address), as it is for
/// every page and program of the computer itself.
fn names_this_computer(request: &HttpRequest) -> bool {
    let Some(host) = host(request) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn json(request: &HttpRequest) -> bool {
    single(request, header::CONTENT_TYPE)
        .flatten()
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}
