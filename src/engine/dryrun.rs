//! Dry runs (docs/rules.md §12): a document's in-file tests, `switchboard rules test`, and
//! `POST /rules/{id}/test`. Everything is evaluated as on the live server, but on a virtual clock
//! that starts at 2026-01-01T00:00:00Z and jumps from one pending timer to the next, with a scratch
//! overlay for variables, credits and limits, and with `emit`, `ws.send` and `log` recorded
//! instead of performed.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::executor::LocalPool;
use futures::future::LocalBoxFuture;
use futures::task::LocalSpawnExt;
use futures::FutureExt;
use serde_json::{json, Map, Value};

use super::core::{self, Admitted, Core, Origin, RunLimits};
use super::credits::Credits;
use super::document::Document;
use super::env::{variable_record, Env, Failure};
use super::loader::DocumentSet;
use super::trace::Trace;
use crate::event::{Event, User};
use crate::store::Table;

/// A test still busy after this much virtual time fails.
const SETTLE_LIMIT_MS: u64 = 24 * 60 * 60 * 1000;

/// The virtual clock: time moves only when the driver moves it.
struct Clock {
    start: DateTime<Utc>,
    now_ms: Cell<u64>,
    timers: RefCell<Vec<(u64, Waker)>>,
}

impl Clock {
    fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::milliseconds(self.now_ms.get() as i64)
    }

    fn next_deadline(&self) -> Option<u64> {
        self.timers
            .borrow()
            .iter()
            .map(|(deadline, _)| *deadline)
            .min()
    }

    fn advance_to(&self, ms: u64) {
        self.now_ms.set(self.now_ms.get().max(ms));
        let now = self.now_ms.get();
        let due: Vec<Waker> = {
            let mut timers = self.timers.borrow_mut();
            let (due, pending): (Vec<_>, Vec<_>) =
                timers.drain(..).partition(|(deadline, _)| *deadline <= now);
            *timers = pending;
            due.into_iter().map(|(_, waker)| waker).collect()
        };
        due.into_iter().for_each(Waker::wake);
    }
}

struct Sleep {
    clock: Rc<Clock>,
    deadline: u64,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.clock.now_ms.get() >= self.deadline {
            return Poll::Ready(());
        }
        self.clock
            .timers
            .borrow_mut()
            .push((self.deadline, context.waker().clone()));
        Poll::Pending
    }
}

/// Real state a dry run on the live server reads through (writes stay in the overlay), and the
/// server's limits.
pub struct LiveState {
    pub globals: Table<Value>,
    pub credits: Credits,
    pub limits: RunLimits,
}

/// What a dry run recorded.
#[derive(Default)]
struct Recorded {
    emitted: Vec<Value>,
    sent: Vec<Value>,
    logs: Vec<String>,
}

/// The dry world.
struct Dry {
    clock: Rc<Clock>,
    spawner: futures::executor::LocalSpawner,
    /// Variable records by key; `None` is a deletion.
    overlay: RefCell<HashMap<String, Option<Value>>>,
    fallback: Option<Table<Value>>,
    credits: RefCell<Credits>,
    limits: RefCell<HashMap<String, Value>>,
    disconnected: HashSet<String>,
    recorded: RefCell<Recorded>,
}

fn event_json(event: &Event) -> Value {
    json!({"source": event.source, "type": event.kind, "user": event.user, "room": event.room, "data": event.data})
}

