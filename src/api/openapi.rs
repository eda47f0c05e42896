//! `ApiDoc`: the OpenAPI 3.1 document, modelled on the one FastAPI writes for the tutorial,
//! plus every answer the server really gives (FastAPI lists only 200 and 422).
//!
//! Names, titles, operation ids and summaries are FastAPI's. What utoipa writes differently:
//! optional fields are `"type": [T, "null"]` where pydantic writes `anyOf: [T, null]` (the same
//! schema in JSON Schema 2020-12), and properties come in name order, not declaration order.

use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Operation, Paths};
use utoipa::openapi::schema::{Object, Schema, Type};
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::routes::{Item, Token};
use crate::api::schemas::{HttpError, HttpValidationError, LoginFormSchema, ValidationError};
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
