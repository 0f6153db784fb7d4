//! Conditions (docs/rules.md §4) and fact paths (§2): parsed and checked at load, evaluated against a
//! run's facts with a trace of every node.

use std::panic::{catch_unwind, AssertUnwindSafe};

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use super::document::Invalid;
use super::template::JsonTemplate;

/// Where a dotted fact path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Event,
    Args,
    Global,
    User,
}

/// A fact: a dotted path into the facts, or a JSONPath into the event.
#[derive(Debug, Clone)]
pub enum Fact {
    Dotted { root: Root, path: Vec<String> },
    JsonPath(jsonpath_lib::Compiled),
}

/// The comparison of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    In,
    NotIn,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Matches,
    Exists,
    NotExists,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "between" => Op::Between,
            "in" => Op::In,
            "notIn" => Op::NotIn,
            "contains" => Op::Contains,
            "notContains" => Op::NotContains,
            "startsWith" => Op::StartsWith,
            "endsWith" => Op::EndsWith,
            "matches" => Op::Matches,
            "exists" => Op::Exists,
            "notExists" => Op::NotExists,
            _ => return None,
        })
    }
}

/// One comparison.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The leaf as written, for traces.
    pub written: Map<String, Value>,
    pub fact: Fact,
    pub op: Op,
    pub value: Option<JsonTemplate>,
    pub regex: Option<Regex>,
    pub ci: bool,
}

/// A condition tree.
#[derive(Debug, Clone)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Leaf(Box<Leaf>),
}

/// The most a rule's regex may take once compiled; a larger one (`a{100000}`) is refused at
/// load, since matching costs its size times the input's.
pub const MAX_REGEX_BYTES: usize = 64 * 1024;
/// How much of a value `matches` looks at.
pub const MAX_REGEX_INPUT: usize = 64 * 1024;

/// Compiles a rule's regex within [`MAX_REGEX_BYTES`].
pub fn compile_regex(pattern: &str, case_insensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(MAX_REGEX_BYTES)
        .dfa_size_limit(MAX_REGEX_BYTES * 4)
        .build()
        .map_err(|error| error.to_string())
}

/// The first [`MAX_REGEX_INPUT`] bytes of `text` (cut at a character boundary).
pub fn regex_input(text: &str) -> &str {
    if text.len() <= MAX_REGEX_INPUT {
        return text;
    }
    let mut end = MAX_REGEX_INPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Parses a fact path (`event.data.x`, `args.target`, `$.data.items[0]`).
pub fn parse_fact(text: &str) -> Result<Fact, String> {
    if text.starts_with('$') {
        return crate::jsonpath::compile_json_path(text).map(Fact::JsonPath);
    }
    let mut segments = text.split('.');
    let root = match segments.next() {
        Some("event") => Root::Event,
        Some("args") => Root::Args,
        Some("global") => Root::Global,
        Some("user") => Root::User,
        _ => {
            return Err(format!(
                "fact {text:?} must start with event, args, global, user or $"
            ))
        }
    };
    let path: Vec<String> = segments.map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("fact {text:?} has an empty segment"));
    }
    Ok(Fact::Dotted { root, path })
}

