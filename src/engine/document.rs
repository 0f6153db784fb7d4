//! The documents under `rules_dir` (docs/rules.md §1, §3, §6, §7, §8): their serde model and the
//! checks that turn a JSON file into a validated, compiled [`Document`] (a rule or an action).
//! Checks that span documents (unique ids and names, `run_action` targets) are the loader's.

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::condition::Condition;
use super::template::{JsonTemplate, Template};
use crate::event::normalise;

/// The only schema version this build reads.
pub const SCHEMA_VERSION: u64 = 1;

/// A validation error: the JSON pointer and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub pointer: String,
    pub reason: String,
}

impl Invalid {
    pub fn at(pointer: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// A rule or action document as written; rule-only fields are refused on actions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDocument {
    kind: Kind,
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
    triggers: Option<Vec<Value>>,
    conditions: Option<Value>,
    limits: Option<RawLimits>,
}

fn yes() -> bool {
    true
}

/// Which kind a document is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Rule,
    Action,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rule => "rule",
            Kind::Action => "action",
        }
    }
}

/// What happens when a document is started while runs of it are active (docs/rules.md §8).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Single,
    Restart,
    Queued,
    #[default]
    Parallel,
}

/// A loaded, validated document.
#[derive(Debug)]
pub struct Document {
    pub kind: Kind,
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub description: Option<String>,
    pub group: Option<String>,
    pub variables: Vec<(String, JsonTemplate)>,
    pub mode: Mode,
    pub max: u32,
    pub steps: Vec<Step>,
    pub tests: Vec<Value>,
    /// Rules only (empty for actions).
    pub triggers: Vec<Trigger>,
    pub conditions: Option<Condition>,
    pub limits: Limits,
}

impl Document {
    /// Step objects, nested `then`/`else` steps included (`subaction_count`).
    pub fn step_count(&self) -> usize {
        count_steps(&self.steps)
    }

    /// The call trigger of a rule, if it has one.
    pub fn call_trigger(&self) -> Option<&Trigger> {
        self.triggers
            .iter()
            .find(|trigger| matches!(trigger.form, TriggerForm::Call))
    }

    /// Whether `DoAction` and `run_action` can call it (an action, or a rule with a call trigger).
    pub fn is_callable(&self) -> bool {
        self.kind == Kind::Action || self.call_trigger().is_some()
    }

    /// Whether a call may run it now: enabled, and for a rule its call trigger too.
    pub fn callable_enabled(&self) -> bool {
        self.enabled && self.call_trigger().is_none_or(|trigger| trigger.enabled)
    }
}

fn count_steps(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|step| match &step.body {
            StepBody::If {
                then, otherwise, ..
            } => 1 + count_steps(then) + count_steps(otherwise),
            _ => 1,
        })
        .sum()
}

/// One trigger of a rule.
#[derive(Debug)]
pub struct Trigger {
    pub id: String,
    /// `on` as written.
    pub on: String,
    pub enabled: bool,
    /// Normalised; empty accepts every source.
    pub sources: Vec<String>,
    pub form: TriggerForm,
    pub condition: Option<Condition>,
}

/// What a trigger matches.
#[derive(Debug)]
pub enum TriggerForm {
    /// Events of one normalised type; `streak` only for `gift`.
    Event {
        kind: String,
        streak: Streak,
    },
    Command(Command),
    Call,
}

/// Which gift-streak updates match (docs/rules.md §3.4).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Streak {
    #[default]
    Final,
    Every,
}

