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
//! username's counts.
//!
//! The counters live in this process (`local`), or, when instances share a PostgreSQL
//! database, in that database (`shared`), where the same reservation is one transaction on
//! locked rows: guesses spread over any number of instances are counted once.

/// The counters in this process.
mod local;
/// The counters in PostgreSQL, shared by every instance.
mod shared;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::counters::SharedCounters;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::ThrottleKey;

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

/// Why an attempt may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures under one of its keys.
    Throttled(Throttled),
    /// The shared counters cannot be reached: better refuse than guess.
    Unavailable,
}

/// How long a (username, IP) pair that logged in stays trusted against the username-wide limit.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The three keys an attempt is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    UserIp,
    User,
    Ip,
}

/// One key's count. Times are milliseconds on the clock the counters are kept with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counter {
    failures: u32,
    /// Attempts reserved under this key and not yet settled.
    pending: u32,
    last_failure: u64,
    blocked_until: Option<u64>,
}

impl Counter {
    fn new(now: u64) -> Self {
        Self { failures: 0, pending: 0, last_failure: now, blocked_until: None }
    }

    fn is_idle(&self) -> bool {
        self.pending == 0 && self.failures == 0 && self.blocked_until.is_none()
    }
}

/// The rules, the same wherever the counters are kept.
impl ThrottleConfig {
    fn threshold(&self, kind: Kind) -> u32 {
        match kind {
            Kind::UserIp => self.max_failures,
            Kind::User => self.user_max_failures,
            Kind::Ip => self.ip_max_failures,
        }
    }

    /// Seconds to wait when `counter` refuses a new attempt at `now`, or `None` when it
    /// admits one.
    fn refusal(&self, counter: &Counter, kind: Kind, now: u64) -> Option<u64> {
        if let Some(until) = counter.blocked_until.filter(|until| *until > now) {
            return Some(ceil_secs(Duration::from_millis(until - now)));
        }
        let threshold = self.threshold(kind);
        let failures = self.live_failures(counter, now);
        // Below the threshold, as many attempts as failures are left; past it (the lockout
        // over), one at a time, each failure doubling the next lockout.
        let room = threshold.saturating_sub(failures).max(1);
        // Refused for attempts in flight: the lockout they would set if they all fail.
        (counter.pending >= room).then(|| ceil_secs(self.lockout(failures + counter.pending - threshold)))
    }

    /// Counts a failure at `now`, starting or lengthening a lockout; returns the lockout when
    /// it did.
    fn count_failure(&self, counter: &mut Counter, kind: Kind, now: u64) -> Option<Duration> {
        counter.failures = self.live_failures(counter, now).saturating_add(1);
        counter.last_failure = now;
        let threshold = self.threshold(kind);
        if counter.failures >= threshold {
            let lockout = self.lockout(counter.failures - threshold);
            counter.blocked_until = Some(now + duration_ms(lockout));
            return Some(lockout);
        }
        None
    }

    /// Failures still inside the window.
    fn live_failures(&self, counter: &Counter, now: u64) -> u32 {
        if now.saturating_sub(counter.last_failure) > duration_ms(self.window) { 0 } else { counter.failures }
    }

    /// `lockout` doubled `extra` times, at most `max_lockout`.
    fn lockout(&self, extra: u32) -> Duration {
        let factor = 1u32.checked_shl(extra.min(31)).unwrap_or(u32::MAX);
        self.lockout.saturating_mul(factor).min(self.max_lockout)
    }

    /// True when the counter has nothing left to say: no attempt in flight, its failures out
    /// of the window and its lockout over.
    fn is_forgotten(&self, counter: &Counter, now: u64) -> bool {
        counter.pending == 0
            && self.live_failures(counter, now) == 0
            && counter.blocked_until.is_none_or(|until| until <= now)
    }
}

/// How a settled attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The password was right: the username's counts are cleared.
    Success,
    /// The password was wrong, or the user unknown: a failure under every key.
    Failure,
    /// Shed, timed out or abandoned: counts as nothing.
    Abandoned,
}

/// The failure counters, shared by all requests (and, through PostgreSQL, by all instances).
pub struct LoginThrottle {
    config: ThrottleConfig,
    counters: Counters,
    metrics: Metrics,
}

enum Counters {
    Off,
    Local(local::Tables),
    Shared(shared::Tables),
}

/// A login attempt holding its place in the counters. Settle it with `succeeded` or `failed`
/// once the password is checked; dropped unsettled (shed, timed out, client gone), it counts
/// as nothing and frees its place.
#[must_use = "an attempt frees its place when dropped; settle it once the password is checked"]
pub struct Attempt {
    throttle: Arc<LoginThrottle>,
    ticket: Option<Ticket>,
    who: Who,
}

/// Whom an attempt is for, to name in the audit log if its failure locks a key out.
#[derive(Debug, Clone)]
struct Who {
    username: Option<String>,
    ip: IpAddr,
}

enum Ticket {
    Local(local::Ticket),
    Shared(shared::Ticket),
}

