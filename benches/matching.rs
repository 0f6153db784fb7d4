//! Matching throughput (docs/rules.md §9 stages 2–5): events/s through the engine core with 1,000
//! rules loaded, on one core. A plain timed loop (`harness = false`), run with
//! `cargo bench --bench matching`.
//!
//! Each rule listens to its own event type with a `where` condition and its own `conditions`;
//! the events are a mix of types that have a candidate rule whose condition fails, types with no
//! rule, and chat messages that visit the 100 command rules. Nothing runs: this measures
//! matching, not steps.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use switchboard::engine::core::{self, Core, RunLimits};
use switchboard::engine::document::parse_document;
use switchboard::engine::env::{Env, Failure};
use switchboard::engine::loader::DocumentSet;
use switchboard::event::{Event, User};

/// An environment that does nothing: matching never reaches it beyond reads.
struct Quiet;

impl Env for Quiet {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, _: Duration) -> LocalBoxFuture<'static, ()> {
        async {}.boxed_local()
    }
    fn spawn(&self, _: LocalBoxFuture<'static, ()>) {}
    fn dry_run(&self) -> bool {
        true
    }
    fn variables(&self, _: &str) -> Map<String, Value> {
        Map::new()
    }
    fn write_variable(&self, _: &str, _: Option<Value>, _: Option<&User>) -> Result<(), Failure> {
        Ok(())
    }
    fn flush(&self) -> LocalBoxFuture<'static, Result<(), Failure>> {
        async { Ok(()) }.boxed_local()
    }
    fn add_credit(&self, _: String, _: String) -> LocalBoxFuture<'static, Result<(), Failure>> {
        async { Ok(()) }.boxed_local()
    }
    fn publish(&self, _: Event) -> LocalBoxFuture<'static, Result<(), Failure>> {
        async { Ok(()) }.boxed_local()
    }
    fn send(&self, _: &str, _: String) -> LocalBoxFuture<'static, Result<(), Failure>> {
        async { Ok(()) }.boxed_local()
    }
    fn log(&self, _: log::Level, _: String) {}
    fn limit(&self, _: &str) -> Option<Value> {
        None
    }
    fn set_limit(&self, _: &str, _: Value) {}
}

fn rules(count: usize) -> DocumentSet {
    let mut set = DocumentSet::default();
    for index in 0..count {
        let id = format!("01JD3Q5S8N0W4X7Y2Z{:08}", index);
        let triggers = if index % 10 == 0 {
            json!([{"on": "command", "sources": ["twitch"], "command": {"names": [format!("!cmd{index}")]}}])
        } else {
            json!([{"on": format!("game_event_{index}"), "sources": ["mygame"],
                    "where": {"fact": "event.data.level", "op": "gte", "value": 100}}])
        };
        let document = parse_document(
            &json!({"kind": "rule", "schemaVersion": 1, "id": id, "name": format!("rule {index}"),
            "triggers": triggers,
            "conditions": {"all": [{"fact": "event.data.score", "op": "gt", "value": 10}]},
            "steps": [{"kind": "emit", "type": "never"}]}),
        )
        .expect("the benchmark's rules are valid");
        set.documents.push(Arc::new(document));
    }
    set
}

fn main() {
    let documents = Arc::new(rules(1000));
    let shared = Rc::new(RefCell::new(Core::new(
        documents,
        Rc::new(Quiet),
        RunLimits::default(),
    )));
    let events: Vec<Event> = (0..1000)
        .map(|index| {
            let (kind, data) = match index % 4 {
                0 => (
                    format!("game_event_{}", index % 1000),
                    json!({"level": 3, "score": 50}),
                ),
                1 => ("unlisted_type".to_owned(), json!({"level": 500})),
                2 => (
                    "ChatMessage".to_owned(),
                    json!({"message": "hello there, nobody calls a command"}),
                ),
                _ => (
                    format!("GameEvent{}", (index * 7) % 1000),
                    json!({"level": 1}),
                ),
            };
            let mut event =
                Event::new(if index % 4 == 2 { "twitch" } else { "mygame" }, kind, data);
            event.user = Some(User {
                id: Some("1".into()),
                ..User::default()
            });
            event
        })
        .collect();
    let mut matched = 0usize;
    for event in &events {
        matched += core::on_event(&shared, event).len();
    }
    assert_eq!(matched, 0, "the benchmark's events must not start runs");
    let started = Instant::now();
    let mut processed = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        for event in &events {
            std::hint::black_box(core::on_event(&shared, event));
        }
        processed += events.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "matching: {processed} events through 1000 rules in {seconds:.2} s = {:.0} events/s on one core",
        processed as f64 / seconds
    );
}
