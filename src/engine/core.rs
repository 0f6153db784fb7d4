//! The engine's core, shared by the live actor and dry runs: from event or call to run
//! (docs/rules.md §9). Stages 2–7 (match, args, variables, conditions, limits, mode) run synchronously
//! here, in order, so admission is deterministic; admitted runs are spawned through the [`Env`].
//!
//! The core lives in an `Rc<RefCell<_>>` on one thread; runs hold a clone and never keep it
//! borrowed across an await.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use futures::channel::oneshot;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::chain::{Chain, ChainLimits, Cut, Reported, SharedChain};
use super::document::{Document, Kind, Limit, Mode, Scope};
use super::env::SharedEnv;
use super::facts::Facts;
use super::loader::DocumentSet;
use super::matcher::{match_rule, Index};
use super::runner;
use super::trace::{Outcome, Trace, Traces};
use crate::event::{normalise, Event};

/// The core, shared with its runs.
pub type Shared = Rc<RefCell<Core>>;

/// How deep `run_action` calls may nest.
pub const MAX_DEPTH: u8 = 8;

/// `limits.variable_bytes` by default.
pub const DEFAULT_VARIABLE_BYTES: usize = 256 * 1024;

/// What runs are held to (docs/rules.md §6.3), from `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub chain: ChainLimits,
    /// The largest value, as JSON, a `set` may store in a `global.*` or `user.*` variable.
    pub variable_bytes: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            chain: ChainLimits::default(),
            variable_bytes: DEFAULT_VARIABLE_BYTES,
        }
    }
}

/// Cancellation of one run (and of the runs it waits on).
#[derive(Default)]
pub struct Control {
    cancelled: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
    children: RefCell<Vec<Rc<Control>>>,
}

impl Control {
    pub fn cancel(&self) {
        self.cancelled.set(true);
        for waker in self.wakers.borrow_mut().drain(..) {
            waker.wake();
        }
        for child in self.children.borrow_mut().drain(..) {
            child.cancel();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Also cancels `child` when this run is cancelled.
    pub fn adopt(&self, child: Rc<Control>) {
        if self.is_cancelled() {
            child.cancel();
        } else {
            self.children.borrow_mut().push(child);
        }
    }

    /// Resolves when the run is cancelled.
    pub fn cancelled(self: &Rc<Self>) -> impl std::future::Future<Output = ()> + 'static {
        let control = self.clone();
        futures::future::poll_fn(move |context| {
            if control.is_cancelled() {
                std::task::Poll::Ready(())
            } else {
                control.wakers.borrow_mut().push(context.waker().clone());
                std::task::Poll::Pending
            }
        })
    }
}

/// How a run ended: its outcome and final args.
pub type Finished = (Outcome, Map<String, Value>);

/// What became of one start attempt.
pub enum Admitted {
    Started {
        run_id: Uuid,
        done: oneshot::Receiver<Finished>,
    },
    Refused(Outcome),
}

/// Why a call could not start anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    NotFound(String),
    Disabled(String),
}

/// Where a run comes from.
#[derive(Clone)]
pub struct Origin {
    pub trigger: Option<String>,
    pub force: bool,
    pub depth: u8,
    pub parent: Option<(Uuid, Rc<Control>)>,
    /// The causal chain of the caller; `None` for a call from outside, which starts one.
    pub chain: Option<SharedChain>,
}

#[derive(Default)]
struct Slots {
    active: Vec<Rc<Control>>,
    waiting: VecDeque<(oneshot::Sender<()>, Rc<Control>)>,
}

/// The engine's state.
pub struct Core {
    documents: Arc<DocumentSet>,
    index: Index,
    slots: HashMap<String, Slots>,
    traces: Traces,
    /// Dry runs keep every trace, in order.
    kept: Option<Vec<Trace>>,
    /// Dry runs: only this document matches events.
    scope: Option<String>,
    pub limits: RunLimits,
    /// The chains of events that runs published and the core has not matched yet, by event id.
    followers: HashMap<Uuid, SharedChain>,
    pub env: SharedEnv,
}

impl Core {
    pub fn new(documents: Arc<DocumentSet>, env: SharedEnv, limits: RunLimits) -> Core {
        Core {
            index: Index::build(&documents.documents),
            documents,
            slots: HashMap::new(),
            traces: Traces::default(),
            kept: None,
            scope: None,
            limits,
            followers: HashMap::new(),
            env,
        }
    }