impl LoginThrottle {
    /// Counters in this process (or none when `config.enabled` is off); lockouts and the
    /// tables' sizes are recorded in `metrics`.
    pub fn new(config: ThrottleConfig, metrics: Metrics) -> Self {
        let counters =
            if config.enabled { Counters::Local(local::Tables::new(metrics.clone())) } else { Counters::Off };
        Self { config, counters, metrics }
    }

    /// Counters in a PostgreSQL database that every instance shares (or none when off). Starts
    /// the task that purges what the tables no longer need, for as long as the throttle lives.
    pub fn shared(config: ThrottleConfig, counters: SharedCounters, metrics: Metrics) -> Arc<Self> {
        let counters = if config.enabled {
            Counters::Shared(shared::Tables::new(counters, metrics.clone()))
        } else {
            Counters::Off
        };
        let throttle = Arc::new(Self { config, counters, metrics });
        if let Counters::Shared(_) = throttle.counters {
            tokio::spawn(shared::purge_regularly(Arc::downgrade(&throttle)));
        }
        throttle
    }

    /// True when the counters are shared with other instances.
    pub fn is_shared(&self) -> bool {
        matches!(self.counters, Counters::Shared(_))
    }

    /// Checks the attempt against every key and, if none refuses it, takes its place under
    /// each, in one step. Refused while a key is locked out, or while as many attempts are in
    /// flight under a key as could still reach its threshold.
    pub async fn reserve(self: &Arc<Self>, username: &str, ip: IpAddr) -> Result<Attempt, Refusal> {
        self.reserve_keys(Some(username), ip).await
    }

    /// As `reserve`, for an attempt without a username (a refresh token): only the client's
    /// address is counted.
    pub async fn reserve_for_client(self: &Arc<Self>, ip: IpAddr) -> Result<Attempt, Refusal> {
        self.reserve_keys(None, ip).await
    }

    async fn reserve_keys(self: &Arc<Self>, username: Option<&str>, ip: IpAddr) -> Result<Attempt, Refusal> {
        let ticket = match &self.counters {
            Counters::Off => None,
            Counters::Local(tables) => Some(Ticket::Local(
                tables.reserve(&self.config, username, ip, Instant::now()).map_err(Refusal::Throttled)?,
            )),
            Counters::Shared(tables) => {
                Some(Ticket::Shared(tables.reserve(&self.config, username, ip).await?))
            }
        };
        let who = Who { username: username.map(str::to_owned), ip };
        Ok(Attempt { throttle: Arc::clone(self), ticket, who })
    }

    /// Counts the outcome and frees the places. Shared counters are settled by a task of
    /// their own, which a caller may wait for (`Some`) or not.
    fn settle(&self, ticket: Ticket, outcome: Outcome, who: &Who) -> Option<tokio::task::JoinHandle<()>> {
        match (&self.counters, ticket) {
            (Counters::Local(tables), Ticket::Local(ticket)) => {
                let lockouts = tables.settle(&self.config, ticket, outcome, Instant::now());
                report_lockouts(&self.metrics, who, &lockouts);
                None
            }
            (Counters::Shared(tables), Ticket::Shared(ticket)) => {
                tables.settle_later(self.config, ticket, outcome, who.clone())
            }
            _ => None,
        }
    }

    /// Settles and waits until the outcome is counted, so that the client's next attempt,
    /// sent once this one is answered, sees it. The settling goes on if the caller is dropped.
    async fn settle_before_answering(&self, ticket: Ticket, outcome: Outcome, who: &Who) {
        if let Some(settling) = self.settle(ticket, outcome, who) {
            let _ = settling.await;
        }
    }
}

/// Counts the lockouts a failure started or lengthened, and writes each to the audit log.
fn report_lockouts(metrics: &Metrics, who: &Who, lockouts: &[(Kind, Duration)]) {
    for (kind, lockout) in lockouts {
        let key = match kind {
            Kind::UserIp => ThrottleKey::UserIp,
            Kind::User => ThrottleKey::User,
            Kind::Ip => ThrottleKey::Ip,
        };
        metrics.lockout(key);
        tracing::warn!(
            target: "audit",
            event = "login.locked_out",
            username = who.username.as_deref().unwrap_or(""),
            client_ip = %who.ip,
            outcome = "locked_out",
            key = key.as_str(),
            lockout_secs = lockout.as_secs(),
            "too many failures: attempts under this key are refused until the lockout ends"
        );
    }
}

impl Attempt {
    /// The password was right: clears the username's counts.
    pub async fn succeeded(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.throttle.settle_before_answering(ticket, Outcome::Success, &self.who).await;
        }
    }

    /// The password was wrong (or the user unknown): counts a failure under every key.
    pub async fn failed(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.throttle.settle_before_answering(ticket, Outcome::Failure, &self.who).await;
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            // Nothing to wait for: an abandoned attempt counts as nothing.
            let _ = self.throttle.settle(ticket, Outcome::Abandoned, &self.who);
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}
