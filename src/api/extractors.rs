//! `CurrentUser` and `ActiveUser`: the tutorial's `get_current_user` and
//! `get_current_active_user` dependencies, as extractors in the handlers' signatures; and
//! `ClientIp`, who is logging in.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::api::AppState;
use crate::api::client_ip::to_canonical;
use crate::api::error::ApiError;
use crate::store::UserInDb;

/// The user named by a valid bearer token, whether or not the account is disabled.
pub struct CurrentUser(pub Arc<UserInDb>);

/// The current user, refused with 400 "Inactive user" when the account is disabled.
pub struct ActiveUser(pub Arc<UserInDb>);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes()))?;
        let token = std::str::from_utf8(token).map_err(|_| ApiError::InvalidToken)?;
        let access = state.tokens.decode_token(token).map_err(|_| ApiError::InvalidToken)?;
        // Revoked (RFC 7009): refused everywhere until it expires.
        if state.users.is_revoked(|| access.id()) {
            return Err(ApiError::InvalidToken);
        }
        let user =
            state.users.get(&access.sub).map_err(|_| ApiError::Unavailable)?.ok_or(ApiError::InvalidToken)?;
        // Issued before its user logged out everywhere: no longer good. (A disabled user's tokens
        // were ended too, but the tutorial's answer for them, 400 "Inactive user", still holds
        // while the account is disabled: `ActiveUser` gives it.)
        if access.issued_at < user.tokens_valid_after && !user.is_disabled() {
            return Err(ApiError::InvalidToken);
        }
        Ok(Self(user))
    }
}

impl FromRequestParts<AppState> for ActiveUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.is_disabled() {
            return Err(ApiError::InactiveUser);
        }
        Ok(Self(user))
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
