//! The registry: who is subscribed to what.
//!
//! Sessions send [`Connect`], [`SetInterest`] and [`Disconnect`]; the engine sends [`Publish`].
//! On publish the registry finds the matching sessions, encodes the event once per face (through
//! the [`Encode`]rs the faces installed with [`SetEncoder`]) and offers the shared bytes to each
//! session's [`Outlet`] without waiting. A session whose outlet is full is closed as too slow
//! and dropped from the fan-out.
//!
//! Interests are interned: sessions that want the same events (a thousand copies of one overlay)
//! share one [`Wanted`], held once in memory and matched once per publish.
//!
//! The registry also keeps every session's heartbeat: one timer for all of them, which tells a
//! thirtieth of the sessions each second that it is time to ping their client (see
//! [`HEARTBEAT_SLICES`]), instead of a timer per connection.
//!
//! Invariant: the registry never awaits I/O and never blocks on a slow session. It uses nothing
//! above it: faces and sessions plug in through [`Encode`] and [`Outlet`].

mod frames;
mod interest;
mod outlet;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::channel::oneshot;

use self::frames::Encoders;
pub use self::frames::{Encode, FaceKind, Frame};
pub use self::interest::{Interest, Pairs, Room, ANY};
pub use self::outlet::{Closing, Outgoing, Outlet, Refused};
use crate::event::{normalise, Event};

/// How often a session pings a silent client.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// How long without a pong (or any frame) before a session drops its client.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(70);

/// Identifies one connection for as long as it is open.
pub type SessionId = u64;

/// Registers a session; it receives nothing until its interest is set.
#[derive(Message)]
#[rtype(result = "SessionId")]
pub struct Connect {
    pub face: FaceKind,
    pub outlet: Box<dyn Outlet + Send>,
}

/// Replaces what a session wants to receive (see [`set_interest`] to know when it has).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetInterest {
    pub session: SessionId,
    pub interest: Interest,
    /// Told once the interest is recorded.
    pub recorded: Option<oneshot::Sender<()>>,
}

/// The registry stopped before it recorded an interest.
#[derive(Debug, thiserror::Error)]
#[error("the registry is not answering")]
pub struct Gone;

/// Replaces what `session` wants; resolves once recorded. The message is queued at once (not
/// when the future is first polled, and whatever the mailbox holds), so the registry applies a
/// session's interests in the order they were decided.
pub fn set_interest(
    registry: &Addr<Registry>,
    session: SessionId,
    interest: Interest,
) -> impl std::future::Future<Output = Result<(), Gone>> + 'static {
    let (recorded, done) = oneshot::channel();
    registry.do_send(SetInterest {
        session,
        interest,
        recorded: Some(recorded),
    });
    async move { done.await.map_err(|_| Gone) }
}

/// Installs a face's encoder (before its listener opens).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetEncoder(pub FaceKind, pub Box<dyn Encode>);

/// The session has closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub session: SessionId,
}

/// Every open session: its face, client address and subscriptions, by id.
#[derive(Message)]
#[rtype(result = "Vec<SessionInfo>")]
pub struct ListSessions;

/// One session, as [`ListSessions`] answers it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub id: SessionId,
    pub face: &'static str,
    pub peer: Option<String>,
    /// What it is subscribed to, as [`Interest::describe`] spells it.
    pub subscriptions: Vec<String>,
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

/// An interned interest and its answer for the event being published.
#[derive(Debug)]
struct Wanted {
    interest: Interest,
    /// (publish number, whether that event is wanted)
    answer: Cell<(u64, bool)>,
}