    /// A core for dry runs: every trace kept, events matched by `scope` only.
    pub fn dry(
        documents: Arc<DocumentSet>,
        env: SharedEnv,
        scope: String,
        limits: RunLimits,
    ) -> Core {
        Core {
            kept: Some(Vec::new()),
            scope: Some(scope),
            ..Core::new(documents, env, limits)
        }
    }

    /// Swaps in a new set of documents; runs in progress finish with the version they started with.
    /// The traces of documents that are gone are dropped.
    pub fn replace(&mut self, documents: Arc<DocumentSet>) {
        self.index = Index::build(&documents.documents);
        self.traces
            .retain(|id| documents.documents.iter().any(|document| document.id == id));
        self.documents = documents;
    }

    /// Notes that `event`, about to be published by a run of `chain`, belongs to that chain.
    pub fn follow(&mut self, event: Uuid, chain: SharedChain) {
        self.followers.insert(event, chain);
    }

    /// The chain `event` belongs to: the one that published it, or a new one for an event from
    /// outside.
    fn chain_of(&mut self, event: &Event) -> SharedChain {
        self.followers
            .remove(&event.id)
            .unwrap_or_else(|| Chain::start(event, self.limits.chain))
    }

    /// A document's traces, newest first.
    pub fn traces(&self, document_id: &str) -> Vec<Trace> {
        self.traces.of(document_id)
    }

    /// The traces of a dry run, in order.
    pub fn kept(&self) -> &[Trace] {
        self.kept.as_deref().unwrap_or_default()
    }

    fn record(&mut self, trace: Trace) {
        match &mut self.kept {
            Some(kept) => kept.push(trace),
            None => self.traces.record(trace),
        }
    }

    /// Cancels every active run and drops the waiting ones (shutdown).
    pub fn cancel_all(&mut self) {
        for slots in self.slots.values_mut() {
            for control in &slots.active {
                control.cancel();
            }
            slots.waiting.clear();
        }
    }

    /// The facts of a run on `event` with `args`.
    fn facts(
        &self,
        event: &Event,
        args: Map<String, Value>,
        document: &Document,
        run_id: Uuid,
    ) -> Facts {
        let mut facts = self.event_facts(event);
        facts.args = args;
        facts.run = run_json(document, run_id, self.env.dry_run());
        facts
    }

    /// The facts every run on `event` shares: the event JSON, the globals, the user's variables.
    fn event_facts(&self, event: &Event) -> Facts {
        let user = event
            .user
            .as_ref()
            .and_then(|user| user.id.as_ref())
            .map(|id| {
                self.env
                    .variables(&format!("u/{}:{id}/", normalise(&event.source)))
            })
            .unwrap_or_default();
        Facts {
            event: Arc::new(event.to_facts()),
            args: Map::new(),
            global: self.env.variables("g/"),
            user,
            run: Value::Null,
            now: self.env.now(),
            hops: event.hops,
        }
    }
}

/// The `run` fact of templates.
fn run_json(document: &Document, run_id: Uuid, dry_run: bool) -> Value {
    json!({"id": run_id, "name": document.name, "kind": document.kind.name(), "dryRun": dry_run})
}

/// Stages 2–8 for a published event: every candidate rule, in path order. Returns the
/// documents whose trigger matched, with what became of their run.
pub fn on_event(shared: &Shared, event: &Event) -> Vec<(String, Admitted)> {
    let chain = shared.borrow_mut().chain_of(event);
    let source = normalise(&event.source);
    let kind = normalise(&event.kind);
    let candidates: Vec<Arc<Document>> = {
        let core = shared.borrow();
        core.index
            .candidates(&kind)
            .iter()
            .map(|&at| core.documents.documents[at].clone())
            .filter(|document| document.enabled)
            .filter(|document| {
                core.scope
                    .as_ref()
                    .is_none_or(|scope| *scope == document.id)
            })
            .collect()
    };
    let mut admitted = Vec::new();
    if candidates.is_empty() {
        return admitted;
    }
    let base = shared.borrow().event_facts(event);
    for document in candidates {
        let mut facts = base.clone();
        let Some(matched) = match_rule(&document, &source, &kind, &mut facts) else {
            continue;
        };
        let run_id = Uuid::new_v4();
        facts.run = run_json(&document, run_id, shared.borrow().env.dry_run());
        let origin = Origin {
            trigger: Some(matched.trigger),
            force: false,
            depth: 0,
            parent: None,
            chain: None,
        };
        let result = admit(
            shared,
            document.clone(),
            facts,
            event,
            (origin, chain.clone()),
            run_id,
        );
        admitted.push((document.id.clone(), result));
    }
    admitted
}

