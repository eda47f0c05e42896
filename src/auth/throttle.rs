//! Brute-force throttling of failed logins (RFC 6749 §4.3.2, OWASP ASVS V2.2.1).
//!
//! Failures are counted under three keys, each with its own threshold:
//! - username + client IP (strict): stops one client guessing one account;
//! - client IP (looser): stops one client spraying many accounts;
//! - username from any IP (looser): stops a distributed attack on one account, but it does
//!   not apply to an IP that has logged in as that user before, so an attacker elsewhere
//!   cannot lock the real user out of their usual place.
//!
//! An attempt first *reserves* its place under its keys, in one step with the check, and is
//! settled as a success or a failure once its hash is done (dropped unsettled, a shed or
//! abandoned attempt counts as nothing). A key admits at most as many attempts at once as it
//! has failures left before its threshold (one at a time once past it), so a burst of
//! simultaneous guesses cannot all pass the check before any of them is counted: the rest of
//! the burst gets 429 at once, without hashing. Past a threshold, attempts under that key get
//! 429 for a lockout that doubles with each further failure up to a cap. A success clears the
//! username's counts. Usernames are kept only as keyed 64-bit hashes, and the tables have a
//! fixed maximum size (idle entries expire; when full, the stalest idle entry goes), so cycling
//! usernames cannot grow memory without limit.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Thresholds and lockout times. `LOGIN_THROTTLE=off` disables throttling entirely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// On by default (`LOGIN_THROTTLE`).
    pub enabled: bool,
    /// Failures for one username from one IP before a lockout (`LOGIN_MAX_FAILURES`, 5).
    pub max_failures: u32,
    /// Failures for one username from all IPs (`LOGIN_USER_MAX_FAILURES`, 20).
    pub user_max_failures: u32,
    /// Failures from one IP for all usernames (`LOGIN_IP_MAX_FAILURES`, 50).
    pub ip_max_failures: u32,
    /// A count is forgotten this long after its last failure (`LOGIN_FAILURE_WINDOW_SECS`, 900).
    pub window: Duration,
    /// The first lockout; each further failure doubles it (`LOGIN_LOCKOUT_SECS`, 60).
    pub lockout: Duration,
    /// The longest lockout (`LOGIN_LOCKOUT_MAX_SECS`, 900).
    pub max_lockout: Duration,
    /// Most entries kept per table (`LOGIN_THROTTLE_MAX_ENTRIES`, 100000).
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: 5,
            user_max_failures: 20,
            ip_max_failures: 50,
            window: Duration::from_secs(900),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(900),
            max_entries: 100_000,
        }
    }
}

/// The attempt is refused; retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Whole seconds until the lockout ends (at least 1).
    pub retry_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    UserIp(u64, IpAddr),
    User(u64),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    /// Attempts reserved under this key and not yet settled.
    pending: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

impl Counter {
    fn new(now: Instant) -> Self {
        Self { failures: 0, pending: 0, last_failure: now, blocked_until: None }
    }

    fn is_idle(&self) -> bool {
        self.pending == 0 && self.failures == 0 && self.blocked_until.is_none()
    }
}

#[derive(Default)]
struct Tables {
    counters: HashMap<Key, Counter>,
    /// (username hash, IP) pairs that logged in successfully, and when.
    known: HashMap<(u64, IpAddr), Instant>,
}

/// The failure counters, shared by all requests.
pub struct LoginThrottle {
    config: ThrottleConfig,
    hasher: RandomState,
    tables: Mutex<Tables>,
}

/// How long a successful (username, IP) pair stays trusted against the username-wide limit.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// A login attempt holding its place in the counters. Settle it with `succeeded` or `failed`
/// once the password is checked; dropped unsettled (shed, timed out, client gone), it counts
/// as nothing and frees its place.
#[must_use = "an attempt frees its place when dropped; settle it once the password is checked"]
pub struct Attempt {
    throttle: Arc<LoginThrottle>,
    user: u64,
    ip: IpAddr,
    /// The keys this attempt holds a place under (none when throttling is off).
    reserved: Vec<Key>,
}

impl LoginThrottle {
    /// Empty counters with these thresholds.
    pub fn new(config: ThrottleConfig) -> Self {
        Self { config, hasher: RandomState::new(), tables: Mutex::default() }
    }

