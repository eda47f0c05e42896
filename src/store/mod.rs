//! The user store: the tutorial's `fake_users_db`, kept where `DATABASE_URL` says.
//!
//! One interface (`Backend`), three backends: in memory (the embedded users or `USERS_FILE`,
//! the default), an SQLite file, and PostgreSQL shared by several instances. A running server
//! answers from `UserStore`'s cache of every user, refreshed from the backend's change feed
//! (every write bumps a store-wide revision) a few times a second, so reads never wait on the
//! database and a change made anywhere is seen everywhere within a second. When the cache
//! cannot be refreshed for longer than that, lookups report the store unavailable (503)
//! instead of answering from stale data, until it can again.

/// The users as a running server holds them, and how fresh they are.
mod cache;
/// The login throttle's counters, shared through PostgreSQL.
pub mod counters;
/// The in-memory backend.
pub mod memory;
/// The SQLite and PostgreSQL backend, its connection and its migrations.
pub mod sql;
/// `User`, `UserRecord`, `UserInDb` and the username rules.
pub mod user;
/// The users-file shape (`USERS_FILE`, `users import`, `users list --json`).
pub mod users_file;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;

pub use crate::store::sql::DatabaseUrl;
pub use crate::store::user::{User, UserInDb, UserRecord};

use crate::store::cache::Cache;
use crate::store::counters::SharedCounters;
use crate::store::memory::MemoryBackend;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::PoolStats;

/// The embedded users: the tutorial's johndoe, and alice (disabled) from its scopes chapter.
pub const SEED_USERS: &str = include_str!("seed_users.json");

/// Why a store operation could not be done. Messages never hold a password or a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `add` or `import` of a username that exists.
    #[error("user {0:?} already exists")]
    Exists(String),
    /// A change to a username that does not exist.
    #[error("no user {0:?}")]
    NotFound(String),
    /// The database cannot be reached (or answered too slowly); retrying may work.
    #[error("the user store is unavailable: {0}")]
    Unavailable(String),
    /// The database refused the operation for another reason.
    #[error("the user store failed: {0}")]
    Failed(String),
    /// The database's schema cannot be used by this binary.
    #[error("{0}")]
    Schema(String),
}

impl StoreError {
    /// True when the database could not be reached or answered too slowly (retrying may
    /// work), rather than refusing the operation.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// True for a fault of the database (unreachable, or refusing for a reason of its own),
    /// as opposed to an answer about the users (`Exists`, `NotFound`).
    pub fn is_fault(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Failed(_) | Self::Schema(_))
    }
}

/// A change to one user: each field that is `Some` is set, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// A new password hash (`users set-password`).
    pub password: Option<String>,
    /// Disable (`true`) or enable (`false`) the account.
    pub disabled: Option<bool>,
    /// Log out everywhere: refuse the user's tokens issued before this time (Unix seconds) and
    /// end all of the user's refresh tokens.
    pub revoke_tokens_before: Option<i64>,
    /// The scopes the user may be granted (`Some(None)`: every configured scope).
    pub scopes: Option<Option<Vec<String>>>,
}

/// What changed after a revision: users added or changed, usernames removed, access tokens
/// revoked.
#[derive(Debug, Default)]
pub struct Changes {
    /// The store's revision these changes bring a reader to.
    pub revision: i64,
    /// Users added or changed since, in full.
    pub users: Vec<UserRecord>,
    /// Usernames removed since.
    pub removed: Vec<String>,
    /// Access tokens revoked since: their id (see `revoke_access`) and expiry (Unix seconds).
    pub revoked: Vec<(String, i64)>,
}

/// A refresh-token family: what a login granted, until it ends. Times are milliseconds since
/// the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    /// A random id.
    pub id: String,
    /// Whose it is.
    pub username: String,
    /// The scopes granted (space-separated; empty for none).
    pub scope: String,
    /// When the login happened.
    pub created_at: i64,
    /// The family's absolute end.
    pub expires_at: i64,
}

/// A refresh token as stored (by its hash) and the family it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Its family.
    pub family: RefreshFamily,
    /// It is refused after this time unless used before.
    pub idle_expires_at: i64,
    /// It was already exchanged for a newer one: presenting it again is reuse.
    pub used: bool,
}

