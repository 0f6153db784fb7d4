//! TLS on every face, with a self-signed certificate made in the test (rcgen): the real clients
//! connect with `wss://` and `https://` trusting it, a replaced certificate is served to new
//! connections without a restart, a closed session is still cut off under TLS, files that do
//! not load stop the start, and outbound connections dial `wss://` trusting their `ca_file`.

use std::process::Command;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::limits::reset_within;
use crate::outbound::Foreign;
use crate::streamerbot::server_with_actions;
use crate::support::raw::RawWs;
use crate::support::tls::{self, Files, SelfSigned};
use crate::support::{Options, TestServer, Ws, TIMEOUT};

const FACES: [&str; 5] = ["http", "streamerbot", "custom", "astro", "socketio"];

fn files() -> Files {
    Files::new(&SelfSigned::new("first"))
}

fn with_tls(files: &Files) -> Options {
    Options {
        tls: Some(files.clone()),
        ..Options::default()
    }
}

/// `NODE_EXTRA_CA_CERTS`: Node trusts the test's certificate.
fn node_trusting(files: &Files) -> [(&'static str, &str); 1] {
    [(
        "NODE_EXTRA_CA_CERTS",
        files.ca.to_str().expect("a UTF-8 path"),
    )]
}

#[tokio::test]
async fn the_banner_lists_every_face_with_its_secure_scheme() {
    let files = files();
    let server = TestServer::start_with(with_tls(&files));
    for (face, scheme) in [
        ("http", "https"),
        ("streamerbot", "wss"),
        ("custom", "wss"),
        ("astro", "wss"),
        ("socketio", "https"),
    ] {
        let url = server.url(face);
        assert!(url.starts_with(&format!("{scheme}://")), "{face}: {url}");
    }
}

#[tokio::test]
async fn the_official_streamerbot_client_connects_over_wss() {
    let files = files();
    let server = server_with_actions(with_tls(&files));
    let args = ["no-password", server.url("streamerbot"), server.url("http")];
    let output = server
        .script_with("streamerbot.mjs", &args, &node_trusting(&files))
        .await;
    output.assert_success();
    for step in [
        "ok connect",
        "ok getInfo",
        "ok doAction by name",
        "ok event",
    ] {
        assert!(output.lines().contains(&step), "missing {step}");
    }
}

#[tokio::test]
async fn python_websockets_subscribes_and_injects_over_wss_on_the_custom_face() {
    let files = files();
    let server = TestServer::start_with(with_tls(&files));
    let ca = files.ca.to_str().unwrap();
    let args = ["tls", server.url("custom"), server.token(), ca];
    let output = server.script("custom_client.py", &args).await;
    output.assert_success();
    assert_eq!(
        output.lines(),
        ["ok subscribe over TLS", "ok injectEvent over TLS"]
    );
}

#[tokio::test]
async fn socket_io_client_receives_events_over_https_and_wss() {
    let files = files();
    let server = TestServer::start_with(Options {
        custom_token: Some("custom-secret".into()),
        socketio_toml: "api_keys = [\"key-1\"]\n".into(),
        ..with_tls(&files)
    });
    let socketio = server.url("socketio").trim_end_matches("/socket.io/");
    let args = [
        "websocket",
        socketio,
        server.url("http"),
        server.url("custom"),
        "custom-secret",
    ];
    let output = server
        .script_with("socketio.mjs", &args, &node_trusting(&files))
        .await;
    output.assert_success();
    assert_eq!(output.lines(), crate::socketio::WEBSOCKET);
}

#[tokio::test]
async fn an_astro_widget_subscribes_over_wss() {
    let files = files();
    let server = TestServer::start_with(Options {
        extra_toml: crate::astro::TOKENS.into(),
        ..with_tls(&files)
    });
    let args = ["checklist", server.url("astro"), server.url("http")];
    let output = server
        .script_with("astro.mjs", &args, &node_trusting(&files))
        .await;
    crate::astro::assert_checklist(&output);
}

#[tokio::test]
async fn the_http_face_answers_over_https_and_its_dashboard_feed_over_wss() {
    let files = files();
    let server = TestServer::start_with(with_tls(&files));
    let (status, health) = server.get("/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");

    let feed = server.http("/dashboard/feed").replace("https://", "wss://");
    let stream = tls::connect(&feed, tls::trusting(&[&files.certificate])).await;
    let (mut ws, _) = tokio_tungstenite::client_async(feed.as_str(), stream)
        .await
        .expect("WebSocket handshake over TLS");
    server.wait_for_subscribed("dashboard");
    let id = server.inject(json!({"source": "mygame", "type": "ping"}));
    let event = next_json(&mut ws).await;
    assert_eq!(event["id"], json!(id));
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections_without_a_restart() {
    let first = SelfSigned::new("first");
    let second = SelfSigned::new("second");
    let files = Files::new(&first);
    let server = TestServer::start_with(Options {
        custom_token: Some("custom-secret".into()),
        ..with_tls(&files)
    });
    let both = tls::trusting(&[&first, &second]);
    for face in FACES {
        let presented = tls::presented(server.url(face), both.clone()).await;
        assert_eq!(presented, first.der, "{face} before the change");
    }
    // A connection opened before the change goes on after it.
    let mut open = custom_subscriber(&server, &first).await;

    // A broken certificate is not served: the first one stays, with a warning.
    files.write(&files.cert, "-----BEGIN CERTIFICATE-----\nbroken\n");
    for face in FACES {
        server.wait_for_log(&format!("{face}: kept the current TLS certificate"));
        let presented = tls::presented(server.url(face), both.clone()).await;
        assert_eq!(presented, first.der, "{face} after a broken file");
    }

    files.replace(&second);
    for face in FACES {
        server.wait_for_log(&format!("{face}: TLS certificate reloaded"));
        let presented = tls::presented(server.url(face), both.clone()).await;
        assert_eq!(presented, second.der, "{face} after the change");
    }
    let inject = json!({"action": "injectEvent", "event": {"source": "mygame", "type": "ping"}});
    open.send(Message::Text(inject.to_string())).await.unwrap();
    let ack = next_json(&mut open).await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let own = next_json(&mut open).await;
    assert_eq!(own["event"]["id"], ack["eventId"]);
}

type TlsWs =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A custom-face client over TLS, subscribed to everything.
async fn custom_subscriber(server: &TestServer, trusted: &SelfSigned) -> TlsWs {
    let url = format!("{}?token=custom-secret", server.url("custom"));
    let stream = tls::connect(&url, tls::trusting(&[trusted])).await;
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .expect("WebSocket handshake over TLS");
    let subscribe = json!({"action": "subscribe"});
    ws.send(Message::Text(subscribe.to_string())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["status"], "ok");
    ws
}

/// The next text frame as JSON; pings (the server's heartbeat) are skipped.
async fn next_json(ws: &mut TlsWs) -> Value {
    loop {
        let frame = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

#[tokio::test]
async fn a_client_dropped_as_too_slow_is_cut_off_under_tls_even_if_it_never_reads() {
    let files = files();
    let server = TestServer::start_with(Options {
        extra_toml: "[limits]\nsend_queue = 8\nclose_timeout_ms = 500\n".into(),
        ..with_tls(&files)
    });
    let url = server.url("streamerbot").to_owned();
    let stream = RawWs::tcp(&url, Some(4096)).await;
    let stream = tls::handshake(stream, tls::trusting(&[&files.certificate])).await;
    let (mut slow, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .expect("WebSocket handshake over TLS");
    let subscribe = json!({"request": "Subscribe", "id": "s", "events": {"General": ["Custom"]}});
    slow.send(Message::Text(subscribe.to_string()))
        .await
        .unwrap();
    loop {
        let frame = next_json(&mut slow).await;
        if frame["id"] == "s" {
            break;
        }
    }
    // From here the client reads nothing.
    let padding = "x".repeat(64 * 1024);
    while !server.logs().iter().any(|line| line.contains("too slow")) {
        server.inject(json!({"source": "General", "type": "Custom", "data": {"padding": padding}}));
    }
    reset_within(slow.get_ref().get_ref().0, TIMEOUT).await;
}

/// Starts the binary with `tls` (TOML) on `face` only; answers its exit code and stderr.
fn start_failing(face: &str, tls: &str) -> (Option<i32>, String) {
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("switchboard.toml");
    let mut toml = String::new();
    for other in FACES {
        toml.push_str(&format!("[{other}]\nbind = \"127.0.0.1:0\"\n"));
        if other == face {
            toml.push_str(&format!("tls = {tls}\n"));
        }
    }
    std::fs::write(&config, toml).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--rules-dir")
        .arg(dir.path().join("rules"))
        .output()
        .expect("the binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tls_files_that_do_not_load_stop_the_start_naming_the_face_and_the_file() {
    let files = files();
    let other = Files::new(&SelfSigned::new("other"));
    let missing = files.cert.with_file_name("missing.pem");
    let path = |path: &std::path::Path| Value::from(path.to_str().unwrap()).to_string();
    let tls = |cert: &std::path::Path, key: &std::path::Path| {
        format!("{{ cert = {}, key = {} }}", path(cert), path(key))
    };
    let cases = [
        (
            "custom",
            tls(&missing, &files.key),
            "missing.pem: cannot read the file",
        ),
        (
            "socketio",
            tls(&files.key, &files.key),
            "holds no PEM certificate",
        ),
        (
            "http",
            tls(&files.cert, &files.cert),
            "holds no PEM private key",
        ),
        (
            "astro",
            tls(&files.cert, &other.key),
            "the key cannot be used with the certificate",
        ),
        // A device or a pipe could block the start or never end.
        (
            "streamerbot",
            tls(std::path::Path::new("/dev/zero"), &files.key),
            "/dev/zero: not a regular file",
        ),
    ];
    for (face, tls, reason) in cases {
        let (code, stderr) = start_failing(face, &tls);
        assert_eq!(code, Some(2), "{face}: {stderr}");
        assert!(
            stderr.contains(&format!("error: {face}: cannot use the TLS files")),
            "{face}: {stderr}"
        );
        assert!(stderr.contains(reason), "{face}: {stderr}");
        assert!(!stderr.contains("PRIVATE KEY-----"), "{face}: {stderr}");
    }
    let (code, stderr) = start_failing("streamerbot", "{ cert = \"a.pem\" }");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("streamerbot.tls"), "{stderr}");
}

#[tokio::test]
async fn an_outbound_wss_connection_trusts_its_ca_file_and_refuses_an_unknown_certificate() {
    let files = files();
    let mut foreign = Foreign::start_tls(&files).await;
    let url = format!("wss://127.0.0.1:{}/events", foreign.port);
    let ca = Value::from(files.ca.to_str().unwrap());
    let server = TestServer::start_with(Options {
        extra_toml: format!(
            "[[outbound]]\nname = \"trusted\"\nurl = \"{url}\"\nsource = \"mygame\"\n\
             ca_file = {ca}\nmapping = {{ type = \"$.kind\", \"data.message\" = \"$.text\" }}\n"
        ),
        ..Options::default()
    });
    foreign.line_starting("connected path=/events").await;
    server.wait_for_log("outbound trusted: connected");
    let (mut ws, _) = Ws::streamerbot(&server).await;
    ws.request(json!({"request": "Subscribe", "events": {"Mygame": ["*"]}, "id": "s"}))
        .await;
    foreign.command("send").await;
    let chat = ws.recv().await;
    assert_eq!(chat["event"]["type"], "Chat", "{chat}");
    assert_eq!(chat["data"]["message"], "hi", "{chat}");

    let (status, body) = server.put("/connections/untrusted", &json!({"url": url}));
    assert_eq!(status, 200, "{body}");
    server.wait_for_log("outbound untrusted: error (");
    let (_, status) = server.get("/connections/untrusted");
    assert_eq!(status["status"], "error", "{status}");
    let error = status["lastError"].as_str().expect("a lastError");
    assert!(
        error.starts_with("certificate not trusted") && error.contains("set ca_file"),
        "{error}"
    );

    let trusted = json!({"url": url, "ca_file": files.ca.to_str().unwrap()});
    let (status, body) = server.put("/connections/untrusted", &trusted);
    assert_eq!(status, 200, "{body}");
    server.wait_for_log("outbound untrusted: connected");
}

#[tokio::test]
async fn connections_that_never_speak_do_not_stop_a_tls_face_from_accepting() {
    let files = files();
    let server = TestServer::start_with(with_tls(&files));
    let address = crate::support::raw::host_port(server.url("http"));
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let trusted = tls::trusting(&[&files.certificate]);
    let presented = tls::presented(server.url("http"), trusted).await;
    assert_eq!(presented, files.certificate.der);
    // Accepted while the silent ones were still waiting (not after their handshake timeout
    // had dropped them): every one of them is still open.
    for stream in &silent {
        let mut byte = [0u8; 1];
        match stream.try_read(&mut byte) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a silent connection was closed first: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_certificate_is_reloaded_while_its_folder_never_stops_changing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let files = files();
    let server = TestServer::start_with(with_tls(&files));
    let busy = files.cert.with_file_name("busy.log");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        // A log beside the certificate, written ten times a second (load, not synchronisation).
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::fs::write(&busy, "line").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    let second = SelfSigned::new("second");
    files.replace(&second);
    server.wait_for_log("http: TLS certificate reloaded");
    let presented = tls::presented(server.url("http"), tls::trusting(&[&second])).await;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(presented, second.der);
}

#[tokio::test]
async fn over_http2_the_dashboards_own_requests_are_still_recognised() {
    let files = files();
    let server = TestServer::start_with(with_tls(&files));
    let ca = files.ca.to_str().unwrap();
    let output = server.script("h2.mjs", &[server.url("http"), ca]).await;
    output.assert_success();
    assert_eq!(
        output.lines(),
        [
            "protocol h2",
            "GET /rules 200",
            "same-origin POST /events 200",
            "foreign POST /events 403"
        ]
    );
}

#[tokio::test]
async fn a_ca_file_that_is_not_a_regular_file_is_refused_at_once() {
    let server = TestServer::start();
    let (status, body) = server.put(
        "/connections/device",
        &json!({"url": "wss://127.0.0.1:9/", "ca_file": "/dev/zero"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{body}"
    );
    let (status, _) = server.get("/rules");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_stored_connection_whose_ca_file_is_gone_is_listed_with_why_and_recovers() {
    let files = files();
    let mut foreign = Foreign::start_tls(&files).await;
    let url = format!("wss://127.0.0.1:{}/events", foreign.port);
    let kept = tempfile::TempDir::new().unwrap();
    let ca = kept.path().join("ca.pem");
    std::fs::copy(&files.ca, &ca).unwrap();
    let server = TestServer::start();
    let settings = json!({"url": url, "ca_file": ca.to_str().unwrap()});
    let (status, body) = server.put("/connections/kept", &settings);
    assert_eq!(status, 200, "{body}");
    foreign.line_starting("connected path=/events").await;

    let (dirs, options) = server.killed();
    let moved = kept.path().join("moved.pem");
    std::fs::rename(&ca, &moved).unwrap();
    let server = TestServer::start_in(dirs, options);
    server.wait_for_log("outbound kept: error (ca_file:");
    let (status, shown) = server.get("/connections/kept");
    assert_eq!(status, 200, "listed, not gone: {shown}");
    assert_eq!(shown["status"], "error");
    let why = shown["lastError"].as_str().unwrap();
    assert!(why.contains("ca.pem: cannot read the file"), "{why}");

    // Back in place, the next dial reads it.
    std::fs::rename(&moved, &ca).unwrap();
    foreign.line_starting("connected path=/events").await;
}
