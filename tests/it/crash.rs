//! The crash test: cycles of concurrent acknowledged writes (user variables set by a rule,
//! credits, rule documents) cut by `kill -9`; after each restart every acknowledged write is
//! there. A variable set by a rule step is acknowledged by its run's trace: the step ends once
//! the write is on disk, and the run's trace is recorded after its last step. The suite runs 3 cycles; `SWITCHBOARD_CRASH_CYCLES=200 cargo test --release --test it
//! crash -- --nocapture` runs more (the README's "Limits and failure behaviour" section).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::support::{Dirs, Options, TestServer, Ws};

/// Sets `user.n` of the event's user: one user variable per acknowledged event.
const TICK: &str = r#"{"kind": "rule", "schemaVersion": 1, "id": "01JE0000000000000000000TCK",
  "name": "Crash tick", "enabled": true,
  "triggers": [{"id": "t", "on": "crash_tick", "sources": ["twitch"]}],
  "steps": [{"id": "n", "kind": "set", "var": "user.n", "value": "{{ event.data.n }}"}]}"#;

/// What the writers had acknowledged when the server was killed.
#[derive(Default)]
struct Acknowledged {
    variables: Mutex<BTreeSet<String>>,
    follows: Mutex<BTreeSet<String>>,
    rules: Mutex<BTreeSet<String>>,
}

/// One writer: `write(n)` until it fails (the server is gone); each success is recorded.
fn writer(
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Acknowledged>,
    acks: mpsc::Sender<()>,
    write: impl Fn(usize) -> Option<String> + Send + 'static,
    record: fn(&Acknowledged) -> &Mutex<BTreeSet<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for n in 0.. {
            if stop.load(Ordering::Acquire) {
                return;
            }
            match write(n) {
                Some(key) => {
                    record(&acknowledged).lock().unwrap().insert(key);
                    let _ = acks.send(());
                }
                None => return,
            }
        }
    })
}

/// A route of the HTTP face, with the admin token to write to it.
#[derive(Clone)]
struct Endpoint {
    url: String,
    authorization: String,
}

impl Endpoint {
    fn of(server: &TestServer, path: &str) -> Endpoint {
        Endpoint {
            url: server.http(path),
            authorization: server.authorization(),
        }
    }

    /// Whether `method` with `body` was acknowledged (200).
    fn send(&self, method: &str, suffix: &str, body: &Value) -> bool {
        let response = ureq::request(method, &format!("{}{suffix}", self.url))
            .timeout(crate::support::TIMEOUT)
            .set("Authorization", &self.authorization)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string());
        matches!(response, Ok(response) if response.status() == 200)
    }
}

