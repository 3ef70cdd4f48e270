//! The log's tail in memory: the events this process stored last, as it
//! stored them, so that streams at the head deliver them without reading
//! the log back (a read beside every batch would take time from ingest).
//!
//! Every transaction that stores events (a batch, an admin's audit event)
//! hands them over once it commits. The tail holds only what it can vouch
//! for: a run of ids with no hole, every event stored after its start.
//! Events another server stored leave a hole in the ids; the next batch
//! then starts a new run after it, and a stream behind the hole reads the
//! log as before. Off until a stream is active: storing a batch then costs
//! one atomic load.

use super::NewEvent;
use crate::server::clock::Micros;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Events the tail keeps (the oldest go first): a few seconds of heavy
/// ingest, about 20 MB (twice that at most while no stream reads it).
pub const TAIL_EVENTS: usize = 20_000;

/// One stored event, as the insert path wrote it.
#[derive(Debug)]
pub struct TailEvent {
    pub id: i64,
    pub received_at: Micros,
    pub chain_hash: [u8; 32],
    pub event: NewEvent,
}

/// Events one transaction stored: `ids` in order, one an event.
#[derive(Debug)]
pub struct Batch {
    pub ids: Vec<i64>,
    pub hashes: Vec<[u8; 32]>,
    pub events: Vec<NewEvent>,
    pub received_at: Micros,
}

#[derive(Debug, Default)]
pub struct Tail {
    on: AtomicBool,
    run: Mutex<Run>,
}

#[derive(Debug, Default)]
struct Run {
    /// Every event stored with an id above this is in `events` (none when
    /// it is `None`).
    covered_from: Option<i64>,
    events: VecDeque<Arc<TailEvent>>,
}

impl Run {
    fn last_id(&self) -> Option<i64> {
        self.events.back().map(|e| e.id).or(self.covered_from)
    }

    /// Lets go of the oldest events beyond `keep`; the caller drops them
    /// once it has let go of the lock.
    fn trim(&mut self, keep: usize) -> Vec<Arc<TailEvent>> {
        let over = self.events.len().saturating_sub(keep);
        let gone: Vec<Arc<TailEvent>> = self.events.drain(..over).collect();
        if let Some(last) = gone.last() {
            self.covered_from = Some(last.id);
        }
        gone
    }
}

impl Tail {
    fn run(&self) -> std::sync::MutexGuard<'_, Run> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Starts keeping batches (a no-op when on). It vouches for nothing
    /// until the first batch stored after this call.
    pub fn switch_on(&self) {
        self.on.store(true, Ordering::Release);
    }

    /// Stops keeping batches and lets go of what it holds.
    pub fn switch_off(&self) {
        self.on.store(false, Ordering::Release);
        *self.run() = Run::default();
    }

    /// Forgets what it holds (some of it may have been deleted); the next
    /// batch starts a new run.
    pub fn forget(&self) {
        *self.run() = Run::default();
    }

