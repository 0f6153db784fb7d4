//! Matching (docs/rules.md §3, §9 stages 2–3): rules indexed by normalised event type, so that an event
//! visits only its candidate rules, and the trigger forms: event types with sources and gift
//! streaks, chat commands, and the `where` condition.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::document::{Command, CommandMatch, Document, Streak, TriggerForm};
use super::facts::Facts;

/// Candidate rules by normalised event type: indexes into the document list, in path order.
#[derive(Debug, Default)]
pub struct Index {
    by_type: HashMap<String, Vec<usize>>,
}

impl Index {
    pub fn build(documents: &[std::sync::Arc<Document>]) -> Index {
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        for (position, document) in documents.iter().enumerate() {
            for trigger in &document.triggers {
                let kinds: Vec<&str> = match &trigger.form {
                    TriggerForm::Event { kind, .. } => vec![kind.as_str()],
                    TriggerForm::Command(command) => {
                        command.types.iter().map(String::as_str).collect()
                    }
                    TriggerForm::Call => Vec::new(),
                };
                for kind in kinds {
                    let list = by_type.entry(kind.to_owned()).or_default();
                    if list.last() != Some(&position) {
                        list.push(position);
                    }
                }
            }
        }
        for list in by_type.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        Index { by_type }
    }

    /// The candidate documents of an event type (normalised), in path order.
    pub fn candidates(&self, kind: &str) -> &[usize] {
        self.by_type.get(kind).map_or(&[], Vec::as_slice)
    }
}

/// A trigger that matched: its id and the args it sets.
#[derive(Debug, Clone)]
pub struct Matched {
    pub trigger: String,
}

/// Tries a rule's triggers in order on a published event; the first that matches wins. Command
/// args and captures are written into `facts.args`.
pub fn match_rule(
    document: &Document,
    source: &str,
    kind: &str,
    facts: &mut Facts,
) -> Option<Matched> {
    for trigger in &document.triggers {
        if !trigger.enabled {
            continue;
        }
        if !trigger.sources.is_empty() && !trigger.sources.iter().any(|s| s == source) {
            continue;
        }
        let saved = facts.args.clone();
        let matched = match &trigger.form {
            TriggerForm::Call => false,
            TriggerForm::Event {
                kind: wanted,
                streak,
            } => {
                wanted == kind
                    && (wanted != "gift" || *streak == Streak::Every || !in_progress(&facts.event))
            }
            TriggerForm::Command(command) => {
                command.types.iter().any(|t| t == kind) && match_command(command, facts)
            }
        };
        let matched = matched
            && trigger
                .condition
                .as_ref()
                .is_none_or(|condition| facts.evaluate(condition).0);
        if matched {
            return Some(Matched {
                trigger: trigger.id.clone(),
            });
        }
        facts.args = saved;
    }
    None
}

/// A TikTok gift update that is not the streak's last (docs/rules.md §3.4).
fn in_progress(event: &Value) -> bool {
    let data = &event["data"];
    data.get("repeatEnd") == Some(&Value::Bool(false))
        && data
            .get("giftType")
            .is_none_or(|gift_type| gift_type == &Value::from(1))
}

/// The chat text of an event: the first string at the documented places, trimmed.
pub fn message_text(event: &Value) -> Option<&str> {
    let data = event.get("data")?;
    let message = data.get("message");
    [
        message,
        message.and_then(|message| message.get("message")),
        data.get("text"),
        data.get("content"),
    ]
    .into_iter()
    .find_map(|value| value.and_then(Value::as_str))
    .map(str::trim)
}

fn match_command(command: &Command, facts: &mut Facts) -> bool {
    let event = facts.event.clone();
    let Some(text) = message_text(&event) else {
        return false;
    };
    for (name, regex) in &command.names {
        let raw_input = match command.matching {
            CommandMatch::Start => regex
                .find(text)
                .filter(|found| found.start() == 0 && boundary_after(text, found.end()))
                .map(|found| text[found.end()..].to_owned()),
            CommandMatch::Exact => regex
                .find(text)
                .filter(|found| found.start() == 0 && found.end() == text.len())
                .map(|_| String::new()),
            CommandMatch::Anywhere => regex
                .find_iter(text)
                .find(|found| {
                    boundary_before(text, found.start()) && boundary_after(text, found.end())
                })
                .map(|found| text[found.end()..].to_owned()),
            CommandMatch::Regex => match regex.captures(text) {
                Some(captures) => {
                    let end = captures.get(0).map_or(0, |m| m.end());
                    facts.capture(regex, &captures);
                    Some(text[end..].to_owned())
                }
                None => None,
            },
        };
        if let Some(raw_input) = raw_input {
            set_command_args(&mut facts.args, name, text, raw_input.trim());
            return true;
        }
    }
    false
}

fn boundary_before(text: &str, at: usize) -> bool {
    text[..at]
        .chars()
        .next_back()
        .is_none_or(char::is_whitespace)
}

fn boundary_after(text: &str, at: usize) -> bool {
    text[at..].chars().next().is_none_or(char::is_whitespace)
}

