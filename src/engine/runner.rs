//! One run of an action's steps, as a spawned future: it never blocks the engine actor, and a
//! `delay` in one run delays no other. Each step's outcome is logged at `debug` under
//! `switchboard::rules`; a failing step ends the run with outcome `error`.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::Utc;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::document::{Action, Emit, Step, StepBody, WsMessage, WsSend};
use super::{Inject, RuleEngine};
use crate::event::{format_time, Event, User};
use crate::outbound::{OutboundError, OutboundManager, SendText};
use crate::store::Table;

/// How many `emit` hops an event may be from the outside event that caused it (rules.md §6.2).
pub const MAX_HOPS: u8 = 8;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    Stopped(String),
    Error {
        step: String,
        code: &'static str,
        message: String,
    },
}

/// Everything one run needs.
pub struct Run {
    pub action: Arc<Action>,
    pub event: Event,
    pub args: Map<String, Value>,
    pub engine: Addr<RuleEngine>,
    pub outbound: Addr<OutboundManager>,
    pub globals: Table<Value>,
}

impl Run {
    /// Runs the variables and steps, then logs the outcome.
    pub async fn execute(mut self) -> Outcome {
        let run_id = Uuid::new_v4();
        let outcome = self.steps(run_id).await;
        let name = &self.action.name;
        match &outcome {
            Outcome::Error {
                step,
                code,
                message,
            } => log::warn!(
                target: "switchboard::rules",
                "{name} run {run_id}: step {step} failed ({code}): {message}"
            ),
            other => log::debug!(target: "switchboard::rules", "{name} run {run_id}: {other:?}"),
        }
        outcome
    }

    async fn steps(&mut self, run_id: Uuid) -> Outcome {
        let action = self.action.clone();
        for (name, template) in &action.variables {
            match template.render(&self.context(run_id)) {
                Ok(value) => {
                    self.args.insert(name.clone(), value);
                }
                Err(message) => {
                    return Outcome::Error {
                        step: format!("/variables/{name}"),
                        code: "template",
                        message,
                    }
                }
            }
        }
        for step in &action.steps {
            if !step.enabled {
                continue;
            }
            match self.step(step, run_id).await {
                Ok(None) => {}
                Ok(Some(outcome)) => return outcome,
                Err((code, message)) if step.continue_on_error => log::debug!(
                    target: "switchboard::rules",
                    "{} run {run_id}: step {} failed ({code}: {message}), continuing",
                    action.name,
                    step.id
                ),
                Err((code, message)) => {
                    return Outcome::Error {
                        step: step.id.clone(),
                        code,
                        message,
                    }
                }
            }
        }
        Outcome::Completed
    }

    /// Runs one step: `Ok(Some(outcome))` ends the run.
    async fn step(
        &mut self,
        step: &Step,
        run_id: Uuid,
    ) -> Result<Option<Outcome>, (&'static str, String)> {
        let context = self.context(run_id);
        match &step.body {
            StepBody::Delay { ms } => {
                let ms = ms.render(&context).map_err(|e| ("template", e))?;
                let ms = match &ms {
                    Value::Number(n) => n.as_u64(),
                    Value::String(text) => text.trim().parse().ok(),
                    _ => None,
                }
                .filter(|ms| *ms <= 86_400_000)
                .ok_or((
                    "type",
                    format!("delay ms {ms} is not an integer from 0 to 86400000"),
                ))?;
                actix_rt::time::sleep(Duration::from_millis(ms)).await;
            }
            StepBody::Emit(emit) => self.emit(emit, &context).await?,
            StepBody::WsSend(send) => self.ws_send(send, &context).await?,
            StepBody::Log { message, level } => {
                let text = message.render_text(&context).map_err(|e| ("template", e))?;
                log::log!(target: "switchboard::rules", *level, "{} run {run_id}: {text}", self.action.name);
            }
            StepBody::Stop { reason, error } => {
                if *error {
                    return Ok(Some(Outcome::Error {
                        step: step.id.clone(),
                        code: "stop",
                        message: reason.clone(),
                    }));
                }
                return Ok(Some(Outcome::Stopped(reason.clone())));
            }
        }
        Ok(None)
    }

    async fn emit(&self, emit: &Emit, context: &Value) -> Result<(), (&'static str, String)> {
        let template = |e| ("template", e);
        if self.event.hops >= MAX_HOPS {
            return Err((
                "loop",
                format!("the event would be more than {MAX_HOPS} hops from an outside event"),
            ));
        }
        let kind = emit.kind.render_text(context).map_err(template)?;
        let source = emit.source.render_text(context).map_err(template)?;
        if kind.trim().is_empty() || source.trim().is_empty() {
            return Err((
                "type",
                "an emitted event needs a non-empty source and type".into(),
            ));
        }
        let user = match emit.user.render(context).map_err(template)? {
            Value::Null => None,
            value => Some(
                serde_json::from_value::<User>(value)
                    .map_err(|e| ("type", format!("user is not a user object: {e}")))?,
            ),
        };
        let room = match emit.room.render(context).map_err(template)? {
            Value::Null => None,
            Value::String(room) => Some(room),
            other => return Err(("type", format!("room {other} is not a string"))),
        };
        let mut event = Event::new(source, kind, emit.data.render(context).map_err(template)?);
        event.user = user;
        event.room = room;
        event.hops = self.event.hops + 1;
        match self.engine.send(Inject(event)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(("internal", error.to_string())),
            Err(error) => Err(("internal", error.to_string())),
        }
    }

    async fn ws_send(&self, send: &WsSend, context: &Value) -> Result<(), (&'static str, String)> {
        let text = match &send.message {
            WsMessage::Payload(payload) => payload
                .render(context)
                .map_err(|e| ("template", e))?
                .to_string(),
            WsMessage::Text(text) => text.render_text(context).map_err(|e| ("template", e))?,
        };
        let message = SendText {
            connection: send.connection.clone(),
            text,
        };
        match self.outbound.send(message).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error @ OutboundError::NotFound(_))) => Err(("notFound", error.to_string())),
            Ok(Err(error @ OutboundError::NotConnected(_))) => {
                Err(("notConnected", error.to_string()))
            }
            Err(error) => Err(("internal", error.to_string())),
        }
    }

    /// The template context of rules.md §5.1: the facts, with every arg also as a bare name.
    fn context(&self, run_id: Uuid) -> Value {
        let globals: Map<String, Value> = self
            .globals
            .scan("g/")
            .unwrap_or_default()
            .into_iter()
            .map(|(key, record)| (key["g/".len()..].to_owned(), record["value"].clone()))
            .collect();
        let now = Utc::now();
        let mut context = self.args.clone();
        let facts = [
            ("event", self.event.to_facts()),
            ("args", Value::Object(self.args.clone())),
            ("global", Value::Object(globals)),
            ("user", json!({})),
            (
                "run",
                json!({"id": run_id, "name": self.action.name, "kind": "action", "dryRun": false}),
            ),
            ("now", Value::String(format_time(&now))),
            ("nowMs", Value::from(now.timestamp_millis())),
        ];
        for (name, value) in facts {
            context.insert(name.to_owned(), value);
        }
        Value::Object(context)
    }
}