    /// Checks the attempt against every key and, if none refuses it, takes its place under
    /// each, in one step. Refused while a key is locked out, or while as many attempts are in
    /// flight under a key as could still reach its threshold.
    pub fn reserve(self: &Arc<Self>, username: &str, ip: IpAddr, now: Instant) -> Result<Attempt, Throttled> {
        let user = self.hasher.hash_one(username);
        let mut attempt = Attempt { throttle: Arc::clone(self), user, ip, reserved: Vec::new() };
        if !self.config.enabled {
            return Ok(attempt);
        }
        let mut tables = self.lock();
        let known = tables.known.get(&(user, ip)).is_some_and(|at| now < *at + KNOWN_FOR);
        let mut keys = vec![Key::UserIp(user, ip), Key::Ip(ip)];
        if !known {
            keys.push(Key::User(user));
        }
        let refusals = keys.iter().filter_map(|key| {
            let counter = tables.counters.get(key)?;
            self.refusal(counter, self.threshold(key), now)
        });
        if let Some(retry_after) = refusals.max() {
            return Err(Throttled { retry_after });
        }
        for key in &keys {
            let counter = self.counter(&mut tables, *key, now);
            counter.pending += 1;
        }
        attempt.reserved = keys;
        Ok(attempt)
    }

    /// Seconds to wait when `counter` refuses a new attempt, or `None` when it admits one.
    fn refusal(&self, counter: &Counter, threshold: u32, now: Instant) -> Option<u64> {
        if let Some(until) = counter.blocked_until.filter(|until| *until > now) {
            return Some(ceil_secs(until - now));
        }
        let failures = self.live_failures(counter, now);
        // Below the threshold, as many attempts as failures are left; past it (the lockout
        // over), one at a time, each failure doubling the next lockout.
        let room = threshold.saturating_sub(failures).max(1);
        // Refused for attempts in flight: the lockout they would set if they all fail.
        (counter.pending >= room).then(|| ceil_secs(self.lockout(failures + counter.pending - threshold)))
    }

