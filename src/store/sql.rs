//! The SQL backend: one implementation for SQLite and PostgreSQL. The SQL is portable (`$1`
//! placeholders, `ON CONFLICT`, `RETURNING`), so each operation is written once and compiled
//! for both pools by `with_pool!`. The schema comes from the migrations embedded in the
//! binary, applied at start (PostgreSQL holds an advisory lock meanwhile, so instances starting
//! together take turns).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::store::{
    Backend, Changes, RefreshFamily, RefreshToken, StoreError, StoreOptions, Update, User, UserRecord,
};
use crate::telemetry::metrics::PoolStats;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// A `DATABASE_URL`: `sqlite://PATH` or `sqlite:PATH`, `postgres://...` or `postgresql://...`.
/// It prints without its password.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// An SQLite file, created on first use.
    Sqlite(SqliteConnectOptions),
    /// A PostgreSQL database.
    Postgres(PgConnectOptions),
}

impl DatabaseUrl {
    /// True for PostgreSQL, the backend several instances can share.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// Why a `DATABASE_URL` was refused (never with the URL's password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDatabaseUrl(String);

impl fmt::Display for BadDatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sqlite://PATH, sqlite:PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE or postgresql://... ({})",
            self.0
        )
    }
}

impl FromStr for DatabaseUrl {
    type Err = BadDatabaseUrl;

    fn from_str(url: &str) -> Result<Self, BadDatabaseUrl> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|_| BadDatabaseUrl("not an SQLite URL".into()))?;
            if options.get_filename().as_os_str().is_empty() || url.contains(":memory:") {
                return Err(BadDatabaseUrl("an SQLite URL needs a file path".into()));
            }
            Ok(Self::Sqlite(options))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // sqlx's messages quote nothing of the URL; ours say only what is wrong.
            PgConnectOptions::from_str(url)
                .map(Self::Postgres)
                .map_err(|_| BadDatabaseUrl("not a valid PostgreSQL URL".into()))
        } else {
            Err(BadDatabaseUrl("unknown scheme".into()))
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(options) => write!(f, "sqlite://{}", options.get_filename().display()),
            Self::Postgres(options) => {
                let database = options.get_database().unwrap_or(options.get_username());
                match options.get_socket() {
                    Some(socket) => {
                        write!(f, "postgres://{}@{}/{database}", options.get_username(), socket.display())
                    }
                    None => write!(
                        f,
                        "postgres://{}@{}:{}/{database}",
                        options.get_username(),
                        options.get_host(),
                        options.get_port()
                    ),
                }
            }
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the backend has: the same code,
/// compiled once for each database.
macro_rules! with_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match &$backend.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A user row.
#[derive(sqlx::FromRow)]
struct UserRow {
    username: String,
    full_name: Option<String>,
    email: Option<String>,
    disabled: Option<bool>,
    hashed_password: String,
    tokens_valid_after: i64,
    scopes: Option<String>,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> Self {
        let user = User {
            username: row.username,
            email: row.email,
            full_name: row.full_name,
            disabled: row.disabled,
        };
        Self {
            user,
            hashed_password: row.hashed_password,
            tokens_valid_after: row.tokens_valid_after,
            scopes: row.scopes.map(|scopes| scopes.split_whitespace().map(str::to_owned).collect()),
        }
    }
}

/// Scopes as stored: space-separated, `NULL` for "every configured scope".
fn scopes_column(scopes: &Option<Vec<String>>) -> Option<String> {
    scopes.as_ref().map(|scopes| scopes.join(" "))
}

/// A refresh token row joined with its family.
#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: String,
    username: String,
    scope: String,
    created_at: i64,
    expires_at: i64,
    idle_expires_at: i64,
    used: bool,
}

const USER_COLUMNS: &str =
    "username, full_name, email, disabled, hashed_password, tokens_valid_after, scopes";
const BUMP_REVISION: &str =
    "UPDATE store_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision";

/// Users in an SQLite file or a PostgreSQL database.
pub struct SqlBackend {
    pool: Pool,
}

