//! `ApiError`: every error a client can see, and the one place that turns it into a response.
//!
//! Bodies keep FastAPI's shape, `{"detail": ...}`, so clients written against the tutorial app
//! read our errors unchanged.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::auth::login::{LoginError, RETRY_AFTER_SECS};

/// An error answered to the client. Variants are named for what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 on `POST /token`: wrong password or unknown user (the same bytes for both).
    #[error("incorrect username or password")]
    IncorrectCredentials,
    /// 401: no bearer token was sent.
    #[error("not authenticated")]
    NotAuthenticated,
    /// 401: a bearer token was sent but is not one of ours, or has expired. `challenge` is the
    /// `WWW-Authenticate` value: `Bearer`, or in scopes mode the route's `Bearer scope="..."`.
    #[error("could not validate credentials")]
    InvalidToken {
        /// The `WWW-Authenticate` value.
        challenge: &'static str,
    },
    /// 401 (scopes mode): the token lacks a scope the route needs.
    #[error("not enough permissions")]
    NotEnoughPermissions {
        /// The `WWW-Authenticate` value, naming the scopes the route needs.
        challenge: &'static str,
    },
    /// 400 on `POST /token` in scopes mode: wrong password or unknown user, as FastAPI's scopes
    /// chapter answers it (no `WWW-Authenticate`).
    #[error("incorrect username or password")]
    IncorrectCredentialsAsBadRequest,
    /// 400: the token is valid but its user is disabled.
    #[error("inactive user")]
    InactiveUser,
    /// 422: the login form failed validation, in pydantic's error-list shape.
    #[error("request validation failed")]
    Validation(Vec<FieldError>),
    /// 400: a body we cannot parse as a form (bad multipart, too many fields).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 400 and the connection closes: a request whose framing we refuse to guess at
    /// (no `Host`, both `Content-Length` and `Transfer-Encoding`).
    #[error("bad framing: {0}")]
    BadFraming(&'static str),
    /// 404: no route has this path.
    #[error("not found")]
    NotFound,
    /// 405: the path exists, the method does not; `allow` lists the methods that do.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The `allow` header, e.g. `GET`.
        allow: &'static str,
    },
    /// 408: the client took too long to send its request body.
    #[error("request body timeout")]
    RequestTimeout,
    /// 413: the request body is over the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 429: too many failed logins for this username or client; try again after `retry_after` s.
    #[error("too many failed login attempts")]
    TooManyAttempts {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
    /// 500: a fault of ours (never expected); logged, never detailed to the client.
    #[error("internal error")]
    Internal,
    /// 503: the password hashing queue is full, or the request ran out of time on our side.
    #[error("service busy")]
    Busy {
        /// Seconds after which a retry is likely to succeed.
        retry_after: u64,
    },
    /// 503: the user store's database cannot be reached; the server recovers by itself.
    #[error("database unavailable")]
    Unavailable,
    /// An error of the token or revocation endpoint in RFC 6749 §5.2's shape:
    /// `{"error": code, "error_description": description}`.
    #[error("{code}: {description}")]
    OAuth {
        /// 400 for a bad request or grant; otherwise the status of the error it stands for.
        status: StatusCode,
        /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`, ...
        code: &'static str,
        /// Words for a developer.
        description: String,
        /// `Retry-After`, for refusals that pass.
        retry_after: Option<u64>,
    },
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::IncorrectCredentials => Self::IncorrectCredentials,
            LoginError::Throttled { retry_after } => Self::TooManyAttempts { retry_after },
            LoginError::Busy { retry_after } => Self::Busy { retry_after },
            LoginError::Unavailable { .. } => Self::Unavailable,
        }
    }
}

/// One entry of a 422 `detail` list, as pydantic writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// pydantic's error type, e.g. `missing` or `string_pattern_mismatch`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where the error is: `["body", "<field>"]`.
    pub loc: [&'static str; 2],
    /// The human-readable message.
    pub msg: String,
    /// The offending value (`null` when missing). Never a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Extra context, e.g. the pattern that did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl FieldError {
    /// A required form field that is absent or empty.
    pub fn missing(field: &'static str) -> Self {
        Self {
            kind: "missing",
            loc: ["body", field],
            msg: "Field required".into(),
            input: Some(Value::Null),
            ctx: None,
        }
    }
}

#[derive(Serialize)]
struct Detail<T> {
    detail: T,
}

#[derive(Serialize)]
struct OAuthBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ApiError {
    /// An RFC 6749 §5.2 error with status 400.
    pub fn oauth(code: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth {
            status: StatusCode::BAD_REQUEST,
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    /// The same error in RFC 6749 §5.2's shape, for `/token` under `TOKEN_ERRORS=rfc6749` (and
    /// always for the refresh grant and revocation): bad credentials are `invalid_grant`, a form
    /// that does not validate is `invalid_request` (`unsupported_grant_type` for another grant
    /// type), all with 400; throttling and shedding keep 429 and 503 and their `Retry-After`.
    pub fn into_rfc6749(self) -> Self {
        let status = self.status();
        let keep = |code: &'static str, description: &str, retry_after: Option<u64>| Self::OAuth {
            status,
            code,
            description: description.to_owned(),
            retry_after,
        };
        match self {
            Self::OAuth { .. } => self,
            Self::IncorrectCredentials | Self::IncorrectCredentialsAsBadRequest => {
                Self::oauth("invalid_grant", "Incorrect username or password")
            }
            Self::Validation(errors) => match errors.iter().find(|e| e.kind == "string_pattern_mismatch") {
                Some(_) => Self::oauth("unsupported_grant_type", "Only the password grant is supported"),
                None => {
                    let described: Vec<String> =
                        errors.iter().map(|e| format!("{}: {}", e.loc[1], e.msg)).collect();
                    Self::oauth("invalid_request", described.join("; "))
                }
            },
            Self::BadRequest(message) | Self::BadFraming(message) => Self::oauth("invalid_request", message),
            Self::PayloadTooLarge => keep("invalid_request", "Request body too large", None),
            Self::RequestTimeout => keep("invalid_request", "Request Timeout", None),
            // An HTTP error, not an OAuth one: it keeps its `allow` header and FastAPI's shape.
            Self::MethodNotAllowed { .. } => self,
            Self::TooManyAttempts { retry_after } => keep(
                "temporarily_unavailable",
                "Too many failed attempts, try again later",
                Some(retry_after),
            ),
            Self::Busy { retry_after } => {
                keep("temporarily_unavailable", "Server busy, try again later", Some(retry_after))
            }
            Self::Unavailable => keep(
                "temporarily_unavailable",
                "Database unavailable, try again later",
                Some(RETRY_AFTER_SECS),
            ),
            other @ (Self::NotAuthenticated
            | Self::InvalidToken { .. }
            | Self::NotEnoughPermissions { .. }
            | Self::InactiveUser
            | Self::NotFound
            | Self::Internal) => {
                let code = if matches!(other, Self::Internal) { "server_error" } else { "invalid_request" };
                keep(code, other.message(), None)
            }
        }
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::IncorrectCredentials
            | Self::NotAuthenticated
            | Self::InvalidToken { .. }
            | Self::NotEnoughPermissions { .. } => StatusCode::UNAUTHORIZED,
            Self::InactiveUser
            | Self::IncorrectCredentialsAsBadRequest
            | Self::BadRequest(_)
            | Self::BadFraming(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::OAuth { status, .. } => *status,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            Self::IncorrectCredentials | Self::IncorrectCredentialsAsBadRequest => {
                "Incorrect username or password"
            }
            Self::NotAuthenticated => "Not authenticated",
            Self::InvalidToken { .. } => "Could not validate credentials",
            Self::NotEnoughPermissions { .. } => "Not enough permissions",
            Self::InactiveUser => "Inactive user",
            Self::BadRequest(message) | Self::BadFraming(message) => message,
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed { .. } => "Method Not Allowed",
            Self::RequestTimeout => "Request Timeout",
            Self::PayloadTooLarge => "Request body too large",
            Self::TooManyAttempts { .. } => "Too many failed login attempts, try again later",
            Self::Busy { .. } => "Server busy, try again later",
            Self::Unavailable => "Database unavailable, try again later",
            Self::Internal => "Internal Server Error",
            Self::Validation(_) | Self::OAuth { .. } => "",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if matches!(self, Self::Internal) {
            tracing::error!("internal error answered with 500");
        }
        let mut response = match &self {
            Self::Validation(errors) => (status, json(&Detail { detail: errors })),
            Self::OAuth { code, description, .. } => {
                (status, json(&OAuthBody { error: code, error_description: description }))
            }
            other => (status, json(&Detail { detail: other.message() })),
        }
        .into_response();
        let headers = response.headers_mut();
        match self {
            Self::IncorrectCredentials | Self::NotAuthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::InvalidToken { challenge } | Self::NotEnoughPermissions { challenge } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            Self::TooManyAttempts { retry_after } | Self::Busy { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Self::OAuth { retry_after: Some(retry_after), .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            // RFC 9112 §6.1, §3.2: after a request we refuse to frame, the connection must close.
            Self::BadFraming(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// Compact JSON with `content-type: application/json`, as FastAPI writes it.
fn json<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{\"detail\":\"\"}".to_vec());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The shape of `/token`'s errors (`TOKEN_ERRORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// FastAPI's `{"detail": ...}` and statuses, as the tutorial answers (the default).
    FastApi,
    /// RFC 6749 §5.2's `{"error": ..., "error_description": ...}`, which OAuth client libraries
    /// read (`TOKEN_ERRORS=rfc6749`).
    Rfc6749,
}

impl std::str::FromStr for ErrorStyle {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "fastapi" => Ok(Self::FastApi),
            "rfc6749" => Ok(Self::Rfc6749),
            _ => Err("fastapi or rfc6749"),
        }
    }
}
