//! `LoginForm`: the tutorial's `OAuth2PasswordRequestForm`, read from a urlencoded or
//! multipart body with FastAPI's rules and its exact 422 bodies; and the other requests of the
//! token and revocation endpoints (`TokenRequest`, `RevokeRequest`), read with RFC 6749's.
//!
//! FastAPI reads any other content type as an empty form (so a JSON body gets "Field required"
//! errors, not 415), and treats an empty value as an absent one. Where we are stricter (a
//! repeated field, an overlong password, too many fields, a body over the limit) the answer is
//! still a JSON error.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::api::AppState;
use crate::api::error::{ApiError, FieldError};

/// The most form fields a login body may carry (Starlette allows 1000).
pub const MAX_FIELDS: usize = 50;

/// The longest password accepted, in characters: room for long passphrases, not for abuse.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// The OAuth2 password-grant form (RFC 6749 §4.3.2), as FastAPI's `OAuth2PasswordRequestForm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginForm {
    /// `password` when given (it is optional, as in FastAPI).
    pub grant_type: Option<String>,
    /// The login name.
    pub username: String,
    /// The password. Never logged or echoed.
    pub password: String,
    /// Space-separated scopes (unused by this API, accepted).
    pub scope: String,
    /// Accepted and unused, as in the tutorial.
    pub client_id: Option<String>,
    /// Accepted and unused, as in the tutorial.
    pub client_secret: Option<String>,
}

/// A value sent for a form field: text, or (in multipart bodies) an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// A plain field.
    Text(String),
    /// A file part, which can never be a valid value for these string fields.
    File,
}

const KNOWN: [&str; 6] = ["grant_type", "username", "password", "scope", "client_id", "client_secret"];

impl LoginForm {
    /// Validates the fields in FastAPI's way: empty means absent, `grant_type` must be
    /// `password`, `username` and `password` are required; errors come in the order
    /// grant_type, username, password. A known field sent twice is refused (RFC 6749 §3.2)
    /// instead of FastAPI's last-one-wins.
    pub fn from_fields(fields: impl IntoIterator<Item = (String, FieldValue)>) -> Result<Self, ApiError> {
        let mut values: [Option<FieldValue>; 6] = Default::default();
        let mut repeated = [false; 6];
        for (name, value) in fields {
            if let Some(index) = KNOWN.iter().position(|known| *known == name) {
                repeated[index] |= values[index].is_some();
                values[index] = Some(value);
            }
        }
        let mut errors = Vec::new();
        let [grant_type, username, password, scope, client_id, client_secret] = values;
        for (index, name) in KNOWN.iter().enumerate() {
            if repeated[index] {
                errors.push(repeated_field(name));
            }
        }
        let grant_type = text(grant_type, "grant_type", &mut errors);
        if let Some(grant) = &grant_type
            && grant != "password"
        {
            errors.push(pattern_mismatch(grant));
        }
        let username = required(text(username, "username", &mut errors), "username", &mut errors);
        let password = required(text(password, "password", &mut errors), "password", &mut errors);
        if password.chars().count() > MAX_PASSWORD_CHARS {
            errors.push(too_long("password", MAX_PASSWORD_CHARS));
        }
        let scope = text(scope, "scope", &mut errors).unwrap_or_default();
        let client_id = text(client_id, "client_id", &mut errors);
        let client_secret = text(client_secret, "client_secret", &mut errors);
        if !errors.is_empty() {
            errors.sort_by_key(|error| KNOWN.iter().position(|known| *known == error.loc[1]));
            return Err(ApiError::Validation(errors));
        }
        Ok(Self { grant_type, username, password, scope, client_id, client_secret })
    }
}

/// A text value, with "" as absent; a file where text belongs is an error.
fn text(value: Option<FieldValue>, field: &'static str, errors: &mut Vec<FieldError>) -> Option<String> {
    match value? {
        FieldValue::Text(text) if text.is_empty() => None,
        FieldValue::Text(text) => Some(text),
        FieldValue::File => {
            errors.push(FieldError {
                kind: "string_type",
                loc: ["body", field],
                msg: "Input should be a valid string".into(),
                input: None,
                ctx: None,
            });
            None
        }
    }
}

fn required(value: Option<String>, field: &'static str, errors: &mut Vec<FieldError>) -> String {
    value.unwrap_or_else(|| {
        if !errors.iter().any(|error| error.loc[1] == field) {
            errors.push(FieldError::missing(field));
        }
        String::new()
    })
}

