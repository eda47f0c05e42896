//! `ApiDoc`: the OpenAPI 3.1 document, modelled on the one FastAPI writes for the tutorial,
//! plus every answer the server really gives (FastAPI lists only 200 and 422).

use serde_json::Value;
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes::{Item, Token};
use crate::users::User;

/// The OpenAPI document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OAuth2 JWT Server",
        description = "FastAPI's \"OAuth2 with Password (and hashing), Bearer with JWT tokens\" tutorial, ported to Rust.\n\nLog in with **Authorize** (OAuth2 password flow against `POST /token`); **Try it out** on the protected routes then sends the token as `Authorization: Bearer`.",
        license(name = "MIT"),
    ),
    paths(
        crate::routes::login_for_access_token,
        crate::routes::read_users_me,
        crate::routes::read_own_items,
    ),
    components(schemas(LoginFormSchema, Token, User, Item, HttpError, HttpValidationError, ValidationError)),
    modifiers(&SecurityAddon),
)]
pub struct ApiDoc;

/// Registers FastAPI's `OAuth2PasswordBearer` scheme: password flow, `tokenUrl: "token"`.
struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let flow = Flow::Password(Password::new("token", Scopes::new()));
        components.add_security_scheme("OAuth2PasswordBearer", SecurityScheme::OAuth2(OAuth2::new([flow])));
    }
}

/// The login form as documented (the server reads it with `form::LoginForm`).
#[derive(ToSchema)]
#[schema(as = Body_login_for_access_token_token_post, title = "Body_login_for_access_token_token_post")]
#[allow(dead_code)]
pub struct LoginFormSchema {
    /// Must be `password` when present.
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
pub struct HttpError {
    /// What went wrong, in words.
    detail: String,
}

/// A 422 answer: pydantic's list of validation errors.
#[derive(ToSchema)]
#[schema(as = HTTPValidationError, title = "HTTPValidationError")]
#[allow(dead_code)]
pub struct HttpValidationError {
    detail: Vec<ValidationError>,
}

/// One validation error.
#[derive(ToSchema)]
#[schema(title = "ValidationError")]
#[allow(dead_code)]
pub struct ValidationError {
    /// Where: `["body", "<field>"]`.
    loc: Vec<LocationItem>,
    /// The message.
    msg: String,
    /// The error type, e.g. `missing`.
    r#type: String,
    /// The offending input.
    input: Option<Value>,
    /// Extra context.
    ctx: Option<serde_json::Map<String, Value>>,
}

/// A path element of `loc`: a field name or a list index.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum LocationItem {
    /// A field name.
    Name(String),
    /// A list index.
    Index(i64),
}
