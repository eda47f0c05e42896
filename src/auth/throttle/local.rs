//! The counters in this process: three keys per attempt in one table behind a lock, and the
//! (username, IP) pairs that logged in. Usernames are kept only as keyed 64-bit hashes, and the
//! tables have a fixed maximum size (idle entries expire; when full, the stalest entry goes),
//! so cycling usernames cannot grow memory without limit.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use std::time::Duration;

use super::{Counter, KNOWN_FOR, Kind, Outcome, ThrottleConfig, Throttled, duration_ms};
use crate::telemetry::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    UserIp(u64, IpAddr),
    User(u64),
    Ip(IpAddr),
}

impl Key {
    fn kind(&self) -> Kind {
        match self {
            Key::UserIp(..) => Kind::UserIp,
            Key::User(_) => Kind::User,
            Key::Ip(_) => Kind::Ip,
        }
    }
}

/// The tables, shared by all requests of this process.
pub(super) struct Tables {
    hasher: RandomState,
    started: Instant,
    inner: Mutex<Inner>,
    /// Where the tables' sizes are reported.
    metrics: Metrics,
}

#[derive(Default)]
struct Inner {
    counters: HashMap<Key, Counter>,
    /// (username hash, IP) pairs that logged in successfully, and when.
    known: HashMap<(u64, IpAddr), u64>,
}

/// The places an attempt holds. Without a user, it is counted against its client only.
pub(super) struct Ticket {
    user: Option<u64>,
    ip: IpAddr,
    reserved: Vec<Key>,
}

impl Tables {
    pub(super) fn new(metrics: Metrics) -> Self {
        Self { hasher: RandomState::new(), started: Instant::now(), inner: Mutex::default(), metrics }
    }

    /// Checks every key and takes a place under each, in one step under the lock. Without a
    /// username, only the client's key counts.
    pub(super) fn reserve(
        &self,
        config: &ThrottleConfig,
        username: Option<&str>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Ticket, Throttled> {
        let (user, now) = (username.map(|username| self.hasher.hash_one(username)), self.ms(now));
        let mut inner = self.lock();
        let mut keys = vec![Key::Ip(ip)];
        if let Some(user) = user {
            keys.push(Key::UserIp(user, ip));
            if inner.known.get(&(user, ip)).is_none_or(|at| now >= at + duration_ms(KNOWN_FOR)) {
                keys.push(Key::User(user));
            }
        }
        let refusals =
            keys.iter().filter_map(|key| config.refusal(inner.counters.get(key)?, key.kind(), now));
        if let Some(retry_after) = refusals.max() {
            return Err(Throttled { retry_after });
        }
        for key in &keys {
            inner.counter(config, *key, now).pending += 1;
        }
        self.metrics.throttle_entries(inner.counters.len(), inner.known.len());
        Ok(Ticket { user, ip, reserved: keys })
    }

    /// Frees the ticket's places and counts its outcome; returns the lockouts a failure
    /// started or lengthened.
    pub(super) fn settle(
        &self,
        config: &ThrottleConfig,
        ticket: Ticket,
        outcome: Outcome,
        now: Instant,
    ) -> Vec<(Kind, Duration)> {
        let now = self.ms(now);
        let mut lockouts = Vec::new();
        let mut inner = self.lock();
        for key in &ticket.reserved {
            if let Some(counter) = inner.counters.get_mut(key) {
                counter.pending = counter.pending.saturating_sub(1);
            }
        }
        let user_keys: Vec<Key> =
            ticket.user.map(|user| vec![Key::UserIp(user, ticket.ip), Key::User(user)]).unwrap_or_default();
        match outcome {
            // A failure counts under all three keys, the username-wide one even from a known IP.
            Outcome::Failure => {
                for key in user_keys.iter().copied().chain([Key::Ip(ticket.ip)]) {
                    if let Some(lockout) =
                        config.count_failure(inner.counter(config, key, now), key.kind(), now)
                    {
                        lockouts.push((key.kind(), lockout));
                    }
                }
            }
            Outcome::Success => {
                for key in &user_keys {
                    if let Some(counter) = inner.counters.get_mut(key) {
                        counter.failures = 0;
                        counter.blocked_until = None;
                    }
                }
                if let Some(user) = ticket.user {
                    let pair = (user, ticket.ip);
                    if !inner.known.contains_key(&pair) {
                        let horizon = duration_ms(KNOWN_FOR);
                        make_room(&mut inner.known, config.max_entries, |at| now >= at + horizon, |at| *at);
                    }
                    inner.known.insert(pair, now);
                }
            }
            Outcome::Abandoned => {}
        }
        for key in ticket.reserved.iter().chain(&user_keys) {
            if inner.counters.get(key).is_some_and(Counter::is_idle) {
                inner.counters.remove(key);
            }
        }
        self.metrics.throttle_entries(inner.counters.len(), inner.known.len());
        lockouts
    }

    fn ms(&self, now: Instant) -> u64 {
        duration_ms(now.saturating_duration_since(self.started))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// The counter for `key`, made (room permitting) if there is none.
    fn counter(&mut self, config: &ThrottleConfig, key: Key, now: u64) -> &mut Counter {
        if !self.counters.contains_key(&key) {
            make_room(
                &mut self.counters,
                config.max_entries,
                |c| config.is_forgotten(c, now),
                |c| c.last_failure,
            );
        }
        self.counters.entry(key).or_insert_with(|| Counter::new(now))
    }
}

/// Before inserting into a full table: drop expired entries, then if still full the stalest.
fn make_room<K: Copy + Eq + std::hash::Hash, V>(
    table: &mut HashMap<K, V>,
    max: usize,
    expired: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> u64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ALICE_HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    /// The tables with their rules, and attempts that settle as the throttle's do.
    struct T {
        tables: Tables,
        config: ThrottleConfig,
    }

    struct Held<'a> {
        t: &'a T,
        ticket: Option<Ticket>,
    }

    impl T {
        fn reserve(&self, username: &str, ip: IpAddr, now: Instant) -> Result<Held<'_>, Throttled> {
            let ticket = self.tables.reserve(&self.config, Some(username), ip, now)?;
            Ok(Held { t: self, ticket: Some(ticket) })
        }

        fn lock(&self) -> MutexGuard<'_, Inner> {
            self.tables.lock()
        }
    }

    impl Held<'_> {
        fn settle(mut self, outcome: Outcome, now: Instant) {
            self.t.tables.settle(&self.t.config, self.ticket.take().unwrap(), outcome, now);
        }

        fn failed(self, now: Instant) {
            self.settle(Outcome::Failure, now);
        }

        fn succeeded(self, now: Instant) {
            self.settle(Outcome::Success, now);
        }
    }

    impl Drop for Held<'_> {
        fn drop(&mut self) {
            if let Some(ticket) = self.ticket.take() {
                self.t.tables.settle(&self.t.config, ticket, Outcome::Abandoned, Instant::now());
            }
        }
    }

    fn throttle(max_failures: u32, user_max: u32, ip_max: u32) -> T {
        let config = ThrottleConfig {
            max_failures,
            user_max_failures: user_max,
            ip_max_failures: ip_max,
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(60),
            window: Duration::from_secs(300),
            max_entries: 100,
            enabled: true,
        };
        T { tables: Tables::new(Metrics::off()), config }
    }

    /// Would an attempt be admitted now? (The place taken is freed again at once.)
    fn check(t: &T, username: &str, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        t.reserve(username, ip, now).map(drop)
    }

    fn fail(t: &T, username: &str, ip: IpAddr, now: Instant) {
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
}