/// Starts the three writers against `server`, lets them get `acks` acknowledgements between
/// them, then kills the server with SIGKILL while they write.
fn write_then_kill(
    server: TestServer,
    cycle: usize,
    acks_wanted: usize,
) -> (Dirs, Arc<Acknowledged>) {
    let acknowledged = Arc::new(Acknowledged::default());
    let stop = Arc::new(AtomicBool::new(false));
    let events = Endpoint::of(&server, "/events");
    let rules = Endpoint::of(&server, "/rules/");
    let traces = server.http("/rules/01JE0000000000000000000TCK/traces");
    let (acks, acked) = mpsc::channel();
    let variables = {
        let events = events.clone();
        writer(
            stop.clone(),
            acknowledged.clone(),
            acks.clone(),
            move |n| {
                let user = format!("c{cycle}v{n}");
                let event = json!({"source": "twitch", "type": "crash_tick",
                    "user": {"id": user, "username": user}, "data": {"n": n}});
                if !events.send("POST", "", &event) {
                    return None;
                }
                // The run's trace (this writer's events are the rule's only ones).
                loop {
                    let response = ureq::get(&traces).timeout(crate::support::TIMEOUT).call();
                    let traces: Value =
                        serde_json::from_str(&response.ok()?.into_string().ok()?).ok()?;
                    let done = traces["traces"].as_array()?.iter().any(|trace| {
                        trace["event"]["userId"] == json!(user) && trace["outcome"] == "completed"
                    });
                    if done {
                        return Some(user);
                    }
                }
            },
            |acknowledged| &acknowledged.variables,
        )
    };
    let follows = writer(
        stop.clone(),
        acknowledged.clone(),
        acks.clone(),
        move |n| {
            let name = format!("c{cycle}f{n}");
            let event = json!({"source": "twitch", "type": "follow", "user": {"nickname": name}});
            events.send("POST", "", &event).then_some(name)
        },
        |acknowledged| &acknowledged.follows,
    );
    let documents = writer(
        stop.clone(),
        acknowledged.clone(),
        acks,
        move |n| {
            let id = format!("01JE{cycle:06}{n:016}");
            let rule = json!({"kind": "rule", "schemaVersion": 1, "id": id, "name": id,
                "enabled": true, "triggers": [{"id": "t", "on": "never", "sources": ["crash"]}],
                "steps": [{"id": "l", "kind": "log", "message": "never"}]});
            rules.send("PUT", &id, &rule).then_some(id)
        },
        |acknowledged| &acknowledged.rules,
    );
    for _ in 0..acks_wanted {
        acked
            .recv_timeout(crate::support::TIMEOUT)
            .expect("the writers are acknowledged");
    }
    let (dirs, _) = server.killed();
    stop.store(true, Ordering::Release);
    for writer in [variables, follows, documents] {
        writer.join().expect("a writer panicked");
    }
    (dirs, acknowledged)
}

/// After the restart: every acknowledged write is there.
async fn check(server: &TestServer, acknowledged: &Acknowledged) {
    let (mut ws, _) = Ws::streamerbot(server).await;
    let reply = ws
        .request(json!({"request": "TwitchGetUserGlobals", "variable": "n", "id": "v"}))
        .await;
    let users: BTreeSet<String> = reply["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|variable| variable["userId"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<_> = acknowledged
        .variables
        .lock()
        .unwrap()
        .difference(&users)
        .cloned()
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged user variables lost: {lost:?}"
    );
    let credits = ws
        .request(json!({"request": "GetCredits", "id": "c"}))
        .await;
    let follows: BTreeSet<String> = credits["events"]["follows"]
        .as_array()
        .expect("follows")
        .iter()
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<_> = acknowledged
        .follows
        .lock()
        .unwrap()
        .difference(&follows)
        .cloned()
        .collect();
    assert!(lost.is_empty(), "acknowledged follows lost: {lost:?}");
    for id in acknowledged.rules.lock().unwrap().iter() {
        let (status, _) = server.get(&format!("/rules/{id}"));
        assert_eq!(status, 200, "acknowledged rule {id} lost");
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_repeated_kill_9() {
    let cycles: usize = std::env::var("SWITCHBOARD_CRASH_CYCLES")
        .ok()
        .and_then(|cycles| cycles.parse().ok())
        .unwrap_or(3);
    let dirs = Dirs::new();
    dirs.write_rule("tick.rule.json", TICK);
    let mut server = TestServer::start_in(dirs, Options::default());
    let mut totals = [0; 3];
    for cycle in 0..cycles {
        let server_now = server;
        // Blocking: the writers are threads; nothing else runs on this test's runtime.
        let (dirs, acknowledged) = write_then_kill(server_now, cycle, 30);
        server = TestServer::start_in(dirs, Options::default());
        check(&server, &acknowledged).await;
        totals[0] += acknowledged.variables.lock().unwrap().len();
        totals[1] += acknowledged.follows.lock().unwrap().len();
        totals[2] += acknowledged.rules.lock().unwrap().len();
    }
    println!(
        "{cycles} kill -9 cycles: {} user variables, {} follows, {} rule documents acknowledged; 0 lost",
        totals[0], totals[1], totals[2]
    );
}
