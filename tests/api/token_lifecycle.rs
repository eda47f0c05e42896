//! Refresh tokens with rotation and reuse detection, revocation (RFC 7009), logging out
//! everywhere, and `TOKEN_ERRORS=rfc6749`; every test that keeps tokens runs on every store.

use std::time::{Duration, Instant};

use futures::future::join_all;
use oauth2_jwt_server::api::error::ErrorStyle;
use oauth2_jwt_server::auth::refresh::RefreshConfig;
use oauth2_jwt_server::auth::throttle::ThrottleConfig;
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::store::Update;
use serde_json::Value;

use crate::backends::{Backend, TestStore, on_every_backend};
use crate::helpers::{Answer, TestApp, test_config};

const INVALID_GRANT: &str =
    r#"{"error":"invalid_grant","error_description":"The refresh token is invalid, expired or revoked"}"#;

fn refreshing(lifetime: Duration, idle: Duration) -> Config {
    Config { refresh_tokens: Some(RefreshConfig { lifetime, idle }), ..test_config() }
}

fn thirty_days() -> Config {
    refreshing(Duration::from_secs(30 * 86_400), Duration::from_secs(15 * 86_400))
}

async fn spawn(backend: Backend, config: Config) -> Option<(TestApp, TestStore)> {
    TestApp::on_with(backend, config).await
}

/// The token answer's fields.
struct Tokens {
    access: String,
    refresh: String,
}

/// Logs in as johndoe and reads the answer of RFC 6749 §5.1, checking its shape.
async fn login(app: &TestApp) -> Tokens {
    let answer = Answer::of(app.login("johndoe", "secret").await).await;
    tokens_from(&answer)
}

fn tokens_from(answer: &Answer) -> Tokens {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 4, "{}", answer.body);
    let at = |key: &str| answer.body.find(&format!(r#""{key}":"#)).unwrap();
    let order = [at("access_token"), at("token_type"), at("expires_in"), at("refresh_token")];
    assert!(order.is_sorted(), "RFC 6749 §5.1's order: {}", answer.body);
    assert_eq!((body["token_type"].as_str(), body["expires_in"].as_u64()), (Some("bearer"), Some(1800)));
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh.len() >= 43, "at least 256 bits: {refresh}");
    Tokens { access: body["access_token"].as_str().unwrap().to_owned(), refresh }
}

async fn refresh(app: &TestApp, token: &str) -> Answer {
    Answer::of(app.post_form(&[("grant_type", "refresh_token"), ("refresh_token", token)]).await).await
}

async fn revoke(app: &TestApp, fields: &[(&str, &str)]) -> Answer {
    Answer::of(app.client.post(format!("{}/revoke", app.address)).form(fields).send().await.unwrap()).await
}

async fn me_status(app: &TestApp, access: &str) -> u16 {
    app.get_with_token("/users/me/", access).await.status().as_u16()
}

