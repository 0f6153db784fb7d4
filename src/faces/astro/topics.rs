//! The Astro topics and how an event reaches them (docs/astro.md §7 and §8).
//!
//! [`TOPICS`] lists the 26 topics a client may subscribe to, each with the scope a token needs.
//! [`route`] turns one published event into the notifications it produces: the registry calls it
//! once per publish for the Astro face, and the face then keeps the notifications whose topic the
//! connection holds. [`wanted_types`] tells the registry in advance which event types can produce
//! a notification on a topic, so that it only routes events some connection can receive.
//!
//! Nothing here knows about connections, rooms held or tokens: the functions are pure.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::event::{normalise, Event};

/// A topic of §8: its name as clients spell it and the scope a token needs to subscribe.
#[derive(Debug, PartialEq, Eq)]
pub struct Topic {
    pub name: &'static str,
    /// `None` for the topics any valid token for the room may subscribe to.
    pub scope: Option<&'static str>,
}

const fn scoped(name: &'static str, scope: &'static str) -> Topic {
    Topic {
        name,
        scope: Some(scope),
    }
}

const fn open(name: &'static str) -> Topic {
    Topic { name, scope: None }
}

/// Every topic of §8, in the order of its table.
pub static TOPICS: [Topic; 26] = [
    scoped(ACTIVITIES, "activities:read"),
    scoped(TIPS, "tips:read"),
    scoped("channel.tips.moderation", "tips:moderation"),
    scoped(CHAT, "overlays:read"),
    scoped("channel.session.update", "session:read"),
    scoped("channel.session.reset", "session:read"),
    scoped("channel.stream.status", "stream-live:read"),
    scoped("channel.overlay.action", "overlays:read"),
    scoped("channel.overlay.broadcast", "overlays:broadcast"),
    scoped("channel.overlay.update", "overlays:read"),
    scoped("channel.songrequest", "overlays:read"),
    open("channel.contests"),
    open("channel.giveaways"),
    scoped("channel.chatbot.status", "bot:read"),
    scoped("channel.chatbot.modules", "bot:read"),
    scoped("channel.chatbot.modules.pyramid", "bot:read"),
    scoped("channel.chatbot.modules.emotecombo", "bot:read"),
    scoped("channel.chatbot.commands", "bot:read"),
    scoped("channel.chatbot.timers", "bot:read"),
    scoped("channel.chatbot.filters", "bot:read"),
    open("channel.chatbot.counters"),
    scoped("channel.announcements", "channel:read"),
    open("channel.chatstats"),
    scoped("channel.kvstore.update", "kvstore:read"),
    scoped("channel.loyalty.redemptions", "store:read"),
    scoped("channel.loyalty.items", "store:read"),
];

/// The three topics that rules 2 and 3 of §7.1 feed besides rule 1.
const ACTIVITIES: &str = "channel.activities";
const TIPS: &str = "channel.tips";
const CHAT: &str = "channel.chat.message";

/// The normalised event types that are chat messages (§7.1 rule 2).
const CHAT_TYPES: [&str; 2] = ["chat", "chatmessage"];

