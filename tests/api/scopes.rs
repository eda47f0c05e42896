//! Scopes mode (`SCOPES`): FastAPI's "Advanced usage with scopes" chapter, answer for answer,
//! with the scope policy on top. Expected bytes were recorded from the chapter's app
//! (`docs_src/security/tutorial005_an_py310.py`) sent the same requests.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth2_jwt_server::auth::refresh::RefreshConfig;
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::store::{UserStore, users_file};
use serde_json::{Value, json};

use crate::backends::{on_every_backend, on_every_database};
use crate::helpers::{Answer, TestApp, now, test_config, token_with_claims};
use crate::users_cli::{assert_exit, cli_with, stdout, time_until};

/// The chapter's `SCOPES`.
const CHAPTER_SCOPES: &str = r#"{"me": "Read information about the current user.", "items": "Read items."}"#;
const JOHNDOE: &str =
    r#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#;
const ITEMS: &str = r#"[{"item_id":"Foo","owner":"johndoe"}]"#;
const ME: &str = r#"Bearer scope="me""#;
const ITEMS_ME: &str = r#"Bearer scope="items me""#;

fn scopes_config() -> Config {
    Config { scopes: Some(CHAPTER_SCOPES.parse().unwrap()), ..test_config() }
}

async fn scopes_app() -> TestApp {
    TestApp::spawn_with(scopes_config(), UserStore::seeded()).await
}

/// A token for `sub` with these extra claims, valid for ten minutes.
fn token(sub: Value, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "exp": now() + 600});
    claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    token_with_claims(&claims)
}

