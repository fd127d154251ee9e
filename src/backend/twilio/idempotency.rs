//! Idempotency keys for backends without a store of their own (the twilio backend): an
//! in-memory table, per process, of key -> (request fingerprint, result).
//!
//! Concurrent calls with the same key wait for the first one and share its result, so a
//! participant is created once however many retries race. Only successes are kept: a
//! failed create may be retried with the same key. Entries live for the configured TTL
//! and the table holds at most `capacity` keys (oldest dropped first).
//!
//! Scope: one replica. Across replicas, the key is also sent to Twilio as
//! `Idempotency-Key` ([`idempotency_header`]), and a v2 create is further protected by
//! Twilio's own one-address-per-conversation rule (see `conflict`).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::domain::CreateRequest;
use crate::domain::error::Error;

struct Slot<T> {
    fingerprint: Vec<u8>,
    created: Instant,
    result: OnceCell<T>,
}

/// Keys, and the order they arrived in (for expiry and eviction).
struct Table<T> {
    slots: HashMap<String, Arc<Slot<T>>>,
    order: VecDeque<(Instant, String)>,
}

/// The table for one kind of created resource `T`.
pub(crate) struct IdempotencyCache<T> {
    table: Mutex<Table<T>>,
    ttl: Duration,
    capacity: usize,
}

impl<T: Clone + Send + Sync> IdempotencyCache<T> {
    /// An empty table.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        IdempotencyCache {
            table: Mutex::new(Table {
                slots: HashMap::new(),
                order: VecDeque::new(),
            }),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// Runs `create` unless `request`'s key already produced a result in `scope` (a keyed
    /// hash of the caller's whole credential, see `Credentials::scope`); the same key with a different request is [`Error::IdempotencyKeyReused`].
    /// Without a key, just runs it.
    pub(crate) async fn run<R, F>(&self, scope: &str, request: &R, create: F) -> Result<T, Error>
    where
        R: CreateRequest,
        F: Future<Output = Result<T, Error>>,
    {
        let Some(key) = request.idempotency_key() else {
            return create.await;
        };
        let key = format!("{scope}\u{0}{key}");
        let slot = self.slot(&key, request.fingerprint());
        if slot.fingerprint != request.fingerprint() {
            return Err(Error::IdempotencyKeyReused);
        }
        let result = slot.result.get_or_try_init(|| create).await.cloned();
        if result.is_err() {
            self.forget_failed(&key, &slot);
        }
        result
    }

    /// A create that failed binds its key to nothing: the caller may retry it, or send a
    /// corrected request under the same key.
    fn forget_failed(&self, key: &str, slot: &Arc<Slot<T>>) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let same = table
            .slots
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, slot) && current.result.get().is_none());
        if same {
            table.slots.remove(key);
        }
    }

    fn slot(&self, key: &str, fingerprint: Vec<u8>) -> Arc<Slot<T>> {
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Table { slots: map, order } = &mut *guard;
        let now = Instant::now();
        while let Some((created, _)) = order.front() {
            let expired = now.duration_since(*created) >= self.ttl;
            if !expired && map.len() < self.capacity {
                break;
            }
            if let Some((created, old)) = order.pop_front()
                && map.get(&old).is_some_and(|s| s.created == created)
            {
                map.remove(&old);
            }
        }
        if let Some(slot) = map.get(key) {
            return slot.clone();
        }
        let slot = Arc::new(Slot {
            fingerprint,
            created: now,
            result: OnceCell::new(),
        });
        map.insert(key.to_owned(), slot.clone());
        order.push_back((now, key.to_owned()));
        slot
    }
}

/// The `Idempotency-Key` header for a caller's key. Twilio declares a UUID there
/// (`8-4-4-4-12` hex digits); a key of that shape is sent as it is, any other becomes the
/// name-based UUID (version 5) of the key, so that the same key always sends the same
/// header and different keys different ones.
pub(crate) fn idempotency_header(key: &str) -> String {
    if is_hyphenated_uuid(key) {
        return key.to_owned();
    }
    uuid::Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, key.as_bytes())
        .hyphenated()
        .to_string()
}

/// The namespace of derived idempotency UUIDs: the v5 UUID, in the URL namespace, of
/// `https://github.com/participants-facade/participants-facade/idempotency-key`. Fixed
/// forever: changing it would change every derived key.
const IDEMPOTENCY_NAMESPACE: uuid::Uuid = uuid::uuid!("ea36d4db-fbfb-5f20-a238-49f9f6577250");

fn is_hyphenated_uuid(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_keys_pass_as_they_are_and_others_map_to_a_stable_v5_uuid() {
        let uuid = "01890a5d-aa0f-7c80-b8e6-0242ac140004";
        assert_eq!(idempotency_header(uuid), uuid);
        assert_eq!(
            idempotency_header("01890A5D-AA0F-7C80-B8E6-0242AC140004"),
            "01890A5D-AA0F-7C80-B8E6-0242AC140004"
        );
        let derived = idempotency_header("order-42");
        assert!(is_hyphenated_uuid(&derived), "{derived}");
        assert_eq!(&derived[14..15], "5", "version 5: {derived}");
        assert_eq!(derived, idempotency_header("order-42"));
        assert_ne!(derived, idempotency_header("order-43"));
        assert_eq!(
            IDEMPOTENCY_NAMESPACE,
            uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_URL,
                b"https://github.com/participants-facade/participants-facade/idempotency-key"
            )
        );
        // Not a hyphenated UUID, so derived: simple form, braces, a stray character.
        for other in [
            "01890a5daa0f7c80b8e60242ac140004",
            "{01890a5d-aa0f-7c80-b8e6-0242ac140004}",
            "01890a5d-aa0f-7c80-b8e6-0242ac14000g",
        ] {
            assert_ne!(idempotency_header(other), other);
        }
    }
}