impl Wanted {
    fn wants(&self, publish: u64, source: &str, kind: &str, room: Option<&str>) -> bool {
        let (asked, answer) = self.answer.get();
        if asked == publish {
            return answer;
        }
        let answer = self.interest.wants(source, kind, room);
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
    outlet: Box<dyn Outlet + Send>,
    wanted: Rc<Wanted>,
}

/// The registry's metrics, as handles made once (a publish adds to them, it does not look them
/// up).
struct Counting {
    connections: [metrics::Gauge; FaceKind::COUNT],
    deliveries: [metrics::Counter; FaceKind::COUNT],
    too_slow: [metrics::Counter; FaceKind::COUNT],
    /// Events published, by normalised source: the first [`crate::metrics::MAX_SOURCES`]
    /// sources, then `other`.
    sources: HashMap<String, metrics::Counter>,
    other_sources: metrics::Counter,
}

impl Default for Counting {
    fn default() -> Counting {
        use crate::metrics::{CONNECTIONS, DELIVERIES, EVENTS_PUBLISHED, SLOW_CONSUMER_CLOSES};
        let face = |kind: &FaceKind| kind.name();
        Counting {
            connections: FaceKind::ALL
                .map(|kind| metrics::gauge!(CONNECTIONS, "face" => face(&kind))),
            deliveries: FaceKind::ALL
                .map(|kind| metrics::counter!(DELIVERIES, "face" => face(&kind))),
            too_slow: FaceKind::ALL
                .map(|kind| metrics::counter!(SLOW_CONSUMER_CLOSES, "face" => face(&kind))),
            sources: HashMap::new(),
            other_sources: metrics::counter!(EVENTS_PUBLISHED, "source" => "other"),
        }
    }
}

impl Counting {
    fn published(&mut self, source: &str) {
        if let Some(counter) = self.sources.get(source) {
            return counter.increment(1);
        }
        if self.sources.len() >= crate::metrics::MAX_SOURCES {
            return self.other_sources.increment(1);
        }
        let counter =
            metrics::counter!(crate::metrics::EVENTS_PUBLISHED, "source" => source.to_owned());
        counter.increment(1);
        self.sources.insert(source.to_owned(), counter);
    }
}

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
    /// [`ShutDown`] was handled: a session that connects now is closed at once.
    stopping: bool,
    counting: Counting,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            sessions: HashMap::new(),
            next_id: 1,
            interned: Interned::default(),
            published: 0,
            heartbeats: 0,
            encoders: Encoders::default(),
            stopping: false,
            counting: Counting::default(),
        }
    }
}

impl Registry {
    /// Hands `message` to a session without waiting; a session whose outlet is full is told it
    /// is too slow, and it (like a closed one) is added to `dropped`. Whether it was taken.
    fn offer(
        id: SessionId,
        entry: &Entry,
        message: Outgoing,
        dropped: &mut Vec<SessionId>,
        counting: &Counting,
    ) -> bool {
        match entry.outlet.offer(message) {
            Ok(()) => return true,
            Err(Refused::Full) => {
                log::warn!("registry: session {id} is too slow (send queue full), dropping it");
                counting.too_slow[entry.face.index()].increment(1);
                entry.outlet.close(Closing::TooSlow);
                dropped.push(id);
            }
            Err(Refused::Closed) => dropped.push(id),
        }
        false
    }