/// The claims of a token as its payload spells them (key order kept).
fn payload(token: &str) -> String {
    String::from_utf8(URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn login_asking(app: &TestApp, username: &str, password: &str, scope: &str) -> Answer {
    Answer::of(app.post_form(&[("username", username), ("password", password), ("scope", scope)]).await).await
}

/// Asserts status, JSON body and `WWW-Authenticate` (`None`: absent).
#[track_caller]
fn assert_answer(answer: &Answer, status: u16, body: &str, challenge: Option<&str>) {
    answer.assert_json(status, body);
    assert_eq!(answer.header("www-authenticate"), challenge, "WWW-Authenticate for {body}");
}

#[tokio::test]
async fn each_route_answers_by_the_scopes_of_the_token_as_the_chapter_does() {
    let app = scopes_app().await;
    let johndoe = |scope: &str| token(json!("johndoe"), json!({"scope": scope}));
    let not_enough = r#"{"detail":"Not enough permissions"}"#;
    let invalid = r#"{"detail":"Could not validate credentials"}"#;
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        ("/users/me/", johndoe("me"), 200, JOHNDOE, None),
        ("/users/me/", johndoe("items me"), 200, JOHNDOE, None),
        ("/users/me/", johndoe(""), 401, not_enough, Some(ME)),
        ("/users/me/", johndoe("items"), 401, not_enough, Some(ME)),
        ("/users/me/", johndoe("mee"), 401, not_enough, Some(ME)),
        ("/users/me/", token(json!("johndoe"), json!({})), 401, not_enough, Some(ME)),
        ("/users/me/items/", johndoe("me"), 401, not_enough, Some(ITEMS_ME)),
        ("/users/me/items/", johndoe("items"), 401, not_enough, Some(ITEMS_ME)),
        ("/users/me/items/", johndoe("items me"), 200, ITEMS, None),
        ("/users/me/items/", johndoe("me  items"), 200, ITEMS, None),
        ("/status/", johndoe(""), 200, r#"{"status":"ok"}"#, None),
        ("/status/", token(json!("johndoe"), json!({})), 200, r#"{"status":"ok"}"#, None),
        // The chapter checks the user, then the scopes, then whether the account is disabled.
        (
            "/users/me/",
            token(json!("alice"), json!({"scope": "me"})),
            400,
            r#"{"detail":"Inactive user"}"#,
            None,
        ),
        ("/users/me/", token(json!("alice"), json!({})), 401, not_enough, Some(ME)),
        ("/status/", token(json!("alice"), json!({})), 200, r#"{"status":"ok"}"#, None),
        ("/users/me/", token(json!("ghost"), json!({"scope": "me"})), 401, invalid, Some(ME)),
        (
            "/users/me/items/",
            token(json!("ghost"), json!({"scope": "items me"})),
            401,
            invalid,
            Some(ITEMS_ME),
        ),
        ("/users/me/items/", token(json!(5), json!({"scope": "items me"})), 401, invalid, Some(ITEMS_ME)),
        (
            "/users/me/",
            token_with_claims(&json!({"scope": "me", "exp": now() + 600})),
            401,
            invalid,
            Some(ME),
        ),
        ("/users/me/", "abc.def.ghi".into(), 401, invalid, Some(ME)),
        ("/status/", "abc.def.ghi".into(), 401, invalid, Some("Bearer")),
    ];
    for (path, token, status, body, challenge) in cases {
        let answer = Answer::of(app.get_with_token(path, &token).await).await;
        assert_answer(&answer, status, body, challenge);
    }
    for path in ["/users/me/", "/users/me/items/", "/status/"] {
        let answer = Answer::of(app.get(path, None).await).await;
        assert_answer(&answer, 401, r#"{"detail":"Not authenticated"}"#, Some("Bearer"));
    }
}

#[tokio::test]
async fn a_login_puts_the_scopes_asked_for_in_the_token_in_the_chapters_shape() {
    let app = scopes_app().await;

    for (asked, claim) in [("items  me", "items me"), ("me", "me"), ("", ""), ("me me", "me me")] {
        let answer = login_asking(&app, "johndoe", "secret", asked).await;
        assert_eq!(answer.status, 200, "{asked:?}: {}", answer.body);
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["access_token", "token_type"]);
        let claims = payload(body["access_token"].as_str().unwrap());
        assert!(claims.starts_with(&format!(r#"{{"sub":"johndoe","scope":"{claim}","exp":"#)), "{claims}");
    }
    let without_field = Answer::of(app.login("johndoe", "secret").await).await;
    let body: Value = serde_json::from_str(&without_field.body).unwrap();
    assert!(payload(body["access_token"].as_str().unwrap()).contains(r#""scope":"""#));
}

#[tokio::test]
async fn wrong_credentials_are_a_400_without_a_challenge_as_in_the_chapter() {
    let app = scopes_app().await;

    for (username, password) in [("johndoe", "wrong"), ("nobody", "secret")] {
        let answer = login_asking(&app, username, password, "me").await;
        assert_answer(&answer, 400, r#"{"detail":"Incorrect username or password"}"#, None);
    }
}

#[tokio::test]
async fn a_disabled_user_gets_no_token() {
    let app = scopes_app().await;

    let answer = login_asking(&app, "alice", "secretalice", "me items").await;

    assert_answer(&answer, 400, r#"{"detail":"Inactive user"}"#, None);
}

#[tokio::test]
async fn a_scope_claim_that_is_not_a_string_is_a_401_not_a_500() {
    let app = scopes_app().await;

    for claim in [json!(["me", "items"]), json!(1), json!(null), json!({"me": true}), json!(true)] {
        let bad = token(json!("johndoe"), json!({"scope": claim}));
        for (path, challenge) in [("/users/me/", ME), ("/users/me/items/", ITEMS_ME), ("/status/", "Bearer")]
        {
            let answer = Answer::of(app.get_with_token(path, &bad).await).await;
            assert_answer(&answer, 401, r#"{"detail":"Could not validate credentials"}"#, Some(challenge));
        }
    }
}

#[tokio::test]
async fn scopes_nobody_configured_are_left_out_and_the_answer_says_what_was_granted() {
    let app = scopes_app().await;

    let answer = login_asking(&app, "johndoe", "secret", "admin me").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["scope"], "me", "RFC 6749 §5.1: the granted scope, as it differs");
    assert!(payload(body["access_token"].as_str().unwrap()).contains(r#""scope":"me""#));
}

#[tokio::test]
async fn an_overlong_scope_field_is_a_422_like_an_overlong_password() {
    let app = scopes_app().await;

    let answer = login_asking(&app, "johndoe", "secret", &"me ".repeat(400)).await;

    answer.assert_json(
        422,
        r#"{"detail":[{"type":"string_too_long","loc":["body","scope"],"msg":"String should have at most 1024 characters","ctx":{"max_length":1024}}]}"#,
    );
}

#[tokio::test]
async fn without_scopes_there_is_no_scope_claim_no_scope_check_and_no_status_route() {
    let app = TestApp::spawn().await;

    let answer = login_asking(&app, "johndoe", "secret", "me items").await;
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert!(payload(token).starts_with(r#"{"sub":"johndoe","exp":"#), "{}", payload(token));
    assert_eq!(app.get_with_token("/users/me/items/", token).await.status(), 200);
    let unscoped = crate::helpers::token_with_claims(&json!({"sub": "johndoe", "exp": now() + 600}));
    assert_eq!(app.get_with_token("/users/me/items/", &unscoped).await.status(), 200);
    assert_eq!(app.get_with_token("/status/", token).await.status(), 404);
    assert_eq!(login_asking(&app, "johndoe", "wrong", "me").await.status, 401);
}

#[test]
fn a_bad_scopes_setting_stops_the_server_with_the_reason() {
    for (scopes, expected) in [
        (r#"["me", "items"]"#, "not an object"),
        (r#"{"me": "x", "read all": "x", "items": "x"}"#, r#"scope "read all""#),
        (r#"{"": "x", "me": "x", "items": "x"}"#, "cannot be empty"),
        (r#"{"me": "x"}"#, r#"no "items""#),
        ("me items", "not JSON"),
    ] {
        let output = crate::operations::start_binary(&[("SCOPES", scopes)]).wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{scopes}: {stderr}");
        assert!(stderr.contains("invalid SCOPES") && stderr.contains(expected), "{scopes}: {stderr}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_scopes_as_the_chapters_does() {
    let app = scopes_app().await;

    let text = app.get("/openapi.json", None).await.text().await.unwrap();

    let scheme = r#""OAuth2PasswordBearer":{"type":"oauth2","flows":{"password":{"tokenUrl":"token","scopes":{"me":"Read information about the current user.","items":"Read items."}}}}"#;
    assert!(text.contains(scheme), "the password flow's scopes, in SCOPES' order");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let security = |path: &str| doc["paths"][path]["get"]["security"].clone();
    assert_eq!(security("/users/me/"), json!([{"OAuth2PasswordBearer": ["me"]}]));
    assert_eq!(security("/users/me/items/"), json!([{"OAuth2PasswordBearer": ["items", "me"]}]));
    assert_eq!(security("/status/"), json!([{"OAuth2PasswordBearer": []}]));
    let status = &doc["paths"]["/status/"]["get"];
    assert_eq!(
        (&status["summary"], &status["operationId"]),
        (&json!("Read System Status"), &json!("read_system_status_status__get"))
    );
    let token_responses = doc["paths"]["/token"]["post"]["responses"].as_object().unwrap();
    assert!(token_responses.contains_key("400") && !token_responses.contains_key("401"));
    assert_eq!(doc["components"]["schemas"]["Token"]["properties"]["scope"]["type"], "string");
}

/// A users file with `bob` (password `pw-bob`) allowed only `me`.
fn bob_may_have_me() -> UserStore {
    let hash = oauth2_jwt_server::auth::password::hash_password(b"pw-bob", &mut Default::default());
    let file = format!(r#"{{"bob": {{"username": "bob", "hashed_password": "{hash}", "scopes": ["me"]}}}}"#);
    UserStore::in_memory(users_file::parse(&file, |_| Ok(())).unwrap(), "test")
}

#[tokio::test]
async fn a_user_is_granted_only_the_scopes_their_list_allows() {
    let app = TestApp::spawn_with(scopes_config(), bob_may_have_me()).await;

    let answer = login_asking(&app, "bob", "pw-bob", "me items").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["scope"], "me");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.get_with_token("/users/me/", token).await.status(), 200);
    let items = Answer::of(app.get_with_token("/users/me/items/", token).await).await;
    assert_answer(&items, 401, r#"{"detail":"Not enough permissions"}"#, Some(ITEMS_ME));
    let exactly =
        Answer::of(app.post_form(&[("username", "bob"), ("password", "pw-bob"), ("scope", "me")]).await)
            .await;
    assert!(!exactly.body.contains(r#""scope""#), "granted as asked: no scope in the answer");
}

on_every_backend! {
    async fn a_refresh_keeps_the_granted_scopes_and_may_ask_for_fewer_never_more(backend) {
        let refresh = Some(RefreshConfig { lifetime: Duration::from_secs(86_400), idle: Duration::from_secs(3600) });
        let config = Config { refresh_tokens: refresh, ..scopes_config() };
        let Some((app, _store)) = TestApp::on_with(backend, config).await else { return };
        let refresh_with = async |token: &str, scope: Option<&str>| {
            let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
            form.extend(scope.map(|scope| ("scope", scope)));
            let answer = Answer::of(app.post_form(&form).await).await;
            (answer.status, serde_json::from_str::<Value>(&answer.body).unwrap())
        };
        let login = login_asking(&app, "johndoe", "secret", "items me").await;
        let login: Value = serde_json::from_str(&login.body).unwrap();

        let (status, kept) = refresh_with(login["refresh_token"].as_str().unwrap(), None).await;
        assert_eq!(status, 200, "{kept}");
        assert!(payload(kept["access_token"].as_str().unwrap()).contains(r#""scope":"items me""#));

        let (status, fewer) = refresh_with(kept["refresh_token"].as_str().unwrap(), Some("me")).await;
        assert_eq!(status, 200, "{fewer}");
        assert!(payload(fewer["access_token"].as_str().unwrap()).contains(r#""scope":"me""#));
        assert_eq!(app.get_with_token("/users/me/items/", fewer["access_token"].as_str().unwrap()).await.status(), 401);

        // The family keeps the login's scopes: the next refresh may ask for both again.
        let (status, again) = refresh_with(fewer["refresh_token"].as_str().unwrap(), Some("items me")).await;
        assert_eq!(status, 200, "{again}");
        assert!(payload(again["access_token"].as_str().unwrap()).contains(r#""scope":"items me""#));

        let (status, broader) = refresh_with(again["refresh_token"].as_str().unwrap(), Some("me admin")).await;
        assert_eq!((status, broader), (400, json!({"error": "invalid_scope", "error_description": "The requested scope is broader than the one granted"})));
        let (status, _) = refresh_with(again["refresh_token"].as_str().unwrap(), None).await;
        assert_eq!(status, 200, "a refused scope leaves the refresh token as it was");
    }
}

on_every_database! {
    async fn scope_lists_set_with_the_cli_decide_what_the_next_login_is_granted(backend) {
        let Some(test_store) = backend.seeded().await else { return };
        let url = test_store.url.clone().unwrap();
        let scopes_var = [("SCOPES", CHAPTER_SCOPES)];
        let run = |args: &[&str], stdin: &str| cli_with(Some(&url), &scopes_var, args, stdin);
        let app = TestApp::spawn_with(scopes_config(), test_store.store.clone()).await;
        let granted = async |asked: &str| -> String {
            let answer = login_asking(&app, "dave", "pw-dave", asked).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let body: Value = serde_json::from_str(&answer.body).unwrap();
            let claims: Value = serde_json::from_str(&payload(body["access_token"].as_str().unwrap())).unwrap();
            claims["scope"].as_str().unwrap().to_owned()
        };

        assert_exit(&run(&["users", "add", "dave", "--scopes", "me"], "pw-dave\n"), 0, "");
        let list = stdout(&run(&["users", "list"], ""));
        assert!(list.lines().any(|line| line.starts_with("dave") && line.ends_with("  me")), "{list}");
        time_until("dave can log in", async || login_asking(&app, "dave", "pw-dave", "").await.status == 200).await;
        assert_eq!(granted("me items").await, "me");

        assert_exit(&run(&["users", "set-scopes", "dave", "me,items"], ""), 0, "");
        time_until("both scopes granted", async || granted("me items").await == "me items").await;
        assert_exit(&run(&["users", "set-scopes", "dave", ""], ""), 0, "");
        time_until("no scope granted", async || granted("me items").await.is_empty()).await;
        assert_exit(&run(&["users", "set-scopes", "dave", "--all"], ""), 0, "");
        time_until("every scope again", async || granted("items me").await == "items me").await;
        let json: Value = serde_json::from_str(&stdout(&run(&["users", "list", "--json"], ""))).unwrap();
        assert_eq!(json["dave"].get("scopes"), None, "--all: no list");

        assert_exit(&run(&["users", "set-scopes", "dave", "me,admin"], ""), 1, r#"scope "admin" is not in SCOPES (me, items)"#);
        assert_exit(&run(&["users", "set-scopes", "dave", "read all"], ""), 1, "RFC 6749");
        assert_exit(&run(&["users", "set-scopes", "ghost", "me"], ""), 1, r#"no user "ghost""#);
        assert_exit(&run(&["users", "add", "erin", "--scopes", "admin"], "pw\n"), 1, "not in SCOPES");
        assert_eq!(run(&["users", "set-scopes", "dave"], "").status.code(), Some(2), "a list or --all");
        assert_eq!(granted("items me").await, "items me", "refused commands changed nothing");
    }
}
