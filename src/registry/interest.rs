//! What a session wants to receive: one shape for every face.
//!
//! An interest is a set of (normalised source, normalised type) pairs, either of which may be
//! `*`, each for events of any room, for events without a room, or for events whose room is
//! exactly a given one ([`Room`]). The Streamer.bot face subscribes to pairs in any room, the
//! custom face to every pair of its type and source lists, the Astro face to the types that feed a
//! topic in one room, the Socket.IO face to `discord` events without a room and in its guilds. Anything a face
//! needs beyond that (which of an event's messages a connection writes, answers it awaits) stays
//! in the face.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Normalised source → normalised types, where either may be `*`.
pub type Pairs = BTreeMap<String, BTreeSet<String>>;

/// [`Pairs`] whose type sets may be shared by several sources (every pair of two lists costs
/// the length of the lists, not their product).
type SharedPairs = BTreeMap<String, Arc<BTreeSet<String>>>;

/// What one session wants; the default wants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Interest {
    /// Pairs wanted whatever the event's room (also events without one).
    any_room: SharedPairs,
    /// Pairs wanted only in events without a room.
    no_room: SharedPairs,
    /// Room → pairs wanted only in events of exactly that room.
    rooms: BTreeMap<String, SharedPairs>,
}

/// `*`: any source or any type.
pub const ANY: &str = "*";

/// Which events' rooms a pair applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room<'a> {
    /// Any room, and no room.
    Any,
    /// Only events without a room.
    Without,
    /// Only events whose room is exactly this one.
    Exactly(&'a str),
}

impl Interest {
    /// The pairs of `pairs`, in any room.
    pub fn in_any_room(pairs: Pairs) -> Interest {
        Interest {
            any_room: pairs
                .into_iter()
                .map(|(source, kinds)| (source, Arc::new(kinds)))
                .collect(),
            ..Interest::default()
        }
    }

    /// Every (source, type) of the two lists, in any room; `None` stands for `*`.
    pub fn every_pair_of(
        sources: Option<&BTreeSet<String>>,
        types: Option<&BTreeSet<String>>,
    ) -> Interest {
        let any = BTreeSet::from([ANY.to_owned()]);
        let types = Arc::new(types.unwrap_or(&any).clone());
        let any_room = sources
            .unwrap_or(&any)
            .iter()
            .map(|source| (source.clone(), types.clone()))
            .collect();
        Interest {
            any_room,
            ..Interest::default()
        }
    }

    /// Adds the (normalised) pair for the events of `room`.
    pub fn add(&mut self, room: Room<'_>, source: &str, kind: &str) {
        let pairs = match room {
            Room::Any => &mut self.any_room,
            Room::Without => &mut self.no_room,
            Room::Exactly(room) => self.rooms.entry(room.to_owned()).or_default(),
        };
        Arc::make_mut(pairs.entry(source.to_owned()).or_default()).insert(kind.to_owned());
    }

    /// Each pair as `source/type`, followed by ` (no room)` or ` in room <room>` when it is
    /// limited to those events.
    pub fn describe(&self) -> Vec<String> {
        let pairs = |pairs: &SharedPairs, suffix: &str| -> Vec<String> {
            pairs
                .iter()
                .flat_map(|(source, kinds)| {
                    kinds
                        .iter()
                        .map(move |kind| format!("{source}/{kind}{suffix}"))
                })
                .collect()
        };
        let mut described = pairs(&self.any_room, "");
        described.extend(pairs(&self.no_room, " (no room)"));
        for (room, room_pairs) in &self.rooms {
            described.extend(pairs(room_pairs, &format!(" in room {room}")));
        }
        described
    }

    /// Whether an event of the normalised `source` and `kind`, in `room`, is wanted.
    pub fn wants(&self, source: &str, kind: &str, room: Option<&str>) -> bool {
        matches(&self.any_room, source, kind)
            || match room {
                None => matches(&self.no_room, source, kind),
                Some(room) => self
                    .rooms
                    .get(room)
                    .is_some_and(|pairs| matches(pairs, source, kind)),
            }
    }
}

fn matches(pairs: &SharedPairs, source: &str, kind: &str) -> bool {
    [source, ANY].into_iter().any(|source| {
        pairs
            .get(source)
            .is_some_and(|kinds| kinds.contains(kind) || kinds.contains(ANY))
    })
}

/// The (source, type) pairs of `list`, in any room.
#[cfg(test)]
pub fn pairs(list: &[(&str, &str)]) -> Interest {
    let mut interest = Interest::default();
    for (source, kind) in list {
        interest.add(Room::Any, source, kind);
    }
    interest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_select_a_source_a_type_or_everything() {
        assert!(pairs(&[("twitch", "follow")]).wants("twitch", "follow", None));
        assert!(!pairs(&[("twitch", "cheer")]).wants("twitch", "follow", None));
        assert!(pairs(&[("twitch", "*")]).wants("twitch", "follow", Some("any")));
        assert!(!pairs(&[("twitch", "*")]).wants("youtube", "follow", None));
        assert!(pairs(&[("*", "follow")]).wants("kick", "follow", None));
        assert!(pairs(&[("*", "*")]).wants("anything", "at-all", None));
        assert!(!Interest::default().wants("twitch", "follow", None));
    }

    #[test]
    fn every_pair_of_two_lists() {
        let set = |items: &[&str]| items.iter().map(|i| i.to_string()).collect();
        let filter =
            Interest::every_pair_of(Some(&set(&["tiktok"])), Some(&set(&["gift", "chat"])));
        assert!(filter.wants("tiktok", "gift", None));
        assert!(!filter.wants("twitch", "gift", None));
        assert!(!filter.wants("tiktok", "follow", None));
        assert!(Interest::every_pair_of(None, None).wants("any", "thing", None));
        assert!(Interest::every_pair_of(None, Some(&set(&["gift"]))).wants("any", "gift", None));
    }

    #[test]
    fn a_room_must_be_carried_exactly() {
        let mut interest = Interest::default();
        interest.add(Room::Exactly("channel-1"), ANY, "follow");
        assert!(interest.wants("twitch", "follow", Some("channel-1")));
        assert!(!interest.wants("twitch", "follow", Some("channel-2")));
        assert!(!interest.wants("twitch", "follow", Some("Channel-1")));
        assert!(!interest.wants("twitch", "follow", None));
        assert!(!interest.wants("twitch", "cheer", Some("channel-1")));
        interest.add(Room::Without, "discord", ANY);
        assert!(interest.wants("discord", "userupdate", None));
        assert!(!interest.wants("discord", "userupdate", Some("111")));
    }
}
