//! What happens around every request, whatever its route: path decoding, framing checks,
//! `nosniff`, the log line.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, Uri, Version};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::api::error::ApiError;

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
