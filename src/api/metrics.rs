//! The metrics listener (`METRICS_ADDR`): `GET /metrics` in the Prometheus text format, on its
//! own socket, never on the public one. Nothing else is served there.

use std::future::Future;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::http::server::Handler;
use crate::telemetry::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;

/// The metrics endpoint of a server's state.
#[derive(Clone)]
pub struct MetricsApp(pub AppState);

impl Handler for MetricsApp {
    fn handle(
        &mut self,
        request: Request,
        _peer: SocketAddr,
        _ambiguous_lengths: bool,
    ) -> impl Future<Output = Response> + Send + 'static + use<> {
        let response = match (request.method(), request.uri().path()) {
            (&Method::GET | &Method::HEAD, "/metrics") => scrape(&self.0),
            (_, "/metrics") => (
                StatusCode::METHOD_NOT_ALLOWED,
                [(ALLOW, HeaderValue::from_static("GET, HEAD"))],
                Body::empty(),
            )
                .into_response(),
            _ => ApiError::NotFound.into_response(),
        };
        std::future::ready(response)
    }
}

/// Samples what is only known on asking (the database pool), then writes every metric.
fn scrape(state: &AppState) -> Response {
    if let Some(pool) = state.users.pool_stats() {
        state.metrics.database_pool(pool);
    }
    ([(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE))], state.metrics.encode()).into_response()
}