/// A call (docs/rules.md §10.1) of a callable by id (tried first) or name, or a force-run of a rule.
pub fn call(
    shared: &Shared,
    id: Option<&str>,
    name: Option<&str>,
    args: Map<String, Value>,
    event: &Event,
    mut origin: Origin,
) -> Result<Admitted, CallError> {
    let given = id
        .filter(|id| !id.is_empty())
        .or(name)
        .unwrap_or_default()
        .to_owned();
    let document = {
        let core = shared.borrow();
        let documents = &core.documents;
        let found = if origin.force {
            documents
                .by_id_or_name(id, name)
                .filter(|document| document.kind == Kind::Rule)
        } else {
            documents.callable(id, name)
        };
        found.cloned().ok_or(CallError::NotFound(given))?
    };
    let enabled = if origin.force {
        document.enabled
    } else {
        document.callable_enabled()
    };
    if !enabled {
        return Err(CallError::Disabled(document.name.clone()));
    }
    origin.trigger = match document.kind {
        Kind::Action => None,
        Kind::Rule if origin.force => Some("force".to_owned()),
        Kind::Rule => document.call_trigger().map(|trigger| trigger.id.clone()),
    };
    let run_id = Uuid::new_v4();
    let facts = shared.borrow().facts(event, args, &document, run_id);
    let chain = match origin.chain.take() {
        Some(chain) => chain,
        None => shared.borrow_mut().chain_of(event),
    };
    Ok(admit(
        shared,
        document,
        facts,
        event,
        (origin, chain),
        run_id,
    ))
}

/// Stages 4–8: variables, conditions, limits, mode, then the spawned run, in `chain`.
fn admit(
    shared: &Shared,
    document: Arc<Document>,
    mut facts: Facts,
    event: &Event,
    (origin, chain): (Origin, SharedChain),
    run_id: Uuid,
) -> Admitted {
    let mut trace = Trace::new(
        document.kind.name(),
        &document.id,
        &document.name,
        origin.trigger.clone(),
        &facts,
    );
    trace.run_id = run_id;
    trace.parent_run_id = origin.parent.as_ref().map(|(id, _)| *id);
    let refuse = |shared: &Shared,
                  mut trace: Trace,
                  facts: Facts,
                  outcome: Outcome,
                  error: Option<Value>| {
        trace.args = facts.args;
        trace.outcome = outcome;
        trace.error = error;
        shared.borrow_mut().record(trace);
        Admitted::Refused(outcome)
    };
    for (name, template) in &document.variables {
        match template.render(&facts.context()) {
            Ok(value) => {
                facts.args.insert(name.clone(), value);
            }
            Err(message) => {
                let error = json!({"step": format!("/variables/{name}"), "code": "template", "message": message});
                return refuse(shared, trace, facts, Outcome::Error, Some(error));
            }
        }
    }
    let checked = document.kind == Kind::Rule && !origin.force;
    if checked {
        if let Some(conditions) = &document.conditions {
            let (result, conditions_trace) = facts.evaluate(conditions);
            trace.conditions = Some(conditions_trace);
            if !result {
                return refuse(shared, trace, facts, Outcome::Filtered, None);
            }
        }
        let env = shared.borrow().env.clone();
        let (denial, checks, commits) = check_limits(&document, &facts, event, &env);
        trace.limits = checks;
        if let Some((outcome, denial)) = denial {
            if normalise(&event.kind) != "ruledenied" {
                publish_denial(shared, &document, event, &trace, denial, &chain);
            }
            return refuse(shared, trace, facts, outcome, None);
        }
        // The mode decides below; limits are committed only for an admitted run.
        let admitted = start(shared, document.clone(), facts, trace, origin, chain);
        if matches!(admitted, Admitted::Started { .. }) {
            let now = env.now().timestamp_millis();
            for (key, limit) in commits {
                commit_limit(&env, &key, limit, now);
            }
        }
        return admitted;
    }
    start(shared, document, facts, trace, origin, chain)
}

