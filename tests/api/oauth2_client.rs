//! A standard OAuth2 client library (the `oauth2` crate) against the server, as an app would
//! use it: log in with the password grant, refresh, revoke; a wrong password reported as
//! `invalid_grant` (with `TOKEN_ERRORS=rfc6749`); and the access tokens checked the way a
//! resource server that knows only the published key set would.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    ClientId, HttpRequest, HttpResponse, RefreshToken, RequestTokenError, ResourceOwnerPassword,
    ResourceOwnerUsername, RevocationUrl, StandardRevocableToken, TokenResponse, TokenUrl,
};
use oauth2_jwt_server::api::error::ErrorStyle;
use oauth2_jwt_server::auth::keys::{KeyAlgorithm, SigningKeys, generate};
use oauth2_jwt_server::auth::refresh::RefreshConfig;
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::store::UserStore;
use serde::Deserialize;

use crate::helpers::{TestApp, test_config};

/// The library's HTTP client: our reqwest client, with `https` turned into `http` on the way,
/// as a TLS-terminating proxy in front of the server would (the library insists, as RFC 7009
/// §2 says, that the revocation URL is `https`).
async fn send(client: reqwest::Client, request: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let url = request.uri().to_string().replacen("https://", "http://", 1);
    let mut outgoing = client.request(request.method().clone(), url).body(request.body().clone());
    for (name, value) in request.headers() {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.send().await?;
    let mut answer = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    Ok(answer.body(response.bytes().await?.to_vec()).expect("a valid response"))
}

/// A server with refresh tokens, RFC 6749 errors and an EdDSA key set.
async fn spawn() -> TestApp {
    let jwk = generate(KeyAlgorithm::EdDSA).unwrap();
    let config = Config {
        refresh_tokens: Some(RefreshConfig {
            lifetime: Duration::from_secs(86_400),
            idle: Duration::from_secs(3600),
        }),
        token_errors: ErrorStyle::Rfc6749,
        jwt_keys: Some(SigningKeys::from_jwks(&format!(r#"{{"keys":[{jwk}]}}"#)).unwrap()),
        ..test_config()
    };
    TestApp::spawn_with(config, UserStore::seeded()).await
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// What a resource server that knows only our key set concludes from an access token.
async fn check_as_a_resource_server(
    app: &TestApp,
    token: &str,
) -> Result<String, jsonwebtoken::errors::Error> {
    let jwks: JwkSet = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = decode_header(token)?;
    let jwk = jwks.find(header.kid.as_deref().unwrap_or_default()).expect("the token names a published key");
    let key = DecodingKey::from_jwk(jwk)?;
    let validation = Validation::new(header.alg);
    decode::<Claims>(token, &key, &validation).map(|data| {
        assert!(data.claims.exp > crate::helpers::now());
        data.claims.sub
    })
}

#[tokio::test]
async fn an_oauth2_client_logs_in_refreshes_and_revokes() {
    let app = spawn().await;
    let http = |request: HttpRequest| send(app.client.clone(), request);
    let oauth = BasicClient::new(ClientId::new("example-app".into()))
        .set_token_uri(TokenUrl::new(format!("{}/token", app.address)).unwrap())
        .set_revocation_url(
            RevocationUrl::new(format!("{}/revoke", app.address).replacen("http://", "https://", 1)).unwrap(),
        );

    let login = oauth
        .exchange_password(
            &ResourceOwnerUsername::new("johndoe".into()),
            &ResourceOwnerPassword::new("secret".into()),
        )
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(*login.token_type(), BasicTokenType::Bearer);
    assert_eq!(login.expires_in(), Some(Duration::from_secs(1800)));
    let access = login.access_token().secret();
    assert_eq!(check_as_a_resource_server(&app, access).await.unwrap(), "johndoe");
    assert_eq!(app.get_with_token("/users/me/", access).await.status(), 200);

    let refresh = login.refresh_token().expect("a refresh token");
    let refreshed = oauth.exchange_refresh_token(refresh).request_async(&http).await.unwrap();
    let new_refresh = refreshed.refresh_token().expect("a new refresh token");
    assert_ne!(new_refresh.secret(), refresh.secret(), "rotated");
    assert_eq!(check_as_a_resource_server(&app, refreshed.access_token().secret()).await.unwrap(), "johndoe");

    // The rotated-away token is refused, as the library reports it.
    let reused = oauth.exchange_refresh_token(refresh).request_async(&http).await.unwrap_err();
    let RequestTokenError::ServerResponse(error) = reused else { panic!("{reused:?}") };
    assert_eq!(*error.error(), BasicErrorResponseType::InvalidGrant);

    // A fresh login, revoked through the library: both kinds of token stop working.
    let again = oauth
        .exchange_password(
            &ResourceOwnerUsername::new("johndoe".into()),
            &ResourceOwnerPassword::new("secret".into()),
        )
        .request_async(&http)
        .await
        .unwrap();
    let again_refresh = RefreshToken::new(again.refresh_token().unwrap().secret().clone());
    oauth
        .revoke_token(StandardRevocableToken::from(again_refresh.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    oauth
        .revoke_token(StandardRevocableToken::from(again.access_token().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let revoked = oauth.exchange_refresh_token(&again_refresh).request_async(&http).await.unwrap_err();
    assert!(
        matches!(revoked, RequestTokenError::ServerResponse(ref e) if *e.error() == BasicErrorResponseType::InvalidGrant)
    );
    assert_eq!(app.get_with_token("/users/me/", again.access_token().secret()).await.status(), 401);
}

#[tokio::test]
async fn an_oauth2_client_sees_a_wrong_password_as_invalid_grant() {
    let app = spawn().await;
    let http = |request: HttpRequest| send(app.client.clone(), request);
    let oauth = BasicClient::new(ClientId::new("example-app".into()))
        .set_token_uri(TokenUrl::new(format!("{}/token", app.address)).unwrap());

    let failed = oauth
        .exchange_password(
            &ResourceOwnerUsername::new("johndoe".into()),
            &ResourceOwnerPassword::new("wrong".into()),
        )
        .request_async(&http)
        .await
        .unwrap_err();

    let RequestTokenError::ServerResponse(error) = failed else { panic!("{failed:?}") };
    assert_eq!(*error.error(), BasicErrorResponseType::InvalidGrant);
    assert_eq!(error.error_description().map(String::as_str), Some("Incorrect username or password"));
}

#[tokio::test]
async fn a_resource_server_refuses_a_token_it_cannot_check_with_the_published_keys() {
    let app = spawn().await;
    let other = spawn().await;
    let token = other.token_for("johndoe", "secret").await;

    // Signed by another server's key: its kid is not published here.
    let header = decode_header(&token).unwrap();
    let jwks: JwkSet = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(jwks.find(header.kid.as_deref().unwrap()).is_none());
    assert_eq!(app.get_with_token("/users/me/", &token).await.status(), 401);
    // And its own token passes.
    let ours = app.token_for("johndoe", "secret").await;
    assert_eq!(check_as_a_resource_server(&app, &ours).await.unwrap(), "johndoe");
}
