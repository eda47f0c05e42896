//! The users as a running server holds them: every user by name, the store revision they
//! reflect, and when they were last known to be current.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::{Changes, Unavailable, UserInDb};

/// The users by name. foldhash, seeded per process, instead of SipHash: every authenticated
/// request looks a user up, and only the store's own changes insert.
type Users = HashMap<String, Arc<UserInDb>, foldhash::fast::RandomState>;

/// Every user and every revoked access token, followed from a backend.
pub(crate) struct Cache {
    users: RwLock<Users>,
    /// Revoked access tokens by id, with their expiry (Unix seconds).
    revoked: RwLock<HashMap<[u8; 16], i64>>,
    /// True when `revoked` is not empty: the read path looks no further otherwise.
    any_revoked: AtomicBool,
    revision: AtomicI64,
    /// `None`: always current (the in-memory store has no other writers).
    max_staleness_ms: Option<u64>,
    started: Instant,
    /// When the last successful refresh began, in milliseconds since `started`.
    synced_at_ms: AtomicU64,
    /// The last refresh failed (the database refused or did not answer in time).
    failing: AtomicBool,
}

impl Cache {
    /// An empty cache; lookups fail when it was not refreshed within `max_staleness`.
    pub(crate) fn new(max_staleness: Option<Duration>) -> Self {
        Self {
            users: RwLock::default(),
            revoked: RwLock::default(),
            any_revoked: AtomicBool::new(false),
            revision: AtomicI64::new(0),
            max_staleness_ms: max_staleness.map(|bound| u64::try_from(bound.as_millis()).unwrap_or(u64::MAX)),
            started: Instant::now(),
            synced_at_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        }
    }

    /// The user with this exact username, unless the database has failed to answer for longer
    /// than the staleness bound. (A refresh that is merely slow, on a busy machine, does not
    /// make the cache unavailable: only a failed one does.)
    pub(crate) fn get(&self, username: &str) -> Result<Option<Arc<UserInDb>>, Unavailable> {
        if !self.is_available() {
            return Err(Unavailable);
        }
        Ok(self.read().get(username).cloned())
    }

    /// False once refreshes have failed for longer than the staleness bound.
    pub(crate) fn is_available(&self) -> bool {
        let Some(bound) = self.max_staleness_ms else { return true };
        !(self.failing.load(Ordering::Acquire)
            && self.now().saturating_sub(self.synced_at_ms.load(Ordering::Acquire)) > bound)
    }

    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    /// Every user, in username order.
    pub(crate) fn list(&self) -> Vec<Arc<UserInDb>> {
        let mut users: Vec<_> = self.read().values().cloned().collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        users
    }

    /// The store revision the cache reflects.
    pub(crate) fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Applies what changed; the cache then reflects `changes.revision`.
    pub(crate) fn apply(&self, changes: Changes) {
        let mut users = self.users.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for record in changes.users {
            users.insert(record.user.username.clone(), Arc::new(UserInDb::from(record)));
        }
        for username in &changes.removed {
            users.remove(username);
        }
        drop(users);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut revoked = self.revoked.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (id, expires_at) in changes.revoked {
            if let Some(id) = decode_id(&id) {
                revoked.insert(id, expires_at);
            }
        }
        // A revocation outlives its token by nothing: an expired token is refused anyway.
        revoked.retain(|_, expires_at| *expires_at > now);
        self.any_revoked.store(!revoked.is_empty(), Ordering::Release);
        self.revision.store(changes.revision, Ordering::Release);
    }

    /// True when some access token is revoked (and has not expired yet).
    pub(crate) fn any_revoked(&self) -> bool {
        self.any_revoked.load(Ordering::Acquire)
    }

    /// True when the access token named `id` was revoked.
    pub(crate) fn is_revoked(&self, id: &[u8; 16]) -> bool {
        self.revoked.read().unwrap_or_else(|poisoned| poisoned.into_inner()).contains_key(id)
    }

    /// Milliseconds since the cache was made: the clock of `synced`.
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records that a refresh begun at `began` (from `now`) succeeded.
    pub(crate) fn synced(&self, began: u64) {
        self.synced_at_ms.fetch_max(began, Ordering::AcqRel);
        self.failing.store(false, Ordering::Release);
    }

    /// Records that a refresh failed.
    pub(crate) fn failed(&self) {
        self.failing.store(true, Ordering::Release);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Users> {
        // A panic while holding the lock leaves whole entries only: the map is still usable.
        self.users.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A revoked token's id as stored (32 hex digits) as the 16 bytes the read path compares.
fn decode_id(hex: &str) -> Option<[u8; 16]> {
    let mut id = [0u8; 16];
    if hex.len() != 32 {
        return None;
    }
    for (byte, pair) in id.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(id)
}
