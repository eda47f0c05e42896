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
