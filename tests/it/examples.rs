//! The examples run as written: the Rust client prints the events it subscribed to.

use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Options, TestServer, TIMEOUT};

/// The example's binary, built by `cargo test` beside the test binary (or here, when only the
/// integration tests were built).
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join(name);
    if !path.is_file() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", name])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    path
}

/// Runs an example to its end (with a deadline) and returns its stdout; fails on a bad exit.
async fn run_example(name: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(example(name))
        .args(args)
        .output();
    let output = tokio::time::timeout(TIMEOUT, output)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish in time"))
        .expect("the example runs");
    assert!(
        output.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_rust_events_example_prints_what_it_subscribed_to() {
    let server = TestServer::start_with(Options {
        password: Some("s3cret".into()),
        ..Options::default()
    });
    let mut child = tokio::process::Command::new(example("streamerbot_events"))
        .args([
            "--url",
            server.url("streamerbot"),
            "--password",
            "s3cret",
            "--max",
            "2",
            "Twitch.Follow",
            "General.*",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the example runs");
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(TIMEOUT, errors.next_line())
            .await
            .expect("subscribed in time")
            .unwrap();
        match line {
            Some(line) if line.starts_with("subscribed to") => break,
            Some(_) => continue,
            None => panic!("the example ended before subscribing"),
        }
    }
    server.inject(json!({"source": "twitch", "type": "cheer", "data": {"bits": 1}}));
    server.inject(json!({"source": "twitch", "type": "follow", "data": {"user_name": "Alice"}}));
    server.inject(json!({"source": "general", "type": "custom", "data": {"x": 1}}));
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .expect("done in time")
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Twitch.Follow {\"user_name\":\"Alice\"}\nGeneral.Custom {\"x\":1}\n"
    );
}

/// A server with the shipped rules, for the custom-face examples.
pub fn server_with_shipped_rules() -> TestServer {
    let dirs = crate::support::Dirs::new();
    for entry in std::fs::read_dir(crate::support::project_dir().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        dirs.write_rule(
            path.file_name().unwrap().to_str().unwrap(),
            &std::fs::read_to_string(&path).unwrap(),
        );
    }
    TestServer::start_in(dirs, Options::default())
}

#[tokio::test]
async fn the_game_client_example_injects_and_triggers_a_rule_by_name() {
    let server = server_with_shipped_rules();
    let token = format!("--token={}", server.token());
    let stdout = run_example("game_client", &["--url", server.url("custom"), &token]).await;
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["action"], "injectEvent");
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(
        lines[1],
        json!({"action": "triggerRule", "status": "ok", "ruleId": "01JCWXWCBYB6WK952SWA0432CF", "ruleName": "Boss defeated"})
    );
}

#[tokio::test]
async fn the_vmsc_node_and_python_examples_run_as_written() {
    let server = server_with_shipped_rules();
    let node_modules = crate::support::clients::node_dir().join("node_modules");
    let python = crate::support::clients::python();
    let script = |name: &str| crate::support::project_dir().join("examples").join(name);
    for (program, script) in [
        (std::path::PathBuf::from("node"), script("vmsc_client.js")),
        (python, script("vmsc_client.py")),
    ] {
        let output = tokio::process::Command::new(&program)
            .arg(&script)
            .env("SWITCHBOARD_URL", server.url("custom"))
            .env("SWITCHBOARD_TOKEN", server.token())
            .env("NODE_PATH", &node_modules)
            .output();
        let output = tokio::time::timeout(TIMEOUT, output)
            .await
            .expect("done in time")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {stdout}\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let frames: Vec<serde_json::Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(frames[0]["action"], "subscribe", "{stdout}");
        assert_eq!(frames[1]["action"], "injectEvent");
        assert!(
            frames
                .iter()
                .any(|frame| frame["action"] == "event" && frame["event"]["type"] == "gift"),
            "{stdout}"
        );
        assert!(
            frames
                .iter()
                .any(|frame| frame["action"] == "triggerRule"
                    && frame["ruleName"] == "TikTok big gift"),
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn the_load_generator_runs_a_short_smoke_with_nothing_lost() {
    let server = TestServer::start_with(Options {
        custom_toml: "rate_limit_per_second = 100000\n".into(),
        ..Options::default()
    });
    // `--token=…` in one argument: a generated token may start with `-`.
    let token = format!("--token={}", server.token());
    let face = ("streamerbot", server.url("streamerbot"));
    smoke(face, server.url("custom"), &token).await;
}

#[tokio::test]
async fn the_load_generator_runs_a_short_astro_smoke_with_nothing_lost() {
    let server = TestServer::start_with(Options {
        custom_token: Some("bench".into()),
        custom_toml: "rate_limit_per_second = 100000\n".into(),
        extra_toml: "[[astro.tokens]]\ntoken = \"bench\"\nroom = \"bench\"\nscopes = [\"*\"]\n"
            .into(),
        ..Options::default()
    });
    smoke(
        ("astro", server.url("astro")),
        server.url("custom"),
        "--token=bench",
    )
    .await;
}

#[tokio::test]
async fn the_load_generator_runs_a_short_socket_io_smoke_with_nothing_lost() {
    let server = TestServer::start_with(Options {
        custom_token: Some("bench".into()),
        custom_toml: "rate_limit_per_second = 100000\n".into(),
        socketio_toml: "api_keys = [\"bench\"]\n".into(),
        ..Options::default()
    });
    let base = server
        .url("socketio")
        .trim_end_matches("/socket.io/")
        .replace("http://", "ws://");
    smoke(("holobridge", &base), server.url("custom"), "--token=bench").await;
}

/// One second of the load generator: 5 subscribers of `(dialect, url)`, events published on
/// the custom face; every event must reach every subscriber.
async fn smoke((dialect, url): (&str, &str), publish: &str, token: &str) {
    let args = [
        "--dialect",
        dialect,
        "--url",
        url,
        "--publish",
        publish,
        token,
        "--subscribers",
        "5",
        "--window",
        "4",
        "--seconds",
        "1",
    ];
    let stdout = run_example("loadgen", &args).await;
    assert_every_event_reached_everyone(&stdout, 5);
}

/// The load generator's report: events were sent, and each reached every subscriber.
fn assert_every_event_reached_everyone(stdout: &str, subscribers: u64) {
    let report: serde_json::Value = serde_json::from_str(stdout).expect("a JSON report");
    assert_eq!(report["lost"], 0, "{report}");
    let events = report["events"].as_u64().expect("a count of events");
    assert!(events >= 1, "{report}");
    assert_eq!(report["deliveries"], events * subscribers, "{report}");
}

/// The bench's floor peer broadcasts what one client sends to every other, as the load
/// generator's plain-WebSocket dialect expects.
#[tokio::test]
async fn the_actix_peer_broadcasts_to_the_load_generator() {
    let mut peer = tokio::process::Command::new(example("actix_peer"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the peer starts");
    let mut lines = BufReader::new(peer.stdout.take().expect("its stdout")).lines();
    let listening = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("it prints its port in time")
        .expect("a line")
        .expect("a line");
    let port = listening
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {listening:?}"));
    let url = format!("ws://127.0.0.1:{port}/");
    let stdout = run_example(
        "loadgen",
        &[
            "--dialect",
            "ws",
            "--url",
            &url,
            "--subscribers",
            "3",
            "--window",
            "2",
            "--seconds",
            "1",
        ],
    )
    .await;
    assert_every_event_reached_everyone(&stdout, 3);
}
