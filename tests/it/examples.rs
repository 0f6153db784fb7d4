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