fn pattern_mismatch(value: &str) -> FieldError {
    FieldError {
        kind: "string_pattern_mismatch",
        loc: ["body", "grant_type"],
        msg: "String should match pattern '^password$'".into(),
        input: Some(Value::String(value.to_owned())),
        ctx: Some(json!({"pattern": "^password$"})),
    }
}

fn repeated_field(field: &'static str) -> FieldError {
    FieldError {
        kind: "repeated_field",
        loc: ["body", field],
        msg: "Field must not be sent more than once".into(),
        input: None,
        ctx: None,
    }
}

fn too_long(field: &'static str, max: usize) -> FieldError {
    FieldError {
        kind: "string_too_long",
        loc: ["body", field],
        msg: format!("String should have at most {max} characters"),
        input: None,
        ctx: Some(json!({"max_length": max})),
    }
}

/// What `POST /token` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    /// The password grant (RFC 6749 §4.3), the tutorial's form.
    Password(LoginForm),
    /// The refresh grant (RFC 6749 §6): a refresh token, and optionally fewer scopes.
    Refresh {
        /// The token to exchange. Never logged or echoed.
        refresh_token: String,
        /// Space-separated scopes, when the client asks for fewer.
        scope: Option<String>,
    },
}

impl TokenRequest {
    /// Tells the grants apart by `grant_type`. Without refresh tokens, every request is a
    /// password request as in the tutorial (another `grant_type` fails FastAPI's pattern);
    /// with them, `refresh_token` selects the refresh grant and any other value but `password`
    /// is RFC 6749's `unsupported_grant_type`.
    pub fn from_fields(fields: Vec<(String, FieldValue)>, refresh_tokens: bool) -> Result<Self, ApiError> {
        if refresh_tokens {
            let mut grants = fields.iter().filter(|(name, _)| name == "grant_type").map(|(_, value)| value);
            if let (Some(FieldValue::Text(grant)), None) = (grants.next(), grants.next()) {
                match grant.as_str() {
                    "refresh_token" => return refresh_request(fields),
                    "" | "password" => {}
                    _ => {
                        return Err(ApiError::oauth(
                            "unsupported_grant_type",
                            "Supported grant types: password, refresh_token",
                        ));
                    }
                }
            }
        }
        LoginForm::from_fields(fields).map(Self::Password)
    }
}

fn refresh_request(fields: Vec<(String, FieldValue)>) -> Result<TokenRequest, ApiError> {
    let [refresh_token, scope] =
        single_texts(fields, ["refresh_token", "scope"], &["grant_type", "client_id", "client_secret"])?;
    let refresh_token =
        refresh_token.ok_or_else(|| ApiError::oauth("invalid_request", "Missing refresh_token"))?;
    Ok(TokenRequest::Refresh { refresh_token, scope })
}

/// A token revocation request (RFC 7009 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeRequest {
    /// The token to revoke. Never logged or echoed.
    pub token: String,
    /// `access_token` or `refresh_token`: where to look first (RFC 7009 §2.1).
    pub token_type_hint: Option<String>,
}

impl RevokeRequest {
    /// Reads `token` and `token_type_hint` (RFC 6749's rules: no parameter twice).
    pub fn from_fields(fields: Vec<(String, FieldValue)>) -> Result<Self, ApiError> {
        let [token, token_type_hint] =
            single_texts(fields, ["token", "token_type_hint"], &["client_id", "client_secret"])?;
        let token = token.ok_or_else(|| ApiError::oauth("invalid_request", "Missing token"))?;
        Ok(Self { token, token_type_hint })
    }
}

/// The text values of `wanted`, empty ones as absent, refusing (RFC 6749 §3.2) any of
/// `wanted` or `also_known` sent twice and a file where text belongs; other fields are ignored.
fn single_texts<const N: usize>(
    fields: Vec<(String, FieldValue)>,
    wanted: [&str; N],
    also_known: &[&str],
) -> Result<[Option<String>; N], ApiError> {
    let mut values = [const { None }; N];
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in fields {
        let wanted_at = wanted.iter().position(|wanted| *wanted == name);
        if wanted_at.is_none() && !also_known.contains(&name.as_str()) {
            continue;
        }
        if seen.contains(&name) {
            return Err(ApiError::oauth("invalid_request", format!("Repeated parameter: {name}")));
        }
        let FieldValue::Text(text) = value else {
            return Err(ApiError::oauth("invalid_request", format!("Parameter {name} must be text")));
        };
        if let Some(index) = wanted_at {
            values[index] = Some(text).filter(|text| !text.is_empty());
        }
        seen.push(name);
    }
    Ok(values)
}

