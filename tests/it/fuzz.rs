//! Property tests over the wire (issue 12): one server per face gets a generated stream of
//! mutated messages (valid requests with values swapped for other types, keys dropped or added,
//! deep nesting, huge numbers, bytes flipped, text cut, awkward unicode; see `mutate`) on one
//! connection. Each must get the protocol's error form or a valid reply, and afterwards the same
//! connection (where the protocol keeps it) and a fresh one still answer a valid request, and the
//! process is still alive.
//!
//! 64 messages per face; `PROPTEST_CASES=2000 cargo test --test it fuzz::` sends more. A failure
//! names the message that broke the property, shrunk to a small one where it can be.

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::support::{Dirs, Ending, Options, TestServer, Ws, TIMEOUT};

/// Shared with the unit tests, each of which uses part of it.
#[path = "../../src/mutate.rs"]
#[allow(dead_code)]
mod mutate;

/// Messages per face: 64, or `PROPTEST_CASES`.
fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(64);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs `check` on each generated message (the runner is synchronous: `check` blocks on the
/// test's runtime).
fn run_each<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    check: impl Fn(T) -> Result<(), TestCaseError>,
) {
    if let Err(failure) = runner().run(&strategy, check) {
        panic!("{failure}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The server answers HTTP: the process is alive and serving.
fn assert_alive(server: &TestServer) {
    let (status, body) = server.get("/health");
    assert_eq!((status, &body["status"]), (200, &json!("ok")), "{body}");
}

#[test]
fn streamerbot_answers_every_mutated_request_in_its_reply_envelope() {
    let server = TestServer::start();
    let samples = vec![
        json!({"request": "Subscribe", "id": "s1", "events": {"Twitch": ["Follow"], "General": ["Custom"]}}),
        json!({"request": "UnSubscribe", "id": 7, "events": {"*": ["*"]}}),
        json!({"request": "DoAction", "id": "d1", "action": {"name": "Nope"}, "args": {"x": 1, "sbClientResponse": "r1"}}),
        json!({"request": "ExecuteCodeTrigger", "id": "e1", "triggerName": "fuzzed", "args": {"hp": 0}}),
        json!({"request": "GetGlobal", "id": "g1", "variable": "deaths", "persisted": true}),
        json!({"request": "TwitchGetUserGlobal", "id": "u2", "userId": "42", "variable": "score"}),
        json!({"request": "SendMessage", "id": "m1", "platform": "twitch", "message": "hi", "bot": true}),
        json!({"request": "GetCredits", "id": "c1"}),
        json!({"request": "GetInfo", "id": "i1"}),
        // An id read back exactly only when floats are read correctly rounded.
        json!({"request": "GetBroadcaster", "id": 2.531018318312808e-17}),
    ];
    let runtime = runtime();
    let (ws, _) = runtime.block_on(Ws::streamerbot(&server));
    let ws = Mutex::new(ws);
    run_each(mutate::messages(samples), |text| {
        runtime.block_on(async {
            let mut ws = ws.lock().await;
            ws.send_text(text.clone()).await;
            // Event frames (of a subscription the stream made) carry no `status`.
            let reply = loop {
                let frame = ws.recv().await;
                if frame.get("status").is_some() {
                    break frame;
                }
                prop_assert!(frame.get("event").is_some(), "{}", frame);
            };
            match reply["status"].as_str() {
                Some("ok") => {}
                Some("error") => prop_assert!(
                    reply["error"]
                        .as_str()
                        .is_some_and(|error| !error.is_empty()),
                    "{}",
                    reply
                ),
                _ => prop_assert!(false, "{} answered {}", text, reply),
            }
            let sent: Option<Value> = serde_json::from_str(&text).ok();
            let id = sent.as_ref().and_then(|sent| sent.get("id"));
            prop_assert_eq!(reply.get("id"), id, "{}", text);
            Ok(())
        })
    });
    runtime.block_on(async {
        let info = json!({"request": "GetInfo", "id": "after"});
        let reply = ws.lock().await.request(info.clone()).await;
        assert_eq!(reply["info"]["name"], "Switchboard", "{reply}");
        let (mut fresh, _) = Ws::streamerbot(&server).await;
        assert_eq!(fresh.request(info).await["status"], "ok");
    });
    assert_alive(&server);
}

#[test]
fn the_custom_face_answers_every_mutated_message_with_an_ack_or_an_error() {
    let server = TestServer::start_with(Options {
        custom_toml: "rate_limit_per_second = 1000000\n".into(),
        ..Options::default()
    });
    let samples = vec![
        json!({"action": "injectEvent", "event": {"type": "fuzzed", "source": "mygame", "room": "r1",
            "data": {"hp": 0}, "user": {"id": 42, "username": "bob", "level": 3}}}),
        json!({"action": "triggerRule", "ruleId": "01JC1XMWCEJZ05XHT5GMEJ146S"}),
        json!({"action": "triggerRule", "ruleName": "Nope"}),
        json!({"action": "subscribe", "eventTypes": ["fuzzed"], "sources": ["mygame"]}),
    ];
    let runtime = runtime();
    let ws = Mutex::new(runtime.block_on(Ws::custom(&server)));
    run_each(mutate::messages(samples), |text| {
        runtime.block_on(async {
            let mut ws = ws.lock().await;
            ws.send_text(text.clone()).await;
            let reply = loop {
                let frame = ws.recv().await;
                if frame["action"] != "event" {
                    break frame;
                }
            };
            if reply["action"] == "error" {
                let codes = ["INVALID_ACTION", "INVALID_PAYLOAD", "RULE_NOT_FOUND"];
                prop_assert!(
                    codes.contains(&reply["code"].as_str().unwrap_or_default()),
                    "{}",
                    reply
                );
                prop_assert!(
                    reply["message"]
                        .as_str()
                        .is_some_and(|text| !text.is_empty()),
                    "{}",
                    reply
                );
            } else {
                prop_assert_eq!(&reply["status"], "ok", "{} answered {}", text, reply);
                let actions = ["injectEvent", "triggerRule", "subscribe"];
                prop_assert!(
                    actions.contains(&reply["action"].as_str().unwrap_or_default()),
                    "{}",
                    reply
                );
            }
            Ok(())
        })
    });
    runtime.block_on(async {
        custom_probe(&mut *ws.lock().await).await;
        custom_probe(&mut Ws::custom(&server).await).await;
    });
    assert_alive(&server);
}

/// A subscribe and an inject on the custom face: acknowledged, and the event arrives.
async fn custom_probe(ws: &mut Ws) {
    ws.send(json!({"action": "subscribe", "eventTypes": ["probe"]}))
        .await;
    assert_eq!(ws.recv().await["status"], "ok");
    ws.send(json!({"action": "injectEvent", "event": {"type": "probe"}}))
        .await;
    let ack = ws.recv().await;
    assert_eq!(ack["status"], "ok", "{ack}");
    loop {
        let frame = ws.recv().await;
        if frame["action"] == "event" && frame["event"]["id"] == ack["eventId"] {
            break;
        }
    }
}

/// The one Astro token of the Astro tests.
const ASTRO_TOKEN: &str =
    "[[astro.tokens]]\ntoken = \"owner-secret\"\nroom = \"channel-1\"\nscopes = [\"*\"]\n";

#[test]
fn astro_answers_every_mutated_request_with_a_response() {
    let server = TestServer::start_with(Options {
        extra_toml: ASTRO_TOKEN.into(),
        ..Options::default()
    });
    let subscribe = json!({"type": "subscribe", "nonce": "req-001", "data": {"topic": "channel.activities",
        "room": "channel-1", "token": "owner-secret", "token_type": "apikey"}});
    let samples = vec![
        subscribe.clone(),
        json!({"type": "subscribe", "data": {"topic": "channel.tips", "token": "wrong", "token_type": "jwt"}}),
        json!({"type": "unsubscribe", "nonce": "req-003", "data": {"topic": "channel.activities", "room": "channel-1"}}),
    ];
    let connect = |server: &TestServer| {
        let url = server.url("astro").to_owned();
        async move {
            let mut ws = Ws::connect(&url).await;
            assert_eq!(ws.recv().await["type"], "welcome");
            ws
        }
    };
    let runtime = runtime();
    let ws = Mutex::new(runtime.block_on(connect(&server)));
    run_each(mutate::messages(samples), |text| {
        runtime.block_on(async {
            let mut ws = ws.lock().await;
            ws.send_text(text.clone()).await;
            let response = ws.recv().await;
            prop_assert_eq!(&response["type"], "response", "{}", response);
            if let Some(code) = response.get("error") {
                let codes = [
                    "err_bad_request",
                    "err_unauthorized",
                    "err_deadline_exceeded",
                    "err_internal_error",
                    "rate_limit_exceeded",
                    "invalid_message_type",
                ];
                prop_assert!(
                    codes.contains(&code.as_str().unwrap_or_default()),
                    "{}",
                    response
                );
            }
            prop_assert!(
                response["data"]["message"]
                    .as_str()
                    .is_some_and(|text| !text.is_empty()),
                "{}",
                response
            );
            if let Some(nonce) = response.get("nonce") {
                let sent: Value = serde_json::from_str(&text).unwrap_or_default();
                prop_assert_eq!(Some(nonce), sent.get("nonce"), "{}", text);
            }
            Ok(())
        })
    });
    runtime.block_on(async {
        // A fresh connection: the stream may have used up this one's rate limit.
        let mut fresh = connect(&server).await;
        fresh.send(subscribe).await;
        let response = fresh.recv().await;
        assert!(response.get("error").is_none(), "{response}");
        assert_eq!(response["data"]["room"], "channel-1", "{response}");
    });
    assert_alive(&server);
}

/// `text` with every byte but ASCII letters and digits percent-encoded, for a query string.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[test]
fn astro_closes_on_every_mutated_reconnect_token_or_welcomes_it() {
    use base64::Engine as _;
    use switchboard::faces::astro::reconnect::{Keys, Sub};
    let server = TestServer::start_with(Options {
        extra_toml: ASTRO_TOKEN.into(),
        ..Options::default()
    });
    server.terminate();
    let (dirs, options) = server.exited();
    // A genuine token, signed with the secret the server keeps, as it would sign it.
    let store = switchboard::store::Store::open(dirs.data.path()).unwrap();
    let secret = store.meta().get("astro.reconnectSecret").unwrap();
    let secret = secret
        .as_ref()
        .and_then(Value::as_str)
        .expect("a stored secret");
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .unwrap();
    drop(store);
    let subs = [Sub {
        topic: "channel.activities".into(),
        room: "channel-1".into(),
        fp: "0123456789abcdef".into(),
    }];
    let token = Keys::new(&secret).issue(&subs, chrono::Utc::now().timestamp());
    let server = TestServer::start_in(dirs, options);
    // At most 2,000 characters: a URL's length has limits of its own.
    let strategy = prop_oneof![
        4 => mutate::mutated_text(vec![token.clone()]),
        1 => mutate::text(),
    ]
    .prop_map(|token| token.chars().take(2_000).collect::<String>());
    let runtime = runtime();
    run_each(strategy, |mutated| {
        runtime.block_on(async {
            let url = format!(
                "{}?reconnect_token={}",
                server.url("astro"),
                query_value(&mutated)
            );
            let mut ws = Ws::connect(&url).await;
            match ws.next().await {
                Ok(welcome) => prop_assert_eq!(&welcome["type"], "welcome", "{}", welcome),
                Err(Ending::Closed(close)) => prop_assert_eq!(
                    close,
                    Some((1008, "Invalid reconnect token".to_owned())),
                    "{}",
                    mutated
                ),
            }
            Ok(())
        })
    });
    runtime.block_on(async {
        let url = format!("{}?reconnect_token={token}", server.url("astro"));
        assert_eq!(Ws::connect(&url).await.recv().await["type"], "welcome");
    });
    assert_alive(&server);
}

/// A raw Engine.IO WebSocket client of the Socket.IO face, connected with `key-1`, that
/// reports the end of its connection instead of failing.
struct Sio(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Sio {
    async fn join(server: &TestServer) -> Sio {
        let url = server.url("socketio").replace("http://", "ws://") + "?EIO=4&transport=websocket";
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut sio = Sio(socket);
        assert!(sio.packet().await.starts_with('0'), "the open packet");
        assert!(sio.send(r#"40{"apiKey":"key-1"}"#).await);
        assert!(sio.packet().await.starts_with("40"), "the connect packet");
        sio
    }

    /// Whether the packet was sent (the connection is still open).
    async fn send(&mut self, packet: &str) -> bool {
        use futures_util::SinkExt;
        let message = tokio_tungstenite::tungstenite::Message::Text(packet.into());
        self.0.send(message).await.is_ok()
    }

    /// The next packet but pings (answered), `""` once the connection has ended, or `None`
    /// when nothing came within [`TIMEOUT`].
    async fn next(&mut self) -> Option<String> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.0.next()).await.ok()?;
            match frame {
                Some(Ok(Message::Text(text))) if text == "2" => {
                    if !self.send("3").await {
                        return Some(String::new());
                    }
                }
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(_)) => continue,
                _ => return Some(String::new()),
            }
        }
    }

    /// The next packet but pings, or `""` once the connection has ended; fails after
    /// [`TIMEOUT`].
    async fn packet(&mut self) -> String {
        self.next().await.expect("a packet in time")
    }
}

/// Whether `packet` is a well-formed Socket.IO event: `42`, an optional ack id, and a JSON array
/// whose first item is the event's name. Names with a JSON escape (`\"`, `\\`, `\u0000`) are
/// left out: socketioxide 0.18 ends the connection on them.
fn is_event(packet: &str) -> bool {
    let Some(rest) = packet.strip_prefix("42") else {
        return false;
    };
    let array = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let plain_name = array
        .strip_prefix("[\"")
        .and_then(|rest| rest.split_once('"'))
        .is_some_and(|(name, _)| !name.contains('\\'));
    plain_name && serde_json::from_str::<Value>(array).is_ok_and(|event| event[0].is_string())
}

/// An `inject` with an acknowledgement, answered `ok`.
async fn inject_probe(socket: &mut Sio) {
    let inject = r#"421["inject",{"event":"probe","data":{"n":1}}]"#;
    assert!(socket.send(inject).await, "the connection ended");
    loop {
        let answer = socket.packet().await;
        assert!(!answer.is_empty(), "the connection ended");
        if answer.starts_with("431") {
            assert!(answer.contains(r#""status":"ok""#), "{answer}");
            break;
        }
    }
}

#[test]
fn socket_io_answers_every_mutated_packet_or_ends_the_connection() {
    let server = TestServer::start_with(Options {
        socketio_toml: "api_keys = [\"key-1\"]\n".into(),
        ..Options::default()
    });
    let payloads = vec![
        json!(["subscribe", {"guildIds": ["111", "222"]}]),
        json!(["unsubscribe", {"guildIds": ["111"]}]),
        json!(["inject", {"event": "messageCreate", "guildId": "111", "data": {"content": "hi"}}]),
        json!(["inject", {"event": "userUpdate", "guildId": null}]),
    ];
    let packets: Vec<String> = payloads
        .iter()
        .flat_map(|payload| [format!("42{payload}"), format!("421{payload}")])
        .collect();
    let strategy = prop_oneof![
        3 => mutate::mutated_json(payloads).prop_map(|payload| format!("42{payload}")),
        3 => mutate::mutated_text(packets),
        1 => mutate::text(),
    ];
    let runtime = runtime();
    let socket = Mutex::new(runtime.block_on(Sio::join(&server)));
    let (ended, left) = (RefCell::new(0), RefCell::new(0));
    let history = RefCell::new(Vec::<String>::new());
    run_each(strategy, |packet| {
        runtime.block_on(async {
            let mut socket = socket.lock().await;
            history.borrow_mut().push(packet.clone());
            // A valid request after it: its answer ends what the packet caused.
            let probe = r#"42["subscribe",{"guildIds":["probe"]}]"#;
            let sent = socket.send(&packet).await && socket.send(probe).await;
            loop {
                let answer = match sent {
                    true => socket.next().await,
                    false => Some(String::new()),
                };
                let Some(answer) = answer else {
                    // Only a client that left the namespace (`41`) is not answered any more.
                    let left = history.borrow().iter().any(|sent| sent.starts_with("41"));
                    prop_assert!(
                        left,
                        "no answer in {:?} after {:?}",
                        TIMEOUT,
                        history.borrow()
                    );
                    history.borrow_mut().clear();
                    *socket = Sio::join(&server).await;
                    break;
                };
                if answer.is_empty() {
                    // Socket.IO ends a connection on a packet it cannot read (at times after
                    // answering the next one), and only then; a new one works.
                    let unreadable = history.borrow().iter().any(|sent| !is_event(sent));
                    prop_assert!(
                        unreadable,
                        "events only ended the connection: {:?}",
                        history.borrow()
                    );
                    history.borrow_mut().clear();
                    *ended.borrow_mut() += 1;
                    *socket = Sio::join(&server).await;
                    break;
                }
                if answer.starts_with(r#"42["subscribed",{"guildIds":["probe"]}"#) {
                    break;
                }
                let body = answer.trim_start_matches(|c: char| c.is_ascii_digit());
                if answer.starts_with("42") || answer.starts_with("43") {
                    let event: Value = serde_json::from_str(body).unwrap_or_default();
                    prop_assert!(event.is_array(), "{} answered {}", packet, answer);
                    if answer.starts_with("43") {
                        let status = &event[0]["status"];
                        prop_assert!(status == "ok" || status == "error", "{}", answer);
                    } else {
                        let names = [
                            "subscribed",
                            "unsubscribed",
                            "error",
                            "discord",
                            "interaction:create",
                        ];
                        prop_assert!(
                            names.contains(&event[0].as_str().unwrap_or_default()),
                            "{} answered {}",
                            packet,
                            answer
                        );
                    }
                }
            }
            Ok(())
        })
    });
    // The same connection, unless an unreadable packet since it was opened may still end it.
    let readable = history.borrow().iter().all(|sent| is_event(sent));
    runtime.block_on(async {
        if readable {
            inject_probe(&mut *socket.lock().await).await;
        }
        inject_probe(&mut Sio::join(&server).await).await;
    });
    eprintln!(
        "socket.io: {} packets ended their connection, {} left the namespace",
        ended.borrow(),
        left.borrow()
    );
    assert_alive(&server);
}

/// A request to the HTTP face with a raw body: its status and its body as JSON (`null` when
/// empty, `"not JSON"` when not).
fn send(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, Value) {
    let response = server.request(method, path).send_string(body);
    let response = match response {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{method} {path} failed: {error}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    let body = match text.as_str() {
        "" => Value::Null,
        text => serde_json::from_str(text).unwrap_or_else(|_| json!("not JSON")),
    };
    (status, body)
}

#[test]
fn the_http_api_answers_every_mutated_body_with_a_result_or_a_4xx_error() {
    let dirs = Dirs::new();
    let documents = mutate::rule_documents();
    for (index, document) in documents.iter().enumerate() {
        dirs.write_rule(&format!("shipped-{index}.json"), &document.to_string());
    }
    let server = TestServer::start_in(dirs, Options::default());
    /// The endpoints that read a body, each with a valid one.
    fn requests(documents: Vec<Value>) -> Vec<Value> {
        let mut requests = vec![
            json!({"method": "POST", "path": "/events", "body": {"source": "mygame", "type": "boss_defeated",
                "user": {"id": "1", "username": "bob"}, "room": "r", "data": {"bossName": "Dragon"}}}),
            json!({"method": "POST", "path": "/DoAction", "body": {"action": {"name": "Celebrate"}, "args": {"boss": "x"}}}),
            json!({"method": "POST", "path": "/rules/01JCWXWCBYB6WK952SWA0432CF/test", "body":
                {"event": {"source": "mygame", "type": "boss_defeated", "data": {"bossName": "x"}}, "given": {"globals": {}}}}),
            json!({"method": "POST", "path": "/actions/01JC1XMWCEJZ05XHT5GMEJ146S/test", "body": {"call": {"args": {"boss": "x"}}}}),
            json!({"method": "PUT", "path": "/connections/fuzzed", "body":
                {"url": "ws://127.0.0.1:9/", "enabled": false, "mapping": {"type": "$.kind", "data.x": "$.x"}}}),
        ];
        for document in documents {
            let collection = if document["kind"] == "rule" {
                "rules"
            } else {
                "actions"
            };
            let path = format!(
                "/{collection}/{}",
                document["id"].as_str().unwrap_or_default()
            );
            requests.push(json!({"method": "PUT", "path": path, "body": document}));
        }
        requests
    }
    let requests = requests(documents);
    let strategy = (
        prop::sample::select(requests.clone()),
        prop_oneof![
            2 => mutate::messages(requests.iter().map(|request| request["body"].clone()).collect()),
            1 => mutate::json().prop_map(|body| body.to_string()),
        ],
    );
    run_each(strategy, |(request, mut body)| {
        let path = request["path"].as_str().unwrap_or_default();
        if path.starts_with("/connections/") {
            // Loopback only, whatever the mutation made of the URL.
            if let Ok(Value::Object(mut settings)) = serde_json::from_str(&body) {
                if settings.contains_key("url") {
                    settings.insert("url".into(), json!("ws://127.0.0.1:9/"));
                }
                body = Value::Object(settings).to_string();
            }
        }
        let method = request["method"].as_str().unwrap_or_default();
        let (status, answer) = send(&server, method, path, &body);
        match status {
            200..=299 => prop_assert!(answer.is_object() || answer.is_null(), "{}", answer),
            400..=499 => {
                prop_assert_eq!(
                    &answer["status"],
                    "error",
                    "{} {}: {}",
                    method,
                    path,
                    answer
                );
                prop_assert!(
                    answer["error"]
                        .as_str()
                        .is_some_and(|error| !error.is_empty()),
                    "{}",
                    answer
                );
            }
            _ => prop_assert!(
                false,
                "{} {} {} answered {} {}",
                method,
                path,
                body,
                status,
                answer
            ),
        }
        Ok(())
    });
    let (status, body) = send(
        &server,
        "POST",
        "/events",
        r#"{"source":"mygame","type":"probe"}"#,
    );
    assert_eq!((status, &body["status"]), (200, &json!("ok")), "{body}");
    let (status, body) = server.get("/rules");
    assert_eq!(status, 200, "{body}");
    assert_alive(&server);
}

#[test]
fn an_outbound_connection_maps_every_mutated_message_and_stays_up() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let runtime = runtime();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a loopback port");
    let port = listener.local_addr().unwrap().port();
    let server = TestServer::start_with(Options {
        extra_toml: format!(
            r#"
[[outbound]]
name = "fuzzed"
url = "ws://127.0.0.1:{port}/"
[outbound.mapping]
type = "$.kind"
room = "$.channel"
"user.id" = "$.player.id"
"data.message" = "$.text"
"data.seq" = "$.seq"
"data.items" = "$.items[*].name"
"#
        ),
        ..Options::default()
    });
    let (peer, subscriber) = runtime.block_on(async {
        let (stream, _) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("the outbound connection dials in time")
            .unwrap();
        let peer = tokio_tungstenite::accept_async(stream).await.unwrap();
        let mut subscriber = Ws::custom(&server).await;
        subscriber
            .send(json!({"action": "subscribe", "sources": ["fuzzed"]}))
            .await;
        assert_eq!(subscriber.recv().await["status"], "ok");
        (peer, subscriber)
    });
    let peer = Mutex::new(peer);
    let samples = vec![
        json!({"kind": "chat", "channel": "channel-1", "player": {"id": 7, "name": "bob"}, "text": "hi"}),
        json!({"kind": "hit", "seq": 3, "items": [{"name": "a"}, {"name": "b"}]}),
    ];
    let sequence = RefCell::new(0u64);
    let subscriber = Mutex::new(subscriber);
    run_each(mutate::messages(samples), |text| {
        runtime.block_on(async {
            let seq = {
                let mut sequence = sequence.borrow_mut();
                *sequence += 1;
                *sequence
            };
            let mut peer = peer.lock().await;
            peer.send(Message::Text(text))
                .await
                .expect("the link is up");
            let probe = json!({"kind": "probe", "seq": seq}).to_string();
            peer.send(Message::Text(probe))
                .await
                .expect("the link is up");
            let mut subscriber = subscriber.lock().await;
            loop {
                let frame = subscriber.recv().await;
                prop_assert_eq!(&frame["action"], "event", "{}", frame);
                prop_assert_eq!(&frame["event"]["source"], "fuzzed", "{}", frame);
                prop_assert!(
                    frame["event"]["type"]
                        .as_str()
                        .is_some_and(|kind| !kind.is_empty()),
                    "{}",
                    frame
                );
                if frame["event"]["type"] == "probe" && frame["event"]["data"]["seq"] == seq {
                    break;
                }
            }
            Ok(())
        })
    });
    let (status, body) = server.get("/connections/fuzzed");
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("connected")),
        "{body}"
    );
    assert_alive(&server);
}

/// One WebSocket frame as sent, fragments and control frames included.
#[derive(Debug, Clone)]
enum RawFrame {
    /// The first (or only, when `fin`) frame of a text or binary message.
    Data {
        text: bool,
        fin: bool,
        bytes: Vec<u8>,
    },
    Continue {
        fin: bool,
        bytes: Vec<u8>,
    },
    Ping(Vec<u8>),
}

impl RawFrame {
    fn frame(&self) -> tokio_tungstenite::tungstenite::protocol::frame::Frame {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        match self {
            RawFrame::Data { text, fin, bytes } => {
                let kind = if *text { Data::Text } else { Data::Binary };
                Frame::message(bytes.clone(), OpCode::Data(kind), *fin)
            }
            RawFrame::Continue { fin, bytes } => {
                Frame::message(bytes.clone(), OpCode::Data(Data::Continue), *fin)
            }
            RawFrame::Ping(bytes) => Frame::ping(bytes.clone()),
        }
    }
}

/// Frames: pieces of valid messages, random bytes (not always UTF-8), sizes around the limit
/// of 1,024 bytes per message and 4,096 per frame, fragments in any order, pings of any size.
fn raw_frames() -> impl Strategy<Value = Vec<RawFrame>> {
    let bytes = prop_oneof![
        3 => mutate::messages(vec![json!({"action": "subscribe", "eventTypes": ["x"]})])
            .prop_map(String::into_bytes),
        2 => prop::collection::vec(any::<u8>(), 0..64),
        1 => (900usize..1200, any::<u8>()).prop_map(|(len, byte)| vec![byte; len]),
        1 => (4000usize..4200, any::<u8>()).prop_map(|(len, byte)| vec![byte; len]),
    ];
    let frame = prop_oneof![
        4 => (any::<bool>(), any::<bool>(), bytes.clone())
            .prop_map(|(text, fin, bytes)| RawFrame::Data { text, fin, bytes }),
        3 => (any::<bool>(), bytes).prop_map(|(fin, bytes)| RawFrame::Continue { fin, bytes }),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(RawFrame::Ping),
    ];
    prop::collection::vec(frame, 1..6)
}

/// A raw client of the custom face that reports the end of its connection instead of failing.
struct Raw(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

/// What a raw client read.
#[derive(Debug)]
enum Read {
    Text(String),
    /// The close frame's code and reason, or `None` when the connection just ended.
    Closed(Option<(u16, String)>),
}

impl Raw {
    async fn custom(server: &TestServer) -> Raw {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = server.url("custom").into_client_request().unwrap();
        let bearer = format!("Bearer {}", server.token()).parse().unwrap();
        request.headers_mut().insert("Authorization", bearer);
        let (stream, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Raw(stream)
    }

    async fn send(&mut self, message: tokio_tungstenite::tungstenite::Message) -> bool {
        use futures_util::SinkExt;
        self.0.send(message).await.is_ok()
    }

    /// The next text frame or the end; `None` when nothing came within [`TIMEOUT`].
    async fn read(&mut self) -> Option<Read> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.0.next()).await.ok()?;
            return Some(match frame {
                Some(Ok(Message::Text(text))) => Read::Text(text),
                Some(Ok(Message::Close(close))) => Read::Closed(
                    close.map(|close| (u16::from(close.code), close.reason.into_owned())),
                ),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Read::Closed(None),
            });
        }
    }
}

#[test]
fn every_frame_sequence_is_answered_or_closed_with_a_documented_code() {
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start_with(Options {
        custom_toml: "rate_limit_per_second = 1000000\n".into(),
        extra_toml: "[limits]\nmax_frame_bytes = 1024\n".into(),
        ..Options::default()
    });
    let runtime = runtime();
    let raw = Mutex::new(runtime.block_on(Raw::custom(&server)));
    let closes = RefCell::new(std::collections::BTreeMap::<Option<u16>, usize>::new());
    run_each(raw_frames(), |frames| {
        runtime.block_on(async {
            let mut raw = raw.lock().await;
            let mut open = true;
            for frame in &frames {
                open = open && raw.send(Message::Frame(frame.frame())).await;
            }
            // A whole valid message after them: its answer ends what they caused.
            let probe = r#"{"action":"subscribe","eventTypes":["probe"]}"#;
            open = open && raw.send(Message::Text(probe.into())).await;
            loop {
                match raw.read().await {
                    None => prop_assert!(false, "no answer in {:?} after {:?}", TIMEOUT, frames),
                    Some(Read::Text(text)) => {
                        let reply: Value = serde_json::from_str(&text).unwrap_or_default();
                        if reply["eventTypes"] == json!(["probe"]) {
                            break;
                        }
                        prop_assert!(
                            reply["status"] == "ok" || reply["action"] == "error",
                            "{}",
                            text
                        );
                    }
                    Some(Read::Closed(close)) => {
                        // 1002: broken framing; 1007: text that is not UTF-8; 1009: a frame over
                        // 4 x 1,024 bytes. With a close frame that says so (which a client that
                        // was still sending may not get to read).
                        let code = close.as_ref().map(|(code, _)| *code);
                        prop_assert!(
                            matches!(code, Some(1002 | 1007 | 1009)) || (code.is_none() && !open),
                            "{:?} after {:?}",
                            close,
                            frames
                        );
                        *closes.borrow_mut().entry(code).or_default() += 1;
                        *raw = Raw::custom(&server).await;
                        break;
                    }
                }
            }
            Ok(())
        })
    });
    eprintln!("frames: connections closed, by code: {:?}", closes.borrow());
    runtime.block_on(async { custom_probe(&mut Ws::custom(&server).await).await });
    assert_alive(&server);
}

#[test]
fn broken_framing_is_closed_with_1002_at_once() {
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start();
    let runtime = runtime();
    runtime.block_on(async {
        let orphan = RawFrame::Continue {
            fin: true,
            bytes: b"{}".to_vec(),
        };
        let big_ping = RawFrame::Ping(vec![0; 126]);
        let started = std::time::Instant::now();
        for frame in [orphan, big_ping] {
            let mut raw = Raw::custom(&server).await;
            assert!(raw.send(Message::Frame(frame.frame())).await);
            match raw.read().await {
                Some(Read::Closed(close)) => {
                    assert_eq!(
                        close,
                        Some((1002, "Protocol error".to_owned())),
                        "{frame:?}"
                    )
                }
                other => panic!("{frame:?} answered {other:?}"),
            }
        }
        // Not left to the server's one-second disconnect timeout.
        assert!(started.elapsed() < std::time::Duration::from_millis(900));
    });
    assert_alive(&server);
}

#[test]
fn the_http_api_answers_every_mutated_name_in_a_path_with_a_result_or_a_4xx_error() {
    let server = TestServer::start();
    let document = mutate::rule_documents()
        .into_iter()
        .find(|document| document["kind"] == "action")
        .expect("a shipped action");
    let id = document["id"].as_str().unwrap_or_default().to_owned();
    let settings = json!({"url": "ws://127.0.0.1:9/", "enabled": false});
    let routes: [(&str, &str, Value); 7] = [
        ("GET", "/rules/{}", Value::Null),
        ("GET", "/actions/{}/traces", Value::Null),
        ("DELETE", "/actions/{}", Value::Null),
        ("PUT", "/actions/{}", document.clone()),
        ("POST", "/rules/{}/test", json!({"event": {"type": "x"}})),
        ("PUT", "/connections/{}", settings),
        ("DELETE", "/connections/{}", Value::Null),
    ];
    let strategy = (
        0..routes.len(),
        prop_oneof![
            3 => mutate::mutated_text(vec![id.clone(), "fuzzed".to_owned()]),
            1 => mutate::text(),
            1 => Just("..%2F..%2Fescaped".to_owned()),
        ]
        .prop_map(|name| name.chars().take(500).collect::<String>()),
    );
    run_each(strategy, |(route, name)| {
        let (method, template, body) = &routes[route];
        let path = template.replace("{}", &query_value(&name));
        let body = match body {
            Value::Null => String::new(),
            body => body.to_string(),
        };
        let (status, answer) = send(&server, method, &path, &body);
        match status {
            200..=299 => prop_assert!(answer.is_object() || answer.is_null(), "{}", answer),
            // A path that does not exist (`/rules/`) is a 404 with an empty body (docs/http.md).
            404 if answer.is_null() => {}
            400..=499 => prop_assert_eq!(
                &answer["status"],
                "error",
                "{} {}: {}",
                method,
                path,
                answer
            ),
            _ => prop_assert!(false, "{} {} answered {} {}", method, path, status, answer),
        }
        Ok(())
    });
    // Every file is still inside the rules folder.
    let outside = server
        .dirs
        .rules
        .path()
        .parent()
        .unwrap()
        .join("escaped.action.json");
    assert!(!outside.exists());
    assert_eq!(
        send(
            &server,
            "PUT",
            &format!("/actions/{id}"),
            &document.to_string()
        )
        .0,
        200
    );
    assert_alive(&server);
}
