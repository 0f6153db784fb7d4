//! The HTTP face: health, Streamer.bot-compatible `/DoAction` and `/GetActions`, `/events`.

use serde_json::json;

use crate::streamerbot::server_with_actions;
use crate::support::{TestServer, Ws};

#[tokio::test]
async fn health_answers_ok() {
    let server = TestServer::start();
    let (status, body) = server.get("/health");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn events_posted_over_http_are_published_with_their_id() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    ws.request(json!({"request": "Subscribe", "events": {"Mygame": ["*"]}, "id": "s"}))
        .await;
    let (status, body) = server.post(
        "/events",
        &json!({"source": "mygame", "type": "level_up",
        "user": {"id": "p1", "username": "player"}, "room": "arena", "data": {"level": 3}}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let frame = ws.recv().await;
    assert_eq!(
        frame["event"],
        json!({"source": "Mygame", "type": "LevelUp", "id": body["eventId"]})
    );
    assert_eq!(frame["data"], json!({"level": 3}));
    assert_eq!(frame["room"], "arena");
    assert_eq!(frame["user"], json!({"id": "p1", "username": "player"}));
}

#[tokio::test]
async fn bad_event_bodies_get_400_with_a_reason() {
    let server = TestServer::start();
    for body in [
        json!({"type": "x"}),
        json!({"source": "a", "type": 5}),
        json!({"source": " ", "type": "x"}),
        json!([1]),
    ] {
        let (status, reply) = server.post("/events", &body);
        assert_eq!(status, 400, "{body}");
        assert_eq!(reply["status"], "error");
        assert!(!reply["error"].as_str().unwrap().is_empty());
    }
    let response = ureq::post(&server.http("/events")).send_string("{oops");
    match response {
        Err(ureq::Error::Status(400, _)) => {}
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn do_action_and_get_actions_work_like_streamerbots_http_server() {
    let server = server_with_actions();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    ws.request(json!({"request": "Subscribe", "events": {"General": ["Custom"]}, "id": "s"}))
        .await;
    let (status, _) = server.post(
        "/DoAction",
        &json!({"action": {"name": "Celebrate"}, "args": {"boss": "Hydra"}}),
    );
    assert_eq!(status, 204);
    assert_eq!(ws.recv().await["data"]["boss"], "Hydra");
    let (status, body) = server.post("/DoAction", &json!({"action": {"name": "Nope"}}));
    assert_eq!(
        (status, body),
        (
            404,
            json!({"status": "error", "error": "Action not found: Nope"})
        )
    );
    let (status, _) = server.post("/DoAction", &json!({"action": {}}));
    assert_eq!(status, 400);
    let (status, body) = server.get("/GetActions");
    assert_eq!(status, 200);
    assert_eq!(body["count"], 3);
    assert_eq!(body["actions"][0]["name"], "Celebrate");
}