impl Env for Dry {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        Sleep {
            clock: self.clock.clone(),
            deadline: self.clock.now_ms.get() + duration.as_millis() as u64,
        }
        .boxed_local()
    }

    fn spawn(&self, future: LocalBoxFuture<'static, ()>) {
        self.spawner
            .spawn_local(future)
            .expect("the dry-run executor lives as long as the run");
    }

    fn dry_run(&self) -> bool {
        true
    }

    fn variables(&self, prefix: &str) -> Map<String, Value> {
        let mut variables: Map<String, Value> = self
            .fallback
            .as_ref()
            .and_then(|table| table.scan(prefix).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(key, record)| (key[prefix.len()..].to_owned(), record["value"].clone()))
            .collect();
        for (key, record) in self.overlay.borrow().iter() {
            if let Some(name) = key.strip_prefix(prefix).filter(|name| !name.contains('/')) {
                match record {
                    Some(record) => variables.insert(name.to_owned(), record["value"].clone()),
                    None => variables.remove(name),
                };
            }
        }
        variables
    }

    fn write_variable(
        &self,
        key: &str,
        value: Option<Value>,
        user: Option<&User>,
    ) -> Result<(), Failure> {
        let record = value.map(|value| variable_record(value, self.now(), user));
        self.overlay.borrow_mut().insert(key.to_owned(), record);
        Ok(())
    }

    fn flush(&self) -> LocalBoxFuture<'static, Result<(), Failure>> {
        async { Ok(()) }.boxed_local()
    }

    fn add_credit(
        &self,
        category: String,
        name: String,
    ) -> LocalBoxFuture<'static, Result<(), Failure>> {
        self.credits.borrow_mut().add(&category, &name);
        async { Ok(()) }.boxed_local()
    }

    fn publish(&self, event: Event) -> LocalBoxFuture<'static, Result<(), Failure>> {
        self.credits.borrow_mut().record(&event);
        self.recorded.borrow_mut().emitted.push(event_json(&event));
        async { Ok(()) }.boxed_local()
    }

    fn send(&self, connection: &str, text: String) -> LocalBoxFuture<'static, Result<(), Failure>> {
        if self.disconnected.contains(connection) {
            let error = (
                "notConnected",
                format!("outbound connection {connection:?} is not connected"),
            );
            return async move { Err(error) }.boxed_local();
        }
        let mut frame =
            json!({"connection": connection, "atMs": self.clock.now_ms.get(), "text": text});
        if let Ok(payload) = serde_json::from_str::<Value>(&text) {
            frame["payload"] = payload;
        }
        self.recorded.borrow_mut().sent.push(frame);
        async { Ok(()) }.boxed_local()
    }

    fn log(&self, level: log::Level, text: String) {
        if level <= log::Level::Info {
            self.recorded.borrow_mut().logs.push(text);
        }
    }

    fn limit(&self, key: &str) -> Option<Value> {
        self.limits.borrow().get(key).cloned()
    }

    fn set_limit(&self, key: &str, value: Value) {
        self.limits.borrow_mut().insert(key.to_owned(), value);
    }
}

/// One input of a test.
enum Input {
    Event(Value),
    Call {
        args: Map<String, Value>,
        force: bool,
    },
}

/// What became of one input, for the document under test.
enum InputResult {
    NoMatch,
    Refused(&'static str),
    Started(uuid::Uuid),
}

/// A finished dry run.
pub struct Report {
    outcomes: Vec<String>,
    /// The trace of each input's run, when it started one.
    traces: Vec<Option<Trace>>,
    recorded: Recorded,
    credits: Map<String, Value>,
    variables: Map<String, Value>,
}

fn parse_inputs(test: &Value) -> Result<Vec<(u64, Input)>, String> {
    let forms = ["event", "events", "call"]
        .iter()
        .filter(|key| test.get(**key).is_some())
        .count();
    if forms != 1 {
        return Err("a test has exactly one of `event`, `events` and `call`".into());
    }
    if let Some(event) = test.get("event") {
        return Ok(vec![(0, Input::Event(event.clone()))]);
    }
    if let Some(call) = test.get("call") {
        let args = match call.get("args") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(args)) => args.clone(),
            Some(_) => return Err("`call.args` is an object".into()),
        };
        let force = call.get("force").and_then(Value::as_bool).unwrap_or(false);
        return Ok(vec![(0, Input::Call { args, force })]);
    }
    let events = test["events"].as_array().ok_or("`events` is an array")?;
    let mut last = 0;
    events
        .iter()
        .map(|entry| {
            let at = entry
                .get("atMs")
                .and_then(Value::as_u64)
                .ok_or("each of `events` has an integer `atMs`")?;
            if at < last {
                return Err("`atMs` does not decrease".to_owned());
            }
            last = at;
            let event = entry
                .get("event")
                .ok_or("each of `events` has an `event`")?;
            Ok((at, Input::Event(event.clone())))
        })
        .collect()
}