impl Condition {
    /// Parses a condition at JSON pointer `at`.
    pub fn parse(value: &Value, at: &str) -> Result<Condition, Invalid> {
        let invalid = |pointer: String, reason: String| Invalid { pointer, reason };
        let Value::Object(map) = value else {
            return Err(invalid(at.into(), "a condition is an object".into()));
        };
        let forms = ["all", "any", "not", "fact"]
            .iter()
            .filter(|key| map.contains_key(**key))
            .count();
        if forms != 1 {
            return Err(invalid(
                at.into(),
                "a condition has exactly one of `all`, `any`, `not` and `fact`".into(),
            ));
        }
        let children = |key: &str| -> Result<Vec<Condition>, Invalid> {
            if map.len() != 1 {
                return Err(invalid(
                    at.into(),
                    format!("`{key}` stands alone in its object"),
                ));
            }
            let items = map[key].as_array().ok_or_else(|| {
                invalid(
                    format!("{at}/{key}"),
                    format!("`{key}` is an array of conditions"),
                )
            })?;
            items
                .iter()
                .enumerate()
                .map(|(index, item)| Condition::parse(item, &format!("{at}/{key}/{index}")))
                .collect()
        };
        if map.contains_key("all") {
            return Ok(Condition::All(children("all")?));
        }
        if map.contains_key("any") {
            return Ok(Condition::Any(children("any")?));
        }
        if map.contains_key("not") {
            if map.len() != 1 {
                return Err(invalid(
                    at.into(),
                    "`not` stands alone in its object".into(),
                ));
            }
            return Ok(Condition::Not(Box::new(Condition::parse(
                &map["not"],
                &format!("{at}/not"),
            )?)));
        }
        for key in map.keys() {
            if !["fact", "op", "value", "ci"].contains(&key.as_str()) {
                return Err(invalid(
                    at.into(),
                    format!("unknown field `{key}`, expected `fact`, `op`, `value` or `ci`"),
                ));
            }
        }
        let fact_text = map["fact"]
            .as_str()
            .ok_or_else(|| invalid(format!("{at}/fact"), "`fact` is a string".into()))?;
        let fact = parse_fact(fact_text).map_err(|reason| invalid(format!("{at}/fact"), reason))?;
        let op_name = map
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at}/op"), "missing field `op`".into()))?;
        let op = Op::parse(op_name)
            .ok_or_else(|| invalid(format!("{at}/op"), format!("unknown operator `{op_name}`")))?;
        let ci = match map.get("ci") {
            None => false,
            Some(Value::Bool(ci)) => *ci,
            Some(_) => return Err(invalid(format!("{at}/ci"), "`ci` is a boolean".into())),
        };
        let value = map.get("value");
        let mut regex = None;
        let template = match (op, value) {
            (Op::Exists | Op::NotExists, Some(_)) => {
                return Err(invalid(
                    format!("{at}/value"),
                    format!("`{op_name}` takes no value"),
                ))
            }
            (Op::Exists | Op::NotExists, None) => None,
            (_, None) => {
                return Err(invalid(
                    format!("{at}/value"),
                    "missing field `value`".into(),
                ))
            }
            (Op::Matches, Some(value)) => {
                let pattern = value.as_str().ok_or_else(|| {
                    invalid(
                        format!("{at}/value"),
                        "`matches` takes a regex string".into(),
                    )
                })?;
                regex = Some(
                    compile_regex(pattern, ci)
                        .map_err(|error| invalid(format!("{at}/value"), error))?,
                );
                None
            }
            (Op::Between, Some(value)) if value.as_array().is_none_or(|pair| pair.len() != 2) => {
                return Err(invalid(
                    format!("{at}/value"),
                    "`between` takes [low, high]".into(),
                ))
            }
            (Op::In | Op::NotIn, Some(value)) if !value.is_array() && !value.is_string() => {
                return Err(invalid(
                    format!("{at}/value"),
                    format!("`{op_name}` takes an array"),
                ))
            }
            (_, Some(value)) => Some(
                JsonTemplate::parse(value)
                    .map_err(|(pointer, reason)| invalid(format!("{at}/value{pointer}"), reason))?,
            ),
        };
        Ok(Condition::Leaf(Box::new(Leaf {
            written: map.clone(),
            fact,
            op,
            value: template,
            regex,
            ci,
        })))
    }

    /// Every JSONPath-free check is done; calls `visit` on each leaf (for validation walks).
    pub fn leaves<'a>(&'a self, visit: &mut dyn FnMut(&'a Leaf)) {
        match self {
            Condition::All(items) | Condition::Any(items) => {
                items.iter().for_each(|item| item.leaves(visit))
            }
            Condition::Not(inner) => inner.leaves(visit),
            Condition::Leaf(leaf) => visit(leaf),
        }
    }
}

/// Evaluates a JSONPath fact against the event: no result is missing, one is that value,
/// several form an array.
pub fn resolve_json_path(fact: &Fact, event: &Value) -> Option<Value> {
    let Fact::JsonPath(compiled) = fact else {
        return None;
    };
    let found = catch_unwind(AssertUnwindSafe(|| compiled.select(event)))
        .ok()?
        .ok()?;
    match found.len() {
        0 => None,
        1 => Some(found[0].clone()),
        _ => Some(Value::Array(found.into_iter().cloned().collect())),
    }
}