/// Where users are kept. Every write bumps the store-wide revision, atomically with the
/// change, so readers can follow with `revision` and `changes_since`.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The connection pool as it is now; `None` for a backend without one.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
    /// The current revision: it changes whenever anything does.
    async fn revision(&self) -> Result<i64, StoreError>;
    /// Everything that changed after `revision` (all users when it is 0).
    async fn changes_since(&self, revision: i64) -> Result<Changes, StoreError>;
    /// Adds users, all or none: `Exists` names the first that is already there.
    async fn add(&self, users: Vec<UserRecord>) -> Result<(), StoreError>;
    /// Changes one user; `NotFound` when there is no such user.
    async fn update(&self, username: &str, update: Update) -> Result<(), StoreError>;
    /// Removes one user; `NotFound` when there is no such user.
    async fn remove(&self, username: &str) -> Result<(), StoreError>;
    /// Replaces a user's hash only if it is still `old` (a login's upgrade of a legacy hash):
    /// of several upgrades racing, one wins. True when this one did.
    async fn replace_hash(&self, username: &str, old: &str, new: &str) -> Result<bool, StoreError>;
    /// Starts a refresh-token family with its first token (by hash), forgetting families that
    /// have ended by `now`.
    async fn start_refresh_family(
        &self,
        family: &RefreshFamily,
        hash: &str,
        idle_expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The refresh token with this hash, if the store knows it.
    async fn find_refresh(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError>;
    /// Exchanges the token `old` for `new` in its family, only if `old` was not used yet (of
    /// two refreshes racing with one token, one wins). True when this one did.
    async fn rotate_refresh(
        &self,
        old: &str,
        new: &str,
        idle_expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Ends a family: every token of it stops working.
    async fn end_refresh_family(&self, family_id: &str) -> Result<(), StoreError>;
    /// Revokes an access token (named by `id`) until it expires at `expires_at`, forgetting
    /// revocations that have expired by `now`.
    async fn revoke_access(&self, id: &str, expires_at: i64, now: i64) -> Result<(), StoreError>;
}

/// How the cache follows a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// How often the cache asks the database for changes (`DATABASE_POLL_MS`, 250 ms).
    pub poll_interval: Duration,
    /// How long the cache may go without a successful refresh, once refreshes fail, before
    /// lookups report the store unavailable (`DATABASE_STALE_MS`, 1000 ms).
    pub max_staleness: Duration,
    /// Connections in the pool (`DATABASE_MAX_CONNECTIONS`, 8).
    pub max_connections: u32,
    /// How long an operation waits for a connection, and the start waits for the database
    /// (`DATABASE_TIMEOUT_SECS`, 5).
    pub timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            max_staleness: Duration::from_millis(1000),
            max_connections: 8,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The users, as a running server (or the CLI) sees them. Cheap to clone: every clone shares
/// one cache and one connection pool.
#[derive(Clone)]
pub struct UserStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn Backend>,
    cache: Cache,
    /// One refresh at a time, so an older one cannot land after a newer one.
    refreshing: tokio::sync::Mutex<()>,
    /// The throttle's shared counters, when the database can be shared (PostgreSQL).
    shared_counters: Option<SharedCounters>,
    /// Where the users are, for messages (never with a password).
    location: String,
    /// Where failed database operations are counted, once a server records metrics.
    metrics: OnceLock<Metrics>,
}

/// The store cannot answer now (its database has been unreachable for too long); the caller
/// should answer 503 and let the client retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the user store is unavailable")]
pub struct Unavailable;

impl UserStore {
    /// The embedded users (johndoe and alice), in memory.
    pub fn seeded() -> Self {
        let records = users_file::parse(SEED_USERS, |_| Ok(())).expect("the embedded seed is valid");
        Self::in_memory(records, "embedded seed")
    }

    /// These users, in memory for the life of the process (`location` names their source).
    pub fn in_memory(records: Vec<UserRecord>, location: &str) -> Self {
        let backend = MemoryBackend::new(records);
        let changes = backend.all();
        let cache = Cache::new(None);
        cache.apply(changes);
        Self::with(Box::new(backend), cache, location.to_owned(), None)
    }

    /// Opens the database at `url` (creating an SQLite file on first use), brings its schema
    /// up to date, loads every user, and keeps following its changes in the background.
    pub async fn open(url: &DatabaseUrl, options: StoreOptions) -> Result<Self, StoreError> {
        let store = Self::connect(url, options).await?;
        tokio::spawn(follow_changes(Arc::downgrade(&store.inner), options.poll_interval));
        Ok(store)
    }

    /// As `open`, without following changes: for a command that reads or writes once.
    pub async fn connect(url: &DatabaseUrl, options: StoreOptions) -> Result<Self, StoreError> {
        let backend = sql::SqlBackend::connect(url, options).await?;
        let shared_counters = match backend.postgres_pool() {
            Some(pool) => Some(SharedCounters::new(pool).await?),
            None => None,
        };
        let cache = Cache::new(Some(options.max_staleness));
        let store = Self::with(Box::new(backend), cache, url.to_string(), shared_counters);
        store.refresh().await?;
        Ok(store)
    }

    fn with(
        backend: Box<dyn Backend>,
        cache: Cache,
        location: String,
        shared_counters: Option<SharedCounters>,
    ) -> Self {
        let inner = Inner {
            backend,
            cache,
            refreshing: tokio::sync::Mutex::new(()),
            shared_counters,
            location,
            metrics: OnceLock::new(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The counters the login throttle shares with other instances through this store's
    /// database; `None` unless it is PostgreSQL.
    pub fn shared_counters(&self) -> Option<SharedCounters> {
        self.inner.shared_counters.clone()
    }

    /// Where the users are kept, for messages (never with a password).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Counts this store's failed database operations in `metrics` from now on (the first
    /// server to ask wins).
    pub fn record_into(&self, metrics: &Metrics) {
        let _ = self.inner.metrics.set(metrics.clone());
    }

    /// The database's connection pool as it is now; `None` in memory.
    pub fn pool_stats(&self) -> Option<PoolStats> {
        self.inner.backend.pool_stats()
    }

    /// True when lookups are answered: false once the database has failed to answer for
    /// longer than `DATABASE_STALE_MS` (when `get` reports `Unavailable`).
    pub fn is_available(&self) -> bool {
        self.inner.cache.is_available()
    }

    /// The user with this exact username (case-sensitive, no trimming, as the tutorial), or
    /// `Unavailable` when the cache is too old to trust.
    pub fn get(&self, username: &str) -> Result<Option<Arc<UserInDb>>, Unavailable> {
        self.inner.cache.get(username)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.inner.cache.len()
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store revision this process has caught up with (every change bumps it).
    pub fn revision(&self) -> i64 {
        self.inner.cache.revision()
    }

    /// Every user, in username order.
    pub fn list(&self) -> Vec<Arc<UserInDb>> {
        self.inner.cache.list()
    }

    /// Adds users, all or none.
    pub async fn add(&self, users: Vec<UserRecord>) -> Result<(), StoreError> {
        self.inner.counted(self.inner.backend.add(users).await)?;
        self.refresh().await
    }

    /// Changes one user.
    pub async fn update(&self, username: &str, update: Update) -> Result<(), StoreError> {
        self.inner.counted(self.inner.backend.update(username, update).await)?;
        self.refresh().await
    }

    /// Removes one user.
    pub async fn remove(&self, username: &str) -> Result<(), StoreError> {
        self.inner.counted(self.inner.backend.remove(username).await)?;
        self.refresh().await
    }

    /// Replaces a user's hash if it is still `old`; true when this call did it.
    pub async fn replace_hash(&self, username: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let replaced = self.inner.counted(self.inner.backend.replace_hash(username, old, new).await)?;
        self.refresh().await?;
        Ok(replaced)
    }

    /// Starts a refresh-token family (refresh tokens are not cached: every instance asks the
    /// store, so every instance honours a rotation or a revocation at once).
    pub async fn start_refresh_family(
        &self,
        family: &RefreshFamily,
        hash: &str,
        idle_expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner.counted(self.inner.backend.start_refresh_family(family, hash, idle_expires_at, now).await)
    }

    /// The refresh token with this hash.
    pub async fn find_refresh(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        self.inner.counted(self.inner.backend.find_refresh(hash).await)
    }

    /// Exchanges refresh token `old` for `new`, if `old` was not used yet.
    pub async fn rotate_refresh(
        &self,
        old: &str,
        new: &str,
        idle_expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner.counted(self.inner.backend.rotate_refresh(old, new, idle_expires_at, now).await)
    }

    /// Ends a refresh-token family.
    pub async fn end_refresh_family(&self, family_id: &str) -> Result<(), StoreError> {
        self.inner.counted(self.inner.backend.end_refresh_family(family_id).await)
    }

    /// Revokes an access token until it expires; this process refuses it at once, the others
    /// within a second.
    pub async fn revoke_access(&self, id: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        self.inner.counted(self.inner.backend.revoke_access(id, expires_at, now).await)?;
        self.refresh().await
    }

    /// True when the access token named by `id` was revoked (see `revoke_access`). While no
    /// token is revoked it costs one atomic load, and `id` is not even computed.
    pub fn is_revoked(&self, id: impl FnOnce() -> [u8; 16]) -> bool {
        self.inner.cache.any_revoked() && self.inner.cache.is_revoked(&id())
    }

    /// Brings the cache up to date with the backend now.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        self.inner.refresh().await
    }
}

impl Inner {
    async fn refresh(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let started = self.cache.now();
        let known = self.cache.revision();
        if self.counted(self.backend.revision().await)? != known {
            self.cache.apply(self.counted(self.backend.changes_since(known).await)?);
        }
        self.cache.synced(started);
        Ok(())
    }

    /// `result`, its database fault (if any) counted in the metrics.
    fn counted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result
            && error.is_fault()
            && let Some(metrics) = self.metrics.get()
        {
            metrics.database_error(error.is_unavailable());
        }
        result
    }
}

/// Refreshes the cache every `interval` for as long as the store lives. Failures are logged
/// once when they start and once when they end; lookups turn `Unavailable` once they have
/// lasted longer than the staleness bound.
async fn follow_changes(store: Weak<Inner>, interval: Duration) {
    // A database that does not answer within this counts as failing, like one that refuses.
    let patience = interval.max(Duration::from_secs(2));
    let mut failing = false;
    loop {
        tokio::time::sleep(interval).await;
        let Some(store) = store.upgrade() else { return };
        let result = match tokio::time::timeout(patience, store.refresh()).await {
            Ok(result) => result,
            Err(_) => store.counted(Err(StoreError::Unavailable(format!("no answer within {patience:?}")))),
        };
        match result {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(location = %store.location, "the user store answers again");
            }
            Ok(()) => {}
            Err(error) => {
                store.cache.failed();
                if !failing {
                    failing = true;
                    tracing::warn!(location = %store.location, %error, "cannot refresh users from the store");
                }
            }
        }
    }
}
