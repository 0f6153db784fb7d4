//! Hostile clients: on every face, in turn, malformed JSON, unknown requests, wrong types, wrong
//! passwords, tokens and keys, a frame header announcing 64 MiB, an unfinished fragmented message
//! and text that is not UTF-8. Each must get the answer or the close its face documents; none may
//! disturb the well-behaved clients (which the deliveries show).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::faces::{self, Endpoints, Face};
use crate::wire::{self, Ending, Raw, RawFrame, WireError};
use futures_util::SinkExt;

const MIB: u64 = 1 << 20;

/// What the hostile clients did and met.
#[derive(Default)]
pub struct Tally {
    /// Connections opened.
    pub connections: AtomicU64,
    /// Probes whose answer was the documented one.
    pub passed: AtomicU64,
    /// Probes answered otherwise.
    pub unexpected: AtomicU64,
    /// The first unexpected answers.
    pub first_unexpected: Mutex<Vec<String>>,
}

impl Tally {
    fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    fn check(&self, face: &str, probe: &str, result: Result<(), WireError>) {
        match result {
            Ok(()) => {
                self.passed.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.unexpected.fetch_add(1, Ordering::Relaxed);
                let line = format!("{face} / {probe}: {error}");
                crate::notice(&format!("hostile client got an unexpected answer: {line}"));
                let mut first = self
                    .first_unexpected
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if first.len() < 20 {
                    first.push(line);
                }
            }
        }
    }
}

/// One round: every probe on every face, one after the other.
pub async fn round(endpoints: &Endpoints, tally: &Tally) {
    for face in Face::ALL {
        let (url, headers) = match face {
            Face::Streamerbot => (endpoints.streamerbot.as_str(), Vec::new()),
            Face::Custom => (endpoints.custom.as_str(), endpoints.bearer()),
            Face::Astro => (endpoints.astro.as_str(), Vec::new()),
            Face::Socketio => (endpoints.socketio.as_str(), Vec::new()),
        };
        let name = face.name();
        let result = match face {
            Face::Streamerbot => streamerbot_credentials(endpoints, tally).await,
            Face::Custom => custom_credentials(endpoints, tally).await,
            Face::Astro => astro_credentials(endpoints, tally).await,
            Face::Socketio => socketio_credentials(endpoints, tally).await,
        };
        tally.check(name, "wrong credentials", result);
        let result = match face {
            Face::Streamerbot => streamerbot_garbage(endpoints, tally).await,
            Face::Custom => custom_garbage(endpoints, tally).await,
            Face::Astro => astro_garbage(endpoints, tally).await,
            Face::Socketio => socketio_garbage(endpoints, tally).await,
        };
        tally.check(name, "malformed and unknown requests", result);
        // Socket.IO's WebSocket layer (tungstenite, in socketioxide) closes without a status
        // code; the other faces close with the codes their pages document.
        let (too_big, not_utf8) = match face {
            Face::Socketio => ((1005, ""), (1005, "")),
            _ => ((1009, "Message too big"), (1007, "Text is not UTF-8")),
        };
        tally.check(
            name,
            "64 MiB frame header",
            oversized(url, &headers, too_big, tally).await,
        );
        tally.check(
            name,
            "unfinished fragmented message",
            unfinished(url, &headers, tally).await,
        );
        tally.check(
            name,
            "text that is not UTF-8",
            not_utf8_text(url, &headers, not_utf8, tally).await,
        );
    }
    tally.check("http", "malformed bodies", http(endpoints, tally).await);
}

fn expect(text: &str, needle: &str) -> Result<(), WireError> {
    if text.contains(needle) {
        Ok(())
    } else {
        Err(WireError::Unexpected(format!(
            "expected {needle:?}, got {text}"
        )))
    }
}

/// Sends `request` and checks that the next text frame contains `needle`.
async fn answered(ws: &mut wire::Ws, request: &str, needle: &str) -> Result<(), WireError> {
    wire::send(ws, request).await?;
    expect(&wire::next_text(ws, "an answer").await?, needle)
}

/// The connection ended as `wanted` says: that close (1005: a close frame without a code).
fn ended_as(ending: Ending, (code, reason): (u16, &str)) -> Result<(), WireError> {
    match &ending {
        Ending::Closed(got, said) if *got == code && said == reason => Ok(()),
        Ending::ClosedBare if code == 1005 => Ok(()),
        _ => Err(WireError::Unexpected(format!(
            "expected close {code} {reason:?}, got {ending}"
        ))),
    }
}

async fn streamerbot_credentials(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    tally.connected();
    let mut ws = wire::connect(&endpoints.streamerbot, &[], None).await?;
    let hello = wire::next_text(&mut ws, "the Hello").await?;
    expect(&hello, "\"authentication\"")?;
    let early = json!({"request": "Subscribe", "id": "early", "events": {"*": ["*"]}});
    answered(&mut ws, &early.to_string(), "Authentication required").await?;
    let wrong = json!({"request": "Authenticate", "id": "wrong",
                       "authentication": "d3JvbmcgYW5zd2VyIHdyb25nIGFuc3dlciB3cm9uZyE="});
    answered(&mut ws, &wrong.to_string(), "Authentication failed").await?;
    let _ = ws.close(None).await;
    Ok(())
}