fn numeric(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn lower(value: &Value, ci: bool) -> Value {
    match value {
        Value::String(text) if ci => Value::String(text.to_lowercase()),
        Value::Array(items) if ci => {
            Value::Array(items.iter().map(|item| lower(item, ci)).collect())
        }
        other => other.clone(),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `eq` of docs/rules.md §4.2: numbers numerically (integers exactly), else JSON equality.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            match (numeric(a), numeric(b)) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
        }
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

/// Compares `actual` (missing is `null`) with the rendered `value`.
pub fn compare(op: Op, actual: &Value, value: &Value, ci: bool) -> bool {
    use std::cmp::Ordering::*;
    let actual = lower(actual, ci);
    let value = lower(value, ci);
    match op {
        Op::Eq => equal(&actual, &value),
        Op::Ne => !equal(&actual, &value),
        Op::Gt => order(&actual, &value) == Some(Greater),
        Op::Gte => matches!(order(&actual, &value), Some(Greater | Equal)),
        Op::Lt => order(&actual, &value) == Some(Less),
        Op::Lte => matches!(order(&actual, &value), Some(Less | Equal)),
        Op::Between => match value.as_array().map(Vec::as_slice) {
            Some([low, high]) => {
                matches!(order(&actual, low), Some(Greater | Equal))
                    && matches!(order(&actual, high), Some(Less | Equal))
            }
            _ => false,
        },
        Op::In => value
            .as_array()
            .is_some_and(|items| items.iter().any(|item| equal(&actual, item))),
        Op::NotIn => !value
            .as_array()
            .is_some_and(|items| items.iter().any(|item| equal(&actual, item))),
        Op::Contains => contains(&actual, &value),
        Op::NotContains => !contains(&actual, &value),
        Op::StartsWith => !actual.is_null() && text_of(&actual).starts_with(&text_of(&value)),
        Op::EndsWith => !actual.is_null() && text_of(&actual).ends_with(&text_of(&value)),
        Op::Exists => !actual.is_null(),
        Op::NotExists => actual.is_null(),
        Op::Matches => false,
    }
}

fn contains(actual: &Value, value: &Value) -> bool {
    match actual {
        Value::String(text) => {
            value.as_str().is_some_and(|needle| text.contains(needle))
                || (!value.is_string() && !value.is_null() && text.contains(&text_of(value)))
        }
        Value::Array(items) => items.iter().any(|item| equal(item, value)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonpath::compile_json_path;
    use serde_json::json;

    fn leaf(condition: Value) -> Leaf {
        match Condition::parse(&condition, "").unwrap() {
            Condition::Leaf(leaf) => *leaf,
            other => panic!("not a leaf: {other:?}"),
        }
    }

    #[test]
    fn operators_compare_as_the_spec_says() {
        assert!(compare(Op::Eq, &json!(150), &json!("150"), false));
        assert!(!compare(Op::Eq, &json!("150"), &json!("150.0"), false));
        assert!(compare(Op::Gt, &json!("15"), &json!("2"), false));
        assert!(compare(Op::Lt, &json!("a"), &json!("b"), false));
        assert!(!compare(Op::Gt, &json!(null), &json!(1), false));
        assert!(compare(Op::Between, &json!(5), &json!([1, 10]), false));
        assert!(compare(Op::In, &json!("b"), &json!(["a", "b"]), false));
        assert!(compare(
            Op::Contains,
            &json!(["moderator"]),
            &json!("moderator"),
            false
        ));
        assert!(compare(
            Op::Contains,
            &json!("Hello World"),
            &json!("world"),
            true
        ));
        assert!(compare(Op::NotContains, &json!(null), &json!("x"), false));
        assert!(compare(Op::Eq, &json!(null), &json!(null), false));
        assert!(compare(Op::StartsWith, &json!(1234), &json!("12"), false));
        assert!(compare(Op::Eq, &json!("TWITCH"), &json!("twitch"), true));
    }

    #[test]
    fn facts_resolve_by_json_path() {
        let event =
            json!({"data": {"items": [{"name": "a", "price": 9}, {"name": "b", "price": 2}]}});
        let fact = parse_fact("$.data.items[?(@.price > 5)].name").unwrap();
        assert_eq!(resolve_json_path(&fact, &event), Some(json!("a")));
        let fact = parse_fact("$.data.items[*].name").unwrap();
        assert_eq!(resolve_json_path(&fact, &event), Some(json!(["a", "b"])));
        assert_eq!(
            resolve_json_path(&parse_fact("$.data.nothing").unwrap(), &event),
            None
        );
        assert!(parse_fact("nope.x").is_err());
    }

    #[test]
    fn a_json_path_that_panics_jsonpath_lib_is_refused_at_load() {
        assert!(compile_json_path("$.a[?(@.b == $.c)]").is_err());
        assert!(compile_json_path("$.data[").is_err());
    }

    #[test]
    fn malformed_conditions_are_refused_with_a_pointer() {
        let error = Condition::parse(
            &json!({"all": [{"fact": "args.x", "op": "nope", "value": 1}]}),
            "/conditions",
        )
        .unwrap_err();
        assert_eq!(error.pointer, "/conditions/all/0/op");
        let error = Condition::parse(&json!({"fact": "args.x", "op": "exists", "value": 1}), "")
            .unwrap_err();
        assert_eq!(error.pointer, "/value");
        let error = Condition::parse(
            &json!({"fact": "args.x", "op": "matches", "value": "("}),
            "",
        )
        .unwrap_err();
        assert_eq!(error.pointer, "/value");
        let error = Condition::parse(&json!({"all": [], "any": []}), "").unwrap_err();
        assert!(error.reason.contains("exactly one"));
        assert!(
            leaf(json!({"fact": "args.x", "op": "matches", "value": "^a", "ci": true}))
                .regex
                .unwrap()
                .is_match("ABC")
        );
    }
}
