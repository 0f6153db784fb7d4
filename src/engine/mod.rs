//! The rule engine actor: where events enter the bus and where rules and actions run.
//!
//! Faces, the HTTP API and (later) outbound connections send [`Inject`]: the engine records the
//! event's names in the Streamer.bot catalogue and its credits, publishes it to the registry,
//! matches it against the rules ([`core`]) and acknowledges once its records are on disk.
//! [`DoAction`] calls an action or callable rule. Runs are futures spawned on the engine's thread
//! (see [`runner`]), so a `delay` never blocks the engine. [`Reload`] re-reads `rules_dir`
//! (sent by the [`watcher`] and the HTTP API).

pub mod api;
pub mod chain;
pub mod commit;
pub mod condition;
pub mod core;
pub mod credits;
pub mod document;
pub mod dryrun;
pub mod env;
pub mod facts;
pub mod loader;
pub mod matcher;
pub mod runner;
pub mod sandbox;
pub mod template;
pub mod trace;
pub mod watcher;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use serde_json::{Map, Value};
use uuid::Uuid;

use self::commit::GroupCommit;
use self::core::{CallError, Origin, RunLimits, Shared};
use self::credits::Credits;
use self::document::{Kind, StepBody};
use self::loader::{DocumentSet, Mirror};
use self::sandbox::TemplateLimits;
use self::trace::Trace;
use crate::config::RawOutbound;
use crate::event::Event;
use crate::names::Names;
use crate::outbound::{self, OutboundManager};
use crate::registry::{Publish, Registry};
use crate::store::{Store, StoreError, Table};

/// Why the engine refused a request; each face turns it into its own error form.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("Action not found: {0}")]
    ActionNotFound(String),
    #[error("Action is disabled: {0}")]
    ActionDisabled(String),
    #[error("{0}")]
    Invalid(String),
    #[error("No document with id {0}")]
    DocumentNotFound(String),
    /// `triggerRule`: the message says which rule was looked for, or that it is disabled.
    #[error("{0}")]
    RuleNotFound(String),
    /// The cause is logged where it is met, never shown to a client.
    #[error("Internal error")]
    Store(#[from] StoreError),
}

/// Publishes an event and records it; answers its id once the records are on disk.
#[derive(Message)]
#[rtype(result = "Result<Uuid, EngineError>")]
pub struct Inject(pub Event);

/// Who called an action from outside: the synthetic event's source (docs/rules.md §10.1).
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    Streamerbot,
    Http,
}

impl Caller {
    fn source(self) -> &'static str {
        match self {
            Caller::Streamerbot => "streamerbot",
            Caller::Http => "http",
        }
    }
}

/// Calls a callable by id (tried first) or name with `args`; answers once the engine has it.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct DoAction {
    pub id: Option<String>,
    pub name: Option<String>,
    pub args: Map<String, Value>,
    pub caller: Caller,
}

/// Force-runs a rule (VMSC `triggerRule`): by id when given, else by name. Answers the rule's
/// id and name once the engine has the run.
#[derive(Message)]
#[rtype(result = "Result<(String, String), EngineError>")]
pub struct TriggerRule {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// A `credits.add` step: adds a name to a credits list, answered once on disk.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct AddCredit {
    pub category: String,
    pub name: String,
}

/// The documents currently loaded.
#[derive(Message)]
#[rtype(result = "Arc<DocumentSet>")]
pub struct GetDocuments;

/// The traces of a document, newest first (`None`: no such document).
#[derive(Message)]
#[rtype(result = "Option<Vec<Trace>>")]
pub struct GetTraces {
    pub kind: Kind,
    pub id: String,
}

/// Re-reads `rules_dir` and swaps the compiled set; answers the refused files' error lines.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, EngineError>")]
pub struct Reload;

/// A dry run of one document on the live state (docs/rules.md §12, `POST /rules/{id}/test`).
#[derive(Message)]
#[rtype(result = "Result<Value, EngineError>")]
pub struct DryRun {
    pub kind: Kind,
    pub id: String,
    pub test: Value,
}

/// Runs a document's own tests (as `switchboard rules test` does) and answers each one's result.
#[derive(Message)]
#[rtype(result = "Result<Vec<Value>, EngineError>")]
pub struct RunOwnTests {
    pub kind: Kind,
    pub id: String,
}

/// Reads or changes the credits; answers the `GetCredits` payload once changes are on disk.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Map<String, Value>, EngineError>")]
pub enum CreditsRequest {
    Get,
    FillWithTestNames,
    Clear,
}

