//! Several server processes on one PostgreSQL database, behaving as one server: failures
//! spread over instances are counted once, changes reach every instance within a second, and
//! faults (the database stopped, an instance killed, rolling restarts) are survived.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use oauth2_jwt_server::auth::password::{Memory, StoredHash};
use oauth2_jwt_server::store::{User, UserRecord, UserStore};
use serde_json::json;

use crate::backends::{Backend, database_url, seed_records, test_store_options};
use crate::helpers::{Answer, forge, now};
use crate::postgres::TestPostgres;
use crate::processes::{SHARED_SECRET_KEY, ServerProcess};
use crate::users_cli::{assert_exit, cli};

const THROTTLED: &str = r#"{"detail":"Too many failed login attempts, try again later"}"#;
const UNAVAILABLE: &str = r#"{"detail":"Database unavailable, try again later"}"#;
/// passlib 1.7.4 `pbkdf2_sha256.hash("pässwörd ✓ 🔑")`.
const LEGACY_HASH: &str =
    "$pbkdf2-sha256$29000$Xcs5RyhFSKkVQihFKMWYcw$XtgIIslF8tlN7LKUeOrcIy2g.yfLrNGl4kM.U0xH6to";
const LEGACY_PASSWORD: &str = "pässwörd ✓ 🔑";

/// `n` instances on the database at `url` (seeded by the caller), sharing one key, trusting
/// 127.0.0.1 as a proxy so tests can speak for many clients, with `extra` settings.
fn instances(url: &str, n: usize, extra: &[(&str, &str)]) -> Vec<ServerProcess> {
    let mut vars = vec![
        ("DATABASE_URL", url),
        ("SECRET_KEY", SHARED_SECRET_KEY),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("RUST_LOG", "warn,oauth2_jwt_server=info"),
    ];
    vars.extend_from_slice(extra);
    (0..n).map(|_| ServerProcess::start(&vars)).collect()
}

/// A fresh database on the shared throwaway server, holding the tutorial's users.
async fn seeded_database() -> Option<String> {
    let test_store = Backend::Postgres.seeded().await?;
    test_store.url
}

/// A token for `username`, as any instance would mint it now (`exp` = now + 30 minutes).
fn token_for(username: &str) -> String {
    forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"sub": username, "exp": now() + 1800}),
        SHARED_SECRET_KEY.as_bytes(),
    )
}

async fn login(
    client: &reqwest::Client,
    server: &str,
    username: &str,
    password: &str,
    client_ip: &str,
) -> Answer {
    let response = client
        .post(format!("{server}/token"))
        .header("x-forwarded-for", client_ip)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    Answer::of(response).await
}

async fn me(client: &reqwest::Client, server: &str, token: &str) -> Answer {
    Answer::of(client.get(format!("{server}/users/me/")).bearer_auth(token).send().await.unwrap()).await
}

fn tally(answers: &[Answer]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.status).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn failures_spread_over_three_instances_lock_the_account_as_one_server_would() {
    let Some(url) = seeded_database().await else { return };
    let servers = instances(&url, 3, &[]);
    let client = reqwest::Client::new();

    // One at a time, round robin: the sixth attempt meets the lockout the fifth set.
    for attempt in 0..5 {
        let server = &servers[attempt % 3].address;
        login(&client, server, "johndoe", "wrong", "198.51.100.7")
            .await
            .assert_401("Incorrect username or password");
    }
    for server in &servers {
        let locked = login(&client, &server.address, "johndoe", "secret", "198.51.100.7").await;
        locked.assert_json(429, THROTTLED);
        let retry_after: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((59..=60).contains(&retry_after), "{retry_after}");
    }

    // All at once, spread over the three: five guesses are hashed, as on one server.
    let guesses =
        (0..30).map(|i| login(&client, &servers[i % 3].address, "johndoe", "wrong", "198.51.100.8"));
    let answers = join_all(guesses).await;
    assert_eq!(tally(&answers), BTreeMap::from([(401, 5), (429, 25)]));
    for answer in answers.iter().filter(|answer| answer.status == 429) {
        answer.assert_json(429, THROTTLED);
        assert!(answer.header("retry-after").is_some());
    }
    // Another client is not locked out.
    assert_eq!(login(&client, &servers[2].address, "johndoe", "secret", "198.51.100.9").await.status, 200);
}

