//! The token and revocation endpoints behind their handlers: the password grant (the
//! tutorial's), the refresh grant (RFC 6749 §6), revocation (RFC 7009), and the shape of their
//! errors.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::api::AppState;
use crate::api::error::{ApiError, ErrorStyle};
use crate::api::form::{FormFields, LoginForm, RevokeRequest, TokenRequest};
use crate::api::routes::Token;
use crate::auth::refresh::RefreshError;
use crate::auth::throttle::Refusal;
use crate::store::UserInDb;

/// Answers `POST /token`: either grant, errors in the configured shape (the refresh grant's
/// always in RFC 6749's).
pub async fn token_endpoint(
    state: &AppState,
    client: IpAddr,
    fields: Result<FormFields, ApiError>,
) -> Result<Token, ApiError> {
    let style = state.token_errors;
    let request =
        fields.and_then(|FormFields(fields)| TokenRequest::from_fields(fields, state.refresh.is_some()));
    match request {
        Ok(TokenRequest::Password(form)) => {
            password_grant(state, client, form).await.map_err(|error| style.shape(error))
        }
        Ok(TokenRequest::Refresh { refresh_token, .. }) => {
            refresh_grant(state, client, &refresh_token).await.map_err(ApiError::into_rfc6749)
        }
        Err(error) => Err(style.shape(error)),
    }
}

/// The tutorial's `login_for_access_token`, with a refresh token when they are on.
async fn password_grant(state: &AppState, client: IpAddr, form: LoginForm) -> Result<Token, ApiError> {
    let user = state.auth.authenticate_user(&state.users, client, &form.username, form.password).await?;
    let access_token = mint(state, &user).await?;
    let Some(refresh) = &state.refresh else {
        return Ok(Token { access_token, token_type: "bearer", expires_in: None, refresh_token: None });
    };
    let refresh_token =
        refresh.start(&state.users, &user.username, "").await.map_err(|_| ApiError::Unavailable)?;
    Ok(Token {
        access_token,
        token_type: "bearer",
        expires_in: Some(state.tokens.lifetime().as_secs()),
        refresh_token: Some(refresh_token),
    })
}

/// Exchanges a refresh token for a new access token and a new refresh token. Failures count
/// against the client's address like failed logins (there is no hash to spend: a wrong token
/// costs one store lookup), so refresh tokens cannot be guessed faster than passwords.
async fn refresh_grant(state: &AppState, client: IpAddr, presented: &str) -> Result<Token, ApiError> {
    let refresh = state
        .refresh
        .as_ref()
        .ok_or_else(|| ApiError::oauth("unsupported_grant_type", "Refresh tokens are off"))?;
    let attempt = state.auth.throttle.reserve_for_client(client).await.map_err(|refusal| match refusal {
        Refusal::Throttled(throttled) => ApiError::TooManyAttempts { retry_after: throttled.retry_after },
        Refusal::Unavailable => ApiError::Unavailable,
    })?;
    match refresh.rotate(&state.users, presented).await {
        Ok(issued) => {
            attempt.succeeded().await;
            let access_token = mint(state, &issued.user).await?;
            Ok(Token {
                access_token,
                token_type: "bearer",
                expires_in: Some(state.tokens.lifetime().as_secs()),
                refresh_token: Some(issued.token),
            })
        }
        Err(RefreshError::Invalid(description)) => {
            attempt.failed().await;
            Err(ApiError::oauth("invalid_grant", description))
        }
        Err(RefreshError::Unavailable) => Err(ApiError::Unavailable),
    }
}

/// Answers `POST /revoke` (RFC 7009): 200 whether or not the token was known (§2.2); a refresh
/// token ends its family, an access token of ours is refused everywhere until it expires.
pub async fn revoke_endpoint(state: &AppState, fields: Result<FormFields, ApiError>) -> Result<(), ApiError> {
    let request = fields
        .and_then(|FormFields(fields)| RevokeRequest::from_fields(fields))
        .map_err(ApiError::into_rfc6749)?;
    let refresh = state.refresh.as_ref().ok_or(ApiError::NotFound)?;
    let revoke_refresh =
        async || refresh.revoke(&state.users, &request.token).await.map_err(|_| ApiError::Unavailable);
    // The hint only orders the search (§2.1): both kinds are looked for.
    if request.token_type_hint.as_deref() == Some("access_token") {
        if !revoke_access_token(state, &request.token).await? {
            revoke_refresh().await?;
        }
    } else if !revoke_refresh().await? {
        revoke_access_token(state, &request.token).await?;
    }
    Ok(())
}

/// Revokes `token` if it is a valid access token of ours; true when it was.
async fn revoke_access_token(state: &AppState, token: &str) -> Result<bool, ApiError> {
    let Ok(access) = state.tokens.decode_token(token) else { return Ok(false) };
    let expires_at = i64::try_from(access.exp).unwrap_or(i64::MAX);
    state
        .users
        .revoke_access(&access.id_hex(), expires_at, unix_now())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(true)
}

/// An access token for `user`. Right after the user logged out everywhere, a token of the same
/// second would count as issued before it (tokens carry whole seconds), so minting waits for
/// the cut-off second to begin (at most a second, and only then).
async fn mint(state: &AppState, user: &UserInDb) -> Result<String, ApiError> {
    let now = unix_now();
    if user.tokens_valid_after > now && user.tokens_valid_after <= now + 1 {
        let wait = SystemTime::now().duration_since(UNIX_EPOCH).map_or(Duration::ZERO, |now| {
            Duration::from_secs(u64::try_from(user.tokens_valid_after).unwrap_or(0)).saturating_sub(now)
        });
        tokio::time::sleep(wait).await;
    }
    state.tokens.create_access_token(&user.username).map_err(|_| ApiError::Internal)
}

impl ErrorStyle {
    /// `error` in this style.
    pub fn shape(self, error: ApiError) -> ApiError {
        match self {
            Self::FastApi => error,
            Self::Rfc6749 => error.into_rfc6749(),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
