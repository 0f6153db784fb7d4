//! The test harness: boots the real `switchboard` binary on ephemeral loopback ports with a
//! temporary data dir, waits for its banner, and offers WebSocket and HTTP helpers whose every
//! receive has a deadline.

pub mod clients;
pub mod raw;
pub mod tls;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What to start the server with.
#[derive(Default, Clone)]
pub struct Options {
    /// `streamerbot.password`.
    pub password: Option<String>,
    /// `custom.token`.
    pub custom_token: Option<String>,
    /// More keys of the `[custom]` table.
    pub custom_toml: String,
    /// More keys of the `[socketio]` table.
    pub socketio_toml: String,
    /// More keys of the `[http]` table (`bind` replaces the loopback one, on every face).
    pub http_toml: String,
    /// More keys of the `[streamerbot]` table.
    pub streamerbot_toml: String,
    /// More keys of the `[astro]` table.
    pub astro_toml: String,
    /// Extra TOML appended to the ephemeral configuration.
    pub extra_toml: String,
    /// `tls = { cert, key }` on every face; the HTTP helpers trust its certificate.
    pub tls: Option<tls::Files>,
}

/// The folders a server runs on; kept across a kill and restart.
pub struct Dirs {
    pub data: TempDir,
    pub rules: TempDir,
    config: TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        Dirs {
            data: TempDir::new().expect("temp dir"),
            rules: TempDir::new().expect("temp dir"),
            config: TempDir::new().expect("temp dir"),
        }
    }

    /// Writes a rule or action file.
    pub fn write_rule(&self, name: &str, text: &str) {
        std::fs::write(self.rules.path().join(name), text).expect("rule file written");
    }
}

/// A running server process. Dropping it kills the process.
pub struct TestServer {
    // Declared first so that it is killed before the folders are removed.
    child: KilledOnDrop,
    urls: HashMap<String, String>,
    /// The custom face's token, from the banner.
    token: Option<String>,
    /// The HTTP face's admin token, from the banner.
    admin_token: Option<String>,
    /// The banner's lines, before `ready`.
    banner: Vec<String>,
    logs: Arc<Logs>,
    /// Makes the HTTP requests (trusting the certificate of `options.tls`).
    agent: ureq::Agent,
    pub dirs: Dirs,
    options: Options,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> TestServer {
        TestServer::start_in(Dirs::new(), options)
    }

