//! The tutorial's `authenticate_user`, hardened: throttled first, hashed off the async runtime,
//! and the same work whether or not the username exists.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::auth::hash_pool::{Busy, HashPool, HashingConfig};
use crate::auth::password::{PasswordHash, StoredHash, default_params};
use crate::auth::throttle::{LoginThrottle, Refusal, ThrottleConfig};
use crate::store::counters::SharedCounters;
use crate::store::{UserInDb, UserStore};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::LoginOutcome;

/// How long a client should wait after the hashing queue was full or the store unavailable.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Wrong password or unknown user: the same answer for both.
    #[error("incorrect username or password")]
    IncorrectCredentials,
    /// Too many failures for this username or client; retry after this many seconds.
    #[error("too many failed login attempts")]
    Throttled {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
    /// The hashing queue is full; retry after this many seconds.
    #[error("password hashing is busy")]
    Busy {
        /// Seconds after which a retry is likely to succeed.
        retry_after: u64,
    },
    /// The user store cannot answer now; retry after this many seconds.
    #[error("the user store is unavailable")]
    Unavailable {
        /// Seconds after which a retry may succeed.
        retry_after: u64,
    },
}

/// What password logins share: the hashing threads, the failure counters, and the dummy hash
/// that unknown usernames are checked against.
pub struct Authenticator {
    /// Where passwords are checked.
    pub hasher: HashPool,
    /// Who may try how often.
    pub throttle: Arc<LoginThrottle>,
    /// One of our own argon2id hashes that no password matches.
    dummy: StoredHash,
    /// Usernames whose legacy hash this process is upgrading now: one upgrade at a time each.
    upgrading: Arc<Mutex<HashSet<String>>>,
    /// Where outcomes, hashing and upgrades are counted.
    metrics: Metrics,
}

impl Authenticator {
    /// Starts the hashing threads and empty counters: in this process, or in the database
    /// when `shared` is given (PostgreSQL, shared with other instances).
    pub fn new(
        hashing: HashingConfig,
        throttle: ThrottleConfig,
        shared: Option<SharedCounters>,
        metrics: Metrics,
    ) -> Self {
        let throttle = match shared {
            Some(counters) => LoginThrottle::shared(throttle, counters, metrics.clone()),
            None => Arc::new(LoginThrottle::new(throttle, metrics.clone())),
        };
        Self {
            hasher: HashPool::new(hashing, metrics.clone()),
            throttle,
            dummy: StoredHash::from(PasswordHash::dummy(default_params())),
            upgrading: Arc::default(),
            metrics,
        }
    }

    /// Checks a username and password sent from `client`. Throttled attempts are refused
    /// before any hashing; unknown usernames are checked against the dummy hash; every hashed
    /// outcome is counted. Every outcome is counted in the metrics and written to the audit log.
    pub async fn authenticate_user(
        &self,
        users: &UserStore,
        client: IpAddr,
        username: &str,
        password: String,
    ) -> Result<Arc<UserInDb>, LoginError> {
        let result = self.check(users, client, username, password).await;
        let outcome = match &result {
            Ok(_) => LoginOutcome::Success,
            Err(LoginError::IncorrectCredentials) => LoginOutcome::WrongCredentials,
            Err(LoginError::Throttled { .. }) => LoginOutcome::Throttled,
            Err(LoginError::Busy { .. }) => LoginOutcome::Shed,
            Err(LoginError::Unavailable { .. }) => LoginOutcome::Unavailable,
        };
        self.metrics.login(outcome);
        if result.is_ok() {
            tracing::info!(target: "audit", event = "login.succeeded", username, client_ip = %client, outcome = outcome.as_str(), "login");
        } else {
            tracing::info!(target: "audit", event = "login.failed", username, client_ip = %client, outcome = outcome.as_str(), "login refused");
        }
        result
    }

    /// `authenticate_user` without the bookkeeping.
    async fn check(
        &self,
        users: &UserStore,
        client: IpAddr,
        username: &str,
        password: String,
    ) -> Result<Arc<UserInDb>, LoginError> {
        // The check and the count are one step: the attempt holds its place in the counters
        // while it is hashed, so a burst cannot pass the check before any of it is counted.
        let attempt = self.throttle.reserve(username, client).await.map_err(|refusal| match refusal {
            Refusal::Throttled(throttled) => LoginError::Throttled { retry_after: throttled.retry_after },
            Refusal::Unavailable => LoginError::Unavailable { retry_after: RETRY_AFTER_SECS },
        })?;
        let user =
            users.get(username).map_err(|_| LoginError::Unavailable { retry_after: RETRY_AFTER_SECS })?;
        let hash = match &user {
            Some(user) => self.stored_hash(user),
            None => self.dummy.clone(),
        };
        // A legacy hash is replaced by one of ours once the password is known to be right.
        let to_upgrade = hash.needs_upgrade().then(|| password.clone());
        // Shed (503) or abandoned, the attempt is dropped unsettled and counts as nothing.
        let matches = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(|Busy| LoginError::Busy { retry_after: RETRY_AFTER_SECS })?;
        match user {
            Some(user) if matches => {
                attempt.succeeded().await;
                if let Some(password) = to_upgrade {
                    self.upgrade_later(users, &user, password);
                }
                Ok(user)
            }
            _ => {
                attempt.failed().await;
                Err(LoginError::IncorrectCredentials)
            }
        }
    }

    /// Replaces `user`'s legacy hash with a new argon2id one computed from `password`, after
    /// the login has been answered (pwdlib's `verify_and_update`). The store swaps the hash
    /// only if it is still the one this login checked, so of several logins racing to
    /// upgrade, one wins and the hash is always whole. A full hashing queue or an unreachable
    /// store leaves the legacy hash for the next login to upgrade.
    fn upgrade_later(&self, users: &UserStore, user: &UserInDb, password: String) {
        let username = user.username.clone();
        if !lock(&self.upgrading).insert(username.clone()) {
            return;
        }
        let (users, hasher, upgrading) = (users.clone(), self.hasher.clone(), Arc::clone(&self.upgrading));
        let metrics = self.metrics.clone();
        let old = user.hashed_password.clone();
        tokio::spawn(async move {
            if let Ok(new) = hasher.hash(password).await {
                match users.replace_hash(&username, &old, &new).await {
                    Ok(true) => {
                        metrics.legacy_hash_upgraded();
                        tracing::info!(%username, "upgraded a legacy password hash to argon2id");
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%username, %error, "could not store an upgraded password hash")
                    }
                }
            }
            lock(&upgrading).remove(&username);
        });
    }

    /// The user's hash, or the dummy (which nothing matches) when the stored one cannot be
    /// read: such a user cannot log in, at the cost of any other login.
    fn stored_hash(&self, user: &UserInDb) -> StoredHash {
        StoredHash::parse(&user.hashed_password).unwrap_or_else(|error| {
            tracing::warn!(username = %user.username, %error, "the stored password hash cannot be verified");
            self.dummy.clone()
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A set of names stays whole whatever panicked while holding it.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
