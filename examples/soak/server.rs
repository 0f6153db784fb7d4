//! The server under soak: the release binary started on ephemeral loopback ports with a
//! configuration, a data directory and a rules directory of its own; its banner read for the
//! faces' URLs and the custom token; its log counted; its memory read from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::faces::{Endpoints, KIND, ROOM, SOURCE};

pub const PASSWORD: &str = "soak-password";
pub const ASTRO_TOKEN: &str = "soak-astro-token";
/// The HTTP API's admin token.
pub const ADMIN_TOKEN: &str = "soak-admin-token";
pub const API_KEY: &str = "soak-api-key";
/// The action the RPC client calls, and the globals it and the rule write.
pub const PING_ACTION: &str = "Soak ping";
pub const PINGS: &str = "soakPings";
pub const EVENTS: &str = "soakEvents";

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no server binary at {0}: build it first with `cargo build --release` (or pass --server)"
    )]
    NoBinary(PathBuf),
    #[error("cannot prepare the server's files: {0}")]
    Files(#[from] std::io::Error),
    #[error("the server printed no `ready` within {0:?}; its log ends with:\n{1}")]
    NotReady(Duration, String),
    #[error("the banner lists no {0} face")]
    NoFace(&'static str),
}

/// The server binary beside this example's: `target/<profile>/examples/soak` →
/// `target/<profile>/switchboard`.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("switchboard")))
        .unwrap_or_else(|| PathBuf::from("target/release/switchboard"))
}

/// What the server's log said, counted as it comes.
#[derive(Default)]
pub struct Log {
    pub warnings: AtomicU64,
    pub errors: AtomicU64,
    /// "… is too slow (send queue full), dropping it" lines.
    pub too_slow: AtomicU64,
    /// The first error lines, and the last lines of all.
    pub first_errors: Mutex<Vec<String>>,
    pub tail: Mutex<std::collections::VecDeque<String>>,
}

impl Log {
    fn take(&self, line: String) {
        if line.contains(" ERROR ") {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
            if first.len() < 10 {
                first.push(line.clone());
            }
        } else if line.contains(" WARN ") {
            self.warnings.fetch_add(1, Ordering::Relaxed);
        }
        if line.contains("too slow") {
            self.too_slow.fetch_add(1, Ordering::Relaxed);
        }
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == 40 {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    pub fn tail_text(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// The running server; killed when dropped (a soak that fails half-way leaves nothing behind).
pub struct Server {
    child: Child,
    pub endpoints: Endpoints,
    pub log: Arc<Log>,
    /// Declared last: removed after the process is gone.
    pub dirs: Dirs,
}

pub struct Dirs {
    pub data: TempDir,
    rules: TempDir,
    config: TempDir,
}

/// How the server is configured for the soak.
pub struct Settings {
    pub binary: PathBuf,
    /// Well-behaved subscribers per face.
    pub subscribers: usize,
    /// Events per second injected on the custom face.
    pub rate: u64,
}

impl Server {
    pub fn start(settings: &Settings) -> Result<Server, StartError> {
        if !settings.binary.is_file() {
            return Err(StartError::NoBinary(settings.binary.clone()));
        }
        let dirs = Dirs {
            data: TempDir::new()?,
            rules: TempDir::new()?,
            config: TempDir::new()?,
        };
        write_rules(dirs.rules.path())?;
        let config = dirs.config.path().join("switchboard.toml");
        std::fs::write(&config, configuration(settings))?;
        let mut child = Command::new(&settings.binary)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dirs.data.path())
            .arg("--rules-dir")
            .arg(dirs.rules.path())
            .env("RUST_LOG", "info,actix_server=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let log = Arc::new(Log::default());
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.take(line);
                }
            });
        }
        let (lines, received) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if lines.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = Server {
            child,
            endpoints: Endpoints {
                http: String::new(),
                streamerbot: String::new(),
                custom: String::new(),
                astro: String::new(),
                socketio: String::new(),
                token: String::new(),
                password: PASSWORD.into(),
                astro_token: ASTRO_TOKEN.into(),
                admin_token: ADMIN_TOKEN.into(),
                api_key: API_KEY.into(),
            },
            log,
            dirs,
        };
        server.read_banner(&received)?;
        Ok(server)
    }

