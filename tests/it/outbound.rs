//! Outbound connections against a real foreign WebSocket server (Python `websockets`, with its
//! own JSON shape): mapping into events, reconnecting, `ws.send`, status and runtime changes.

use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::clients::python;
use crate::support::{project_dir, Dirs, Options, TestServer, Ws, TIMEOUT};

/// The foreign server process and its output lines.
pub struct Foreign {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl Foreign {
    pub async fn start(port: u16) -> Foreign {
        let mut child = Command::new(python())
            .arg(project_dir().join("tests/clients/foreign_server.py"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the foreign server starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut foreign = Foreign {
            child,
            lines,
            port: 0,
        };
        let listening = foreign.line_starting("listening ").await;
        foreign.port = listening["listening ".len()..].parse().unwrap();
        foreign
    }

    /// The next output line that starts with `prefix`.
    async fn line_starting(&mut self, prefix: &str) -> String {
        loop {
            let line = tokio::time::timeout(TIMEOUT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("the foreign server printed no {prefix:?} line in time"))
                .unwrap()
                .unwrap_or_else(|| panic!("the foreign server ended before a {prefix:?} line"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    async fn command(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }
}

pub fn outbound_toml(port: u16) -> String {
    format!(
        r#"
[[outbound]]
name = "mygame"
url = "ws://127.0.0.1:{port}/events"
source = "mygame"
auth = {{ token = "abc", mode = "header" }}
default_type = "custom"
[outbound.mapping]
type = "$.kind"
room = "$.channel"
"user.id" = "$.player.id"
"user.username" = "$.player.name"
"data.message" = "$.text"
"data.stats.hp" = "$.player.hp"

[[outbound]]
name = "by-query"
url = "ws://127.0.0.1:{port}/q"
auth = {{ token = "a b&c", mode = "query" }}

[[outbound]]
name = "sleeping"
url = "ws://127.0.0.1:{port}/never"
enabled = false
"#
    )
}

#[tokio::test]
async fn a_foreign_server_feeds_events_gets_frames_and_is_redialled() {
    let mut foreign = Foreign::start(0).await;
    let dirs = Dirs::new();
    dirs.write_rule("reply.rule.json", &json!({"kind": "rule", "schemaVersion": 1, "id": "01JD3Q5S8N0W4X7Y2Z6A9B1C48", "name": "Reply to chat",
        "triggers": [{"on": "chat", "sources": ["mygame"]}],
        "steps": [{"kind": "ws.send", "connection": "mygame", "payload": {"reply": "{{ event.data.message }}", "to": "{{ event.user.username }}"}}]}).to_string());
    let server = TestServer::start_in(
        dirs,
        Options {
            extra_toml: outbound_toml(foreign.port),
            ..Options::default()
        },
    );

    let mut paths = vec![
        foreign.line_starting("connected ").await,
        foreign.line_starting("connected ").await,
    ];
    paths.sort();
    assert_eq!(
        paths,
        [
            "connected path=/events auth=Bearer abc",
            "connected path=/q?token=a+b%26c auth="
        ]
    );
    server.wait_for_log("outbound mygame: connected");

    let (mut ws, _) = Ws::streamerbot(&server).await;
    ws.request(json!({"request": "Subscribe", "events": {"Mygame": ["*"]}, "id": "s"}))
        .await;
    foreign.command("send").await;
    let chat = ws.recv().await;
    assert_eq!(chat["event"]["source"], "Mygame");
    assert_eq!(chat["event"]["type"], "Chat");
    assert_eq!(chat["room"], "channel-1");
    assert_eq!(
        chat["user"],
        json!({"id": "7", "username": "bob", "nickname": ""})
    );
    assert_eq!(chat["data"], json!({"message": "hi", "stats": {"hp": 42}}));
    // Not JSON and binary frames are skipped; the next event is the "no kind" message.
    let bare = ws.recv().await;
    assert_eq!(bare["event"]["type"], "Custom");
    assert_eq!(bare["data"], json!({"message": "no kind"}));
    assert!(bare.get("user").is_none() && bare.get("room").is_none());

    // The rule's ws.send reached the foreign server (once per chat event).
    assert_eq!(
        foreign.line_starting("received ").await,
        r#"received {"reply":"hi","to":"bob"}"#
    );

    let (status, connections) = server.get("/connections");
    assert_eq!(status, 200);
    let by_name = |name: &str| {
        connections["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name("mygame")["status"], "connected");
    assert_eq!(by_name("sleeping")["status"], "disabled");
    assert!(
        !connections.to_string().contains("abc"),
        "the token leaked into the status"
    );

    // The foreign server goes away and comes back on the same port: Switchboard redials.
    let port = foreign.port;
    foreign.command("quit").await;
    foreign.child.wait().await.unwrap();
    server.wait_for_log("outbound mygame: error");
    let (_, status) = server.get("/connections/mygame");
    assert_eq!(status["status"], "error");
    assert!(
        status["lastError"].is_string() && status["nextRetryAt"].is_string(),
        "{status}"
    );
    assert!(status["failures"].as_u64().unwrap() >= 1);
    let mut foreign = Foreign::start(port).await;
    foreign.line_starting("connected ").await;
    foreign.line_starting("connected ").await;
    server.wait_for_logs("outbound mygame: connected", 2);
    foreign.command("send").await;
    assert_eq!(ws.recv().await["event"]["type"], "Chat");
    assert_eq!(
        foreign.line_starting("received ").await,
        r#"received {"reply":"hi","to":"bob"}"#
    );

    // Shutdown closes the links with 1001.
    server.terminate();
    assert_eq!(foreign.line_starting("closed ").await, "closed 1001");
}

#[tokio::test]
async fn a_refused_dial_backs_off_about_one_then_two_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!("[[outbound]]\nname = \"down\"\nurl = \"ws://127.0.0.1:{port}/\"\n");
    let server = TestServer::start_with(Options {
        extra_toml: toml,
        ..Options::default()
    });
    let wait_after = |failures: u64| {
        let (_, status) = server.get("/connections/down");
        assert_eq!(status["status"], "error");
        assert_eq!(status["failures"], failures, "{status}");
        assert!(
            status["lastError"].as_str().unwrap().contains("refused"),
            "{status}"
        );
        let at = |key: &str| {
            chrono::DateTime::parse_from_rfc3339(status[key].as_str().unwrap()).unwrap()
        };
        (at("nextRetryAt") - at("lastErrorAt")).num_milliseconds()
    };
    server.wait_for_logs("outbound down: error", 1);
    let first = wait_after(1);
    assert!((800..=1200).contains(&first), "first wait {first} ms");
    server.wait_for_logs("outbound down: error", 2);
    let second = wait_after(2);
    assert!((1600..=2400).contains(&second), "second wait {second} ms");
}

#[tokio::test]
async fn connections_are_managed_at_runtime_and_a_down_one_fails_ws_send() {
    let mut foreign = Foreign::start(0).await;
    let dirs = Dirs::new();
    dirs.write_rule("tell.action.json", &json!({"kind": "action", "schemaVersion": 1, "id": "01JD3Q5S8N0W4X7Y2Z6A9B1C49", "name": "Tell",
        "steps": [{"id": "tell", "kind": "ws.send", "connection": "live", "text": "hello {{ who }}"}]}).to_string());
    let server = TestServer::start_in(dirs, Options::default());
    let (status, _) = server.put(
        "/connections/live",
        &json!({"url": format!("ws://127.0.0.1:{}/live", foreign.port)}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        foreign.line_starting("connected ").await,
        "connected path=/live auth="
    );
    server.wait_for_log("outbound live: connected");
    let (status, _) = server.post(
        "/DoAction",
        &json!({"action": {"name": "Tell"}, "args": {"who": "world"}}),
    );
    assert_eq!(status, 204);
    assert_eq!(
        foreign.line_starting("received ").await,
        "received hello world"
    );

    let (status, body) = server.put(
        "/connections/bad",
        &json!({"url": "ws://127.0.0.1:1/", "mapping": {"source": "$.x"}}),
    );
    assert_eq!(status, 400, "{body}");

    // A down connection fails the step at once.
    foreign.command("quit").await;
    foreign.child.wait().await.unwrap();
    server.wait_for_log("outbound live: error");
    server.post(
        "/DoAction",
        &json!({"action": {"name": "Tell"}, "args": {"who": "nobody"}}),
    );
    let line = server.wait_for_log("step tell failed (notConnected)");
    assert!(
        line.contains("connection 'live' is not connected (status: error)"),
        "{line}"
    );

    // Runtime connections persist across a restart, and can be deleted.
    let server = server.kill_and_restart();
    let (status, connection) = server.get("/connections/live");
    assert_eq!(status, 200);
    assert_eq!(
        connection["url"],
        json!(format!("ws://127.0.0.1:{}/live", foreign.port))
    );
    let (status, _) = server.delete("/connections/live");
    assert_eq!(status, 204);
    let (status, _) = server.get("/connections/live");
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_outbound_connection_with_source_discord_reaches_the_guild_on_the_socket_io_face() {
    let mut foreign = Foreign::start(0).await;
    let toml = format!(
        "[[outbound]]\nname = \"bot\"\nurl = \"ws://127.0.0.1:{}/\"\nsource = \"discord\"\nmapping = {{ type = \"$.kind\", room = \"$.channel\", \"data.content\" = \"$.text\" }}\n",
        foreign.port
    );
    let server = TestServer::start_with(Options {
        extra_toml: toml,
        socketio_toml: "api_keys = [\"key-1\"]\n".into(),
        ..Options::default()
    });
    let mut socket = crate::socketio::Sio::join(&server, &["channel-1"]).await;
    foreign.line_starting("connected ").await;
    foreign.command("send").await;
    let event = socket.discord().await;
    assert_eq!(
        event,
        json!({"event": "chat", "guildId": "channel-1", "data": {"content": "hi"}})
    );
}
