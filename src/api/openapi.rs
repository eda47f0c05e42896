//! `ApiDoc`: the OpenAPI 3.1 document, modelled on the one FastAPI writes for the tutorial,
//! plus every answer the server really gives (FastAPI lists only 200 and 422).
//!
//! Names, titles, operation ids and summaries are FastAPI's. What utoipa writes differently:
//! optional fields are `"type": [T, "null"]` where pydantic writes `anyOf: [T, null]` (the same
//! schema in JSON Schema 2020-12), and properties come in name order, not declaration order.

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Operation, Paths};
use utoipa::openapi::schema::{Object, Schema, Type};
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::extractors::{AnyScope, ItemsScope, MeScope, RouteScopes};
use crate::api::routes::Item;
use crate::api::schemas::{HttpError, HttpValidationError, LoginFormSchema, ValidationError};
use crate::api::token::Token;
use crate::auth::scopes::{MAX_SCOPE_FIELD_CHARS, ScopesConfig};
use crate::store::User;

/// The OpenAPI document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OAuth2 JWT Server",
        description = "FastAPI's \"OAuth2 with Password (and hashing), Bearer with JWT tokens\" tutorial, ported to Rust.\n\nLog in with **Authorize** (OAuth2 password flow against `POST /token`); **Try it out** on the protected routes then sends the token as `Authorization: Bearer`.\n\nEvery error answer is JSON: `{\"detail\": \"<message>\"}`, except 422, whose `detail` is a list of validation errors.",
        license(name = "MIT"),
    ),
    paths(
        crate::api::routes::login_for_access_token,
        crate::api::routes::read_users_me,
        crate::api::routes::read_own_items,
    ),
    components(schemas(LoginFormSchema, Token, User, Item, HttpError, HttpValidationError, ValidationError)),
    modifiers(&SecurityAddon, &NoTags, &RequiredHeaders, &PydanticTitles),
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

/// Removes the tag utoipa derives from the handlers' module path (`crate::routes`): FastAPI's
/// operations have no tags, and a tag would group them under a module name in Swagger UI.
struct NoTags;

impl Modify for NoTags {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations_mut(&mut openapi.paths) {
            operation.tags = None;
        }
    }
}

/// Response headers whose value never changes.
const FIXED_HEADERS: [(&str, &str); 3] =
    [("Cache-Control", "no-store"), ("Pragma", "no-cache"), ("WWW-Authenticate", "Bearer")];

/// Marks every declared response header `required` (the server always sends it) and pins the
/// fixed ones to their value, so that a client, or schemathesis' header check, can rely on them.
/// utoipa's `Header` has no `required` field: it goes in through `extensions`, which are written
/// flat into the header object (`"required": true`, as the OpenAPI Header Object spells it).
struct RequiredHeaders;

impl Modify for RequiredHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations_mut(&mut openapi.paths) {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else { continue };
                for (name, header) in response.headers.iter_mut() {
                    let RefOr::T(header) = header else { continue };
                    header
                        .extensions
                        .get_or_insert_with(Default::default)
                        .insert("required".into(), true.into());
                    if let Some((_, value)) = FIXED_HEADERS.iter().find(|(fixed, _)| fixed == name) {
                        let exact = Object::builder().schema_type(Type::String).enum_values(Some([*value]));
                        header.schema = Some(RefOr::T(Schema::Object(exact.build())));
                    }
                }
            }
        }
    }
}

/// Every operation of every path.
fn operations_mut(paths: &mut Paths) -> impl Iterator<Item = &mut Operation> {
    paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// Gives every property the title pydantic would (`access_token` → `Access Token`, and
/// FastAPI's own titles for `ValidationError`): utoipa has no `title` for struct fields.
struct PydanticTitles;

impl Modify for PydanticTitles {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        for (schema_name, schema) in components.schemas.iter_mut() {
            let RefOr::T(Schema::Object(object)) = schema else { continue };
            for (field, property) in object.properties.iter_mut() {
                let title = match (schema_name.as_str(), field.as_str()) {
                    ("ValidationError", "loc") => "Location".to_owned(),
                    ("ValidationError", "msg") => "Message".to_owned(),
                    ("ValidationError", "type") => "Error Type".to_owned(),
                    ("ValidationError", "ctx") => "Context".to_owned(),
                    _ => pydantic_title(field),
                };
                match property {
                    RefOr::T(Schema::Object(object)) => object.title = Some(title),
                    RefOr::T(Schema::Array(array)) => array.title = Some(title),
                    _ => {}
                }
            }
        }
    }
}