/// Waits (up to 2 s) until `/users/me/` answers `status` for `access`.
async fn until_me_is(app: &TestApp, access: &str, status: u16) {
    let started = Instant::now();
    while me_status(app, access).await != status {
        assert!(started.elapsed() < Duration::from_secs(2), "not {status} after 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_refresh_tokens_the_token_answer_and_its_errors_are_the_tutorials() {
    let app = TestApp::spawn().await;

    let answer = Answer::of(app.login("johndoe", "secret").await).await;
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(answer.body, format!(r#"{{"access_token":"{token}","token_type":"bearer"}}"#));
    let grant =
        Answer::of(app.post_form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]).await).await;
    assert_eq!(grant.status, 422, "FastAPI's pattern error: {}", grant.body);
    assert!(grant.body.contains("string_pattern_mismatch"));
    revoke(&app, &[("token", "x")]).await.assert_json(404, r#"{"detail":"Not Found"}"#);
}

on_every_backend! {
    async fn a_refresh_rotates_the_token_and_the_old_one_stops_working(backend) {
        let Some((app, _store)) = spawn(backend, thirty_days()).await else { return };
        let first = login(&app).await;

        let second = tokens_from(&refresh(&app, &first.refresh).await);

        assert_ne!((&second.access, &second.refresh), (&first.access, &first.refresh));
        assert_eq!(me_status(&app, &second.access).await, 200);
        let third = tokens_from(&refresh(&app, &second.refresh).await);
        assert_eq!(me_status(&app, &third.access).await, 200);
        for (name, answer) in [("garbage", refresh(&app, "not-a-token").await), ("empty-ish", refresh(&app, "x").await)] {
            answer.assert_json(400, INVALID_GRANT);
            assert_eq!(answer.header("cache-control"), Some("no-store"), "{name}");
        }
    }

    async fn presenting_a_rotated_token_again_revokes_the_whole_family(backend) {
        let Some((app, _store)) = spawn(backend, thirty_days()).await else { return };
        let stolen = login(&app).await;
        // The owner refreshes; then the thief replays the copy it stole.
        let owners = tokens_from(&refresh(&app, &stolen.refresh).await);

        refresh(&app, &stolen.refresh).await.assert_json(400, INVALID_GRANT);

        refresh(&app, &owners.refresh).await.assert_json(400, INVALID_GRANT);
        // Another login is a new family, untouched.
        let other = login(&app).await;
        assert_eq!(refresh(&app, &other.refresh).await.status, 200);
    }

    async fn the_same_token_refreshed_twice_at_once_leaves_nobody_with_a_live_family(backend) {
        let Some((app, _store)) = spawn(backend, thirty_days()).await else { return };
        let first = login(&app).await;

        let answers = join_all((0..2).map(|_| refresh(&app, &first.refresh))).await;

        let won: Vec<Tokens> = answers.iter().filter(|answer| answer.status == 200).map(tokens_from).collect();
        assert!(won.len() <= 1, "at most one exchange succeeds");
        for answer in answers.iter().filter(|answer| answer.status != 200) {
            answer.assert_json(400, INVALID_GRANT);
        }
        for tokens in won {
            refresh(&app, &tokens.refresh).await.assert_json(400, INVALID_GRANT);
        }
    }

    async fn a_family_ends_at_its_absolute_lifetime_and_an_unused_token_after_its_idle_time(backend) {
        let config = refreshing(Duration::from_secs(3), Duration::from_secs(1));
        let Some((app, _store)) = spawn(backend, config).await else { return };

        let idle = login(&app).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        refresh(&app, &idle.refresh).await.assert_json(400, INVALID_GRANT);

        // Refreshed within its idle time, a family still ends at its absolute lifetime.
        let mut current = login(&app).await;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2500) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            current = tokens_from(&refresh(&app, &current.refresh).await);
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        refresh(&app, &current.refresh).await.assert_json(400, INVALID_GRANT);
    }

    async fn revoking_a_refresh_token_ends_its_family(backend) {
        let Some((app, _store)) = spawn(backend, thirty_days()).await else { return };
        let first = login(&app).await;
        let second = tokens_from(&refresh(&app, &first.refresh).await);

        let revoked = revoke(&app, &[("token", &second.refresh), ("token_type_hint", "refresh_token")]).await;

        assert_eq!((revoked.status, revoked.body.as_str()), (200, ""));
        refresh(&app, &second.refresh).await.assert_json(400, INVALID_GRANT);
        assert_eq!(me_status(&app, &second.access).await, 200, "the access token lives on until it expires");
    }

    async fn a_revoked_access_token_is_refused_until_it_expires(backend) {
        let Some((app, _store)) = spawn(backend, thirty_days()).await else { return };
        let tokens = login(&app).await;
        let other = login(&app).await;

        let revoked = revoke(&app, &[("token", &tokens.access)]).await;

        assert_eq!((revoked.status, revoked.body.as_str()), (200, ""));
        Answer::of(app.get_with_token("/users/me/", &tokens.access).await).await.assert_401("Could not validate credentials");
        assert_eq!(me_status(&app, &other.access).await, 200, "other tokens are untouched");
        // The hint is only a hint: a refresh token sent as an access token is found too.
        assert_eq!(revoke(&app, &[("token", &other.refresh), ("token_type_hint", "access_token")]).await.status, 200);
        refresh(&app, &other.refresh).await.assert_json(400, INVALID_GRANT);
    }

    async fn revocation_answers_200_for_unknown_tokens_and_400_without_one(backend) {
        let Some((app, _store)) = spawn(backend, thirty_days()).await else { return };

        for fields in [vec![("token", "never-issued")], vec![("token", "a.b.c"), ("token_type_hint", "refresh_token")], vec![("token", "x"), ("token_type_hint", "id_token")]] {
            let answer = revoke(&app, &fields).await;
            assert_eq!((answer.status, answer.body.as_str()), (200, ""), "{fields:?}");
        }
        revoke(&app, &[]).await.assert_json(400, r#"{"error":"invalid_request","error_description":"Missing token"}"#);
        revoke(&app, &[("token", "a"), ("token", "b")])
            .await
            .assert_json(400, r#"{"error":"invalid_request","error_description":"Repeated parameter: token"}"#);
        let wrong_method = Answer::of(app.get("/revoke", None).await).await;
        assert_eq!((wrong_method.status, wrong_method.header("allow")), (405, Some("POST")));
    }

    async fn logging_out_everywhere_ends_refresh_tokens_and_earlier_access_tokens(backend) {
        let Some((app, test_store)) = spawn(backend, thirty_days()).await else { return };
        // Logging out everywhere, then a new password (as the CLI makes them: revoke-tokens and
        // set-password), each right after a login.
        for new_password in [None, Some(johndoe_hash())] {
            let tokens = login(&app).await;

            let update = Update { password: new_password, revoke_tokens_before: Some(cutoff()), ..Update::default() };
            test_store.store.update("johndoe", update).await.unwrap();

            until_me_is(&app, &tokens.access, 401).await;
            refresh(&app, &tokens.refresh).await.assert_json(400, INVALID_GRANT);
            // A login right after works at once, in the same second or not.
            let fresh = login(&app).await;
            assert_eq!(me_status(&app, &fresh.access).await, 200);
            assert_eq!(refresh(&app, &fresh.refresh).await.status, 200);
        }
    }

    async fn a_refresh_fails_for_a_disabled_or_removed_user(backend) {
        let Some((app, test_store)) = spawn(backend, thirty_days()).await else { return };
        let tokens = login(&app).await;

        test_store.store.update("johndoe", Update { disabled: Some(true), ..Update::default() }).await.unwrap();
        refresh(&app, &tokens.refresh).await.assert_json(400, INVALID_GRANT);

        test_store.store.update("johndoe", Update { disabled: Some(false), ..Update::default() }).await.unwrap();
        let again = login(&app).await;
        test_store.store.remove("johndoe").await.unwrap();
        refresh(&app, &again.refresh).await.assert_json(400, INVALID_GRANT);
        until_me_is(&app, &again.access, 401).await;
    }

    async fn guessing_refresh_tokens_is_throttled_like_guessing_passwords(backend) {
        let throttle = ThrottleConfig { ip_max_failures: 5, ..ThrottleConfig::default() };
        let Some((app, _store)) = spawn(backend, Config { throttle, ..thirty_days() }).await else { return };

        for i in 0..5 {
            refresh(&app, &format!("guess-{i}")).await.assert_json(400, INVALID_GRANT);
        }
        let locked = refresh(&app, "guess-6").await;

        assert_eq!(locked.status, 429, "{}", locked.body);
        let body: Value = serde_json::from_str(&locked.body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(locked.header("retry-after").is_some());
    }
}

/// A cut-off made now, as the CLI makes it.
fn cutoff() -> i64 {
    oauth2_jwt_server::cli::users::tokens_cutoff()
}

/// johndoe's own hash (the password stays "secret").
fn johndoe_hash() -> String {
    crate::backends::seed_records()
        .into_iter()
        .find(|record| record.user.username == "johndoe")
        .unwrap()
        .hashed_password
}

#[tokio::test]
async fn with_rfc6749_errors_every_error_of_token_has_the_rfcs_shape() {
    let config = Config {
        token_errors: ErrorStyle::Rfc6749,
        throttle: ThrottleConfig { max_failures: 2, ..ThrottleConfig::default() },
        ..test_config()
    };
    let app = TestApp::spawn_with(config, oauth2_jwt_server::store::UserStore::seeded()).await;
    let rfc = |code: &str, description: &str| {
        format!(r#"{{"error":"{code}","error_description":"{description}"}}"#)
    };

    let wrong = Answer::of(app.login("johndoe", "wrong").await).await;
    wrong.assert_json(400, &rfc("invalid_grant", "Incorrect username or password"));
    assert_eq!(wrong.header("www-authenticate"), None);
    Answer::of(app.post_form(&[("username", "johndoe")]).await)
        .await
        .assert_json(400, &rfc("invalid_request", "password: Field required"));
    Answer::of(
        app.post_form(&[("grant_type", "client_credentials"), ("username", "a"), ("password", "b")]).await,
    )
    .await
    .assert_json(400, &rfc("unsupported_grant_type", "Only the password grant is supported"));
    Answer::of(app.post_token_body(Some("multipart/form-data"), "x").await)
        .await
        .assert_json(400, &rfc("invalid_request", "Missing boundary in multipart."));

    app.login("johndoe", "wrong").await;
    let throttled = Answer::of(app.login("johndoe", "secret").await).await;
    throttled.assert_json(429, &rfc("temporarily_unavailable", "Too many failed attempts, try again later"));
    assert!(throttled.header("retry-after").is_some());
    // The right password from another user, and everything outside /token, keep their shapes.
    assert_eq!(app.login("alice", "secretalice").await.status(), 200);
    Answer::of(app.get("/users/me/", None).await).await.assert_401("Not authenticated");
}