fn input_event(value: &Value, now: DateTime<Utc>) -> Result<Event, String> {
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .filter(|text| !text.trim().is_empty())
            .map(str::to_owned)
    };
    let source = text("source").ok_or("a test event has a non-empty `source`")?;
    let kind = text("type").ok_or("a test event has a non-empty `type`")?;
    let mut event = Event::new(
        source,
        kind,
        value.get("data").cloned().unwrap_or_else(|| json!({})),
    );
    event.timestamp = now;
    event.user = match value.get("user") {
        None | Some(Value::Null) => None,
        Some(user) => {
            Some(serde_json::from_value(user.clone()).map_err(|error| format!("`user`: {error}"))?)
        }
    };
    event.room = value.get("room").and_then(Value::as_str).map(str::to_owned);
    Ok(event)
}

/// Runs one test (or a dry-run body) of document `id` against `documents`.
pub fn run(
    documents: Arc<DocumentSet>,
    id: &str,
    test: &Value,
    live: Option<LiveState>,
) -> Result<Report, String> {
    let inputs = parse_inputs(test)?;
    let given = test.get("given").cloned().unwrap_or(json!({}));
    let mut pool = LocalPool::new();
    let clock = Rc::new(Clock {
        start: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid date"),
        now_ms: Cell::new(0),
        timers: RefCell::new(Vec::new()),
    });
    let mut overlay = HashMap::new();
    for (name, value) in given
        .get("globals")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        overlay.insert(
            format!("g/{name}"),
            Some(variable_record(value.clone(), clock.now(), None)),
        );
    }
    for (user, variables) in given
        .get("users")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (name, value) in variables.as_object().into_iter().flatten() {
            overlay.insert(
                format!("u/{user}/{name}"),
                Some(variable_record(value.clone(), clock.now(), None)),
            );
        }
    }
    let disconnected = given
        .get("disconnected")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let (fallback, credits, limits) = match live {
        Some(live) => (Some(live.globals), live.credits, live.limits),
        None => (None, Credits::default(), RunLimits::default()),
    };
    let dry = Rc::new(Dry {
        clock: clock.clone(),
        spawner: pool.spawner(),
        overlay: RefCell::new(overlay),
        fallback,
        credits: RefCell::new(credits),
        limits: RefCell::new(HashMap::new()),
        disconnected,
        recorded: RefCell::new(Recorded::default()),
    });
    let shared = Rc::new(RefCell::new(Core::dry(
        documents,
        dry.clone(),
        id.to_owned(),
        limits,
    )));
    let mut results = Vec::new();
    let mut next = 0;
    loop {
        pool.run_until_stalled();
        let input_at = inputs.get(next).map(|(at, _)| *at);
        let timer = clock.next_deadline();
        match (input_at, timer) {
            (Some(at), timer) if timer.is_none_or(|deadline| at <= deadline) => {
                clock.advance_to(at);
                results.push(feed(&shared, &dry, id, &inputs[next].1)?);
                next += 1;
            }
            (_, Some(deadline)) if deadline > SETTLE_LIMIT_MS => {
                return Err("did not settle".into())
            }
            (_, Some(deadline)) => clock.advance_to(deadline),
            (_, None) => break,
        }
    }
    let core = shared.borrow();
    let traces: Vec<Option<Trace>> = results
        .iter()
        .map(|result| match result {
            InputResult::Started(run_id) => core
                .kept()
                .iter()
                .find(|trace| trace.run_id == *run_id)
                .cloned(),
            _ => None,
        })
        .collect();
    let outcomes = results
        .iter()
        .zip(&traces)
        .map(|(result, trace)| match (result, trace) {
            (InputResult::NoMatch, _) => "noMatch".to_owned(),
            (InputResult::Refused(outcome), _) => (*outcome).to_owned(),
            (InputResult::Started(_), Some(trace)) => trace.outcome.name().to_owned(),
            (InputResult::Started(_), None) => "cancelled".to_owned(),
        })
        .collect();
    let variables = dry
        .overlay
        .borrow()
        .iter()
        .filter_map(|(key, record)| Some((key.clone(), record.as_ref()?["value"].clone())))
        .collect();
    let report = Report {
        outcomes,
        traces,
        recorded: std::mem::take(&mut dry.recorded.borrow_mut()),
        credits: dry.credits.borrow().to_reply(clock.now()),
        variables,
    };
    Ok(report)
}

