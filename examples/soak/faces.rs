//! The well-behaved side: each face's login and subscription, the subscribers that must see every
//! event in order, and the publishers (the custom face's `injectEvent`, `POST /events`).
//!
//! Every soak event is one and the same kind, so that each event reaches every face:
//! type `channel.overlay.broadcast` (an Astro topic by name), source `discord` (the Socket.IO
//! face's source), room `soak` (the Astro token's room, the Socket.IO guild). Its data is
//! `{"stream": s, "seq": n, "sent": ns}`: stream 0 is injected on the custom face, stream 1 posted
//! to the HTTP face, each numbered from 0 by one publisher that sends in order, so every subscriber
//! must see each stream's numbers one after the other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::wire::{self, Ending, WireError, Ws};

pub const KIND: &str = "channel.overlay.broadcast";
pub const SOURCE: &str = "discord";
pub const ROOM: &str = "soak";
/// Where stream 0 (custom face) and stream 1 (HTTP face) go in per-stream arrays.
pub const STREAMS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    Streamerbot,
    Custom,
    Astro,
    Socketio,
}

impl Face {
    pub const ALL: [Face; 4] = [Face::Streamerbot, Face::Custom, Face::Astro, Face::Socketio];

    pub fn name(self) -> &'static str {
        match self {
            Face::Streamerbot => "streamerbot",
            Face::Custom => "custom",
            Face::Astro => "astro",
            Face::Socketio => "socketio",
        }
    }
}

/// Where the faces listen and what lets a client in.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `http://host:port`
    pub http: String,
    pub streamerbot: String,
    pub custom: String,
    pub astro: String,
    /// The Engine.IO WebSocket URL: `ws://host:port/socket.io/?EIO=4&transport=websocket`.
    pub socketio: String,
    pub token: String,
    pub password: String,
    pub astro_token: String,
    pub api_key: String,
    /// The HTTP API's admin token.
    pub admin_token: String,
}

impl Endpoints {
    pub fn bearer(&self) -> Vec<(&'static str, String)> {
        vec![("Authorization", format!("Bearer {}", self.token))]
    }
}

fn hash(text: &str) -> String {
    STANDARD.encode(Sha256::digest(text.as_bytes()))
}

