//! The one internal event type that every face, outbound connection and rule step produces and
//! consumes, and the loose name matching used wherever sources and types are compared.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Something that happened: a follow, a gift, a game's boss fight, a rule's `emit`.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Assigned by Switchboard, never by a client.
    pub id: Uuid,
    /// "twitch", "tiktok", "mygame", ... kept as spelled by whoever created the event.
    pub source: String,
    /// "follow", "gift", "Custom", ... kept as spelled; serialised as `type`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(serialize_with = "serialize_millis")]
    pub timestamp: DateTime<Utc>,
    pub user: Option<User>,
    /// Channel, guild or Astro room, when the event belongs to one.
    pub room: Option<String>,
    /// The payload, kept as given.
    pub data: Value,
    /// How many `emit` steps lie between this event and the outside event that caused it.
    #[serde(skip)]
    pub hops: u8,
}

/// The user an event is about. Fields beyond `id`, `username` and `nickname` are kept as given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// The name credits and overlays show: `nickname`, else `username`, else `id`.
    pub fn display_name(&self) -> Option<&str> {
        [&self.nickname, &self.username, &self.id]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|name| !name.is_empty())
    }
}

impl User {
    /// The user's roles (docs/rules.md §2): its own `roles`, lower-cased, plus one per true flag.
    pub fn roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = self
            .extra
            .get("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect();
        let flags = [
            ("isBroadcaster", "broadcaster"),
            ("isModerator", "moderator"),
            ("isVip", "vip"),
            ("isSubscriber", "subscriber"),
            ("isSubscribed", "subscriber"),
            ("isEditor", "editor"),
        ];
        for (flag, role) in flags {
            if self.extra.get(flag) == Some(&Value::Bool(true)) && !roles.iter().any(|r| r == role)
            {
                roles.push(role.to_owned());
            }
        }
        roles
    }
}

impl Event {
    /// A new event with a fresh id and the current time.
    pub fn new(source: impl Into<String>, kind: impl Into<String>, data: Value) -> Event {
        Event {
            id: Uuid::new_v4(),
            source: source.into(),
            kind: kind.into(),
            timestamp: Utc::now(),
            user: None,
            room: None,
            data,
            hops: 0,
        }
    }

    /// The event as templates and conditions see it (docs/rules.md §2): every field present, and the
    /// user with its `roles`.
    pub fn to_facts(&self) -> Value {
        let mut facts = serde_json::to_value(self).expect("events serialize to JSON");
        if let Some(user) = &self.user {
            facts["user"]["roles"] = Value::from(user.roles());
        }
        facts
    }
}

/// RFC 3339 in UTC with milliseconds and a `+00:00` offset, the form every face writes.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, false)
}

fn serialize_millis<S: serde::Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(time))
}

/// The loose form names are compared in: lower-case, with `_`, `-`, `.` and spaces removed, so
/// that `GiftSub`, `gift_sub` and `gift-sub` are the same name.
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A string, number or boolean as text (docs/custom.md §2.3); `None` for objects and arrays.
pub fn coerce(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_to_one_form() {
        for name in ["GiftSub", "gift_sub", "gift-sub", "GIFT.SUB", "gift sub"] {
            assert_eq!(normalise(name), "giftsub", "{name}");
        }
    }

    #[test]
    fn display_name_prefers_nickname_then_username_then_id() {
        let mut user = User {
            id: Some("1".into()),
            username: Some("".into()),
            ..User::default()
        };
        assert_eq!(user.display_name(), Some("1"));
        user.username = Some("alice".into());
        assert_eq!(user.display_name(), Some("alice"));
        user.nickname = Some("Alice".into());
        assert_eq!(user.display_name(), Some("Alice"));
    }

    #[test]
    fn roles_come_from_the_list_and_the_flags() {
        let user: User = serde_json::from_value(serde_json::json!({"id": "1", "roles": ["VIP"], "isModerator": true, "isSubscribed": true})).unwrap();
        assert_eq!(user.roles(), ["vip", "moderator", "subscriber"]);
    }

    #[test]
    fn facts_have_every_field() {
        let event = Event::new("twitch", "follow", serde_json::json!({"a": 1}));
        let facts = event.to_facts();
        for key in ["id", "source", "type", "timestamp", "user", "room", "data"] {
            assert!(facts.get(key).is_some(), "{key} missing");
        }
        assert!(facts["timestamp"].as_str().unwrap().ends_with("+00:00"));
    }
}