fn feed(
    shared: &core::Shared,
    dry: &Rc<Dry>,
    id: &str,
    input: &Input,
) -> Result<InputResult, String> {
    let admitted = match input {
        Input::Event(value) => {
            let event = input_event(value, dry.clock.now())?;
            dry.credits.borrow_mut().record(&event);
            core::on_event(shared, &event)
                .into_iter()
                .find(|(document, _)| document == id)
                .map(|(_, admitted)| admitted)
        }
        Input::Call { args, force } => {
            let mut event = Event::new("http", "call", Value::Object(args.clone()));
            event.timestamp = dry.clock.now();
            let origin = Origin {
                trigger: None,
                force: *force,
                depth: 0,
                parent: None,
                chain: None,
            };
            match core::call(shared, Some(id), None, args.clone(), &event, origin) {
                Ok(admitted) => Some(admitted),
                Err(error) => return Err(format!("the call was refused: {error:?}")),
            }
        }
    };
    Ok(match admitted {
        None => InputResult::NoMatch,
        Some(Admitted::Refused(outcome)) => InputResult::Refused(outcome.name()),
        Some(Admitted::Started { run_id, .. }) => InputResult::Started(run_id),
    })
}

/// `POST /rules/{id}/test`: one dry run on the live state.
pub fn run_one(
    documents: Arc<DocumentSet>,
    id: &str,
    test: &Value,
    live: Option<LiveState>,
) -> Result<Value, String> {
    let report = run(documents, id, test, live)?;
    Ok(json!({
        "outcome": report.outcomes.first(),
        "trace": report.traces.first().cloned().flatten(),
        "emitted": report.recorded.emitted,
        "sent": report.recorded.sent,
        "logs": report.recorded.logs,
    }))
}

/// A failed expectation: where in the test, what was expected, what was found.
#[derive(Debug, PartialEq)]
pub struct Mismatch {
    pub pointer: String,
    pub expected: Value,
    pub got: Value,
}

/// Whether `actual` matches the pattern `expected` (docs/rules.md §12): objects by the expected keys,
/// arrays element by element with the same length, numbers numerically.
pub fn pattern(expected: &Value, actual: &Value, at: &str) -> Result<(), Box<Mismatch>> {
    let mismatch = || {
        Box::new(Mismatch {
            pointer: at.to_owned(),
            expected: expected.clone(),
            got: actual.clone(),
        })
    };
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                pattern(
                    value,
                    have.get(key).unwrap_or(&Value::Null),
                    &format!("{at}/{key}"),
                )?;
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(have)) => {
            if want.len() != have.len() {
                return Err(mismatch());
            }
            want.iter()
                .zip(have)
                .enumerate()
                .try_for_each(|(index, (want, have))| pattern(want, have, &format!("{at}/{index}")))
        }
        (Value::Number(want), Value::Number(have)) if want.as_f64() == have.as_f64() => Ok(()),
        (want, have) if want == have => Ok(()),
        _ => Err(mismatch()),
    }
}

/// Checks a test's `expect` against its report.
pub fn check(test: &Value, report: &Report) -> Result<(), Box<Mismatch>> {
    let Some(expect) = test.get("expect").and_then(Value::as_object) else {
        return Ok(());
    };
    for (key, expected) in expect {
        let at = format!("/expect/{key}");
        let actual = match key.as_str() {
            "outcome" => Value::from(report.outcomes.first().cloned()),
            "outcomes" => Value::from(report.outcomes.clone()),
            "args" => report
                .traces
                .first()
                .cloned()
                .flatten()
                .map_or(Value::Null, |trace| Value::Object(trace.args)),
            "emitted" => Value::from(report.recorded.emitted.clone()),
            "sent" => Value::from(report.recorded.sent.clone()),
            "credits" => {
                let mut lists = Map::new();
                for path in expected
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(path, _)| path)
                {
                    let pointer = format!("/{}", path.replace('.', "/"));
                    let credits = Value::Object(report.credits.clone());
                    lists.insert(
                        path.clone(),
                        credits.pointer(&pointer).cloned().unwrap_or(Value::Null),
                    );
                }
                Value::Object(lists)
            }
            "globals" => named(expected, |name| {
                report.variables.get(&format!("g/{name}")).cloned()
            }),
            "users" => {
                let mut users = Map::new();
                for (user, names) in expected.as_object().into_iter().flatten() {
                    users.insert(
                        user.clone(),
                        named(names, |name| {
                            report.variables.get(&format!("u/{user}/{name}")).cloned()
                        }),
                    );
                }
                Value::Object(users)
            }
            other => {
                return Err(Box::new(Mismatch {
                    pointer: at,
                    expected: Value::String(format!("a known expect field, not `{other}`")),
                    got: Value::Null,
                }))
            }
        };
        pattern(expected, &actual, &at)?;
    }
    Ok(())
}