async fn streamerbot_garbage(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    tally.connected();
    let mut ws = wire::connect(&endpoints.streamerbot, &[], None).await?;
    if let Some(login) = faces::streamerbot_login(&mut ws, &endpoints.password).await? {
        faces::expect_ok(&login, "the login")?;
    }
    answered(&mut ws, "{not json", "Invalid JSON").await?;
    answered(&mut ws, "[1]", "Request must be a JSON object").await?;
    let unknown = json!({"request": "SoakNoSuchRequest", "id": "u"});
    answered(
        &mut ws,
        &unknown.to_string(),
        "Unknown request: SoakNoSuchRequest",
    )
    .await?;
    let wrong_type = json!({"request": "Subscribe", "id": "t", "events": "everything"});
    answered(&mut ws, &wrong_type.to_string(), "events must be an object").await?;
    let wrong_type = json!({"request": "GetGlobal", "id": "v", "variable": 5});
    answered(
        &mut ws,
        &wrong_type.to_string(),
        "variable must be a non-empty string",
    )
    .await?;
    let fine = json!({"request": "GetInfo", "id": "info"});
    answered(&mut ws, &fine.to_string(), "\"status\":\"ok\"").await?;
    let _ = ws.close(None).await;
    Ok(())
}

async fn custom_credentials(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    tally.connected();
    let wrong = [("Authorization", "Bearer not-the-token".to_owned())];
    let mut ws = wire::connect(&endpoints.custom, &wrong, None).await?;
    expect(
        &wire::next_text(&mut ws, "the refusal").await?,
        "AUTH_FAILED",
    )?;
    ended_as(wire::ending(&mut ws).await?, (4401, "Unauthorized"))
}

