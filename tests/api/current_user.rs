//! `GET /users/me/` and `/users/me/items/`: bearer parsing as FastAPI does it, token checks as
//! PyJWT does them (plus `exp` required), and the inactive user.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::backends::on_every_backend;
use crate::helpers::{Answer, PYJWT_JOHNDOE_TOKEN, TUTORIAL_KEY, TestApp, forge, now, token_with_claims};

const ME: &str =
    r#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#;
const ITEMS: &str = r#"[{"item_id":"Foo","owner":"johndoe"}]"#;
const NOT_AUTHENTICATED: &str = "Not authenticated";
const INVALID: &str = "Could not validate credentials";

#[tokio::test]
async fn without_a_bearer_header_the_answer_is_not_authenticated() {
    let app = TestApp::spawn().await;

    for authorization in [
        None,
        Some(""),
        Some("Basic dXNlcjpwYXNz"),
        Some("Token abc"),
        Some("Bearer:abc"),
        Some("Bearer,abc"),
        Some("Bearer\tabc"),
    ] {
        let answer = Answer::of(app.get("/users/me/", authorization).await).await;
        answer.assert_401(NOT_AUTHENTICATED);
    }
    // Tokens in the query string or a cookie are never read.
    let query = app.get(&format!("/users/me/?access_token={PYJWT_JOHNDOE_TOKEN}"), None).await;
    Answer::of(query).await.assert_401(NOT_AUTHENTICATED);
    let cookie = app
        .client
        .get(format!("{}/users/me/", app.address))
        .header("cookie", format!("access_token={PYJWT_JOHNDOE_TOKEN}"))
        .send()
        .await
        .unwrap();
    Answer::of(cookie).await.assert_401(NOT_AUTHENTICATED);
}

#[tokio::test]
async fn the_scheme_is_case_insensitive_and_the_token_is_trimmed() {
    let app = TestApp::spawn().await;
    let token = PYJWT_JOHNDOE_TOKEN;

    for value in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer    {token}"),
        format!("Bearer {token}   "),
        format!("Bearer \t{token}\t"),
    ] {
        Answer::of(app.get("/users/me/", Some(&value)).await).await.assert_json(200, ME);
    }
}

#[tokio::test]
async fn an_empty_or_garbage_token_cannot_be_validated() {
    let app = TestApp::spawn().await;
    let token = PYJWT_JOHNDOE_TOKEN;
    let (signing_input, _) = token.rsplit_once('.').unwrap();

    for value in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer garbage".to_owned(),
        format!("Bearer {token} extra"),
        format!("Bearer {signing_input}"),
        format!("Bearer {token}.abc"),
        format!("Bearer {signing_input}."),
        format!("Bearer {token}x"),
        format!("Bearer {}", "A".repeat(20_000)),
    ] {
        Answer::of(app.get("/users/me/", Some(&value)).await).await.assert_401(INVALID);
    }
}

#[tokio::test]
async fn expired_forged_and_wrong_algorithm_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let key = TUTORIAL_KEY.as_bytes();
    let later = now() + 600;
    let claims = json!({"sub": "johndoe", "exp": later});
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap());

    let expired = token_with_claims(&json!({"sub": "johndoe", "exp": now() - 1}));
    let expiring_now = token_with_claims(&json!({"sub": "johndoe", "exp": now()}));
    let other_key = forge(&json!({"alg": "HS256", "typ": "JWT"}), &claims, b"not the key");
    let hex_decoded_key = forge(&json!({"alg": "HS256"}), &claims, &[0x09, 0xd2, 0x5e]);
    let alg_none = format!("{}.{}.", encode(&json!({"alg": "none", "typ": "JWT"})), encode(&claims));
    let lowercase_alg = forge(&json!({"alg": "hs256", "typ": "JWT"}), &claims, key);
    let mut refused = vec![expired, expiring_now, other_key, hex_decoded_key, alg_none, lowercase_alg];
    for (alg, algorithm) in
        [("HS384", jsonwebtoken::Algorithm::HS384), ("HS512", jsonwebtoken::Algorithm::HS512)]
    {
        let header = jsonwebtoken::Header::new(algorithm);
        let token =
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        refused.push(token);
    }
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        refused.push(forge(&json!({"alg": alg, "typ": "JWT"}), &claims, key));
    }

    for token in refused {
        Answer::of(app.get_with_token("/users/me/", &token).await).await.assert_401(INVALID);
    }
}

