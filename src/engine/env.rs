//! What a run needs from the world, as a trait: the clock, spawning, persisted variables and limit
//! state, credits, publishing, outbound frames and the log. The live server implements it over
//! the store, the engine actor and the outbound manager ([`Live`]); dry runs implement it over a
//! virtual clock and a scratch overlay (`dryrun`).

use std::rc::Rc;
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use serde_json::{Map, Value};

use super::{AddCredit, Inject, RuleEngine};
use crate::event::{Event, User};
use crate::outbound::{OutboundError, OutboundManager, SendText};
use crate::store::{Store, Table};

/// A failed operation: the trace's error code and a message.
pub type Failure = (&'static str, String);

/// The world as a run sees it.
pub trait Env {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()>;
    fn spawn(&self, future: LocalBoxFuture<'static, ()>);
    fn dry_run(&self) -> bool;
    /// The variables whose keys start with `prefix` (`g/` or `u/<source>:<id>/`), by name.
    fn variables(&self, prefix: &str) -> Map<String, Value>;
    /// Writes (`Some`) or deletes (`None`) a variable record; not yet flushed.
    fn write_variable(
        &self,
        key: &str,
        value: Option<Value>,
        user: Option<&User>,
    ) -> Result<(), Failure>;
    /// Resolves once every write so far is durable.
    fn flush(&self) -> LocalBoxFuture<'static, Result<(), Failure>>;
    fn add_credit(
        &self,
        category: String,
        name: String,
    ) -> LocalBoxFuture<'static, Result<(), Failure>>;
    /// Publishes an event as if injected (subscribers, rules, credits).
    fn publish(&self, event: Event) -> LocalBoxFuture<'static, Result<(), Failure>>;
    fn send(&self, connection: &str, text: String) -> LocalBoxFuture<'static, Result<(), Failure>>;
    fn log(&self, level: log::Level, text: String);
    /// Limit state (docs/rules.md §7) under its key.
    fn limit(&self, key: &str) -> Option<Value>;
    fn set_limit(&self, key: &str, value: Value);
}

/// The record of a variable, as the `globals` tree keeps it.
pub fn variable_record(value: Value, now: DateTime<Utc>, user: Option<&User>) -> Value {
    let mut record = Map::new();
    record.insert("value".into(), value);
    record.insert(
        "updatedAt".into(),
        Value::String(crate::event::format_time(&now)),
    );
    if let Some(user) = user {
        record.insert(
            "username".into(),
            user.username.clone().map_or(Value::Null, Value::String),
        );
        record.insert(
            "nickname".into(),
            user.nickname.clone().map_or(Value::Null, Value::String),
        );
    }
    Value::Object(record)
}

/// The live server's world.
pub struct Live {
    pub engine: Addr<RuleEngine>,
    pub outbound: Addr<OutboundManager>,
    pub store: Store,
    pub globals: Table<Value>,
    pub limits: Table<Value>,
}

fn store_failure(error: impl std::fmt::Display) -> Failure {
    log::error!("rules: the store failed: {error}");
    ("internal", error.to_string())
}

impl Env for Live {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        actix_rt::time::sleep(duration).boxed_local()
    }

    fn spawn(&self, future: LocalBoxFuture<'static, ()>) {
        actix_rt::spawn(future);
    }

    fn dry_run(&self) -> bool {
        false
    }

    fn variables(&self, prefix: &str) -> Map<String, Value> {
        match self.globals.scan(prefix) {
            Ok(records) => records
                .into_iter()
                .map(|(key, record)| (key[prefix.len()..].to_owned(), record["value"].clone()))
                .collect(),
            Err(error) => {
                store_failure(error);
                Map::new()
            }
        }
    }

    fn write_variable(
        &self,
        key: &str,
        value: Option<Value>,
        user: Option<&User>,
    ) -> Result<(), Failure> {
        match value {
            Some(value) => self
                .globals
                .insert(key, &variable_record(value, Utc::now(), user))
                .map_err(store_failure),
            None => self.globals.remove(key).map_err(store_failure),
        }
    }

    fn flush(&self) -> LocalBoxFuture<'static, Result<(), Failure>> {
        let store = self.store.clone();
        async move { store.flush().await.map_err(store_failure) }.boxed_local()
    }

    fn add_credit(
        &self,
        category: String,
        name: String,
    ) -> LocalBoxFuture<'static, Result<(), Failure>> {
        let engine = self.engine.clone();
        async move {
            match engine.send(AddCredit { category, name }).await {
                Ok(result) => result.map_err(store_failure),
                Err(error) => Err(("internal", error.to_string())),
            }
        }
        .boxed_local()
    }

    fn publish(&self, event: Event) -> LocalBoxFuture<'static, Result<(), Failure>> {
        let engine = self.engine.clone();
        async move {
            match engine.send(Inject(event)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(("internal", error.to_string())),
                Err(error) => Err(("internal", error.to_string())),
            }
        }
        .boxed_local()
    }

    fn send(&self, connection: &str, text: String) -> LocalBoxFuture<'static, Result<(), Failure>> {
        let outbound = self.outbound.clone();
        let message = SendText {
            connection: connection.to_owned(),
            text,
        };
        async move {
            match outbound.send(message).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error @ OutboundError::NotFound(_))) => Err(("notFound", error.to_string())),
                Ok(Err(error @ OutboundError::NotConnected(..))) => {
                    Err(("notConnected", error.to_string()))
                }
                Ok(Err(error @ OutboundError::QueueFull { .. })) => {
                    Err(("queueFull", error.to_string()))
                }
                Ok(Err(error)) => Err(("internal", error.to_string())),
                Err(error) => Err(("internal", error.to_string())),
            }
        }
        .boxed_local()
    }

    fn log(&self, level: log::Level, text: String) {
        log::log!(target: "switchboard::rules", level, "{text}");
    }

    fn limit(&self, key: &str) -> Option<Value> {
        self.limits.get(key).unwrap_or_else(|error| {
            store_failure(error);
            None
        })
    }

    fn set_limit(&self, key: &str, value: Value) {
        // Flushed by sled within its flush interval (500 ms): docs/rules.md §15 allows that loss.
        if let Err(error) = self.limits.insert(key, &value) {
            store_failure(error);
        }
    }
}

/// Shared handle to an environment.
pub type SharedEnv = Rc<dyn Env>;