/// The engine actor.
pub struct RuleEngine {
    registry: Addr<Registry>,
    outbound: Addr<OutboundManager>,
    store: Store,
    /// Names of injected events are recorded here, and flushed with the event's credits, so
    /// that a name an acknowledged event introduced survives a crash.
    names: Arc<Names>,
    /// Outbound connections, for the configured names.
    connections: Vec<RawOutbound>,
    rules_dir: PathBuf,
    mirror: Mirror,
    credits: Credits,
    credits_table: Table<Credits>,
    /// The credits changed since the record was last written (at the start of a flush).
    credits_changed: bool,
    commit: GroupCommit,
    /// The trees the live environment reads and writes.
    globals: Table<Value>,
    limits: Table<Value>,
    /// Built in `started`, when the actor has its address.
    core: Option<Shared>,
    documents: Arc<DocumentSet>,
    run_limits: RunLimits,
}

/// The key of the credits record in its tree.
const CREDITS_KEY: &str = "state";

/// What the engine starts with.
pub struct Setup {
    pub registry: Addr<Registry>,
    pub outbound: Addr<OutboundManager>,
    pub names: Arc<Names>,
    pub connections: Vec<RawOutbound>,
    pub rules_dir: PathBuf,
    pub limits: RunLimits,
    /// Set for the whole process when the engine is built.
    pub templates: TemplateLimits,
}

impl RuleEngine {
    /// Loads `rules_dir` (reporting refused files in the log) and the credits as stored (cleared
    /// when stale).
    pub async fn new(
        setup: Setup,
        store: &Store,
    ) -> Result<(RuleEngine, loader::Loaded), StoreError> {
        // Before the documents load: their templates are checked against these limits.
        sandbox::configure(setup.templates);
        // The refused files are reported here and returned, so the banner can count them.
        let mirror = Mirror::open(store)?;
        let loaded = loader::load(&setup.rules_dir, &mirror).await?;
        for line in &loaded.errors {
            log::error!("rules: {line}");
        }
        let credits_table = store.table::<Credits>("credits")?;
        let (credits, cleared) = Credits::restored(credits_table.get(CREDITS_KEY)?, Utc::now());
        if cleared {
            log::info!(
                "engine: the credits last changed over 12 hours ago; starting with empty lists"
            );
            credits_table.put(CREDITS_KEY, &credits).await?;
        }
        let documents = Arc::new(loaded.documents.clone());
        setup
            .names
            .set_configured(configured_names(&setup.connections, &documents));
        let engine = RuleEngine {
            registry: setup.registry,
            outbound: setup.outbound,
            store: store.clone(),
            names: setup.names,
            connections: setup.connections,
            rules_dir: setup.rules_dir,
            mirror,
            globals: store.table("globals")?,
            limits: store.table("limits")?,
            credits,
            credits_table,
            credits_changed: false,
            commit: GroupCommit::default(),
            core: None,
            documents,
            run_limits: setup.limits,
        };
        Ok((engine, loaded))
    }

    fn core(&self) -> &Shared {
        self.core
            .as_ref()
            .expect("the core is built when the actor starts")
    }

