//! The rule engine actor: where events enter the bus and where actions run.
//!
//! Faces, the HTTP API and (later) outbound connections send [`Inject`]: the engine publishes the
//! event to the registry, records it in the credits and acknowledges once that is on disk.
//! [`DoAction`] calls an action by id or name; its run is a spawned future (see [`runner`]), so a
//! `delay` never blocks the engine. Faces read the loaded documents with [`GetDocuments`] and the
//! credits with [`CreditsRequest`].

pub mod credits;
pub mod document;
pub mod loader;
pub mod runner;
pub mod template;

use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use serde_json::{Map, Value};
use uuid::Uuid;

use self::credits::Credits;
use self::loader::DocumentSet;
use crate::event::Event;
use crate::faces::streamerbot::catalogue::Catalogue;
use crate::outbound::OutboundManager;
use crate::registry::{Publish, Registry};
use crate::store::{Store, StoreError, Table};

/// Why the engine refused a request; each face turns it into its own error form.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("Action not found: {0}")]
    ActionNotFound(String),
    #[error("Action is disabled: {0}")]
    ActionDisabled(String),
    #[error("Internal error: {0}")]
    Store(#[from] StoreError),
}

/// Publishes an event and records it; answers its id once the records are on disk.
#[derive(Message)]
#[rtype(result = "Result<Uuid, EngineError>")]
pub struct Inject(pub Event);

/// Who called an action from outside: the synthetic event's source (rules.md §10.1).
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

/// Calls an action by id (tried first) or name with `args`; answers once the run is started.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct DoAction {
    pub id: Option<String>,
    pub name: Option<String>,
    pub args: Map<String, Value>,
    pub caller: Caller,
}

/// The documents currently loaded.
#[derive(Message)]
#[rtype(result = "Arc<DocumentSet>")]
pub struct GetDocuments;

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
    /// that a category an acknowledged event introduced survives a crash.
    catalogue: Arc<Catalogue>,
    documents: Arc<DocumentSet>,
    credits: Credits,
    credits_table: Table<Credits>,
    globals: Table<Value>,
}

/// The key of the credits record in its tree.
const CREDITS_KEY: &str = "state";

impl RuleEngine {
    /// An engine over `documents`, with the credits as stored (cleared when stale).
    pub async fn new(
        registry: Addr<Registry>,
        outbound: Addr<OutboundManager>,
        catalogue: Arc<Catalogue>,
        documents: DocumentSet,
        store: &Store,
    ) -> Result<RuleEngine, StoreError> {
        let credits_table = store.table::<Credits>("credits")?;
        let (credits, cleared) = Credits::restored(credits_table.get(CREDITS_KEY)?, Utc::now());
        if cleared {
            log::info!(
                "engine: the credits last changed over 12 hours ago; starting with empty lists"
            );
            credits_table.put(CREDITS_KEY, &credits).await?;
        }
        Ok(RuleEngine {
            registry,
            outbound,
            store: store.clone(),
            catalogue,
            documents: Arc::new(documents),
            credits,
            credits_table,
            globals: store.table("globals")?,
        })
    }

    /// Stores the credits and returns a future that resolves once they are on disk.
    fn save_credits(&self) -> impl std::future::Future<Output = Result<(), EngineError>> {
        let written = self.credits_table.insert(CREDITS_KEY, &self.credits);
        let flushed = self.flush();
        async move {
            written?;
            flushed.await
        }
    }

    /// A future that resolves once every write so far is on disk.
    fn flush(&self) -> impl std::future::Future<Output = Result<(), EngineError>> {
        let store = self.store.clone();
        async move { Ok(store.flush().await?) }
    }
}

impl Actor for RuleEngine {
    type Context = Context<Self>;
}

impl Handler<Inject> for RuleEngine {
    type Result = ResponseFuture<Result<Uuid, EngineError>>;

    fn handle(&mut self, Inject(event): Inject, _: &mut Context<Self>) -> Self::Result {
        let id = event.id;
        let named = self.catalogue.record(&event.source, &event.kind);
        let credited = self.credits.record(&event);
        self.registry.do_send(Publish(Arc::new(event)));
        let saved = if credited {
            Some(self.save_credits())
        } else {
            None
        };
        let flushed = (named && !credited).then(|| self.flush());
        Box::pin(async move {
            if let Some(saved) = saved {
                saved.await?;
            }
            if let Some(flushed) = flushed {
                flushed.await?;
            }
            Ok(id)
        })
    }
}

impl Handler<DoAction> for RuleEngine {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, call: DoAction, ctx: &mut Context<Self>) -> Self::Result {
        let given = || {
            call.id
                .clone()
                .filter(|id| !id.is_empty())
                .or(call.name.clone())
                .unwrap_or_default()
        };
        let action = self
            .documents
            .callable(call.id.as_deref(), call.name.as_deref())
            .ok_or_else(|| EngineError::ActionNotFound(given()))?
            .clone();
        if !action.enabled {
            return Err(EngineError::ActionDisabled(action.name.clone()));
        }
        let mut event = Event::new(
            call.caller.source(),
            "call",
            Value::Object(call.args.clone()),
        );
        event.hops = 0;
        let run = runner::Run {
            action,
            event,
            args: call.args,
            engine: ctx.address(),
            outbound: self.outbound.clone(),
            globals: self.globals.clone(),
        };
        actix::spawn(run.execute());
        Ok(())
    }
}

impl Handler<GetDocuments> for RuleEngine {
    type Result = Arc<DocumentSet>;

    fn handle(&mut self, _: GetDocuments, _: &mut Context<Self>) -> Arc<DocumentSet> {
        self.documents.clone()
    }
}

impl Handler<CreditsRequest> for RuleEngine {
    type Result = ResponseFuture<Result<Map<String, Value>, EngineError>>;

    fn handle(&mut self, request: CreditsRequest, _: &mut Context<Self>) -> Self::Result {
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
        let saved = self.save_credits();
        Box::pin(async move { saved.await.map(|()| reply) })
    }
}
