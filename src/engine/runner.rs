//! One run of a document's steps (docs/rules.md §6), as a future spawned by the core: a `delay`
//! blocks neither the engine nor any other run. Every step is traced; a failing step ends the
//! run with outcome `error` unless it has `continueOnError`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{select, Either, LocalBoxFuture};
use futures::FutureExt;
use serde_json::{json, Map, Value};

use super::chain::SharedChain;
use super::core::{
    self, report_cut, Admitted, CallError, Control, Finished, Origin, Shared, MAX_DEPTH,
};
use super::document::{Document, Emit, RunAction, Set, SetOp, Step, StepBody, VarScope, WsMessage};
use super::env::Failure;
use super::facts::Facts;
use super::trace::{Outcome, Trace};
use crate::event::{normalise, Event, User};

/// How many `emit` hops an event may be from the outside event that caused it (docs/rules.md §6.2).
pub const MAX_HOPS: u8 = 8;

/// What a step does to its run.
enum Flow {
    Next,
    /// End the run with this outcome (and error, for `error`).
    End(Outcome, Option<Value>),
}

/// One admitted run.
pub struct Run {
    pub shared: Shared,
    pub document: Arc<Document>,
    pub facts: Facts,
    pub trace: Trace,
    pub control: Rc<Control>,
    pub depth: u8,
    pub chain: SharedChain,
}

impl Run {
    /// Runs the steps, records the trace, frees the slot; returns the outcome and final args.
    pub async fn execute(mut self) -> Finished {
        let env = self.shared.borrow().env.clone();
        let started = env.now();
        self.facts.now = started;
        let document = self.document.clone();
        let flow = self.steps(&document.steps).await;
        let (outcome, error) = match flow {
            Flow::Next => (Outcome::Completed, None),
            Flow::End(outcome, error) => (outcome, error),
        };
        let mut trace = self.trace;
        trace.duration_ms = (env.now() - started).num_milliseconds();
        trace.args = self.facts.args.clone();
        trace.outcome = outcome;
        trace.error = error.clone();
        match &error {
            Some(error) => env.log(
                log::Level::Warn,
                format!(
                    "{} run {}: step {} failed ({}): {}",
                    document.name,
                    trace.run_id,
                    error["step"].as_str().unwrap_or("?"),
                    error["code"].as_str().unwrap_or("?"),
                    error["message"].as_str().unwrap_or("")
                ),
            ),
            None => env.log(
                log::Level::Debug,
                format!("{} run {}: {}", document.name, trace.run_id, outcome.name()),
            ),
        }
        self.shared
            .borrow_mut()
            .finish(&document, &self.control, trace);
        (outcome, self.facts.args)
    }

    fn steps<'a>(&'a mut self, steps: &'a [Step]) -> LocalBoxFuture<'a, Flow> {
        async move {
            let env = self.shared.borrow().env.clone();
            let started = self.facts.now;
            for step in steps {
                if self.control.is_cancelled() {
                    return Flow::End(Outcome::Cancelled, None);
                }
                let at = env.now();
                let mut entry = json!({"id": step.id, "path": step.path, "kind": step.kind,
                    "atMs": (at - started).num_milliseconds()});
                if !step.enabled {
                    entry["outcome"] = json!("skipped");
                    entry["durationMs"] = json!(0);
                    self.trace.steps.push(entry);
                    continue;
                }
                let position = self.trace.steps.len();
                self.trace.steps.push(entry);
                let result = self.step(step, position).await;
                let entry = &mut self.trace.steps[position];
                entry["durationMs"] = json!((env.now() - at).num_milliseconds());
                match result {
                    Ok(Flow::Next) => entry["outcome"] = json!("ok"),
                    Ok(Flow::End(Outcome::Cancelled, error)) => {
                        entry["outcome"] = json!("cancelled");
                        return Flow::End(Outcome::Cancelled, error);
                    }
                    Ok(end) => {
                        if entry.get("outcome").is_none() {
                            entry["outcome"] = json!("ok");
                        }
                        return end;
                    }
                    Err((code, message)) => {
                        entry["outcome"] = json!("error");
                        entry["error"] = json!({"code": code, "message": message});
                        if !step.continue_on_error {
                            let error = json!({"step": step.id, "code": code, "message": message});
                            return Flow::End(Outcome::Error, Some(error));
                        }
                    }
                }
            }
            Flow::Next
        }
        .boxed_local()
    }

