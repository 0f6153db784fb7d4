//! The custom (VMSC) face with the real clients it was written for: Python `websockets` and
//! Node `ws`, plus raw frames where the clients hide them.

use serde_json::{json, Value};

use crate::support::{Dirs, Options, TestServer, Ws};

fn boss_rules(dirs: &Dirs) {
    dirs.write_rule("boss.rule.json", &json!({"kind": "rule", "schemaVersion": 1, "id": "01JCWXWCBYB6WK952SWA0432CF", "name": "Boss down",
        "triggers": [{"on": "boss_defeated", "sources": ["mygame"]}],
        "conditions": {"fact": "event.data.boss", "op": "exists"},
        "steps": [{"kind": "emit", "source": "mygame", "type": "boss_down", "data": {"boss": "{{ event.data.boss }}", "by": "{{ event.user.username }}"}}]}).to_string());
    dirs.write_rule("sleeping.rule.json", &json!({"kind": "rule", "schemaVersion": 1, "id": "01JD3Q5S8N0W4X7Y2Z6A9B1C47", "name": "Sleeping rule",
        "enabled": false, "triggers": [{"on": "never"}], "steps": [{"kind": "log", "message": "zzz"}]}).to_string());
}

#[tokio::test]
async fn python_websockets_is_refused_without_the_right_token_in_either_form() {
    let server = TestServer::start();
    let output = server
        .script(
            "custom_client.py",
            &["auth", server.url("custom"), server.token()],
        )
        .await;
    output.assert_success();
    assert_eq!(
        output.lines(),
        [
            "ok header",
            "ok query",
            "ok missing",
            "ok wrong",
            "ok empty",
            "ok wrong bearer wins over a right query"
        ]
    );
}

#[tokio::test]
async fn node_ws_is_refused_without_the_right_token_in_either_form() {
    let server = TestServer::start();
    let output = server
        .script(
            "custom.mjs",
            &["auth", server.url("custom"), server.token()],
        )
        .await;
    output.assert_success();
    assert_eq!(
        output.lines(),
        [
            "ok header",
            "ok query",
            "ok missing",
            "ok wrong query",
            "ok wrong header"
        ]
    );
}

#[tokio::test]
async fn the_eleventh_connection_is_refused_with_1013() {
    let server = TestServer::start();
    let output = server
        .script(
            "custom_client.py",
            &["cap", server.url("custom"), server.token(), "10"],
        )
        .await;
    output.assert_success();
    assert_eq!(
        output.lines(),
        [
            "ok over the cap",
            "ok wrong token at the cap",
            "ok a slot frees up"
        ]
    );
}

#[tokio::test]
async fn a_burst_of_100_messages_is_rate_limited_and_the_connection_stays_usable() {
    let server = TestServer::start();
    let output = server
        .script(
            "custom_client.py",
            &["rate", server.url("custom"), server.token()],
        )
        .await;
    output.assert_success();
    assert!(
        output.lines()[0].starts_with("ok rate limited"),
        "{:?}",
        output.lines()
    );
    assert_eq!(output.lines()[1], "ok still usable");
}

#[tokio::test]
async fn injected_events_fire_rules_and_reach_matching_filters_only() {
    let dirs = Dirs::new();
    boss_rules(&dirs);
    let server = TestServer::start_in(dirs, Options::default());
    let output = server
        .script(
            "custom.mjs",
            &["events", server.url("custom"), server.token()],
        )
        .await;
    output.assert_success();
    assert_eq!(
        output.lines(),
        [
            "ok subscribe",
            "ok inject",
            "ok rule fired for the matching filter",
            "ok nothing for a non-matching filter",
            "ok triggerRule by name and id",
            "ok bad input matrix"
        ]
    );
}