/// pydantic's default field title: `client_id` → `Client Id`.
fn pydantic_title(field: &str) -> String {
    field
        .split('_')
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the served document describes beyond the tutorial's three paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocOptions<'a> {
    /// Refresh tokens are on: the refresh grant on `/token`, `/revoke`, and `refreshUrl`.
    pub refresh_tokens: bool,
    /// A key set is configured: `/.well-known/jwks.json`.
    pub jwks: bool,
    /// `/token` answers errors in RFC 6749's shape.
    pub rfc6749_errors: bool,
    /// Scopes mode: the scopes in the password flow, each route's in its `security`, `/status/`.
    pub scopes: Option<&'a ScopesConfig>,
}

/// The document as served for these options, as compact JSON. With none of them it is
/// `ApiDoc`'s, byte for byte; each option amends it where the server answers differently.
pub fn document(options: DocOptions) -> Vec<u8> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    // The token answer's extra fields appear only where the server sends them.
    if let Some(token) =
        doc.pointer_mut("/components/schemas/Token/properties").and_then(Value::as_object_mut)
    {
        token.retain(|name, _| match name.as_str() {
            "expires_in" | "refresh_token" => options.refresh_tokens,
            "scope" => options.scopes.is_some(),
            _ => true,
        });
    }
    if options.refresh_tokens {
        describe_refresh_tokens(&mut doc);
    }
    if let Some(scopes) = options.scopes {
        describe_scopes(&mut doc, scopes, options.refresh_tokens);
    }
    if options.rfc6749_errors {
        describe_rfc6749_errors(&mut doc);
    }
    if options.jwks {
        describe_jwks(&mut doc);
    }
    serde_json::to_vec(&doc).expect("the OpenAPI document serialises")
}

/// RFC 6749 §5.2's error body, with the status codes of an OAuth2 client library's eyes.
fn oauth_error_schema() -> Value {
    json!({
        "title": "OAuthError",
        "type": "object",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"title": "Error", "type": "string", "description": "`invalid_request`, `invalid_grant`, `unsupported_grant_type`, `temporarily_unavailable` or `server_error` (RFC 6749 §5.2)"},
            "error_description": {"title": "Error Description", "type": "string", "description": "Words for a developer"}
        }
    })
}

fn describe_refresh_tokens(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["OAuthError"] = oauth_error_schema();
    let form = &mut schemas["Body_login_for_access_token_token_post"];
    form["properties"]["grant_type"]["pattern"] = json!("^(password|refresh_token)$");
    form["properties"]["refresh_token"] = json!({
        "title": "Refresh Token", "type": ["string", "null"], "format": "password",
        "description": "With `grant_type=refresh_token`: the refresh token to exchange (RFC 6749 §6); it stops working, and presenting it again ends its whole family"
    });
    form["required"] = json!([]);
    form["description"] = json!(
        "The password grant needs `username` and `password`; the refresh grant needs `grant_type=refresh_token` and `refresh_token`."
    );
    doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]["refreshUrl"] =
        json!("token");
    let token = &mut doc["paths"]["/token"]["post"];
    token["description"] = json!(
        "The password grant (the tutorial's form) or, with `grant_type=refresh_token`, the refresh grant (RFC 6749 §6): both answer an access token and a new refresh token. The refresh grant's errors are RFC 6749's: 400 `invalid_grant` for a refresh token that is unknown, expired, revoked or reused (reuse ends its family), 400 `invalid_request` or `unsupported_grant_type`."
    );
    token["responses"]["400"]["content"]["application/json"]["schema"] = json!({"anyOf": [{"$ref": "#/components/schemas/HTTPError"}, {"$ref": "#/components/schemas/OAuthError"}]});
    let form_schema = |properties: Value, required: Value| json!({"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": properties, "required": required}}}, "required": true});
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}});
    doc["paths"]["/revoke"] = json!({"post": {
        "summary": "Revoke Token",
        "description": "RFC 7009: a refresh token ends with its whole family; an access token is refused everywhere until it would have expired. The answer is the same whether or not the token was known.",
        "operationId": "revoke_token_revoke_post",
        "requestBody": form_schema(
            json!({
                "token": {"title": "Token", "type": "string", "format": "password"},
                "token_type_hint": {"title": "Token Type Hint", "type": "string", "enum": ["access_token", "refresh_token"], "description": "Where to look first; both kinds are looked for"}
            }),
            json!(["token"]),
        ),
        "responses": {
            "200": {"description": "Revoked, or not a token of ours (empty body)"},
            "400": error("`invalid_request`: no `token`, or a parameter sent twice"),
            "408": error("The request body was not received in time"),
            "413": error("The request body is over the limit (16 KiB)"),
            "503": {"description": "The database is unavailable, or the request took too long on our side", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}, "headers": {"Retry-After": {"description": "Seconds after which a retry may succeed", "required": true, "schema": {"type": "integer"}}}}
        }
    }});
}

