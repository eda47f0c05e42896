//! `POST /token`: the OAuth2 password form, FastAPI's 422 bodies, and the token it returns.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::backends::on_every_backend;
use crate::helpers::{Answer, BOTH_MISSING, TestApp, now};

const INCORRECT: &str = "Incorrect username or password";

fn missing(field: &str) -> String {
    format!(r#"{{"type":"missing","loc":["body","{field}"],"msg":"Field required","input":null}}"#)
}

fn pattern_mismatch(input: &str) -> String {
    format!(
        r#"{{"type":"string_pattern_mismatch","loc":["body","grant_type"],"msg":"String should match pattern '^password$'","input":{},"ctx":{{"pattern":"^password$"}}}}"#,
        serde_json::to_string(input).unwrap()
    )
}

#[tokio::test]
async fn the_optional_oauth2_fields_are_accepted_and_unknown_fields_ignored() {
    let app = TestApp::spawn().await;

    let response = app
        .post_form(&[
            ("grant_type", "password"),
            ("username", "johndoe"),
            ("password", "secret"),
            ("scope", "me items"),
            ("client_id", "cli"),
            ("client_secret", "shh"),
            ("extra", "ignored"),
        ])
        .await;

    assert_eq!(response.status(), 200);
    // An empty grant_type counts as absent, as in FastAPI.
    let empty_grant =
        app.post_form(&[("grant_type", ""), ("username", "johndoe"), ("password", "secret")]).await;
    assert_eq!(empty_grant.status(), 200);
}

#[tokio::test]
async fn missing_or_empty_credentials_get_one_missing_entry_per_field() {
    let app = TestApp::spawn().await;

    let username_only = Answer::of(app.post_form(&[("username", "johndoe")]).await).await;
    username_only.assert_json(422, &format!(r#"{{"detail":[{}]}}"#, missing("password")));
    let empty_username = Answer::of(app.post_form(&[("username", ""), ("password", "secret")]).await).await;
    empty_username.assert_json(422, &format!(r#"{{"detail":[{}]}}"#, missing("username")));
    let nothing = Answer::of(app.post_form(&[]).await).await;
    nothing.assert_json(422, BOTH_MISSING);
    let bare_name = Answer::of(
        app.post_token_body(Some("application/x-www-form-urlencoded"), "username&password=secret").await,
    )
    .await;
    bare_name.assert_json(422, &format!(r#"{{"detail":[{}]}}"#, missing("username")));
}

#[tokio::test]
async fn bodies_that_are_not_forms_read_as_an_empty_form_as_in_fastapi() {
    let app = TestApp::spawn().await;
    let credentials = "username=johndoe&password=secret";

    for (content_type, body) in [
        (Some("application/json"), r#"{"username":"johndoe","password":"secret"}"#),
        (Some("application/json"), "{bad"),
        (Some("text/plain"), credentials),
        (None, credentials),
        (Some("multipart/mixed; boundary=x"), credentials),
        (Some("application/x-www-form-urlencoded"), ""),
        (Some("multipart/form-data; boundary=x"), ""),
    ] {
        let answer = Answer::of(app.post_token_body(content_type, body).await).await;
        answer.assert_json(422, BOTH_MISSING);
    }
}

#[tokio::test]
async fn credentials_in_the_query_string_are_ignored() {
    let app = TestApp::spawn().await;

    let response = app
        .client
        .post(format!("{}/token?username=johndoe&password=secret", app.address))
        .send()
        .await
        .unwrap();

    Answer::of(response).await.assert_json(422, BOTH_MISSING);
}

#[tokio::test]
async fn a_grant_type_other_than_password_gets_the_pattern_error_first() {
    let app = TestApp::spawn().await;

    let wrong = Answer::of(
        app.post_form(&[
            ("grant_type", "client_credentials"),
            ("username", "johndoe"),
            ("password", "secret"),
        ])
        .await,
    )
    .await;
    wrong.assert_json(422, &format!(r#"{{"detail":[{}]}}"#, pattern_mismatch("client_credentials")));

    let alone = Answer::of(app.post_form(&[("password", "secret"), ("grant_type", "PASSWORD")]).await).await;
    alone.assert_json(
        422,
        &format!(r#"{{"detail":[{},{}]}}"#, pattern_mismatch("PASSWORD"), missing("username")),
    );

    let newline = Answer::of(
        app.post_form(&[("grant_type", "password\n"), ("username", "a"), ("password", "b")]).await,
    )
    .await;
    newline.assert_json(422, &format!(r#"{{"detail":[{}]}}"#, pattern_mismatch("password\n")));
}

#[tokio::test]
async fn form_values_are_decoded_as_starlette_decodes_them() {
    let app = TestApp::spawn().await;
    let form = Some("application/x-www-form-urlencoded");

    // Percent-escapes in names and values, `+` as space.
    let escaped = app.post_token_body(form, "user%6Eame=%6Aohndoe&password=%73ecret").await;
    assert_eq!(escaped.status(), 200);
    // Content type in any case, with parameters.
    let upper = app
        .post_token_body(
            Some("APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8"),
            "username=johndoe&password=secret",
        )
        .await;
    assert_eq!(upper.status(), 200);
    // `;` is not a separator, so the username is `johndoe;password=secret` and password is missing.
    let semicolon = Answer::of(app.post_token_body(form, "username=johndoe;password=secret").await).await;
    semicolon.assert_json(422, &format!(r#"{{"detail":[{}]}}"#, missing("password")));
    // Invalid escapes stay literal, bad UTF-8 becomes U+FFFD, raw bytes are Latin-1.
    for (raw, shown) in
        [(&b"%zz"[..], "%zz"), (b"%ff", "\u{fffd}"), (b"\xe9", "\u{e9}"), (b"\xc3\xa9", "\u{c3}\u{a9}")]
    {
        let mut body = b"username=a&password=b&grant_type=".to_vec();
        body.extend_from_slice(raw);
        let answer = Answer::of(app.post_token_body(form, body).await).await;
        answer.assert_json(422, &format!(r#"{{"detail":[{}]}}"#, pattern_mismatch(shown)));
    }
}

#[tokio::test]
async fn a_file_where_a_string_belongs_is_a_string_type_error() {
    let app = TestApp::spawn().await;
    let file = reqwest::multipart::Part::bytes(b"johndoe".to_vec()).file_name("u.txt");
    let form = reqwest::multipart::Form::new().part("username", file).text("password", "secret");

    let response = app.client.post(format!("{}/token", app.address)).multipart(form).send().await.unwrap();

    Answer::of(response).await.assert_json(
        422,
        r#"{"detail":[{"type":"string_type","loc":["body","username"],"msg":"Input should be a valid string"}]}"#,
    );
}

#[tokio::test]
async fn malformed_multipart_gets_starlettes_400_messages() {
    let app = TestApp::spawn().await;

    let no_boundary =
        Answer::of(app.post_token_body(Some("multipart/form-data"), "username=johndoe").await).await;
    no_boundary.assert_json(400, r#"{"detail":"Missing boundary in multipart."}"#);
    let garbage = Answer::of(
        app.post_token_body(Some("multipart/form-data; boundary=x"), "username=johndoe&password=secret")
            .await,
    )
    .await;
    garbage.assert_json(400, r#"{"detail":"Invalid multipart data."}"#);
    let nameless = "--x\r\nContent-Disposition: form-data\r\n\r\njohndoe\r\n--x--\r\n";
    let unnamed =
        Answer::of(app.post_token_body(Some("multipart/form-data; boundary=x"), nameless).await).await;
    unnamed
        .assert_json(400, r#"{"detail":"The Content-Disposition header field \"name\" must be provided."}"#);
}

#[tokio::test]
async fn multipart_values_are_decoded_as_starlette_decodes_them() {
    let app = TestApp::spawn().await;
    let body = |username: &[u8], filename: Option<&str>| {
        let disposition = match filename {
            Some(name) => format!(r#"form-data; name="username"; filename="{name}""#),
            None => r#"form-data; name="username""#.to_owned(),
        };
        let mut body = format!("--B\r\nContent-Disposition: {disposition}\r\n\r\n").into_bytes();
        body.extend_from_slice(username);
        body.extend_from_slice(
            b"\r\n--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n--B--\r\n",
        );
        body
    };
    let post = |content_type: &'static str, body: Vec<u8>| app.post_token_body(Some(content_type), body);
    let multipart = "multipart/form-data; boundary=B";

    // No byte-order-mark sniffing: a BOM is part of the value, so this user does not exist.
    let bom = post(multipart, body(b"\xef\xbb\xbfjohndoe", None)).await;
    Answer::of(bom).await.assert_401(INCORRECT);
    // A part with a filename is a file, even with an empty name or no content...
    let not_a_string = r#"{"detail":[{"type":"string_type","loc":["body","username"],"msg":"Input should be a valid string"}]}"#;
    Answer::of(post(multipart, body(b"johndoe", Some(""))).await).await.assert_json(422, not_a_string);
    Answer::of(post(multipart, body(b"", Some("a.txt"))).await).await.assert_json(422, not_a_string);
    // ...but an empty one with an empty name counts as absent, as in FastAPI.
    let absent = Answer::of(post(multipart, body(b"", Some(""))).await).await;
    absent.assert_json(
        422,
        r#"{"detail":[{"type":"missing","loc":["body","username"],"msg":"Field required","input":null}]}"#,
    );
    // The form's charset is honoured; bytes that are not UTF-8 fall back to Latin-1.
    let grant = |value: &[u8]| {
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\n".to_vec();
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n--B--\r\n");
        body
    };
    let latin1 = post("multipart/form-data; boundary=B; charset=latin-1", grant("é".as_bytes())).await;
    let text = Answer::of(latin1).await.body;
    assert!(text.contains(r#""input":"\u00c3\u00a9""#) || text.contains(r#""input":"Ã©""#), "{text}");
    let invalid = Answer::of(post(multipart, grant(b"\xff\xfe")).await).await;
    assert!(invalid.body.contains(r#""input":"ÿþ""#), "{}", invalid.body);
}

on_every_backend! {
    async fn the_right_password_returns_a_bearer_token_for_the_user(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };

        let answer = Answer::of(app.login("johndoe", "secret").await).await;

        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        assert_eq!(answer.header("pragma"), Some("no-cache"));
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(answer.body, format!(r#"{{"access_token":"{token}","token_type":"bearer"}}"#));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "PyJWT's header bytes");
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "johndoe");
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp.abs_diff(now() + 30 * 60) <= 5, "exp is now + 30 minutes, got {exp}");
        assert_eq!(claims.as_object().unwrap().len(), 2, "only sub and exp");
    }

    async fn a_multipart_form_logs_in_too(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };
        let form = reqwest::multipart::Form::new().text("username", "johndoe").text("password", "secret");

        let response = app.client.post(format!("{}/token", app.address)).multipart(form).send().await.unwrap();

        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "bearer");
    }

    async fn a_wrong_password_and_an_unknown_user_get_the_same_401(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };

        for (username, password) in [
            ("johndoe", "wrong"),
            ("nobody", "secret"),
            ("JohnDoe", "secret"),
            ("johndoe ", "secret"),
            (" ", "secret"),
            ("johndoe", "secret "),
        ] {
            let answer = Answer::of(app.login(username, password).await).await;
            answer.assert_401(INCORRECT);
        }
    }

    async fn the_disabled_user_can_still_log_in(backend) {
        let Some((app, _store)) = TestApp::on(backend).await else { return };

        let response = app.login("alice", "secretalice").await;

        assert_eq!(response.status(), 200);
    }
}