#[tokio::test]
async fn a_configured_token_is_used_and_frames_over_the_limit_are_refused() {
    let server = TestServer::start_with(Options {
        custom_token: Some("letmein".into()),
        ..Options::default()
    });
    assert_eq!(server.token(), "letmein");
    let mut ws = Ws::custom(&server).await;
    ws.send_text(format!(
        "{{\"action\":\"subscribe\",\"pad\":\"{}\"}}",
        "x".repeat(1 << 20)
    ))
    .await;
    assert_eq!(
        ws.recv().await,
        json!({"action": "error", "code": "INVALID_PAYLOAD", "message": "Message exceeds 1048576 bytes"})
    );
    ws.send(json!({"action": "subscribe"})).await;
    assert_eq!(ws.recv().await["status"], "ok");
    ws.send_text("x".repeat(5 << 20)).await;
    assert_eq!(ws.closed().await, (1009, "Message too big".to_owned()));
}

#[tokio::test]
async fn one_bus_every_face() {
    let server = TestServer::start();
    // custom → Streamer.bot (the official client)
    let output = server
        .script(
            "streamerbot.mjs",
            &[
                "custom-inject",
                server.url("streamerbot"),
                server.url("http"),
                server.url("custom"),
                server.token(),
            ],
        )
        .await;
    output.assert_success();
    assert_eq!(
        output.lines(),
        ["ok custom inject reached the official client"]
    );
    // Streamer.bot ExecuteCodeTrigger → custom subscriber
    let mut custom = Ws::custom(&server).await;
    custom
        .send(json!({"action": "subscribe", "sources": ["custom"]}))
        .await;
    assert_eq!(custom.recv().await["status"], "ok");
    let (mut streamerbot, _) = Ws::streamerbot(&server).await;
    let reply = streamerbot
        .request(json!({"request": "ExecuteCodeTrigger", "triggerName": "poll_vote_removed", "args": {"numArg": 1}, "id": "x"}))
        .await;
    let frame: Value = custom.recv().await;
    assert_eq!(frame["event"]["id"], reply["eventId"]);
    assert_eq!(frame["event"]["source"], "custom");
    assert_eq!(frame["event"]["type"], "poll_vote_removed");
    assert_eq!(frame["event"]["data"], json!({"numArg": 1}));
    // HTTP → custom subscriber, PascalCase types in VMSC's vocabulary
    custom
        .send(json!({"action": "subscribe", "eventTypes": ["GiftSub"]}))
        .await;
    assert_eq!(custom.recv().await["status"], "ok");
    let id = server.inject(json!({"source": "Twitch", "type": "GiftSub", "room": "channel-1", "data": {"tier": "1000"}}));
    let frame = custom.recv().await;
    assert_eq!(frame["event"]["id"], json!(id));
    assert_eq!(
        (
            frame["event"]["type"].as_str(),
            frame["event"]["source"].as_str()
        ),
        (Some("gift_sub"), Some("twitch"))
    );
    assert_eq!(frame["event"]["room"], "channel-1");
}

#[tokio::test]
async fn numbers_pass_through_unchanged() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start();
    let mut request = server.url("custom").into_client_request().unwrap();
    let bearer = format!("Bearer {}", server.token()).parse().unwrap();
    request.headers_mut().insert("Authorization", bearer);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // Read back exactly as written: each is the shortest text of its double.
    let numbers = [
        "2.531018318312808e-17",
        "0.30000000000000004",
        "1.7976931348623157e308",
    ];
    let inject = format!(
        r#"{{"action":"injectEvent","event":{{"type":"measured","data":{{"values":[{}]}}}}}}"#,
        numbers.join(",")
    );
    let subscribe = r#"{"action":"subscribe","eventTypes":["measured"]}"#;
    socket.send(Message::Text(subscribe.into())).await.unwrap();
    socket.send(Message::Text(inject)).await.unwrap();
    let event = loop {
        let frame = tokio::time::timeout(crate::support::TIMEOUT, socket.next()).await;
        match frame.expect("a frame in time") {
            Some(Ok(Message::Text(text))) if text.contains(r#""action":"event""#) => break text,
            Some(Ok(_)) => continue,
            other => panic!("the connection ended: {other:?}"),
        }
    };
    let values: Vec<&str> = numbers
        .iter()
        .map(|number| number.replace("e308", "e+308"))
        .map(|number| {
            if event.contains(&number) {
                "kept"
            } else {
                "changed"
            }
        })
        .collect();
    assert_eq!(values, ["kept"; 3], "{event}");
}