/// The Streamer.bot face: reads the Hello and, when it asks for one, logs in with `password`.
/// Returns the login's reply (`None` without a login).
pub async fn streamerbot_login(ws: &mut Ws, password: &str) -> Result<Option<Value>, WireError> {
    let hello: Value = json_of(&wire::next_text(ws, "the Hello").await?)?;
    let Some(auth) = hello.get("authentication") else {
        return Ok(None);
    };
    let salt = auth["salt"].as_str().unwrap_or_default();
    let challenge = auth["challenge"].as_str().unwrap_or_default();
    let answer = hash(&format!(
        "{}{challenge}",
        hash(&format!("{password}{salt}"))
    ));
    let request = json!({"request": "Authenticate", "authentication": answer, "id": "login"});
    wire::send(ws, request.to_string()).await?;
    let reply = wire::reply(ws, "the login reply", |text| {
        text.contains(r#""id":"login""#)
    })
    .await?;
    json_of(&reply).map(Some)
}

pub fn json_of(text: &str) -> Result<Value, WireError> {
    serde_json::from_str(text).map_err(|_| WireError::Unexpected(format!("not JSON: {text}")))
}

/// Engine.IO open, then the Socket.IO CONNECT with `auth`; the server's answer to the CONNECT
/// (`40…` accepted, `44…` refused).
pub async fn socketio_connect(url: &str, auth: &Value) -> Result<(Ws, String), WireError> {
    socketio_connect_on(url, auth, None).await
}

async fn socketio_connect_on(
    url: &str,
    auth: &Value,
    receive_buffer: Option<u32>,
) -> Result<(Ws, String), WireError> {
    let mut ws = wire::connect(url, &[], receive_buffer).await?;
    let open = wire::next_text(&mut ws, "the Engine.IO open packet").await?;
    if !open.starts_with('0') {
        return Err(WireError::Unexpected(format!("not an open packet: {open}")));
    }
    wire::send(&mut ws, format!("40{auth}")).await?;
    let answer = wire::reply(&mut ws, "the namespace connect", |text| {
        text.starts_with("40") || text.starts_with("44")
    })
    .await?;
    Ok((ws, answer))
}

/// A connection to `face`, logged in and subscribed to the soak's events; returned once the
/// subscription is acknowledged, so that it receives every event published from then on.
pub async fn subscribe(
    face: Face,
    endpoints: &Endpoints,
    receive_buffer: Option<u32>,
) -> Result<Ws, WireError> {
    match face {
        Face::Streamerbot => {
            let mut ws = wire::connect(&endpoints.streamerbot, &[], receive_buffer).await?;
            if let Some(login) = streamerbot_login(&mut ws, &endpoints.password).await? {
                expect_ok(&login, "the login")?;
            }
            let request = json!({"request": "Subscribe", "id": "subscribe",
                                 "events": {"Discord": ["ChannelOverlayBroadcast"]}});
            wire::send(&mut ws, request.to_string()).await?;
            let reply = wire::reply(&mut ws, "the Subscribe reply", |text| {
                text.contains(r#""id":"subscribe""#)
            })
            .await?;
            expect_ok(&json_of(&reply)?, "Subscribe")?;
            Ok(ws)
        }
        Face::Custom => {
            let mut ws =
                wire::connect(&endpoints.custom, &endpoints.bearer(), receive_buffer).await?;
            let request = json!({"action": "subscribe", "sources": [SOURCE], "eventTypes": [KIND]});
            wire::send(&mut ws, request.to_string()).await?;
            let reply = wire::next_text(&mut ws, "the subscribe ack").await?;
            expect_ok(&json_of(&reply)?, "subscribe")?;
            Ok(ws)
        }
        Face::Astro => {
            let mut ws = wire::connect(&endpoints.astro, &[], receive_buffer).await?;
            wire::reply(&mut ws, "the welcome", |text| text.contains(r#""welcome""#)).await?;
            let request = json!({"type": "subscribe", "nonce": "subscribe",
                                 "data": {"topic": KIND, "room": ROOM,
                                          "token": endpoints.astro_token, "token_type": "apikey"}});
            wire::send(&mut ws, request.to_string()).await?;
            let reply = wire::reply(&mut ws, "the subscribe response", |text| {
                text.contains(r#""nonce":"subscribe""#)
            })
            .await?;
            if reply.contains(r#""error""#) {
                return Err(WireError::Unexpected(format!("subscribe refused: {reply}")));
            }
            Ok(ws)
        }
        Face::Socketio => {
            let auth = json!({"apiKey": endpoints.api_key});
            let (mut ws, answer) =
                socketio_connect_on(&endpoints.socketio, &auth, receive_buffer).await?;
            if !answer.starts_with("40") {
                return Err(WireError::Unexpected(format!("refused: {answer}")));
            }
            let subscribe = json!(["subscribe", {"guildIds": [ROOM]}]);
            wire::send(&mut ws, format!("42{subscribe}")).await?;
            wire::reply(&mut ws, "the subscribed answer", |text| {
                text.starts_with(r#"42["subscribed""#)
            })
            .await?;
            Ok(ws)
        }
    }
}

/// Fails unless a Streamer.bot or custom-face reply says `status: ok`.
pub fn expect_ok(reply: &Value, what: &str) -> Result<(), WireError> {
    if reply["status"] == "ok" {
        Ok(())
    } else {
        Err(WireError::Unexpected(format!("{what} failed: {reply}")))
    }
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// The data of event `seq` of `stream`.
pub fn data(stream: usize, seq: u64) -> Value {
    json!({"stream": stream, "seq": seq, "sent": now_ns()})
}

/// The number after `"key":` in a frame: a scan, not a parse.
fn field(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// (stream, seq, sent) of a soak event, whatever the face's framing.
pub fn probe(text: &str) -> Option<(usize, u64, u64)> {
    let stream = field(text, r#""stream":"#)? as usize;
    (stream < STREAMS).then_some(())?;
    Some((
        stream,
        field(text, r#""seq":"#)?,
        field(text, r#""sent":"#)?,
    ))
}

/// What one well-behaved subscriber has seen; read by the sampler while it runs.
#[derive(Debug, Default)]
pub struct Subscriber {
    /// The next number expected per stream.
    pub next: [AtomicU64; STREAMS],
    pub deliveries: AtomicU64,
    /// Numbers skipped (a later one arrived first).
    pub skipped: AtomicU64,
    /// Numbers that came again or after a later one.
    pub misordered: AtomicU64,
    /// Set when the connection ended before the soak stopped it.
    pub ended: AtomicBool,
}

impl Subscriber {
    /// What this subscriber has lost so far when `published` events were sent per stream.
    pub fn lost(&self, published: [u64; STREAMS]) -> u64 {
        let missing: u64 = (0..STREAMS)
            .map(|s| published[s].saturating_sub(self.next[s].load(Ordering::Relaxed)))
            .sum();
        missing + self.skipped.load(Ordering::Relaxed) + self.misordered.load(Ordering::Relaxed)
    }

    fn record(&self, stream: usize, seq: u64) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let next = self.next[stream].load(Ordering::Relaxed);
        if seq >= next {
            self.skipped.fetch_add(seq - next, Ordering::Relaxed);
            self.next[stream].store(seq + 1, Ordering::Relaxed);
        } else {
            self.misordered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads `ws` until `stop` says so, recording every soak event in `state`; the delivery latencies
/// (µs). A connection that ends first is reported and marks `state` ended.
pub async fn follow(
    face: Face,
    index: usize,
    mut ws: Ws,
    state: Arc<Subscriber>,
    mut stop: watch::Receiver<bool>,
) -> Histogram<u64> {
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .expect("constant histogram bounds are valid");
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => break,
            frame = ws.next() => frame,
        };
        let ending = match frame {
            Some(Ok(Message::Text(text))) => {
                if text == "2" {
                    if let Err(error) = ws.send(Message::Text("3".into())).await {
                        Some(wire::ending_of(&error))
                    } else {
                        None
                    }
                } else {
                    if let Some((stream, seq, sent)) = probe(&text) {
                        state.record(stream, seq);
                        let _ = latencies.record(now_ns().saturating_sub(sent) / 1000);
                    }
                    None
                }
            }
            Some(Ok(Message::Close(close))) => Some(match close {
                Some(close) => Ending::Closed(close.code.into(), close.reason.into_owned()),
                None => Ending::ClosedBare,
            }),
            Some(Ok(_)) => None,
            Some(Err(error)) => Some(wire::ending_of(&error)),
            None => Some(Ending::Dropped("end of stream".into())),
        };
        if let Some(ending) = ending {
            state.ended.store(true, Ordering::Relaxed);
            crate::notice(&format!(
                "well-behaved {} subscriber {index} lost its connection: {ending}",
                face.name()
            ));
            break;
        }
    }
    let _ = ws.close(None).await;
    latencies
}

/// What a publisher did.
#[derive(Debug, Default)]
pub struct Publisher {
    /// Events sent; the next number.
    pub sent: AtomicU64,
    /// Events the server acknowledged as published.
    pub acked: AtomicU64,
    /// Events refused or unanswered.
    pub failed: AtomicU64,
}

impl Publisher {
    /// Sent events whose outcome is known.
    fn settled(&self) -> bool {
        self.acked.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
            >= self.sent.load(Ordering::Relaxed)
    }
}

/// Injects stream 0 on the custom face at `rate` events/s until `stop`, then waits (bounded) for
/// the last acknowledgements.
pub async fn publish_custom(
    endpoints: Endpoints,
    rate: u64,
    tally: Arc<Publisher>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WireError> {
    let ws = wire::connect(&endpoints.custom, &endpoints.bearer(), None).await?;
    let (mut sink, mut acks) = ws.split();
    let reader = {
        let tally = tally.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = acks.next().await {
                let Message::Text(text) = frame else { continue };
                if text.contains(r#""status":"ok""#) {
                    tally.acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    crate::notice(&format!("the custom-face publisher was refused: {text}"));
                }
            }
        })
    };
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ticker.tick() => {}
        }
        let seq = tally.sent.load(Ordering::Relaxed);
        let event = json!({"action": "injectEvent", "event": {"type": KIND, "source": SOURCE,
                           "room": ROOM, "data": data(0, seq)}});
        tally.sent.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = sink.send(Message::Text(event.to_string())).await {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            reader.abort();
            return Err(error.into());
        }
    }
    let deadline = tokio::time::Instant::now() + wire::STEP;
    while !tally.settled() && tokio::time::Instant::now() < deadline {
        // Polling counters that the reader task moves: nothing to wait on but time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unanswered = tally
        .sent
        .load(Ordering::Relaxed)
        .saturating_sub(tally.acked.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed));
    tally.failed.fetch_add(unanswered, Ordering::Relaxed);
    let _ = sink.close().await;
    reader.abort();
    Ok(())
}

/// Posts stream 1 to `POST /events` at `rate` events/s until `stop` is set (a blocking loop on a
/// thread of its own, with one kept-alive HTTP connection).
pub fn publish_http(
    (http, admin_token): (&str, &str),
    rate: u64,
    tally: &Publisher,
    stop: &AtomicBool,
) {
    let agent = ureq::AgentBuilder::new().timeout(wire::STEP).build();
    let url = format!("{http}/events");
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut next = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let seq = tally.sent.fetch_add(1, Ordering::Relaxed);
        let event = json!({"source": SOURCE, "type": KIND, "room": ROOM, "data": data(1, seq)});
        let request = agent
            .post(&url)
            .set("Authorization", &format!("Bearer {admin_token}"))
            .set("Content-Type", "application/json");
        match request.send_string(&event.to_string()) {
            Ok(response) if response.status() == 200 => {
                tally.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                crate::notice(&format!("POST /events answered {}", response.status()));
            }
            Err(error) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                crate::notice(&format!("POST /events failed: {error}"));
            }
        }
        // Pacing, not synchronisation: the next event is due one period after this one was.
        next += period;
        if let Some(wait) = next.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_the_soak_fields_in_every_framing() {
        let frames = [
            r#"{"timeStamp":"x","event":{"source":"Discord","type":"ChannelOverlayBroadcast","id":"i"},"data":{"sent":345,"seq":12,"stream":1},"room":"soak"}"#,
            r#"{"action":"event","event":{"id":"i","type":"channel.overlay.broadcast","source":"discord","timestamp":1,"room":"soak","data":{"sent":345,"seq":12,"stream":1}}}"#,
            r#"{"id":"x","ts":"t","type":"message","topic":"channel.overlay.broadcast","room":"soak","data":{"sent":345,"seq":12,"stream":1}}"#,
            r#"42["discord",{"event":"channel.overlay.broadcast","guildId":"soak","data":{"sent":345,"seq":12,"stream":1}}]"#,
        ];
        for frame in frames {
            assert_eq!(probe(frame), Some((1, 12, 345)), "{frame}");
        }
        assert_eq!(probe(r#"{"id":"g1","status":"ok"}"#), None);
    }

    #[test]
    fn gaps_and_repeats_count_as_lost() {
        let state = Subscriber::default();
        for seq in [0, 1, 3, 3, 4] {
            state.record(0, seq);
        }
        state.record(1, 0);
        // 2 skipped, 3 repeated, stream 0 published up to 5 (all seen), stream 1 up to 3.
        assert_eq!(state.lost([5, 3]), 1 + 1 + 2);
    }
}