impl SqlBackend {
    /// Connects (within `options.timeout`) and applies the embedded migrations.
    pub async fn connect(url: &DatabaseUrl, options: StoreOptions) -> Result<Self, StoreError> {
        let unreachable =
            |error: sqlx::Error| StoreError::Unavailable(format!("cannot connect to {url}: {error}"));
        let pool = match url {
            DatabaseUrl::Sqlite(connect) => {
                let connect = connect
                    .clone()
                    .create_if_missing(true)
                    // Readers never wait for the writer, and the CLI can write while the
                    // server reads; a writer waits for another up to the timeout.
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(options.timeout);
                // Processes opening a new file at once race to switch it to WAL, and the loser
                // is told "database is locked" at once (SQLite does not wait on a lock upgrade
                // that could deadlock): try again until the timeout.
                let deadline = tokio::time::Instant::now() + options.timeout;
                let pool = loop {
                    let pool = SqlitePoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(options.timeout)
                        .connect_with(connect.clone())
                        .await;
                    match pool {
                        Err(error) if is_sqlite_busy(&error) && tokio::time::Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        other => break other.map_err(unreachable)?,
                    }
                };
                Pool::Sqlite(pool)
            }
            DatabaseUrl::Postgres(connect) => {
                let statement_timeout = format!("{}ms", options.timeout.as_millis());
                let connect = connect
                    .clone()
                    .application_name("oauth2-jwt-server")
                    .options([("statement_timeout", statement_timeout.as_str())]);
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.timeout)
                    .connect_with(connect)
                    .await
                    .map_err(unreachable)?;
                Pool::Postgres(pool)
            }
        };
        let backend = Self { pool };
        backend.migrate().await?;
        Ok(backend)
    }

    /// Brings the schema up to date; refuses a database whose schema is newer than this binary.
    async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => {
                // SQLite has no migration lock: when two processes create a new file at once,
                // the loser's migration fails (rolled back) and a second run finds it applied.
                match SQLITE_MIGRATIONS.run(pool).await {
                    Err(error) if !is_schema_mismatch(&error) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        SQLITE_MIGRATIONS.run(pool).await
                    }
                    other => other,
                }
            }
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        };
        let known = match &self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        let latest = known.iter().map(|migration| migration.version).max().unwrap_or(0);
        result.map_err(|error| match error {
            MigrateError::VersionMissing(version) => StoreError::Schema(format!(
                "the database schema is newer than this binary: it has migration {version}, this binary knows migrations up to {latest}; run a newer oauth2-jwt-server"
            )),
            MigrateError::VersionMismatch(version) => StoreError::Schema(format!(
                "migration {version} in the database differs from this binary's; the schema was changed by something else"
            )),
            MigrateError::Dirty(version) => {
                StoreError::Schema(format!("migration {version} was left half-applied; repair the database first"))
            }
            MigrateError::Execute(error) => StoreError::from(error),
            other => StoreError::Failed(format!("cannot apply the schema migrations: {other}")),
        })
    }

    /// The pool, when the database is PostgreSQL (which instances can share).
    pub fn postgres_pool(&self) -> Option<PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool.clone()),
            Pool::Sqlite(_) => None,
        }
    }

    fn snapshot_statement(&self) -> Option<&'static str> {
        // An SQLite read transaction is already a snapshot; PostgreSQL's default is not.
        match self.pool {
            Pool::Sqlite(_) => None,
            Pool::Postgres(_) => Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        }
    }
}

