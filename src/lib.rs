//! FastAPI's "OAuth2 with Password (and hashing), Bearer with JWT tokens" tutorial, ported to
//! Rust with axum. Read the modules in this order to walk from the seed to the server:

/// The `CurrentUser` and `ActiveUser` extractors.
pub mod auth;
/// The client address used for throttling.
pub mod client_ip;
/// Settings from the environment, as a plain value.
pub mod config;
/// `/openapi.json`, `/docs` and `/redoc`.
pub mod docs;
/// The error type and its JSON answers.
pub mod error;
/// The login form and its validation.
pub mod form;
/// Spotting requests with both `Content-Length` and `Transfer-Encoding`.
pub mod framing;
/// The bounded thread pool that runs argon2 off the async runtime.
pub mod hash_pool;
/// Logging, framing checks, timeouts.
pub mod http;
/// HS256 access tokens.
pub mod jwt;
/// `authenticate_user`: throttle, hash, count.
pub mod login;
/// The OpenAPI document.
pub mod openapi;
/// Argon2 hashing and verification.
pub mod password;
/// The three routes.
pub mod routes;
/// The accept loop and graceful shutdown.
pub mod server;
/// Brute-force throttling of failed logins.
pub mod throttle;
/// Users, the user table and its loading.
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::client_ip::TrustedProxies;
use crate::config::Config;
use crate::hash_pool::HashPool;
use crate::jwt::TokenKeys;
use crate::server::Limits;
use crate::throttle::LoginThrottle;
use crate::users::UserStore;

/// Everything the handlers share, built once at start.
#[derive(Clone)]
pub struct AppState {
    /// The user table.
    pub users: Arc<UserStore>,
    /// Token signing and validation.
    pub tokens: Arc<TokenKeys>,
    /// Password hashing threads.
    pub hasher: Arc<HashPool>,
    /// Failed-login counters.
    pub throttle: Arc<LoginThrottle>,
    /// Whose `X-Forwarded-For` to believe.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Size and time limits.
    pub limits: Limits,
}

impl AppState {
    /// Builds the state from a config and a user table (starting the hashing threads).
    pub fn new(config: &Config, users: UserStore) -> Self {
        Self {
            users: Arc::new(users),
            tokens: Arc::new(TokenKeys::new(&config.secret_key, config.access_token_lifetime)),
            hasher: Arc::new(HashPool::new(config.hashing)),
            throttle: Arc::new(LoginThrottle::new(config.throttle)),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            limits: config.limits,
        }
    }
}

/// The application: the routes and documentation, with their per-route layers. What happens
/// around every request (framing checks, `nosniff`, the log line) is `http::handle`.
pub fn app(state: AppState) -> Router {
    let no_store = || SetResponseHeaderLayer::overriding(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // RFC 6749 §5.1: token responses must not be cached.
    let token = Router::new()
        .route("/token", post(routes::login_for_access_token).fallback(http::method_not_allowed("POST")))
        .route_layer(from_fn_with_state(state.clone(), http::limit_time))
        .layer(SetResponseHeaderLayer::overriding(PRAGMA, HeaderValue::from_static("no-cache")))
        .layer(no_store());
    // Both spellings answer directly (FastAPI redirects the slashless ones with a 307).
    // Like FastAPI's, these GET routes refuse HEAD.
    let get_only = |route: MethodRouter<AppState>| {
        route.head(http::method_not_allowed("GET")).fallback(http::method_not_allowed("GET"))
    };
    let me = get_only(get(routes::read_users_me));
    let items = get_only(get(routes::read_own_items));
    let users = Router::new()
        .route("/users/me/", me.clone())
        .route("/users/me", me)
        .route("/users/me/items/", items.clone())
        .route("/users/me/items", items)
        .layer(no_store());
    Router::new().merge(token).merge(users).merge(docs::router()).fallback(http::not_found).with_state(state)
}
