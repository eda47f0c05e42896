//! The three user stores a test can run against: in memory, an SQLite file in a temporary
//! directory, and a fresh database on the throwaway PostgreSQL server. `on_every_backend!`
//! turns one test body into a test per backend (`<test>::memory`, `::sqlite`, `::postgres`).

use std::path::PathBuf;

use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::store::{DatabaseUrl, SEED_USERS, StoreOptions, UserRecord, UserStore, users_file};

use crate::helpers::{TestApp, test_config};
use crate::postgres::TestPostgres;

/// Where a test's users are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The in-memory table (the default, no `DATABASE_URL`).
    Memory,
    /// An SQLite file.
    Sqlite,
    /// A database on the throwaway PostgreSQL server.
    Postgres,
}

/// A fresh store for one test: the handle the server gets, and the `DATABASE_URL` that other
/// processes (the CLI, more servers) reach it with.
pub struct TestStore {
    /// The store, already holding the test's users.
    pub store: UserStore,
    /// `DATABASE_URL` for other processes; `None` in memory.
    pub url: Option<String>,
    /// The SQLite file's directory, removed when the test ends.
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// A database URL of this kind for a new, empty database (the directory of an SQLite
    /// file goes with the returned guard). `None`: in memory, or PostgreSQL is not installed
    /// (the harness has said so).
    pub fn new_database(self) -> Option<(String, Option<tempfile::TempDir>)> {
        match self {
            Backend::Memory => None,
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("users.db").display());
                Some((url, Some(dir)))
            }
            Backend::Postgres => Some((TestPostgres::shared()?.create_database(), None)),
        }
    }

    /// A fresh store of this kind holding `records`; `None` when PostgreSQL is not installed.
    pub async fn store_with(self, records: Vec<UserRecord>) -> Option<TestStore> {
        if self == Backend::Memory {
            return Some(TestStore { store: UserStore::in_memory(records, "test"), url: None, _dir: None });
        }
        let (url, dir) = self.new_database()?;
        let store = UserStore::open(&database_url(&url), test_store_options()).await.unwrap();
        if !records.is_empty() {
            store.add(records).await.unwrap();
        }
        Some(TestStore { store, url: Some(url), _dir: dir })
    }

    /// A fresh store of this kind holding the tutorial's users (johndoe, alice).
    pub async fn seeded(self) -> Option<TestStore> {
        self.store_with(seed_records()).await
    }
}

/// The embedded seed's users.
pub fn seed_records() -> Vec<UserRecord> {
    users_file::parse(SEED_USERS, |_| Ok(())).unwrap()
}

/// Parses a `DATABASE_URL`.
pub fn database_url(url: &str) -> DatabaseUrl {
    url.parse().unwrap_or_else(|error| panic!("bad test database URL: {error}"))
}

/// The store options the tests use: the defaults (a change is seen within a second).
pub fn test_store_options() -> StoreOptions {
    StoreOptions::default()
}

impl TestApp {
    /// The server on a fresh store of this kind holding the tutorial's users, or `None` when
    /// PostgreSQL is not installed. The `TestStore` keeps the store's files alive.
    pub async fn on(backend: Backend) -> Option<(TestApp, TestStore)> {
        TestApp::on_with(backend, test_config()).await
    }

    /// As `on`, with this config.
    pub async fn on_with(backend: Backend, config: Config) -> Option<(TestApp, TestStore)> {
        let test_store = backend.seeded().await?;
        let app = TestApp::spawn_with(config, test_store.store.clone()).await;
        Some((app, test_store))
    }
}

/// A path in the test's temporary directory, for files the CLI reads.
pub fn temp_file(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Defines each test once per backend: `on_every_backend! { async fn name(backend) { ... } }`
/// gives `name::memory`, `name::sqlite` and `name::postgres`. A body that needs PostgreSQL
/// returns early when `TestApp::on` (or `Backend::seeded`) gives `None`.
macro_rules! on_every_backend {
    ($($(#[doc = $doc:literal])* async fn $name:ident($backend:ident) $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn memory() {
                run($crate::backends::Backend::Memory).await
            }

            #[tokio::test]
            async fn sqlite() {
                run($crate::backends::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                run($crate::backends::Backend::Postgres).await
            }

            async fn run($backend: $crate::backends::Backend) $body
        }
    )*};
}

/// As `on_every_backend!`, for tests that need a database (the CLI, several processes):
/// `name::sqlite` and `name::postgres`.
macro_rules! on_every_database {
    ($($(#[doc = $doc:literal])* async fn $name:ident($backend:ident) $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                run($crate::backends::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                run($crate::backends::Backend::Postgres).await
            }

            async fn run($backend: $crate::backends::Backend) $body
        }
    )*};
}

pub(crate) use {on_every_backend, on_every_database};