fn set_command_args(args: &mut Map<String, Value>, name: &str, text: &str, raw_input: &str) {
    args.insert("command".into(), Value::from(name));
    args.insert("message".into(), Value::from(text));
    args.insert("rawInput".into(), Value::from(raw_input));
    let inputs: Vec<&str> = raw_input.split_whitespace().collect();
    for (index, input) in inputs.iter().enumerate() {
        args.insert(format!("input{index}"), Value::from(*input));
    }
    args.insert("inputCount".into(), Value::from(inputs.len()));
}

/// The normalised `on` names a rule listens to, for the catalogue and `GetCodeTriggers`.
pub fn event_triggers(document: &Document) -> impl Iterator<Item = (&str, &[String])> {
    document
        .triggers
        .iter()
        .filter_map(|trigger| match &trigger.form {
            TriggerForm::Event { .. } if trigger.enabled => {
                Some((trigger.on.as_str(), trigger.sources.as_slice()))
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::document::parse_document;
    use serde_json::json;

    fn rule(triggers: Value) -> Document {
        parse_document(
            &json!({"kind": "rule", "schemaVersion": 1, "id": "01JC6JR410DD3YRST4CHN5KN0T",
            "name": "R", "triggers": triggers, "steps": [{"kind": "log", "message": "x"}]}),
        )
        .unwrap()
    }

    fn facts(data: Value) -> Facts {
        Facts {
            event: std::sync::Arc::new(json!({"data": data})),
            args: Map::new(),
            global: Map::new(),
            user: Map::new(),
            run: json!({}),
            now: chrono::Utc::now(),
            hops: 0,
        }
    }

    #[test]
    fn a_start_command_sets_its_args() {
        let document = rule(
            json!([{"id": "chat", "on": "command", "command": {"names": ["!so", "!shoutout"]}}]),
        );
        let mut facts = facts(json!({"message": "  !SHOUTOUT @carol  now "}));
        let matched = match_rule(&document, "twitch", "chatmessage", &mut facts).unwrap();
        assert_eq!(matched.trigger, "chat");
        assert_eq!(facts.args["command"], "!shoutout");
        assert_eq!(facts.args["rawInput"], "@carol  now");
        assert_eq!(facts.args["input0"], "@carol");
        assert_eq!(facts.args["input1"], "now");
        assert_eq!(facts.args["inputCount"], 2);
        let mut other = self::facts(json!({"message": "!sox"}));
        assert!(match_rule(&document, "twitch", "chatmessage", &mut other).is_none());
    }

    #[test]
    fn command_modes_follow_the_table() {
        let exact = rule(
            json!([{"on": "command", "command": {"names": ["!hi"], "match": "exact", "caseSensitive": true}}]),
        );
        assert!(match_rule(&exact, "t", "chat", &mut facts(json!({"text": "!hi"}))).is_some());
        assert!(match_rule(&exact, "t", "chat", &mut facts(json!({"text": "!HI"}))).is_none());
        let anywhere =
            rule(json!([{"on": "command", "command": {"names": ["gg"], "match": "anywhere"}}]));
        let mut found = facts(json!({"content": "that was gg wp"}));
        assert!(match_rule(&anywhere, "t", "messagecreate", &mut found).is_some());
        assert_eq!(found.args["rawInput"], "wp");
        assert!(match_rule(
            &anywhere,
            "t",
            "chat",
            &mut facts(json!({"content": "eggs"}))
        )
        .is_none());
        let regex = rule(
            json!([{"on": "command", "command": {"names": ["^!roll (?P<sides>\\d+)"], "match": "regex"}}]),
        );
        let mut rolled = facts(json!({"message": {"message": "!roll 20 please"}}));
        assert!(match_rule(&regex, "t", "message", &mut rolled).is_some());
        assert_eq!(rolled.args["sides"], "20");
        assert_eq!(rolled.args["rawInput"], "please");
    }

    #[test]
    fn gift_streaks_match_final_updates_only_by_default() {
        let document = rule(json!([{"on": "gift", "sources": ["tiktok"]}]));
        assert!(match_rule(
            &document,
            "tiktok",
            "gift",
            &mut facts(json!({"repeatEnd": false, "giftType": 1}))
        )
        .is_none());
        assert!(match_rule(
            &document,
            "tiktok",
            "gift",
            &mut facts(json!({"repeatEnd": true}))
        )
        .is_some());
        assert!(match_rule(&document, "tiktok", "gift", &mut facts(json!({}))).is_some());
        assert!(match_rule(&document, "twitch", "gift", &mut facts(json!({}))).is_none());
        let every = rule(json!([{"on": "gift", "streak": "every"}]));
        assert!(match_rule(
            &every,
            "tiktok",
            "gift",
            &mut facts(json!({"repeatEnd": false}))
        )
        .is_some());
    }

    #[test]
    fn the_index_holds_only_candidates() {
        let documents = vec![
            std::sync::Arc::new(rule(json!([{"on": "Boss_Defeated"}]))),
            std::sync::Arc::new(rule(
                json!([{"on": "command", "command": {"names": ["!a"]}}, {"on": "follow"}]),
            )),
        ];
        let index = Index::build(&documents);
        assert_eq!(index.candidates("bossdefeated"), [0]);
        assert_eq!(index.candidates("chatmessage"), [1]);
        assert_eq!(index.candidates("follow"), [1]);
        assert!(index.candidates("cheer").is_empty());
    }
}