    /// A committed batch.
    pub(super) fn publish(&self, batch: Batch) {
        if !self.is_on() {
            return;
        }
        let Batch {
            ids,
            hashes,
            events,
            received_at,
        } = batch;
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return;
        };
        let mut run = self.run();
        match run.last_id() {
            Some(prev) if first == prev + 1 => {}
            // Published late, after a later batch: nothing new.
            Some(prev) if last <= prev => return,
            // A hole (or the first batch): a new run starts here.
            _ => {
                run.events.clear();
                run.covered_from = Some(first - 1);
            }
        }
        for ((id, chain_hash), event) in ids.into_iter().zip(hashes).zip(events) {
            run.events.push_back(Arc::new(TailEvent {
                id,
                received_at,
                chain_hash,
                event,
            }));
        }
        // The readers let go of the oldest (freeing them is their time, not
        // the storing transaction's); this bound holds when none reads.
        let gone = run.trim(2 * TAIL_EVENTS);
        drop(run);
        drop(gone);
    }

    /// Up to `limit` events after `after` (every one stored, in id order),
    /// when the tail vouches for all of them; `None` when it does not (the
    /// log must be read).
    pub fn after(&self, after: i64, limit: usize) -> Option<Vec<Arc<TailEvent>>> {
        let mut run = self.run();
        let gone = run.trim(TAIL_EVENTS);
        let covered_from = run.covered_from?;
        let found = if after < covered_from {
            None
        } else {
            let skip = run.events.partition_point(|e| e.id <= after);
            Some(run.events.iter().skip(skip).take(limit).cloned().collect())
        };
        // Freed once the storing transactions may publish again.
        drop(run);
        drop(gone);
        found
    }

    /// The event `id`, when the tail holds it.
    pub fn get(&self, id: i64) -> Option<Arc<TailEvent>> {
        let run = self.run();
        let at = run.events.binary_search_by_key(&id, |e| e.id).ok()?;
        run.events.get(at).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(tail: &Tail, ids: std::ops::RangeInclusive<i64>) {
        let ids: Vec<i64> = ids.collect();
        let events: Vec<NewEvent> = ids
            .iter()
            .map(|id| NewEvent {
                occurred_at: *id,
                ip: None,
                initiator: crate::models::Initiator {
                    kind: crate::models::InitiatorKind::System,
                    id: None,
                    name: None,
                    email: None,
                    role: None,
                },
                action: "CREATE".into(),
                table_name: None,
                primary_key: None,
                description: format!("event {id}"),
                before: None,
                after: None,
                user_agent: None,
                request_id: None,
                session_id: None,
            })
            .collect();
        tail.publish(Batch {
            hashes: vec![[0; 32]; ids.len()],
            ids,
            events,
            received_at: 0,
        });
    }

    fn ids(events: Option<Vec<Arc<TailEvent>>>) -> Option<Vec<i64>> {
        events.map(|e| e.iter().map(|e| e.id).collect())
    }

    #[test]
    fn it_vouches_only_for_a_run_of_ids_with_no_hole() {
        let tail = Tail::default();
        batch(&tail, 1..=3);
        assert_eq!(ids(tail.after(0, 10)), None, "off: it keeps nothing");
        tail.switch_on();
        batch(&tail, 4..=6);
        assert_eq!(ids(tail.after(3, 10)), Some(vec![4, 5, 6]));
        assert_eq!(ids(tail.after(2, 10)), None, "3 was stored before");
        batch(&tail, 7..=8);
        assert_eq!(ids(tail.after(5, 2)), Some(vec![6, 7]));
        assert_eq!(ids(tail.after(8, 10)), Some(vec![]), "all there is");
        // Event 9 was stored another way: a new run starts at 10.
        batch(&tail, 10..=11);
        assert_eq!(ids(tail.after(8, 10)), None);
        assert_eq!(ids(tail.after(9, 10)), Some(vec![10, 11]));
        // A batch published late changes nothing.
        batch(&tail, 10..=11);
        assert_eq!(ids(tail.after(9, 10)), Some(vec![10, 11]));
        assert_eq!(
            tail.get(11).map(|e| e.event.description.clone()),
            Some("event 11".into())
        );
        tail.forget();
        assert_eq!(ids(tail.after(11, 10)), None, "forgotten");
        batch(&tail, 12..=12);
        assert_eq!(ids(tail.after(11, 10)), Some(vec![12]));
        tail.switch_off();
        assert_eq!(ids(tail.after(11, 10)), None);
    }

    #[test]
    fn it_keeps_the_last_events_and_vouches_from_the_oldest_it_kept() {
        let tail = Tail::default();
        tail.switch_on();
        let n = TAIL_EVENTS as i64;
        batch(&tail, 1..=n);
        batch(&tail, n + 1..=n + 100);
        assert_eq!(
            tail.run().events.len(),
            TAIL_EVENTS + 100,
            "storing leaves the trimming to the readers"
        );
        assert_eq!(ids(tail.after(99, 1)), None);
        assert_eq!(ids(tail.after(100, 1)), Some(vec![101]));
        assert_eq!(tail.run().events.len(), TAIL_EVENTS);
        // With no reader, storing keeps at most twice as many.
        batch(&tail, n + 101..=3 * n);
        assert_eq!(tail.run().events.len(), 2 * TAIL_EVENTS);
        assert_eq!(ids(tail.after(2 * n, 1)), Some(vec![2 * n + 1]));
        assert_eq!(ids(tail.after(2 * n - 1, 1)), None);
    }
}
