//! FastAPI's "OAuth2 with Password (and hashing), Bearer with JWT tokens" tutorial, ported to
//! Rust with axum and grown into an auth server. The folders are its parts; read them in this
//! order to walk from the seed to the server:
//!
//! - `store`: the users (the tutorial's `fake_users_db`) and where they are kept;
//! - `auth`: the domain: password hashing, `authenticate_user`, tokens, throttling;
//! - `api`: the HTTP surface: routes, extractors, form, errors, OpenAPI and docs;
//! - `http`: the plumbing around every request: accept loop, framing, limits, client address;
//! - `telemetry`: metrics and the log's format, which every part above may record into;
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
/// Metrics and the log's format, for operators.
pub mod telemetry;

pub use api::{App, AppState, app};

use std::sync::Arc;

use crate::auth::jwt::TokenKeys;
use crate::auth::login::Authenticator;
use crate::config::Config;
use crate::store::UserStore;
use crate::telemetry::Metrics;

/// The state is assembled here, where the settings meet the parts they configure.
impl AppState {
    /// Builds the state from a config and a user table (starting the hashing threads). Metrics
    /// are kept when `METRICS_ADDR` is set, and recorded into by every part.
    pub fn new(config: &Config, users: UserStore) -> Self {
        let metrics = if config.metrics_addr.is_some() {
            Metrics::new(api::route_table::ROUTES)
        } else {
            Metrics::off()
        };
        users.record_into(&metrics);
        let shared_counters = users.shared_counters();
        Self::from_parts(api::Shared {
            auth: Arc::new(Authenticator::new(
                config.hashing,
                config.throttle,
                shared_counters,
                metrics.clone(),
            )),
            users,
            tokens: Arc::new(token_keys(config)),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            limits: config.limits,
            refresh: config.refresh_tokens,
            token_errors: config.token_errors,
            scopes: config.scopes.clone().map(Arc::new),
            metrics,
            draining: Default::default(),
        })
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