fn is_schema_mismatch(error: &MigrateError) -> bool {
    matches!(
        error,
        MigrateError::VersionMissing(_) | MigrateError::VersionMismatch(_) | MigrateError::Dirty(_)
    )
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[async_trait]
impl Backend for SqlBackend {
    fn pool_stats(&self) -> Option<PoolStats> {
        let (size, idle, max) = with_pool!(self, pool => {
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        });
        let idle = u64::try_from(idle).unwrap_or(u64::MAX);
        Some(PoolStats { used: u64::from(size).saturating_sub(idle), idle, max: u64::from(max) })
    }

    async fn revision(&self) -> Result<i64, StoreError> {
        let query = "SELECT revision FROM store_revision WHERE id = 1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(query).fetch_one(pool).await?))
    }

    async fn changes_since(&self, revision: i64) -> Result<Changes, StoreError> {
        let users_sql = format!("SELECT {USER_COLUMNS} FROM users WHERE revision > $1");
        let snapshot = self.snapshot_statement();
        let (now, users, removed, revoked) = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some(statement) = snapshot {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            let now: i64 = sqlx::query_scalar("SELECT revision FROM store_revision WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
            let users: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(users_sql))
                .bind(revision)
                .fetch_all(&mut *tx)
                .await?;
            let removed: Vec<String> = sqlx::query_scalar("SELECT username FROM removed_users WHERE revision > $1")
                .bind(revision)
                .fetch_all(&mut *tx)
                .await?;
            let revoked: Vec<(String, i64)> = sqlx::query_as("SELECT id, expires_at FROM revoked_tokens WHERE revision > $1")
                .bind(revision)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            (now, users, removed, revoked)
        });
        Ok(Changes {
            revision: now,
            users: users.into_iter().map(UserRecord::from).collect(),
            removed,
            revoked,
        })
    }

    async fn add(&self, users: Vec<UserRecord>) -> Result<(), StoreError> {
        let insert = format!(
            "INSERT INTO users ({USER_COLUMNS}, revision, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
        );
        let now = unix_now();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let revision: i64 = sqlx::query_scalar(BUMP_REVISION).fetch_one(&mut *tx).await?;
            for record in &users {
                let user = &record.user;
                let inserted = sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                    .bind(&user.username)
                    .bind(&user.full_name)
                    .bind(&user.email)
                    .bind(user.disabled)
                    .bind(&record.hashed_password)
                    .bind(record.tokens_valid_after)
                    .bind(scopes_column(&record.scopes))
                    .bind(revision)
                    .bind(now)
                    .execute(&mut *tx)
                    .await;
                match inserted {
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                        return Err(StoreError::Exists(user.username.clone()));
                    }
                    other => other?,
                };
                sqlx::query("DELETE FROM removed_users WHERE username = $1").bind(&user.username).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn update(&self, username: &str, update: Update) -> Result<(), StoreError> {
        let now = unix_now();
        let statement = "UPDATE users SET hashed_password = COALESCE($1, hashed_password), \
            disabled = COALESCE($2, disabled), tokens_valid_after = COALESCE($3, tokens_valid_after), \
            scopes = CASE WHEN $4 THEN $5 ELSE scopes END, revision = $6, updated_at = $7 WHERE username = $8";
        let changed = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let revision: i64 = sqlx::query_scalar(BUMP_REVISION).fetch_one(&mut *tx).await?;
            let changed = sqlx::query(statement)
                .bind(update.password.as_deref())
                .bind(update.disabled)
                .bind(update.revoke_tokens_before)
                .bind(update.scopes.is_some())
                .bind(update.scopes.as_ref().and_then(scopes_column))
                .bind(revision)
                .bind(now)
                .bind(username)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 1 {
                if update.revoke_tokens_before.is_some() {
                    sqlx::query("DELETE FROM refresh_families WHERE username = $1").bind(username).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            changed
        });
        if changed == 1 { Ok(()) } else { Err(StoreError::NotFound(username.to_owned())) }
    }

    async fn remove(&self, username: &str) -> Result<(), StoreError> {
        let removed = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let revision: i64 = sqlx::query_scalar(BUMP_REVISION).fetch_one(&mut *tx).await?;
            let removed = sqlx::query("DELETE FROM users WHERE username = $1").bind(username).execute(&mut *tx).await?.rows_affected();
            if removed == 1 {
                sqlx::query("DELETE FROM refresh_families WHERE username = $1").bind(username).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO removed_users (username, revision) VALUES ($1, $2) ON CONFLICT (username) DO UPDATE SET revision = excluded.revision")
                    .bind(username)
                    .bind(revision)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            removed
        });
        if removed == 1 { Ok(()) } else { Err(StoreError::NotFound(username.to_owned())) }
    }

    async fn replace_hash(&self, username: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let now = unix_now();
        let replaced = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let revision: i64 = sqlx::query_scalar(BUMP_REVISION).fetch_one(&mut *tx).await?;
            let replaced = sqlx::query("UPDATE users SET hashed_password = $1, revision = $2, updated_at = $3 WHERE username = $4 AND hashed_password = $5")
                .bind(new)
                .bind(revision)
                .bind(now)
                .bind(username)
                .bind(old)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if replaced == 1 {
                tx.commit().await?;
            }
            replaced
        });
        Ok(replaced == 1)
    }

    async fn start_refresh_family(
        &self,
        family: &RefreshFamily,
        hash: &str,
        idle_expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM refresh_families WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO refresh_families (id, username, scope, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&family.id)
                .bind(&family.username)
                .bind(&family.scope)
                .bind(family.created_at)
                .bind(family.expires_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO refresh_tokens (hash, family_id, idle_expires_at) VALUES ($1, $2, $3)")
                .bind(hash)
                .bind(&family.id)
                .bind(idle_expires_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn find_refresh(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        let query = "SELECT f.id, f.username, f.scope, f.created_at, f.expires_at, t.idle_expires_at, \
            t.used_at IS NOT NULL AS used FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1";
        let row: Option<RefreshRow> =
            with_pool!(self, pool => sqlx::query_as(query).bind(hash).fetch_optional(pool).await?);
        Ok(row.map(|row| RefreshToken {
            family: RefreshFamily {
                id: row.id,
                username: row.username,
                scope: row.scope,
                created_at: row.created_at,
                expires_at: row.expires_at,
            },
            idle_expires_at: row.idle_expires_at,
            used: row.used,
        }))
    }

    async fn rotate_refresh(
        &self,
        old: &str,
        new: &str,
        idle_expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let rotated = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let family: Option<String> = sqlx::query_scalar(
                "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL RETURNING family_id",
            )
            .bind(now)
            .bind(old)
            .fetch_optional(&mut *tx)
            .await?;
            match family {
                Some(family) => {
                    sqlx::query("INSERT INTO refresh_tokens (hash, family_id, idle_expires_at) VALUES ($1, $2, $3)")
                        .bind(new)
                        .bind(family)
                        .bind(idle_expires_at)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    true
                }
                None => false,
            }
        });
        Ok(rotated)
    }

    async fn end_refresh_family(&self, family_id: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM refresh_families WHERE id = $1").bind(family_id).execute(pool).await?;
        });
        Ok(())
    }

    async fn revoke_access(&self, id: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let revision: i64 = sqlx::query_scalar(BUMP_REVISION).fetch_one(&mut *tx).await?;
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO revoked_tokens (id, expires_at, revision) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET revision = excluded.revision")
                .bind(id)
                .bind(expires_at)
                .bind(revision)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}