#[tokio::test]
async fn a_cli_change_is_seen_by_every_instance_within_a_second() {
    let Some(url) = seeded_database().await else { return };
    let servers = instances(&url, 3, &[]);
    let client = reqwest::Client::new();
    let mut delays = Vec::new();
    let mut token = token_for("carol");

    for (args, stdin, status) in [
        (vec!["users", "add", "carol"], "pw\n", 200),
        (vec!["users", "disable", "carol"], "", 400),
        (vec!["users", "enable", "carol"], "", 200),
        (vec!["users", "remove", "carol"], "", 401),
    ] {
        assert_exit(&cli(Some(&url), &args, stdin), 0, "");
        if args[1] == "enable" {
            // Disabling ended the tokens issued before it: probe with one minted after it.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            tokio::time::sleep(Duration::from_millis(1010 - u64::from(now.subsec_millis()))).await;
            token = token_for("carol");
        }
        let changed = Instant::now();
        for server in &servers {
            while me(&client, &server.address, &token).await.status != status {
                assert!(
                    changed.elapsed() < Duration::from_secs(1),
                    "{args:?}: {} not seen within 1 s",
                    server.address
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        delays.push(changed.elapsed());
    }
    eprintln!("three instances saw each change after {delays:?}");
}

#[tokio::test]
async fn sixty_four_parallel_logins_of_a_legacy_user_across_instances_leave_one_argon2id_hash() {
    let Some(test_store) = Backend::Postgres.seeded().await else { return };
    let url = test_store.url.clone().unwrap();
    let user = User { username: "legacy".into(), email: None, full_name: None, disabled: Some(false) };
    let legacy = UserRecord::new(user, LEGACY_HASH);
    test_store.store.add(vec![legacy]).await.unwrap();
    let revision = test_store.store.revision();
    // Throttling off: every one of the 64 is checked and may race to upgrade (with it on, the
    // throttle would let at most 20 in flight for one username).
    let servers = instances(&url, 3, &[("LOGIN_THROTTLE", "off")]);
    let client = reqwest::Client::new();

    let logins =
        (0..64).map(|i| login(&client, &servers[i % 3].address, "legacy", LEGACY_PASSWORD, "198.51.100.20"));
    let answers = join_all(logins).await;

    assert_eq!(tally(&answers), BTreeMap::from([(200, 64)]));
    let started = Instant::now();
    loop {
        test_store.store.refresh().await.unwrap();
        let hash = test_store.store.get("legacy").unwrap().unwrap().hashed_password.clone();
        if hash != LEGACY_HASH {
            let parsed = StoredHash::parse(&hash).unwrap();
            assert!(
                !parsed.needs_upgrade() && parsed.verify(LEGACY_PASSWORD.as_bytes(), &mut Memory::default())
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never upgraded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    test_store.store.refresh().await.unwrap();
    assert_eq!(test_store.store.revision(), revision + 1, "exactly one upgrade was stored");
    for server in &servers {
        assert_eq!(
            login(&client, &server.address, "legacy", LEGACY_PASSWORD, "198.51.100.21").await.status,
            200
        );
    }
}

/// Requests from `workers` loops to the servers in turn, for `duration`; every answer is kept
/// with the time it was sent and how long it took.
async fn steady_load(
    servers: &[String],
    workers: usize,
    duration: Duration,
    token: &str,
) -> Vec<(Duration, Duration, Result<Answer, String>)> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let loops = (0..workers).map(|worker| {
        let (client, next) = (client.clone(), Arc::clone(&next));
        async move {
            let mut seen = Vec::new();
            while started.elapsed() < duration {
                let server = &servers[next.fetch_add(1, Ordering::Relaxed) % servers.len()];
                let sent = Instant::now();
                let request = if worker == 0 {
                    client
                        .post(format!("{server}/token"))
                        .header("x-forwarded-for", "198.51.100.30")
                        .form(&[("username", "johndoe"), ("password", "secret")])
                } else {
                    client.get(format!("{server}/users/me/")).bearer_auth(token)
                };
                let answer = match request.send().await {
                    Ok(response) => Ok(Answer::of(response).await),
                    Err(error) => Err(format!("{error:?}")),
                };
                seen.push((started.elapsed(), sent.elapsed(), answer));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        }
    });
    join_all(loops).await.into_iter().flatten().collect()
}

#[tokio::test]
async fn postgres_stopped_for_five_seconds_under_load_gives_503s_and_every_instance_recovers() {
    let Some(postgres) = TestPostgres::start() else { return };
    let url = postgres.create_database();
    let store = UserStore::open(&database_url(&url), test_store_options()).await.unwrap();
    store.add(seed_records()).await.unwrap();
    let servers = instances(&url, 2, &[]);
    let addresses: Vec<String> = servers.iter().map(|server| server.address.clone()).collect();
    let token = token_for("johndoe");

    let outage = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        postgres.stop();
        tokio::time::sleep(Duration::from_secs(5)).await;
        postgres.start_again();
    };
    let (seen, ()) = tokio::join!(steady_load(&addresses, 4, Duration::from_secs(10), &token), outage);

    let mut unavailable = 0;
    for (at, took, answer) in &seen {
        let answer = answer.as_ref().unwrap_or_else(|error| panic!("at {at:?}: {error}"));
        assert!(*took < Duration::from_secs(3), "no request hangs: {took:?} at {at:?}");
        match answer.status {
            200 => {}
            503 => {
                unavailable += 1;
                answer.assert_json(503, UNAVAILABLE);
                assert_eq!(answer.header("retry-after"), Some("1"));
                assert!(
                    *at > Duration::from_secs(1) && *at < Duration::from_secs(9),
                    "only while away: {at:?}"
                );
            }
            other => panic!("{other} at {at:?}: {}", answer.body),
        }
    }
    assert!(unavailable > 20, "the outage was noticed: {unavailable} answers of 503");
    let end: Vec<_> = seen.iter().filter(|(at, _, _)| *at > Duration::from_secs(9)).collect();
    assert!(
        !end.is_empty() && end.iter().all(|(_, _, answer)| answer.as_ref().unwrap().status == 200),
        "recovered"
    );
    for server in &servers {
        assert!(!server.log().contains("panicked"), "{}", server.log());
    }

    // Changes propagate again to both.
    assert_exit(&cli(Some(&url), &["users", "add", "carol"], "pw\n"), 0, "");
    let client = reqwest::Client::new();
    let changed = Instant::now();
    for server in &addresses {
        while me(&client, server, &token_for("carol")).await.status != 200 {
            assert!(
                changed.elapsed() < Duration::from_secs(1),
                "{server} did not see the change after the outage"
            );
        }
    }
}

#[tokio::test]
async fn one_instance_killed_mid_load_leaves_the_others_answering_and_loses_nothing() {
    let Some(test_store) = Backend::Postgres.seeded().await else { return };
    let url = test_store.url.clone().unwrap();
    let mut servers = instances(&url, 3, &[]);
    let survivors: Vec<String> = servers[1..].iter().map(|server| server.address.clone()).collect();
    let victim = servers[0].address.clone();
    let token = token_for("johndoe");

    let on_survivors = steady_load(&survivors, 4, Duration::from_secs(4), &token);
    let on_victim = steady_load(std::slice::from_ref(&victim), 2, Duration::from_secs(1), &token);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        servers[0].kill();
    };
    let (seen, _, ()) = tokio::join!(on_survivors, on_victim, kill);

    assert!(seen.len() > 50);
    for (at, _, answer) in &seen {
        let answer = answer.as_ref().unwrap_or_else(|error| panic!("a survivor failed at {at:?}: {error}"));
        assert_eq!(answer.status, 200, "at {at:?}: {}", answer.body);
    }
    assert_exit(&cli(Some(&url), &["users", "list"], ""), 0, "");
    let listed = String::from_utf8(cli(Some(&url), &["users", "list", "--json"], "").stdout).unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_object().unwrap().len(), 2, "no user lost: {listed}");
    let client = reqwest::Client::new();
    for server in &survivors {
        assert_eq!(
            login(&client, server, "johndoe", "secret", "198.51.100.40").await.status,
            200,
            "no hash lost"
        );
        assert_eq!(login(&client, server, "alice", "secretalice", "198.51.100.40").await.status, 200);
    }
}

#[tokio::test]
async fn a_rolling_restart_behind_a_load_balancer_fails_no_request() {
    let Some(url) = seeded_database().await else { return };
    let mut servers = instances(&url, 2, &[]);
    let token = token_for("johndoe");
    let client = reqwest::Client::new();
    let mut errors = Vec::new();
    let mut served = 0;

    for restarting in 0..2 {
        let other = servers[1 - restarting].address.clone();
        let leaving = servers[restarting].address.clone();
        // The load balancer takes the instance out of rotation, then it is told to stop while
        // logins it already accepted are still being hashed: they must complete.
        let in_flight: Vec<_> =
            (0..3).map(|_| login(&client, &leaving, "johndoe", "secret", "198.51.100.50")).collect();
        let stop = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            servers[restarting].terminate();
        };
        let (load, in_flight, ()) = tokio::join!(
            steady_load(std::slice::from_ref(&other), 4, Duration::from_secs(2), &token),
            join_all(in_flight),
            stop
        );
        let status = servers[restarting].wait(Duration::from_secs(12)).expect("it stops within its limit");
        assert!(status.success(), "a clean exit: {status}");
        for answer in in_flight {
            served += 1;
            if answer.status != 200 {
                errors.push(format!("in flight at SIGTERM: {}", answer.status));
            }
        }
        for (at, _, answer) in load {
            served += 1;
            match answer {
                Ok(answer) if answer.status == 200 => {}
                Ok(answer) => errors.push(format!("{} at {at:?}", answer.status)),
                Err(error) => errors.push(format!("{error} at {at:?}")),
            }
        }
        // The replacement joins and serves at once.
        servers[restarting] = instances(&url, 1, &[]).remove(0);
        assert_eq!(me(&client, &servers[restarting].address, &token).await.status, 200);
    }

    assert!(errors.is_empty(), "{} of {served} requests failed: {errors:?}", errors.len());
    assert!(served > 100, "{served}");
}

#[tokio::test]
async fn tokens_are_refreshed_and_revoked_on_any_instance_and_refused_by_all_within_a_second() {
    let Some(url) = seeded_database().await else { return };
    let servers = instances(&url, 3, &[("REFRESH_TOKEN_EXPIRE_DAYS", "30")]);
    let client = reqwest::Client::new();
    let form_post = |server: &str, path: &str, fields: Vec<(&'static str, String)>| {
        client.post(format!("{server}{path}")).form(&fields).send()
    };
    let tokens = |answer: &Answer| -> (String, String) {
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    };
    let all_answer = async |token: &str, status: u16| {
        let started = Instant::now();
        for server in &servers {
            while me(&client, &server.address, token).await.status != status {
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "{} still not {status} after 1 s",
                    server.address
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        started.elapsed()
    };

    // Logged in on the first, refreshed on the second: the family lives in the database.
    let login = login(&client, &servers[0].address, "johndoe", "secret", "198.51.100.60").await;
    let (access, refresh) = tokens(&login);
    let refreshed = Answer::of(
        form_post(
            &servers[1].address,
            "/token",
            vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh.clone())],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let (new_access, new_refresh) = tokens(&refreshed);
    // The third sees the first refresh token as used: reuse, which ends the family.
    let reuse = form_post(
        &servers[2].address,
        "/token",
        vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh)],
    )
    .await
    .unwrap();
    assert_eq!(reuse.status(), 400);
    let after_reuse = form_post(
        &servers[0].address,
        "/token",
        vec![("grant_type", "refresh_token".into()), ("refresh_token", new_refresh)],
    )
    .await
    .unwrap();
    assert_eq!(after_reuse.status(), 400, "the family ended everywhere");

    // An access token revoked on one instance is refused by all within a second.
    all_answer(&access, 200).await;
    let revoked = form_post(&servers[1].address, "/revoke", vec![("token", access.clone())]).await.unwrap();
    assert_eq!(revoked.status(), 200);
    let revocation_seen = all_answer(&access, 401).await;
    assert_eq!(me(&client, &servers[0].address, &new_access).await.status, 200, "other tokens live on");

    // Logging out everywhere with the CLI: every instance refuses the tokens issued before.
    assert_exit(&cli(Some(&url), &["users", "revoke-tokens", "johndoe"], ""), 0, "");
    let logout_seen = all_answer(&new_access, 401).await;
    eprintln!(
        "a revocation was seen by all three after {revocation_seen:?}, a logout everywhere after {logout_seen:?}"
    );
}
