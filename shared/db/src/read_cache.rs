//! A small in-process cache for rows read far more often than they change.
//!
//! Entries live for a fixed time (`ttl`; zero turns the cache off). The
//! process's own writes make their keys be forgotten at once, so a client
//! of one replica reads its own writes; a write made by another replica is
//! seen once the entry ages out, at most `ttl` later.
//!
//! A read that started before a write and finishes after it must not put
//! the value it read back in: every [`ReadCache::forget`] moves a generation
//! counter on, and [`ReadCache::fill`] stores only when the counter has not
//! moved since the [`Miss`] it was given. (The counter is one for all keys:
//! a busy stream of writes costs some fills, never a stale answer.)
//!
//! Hand-written rather than a cache crate: the guard against a read that
//! raced a write is the point, and the general caches (moka, quick_cache)
//! leave it to the caller.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Cached values by key, each for at most `ttl`.
pub struct ReadCache<K, V> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: HashMap<K, (V, Instant)>,
    generation: u64,
}

/// A cache miss: what [`ReadCache::fill`] needs to store the value read.
#[must_use = "pass it to fill() with the value read"]
pub struct Miss(u64);

impl<K: Eq + Hash + Clone, V: Clone> ReadCache<K, V> {
    /// A cache keeping each value for `ttl` (zero: off) and at most
    /// `capacity` entries (when full, it starts over empty).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }

    /// The value cached for `key`, or a [`Miss`] to fill it with.
    ///
    /// # Errors
    /// A [`Miss`] when nothing fresh is cached (always, when off).
    pub fn get(&self, key: &K) -> Result<V, Miss> {
        let inner = self.lock();
        match inner.entries.get(key) {
            Some((value, at)) if at.elapsed() < self.ttl => Ok(value.clone()),
            _ => Err(Miss(inner.generation)),
        }
    }

    /// Stores `value`, read for `key` after `miss`, unless a write was
    /// forgotten since (the value may predate it) or the cache is off.
    pub fn fill(&self, key: K, value: V, miss: Miss) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != miss.0 {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&key) {
            inner.entries.clear();
        }
        inner.entries.insert(key, (value, Instant::now()));
    }

    /// Forgets `keys`, which this process has just changed.
    pub fn forget<'a>(&self, keys: impl IntoIterator<Item = &'a K>)
    where
        K: 'a,
    {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        for key in keys {
            inner.entries.remove(key);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        // A panic while holding the lock cannot leave an entry half written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> ReadCache<&'static str, i64> {
        ReadCache::new(Duration::from_secs(60), 2)
    }

    #[test]
    fn a_filled_value_is_served_until_forgotten() {
        let cache = cache();
        let miss = cache.get(&"a").expect_err("empty");
        cache.fill("a", 1, miss);
        assert_eq!(cache.get(&"a").ok(), Some(1));
        cache.forget([&"a"]);
        assert!(cache.get(&"a").is_err());
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_stored() {
        let cache = cache();
        let miss = cache.get(&"a").expect_err("empty");
        cache.forget([&"b"]); // a write lands while "a" is being read
        cache.fill("a", 1, miss);
        assert!(cache.get(&"a").is_err(), "the value may predate the write");
    }

    #[test]
    fn entries_age_out_and_a_zero_ttl_is_off() {
        let cache = ReadCache::new(Duration::from_millis(1), 2);
        let miss = cache.get(&"a").expect_err("empty");
        cache.fill("a", 1, miss);
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get(&"a").is_err(), "aged out");
        let off = ReadCache::new(Duration::ZERO, 2);
        let miss = off.get(&"a").expect_err("empty");
        off.fill("a", 1, miss);
        assert!(off.get(&"a").is_err(), "off");
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = cache();
        for (key, value) in [("a", 1), ("b", 2), ("c", 3)] {
            let miss = cache.get(&key).expect_err("empty");
            cache.fill(key, value, miss);
        }
        assert!(cache.get(&"a").is_err());
        assert_eq!(cache.get(&"c").ok(), Some(3));
    }
}
