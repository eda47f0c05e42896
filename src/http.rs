//! HTTP handling shared by every route: what happens around each request (path decoding,
//! framing checks, `nosniff`, the log line), the login time limit, and the JSON 404/405/307.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, HOST, LOCATION, TRANSFER_ENCODING, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode, Uri, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::AppState;
use crate::error::ApiError;

/// What happens to every request around the routes: the path is percent-decoded as uvicorn
/// does, `Authorization` is marked sensitive, ambiguous framing is refused, every answer says
/// `nosniff`, and one line is logged (method, path without the query, status, latency; never a
/// header, so never a token).
pub async fn handle(
    app: Router,
    mut request: Request,
    peer: SocketAddr,
    ambiguous_lengths: bool,
) -> Response {
    let started = Instant::now();
    if let Some(uri) = decode_path(request.uri()) {
        *request.uri_mut() = uri;
    }
    if let Some(authorization) = request.headers_mut().get_mut(AUTHORIZATION) {
        authorization.set_sensitive(true);
    }
    request.extensions_mut().insert(ConnectInfo(peer));
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let mut response = match ambiguous_framing(&request, ambiguous_lengths) {
        Some(refusal) => refusal.into_response(),
        None => match app.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
    };
    response.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    tracing::info!(
        target: "http",
        %method,
        path = %uri.path(),
        status = response.status().as_u16(),
        latency_ms = format_args!("{:.3}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    response
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

/// Bounds the time a login may take, queueing for a hashing thread included
/// (`REQUEST_TIMEOUT_SECS`). Only `/token` waits on anything; the other routes answer from
/// memory at once.
pub async fn limit_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit: Duration = state.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Busy { retry_after: 1 }.into_response(),
    }
}

/// Paths that FastAPI redirects to when a client adds trailing slashes.
const SLASHLESS_ROUTES: [&str; 5] = ["/token", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"];

/// 404 for any path without a route, except FastAPI's slash redirect: `/token/` (or
/// `/token///`) answers 307 to `/token`, keeping the query. The `location` is relative: it is
/// never built from the client's Host header.
pub async fn not_found(uri: Uri) -> Response {
    let stripped = uri.path().trim_end_matches('/');
    if stripped.len() < uri.path().len() && SLASHLESS_ROUTES.contains(&stripped) {
        let location = match uri.query() {
            Some(query) if !query.is_empty() => format!("{stripped}?{query}"),
            _ => stripped.to_owned(),
        };
        if let Ok(location) = HeaderValue::try_from(location) {
            return (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, location)]).into_response();
        }
    }
    ApiError::NotFound.into_response()
}

/// A handler answering 405 with this `allow` header (FastAPI's GET routes refuse HEAD).
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<ApiError> + Clone + Send + Sync + 'static {
    move || std::future::ready(ApiError::MethodNotAllowed { allow })
}

/// Percent-decodes the path before routing, as uvicorn does (`/users/me%2F` is
/// `/users/me/`). Characters that cannot stand in a path are encoded again.
fn decode_path(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.contains('%') {
        return None;
    }
    let decoded = crate::form::unquote(path.as_bytes());
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