/// The activity table of §7.1: the activity `type` sent, then the normalised event types that
/// produce it. Each event type appears once.
const ACTIVITY_TYPES: &[(&str, &[&str])] = &[
    ("follow", &["follow"]),
    ("follower", &["follower"]),
    (
        "subscriber",
        &["subscriber", "sub", "subscribe", "subscription", "resub"],
    ),
    (
        "communityGiftPurchase",
        &["communitygiftpurchase", "giftsub", "subgift", "giftedsub"],
    ),
    ("cheer", &["cheer", "bits"]),
    ("cheerPurchase", &["cheerpurchase"]),
    (TIP, &["tip", "donation", "donate"]),
    (
        "charityCampaignDonation",
        &[
            "charitycampaigndonation",
            "charitydonation",
            "charitydonate",
        ],
    ),
    ("raid", &["raid"]),
    ("host", &["host"]),
    ("superchat", &["superchat"]),
    ("sponsor", &["sponsor", "membership", "newmember"]),
    (
        "channelPointsRedemption",
        &[
            "channelpointsredemption",
            "channelpoints",
            "channelpointredeem",
            "channelpointredemption",
        ],
    ),
    ("hypetrainStart", &["hypetrainstart", "hypetrainbegin"]),
    ("hypetrainProgress", &["hypetrainprogress"]),
    ("hypetrainEnd", &["hypetrainend"]),
    ("event", &["event"]),
    ("redemption", &["redemption"]),
    ("merch", &["merch"]),
    ("purchase", &["purchase"]),
    ("fan", &["fan"]),
    ("supporter", &["supporter"]),
    ("stars", &["stars"]),
    ("share", &["share"]),
    ("videolike", &["videolike"]),
    ("elixir", &["elixir"]),
    ("giveaway", &["giveaway"]),
    ("sponsorship", &["sponsorship"]),
    ("sponsorshipPassive", &["sponsorshippassive"]),
];

/// The activity type that also goes to `channel.tips` (§7.1 rule 3).
const TIP: &str = "tip";

/// The sources Astro knows by name (§7.1 "Provider"), normalised, with Astro's spelling.
const PROVIDERS: [(&str, &str); 10] = [
    ("twitch", "twitch"),
    ("youtube", "youtube"),
    ("kick", "kick"),
    ("represent", "represent"),
    ("fourthwall", "fourthwall"),
    ("lunar", "lunar"),
    ("lilithgames", "lilithgames"),
    ("x", "x"),
    ("grabtap", "grabtap"),
    ("streamelements", "StreamElements"),
];

/// Topics by normalised name, for rule 1 of §7.1.
static TOPICS_BY_NORMALISED_NAME: LazyLock<HashMap<String, &'static Topic>> = LazyLock::new(|| {
    TOPICS
        .iter()
        .map(|topic| (normalise(topic.name), topic))
        .collect()
});

/// Activity types by normalised event type, for rule 3 of §7.1.
static ACTIVITY_BY_EVENT_TYPE: LazyLock<HashMap<&'static str, &'static str>> =
    LazyLock::new(|| {
        ACTIVITY_TYPES
            .iter()
            .flat_map(|(activity, event_types)| {
                event_types
                    .iter()
                    .map(move |event_type| (*event_type, *activity))
            })
            .collect()
    });

/// The topic a client names, compared exactly (§4 check 6).
pub fn topic(name: &str) -> Option<&'static Topic> {
    TOPICS.iter().find(|topic| topic.name == name)
}

fn known(name: &str) -> &'static Topic {
    topic(name).expect("the topics rules 2 and 3 feed are in TOPICS")
}

/// One notification an event produces: the topic it goes to and the `data` of the `message`.
/// The room is the event's room.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub topic: &'static Topic,
    pub data: Value,
}

/// The notifications of one event, by the rules of §7.1 (the first that applies decides).
///
/// Empty when the event has no room (an empty room counts as none: no subscription can hold
/// it, since every token's room is non-empty) or when no rule applies.
pub fn route(event: &Event) -> Vec<Notification> {
    let Some(room) = event.room.as_deref().filter(|room| !room.is_empty()) else {
        return Vec::new();
    };
    let kind = normalise(&event.kind);
    if let Some(&topic) = TOPICS_BY_NORMALISED_NAME.get(&kind) {
        return vec![Notification {
            topic,
            data: event.data.clone(),
        }];
    }
    if CHAT_TYPES.contains(&kind.as_str()) {
        return vec![Notification {
            topic: known(CHAT),
            data: event.data.clone(),
        }];
    }
    let Some(&activity) = ACTIVITY_BY_EVENT_TYPE.get(kind.as_str()) else {
        return Vec::new();
    };
    let provider = provider(&event.source);
    let mut notifications = vec![Notification {
        topic: known(ACTIVITIES),
        data: activity_body(event, room, activity, provider),
    }];
    if activity == TIP {
        notifications.push(Notification {
            topic: known(TIPS),
            data: tip_body(event, room, provider),
        });
    }
    notifications
}

