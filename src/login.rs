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
/// any hashing; unknown usernames are checked against the dummy hash; every outcome is counted.
pub async fn authenticate_user(
    state: &AppState,
    client: IpAddr,
    username: &str,
    password: String,
) -> Result<Arc<UserInDb>, ApiError> {
    state
        .throttle
        .check(username, client, Instant::now())
        .map_err(|throttled| ApiError::TooManyAttempts { retry_after: throttled.retry_after })?;
    let (user, hash) = state.users.hash_to_check(username);
    let matches = state
        .hasher
        .verify(password, hash)
        .await
        .map_err(|Busy| ApiError::Busy { retry_after: BUSY_RETRY_AFTER_SECS })?;
    match user {
        Some(user) if matches => {
            state.throttle.record_success(username, client, Instant::now());
            Ok(user)
        }
        _ => {
            state.throttle.record_failure(username, client, Instant::now());
            Err(ApiError::IncorrectCredentials)
        }
    }
}
