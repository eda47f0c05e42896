//! Counters shared through PostgreSQL: where the login throttle keeps its failure counts when
//! several instances share one database. The rules live with the throttle (`auth::throttle`);
//! this file gives it rows locked in a transaction, the database's clock, and the attempts in
//! flight, so that a check and its count are one atomic step on every instance.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use crate::store::StoreError;

/// The throttle's tables in a PostgreSQL database. Cheap to clone.
#[derive(Clone)]
pub struct SharedCounters {
    pool: PgPool,
    /// Keys usernames are hashed with (the database's own random `throttle_key`), so that every
    /// instance names a username alike and the tables never hold one in clear.
    username_key: Hmac<Sha256>,
}

/// One key's count as stored. Times are the database's clock, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CounterRow {
    /// The key (`ui:<user>:<ip>`, `u:<user>`, `i:<ip>`).
    pub key: String,
    /// Failures counted.
    pub failures: i32,
    /// Attempts in flight.
    pub pending: i32,
    /// When the last failure was counted.
    pub last_failure_ms: i64,
    /// The lockout's end, if any.
    pub blocked_until_ms: Option<i64>,
}

/// Counter rows locked in a transaction: change `rows`, then `commit`.
pub struct CounterTx {
    tx: Transaction<'static, Postgres>,
    /// The rows of the keys asked for, in key order, created (empty) where missing.
    pub rows: Vec<CounterRow>,
    /// The database's clock, in milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// When the (username, address) pair asked about last logged in, if ever.
    pub known_at: Option<i64>,
    /// Whether the attempt asked to end still held its places (its lease had not run out).
    pub held: bool,
    pair: String,
}

/// A locked row as the locking statement returns it, with what it adds.
#[derive(sqlx::FromRow)]
struct LockedRow {
    #[sqlx(flatten)]
    row: CounterRow,
    now_ms: i64,
    known_at: Option<i64>,
    held: i64,
}

impl SharedCounters {
    /// The counters of the database behind `pool` (its schema already migrated).
    pub(crate) async fn new(pool: PgPool) -> Result<Self, StoreError> {
        let secret: Vec<u8> =
            sqlx::query_scalar("SELECT value FROM store_secrets WHERE name = 'throttle_key'")
                .fetch_one(&pool)
                .await?;
        let username_key = Hmac::new_from_slice(&secret).expect("HMAC takes keys of any length");
        Ok(Self { pool, username_key })
    }

    /// How a username is named in the tables: a keyed hash, the same on every instance.
    pub fn username_key(&self, username: &str) -> String {
        let mut mac = self.username_key.clone();
        mac.update(username.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..16].iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Begins a transaction holding the rows of `keys` (created empty where missing), locked
    /// in key order so that transactions on overlapping keys take turns without deadlocks;
    /// reads when `pair` last logged in, and ends the attempt `ending`, if given. One
    /// statement: a reservation costs four round trips with `commit`.
    pub async fn lock(
        &self,
        keys: &[String],
        pair: &str,
        ending: Option<i64>,
    ) -> Result<CounterTx, StoreError> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let mut tx = self.pool.begin().await?;
        let mut locked: Vec<LockedRow> = sqlx::query_as(
            "WITH ended AS (DELETE FROM throttle_attempts WHERE id = $3 RETURNING id) \
             INSERT INTO throttle_counters AS c (key, failures, pending, last_failure_ms) \
             SELECT key, 0, 0, (extract(epoch from statement_timestamp()) * 1000)::bigint \
             FROM unnest($1::text[]) AS key ORDER BY key \
             ON CONFLICT (key) DO UPDATE SET failures = c.failures \
             RETURNING c.key, c.failures, c.pending, c.last_failure_ms, c.blocked_until_ms, \
             (extract(epoch from statement_timestamp()) * 1000)::bigint AS now_ms, \
             (SELECT last_success_ms FROM throttle_known WHERE pair = $2) AS known_at, \
             (SELECT count(*) FROM ended) AS held",
        )
        .bind(&keys)
        .bind(pair)
        .bind(ending)
        .fetch_all(&mut *tx)
        .await?;
        locked.sort_by(|a, b| a.row.key.cmp(&b.row.key));
        let first =
            locked.first().ok_or_else(|| StoreError::Failed("no throttle rows were locked".into()))?;
        let (now_ms, known_at, held) = (first.now_ms, first.known_at, first.held > 0);
        let rows = locked.into_iter().map(|locked| locked.row).collect();
        Ok(CounterTx { tx, rows, now_ms, known_at, held, pair: pair.to_owned() })
    }