/// The normalised event types that can produce a notification on `topic`: its own normalised
/// name (rule 1 of §7.1), plus the chat types for `channel.chat.message`, every activity type
/// for `channel.activities` and the tip types for `channel.tips`.
pub fn wanted_types(topic: &Topic) -> Vec<String> {
    let mut types = vec![normalise(topic.name)];
    let extra: Vec<&str> = match topic.name {
        CHAT => CHAT_TYPES.to_vec(),
        ACTIVITIES => ACTIVITY_TYPES
            .iter()
            .flat_map(|(_, event_types)| event_types.iter().copied())
            .collect(),
        TIPS => ACTIVITY_TYPES
            .iter()
            .filter(|(activity, _)| *activity == TIP)
            .flat_map(|(_, event_types)| event_types.iter().copied())
            .collect(),
        _ => Vec::new(),
    };
    types.extend(extra.into_iter().map(str::to_owned));
    types
}

/// The `provider` of §7.1: Astro's spelling for the sources it knows, else the source as given.
fn provider(source: &str) -> &str {
    let normalised = normalise(source);
    PROVIDERS
        .iter()
        .find(|(name, _)| *name == normalised)
        .map_or(source, |(_, spelling)| *spelling)
}

/// RFC 3339 in UTC with milliseconds and a `Z` suffix, as Astro writes `createdAt`. This differs
/// from the `+00:00` of the other faces on purpose.
fn astro_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The activity body of §7.2.
#[derive(Serialize)]
struct ActivityBody<'a> {
    #[serde(rename = "_id")]
    id: String,
    channel: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    provider: &'a str,
    #[serde(rename = "createdAt")]
    created_at: &'a str,
    #[serde(rename = "updatedAt")]
    updated_at: &'a str,
    data: Map<String, Value>,
}

fn activity_body(event: &Event, room: &str, activity: &str, provider: &str) -> Value {
    let time = astro_time(&event.timestamp);
    let body = ActivityBody {
        id: event.id.hyphenated().to_string(),
        channel: room,
        kind: activity,
        provider,
        created_at: &time,
        updated_at: &time,
        data: activity_data(event),
    };
    serde_json::to_value(body).expect("activity bodies serialize to JSON")
}

/// The event's `data` as an object, with the user's fields it lacks (§7.2).
fn activity_data(event: &Event) -> Map<String, Value> {
    let mut data = match &event.data {
        Value::Object(data) => data.clone(),
        other => Map::from_iter([("value".to_owned(), other.clone())]),
    };
    let Some(user) = &event.user else {
        return data;
    };
    let non_empty = |field: &Option<String>| field.clone().filter(|value| !value.is_empty());
    let avatar = user
        .extra
        .get("profilePictureUrl")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let fields = [
        ("username", non_empty(&user.username)),
        (
            "displayName",
            non_empty(&user.nickname).or_else(|| non_empty(&user.username)),
        ),
        ("providerId", non_empty(&user.id)),
        ("avatar", non_empty(&avatar)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            data.entry(key).or_insert(Value::String(value));
        }
    }
    data
}

/// The tip body of §7.3.
#[derive(Serialize)]
struct TipBody<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    channel: &'a str,
    provider: &'a str,
    approved: &'static str,
    status: &'static str,
    #[serde(rename = "createdAt")]
    created_at: &'a str,
    #[serde(rename = "updatedAt")]
    updated_at: &'a str,
    #[serde(rename = "transactionId")]
    transaction_id: &'a str,
    donation: Donation<'a>,
}

#[derive(Serialize)]
struct Donation<'a> {
    user: DonationUser<'a>,
    message: &'a str,
    amount: Number,
    currency: &'a str,
}

#[derive(Serialize)]
struct DonationUser<'a> {
    username: &'a str,
}

