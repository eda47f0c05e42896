//! The counters in PostgreSQL, shared by every instance on one database. A reservation is one
//! transaction: the rows of the attempt's keys are locked, checked with the same rules as in
//! process, and given one more attempt in flight, which holds its place (with a lease, in case
//! its instance dies) until settled. Settling happens after the answer: the place stays taken
//! until the outcome is counted, so nothing slips through meanwhile.

use std::net::IpAddr;
use std::sync::Weak;
use std::time::Duration;

use super::{
    Counter, KNOWN_FOR, Kind, LoginThrottle, Outcome, Refusal, ThrottleConfig, Throttled, Who, duration_ms,
    report_lockouts,
};
use crate::store::StoreError;
use crate::store::counters::{CounterRow, CounterTx, SharedCounters};
use crate::telemetry::Metrics;

/// How long an attempt may hold its places: longer than any login may take, so only the
/// attempts of an instance that died run out (their places are then given back).
const LEASE: Duration = Duration::from_secs(60);

/// How often each instance purges what the tables no longer need.
const PURGE_EVERY: Duration = Duration::from_secs(10);

/// The shared tables.
pub(super) struct Tables {
    counters: SharedCounters,
    /// Where failures to reach the database are counted.
    metrics: Metrics,
}

/// The places an attempt holds: its row in the attempts table and its keys.
pub(super) struct Ticket {
    id: i64,
    keys: Keys,
    reserved: Vec<String>,
}

/// An attempt's keys and its (username, IP) pair, as the tables name them. Without a
/// username (a refresh token), only the client's key.
struct Keys {
    ip: String,
    user: Option<UserKeys>,
}

struct UserKeys {
    user_ip: String,
    user: String,
    pair: String,
}

impl Keys {
    fn new(counters: &SharedCounters, username: Option<&str>, ip: IpAddr) -> Self {
        let user = username.map(|username| {
            let user = counters.username_key(username);
            UserKeys {
                user_ip: format!("ui:{user}:{ip}"),
                pair: format!("{user}/{ip}"),
                user: format!("u:{user}"),
            }
        });
        Self { ip: format!("i:{ip}"), user }
    }

    fn kind(&self, key: &str) -> Kind {
        match &self.user {
            Some(user) if key == user.user_ip => Kind::UserIp,
            Some(user) if key == user.user => Kind::User,
            _ => Kind::Ip,
        }
    }

    fn all(&self) -> Vec<String> {
        let mut keys = vec![self.ip.clone()];
        if let Some(user) = &self.user {
            keys.extend([user.user_ip.clone(), user.user.clone()]);
        }
        keys
    }

    fn pair(&self) -> &str {
        self.user.as_ref().map_or("", |user| user.pair.as_str())
    }

    fn is_user_wide(&self, key: &str) -> bool {
        self.user.as_ref().is_some_and(|user| key == user.user)
    }
}

impl Tables {
    pub(super) fn new(counters: SharedCounters, metrics: Metrics) -> Self {
        Self { counters, metrics }
    }

