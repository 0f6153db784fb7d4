//! Group commit of the engine's acknowledged writes (credits, catalogue names).
//!
//! Every write that will be acknowledged waits for a sled flush that began after it. While one
//! flush runs, every write that arrives joins the next one, so a burst of events costs one flush
//! per flush time, never one per event; and the engine writes the credits record once per flush,
//! not once per event. [`GroupCommit`] is the bookkeeping; the engine starts the flushes.

use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::{BoxFuture, FutureExt};

use crate::store::StoreError;

type Answer = Result<(), Arc<StoreError>>;

/// Who waits for which flush.
#[derive(Debug, Default)]
pub struct GroupCommit {
    flushing: bool,
    /// Writers waiting for the next flush.
    waiting: Vec<oneshot::Sender<Answer>>,
}

/// The writers one flush answers.
#[derive(Debug)]
pub struct Batch(Vec<oneshot::Sender<Answer>>);

impl GroupCommit {
    /// Joins the next flush: resolves once it is done. `true` if no flush is running, so the
    /// caller must [`begin`](Self::begin) one now.
    pub fn join(&mut self) -> (BoxFuture<'static, Result<(), StoreError>>, bool) {
        let (sender, receiver) = oneshot::channel();
        self.waiting.push(sender);
        let done = receiver
            .map(|answer| match answer {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(StoreError::Commit(error)),
                // The engine stopped before the flush ended: nothing says it is on disk.
                Err(oneshot::Canceled) => Err(StoreError::Commit(Arc::new(StoreError::Stopped))),
            })
            .boxed();
        (done, !self.flushing)
    }

    /// Whether writes may still be on their way to disk (a flush runs, or writers wait for one).
    pub fn pending(&self) -> bool {
        self.flushing || !self.waiting.is_empty()
    }

    /// A flush starts: it answers everyone waiting now.
    pub fn begin(&mut self) -> Batch {
        self.flushing = true;
        Batch(std::mem::take(&mut self.waiting))
    }

    /// A flush ended: answers its batch; `true` if writers joined meanwhile, so the caller must
    /// begin the next flush.
    pub fn finish(&mut self, batch: Batch, result: Result<(), StoreError>) -> bool {
        let answer = result.map_err(Arc::new);
        for sender in batch.0 {
            // A writer that stopped waiting (its connection closed) needs no answer.
            let _ = sender.send(answer.clone());
        }
        self.flushing = false;
        !self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn writers_during_a_flush_share_the_next_one() {
        let mut commit = GroupCommit::default();
        assert!(!commit.pending());
        let (first, start) = commit.join();
        assert!(start, "nothing runs yet: the first writer starts a flush");
        assert!(commit.pending(), "a writer waits");
        let running = commit.begin();
        let (second, start) = commit.join();
        let (third, start_too) = commit.join();
        assert!(
            !start && !start_too,
            "they wait for the running flush to end"
        );
        assert!(commit.finish(running, Ok(())), "the next flush is due");
        block_on(first).unwrap();
        let next = commit.begin();
        assert_eq!(next.0.len(), 2, "one flush for both");
        assert!(!commit.finish(next, Err(StoreError::Stopped)));
        assert!(matches!(block_on(second), Err(StoreError::Commit(_))));
        assert!(matches!(block_on(third), Err(StoreError::Commit(_))));
    }

    #[test]
    fn a_dropped_batch_is_not_reported_durable() {
        let mut commit = GroupCommit::default();
        let (done, _) = commit.join();
        drop(commit.begin());
        assert!(matches!(block_on(done), Err(StoreError::Commit(_))));
    }
}