/// Stage 7 and 8: the chain's budget and the mode, then the spawned run.
fn start(
    shared: &Shared,
    document: Arc<Document>,
    facts: Facts,
    mut trace: Trace,
    origin: Origin,
    chain: SharedChain,
) -> Admitted {
    if let Err((cut, reported)) = chain.run() {
        let env = shared.borrow().env.clone();
        report_cut(&env, &cut, reported, &format!("a run of {}", document.name));
        trace.args = facts.args;
        trace.outcome = Outcome::Budget;
        trace.error = Some(json!({"step": null, "code": "budget", "message": cut.to_string()}));
        shared.borrow_mut().record(trace);
        return Admitted::Refused(Outcome::Budget);
    }
    let control = Rc::new(Control::default());
    let wait = {
        let mut core = shared.borrow_mut();
        let slots = core.slots.entry(document.id.clone()).or_default();
        let busy = match document.mode {
            Mode::Single => !slots.active.is_empty(),
            Mode::Restart => {
                for active in slots.active.drain(..) {
                    active.cancel();
                }
                false
            }
            Mode::Queued => slots.active.len() + slots.waiting.len() >= document.max as usize,
            Mode::Parallel => slots.active.len() >= document.max as usize,
        };
        if busy {
            drop(core);
            trace.args = facts.args;
            trace.outcome = Outcome::Busy;
            shared.borrow_mut().record(trace);
            return Admitted::Refused(Outcome::Busy);
        }
        if document.mode == Mode::Queued && !slots.active.is_empty() {
            let (sender, receiver) = oneshot::channel();
            slots.waiting.push_back((sender, control.clone()));
            Some(receiver)
        } else {
            slots.active.push(control.clone());
            None
        }
    };
    if let Some((_, parent)) = &origin.parent {
        parent.adopt(control.clone());
    }
    let (done, receiver) = oneshot::channel();
    let run_id = trace.run_id;
    let run = runner::Run {
        shared: shared.clone(),
        document,
        facts,
        trace,
        control,
        depth: origin.depth,
        chain,
    };
    let env = shared.borrow().env.clone();
    env.spawn(
        async move {
            if let Some(wait) = wait {
                if wait.await.is_err() {
                    return; // dropped at shutdown
                }
            }
            let finished = run.execute().await;
            let _ = done.send(finished);
        }
        .boxed_local(),
    );
    Admitted::Started {
        run_id,
        done: receiver,
    }
}

impl Core {
    /// A run ended: record its trace and hand its slot to the next queued run.
    pub fn finish(&mut self, document: &Document, control: &Rc<Control>, trace: Trace) {
        self.record(trace);
        let slots = self.slots.entry(document.id.clone()).or_default();
        slots.active.retain(|active| !Rc::ptr_eq(active, control));
        while let Some((next, control)) = slots.waiting.pop_front() {
            if next.send(()).is_ok() {
                slots.active.push(control);
                break;
            }
        }
    }
}

/// The scope key of a limit for this run, or `None` when the limit does not apply (no user).
fn scope_key(limit: &Limit, facts: &Facts, event: &Event) -> Option<Result<String, String>> {
    match limit.scope {
        Scope::Global => Some(Ok("global".to_owned())),
        Scope::User => {
            let id = event.user.as_ref()?.id.as_ref()?;
            Some(Ok(format!("{}:{id}", normalise(&event.source))))
        }
        Scope::Key => {
            let template = limit.key.as_ref().expect("key limits have a key template");
            Some(template.render_text(&facts.context()))
        }
    }
}

type Denial = (Outcome, Value);