/// SQLite's "busy" or "locked" (5, 6): another connection holds the lock.
fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(error) if matches!(error.code().as_deref(), Some("5" | "6")))
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let unavailable = match &error {
            _ if is_sqlite_busy(&error) => true,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(error) => {
                let code = error.code().unwrap_or_default();
                // PostgreSQL: connection exceptions (08...), shutting down or starting up
                // (57P01-57P03), too many connections (53300), statement timeout (57014).
                code.starts_with("08") || code.starts_with("57P") || code == "53300" || code == "57014"
            }
            _ => false,
        };
        if unavailable { Self::Unavailable(error.to_string()) } else { Self::Failed(error.to_string()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_of_both_kinds_parse_and_print_without_a_password() {
        for (url, shown) in [
            ("sqlite://users.db", "sqlite://users.db"),
            ("sqlite:users.db", "sqlite://users.db"),
            ("sqlite:///var/lib/auth/users.db", "sqlite:///var/lib/auth/users.db"),
            ("postgres://auth:s3cret@db.internal:5433/users", "postgres://auth@db.internal:5433/users"),
            ("postgresql://auth:s3cret@db.internal/users", "postgres://auth@db.internal:5432/users"),
        ] {
            let parsed: DatabaseUrl = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.to_string(), shown);
            assert!(!format!("{parsed:?}").contains("s3cret"));
        }
    }

    #[test]
    fn other_urls_are_refused_without_being_repeated() {
        for url in [
            "mysql://root:s3cret@db/users",
            "sqlite::memory:",
            "postgres://root:s3cret@[::1/users",
            "users.db",
        ] {
            let error = url.parse::<DatabaseUrl>().unwrap_err().to_string();
            assert!(!error.contains("s3cret") && error.starts_with("sqlite://PATH"), "{url}: {error}");
        }
    }
}