/// The fields of a form body (urlencoded or multipart), read within the size and time limits.
pub struct FormFields(pub Vec<(String, FieldValue)>);

impl FromRequest<AppState> for FormFields {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = &state.limits;
        let declared =
            request.headers().get(CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let kind = FormKind::of(&request);
        // FastAPI parses any other body as an empty form.
        if matches!(kind, FormKind::Other) {
            return Ok(Self(Vec::new()));
        }
        // Refused before the body is read (nor a `100 Continue` sent), as Starlette does.
        if matches!(kind, FormKind::Multipart) && content_type_parameter(&request, "boundary").is_none() {
            return Err(ApiError::BadRequest("Missing boundary in multipart."));
        }
        let (parts, body) = request.into_parts();
        let body = timeout(limits.body_timeout, axum::body::to_bytes(body, limits.max_body_bytes))
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(body_error)?;
        let fields = match kind {
            FormKind::Multipart if !body.is_empty() => {
                parse_multipart(Request::from_parts(parts, Body::from(body)), state).await?
            }
            FormKind::Multipart | FormKind::Other => Vec::new(),
            FormKind::Urlencoded => parse_urlencoded(&body)?,
        };
        Ok(Self(fields))
    }
}

enum FormKind {
    Urlencoded,
    Multipart,
    Other,
}

impl FormKind {
    /// The media type of the first `Content-Type`, without parameters, in any case.
    fn of(request: &Request) -> Self {
        let Some(value) = request.headers().get(CONTENT_TYPE) else { return Self::Other };
        let essence = value.as_bytes().split(|&b| b == b';').next().unwrap_or_default();
        let essence = essence.trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            Self::Urlencoded
        } else if essence.eq_ignore_ascii_case(b"multipart/form-data") {
            Self::Multipart
        } else {
            Self::Other
        }
    }
}

fn body_error(error: axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(inner) = source {
        if inner.is::<http_body_util::LengthLimitError>() {
            return ApiError::PayloadTooLarge;
        }
        source = inner.source();
    }
    ApiError::BadRequest("There was an error parsing the body")
}

/// Splits `a=b&c=d` as python-multipart does and decodes names and values as Starlette does.
pub fn parse_urlencoded(body: &[u8]) -> Result<Vec<(String, FieldValue)>, ApiError> {
    let mut fields = Vec::new();
    for chunk in body.split(|&b| b == b'&').filter(|chunk| !chunk.is_empty()) {
        if fields.len() == MAX_FIELDS {
            return Err(too_many_fields());
        }
        let (name, value) = match chunk.iter().position(|&b| b == b'=') {
            Some(eq) => (&chunk[..eq], &chunk[eq + 1..]),
            None => (chunk, &[][..]),
        };
        fields.push((unquote_plus(name), FieldValue::Text(unquote_plus(value))));
    }
    Ok(fields)
}

fn too_many_fields() -> ApiError {
    ApiError::BadRequest("Too many fields. Maximum number of fields is 50.")
}

/// Python's `unquote_plus(raw.decode("latin-1"))`: `+` is a space; runs of ASCII are
/// percent-decoded and read as UTF-8 (invalid bytes become U+FFFD); other bytes are Latin-1.
fn unquote_plus(raw: &[u8]) -> String {
    unquote_with(raw, true)
}

/// Python's `unquote`: as `unquote_plus`, but `+` stays a plus.
pub fn unquote(raw: &[u8]) -> String {
    unquote_with(raw, false)
}

fn unquote_with(raw: &[u8], plus_is_space: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        let ascii_len = rest.iter().position(|b| !b.is_ascii()).unwrap_or(rest.len());
        if ascii_len == 0 {
            out.push(char::from(rest[0]));
            rest = &rest[1..];
            continue;
        }
        let (ascii, tail) = rest.split_at(ascii_len);
        out.push_str(&String::from_utf8_lossy(&percent_decode(ascii, plus_is_space)));
        rest = tail;
    }
    out
}

/// `%XX` with two hex digits becomes that byte; anything else (`%zz`, a lone `%`) stays as is.
fn percent_decode(ascii: &[u8], plus_is_space: bool) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(ascii.len());
    let mut i = 0;
    while i < ascii.len() {
        let byte = match ascii[i] {
            b'+' if plus_is_space => b' ',
            b'%' => match (ascii.get(i + 1).and_then(|&b| hex(b)), ascii.get(i + 2).and_then(|&b| hex(b))) {
                (Some(high), Some(low)) => {
                    i += 2;
                    (high * 16 + low) as u8
                }
                _ => b'%',
            },
            other => other,
        };
        out.push(byte);
        i += 1;
    }
    out
}