    fn render(&self, template: &super::template::Template) -> Result<Value, Failure> {
        template
            .render(&self.facts.context())
            .map_err(|error| ("template", error))
    }

    fn render_text(&self, template: &super::template::Template) -> Result<String, Failure> {
        template
            .render_text(&self.facts.context())
            .map_err(|error| ("template", error))
    }

    fn render_json(&self, template: &super::template::JsonTemplate) -> Result<Value, Failure> {
        template
            .render(&self.facts.context())
            .map_err(|error| ("template", error))
    }

    async fn step(&mut self, step: &Step, position: usize) -> Result<Flow, Failure> {
        let env = self.shared.borrow().env.clone();
        match &step.body {
            StepBody::Delay { ms } => {
                let value = self.render(ms)?;
                let ms = match &value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(text) => text.trim().parse().ok(),
                    _ => None,
                }
                .filter(|ms| *ms <= 86_400_000)
                .ok_or((
                    "type",
                    format!("delay ms {value} is not an integer from 0 to 86400000"),
                ))?;
                let sleep = env.sleep(Duration::from_millis(ms));
                if let Either::Right(_) =
                    select(sleep, self.control.cancelled().boxed_local()).await
                {
                    return Ok(Flow::End(Outcome::Cancelled, None));
                }
            }
            StepBody::If {
                condition,
                then,
                otherwise,
            } => {
                let (result, _) = self.facts.evaluate(condition);
                self.trace.steps[position]["branch"] = json!(if result { "then" } else { "else" });
                let branch = if result { then } else { otherwise };
                return Ok(self.steps(branch).await);
            }
            StepBody::RunAction(run_action) => return self.run_action(run_action, position).await,
            StepBody::Set(set) => self.set(set).await?,
            StepBody::Emit(emit) => self.emit(emit).await?,
            StepBody::WsSend(send) => {
                let text = match &send.message {
                    WsMessage::Payload(payload) => self.render_json(payload)?.to_string(),
                    WsMessage::Text(text) => self.render_text(text)?,
                };
                env.send(&send.connection, text).await?;
            }
            StepBody::CreditsAdd { category, user } => {
                let category = self.render_text(category)?;
                let name = match user {
                    Some(user) => Some(self.render_text(user)?).filter(|name| !name.is_empty()),
                    None => self
                        .event_user()
                        .and_then(|user| user.display_name().map(str::to_owned)),
                };
                let name = name.ok_or((
                    "noUser",
                    "credits.add needs a user and the event has none".to_owned(),
                ))?;
                env.add_credit(category, name).await?;
            }
            StepBody::Log { message, level } => {
                let text = self.render_text(message)?;
                env.log(
                    *level,
                    format!("{} run {}: {text}", self.document.name, self.trace.run_id),
                );
            }
            StepBody::Stop { reason, error } => {
                return Ok(if *error {
                    Flow::End(
                        Outcome::Error,
                        Some(json!({"step": step.id, "code": "stop", "message": reason})),
                    )
                } else {
                    Flow::End(Outcome::Stopped, None)
                });
            }
        }
        Ok(Flow::Next)
    }

    fn event_user(&self) -> Option<User> {
        serde_json::from_value(self.facts.event["user"].clone()).ok()
    }

    /// The run's event as an `Event` (for calls, which see the caller's event unchanged).
    fn event(&self) -> Event {
        let facts = &self.facts.event;
        let mut event = Event::new(
            facts["source"].as_str().unwrap_or_default(),
            facts["type"].as_str().unwrap_or_default(),
            facts["data"].clone(),
        );
        if let Some(id) = facts["id"]
            .as_str()
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
        {
            event.id = id;
        }
        event.user = self.event_user();
        event.room = facts["room"].as_str().map(str::to_owned);
        event.hops = self.facts.hops;
        event
    }

    async fn run_action(&mut self, step: &RunAction, position: usize) -> Result<Flow, Failure> {
        if self.depth + 1 > MAX_DEPTH {
            return Err((
                "depth",
                format!("run_action calls nest at most {MAX_DEPTH} deep"),
            ));
        }
        let args = match self.render_json(&step.args)? {
            Value::Object(args) => args,
            other => return Err(("type", format!("run_action args {other} are not an object"))),
        };
        let origin = Origin {
            trigger: None,
            force: false,
            depth: self.depth + 1,
            parent: Some((self.trace.run_id, self.control.clone())),
            chain: Some(self.chain.clone()),
        };
        let event = self.event();
        let admitted = match core::call(
            &self.shared,
            Some(&step.action),
            Some(&step.action),
            args,
            &event,
            origin,
        ) {
            Ok(admitted) => admitted,
            Err(CallError::NotFound(name)) => {
                return Err(("notFound", format!("no callable document {name:?}")))
            }
            Err(CallError::Disabled(name)) => {
                return Err(("notFound", format!("{name:?} is disabled")))
            }
        };
        let (outcome, args) = match admitted {
            Admitted::Refused(Outcome::Budget) => {
                return Err((
                    "budget",
                    format!(
                        "{} was not started: {}",
                        step.action,
                        self.chain.runs_spent()
                    ),
                ))
            }
            Admitted::Refused(outcome) => (outcome, Map::new()),
            Admitted::Started { run_id, done } => {
                self.trace.steps[position]["childRunId"] = json!(run_id);
                if !step.wait {
                    return Ok(Flow::Next);
                }
                match select(done, self.control.cancelled().boxed_local()).await {
                    Either::Left((Ok(finished), _)) => finished,
                    Either::Left((Err(_), _)) => (Outcome::Cancelled, Map::new()),
                    Either::Right(_) => return Ok(Flow::End(Outcome::Cancelled, None)),
                }
            }
        };
        if let Some(into) = &step.into {
            self.facts.args.insert(
                into.clone(),
                json!({"outcome": outcome.name(), "args": args}),
            );
        }
        if outcome == Outcome::Error {
            return Err(("called", format!("{} ended in error", step.action)));
        }
        Ok(Flow::Next)
    }

    async fn set(&mut self, set: &Set) -> Result<(), Failure> {
        let env = self.shared.borrow().env.clone();
        let value = match &set.value {
            Some(template) => Some(self.render_json(template)?),
            None => None,
        };
        let user = self.event_user();
        let (key, current) = match set.scope {
            VarScope::Args => (None, self.facts.args.get(&set.name).cloned()),
            VarScope::Global => (
                Some(format!("g/{}", set.name)),
                env.variables("g/").get(&set.name).cloned(),
            ),
            VarScope::User => {
                let id = user
                    .as_ref()
                    .and_then(|user| user.id.clone())
                    .ok_or(("noUser", "user.* needs an event user".to_owned()))?;
                let prefix = format!(
                    "u/{}:{id}/",
                    normalise(self.facts.event["source"].as_str().unwrap_or_default())
                );
                (
                    Some(format!("{prefix}{}", set.name)),
                    env.variables(&prefix).get(&set.name).cloned(),
                )
            }
        };
        let new = apply(set.op, current, value)?;
        // Persisted variables only: they outlive the run, and every run reads them.
        if let (Some(_), Some(value)) = (&key, &new) {
            let limit = self.shared.borrow().limits.variable_bytes;
            let size = serde_json::to_vec(value).map_or(usize::MAX, |json| json.len());
            if size > limit {
                let scope = if set.scope == VarScope::Global {
                    "global"
                } else {
                    "user"
                };
                return Err((
                    "tooLarge",
                    format!(
                        "{scope}.{} would hold {size} bytes of JSON, more than limits.variable_bytes ({limit})",
                        set.name
                    ),
                ));
            }
        }
        match key {
            None => match new {
                Some(value) => {
                    self.facts.args.insert(set.name.clone(), value);
                }
                None => {
                    self.facts.args.remove(&set.name);
                }
            },
            Some(key) => {
                env.write_variable(&key, new.clone(), user.as_ref())?;
                env.flush().await?;
                let map = if set.scope == VarScope::Global {
                    &mut self.facts.global
                } else {
                    &mut self.facts.user
                };
                match new {
                    Some(value) => {
                        map.insert(set.name.clone(), value);
                    }
                    None => {
                        map.remove(&set.name);
                    }
                }
            }
        }
        Ok(())
    }

    async fn emit(&self, emit: &Emit) -> Result<(), Failure> {
        let env = self.shared.borrow().env.clone();
        let hops = self.facts.hops;
        if hops + 1 > MAX_HOPS {
            return Err((
                "loop",
                format!("the event would be more than {MAX_HOPS} hops from an outside event"),
            ));
        }
        let kind = self.render_text(&emit.kind)?;
        let source = self.render_text(&emit.source)?;
        if kind.trim().is_empty() || source.trim().is_empty() {
            return Err((
                "type",
                "an emitted event needs a non-empty source and type".into(),
            ));
        }
        let user = match self.render_json(&emit.user)? {
            Value::Null => None,
            value => Some(
                serde_json::from_value::<User>(value)
                    .map_err(|e| ("type", format!("user is not a user object: {e}")))?,
            ),
        };
        let room = match self.render_json(&emit.room)? {
            Value::Null => None,
            Value::String(room) if room.is_empty() => None,
            Value::String(room) => Some(room),
            other => return Err(("type", format!("room {other} is not a string"))),
        };
        let mut event = Event::new(source, kind, self.render_json(&emit.data)?);
        event.user = user;
        event.room = room;
        event.hops = hops + 1;
        if let Err((cut, reported)) = self.chain.publish() {
            let what = format!(
                "the {} event emitted by {} run {}",
                event.kind, self.document.name, self.trace.run_id
            );
            report_cut(&env, &cut, reported, &what);
            return Err(("budget", cut.to_string()));
        }
        self.shared
            .borrow_mut()
            .follow(event.id, self.chain.clone());
        env.publish(event).await
    }
}