    /// Stores the credits (at the next flush); resolves once they are on disk.
    fn save_credits(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> {
        self.credits_changed = true;
        self.durable(ctx)
    }

    /// Resolves once every write so far is on disk, by group commit ([`commit`]).
    fn durable(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> {
        let (done, start) = self.commit.join();
        if start {
            self.begin_flush(ctx);
        }
        done
    }

    /// Writes the credits record if it changed, then flushes for everyone waiting now.
    fn begin_flush(&mut self, ctx: &mut Context<Self>) {
        let written = if std::mem::take(&mut self.credits_changed) {
            self.credits_table.insert(CREDITS_KEY, &self.credits)
        } else {
            Ok(())
        };
        let batch = self.commit.begin();
        let store = self.store.clone();
        let flushed = async move {
            written?;
            store.flush().await
        };
        ctx.spawn(flushed.into_actor(self).map(|result, engine, ctx| {
            if engine.commit.finish(batch, result) {
                engine.begin_flush(ctx);
            }
        }));
    }

    fn swap(&mut self, documents: DocumentSet) {
        let documents = Arc::new(documents);
        self.names
            .set_configured(configured_names(&self.connections, &documents));
        self.core().borrow_mut().replace(documents.clone());
        self.documents = documents;
    }
}

/// The sources and types configuration names (listed by the Streamer.bot face's catalogue,
/// docs/streamerbot.md §5.4): outbound sources with their default type, rule trigger sources
/// with their `on`, and literal `emit` names.
pub fn configured_names(
    connections: &[RawOutbound],
    documents: &DocumentSet,
) -> Vec<(String, Option<String>)> {
    let mut names: Vec<(String, Option<String>)> = connections
        .iter()
        .map(|connection| {
            let source = connection
                .source
                .clone()
                .unwrap_or_else(|| connection.name.clone());
            (
                source,
                Some(
                    connection
                        .default_type
                        .clone()
                        .unwrap_or_else(|| "custom".to_owned()),
                ),
            )
        })
        .collect();
    for document in &documents.documents {
        for (on, sources) in matcher::event_triggers(document) {
            for source in sources {
                names.push((source.clone(), Some(on.to_owned())));
            }
        }
        visit_emits(&document.steps, &mut |source, kind| {
            names.push((source, Some(kind)))
        });
    }
    names
}

fn visit_emits(steps: &[document::Step], visit: &mut dyn FnMut(String, String)) {
    for step in steps {
        match &step.body {
            StepBody::Emit(emit) => {
                if let Some((source, kind)) = emit.literal_names() {
                    visit(source, kind);
                }
            }
            StepBody::If {
                then, otherwise, ..
            } => {
                visit_emits(then, visit);
                visit_emits(otherwise, visit);
            }
            _ => {}
        }
    }
}

impl Actor for RuleEngine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let live = env::Live {
            engine: ctx.address(),
            outbound: self.outbound.clone(),
            store: self.store.clone(),
            globals: self.globals.clone(),
            limits: self.limits.clone(),
        };
        self.core = Some(Rc::new(RefCell::new(core::Core::new(
            self.documents.clone(),
            Rc::new(live),
            self.run_limits,
        ))));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let Some(core) = &self.core {
            core.borrow_mut().cancel_all();
        }
        Running::Stop
    }
}

impl Handler<Inject> for RuleEngine {
    type Result = ResponseFuture<Result<Uuid, EngineError>>;

    fn handle(&mut self, Inject(event): Inject, ctx: &mut Context<Self>) -> Self::Result {
        Box::pin(self.inject(event, ctx))
    }
}

impl Handler<outbound::Received> for RuleEngine {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, received: outbound::Received, ctx: &mut Context<Self>) -> Self::Result {
        let durable = self.inject(received.0, ctx);
        Box::pin(async move {
            if let Err(error) = durable.await {
                log::error!("engine: an outbound event's records were not stored: {error:?}");
            }
        })
    }
}

impl RuleEngine {
    /// Records, publishes and matches `event`; resolves to its id once its records are on disk.
    fn inject(
        &mut self,
        event: Event,
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = Result<Uuid, EngineError>> {
        let id = event.id;
        let named = self.names.record(&event.source, &event.kind);
        let credited = self.credits.record(&event);
        let event = Arc::new(event);
        self.registry.do_send(Publish(event.clone()));
        core::on_event(self.core(), &event);
        if credited {
            self.credits_changed = true;
        }
        // Also when this event changed nothing itself: what it saw (a follower another event
        // just recorded) may not be on disk yet, and its acknowledgement must not precede that.
        let durable = (named || credited || self.commit.pending()).then(|| self.durable(ctx));
        async move {
            if let Some(durable) = durable {
                durable.await?;
            }
            Ok(id)
        }
    }
}

impl Handler<DoAction> for RuleEngine {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, call: DoAction, _: &mut Context<Self>) -> Self::Result {
        let event = Event::new(
            call.caller.source(),
            "call",
            Value::Object(call.args.clone()),
        );
        let origin = Origin {
            trigger: None,
            force: false,
            depth: 0,
            parent: None,
            chain: None,
        };
        let id = call.id.as_deref().filter(|id| !id.is_empty());
        let name = call.name.as_deref().filter(|name| !name.is_empty());
        match core::call(self.core(), id, name, call.args, &event, origin) {
            Ok(_) => Ok(()),
            Err(CallError::NotFound(given)) => Err(EngineError::ActionNotFound(given)),
            Err(CallError::Disabled(name)) => Err(EngineError::ActionDisabled(name)),
        }
    }
}

impl Handler<TriggerRule> for RuleEngine {
    type Result = Result<(String, String), EngineError>;

