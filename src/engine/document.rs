//! The documents under `rules_dir` (rules.md §1, §6): their serde model and the checks that turn
//! a JSON file into a validated, compiled [`Action`].
//!
//! This build loads `action` documents with every step kind of the catalogue in the model; the
//! runner executes `emit`, `log`, `delay` and `stop`, and a document using another step kind is
//! refused at load with a clear reason rather than loaded and silently not run.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::template::{JsonTemplate, Template};

/// The only schema version this build reads.
pub const SCHEMA_VERSION: u64 = 1;

/// A validation error: the JSON pointer and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub pointer: String,
    pub reason: String,
}

impl Invalid {
    fn at(pointer: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// An `action` document as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAction {
    kind: String,
    schema_version: u64,
    id: String,
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    description: Option<String>,
    group: Option<String>,
    #[serde(default)]
    variables: Map<String, Value>,
    mode: Option<Mode>,
    max: Option<u32>,
    steps: Vec<Value>,
    #[serde(default)]
    tests: Vec<Value>,
}

fn yes() -> bool {
    true
}

/// What happens when a document is started while runs of it are active (rules.md §8).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Single,
    Restart,
    Queued,
    #[default]
    Parallel,
}

/// A loaded, validated action.
#[derive(Debug)]
pub struct Action {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub description: Option<String>,
    pub group: Option<String>,
    pub variables: Vec<(String, JsonTemplate)>,
    pub mode: Mode,
    pub max: u32,
    pub steps: Vec<Step>,
}

impl Action {
    /// Step objects, nested `then`/`else` steps included (`subaction_count`); this build has no
    /// step kind that nests.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }
}

/// One step with the fields every step has.
#[derive(Debug)]
pub struct Step {
    pub id: String,
    pub enabled: bool,
    pub continue_on_error: bool,
    pub body: StepBody,
}

/// What a step does.
#[derive(Debug)]
pub enum StepBody {
    Delay {
        ms: Template,
    },
    Emit(Box<Emit>),
    Log {
        message: Template,
        level: log::Level,
    },
    Stop {
        reason: String,
        error: bool,
    },
    WsSend(WsSend),
}

/// A `ws.send` step: one text frame on a named outbound connection.
#[derive(Debug)]
pub struct WsSend {
    /// The connection's name, always literal.
    pub connection: String,
    pub message: WsMessage,
}

/// What a `ws.send` step sends.
#[derive(Debug)]
pub enum WsMessage {
    /// JSON, sent compact.
    Payload(JsonTemplate),
    Text(Template),
}

/// An `emit` step: publishes a new event.
#[derive(Debug)]
pub struct Emit {
    pub kind: Template,
    pub source: Template,
    pub user: JsonTemplate,
    pub room: JsonTemplate,
    pub data: JsonTemplate,
}