async fn custom_garbage(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    tally.connected();
    let mut ws = wire::connect(&endpoints.custom, &endpoints.bearer(), None).await?;
    answered(&mut ws, "{not json", "INVALID_PAYLOAD").await?;
    answered(&mut ws, r#"{"action": "soakNoSuch"}"#, "INVALID_ACTION").await?;
    let wrong_type = json!({"action": "injectEvent", "event": {"type": 5}});
    answered(&mut ws, &wrong_type.to_string(), "INVALID_PAYLOAD").await?;
    answered(
        &mut ws,
        r#"{"action": "subscribe", "sources": "x"}"#,
        "INVALID_PAYLOAD",
    )
    .await?;
    ws.send(Message::Binary(vec![1, 2, 3])).await?;
    expect(
        &wire::next_text(&mut ws, "an answer").await?,
        "INVALID_PAYLOAD",
    )?;
    let fine = json!({"action": "subscribe", "sources": ["soak-nowhere"]});
    answered(&mut ws, &fine.to_string(), "\"status\":\"ok\"").await?;
    let _ = ws.close(None).await;
    Ok(())
}

async fn astro_credentials(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    tally.connected();
    let mut ws = wire::connect(&endpoints.astro, &[], None).await?;
    expect(&wire::next_text(&mut ws, "the welcome").await?, "welcome")?;
    let wrong = json!({"type": "subscribe", "nonce": "wrong", "data": {"topic": faces::KIND,
                       "token": "not-the-token", "token_type": "apikey"}});
    answered(&mut ws, &wrong.to_string(), "err_unauthorized").await?;
    let _ = ws.close(None).await;
    Ok(())
}

async fn astro_garbage(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    tally.connected();
    let mut ws = wire::connect(&endpoints.astro, &[], None).await?;
    expect(&wire::next_text(&mut ws, "the welcome").await?, "welcome")?;
    answered(&mut ws, "{not json", "err_bad_request").await?;
    let unknown = json!({"type": "publish", "nonce": "p", "data": {}});
    answered(&mut ws, &unknown.to_string(), "invalid_message_type").await?;
    let wrong_type = json!({"type": "subscribe", "nonce": "t", "data": {"topic": 5}});
    answered(&mut ws, &wrong_type.to_string(), "err_bad_request").await?;
    let unknown_topic = json!({"type": "subscribe", "nonce": "n", "data": {"topic": "channel.nowhere",
                               "token": "x", "token_type": "apikey"}});
    answered(&mut ws, &unknown_topic.to_string(), "invalid topic").await?;
    let fine = json!({"type": "subscribe", "nonce": "f", "data": {"topic": "channel.activities",
                      "token": endpoints.astro_token, "token_type": "apikey"}});
    answered(&mut ws, &fine.to_string(), "successfully subscribed").await?;
    let _ = ws.close(None).await;
    Ok(())
}

async fn socketio_credentials(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    tally.connected();
    let auth = json!({"apiKey": "not-the-key"});
    let (mut ws, answer) = faces::socketio_connect(&endpoints.socketio, &auth).await?;
    expect(&answer, "44")?;
    expect(&answer, "Invalid API key")?;
    let _ = ws.close(None).await;
    Ok(())
}

async fn socketio_garbage(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    tally.connected();
    let auth = json!({"apiKey": endpoints.api_key});
    let (mut ws, answer) = faces::socketio_connect(&endpoints.socketio, &auth).await?;
    expect(&answer, "40")?;
    answered(
        &mut ws,
        r#"42["subscribe",{"guildIds":"x"}]"#,
        "INVALID_PAYLOAD",
    )
    .await?;
    // An unknown event is ignored; the subscribe after it is answered first.
    wire::send(&mut ws, r#"42["soakNoSuchEvent",{}]"#).await?;
    answered(&mut ws, r#"421["inject",{"event":5}]"#, r#"431[{"#).await?;
    answered(
        &mut ws,
        r#"42["subscribe",{"guildIds":["soak-nowhere"]}]"#,
        r#"42["subscribed""#,
    )
    .await?;
    // A packet that is not Socket.IO ends the connection.
    wire::send(&mut ws, r#"42["subscribe",{nope"#).await?;
    wire::ending(&mut ws).await.map(|_| ())
}

/// Announces a 64 MiB text frame and sends its first 64 KiB: the face must close the connection
/// with `close` without reading the rest.
async fn oversized(
    url: &str,
    headers: &[(&'static str, String)],
    close: (u16, &str),
    tally: &Tally,
) -> Result<(), WireError> {
    tally.connected();
    let mut raw = Raw::connect(url, headers).await?;
    raw.write(&Raw::header(true, 0x1, 64 * MIB)).await?;
    // The server may have closed already: what matters is what it answers.
    let _ = tokio::time::timeout(wire::STEP, raw.write(&vec![b' '; 64 * 1024])).await;
    ended_as(raw.ending().await, close)
}

/// Starts a text message that never ends, checks (with a ping) that the server goes on reading
/// it, then drops the connection mid-message.
async fn unfinished(
    url: &str,
    headers: &[(&'static str, String)],
    tally: &Tally,
) -> Result<(), WireError> {
    tally.connected();
    let mut raw = Raw::connect(url, headers).await?;
    raw.send_frame(false, 0x1, &vec![b' '; 64 * 1024]).await?;
    raw.send_frame(true, 0x9, b"soak").await?;
    loop {
        match raw.frame().await? {
            RawFrame::Pong(payload) if payload == b"soak" => return Ok(()),
            RawFrame::Close(code, reason) => {
                return Err(WireError::Unexpected(format!(
                    "closed {code} {reason:?} instead of answering the ping"
                )))
            }
            _ => continue,
        }
    }
}

/// Sends a text frame that is not UTF-8: the face must close the connection with `close`.
async fn not_utf8_text(
    url: &str,
    headers: &[(&'static str, String)],
    close: (u16, &str),
    tally: &Tally,
) -> Result<(), WireError> {
    tally.connected();
    let mut raw = Raw::connect(url, headers).await?;
    raw.send_frame(true, 0x1, &[b'{', 0xc3, 0x28, b'}']).await?;
    ended_as(raw.ending().await, close)
}

/// One HTTP request and the status it must get.
struct Case<'a> {
    method: &'static str,
    path: &'static str,
    body: &'a [u8],
    /// What `Content-Length` announces, when not the body's length.
    announced: Option<u64>,
    status: u16,
}

impl<'a> Case<'a> {
    fn post(body: &'a [u8], status: u16) -> Case<'a> {
        Case {
            method: "POST",
            path: "/events",
            body,
            announced: None,
            status,
        }
    }

    fn get(path: &'static str, status: u16) -> Case<'a> {
        Case {
            method: "GET",
            path,
            body: b"",
            announced: None,
            status,
        }
    }
}

/// The HTTP face: bodies that are not JSON, fields of the wrong type, a body over the limit, a
/// `Content-Length` of 64 MiB, an unknown path; then a health check.
async fn http(endpoints: &Endpoints, tally: &Tally) -> Result<(), WireError> {
    let base = endpoints.http.as_str();
    let large = vec![b' '; 2 * MIB as usize];
    let cases = [
        Case::post(b"{not json", 400),
        Case::post(br#"{"source": 5, "type": "x"}"#, 400),
        Case::post(&large, 413),
        Case {
            announced: Some(64 * MIB),
            ..Case::post(&large[..64 * 1024], 413)
        },
        Case::get("/soak-nowhere", 404),
        Case::get("/health", 200),
    ];
    for Case {
        method,
        path,
        body,
        announced,
        status: wanted,
    } in cases
    {
        tally.connected();
        let length = announced.unwrap_or(body.len() as u64);
        let status =
            wire::http_status(base, method, path, body, length, &endpoints.admin_token).await?;
        if status != wanted {
            return Err(WireError::Unexpected(format!(
                "{method} {path} ({length} bytes announced): expected {wanted}, got {status}"
            )));
        }
    }
    Ok(())
}
