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
    pub port: u16,
}

impl Foreign {
    pub async fn start(port: u16) -> Foreign {
        Foreign::start_with(&[&port.to_string()]).await
    }

    /// A `wss://` server on a free port, serving the certificate and key in `files`.
    pub async fn start_tls(files: &crate::support::tls::Files) -> Foreign {
        let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());
        Foreign::start_with(&["0", cert, key]).await
    }

    async fn start_with(args: &[&str]) -> Foreign {
        let mut child = Command::new(python())
            .arg(project_dir().join("tests/clients/foreign_server.py"))
            .args(args)
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
    pub async fn line_starting(&mut self, prefix: &str) -> String {
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

    pub async fn command(&mut self, command: &str) {
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

/// A foreign server written frame by frame on raw TCP, so that a test can announce a frame it
/// never finishes, split a message into fragments, or keep writing on a link Switchboard gave up.
struct RawForeign {
    listener: tokio::net::TcpListener,
    port: u16,
}

/// One accepted link: the request's path, what Switchboard sends on it and where to write.
struct RawLink {
    path: String,
    from_switchboard: Frames,
    write: tokio::net::tcp::OwnedWriteHalf,
}

/// The frames Switchboard sends on a link (masked, as a client's).
struct Frames(tokio::net::tcp::OwnedReadHalf);

const CONTINUATION: u8 = 0;
const TEXT: u8 = 1;
const CLOSE: u8 = 8;
const PING: u8 = 9;
const PONG: u8 = 10;

impl RawForeign {
    async fn start() -> RawForeign {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        RawForeign { listener, port }
    }

    /// Accepts the next dial and answers its handshake.
    async fn accept(&self) -> RawLink {
        use tokio::io::AsyncReadExt;
        let (stream, _) = tokio::time::timeout(TIMEOUT, self.listener.accept())
            .await
            .expect("Switchboard dialled in time")
            .unwrap();
        let (mut read, mut write) = stream.into_split();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let byte = tokio::time::timeout(TIMEOUT, read.read_u8())
                .await
                .expect("the handshake arrived in time")
                .unwrap();
            request.push(byte);
        }
        let request = String::from_utf8(request).unwrap();
        let path = request.split_whitespace().nth(1).unwrap().to_owned();
        let key = request
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim())
            })
            .expect("a Sec-WebSocket-Key header");
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let answer = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
        write.write_all(answer.as_bytes()).await.unwrap();
        RawLink {
            path,
            from_switchboard: Frames(read),
            write,
        }
    }
}

impl RawForeign {
    /// Takes the next dial and hangs up at once: the dial fails.
    async fn refuse(&self) {
        tokio::time::timeout(TIMEOUT, self.listener.accept())
            .await
            .expect("Switchboard dialled in time")
            .unwrap();
    }

    /// Counts every further dial on `dials`, accepting and dropping it.
    fn count_dials(self, dials: tokio::sync::mpsc::UnboundedSender<()>) {
        tokio::spawn(async move {
            while self.listener.accept().await.is_ok() {
                let _ = dials.send(());
            }
        });
    }
}

impl RawLink {
    async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }
}

impl Frames {
    /// The next frame: its opcode and payload; `None` when the socket ends.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let read = &mut self.0;
        let frame = async {
            let mut head = [0u8; 2];
            read.read_exact(&mut head).await.ok()?;
            let length = match head[1] & 0x7F {
                126 => u64::from(read.read_u16().await.ok()?),
                127 => read.read_u64().await.ok()?,
                short => u64::from(short),
            };
            let mut mask = [0u8; 4];
            read.read_exact(&mut mask).await.ok()?;
            let mut payload = vec![0u8; length as usize];
            read.read_exact(&mut payload).await.ok()?;
            for (index, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[index % 4];
            }
            Some((head[0] & 0x0F, payload))
        };
        tokio::time::timeout(TIMEOUT, frame)
            .await
            .expect("a frame or the end of the link in time")
    }

    /// Skips frames up to the close frame and returns its code; then expects the socket to end,
    /// so nothing of the link is left open.
    async fn close_code(&mut self) -> u16 {
        loop {
            match self.next().await {
                Some((CLOSE, payload)) => {
                    assert_eq!(self.next().await, None, "the link ends after its close");
                    return u16::from_be_bytes([payload[0], payload[1]]);
                }
                Some(_) => continue,
                None => panic!("the link ended without a close frame"),
            }
        }
    }
}