fn tip_body(event: &Event, room: &str, provider: &str) -> Value {
    let id = event.id.hyphenated().to_string();
    let time = astro_time(&event.timestamp);
    let text = |key: &str| event.data.get(key).and_then(Value::as_str);
    let username = event
        .user
        .as_ref()
        .and_then(|user| user.username.as_deref())
        .filter(|username| !username.is_empty())
        .or_else(|| text("username"))
        .unwrap_or_default();
    let body = TipBody {
        id: &id,
        channel: room,
        provider,
        approved: "allowed",
        status: "success",
        created_at: &time,
        updated_at: &time,
        transaction_id: &id,
        donation: Donation {
            user: DonationUser { username },
            message: text("message").unwrap_or_default(),
            amount: amount(event.data.get("amount")),
            currency: text("currency").unwrap_or_default(),
        },
    };
    serde_json::to_value(body).expect("tip bodies serialize to JSON")
}

/// `data.amount` of §7.3: a number as given; a string that holds a JSON number (surrounding
/// whitespace ignored) becomes that number, so `"5.50"` is sent as `5.5` and `"5"` as `5`;
/// anything else is `0`.
fn amount(value: Option<&Value>) -> Number {
    match value {
        Some(Value::Number(number)) => number.clone(),
        Some(Value::String(text)) => text.trim().parse().unwrap_or_else(|_| Number::from(0)),
        _ => Number::from(0),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeZone;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::event::User;

    fn event(source: &str, kind: &str, room: Option<&str>, data: Value) -> Event {
        let mut event = Event::new(source, kind, data);
        event.room = room.map(str::to_owned);
        event.timestamp = Utc.with_ymd_and_hms(2025, 11, 22, 10, 0, 6).unwrap();
        event
    }

    fn topics_of(notifications: &[Notification]) -> Vec<&'static str> {
        notifications.iter().map(|n| n.topic.name).collect()
    }

    #[test]
    fn the_topic_table_has_every_topic_once_with_its_scope() {
        let names: HashSet<&str> = TOPICS.iter().map(|topic| topic.name).collect();
        assert_eq!(names.len(), 26);
        assert_eq!(
            topic("channel.activities").unwrap().scope,
            Some("activities:read")
        );
        assert_eq!(
            topic("channel.overlay.broadcast").unwrap().scope,
            Some("overlays:broadcast")
        );
        assert_eq!(
            topic("channel.kvstore.update").unwrap().scope,
            Some("kvstore:read")
        );
        let open: Vec<&str> = TOPICS
            .iter()
            .filter(|topic| topic.scope.is_none())
            .map(|topic| topic.name)
            .collect();
        assert_eq!(
            open,
            [
                "channel.contests",
                "channel.giveaways",
                "channel.chatbot.counters",
                "channel.chatstats"
            ]
        );
    }

    #[test]
    fn topics_are_looked_up_exactly() {
        assert_eq!(topic("channel.tips").unwrap().name, "channel.tips");
        assert!(topic("Channel.Tips").is_none());
        assert!(topic("channel_tips").is_none());
        assert!(topic("").is_none());
    }

    #[test]
    fn activity_event_types_are_normalised_and_unique() {
        let mut seen = HashSet::new();
        for (activity, event_types) in ACTIVITY_TYPES {
            assert!(!event_types.is_empty(), "{activity}");
            for event_type in *event_types {
                assert_eq!(normalise(event_type), *event_type);
                assert!(seen.insert(*event_type), "{event_type} listed twice");
            }
        }
        assert_eq!(seen.len(), ACTIVITY_BY_EVENT_TYPE.len());
    }

    #[test]
    fn the_donation_example_produces_the_two_bodies_shown() {
        let mut donation = event(
            "streamlabs",
            "donation",
            Some("channel-1"),
            json!({"amount": 5, "currency": "USD", "message": "Great stream!"}),
        );
        donation.id = Uuid::parse_str("9d52dd0c-ebd2-4162-89c8-26f83f060874").unwrap();
        donation.user = Some(User {
            id: Some(String::new()),
            username: Some("bob".into()),
            nickname: Some("Bob".into()),
            ..User::default()
        });
        let notifications = route(&donation);
        assert_eq!(
            topics_of(&notifications),
            ["channel.activities", "channel.tips"]
        );
        assert_eq!(
            notifications[0].data,
            json!({"_id":"9d52dd0c-ebd2-4162-89c8-26f83f060874","channel":"channel-1","type":"tip","provider":"streamlabs","createdAt":"2025-11-22T10:00:06.000Z","updatedAt":"2025-11-22T10:00:06.000Z","data":{"amount":5,"currency":"USD","message":"Great stream!","username":"bob","displayName":"Bob"}})
        );
        assert_eq!(
            notifications[1].data,
            json!({"_id":"9d52dd0c-ebd2-4162-89c8-26f83f060874","channel":"channel-1","provider":"streamlabs","approved":"allowed","status":"success","createdAt":"2025-11-22T10:00:06.000Z","updatedAt":"2025-11-22T10:00:06.000Z","transactionId":"9d52dd0c-ebd2-4162-89c8-26f83f060874","donation":{"user":{"username":"bob"},"message":"Great stream!","amount":5,"currency":"USD"}})
        );
    }

    #[test]
    fn a_follow_becomes_an_activity_with_provider_twitch() {
        let mut follow = event("Twitch", "Follow", Some("channel-1"), json!({}));
        follow.user = Some(User {
            id: Some("12345".into()),
            username: Some("alice".into()),
            nickname: Some("Alice".into()),
            ..User::default()
        });
        let notifications = route(&follow);
        assert_eq!(topics_of(&notifications), ["channel.activities"]);
        let body = &notifications[0].data;
        assert_eq!(body["type"], "follow");
        assert_eq!(body["provider"], "twitch");
        assert_eq!(body["channel"], "channel-1");
        assert_eq!(body["_id"], follow.id.to_string());
        assert_eq!(
            body["data"],
            json!({"username": "alice", "displayName": "Alice", "providerId": "12345"})
        );
    }

    #[test]
    fn providers_take_astros_spelling_and_unknown_sources_are_kept() {
        for (source, expected) in [
            ("streamelements", "StreamElements"),
            ("Stream_Elements", "StreamElements"),
            ("YouTube", "youtube"),
            ("X", "x"),
            ("tiktok", "tiktok"),
            ("MyGame", "MyGame"),
        ] {
            let cheer = event(source, "bits", Some("room"), json!({}));
            let notifications = route(&cheer);
            assert_eq!(notifications[0].data["provider"], expected, "{source}");
            assert_eq!(notifications[0].data["type"], "cheer");
        }
    }

    #[test]
    fn event_type_aliases_map_to_the_activity_type() {
        for (kind, activity) in [
            ("gift_sub", "communityGiftPurchase"),
            ("Re-Sub", "subscriber"),
            ("channel points", "channelPointsRedemption"),
            ("HypeTrainBegin", "hypetrainStart"),
            ("sponsorship_passive", "sponsorshipPassive"),
            ("new_member", "sponsor"),
        ] {
            let notifications = route(&event("twitch", kind, Some("r"), json!({})));
            assert_eq!(topics_of(&notifications), ["channel.activities"], "{kind}");
            assert_eq!(notifications[0].data["type"], activity, "{kind}");
        }
    }

    #[test]
    fn chat_data_is_sent_unchanged() {
        let data = json!({"message": {"text": "hi"}, "user": 7});
        for kind in ["chat", "Chat_Message"] {
            let notifications = route(&event("twitch", kind, Some("channel-1"), data.clone()));
            assert_eq!(topics_of(&notifications), ["channel.chat.message"]);
            assert_eq!(notifications[0].data, data);
        }
    }

    #[test]
    fn a_topic_named_event_goes_to_that_topic_only() {
        let data = json!({"target":"global","event":"confetti","data":{"count":50}});
        for kind in ["channel.overlay.broadcast", "channel_overlay_broadcast"] {
            let notifications = route(&event("rule", kind, Some("channel-1"), data.clone()));
            assert_eq!(topics_of(&notifications), ["channel.overlay.broadcast"]);
            assert_eq!(notifications[0].data, data);
        }
        // Rule 1 wins over rule 3: the data is not turned into an activity body.
        let notifications = route(&event("x", "channel.activities", Some("r"), json!(1)));
        assert_eq!(topics_of(&notifications), ["channel.activities"]);
        assert_eq!(notifications[0].data, json!(1));
    }

    #[test]
    fn an_event_without_a_room_or_without_a_rule_goes_nowhere() {
        assert!(route(&event("twitch", "follow", None, json!({}))).is_empty());
        assert!(route(&event("twitch", "follow", Some(""), json!({}))).is_empty());
        assert!(route(&event("twitch", "chat", None, json!({}))).is_empty());
        assert!(route(&event("twitch", "boss_fight", Some("r"), json!({}))).is_empty());
    }

    #[test]
    fn activity_data_keeps_its_own_fields_and_wraps_non_objects() {
        let mut tip = event(
            "kick",
            "tip",
            Some("r"),
            json!({"username": "given", "avatar": ""}),
        );
        let mut user = User {
            id: Some("9".into()),
            username: Some("bob".into()),
            nickname: Some(String::new()),
            ..User::default()
        };
        user.extra
            .insert("profilePictureUrl".into(), json!("https://a/b.png"));
        tip.user = Some(user);
        let data = &route(&tip)[0].data["data"];
        assert_eq!(
            data,
            &json!({"username": "given", "avatar": "", "displayName": "bob", "providerId": "9"})
        );

        let raid = event("twitch", "raid", Some("r"), json!(42));
        assert_eq!(route(&raid)[0].data["data"], json!({"value": 42}));
    }

    #[test]
    fn tip_fields_fall_back_to_data_and_defaults() {
        let tip = |data: Value| {
            route(&event("paypal", "donate", Some("r"), data))[1]
                .data
                .clone()
        };
        let body = tip(json!({"username": "carol", "amount": "12.50", "currency": 3}));
        assert_eq!(body["provider"], "paypal");
        assert_eq!(
            body["donation"],
            json!({"user": {"username": "carol"}, "message": "", "amount": 12.5, "currency": ""})
        );
        assert_eq!(
            tip(json!({"amount": " 7 "}))["donation"]["amount"],
            json!(7)
        );
        assert_eq!(
            tip(json!({"amount": "lots"}))["donation"]["amount"],
            json!(0)
        );
        assert_eq!(tip(json!({"amount": null}))["donation"]["amount"], json!(0));
        assert_eq!(tip(json!("x"))["donation"]["user"]["username"], "");
    }

    #[test]
    fn wanted_types_are_exactly_the_types_that_reach_the_topic() {
        let mut candidates: HashSet<String> = ACTIVITY_BY_EVENT_TYPE
            .keys()
            .map(|kind| kind.to_string())
            .collect();
        candidates.extend(CHAT_TYPES.iter().map(|kind| kind.to_string()));
        candidates.extend(TOPICS.iter().map(|topic| normalise(topic.name)));
        candidates.insert("bossfight".into());
        for topic in &TOPICS {
            let wanted: HashSet<String> = wanted_types(topic).into_iter().collect();
            for kind in &candidates {
                let reaches = topics_of(&route(&event("t", kind, Some("r"), json!({}))))
                    .contains(&topic.name);
                assert_eq!(wanted.contains(kind), reaches, "{} / {kind}", topic.name);
            }
        }
        assert_eq!(
            wanted_types(topic("channel.tips").unwrap()),
            ["channeltips", "tip", "donation", "donate"]
        );
        assert_eq!(
            wanted_types(topic("channel.activities").unwrap()).len(),
            1 + 47
        );
    }
}
