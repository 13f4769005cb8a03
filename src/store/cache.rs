//! A read cache for meetings and their participants, used when this process owns the database
//! (embedded `surrealkv://` or `mem://`): every write to those tables goes through this store,
//! which moves the generation on, so an entry is served only while nothing has changed since it
//! was read. With a remote database other servers write too, and the cache is off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{MeetingRow, ParticipantRow};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Meeting(String),
    Meetings(Option<String>, Option<Vec<String>>),
    Participants(String),
}

#[derive(Debug, Clone)]
pub(super) enum Value {
    Meeting(Option<Box<MeetingRow>>),
    Meetings(Vec<MeetingRow>),
    Participants(Vec<ParticipantRow>),
}

/// At most this many entries; past it the cache starts afresh.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(super) struct ReadCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<Key, (u64, Value)>>,
}

impl ReadCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (u64, Value)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The generation to tag a read with; take it before the read starts.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn get(&self, key: &Key) -> Option<Value> {
        let current = self.generation();
        self.lock()
            .get(key)
            .filter(|(g, _)| *g == current)
            .map(|(_, v)| v.clone())
    }

    /// Keeps a value read at `generation`; one read before a later write is never kept.
    pub(super) fn put(&self, key: Key, generation: u64, value: Value) {
        let mut map = self.lock();
        if generation != self.generation() {
            return;
        }
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, (generation, value));
    }

    /// After a write: nothing read before it is served again.
    pub(super) fn invalidate(&self) {
        let mut map = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}
