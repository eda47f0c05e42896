//! The probes: `GET /healthz` (the process answers) and `GET /readyz` (it should be sent
//! requests: the user store answers and the server is not shutting down). Not in the OpenAPI
//! document, and logged at debug rather than info.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::AppState;
use crate::api::fallback::method_not_allowed;

/// Set once the server is told to stop: `/readyz` answers 503 from then on, while the listener
/// still accepts for `SHUTDOWN_DRAIN_SECS`, so that a load balancer stops sending first.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on the server is shutting down.
    pub fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once `begin` was called.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The two probes; like the documentation pages, they answer GET and HEAD.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz).fallback(method_not_allowed("GET, HEAD")))
        .route("/readyz", get(readyz).fallback(method_not_allowed("GET, HEAD")))
}

/// `GET /healthz`: 200 `{"status":"ok"}` while the process can answer at all.
async fn healthz() -> Response {
    probe(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// `GET /readyz`: 200 `{"status":"ready"}`, or 503 with the reason: `shutting down` once
/// SIGTERM arrived, `database unavailable` while user lookups would get 503.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.draining.is_draining() {
        probe(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"shutting down"}"#)
    } else if !state.users.is_available() {
        probe(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"database unavailable"}"#)
    } else {
        probe(StatusCode::OK, r#"{"status":"ready"}"#)
    }
}

fn probe(status: StatusCode, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    (status, headers, body).into_response()
}
