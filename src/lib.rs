//! FastAPI's "OAuth2 with Password (and hashing), Bearer with JWT tokens" tutorial, ported to
//! Rust with axum and grown into an auth server. The folders are its parts; read them in this
//! order to walk from the seed to the server:
//!
//! - `store`: the users (the tutorial's `fake_users_db`) and where they are kept;
//! - `auth`: the domain: password hashing, `authenticate_user`, tokens, throttling;
//! - `api`: the HTTP surface: routes, extractors, form, errors, OpenAPI and docs;
//! - `http`: the plumbing around every request: accept loop, framing, limits, client address;
//! - `config`: every setting, read once into a value;
//! - `cli`: the commands of the binary besides serving.
//!
//! Arrows run one way: `api` uses `auth` and `store`, `auth` uses `store`; neither of those
//! knows axum.

/// The HTTP surface: `AppState`, the router, routes, extractors, errors and documentation.
pub mod api;
/// The auth domain: passwords, logins, tokens and throttling.
pub mod auth;
/// The binary's commands: serve, `users ...`, `hash-password`, `keys generate`.
pub mod cli;
/// Settings from the environment, as a plain value.
pub mod config;
/// Plumbing around every request: the accept loop, framing checks and the client address.
pub mod http;
/// The user store.
pub mod store;

pub use api::{App, AppState, app};

use std::sync::Arc;

use crate::auth::jwt::TokenKeys;
use crate::auth::login::Authenticator;
use crate::config::Config;
use crate::store::UserStore;

/// The state is assembled here, where the settings meet the parts they configure.
impl AppState {
    /// Builds the state from a config and a user table (starting the hashing threads).
    pub fn new(config: &Config, users: UserStore) -> Self {
        Self {
            auth: Arc::new(Authenticator::new(config.hashing, config.throttle, users.shared_counters())),
            users,
            tokens: Arc::new(token_keys(config)),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            limits: config.limits,
            refresh: config.refresh_tokens,
            token_errors: config.token_errors,
            scopes: config.scopes.clone().map(Arc::new),
        }
    }
}

/// The keys tokens are signed and checked with (`JWT_KEYS_FILE`, else `SECRET_KEY`); with
/// refresh tokens on, tokens carry `iat` and `jti`.
fn token_keys(config: &Config) -> TokenKeys {
    let keys = match &config.jwt_keys {
        Some(keys) => TokenKeys::from_keys(keys.clone(), config.access_token_lifetime),
        None => TokenKeys::new(&config.secret_key, config.access_token_lifetime),
    };
    if config.refresh_tokens.is_some() { keys.with_lifecycle_claims() } else { keys }
}
