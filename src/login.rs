//! The tutorial's `authenticate_user`, hardened: throttled first, hashed off the async runtime,
//! and the same work whether or not the username exists.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::AppState;
use crate::error::ApiError;
use crate::hash_pool::Busy;
use crate::users::UserInDb;

/// How long a client should wait after a 503 from a full hashing queue.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// Checks a username and password sent from `client`. Throttled attempts are refused before
/// any hashing; unknown usernames are checked against the dummy hash; every hashed outcome is
/// counted.
pub async fn authenticate_user(
    state: &AppState,
    client: IpAddr,
    username: &str,
    password: String,
) -> Result<Arc<UserInDb>, ApiError> {
    // The check and the count are one step: the attempt holds its place in the counters
    // while it is hashed, so a burst cannot pass the check before any of it is counted.
    let attempt = state
        .throttle
        .reserve(username, client, Instant::now())
        .map_err(|throttled| ApiError::TooManyAttempts { retry_after: throttled.retry_after })?;
    let (user, hash) = state.users.hash_to_check(username);
    // Shed (503) or abandoned, the attempt is dropped unsettled and counts as nothing.
    let matches = state
        .hasher
        .verify(password, hash)
        .await
        .map_err(|Busy| ApiError::Busy { retry_after: BUSY_RETRY_AFTER_SECS })?;
    match user {
        Some(user) if matches => {
            attempt.succeeded(Instant::now());
            Ok(user)
        }
        _ => {
            attempt.failed(Instant::now());
            Err(ApiError::IncorrectCredentials)
        }
    }
}
