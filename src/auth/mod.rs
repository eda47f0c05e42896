//! The auth domain: how a password is checked, who may try how often, and the tokens that a
//! successful login gets. Nothing here knows HTTP.

/// The bounded thread pool that runs argon2 off the async runtime.
pub mod hash_pool;
/// Access tokens: JWTs minted and checked as PyJWT does.
pub mod jwt;
/// The keys tokens are signed with: `SECRET_KEY` or the key set of `JWT_KEYS_FILE`.
pub mod keys;
/// `authenticate_user`: throttle, hash, count.
pub mod login;
/// Argon2 hashing and verification.
pub mod password;
/// Refresh tokens: families, rotation, reuse detection.
pub mod refresh;
/// OAuth2 scopes: what is configured, granted and needed.
pub mod scopes;
/// Brute-force throttling of failed logins.
pub mod throttle;
