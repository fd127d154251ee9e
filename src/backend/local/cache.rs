//! Records already read, kept in memory for fetches (`--cache-entries`, `--cache-bytes`).
//!
//! Each table's cache is bounded twice: at most `entries` records, and at most `bytes` of
//! records as [`Weigh`] estimates them. One weight does both: a record weighs its
//! estimated bytes, but never less than `bytes / entries`, and the records' weights stay
//! within `bytes`. Records of the usual size (under a KiB or two) are then bounded by
//! their count as before; large ones (v1 attributes reach 16 KiB) by their bytes, so the
//! memory a cache can hold is known whatever callers store.
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

use crate::domain::{Address, Participant, ServiceParticipant};
use crate::observability::metrics::METRICS;

/// A record that the cache can weigh: with its own size, its key and the entry's
/// bookkeeping added, what an entry holds ([`Bytes`]).
pub(super) trait Weigh {
    /// What the record's fields hold on the heap.
    fn heap_bytes(&self) -> usize;
}

/// An entry's bookkeeping beyond key and record: the `Arc`'s counts and the cache's slot,
/// about.
const ENTRY_OVERHEAD: usize = 64;

fn maybe(s: &Option<String>) -> usize {
    s.as_deref().map_or(0, str::len)
}

impl Weigh for Participant {
    fn heap_bytes(&self) -> usize {
        self.id.len()
            + self.conversation_id.len()
            + self.account_id.len()
            + maybe(&self.name)
            + maybe(&self.profile_id)
            + self.addresses.len() * std::mem::size_of::<Address>()
            + self
                .addresses
                .iter()
                .map(|a| a.address.len() + maybe(&a.channel_id) + maybe(&a.channel_name))
                .sum::<usize>()
    }
}

impl Weigh for ServiceParticipant {
    fn heap_bytes(&self) -> usize {
        let binding = self.messaging_binding.as_ref().map_or(0, |b| {
            maybe(&b.address)
                + maybe(&b.proxy_address)
                + maybe(&b.projected_address)
                + maybe(&b.proxy_address_fallback)
                + maybe(&b.kind)
        });
        self.sid.len()
            + self.account_sid.len()
            + self.chat_service_sid.len()
            + self.conversation_sid.len()
            + maybe(&self.identity)
            + self.attributes.len()
            + binding
            + maybe(&self.role_sid)
            + maybe(&self.last_read_timestamp)
    }
}

/// Weighs an entry at its estimated bytes, and at least `floor` (see the module's
/// comment).
#[derive(Clone)]
struct Bytes {
    floor: u64,
}

impl<T: Weigh> quick_cache::Weighter<String, Arc<T>> for Bytes {
    fn weight(&self, key: &String, record: &Arc<T>) -> u64 {
        let bytes = key.len() + std::mem::size_of::<T>() + record.heap_bytes() + ENTRY_OVERHEAD;
        u64::try_from(bytes).unwrap_or(u64::MAX).max(self.floor)
    }
}

/// Records of one table already read, by id, with their hit and miss counters.
pub(super) struct FetchCache<T> {
    entries: Cache<String, Arc<T>, Bytes>,
    /// Bumped by every invalidation; guards fills (see the module's comment).
    generation: Mutex<u64>,
    hits: IntCounter,
    misses: IntCounter,
}

/// The cache's generation when a fetch started reading the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket(u64);

impl<T: Clone + Weigh> FetchCache<T> {
    /// A cache of at most `entries` records and `bytes` of them, or none if either is 0.
    pub(super) fn new(table: &str, entries: usize, bytes: u64) -> Option<FetchCache<T>> {
        let counter = |result| {
            METRICS
                .store_cache_lookups
                .with_label_values(&[table, result])
        };
        let count = u64::try_from(entries).unwrap_or(u64::MAX);
        (entries > 0 && bytes > 0).then(|| FetchCache {
            entries: Cache::with_weighter(
                entries,
                bytes,
                Bytes {
                    floor: bytes.div_ceil(count),
                },
            ),
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

    impl Weigh for String {
        fn heap_bytes(&self) -> usize {
            self.len()
        }
    }

    /// Fills `cache` with `count` records of `size` bytes under fresh keys.
    fn fill_with(cache: &FetchCache<String>, count: usize, size: usize) {
        for i in 0..count {
            let ticket = cache.ticket();
            cache.fill(ticket, &format!("key-{size}-{i}"), &"x".repeat(size));
        }
    }

    #[test]
    fn small_records_are_bounded_by_their_count_and_large_ones_by_their_bytes() {
        let (entries, bytes) = (100, 100 * 1024);
        let cache = FetchCache::<String>::new("test", entries, bytes).expect("a cache");
        fill_with(&cache, 10 * entries, 10);
        let held = cache.entries.len();
        assert!(
            held <= entries,
            "{held} small records in a cache of {entries}"
        );
        assert!(held >= entries / 2, "only {held} of {entries} held");

        let cache = FetchCache::<String>::new("test", entries, bytes).expect("a cache");
        fill_with(&cache, 10 * entries, 8 * 1024);
        let held = cache.entries.len();
        assert!(held >= 1, "no large record held");
        assert!(
            held * 8 * 1024 <= usize::try_from(bytes).expect("fits"),
            "{held} records of 8 KiB in {bytes} bytes"
        );
        assert!(cache.entries.weight() <= bytes);
    }

    /// A record too heavy for the cache is not cached, and it does not leave the copy it
    /// replaces behind: a fetch after the write reads the store.
    #[test]
    fn a_change_too_heavy_to_cache_drops_the_cached_copy() {
        let cache = FetchCache::<String>::new("test", 16, 16 * 1024).expect("a cache");
        let ticket = cache.ticket();
        cache.fill(ticket, "a", &"old".to_owned());
        assert!(cache.get("a", |_| true).is_some());
        cache.changed("a", &"x".repeat(64 * 1024));
        assert!(cache.get("a", |_| true).is_none());
        assert!(cache.current("a").is_none());
    }

    #[test]
    fn no_bytes_or_no_entries_is_no_cache() {
        assert!(FetchCache::<String>::new("test", 0, 1 << 20).is_none());
        assert!(FetchCache::<String>::new("test", 16, 0).is_none());
    }

    #[test]
    fn a_fill_that_read_before_a_change_does_not_land() {
        let cache = FetchCache::<String>::new("test", 16, 1 << 20).expect("a cache");
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
        let cache = FetchCache::<String>::new("test", 16, 1 << 20).expect("a cache");
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
        let cache = FetchCache::<String>::new("test", 16, 1 << 20).expect("a cache");
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