    /// Starts the binary on `dirs` and waits until the banner has said `ready`.
    pub fn start_in(dirs: Dirs, options: Options) -> TestServer {
        let config = dirs.config.path().join("switchboard.toml");
        let mut toml = String::new();
        for face in ["http", "streamerbot", "custom", "astro", "socketio"] {
            toml.push_str(&format!("[{face}]\n"));
            let more = match face {
                "http" => &options.http_toml,
                "streamerbot" => &options.streamerbot_toml,
                "custom" => &options.custom_toml,
                "astro" => &options.astro_toml,
                _ => &options.socketio_toml,
            };
            toml.push_str(more);
            if !more.contains("bind") {
                toml.push_str("bind = \"127.0.0.1:0\"\n");
            }
            if let (Some(token), "custom") = (&options.custom_token, face) {
                toml.push_str(&format!("token = {}\n", Value::from(token.as_str())));
            }
            if let (Some(password), "streamerbot") = (&options.password, face) {
                toml.push_str(&format!("password = {}\n", Value::from(password.as_str())));
            }
            if let Some(files) = &options.tls {
                let path = |path: &Path| Value::from(path.to_str().expect("a UTF-8 path"));
                let (cert, key) = (path(&files.cert), path(&files.key));
                toml.push_str(&format!("tls = {{ cert = {cert}, key = {key} }}\n"));
            }
        }
        toml.push_str(&options.extra_toml);
        std::fs::write(&config, toml).expect("config written");
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dirs.data.path())
            .arg("--rules-dir")
            .arg(dirs.rules.path())
            .env("RUST_LOG", "info,switchboard=debug,actix_server=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server binary starts");
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let logs = Arc::new(Logs::default());
        collect_logs(child.stderr.take().expect("piped stderr"), logs.clone());
        let mut urls = HashMap::new();
        let mut token = None;
        let mut admin_token = None;
        let mut banner = Vec::new();
        loop {
            let line = match lines.recv_timeout(TIMEOUT) {
                Ok(line) => line,
                Err(_) => panic!(
                    "the server printed no `ready` within {TIMEOUT:?}; its log:\n{}",
                    logs.lines.lock().unwrap().join("\n")
                ),
            };
            if line == "ready" {
                break;
            }
            banner.push(line.clone());
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["custom", "token", value, ..] => token = Some(value.to_owned()),
                ["http", "token", value, ..] => admin_token = Some(value.to_owned()),
                // A face on every interface is reached through loopback.
                [face, url] if url.contains("://") => {
                    urls.insert(face.to_owned(), url.replace("0.0.0.0", "127.0.0.1"));
                }
                _ => {}
            }
        }
        let agent = match &options.tls {
            Some(files) => ureq::AgentBuilder::new()
                .tls_config(tls::trusting(&[&files.certificate]))
                .build(),
            None => ureq::agent(),
        };
        TestServer {
            child: KilledOnDrop(child),
            urls,
            token,
            admin_token,
            banner,
            logs,
            agent,
            dirs,
            options,
        }
    }

    /// The URL the banner printed for `face`.
    pub fn url(&self, face: &str) -> &str {
        self.urls
            .get(face)
            .unwrap_or_else(|| panic!("the banner lists no {face} face"))
    }

    /// The custom face's token, as the banner printed it.
    pub fn token(&self) -> &str {
        self.token
            .as_deref()
            .expect("the banner prints the custom token")
    }

    /// The banner's lines, before `ready`.
    pub fn banner(&self) -> &[String] {
        &self.banner
    }

    /// The HTTP face's admin token, as the banner printed it.
    pub fn admin_token(&self) -> &str {
        self.admin_token
            .as_deref()
            .expect("the banner prints the admin token")
    }

    /// `Authorization: Bearer` with the admin token.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.admin_token())
    }

    /// A request to the HTTP face with the admin token (and a JSON content type, for bodies).
    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &self.http(path))
            .timeout(TIMEOUT)
            .set("Authorization", &self.authorization())
            .set("Content-Type", "application/json")
    }

    /// Runs a client script (Node for `.mjs`, else Python) of `tests/clients` that writes to
    /// this server's HTTP API: `SWITCHBOARD_TOKEN` holds the admin token.
    pub async fn script(&self, script: &str, args: &[&str]) -> clients::ScriptOutput {
        self.script_with(script, args, &[]).await
    }

    /// The same, with more environment variables.
    pub async fn script_with(
        &self,
        script: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> clients::ScriptOutput {
        let mut env = env.to_vec();
        env.push(("SWITCHBOARD_TOKEN", self.admin_token()));
        if script.ends_with(".mjs") {
            clients::node_with(script, args, &env).await
        } else {
            clients::python_with(script, args, &env).await
        }
    }

    /// `http://…/path` on the HTTP face.
    pub fn http(&self, path: &str) -> String {
        format!("{}{}", self.url("http").trim_end_matches('/'), path)
    }

    /// Kills the process with SIGKILL (no shutdown at all) and starts it again on the same dirs.
    pub fn kill_and_restart(self) -> TestServer {
        let (dirs, options) = self.killed();
        TestServer::start_in(dirs, options)
    }

    /// Kills the process with SIGKILL; its dirs and options.
    pub fn killed(mut self) -> (Dirs, Options) {
        self.child.0.kill().expect("kill -9");
        self.child.0.wait().expect("reaped");
        let TestServer { dirs, options, .. } = self;
        (dirs, options)
    }

    /// Waits for the process to exit (after [`TestServer::terminate`]) and starts it again on
    /// the same dirs.
    pub fn restart_after_exit(self) -> TestServer {
        let (dirs, options) = self.exited();
        TestServer::start_in(dirs, options)
    }

    /// Waits for the process to exit (after [`TestServer::terminate`]); its dirs and options.
    pub fn exited(mut self) -> (Dirs, Options) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while self
            .child
            .0
            .try_wait()
            .expect("the server can be waited for")
            .is_none()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit within {TIMEOUT:?}"
            );
            // Polling the exit status: a child process offers nothing to wait on with a deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
        let TestServer { dirs, options, .. } = self;
        (dirs, options)
    }

    /// The process's peak resident set so far, in MiB (`VmHWM` in `/proc/<pid>/status`).
    pub fn peak_rss_mib(&self) -> u64 {
        self.proc_status_kib("VmHWM") / 1024
    }

    /// The process's resident set now, in MiB (`VmRSS`).
    pub fn rss_mib(&self) -> u64 {
        self.proc_status_kib("VmRSS") / 1024
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let path = format!("/proc/{}/status", self.child.0.id());
        let status = std::fs::read_to_string(&path).expect("/proc/<pid>/status is readable");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {path}"))
    }

    /// The server's log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines.lock().unwrap().clone()
    }

    /// Waits (up to [`TIMEOUT`]) for a log line containing `text` and returns it.
    pub fn wait_for_log(&self, text: &str) -> String {
        self.wait_for_log_within(text, TIMEOUT)
    }

    /// Waits (up to `timeout`) for a log line containing `text` and returns it.
    pub fn wait_for_log_within(&self, text: &str, timeout: Duration) -> String {
        let lines = self.logs.lines.lock().unwrap();
        let (lines, _) = self
            .logs
            .added
            .wait_timeout_while(lines, timeout, |lines| {
                !lines.iter().any(|line| line.contains(text))
            })
            .unwrap();
        match lines.iter().find(|line| line.contains(text)) {
            Some(line) => line.clone(),
            None => panic!(
                "no log line with {text:?} within {timeout:?}:\n{}",
                lines.join("\n")
            ),
        }
    }

    /// Waits (up to [`TIMEOUT`]) until `count` log lines contain `text`.
    pub fn wait_for_logs(&self, text: &str, count: usize) {
        let lines = self.logs.lines.lock().unwrap();
        let matching =
            |lines: &Vec<String>| lines.iter().filter(|line| line.contains(text)).count();
        let (lines, _) = self
            .logs
            .added
            .wait_timeout_while(lines, TIMEOUT, |lines| matching(lines) < count)
            .unwrap();
        assert!(
            matching(&lines) >= count,
            "fewer than {count} log lines with {text:?} within {TIMEOUT:?}:\n{}",
            lines.join("\n")
        );
    }

    /// Sends PUT with a JSON body to the HTTP face.
    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        read_response(self.request("PUT", path).send_string(&body.to_string()))
    }

    /// Sends DELETE to the HTTP face.
    pub fn delete(&self, path: &str) -> (u16, Value) {
        read_response(self.request("DELETE", path).call())
    }

    /// Sends SIGTERM, as a service manager stopping Switchboard would.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// POSTs JSON to the HTTP face; returns the status and the body as JSON (null when empty).
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        read_response(self.request("POST", path).send_string(&body.to_string()))
    }

    /// GETs from the HTTP face.
    pub fn get(&self, path: &str) -> (u16, Value) {
        read_response(self.request("GET", path).call())
    }

    /// Waits until a session of `face` has its subscriptions recorded by the registry (as
    /// `GET /sessions` lists them): a face that subscribes on its own when it opens (the
    /// dashboard's feed) says nothing when it has.
    pub fn wait_for_subscribed(&self, face: &str) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let (_, listed) = self.get("/sessions");
            let subscribed = listed["sessions"].as_array().is_some_and(|sessions| {
                sessions.iter().any(|session| {
                    session["face"] == face
                        && session["subscriptions"]
                            .as_array()
                            .is_some_and(|subscriptions| !subscriptions.is_empty())
                })
            });
            if subscribed {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {face} session subscribed within {TIMEOUT:?}: {listed}"
            );
        }
    }

    /// Injects an event through `POST /events` and returns its id.
    pub fn inject(&self, event: Value) -> String {
        let (status, body) = self.post("/events", &event);
        assert_eq!(status, 200, "inject failed: {body}");
        body["eventId"].as_str().expect("an eventId").to_owned()
    }
}

