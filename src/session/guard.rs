//! Reads each incoming WebSocket frame's header as the bytes pass, before actix buffers them.
//!
//! actix-http's frame parser checks a frame's size only once the whole frame is in memory, and
//! actix-web-actors buffers whatever the socket has ready: a client announcing a 1 GB frame
//! would be read in full before being refused. The guard sits between the request payload and
//! the parser. It ends the stream (the session then closes with the guard's [`Trip`]) as soon
//! as a header announces more than the frame limit, or when the bytes of an unfinished message
//! of an unauthenticated connection would go over the budget all such connections share. And
//! it stops reading while the frames it let through and the session has not handled yet come
//! to more than [`MAX_UNHANDLED`] bytes: actix decodes one frame per poll but reads whatever is
//! ready, so a flood of small frames would otherwise pile up in its buffer.

use std::cell::Cell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use actix_http::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

use crate::frame_header::{FrameHeader, MAX_HEADER};

/// The bytes that unfinished messages of unauthenticated connections may hold, all together.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    cap: usize,
}

impl Budget {
    pub fn new(cap: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            cap,
        }
    }

    fn try_charge(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.cap)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Why the guard ended the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    /// A frame header announced this many payload bytes, over the frame limit.
    Oversized(u64),
    /// An unauthenticated connection's unfinished message would go over the shared budget.
    OverBudget,
    /// A control frame announced over 125 bytes (RFC 6455 §5.5).
    LongControl,
}

/// What the guard and its session share (both live on the session's thread).
#[derive(Default)]
pub struct Shared {
    /// Set by the session once its client has authenticated: its messages are then no longer
    /// charged to the budget.
    pub trusted: Cell<bool>,
    /// Set by the guard when it ends the stream.
    pub tripped: Cell<Option<Trip>>,
    /// How many frames the session has handled (one message or error per frame).
    handled: Cell<u64>,
    /// The guard's task, while it waits for the session to handle what it let through.
    waiting: Cell<Option<Waker>>,
}

impl Shared {
    /// The session handled one frame: the guard may read on.
    pub fn handled_one(&self) {
        self.handled.set(self.handled.get() + 1);
        if let Some(waker) = self.waiting.take() {
            waker.wake();
        }
    }
}

/// How many bytes of whole frames may wait for the session before the guard stops reading.
pub const MAX_UNHANDLED: usize = 64 * 1024;

/// The guard over a connection's incoming bytes.
pub struct FrameGuard<S> {
    inner: S,
    max_frame: u64,
    budget: Arc<Budget>,
    shared: Rc<Shared>,
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// The current frame: its header and the payload bytes still to come.
    frame: Option<(FrameHeader, u64)>,
    /// The sizes of the whole frames let through and not yet handled, oldest first; their sum;
    /// and how many of the session's handled frames are already taken off.
    unhandled: VecDeque<usize>,
    unhandled_bytes: usize,
    handled_seen: u64,
    /// The payload bytes of the unfinished data message so far, and those charged to the budget.
    held: usize,
    charged: usize,
    ended: bool,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, max_frame: usize, budget: Arc<Budget>, shared: Rc<Shared>) -> Self {
        FrameGuard {
            inner,
            max_frame: max_frame as u64,
            budget,
            shared,
            header: [0; MAX_HEADER],
            header_len: 0,
            frame: None,
            unhandled: VecDeque::new(),
            unhandled_bytes: 0,
            handled_seen: 0,
            held: 0,
            charged: 0,
            ended: false,
        }
    }

    /// Follows `chunk` through frame headers and payloads; `Err` with the offset the bytes
    /// must be cut at when a limit is hit.
    fn follow(&mut self, chunk: &[u8]) -> Result<(), (usize, Trip)> {
        let mut at = 0;
        // Where the header being read began in this chunk (0 when in an earlier one).
        let mut header_start = 0;
        while at < chunk.len() {
            match &mut self.frame {
                Some((header, remaining)) => {
                    let header = *header;
                    let take =
                        (chunk.len() - at).min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    *remaining -= take as u64;
                    let done = *remaining == 0;
                    at += take;
                    if header.is_data() {
                        self.held += take;
                    }
                    if done {
                        self.frame_done(header);
                    }
                }
                None => {
                    if self.header_len == 0 {
                        header_start = at;
                    }
                    self.header[self.header_len] = chunk[at];
                    self.header_len += 1;
                    at += 1;
                    if let Some(header) = FrameHeader::read(&self.header[..self.header_len]) {
                        self.header_len = 0;
                        if header.length > self.max_frame {
                            return Err((header_start, Trip::Oversized(header.length)));
                        }
                        if !header.is_data() && header.length > 125 {
                            return Err((header_start, Trip::LongControl));
                        }
                        self.frame = Some((header, header.length));
                        if header.length == 0 {
                            self.frame_done(header);
                        }
                    }
                }
            }
        }
        self.settle().map_err(|trip| (chunk.len(), trip))
    }

    /// Charges the budget with what this connection holds unfinished once a chunk has passed:
    /// messages that end within a chunk cost nothing, and one connection is charged at most one
    /// frame limit (the session keeps no more of a message than the message limit).
    fn settle(&mut self) -> Result<(), Trip> {
        let owed = if self.shared.trusted.get() {
            0
        } else {
            self.held.min(self.max_frame as usize)
        };
        if owed <= self.charged {
            self.budget.release(self.charged - owed);
        } else if !self.budget.try_charge(owed - self.charged) {
            return Err(Trip::OverBudget);
        }
        self.charged = owed;
        Ok(())
    }

    fn frame_done(&mut self, header: FrameHeader) {
        self.frame = None;
        let size = header.size + header.length as usize;
        self.unhandled.push_back(size);
        self.unhandled_bytes += size;
        // A final data frame ends its message; control frames come between fragments.
        if header.is_data() && header.fin {
            self.held = 0;
        }
    }

    /// Forgets the frames the session has handled since the last look.
    fn take_off_handled(&mut self) {
        let handled = self.shared.handled.get();
        while self.handled_seen < handled {
            self.handled_seen += 1;
            if let Some(size) = self.unhandled.pop_front() {
                self.unhandled_bytes -= size;
            }
        }
    }

    fn release(&mut self) {
        self.budget.release(self.charged);
        self.charged = 0;
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        self.take_off_handled();
        if self.unhandled_bytes > MAX_UNHANDLED {
            self.shared.waiting.set(Some(cx.waker().clone()));
            return Poll::Pending;
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.follow(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err((cut, trip)) => {
                    self.ended = true;
                    self.shared.tripped.set(Some(trip));
                    // What came before the offending bytes is still the client's.
                    if cut > 0 {
                        Poll::Ready(Some(Ok(chunk.slice(..cut))))
                    } else {
                        Poll::Ready(None)
                    }
                }
            },
            other => other,
        }
    }
}

