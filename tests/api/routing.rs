//! Paths and methods: JSON 404 and 405, FastAPI's slash redirects, HEAD, and the headers
//! every response carries.

use crate::helpers::{Answer, PYJWT_JOHNDOE_TOKEN, TestApp};

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let app = TestApp::spawn().await;

    for path in ["/nope", "/", "/users/me//", "//users/me/", "/USERS/ME/", "/users/me/items//"] {
        Answer::of(app.get(path, None).await).await.assert_json(404, r#"{"detail":"Not Found"}"#);
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow_checked_before_auth() {
    let app = TestApp::spawn().await;

    for (method, path, allow) in [
        ("POST", "/users/me/", "GET"),
        ("PUT", "/users/me/items/", "GET"),
        ("DELETE", "/users/me", "GET"),
        ("GET", "/token", "POST"),
        ("DELETE", "/token", "POST"),
        ("OPTIONS", "/token", "POST"),
        ("POST", "/docs", "GET, HEAD"),
    ] {
        let request = app.client.request(method.parse().unwrap(), format!("{}{path}", app.address));
        let answer = Answer::of(request.send().await.unwrap()).await;
        answer.assert_json(405, r#"{"detail":"Method Not Allowed"}"#);
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn head_is_refused_on_the_api_routes_as_in_fastapi() {
    let app = TestApp::spawn().await;

    for (path, allow) in [("/users/me/", "GET"), ("/users/me/items/", "GET"), ("/token", "POST")] {
        let response = app.client.head(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], allow);
        assert_eq!(response.headers()["content-length"], "31");
    }
    let docs = app.client.head(format!("{}/openapi.json", app.address)).send().await.unwrap();
    assert_eq!(docs.status(), 200);
}

#[tokio::test]
async fn a_trailing_slash_on_a_slashless_route_redirects_without_reflecting_the_host() {
    let app = TestApp::spawn().await;

    for (path, location) in [
        ("/token/", "/token"),
        ("/token///", "/token"),
        ("/token/?a=b", "/token?a=b"),
        ("/docs/", "/docs"),
        ("/openapi.json/", "/openapi.json"),
        ("/redoc/", "/redoc"),
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        let answer = Answer::of(response).await;
        assert_eq!(
            (answer.status, answer.header("location"), answer.body.as_str()),
            (307, Some(location), "")
        );
    }
    let post = app.client.post(format!("{}/token/", app.address)).send().await.unwrap();
    assert_eq!(post.status(), 307);
}

#[tokio::test]
async fn the_path_is_percent_decoded_before_routing_as_uvicorn_does() {
    let app = TestApp::spawn().await;

    for path in ["/users/me%2F", "/users/%6De/", "/users/me/items%2f"] {
        let response = app.get_with_token(path, PYJWT_JOHNDOE_TOKEN).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_eq!(app.get("/%ff", None).await.status(), 404);
}

#[tokio::test]
async fn every_response_says_nosniff_and_names_no_server() {
    let app = TestApp::spawn().await;

    let responses = [
        app.get("/users/me/", None).await,
        app.get("/nope", None).await,
        app.get("/docs", None).await,
        app.post_form(&[]).await,
        app.login("johndoe", "secret").await,
    ];

    for response in responses {
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(response.headers().get("server").is_none());
    }
}

#[tokio::test]
async fn an_http11_request_without_host_gets_400_and_the_connection_closes() {
    let app = TestApp::spawn().await;

    let response = app.raw(b"GET /users/me/ HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;

    assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{response}");
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
    assert!(response.ends_with(r#"{"detail":"Missing Host header"}"#), "only one answer: {response}");
}

#[tokio::test]
async fn two_host_headers_get_400_and_the_connection_closes() {
    let app = TestApp::spawn().await;

    let response = app.raw(b"GET /users/me/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await;

    assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{response}");
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
    assert!(response.ends_with(r#"{"detail":"More than one Host header"}"#), "{response}");
}
