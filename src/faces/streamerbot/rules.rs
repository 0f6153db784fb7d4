//! `GetCodeTriggers` and `GetCommands` (docs/streamerbot.md §4.6): what the loaded rules listen to.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::protocol::Reply;
use crate::engine::document::TriggerForm;
use crate::engine::loader::DocumentSet;
use crate::event::normalise;

/// Enabled rules in name order.
fn rules_by_name(documents: &DocumentSet) -> Vec<&crate::engine::document::Document> {
    let mut rules: Vec<_> = documents
        .documents
        .iter()
        .filter(|document| !document.triggers.is_empty())
        .map(|document| document.as_ref())
        .collect();
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    rules
}

/// One entry per distinct normalised `on` of enabled event triggers of enabled rules whose
/// sources admit `custom`, sorted by `eventName`.
pub fn code_triggers(documents: &DocumentSet) -> Reply {
    let mut triggers: BTreeMap<String, (String, String)> = BTreeMap::new();
    for rule in rules_by_name(documents)
        .into_iter()
        .filter(|rule| rule.enabled)
    {
        for trigger in &rule.triggers {
            let admits_custom =
                trigger.sources.is_empty() || trigger.sources.iter().any(|s| s == "custom");
            if trigger.enabled && admits_custom && matches!(trigger.form, TriggerForm::Event { .. })
            {
                triggers
                    .entry(normalise(&trigger.on))
                    .or_insert_with(|| (trigger.on.clone(), trigger.on.clone()));
            }
        }
    }
    let mut list: Vec<Value> = triggers
        .into_values()
        .map(|(name, event_name)| json!({"name": name, "eventName": event_name, "category": "Rules"}))
        .collect();
    list.sort_by(|a, b| a["eventName"].as_str().cmp(&b["eventName"].as_str()));
    Reply::with(json!({"count": list.len(), "triggers": list}))
}

/// One entry per rule with a command trigger, in rule-name order.
pub fn commands(documents: &DocumentSet) -> Reply {
    let mut list = Vec::new();
    for rule in rules_by_name(documents) {
        let commands: Vec<(
            &crate::engine::document::Trigger,
            &crate::engine::document::Command,
        )> = rule
            .triggers
            .iter()
            .filter_map(|trigger| match &trigger.form {
                TriggerForm::Command(command) => Some((trigger, command)),
                _ => None,
            })
            .collect();
        let Some((first_trigger, first)) = commands.first() else {
            continue;
        };
        let names: Vec<&str> = commands
            .iter()
            .flat_map(|(_, command)| command.names.iter().map(|(name, _)| name.as_str()))
            .collect();
        list.push(json!({
            "id": rule.id,
            "enabled": rule.enabled,
            "name": rule.name,
            "group": rule.group.as_deref().unwrap_or("None"),
            "commands": names,
            "caseSensitive": first.case_sensitive,
            "ignoreInternal": false,
            "ignoreBotAccount": false,
            "sources": first_trigger.sources,
        }));
    }
    Reply::with(json!({"count": list.len(), "commands": list}))
}