#[tokio::test]
async fn claims_are_checked_as_pyjwt_checks_them_with_exp_required_and_dates_numbers() {
    let app = TestApp::spawn().await;
    let later = now() + 600;

    let refused = [
        json!({"sub": "johndoe"}),
        json!({"sub": "johndoe", "exp": "soon"}),
        json!({"sub": "johndoe", "exp": later, "nbf": later}),
        json!({"sub": "johndoe", "exp": later, "iat": later}),
        json!({"exp": later}),
        json!({"sub": 42, "exp": later}),
        json!({"sub": ["johndoe"], "exp": later}),
        json!({"sub": "nobody", "exp": later}),
        json!({"sub": "", "exp": later}),
        json!({"sub": "johndoe", "exp": later, "aud": "api"}),
        json!({"sub": "johndoe", "exp": later, "jti": 7}),
        // RFC 7519's NumericDate is a JSON number; PyJWT also takes these.
        json!({"sub": "johndoe", "exp": later.to_string()}),
        json!({"sub": "johndoe", "exp": later, "iat": (now() - 5).to_string()}),
        json!({"sub": "johndoe", "exp": later, "nbf": true}),
    ];
    for claims in refused {
        let answer = Answer::of(app.get_with_token("/users/me/", &token_with_claims(&claims)).await).await;
        answer.assert_401(INVALID);
    }

    let accepted = [
        json!({"sub": "johndoe", "exp": later, "iat": now() - 5, "nbf": now() - 5}),
        json!({"sub": "johndoe", "exp": later as f64 + 0.5}),
        json!({"sub": "johndoe", "exp": later, "aud": "", "iss": "anyone", "jti": "id-1"}),
    ];
    for claims in accepted {
        Answer::of(app.get_with_token("/users/me/", &token_with_claims(&claims)).await)
            .await
            .assert_json(200, ME);
    }
}

#[tokio::test]
async fn critical_headers_and_key_hints_are_never_obeyed() {
    let app = TestApp::spawn().await;
    let key = TUTORIAL_KEY.as_bytes();
    let claims = json!({"sub": "johndoe", "exp": now() + 600});

    let crit = forge(&json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}), &claims, key);
    Answer::of(app.get_with_token("/users/me/", &crit).await).await.assert_401(INVALID);
    let unknown_crit = forge(&json!({"alg": "HS256", "crit": ["foo"], "foo": 1}), &claims, key);
    Answer::of(app.get_with_token("/users/me/", &unknown_crit).await).await.assert_401(INVALID);
    // kid/jku/x5u do not pick the key: signed with ours, they are fine; signed otherwise, not.
    let hinted = json!({"alg": "HS256", "kid": "other", "jku": "http://evil.example/jwks", "x5u": "http://evil.example/x"});
    let ours = forge(&hinted, &claims, key);
    Answer::of(app.get_with_token("/users/me/", &ours).await).await.assert_json(200, ME);
    let theirs = forge(&hinted, &claims, b"evil key");
    Answer::of(app.get_with_token("/users/me/", &theirs).await).await.assert_401(INVALID);
}

on_every_backend! {
    async fn a_logged_in_user_reads_themself_and_their_items(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };
        let token = app.token_for("johndoe", "secret").await;

        let me = Answer::of(app.get_with_token("/users/me/", &token).await).await;
        let items = Answer::of(app.get_with_token("/users/me/items/", &token).await).await;

        me.assert_json(200, ME);
        assert_eq!(me.header("cache-control"), Some("no-store"));
        assert!(!me.body.contains("hashed_password") && !me.body.contains("argon2"));
        items.assert_json(200, ITEMS);
        assert_eq!(items.header("cache-control"), Some("no-store"));
    }

    async fn the_slashless_paths_answer_directly(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };
        let token = app.token_for("johndoe", "secret").await;

        Answer::of(app.get_with_token("/users/me", &token).await).await.assert_json(200, ME);
        Answer::of(app.get_with_token("/users/me/items", &token).await).await.assert_json(200, ITEMS);
    }

    async fn a_token_minted_by_the_reference_app_is_accepted(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };

        let me = Answer::of(app.get_with_token("/users/me/", PYJWT_JOHNDOE_TOKEN).await).await;

        me.assert_json(200, ME);
    }

    async fn a_disabled_user_gets_400_inactive_user(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };
        let token = app.token_for("alice", "secretalice").await;

        for path in ["/users/me/", "/users/me/items/"] {
            let answer = Answer::of(app.get_with_token(path, &token).await).await;
            answer.assert_json(400, r#"{"detail":"Inactive user"}"#);
            assert_eq!(answer.header("www-authenticate"), None);
        }
    }

    async fn a_token_for_a_user_no_longer_in_the_table_is_refused(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };
        let token = token_with_claims(&json!({"sub": "JohnDoe", "exp": now() + 600}));

        Answer::of(app.get_with_token("/users/me/items/", &token).await).await.assert_401(INVALID);
    }
}