    fn handle(&mut self, message: TriggerRule, _: &mut Context<Self>) -> Self::Result {
        let rule = match (&message.id, &message.name) {
            (Some(id), _) => self.documents.get(Kind::Rule, id),
            (None, Some(name)) => self
                .documents
                .documents
                .iter()
                .find(|d| d.kind == Kind::Rule && d.name == *name),
            (None, None) => None,
        };
        let Some(rule) = rule.cloned() else {
            let message = match (message.id, message.name) {
                (Some(id), _) => format!("No rule with ruleId '{id}'"),
                (None, name) => format!("No rule with ruleName '{}'", name.unwrap_or_default()),
            };
            return Err(EngineError::RuleNotFound(message));
        };
        if !rule.enabled {
            return Err(EngineError::RuleNotFound(format!(
                "Rule '{}' is disabled",
                rule.name
            )));
        }
        let kind = rule
            .triggers
            .first()
            .map_or("manual", |trigger| trigger.on.as_str());
        let event = Event::new("websocket", kind, Value::Object(Map::new()));
        let origin = Origin {
            trigger: None,
            force: true,
            depth: 0,
            parent: None,
            chain: None,
        };
        core::call(
            self.core(),
            Some(&rule.id),
            None,
            Map::new(),
            &event,
            origin,
        )
        .map_err(|error| EngineError::RuleNotFound(format!("{error:?}")))?;
        Ok((rule.id.clone(), rule.name.clone()))
    }
}

impl Handler<AddCredit> for RuleEngine {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, message: AddCredit, ctx: &mut Context<Self>) -> Self::Result {
        self.credits.add(&message.category, &message.name);
        Box::pin(self.save_credits(ctx))
    }
}

impl Handler<GetDocuments> for RuleEngine {
    type Result = Arc<DocumentSet>;

    fn handle(&mut self, _: GetDocuments, _: &mut Context<Self>) -> Arc<DocumentSet> {
        self.documents.clone()
    }
}

impl Handler<GetTraces> for RuleEngine {
    type Result = Option<Vec<Trace>>;

    fn handle(&mut self, message: GetTraces, _: &mut Context<Self>) -> Self::Result {
        self.documents.get(message.kind, &message.id)?;
        Some(self.core().borrow().traces(&message.id))
    }
}

impl Handler<Reload> for RuleEngine {
    type Result = ResponseActFuture<Self, Result<Vec<String>, EngineError>>;

    fn handle(&mut self, _: Reload, _: &mut Context<Self>) -> Self::Result {
        let dir = self.rules_dir.clone();
        let mirror = self.mirror.clone();
        Box::pin(
            async move { loader::load(&dir, &mirror).await }
                .into_actor(self)
                .map(|loaded, engine, _| {
                    let loaded = loaded?;
                    for line in &loaded.errors {
                        log::error!("rules: {line}");
                    }
                    log::info!(
                        "rules: loaded {} documents",
                        loaded.documents.documents.len()
                    );
                    engine.swap(loaded.documents);
                    Ok(loaded.errors)
                }),
        )
    }
}

impl Handler<DryRun> for RuleEngine {
    type Result = Result<Value, EngineError>;

    fn handle(&mut self, message: DryRun, _: &mut Context<Self>) -> Self::Result {
        if self.documents.get(message.kind, &message.id).is_none() {
            return Err(EngineError::DocumentNotFound(message.id));
        }
        let live = dryrun::LiveState {
            globals: self.globals.clone(),
            credits: self.credits.clone(),
            limits: self.run_limits,
        };
        dryrun::run_one(
            self.documents.clone(),
            &message.id,
            &message.test,
            Some(live),
        )
        .map_err(EngineError::Invalid)
    }
}

impl Handler<RunOwnTests> for RuleEngine {
    type Result = Result<Vec<Value>, EngineError>;

    fn handle(&mut self, message: RunOwnTests, _: &mut Context<Self>) -> Self::Result {
        let document = self
            .documents
            .get(message.kind, &message.id)
            .cloned()
            .ok_or(EngineError::DocumentNotFound(message.id))?;
        Ok(dryrun::run_own_tests(self.documents.clone(), &document))
    }
}

impl Handler<CreditsRequest> for RuleEngine {
    type Result = ResponseFuture<Result<Map<String, Value>, EngineError>>;

    fn handle(&mut self, request: CreditsRequest, ctx: &mut Context<Self>) -> Self::Result {
        let now = Utc::now();
        match request {
            CreditsRequest::Get => {
                let reply = self.credits.to_reply(now);
                return Box::pin(async move { Ok(reply) });
            }
            CreditsRequest::FillWithTestNames => self.credits.fill_with_test_names(now),
            CreditsRequest::Clear => self.credits.clear(now),
        }
        let reply = self.credits.to_reply(now);
        let saved = self.save_credits(ctx);
        Box::pin(async move { Ok(saved.await.map(|()| reply)?) })
    }
}
