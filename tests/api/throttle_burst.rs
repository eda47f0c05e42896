//! Bursts of simultaneous logins against the throttle: the check and the count are one step,
//! so a burst gets no more guesses than the threshold, and the rest is refused without hashing.

use std::collections::BTreeMap;

use futures::future::join_all;
use oauth2_jwt_server::auth::hash_pool::HashingConfig;
use oauth2_jwt_server::auth::throttle::ThrottleConfig;
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::store::{UserStore, users_file};

use crate::helpers::{Answer, TestApp, test_config};

const INCORRECT: &str = r#"{"detail":"Incorrect username or password"}"#;
const THROTTLED: &str = r#"{"detail":"Too many failed login attempts, try again later"}"#;
const JOHNDOE_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";

/// The server on its default thresholds (5 per username and client, 20 per username, 50 per
/// client), trusting 127.0.0.1 as a proxy so tests can speak for many client addresses.
async fn spawn_on_default_thresholds(users: UserStore) -> TestApp {
    let config = Config {
        throttle: ThrottleConfig::default(),
        trusted_proxies: "127.0.0.1".parse().unwrap(),
        ..test_config()
    };
    TestApp::spawn_with(config, users).await
}

/// Sends all the logins at once; returns the answers and how many passwords were hashed.
async fn burst(app: &TestApp, logins: Vec<(String, String, String)>) -> (Vec<Answer>, u64) {
    let hashed_before = app.state.auth.hasher.checks_done();
    let requests = logins.iter().map(|(username, password, client_ip)| {
        app.client
            .post(format!("{}/token", app.address))
            .header("x-forwarded-for", client_ip)
            .form(&[("username", username), ("password", password)])
            .send()
    });
    let mut answers = Vec::new();
    for response in join_all(requests).await {
        answers.push(Answer::of(response.unwrap()).await);
    }
    (answers, app.state.auth.hasher.checks_done() - hashed_before)
}

/// How many answers had each status.
fn tally(answers: &[Answer]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.status).or_default() += 1;
    }
    counts
}

/// Every answer is a 401 for a hashed guess or an immediate 429 with `Retry-After`.
fn assert_guesses_or_refusals(answers: &[Answer]) {
    for answer in answers {
        match answer.status {
            401 => answer.assert_401("Incorrect username or password"),
            429 => {
                answer.assert_json(429, THROTTLED);
                let retry_after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
                assert!(retry_after >= 1);
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
}

fn wrong_guesses(
    username: impl Fn(usize) -> String,
    client_ip: impl Fn(usize) -> String,
    n: usize,
) -> Vec<(String, String, String)> {
    (0..n).map(|i| (username(i), format!("wrong-{i}"), client_ip(i))).collect()
}

#[tokio::test]
async fn thirty_simultaneous_guesses_from_one_client_get_five_tries_and_the_rest_429_unhashed() {
    let app = spawn_on_default_thresholds(UserStore::seeded()).await;

    let (answers, hashed) =
        burst(&app, wrong_guesses(|_| "johndoe".into(), |_| "198.51.100.7".into(), 30)).await;

    assert_guesses_or_refusals(&answers);
    assert_eq!(tally(&answers), BTreeMap::from([(401, 5), (429, 25)]));
    assert_eq!(hashed, 5, "only the admitted guesses were hashed");
    // The five failures locked the username out for that client, right password or not.
    let locked = Answer::of(
        app.client
            .post(format!("{}/token", app.address))
            .header("x-forwarded-for", "198.51.100.7")
            .form(&[("username", "johndoe"), ("password", "secret")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    locked.assert_json(429, THROTTLED);
    assert_eq!(locked.header("retry-after"), Some("60"));
}

#[tokio::test]
async fn a_burst_for_an_unknown_username_is_answered_exactly_like_one_for_a_real_user() {
    let app = spawn_on_default_thresholds(UserStore::seeded()).await;

    let (known, known_hashed) =
        burst(&app, wrong_guesses(|_| "johndoe".into(), |_| "198.51.100.7".into(), 30)).await;
    let (unknown, unknown_hashed) =
        burst(&app, wrong_guesses(|_| "nobody".into(), |_| "198.51.100.8".into(), 30)).await;

    assert_eq!(tally(&known), tally(&unknown));
    assert_eq!(known_hashed, unknown_hashed, "unknown usernames cost the same dummy hash");
    let bodies = |answers: &[Answer]| {
        answers.iter().map(|a| a.body.clone()).collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(bodies(&known), bodies(&unknown));
    assert!(bodies(&unknown).contains(INCORRECT));
}

#[tokio::test]
async fn a_simultaneous_attack_on_one_username_from_sixty_addresses_gets_twenty_tries() {
    let app = spawn_on_default_thresholds(UserStore::seeded()).await;

    let (answers, hashed) =
        burst(&app, wrong_guesses(|_| "johndoe".into(), |i| format!("203.0.113.{}", i + 1), 60)).await;

    assert_guesses_or_refusals(&answers);
    assert_eq!(tally(&answers), BTreeMap::from([(401, 20), (429, 40)]));
    assert_eq!(hashed, 20);
}

#[tokio::test]
async fn one_client_spraying_eighty_usernames_at_once_gets_fifty_tries() {
    let app = spawn_on_default_thresholds(UserStore::seeded()).await;

    let (answers, hashed) =
        burst(&app, wrong_guesses(|i| format!("user{i}"), |_| "198.51.100.9".into(), 80)).await;

    assert_guesses_or_refusals(&answers);
    assert_eq!(tally(&answers), BTreeMap::from([(401, 50), (429, 30)]));
    assert_eq!(hashed, 50);
}

#[tokio::test]
async fn a_burst_of_right_passwords_for_distinct_users_is_all_served() {
    let users: serde_json::Map<String, serde_json::Value> = (0..16)
        .map(|i| {
            let name = format!("user{i}");
            (name.clone(), serde_json::json!({"username": name, "hashed_password": JOHNDOE_HASH}))
        })
        .collect();
    let records = users_file::parse(&serde_json::to_string(&users).unwrap(), |_| Ok(())).unwrap();
    let app = spawn_on_default_thresholds(UserStore::in_memory(records, "test")).await;

    let logins = (0..16).map(|i| (format!("user{i}"), "secret".to_owned(), "198.51.100.10".to_owned()));
    let (answers, hashed) = burst(&app, logins.collect()).await;

    assert_eq!(tally(&answers), BTreeMap::from([(200, 16)]), "none refused, none delayed by the throttle");
    assert_eq!(hashed, 16);
}

#[tokio::test]
async fn logins_shed_by_a_full_hashing_queue_do_not_count_as_failures() {
    let config = Config {
        throttle: ThrottleConfig { max_failures: 3, ..ThrottleConfig::default() },
        hashing: HashingConfig { workers: 1, lane_threads: 2, queue: 1 },
        ..test_config()
    };
    let app = TestApp::spawn_with(config, UserStore::seeded()).await;

    // Three places: one hashes, one waits in the queue, one (or two, if the worker has not
    // yet taken the first job) finds the queue full.
    let (answers, hashed) = burst(&app, wrong_guesses(|_| "johndoe".into(), |_| "127.0.0.1".into(), 3)).await;
    let counts = tally(&answers);
    let shed = counts.get(&503).copied().unwrap_or(0);
    assert!(shed >= 1, "{counts:?}");
    assert_eq!((counts.get(&401).copied().unwrap_or(0), hashed), (3 - shed, 3 - shed as u64));

    // Only the hashed failures counted, not three: the right password still gets in.
    assert_eq!(app.login("johndoe", "secret").await.status(), 200);
}