/// The chapter's document: the scopes in the password flow (Swagger UI's checkboxes), each
/// route's scopes in its `security` (FastAPI's order), `GET /status/`, and `/token`'s 400 for
/// bad credentials.
fn describe_scopes(doc: &mut Value, scopes: &ScopesConfig, refresh_tokens: bool) {
    let flow = &mut doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
    flow["scopes"] = scopes.iter().map(|(name, description)| (name.to_owned(), json!(description))).collect();
    let schemas = &mut doc["components"]["schemas"];
    schemas["Token"]["properties"]["scope"]["type"] = json!("string");
    let field = &mut schemas["Body_login_for_access_token_token_post"]["properties"]["scope"];
    field["maxLength"] = json!(MAX_SCOPE_FIELD_CHARS);
    field["description"] = json!("The scopes asked for, separated by spaces");
    let token = &mut doc["paths"]["/token"]["post"];
    let responses = &mut token["responses"];
    responses["400"]["description"] = json!(
        "Incorrect username or password; Inactive user (a disabled account gets no token); or the body cannot be read as a form"
    );
    if let Some(responses) = responses.as_object_mut() {
        responses.shift_remove("401");
    }
    let granted = "In scopes mode the token carries, in its `scope` claim, the scopes asked for in `scope` that are configured and that the user may have; when that is fewer than asked, the answer's `scope` says which (RFC 6749 §3.3).";
    let narrowing =
        " A refresh may ask for fewer scopes than the login was granted, never more (400 `invalid_scope`).";
    let description = match token["description"].as_str() {
        Some(before) => format!("{before}\n\n{granted}{narrowing}"),
        None => granted.to_owned(),
    };
    token["description"] =
        json!(if refresh_tokens { description } else { description.replace(narrowing, "") });
    for (path, needed, challenge) in [
        ("/users/me/", MeScope::SCOPES, MeScope::CHALLENGE),
        ("/users/me/items/", ItemsScope::SCOPES, ItemsScope::CHALLENGE),
    ] {
        let operation = &mut doc["paths"][path]["get"];
        operation["security"] = json!([{"OAuth2PasswordBearer": needed}]);
        operation["responses"]["401"] = unauthorized(
            "Not authenticated (no bearer token), could not validate credentials, or Not enough permissions (the token lacks a scope this route needs)",
            challenge,
        );
    }
    let status = json!({"get": {
        "summary": "Read System Status",
        "operationId": "read_system_status_status__get",
        "description": "Any valid token, whatever its scopes, of any user (even a disabled one).",
        "responses": {
            "200": {"description": "Successful Response", "content": {"application/json": {"schema": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}},
            "401": unauthorized("Not authenticated (no bearer token), or could not validate credentials", AnyScope::CHALLENGE)
        },
        "security": [{"OAuth2PasswordBearer": []}]
    }});
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.insert("/status/".into(), status);
    }
}

/// A 401 answer whose `WWW-Authenticate` is `Bearer` (no token) or the route's challenge.
fn unauthorized(description: &str, challenge: &str) -> Value {
    json!({
        "description": description,
        "headers": {"WWW-Authenticate": if challenge == "Bearer" {
            json!({"description": "The scheme to authenticate with: `Bearer`", "required": true, "schema": {"type": "string", "enum": ["Bearer"]}})
        } else {
            json!({
                "description": "`Bearer` without a token; otherwise the scopes this route needs, as FastAPI's `SecurityScopes` writes them",
                "required": true,
                "schema": {"type": "string", "enum": ["Bearer", challenge]}
            })
        }},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}}
    })
}

fn describe_rfc6749_errors(doc: &mut Value) {
    doc["components"]["schemas"]["OAuthError"] = oauth_error_schema();
    let oauth = json!({"$ref": "#/components/schemas/OAuthError"});
    let Some(responses) = doc.pointer_mut("/paths/~1token/post/responses").and_then(Value::as_object_mut)
    else {
        return;
    };
    responses.shift_remove("401");
    responses.shift_remove("422");
    responses.insert(
        "400".into(),
        json!({"description": "`invalid_grant` (wrong username or password, or a refresh token that no longer works), `invalid_request` (a form that does not validate), `unsupported_grant_type`", "content": {"application/json": {"schema": oauth}}}),
    );
    for (status, response) in responses.iter_mut() {
        if status.starts_with('4') || status.starts_with('5') {
            response["content"]["application/json"]["schema"] = oauth.clone();
        }
    }
}

fn describe_jwks(doc: &mut Value) {
    doc["paths"]["/.well-known/jwks.json"] = json!({"get": {
        "summary": "Signing Keys",
        "description": "The public keys that check our access tokens (RFC 7517 key set): every asymmetric key of `JWT_KEYS_FILE`, never a symmetric one. A token's `kid` names its key.",
        "operationId": "jwks_well_known_jwks_json_get",
        "responses": {"200": {
            "description": "The key set",
            "headers": {"Cache-Control": {"description": "`public, max-age=300`: resource servers may keep the set five minutes", "required": true, "schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": {"type": "object", "required": ["kty", "kid", "alg", "use"]}}}}}}
        }}
    }});
}
