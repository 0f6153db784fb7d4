//! Templates (docs/rules.md §5): minijinja over the run's facts. A string containing `{{` or `{%` is a
//! template, checked when its document loads; a string that is exactly one `{{ expression }}`
//! evaluates to the expression's JSON value, every other template renders to a string.
//!
//! A run's arguments are also bare names (`{{ title }}`), except where a namespace has the name:
//! `event`, `args`, `global`, `user`, `run`, `now` and `nowMs` always mean the namespace, so an
//! argument `user` is `{{ args.user }}`. A template that names `global` or `user` alone (not
//! `user.points`) is warned about, once, when it loads: that is almost always an argument meant
//! (`{{ event }}` alone is the whole event, a usual payload, and is not warned about).
//!
//! Templates are evaluated in the [`sandbox`], each field on a budget of instructions and bytes
//! (docs/rules.md §5.3).

use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use super::sandbox;

/// A string field as loaded: literal, one expression, or text with template blocks.
#[derive(Debug, Clone)]
pub enum Template {
    Literal(String),
    Expression(String),
    Text(String),
}

/// A JSON value in which every string, at any depth, is a template.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Value(Value),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Chainable);
        environment.set_auto_escape_callback(|_| AutoEscape::None);
        environment
    })
}

/// Every namespace of the template context: an argument of one of these names is only reachable
/// as `args.<name>`.
pub const NAMESPACES: [&str; 7] = ["event", "args", "global", "user", "run", "now", "nowMs"];

/// Namespaces whose bare use in a template is almost always an argument of that name meant.
const SHADOWING: [&str; 2] = ["global", "user"];

/// The namespaces of [`SHADOWING`] that `names` (a template's variables, dotted) uses alone.
fn bare_namespaces(names: &std::collections::HashSet<String>) -> Vec<&'static str> {
    SHADOWING
        .into_iter()
        .filter(|namespace| names.contains(*namespace))
        .collect()
}

/// Warns about a template that names a namespace alone, once per template text per process (a
/// document is parsed more than once per load, and again on every reload).
fn warn_shadowed(source: &str, names: &std::collections::HashSet<String>) {
    static WARNED: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
        std::sync::Mutex::new(None);
    let shadowed = bare_namespaces(names);
    if shadowed.is_empty() {
        return;
    }
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !warned
        .get_or_insert_with(Default::default)
        .insert(source.to_owned())
    {
        return;
    }
    for namespace in shadowed {
        log::warn!(
            "rules: the template {source:?} uses `{namespace}` alone, which is the {namespace} namespace (an object), not an argument named `{namespace}`: write `args.{namespace}` for the argument"
        );
    }
}

impl Template {
    /// Parses `source`, refusing a syntax error with minijinja's message.
    pub fn parse(source: &str) -> Result<Template, String> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(Template::Literal(source.to_owned()));
        }
        let trimmed = source.trim();
        let expression = trimmed
            .strip_prefix("{{")
            .and_then(|rest| rest.strip_suffix("}}"))
            .filter(|inner| !inner.contains("{{") && !inner.contains("}}"))
            .filter(|_| trimmed == source);
        // Before compiling: the compiler builds constant expressions, outside any budget.
        sandbox::check(expression.unwrap_or(source), expression.is_some())?;
        if let Some(inner) = expression {
            let expression = environment()
                .compile_expression(inner)
                .map_err(|error| error.to_string())?;
            warn_shadowed(source, &expression.undeclared_variables(true));
            return Ok(Template::Expression(inner.to_owned()));
        }
        let template = environment()
            .template_from_str(source)
            .map_err(|error| error.to_string())?;
        warn_shadowed(source, &template.undeclared_variables(true));
        Ok(Template::Text(source.to_owned()))
    }

    /// The value for `context`: a string, or the expression's JSON value. The evaluation has the
    /// budget of [`sandbox`], of its own or of the field it belongs to.
    pub fn render(&self, context: &Value) -> Result<Value, String> {
        match self {
            Template::Literal(text) => Ok(Value::String(text.clone())),
            Template::Expression(source) => sandbox::evaluate(source, context),
            Template::Text(source) => sandbox::render(source, context).map(Value::String),
        }
    }

    /// The rendered text; `null` renders as the empty string, other values as JSON.
    pub fn render_text(&self, context: &Value) -> Result<String, String> {
        Ok(match self.render(context)? {
            Value::String(text) => text,
            Value::Null => String::new(),
            other => other.to_string(),
        })
    }
}