impl Emit {
    /// The literal (source, type) of this step, for the Streamer.bot catalogue.
    pub fn literal_names(&self) -> Option<(String, String)> {
        match (&self.source, &self.kind) {
            (Template::Literal(source), Template::Literal(kind)) => {
                Some((source.clone(), kind.clone()))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelay {
    ms: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmit {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "default_source")]
    source: String,
    #[serde(default)]
    user: Value,
    #[serde(default)]
    room: Value,
    #[serde(default = "empty_object")]
    data: Value,
}

fn default_source() -> String {
    "switchboard".to_owned()
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    message: String,
    #[serde(default)]
    level: LogLevel,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWsSend {
    connection: String,
    payload: Option<Value>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStop {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    error: bool,
}

/// Step kinds of the catalogue that this build does not run yet (rules.md §6.1).
const LATER_STEP_KINDS: &[&str] = &["if", "run_action", "set", "credits.add"];

/// Whether `id` is a hyphenated UUID or a ULID (26 Crockford base-32 characters).
pub fn is_document_id(id: &str) -> bool {
    let ulid = id.len() == 26
        && id.chars().all(|c| {
            c.is_ascii_digit() || (c.is_ascii_uppercase() && !matches!(c, 'I' | 'L' | 'O' | 'U'))
        });
    ulid || (id.len() == 36 && id.contains('-') && uuid::Uuid::parse_str(id).is_ok())
}

/// Parses and checks an action document (everything but clashes with other documents).
pub fn parse_action(value: &Value) -> Result<Action, Invalid> {
    let raw: RawAction = serde_path_to_error::deserialize(value)
        .map_err(|error| Invalid::at(pointer(error.path()), error.inner().to_string()))?;
    if raw.kind != "action" {
        return Err(Invalid::at(
            "/kind",
            format!("expected `action`, found `{}`", raw.kind),
        ));
    }
    if raw.schema_version != SCHEMA_VERSION {
        return Err(Invalid::at(
            "/schemaVersion",
            format!("unsupported schemaVersion {}", raw.schema_version),
        ));
    }
    if !is_document_id(&raw.id) {
        return Err(Invalid::at(
            "/id",
            format!("`{}` is neither a hyphenated UUID nor a ULID", raw.id),
        ));
    }
    let name_length = raw.name.chars().count();
    if raw.name.trim().is_empty() || name_length > 100 {
        return Err(Invalid::at("/name", "a name has 1 to 100 characters"));
    }
    let mode = raw.mode.unwrap_or_default();
    if raw.max.is_some() && !matches!(mode, Mode::Queued | Mode::Parallel) {
        return Err(Invalid::at(
            "/max",
            "`max` is allowed only with mode `queued` or `parallel`",
        ));
    }
    if raw.max == Some(0) {
        return Err(Invalid::at("/max", "`max` is at least 1"));
    }
    if !raw.tests.is_empty() {
        return Err(Invalid::at(
            "/tests",
            "in-file tests need `switchboard rules test`, which this build does not have yet",
        ));
    }
    let mut variables = Vec::new();
    for (name, value) in &raw.variables {
        if !is_variable_name(name) {
            return Err(Invalid::at(
                format!("/variables/{name}"),
                "a variable name matches [A-Za-z_][A-Za-z0-9_]{0,63}",
            ));
        }
        let template = JsonTemplate::parse(value)
            .map_err(|(at, reason)| Invalid::at(format!("/variables/{name}{at}"), reason))?;
        variables.push((name.clone(), template));
    }
    if raw.steps.is_empty() {
        return Err(Invalid::at("/steps", "a document has at least one step"));
    }
    let steps = parse_steps(&raw.steps, "/steps")?;
    let mut ids = std::collections::HashSet::new();
    for step in &steps {
        if !ids.insert(step.id.clone()) {
            return Err(Invalid::at(
                "/steps",
                format!("step id `{}` is used twice", step.id),
            ));
        }
    }
    Ok(Action {
        id: raw.id,
        name: raw.name,
        enabled: raw.enabled,
        description: raw.description,
        group: raw.group,
        variables,
        mode,
        max: raw.max.unwrap_or(10),
        steps,
    })
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_steps(values: &[Value], at: &str) -> Result<Vec<Step>, Invalid> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| parse_step(value, &format!("{at}/{index}")))
        .collect()
}

fn parse_step(value: &Value, at: &str) -> Result<Step, Invalid> {
    let Value::Object(map) = value else {
        return Err(Invalid::at(at, "a step is an object"));
    };
    let mut rest = map.clone();
    let kind = match rest.remove("kind") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(Invalid::at(format!("{at}/kind"), "`kind` is a string")),
        None => return Err(Invalid::at(at, "missing field `kind`")),
    };
    let id = match rest.remove("id") {
        None => at.to_owned(),
        Some(Value::String(id)) => id,
        Some(_) => return Err(Invalid::at(format!("{at}/id"), "`id` is a string")),
    };
    let flag = |rest: &mut Map<String, Value>, key: &str, default: bool| match rest.remove(key) {
        None => Ok(default),
        Some(Value::Bool(flag)) => Ok(flag),
        Some(_) => Err(Invalid::at(
            format!("{at}/{key}"),
            format!("`{key}` is a boolean"),
        )),
    };
    let enabled = flag(&mut rest, "enabled", true)?;
    let continue_on_error = flag(&mut rest, "continueOnError", false)?;
    let fields = Value::Object(rest);
    let shape = |error: serde_json::Error| Invalid::at(at, error.to_string());
    let template = |field: &str, text: &str| {
        Template::parse(text).map_err(|reason| Invalid::at(format!("{at}/{field}"), reason))
    };
    let json = |field: &str, value: &Value| {
        JsonTemplate::parse(value)
            .map_err(|(pointer, reason)| Invalid::at(format!("{at}/{field}{pointer}"), reason))
    };
    let body = match kind.as_str() {
        "delay" => {
            let raw: RawDelay = serde_json::from_value(fields).map_err(shape)?;
            let ms = match &raw.ms {
                Value::Number(number) => match number.as_u64() {
                    Some(ms) if ms <= 86_400_000 => Template::Literal(ms.to_string()),
                    _ => return Err(Invalid::at(format!("{at}/ms"), "`ms` is an integer from 0 to 86400000")),
                },
                Value::String(text) if text.contains("{{") => template("ms", text)?,
                _ => return Err(Invalid::at(format!("{at}/ms"), "`ms` is an integer or a template giving one")),
            };
            StepBody::Delay { ms }
        }
        "emit" => {
            let raw: RawEmit = serde_json::from_value(fields).map_err(shape)?;
            if !matches!(raw.user, Value::Null | Value::Object(_)) {
                return Err(Invalid::at(format!("{at}/user"), "`user` is an object or null"));
            }
            if !matches!(raw.room, Value::Null | Value::String(_)) {
                return Err(Invalid::at(format!("{at}/room"), "`room` is a string or null"));
            }
            if raw.kind.trim().is_empty() {
                return Err(Invalid::at(format!("{at}/type"), "`type` is not empty"));
            }
            StepBody::Emit(Box::new(Emit {
                kind: template("type", &raw.kind)?,
                source: template("source", &raw.source)?,
                user: json("user", &raw.user)?,
                room: json("room", &raw.room)?,
                data: json("data", &raw.data)?,
            }))
        }
        "log" => {
            let raw: RawLog = serde_json::from_value(fields).map_err(shape)?;
            let level = match raw.level {
                LogLevel::Error => log::Level::Error,
                LogLevel::Warn => log::Level::Warn,
                LogLevel::Info => log::Level::Info,
                LogLevel::Debug => log::Level::Debug,
            };
            StepBody::Log {
                message: template("message", &raw.message)?,
                level,
            }
        }
        "stop" => {
            let raw: RawStop = serde_json::from_value(fields).map_err(shape)?;
            StepBody::Stop {
                reason: raw.reason,
                error: raw.error,
            }
        }
        "ws.send" => {
            let raw: RawWsSend = serde_json::from_value(fields).map_err(shape)?;
            if raw.connection.trim().is_empty() {
                return Err(Invalid::at(format!("{at}/connection"), "`connection` names an outbound connection"));
            }
            let message = match (raw.payload, raw.text) {
                (Some(payload), None) => WsMessage::Payload(json("payload", &payload)?),
                (None, Some(text)) => WsMessage::Text(template("text", &text)?),
                _ => return Err(Invalid::at(at, "a `ws.send` step has exactly one of `payload` and `text`")),
            };
            StepBody::WsSend(WsSend {
                connection: raw.connection,
                message,
            })
        }
        later if LATER_STEP_KINDS.contains(&later) => {
            return Err(Invalid::at(
                format!("{at}/kind"),
                format!("step kind `{later}` is not supported by this build yet (it comes with the rule engine)"),
            ))
        }
        other => {
            return Err(Invalid::at(
                format!("{at}/kind"),
                format!("unknown step kind `{other}`, expected one of `delay`, `if`, `run_action`, `set`, `emit`, `ws.send`, `credits.add`, `log`, `stop`"),
            ))
        }
    };
    Ok(Step {
        id,
        enabled,
        continue_on_error,
        body,
    })
}

/// A serde path as a JSON pointer (`steps[0].kind` → `/steps/0/kind`).
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("/{index}")),
            Segment::Map { key } => Some(format!("/{}", key.replace('~', "~0").replace('/', "~1"))),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(steps: Value) -> Value {
        json!({"kind": "action", "schemaVersion": 1, "id": "01JC1XMWCEJZ05XHT5GMEJ146S",
               "name": "Celebrate", "group": "Game", "steps": steps})
    }

    #[test]
    fn an_action_with_emit_and_log_loads() {
        let loaded = parse_action(&action(json!([
            {"kind": "log", "message": "{{ boss }} down"},
            {"id": "shout", "kind": "emit", "source": "general", "type": "Custom", "data": {"boss": "{{ boss }}"}}
        ])))
        .unwrap();
        assert_eq!(loaded.step_count(), 2);
        assert_eq!(loaded.steps[0].id, "/steps/0");
        assert_eq!(loaded.steps[1].id, "shout");
        assert!(loaded.enabled);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_pointer() {
        let mut document = action(json!([{"kind": "log", "message": "x"}]));
        document["colour"] = json!("red");
        let error = parse_action(&document).unwrap_err();
        assert!(error.reason.contains("unknown field `colour`"), "{error:?}");
        let error = parse_action(&action(
            json!([{"kind": "log", "message": "x", "loud": true}]),
        ))
        .unwrap_err();
        assert_eq!(error.pointer, "/steps/0");
        assert!(error.reason.contains("unknown field `loud`"), "{error:?}");
    }

    #[test]
    fn bad_templates_and_kinds_are_refused() {
        let error = parse_action(&action(json!([{"kind": "log", "message": "{{ x"}]))).unwrap_err();
        assert_eq!(error.pointer, "/steps/0/message");
        let error = parse_action(&action(json!([{"kind": "dance"}]))).unwrap_err();
        assert_eq!(error.pointer, "/steps/0/kind");
        let error = parse_action(&action(
            json!([{"kind": "set", "var": "args.x", "value": 1}]),
        ))
        .unwrap_err();
        assert!(
            error.reason.contains("not supported by this build yet"),
            "{error:?}"
        );
    }

    #[test]
    fn ws_send_takes_exactly_one_of_payload_and_text() {
        let loaded = parse_action(&action(
            json!([{"kind": "ws.send", "connection": "mygame", "payload": {"cmd": "{{ x }}"}}]),
        ))
        .unwrap();
        assert!(
            matches!(&loaded.steps[0].body, StepBody::WsSend(send) if send.connection == "mygame")
        );
        for bad in [
            json!({"kind": "ws.send", "connection": "c"}),
            json!({"kind": "ws.send", "connection": "c", "text": "a", "payload": {}}),
        ] {
            let error = parse_action(&action(json!([bad]))).unwrap_err();
            assert_eq!(
                error.reason,
                "a `ws.send` step has exactly one of `payload` and `text`"
            );
        }
    }

    #[test]
    fn schema_versions_and_ids_are_checked() {
        let mut document = action(json!([{"kind": "log", "message": "x"}]));
        document["schemaVersion"] = json!(2);
        assert_eq!(
            parse_action(&document).unwrap_err().reason,
            "unsupported schemaVersion 2"
        );
        document["schemaVersion"] = json!(1);
        document["id"] = json!("not-an-id");
        assert_eq!(parse_action(&document).unwrap_err().pointer, "/id");
        assert!(is_document_id("5d2f7a1e-3b8c-4e6a-9f0d-2c4b6e8a1f3d"));
    }
}