/// The named variables of `expected`, absent ones as `null`.
fn named(expected: &Value, lookup: impl Fn(&str) -> Option<Value>) -> Value {
    Value::Object(
        expected
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, _)| (name.clone(), lookup(name).unwrap_or(Value::Null)))
            .collect(),
    )
}

/// Runs one of a document's own tests on a virtual clock, without the live state, and checks its
/// `expect`.
fn run_test(documents: Arc<DocumentSet>, id: &str, test: &Value) -> Result<(), Box<Mismatch>> {
    run(documents, id, test, None)
        .map_err(|error| {
            Box::new(Mismatch {
                pointer: String::new(),
                expected: Value::String("a run".into()),
                got: Value::String(error),
            })
        })
        .and_then(|report| check(test, &report))
}

/// `POST /rules/{id}/tests`: each of the document's own tests as `{name, passed, pointer?,
/// expected?, got?}`, as `switchboard rules test` runs them.
pub fn run_own_tests(documents: Arc<DocumentSet>, document: &Document) -> Vec<Value> {
    document
        .tests
        .iter()
        .enumerate()
        .map(|(index, test)| {
            let name = test
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{index}"), str::to_owned);
            match run_test(documents.clone(), &document.id, test) {
                Ok(()) => json!({"name": name, "passed": true}),
                Err(mismatch) => json!({"name": name, "passed": false,
                    "pointer": mismatch.pointer, "expected": mismatch.expected, "got": mismatch.got}),
            }
        })
        .collect()
}

/// `switchboard rules test DIR`: every document's tests; returns (lines, passed, failed).
pub fn test_dir(dir: &std::path::Path) -> (Vec<String>, usize, usize, bool) {
    let loaded = super::loader::check(dir);
    let mut lines = loaded.errors.clone();
    let documents = Arc::new(loaded.documents);
    let (mut passed, mut failed) = (0, 0);
    for document in &documents.documents {
        let path = documents
            .paths
            .get(&document.id)
            .cloned()
            .unwrap_or_default();
        for (index, test) in document.tests.iter().enumerate() {
            let name = test
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{index}"), str::to_owned);
            match run_test(documents.clone(), &document.id, test) {
                Ok(()) => {
                    passed += 1;
                    lines.push(format!("ok {path}: {name}"));
                }
                Err(mismatch) => {
                    failed += 1;
                    lines.push(format!(
                        "FAIL {path}: {name}: {}: expected {}, got {}",
                        mismatch.pointer, mismatch.expected, mismatch.got
                    ));
                }
            }
        }
    }
    (lines, passed, failed, !loaded.errors.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_by_expected_keys_and_numbers_numerically() {
        assert!(pattern(&json!({"a": 183}), &json!({"a": 183.0, "b": 1}), "").is_ok());
        assert!(pattern(&json!([1, 2]), &json!([1, 2, 3]), "").is_err());
        let mismatch = pattern(
            &json!({"data": {"count": 2}}),
            &json!({"data": {"count": 3}}),
            "/expect/emitted/0",
        )
        .unwrap_err();
        assert_eq!(mismatch.pointer, "/expect/emitted/0/data/count");
        assert!(pattern(&json!({"x": null}), &json!({}), "").is_ok());
    }

    proptest::proptest! {
        /// The in-file tests of a mutated document run to a verdict each (or the file is
        /// reported): `switchboard rules test` neither panics nor hangs on them.
        #[test]
        fn mutated_documents_and_tests_run_to_a_verdict(
            text in crate::mutate::messages(crate::mutate::rule_documents()),
        ) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("d.json"), &text).unwrap();
            let (lines, passed, failed, invalid) = test_dir(dir.path());
            let tests = lines.iter().filter(|line| line.starts_with("ok ") || line.starts_with("FAIL ")).count();
            proptest::prop_assert_eq!(tests, passed + failed);
            proptest::prop_assert_eq!(invalid, lines.len() > tests, "{:?}", lines);
        }
    }
}
