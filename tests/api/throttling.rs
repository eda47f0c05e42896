//! Throttling over HTTP, on every store (with PostgreSQL the counters are shared through the
//! database): lockouts, their doubling, the exemption of a user's known address, and bursts of
//! simultaneous logins, where the check and the count are one step, so a burst gets no more
//! guesses than the threshold and the rest is refused without hashing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use oauth2_jwt_server::auth::hash_pool::HashingConfig;
use oauth2_jwt_server::auth::throttle::ThrottleConfig;
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::store::{UserRecord, users_file};

use crate::backends::{Backend, TestStore, on_every_backend, seed_records};
use crate::helpers::{Answer, TestApp, test_config};

const INCORRECT: &str = r#"{"detail":"Incorrect username or password"}"#;
const THROTTLED: &str = r#"{"detail":"Too many failed login attempts, try again later"}"#;
const JOHNDOE_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";

fn strict_throttle() -> ThrottleConfig {
    ThrottleConfig {
        enabled: true,
        max_failures: 3,
        user_max_failures: 100,
        ip_max_failures: 100,
        lockout: Duration::from_secs(2),
        max_lockout: Duration::from_secs(60),
        ..ThrottleConfig::default()
    }
}

/// The server on `backend` (seeded) with this throttle, trusting 127.0.0.1 as a proxy when
/// `proxied`, so tests can speak for many client addresses.
async fn spawn_throttled(
    backend: Backend,
    throttle: ThrottleConfig,
    proxied: bool,
) -> Option<(TestApp, TestStore)> {
    let trusted_proxies = if proxied { "127.0.0.1".parse().unwrap() } else { Default::default() };
    TestApp::on_with(backend, Config { throttle, trusted_proxies, ..test_config() }).await
}

/// A login as `username` that says it comes from `client_ip` (believed behind a trusted proxy).
async fn login_from(app: &TestApp, username: &str, password: &str, client_ip: &str) -> Answer {
    let response = app
        .client
        .post(format!("{}/token", app.address))
        .header("x-forwarded-for", client_ip)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    Answer::of(response).await
}

