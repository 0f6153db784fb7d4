//! The live feed: a WebSocket at `/dashboard/feed` that writes every published event as JSON.
//!
//! It is a registry subscriber like any face's connection: a [`session`] with this [`Feed`] face,
//! bounded by `limits.send_queue` and dropped as too slow when its tab stops reading, so a closed
//! or frozen dashboard never holds up the other faces. Each event is serialised once per publish
//! ([`Encoder`]), whatever the number of open tabs.

use actix::Addr;
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

/// `GET /dashboard/feed`: upgrades to the feed's WebSocket (the HTTP face's guard has checked the
/// token and the page's origin).
pub async fn upgrade(
    shared: web::Data<Shared>,
    request: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
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