    /// The counter for `key`, made (room permitting) if there is none.
    fn counter<'t>(&self, tables: &'t mut Tables, key: Key, now: Instant) -> &'t mut Counter {
        if !tables.counters.contains_key(&key) {
            make_room(
                &mut tables.counters,
                self.config.max_entries,
                |c| c.pending == 0 && self.expired(c, now),
                |c| c.last_failure,
            );
        }
        tables.counters.entry(key).or_insert_with(|| Counter::new(now))
    }

    /// Counts a failure under all three keys (the username-wide one even from a known IP),
    /// starting or lengthening lockouts, and frees the attempt's places.
    fn record_failure(&self, attempt: &Attempt, now: Instant) {
        let mut tables = self.lock();
        for key in [Key::UserIp(attempt.user, attempt.ip), Key::User(attempt.user), Key::Ip(attempt.ip)] {
            let threshold = self.threshold(&key);
            let window = self.config.window;
            let counter = self.counter(&mut tables, key, now);
            if attempt.reserved.contains(&key) {
                counter.pending = counter.pending.saturating_sub(1);
            }
            if now.duration_since(counter.last_failure) > window {
                counter.failures = 0;
            }
            counter.failures = counter.failures.saturating_add(1);
            counter.last_failure = now;
            if counter.failures >= threshold {
                counter.blocked_until = Some(now + self.lockout(counter.failures - threshold));
            }
        }
    }

    /// A success clears the username's counts, trusts this IP for the username, and frees
    /// the attempt's places.
    fn record_success(&self, attempt: &Attempt, now: Instant) {
        let mut tables = self.lock();
        for key in [Key::UserIp(attempt.user, attempt.ip), Key::User(attempt.user)] {
            if let Some(counter) = tables.counters.get_mut(&key) {
                counter.failures = 0;
                counter.blocked_until = None;
            }
        }
        self.release(&mut tables, attempt);
        let pair = (attempt.user, attempt.ip);
        if !tables.known.contains_key(&pair) {
            make_room(&mut tables.known, self.config.max_entries, |at| now >= *at + KNOWN_FOR, |at| *at);
        }
        tables.known.insert(pair, now);
    }

    /// Frees the attempt's places; counters left with nothing to remember are dropped.
    fn release(&self, tables: &mut Tables, attempt: &Attempt) {
        for key in &attempt.reserved {
            if let Some(counter) = tables.counters.get_mut(key) {
                counter.pending = counter.pending.saturating_sub(1);
                if counter.is_idle() {
                    tables.counters.remove(key);
                }
            }
        }
    }

    fn threshold(&self, key: &Key) -> u32 {
        match key {
            Key::UserIp(..) => self.config.max_failures,
            Key::User(_) => self.config.user_max_failures,
            Key::Ip(_) => self.config.ip_max_failures,
        }
    }

    /// Failures still inside the window.
    fn live_failures(&self, counter: &Counter, now: Instant) -> u32 {
        if now.duration_since(counter.last_failure) > self.config.window { 0 } else { counter.failures }
    }

    /// `lockout` doubled `extra` times, at most `max_lockout`.
    fn lockout(&self, extra: u32) -> Duration {
        let factor = 1u32.checked_shl(extra.min(31)).unwrap_or(u32::MAX);
        self.config.lockout.saturating_mul(factor).min(self.config.max_lockout)
    }

    fn expired(&self, counter: &Counter, now: Instant) -> bool {
        now.duration_since(counter.last_failure) > self.config.window
            && counter.blocked_until.is_none_or(|until| until <= now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the counters inconsistent.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Attempt {
    /// The password was right: clears the username's counts.
    pub fn succeeded(mut self, now: Instant) {
        if self.throttle.config.enabled {
            self.throttle.record_success(&self, now);
        }
        self.reserved.clear();
    }

    /// The password was wrong (or the user unknown): counts a failure under every key.
    pub fn failed(mut self, now: Instant) {
        if self.throttle.config.enabled {
            self.throttle.record_failure(&self, now);
        }
        self.reserved.clear();
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.reserved.is_empty() {
            let throttle = Arc::clone(&self.throttle);
            throttle.release(&mut throttle.lock(), self);
        }
    }
}

/// Before inserting into a full table: drop expired entries, then if still full the stalest.
fn make_room<K: Copy + Eq + std::hash::Hash, V>(
    table: &mut HashMap<K, V>,
    max: usize,
    expired: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> Instant,
) {
    if table.len() < max {
        return;
    }
    table.retain(|_, value| !expired(value));
    while table.len() >= max {
        let Some(stalest) = table.iter().min_by_key(|(_, value)| age(value)).map(|(key, _)| *key) else {
            return;
        };
        table.remove(&stalest);
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE_HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    fn throttle(max_failures: u32, user_max: u32, ip_max: u32) -> Arc<LoginThrottle> {
        Arc::new(LoginThrottle::new(ThrottleConfig {
            max_failures,
            user_max_failures: user_max,
            ip_max_failures: ip_max,
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(60),
            window: Duration::from_secs(300),
            max_entries: 100,
            enabled: true,
        }))
    }

    /// Would an attempt be admitted now? (The place taken is freed again at once.)
    fn check(t: &Arc<LoginThrottle>, username: &str, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        t.reserve(username, ip, now).map(drop)
    }

    fn fail(t: &Arc<LoginThrottle>, username: &str, ip: IpAddr, now: Instant) {
        t.reserve(username, ip, now).expect("admitted").failed(now);
    }

    #[test]
    fn the_threshold_locks_out_and_the_lockout_doubles_up_to_the_cap() {
        let t = throttle(3, 100, 100);
        let now = Instant::now();
        for _ in 0..2 {
            fail(&t, "alice", ATTACKER, now);
        }
        assert_eq!(check(&t, "alice", ATTACKER, now), Ok(()));
        fail(&t, "alice", ATTACKER, now);
        assert_eq!(check(&t, "alice", ATTACKER, now), Err(Throttled { retry_after: 10 }));
        let later = now + Duration::from_secs(10);
        fail(&t, "alice", ATTACKER, later);
        assert_eq!(check(&t, "alice", ATTACKER, later), Err(Throttled { retry_after: 20 }));
        let mut at = later;
        for _ in 0..5 {
            at += Duration::from_secs(60);
            fail(&t, "alice", ATTACKER, at);
        }
        assert_eq!(check(&t, "alice", ATTACKER, at), Err(Throttled { retry_after: 60 }));
        assert_eq!(check(&t, "alice", ATTACKER, at + Duration::from_secs(61)), Ok(()));
        // Another username from the same IP is not locked by this key.
        assert_eq!(check(&t, "bob", ATTACKER, now), Ok(()));
    }

    #[test]
    fn a_burst_gets_only_as_many_places_as_failures_are_left() {
        let t = throttle(5, 100, 100);
        let now = Instant::now();
        fail(&t, "alice", ATTACKER, now);
        let burst: Vec<_> = (0..30).map(|_| t.reserve("alice", ATTACKER, now)).collect();
        let admitted = burst.iter().filter(|attempt| attempt.is_ok()).count();
        assert_eq!(admitted, 4, "5 failures allowed, 1 already spent");
        // The refused ones are told the lockout the attempts in flight would set.
        assert!(burst.iter().any(|attempt| matches!(attempt, Err(Throttled { retry_after: 10 }))));
        for attempt in burst.into_iter().flatten() {
            attempt.failed(now);
        }
        assert_eq!(check(&t, "alice", ATTACKER, now), Err(Throttled { retry_after: 10 }));
    }

    #[test]
    fn past_the_threshold_only_one_attempt_at_a_time_probes_the_lockout() {
        let t = throttle(2, 100, 100);
        let now = Instant::now();
        fail(&t, "alice", ATTACKER, now);
        fail(&t, "alice", ATTACKER, now);
        let after = now + Duration::from_secs(11);
        let probe = t.reserve("alice", ATTACKER, after).expect("the lockout is over");
        assert_eq!(check(&t, "alice", ATTACKER, after), Err(Throttled { retry_after: 20 }));
        probe.failed(after);
        assert_eq!(check(&t, "alice", ATTACKER, after), Err(Throttled { retry_after: 20 }));
    }

    #[test]
    fn an_abandoned_attempt_frees_its_place_without_counting() {
        let t = throttle(1, 1, 1);
        let now = Instant::now();
        let attempt = t.reserve("alice", ATTACKER, now).unwrap();
        assert!(check(&t, "alice", ATTACKER, now).is_err(), "the only place is taken");
        drop(attempt);
        assert_eq!(check(&t, "alice", ATTACKER, now), Ok(()));
        assert!(t.lock().counters.is_empty(), "nothing is remembered");
    }

    #[test]
    fn a_success_resets_the_usernames_count() {
        let t = throttle(3, 100, 100);
        let now = Instant::now();
        fail(&t, "alice", ALICE_HOME, now);
        fail(&t, "alice", ALICE_HOME, now);
        t.reserve("alice", ALICE_HOME, now).unwrap().succeeded(now);
        fail(&t, "alice", ALICE_HOME, now);
        fail(&t, "alice", ALICE_HOME, now);
        assert_eq!(check(&t, "alice", ALICE_HOME, now), Ok(()));
    }

    #[test]
    fn a_success_keeps_the_places_of_other_attempts_in_flight() {
        let t = throttle(2, 100, 100);
        let now = Instant::now();
        let first = t.reserve("alice", ALICE_HOME, now).unwrap();
        let second = t.reserve("alice", ALICE_HOME, now).unwrap();
        first.succeeded(now);
        let third = t.reserve("alice", ALICE_HOME, now).unwrap();
        assert!(check(&t, "alice", ALICE_HOME, now).is_err(), "two still in flight");
        second.failed(now);
        third.failed(now);
        assert!(check(&t, "alice", ALICE_HOME, now).is_err(), "both failures counted");
    }

    #[test]
    fn an_attacker_elsewhere_cannot_lock_the_user_out_of_a_known_ip() {
        let t = throttle(1000, 5, 1000);
        let now = Instant::now();
        t.reserve("alice", ALICE_HOME, now).unwrap().succeeded(now);
        for i in 0..10u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, i));
            if let Ok(attempt) = t.reserve("alice", ip, now) {
                attempt.failed(now);
            }
        }
        assert!(check(&t, "alice", ATTACKER, now).is_err(), "new IPs are held back");
        assert_eq!(check(&t, "alice", ALICE_HOME, now), Ok(()), "the known IP is not");
    }

    #[test]
    fn one_ip_spraying_many_usernames_is_locked_out() {
        let t = throttle(1000, 1000, 5);
        let now = Instant::now();
        for i in 0..5 {
            fail(&t, &format!("user{i}"), ATTACKER, now);
        }
        assert!(check(&t, "someone-else", ATTACKER, now).is_err());
        assert_eq!(check(&t, "someone-else", ALICE_HOME, now), Ok(()));
    }

    #[test]
    fn counts_are_forgotten_after_the_window() {
        let t = throttle(2, 100, 100);
        let now = Instant::now();
        fail(&t, "alice", ATTACKER, now);
        fail(&t, "alice", ATTACKER, now + Duration::from_secs(301));
        assert_eq!(check(&t, "alice", ATTACKER, now + Duration::from_secs(301)), Ok(()));
    }

    #[test]
    fn tables_stay_bounded_when_usernames_cycle() {
        let t = throttle(5, 5, 1_000_000);
        let now = Instant::now();
        for i in 0..1000 {
            fail(&t, &format!("user{i}"), ATTACKER, now + Duration::from_millis(i));
        }
        assert!(t.lock().counters.len() <= 100);
        // The busy IP key is the freshest, so it survives eviction.
        assert!(t.lock().counters.contains_key(&Key::Ip(ATTACKER)));
    }

    #[test]
    fn switched_off_it_never_refuses() {
        let t = Arc::new(LoginThrottle::new(ThrottleConfig {
            enabled: false,
            max_failures: 1,
            ..Default::default()
        }));
        let now = Instant::now();
        let held = t.reserve("alice", ATTACKER, now).unwrap();
        fail(&t, "alice", ATTACKER, now);
        assert_eq!(check(&t, "alice", ATTACKER, now), Ok(()));
        drop(held);
    }
}
