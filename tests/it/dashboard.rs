//! The dashboard (docs/dashboard.md): driven in headless Chromium by `tests/clients/dashboard.mjs`
//! (playwright-core), which also writes the screenshots of `docs/screenshots/`; and its live feed,
//! a bounded registry subscriber, over raw sockets.

use serde_json::json;

use crate::support::clients::{chromium, ScriptOutput};
use crate::support::{project_dir, Options, TestServer, Ws};

/// Runs a scenario of `dashboard.mjs` against `server`; screenshots go to `docs/screenshots`.
async fn browser(scenario: &str, server: &TestServer, args: &[&str]) -> ScriptOutput {
    chromium();
    let shots = project_dir().join("docs").join("screenshots");
    std::fs::create_dir_all(&shots).expect("docs/screenshots can be created");
    let shots = shots.to_str().expect("a UTF-8 path").to_owned();
    let mut all = vec![scenario, server.url("http"), shots.as_str()];
    all.extend_from_slice(args);
    let output = server.script("dashboard.mjs", &all).await;
    output.assert_success();
    output
}

fn assert_steps(output: &ScriptOutput, steps: &[&str]) {
    for step in steps {
        assert!(
            output.lines().contains(&format!("ok {step}").as_str()),
            "missing {step}:\n{}",
            output.stdout
        );
    }
}

const CELEBRATE: &str = r#"{"kind": "action", "schemaVersion": 1, "id": "01JD3Q5S8N0W4X7Y2Z6A9B1C3H",
    "name": "Celebrate", "steps": [{"id": "party", "kind": "emit", "type": "celebrated"}]}"#;

#[tokio::test]
async fn an_event_injected_over_http_appears_in_the_live_feed() {
    let server = TestServer::start();
    let output = browser("feed", &server, &[]).await;
    assert_steps(
        &output,
        &["event shown", "filter", "pause", "keyboard", "clean"],
    );
}

#[tokio::test]
async fn try_it_publishes_events_and_runs_actions_by_name() {
    let dirs = crate::support::Dirs::new();
    dirs.write_rule("celebrate.action.json", CELEBRATE);
    let server = TestServer::start_in(dirs, Options::default());
    let output = browser("try", &server, &["Celebrate"]).await;
    assert_steps(&output, &["inject", "action", "clean"]);
}

#[tokio::test]
async fn the_feed_shows_every_event_of_1000_a_second_with_a_capped_table() {
    let server = TestServer::start_with(Options {
        custom_toml: "rate_limit_per_second = 5000\n".into(),
        ..Options::default()
    });
    let output = browser("rate", &server, &[server.url("custom"), server.token()]).await;
    assert_steps(&output, &["rate"]);
    // The figures (longest frame, long tasks) depend on the machine: shown, not asserted.
    for line in output.lines() {
        if line.starts_with("metric ") {
            println!("{line}");
        }
    }
}

#[tokio::test]
async fn the_dashboard_is_served_at_the_root_with_its_files_and_nothing_else() {
    let server = TestServer::start();
    let page = ureq::get(&server.http("/")).call().expect("200 for /");
    assert_eq!(page.content_type(), "text/html");
    let policy = page
        .header("content-security-policy")
        .expect("a Content-Security-Policy")
        .to_owned();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(page.into_string().unwrap().contains("/dashboard/app.js"));
    for file in ["app.js", "live.js", "style.css", "icon.svg"] {
        let response = ureq::get(&server.http(&format!("/dashboard/{file}"))).call();
        assert!(response.is_ok(), "{file}: {response:?}");
    }
    match ureq::get(&server.http("/dashboard/missing.js")).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn the_feed_refuses_pages_of_other_sites() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start();
    let feed = server.http("/dashboard/feed").replace("http://", "ws://");
    let mut request = feed.as_str().into_client_request().expect("a valid URL");
    let origin = "http://evil.example".parse().expect("a valid header");
    request.headers_mut().insert("Origin", origin);
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let mut same = feed.as_str().into_client_request().expect("a valid URL");
    let origin = server.url("http").trim_end_matches('/').parse().unwrap();
    same.headers_mut().insert("Origin", origin);
    let (mut ws, _) = tokio_tungstenite::connect_async(same)
        .await
        .expect("the dashboard's own origin is accepted");
    server.wait_for_subscribed("dashboard");
    let id = server.inject(json!({"source": "mygame", "type": "ping"}));
    let frame = futures_util::StreamExt::next(&mut ws)
        .await
        .unwrap()
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(event["id"], json!(id));
    assert_eq!(event["source"], "mygame");
    assert_eq!(event["type"], "ping");
}

