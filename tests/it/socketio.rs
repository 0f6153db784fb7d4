//! The Socket.IO face, driven by the real `socket.io-client` (npm) and `python-socketio`
//! (PyPI) through HoloBridge's API, plus the raw HTTP of the Engine.IO handshake.

use crate::support::clients::ScriptOutput;
use crate::support::{Options, TestServer, TIMEOUT};

fn options(api_keys: &str) -> Options {
    Options {
        custom_token: Some("custom-secret".into()),
        socketio_toml: format!("api_keys = {api_keys}\n"),
        ..Options::default()
    }
}

/// `<scenario> <socketio-url> <http-url> <custom-url> <custom-token>` for a client script.
fn args<'a>(server: &'a TestServer, scenario: &'a str) -> [&'a str; 5] {
    let socketio = server.url("socketio").trim_end_matches("/socket.io/");
    [
        scenario,
        socketio,
        server.url("http"),
        server.url("custom"),
        "custom-secret",
    ]
}

const CHECKLIST: &[&str] = &[
    "ok connect with key-1 (polling, then upgrade to websocket)",
    "ok connect with key-2",
    "ok missing API key refused",
    "ok invalid API key refused",
    "ok subscribe",
    "ok unsubscribe answers the list as sent",
    "ok invalid subscribe payloads answer error INVALID_PAYLOAD",
    "ok socket still usable after the errors",
    "ok discord event with a room reaches its guild",
    "ok and not a socket in another guild",
    "ok discord event without a room reaches every socket",
    "ok after unsubscribe the guild event no longer arrives",
    "ok events from other sources reach no socket",
    "ok interactionCreate arrives as discord and as interaction:create",
    "ok interactionCreate without a room is only a discord event",
    "ok inject answers {status:\"ok\", eventId} through the ack",
    "ok the sender receives the injected event",
    "ok a custom-face subscriber receives the same event id",
    "ok invalid inject answers {status:\"error\", code:\"INVALID_PAYLOAD\"} through the ack",
    "ok invalid inject without an ack answers an error event",
    "ok inject without a guild reaches every socket",
    "ok invalid injects publish nothing",
    "ok inject with an empty or null guildId and null data",
    "ok every socket still connected",
];

pub const WEBSOCKET: &[&str] = &[
    "ok connect with transports [\"websocket\"]",
    "ok subscribe",
    "ok discord event with a room reaches its guild",
    "ok inject answers {status:\"ok\", eventId} through the ack",
    "ok the sender receives the injected event",
];

fn assert_lines(output: &ScriptOutput, expected: &[&str]) {
    output.assert_success();
    assert_eq!(output.lines(), expected);
}

