//! The token and revocation endpoints behind their handlers: the password grant (the
//! tutorial's), the refresh grant (RFC 6749 §6), revocation (RFC 7009), and the shape of their
//! errors.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::error::{ApiError, ErrorStyle, FieldError};
use crate::api::form::{FormFields, LoginForm, RevokeRequest, TokenRequest};
use crate::auth::login::LoginError;
use crate::auth::refresh::RefreshError;
use crate::auth::scopes::{Grant, MAX_SCOPE_FIELD_CHARS};
use crate::auth::throttle::Refusal;
use crate::store::UserInDb;
use crate::telemetry::metrics::{RefreshOutcome, RevocationOutcome};

// The tutorial's `Token` model has only the first two fields; the others appear when refresh
// tokens are on (and only then in the OpenAPI document: `openapi::document`).
/// The token response of RFC 6749 §5.1, as the tutorial's `Token` model.
#[derive(Debug, Serialize, ToSchema)]
#[schema(title = "Token")]
pub struct Token {
    /// The JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires (with refresh tokens on).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub expires_in: Option<u64>,
    /// The token to send with `grant_type=refresh_token` (with refresh tokens on).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub refresh_token: Option<String>,
    /// The scopes granted, when fewer than asked for (scopes mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub scope: Option<String>,
}

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
        Ok(TokenRequest::Refresh { refresh_token, scope }) => {
            refresh_grant(state, client, &refresh_token, scope.as_deref())
                .await
                .map_err(ApiError::into_rfc6749)
        }
        Err(error) => Err(style.shape(error)),
    }
}

/// The tutorial's `login_for_access_token`, with a refresh token when they are on, and in scopes
/// mode the chapter's: a 400 for bad credentials, and the scopes granted in the token.
async fn password_grant(state: &AppState, client: IpAddr, form: LoginForm) -> Result<Token, ApiError> {
    if state.scopes.is_some() {
        check_scope_field(&form.scope)?;
    }
    let user =
        state.auth.authenticate_user(&state.users, client, &form.username, form.password).await.map_err(
            |error| match error {
                LoginError::IncorrectCredentials if state.scopes.is_some() => {
                    ApiError::IncorrectCredentialsAsBadRequest
                }
                other => other.into(),
            },
        )?;
    let grant = match &state.scopes {
        None => None,
        // The chapter mints a disabled user a token that every scoped route then refuses.
        Some(_) if user.is_disabled() => return Err(ApiError::InactiveUser),
        Some(scopes) => Some(scopes.grant(&form.scope, user.scopes.as_deref())),
    };
    let refresh_token = match &state.refresh {
        Some(refresh) => {
            let scope = grant.as_ref().map_or("", |grant| grant.scope.as_str());
            Some(
                refresh
                    .start(&state.users, &user.username, scope)
                    .await
                    .map_err(|_| ApiError::Unavailable)?,
            )
        }
        None => None,
    };
    answer(state, &user, grant, refresh_token).await
}

/// Exchanges a refresh token for a new access token and a new refresh token, with the scopes of
/// the login (or fewer, when asked: never more, RFC 6749 §6). Failures count against the
/// client's address like failed logins (there is no hash to spend: a wrong token costs one
/// store lookup), so refresh tokens cannot be guessed faster than passwords.
async fn refresh_grant(
    state: &AppState,
    client: IpAddr,
    presented: &str,
    scope: Option<&str>,
) -> Result<Token, ApiError> {
    let refresh = state
        .refresh
        .as_ref()
        .ok_or_else(|| ApiError::oauth("unsupported_grant_type", "Refresh tokens are off"))?;
    let asked = scope.filter(|_| state.scopes.is_some());
    if let Some(asked) = asked {
        check_scope_field(asked)?;
    }
    let refused = |outcome: RefreshOutcome, error: ApiError| {
        state.metrics.refresh(outcome);
        tracing::info!(target: "audit", event = "token.refresh_failed", client_ip = %client, outcome = outcome.as_str(), "refresh refused");
        error
    };
    let attempt = state.auth.throttle.reserve_for_client(client).await.map_err(|refusal| match refusal {
        Refusal::Throttled(throttled) => refused(
            RefreshOutcome::Throttled,
            ApiError::TooManyAttempts { retry_after: throttled.retry_after },
        ),
        Refusal::Unavailable => refused(RefreshOutcome::Unavailable, ApiError::Unavailable),
    })?;
    match refresh.rotate(&state.users, presented, asked).await {
        Ok(issued) => {
            attempt.succeeded().await;
            state.metrics.refresh(RefreshOutcome::Success);
            tracing::info!(target: "audit", event = "token.refreshed", username = issued.user.username.as_str(), client_ip = %client, outcome = "success", "refresh");
            let grant = state
                .scopes
                .as_ref()
                .map(|scopes| scopes.grant(asked.unwrap_or(&issued.scope), issued.user.scopes.as_deref()));
            answer(state, &issued.user, grant, Some(issued.token)).await
        }
        Err(RefreshError::Invalid(description)) => {
            attempt.failed().await;
            Err(refused(RefreshOutcome::Invalid, ApiError::oauth("invalid_grant", description)))
        }
        Err(reused @ RefreshError::Reused { .. }) => {
            attempt.failed().await;
            state.metrics.refresh(RefreshOutcome::Reused);
            if let RefreshError::Reused { username } = &reused {
                tracing::warn!(target: "audit", event = "token.refresh_reused", username = username.as_str(), client_ip = %client, outcome = "family_revoked", "a refresh token was used twice: its family is revoked");
            }
            Err(ApiError::oauth("invalid_grant", reused.to_string()))
        }
        Err(RefreshError::BroaderScope) => Err(refused(
            RefreshOutcome::Invalid,
            ApiError::oauth("invalid_scope", "The requested scope is broader than the one granted"),
        )),
        Err(RefreshError::Unavailable) => Err(refused(RefreshOutcome::Unavailable, ApiError::Unavailable)),
    }
}

