//! Records already read, kept in memory for fetches (`--cache-entries`).
//!
//! Records change (updates) and go away (v1 deletes), so the cache is kept exact rather
//! than trusted to age out: the writer thread replaces or removes a record's entry after
//! its transaction committed and before it answers the caller ([`FetchCache::changed`],
//! [`FetchCache::removed`]), so no fetch that starts after an acknowledged write finds the
//! old copy.
//!
//! A fetch that missed reads the store and then fills the cache. Its row may have been
//! read just before a write committed, and its insert may come after the writer's
//! invalidation; that stale copy must not land. So a fetch takes a [`Ticket`] (the
//! cache's generation) *before* it reads, and [`FetchCache::fill`] inserts only if no
//! write invalidated anything since. The writer bumps the generation and replaces the
//! entry under the same lock that `fill` checks and inserts under, so either the fill
//! comes first (and the writer then overwrites it) or it sees the new generation (and
//! inserts nothing). A write anywhere makes concurrent fills skip the cache: they are
//! merely not cached.
//!
//! A list takes the records of its page from the cache too ([`FetchCache::current`]):
//! what the cache holds is the record as last committed (the writer replaces it before it
//! acknowledges a write), so a list that starts after a write was acknowledged never
//! shows the old copy. A list that overlaps a write may show either copy, as a list
//! that ran just before or just after it would.

use std::sync::{Arc, Mutex};

use prometheus::IntCounter;
use quick_cache::sync::Cache;

use crate::observability::metrics::METRICS;

/// Records of one table already read, by id, with their hit and miss counters.
pub(super) struct FetchCache<T> {
    entries: Cache<String, Arc<T>>,
    /// Bumped by every invalidation; guards fills (see the module's comment).
    generation: Mutex<u64>,
    hits: IntCounter,
    misses: IntCounter,
}

/// The cache's generation when a fetch started reading the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket(u64);

impl<T: Clone> FetchCache<T> {
    /// A cache of `entries` records, or none for 0.
    pub(super) fn new(table: &str, entries: usize) -> Option<FetchCache<T>> {
        let counter = |result| {
            METRICS
                .store_cache_lookups
                .with_label_values(&[table, result])
        };
        (entries > 0).then(|| FetchCache {
            entries: Cache::new(entries),
            generation: Mutex::new(0),
            hits: counter("hit"),
            misses: counter("miss"),
        })
    }

    /// The record cached under `id`, if there is one and `usable` accepts it; counted as
    /// a hit or a miss.
    pub(super) fn get(&self, id: &str, usable: impl FnOnce(&T) -> bool) -> Option<Arc<T>> {
        let found = self.entries.get(id).filter(|cached| usable(cached));
        match found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        found
    }

    /// The record cached under `id`, if there is one; not counted (a list's lookups, not
    /// a fetch's).
    pub(super) fn current(&self, id: &str) -> Option<T> {
        self.entries.get(id).map(|cached| T::clone(&cached))
    }

    /// Taken before reading the store for a fill.
    pub(super) fn ticket(&self) -> Ticket {
        Ticket(*self.generation.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Caches `record`, read from the store after `ticket` was taken, unless a write
    /// invalidated anything since (the record may then be the old version).
    pub(super) fn fill(&self, ticket: Ticket, id: &str, record: &T) {
        let generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        if *generation == ticket.0 {
            self.entries.insert(id.to_owned(), Arc::new(record.clone()));
        }
    }

    /// The record under `id` is now `record` (committed): replaces the entry, and stops
    /// fills that read before the commit.
    pub(super) fn changed(&self, id: &str, record: &T) {
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        self.entries.insert(id.to_owned(), Arc::new(record.clone()));
    }

    /// The record under `id` may have changed or is gone: removes the entry, and stops
    /// fills that read before.
    pub(super) fn removed(&self, id: &str) {
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        self.entries.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_that_read_before_a_change_does_not_land() {
        let cache = FetchCache::<String>::new("test", 16).expect("a cache");
        // A fetch misses and takes its ticket, then reads the old row...
        let ticket = cache.ticket();
        // ...the writer commits a change and updates the cache...
        cache.changed("a", &"new".to_owned());
        // ...and the fetch's fill with the old row comes last.
        cache.fill(ticket, "a", &"old".to_owned());
        assert_eq!(
            cache.get("a", |_| true).map(|c| String::clone(&c)),
            Some("new".to_owned())
        );

        let ticket = cache.ticket();
        cache.removed("a");
        cache.fill(ticket, "a", &"old".to_owned());
        assert!(cache.get("a", |_| true).is_none());
    }

    #[test]
    fn a_fill_with_no_write_since_its_ticket_lands_and_a_later_change_replaces_it() {
        let cache = FetchCache::<String>::new("test", 16).expect("a cache");
        let ticket = cache.ticket();
        cache.fill(ticket, "a", &"v1".to_owned());
        assert_eq!(
            cache.get("a", |_| true).map(|c| String::clone(&c)),
            Some("v1".to_owned())
        );
        cache.changed("a", &"v2".to_owned());
        assert_eq!(
            cache.get("a", |_| true).map(|c| String::clone(&c)),
            Some("v2".to_owned())
        );
        cache.removed("a");
        assert!(cache.get("a", |_| true).is_none());
    }

    #[test]
    fn a_list_finds_the_last_committed_record_and_nothing_once_removed() {
        let cache = FetchCache::<String>::new("test", 16).expect("a cache");
        assert_eq!(cache.current("a"), None);
        let ticket = cache.ticket();
        cache.fill(ticket, "a", &"v1".to_owned());
        assert_eq!(cache.current("a"), Some("v1".to_owned()));
        cache.changed("a", &"v2".to_owned());
        assert_eq!(cache.current("a"), Some("v2".to_owned()));
        cache.removed("a");
        assert_eq!(cache.current("a"), None);
    }
}
