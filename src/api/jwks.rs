//! `GET /.well-known/jwks.json`: the public keys of `JWT_KEYS_FILE`'s asymmetric keys, for
//! resource servers that check our tokens themselves. Served only when the key file is set.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;

use crate::api::AppState;
use crate::api::fallback::method_not_allowed;

/// Where the key set is published: the conventional path for a `jwks_uri` (RFC 8414 §2).
pub const PATH: &str = "/.well-known/jwks.json";

/// Five minutes: how long a resource server may keep the set before asking again. The set only
/// changes when the server restarts with a new file, and each change must reach every resource
/// server: a newly added key must be published at least this long before it signs (README,
/// "Signing keys"), and a key removed in a hurry (leaked) is still trusted elsewhere for at
/// most this long. Short enough for both; long enough that fetching the set costs nothing.
const CACHE_CONTROL_VALUE: &str = "public, max-age=300";

/// The route serving `jwks` (`{"keys":[...]}`, rendered at load), for GET and HEAD.
pub fn router(jwks: Bytes) -> Router<AppState> {
    let serve = move || {
        let jwks = jwks.clone();
        async move {
            (
                [
                    (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL_VALUE)),
                ],
                jwks,
            )
                .into_response()
        }
    };
    Router::new().route(PATH, get(serve).fallback(method_not_allowed("GET, HEAD")))
}
