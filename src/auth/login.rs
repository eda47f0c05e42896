//! The tutorial's `authenticate_user`, hardened: throttled first, hashed off the async runtime,
//! and the same work whether or not the username exists.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::hash_pool::{Busy, HashPool};
use crate::auth::throttle::LoginThrottle;
use crate::store::{UserInDb, UserStore};

/// How long a client should wait after the hashing queue was full.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

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
}

/// What a password login needs: the users, the hashing threads and the failure counters.
pub struct Login<'a> {
    /// Where users are looked up.
    pub users: &'a UserStore,
    /// Where passwords are checked.
    pub hasher: &'a HashPool,
    /// Who may try how often.
    pub throttle: &'a Arc<LoginThrottle>,
}

impl Login<'_> {
    /// Checks a username and password sent from `client`. Throttled attempts are refused
    /// before any hashing; unknown usernames are checked against the dummy hash; every hashed
    /// outcome is counted.
    pub async fn authenticate_user(
        &self,
        client: IpAddr,
        username: &str,
        password: String,
    ) -> Result<Arc<UserInDb>, LoginError> {
        // The check and the count are one step: the attempt holds its place in the counters
        // while it is hashed, so a burst cannot pass the check before any of it is counted.
        let attempt = self
            .throttle
            .reserve(username, client, Instant::now())
            .map_err(|throttled| LoginError::Throttled { retry_after: throttled.retry_after })?;
        let (user, hash) = self.users.hash_to_check(username);
        // Shed (503) or abandoned, the attempt is dropped unsettled and counts as nothing.
        let matches = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(|Busy| LoginError::Busy { retry_after: BUSY_RETRY_AFTER_SECS })?;
        match user {
            Some(user) if matches => {
                attempt.succeeded(Instant::now());
                Ok(user)
            }
            _ => {
                attempt.failed(Instant::now());
                Err(LoginError::IncorrectCredentials)
            }
        }
    }
}