/// Reads a multipart body already in memory, as Starlette does: a part with a `filename` is a
/// file (but an empty one with an empty name counts as absent); values are decoded with the
/// form's `charset` (UTF-8 by default), falling back to Latin-1 when they do not decode; a part
/// without a name is refused.
async fn parse_multipart(request: Request, state: &AppState) -> Result<Vec<(String, FieldValue)>, ApiError> {
    let utf8 = declares_utf8(&request);
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|_| ApiError::BadRequest("Missing boundary in multipart."))?;
    let mut fields = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|_| invalid_multipart())? {
        if fields.len() == MAX_FIELDS {
            return Err(too_many_fields());
        }
        let Some(name) = field.name().map(str::to_owned) else {
            return Err(ApiError::BadRequest(
                "The Content-Disposition header field \"name\" must be provided.",
            ));
        };
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|_| invalid_multipart())?;
        let value = match file_name {
            Some(file_name) if !(file_name.is_empty() && bytes.is_empty()) => FieldValue::File,
            _ => FieldValue::Text(decode_text(&bytes, utf8)),
        };
        fields.push((name, value));
    }
    Ok(fields)
}

/// True unless the form's content type names a charset other than UTF-8.
fn declares_utf8(request: &Request) -> bool {
    content_type_parameter(request, "charset")
        .is_none_or(|charset| charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8"))
}

/// A parameter of the first `Content-Type` header (`; name=value`, quotes removed).
fn content_type_parameter<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    let content_type = request.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    content_type.split(';').skip(1).find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().trim_matches('"'))
    })
}

/// UTF-8 when asked for and valid, otherwise Latin-1 (which decodes any bytes).
fn decode_text(bytes: &[u8], utf8: bool) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if utf8 => text.to_owned(),
        _ => bytes.iter().map(|&byte| char::from(byte)).collect(),
    }
}

fn invalid_multipart() -> ApiError {
    ApiError::BadRequest("Invalid multipart data.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, value: &str) -> (String, FieldValue) {
        (name.to_owned(), FieldValue::Text(value.to_owned()))
    }

    #[test]
    fn values_decode_as_pythons_unquote_plus_of_latin1() {
        assert_eq!(unquote_plus(b"a+b%20c"), "a b c");
        assert_eq!(unquote_plus(b"%2B%zz%"), "+%zz%");
        assert_eq!(unquote_plus(b"%c3%a9"), "\u{e9}");
        assert_eq!(unquote_plus(b"%ff"), "\u{fffd}");
        assert_eq!(unquote_plus(b"\xc3\xa9"), "\u{c3}\u{a9}");
        assert_eq!(unquote(b"a+b%2F"), "a+b/");
    }

    #[test]
    fn urlencoded_bodies_split_on_ampersands_only_and_skip_empty_chunks() {
        let fields = parse_urlencoded(b"&username=a=b&&password&x;y=1&").unwrap();
        assert_eq!(fields, vec![text("username", "a=b"), text("password", ""), text("x;y", "1")]);
    }

    #[test]
    fn the_field_cap_matches_its_message() {
        let body = "a=1&".repeat(MAX_FIELDS);
        assert!(parse_urlencoded(body.as_bytes()).is_ok());
        let over = format!("{body}b=2");
        match parse_urlencoded(over.as_bytes()) {
            Err(ApiError::BadRequest(message)) => assert!(message.ends_with(&format!(" is {MAX_FIELDS}."))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_come_in_declaration_order_whatever_the_body_order() {
        let Err(ApiError::Validation(errors)) =
            LoginForm::from_fields([text("password", ""), text("grant_type", "implicit")])
        else {
            panic!("expected a validation error")
        };
        let kinds: Vec<_> = errors.iter().map(|error| (error.kind, error.loc[1])).collect();
        assert_eq!(
            kinds,
            [("string_pattern_mismatch", "grant_type"), ("missing", "username"), ("missing", "password")]
        );
    }

    #[test]
    fn empty_optional_fields_count_as_absent() {
        let form = LoginForm::from_fields([
            text("grant_type", ""),
            text("username", "johndoe"),
            text("password", "secret"),
            text("client_id", ""),
        ])
        .unwrap();
        assert_eq!((form.grant_type, form.client_id, form.scope.as_str()), (None, None, ""));
    }
}