/// Checks cooldowns then rate limits, in the order written (docs/rules.md §7). Returns the first
/// refusal, the trace entries, and the (state key, limit) pairs to commit on admission.
fn check_limits(
    document: &Document,
    facts: &Facts,
    event: &Event,
    env: &SharedEnv,
) -> (Option<Denial>, Vec<Value>, Vec<(String, LimitKind)>) {
    let now = env.now().timestamp_millis();
    let mut checks = Vec::new();
    let mut commits = Vec::new();
    let lists = [
        ("cooldown", "c", &document.limits.cooldowns),
        ("rateLimit", "r", &document.limits.rate_limits),
    ];
    for (limit_name, letter, limits) in lists {
        for (index, limit) in limits.iter().enumerate() {
            let Some(key) = scope_key(limit, facts, event) else {
                continue;
            };
            let key = key.unwrap_or_else(|error| format!("<error: {error}>"));
            let state_key = format!("{}/{letter}{index}/{key}", document.id);
            let kind = if letter == "c" {
                LimitKind::Cooldown(limit.seconds)
            } else {
                LimitKind::Rate(limit.seconds, limit.max)
            };
            let remaining = remaining_ms(&env.limit(&state_key), kind, now);
            let passed = remaining <= 0;
            checks.push(json!({"limit": limit_name, "index": index, "scope": limit.scope.name(), "key": key, "passed": passed, "remainingMs": remaining.max(0)}));
            if !passed {
                let outcome = if letter == "c" {
                    Outcome::Cooldown
                } else {
                    Outcome::RateLimited
                };
                let denial = json!({"reason": outcome.name(), "scope": limit.scope.name(), "remainingMs": remaining});
                return (Some((outcome, denial)), checks, commits);
            }
            commits.push((state_key, kind));
        }
    }
    (None, checks, commits)
}

/// Which limit a state key belongs to.
#[derive(Debug, Clone, Copy)]
pub enum LimitKind {
    /// Seconds.
    Cooldown(f64),
    /// Window seconds, max.
    Rate(f64, u32),
}

fn remaining_ms(state: &Option<Value>, kind: LimitKind, now: i64) -> i64 {
    match kind {
        LimitKind::Cooldown(seconds) => match state.as_ref().and_then(Value::as_i64) {
            Some(last) => last + (seconds * 1000.0).ceil() as i64 - now,
            None => 0,
        },
        LimitKind::Rate(window, max) => {
            let window_ms = (window * 1000.0).ceil() as i64;
            let mut times: Vec<i64> = state
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .filter(|time| *time > now - window_ms)
                .collect();
            times.sort_unstable();
            if times.len() >= max as usize {
                times[times.len() - max as usize] + window_ms - now
            } else {
                0
            }
        }
    }
}

fn commit_limit(env: &SharedEnv, key: &str, kind: LimitKind, now: i64) {
    match kind {
        LimitKind::Cooldown(_) => env.set_limit(key, Value::from(now)),
        LimitKind::Rate(window, _) => {
            let window_ms = (window * 1000.0).ceil() as i64;
            let mut times: Vec<Value> = env
                .limit(key)
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|time| time.as_i64().is_some_and(|time| time > now - window_ms))
                .cloned()
                .collect();
            times.push(Value::from(now));
            env.set_limit(key, Value::Array(times));
        }
    }
}

/// Logs the first cut of a chain (later ones are only traced): what was cut and why.
pub fn report_cut(env: &SharedEnv, cut: &Cut, reported: Reported, what: &str) {
    if reported == Reported::First {
        env.log(
            log::Level::Warn,
            format!("{cut}: {what} is cut, and so is anything else the chain would still do"),
        );
    }
}

/// The `ruleDenied` event of docs/rules.md §7, published in `chain` when it has room.
fn publish_denial(
    shared: &Shared,
    document: &Document,
    event: &Event,
    trace: &Trace,
    denial: Value,
    chain: &SharedChain,
) {
    let env = shared.borrow().env.clone();
    if let Err((cut, reported)) = chain.publish() {
        let what = format!("the ruleDenied event of {}", document.name);
        report_cut(&env, &cut, reported, &what);
        return;
    }
    let remaining = denial["remainingMs"].as_i64().unwrap_or(0).max(0);
    let mut denied = Event::new(
        "switchboard",
        "ruleDenied",
        json!({
            "ruleId": document.id,
            "rule": document.name,
            "trigger": trace.trigger,
            "reason": denial["reason"],
            "scope": denial["scope"],
            "remainingMs": remaining,
            "remainingSeconds": (remaining + 999) / 1000,
        }),
    );
    denied.user = event.user.clone();
    denied.room = event.room.clone();
    denied.hops = event.hops + 1;
    shared.borrow_mut().follow(denied.id, chain.clone());
    env.spawn(env.publish(denied).map(|_| ()).boxed_local());
}
