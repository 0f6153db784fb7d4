//! The registry: who is subscribed to what.
//!
//! Sessions send [`Connect`], [`SetInterest`] and [`Disconnect`]; the engine sends [`Publish`].
//! On publish the registry finds the matching sessions, encodes the event once per face (through
//! [`Encoders`]) and hands the shared bytes to each session with `try_send`. A session whose
//! bounded mailbox is full is told it is too slow and dropped from the fan-out.
//!
//! Interests are interned: sessions that want the same events (a thousand copies of one overlay)
//! share one [`Wanted`], held once in memory and matched once per publish.
//!
//! The registry also keeps every session's heartbeat: one timer for all of them, which tells a
//! thirtieth of the sessions each second that it is time to ping their client (see
//! [`HEARTBEAT_SLICES`]), instead of a timer per connection.
//!
//! Invariant: the registry never awaits I/O and never blocks on a slow session.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;

use crate::event::{normalise, Event};
use crate::faces::{Encoders, FaceKind};
use crate::session::HEARTBEAT_INTERVAL;

/// Identifies one connection for as long as it is open.
pub type SessionId = u64;

/// What the registry sends a session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Outgoing {
    /// An encoded event frame, shared by every session of the face.
    Frame(ByteString),
    /// The session let its send queue fill: close it (it is no longer in the fan-out).
    TooSlow,
    /// The server is stopping: close with 1001.
    ShuttingDown,
    /// Time for the session's heartbeat: ping the client, or drop a silent one.
    Heartbeat,
}

/// Registers a session; it receives nothing until its interest is set.
#[derive(Message)]
#[rtype(result = "SessionId")]
pub struct Connect {
    pub face: FaceKind,
    pub outgoing: Recipient<Outgoing>,
}

/// Replaces what a session wants to receive.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetInterest {
    pub session: SessionId,
    pub interest: Interest,
}

/// The session sent a request whose args carry `sbClientResponse` (streamerbot.md §5.5): it gets
/// the `Custom.Event` whose `data.eventName` is that id once, subscribed to it or not, because
/// `@streamerbot/client` subscribes only after it has sent the request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AwaitResponse {
    pub session: SessionId,
    pub response_id: String,
}

/// The session has closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub session: SessionId,
}

/// Tells every session that the server is stopping.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShutDown;

/// One heartbeat tick: the sessions of the next slice get [`Outgoing::Heartbeat`].
#[derive(Message)]
#[rtype(result = "()")]
struct HeartbeatTick;

/// Every session gets a heartbeat once per [`HEARTBEAT_INTERVAL`], one slice of them per tick,
/// so that 10,000 connections do not all ping at once (their timers would if they connected in
/// one burst, as after a restart).
const HEARTBEAT_SLICES: u64 = 30;

/// Delivers an event to every interested session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Arc<Event>);

/// Normalised source → normalised types, where either may be `*`.
pub type Pairs = BTreeMap<String, BTreeSet<String>>;

/// What one session wants to receive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Nothing (a new connection).
    #[default]
    Nothing,
    /// Events whose normalised (source, type) is in the set, `*` matching anything.
    Pairs(Pairs),
    /// Events whose normalised type and source are each in their set (`None`: any).
    Filter {
        types: Option<BTreeSet<String>>,
        sources: Option<BTreeSet<String>>,
    },
}

impl Interest {
    fn wants(&self, source: &str, kind: &str) -> bool {
        match self {
            Interest::Nothing => false,
            Interest::Filter { types, sources } => {
                types.as_ref().is_none_or(|types| types.contains(kind))
                    && sources
                        .as_ref()
                        .is_none_or(|sources| sources.contains(source))
            }
            Interest::Pairs(pairs) => [source, "*"].into_iter().any(|source| {
                pairs
                    .get(source)
                    .is_some_and(|kinds| kinds.contains(kind) || kinds.contains("*"))
            }),
        }
    }
}

/// An interned interest and its answer for the event being published.
#[derive(Debug)]
struct Wanted {
    interest: Interest,
    /// (publish number, whether that event is wanted)
    answer: Cell<(u64, bool)>,
}

impl Wanted {
    fn wants(&self, publish: u64, source: &str, kind: &str) -> bool {
        let (asked, answer) = self.answer.get();
        if asked == publish {
            return answer;
        }
        let answer = self.interest.wants(source, kind);
        self.answer.set((publish, answer));
        answer
    }
}

/// One shared [`Wanted`] per distinct interest, for as long as a session holds it.
#[derive(Debug, Default)]
struct Interned(HashMap<Interest, Rc<Wanted>>);

impl Interned {
    fn get(&mut self, interest: Interest) -> Rc<Wanted> {
        self.0
            .entry(interest)
            .or_insert_with_key(|interest| {
                Rc::new(Wanted {
                    interest: interest.clone(),
                    answer: Cell::new((0, false)),
                })
            })
            .clone()
    }

    /// Forgets `wanted` once no session holds it any more.
    fn release(&mut self, wanted: Rc<Wanted>) {
        if Rc::strong_count(&wanted) == 2 {
            self.0.remove(&wanted.interest);
        }
    }
}

