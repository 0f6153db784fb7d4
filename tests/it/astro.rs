//! The Astro face, driven by clients written from Astro's public documentation: Python
//! `websockets` and Node `ws` run the whole protocol checklist against the real binary, then a
//! restart on the same data dir restores subscriptions from a reconnect token.

use serde_json::{json, Value};

use crate::support::clients::{ScriptOutput, Streaming};
use crate::support::{Dirs, Options, TestServer, Ws};

/// The tokens the client scripts expect.
pub const TOKENS: &str = r#"
[[astro.tokens]]
token = "owner-secret"
room = "channel-1"
scopes = ["*"]

[[astro.tokens]]
token = "overlay-secret"
room = "channel-1"
scopes = ["activities:read", "tips:read"]

[[astro.tokens]]
token = "room2-secret"
room = "channel-2"
scopes = ["*"]

[[astro.tokens]]
token = "room3-secret"
room = "channel-3"
scopes = ["*"]

[[astro.tokens]]
token = "room4-secret"
room = "channel-4"
scopes = ["*"]

[[astro.tokens]]
token = "room5-secret"
room = "channel-5"
scopes = ["*"]
"#;

fn options() -> Options {
    Options {
        extra_toml: TOKENS.into(),
        ..Options::default()
    }
}

const CHECKLIST: &[&str] = &[
    "ok welcome",
    "ok subscribe with an empty room",
    "ok subscribe with the token's room",
    "ok token types",
    "ok unauthorized",
    "ok every topic with a star token",
    "ok contests needs only a valid token",
    "ok invalid message type",
    "ok bad requests",
    "ok subscription limit",
    "ok rate limit",
    "ok follow reaches its room",
    "ok follow does not reach another room",
    "ok no room reaches nobody",
    "ok donation",
    "ok chat",
    "ok overlay broadcast",
    "ok unsubscribe with a room",
    "ok unsubscribe without a room",
    "ok unsubscribe never subscribed",
    "ok binary frame ignored",
    "ok notification envelope",
];

pub fn assert_checklist(output: &ScriptOutput) {
    output.assert_success();
    assert_eq!(output.lines(), CHECKLIST);
}

#[tokio::test]
async fn python_websockets_runs_the_astro_checklist() {
    let server = TestServer::start_with(options());
    let args = ["checklist", server.url("astro"), server.url("http")];
    assert_checklist(&server.script("astro_client.py", &args).await);
}

#[tokio::test]
async fn node_ws_runs_the_astro_checklist() {
    let server = TestServer::start_with(options());
    let args = ["checklist", server.url("astro"), server.url("http")];
    assert_checklist(&server.script("astro.mjs", &args).await);
}

/// Subscribes with `script`, stops the server, restarts it on the same data dir, and restores.
async fn restores_after_a_restart(script: &str) {
    let server = TestServer::start_with(options());
    let (astro, http) = (
        server.url("astro").to_owned(),
        server.url("http").to_owned(),
    );
    let mut client = Streaming::start(script, &["shutdown", &astro, &http]);
    assert_eq!(client.line().await, "ok subscribed");
    server.terminate();
    let token = client.line().await;
    let token = token
        .strip_prefix("token ")
        .expect("a token line")
        .to_owned();
    assert_eq!(client.line().await, "ok reconnect");
    let server = server.restart_after_exit();
    let args = ["restore", server.url("astro"), server.url("http"), &token];
    let output = server.script(script, &args).await;
    output.assert_success();
    assert_eq!(output.lines(), ["ok restored", "ok tampered", "ok empty"]);
}

#[tokio::test]
async fn python_websockets_gets_its_subscriptions_back_after_a_restart() {
    restores_after_a_restart("astro_client.py").await;
}

#[tokio::test]
async fn node_ws_gets_its_subscriptions_back_after_a_restart() {
    restores_after_a_restart("astro.mjs").await;
}

/// A raw Astro client subscribed to `topic` in `channel-1` with the owner token.
async fn subscriber(server: &TestServer, topic: &str) -> Ws {
    let mut ws = Ws::connect(server.url("astro")).await;
    assert_eq!(ws.recv().await["type"], "welcome");
    ws.send(json!({"type": "subscribe", "nonce": "n", "data": {"topic": topic, "room": "", "token": "owner-secret", "token_type": "apikey"}}))
        .await;
    let response = ws.recv().await;
    assert_eq!(response["data"]["room"], "channel-1", "{response}");
    ws
}

#[tokio::test]
async fn events_from_the_custom_face_and_from_rules_reach_astro_and_the_other_faces() {
    let dirs = Dirs::new();
    dirs.write_rule(
        "confetti.rule.json",
        &json!({"kind": "rule", "schemaVersion": 1,
        "id": "01JE0A5TR0RV1E0000000000AA", "name": "Confetti",
        "triggers": [{"on": "boss_defeated", "sources": ["mygame"]}],
        "steps": [{"kind": "emit", "type": "channel.overlay.broadcast", "room": "{{ event.room }}",
                   "data": {"target": "global", "event": "confetti"}}]})
        .to_string(),
    );
    let server = TestServer::start_in(dirs, options());
    let mut astro = subscriber(&server, "channel.activities").await;
    let mut overlay = subscriber(&server, "channel.overlay.broadcast").await;
    let (mut streamerbot, _) = Ws::streamerbot(&server).await;
    let reply = streamerbot
        .request(json!({"request": "Subscribe", "events": {"Twitch": ["Follow"]}, "id": "s"}))
        .await;
    assert_eq!(reply["status"], "ok");

    let mut custom = Ws::custom(&server).await;
    custom
        .send(json!({"action": "injectEvent", "event": {"source": "twitch", "type": "follow", "room": "channel-1",
            "user": {"id": "7", "username": "alice", "nickname": "Alice"}}}))
        .await;
    let follow = astro.recv().await;
    assert_eq!(follow["topic"], "channel.activities");
    assert_eq!(follow["data"]["type"], "follow");
    assert_eq!(follow["data"]["data"]["displayName"], "Alice");
    let event = streamerbot.recv().await;
    assert_eq!(event["event"]["source"], "Twitch");
    assert_eq!(event["event"]["type"], "Follow");

    server.inject(json!({"source": "mygame", "type": "boss_defeated", "room": "channel-1"}));
    let broadcast = overlay.recv().await;
    assert_eq!(broadcast["topic"], "channel.overlay.broadcast");
    assert_eq!(
        broadcast["data"],
        json!({"target": "global", "event": "confetti"})
    );
}

