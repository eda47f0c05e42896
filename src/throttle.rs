//! Brute-force throttling of failed logins (RFC 6749 §4.3.2, OWASP ASVS V2.2.1).
//!
//! Failures are counted under three keys, each with its own threshold:
//! - username + client IP (strict): stops one client guessing one account;
//! - client IP (looser): stops one client spraying many accounts;
//! - username from any IP (looser): stops a distributed attack on one account, but it does
//!   not apply to an IP that has logged in as that user before, so an attacker elsewhere
//!   cannot lock the real user out of their usual place.
//!
//! Past a threshold, attempts under that key get 429 before any hashing, for a lockout that
//! doubles with each further failure up to a cap. A success clears the username's counts.
//! Usernames are kept only as keyed 64-bit hashes, and the tables have a fixed maximum size
//! (idle entries expire; when full, the stalest entry goes), so cycling usernames cannot grow
//! memory without limit.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{ConfigError, Env};

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

impl ThrottleConfig {
    /// Reads the `LOGIN_*` variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            enabled: env.switch("LOGIN_THROTTLE", d.enabled)?,
            max_failures: env.parse_in("LOGIN_MAX_FAILURES", d.max_failures, 1..=1000)?,
            user_max_failures: env.parse_in("LOGIN_USER_MAX_FAILURES", d.user_max_failures, 1..=100_000)?,
            ip_max_failures: env.parse_in("LOGIN_IP_MAX_FAILURES", d.ip_max_failures, 1..=100_000)?,
            window: env.seconds("LOGIN_FAILURE_WINDOW_SECS", d.window.as_secs(), 1..=86_400)?,
            lockout: env.seconds("LOGIN_LOCKOUT_SECS", d.lockout.as_secs(), 1..=86_400)?,
            max_lockout: env.seconds("LOGIN_LOCKOUT_MAX_SECS", d.max_lockout.as_secs(), 1..=86_400)?,
            max_entries: env.parse_in("LOGIN_THROTTLE_MAX_ENTRIES", d.max_entries, 100..=10_000_000)?,
        })
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
    last_failure: Instant,
    blocked_until: Option<Instant>,
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

impl LoginThrottle {
    /// Empty counters with these thresholds.
    pub fn new(config: ThrottleConfig) -> Self {
        Self { config, hasher: RandomState::new(), tables: Mutex::default() }
    }

    /// Refuses the attempt when any of its keys is locked out.
    pub fn check(&self, username: &str, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        if !self.config.enabled {
            return Ok(());
        }
        let user = self.hasher.hash_one(username);
        let tables = self.lock();
        let known = tables.known.get(&(user, ip)).is_some_and(|at| now < *at + KNOWN_FOR);
        let mut keys = vec![Key::UserIp(user, ip), Key::Ip(ip)];
        if !known {
            keys.push(Key::User(user));
        }
        let until = keys
            .iter()
            .filter_map(|key| tables.counters.get(key)?.blocked_until)
            .filter(|until| *until > now)
            .max();
        match until {
            None => Ok(()),
            Some(until) => Err(Throttled { retry_after: ceil_secs(until - now) }),
        }
    }

    /// Counts a failed login under all three keys, starting or lengthening lockouts.
    pub fn record_failure(&self, username: &str, ip: IpAddr, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let user = self.hasher.hash_one(username);
        let config = &self.config;
        let mut tables = self.lock();
        for (key, threshold) in [
            (Key::UserIp(user, ip), config.max_failures),
            (Key::User(user), config.user_max_failures),
            (Key::Ip(ip), config.ip_max_failures),
        ] {
            if !tables.counters.contains_key(&key) {
                make_room(
                    &mut tables.counters,
                    config.max_entries,
                    |c| self.expired(c, now),
                    |c| c.last_failure,
                );
            }
            let counter = tables.counters.entry(key).or_insert(Counter {
                failures: 0,
                last_failure: now,
                blocked_until: None,
            });
            if now.duration_since(counter.last_failure) > config.window {
                counter.failures = 0;
            }
            counter.failures = counter.failures.saturating_add(1);
            counter.last_failure = now;
            if counter.failures >= threshold {
                counter.blocked_until = Some(now + self.lockout(counter.failures - threshold));
            }
        }
    }