struct Entry {
    face: FaceKind,
    outgoing: Recipient<Outgoing>,
    wanted: Rc<Wanted>,
    /// `sbClientResponse` ids whose answering `Custom.Event` this session gets regardless.
    awaiting: Vec<String>,
}

impl Entry {
    /// Whether the session gets the event: by interest, or as an awaited response (used up).
    fn takes(&mut self, publish: u64, source: &str, kind: &str, response_id: Option<&str>) -> bool {
        if self.wanted.wants(publish, source, kind) {
            return true;
        }
        match response_id.and_then(|id| self.awaiting.iter().position(|known| known == id)) {
            Some(at) => {
                self.awaiting.swap_remove(at);
                true
            }
            None => false,
        }
    }
}

/// How many awaited responses one session may hold; older ones are forgotten first.
const MAX_AWAITING: usize = 64;

/// The registry actor.
pub struct Registry {
    sessions: HashMap<SessionId, Entry>,
    next_id: SessionId,
    interned: Interned,
    /// How many events have been published: the key of each [`Wanted`]'s cached answer.
    published: u64,
    /// How many heartbeat ticks have passed: the slice the next one serves.
    heartbeats: u64,
    encoders: Encoders,
}

impl Registry {
    pub fn new(encoders: Encoders) -> Registry {
        Registry {
            sessions: HashMap::new(),
            next_id: 1,
            interned: Interned::default(),
            published: 0,
            heartbeats: 0,
            encoders,
        }
    }

    /// Hands `message` to a session without waiting; a session whose queue is full is told it
    /// is too slow, and it (like a closed one) is added to `dropped`.
    fn offer(id: SessionId, entry: &Entry, message: Outgoing, dropped: &mut Vec<SessionId>) {
        match entry.outgoing.try_send(message) {
            Ok(()) => {}
            Err(SendError::Full(_)) => {
                log::warn!("registry: session {id} is too slow (send queue full), dropping it");
                entry.outgoing.do_send(Outgoing::TooSlow);
                dropped.push(id);
            }
            Err(SendError::Closed(_)) => dropped.push(id),
        }
    }

    /// Drops a session from the fan-out, and its interest once no other session holds it.
    fn remove(&mut self, session: SessionId) {
        if let Some(entry) = self.sessions.remove(&session) {
            self.interned.release(entry.wanted);
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let tick = HEARTBEAT_INTERVAL / HEARTBEAT_SLICES as u32;
        ctx.run_interval(tick, |_, ctx| ctx.notify(HeartbeatTick));
    }
}

impl Handler<Connect> for Registry {
    type Result = SessionId;

    fn handle(&mut self, message: Connect, _: &mut Context<Self>) -> SessionId {
        let id = self.next_id;
        self.next_id += 1;
        let wanted = self.interned.get(Interest::Nothing);
        self.sessions.insert(
            id,
            Entry {
                face: message.face,
                outgoing: message.outgoing,
                wanted,
                awaiting: Vec::new(),
            },
        );
        id
    }
}

impl Handler<SetInterest> for Registry {
    type Result = ();

    fn handle(&mut self, message: SetInterest, _: &mut Context<Self>) {
        if let Some(entry) = self.sessions.get_mut(&message.session) {
            let wanted = self.interned.get(message.interest);
            let old = std::mem::replace(&mut entry.wanted, wanted);
            self.interned.release(old);
        }
    }
}

impl Handler<AwaitResponse> for Registry {
    type Result = ();

    fn handle(&mut self, message: AwaitResponse, _: &mut Context<Self>) {
        if let Some(entry) = self.sessions.get_mut(&message.session) {
            if entry.awaiting.len() == MAX_AWAITING {
                entry.awaiting.remove(0);
            }
            entry.awaiting.push(message.response_id);
        }
    }
}

impl Handler<Disconnect> for Registry {
    type Result = ();

    fn handle(&mut self, message: Disconnect, _: &mut Context<Self>) {
        self.remove(message.session);
    }
}

impl Handler<Publish> for Registry {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _: &mut Context<Self>) {
        let source = normalise(&event.source);
        let kind = normalise(&event.kind);
        let response_id = (source == "custom" && kind == "event")
            .then(|| {
                event
                    .data
                    .get("eventName")
                    .and_then(serde_json::Value::as_str)
            })
            .flatten();
        self.published += 1;
        let publish = self.published;
        let mut frames = self.encoders.frames(&event);
        let mut too_slow = Vec::new();
        for (id, entry) in &mut self.sessions {
            if !entry.takes(publish, &source, &kind, response_id) {
                continue;
            }
            let frame = frames.get(entry.face);
            Registry::offer(*id, entry, Outgoing::Frame(frame), &mut too_slow);
        }
        for id in too_slow {
            self.remove(id);
        }
    }
}

impl Handler<HeartbeatTick> for Registry {
    type Result = ();

