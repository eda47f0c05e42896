//! The in-memory backend: the embedded users or `USERS_FILE`, kept for the life of the
//! process. What changes at run time (a hash upgraded at login) is kept here too, and never
//! written back to the file.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::store::{Backend, Changes, StoreError, Update, UserRecord};

/// Users in a table behind a lock, with the same revision bookkeeping as the databases.
pub struct MemoryBackend {
    tables: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    revision: i64,
    /// Each user with the revision of its last change.
    users: HashMap<String, (UserRecord, i64)>,
    /// Removed usernames with the revision of their removal.
    removed: HashMap<String, i64>,
}

impl Tables {
    fn bump(&mut self) -> i64 {
        self.revision += 1;
        self.revision
    }

    fn user_mut(&mut self, username: &str) -> Result<&mut (UserRecord, i64), StoreError> {
        self.users.get_mut(username).ok_or_else(|| StoreError::NotFound(username.to_owned()))
    }
}

impl MemoryBackend {
    /// A table holding these users.
    pub fn new(records: Vec<UserRecord>) -> Self {
        let mut tables = Tables::default();
        let revision = tables.bump();
        tables.users =
            records.into_iter().map(|record| (record.user.username.clone(), (record, revision))).collect();
        Self { tables: Mutex::new(tables) }
    }

    /// Every user, at the current revision.
    pub fn all(&self) -> Changes {
        self.changes(0)
    }

    fn changes(&self, since: i64) -> Changes {
        let tables = self.lock();
        Changes {
            revision: tables.revision,
            users: tables
                .users
                .values()
                .filter(|(_, rev)| *rev > since)
                .map(|(user, _)| user.clone())
                .collect(),
            removed: tables
                .removed
                .iter()
                .filter(|(_, rev)| **rev > since)
                .map(|(name, _)| name.clone())
                .collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Every change below is made whole before the lock is released.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn revision(&self) -> Result<i64, StoreError> {
        Ok(self.lock().revision)
    }

    async fn changes_since(&self, revision: i64) -> Result<Changes, StoreError> {
        Ok(self.changes(revision))
    }

    async fn add(&self, users: Vec<UserRecord>) -> Result<(), StoreError> {
        let mut tables = self.lock();
        if let Some(existing) = users.iter().find(|record| tables.users.contains_key(&record.user.username)) {
            return Err(StoreError::Exists(existing.user.username.clone()));
        }
        let revision = tables.bump();
        for record in users {
            tables.removed.remove(&record.user.username);
            tables.users.insert(record.user.username.clone(), (record, revision));
        }
        Ok(())
    }

    async fn update(&self, username: &str, update: Update) -> Result<(), StoreError> {
        let mut tables = self.lock();
        tables.user_mut(username)?;
        let revision = tables.bump();
        let (record, rev) = tables.user_mut(username)?;
        match update {
            Update::Password(hash) => record.hashed_password = hash,
            Update::Disabled(disabled) => record.user.disabled = Some(disabled),
        }
        *rev = revision;
        Ok(())
    }

    async fn remove(&self, username: &str) -> Result<(), StoreError> {
        let mut tables = self.lock();
        tables.user_mut(username)?;
        let revision = tables.bump();
        tables.users.remove(username);
        tables.removed.insert(username.to_owned(), revision);
        Ok(())
    }

    async fn replace_hash(&self, username: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let mut tables = self.lock();
        match tables.users.get(username) {
            Some((record, _)) if record.hashed_password == old => {}
            _ => return Ok(false),
        }
        let revision = tables.bump();
        let (record, rev) = tables.user_mut(username)?;
        record.hashed_password = new.to_owned();
        *rev = revision;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::User;

    fn record(name: &str, hash: &str) -> UserRecord {
        let user = User { username: name.into(), email: None, full_name: None, disabled: None };
        UserRecord { user, hashed_password: hash.into() }
    }

    #[tokio::test]
    async fn every_change_bumps_the_revision_and_shows_in_the_changes_since() {
        let backend = MemoryBackend::new(vec![record("alice", "h1")]);
        let start = backend.revision().await.unwrap();
        backend.add(vec![record("bob", "h2")]).await.unwrap();
        backend.update("alice", Update::Disabled(true)).await.unwrap();
        backend.remove("bob").await.unwrap();

        let changes = backend.changes_since(start).await.unwrap();
        assert_eq!(changes.revision, start + 3);
        assert_eq!(changes.users.len(), 1);
        assert_eq!(changes.users[0].user.disabled, Some(true));
        assert_eq!(changes.removed, ["bob"]);
        assert!(backend.changes_since(changes.revision).await.unwrap().users.is_empty());
    }

    #[tokio::test]
    async fn adding_is_all_or_nothing_and_changes_need_an_existing_user() {
        let backend = MemoryBackend::new(vec![record("alice", "h1")]);
        let revision = backend.revision().await.unwrap();
        let error = backend.add(vec![record("carol", "h"), record("alice", "h")]).await.unwrap_err();
        assert_eq!(error, StoreError::Exists("alice".into()));
        assert_eq!(backend.revision().await.unwrap(), revision, "nothing was added");
        assert_eq!(backend.remove("carol").await, Err(StoreError::NotFound("carol".into())));
        assert_eq!(
            backend.update("carol", Update::Disabled(true)).await,
            Err(StoreError::NotFound("carol".into()))
        );
    }

    #[tokio::test]
    async fn a_hash_is_replaced_only_while_it_is_still_the_old_one() {
        let backend = MemoryBackend::new(vec![record("alice", "legacy")]);
        assert!(backend.replace_hash("alice", "legacy", "new-1").await.unwrap());
        assert!(!backend.replace_hash("alice", "legacy", "new-2").await.unwrap(), "the race is lost");
        assert_eq!(backend.all().users[0].hashed_password, "new-1");
    }
}
