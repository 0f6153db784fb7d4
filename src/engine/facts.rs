//! What conditions and templates see during a run (docs/rules.md §2): the event, the run's args, the
//! persisted globals and the event user's variables, plus `run` and the time for templates.
//! Condition evaluation lives here because it reads facts and writes captures into args.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::condition::{compare, Condition, Fact, Leaf, Op, Root};
use super::sandbox;
use super::template::JsonTemplate;
use crate::event::format_time;

/// The facts of one run.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The event as JSON, every field present, the user with its `roles`; shared by the
    /// candidate rules of one event.
    pub event: Arc<Value>,
    pub args: Map<String, Value>,
    pub global: Map<String, Value>,
    pub user: Map<String, Value>,
    /// `run` of templates: id, name, kind, dryRun.
    pub run: Value,
    pub now: DateTime<Utc>,
    /// How many `emit` hops the event is from an outside event.
    pub hops: u8,
}

impl Facts {
    /// The value of a fact; `None` is missing.
    pub fn resolve(&self, fact: &Fact) -> Option<Value> {
        match fact {
            Fact::Dotted { root, path } => {
                let mut current = match root {
                    Root::Event => self.event.as_ref(),
                    Root::Args => return walk_map(&self.args, path),
                    Root::Global => return walk_map(&self.global, path),
                    Root::User => return walk_map(&self.user, path),
                };
                for segment in path {
                    current = step(current, segment)?;
                }
                Some(current.clone())
            }
            Fact::JsonPath(_) => super::condition::resolve_json_path(fact, &self.event),
        }
    }

    /// The template context: the facts, with every arg also as a bare name (facts win; an arg
    /// whose name starts like the template sandbox's own functions stays `args.<name>` only).
    pub fn context(&self) -> Value {
        let mut context: Map<String, Value> = self
            .args
            .iter()
            .filter(|(name, _)| !name.starts_with(sandbox::RESERVED_PREFIX))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        context.insert("event".into(), self.event.as_ref().clone());
        context.insert("args".into(), Value::Object(self.args.clone()));
        context.insert("global".into(), Value::Object(self.global.clone()));
        context.insert("user".into(), Value::Object(self.user.clone()));
        context.insert("run".into(), self.run.clone());
        context.insert("now".into(), Value::String(format_time(&self.now)));
        context.insert("nowMs".into(), Value::from(self.now.timestamp_millis()));
        Value::Object(context)
    }

    /// Sets `args.match` and the named groups of a regex match (docs/rules.md §4.3).
    pub fn capture(&mut self, regex: &regex::Regex, captures: &regex::Captures<'_>) {
        let groups: Vec<Value> = captures
            .iter()
            .map(|group| group.map_or(Value::Null, |m| Value::String(m.as_str().to_owned())))
            .collect();
        self.args.insert("match".into(), Value::Array(groups));
        for name in regex.capture_names().flatten() {
            let value = captures
                .name(name)
                .map_or(Value::Null, |m| Value::String(m.as_str().to_owned()));
            self.args.insert(name.to_owned(), value);
        }
    }

    /// Evaluates `condition`, returning its result and its trace node.
    pub fn evaluate(&mut self, condition: &Condition) -> (bool, Value) {
        match condition {
            Condition::All(items) => self.evaluate_list("all", items, true),
            Condition::Any(items) => self.evaluate_list("any", items, false),
            Condition::Not(inner) => {
                let (result, trace) = self.evaluate(inner);
                (!result, json!({"result": !result, "not": trace}))
            }
            Condition::Leaf(leaf) => self.evaluate_leaf(leaf),
        }
    }

    /// `all` (stops at the first false) or `any` (stops at the first true).
    fn evaluate_list(&mut self, key: &str, items: &[Condition], all: bool) -> (bool, Value) {
        let mut traces = Vec::new();
        let mut result = all;
        for item in items {
            if result != all {
                traces.push(skipped(item));
                continue;
            }
            let (value, trace) = self.evaluate(item);
            traces.push(trace);
            if value != all {
                result = !all;
            }
        }
        (result, json!({"result": result, key: traces}))
    }

