//! What happens around every request, whatever its route: path decoding, framing checks,
//! `nosniff`, the request id, the request's metrics and its log line.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, Uri, Version};
use axum::response::{IntoResponse, Response};
use tower::Service;
use tracing::Instrument;

use crate::api::AppState;
use crate::api::client_ip::TrustedProxies;
use crate::api::error::ApiError;
use crate::api::request_id::{RequestIds, X_REQUEST_ID};
use crate::api::route_table::Routes;
use crate::telemetry::Metrics;

/// What the work around the routes needs, built once.
pub struct Around {
    routes: Routes,
    request_ids: RequestIds,
    trusted_proxies: Arc<TrustedProxies>,
    metrics: Metrics,
}

impl Around {
    /// For the routes and settings of `state`.
    pub fn new(state: &AppState) -> Self {
        Self {
            routes: Routes::new(state),
            request_ids: RequestIds::new(),
            trusted_proxies: Arc::clone(&state.trusted_proxies),
            metrics: state.metrics.clone(),
        }
    }
}

/// What happens to every request around the routes: the path is percent-decoded as uvicorn
/// does, `Authorization` is marked sensitive, ambiguous framing is refused, every answer says
/// `nosniff` and carries the request id, the request is counted in the metrics by its route
/// template, and one line is logged (method, path without the query, status, latency, request
/// id; never a header, so never a token; the probes at debug only).
///
/// The work before routing is done here; the future returned owns what the rest needs, so
/// that nothing shared by every request (the router, this module's tables) is cloned for it.
pub fn handle(
    router: &mut Router,
    around: &Around,
    mut request: Request,
    peer: SocketAddr,
    ambiguous_lengths: bool,
) -> impl Future<Output = Response> + Send + 'static + use<> {
    let started = Instant::now();
    if let Some(uri) = decode_path(request.uri()) {
        *request.uri_mut() = uri;
    }
    if let Some(authorization) = request.headers_mut().get_mut(AUTHORIZATION) {
        authorization.set_sensitive(true);
    }
    let request_id = around.request_ids.for_request(request.headers(), peer.ip(), &around.trusted_proxies);
    let route = around.routes.route_of(request.uri().path());
    if Routes::reads_client_address(route) {
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    let method = request.method().clone();
    // The path is kept for the log line only when that line will be written.
    let logged = if Routes::is_probe(route) {
        tracing::enabled!(target: "http", tracing::Level::DEBUG)
    } else {
        tracing::enabled!(target: "http", tracing::Level::INFO)
    };
    let uri = logged.then(|| request.uri().clone());
    // The audit events of logins and revocations carry the request id in their span.
    let span = Routes::is_audited(route)
        .then(|| tracing::info_span!("request", request_id = request_id.to_str().unwrap_or_default()));
    let answer = match ambiguous_framing(&request, ambiguous_lengths) {
        Some(refusal) => Err(refusal),
        // The router is always ready (`poll_ready` is a no-op for it).
        None => Ok(router.call(request)),
    };
    let metrics = around.metrics.clone();
    async move {
        let routed = answer.is_ok();
        let mut response = match (answer, span) {
            (Err(refusal), _) => refusal.into_response(),
            (Ok(routing), Some(span)) => into_response(routing.instrument(span).await),
            (Ok(routing), None) => into_response(routing.await),
        };
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        metrics.observe_request(route, method.as_str(), status, elapsed);
        let id = request_id.to_str().unwrap_or_default();
        if let Some(uri) = uri {
            let latency_ms = elapsed.as_micros() as f64 / 1000.0;
            if Routes::is_probe(route) {
                tracing::debug!(target: "http", %method, path = %uri.path(), status, latency_ms, request_id = id, "request");
            } else {
                tracing::info!(target: "http", %method, path = %uri.path(), status, latency_ms, request_id = id, "request");
            }
        }
        let headers = response.headers_mut();
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(X_REQUEST_ID, request_id);
        // Every answer of the user routes, errors included, as a layer on them would (one layer
        // fewer on the read path).
        if routed && Routes::is_user_route(route) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

fn into_response(result: Result<Response, std::convert::Infallible>) -> Response {
    match result {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// A request whose framing we refuse to guess at: an HTTP/1.1 request without `Host` or with
/// two (RFC 9112 §3.2), or one with both `Content-Length` and `Transfer-Encoding` (RFC 9112
/// §6.1, the request-smuggling shape). All get 400 and the connection is closed.
fn ambiguous_framing(request: &Request, ambiguous_lengths: bool) -> Option<ApiError> {
    let headers = request.headers();
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == Version::HTTP_11 => {
            return Some(ApiError::BadFraming("Missing Host header"));
        }
        (Some(_), Some(_)) => return Some(ApiError::BadFraming("More than one Host header")),
        _ => {}
    }
    // hyper drops `Content-Length` when both arrive, so `framing::FramingWatch` reports it; the
    // header check covers a server that passes both on.
    let both_lengths = ambiguous_lengths
        || (headers.contains_key(TRANSFER_ENCODING) && headers.contains_key(CONTENT_LENGTH));
    both_lengths.then_some(ApiError::BadFraming("Both Content-Length and Transfer-Encoding"))
}

/// Percent-decodes the path before routing, as uvicorn does (`/users/me%2F` is
/// `/users/me/`). Characters that cannot stand in a path are encoded again.
fn decode_path(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.contains('%') {
        return None;
    }
    let decoded = crate::api::form::unquote(path.as_bytes());
    let mut normal = String::with_capacity(decoded.len());
    for character in decoded.chars() {
        if character.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/".contains(character) {
            normal.push(character);
        } else {
            let mut utf8 = [0u8; 4];
            for byte in character.encode_utf8(&mut utf8).bytes() {
                normal.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    let target = match uri.query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(target.parse().ok()?);
    Uri::from_parts(parts).ok()
}
