//! The live feed: a WebSocket at `/dashboard/feed` that writes every published event as JSON.
//!
//! It is a registry subscriber like any face's connection: a [`session`] with this [`Feed`] face,
//! bounded by `limits.send_queue` and dropped as too slow when its tab stops reading, so a closed
//! or frozen dashboard never holds up the other faces. Each event is serialised once per publish
//! ([`Encoder`]), whatever the number of open tabs.

use actix::Addr;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::event::Event;
use crate::registry::{set_interest, Encode, FaceKind, Frame, Interest, Registry, Room, ANY};
use crate::session::{self, Close, Face, Handled, Link, Out, SessionLimits};

/// What the feed's upgrades share.
pub struct Shared {
    pub registry: Addr<Registry>,
    pub limits: SessionLimits,
}

/// Encodes an event as the JSON the dashboard reads: `{id, source, type, timestamp, user, room,
/// data}`.
pub struct Encoder;

impl Encode for Encoder {
    fn encode(&self, event: &Event) -> Frame {
        match serde_json::to_string(event) {
            Ok(json) => Frame::Text(json.into()),
            Err(cause) => {
                log::warn!(
                    "dashboard: event {} cannot be written as JSON, not shown: {cause}",
                    event.id
                );
                Frame::Nothing
            }
        }
    }
}

/// One dashboard tab's feed: it wants every event and says nothing back.
pub struct Feed {
    registry: Addr<Registry>,
}

/// Sent to a tab that writes to the feed (it only reads).
const CLOSE_READ_ONLY: Close = Close {
    code: 1003,
    reason: "The feed is read-only",
};

impl Face for Feed {
    const KIND: FaceKind = FaceKind::Dashboard;
    const NAME: &'static str = "dashboard";

    fn opened(&mut self, link: &Link) -> Handled {
        let mut everything = Interest::default();
        everything.add(Room::Any, ANY, ANY);
        let recorded = set_interest(&self.registry, link.id, everything);
        Handled::Later(Box::pin(async move {
            match recorded.await {
                Ok(()) => Vec::new(),
                Err(cause) => {
                    log::error!("dashboard feed: {cause}");
                    vec![Out::Close(Close {
                        code: 1011,
                        reason: "Internal error",
                    })]
                }
            }
        }))
    }

    fn text(&mut self, _text: &str, _link: &Link) -> Handled {
        Handled::Now(vec![Out::Close(CLOSE_READ_ONLY)])
    }

    fn too_big(&mut self, _limit: usize, _text: bool, _link: &Link) -> Handled {
        Handled::Now(vec![Out::Close(CLOSE_READ_ONLY)])
    }
}

/// Whether `request` comes from a page of this server (or from no page at all): a page of
/// another site must not read the feed (browsers let any page open a WebSocket anywhere).
fn same_origin(request: &HttpRequest) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = request.headers().get(header::HOST);
    match (origin.to_str(), host.map(|host| host.to_str())) {
        (Ok(origin), Some(Ok(host))) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// `GET /dashboard/feed`: upgrades to the feed's WebSocket.
pub async fn upgrade(
    shared: web::Data<Shared>,
    request: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    if !same_origin(&request) {
        log::warn!(
            "dashboard feed: refused an upgrade from another site's page ({:?})",
            request.headers().get(header::ORIGIN)
        );
        return Ok(HttpResponse::Forbidden().finish());
    }
    let feed = Feed {
        registry: shared.registry.clone(),
    };
    session::start(
        feed,
        shared.registry.clone(),
        shared.limits.clone(),
        &request,
        stream,
    )
}
