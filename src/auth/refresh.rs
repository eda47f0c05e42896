//! Refresh tokens (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).
//!
//! A login starts a *family*; the client gets an opaque token (256 random bits) that the store
//! keeps only as a SHA-256 hash. Each refresh exchanges the family's live token for a new one;
//! the old one stops working. Presenting a token that was already exchanged means two parties
//! hold the family (a thief and the owner), so the whole family ends and both must log in again.
//! There is no grace period for a client that lost the answer to its refresh and retries with
//! the old token: telling that retry from a thief's replay is impossible, and a grace window is
//! exactly the window a replay needs, so the retry ends the family too (the client logs in).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use getrandom::SysRng;
use rand_core::TryRng;
use sha2::{Digest, Sha256};

use crate::store::{RefreshFamily, StoreError, UserInDb, UserStore};

/// How long refresh tokens live. On when `REFRESH_TOKEN_EXPIRE_DAYS` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshConfig {
    /// A family's absolute lifetime from its login (`REFRESH_TOKEN_EXPIRE_DAYS`).
    pub lifetime: Duration,
    /// A token unused this long is refused (`REFRESH_TOKEN_IDLE_DAYS`, half the lifetime by
    /// default): a device left alone must log in again.
    pub idle: Duration,
}

/// Why a refresh token was refused. Clients see `invalid_grant` with the description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, revoked, or its user can no longer have tokens.
    #[error("{0}")]
    Invalid(&'static str),
    /// A refresh asking for a scope the login was not granted (RFC 6749 §6: `invalid_scope`).
    #[error("the requested scope is broader than the one granted")]
    BroaderScope,
    /// Already exchanged for a newer token: two parties hold the family, which has now ended.
    /// Clients see the same words as for `Invalid`; the username is for the audit log.
    #[error("{INVALID}")]
    Reused {
        /// Whose family it was.
        username: String,
    },
    /// The store cannot answer now.
    #[error("the store is unavailable")]
    Unavailable,
}

/// The same words for every refusal: which of them it was is no business of the presenter.
const INVALID: &str = "The refresh token is invalid, expired or revoked";

impl From<StoreError> for RefreshError {
    fn from(error: StoreError) -> Self {
        tracing::warn!(%error, "refresh tokens: the store failed");
        Self::Unavailable
    }
}

/// A new refresh token and what it grants.
pub struct Issued {
    /// The opaque token for the client.
    pub token: String,
    /// The user it is for.
    pub user: Arc<UserInDb>,
    /// The scopes granted at login (space-separated).
    pub scope: String,
}

impl RefreshConfig {
    /// Starts a family for a login of `username` with `scope` and returns its first token.
    pub async fn start(&self, users: &UserStore, username: &str, scope: &str) -> Result<String, StoreError> {
        let now = unix_now_ms();
        let family = RefreshFamily {
            id: random_token(),
            username: username.to_owned(),
            scope: scope.to_owned(),
            created_at: now,
            expires_at: now.saturating_add(millis(self.lifetime)),
        };
        let token = random_token();
        let idle_expires_at = now.saturating_add(millis(self.idle)).min(family.expires_at);
        users.start_refresh_family(&family, &hash(&token), idle_expires_at, now).await?;
        Ok(token)
    }

    /// Exchanges `presented` for a new token of its family, after checking the token (known,
    /// not used before, within both lifetimes) and its user (present, enabled, not logged out
    /// everywhere since the login). A reused token ends its family.
    pub async fn rotate(
        &self,
        users: &UserStore,
        presented: &str,
        scope: Option<&str>,
    ) -> Result<Issued, RefreshError> {
        let now = unix_now_ms();
        let old = hash(presented);
        let Some(token) = users.find_refresh(&old).await? else { return Err(RefreshError::Invalid(INVALID)) };
        let family = &token.family;
        let user = users.get(&family.username).map_err(|_| RefreshError::Unavailable)?;
        if token.used {
            users.end_refresh_family(&family.id).await?;
            return Err(RefreshError::Reused { username: family.username.clone() });
        }
        let refused = now >= family.expires_at
            || now >= token.idle_expires_at
            || user
                .as_ref()
                .is_none_or(|user| user.is_disabled() || family.created_at < user.tokens_valid_after);
        if refused {
            users.end_refresh_family(&family.id).await?;
            return Err(RefreshError::Invalid(INVALID));
        }
        let user = user.expect("checked above");
        // Fewer scopes may be asked for, never one the login was not granted (the token stays).
        if scope.is_some_and(|scope| {
            scope.split_whitespace().any(|asked| !family.scope.split(' ').any(|granted| granted == asked))
        }) {
            return Err(RefreshError::BroaderScope);
        }
        let new = random_token();
        let idle_expires_at = now.saturating_add(millis(self.idle)).min(family.expires_at);
        if !users.rotate_refresh(&old, &hash(&new), idle_expires_at, now).await? {
            // Another request exchanged it first: the same token was presented twice.
            users.end_refresh_family(&family.id).await?;
            return Err(RefreshError::Reused { username: family.username.clone() });
        }
        Ok(Issued { token: new, user, scope: family.scope.clone() })
    }

    /// Ends the family of `presented`, if it is a refresh token we know; its user's name when
    /// it was.
    pub async fn revoke(&self, users: &UserStore, presented: &str) -> Result<Option<String>, StoreError> {
        match users.find_refresh(&hash(presented)).await? {
            Some(token) => {
                users.end_refresh_family(&token.family.id).await?;
                Ok(Some(token.family.username))
            }
            None => Ok(None),
        }
    }
}

/// 256 random bits, base64url without padding (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // Without randomness there is no safe token to give out.
    SysRng.try_fill_bytes(&mut bytes).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How the store names a token: the hex SHA-256 of it (a high-entropy secret needs no salt or
/// slow hash: guessing its preimage is as hard as guessing the token).
fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Refresh tokens keep time in milliseconds: lifetimes are days in production, but a test's are
/// seconds, and whole seconds would cut them short by up to one.
fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_only_as_hashes() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 64);
        assert!(!hash(&a).contains(&a));
        assert_eq!(hash(&a), hash(&a.clone()));
    }
}
