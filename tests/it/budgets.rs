//! The engine's budgets end to end (docs/rules.md §5.3 and §6.3): a rule that sets itself off, an
//! action that calls itself and a template that loops or builds huge strings are cut, while the
//! server keeps its memory small and keeps answering everyone else.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::engine::everything;
use crate::support::{Dirs, Options, TestServer, Ws};

/// Generous, but far below what the cut work takes without the budgets.
const PROMPTLY: Duration = Duration::from_secs(3);

/// Peak resident memory a server may reach in these tests; each of them takes it well beyond
/// without its budget.
const SMALL_MIB: u64 = 120;

fn document(kind: &str, id: &str, name: &str, rest: Value) -> Value {
    let mut document = json!({"kind": kind, "schemaVersion": 1, "id": id, "name": name});
    document
        .as_object_mut()
        .unwrap()
        .extend(rest.as_object().unwrap().clone());
    document
}

/// Injects an unrelated `ping`, which the `Echo` rule answers with `pong`, and returns how long the
/// round trip took.
async fn echo_round_trip(server: &TestServer, ws: &mut Ws) -> Duration {
    let started = Instant::now();
    server.inject(json!({"source": "test", "type": "ping"}));
    loop {
        let frame = ws.recv().await;
        if frame["event"]["type"] == "Pong" {
            return started.elapsed();
        }
    }
}

fn echo_rule() -> String {
    document(
        "rule",
        "01JF0ECH0000000000000000AA",
        "Echo",
        json!({"triggers": [{"on": "ping"}], "steps": [{"kind": "emit", "type": "pong"}]}),
    )
    .to_string()
}