impl<S> Drop for FrameGuard<S> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_frame: usize, budget: usize) -> FrameGuard<()> {
        FrameGuard::new((), max_frame, Arc::new(Budget::new(budget)), Rc::default())
    }

    /// A masked client frame header: FIN, opcode, length.
    fn header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
        FrameHeader::client(fin, opcode, length)
    }

    #[test]
    fn an_oversized_header_trips_before_its_payload_even_split_across_chunks() {
        let mut guard = guard(1024, 1 << 20);
        let mut bytes = header(true, 1, 5);
        bytes.extend_from_slice(b"hello");
        let start = bytes.len();
        bytes.extend(header(true, 2, 1 << 30));
        // Byte by byte: the trip comes with the last header byte, cut at the header's start.
        let mut tripped = None;
        for (at, byte) in bytes.iter().enumerate() {
            if let Err((cut, trip)) = guard.follow(&[*byte]) {
                tripped = Some((at, cut, trip));
                break;
            }
        }
        assert_eq!(
            tripped,
            Some((bytes.len() - 1, 0, Trip::Oversized(1 << 30)))
        );
        // In one chunk the cut is at the header's start.
        let mut guard = super::tests::guard(1024, 1 << 20);
        assert_eq!(guard.follow(&bytes), Err((start, Trip::Oversized(1 << 30))));
    }

    #[test]
    fn fragments_count_against_the_budget_until_the_message_ends() {
        let mut guard = guard(1024, 1000);
        let mut bytes = header(false, 1, 600);
        bytes.extend(vec![b'a'; 600]);
        // A ping between fragments is not part of the message.
        bytes.extend(header(true, 9, 0));
        bytes.extend(header(true, 0, 300));
        bytes.extend(vec![b'b'; 300]);
        assert_eq!(guard.follow(&bytes), Ok(()));
        assert_eq!(guard.charged, 0, "the message ended");
        assert_eq!(guard.budget.used.load(Ordering::Acquire), 0);
        let mut more = header(false, 1, 600);
        more.extend(vec![b'a'; 600]);
        more.extend(header(false, 0, 600));
        more.extend(vec![b'b'; 600]);
        let over = guard.follow(&more);
        assert_eq!(over.map_err(|(_, trip)| trip), Err(Trip::OverBudget));
    }

    #[test]
    fn a_trusted_connection_is_not_charged_and_a_dropped_guard_gives_back() {
        let mut guard = guard(1024, 1000);
        let mut bytes = header(false, 2, 800);
        bytes.extend(vec![0; 800]);
        assert_eq!(guard.follow(&bytes), Ok(()));
        assert_eq!(guard.budget.used.load(Ordering::Acquire), 800);
        let budget = guard.budget.clone();
        guard.shared.trusted.set(true);
        assert_eq!(guard.follow(&header(false, 0, 900)), Ok(()));
        assert_eq!(guard.follow(&[0; 900]), Ok(()));
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
        let mut untrusted = super::tests::guard(1024, 1000);
        untrusted.budget = budget.clone();
        assert_eq!(untrusted.follow(&bytes), Ok(()));
        drop(untrusted);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_invalid_64_bit_length_is_oversized() {
        let mut guard = guard(1024, 1000);
        let mut bytes = vec![0x81, 0x80 | 127];
        bytes.extend_from_slice(&u64::MAX.to_be_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(guard.follow(&bytes), Err((0, Trip::Oversized(u64::MAX))));
    }
}
