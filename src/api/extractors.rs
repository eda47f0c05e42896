//! `CurrentUser` and `ActiveUser`: the tutorial's `get_current_user` and
//! `get_current_active_user` dependencies, as extractors in the handlers' signatures, with the
//! scopes their route needs in scopes mode (`CurrentUser<MeScope>`, FastAPI's
//! `Security(get_current_user, scopes=["me"])`); and `ClientIp`, who is logging in.

use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::api::AppState;
use crate::api::client_ip::to_canonical;
use crate::api::error::ApiError;
use crate::auth::jwt::ScopeClaim;
use crate::auth::scopes::has_scopes;
use crate::store::UserInDb;

/// The scopes a route needs in scopes mode, FastAPI's `Security(..., scopes=[...])`: its own
/// and its dependencies', in the order FastAPI collects them (the chapter's).
pub trait RouteScopes {
    /// The scopes the token must have.
    const SCOPES: &'static [&'static str];
    /// `WWW-Authenticate` for the route's 401s about the token in scopes mode: FastAPI's
    /// `Bearer scope="..."`, or `Bearer` when the route needs none.
    const CHALLENGE: &'static str;
}

/// A route that needs a valid token and no scope (the chapter's `GET /status/`).
pub struct AnyScope;

impl RouteScopes for AnyScope {
    const SCOPES: &'static [&'static str] = &[];
    const CHALLENGE: &'static str = "Bearer";
}

/// `GET /users/me/`: `me`.
pub struct MeScope;

impl RouteScopes for MeScope {
    const SCOPES: &'static [&'static str] = &["me"];
    const CHALLENGE: &'static str = r#"Bearer scope="me""#;
}

/// `GET /users/me/items/`: `items`, and `me` for the user it reads.
pub struct ItemsScope;

impl RouteScopes for ItemsScope {
    const SCOPES: &'static [&'static str] = &["items", "me"];
    const CHALLENGE: &'static str = r#"Bearer scope="items me""#;
}

/// The user named by a valid bearer token, whether or not the account is disabled; in scopes
/// mode, a token with the route's scopes `S`.
pub struct CurrentUser<S = AnyScope>(pub Arc<UserInDb>, pub PhantomData<fn() -> S>);

/// The current user, refused with 400 "Inactive user" when the account is disabled.
pub struct ActiveUser<S = AnyScope>(pub Arc<UserInDb>, pub PhantomData<fn() -> S>);

impl<S: RouteScopes> FromRequestParts<AppState> for CurrentUser<S> {
    type Rejection = ApiError;

    /// The chapter's `get_current_user`, in its order: the token, its `scope` claim, the user,
    /// the route's scopes (the disabled check is `ActiveUser`'s, after these).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let challenge = if state.scopes.is_some() { S::CHALLENGE } else { "Bearer" };
        let invalid = || ApiError::InvalidToken { challenge };
        let token = bearer_token(parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes()))?;
        let token = std::str::from_utf8(token).map_err(|_| invalid())?;
        let access = state.tokens.decode_token(token).map_err(|_| invalid())?;
        // Revoked (RFC 7009): refused everywhere until it expires.
        if state.users.is_revoked(|| access.id()) {
            return Err(invalid());
        }
        let token_scope = match (&state.scopes, &access.scope) {
            (None, _) | (Some(_), ScopeClaim::Absent) => "",
            (Some(_), ScopeClaim::Text(scope)) => scope.as_str(),
            (Some(_), ScopeClaim::NotText) => return Err(invalid()),
        };
        let user = state.users.get(&access.sub).map_err(|_| ApiError::Unavailable)?.ok_or_else(invalid)?;
        // Issued before its user logged out everywhere: no longer good. (A disabled user's tokens
        // were ended too, but the tutorial's answer for them, 400 "Inactive user", still holds
        // while the account is disabled: `ActiveUser` gives it.)
        if access.issued_at < user.tokens_valid_after && !user.is_disabled() {
            return Err(invalid());
        }
        if state.scopes.is_some() && !has_scopes(token_scope, S::SCOPES) {
            return Err(ApiError::NotEnoughPermissions { challenge });
        }
        Ok(Self(user, PhantomData))
    }
}

impl<S: RouteScopes> FromRequestParts<AppState> for ActiveUser<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(user, _) = CurrentUser::<S>::from_request_parts(parts, state).await?;
        if user.is_disabled() {
            return Err(ApiError::InactiveUser);
        }
        Ok(Self(user, PhantomData))
    }
}

/// The client's address as far as we can trust it (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
        let forwarded: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).collect();
        Ok(Self(state.trusted_proxies.client(to_canonical(peer), &forwarded)))
    }
}

/// FastAPI's `OAuth2PasswordBearer`: the scheme is what comes before the first space and must
/// be `bearer` in any case; the token is the rest with surrounding whitespace removed.
/// Tokens are read from the first `Authorization` header only, never from a query or cookie.
pub fn bearer_token(header: Option<&[u8]>) -> Result<&[u8], ApiError> {
    let header = header.filter(|value| !value.is_empty()).ok_or(ApiError::NotAuthenticated)?;
    let (scheme, rest) = match header.iter().position(|&b| b == b' ') {
        Some(space) => (&header[..space], &header[space + 1..]),
        None => (header, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(ApiError::NotAuthenticated);
    }
    Ok(strip_python_whitespace(rest))
}

/// Python's `str.strip()` on a header decoded as Latin-1, as Starlette decodes it.
fn strip_python_whitespace(bytes: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b'\t'..=b'\r' | 0x1c..=0x20 | 0x85 | 0xa0);
    let start = bytes.iter().position(|b| !space(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !space(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> Result<&str, &'static str> {
        match bearer_token(Some(header.as_bytes())) {
            Ok(token) => Ok(std::str::from_utf8(token).unwrap()),
            Err(ApiError::NotAuthenticated) => Err("not authenticated"),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_is_trimmed() {
        assert_eq!(token("Bearer abc"), Ok("abc"));
        assert_eq!(token("bearer abc"), Ok("abc"));
        assert_eq!(token("BEARER abc"), Ok("abc"));
        assert_eq!(token("Bearer    abc  "), Ok("abc"));
        assert_eq!(token("Bearer \tabc\t"), Ok("abc"));
    }

    #[test]
    fn other_schemes_and_missing_spaces_are_not_authenticated() {
        assert_eq!(token("Basic dXNlcjpwYXNz"), Err("not authenticated"));
        assert_eq!(token("Token abc"), Err("not authenticated"));
        assert_eq!(token("Bearer:abc"), Err("not authenticated"));
        assert_eq!(token("Bearer\tabc"), Err("not authenticated"));
        assert!(matches!(bearer_token(None), Err(ApiError::NotAuthenticated)));
        assert!(matches!(bearer_token(Some(b"")), Err(ApiError::NotAuthenticated)));
    }

    #[test]
    fn a_bare_scheme_gives_an_empty_token_as_in_fastapi() {
        assert_eq!(token("Bearer"), Ok(""));
        assert_eq!(token("Bearer "), Ok(""));
    }

    #[test]
    fn latin1_whitespace_is_stripped_like_python() {
        assert_eq!(bearer_token(Some(b"Bearer \xa0abc\x85")).unwrap(), b"abc");
    }
}