    /// Reads the banner up to `ready`: one `face URL` line per face, `custom token TOKEN …`.
    fn read_banner(&mut self, lines: &mpsc::Receiver<String>) -> Result<(), StartError> {
        const WAIT: Duration = Duration::from_secs(30);
        let mut urls = std::collections::HashMap::new();
        loop {
            let line = lines
                .recv_timeout(WAIT)
                .map_err(|_| StartError::NotReady(WAIT, self.log.tail_text()))?;
            if line == "ready" {
                break;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["custom", "token", token, ..] = words[..] {
                self.endpoints.token = token.to_owned();
            }
            if let [face, url] = words[..] {
                if url.contains("://") {
                    urls.insert(face.to_owned(), url.trim_end_matches('/').to_owned());
                }
            }
        }
        let mut url = |face: &'static str| urls.remove(face).ok_or(StartError::NoFace(face));
        self.endpoints.http = url("http")?;
        self.endpoints.streamerbot = format!("{}/", url("streamerbot")?);
        self.endpoints.custom = format!("{}/", url("custom")?);
        self.endpoints.astro = format!("{}/", url("astro")?);
        // `http://host:port/socket.io/` → Engine.IO over WebSocket.
        let socketio = url("socketio")?.replacen("http://", "ws://", 1);
        self.endpoints.socketio = format!("{socketio}/?EIO=4&transport=websocket");
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `VmRSS` (or another field given in kB) of `/proc/<pid>/status`, in KiB.
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Open file descriptors (sockets included).
    pub fn fds(&self) -> Option<usize> {
        Some(
            std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
                .ok()?
                .count(),
        )
    }

    /// Sends SIGTERM and waits up to `grace` for the process to exit; its status then.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !sent {
            return None;
        }
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            // A child process offers nothing to wait on with a deadline.
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The size of everything under `path`, in bytes.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_usage(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

fn toml_string(text: &str) -> String {
    Value::from(text).to_string()
}

/// Every face on an ephemeral loopback port; the custom face with room for the subscribers,
/// publisher, slow and hostile clients, and a rate limit the publisher never reaches; a
/// Streamer.bot password, an Astro token for room `soak`, a Socket.IO key, an admin token. The limits keep their
/// defaults: they are what is soaked.
fn configuration(settings: &Settings) -> String {
    format!(
        "[http]\nbind = \"127.0.0.1:0\"\ntoken = {admin}\n\
         [streamerbot]\nbind = \"127.0.0.1:0\"\npassword = {password}\n\
         [custom]\nbind = \"127.0.0.1:0\"\nmax_connections = {connections}\n\
         rate_limit_per_second = {rate_limit}\n\
         [astro]\nbind = \"127.0.0.1:0\"\n\
         [[astro.tokens]]\ntoken = {astro}\nroom = {room}\nscopes = [\"*\"]\n\
         [socketio]\nbind = \"127.0.0.1:0\"\napi_keys = [{key}]\n",
        password = toml_string(PASSWORD),
        connections = settings.subscribers + 50,
        rate_limit = (settings.rate * 10).max(1000),
        astro = toml_string(ASTRO_TOKEN),
        admin = toml_string(ADMIN_TOKEN),
        room = toml_string(ROOM),
        key = toml_string(API_KEY),
    )
}

/// A rule that counts every soak event in a global (so the engine, its traces and the store work
/// at the event rate; up to 100 runs at once, beyond which a run is refused as busy), and an
/// action that counts the calls made to it.
fn write_rules(dir: &Path) -> std::io::Result<()> {
    let rule = json!({"kind": "rule", "schemaVersion": 1, "id": "01JS0AK0000000000000000001",
        "name": "Soak count", "mode": "parallel", "max": 100,
        "triggers": [{"on": KIND, "sources": [SOURCE]}],
        "steps": [{"kind": "set", "var": format!("global.{EVENTS}"), "op": "add", "value": 1}]});
    let action = json!({"kind": "action", "schemaVersion": 1, "id": "01JS0AK0000000000000000002",
        "name": PING_ACTION,
        "steps": [{"kind": "set", "var": format!("global.{PINGS}"), "op": "add", "value": 1}]});
    std::fs::write(dir.join("soak-count.rule.json"), rule.to_string())?;
    std::fs::write(dir.join("soak-ping.action.json"), action.to_string())
}