    /// Forgets what no longer matters, for every instance at once: attempts whose lease ran
    /// out (their instance died) give back their places; counts idle for longer than `window`
    /// and known pairs older than `known_for` go; and if more than `max_entries` counts remain,
    /// the stalest idle ones go. Returns the number of rows removed.
    pub async fn purge(
        &self,
        window: Duration,
        known_for: Duration,
        max_entries: usize,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now_ms: i64 = sqlx::query_scalar("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
            .fetch_one(&mut *tx)
            .await?;
        let expired: Vec<Vec<String>> =
            sqlx::query_scalar("DELETE FROM throttle_attempts WHERE expires_at_ms < $1 RETURNING keys")
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?;
        let mut removed = expired.len() as u64;
        let mut given_back: Vec<String> = expired.into_iter().flatten().collect();
        given_back.sort();
        if !given_back.is_empty() {
            sqlx::query(
                "UPDATE throttle_counters AS c SET pending = GREATEST(c.pending - n.count, 0) \
                 FROM (SELECT key, count(*)::int AS count FROM unnest($1::text[]) AS key GROUP BY key) AS n \
                 WHERE c.key = n.key",
            )
            .bind(&given_back)
            .execute(&mut *tx)
            .await?;
        }
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        removed += sqlx::query(
            "DELETE FROM throttle_counters WHERE pending = 0 AND last_failure_ms < $1 - $2 \
             AND (blocked_until_ms IS NULL OR blocked_until_ms <= $1)",
        )
        .bind(now_ms)
        .bind(window_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let known_ms = i64::try_from(known_for.as_millis()).unwrap_or(i64::MAX);
        removed += sqlx::query("DELETE FROM throttle_known WHERE last_success_ms < $1 - $2")
            .bind(now_ms)
            .bind(known_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let max = i64::try_from(max_entries).unwrap_or(i64::MAX);
        for (table, order) in
            [("throttle_counters", "last_failure_ms"), ("throttle_known", "last_success_ms")]
        {
            let key = if table == "throttle_known" { "pair" } else { "key" };
            let idle = if table == "throttle_known" { "TRUE" } else { "pending = 0" };
            let statement = format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {idle} ORDER BY {order} \
                 LIMIT GREATEST((SELECT count(*) FROM {table}) - $1, 0))"
            );
            removed += sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(max)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// How many counts and known pairs the tables hold (for tests and metrics).
    pub async fn sizes(&self) -> Result<(i64, i64), StoreError> {
        let counters =
            sqlx::query_scalar("SELECT count(*) FROM throttle_counters").fetch_one(&self.pool).await?;
        let known = sqlx::query_scalar("SELECT count(*) FROM throttle_known").fetch_one(&self.pool).await?;
        Ok((counters, known))
    }
}

impl CounterTx {
    /// Writes the rows back (dropping those with nothing to remember), records that the pair
    /// logged in now when `logged_in`, records a new attempt holding places under `attempt`'s
    /// keys until its lease ends, and commits: one statement. Returns the new attempt's id.
    pub async fn commit(
        mut self,
        logged_in: bool,
        attempt: Option<(&[String], Duration)>,
    ) -> Result<Option<i64>, StoreError> {
        let idle =
            |row: &&CounterRow| row.failures == 0 && row.pending == 0 && row.blocked_until_ms.is_none();
        let gone: Vec<&str> = self.rows.iter().filter(idle).map(|row| row.key.as_str()).collect();
        let kept: Vec<&CounterRow> = self.rows.iter().filter(|row| !idle(row)).collect();
        let (attempt_keys, lease) = attempt.unwrap_or((&[], Duration::ZERO));
        let expires = self.now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let id: Option<i64> = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM throttle_counters WHERE key = ANY($1)), \
             kept AS (UPDATE throttle_counters AS c SET failures = v.failures, pending = v.pending, \
               last_failure_ms = v.last_failure_ms, blocked_until_ms = v.blocked_until_ms \
               FROM unnest($2::text[], $3::int[], $4::int[], $5::bigint[], $6::bigint[]) \
               AS v(key, failures, pending, last_failure_ms, blocked_until_ms) WHERE c.key = v.key), \
             known AS (INSERT INTO throttle_known (pair, last_success_ms) SELECT $7, $8 WHERE $9 \
               ON CONFLICT (pair) DO UPDATE SET last_success_ms = excluded.last_success_ms), \
             attempt AS (INSERT INTO throttle_attempts (keys, expires_at_ms) SELECT $10, $11 WHERE $12 RETURNING id) \
             SELECT id FROM attempt",
        )
        .bind(&gone)
        .bind(kept.iter().map(|row| row.key.as_str()).collect::<Vec<_>>())
        .bind(kept.iter().map(|row| row.failures).collect::<Vec<_>>())
        .bind(kept.iter().map(|row| row.pending).collect::<Vec<_>>())
        .bind(kept.iter().map(|row| row.last_failure_ms).collect::<Vec<_>>())
        .bind(kept.iter().map(|row| row.blocked_until_ms).collect::<Vec<_>>())
        .bind(&self.pair)
        .bind(self.now_ms)
        .bind(logged_in)
        .bind(attempt_keys)
        .bind(expires)
        .bind(attempt.is_some())
        .fetch_optional(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(id)
    }
}
