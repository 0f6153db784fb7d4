//! One connection's Astro subscriptions: (topic, canonical room) pairs, each with the
//! fingerprint of the token that authorised it (for reconnect tokens). Kept by room so that
//! checking a delivery allocates nothing.

use std::collections::BTreeMap;

/// Room → topic → token fingerprint.
#[derive(Debug, Default)]
pub struct Subscriptions(BTreeMap<String, BTreeMap<&'static str, String>>);

impl Subscriptions {
    pub fn holds(&self, topic: &str, room: &str) -> bool {
        self.0
            .get(room)
            .is_some_and(|topics| topics.contains_key(topic))
    }

    /// How many (topic, room) pairs are held.
    pub fn len(&self) -> usize {
        self.0.values().map(BTreeMap::len).sum()
    }

    pub fn insert(&mut self, topic: &'static str, room: &str, fp: &str) {
        self.0
            .entry(room.to_owned())
            .or_default()
            .insert(topic, fp.to_owned());
    }

    /// Removes `topic` in `room`, or in every room when `room` is `None`; answers whether
    /// anything was held.
    pub fn remove(&mut self, topic: &str, room: Option<&str>) -> bool {
        let mut removed = false;
        for (held_room, topics) in &mut self.0 {
            if room.is_none_or(|room| room == held_room) {
                removed |= topics.remove(topic).is_some();
            }
        }
        self.0.retain(|_, topics| !topics.is_empty());
        removed
    }

    /// Every (topic, room, fingerprint).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str, &str)> {
        self.0.iter().flat_map(|(room, topics)| {
            topics
                .iter()
                .map(move |(topic, fp)| (*topic, room.as_str(), fp.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_held_removed_by_room_or_by_topic_and_counted() {
        let mut subscriptions = Subscriptions::default();
        subscriptions.insert("channel.tips", "channel-1", "fp1");
        subscriptions.insert("channel.tips", "channel-2", "fp2");
        subscriptions.insert("channel.activities", "channel-1", "fp1");
        subscriptions.insert("channel.tips", "channel-1", "fp1");
        assert_eq!(subscriptions.len(), 3);
        assert!(subscriptions.holds("channel.tips", "channel-2"));
        assert!(!subscriptions.holds("channel.activities", "channel-2"));
        assert!(subscriptions.remove("channel.tips", Some("channel-2")));
        assert!(!subscriptions.holds("channel.tips", "channel-2"));
        assert!(!subscriptions.remove("channel.tips", Some("channel-9")));
        assert!(subscriptions.remove("channel.activities", None));
        let left: Vec<_> = subscriptions.iter().collect();
        assert_eq!(left, [("channel.tips", "channel-1", "fp1")]);
    }
}