#[tokio::test]
async fn socket_io_client_runs_the_checklist_over_polling_and_websocket() {
    let server = TestServer::start_with(options(r#"["key-1", "key-2"]"#));
    assert_lines(
        &server
            .script("socketio.mjs", &args(&server, "checklist"))
            .await,
        CHECKLIST,
    );
    assert_lines(
        &server
            .script("socketio.mjs", &args(&server, "websocket"))
            .await,
        WEBSOCKET,
    );
}

#[tokio::test]
async fn python_socketio_runs_the_checklist_over_polling_and_websocket() {
    let server = TestServer::start_with(options(r#"["key-1", "key-2"]"#));
    let checklist = server
        .script("socketio_client.py", &args(&server, "checklist"))
        .await;
    assert_lines(&checklist, CHECKLIST);
    let websocket = server
        .script("socketio_client.py", &args(&server, "websocket"))
        .await;
    assert_lines(&websocket, WEBSOCKET);
}

#[tokio::test]
async fn without_api_keys_every_client_is_refused() {
    let server = TestServer::start_with(options("[]"));
    let expected = [
        "ok key-1 refused with Invalid API key",
        "ok no auth refused with Missing API key",
    ];
    assert_lines(
        &server
            .script("socketio.mjs", &args(&server, "refused"))
            .await,
        &expected,
    );
    let python = server
        .script("socketio_client.py", &args(&server, "refused"))
        .await;
    assert_lines(&python, &expected);
}

#[tokio::test]
async fn the_engine_io_handshake_cors_and_other_paths() {
    let server = TestServer::start_with(options(r#"["key-1"]"#));
    let base = server.url("socketio");
    let open = ureq::get(&format!("{base}?EIO=4&transport=polling"))
        .set("Origin", "http://overlay.example")
        .timeout(TIMEOUT)
        .call()
        .expect("the open packet");
    assert_eq!(
        open.header("Access-Control-Allow-Origin"),
        Some("http://overlay.example")
    );
    let body = open.into_string().unwrap();
    let packet: serde_json::Value =
        serde_json::from_str(body.strip_prefix('0').expect("an open packet")).unwrap();
    assert_eq!(packet["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(packet["pingInterval"], 25000);
    assert_eq!(packet["pingTimeout"], 20000);
    assert_eq!(packet["maxPayload"], 1_000_000);
    let root = base.trim_end_matches("/socket.io/");
    for path in ["/", "/api/guilds", "/other"] {
        match ureq::get(&format!("{root}{path}")).timeout(TIMEOUT).call() {
            Err(ureq::Error::Status(404, _)) => {}
            other => panic!("{path}: expected 404, got {other:?}"),
        }
    }
    match ureq::get(&format!("{base}?EIO=3&transport=polling"))
        .timeout(TIMEOUT)
        .call()
    {
        Err(ureq::Error::Status(400, _)) => {}
        other => panic!("EIO=3: expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn the_holobridge_example_runs_as_written() {
    use crate::support::clients::Streaming;
    let server = TestServer::start_with(options(r#"["key-1"]"#));
    let example = crate::support::project_dir().join("examples/holobridge_client.js");
    let socketio = server.url("socketio").trim_end_matches("/socket.io/");
    let env = [
        ("SOCKETIO_URL", socketio),
        ("SOCKETIO_KEY", "key-1"),
        ("HOLOBRIDGE_EVENTS", "2"),
    ];
    let mut client = Streaming::start_with(example.to_str().unwrap(), &[], &env);
    assert_eq!(client.line().await, "subscribed to 111");
    let mut next = [client.line().await, client.line().await];
    next.sort();
    assert_eq!(
        next,
        [
            "injected ok",
            r#"messageCreate in 111: {"content":"hello from the example"}"#
        ]
    );
    server.inject(
        serde_json::json!({"source": "discord", "type": "userUpdate", "data": {"id": "333"}}),
    );
    assert_eq!(
        client.line().await,
        r#"userUpdate in no guild: {"id":"333"}"#
    );
}

/// A raw Engine.IO WebSocket client of the face, connected with `key-1`.
pub struct Sio(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Sio {
    /// Connects, authenticates and joins `guilds`, each packet once the previous is answered,
    /// as a client library sends them.
    pub async fn join(server: &TestServer, guilds: &[&str]) -> Sio {
        let url = server.url("socketio").replace("http://", "ws://") + "?EIO=4&transport=websocket";
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut sio = Sio(socket);
        assert!(sio.packet().await.starts_with('0'), "the open packet");
        sio.send(r#"40{"apiKey":"key-1"}"#).await;
        assert!(sio.packet().await.starts_with("40"), "the connect packet");
        let subscribe = serde_json::json!(["subscribe", {"guildIds": guilds}]);
        sio.send(&format!("42{subscribe}")).await;
        assert!(sio.packet().await.starts_with(r#"42["subscribed""#));
        sio
    }

    pub async fn send(&mut self, packet: &str) {
        use futures_util::SinkExt;
        let message = tokio_tungstenite::tungstenite::Message::Text(packet.into());
        self.0.send(message).await.unwrap();
    }

    /// The next packet but pings (answered), or `""` once the connection has ended.
    pub async fn packet(&mut self) -> String {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.0.next()).await;
            match frame.expect("a packet in time") {
                Some(Ok(Message::Text(text))) if text == "2" => self.send("3").await,
                Some(Ok(Message::Text(text))) => return text,
                Some(Ok(_)) => continue,
                _ => return String::new(),
            }
        }
    }

    /// The payload of the next `discord` event.
    pub async fn discord(&mut self) -> serde_json::Value {
        loop {
            let packet = self.packet().await;
            if let Some(event) = packet.strip_prefix("42") {
                let event: serde_json::Value = serde_json::from_str(event).unwrap();
                if event[0] == "discord" {
                    return event[1].clone();
                }
            }
            assert!(!packet.is_empty(), "the connection ended");
        }
    }
}

#[tokio::test]
async fn at_shutdown_socket_io_client_sees_a_lost_transport_and_would_reconnect() {
    let server = TestServer::start_with(options(r#"["key-1"]"#));
    let args = args(&server, "shutdown");
    let mut client = crate::support::clients::Streaming::start("socketio.mjs", &args);
    assert_eq!(client.line().await, "ok subscribed");
    server.terminate();
    assert_eq!(
        client.line().await,
        "ok A sees transport close and reconnects"
    );
    assert_eq!(
        client.line().await,
        "ok B sees transport close and reconnects"
    );
}

#[tokio::test]
async fn shutdown_disconnects_every_socket() {
    let server = TestServer::start_with(options(r#"["key-1"]"#));
    let mut socket = Sio::join(&server, &[]).await;
    server.terminate();
    // Engine.IO's close packet (a client reconnects on it), then the end of the connection.
    let mut packets = Vec::new();
    loop {
        match socket.packet().await {
            packet if packet.is_empty() => break,
            packet => packets.push(packet),
        }
    }
    assert_eq!(packets, ["1"], "{:#?}", server.logs());
}

#[tokio::test]
async fn a_socket_that_stops_reading_is_dropped_as_too_slow_and_the_others_go_on() {
    let mut options = options(r#"["key-1"]"#);
    options.extra_toml = "[limits]\nsend_queue = 16\n".into();
    let server = TestServer::start_with(options);
    let _slow = Sio::join(&server, &["g"]).await;
    // From here `_slow` reads nothing: its kernel buffers, then its queue of 16 packets, fill up.
    let big = "x".repeat(16 * 1024);
    let mut sent = 0;
    while !server
        .logs()
        .iter()
        .any(|line| line.contains("is too slow (send queue full)"))
    {
        assert!(sent < 2000, "the slow socket was never dropped");
        server.inject(serde_json::json!({"source": "discord", "type": "flood", "room": "g", "data": {"big": big}}));
        sent += 1;
    }
    // Another client is served as usual.
    let output = server
        .script("socketio.mjs", &args(&server, "websocket"))
        .await;
    assert_lines(&output, WEBSOCKET);
}

#[tokio::test]
async fn a_rule_emit_reaches_its_guild_and_an_inject_reaches_every_face_with_its_id() {
    use crate::support::{Dirs, Ws};
    use serde_json::json;
    let dirs = Dirs::new();
    dirs.write_rule("welcome.rule.json", &json!({"kind": "rule", "schemaVersion": 1,
        "id": "01JE0S0C1E7RV1E00000000000", "name": "Welcome",
        "triggers": [{"on": "boss_defeated", "sources": ["mygame"]}],
        "steps": [{"kind": "emit", "source": "discord", "type": "messageCreate", "room": "{{ event.room }}",
                   "data": {"content": "GG {{ event.data.by }}"}}]}).to_string());
    let mut options = options(r#"["key-1"]"#);
    options.extra_toml =
        "[[astro.tokens]]\ntoken = \"t\"\nroom = \"111\"\nscopes = [\"*\"]\n".into();
    let server = TestServer::start_in(dirs, options);
    let mut in_guild = Sio::join(&server, &["111"]).await;

    server.inject(
        json!({"source": "mygame", "type": "boss_defeated", "room": "111", "data": {"by": "Ada"}}),
    );
    let emitted = in_guild.discord().await;
    assert_eq!(
        emitted,
        json!({"event": "messageCreate", "guildId": "111", "data": {"content": "GG Ada"}})
    );

    // inject on this face: the Streamer.bot, custom and Astro faces get it with the same id.
    let (mut streamerbot, _) = Ws::streamerbot(&server).await;
    let reply = streamerbot
        .request(json!({"request": "Subscribe", "events": {"Discord": ["*"]}, "id": "s"}))
        .await;
    assert_eq!(reply["status"], "ok");
    let mut custom = Ws::custom(&server).await;
    custom
        .send(json!({"action": "subscribe", "sources": ["discord"]}))
        .await;
    assert_eq!(custom.recv().await["status"], "ok");
    let mut astro = Ws::connect(server.url("astro")).await;
    assert_eq!(astro.recv().await["type"], "welcome");
    astro
        .send(json!({"type": "subscribe", "data": {"topic": "channel.activities", "token": "t", "token_type": "apikey"}}))
        .await;
    assert_eq!(astro.recv().await["data"]["room"], "111");
    in_guild
        .send(r#"421["inject",{"event":"follow","guildId":"111","data":{"username":"ada"}}]"#)
        .await;
    let ack = in_guild.packet().await;
    let ack: serde_json::Value =
        serde_json::from_str(ack.strip_prefix("431").expect("the ack")).unwrap();
    let id = ack[0]["eventId"].as_str().expect("an event id").to_owned();
    assert_eq!(ack[0]["status"], "ok");
    assert_eq!(streamerbot.recv().await["event"]["id"], id.as_str());
    assert_eq!(custom.recv().await["event"]["id"], id.as_str());
    assert_eq!(astro.recv().await["data"]["_id"], id.as_str());
    assert_eq!(in_guild.discord().await["event"], "follow");
}

#[tokio::test]
async fn a_socket_is_listed_in_sessions_with_its_address_and_guilds() {
    let server = TestServer::start_with(options(r#"["key-1"]"#));
    let socket = Sio::join(&server, &["111"]).await;
    let local = socket.0.get_ref();
    let local = match local {
        tokio_tungstenite::MaybeTlsStream::Plain(stream) => stream.local_addr().unwrap(),
        _ => unreachable!("a plain connection"),
    };
    let (status, body) = server.get("/sessions");
    assert_eq!(status, 200);
    let session = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|session| session["face"] == "socketio")
        .cloned()
        .expect("the socket's session");
    assert_eq!(session["peer"], local.to_string());
    assert!(
        session["subscriptions"].to_string().contains("111"),
        "{session}"
    );
}

#[tokio::test]
async fn an_event_posted_over_http_reaches_only_its_guild() {
    use serde_json::json;
    let server = TestServer::start_with(options(r#"["key-1"]"#));
    let mut in_111 = Sio::join(&server, &["111"]).await;
    let mut in_222 = Sio::join(&server, &["222"]).await;
    server.inject(
        json!({"source": "discord", "type": "messageCreate", "room": "111",
        "data": {"content": "for 111"}}),
    );
    server.inject(
        json!({"source": "discord", "type": "messageCreate", "room": "222",
        "data": {"content": "for 222"}}),
    );
    assert_eq!(in_111.discord().await["data"]["content"], "for 111");
    // The first event 222 sees is its own: 111's never reached it.
    assert_eq!(in_222.discord().await["data"]["content"], "for 222");
}

#[tokio::test]
async fn a_socket_that_never_answers_pings_is_disconnected_after_ping_interval_and_timeout() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start_with(options(r#"["key-1"]"#));
    let mut sio = Sio::join(&server, &["111"]).await;
    let joined = std::time::Instant::now();
    // Read everything, answer nothing: the first ping (after 25 s) goes unanswered for 20 s.
    let mut pings = 0;
    let ended = loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(90), sio.0.next())
            .await
            .expect("disconnected within 90 s");
        match frame {
            Some(Ok(Message::Text(text))) if text == "2" => pings += 1,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break joined.elapsed(),
            Some(Ok(_)) => {}
        }
    };
    assert_eq!(pings, 1, "one ping, never answered");
    assert!(
        ended.as_secs() >= 40,
        "disconnected after {ended:?}, before 25 s + 20 s"
    );
}