/// The `set` operations (docs/rules.md §6.1).
pub fn apply(
    op: SetOp,
    current: Option<Value>,
    value: Option<Value>,
) -> Result<Option<Value>, Failure> {
    let value = value.unwrap_or(Value::Null);
    let type_error = |what: &str| ("type", format!("cannot {what}"));
    Ok(match op {
        SetOp::Set => Some(value),
        SetOp::Delete => None,
        SetOp::Add | SetOp::Sub => {
            let current = current.unwrap_or(Value::from(0));
            let (Value::Number(a), Value::Number(b)) = (&current, &value) else {
                return Err(type_error(&format!(
                    "add or subtract {value} and {current}: both must be numbers"
                )));
            };
            let sign = if op == SetOp::Add { 1 } else { -1 };
            match (a.as_i64(), b.as_i64()) {
                (Some(a), Some(b)) => Some(Value::from(a + sign * b)),
                _ => Some(json!(
                    a.as_f64().unwrap_or(0.0) + sign as f64 * b.as_f64().unwrap_or(0.0)
                )),
            }
        }
        SetOp::Append => match current {
            None => Some(Value::Array(vec![value])),
            Some(Value::Array(mut items)) => {
                items.push(value);
                Some(Value::Array(items))
            }
            Some(Value::String(text)) => match value {
                Value::String(more) => Some(Value::String(text + &more)),
                other => return Err(type_error(&format!("append {other} to a string"))),
            },
            Some(other) => return Err(type_error(&format!("append to {other}"))),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations_follow_the_spec() {
        assert_eq!(
            apply(SetOp::Add, None, Some(json!(1))).unwrap(),
            Some(json!(1))
        );
        assert_eq!(
            apply(SetOp::Add, Some(json!(2)), Some(json!(3))).unwrap(),
            Some(json!(5))
        );
        assert_eq!(
            apply(SetOp::Sub, Some(json!(2.5)), Some(json!(1))).unwrap(),
            Some(json!(1.5))
        );
        assert_eq!(
            apply(SetOp::Append, None, Some(json!("a"))).unwrap(),
            Some(json!(["a"]))
        );
        assert_eq!(
            apply(SetOp::Append, Some(json!("ab")), Some(json!("c"))).unwrap(),
            Some(json!("abc"))
        );
        assert_eq!(apply(SetOp::Delete, Some(json!(1)), None).unwrap(), None);
        assert_eq!(
            apply(SetOp::Add, Some(json!("x")), Some(json!(1)))
                .unwrap_err()
                .0,
            "type"
        );
        assert_eq!(
            apply(SetOp::Append, Some(json!(1)), Some(json!(1)))
                .unwrap_err()
                .0,
            "type"
        );
    }
}