/// The token answer for `user` (RFC 6749 §5.1): an access token with `grant`'s scope; with
/// refresh tokens on, `expires_in` and `refresh_token`; `scope` when fewer were granted than
/// asked for.
async fn answer(
    state: &AppState,
    user: &UserInDb,
    grant: Option<Grant>,
    refresh_token: Option<String>,
) -> Result<Token, ApiError> {
    let access_token = mint(state, user, grant.as_ref().map(|grant| grant.scope.as_str())).await?;
    Ok(Token {
        access_token,
        token_type: "bearer",
        expires_in: refresh_token.is_some().then(|| state.tokens.lifetime().as_secs()),
        refresh_token,
        scope: grant.filter(|grant| grant.narrowed).map(|grant| grant.scope),
    })
}

/// A `scope` field over the bound gets pydantic's `string_too_long`, as an overlong password.
fn check_scope_field(scope: &str) -> Result<(), ApiError> {
    if scope.chars().count() > MAX_SCOPE_FIELD_CHARS {
        return Err(ApiError::Validation(vec![FieldError {
            kind: "string_too_long",
            loc: ["body", "scope"],
            msg: format!("String should have at most {MAX_SCOPE_FIELD_CHARS} characters"),
            input: None,
            ctx: Some(serde_json::json!({"max_length": MAX_SCOPE_FIELD_CHARS})),
        }]));
    }
    Ok(())
}

/// Answers `POST /revoke` (RFC 7009) from `client`: 200 whether or not the token was known
/// (§2.2); a refresh token ends its family, an access token of ours is refused everywhere
/// until it expires.
pub async fn revoke_endpoint(
    state: &AppState,
    client: IpAddr,
    fields: Result<FormFields, ApiError>,
) -> Result<(), ApiError> {
    let request = fields
        .and_then(|FormFields(fields)| RevokeRequest::from_fields(fields))
        .map_err(ApiError::into_rfc6749)?;
    let refresh = state.refresh.as_ref().ok_or(ApiError::NotFound)?;
    let revoke_refresh = async || {
        let revoked =
            refresh.revoke(&state.users, &request.token).await.map_err(|_| ApiError::Unavailable)?;
        Ok::<_, ApiError>(revoked.map(|username| (RevocationOutcome::RefreshToken, username)))
    };
    // The hint only orders the search (§2.1): both kinds are looked for.
    let revoked = async {
        if request.token_type_hint.as_deref() == Some("access_token") {
            match revoke_access_token(state, &request.token).await? {
                Some(username) => Ok(Some((RevocationOutcome::AccessToken, username))),
                None => revoke_refresh().await,
            }
        } else {
            match revoke_refresh().await? {
                Some(revoked) => Ok(Some(revoked)),
                None => Ok(revoke_access_token(state, &request.token)
                    .await?
                    .map(|username| (RevocationOutcome::AccessToken, username))),
            }
        }
    }
    .await;
    let (outcome, username) = match &revoked {
        Ok(Some((outcome, username))) => (*outcome, username.as_str()),
        Ok(None) => (RevocationOutcome::Unknown, ""),
        Err(_) => (RevocationOutcome::Unavailable, ""),
    };
    state.metrics.revocation(outcome);
    tracing::info!(target: "audit", event = "token.revoked", username, client_ip = %client, outcome = outcome.as_str(), "revocation");
    revoked.map(drop)
}

/// Revokes `token` if it is a valid access token of ours; its subject when it was.
async fn revoke_access_token(state: &AppState, token: &str) -> Result<Option<String>, ApiError> {
    let Ok(access) = state.tokens.decode_token(token) else { return Ok(None) };
    let expires_at = i64::try_from(access.exp).unwrap_or(i64::MAX);
    state
        .users
        .revoke_access(&access.id_hex(), expires_at, unix_now())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Some(access.sub.to_string()))
}

/// An access token for `user`. Right after the user logged out everywhere, a token of the same
/// second would count as issued before it (tokens carry whole seconds), so minting waits for
/// the cut-off second to begin (at most a second, and only then).
async fn mint(state: &AppState, user: &UserInDb, scope: Option<&str>) -> Result<String, ApiError> {
    let now = unix_now();
    if user.tokens_valid_after > now && user.tokens_valid_after <= now + 1 {
        let wait = SystemTime::now().duration_since(UNIX_EPOCH).map_or(Duration::ZERO, |now| {
            Duration::from_secs(u64::try_from(user.tokens_valid_after).unwrap_or(0)).saturating_sub(now)
        });
        tokio::time::sleep(wait).await;
    }
    state.tokens.create_access_token(&user.username, scope).map_err(|_| ApiError::Internal)
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
