//! The routes, each a few lines: extract, call one function, answer. The tutorial's three,
//! revocation, and the scopes chapter's `/status/`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extractors::{ActiveUser, AnyScope, ClientIp, CurrentUser, ItemsScope, MeScope};
use crate::api::form::FormFields;
use crate::api::token::{Token, revoke_endpoint, token_endpoint};
use crate::store::User;

/// One of the current user's items.
#[derive(Debug, Serialize, ToSchema)]
#[schema(title = "Item")]
pub struct Item {
    /// The item's name.
    pub item_id: &'static str,
    /// The username of its owner.
    pub owner: String,
}

/// JSON rendered ahead of time, sent as it is with `content-type: application/json`.
pub struct RawJson(pub Bytes);

impl IntoResponse for RawJson {
    /// Built directly: `Bytes`' own answer would set `application/octet-stream` first.
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.0));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// `POST /token`: logs in with the OAuth2 password form and returns a bearer token.
#[utoipa::path(
    post,
    path = "/token",
    operation_id = "login_for_access_token_token_post",
    summary = "Login For Access Token",
    request_body(content = crate::api::schemas::LoginFormSchema, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Successful Response", body = Token, headers(
            ("Cache-Control" = String, description = "`no-store`: token responses must not be cached (RFC 6749 §5.1)"),
            ("Pragma" = String, description = "`no-cache`, for HTTP/1.0 caches"),
        )),
        (status = 400, description = "The body cannot be read as a form: invalid multipart data, or too many fields",
            body = crate::api::schemas::HttpError),
        (status = 401, description = "Incorrect username or password", body = crate::api::schemas::HttpError,
            headers(("WWW-Authenticate" = String, description = "The scheme to authenticate with: `Bearer`"))),
        (status = 408, description = "The request body was not received in time", body = crate::api::schemas::HttpError),
        (status = 413, description = "The request body is over the limit (16 KiB)", body = crate::api::schemas::HttpError),
        (status = 422, description = "Validation Error", body = crate::api::schemas::HttpValidationError),
        (status = 429, description = "Too many failed login attempts for this username or client",
            body = crate::api::schemas::HttpError,
            headers(("Retry-After" = u64, description = "Seconds to wait before the next attempt"))),
        (status = 503, description = "The password hashing queue is full, or the request took too long on our side",
            body = crate::api::schemas::HttpError,
            headers(("Retry-After" = u64, description = "Seconds after which a retry is likely to succeed"))),
    )
)]
pub async fn login_for_access_token(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    form: Result<FormFields, ApiError>,
) -> Result<Json<Token>, ApiError> {
    token_endpoint(&state, client, form).await.map(Json)
}

/// `POST /revoke` (RFC 7009, with refresh tokens on): ends a refresh token's family, or
/// refuses an access token everywhere until it expires. 200 with no body, known token or not.
pub async fn revoke_token(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    form: Result<FormFields, ApiError>,
) -> Result<(), ApiError> {
    revoke_endpoint(&state, client, form).await
}

/// `GET /users/me/`: the logged-in user.
#[utoipa::path(
    get,
    path = "/users/me/",
    operation_id = "read_users_me_users_me__get",
    summary = "Read Users Me",
    responses(
        (status = 200, description = "Successful Response", body = User, headers(
            ("Cache-Control" = String, description = "`no-store`: the answer holds account data"),
        )),
        crate::api::schemas::ProtectedRouteErrors,
    ),
    security(("OAuth2PasswordBearer" = []))
)]
pub async fn read_users_me(ActiveUser(user, _): ActiveUser<MeScope>) -> RawJson {
    RawJson(user.json.clone())
}

/// `GET /users/me/items/`: the logged-in user's items.
#[utoipa::path(
    get,
    path = "/users/me/items/",
    operation_id = "read_own_items_users_me_items__get",
    summary = "Read Own Items",
    responses(
        (status = 200, description = "Successful Response", body = [Item], headers(
            ("Cache-Control" = String, description = "`no-store`: the answer holds account data"),
        )),
        crate::api::schemas::ProtectedRouteErrors,
    ),
    security(("OAuth2PasswordBearer" = []))
)]
pub async fn read_own_items(ActiveUser(user, _): ActiveUser<ItemsScope>) -> Json<[Item; 1]> {
    Json([Item { item_id: "Foo", owner: user.username.clone() }])
}

/// `GET /status/` (scopes mode): any valid token of an existing user, disabled or not, as the
/// chapter's `read_system_status`.
pub async fn read_system_status(CurrentUser(_, _): CurrentUser<AnyScope>) -> RawJson {
    RawJson(Bytes::from_static(br#"{"status":"ok"}"#))
}