    fn evaluate_leaf(&mut self, leaf: &Leaf) -> (bool, Value) {
        let mut trace = leaf.written.clone();
        let actual = self.resolve(&leaf.fact);
        if let Some(actual) = &actual {
            trace.insert("actual".into(), actual.clone());
        }
        let actual = actual.unwrap_or(Value::Null);
        let result = if leaf.op == Op::Matches {
            let regex = leaf
                .regex
                .as_ref()
                .expect("matches leaves compile their regex at load");
            let text = match &actual {
                Value::Null => None,
                Value::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            };
            match text
                .as_deref()
                .map(super::condition::regex_input)
                .and_then(|text| regex.captures(text).map(|c| (text, c)))
            {
                Some((_, captures)) => {
                    self.capture(regex, &captures);
                    true
                }
                None => false,
            }
        } else {
            let value = match &leaf.value {
                None => Ok(Value::Null),
                Some(JsonTemplate::Value(value)) => Ok(value.clone()),
                Some(template) => template.render(&self.context()),
            };
            match value {
                Ok(value) => {
                    trace.insert("value".into(), value.clone());
                    compare(leaf.op, &actual, &value, leaf.ci)
                }
                Err(error) => {
                    trace.insert("error".into(), Value::String(error));
                    false
                }
            }
        };
        trace.insert("result".into(), Value::Bool(result));
        (result, Value::Object(trace))
    }
}

fn step<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

fn walk_map(map: &Map<String, Value>, path: &[String]) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    let mut current = map.get(first)?;
    for segment in rest {
        current = step(current, segment)?;
    }
    Some(current.clone())
}

/// The trace of a node that short-circuit left out.
fn skipped(condition: &Condition) -> Value {
    match condition {
        Condition::Leaf(leaf) => {
            let mut trace = leaf.written.clone();
            trace.insert("skipped".into(), Value::Bool(true));
            Value::Object(trace)
        }
        Condition::All(_) => json!({"skipped": true, "all": []}),
        Condition::Any(_) => json!({"skipped": true, "any": []}),
        Condition::Not(_) => json!({"skipped": true, "not": {}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(event: Value, args: Value) -> Facts {
        Facts {
            event: Arc::new(event),
            args: args.as_object().unwrap().clone(),
            global: Map::new(),
            user: Map::new(),
            run: json!({}),
            now: Utc::now(),
            hops: 0,
        }
    }

    #[test]
    fn any_short_circuits_and_traces_skipped_leaves() {
        let condition = Condition::parse(
            &json!({"any": [
            {"fact": "event.user.roles", "op": "contains", "value": "broadcaster"},
            {"fact": "event.user.roles", "op": "contains", "value": "moderator"},
            {"fact": "event.user.roles", "op": "contains", "value": "vip"}]}),
            "",
        )
        .unwrap();
        let mut facts = facts(json!({"user": {"roles": ["moderator"]}}), json!({}));
        let (result, trace) = facts.evaluate(&condition);
        assert!(result);
        assert_eq!(trace["any"][0]["result"], false);
        assert_eq!(trace["any"][0]["actual"], json!(["moderator"]));
        assert_eq!(trace["any"][1]["result"], true);
        assert_eq!(trace["any"][2]["skipped"], true);
    }

    #[test]
    fn matches_captures_into_args() {
        let condition = Condition::parse(
            &json!({"fact": "args.text", "op": "matches", "value": "(?P<boss>\\w+) (\\d+)"}),
            "",
        )
        .unwrap();
        let mut facts = facts(json!({}), json!({"text": "dragon 42"}));
        assert!(facts.evaluate(&condition).0);
        assert_eq!(facts.args["match"], json!(["dragon 42", "dragon", "42"]));
        assert_eq!(facts.args["boss"], "dragon");
    }

    #[test]
    fn dotted_facts_walk_objects_and_arrays() {
        let facts = facts(
            json!({"data": {"items": [{"name": "a"}]}}),
            json!({"n": {"deep": 1}}),
        );
        let fact = super::super::condition::parse_fact("event.data.items.0.name").unwrap();
        assert_eq!(facts.resolve(&fact), Some(json!("a")));
        let fact = super::super::condition::parse_fact("args.n.deep").unwrap();
        assert_eq!(facts.resolve(&fact), Some(json!(1)));
        let fact = super::super::condition::parse_fact("args.missing").unwrap();
        assert_eq!(facts.resolve(&fact), None);
    }

    #[test]
    fn values_are_templates_and_errors_make_the_leaf_false() {
        let condition = Condition::parse(
            &json!({"fact": "args.n", "op": "gte", "value": "{{ limit * 2 }}"}),
            "",
        )
        .unwrap();
        let mut facts = facts(json!({}), json!({"n": 10, "limit": 5}));
        let (result, trace) = facts.evaluate(&condition);
        assert!(result);
        assert_eq!(trace["value"], 10);
        let failing = Condition::parse(
            &json!({"fact": "args.n", "op": "eq", "value": "{{ 1 + \"a\" }}"}),
            "",
        )
        .unwrap();
        let (result, trace) = facts.evaluate(&failing);
        assert!(!result);
        assert!(trace["error"].is_string());
    }
}
