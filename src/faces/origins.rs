//! Which browser pages may open a WebSocket face (`allowed_origins`).
//!
//! Browsers let any page open a WebSocket to any address, the streamer's own computer included,
//! and say which page it is in `Origin`. A face with `allowed_origins` accepts only the listed
//! origins (`null` is what pages opened from a file send, as OBS browser sources do), and
//! programs that send no `Origin` at all; without the key, every page may connect, which is what
//! overlays hosted anywhere expect, and the face's credential is what stands in the way.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::log_limit::{more, Limited};

/// Whether a request with `origin` (its `Origin` header, if any) may connect.
pub fn permits(allowed: Option<&[String]>, origin: Option<&[u8]>) -> bool {
    match (allowed, origin) {
        (None, _) | (_, None) => true,
        (Some(allowed), Some(origin)) => {
            let origin = origin.strip_suffix(b"/").unwrap_or(origin);
            allowed
                .iter()
                .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin))
        }
    }
}

/// The 403 for an upgrade from a page that is not allowed, or `None` when it may go on.
pub fn refuse(
    face: &str,
    allowed: Option<&[String]>,
    request: &HttpRequest,
) -> Option<HttpResponse> {
    let origin = request.headers().get(header::ORIGIN);
    if permits(allowed, origin.map(|origin| origin.as_bytes())) {
        return None;
    }
    static LIMITED: Limited = Limited::new();
    LIMITED.warn(|left_out| {
        log::warn!(
            "{face}: refused a connection from {:?}: its page's origin {origin:?} is not in \
             {face}.allowed_origins{}",
            request.peer_addr(),
            more(left_out)
        )
    });
    Some(HttpResponse::Forbidden().body(REFUSED))
}

/// The body of the 403.
const REFUSED: &str = "This page's origin is not in the face's allowed_origins";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_and_programs_without_one_are_permitted() {
        let allowed = ["null".to_owned(), "https://overlays.example.com".to_owned()];
        let allowed = Some(&allowed[..]);
        assert!(permits(allowed, None));
        assert!(permits(allowed, Some(b"null")));
        assert!(permits(allowed, Some(b"https://Overlays.example.com")));
        assert!(!permits(allowed, Some(b"https://evil.example")));
        assert!(!permits(allowed, Some(b"http://overlays.example.com")));
        assert!(permits(None, Some(b"https://evil.example")));
    }
}