#[tokio::test]
async fn a_dashboard_feed_that_stops_reading_is_dropped_while_a_streamerbot_client_keeps_receiving()
{
    let server = TestServer::start_with(Options {
        extra_toml: "[limits]\nsend_queue = 8\n".into(),
        ..Options::default()
    });
    let feed = server.http("/dashboard/feed").replace("http://", "ws://");
    // Never read: like a frozen or background tab.
    let mut stuck = Ws::connect(&feed).await;
    let (mut fast, _) = Ws::streamerbot(&server).await;
    fast.request(json!({"request": "Subscribe", "events": {"*": ["*"]}, "id": "s"}))
        .await;
    server.wait_for_log("dashboard session");
    let padding = "x".repeat(64 * 1024);
    for _ in 0..200 {
        let id =
            server.inject(json!({"source": "load", "type": "tick", "data": {"padding": padding}}));
        let frame = fast.recv().await;
        assert_eq!(frame["event"]["id"], json!(id));
    }
    server.wait_for_log("too slow");
    assert_eq!(stuck.closed().await, (1008, "Send queue full".to_owned()));
}

const LEVEL_UP_ID: &str = "01JD4Q5S8N0W4X7Y2Z6A9B1C3M";

/// Fires on `mygame/level_up` at level 10 or more, for a named user.
const LEVEL_UP: &str = r#"{
  "kind": "rule", "schemaVersion": 1, "id": "01JD4Q5S8N0W4X7Y2Z6A9B1C3M", "name": "Level up",
  "group": "Game", "enabled": true,
  "triggers": [{"id": "level", "on": "level_up", "sources": ["mygame"]}],
  "conditions": {"all": [
    {"fact": "event.data.level", "op": "gte", "value": 10},
    {"fact": "event.user.username", "op": "exists"}]},
  "steps": [{"id": "cheer", "kind": "emit", "type": "levelled"}],
  "tests": [{"name": "level 12 cheers",
    "event": {"source": "mygame", "type": "level_up", "user": {"username": "p"}, "data": {"level": 12}},
    "expect": {"outcome": "completed"}}]
}"#;

/// Saving an error shows it beside its line and leaves the file alone; fixing it saves; the
/// trace of a run that did not fire shows the failed condition and the value it saw; a disabled
/// rule no longer fires.
#[tokio::test]
async fn rules_are_edited_traced_and_disabled_in_the_browser() {
    let dirs = crate::support::Dirs::new();
    dirs.write_rule("level-up.rule.json", LEVEL_UP);
    dirs.write_rule("celebrate.action.json", CELEBRATE);
    let file = dirs.rules.path().join("level-up.rule.json");
    let server = TestServer::start_in(dirs, Options::default());
    let file = file.to_str().expect("a UTF-8 path").to_owned();
    let output = browser("rules", &server, &[&file, LEVEL_UP_ID]).await;
    assert_steps(
        &output,
        &[
            "error shown",
            "fixed",
            "trace",
            "fires",
            "own tests",
            "disabled",
            "own tests fail when disabled",
            "dry run",
            "clean",
        ],
    );
    let (status, stored) = server.get(&format!("/rules/{LEVEL_UP_ID}"));
    assert_eq!(status, 200);
    assert_eq!(stored["enabled"], false);
}

/// The script's next line on stdout, within the script timeout.
async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    let line = tokio::time::timeout(crate::support::clients::SCRIPT_TIMEOUT, lines.next_line());
    line.await
        .expect("a line in time")
        .expect("stdout is readable")
        .expect("the script printed a line before it ended")
}

