//! The dashboard (docs/dashboard.md): a page served by the HTTP face at `/`, with its files
//! embedded in the binary, and the live feed it reads events from ([`feed`]).
//!
//! The page is plain HTML, CSS and JavaScript modules; it talks only to the HTTP API of the
//! server that served it (its Content-Security-Policy forbids anything else).

pub mod feed;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// The dashboard's files: (name under `/dashboard/`, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/api.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    ),
    (
        "connections.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/connections.js"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
    (
        "pointer.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/pointer.js"),
    ),
    (
        "rules.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/rules.js"),
    ),
    (
        "state.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/state.js"),
    ),
    (
        "try.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/try.js"),
    ),
];

const INDEX: &str = include_str!("assets/index.html");

/// Only this server: no script, style, image or connection elsewhere, no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                      connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Mounts `/` and `/dashboard/…` (the feed's shared state is the caller's `web::Data`).
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(index))
        .route("/dashboard/feed", web::get().to(feed::upgrade))
        .route("/dashboard/{file}", web::get().to(asset));
}

fn page(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    page("text/html; charset=utf-8", INDEX)
}

async fn asset(file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(name, ..)| *name == file.as_str()) {
        Some((_, content_type, body)) => page(content_type, body),
        None => HttpResponse::NotFound().finish(),
    }
}