    /// Checks every key and takes a place under each, in one transaction.
    pub(super) async fn reserve(
        &self,
        config: &ThrottleConfig,
        username: Option<&str>,
        ip: IpAddr,
    ) -> Result<Ticket, Refusal> {
        let keys = Keys::new(&self.counters, username, ip);
        let result = async {
            let mut tx = self.counters.lock(&keys.all(), keys.pair(), None).await?;
            let since = tx.now_ms.saturating_sub(i64::try_from(duration_ms(KNOWN_FOR)).unwrap_or(i64::MAX));
            let known = tx.known_at.is_some_and(|at| at > since);
            let now = clock(&tx);
            let applies = |row: &CounterRow| !(known && keys.is_user_wide(&row.key));
            let refusals = tx
                .rows
                .iter()
                .filter(|row| applies(row))
                .filter_map(|row| config.refusal(&counter(row), keys.kind(&row.key), now));
            if let Some(retry_after) = refusals.max() {
                // Dropping the transaction rolls back the rows it made.
                return Ok(Err(Throttled { retry_after }));
            }
            let mut reserved = Vec::new();
            for row in tx.rows.iter_mut().filter(|row| applies(row)) {
                row.pending += 1;
                reserved.push(row.key.clone());
            }
            let id = tx
                .commit(false, Some((&reserved, LEASE)))
                .await?
                .ok_or_else(|| StoreError::Failed("the attempt was not recorded".into()))?;
            Ok::<_, StoreError>(Ok((id, reserved)))
        }
        .await;
        match result {
            Ok(Ok((id, reserved))) => Ok(Ticket { id, keys, reserved }),
            Ok(Err(throttled)) => Err(Refusal::Throttled(throttled)),
            Err(error) => {
                self.metrics.database_error(error.is_unavailable());
                tracing::warn!(%error, "cannot reach the shared login throttle: refusing the login");
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Counts the outcome and frees the places, in a task of its own (the places stay taken
    /// until this is done), which finishes even if nobody waits for it. If the database is
    /// away, the places are given back when the lease runs out.
    pub(super) fn settle_later(
        &self,
        config: ThrottleConfig,
        ticket: Ticket,
        outcome: Outcome,
        who: Who,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let (counters, metrics) = (self.counters.clone(), self.metrics.clone());
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(runtime.spawn(async move {
            match settle(&counters, &config, &ticket, outcome).await {
                Ok(lockouts) => report_lockouts(&metrics, &who, &lockouts),
                Err(error) => {
                    metrics.database_error(error.is_unavailable());
                    tracing::warn!(%error, "cannot count a login in the shared throttle");
                }
            }
        }))
    }
}

async fn settle(
    counters: &SharedCounters,
    config: &ThrottleConfig,
    ticket: &Ticket,
    outcome: Outcome,
) -> Result<Vec<(Kind, Duration)>, StoreError> {
    let keys = &ticket.keys;
    let mut lockouts = Vec::new();
    let mut tx = counters.lock(&keys.all(), keys.pair(), Some(ticket.id)).await?;
    // After a lease ran out, the purge already gave the places back.
    let held = tx.held;
    let now = clock(&tx);
    for row in &mut tx.rows {
        let mut count = counter(row);
        if held && ticket.reserved.contains(&row.key) {
            count.pending = count.pending.saturating_sub(1);
        }
        match outcome {
            // A failure counts under all three keys, the username-wide one even from a known IP.
            Outcome::Failure => {
                if let Some(lockout) = config.count_failure(&mut count, keys.kind(&row.key), now) {
                    lockouts.push((keys.kind(&row.key), lockout));
                }
            }
            Outcome::Success if row.key != keys.ip => {
                count.failures = 0;
                count.blocked_until = None;
            }
            Outcome::Success | Outcome::Abandoned => {}
        }
        store(row, &count);
    }
    tx.commit(outcome == Outcome::Success && keys.user.is_some(), None).await?;
    Ok(lockouts)
}

/// Purges the shared tables every few seconds, for as long as the throttle lives.
pub(super) async fn purge_regularly(throttle: Weak<LoginThrottle>) {
    loop {
        tokio::time::sleep(PURGE_EVERY).await;
        let Some(throttle) = throttle.upgrade() else { return };
        let super::Counters::Shared(tables) = &throttle.counters else { return };
        let config = &throttle.config;
        if let Err(error) =
            tables.counters.purge(config.window.max(config.max_lockout), KNOWN_FOR, config.max_entries).await
        {
            tracing::debug!(%error, "cannot purge the shared login throttle now");
        }
        drop(throttle);
    }
}

/// The transaction's clock as the rules count time.
fn clock(tx: &CounterTx) -> u64 {
    u64::try_from(tx.now_ms).unwrap_or(0)
}

fn counter(row: &CounterRow) -> Counter {
    Counter {
        failures: u32::try_from(row.failures).unwrap_or(0),
        pending: u32::try_from(row.pending).unwrap_or(0),
        last_failure: u64::try_from(row.last_failure_ms).unwrap_or(0),
        blocked_until: row.blocked_until_ms.and_then(|until| u64::try_from(until).ok()),
    }
}

fn store(row: &mut CounterRow, counter: &Counter) {
    row.failures = i32::try_from(counter.failures).unwrap_or(i32::MAX);
    row.pending = i32::try_from(counter.pending).unwrap_or(i32::MAX);
    row.last_failure_ms = i64::try_from(counter.last_failure).unwrap_or(i64::MAX);
    row.blocked_until_ms = counter.blocked_until.and_then(|until| i64::try_from(until).ok());
}
