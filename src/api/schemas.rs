//! Schemas that exist only for the OpenAPI document: the login form as FastAPI documents it,
//! and the shapes of the error answers.

use serde_json::Value;
use utoipa::openapi::schema::{AnyOf, Array, Object, Schema, Type};
use utoipa::{IntoResponses, ToSchema};

// The login form as documented, FastAPI's `OAuth2PasswordRequestForm` (the server reads it
// with `form::LoginForm`).
#[derive(ToSchema)]
#[schema(as = Body_login_for_access_token_token_post, title = "Body_login_for_access_token_token_post")]
#[allow(dead_code)]
pub(crate) struct LoginFormSchema {
    #[schema(pattern = "^password$")]
    grant_type: Option<String>,
    username: String,
    #[schema(format = Password)]
    password: String,
    #[schema(default = "")]
    #[serde(default)]
    scope: String,
    client_id: Option<String>,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// Every error other than 422: `{"detail": "<message>"}`.
#[derive(ToSchema)]
#[schema(as = HTTPError, title = "HTTPError")]
#[allow(dead_code)]
pub(crate) struct HttpError {
    /// What went wrong, in words.
    detail: String,
}

/// How the protected routes refuse a request (the `ActiveUser` extractor's answers).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ProtectedRouteErrors {
    /// Inactive user: the token is valid but the account is disabled
    #[response(status = 400)]
    InactiveUser(HttpError),
    /// Not authenticated (no bearer token), or could not validate credentials
    #[response(
        status = 401,
        headers(("WWW-Authenticate" = String, description = "The scheme to authenticate with: `Bearer`"))
    )]
    Unauthorized(HttpError),
}

// A 422 answer: pydantic's list of validation errors (`detail` is optional in FastAPI's schema,
// though always sent).
#[derive(ToSchema)]
#[schema(as = HTTPValidationError, title = "HTTPValidationError")]
#[allow(dead_code)]
pub(crate) struct HttpValidationError {
    #[schema(required = false)]
    detail: Vec<ValidationError>,
}

// One validation error, as FastAPI documents it.
#[derive(ToSchema)]
#[schema(title = "ValidationError")]
#[allow(dead_code)]
pub(crate) struct ValidationError {
    // Where: `["body", "<field>"]`.
    #[schema(schema_with = location)]
    loc: Vec<Value>,
    msg: String,
    r#type: String,
    // The offending input (never a password); absent or null when there is none.
    #[schema(required = false)]
    input: Value,
    // Extra context, e.g. the pattern that did not match.
    #[schema(value_type = Object, required = false)]
    ctx: serde_json::Map<String, Value>,
}

/// `loc`: a list of field names and list indexes.
fn location() -> Array {
    let name_or_index =
        AnyOf::builder().item(Object::with_type(Type::String)).item(Object::with_type(Type::Integer)).build();
    Array::new(Schema::AnyOf(name_or_index))
}
