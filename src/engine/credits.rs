//! The credits recorder (docs/rules.md §13): Streamer.bot's end-of-stream credits, kept from every
//! published event and from `credits.add` steps, persisted in the `credits` tree.
//!
//! The recorder is plain state owned by the engine actor; the engine persists it (and waits for
//! the flush) before acknowledging whatever changed it.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::event::{normalise, Event, User};

/// The credit lists in `GetCredits` order: (group, list).
const LISTS: &[(&str, &str)] = &[
    ("events", "follows"),
    ("events", "cheers"),
    ("events", "subs"),
    ("events", "resubs"),
    ("events", "giftsubs"),
    ("events", "giftbombs"),
    ("events", "raided"),
    ("events", "rewardredemptions"),
    ("events", "goalcontributions"),
    ("events", "gameupdates"),
    ("events", "pyramids"),
    ("events", "hypetrains"),
    ("hypeTrain", "conductors"),
    ("hypeTrain", "contributors"),
    ("users", "editors"),
    ("users", "moderators"),
    ("users", "subscribers"),
    ("users", "vips"),
    ("users", "groups"),
    ("users", "users"),
];
/// The version of the stored record's shape.
const SCHEMA_VERSION: u32 = 1;
/// How many entries each top list shows.
const TOP: usize = 10;
/// Streamer.bot resets its credits 12 hours after it was closed; so does a start after that long.
pub const STALE_AFTER: Duration = Duration::hours(12);
/// The names `TestCredits` fills every list with.
pub const TEST_NAMES: &[&str] = &["TestUser1", "TestUser2", "TestUser3"];
/// Event types read as chat messages (docs/rules.md §3.2 default list), normalised.
const CHAT_TYPES: &[&str] = &["chat", "chatmessage", "message", "messagecreate"];

/// Totals per user for one top list, in first-seen order; `period` names the month or week.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Totals {
    period: String,
    totals: Vec<(String, f64)>,
}

impl Totals {
    fn add(&mut self, period: &str, name: &str, amount: f64) {
        if self.period != period {
            self.period = period.to_owned();
            self.totals.clear();
        }
        match self.totals.iter_mut().find(|(who, _)| who == name) {
            Some((_, total)) => *total += amount,
            None => self.totals.push((name.to_owned(), amount)),
        }
    }

    fn top(&self, period: &str) -> Vec<String> {
        if self.period != period {
            return Vec::new();
        }
        let mut sorted = self.totals.clone();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
        sorted.into_iter().take(TOP).map(|(name, _)| name).collect()
    }
}

/// The recorder's whole state, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Credits {
    schema_version: u32,
    /// `group.list` → names in first-seen order.
    lists: BTreeMap<String, Vec<String>>,
    /// `custom.<category>` lists, by category as written.
    custom: BTreeMap<String, Vec<String>>,
    all_bits: Totals,
    month_bits: Totals,
    week_bits: Totals,
    channel_rewards: Totals,
    updated_at: Option<DateTime<Utc>>,
}

fn month(now: DateTime<Utc>) -> String {
    format!("{}-{:02}", now.year(), now.month())
}

fn week(now: DateTime<Utc>) -> String {
    let week = now.iso_week();
    format!("{}-W{:02}", week.year(), week.week())
}

fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The display name of a user given as a string or a user object.
fn name_of(value: &Value) -> Option<String> {
    match value {
        Value::String(name) if !name.is_empty() => Some(name.clone()),
        Value::Object(_) => serde_json::from_value::<User>(value.clone())
            .ok()?
            .display_name()
            .map(str::to_owned),
        _ => None,
    }
}

impl Credits {
    /// The stored state, cleared first when it last changed more than 12 hours before `now`.
    pub fn restored(stored: Option<Credits>, now: DateTime<Utc>) -> (Credits, bool) {
        let mut credits = stored.unwrap_or_default();
        credits.schema_version = SCHEMA_VERSION;
        let stale = credits
            .updated_at
            .is_some_and(|updated| now - updated > STALE_AFTER);
        if stale {
            credits.clear(now);
        }
        (credits, stale)
    }

    fn push(&mut self, group: &str, list: &str, name: &str) -> bool {
        let names = self.lists.entry(format!("{group}.{list}")).or_default();
        if names.iter().any(|known| known == name) {
            return false;
        }
        names.push(name.to_owned());
        true
    }