fn read_response(response: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match response {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("HTTP request failed: {error}"),
    };
    let status = response.status();
    let text = response.into_string().expect("a text body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"))
    };
    (status, body)
}

/// The server process, killed (SIGKILL) when the test drops it.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_lines(stdout: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The server's stderr, line by line, with a signal for each new line.
#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

fn collect_logs(stderr: impl std::io::Read + Send + 'static, logs: Arc<Logs>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            logs.lines.lock().unwrap().push(line);
            logs.added.notify_all();
        }
    });
}

/// The project's root folder.
pub fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// A raw WebSocket client (tokio-tungstenite) whose receives fail after [`TIMEOUT`].
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while waiting for a reply, handed out first by the next receives.
    held: std::collections::VecDeque<Value>,
}

/// What a receive found instead of a text frame.
#[derive(Debug)]
pub enum Ending {
    Closed(Option<(u16, String)>),
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connected in time")
            .expect("WebSocket handshake");
        Ws {
            stream,
            held: Default::default(),
        }
    }

    /// Connects to the custom face with the token as a bearer header.
    pub async fn custom(server: &TestServer) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = server
            .url("custom")
            .into_client_request()
            .expect("a valid URL");
        let bearer = format!("Bearer {}", server.token())
            .parse()
            .expect("a valid header");
        request.headers_mut().insert("Authorization", bearer);
        let (stream, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connected in time")
            .expect("WebSocket handshake");
        Ws {
            stream,
            held: Default::default(),
        }
    }

    /// Connects to the Streamer.bot face and reads its Hello.
    pub async fn streamerbot(server: &TestServer) -> (Ws, Value) {
        let mut ws = Ws::connect(server.url("streamerbot")).await;
        let hello = ws.recv().await;
        assert_eq!(hello["request"], "Hello", "{hello}");
        (ws, hello)
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("frame sent");
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_message(&mut self, message: Message) {
        self.stream.send(message).await.expect("frame sent");
    }

    /// The next text frame, as JSON, or how the connection ended.
    pub async fn next(&mut self) -> Result<Value, Ending> {
        if let Some(held) = self.held.pop_front() {
            return Ok(held);
        }
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {TIMEOUT:?}"));
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text)
                        .unwrap_or_else(|_| panic!("a JSON text frame, got {text:?}")))
                }
                Some(Ok(Message::Close(close))) => {
                    return Err(Ending::Closed(
                        close.map(|close| (u16::from(close.code), close.reason.into_owned())),
                    ))
                }
                Some(Ok(Message::Binary(bytes))) => panic!("unexpected binary frame: {bytes:?}"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Ending::Closed(None)),
            }
        }
    }

    /// The next text frame as JSON; fails on anything else.
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Ok(value) => value,
            Err(ending) => panic!("expected a frame, the connection ended: {ending:?}"),
        }
    }

    /// Sends a request and returns its reply (the next frame with that `id`); event frames
    /// that arrive first (the request's own, say) are kept for the next receives.
    pub async fn request(&mut self, request: Value) -> Value {
        let id = request["id"].clone();
        self.send(request).await;
        let mut before = std::collections::VecDeque::new();
        loop {
            let frame = self.recv().await;
            if frame.get("id") == Some(&id) {
                before.append(&mut self.held);
                self.held = before;
                return frame;
            }
            before.push_back(frame);
        }
    }

    /// The payload of the next pong.
    pub async fn pong(&mut self) -> Vec<u8> {
        self.control("pong", TIMEOUT, |message| match message {
            Message::Pong(payload) => Some(payload),
            _ => None,
        })
        .await
    }

    /// Waits up to `within` for a ping from the server and returns its payload.
    pub async fn ping(&mut self, within: Duration) -> Vec<u8> {
        self.control("ping", within, |message| match message {
            Message::Ping(payload) => Some(payload),
            _ => None,
        })
        .await
    }

    /// The payload of the next frame that `pick` accepts, skipping others; fails when none comes
    /// within `within` of the previous one, or the connection ends.
    async fn control(
        &mut self,
        what: &str,
        within: Duration,
        pick: impl Fn(Message) -> Option<Vec<u8>>,
    ) -> Vec<u8> {
        loop {
            let frame = tokio::time::timeout(within, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {within:?}"));
            match frame {
                Some(Ok(message)) => {
                    if let Some(payload) = pick(message) {
                        return payload;
                    }
                }
                other => panic!("the connection ended before a {what}: {other:?}"),
            }
        }
    }

    /// Waits for the close frame and returns its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match self.next().await {
                Ok(_) => continue,
                Err(Ending::Closed(Some(close))) => return close,
                Err(Ending::Closed(None)) => panic!("the connection ended without a close frame"),
            }
        }
    }
}