    /// Drops a session from the fan-out, and its interest once no other session holds it.
    fn remove(&mut self, session: SessionId) {
        if let Some(entry) = self.sessions.remove(&session) {
            self.counting.connections[entry.face.index()].decrement(1);
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
        if self.stopping {
            message.outlet.close(Closing::ShuttingDown);
            return id;
        }
        let wanted = self.interned.get(Interest::default());
        self.counting.connections[message.face.index()].increment(1);
        self.sessions.insert(
            id,
            Entry {
                face: message.face,
                outlet: message.outlet,
                wanted,
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
        if let Some(recorded) = message.recorded {
            // The session may have stopped waiting; nothing to tell it then.
            let _ = recorded.send(());
        }
    }
}

impl Handler<SetEncoder> for Registry {
    type Result = ();

    fn handle(&mut self, SetEncoder(kind, encoder): SetEncoder, _: &mut Context<Self>) {
        self.encoders.set(kind, encoder);
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
        let room = event.room.as_deref();
        self.published += 1;
        let publish = self.published;
        self.counting.published(&source);
        let mut frames = self.encoders.frames(&event);
        let mut too_slow = Vec::new();
        let mut delivered = [0u64; FaceKind::COUNT];
        for (id, entry) in &self.sessions {
            if !entry.wanted.wants(publish, &source, &kind, room) {
                continue;
            }
            let frame = frames.get(entry.face);
            if matches!(frame, Frame::Nothing) {
                continue;
            }
            let message = Outgoing::Event(event.clone(), frame);
            if Registry::offer(*id, entry, message, &mut too_slow, &self.counting) {
                delivered[entry.face.index()] += 1;
            }
        }
        for (counter, delivered) in self.counting.deliveries.iter().zip(delivered) {
            if delivered > 0 {
                counter.increment(delivered);
            }
        }
        for id in too_slow {
            self.remove(id);
        }
    }
}

impl Handler<ListSessions> for Registry {
    type Result = MessageResult<ListSessions>;

    fn handle(&mut self, _: ListSessions, _: &mut Context<Self>) -> Self::Result {
        let mut sessions: Vec<SessionInfo> = self
            .sessions
            .iter()
            .map(|(id, entry)| SessionInfo {
                id: *id,
                face: entry.face.name(),
                peer: entry.outlet.peer().map(|peer| peer.to_string()),
                subscriptions: entry.wanted.interest.describe(),
            })
            .collect();
        sessions.sort_by_key(|session| session.id);
        MessageResult(sessions)
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
                Registry::offer(
                    *id,
                    entry,
                    Outgoing::Heartbeat,
                    &mut dropped,
                    &self.counting,
                );
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
        self.stopping = true;
        for (_, entry) in self.sessions.drain() {
            self.counting.connections[entry.face.index()].decrement(1);
            entry.outlet.close(Closing::ShuttingDown);
        }
        self.interned.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::interest::pairs;
    use super::*;

    #[test]
    fn equal_interests_share_one_answer_until_the_last_holder_goes() {
        let mut interned = Interned::default();
        let first = interned.get(pairs(&[("bench", "*")]));
        let second = interned.get(pairs(&[("bench", "*")]));
        let other = interned.get(pairs(&[("twitch", "follow")]));
        assert!(Rc::ptr_eq(&first, &second));
        assert_eq!(interned.0.len(), 2);
        assert!(first.wants(1, "bench", "tick", None));
        // The second holder reads the answer the first computed for publish 1.
        assert!(second.answer.get() == (1, true));
        assert!(!other.wants(1, "bench", "tick", None));
        interned.release(first);
        assert_eq!(interned.0.len(), 2, "still held by the second session");
        interned.release(second);
        interned.release(other);
        assert!(interned.0.is_empty());
    }

    /// An outlet that is not an actor: a queue of `capacity` messages, as a Socket.IO socket's.
    #[derive(Clone, Default)]
    struct Queue {
        capacity: usize,
        taken: Arc<Mutex<Vec<Outgoing>>>,
        closed: Arc<Mutex<Option<Closing>>>,
    }

    impl Outlet for Queue {
        fn offer(&self, message: Outgoing) -> Result<(), Refused> {
            let mut taken = self.taken.lock().unwrap();
            if taken.len() == self.capacity {
                return Err(Refused::Full);
            }
            taken.push(message);
            Ok(())
        }

        fn close(&self, why: Closing) {
            *self.closed.lock().unwrap() = Some(why);
        }
    }

    impl Queue {
        fn heartbeats(&self) -> usize {
            let taken = self.taken.lock().unwrap();
            taken
                .iter()
                .filter(|message| matches!(message, Outgoing::Heartbeat))
                .count()
        }
    }

    struct Text;

    impl Encode for Text {
        fn encode(&self, event: &Event) -> Frame {
            Frame::Text(event.kind.clone().into())
        }
    }

    async fn connect(registry: &Addr<Registry>, queue: &Queue, interest: Interest) -> SessionId {
        let connect = Connect {
            face: FaceKind::Custom,
            outlet: Box::new(queue.clone()),
        };
        let session = registry.send(connect).await.unwrap();
        set_interest(registry, session, interest).await.unwrap();
        session
    }

    #[actix_rt::test]
    async fn a_full_outlet_is_closed_as_too_slow_and_dropped_from_the_fan_out() {
        let registry = Registry::default().start();
        registry
            .send(SetEncoder(FaceKind::Custom, Box::new(Text)))
            .await
            .unwrap();
        let slow = Queue {
            capacity: 2,
            ..Queue::default()
        };
        let quick = Queue {
            capacity: 100,
            ..Queue::default()
        };
        connect(&registry, &slow, pairs(&[("*", "*")])).await;
        connect(&registry, &quick, pairs(&[("*", "*")])).await;
        for _ in 0..5 {
            let event = Event::new("twitch", "follow", serde_json::json!({}));
            registry.send(Publish(Arc::new(event))).await.unwrap();
        }
        assert_eq!(slow.taken.lock().unwrap().len(), 2);
        assert_eq!(*slow.closed.lock().unwrap(), Some(Closing::TooSlow));
        assert_eq!(quick.taken.lock().unwrap().len(), 5);
        assert_eq!(*quick.closed.lock().unwrap(), None);
        let shared = quick.taken.lock().unwrap().iter().all(
            |message| matches!(message, Outgoing::Event(_, Frame::Text(text)) if text == "follow"),
        );
        assert!(shared);
        registry.send(ShutDown).await.unwrap();
        assert_eq!(*quick.closed.lock().unwrap(), Some(Closing::ShuttingDown));
        let late = Queue::default();
        connect(&registry, &late, pairs(&[("*", "*")])).await;
        assert_eq!(*late.closed.lock().unwrap(), Some(Closing::ShuttingDown));
    }

    #[actix_rt::test]
    async fn rooms_select_sessions_and_a_face_without_encoder_gets_nothing() {
        let registry = Registry::default().start();
        let in_room = Queue {
            capacity: 10,
            ..Queue::default()
        };
        let mut interest = Interest::default();
        interest.add(Room::Exactly("channel-1"), "*", "follow");
        connect(&registry, &in_room, interest.clone()).await;
        let mut follow = Event::new("twitch", "follow", serde_json::json!({}));
        follow.room = Some("channel-1".into());
        registry
            .send(Publish(Arc::new(follow.clone())))
            .await
            .unwrap();
        assert!(in_room.taken.lock().unwrap().is_empty(), "no encoder yet");
        registry
            .send(SetEncoder(FaceKind::Custom, Box::new(Text)))
            .await
            .unwrap();
        registry
            .send(Publish(Arc::new(follow.clone())))
            .await
            .unwrap();
        follow.room = Some("channel-2".into());
        registry.send(Publish(Arc::new(follow))).await.unwrap();
        assert_eq!(in_room.taken.lock().unwrap().len(), 1);
    }

    #[actix_rt::test]
    async fn every_session_gets_one_heartbeat_per_interval_in_slices() {
        let registry = Registry::default().start();
        let queues: Vec<Queue> = (0..100)
            .map(|_| Queue {
                capacity: 100,
                ..Queue::default()
            })
            .collect();
        for queue in &queues {
            connect(&registry, queue, Interest::default()).await;
        }
        let counts = |queues: &[Queue]| queues.iter().map(Queue::heartbeats).collect::<Vec<_>>();
        registry.send(HeartbeatTick).await.unwrap();
        let pinged = counts(&queues).iter().filter(|count| **count == 1).count();
        assert!(
            (1..=100 / HEARTBEAT_SLICES as usize + 1).contains(&pinged),
            "one tick pings one slice, not everyone: {pinged}"
        );
        for _ in 1..HEARTBEAT_SLICES {
            registry.send(HeartbeatTick).await.unwrap();
        }
        assert_eq!(counts(&queues), vec![1; 100]);
    }
}
