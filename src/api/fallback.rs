//! The answers of the API that no handler gives: the JSON 404 (and FastAPI's trailing-slash
//! 307), the 405 with `allow`, and the time limit on logins.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::error::{ApiError, ErrorStyle};

/// Bounds the time a login may take, queueing for a hashing thread included
/// (`REQUEST_TIMEOUT_SECS`). Only `/token` waits on anything; the other routes answer from
/// memory at once.
pub async fn limit_time(
    State((limit, style)): State<(Duration, ErrorStyle)>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => style.shape(ApiError::Busy { retry_after: 1 }).into_response(),
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