/// A chat command trigger (docs/rules.md §3.2).
#[derive(Debug)]
pub struct Command {
    /// The names as written, with a compiled pattern each.
    pub names: Vec<(String, Regex)>,
    pub matching: CommandMatch,
    pub case_sensitive: bool,
    /// Normalised event types read as chat messages.
    pub types: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CommandMatch {
    #[default]
    Start,
    Exact,
    Anywhere,
    Regex,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    id: Option<String>,
    on: String,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(rename = "where")]
    condition: Option<Value>,
    command: Option<RawCommand>,
    streak: Option<Streak>,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCommand {
    names: Vec<String>,
    #[serde(default, rename = "match")]
    matching: CommandMatch,
    #[serde(default)]
    case_sensitive: bool,
    types: Option<Vec<String>>,
}

/// The default event types a command reads as chat messages.
pub const CHAT_TYPES: &[&str] = &["chat", "ChatMessage", "message", "messageCreate"];

/// Cooldowns and rate limits (docs/rules.md §7).
#[derive(Debug, Default)]
pub struct Limits {
    pub cooldowns: Vec<Limit>,
    pub rate_limits: Vec<Limit>,
}

/// The most runs one document may have running and waiting (`max`).
pub const MAX_RUNS: u32 = 1000;

/// One cooldown (`max` absent) or rate limit.
#[derive(Debug)]
pub struct Limit {
    pub scope: Scope,
    pub key: Option<Template>,
    /// Cooldown seconds, or the rate limit's window.
    pub seconds: f64,
    pub max: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Global,
    User,
    Key,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::User => "user",
            Scope::Key => "key",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimits {
    #[serde(default)]
    cooldowns: Vec<RawCooldown>,
    #[serde(default)]
    rate_limits: Vec<RawRateLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCooldown {
    scope: Scope,
    key: Option<String>,
    seconds: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRateLimit {
    scope: Scope,
    key: Option<String>,
    max: u32,
    window_seconds: f64,
}

/// One step with the fields every step has.
#[derive(Debug)]
pub struct Step {
    pub id: String,
    /// The step's JSON pointer in its document.
    pub path: String,
    pub kind: &'static str,
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
    If {
        condition: Condition,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    RunAction(Box<RunAction>),
    Set(Box<Set>),
    Emit(Box<Emit>),
    WsSend(WsSend),
    CreditsAdd {
        category: Template,
        user: Option<Template>,
    },
    Log {
        message: Template,
        level: log::Level,
    },
    Stop {
        reason: String,
        error: bool,
    },
}

/// A `run_action` step.
#[derive(Debug)]
pub struct RunAction {
    /// The target's id or name, literal.
    pub action: String,
    pub args: JsonTemplate,
    pub wait: bool,
    pub into: Option<String>,
}

/// Where a `set` step writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarScope {
    Args,
    Global,
    User,
}

/// How a `set` step changes its variable.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SetOp {
    #[default]
    Set,
    Add,
    Sub,
    Append,
    Delete,
}

/// A `set` step.
#[derive(Debug)]
pub struct Set {
    pub scope: VarScope,
    pub name: String,
    pub op: SetOp,
    pub value: Option<JsonTemplate>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelay {
    ms: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIf {
    condition: Value,
    then: Vec<Value>,
    #[serde(default, rename = "else")]
    otherwise: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunAction {
    action: String,
    #[serde(default = "empty_object")]
    args: Value,
    #[serde(default = "yes")]
    wait: bool,
    into: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    var: String,
    #[serde(default)]
    op: SetOp,
    value: Option<Value>,
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
struct RawWsSend {
    connection: String,
    payload: Option<Value>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreditsAdd {
    category: String,
    user: Option<String>,
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
struct RawStop {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    error: bool,
}

/// Whether `id` is a hyphenated UUID or a ULID (26 Crockford base-32 characters).
pub fn is_document_id(id: &str) -> bool {
    let ulid = id.len() == 26
        && id.chars().all(|c| {
            c.is_ascii_digit() || (c.is_ascii_uppercase() && !matches!(c, 'I' | 'L' | 'O' | 'U'))
        });
    ulid || (id.len() == 36 && id.contains('-') && uuid::Uuid::parse_str(id).is_ok())
}

/// Whether `name` is a variable name: `[A-Za-z_][A-Za-z0-9_]{0,63}`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses and checks a document (everything but clashes with other documents).
pub fn parse_document(value: &Value) -> Result<Document, Invalid> {
    let raw: RawDocument = serde_path_to_error::deserialize(value)
        .map_err(|error| Invalid::at(pointer(error.path()), error.inner().to_string()))?;
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
    if raw.name.trim().is_empty() || raw.name.chars().count() > 100 {
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
    if raw.max.is_some_and(|max| max > MAX_RUNS) {
        // Each waiting or running run holds memory (7–9 KB measured): a document cannot ask
        // for an unbounded number.
        return Err(Invalid::at("/max", format!("`max` is at most {MAX_RUNS}")));
    }
    let mut variables = Vec::new();
    for (name, value) in &raw.variables {
        if super::template::NAMESPACES.contains(&name.as_str()) {
            log::warn!(
                "rules: {:?}: the variable `{name}` is shadowed in templates by the `{name}` namespace: read it as `args.{name}`",
                raw.name
            );
        }
        if !is_variable_name(name) {
            return Err(Invalid::at(
                format!("/variables/{}", pointer_segment(name)),
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
    check_step_ids(&steps, &mut ids)?;
    let (triggers, conditions, limits) = match raw.kind {
        Kind::Action => {
            for (field, present) in [
                ("triggers", raw.triggers.is_some()),
                ("conditions", raw.conditions.is_some()),
                ("limits", raw.limits.is_some()),
            ] {
                if present {
                    return Err(Invalid::at(
                        format!("/{field}"),
                        format!("an action has no `{field}`"),
                    ));
                }
            }
            (Vec::new(), None, Limits::default())
        }
        Kind::Rule => {
            let triggers = raw
                .triggers
                .ok_or_else(|| Invalid::at("", "missing field `triggers`"))?;
            if triggers.is_empty() {
                return Err(Invalid::at("/triggers", "a rule has at least one trigger"));
            }
            let triggers = parse_triggers(&triggers)?;
            let conditions = raw
                .conditions
                .as_ref()
                .map(|value| Condition::parse(value, "/conditions"))
                .transpose()?;
            (triggers, conditions, parse_limits(raw.limits)?)
        }
    };
    Ok(Document {
        kind: raw.kind,
        id: raw.id,
        name: raw.name,
        enabled: raw.enabled,
        description: raw.description,
        group: raw.group,
        variables,
        mode,
        max: raw.max.unwrap_or(10),
        steps,
        tests: raw.tests,
        triggers,
        conditions,
        limits,
    })
}

fn check_step_ids(
    steps: &[Step],
    ids: &mut std::collections::HashSet<String>,
) -> Result<(), Invalid> {
    for step in steps {
        if !ids.insert(step.id.clone()) {
            return Err(Invalid::at(
                step.path.clone(),
                format!("step id `{}` is used twice", step.id),
            ));
        }
        if let StepBody::If {
            then, otherwise, ..
        } = &step.body
        {
            check_step_ids(then, ids)?;
            check_step_ids(otherwise, ids)?;
        }
    }
    Ok(())
}

/// The names a normalised `on` may not take in Level 1.
const RESERVED_ON: &[&str] = &["schedule", "interval", "varchanged", "startup"];

fn parse_triggers(values: &[Value]) -> Result<Vec<Trigger>, Invalid> {
    let mut triggers = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (index, value) in values.iter().enumerate() {
        let at = format!("/triggers/{index}");
        let raw: RawTrigger = serde_path_to_error::deserialize(value).map_err(|error| {
            Invalid::at(
                format!("{at}{}", pointer(error.path())),
                error.inner().to_string(),
            )
        })?;
        let id = raw.id.clone().unwrap_or_else(|| index.to_string());
        if !ids.insert(id.clone()) {
            return Err(Invalid::at(
                format!("{at}/id"),
                format!("trigger id `{id}` is used twice"),
            ));
        }
        let on = normalise(&raw.on);
        if on.is_empty() {
            return Err(Invalid::at(format!("{at}/on"), "`on` names an event type"));
        }
        if RESERVED_ON.contains(&on.as_str()) {
            return Err(Invalid::at(
                format!("{at}/on"),
                format!("`{}` is reserved for Level 2", raw.on),
            ));
        }
        if raw.command.is_some() && on != "command" {
            return Err(Invalid::at(
                format!("{at}/command"),
                "`command` goes with `on: \"command\"`",
            ));
        }
        if raw.streak.is_some() && on != "gift" {
            return Err(Invalid::at(
                format!("{at}/streak"),
                "`streak` goes only with `on: \"gift\"`",
            ));
        }
        let form = match on.as_str() {
            "call" => {
                if !raw.sources.is_empty() || raw.condition.is_some() {
                    return Err(Invalid::at(
                        at.clone(),
                        "a call trigger takes only `id` and `enabled`",
                    ));
                }
                if triggers
                    .iter()
                    .any(|t: &Trigger| matches!(t.form, TriggerForm::Call))
                {
                    return Err(Invalid::at(
                        at.clone(),
                        "a rule has at most one call trigger",
                    ));
                }
                TriggerForm::Call
            }
            "command" => {
                let command = raw.command.ok_or_else(|| {
                    Invalid::at(at.clone(), "`on: \"command\"` needs a `command`")
                })?;
                TriggerForm::Command(parse_command(command, &format!("{at}/command"))?)
            }
            _ => TriggerForm::Event {
                kind: on,
                streak: raw.streak.unwrap_or_default(),
            },
        };
        let condition = raw
            .condition
            .as_ref()
            .map(|value| Condition::parse(value, &format!("{at}/where")))
            .transpose()?;
        triggers.push(Trigger {
            id,
            on: raw.on,
            enabled: raw.enabled,
            sources: raw.sources.iter().map(|source| normalise(source)).collect(),
            form,
            condition,
        });
    }
    Ok(triggers)
}

fn parse_command(raw: RawCommand, at: &str) -> Result<Command, Invalid> {
    if raw.names.is_empty() {
        return Err(Invalid::at(
            format!("{at}/names"),
            "a command has at least one name",
        ));
    }
    let names = raw
        .names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let pattern = match raw.matching {
                CommandMatch::Regex => name.clone(),
                _ => regex::escape(name),
            };
            super::condition::compile_regex(&pattern, !raw.case_sensitive)
                .map(|regex| (name.clone(), regex))
                .map_err(|error| Invalid::at(format!("{at}/names/{index}"), error))
        })
        .collect::<Result<_, _>>()?;
    let types = raw
        .types
        .unwrap_or_else(|| CHAT_TYPES.iter().map(|t| t.to_string()).collect())
        .iter()
        .map(|kind| normalise(kind))
        .collect();
    Ok(Command {
        names,
        matching: raw.matching,
        case_sensitive: raw.case_sensitive,
        types,
    })
}

fn parse_limits(raw: Option<RawLimits>) -> Result<Limits, Invalid> {
    let Some(raw) = raw else {
        return Ok(Limits::default());
    };
    let key =
        |scope: Scope, key: Option<String>, at: String| -> Result<Option<Template>, Invalid> {
            match (scope, key) {
                (Scope::Key, Some(key)) => Template::parse(&key)
                    .map(Some)
                    .map_err(|e| Invalid::at(format!("{at}/key"), e)),
                (Scope::Key, None) => Err(Invalid::at(at, "`scope: \"key\"` needs a `key`")),
                (_, Some(_)) => Err(Invalid::at(
                    format!("{at}/key"),
                    "`key` goes only with `scope: \"key\"`",
                )),
                (_, None) => Ok(None),
            }
        };
    let mut limits = Limits::default();
    for (index, cooldown) in raw.cooldowns.into_iter().enumerate() {
        let at = format!("/limits/cooldowns/{index}");
        if cooldown.seconds.is_nan() || cooldown.seconds <= 0.0 {
            return Err(Invalid::at(
                format!("{at}/seconds"),
                "`seconds` is a number > 0",
            ));
        }
        limits.cooldowns.push(Limit {
            scope: cooldown.scope,
            key: key(cooldown.scope, cooldown.key, at)?,
            seconds: cooldown.seconds,
            max: 1,
        });
    }
    for (index, rate) in raw.rate_limits.into_iter().enumerate() {
        let at = format!("/limits/rateLimits/{index}");
        if rate.max == 0 {
            return Err(Invalid::at(format!("{at}/max"), "`max` is at least 1"));
        }
        if rate.window_seconds.is_nan() || rate.window_seconds <= 0.0 {
            return Err(Invalid::at(
                format!("{at}/windowSeconds"),
                "`windowSeconds` is a number > 0",
            ));
        }
        limits.rate_limits.push(Limit {
            scope: rate.scope,
            key: key(rate.scope, rate.key, at)?,
            seconds: rate.window_seconds,
            max: rate.max,
        });
    }
    Ok(limits)
}

fn parse_steps(values: &[Value], at: &str) -> Result<Vec<Step>, Invalid> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| parse_step(value, &format!("{at}/{index}")))
        .collect()
}

/// The step kinds of the catalogue, in docs/rules.md order.
const STEP_KINDS: &[&str] = &[
    "delay",
    "if",
    "run_action",
    "set",
    "emit",
    "ws.send",
    "credits.add",
    "log",
    "stop",
];

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
    let Some(&kind) = STEP_KINDS.iter().find(|known| **known == kind) else {
        return Err(Invalid::at(
            format!("{at}/kind"),
            format!(
                "unknown step kind `{kind}`, expected one of `{}`",
                STEP_KINDS.join("`, `")
            ),
        ));
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
    let body = match kind {
        "delay" => {
            let raw: RawDelay = serde_json::from_value(fields).map_err(shape)?;
            let ms = match &raw.ms {
                Value::Number(number) => match number.as_u64() {
                    Some(ms) if ms <= 86_400_000 => Template::Literal(ms.to_string()),
                    _ => {
                        return Err(Invalid::at(
                            format!("{at}/ms"),
                            "`ms` is an integer from 0 to 86400000",
                        ))
                    }
                },
                Value::String(text) if text.contains("{{") => template("ms", text)?,
                _ => {
                    return Err(Invalid::at(
                        format!("{at}/ms"),
                        "`ms` is an integer or a template giving one",
                    ))
                }
            };
            StepBody::Delay { ms }
        }
        "if" => {
            let raw: RawIf = serde_json::from_value(fields).map_err(shape)?;
            if raw.then.is_empty() {
                return Err(Invalid::at(
                    format!("{at}/then"),
                    "`then` has at least one step",
                ));
            }
            StepBody::If {
                condition: Condition::parse(&raw.condition, &format!("{at}/condition"))?,
                then: parse_steps(&raw.then, &format!("{at}/then"))?,
                otherwise: parse_steps(&raw.otherwise, &format!("{at}/else"))?,
            }
        }
        "run_action" => {
            let raw: RawRunAction = serde_json::from_value(fields).map_err(shape)?;
            if !raw.args.is_object() {
                return Err(Invalid::at(format!("{at}/args"), "`args` is an object"));
            }
            if raw
                .into
                .as_deref()
                .is_some_and(|name| !is_variable_name(name))
            {
                return Err(Invalid::at(format!("{at}/into"), "`into` is an arg name"));
            }
            StepBody::RunAction(Box::new(RunAction {
                action: raw.action,
                args: json("args", &raw.args)?,
                wait: raw.wait,
                into: raw.into,
            }))
        }
        "set" => {
            let raw: RawSet = serde_json::from_value(fields).map_err(shape)?;
            let (scope, name) = match raw.var.split_once('.') {
                Some(("args", name)) => (VarScope::Args, name),
                Some(("global", name)) => (VarScope::Global, name),
                Some(("user", name)) => (VarScope::User, name),
                _ => {
                    return Err(Invalid::at(
                        format!("{at}/var"),
                        "`var` is args.<name>, global.<name> or user.<name>",
                    ))
                }
            };
            if !is_variable_name(name) {
                return Err(Invalid::at(
                    format!("{at}/var"),
                    "a variable name matches [A-Za-z_][A-Za-z0-9_]{0,63}",
                ));
            }
            let value = match (raw.op, raw.value) {
                (SetOp::Delete, Some(_)) => {
                    return Err(Invalid::at(
                        format!("{at}/value"),
                        "`delete` takes no value",
                    ))
                }
                (SetOp::Delete, None) => None,
                (_, None) => return Err(Invalid::at(at, "missing field `value`")),
                (_, Some(value)) => Some(json("value", &value)?),
            };
            StepBody::Set(Box::new(Set {
                scope,
                name: name.to_owned(),
                op: raw.op,
                value,
            }))
        }
        "emit" => {
            let raw: RawEmit = serde_json::from_value(fields).map_err(shape)?;
            if !matches!(raw.user, Value::Null | Value::Object(_) | Value::String(_)) {
                return Err(Invalid::at(
                    format!("{at}/user"),
                    "`user` is an object, null or a template",
                ));
            }
            if !matches!(raw.room, Value::Null | Value::String(_)) {
                return Err(Invalid::at(
                    format!("{at}/room"),
                    "`room` is a string or null",
                ));
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
        "ws.send" => {
            let raw: RawWsSend = serde_json::from_value(fields).map_err(shape)?;
            if raw.connection.trim().is_empty() {
                return Err(Invalid::at(
                    format!("{at}/connection"),
                    "`connection` names an outbound connection",
                ));
            }
            let message = match (raw.payload, raw.text) {
                (Some(payload), None) => WsMessage::Payload(json("payload", &payload)?),
                (None, Some(text)) => WsMessage::Text(template("text", &text)?),
                _ => {
                    return Err(Invalid::at(
                        at,
                        "a `ws.send` step has exactly one of `payload` and `text`",
                    ))
                }
            };
            StepBody::WsSend(WsSend {
                connection: raw.connection,
                message,
            })
        }
        "credits.add" => {
            let raw: RawCreditsAdd = serde_json::from_value(fields).map_err(shape)?;
            StepBody::CreditsAdd {
                category: template("category", &raw.category)?,
                user: raw
                    .user
                    .as_deref()
                    .map(|user| template("user", user))
                    .transpose()?,
            }
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
        _ => {
            let raw: RawStop = serde_json::from_value(fields).map_err(shape)?;
            StepBody::Stop {
                reason: raw.reason,
                error: raw.error,
            }
        }
    };
    Ok(Step {
        id,
        path: at.to_owned(),
        kind,
        enabled,
        continue_on_error,
        body,
    })
}

/// `key` as one segment of a JSON pointer (RFC 6901): `~` and `/` escaped.
fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A serde path as a JSON pointer (`steps[0].kind` → `/steps/0/kind`).
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("/{index}")),
            Segment::Map { key } => Some(format!("/{}", pointer_segment(key))),
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
        let loaded = parse_document(&action(json!([
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
        let error = parse_document(&document).unwrap_err();
        assert!(error.reason.contains("unknown field `colour`"), "{error:?}");
        let error = parse_document(&action(
            json!([{"kind": "log", "message": "x", "loud": true}]),
        ))
        .unwrap_err();
        assert_eq!(error.pointer, "/steps/0");
        assert!(error.reason.contains("unknown field `loud`"), "{error:?}");
    }

    #[test]
    fn bad_templates_and_kinds_are_refused() {
        let error =
            parse_document(&action(json!([{"kind": "log", "message": "{{ x"}]))).unwrap_err();
        assert_eq!(error.pointer, "/steps/0/message");
        let error = parse_document(&action(json!([{"kind": "dance"}]))).unwrap_err();
        assert_eq!(error.pointer, "/steps/0/kind");
        let error = parse_document(&action(json!([{"kind": "set", "var": "args.x"}]))).unwrap_err();
        assert_eq!(error.reason, "missing field `value`");
    }

    #[test]
    fn ws_send_takes_exactly_one_of_payload_and_text() {
        let loaded = parse_document(&action(
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
            let error = parse_document(&action(json!([bad]))).unwrap_err();
            assert_eq!(
                error.reason,
                "a `ws.send` step has exactly one of `payload` and `text`"
            );
        }
    }

    #[test]
    fn a_rule_with_every_trigger_form_loads() {
        let rule = json!({"kind": "rule", "schemaVersion": 1, "id": "01JC6JR410DD3YRST4CHN5KN0T", "name": "R",
            "triggers": [
                {"id": "chat", "on": "command", "command": {"names": ["!so"], "match": "start"}},
                {"on": "gift", "sources": ["TikTok"], "streak": "every"},
                {"on": "call"}],
            "conditions": {"fact": "args.x", "op": "exists"},
            "limits": {"cooldowns": [{"scope": "user", "seconds": 60}], "rateLimits": [{"scope": "key", "key": "{{ x }}", "max": 3, "windowSeconds": 30}]},
            "steps": [{"kind": "if", "condition": {"fact": "args.x", "op": "eq", "value": 1},
                       "then": [{"kind": "log", "message": "a"}], "else": [{"kind": "log", "message": "b"}]}]});
        let document = parse_document(&rule).unwrap();
        assert_eq!(document.kind, Kind::Rule);
        assert_eq!(document.triggers.len(), 3);
        assert_eq!(document.triggers[1].sources, ["tiktok"]);
        assert!(document.call_trigger().is_some());
        assert_eq!(document.step_count(), 3);
        assert_eq!(document.limits.rate_limits[0].max, 3);
    }

    #[test]
    fn misplaced_trigger_fields_are_refused() {
        let rule = |trigger: Value| {
            json!({"kind": "rule", "schemaVersion": 1, "id": "01JC6JR410DD3YRST4CHN5KN0T",
            "name": "R", "triggers": [trigger], "steps": [{"kind": "log", "message": "x"}]})
        };
        for (trigger, pointer) in [
            (
                json!({"on": "follow", "streak": "final"}),
                "/triggers/0/streak",
            ),
            (
                json!({"on": "follow", "command": {"names": ["!a"]}}),
                "/triggers/0/command",
            ),
            (json!({"on": "schedule"}), "/triggers/0/on"),
            (
                json!({"on": "command", "command": {"names": ["!a"], "match": "begin"}}),
                "/triggers/0/command/match",
            ),
            (json!({"on": "call", "sources": ["x"]}), "/triggers/0"),
        ] {
            let error = parse_document(&rule(trigger.clone())).unwrap_err();
            assert_eq!(error.pointer, pointer, "{trigger}: {error:?}");
        }
        let mut action = action(json!([{"kind": "log", "message": "x"}]));
        action["triggers"] = json!([{"on": "follow"}]);
        assert_eq!(parse_document(&action).unwrap_err().pointer, "/triggers");
    }

    #[test]
    fn a_bad_variable_name_is_reported_at_its_escaped_pointer() {
        let mut document = action(json!([{"kind": "log", "message": "x"}]));
        document["variables"] = json!({"a/b~c": 1});
        let error = parse_document(&document).unwrap_err();
        assert_eq!(error.pointer, "/variables/a~1b~0c");
        assert_eq!(document.pointer("/variables/a~1b~0c"), Some(&json!(1)));
    }

    #[test]
    fn schema_versions_and_ids_are_checked() {
        let mut document = action(json!([{"kind": "log", "message": "x"}]));
        document["schemaVersion"] = json!(2);
        assert_eq!(
            parse_document(&document).unwrap_err().reason,
            "unsupported schemaVersion 2"
        );
        document["schemaVersion"] = json!(1);
        document["id"] = json!("not-an-id");
        assert_eq!(parse_document(&document).unwrap_err().pointer, "/id");
        assert!(is_document_id("5d2f7a1e-3b8c-4e6a-9f0d-2c4b6e8a1f3d"));
    }

    proptest::proptest! {
        /// Any document is loaded or refused with a JSON pointer into it and a reason.
        #[test]
        fn every_document_loads_or_is_refused_with_a_pointer(
            text in crate::mutate::messages(crate::mutate::rule_documents()),
        ) {
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                return Ok(());
            };
            match parse_document(&value) {
                Ok(document) => {
                    proptest::prop_assert_eq!(&value["id"], &Value::String(document.id.clone()));
                    proptest::prop_assert!(!document.steps.is_empty() || value["steps"] == json!([]));
                }
                Err(invalid) => {
                    proptest::prop_assert!(!invalid.reason.is_empty());
                    proptest::prop_assert!(invalid.pointer.is_empty() || invalid.pointer.starts_with('/'), "{:?}", invalid);
                    let parent = invalid.pointer.rsplit_once('/').map_or("", |(parent, _)| parent);
                    proptest::prop_assert!(value.pointer(parent).is_some(), "{:?} in {}", invalid, value);
                }
            }
        }
    }
}
