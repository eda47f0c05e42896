//! The HTTP surface: the state the handlers share, the router, and the parts it is built from.

/// The client address used for throttling (`TRUSTED_PROXIES`).
pub mod client_ip;
/// `/openapi.json`, `/docs` and `/redoc`.
pub mod docs;
/// The error type and its JSON answers.
pub mod error;
/// The `CurrentUser`, `ActiveUser` and `ClientIp` extractors.
pub mod extractors;
/// 404, 405, FastAPI's trailing-slash redirect, and the login time limit.
pub mod fallback;
/// The login form and its validation.
pub mod form;
/// `/healthz` and `/readyz`, and the flag that turns readiness off on SIGTERM.
pub mod health;
/// `/.well-known/jwks.json`, the public signing keys (with `JWT_KEYS_FILE`).
pub mod jwks;
/// The metrics listener's one route, `/metrics`.
pub mod metrics;
/// Path decoding, framing refusal, `nosniff`, the request id, metrics and the log line, around
/// every request.
pub mod middleware;
/// The OpenAPI document.
pub mod openapi;
/// `X-Request-Id`: kept from a trusted proxy, or made here.
pub mod request_id;
/// Which route template a path takes, as requests are labelled in the metrics and the log.
pub mod route_table;
/// The routes: the tutorial's three and revocation.
pub mod routes;
/// Schemas only the OpenAPI document needs (the form as documented, error shapes).
pub mod schemas;
/// The token and revocation endpoints: the grants and the shape of their errors.
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use bytes::Bytes;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::client_ip::TrustedProxies;
use crate::api::error::ErrorStyle;
use crate::api::health::Draining;
use crate::api::middleware::Around;
use crate::api::openapi::DocOptions;
use crate::auth::jwt::TokenKeys;
use crate::auth::login::Authenticator;
use crate::auth::refresh::RefreshConfig;
use crate::auth::scopes::ScopesConfig;
use crate::http::server::{Handler, Limits};
use crate::store::UserStore;
use crate::telemetry::Metrics;

/// Everything the handlers share, built once at start. axum hands each request its own copy
/// of the state: one shared pointer, so that copy is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state made of these parts.
    pub fn from_parts(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of `AppState`.
pub struct Shared {
    /// The users.
    pub users: UserStore,
    /// Token signing and validation.
    pub tokens: Arc<TokenKeys>,
    /// Password logins: hashing threads and failure counters.
    pub auth: Arc<Authenticator>,
    /// Whose `X-Forwarded-For` to believe.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Size and time limits.
    pub limits: Limits,
    /// Refresh tokens and revocation, when on.
    pub refresh: Option<RefreshConfig>,
    /// The shape of `/token`'s errors.
    pub token_errors: ErrorStyle,
    /// OAuth2 scopes, when on (`SCOPES`).
    pub scopes: Option<Arc<ScopesConfig>>,
    /// Where metrics are recorded (a no-op handle without `METRICS_ADDR`).
    pub metrics: Metrics,
    /// Set on SIGTERM: `/readyz` answers 503.
    pub draining: Draining,
}

/// The application as the server runs it: the router inside what happens around every request.
#[derive(Clone)]
pub struct App {
    router: Router,
    around: Arc<Around>,
}

/// The application for `state`.
pub fn app(state: AppState) -> App {
    let around = Arc::new(Around::new(&state));
    App { router: router(state), around }
}

impl Handler for App {
    fn handle(
        &mut self,
        request: Request,
        peer: SocketAddr,
        ambiguous_lengths: bool,
    ) -> impl Future<Output = Response> + Send + 'static + use<> {
        middleware::handle(&mut self.router, &self.around, request, peer, ambiguous_lengths)
    }
}

/// The routes and documentation, with their per-route layers. What happens around every
/// request (framing checks, `nosniff`, the log line) is `middleware::handle`.
pub fn router(state: AppState) -> Router {
    let no_store = || SetResponseHeaderLayer::overriding(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // RFC 6749 §5.1: token responses must not be cached.
    let limit = state.limits.request_timeout;
    let mut token = Router::new()
        .route("/token", post(routes::login_for_access_token).fallback(fallback::method_not_allowed("POST")))
        .route_layer(from_fn_with_state((limit, state.token_errors), fallback::limit_time));
    if state.refresh.is_some() {
        let revoke = Router::new()
            .route("/revoke", post(routes::revoke_token).fallback(fallback::method_not_allowed("POST")))
            .route_layer(from_fn_with_state((limit, ErrorStyle::Rfc6749), fallback::limit_time));
        token = token.merge(revoke);
    }
    let token = token
        .layer(SetResponseHeaderLayer::overriding(PRAGMA, HeaderValue::from_static("no-cache")))
        .layer(no_store());
    // Both spellings answer directly (FastAPI redirects the slashless ones with a 307).
    // Like FastAPI's, these GET routes refuse HEAD.
    let get_only = |route: MethodRouter<AppState>| {
        route.head(fallback::method_not_allowed("GET")).fallback(fallback::method_not_allowed("GET"))
    };
    let me = get_only(get(routes::read_users_me));
    let items = get_only(get(routes::read_own_items));
    let mut users = Router::new()
        .route("/users/me/", me.clone())
        .route("/users/me", me)
        .route("/users/me/items/", items.clone())
        .route("/users/me/items", items);
    if state.scopes.is_some() {
        let status = get_only(get(routes::read_system_status));
        users = users.route("/status/", status.clone()).route("/status", status);
    }
    // Their `Cache-Control: no-store` is set around the router (`middleware::handle`).
    let options = DocOptions {
        refresh_tokens: state.refresh.is_some(),
        jwks: state.tokens.public_jwks().is_some(),
        rfc6749_errors: state.token_errors == ErrorStyle::Rfc6749,
        scopes: state.scopes.as_deref(),
    };
    let openapi_json = Bytes::from(openapi::document(options));
    let mut router =
        Router::new().merge(token).merge(users).merge(docs::router(openapi_json)).merge(health::router());
    // Without a key file there is no key set to publish, and the path stays a 404.
    if let Some(jwks) = state.tokens.public_jwks() {
        router = router.merge(jwks::router(jwks.clone()));
    }
    router.fallback(fallback::not_found).with_state(state)
}
