//! `/openapi.json`, `/docs` and `/redoc`: the document and the two UIs, served without network.

use serde_json::Value;

use crate::helpers::{Answer, TestApp};

#[tokio::test]
async fn the_openapi_document_describes_the_three_paths_and_the_password_flow() {
    let app = TestApp::spawn().await;

    let answer = Answer::of(app.get("/openapi.json", None).await).await;

    assert_eq!((answer.status, answer.header("content-type")), (200, Some("application/json")));
    let doc: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/token", "/users/me/", "/users/me/items/"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["OAuth2PasswordBearer"],
        serde_json::json!({"type": "oauth2", "flows": {"password": {"tokenUrl": "token", "scopes": {}}}})
    );
    let token = &doc["paths"]["/token"]["post"];
    assert_eq!(token["operationId"], "login_for_access_token_token_post");
    assert!(token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"].is_object());
    for path in ["/users/me/", "/users/me/items/"] {
        assert_eq!(doc["paths"][path]["get"]["security"], serde_json::json!([{"OAuth2PasswordBearer": []}]));
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in
        ["Body_login_for_access_token_token_post", "Token", "User", "HTTPValidationError", "ValidationError"]
    {
        assert!(schemas.contains_key(name), "schema {name}");
    }
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs_itself_with_vendored_assets() {
    let app = TestApp::spawn().await;

    let page = Answer::of(app.get("/docs", None).await).await;

    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.body.contains("url: '/openapi.json'"));
    assert!(page.body.contains("oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'"));
    assert!(!page.body.contains("https://"), "no asset may come from the network");
    for (asset, size) in [
        ("/docs/swagger-ui-bundle.js", 1_000_000),
        ("/docs/swagger-ui.css", 100_000),
        ("/docs/favicon-32x32.png", 500),
        ("/docs/oauth2-redirect", 50),
        ("/docs/oauth2-redirect.js", 500),
    ] {
        let response = app.get(asset, None).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.bytes().await.unwrap().len() > size, "{asset} has content");
    }
    assert_eq!(app.get("/docs/nope.js", None).await.status(), 404);
}

#[tokio::test]
async fn redoc_is_served_with_its_script_vendored() {
    let app = TestApp::spawn().await;

    let page = Answer::of(app.get("/redoc", None).await).await;
    let script = app.get("/redoc/redoc.standalone.js", None).await;

    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<redoc spec-url="/openapi.json">"#));
    assert!(!page.body.contains("https://"));
    assert_eq!(script.status(), 200);
    assert!(script.bytes().await.unwrap().len() > 500_000);
}

#[tokio::test]
async fn with_no_settings_the_openapi_document_keeps_its_bytes() {
    let app = TestApp::spawn().await;

    let answer = Answer::of(app.get("/openapi.json", None).await).await;

    // Served by the server before any of the optional features existed.
    assert_eq!(answer.body, include_str!("fixtures/openapi-default.json"));
}

#[tokio::test]
async fn with_refresh_tokens_and_a_key_set_the_document_describes_them() {
    let keys = oauth2_jwt_server::auth::keys::SigningKeys::from_jwks(&format!(
        r#"{{"keys":[{}]}}"#,
        oauth2_jwt_server::auth::keys::generate(oauth2_jwt_server::auth::keys::KeyAlgorithm::EdDSA).unwrap()
    ))
    .unwrap();
    let config = oauth2_jwt_server::config::Config {
        refresh_tokens: Some(oauth2_jwt_server::auth::refresh::RefreshConfig {
            lifetime: std::time::Duration::from_secs(86_400),
            idle: std::time::Duration::from_secs(3600),
        }),
        jwt_keys: Some(keys),
        ..crate::helpers::test_config()
    };
    let app = TestApp::spawn_with(config, oauth2_jwt_server::store::UserStore::seeded()).await;

    let doc: Value =
        serde_json::from_str(&Answer::of(app.get("/openapi.json", None).await).await.body).unwrap();

    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/token", "/users/me/", "/users/me/items/", "/revoke", "/.well-known/jwks.json"]);
    let flow = &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
    assert_eq!((flow["tokenUrl"].as_str(), flow["refreshUrl"].as_str()), (Some("token"), Some("token")));
    let form = &doc["components"]["schemas"]["Body_login_for_access_token_token_post"];
    assert_eq!(form["properties"]["grant_type"]["pattern"], "^(password|refresh_token)$");
    assert!(form["properties"]["refresh_token"].is_object());
    let token = doc["components"]["schemas"]["Token"]["properties"].as_object().unwrap();
    assert_eq!(
        token.keys().collect::<Vec<_>>(),
        ["access_token", "token_type", "expires_in", "refresh_token"]
    );
    assert_eq!(
        doc["paths"]["/revoke"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
            ["required"],
        serde_json::json!(["token"])
    );
    assert!(doc["components"]["schemas"]["OAuthError"].is_object());
}
