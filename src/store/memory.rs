//! The in-memory backend: the embedded users or `USERS_FILE`, kept for the life of the
//! process. What changes at run time (a hash upgraded at login) is kept here too, and never
//! written back to the file.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::store::{Backend, Changes, RefreshFamily, RefreshToken, StoreError, Update, UserRecord};

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
    /// Refresh-token families by id, with the hashes of their tokens.
    families: HashMap<String, (RefreshFamily, Vec<String>)>,
    /// Refresh tokens by hash: family id, idle expiry, used.
    refresh_tokens: HashMap<String, (String, i64, bool)>,
    /// When to next forget ended refresh-token families (milliseconds since the epoch).
    next_purge: i64,
    /// Revoked access tokens by id: expiry and the revision of the revocation.
    revoked: HashMap<String, (i64, i64)>,
}

impl Tables {
    fn bump(&mut self) -> i64 {
        self.revision += 1;
        self.revision
    }

    fn user_mut(&mut self, username: &str) -> Result<&mut (UserRecord, i64), StoreError> {
        self.users.get_mut(username).ok_or_else(|| StoreError::NotFound(username.to_owned()))
    }

    /// Ends every refresh-token family for which `ends` holds.
    /// Ends every refresh-token family for which `ends` holds, with its tokens.
    fn end_families(&mut self, ends: impl Fn(&RefreshFamily) -> bool) {
        let ended: Vec<String> = self
            .families
            .values()
            .filter(|(family, _)| ends(family))
            .map(|(family, _)| family.id.clone())
            .collect();
        for id in ended {
            if let Some((_, hashes)) = self.families.remove(&id) {
                for hash in hashes {
                    self.refresh_tokens.remove(&hash);
                }
            }
        }
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
            revoked: tables
                .revoked
                .iter()
                .filter(|(_, (_, rev))| *rev > since)
                .map(|(id, (expires_at, _))| (id.clone(), *expires_at))
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
        if let Some(hash) = update.password {
            record.hashed_password = hash;
        }
        if let Some(disabled) = update.disabled {
            record.user.disabled = Some(disabled);
        }
        if let Some(scopes) = update.scopes {
            record.scopes = scopes;
        }
        if let Some(before) = update.revoke_tokens_before {
            record.tokens_valid_after = before;
        }
        *rev = revision;
        if update.revoke_tokens_before.is_some() {
            tables.end_families(|family| family.username == username);
        }
        Ok(())
    }

    async fn remove(&self, username: &str) -> Result<(), StoreError> {
        let mut tables = self.lock();
        tables.user_mut(username)?;
        let revision = tables.bump();
        tables.users.remove(username);
        tables.removed.insert(username.to_owned(), revision);
        tables.end_families(|family| family.username == username);
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

    async fn start_refresh_family(
        &self,
        family: &RefreshFamily,
        hash: &str,
        idle_expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock();
        // Ended families are forgotten a minute at a time, not at every login.
        if now >= tables.next_purge {
            tables.end_families(|family| family.expires_at <= now);
            tables.next_purge = now + 60_000;
        }
        tables.families.insert(family.id.clone(), (family.clone(), vec![hash.to_owned()]));
        tables.refresh_tokens.insert(hash.to_owned(), (family.id.clone(), idle_expires_at, false));
        Ok(())
    }

    async fn find_refresh(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        let tables = self.lock();
        let Some((family_id, idle_expires_at, used)) = tables.refresh_tokens.get(hash) else {
            return Ok(None);
        };
        let family = tables.families.get(family_id).map(|(family, _)| family.clone());
        Ok(family.map(|family| RefreshToken { family, idle_expires_at: *idle_expires_at, used: *used }))
    }

    async fn rotate_refresh(
        &self,
        old: &str,
        new: &str,
        idle_expires_at: i64,
        _now: i64,
    ) -> Result<bool, StoreError> {
        let mut tables = self.lock();
        let Some((family_id, _, used)) = tables.refresh_tokens.get_mut(old) else { return Ok(false) };
        if *used {
            return Ok(false);
        }
        *used = true;
        let family_id = family_id.clone();
        if let Some((_, hashes)) = tables.families.get_mut(&family_id) {
            hashes.push(new.to_owned());
        }
        tables.refresh_tokens.insert(new.to_owned(), (family_id, idle_expires_at, false));
        Ok(true)
    }

    async fn end_refresh_family(&self, family_id: &str) -> Result<(), StoreError> {
        let mut tables = self.lock();
        if let Some((_, hashes)) = tables.families.remove(family_id) {
            for hash in hashes {
                tables.refresh_tokens.remove(&hash);
            }
        }
        Ok(())
    }

    async fn revoke_access(&self, id: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        let mut tables = self.lock();
        let revision = tables.bump();
        tables.revoked.retain(|_, (expires_at, _)| *expires_at > now);
        tables.revoked.insert(id.to_owned(), (expires_at, revision));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::User;

    fn record(name: &str, hash: &str) -> UserRecord {
        let user = User { username: name.into(), email: None, full_name: None, disabled: None };
        UserRecord::new(user, hash)
    }

    #[tokio::test]
    async fn every_change_bumps_the_revision_and_shows_in_the_changes_since() {
        let backend = MemoryBackend::new(vec![record("alice", "h1")]);
        let start = backend.revision().await.unwrap();
        backend.add(vec![record("bob", "h2")]).await.unwrap();
        backend.update("alice", Update { disabled: Some(true), ..Update::default() }).await.unwrap();
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
            backend.update("carol", Update { disabled: Some(true), ..Update::default() }).await,
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