#[tokio::test]
async fn without_tokens_the_astro_face_refuses_every_subscribe() {
    let server = TestServer::start();
    assert!(server.url("astro").starts_with("ws://127.0.0.1:"));
    let mut ws = Ws::connect(server.url("astro")).await;
    let welcome: Value = ws.recv().await;
    assert_eq!(welcome["type"], "welcome");
    ws.send(json!({"type": "subscribe", "nonce": "n", "data": {"topic": "channel.activities", "token": "x", "token_type": "jwt"}}))
        .await;
    assert_eq!(ws.recv().await["error"], "err_unauthorized");
}

#[tokio::test]
async fn the_astro_widget_example_runs_as_written() {
    let server = TestServer::start_with(options());
    let widget = crate::support::project_dir().join("examples/astro_widget.js");
    let env = [
        ("ASTRO_URL", server.url("astro")),
        ("ASTRO_TOKEN", "overlay-secret"),
        ("ASTRO_ALERTS", "2"),
    ];
    let mut client = Streaming::start_with(widget.to_str().unwrap(), &[], &env);
    let mut subscribed = [client.line().await, client.line().await];
    subscribed.sort();
    assert_eq!(
        subscribed,
        [
            "subscribed to channel.activities in channel-1",
            "subscribed to channel.tips in channel-1"
        ]
    );
    server.inject(
        json!({"source": "twitch", "type": "follow", "room": "channel-1",
        "user": {"id": "7", "username": "alice", "nickname": "Alice"}}),
    );
    assert_eq!(client.line().await, "Alice: follow on twitch");
    server.inject(
        json!({"source": "streamlabs", "type": "donation", "room": "channel-1",
        "user": {"username": "bob"}, "data": {"amount": 5, "currency": "USD", "message": "gg"}}),
    );
    assert_eq!(client.line().await, "bob: tip on streamlabs");
}

#[tokio::test]
async fn an_expired_reconnect_token_is_closed_1008_and_a_fresh_one_welcomed() {
    use base64::Engine as _;
    use sha2::Digest as _;
    use switchboard::faces::astro::reconnect::{Keys, Sub};

    let server = TestServer::start_with(options());
    server.terminate();
    let (dirs, options) = server.exited();
    // Sign tokens with the secret the server keeps in its store, as it would.
    let store = switchboard::store::Store::open(dirs.data.path()).unwrap();
    let secret = store.meta().get("astro.reconnectSecret").unwrap();
    let secret = base64::engine::general_purpose::STANDARD
        .decode(
            secret
                .as_ref()
                .and_then(Value::as_str)
                .expect("a stored secret"),
        )
        .unwrap();
    drop(store);
    let keys = Keys::new(&secret);
    let digest = sha2::Sha256::digest(b"owner-secret");
    let fp: String = digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let subs = [Sub {
        topic: "channel.activities".into(),
        room: "channel-1".into(),
        fp,
    }];
    let now = chrono::Utc::now().timestamp();
    let server = TestServer::start_in(dirs, options);
    let url = |token: &str| format!("{}?reconnect_token={token}", server.url("astro"));

    let mut expired = Ws::connect(&url(&keys.issue(&subs, now - 301))).await;
    let closed = expired.closed().await;
    assert_eq!(closed, (1008, "Invalid reconnect token".to_owned()));

    let mut fresh = Ws::connect(&url(&keys.issue(&subs, now))).await;
    assert_eq!(fresh.recv().await["type"], "welcome");
    server.inject(json!({"source": "twitch", "type": "follow", "room": "channel-1"}));
    assert_eq!(fresh.recv().await["topic"], "channel.activities");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_dropped_after_about_70_seconds() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start_with(options());
    let (mut socket, _) = tokio_tungstenite::connect_async(server.url("astro"))
        .await
        .unwrap();
    let welcome = socket.next().await.unwrap().unwrap();
    assert!(matches!(welcome, Message::Text(text) if text.contains("welcome")));
    let connected = std::time::Instant::now();
    // From here on the client reads nothing, so it answers no ping (tungstenite answers while
    // it reads). The server checks at each 30 s heartbeat: dropped between 70 and 100 s.
    let within = std::time::Duration::from_secs(110);
    server.wait_for_log_within("no pong for 70 s, dropping the connection", within);
    assert!(connected.elapsed() >= std::time::Duration::from_secs(70));
    // Dropped without a close handshake: whatever pings were queued, then the end of the stream.
    while let Some(frame) = socket.next().await {
        match frame {
            Ok(Message::Ping(_)) => continue,
            Ok(other) => panic!("expected nothing but pings before the drop, got {other:?}"),
            Err(_) => break,
        }
    }
}