/// An outbound link shown as down turns up once its foreign server starts (and Reconnect is
/// pressed); the inbound sessions show each face's client and subscriptions.
#[tokio::test]
async fn an_outbound_link_shown_down_turns_up_when_its_server_starts() {
    use tokio::io::AsyncBufReadExt;
    use tokio::io::AsyncWriteExt;
    // A port nothing listens on yet; the foreign server takes it later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let server = TestServer::start_with(Options {
        extra_toml: crate::outbound::outbound_toml(port),
        ..Options::default()
    });
    let (mut streamerbot, _) = Ws::streamerbot(&server).await;
    streamerbot
        .request(json!({"request": "Subscribe", "events": {"Twitch": ["Follow"]}, "id": "s"}))
        .await;
    chromium();
    let dir = crate::support::clients::node_dir();
    let shots = project_dir().join("docs").join("screenshots");
    let mut script = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .arg("connections")
        .arg(server.url("http"))
        .arg(&shots)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut stdin = script.stdin.take().expect("piped stdin");
    let mut lines = tokio::io::BufReader::new(script.stdout.take().expect("piped stdout")).lines();
    assert_eq!(next_line(&mut lines).await, "ok down");
    let _foreign = crate::outbound::Foreign::start(port).await;
    stdin
        .write_all(b"foreign up\n")
        .await
        .expect("stdin is writable");
    drop(stdin);
    assert_eq!(next_line(&mut lines).await, "ok up");
    assert_eq!(next_line(&mut lines).await, "ok clean");
    let status = tokio::time::timeout(crate::support::clients::SCRIPT_TIMEOUT, script.wait());
    assert!(status
        .await
        .expect("the script ends")
        .expect("waited")
        .success());
}

#[tokio::test]
async fn the_state_page_shows_credits_and_variables_and_searches_them() {
    let dirs = crate::support::Dirs::new();
    dirs.write_rule(
        "count-follows.rule.json",
        r#"{"kind": "rule", "schemaVersion": 1, "id": "01JD4Q5S8N0W4X7Y2Z6A9B1C3N",
        "name": "Count follows", "triggers": [{"id": "f", "on": "follow", "sources": ["twitch"]}],
        "steps": [{"id": "count", "kind": "set", "var": "global.follows", "op": "add", "value": 1}]}"#,
    );
    dirs.write_rule(
        "gift-diamonds.rule.json",
        r#"{"kind": "rule", "schemaVersion": 1, "id": "01JD4Q5S8N0W4X7Y2Z6A9B1C3P",
        "name": "Gift diamonds", "triggers": [{"id": "g", "on": "gift", "sources": ["tiktok"]}],
        "steps": [{"id": "diamonds", "kind": "set", "var": "user.diamonds", "op": "add",
                   "value": "{{ event.data.diamondCount }}"}]}"#,
    );
    let server = TestServer::start_in(dirs, Options::default());
    let output = browser("state", &server, &[]).await;
    assert_steps(&output, &["shown", "search", "clean"]);
    let (status, variables) = server.get("/variables");
    assert_eq!(status, 200);
    assert_eq!(variables["globals"][0]["name"], "follows");
    assert_eq!(variables["users"][0]["userId"], "u7");
    let (status, credits) = server.get("/credits");
    assert_eq!(status, 200);
    assert_eq!(credits["events"]["follows"], json!(["alice", "bob"]));
}

#[tokio::test]
async fn beyond_loopback_the_page_asks_for_the_admin_token_once() {
    let server = TestServer::start_with(Options {
        http_toml: "bind = \"0.0.0.0:0\"\n".into(),
        ..Options::default()
    });
    let (status, _) = server.put(
        "/actions/01JD3Q5S8N0W4X7Y2Z6A9B1C3H",
        &serde_json::from_str(CELEBRATE).unwrap(),
    );
    assert_eq!(status, 200);
    let output = browser("token", &server, &["not-the-token"]).await;
    assert_steps(
        &output,
        &[
            "asked",
            "wrong refused",
            "api with token",
            "feed with token",
            "kept",
        ],
    );
    let logs = server.logs().join("\n");
    assert!(
        !logs.contains(server.admin_token()),
        "the admin token is in the log"
    );
}

#[tokio::test]
async fn a_page_of_another_site_changes_nothing_and_reads_no_feed() {
    let server = TestServer::start();
    let mut feed = Ws::connect(&server.http("/dashboard/feed").replace("http://", "ws://")).await;
    server.wait_for_subscribed("dashboard");
    let output = browser("cross-origin", &server, &[]).await;
    assert_steps(&output, &["cross-origin refused"]);
    server.wait_for_logs("http: refused POST /events", 2);
    server.wait_for_log("http: refused POST /connections/x/reconnect");
    let marker = server.inject(json!({"source": "test", "type": "marker"}));
    let first = feed.recv().await;
    assert_eq!(
        first["id"],
        marker.as_str(),
        "an event came before the marker: {first}"
    );
}