/// The traces of a document, newest first.
fn traces(server: &TestServer, path: &str) -> Vec<Value> {
    let (status, body) = server.get(path);
    assert_eq!(status, 200, "{body}");
    body["traces"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_rule_that_emits_its_own_trigger_four_times_is_cut_at_the_chain_budget() {
    let dirs = Dirs::new();
    let storm = json!({"kind": "emit", "type": "storm", "data": {"n": "{{ event.data.n }}"}});
    dirs.write_rule(
        "storm.rule.json",
        &document(
            "rule",
            "01JF0ST0RM0000000000000000",
            "Storm",
            json!({"mode": "parallel", "max": 1000, "triggers": [{"on": "storm"}],
                   "steps": [storm, storm, storm, storm]}),
        )
        .to_string(),
    );
    dirs.write_rule("echo.rule.json", &echo_rule());
    // Each emitted event starts a run: with the runs' budget out of reach, the events' one is
    // the budget that is hit, whatever order the engine gets to them in.
    let options = Options {
        extra_toml: "[limits]\nchain_runs = 100000\n".into(),
        ..Options::default()
    };
    let server = TestServer::start_in(dirs, options);
    let mut ws = everything(&server).await;
    server.inject(json!({"source": "test", "type": "storm", "data": {"n": 1}}));

    let line = server.wait_for_log("is cut, and so is anything else the chain would still do");
    assert!(
        line.contains("has published 1000 events, the most limits.chain_events allows"),
        "{line}"
    );
    assert!(line.contains("(test/storm)"), "{line}");
    assert!(
        echo_round_trip(&server, &mut ws).await < PROMPTLY,
        "an unrelated event waited behind the storm"
    );
    let cut = traces(&server, "/rules/01JF0ST0RM0000000000000000/traces")
        .into_iter()
        .find(|trace| trace["error"]["code"] == "budget")
        .expect("a run whose emit was cut");
    assert_eq!(cut["outcome"], "error");
    let step = cut["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["outcome"] == "error")
        .expect("the emit that was cut");
    assert_eq!(step["kind"], "emit");
    assert_eq!(step["error"]["code"], "budget");
    assert!(
        step["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("has published 1000 events, the most limits.chain_events allows"),
        "{step}"
    );
    // Cut once, reported once (each run whose emit failed logs its own failure).
    assert_eq!(
        server
            .logs()
            .iter()
            .filter(|line| line.contains("is cut, and so is"))
            .count(),
        1
    );
    assert!(
        server.peak_rss_mib() < SMALL_MIB,
        "peak RSS {} MiB",
        server.peak_rss_mib()
    );
}

#[tokio::test]
async fn an_action_that_calls_itself_four_times_is_cut_at_the_chain_budget() {
    let dirs = Dirs::new();
    let fork = json!({"kind": "run_action", "action": "Fork", "continueOnError": true});
    dirs.write_rule(
        "fork.action.json",
        &document(
            "action",
            "01JF0F0RK00000000000000000",
            "Fork",
            json!({"steps": [fork, fork, fork, fork]}),
        )
        .to_string(),
    );
    dirs.write_rule("echo.rule.json", &echo_rule());
    let server = TestServer::start_in(dirs, Options::default());
    let mut ws = everything(&server).await;
    let (status, body) = server.post("/DoAction", &json!({"action": {"name": "Fork"}}));
    assert_eq!(status, 204, "{body}");

    let line = server.wait_for_log("is cut, and so is anything else the chain would still do");
    assert!(
        line.contains("has started 1000 runs, the most limits.chain_runs allows"),
        "{line}"
    );
    assert!(line.contains("(http/call)"), "{line}");
    assert!(
        echo_round_trip(&server, &mut ws).await < PROMPTLY,
        "an unrelated event waited behind the calls"
    );
    let traces = traces(&server, "/actions/01JF0F0RK00000000000000000/traces");
    let refused = traces
        .iter()
        .find(|trace| trace["outcome"] == "budget")
        .expect("a call refused by the budget");
    assert_eq!(refused["error"]["code"], "budget");
    assert!(refused["parentRunId"].is_string());
    let caller = traces
        .iter()
        .flat_map(|trace| trace["steps"].as_array().unwrap())
        .find(|step| step["error"]["code"] == "budget")
        .expect("a run_action step that failed with the budget");
    assert!(
        caller["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Fork was not started: the causal chain"),
        "{caller}"
    );
    assert!(
        server.peak_rss_mib() < SMALL_MIB,
        "peak RSS {} MiB",
        server.peak_rss_mib()
    );
}

#[tokio::test]
async fn a_template_that_runs_out_of_fuel_fails_its_step_and_the_engine_keeps_answering() {
    let dirs = Dirs::new();
    let spin = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}done";
    dirs.write_rule(
        "spin.rule.json",
        &document(
            "rule",
            "01JF0SP1N00000000000000000",
            "Spin",
            json!({"triggers": [{"on": "spin"}], "steps": [{"kind": "log", "message": spin}]}),
        )
        .to_string(),
    );
    dirs.write_rule("echo.rule.json", &echo_rule());
    let server = TestServer::start_in(dirs, Options::default());
    let mut ws = everything(&server).await;
    server.inject(json!({"source": "test", "type": "spin"}));
    assert!(
        echo_round_trip(&server, &mut ws).await < PROMPTLY,
        "an unrelated event waited behind the template"
    );

    let line = server.wait_for_log("failed (template)");
    assert!(
        line.contains("Spin run")
            && line.ends_with("the template ran out of fuel: it needs more than 50000 instructions (limits.template_fuel)"),
        "{line}"
    );
    let trace = &traces(&server, "/rules/01JF0SP1N00000000000000000/traces")[0];
    assert_eq!(trace["outcome"], "error");
    assert_eq!(trace["error"]["code"], "template");
    assert!(
        trace["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.template_fuel"),
        "{trace}"
    );
}

#[tokio::test]
async fn joining_three_large_strings_is_refused_by_the_size_limit() {
    let dirs = Dirs::new();
    let join = "{% set s = event.data.chunk * event.data.times %}{{ [s, s, s] | join | length }}";
    dirs.write_rule(
        "join.rule.json",
        &document(
            "rule",
            "01JF0J01N00000000000000000",
            "Join",
            json!({"triggers": [{"on": "join"}],
                   "steps": [{"kind": "set", "var": "args.length", "value": join}]}),
        )
        .to_string(),
    );
    dirs.write_rule("echo.rule.json", &echo_rule());
    let server = TestServer::start_in(dirs, Options::default());
    let mut ws = everything(&server).await;
    server.inject(
        json!({"source": "test", "type": "join", "data": {"chunk": "x", "times": 40_000_000}}),
    );
    let line = server.wait_for_log("failed (template)");
    assert!(
        line.contains("Join run")
            && line.ends_with(
                "the template reads or builds more than 4194304 bytes (limits.template_bytes)"
            ),
        "{line}"
    );
    assert!(echo_round_trip(&server, &mut ws).await < PROMPTLY);
    let trace = &traces(&server, "/rules/01JF0J01N00000000000000000/traces")[0];
    assert_eq!(trace["error"]["code"], "template");
    assert_eq!(trace["args"].get("length"), None);
    assert!(
        server.peak_rss_mib() < SMALL_MIB,
        "peak RSS {} MiB",
        server.peak_rss_mib()
    );
}

#[tokio::test]
async fn appending_to_a_global_stops_at_the_variable_size_limit() {
    let dirs = Dirs::new();
    dirs.write_rule(
        "note.rule.json",
        &document(
            "rule",
            "01JF0N0TE00000000000000000",
            "Note",
            json!({"triggers": [{"on": "note"}],
                   "steps": [{"kind": "set", "var": "global.notes", "op": "append",
                              "value": "{{ event.data.text }}"}]}),
        )
        .to_string(),
    );
    let server = TestServer::start_in(dirs, Options::default());
    let text = "n".repeat(100_000);
    for _ in 0..3 {
        server.inject(json!({"source": "test", "type": "note", "data": {"text": text}}));
    }
    let line = server.wait_for_log("failed (tooLarge)");
    assert!(
        line.contains("Note run")
            && line.contains("global.notes would hold 300010 bytes of JSON")
            && line.ends_with("more than limits.variable_bytes (262144)"),
        "{line}"
    );
    let mut outcomes: Vec<String> = traces(&server, "/rules/01JF0N0TE00000000000000000/traces")
        .iter()
        .map(|trace| trace["outcome"].as_str().unwrap().to_owned())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["completed", "completed", "error"]);
    // The two notes that fit are kept.
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let reply = ws
        .request(json!({"request": "GetGlobal", "variable": "notes", "persisted": true, "id": "g"}))
        .await;
    assert_eq!(reply["variable"]["value"], json!([text, text]), "{reply}");
    assert!(server.rss_mib() < SMALL_MIB);
}