    fn handle(&mut self, _: HeartbeatTick, _: &mut Context<Self>) {
        let slice = self.heartbeats % HEARTBEAT_SLICES;
        self.heartbeats += 1;
        let mut dropped = Vec::new();
        for (id, entry) in &self.sessions {
            if id % HEARTBEAT_SLICES == slice {
                Registry::offer(*id, entry, Outgoing::Heartbeat, &mut dropped);
            }
        }
        for id in dropped {
            self.remove(id);
        }
    }
}

impl Handler<ShutDown> for Registry {
    type Result = ();

    fn handle(&mut self, _: ShutDown, _: &mut Context<Self>) {
        for (_, entry) in self.sessions.drain() {
            entry.outgoing.do_send(Outgoing::ShuttingDown);
        }
        self.interned.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Interest {
        let mut map = Pairs::new();
        for (source, kind) in list {
            map.entry(source.to_string())
                .or_default()
                .insert(kind.to_string());
        }
        Interest::Pairs(map)
    }

    #[test]
    fn filters_and_their_lists() {
        let set = |items: &[&str]| Some(items.iter().map(|i| i.to_string()).collect());
        let filter = Interest::Filter {
            types: set(&["gift", "chat"]),
            sources: set(&["tiktok"]),
        };
        assert!(filter.wants("tiktok", "gift"));
        assert!(!filter.wants("twitch", "gift"));
        assert!(!filter.wants("tiktok", "follow"));
        assert!(Interest::Filter {
            types: None,
            sources: None
        }
        .wants("any", "thing"));
    }

    #[test]
    fn equal_interests_share_one_answer_until_the_last_holder_goes() {
        let mut interned = Interned::default();
        let first = interned.get(pairs(&[("bench", "*")]));
        let second = interned.get(pairs(&[("bench", "*")]));
        let other = interned.get(pairs(&[("twitch", "follow")]));
        assert!(Rc::ptr_eq(&first, &second));
        assert_eq!(interned.0.len(), 2);
        assert!(first.wants(1, "bench", "tick"));
        // The second holder reads the answer the first computed for publish 1.
        assert!(second.answer.get() == (1, true));
        assert!(!other.wants(1, "bench", "tick"));
        interned.release(first);
        assert_eq!(interned.0.len(), 2, "still held by the second session");
        interned.release(second);
        interned.release(other);
        assert!(interned.0.is_empty());
    }

    /// A stand-in session that counts its heartbeats.
    struct Counter(usize);

    impl Actor for Counter {
        type Context = Context<Self>;
    }

    impl Handler<Outgoing> for Counter {
        type Result = ();

        fn handle(&mut self, message: Outgoing, _: &mut Context<Self>) {
            if matches!(message, Outgoing::Heartbeat) {
                self.0 += 1;
            }
        }
    }

    #[derive(Message)]
    #[rtype(result = "usize")]
    struct Count;

    impl Handler<Count> for Counter {
        type Result = usize;

        fn handle(&mut self, _: Count, _: &mut Context<Self>) -> usize {
            self.0
        }
    }

    #[actix_rt::test]
    async fn every_session_gets_one_heartbeat_per_interval_in_slices() {
        let (_dir, catalogue) = crate::faces::streamerbot::catalogue::temporary();
        let registry = Registry::new(Encoders {
            streamerbot: crate::faces::streamerbot::Encoder {
                catalogue: Arc::new(catalogue),
            },
        })
        .start();
        let mut sessions = Vec::new();
        for _ in 0..100 {
            let session = Counter(0).start();
            let connect = Connect {
                face: FaceKind::Custom,
                outgoing: session.clone().recipient(),
            };
            registry.send(connect).await.unwrap();
            sessions.push(session);
        }
        let count = |sessions: Vec<Addr<Counter>>| async move {
            let mut counts = Vec::new();
            for session in sessions {
                counts.push(session.send(Count).await.unwrap());
            }
            counts
        };
        registry.send(HeartbeatTick).await.unwrap();
        let after_one = count(sessions.clone()).await;
        let pinged = after_one.iter().filter(|count| **count == 1).count();
        assert!(
            (1..=100 / HEARTBEAT_SLICES as usize + 1).contains(&pinged),
            "one tick pings one slice, not everyone: {pinged}"
        );
        for _ in 1..HEARTBEAT_SLICES {
            registry.send(HeartbeatTick).await.unwrap();
        }
        assert_eq!(count(sessions).await, vec![1; 100]);
    }

    #[test]
    fn wildcards_select_a_source_a_type_or_everything() {
        assert!(pairs(&[("twitch", "follow")]).wants("twitch", "follow"));
        assert!(!pairs(&[("twitch", "cheer")]).wants("twitch", "follow"));
        assert!(pairs(&[("twitch", "*")]).wants("twitch", "follow"));
        assert!(!pairs(&[("twitch", "*")]).wants("youtube", "follow"));
        assert!(pairs(&[("*", "follow")]).wants("kick", "follow"));
        assert!(pairs(&[("*", "*")]).wants("anything", "at-all"));
        assert!(!Interest::Nothing.wants("twitch", "follow"));
    }
}