/// The header of a server frame (unmasked) announcing `length` payload bytes.
fn frame_header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
    let mut header = vec![if fin { 0x80 } else { 0 } | opcode];
    match length {
        0..=125 => header.push(length as u8),
        126..=0xFFFF => {
            header.push(126);
            header.extend((length as u16).to_be_bytes());
        }
        _ => {
            header.push(127);
            header.extend(length.to_be_bytes());
        }
    }
    header
}

/// A whole server frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = frame_header(fin, opcode, payload.len() as u64);
    frame.extend_from_slice(payload);
    frame
}

fn outbound_to(name: &str, port: u16) -> Options {
    Options {
        extra_toml: format!("[[outbound]]\nname = \"{name}\"\nurl = \"ws://127.0.0.1:{port}/\"\n"),
        ..Options::default()
    }
}

/// A Streamer.bot client subscribed to every event of `source`.
async fn subscribed(server: &TestServer, source: &str) -> Ws {
    let (mut ws, _) = Ws::streamerbot(server).await;
    ws.request(json!({"request": "Subscribe", "events": {source: ["*"]}, "id": "s"}))
        .await;
    ws
}

// Blocking waits on the server's log run beside the in-process foreign server: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_limit_is_refused_from_its_header_and_the_link_redialled() {
    let foreign = RawForeign::start().await;
    let server = TestServer::start_with(outbound_to("big", foreign.port));
    let mut link = foreign.accept().await;
    server.wait_for_log("outbound big: connected");
    let mut ws = subscribed(&server, "Big").await;
    let baseline = server.peak_rss_mib();

    // A 256 MiB text frame: its header, then its payload for as long as Switchboard takes it.
    const ANNOUNCED: u64 = 256 << 20;
    link.send(&frame_header(true, TEXT, ANNOUNCED)).await;
    let RawLink {
        mut from_switchboard,
        mut write,
        ..
    } = link;
    tokio::spawn(async move {
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..(ANNOUNCED >> 20) {
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let line = server.wait_for_log("outbound big: refused a message of 268435456 bytes");
    assert!(line.contains("limits.max_frame_bytes is 1048576"), "{line}");
    assert_eq!(from_switchboard.close_code().await, 1009);

    // Dialled again with the usual backoff; the new link carries events.
    let mut link = foreign.accept().await;
    server.wait_for_logs("outbound big: connected", 2);
    link.send(&frame(true, TEXT, br#"{"type": "after"}"#)).await;
    assert_eq!(ws.recv().await["event"]["type"], "After");
    let (_, status) = server.get("/connections/big");
    assert_eq!(
        status["lastError"], "message exceeds 1048576 bytes",
        "{status}"
    );

    let (peak, now) = (server.peak_rss_mib(), server.rss_mib());
    assert!(
        peak < baseline + 100 && now < baseline + 100,
        "peak {peak} MiB, now {now} MiB, {baseline} MiB before the frame"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_are_put_back_together_and_their_total_counts_against_the_limit() {
    let foreign = RawForeign::start().await;
    let server = TestServer::start_with(outbound_to("parts", foreign.port));
    let mut link = foreign.accept().await;
    server.wait_for_log("outbound parts: connected");
    let mut ws = subscribed(&server, "Parts").await;

    // Three fragments with a ping between them: one event, and the ping answered.
    link.send(&frame(false, TEXT, br#"{"type": "pie"#)).await;
    link.send(&frame(true, PING, b"p")).await;
    link.send(&frame(false, CONTINUATION, br#"ces", "n""#))
        .await;
    link.send(&frame(true, CONTINUATION, b": 3}")).await;
    let event = ws.recv().await;
    assert_eq!(event["event"]["type"], "Pieces", "{event}");
    assert_eq!(event["data"]["n"], 3, "{event}");
    assert_eq!(
        link.from_switchboard.next().await,
        Some((PONG, b"p".to_vec()))
    );

    // 700 KB, then a fragment whose header takes the message over 1 MiB: refused before its
    // payload, which never comes.
    let first = vec![b' '; 700_000];
    link.send(&frame(false, TEXT, &first)).await;
    link.send(&frame_header(true, CONTINUATION, 700_000)).await;
    let line = server.wait_for_log("outbound parts: refused a message of 1400000 bytes");
    assert!(line.contains("1009"), "{line}");
    assert_eq!(link.from_switchboard.close_code().await, 1009);
    foreign.accept().await;
    server.wait_for_logs("outbound parts: connected", 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_given_up_is_never_read_again_and_its_end_leaves_the_next_one_alone() {
    let foreign = RawForeign::start().await;
    let server = TestServer::start();
    let url = |path: &str| json!({"url": format!("ws://127.0.0.1:{}/{path}", foreign.port)});
    let (status, _) = server.put("/connections/live", &url("one"));
    assert_eq!(status, 200);
    let mut old = foreign.accept().await;
    assert_eq!(old.path, "/one");
    server.wait_for_log("outbound live: connected");
    let mut ws = subscribed(&server, "Live").await;

    // A new URL: the link is closed (1000) and the new one dialled.
    let (status, _) = server.put("/connections/live", &url("two"));
    assert_eq!(status, 200);
    let mut new = foreign.accept().await;
    assert_eq!(new.path, "/two");
    server.wait_for_logs("outbound live: connected", 2);

    // The old link's server still writes (as far as its socket lets it), then goes: neither
    // reaches Switchboard, nor touches the new link.
    let _ = old
        .write
        .write_all(&frame(true, TEXT, br#"{"type": "stale"}"#))
        .await;
    new.send(&frame(true, TEXT, br#"{"type": "fresh"}"#)).await;
    assert_eq!(ws.recv().await["event"]["type"], "Fresh");
    assert_eq!(old.from_switchboard.close_code().await, 1000);
    drop(old);
    new.send(&frame(true, TEXT, br#"{"type": "later"}"#)).await;
    assert_eq!(ws.recv().await["event"]["type"], "Later");
    let (_, status) = server.get("/connections/live");
    assert_eq!(status["status"], "connected", "{status}");
    assert!(
        !server
            .logs()
            .iter()
            .any(|line| line.contains("outbound live: error")),
        "the old link's end failed the new one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_connection_is_closed_for_good_and_never_dialled_again() {
    let (first, second) = (RawForeign::start().await, RawForeign::start().await);
    let server = TestServer::start();
    let url = |port: u16| format!("ws://127.0.0.1:{port}/");
    let (status, _) = server.put("/connections/gone", &json!({"url": url(first.port)}));
    assert_eq!(status, 200);
    let mut old = first.accept().await;
    server.wait_for_log("outbound gone: connected");
    let mut ws = subscribed(&server, "Gone").await;

    // Deleted: the link is closed (1000) and its socket ends, and what its server still writes
    // never becomes an event.
    let (status, _) = server.delete("/connections/gone");
    assert_eq!(status, 204);
    let _ = old
        .write
        .write_all(&frame(true, TEXT, br#"{"type": "stale"}"#))
        .await;
    assert_eq!(old.from_switchboard.close_code().await, 1000);
    drop(old);
    let (dials, mut dialled) = tokio::sync::mpsc::unbounded_channel();
    first.count_dials(dials);

    // A connection created afterwards, with the same source, is dialled; it fails twice first,
    // so it connects at least 2.4 s (two backoffs) after the deleted link ended, well past the
    // 1.2 s at most that a redial of the deleted one would take.
    let (status, _) = server.put(
        "/connections/next",
        &json!({"url": url(second.port), "source": "gone"}),
    );
    assert_eq!(status, 200);
    second.refuse().await;
    second.refuse().await;
    let mut link = second.accept().await;
    server.wait_for_log("outbound next: connected");
    link.send(&frame(true, TEXT, br#"{"type": "marker"}"#))
        .await;
    assert_eq!(ws.recv().await["event"]["type"], "Marker");
    assert!(
        dialled.try_recv().is_err(),
        "the deleted connection redialled"
    );
    let logs = server.logs();
    let lines = |text: &str| logs.iter().filter(|line| line.contains(text)).count();
    assert_eq!(lines("outbound gone: connecting"), 1, "{logs:#?}");
    assert_eq!(lines("outbound gone: error"), 0, "{logs:#?}");
    assert_eq!(
        lines("outbound gone: stopped for good; closing with 1000"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_holds_at_most_the_queue_limit_and_ws_send_fails_until_it_reads(
) {
    let foreign = RawForeign::start().await;
    let dirs = Dirs::new();
    // Sixteen frames of 500 kB a run, each step going on when it fails, then a line to wait for.
    const SENDS: usize = 16;
    let mut steps: Vec<_> = (0..SENDS)
        .map(|index| json!({"id": format!("send{index}"), "kind": "ws.send", "connection": "slow", "text": "{{ big }}", "continueOnError": true}))
        .collect();
    steps.push(json!({"kind": "log", "message": "flood done"}));
    const ACTION: &str = "01JD3Q5S8N0W4X7Y2Z6A9B1C50";
    dirs.write_rule(
        "flood.action.json",
        &json!({"kind": "action", "schemaVersion": 1, "id": ACTION, "name": "Flood", "mode": "queued", "max": 1000, "steps": steps})
            .to_string(),
    );
    dirs.write_rule(
        "hello.action.json",
        &json!({"kind": "action", "schemaVersion": 1, "id": "01JD3Q5S8N0W4X7Y2Z6A9B1C51", "name": "Hello",
            "steps": [{"id": "hello", "kind": "ws.send", "connection": "slow", "text": "hello {{ big }}"}]})
        .to_string(),
    );
    let server = TestServer::start_in(dirs, outbound_to("slow", foreign.port));
    // The server takes the link and does not read from it for now.
    let mut link = foreign.accept().await;
    server.wait_for_log("outbound slow: connected");
    let baseline = server.peak_rss_mib();

    // 20 runs (each keeps its trace): 160 MB of frames for a server that reads none of them.
    const RUNS: usize = 20;
    let big = "x".repeat(500_000);
    for _ in 0..RUNS {
        let (status, body) = server.post(
            "/DoAction",
            &json!({"action": {"name": "Flood"}, "args": {"big": big}}),
        );
        assert_eq!(status, 204, "{body}");
    }
    server.wait_for_logs("flood done", RUNS);
    let (peak, now) = (server.peak_rss_mib(), server.rss_mib());
    assert!(
        peak < baseline + 64 && now < baseline + 64,
        "peak {peak} MiB, now {now} MiB, {baseline} MiB before the flood"
    );

    // The last run's sends failed at once, each saying why.
    let (status, traces) = server.get(&format!("/actions/{ACTION}/traces"));
    assert_eq!(status, 200);
    assert_eq!(traces["count"], RUNS);
    let last = &traces["traces"][0];
    let steps = last["steps"].as_array().unwrap();
    assert_eq!(steps.len(), SENDS + 1, "{last}");
    for step in &steps[..SENDS] {
        assert_eq!(step["outcome"], "error", "{step}");
        assert_eq!(step["error"]["code"], "queueFull", "{step}");
        let message = step["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("connection 'slow' has ")
                && message.contains("(the server is not reading them): a frame of 500000 bytes would take it over limits.outbound_queue_bytes (8388608); not sent"),
            "{message}"
        );
    }

    // The server reads again: every frame that was taken arrives, the queue empties, and a
    // big ws.send goes through again.
    let taken = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|trace| trace["steps"].as_array().unwrap())
        .filter(|step| step["kind"] == "ws.send" && step["outcome"] == "ok")
        .count();
    assert!(taken > 0 && taken < RUNS * SENDS, "{taken} frames taken");
    let mut next_text = async || loop {
        match link.from_switchboard.next().await {
            Some((TEXT, payload)) => return payload,
            Some((PING, _)) => continue,
            other => panic!("{other:?}"),
        }
    };
    for _ in 0..taken {
        assert_eq!(next_text().await.len(), 500_000);
    }
    let (status, _) = server.post(
        "/DoAction",
        &json!({"action": {"name": "Hello"}, "args": {"big": big}}),
    );
    assert_eq!(status, 204);
    let hello = next_text().await;
    assert!(hello.starts_with(b"hello x") && hello.len() == 500_006);
}

#[test]
fn an_outbound_queue_of_zero_bytes_stops_the_start() {
    let dirs = Dirs::new();
    let config = dirs.rules.path().join("zero.toml");
    std::fs::write(&config, "[limits]\noutbound_queue_bytes = 0\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", config.to_str().unwrap()])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("zero.toml: limits.outbound_queue_bytes: must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn a_token_written_into_a_connections_url_is_not_shown() {
    let server = TestServer::start();
    let url = "ws://127.0.0.1:9/feed?room=a&token=s3cret-in-the-url";
    let (status, body) = server.put(
        "/connections/inline",
        &json!({"url": url, "enabled": false}),
    );
    assert_eq!(status, 200, "{body}");
    for path in ["/connections/inline", "/connections"] {
        let (_, shown) = server.get(path);
        let shown = shown.to_string();
        assert!(!shown.contains("s3cret-in-the-url"), "{shown}");
        assert!(
            shown.contains("ws://127.0.0.1:9/feed?room=a&token=***"),
            "{shown}"
        );
    }
    assert!(!server.logs().join("\n").contains("s3cret-in-the-url"));
}