/// Sends all the logins at once; returns the answers and how many passwords were hashed.
async fn burst(app: &TestApp, logins: Vec<(String, String, String)>) -> (Vec<Answer>, u64) {
    let hashed_before = app.state.auth.hasher.checks_done();
    let answers =
        join_all(logins.iter().map(|(username, password, ip)| login_from(app, username, password, ip))).await;
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

/// Sixteen users with johndoe's password, besides the seed.
fn many_users() -> Vec<UserRecord> {
    let users: serde_json::Map<String, serde_json::Value> = (0..16)
        .map(|i| {
            let name = format!("user{i}");
            (name.clone(), serde_json::json!({"username": name, "hashed_password": JOHNDOE_HASH}))
        })
        .collect();
    let mut records = users_file::parse(&serde_json::to_string(&users).unwrap(), |_| Ok(())).unwrap();
    records.extend(seed_records());
    records
}

on_every_backend! {
    async fn repeated_failures_lock_the_username_out_from_that_client_with_429(backend) {
        let Some((app, _store)) = spawn_throttled(backend, strict_throttle(), false).await else { return };

        for _ in 0..3 {
            Answer::of(app.login("johndoe", "wrong").await).await.assert_401("Incorrect username or password");
        }
        let locked = Answer::of(app.login("johndoe", "secret").await).await;

        locked.assert_json(429, THROTTLED);
        assert_eq!(locked.header("retry-after"), Some("2"));
        // Another username from the same client is not locked by this key.
        assert_eq!(app.login("alice", "secretalice").await.status(), 200);
        // The lockout ends, and the next failure locks for twice as long.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        Answer::of(app.login("johndoe", "wrong").await).await.assert_401("Incorrect username or password");
        let longer = Answer::of(app.login("johndoe", "secret").await).await;
        assert_eq!((longer.status, longer.header("retry-after")), (429, Some("4")));
    }

    async fn throttling_looks_the_same_for_unknown_and_known_usernames(backend) {
        let Some((app, _store)) = spawn_throttled(backend, strict_throttle(), false).await else { return };

        let mut transcripts = Vec::new();
        for username in ["johndoe", "nobody"] {
            let mut transcript = Vec::new();
            for _ in 0..4 {
                let answer = Answer::of(app.login(username, "wrong").await).await;
                transcript.push((answer.status, answer.header("retry-after").map(str::to_owned), answer.body));
            }
            transcripts.push(transcript);
        }

        assert_eq!(transcripts[0], transcripts[1]);
        assert_eq!(transcripts[0][3].0, 429);
    }

    async fn a_successful_login_resets_the_usernames_count(backend) {
        let Some((app, _store)) = spawn_throttled(backend, strict_throttle(), false).await else { return };

        for _ in 0..2 {
            assert_eq!(app.login("johndoe", "wrong").await.status(), 401);
        }
        assert_eq!(app.login("johndoe", "secret").await.status(), 200);
        for _ in 0..2 {
            assert_eq!(app.login("johndoe", "wrong").await.status(), 401);
        }

        assert_eq!(app.login("johndoe", "secret").await.status(), 200);
    }

    async fn x_forwarded_for_counts_only_behind_a_trusted_proxy(backend) {
        let Some((untrusting, _store)) = spawn_throttled(backend, strict_throttle(), false).await else { return };
        for _ in 0..3 {
            login_from(&untrusting, "johndoe", "wrong", "198.51.100.1").await;
        }
        // Claiming another address changes nothing: the peer is what counts.
        assert_eq!(login_from(&untrusting, "johndoe", "secret", "203.0.113.9").await.status, 429);

        let Some((proxied, _store)) = spawn_throttled(backend, strict_throttle(), true).await else { return };
        for _ in 0..3 {
            login_from(&proxied, "johndoe", "wrong", "198.51.100.1").await;
        }
        assert_eq!(login_from(&proxied, "johndoe", "secret", "198.51.100.1").await.status, 429);
        assert_eq!(login_from(&proxied, "johndoe", "secret", "203.0.113.9").await.status, 200);
    }

    async fn a_distributed_attack_on_one_username_spares_the_users_known_address(backend) {
        let throttle = ThrottleConfig { user_max_failures: 5, ..strict_throttle() };
        let Some((app, _store)) = spawn_throttled(backend, throttle, true).await else { return };
        let home = "192.0.2.10";
        assert_eq!(login_from(&app, "johndoe", "secret", home).await.status, 200);

        for attacker in 0..6 {
            let status = login_from(&app, "johndoe", "wrong", &format!("203.0.113.{attacker}")).await.status;
            assert!(status == 401 || status == 429);
        }

        let elsewhere = login_from(&app, "johndoe", "secret", "198.51.100.77").await;
        elsewhere.assert_json(429, THROTTLED);
        assert_eq!(login_from(&app, "johndoe", "secret", home).await.status, 200, "the known address still logs in");
    }

    async fn thirty_simultaneous_guesses_from_one_client_get_five_tries_and_the_rest_429_unhashed(backend) {
        let Some((app, _store)) = spawn_throttled(backend, ThrottleConfig::default(), true).await else { return };

        assert_eq!(app.state.auth.throttle.is_shared(), backend == Backend::Postgres, "PostgreSQL shares the counters");

        let (answers, hashed) = burst(&app, wrong_guesses(|_| "johndoe".into(), |_| "198.51.100.7".into(), 30)).await;

        assert_guesses_or_refusals(&answers);
        assert_eq!(tally(&answers), BTreeMap::from([(401, 5), (429, 25)]));
        assert_eq!(hashed, 5, "only the admitted guesses were hashed");
        // The five failures locked the username out for that client, right password or not.
        let locked = login_from(&app, "johndoe", "secret", "198.51.100.7").await;
        locked.assert_json(429, THROTTLED);
        assert_eq!(locked.header("retry-after"), Some("60"));
    }

    async fn a_burst_for_an_unknown_username_is_answered_exactly_like_one_for_a_real_user(backend) {
        let Some((app, _store)) = spawn_throttled(backend, ThrottleConfig::default(), true).await else { return };

        let (known, known_hashed) = burst(&app, wrong_guesses(|_| "johndoe".into(), |_| "198.51.100.7".into(), 30)).await;
        let (unknown, unknown_hashed) = burst(&app, wrong_guesses(|_| "nobody".into(), |_| "198.51.100.8".into(), 30)).await;

        assert_eq!(tally(&known), tally(&unknown));
        assert_eq!(known_hashed, unknown_hashed, "unknown usernames cost the same dummy hash");
        let bodies = |answers: &[Answer]| answers.iter().map(|a| a.body.clone()).collect::<BTreeSet<_>>();
        assert_eq!(bodies(&known), bodies(&unknown));
        assert!(bodies(&unknown).contains(INCORRECT));
    }

    async fn a_simultaneous_attack_on_one_username_from_sixty_addresses_gets_twenty_tries(backend) {
        let Some((app, _store)) = spawn_throttled(backend, ThrottleConfig::default(), true).await else { return };

        let (answers, hashed) = burst(&app, wrong_guesses(|_| "johndoe".into(), |i| format!("203.0.113.{}", i + 1), 60)).await;

        assert_guesses_or_refusals(&answers);
        assert_eq!(tally(&answers), BTreeMap::from([(401, 20), (429, 40)]));
        assert_eq!(hashed, 20);
    }

    async fn one_client_spraying_eighty_usernames_at_once_gets_fifty_tries(backend) {
        let Some((app, _store)) = spawn_throttled(backend, ThrottleConfig::default(), true).await else { return };

        let (answers, hashed) = burst(&app, wrong_guesses(|i| format!("user{i}"), |_| "198.51.100.9".into(), 80)).await;

        assert_guesses_or_refusals(&answers);
        assert_eq!(tally(&answers), BTreeMap::from([(401, 50), (429, 30)]));
        assert_eq!(hashed, 50);
    }

    async fn a_burst_of_right_passwords_for_distinct_users_is_all_served(backend) {
        let Some(test_store) = backend.store_with(many_users()).await else { return };
        let config = Config { throttle: ThrottleConfig::default(), trusted_proxies: "127.0.0.1".parse().unwrap(), ..test_config() };
        let app = TestApp::spawn_with(config, test_store.store.clone()).await;

        let logins = (0..16).map(|i| (format!("user{i}"), "secret".to_owned(), "198.51.100.10".to_owned()));
        let (answers, hashed) = burst(&app, logins.collect()).await;

        assert_eq!(tally(&answers), BTreeMap::from([(200, 16)]), "none refused, none delayed by the throttle");
        assert_eq!(hashed, 16);
    }

    async fn logins_shed_by_a_full_hashing_queue_do_not_count_as_failures(backend) {
        let config = Config {
            throttle: ThrottleConfig { max_failures: 3, ..ThrottleConfig::default() },
            hashing: HashingConfig { workers: 1, lane_threads: 2, queue: 1 },
            ..test_config()
        };
        let Some((app, _store)) = TestApp::on_with(backend, config).await else { return };

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
}