    /// A successful login clears the username's counts and trusts this IP for the username.
    pub fn record_success(&self, username: &str, ip: IpAddr, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let user = self.hasher.hash_one(username);
        let mut tables = self.lock();
        tables.counters.remove(&Key::UserIp(user, ip));
        tables.counters.remove(&Key::User(user));
        if !tables.known.contains_key(&(user, ip)) {
            make_room(&mut tables.known, self.config.max_entries, |at| now >= *at + KNOWN_FOR, |at| *at);
        }
        tables.known.insert((user, ip), now);
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

    fn throttle(max_failures: u32, user_max: u32, ip_max: u32) -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig {
            max_failures,
            user_max_failures: user_max,
            ip_max_failures: ip_max,
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(60),
            window: Duration::from_secs(300),
            max_entries: 100,
            enabled: true,
        })
    }

    #[test]
    fn the_threshold_locks_out_and_the_lockout_doubles_up_to_the_cap() {
        let t = throttle(3, 100, 100);
        let now = Instant::now();
        for _ in 0..2 {
            t.record_failure("alice", ATTACKER, now);
        }
        assert_eq!(t.check("alice", ATTACKER, now), Ok(()));
        t.record_failure("alice", ATTACKER, now);
        assert_eq!(t.check("alice", ATTACKER, now), Err(Throttled { retry_after: 10 }));
        t.record_failure("alice", ATTACKER, now);
        assert_eq!(t.check("alice", ATTACKER, now), Err(Throttled { retry_after: 20 }));
        for _ in 0..5 {
            t.record_failure("alice", ATTACKER, now);
        }
        assert_eq!(t.check("alice", ATTACKER, now), Err(Throttled { retry_after: 60 }));
        assert_eq!(t.check("alice", ATTACKER, now + Duration::from_secs(61)), Ok(()));
        // Another username from the same IP is not locked by this key.
        assert_eq!(t.check("bob", ATTACKER, now), Ok(()));
    }

    #[test]
    fn a_success_resets_the_usernames_count() {
        let t = throttle(3, 100, 100);
        let now = Instant::now();
        t.record_failure("alice", ALICE_HOME, now);
        t.record_failure("alice", ALICE_HOME, now);
        t.record_success("alice", ALICE_HOME, now);
        t.record_failure("alice", ALICE_HOME, now);
        t.record_failure("alice", ALICE_HOME, now);
        assert_eq!(t.check("alice", ALICE_HOME, now), Ok(()));
    }

    #[test]
    fn an_attacker_elsewhere_cannot_lock_the_user_out_of_a_known_ip() {
        let t = throttle(1000, 5, 1000);
        let now = Instant::now();
        t.record_success("alice", ALICE_HOME, now);
        for i in 0..10u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, i));
            t.record_failure("alice", ip, now);
        }
        assert!(t.check("alice", ATTACKER, now).is_err(), "new IPs are held back");
        assert_eq!(t.check("alice", ALICE_HOME, now), Ok(()), "the known IP is not");
    }

    #[test]
    fn one_ip_spraying_many_usernames_is_locked_out() {
        let t = throttle(1000, 1000, 5);
        let now = Instant::now();
        for i in 0..5 {
            t.record_failure(&format!("user{i}"), ATTACKER, now);
        }
        assert!(t.check("someone-else", ATTACKER, now).is_err());
        assert_eq!(t.check("someone-else", ALICE_HOME, now), Ok(()));
    }

    #[test]
    fn counts_are_forgotten_after_the_window() {
        let t = throttle(2, 100, 100);
        let now = Instant::now();
        t.record_failure("alice", ATTACKER, now);
        t.record_failure("alice", ATTACKER, now + Duration::from_secs(301));
        assert_eq!(t.check("alice", ATTACKER, now + Duration::from_secs(301)), Ok(()));
    }

    #[test]
    fn tables_stay_bounded_when_usernames_cycle() {
        let t = throttle(5, 5, 1_000_000);
        let now = Instant::now();
        for i in 0..1000 {
            t.record_failure(&format!("user{i}"), ATTACKER, now + Duration::from_millis(i));
        }
        assert!(t.lock().counters.len() <= 100);
        // The busy IP key is the freshest, so it survives eviction.
        assert!(t.lock().counters.contains_key(&Key::Ip(ATTACKER)));
    }

    #[test]
    fn switched_off_it_never_refuses() {
        let t = LoginThrottle::new(ThrottleConfig { enabled: false, max_failures: 1, ..Default::default() });
        let now = Instant::now();
        t.record_failure("alice", ATTACKER, now);
        assert_eq!(t.check("alice", ATTACKER, now), Ok(()));
    }
}