impl JsonTemplate {
    /// Parses every string of `value` as a template; errors name the JSON pointer below `value`.
    pub fn parse(value: &Value) -> Result<JsonTemplate, (String, String)> {
        Ok(match value {
            Value::String(text) => {
                JsonTemplate::String(Template::parse(text).map_err(|e| (String::new(), e))?)
            }
            Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        JsonTemplate::parse(item).map_err(|(at, e)| (format!("/{index}{at}"), e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(key, item)| {
                        let parsed = JsonTemplate::parse(item).map_err(|(at, e)| {
                            (
                                format!("/{}{at}", key.replace('~', "~0").replace('/', "~1")),
                                e,
                            )
                        })?;
                        Ok::<_, (String, String)>((key.clone(), parsed))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => JsonTemplate::Value(other.clone()),
        })
    }

    /// The value with every template rendered against `context`, on one budget for them all.
    pub fn render(&self, context: &Value) -> Result<Value, String> {
        sandbox::metered(|| self.render_each(context))
    }

    fn render_each(&self, context: &Value) -> Result<Value, String> {
        Ok(match self {
            JsonTemplate::Value(value) => value.clone(),
            JsonTemplate::String(template) => template.render(context)?,
            JsonTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| item.render_each(context))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(entries) => {
                let mut map = Map::new();
                for (key, item) in entries {
                    map.insert(key.clone(), item.render_each(context)?);
                }
                Value::Object(map)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lone_expression_keeps_its_type() {
        let context = json!({"event": {"data": {"a": 3, "b": 50}}, "args": {}});
        let template = Template::parse("{{ event.data.a * event.data.b }}").unwrap();
        assert_eq!(template.render(&context).unwrap(), json!(150));
        let object = Template::parse("{{ event.data }}").unwrap();
        assert_eq!(object.render(&context).unwrap(), json!({"a": 3, "b": 50}));
    }

    #[test]
    fn text_renders_to_a_string_and_undefined_is_empty() {
        let context = json!({"event": {"user": null}, "boss": "Dragon"});
        let template = Template::parse("{{ boss }} falls{{ event.user.nickname }}!").unwrap();
        assert_eq!(template.render(&context).unwrap(), json!("Dragon falls!"));
        let missing = Template::parse("{{ event.user.nickname }}").unwrap();
        assert_eq!(missing.render(&context).unwrap(), Value::Null);
    }

    #[test]
    fn nothing_is_html_escaped() {
        let template = Template::parse("<b>{{ name }}</b>").unwrap();
        assert_eq!(
            template.render(&json!({"name": "a&b"})).unwrap(),
            json!("<b>a&b</b>")
        );
    }

    #[test]
    fn a_syntax_error_is_refused_at_parse() {
        assert!(Template::parse("{{ oops").is_err());
        assert!(Template::parse("{% if %}").is_err());
    }

    #[test]
    fn a_namespace_named_alone_is_found_for_the_load_warning() {
        let names = |source: &str| {
            let template = environment().template_from_str(source).unwrap();
            bare_namespaces(&template.undeclared_variables(true))
        };
        assert_eq!(
            names("for {{ user | default('x') }}: {{ title }}"),
            ["user"]
        );
        assert_eq!(
            names("{{ user.points }} {{ args.user }} {{ event.data }}"),
            Vec::<&str>::new()
        );
        assert_eq!(
            names("{% if global %}{{ run }}{{ event }}{% endif %}"),
            ["global"]
        );
        assert!(names("{% for user in args.users %}{{ user }}{% endfor %}").is_empty());
    }

    #[test]
    fn json_templates_render_every_string() {
        let value = json!({"title": "{{ boss }}", "n": 1, "list": ["x{{ boss }}"]});
        let template = JsonTemplate::parse(&value).unwrap();
        assert_eq!(
            template.render(&json!({"boss": "Dragon"})).unwrap(),
            json!({"title": "Dragon", "n": 1, "list": ["xDragon"]})
        );
        let error = JsonTemplate::parse(&json!({"a": [1, "{{ x"]})).unwrap_err();
        assert_eq!(error.0, "/a/1");
    }
}