    /// Records one published event; returns whether anything changed.
    pub fn record(&mut self, event: &Event) -> bool {
        let kind = normalise(&event.kind);
        let user = event
            .user
            .as_ref()
            .and_then(User::display_name)
            .map(str::to_owned);
        let data = &event.data;
        let mut changed = false;
        let mut push_user = |credits: &mut Credits, list: &str| {
            if let Some(name) = &user {
                changed |= credits.push("events", list, name);
            }
        };
        match kind.as_str() {
            "follow" => push_user(self, "follows"),
            "cheer" => {
                push_user(self, "cheers");
                if let (Some(name), Some(bits)) = (
                    &user,
                    number(data.get("bits")).or_else(|| number(data.get("amount"))),
                ) {
                    let now = event.timestamp;
                    self.all_bits.add("all", name, bits);
                    self.month_bits.add(&month(now), name, bits);
                    self.week_bits.add(&week(now), name, bits);
                    changed = true;
                }
            }
            "sub" | "subscribe" | "newsponsor" => push_user(self, "subs"),
            "resub" | "membermilestone" => push_user(self, "resubs"),
            "giftsub" | "membershipgift" => push_user(self, "giftsubs"),
            "giftbomb" => push_user(self, "giftbombs"),
            "raid" => push_user(self, "raided"),
            "rewardredemption" | "channelpoints" | "channelpointredeem" => {
                push_user(self, "rewardredemptions");
                let cost = number(data.pointer("/reward/cost"))
                    .or_else(|| number(data.get("rewardCost")))
                    .or_else(|| number(data.get("cost")));
                if let (Some(name), Some(cost)) = (&user, cost) {
                    self.channel_rewards.add("all", name, cost);
                    changed = true;
                }
            }
            "communitygoalcontribution" | "goalcontribution" => {
                push_user(self, "goalcontributions")
            }
            "streamupdate" | "gameupdate" => {
                let game = ["gameName", "game", "category"]
                    .iter()
                    .find_map(|key| data.get(*key).and_then(Value::as_str));
                if let Some(game) = game {
                    changed |= self.push("events", "gameupdates", game);
                }
            }
            "pyramidsuccess" => push_user(self, "pyramids"),
            _ => {}
        }
        if kind == "hypetrainend" {
            if let Some(level) = data.get("level").filter(|level| !level.is_null()) {
                let level = level
                    .as_str()
                    .map_or_else(|| level.to_string(), str::to_owned);
                changed |= self.push("events", "hypetrains", &format!("Level {level}"));
            }
            let conductors = data
                .get("conductors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .chain(
                    [
                        "/top/bits/user",
                        "/top/subscription/user",
                        "/top/other/user",
                    ]
                    .iter()
                    .filter_map(|pointer| data.pointer(pointer)),
                );
            for conductor in conductors.filter_map(name_of).collect::<Vec<_>>() {
                changed |= self.push("hypeTrain", "conductors", &conductor);
            }
        }
        if matches!(
            kind.as_str(),
            "hypetrainstart" | "hypetrainupdate" | "hypetrainlevelup" | "hypetrainend"
        ) {
            let contributors = data
                .get("contributors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(name_of);
            for contributor in user
                .clone()
                .into_iter()
                .chain(contributors)
                .collect::<Vec<_>>()
            {
                changed |= self.push("hypeTrain", "contributors", &contributor);
            }
        }
        if CHAT_TYPES.contains(&kind.as_str()) {
            if let (Some(name), Some(chatter)) = (&user, &event.user) {
                for role in chatter.roles() {
                    let list = match role.as_str() {
                        "editor" => "editors",
                        "moderator" => "moderators",
                        "subscriber" => "subscribers",
                        "vip" => "vips",
                        _ => continue,
                    };
                    changed |= self.push("users", list, name);
                }
                changed |= self.push("users", "users", name);
            }
        }
        if changed {
            self.updated_at = Some(Utc::now());
        }
        changed
    }

    /// A `credits.add` step: a known list by normalised name, else `custom.<category>`.
    pub fn add(&mut self, category: &str, name: &str) -> bool {
        let wanted = normalise(category);
        let changed = match LISTS.iter().find(|(_, list)| normalise(list) == wanted) {
            Some((group, list)) => self.push(group, list, name),
            None => {
                let names = self.custom.entry(category.to_owned()).or_default();
                let new = !names.iter().any(|known| known == name);
                if new {
                    names.push(name.to_owned());
                }
                new
            }
        };
        if changed {
            self.updated_at = Some(Utc::now());
        }
        changed
    }

    /// `TestCredits`: every list (groups excepted: Level 1 has none) gets the test names.
    pub fn fill_with_test_names(&mut self, now: DateTime<Utc>) {
        for (group, list) in LISTS {
            if *list == "groups" {
                continue;
            }
            for name in TEST_NAMES {
                self.push(group, list, name);
            }
        }
        for (index, name) in TEST_NAMES.iter().enumerate() {
            let amount = (TEST_NAMES.len() - index) as f64 * 100.0;
            self.all_bits.add("all", name, amount);
            self.month_bits.add(&month(now), name, amount);
            self.week_bits.add(&week(now), name, amount);
            self.channel_rewards.add("all", name, amount);
        }
        for names in self.custom.values_mut() {
            for name in TEST_NAMES {
                if !names.iter().any(|known| known == name) {
                    names.push((*name).to_owned());
                }
            }
        }
        self.updated_at = Some(now);
    }

    /// `ClearCredits`: every list is emptied except the top totals.
    pub fn clear(&mut self, now: DateTime<Utc>) {
        self.lists.clear();
        self.custom.clear();
        self.updated_at = Some(now);
    }

    /// The `GetCredits` payload, every key present.
    pub fn to_reply(&self, now: DateTime<Utc>) -> Map<String, Value> {
        let mut reply = Map::new();
        for (group, list) in LISTS {
            let names = self
                .lists
                .get(&format!("{group}.{list}"))
                .cloned()
                .unwrap_or_default();
            reply
                .entry(group.to_string())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("groups are objects")
                .insert(list.to_string(), Value::from(names));
        }
        reply.insert("groups".into(), json!({}));
        reply.insert(
            "top".into(),
            json!({
                "allBits": self.all_bits.top("all"),
                "monthBits": self.month_bits.top(&month(now)),
                "weekBits": self.week_bits.top(&week(now)),
                "channelRewards": self.channel_rewards.top("all"),
            }),
        );
        reply.insert(
            "custom".into(),
            serde_json::to_value(&self.custom).expect("lists serialize"),
        );
        // Keep Streamer.bot's key order: events, hypeTrain, users, groups, top, custom.
        let order = ["events", "hypeTrain", "users", "groups", "top", "custom"];
        order
            .iter()
            .map(|key| {
                (
                    key.to_string(),
                    reply.remove(*key).expect("every group is present"),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, user: Value, data: Value) -> Event {
        let mut event = Event::new("twitch", kind, data);
        event.user = serde_json::from_value(user).unwrap();
        event
    }

    #[test]
    fn follows_cheers_and_chat_are_recorded_once_each() {
        let mut credits = Credits::default();
        assert!(credits.record(&event(
            "follow",
            json!({"id": "1", "nickname": "Alice"}),
            json!({})
        )));
        assert!(!credits.record(&event(
            "Follow",
            json!({"id": "1", "nickname": "Alice"}),
            json!({})
        )));
        credits.record(&event(
            "cheer",
            json!({"username": "bob"}),
            json!({"bits": 100}),
        ));
        credits.record(&event(
            "ChatMessage",
            json!({"username": "modmia", "isModerator": true}),
            json!({"message": "hi"}),
        ));
        credits.record(&event(
            "stream_update",
            json!(null),
            json!({"gameName": "Elden Ring"}),
        ));
        let reply = credits.to_reply(Utc::now());
        assert_eq!(reply["events"]["follows"], json!(["Alice"]));
        assert_eq!(reply["events"]["cheers"], json!(["bob"]));
        assert_eq!(reply["events"]["gameupdates"], json!(["Elden Ring"]));
        assert_eq!(reply["users"]["moderators"], json!(["modmia"]));
        assert_eq!(reply["users"]["users"], json!(["modmia"]));
        assert_eq!(reply["top"]["allBits"], json!(["bob"]));
        assert_eq!(reply["top"]["weekBits"], json!(["bob"]));
        let keys: Vec<&String> = reply.keys().collect();
        assert_eq!(
            keys,
            ["events", "hypeTrain", "users", "groups", "top", "custom"]
        );
    }

    #[test]
    fn hype_trains_record_level_conductors_and_contributors() {
        let mut credits = Credits::default();
        credits.record(&event(
            "hype_train_end",
            json!({"username": "ann"}),
            json!({
            "level": 3, "conductors": ["cat", {"nickname": "Dan"}],
            "top": {"bits": {"user": {"username": "eve"}}}, "contributors": ["fay"]}),
        ));
        let reply = credits.to_reply(Utc::now());
        assert_eq!(reply["events"]["hypetrains"], json!(["Level 3"]));
        assert_eq!(
            reply["hypeTrain"]["conductors"],
            json!(["cat", "Dan", "eve"])
        );
        assert_eq!(reply["hypeTrain"]["contributors"], json!(["ann", "fay"]));
    }

    #[test]
    fn test_names_fill_and_clear_keeps_the_top_totals() {
        let mut credits = Credits::default();
        credits.add("gifts", "Carol");
        credits.fill_with_test_names(Utc::now());
        let reply = credits.to_reply(Utc::now());
        assert_eq!(reply["events"]["follows"], json!(TEST_NAMES));
        assert_eq!(reply["users"]["groups"], json!([]));
        assert_eq!(
            reply["custom"]["gifts"],
            json!(["Carol", "TestUser1", "TestUser2", "TestUser3"])
        );
        credits.clear(Utc::now());
        let reply = credits.to_reply(Utc::now());
        assert_eq!(reply["events"]["follows"], json!([]));
        assert_eq!(reply["top"]["allBits"], json!(TEST_NAMES));
    }

    #[test]
    fn credits_older_than_12_hours_are_cleared_at_start() {
        let mut credits = Credits::default();
        credits.add("follows", "Alice");
        let later = credits.updated_at.unwrap() + Duration::hours(13);
        let (restored, cleared) = Credits::restored(Some(credits.clone()), later);
        assert!(cleared);
        assert_eq!(restored.to_reply(later)["events"]["follows"], json!([]));
        let (kept, cleared) = Credits::restored(Some(credits), Utc::now());
        assert!(!cleared);
        assert_eq!(
            kept.to_reply(Utc::now())["events"]["follows"],
            json!(["Alice"])
        );
    }
}
