//! The HTTP face: health, Streamer.bot-compatible `/DoAction` and `/GetActions`, `/events`.

use serde_json::json;

use crate::streamerbot::server_with_actions;
use crate::support::{Options, TestServer, Ws};

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
    let response = server.request("POST", "/events").send_string("{oops");
    match response {
        Err(ureq::Error::Status(400, _)) => {}
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn do_action_and_get_actions_work_like_streamerbots_http_server() {
    let server = server_with_actions(Options::default());
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

/// Every sample of `GET /metrics`, as the Prometheus project's own parser reads the text.
async fn scrape(server: &TestServer) -> Vec<(String, serde_json::Value, f64)> {
    let output = server
        .script("metrics.py", &[&server.http("/metrics")])
        .await;
    output.assert_success();
    output
        .lines()
        .iter()
        .map(|line| serde_json::from_str(line).expect("a sample"))
        .collect()
}

/// The value of the sample `name` whose labels include `labels`, if there is one.
fn sample(
    samples: &[(String, serde_json::Value, f64)],
    name: &str,
    labels: serde_json::Value,
) -> Option<f64> {
    let wanted = labels.as_object().unwrap();
    samples
        .iter()
        .find(|(sample, have, _)| {
            sample == name
                && wanted
                    .iter()
                    .all(|(key, value)| have.get(key) == Some(value))
        })
        .map(|(_, _, value)| *value)
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_when_events_flow() {
    let dirs = crate::support::Dirs::new();
    dirs.write_rule(
        "count.rule.json",
        r#"{"kind": "rule", "schemaVersion": 1, "id": "01JE00000000000000000METRC", "name": "Count",
            "enabled": true, "triggers": [{"id": "t", "on": "tick", "sources": ["mygame"]}],
            "steps": [{"id": "n", "kind": "set", "var": "global.ticks", "op": "add", "value": 1}]}"#,
    );
    let server = TestServer::start_in(dirs, crate::support::Options::default());
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let reply = ws
        .request(json!({"request": "Subscribe", "id": "s", "events": {"mygame": ["tick"]}}))
        .await;
    assert_eq!(reply["status"], "ok");
    let before = scrape(&server).await;
    assert_eq!(
        sample(
            &before,
            "switchboard_connections",
            json!({"face": "streamerbot"})
        ),
        Some(1.0)
    );
    for _ in 0..3 {
        let id = server.inject(json!({"source": "mygame", "type": "tick", "data": {}}));
        assert_eq!(ws.recv().await["event"]["id"], json!(id));
    }
    // An outbound connection that cannot connect: its gauge says 0.
    let (status, _) = server.put("/connections/down", &json!({"url": "ws://127.0.0.1:9/"}));
    assert_eq!(status, 200);
    server.wait_for_log("outbound down: error");
    // Runs end after their event is published: scrape until the three are counted.
    let runs = json!({"document": "01JE00000000000000000METRC", "outcome": "completed"});
    let deadline = std::time::Instant::now() + crate::support::TIMEOUT;
    let after = loop {
        let after = scrape(&server).await;
        if sample(&after, "switchboard_rule_runs_total", runs.clone()) == Some(3.0) {
            break after;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the runs were not counted"
        );
    };
    assert_eq!(
        sample(
            &after,
            "switchboard_outbound_up",
            json!({"connection": "down"})
        ),
        Some(0.0)
    );
    let moved = |name: &str, labels: serde_json::Value| {
        let now = sample(&after, name, labels.clone()).unwrap_or_else(|| panic!("no {name}"));
        now - sample(&before, name, labels).unwrap_or(0.0)
    };
    assert_eq!(
        moved(
            "switchboard_events_published_total",
            json!({"source": "mygame"})
        ),
        3.0
    );
    assert_eq!(
        moved(
            "switchboard_deliveries_total",
            json!({"face": "streamerbot"})
        ),
        3.0
    );
    assert_eq!(moved("switchboard_rule_runs_total", runs), 3.0);
    assert_eq!(
        moved("switchboard_run_duration_seconds_count", json!({})),
        3.0
    );
    // Each run's `set` is flushed before the step ends.
    assert!(moved("switchboard_store_flush_seconds_count", json!({})) >= 1.0);
    assert_eq!(
        sample(
            &after,
            "switchboard_slow_consumer_closes_total",
            json!({"face": "streamerbot"})
        ),
        Some(0.0)
    );
    // The example Grafana dashboard asks only for metrics that exist.
    let path = crate::support::project_dir().join("examples/grafana-dashboard.json");
    let dashboard = std::fs::read_to_string(path).expect("the example dashboard");
    for (at, _) in dashboard.match_indices("switchboard_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        assert!(
            after.iter().any(|(sample, _, _)| sample.starts_with(&name)),
            "the dashboard asks for {name}, which /metrics does not have"
        );
    }
}
