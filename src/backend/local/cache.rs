//! Records already read, kept in memory for fetches (`--cache-entries`).

use std::sync::Arc;

use prometheus::IntCounter;
use quick_cache::sync::Cache;

use crate::observability::metrics::METRICS;

/// Records of one table already read, by id, with their hit and miss counters.
pub(super) struct FetchCache<T> {
    entries: Cache<String, Arc<T>>,
    hits: IntCounter,
    misses: IntCounter,
}

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

    pub(super) fn insert(&self, id: &str, record: &T) {
        self.entries.insert(id.to_owned(), Arc::new(record.clone()));
    }
}
