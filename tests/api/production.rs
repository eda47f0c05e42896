//! Running it in production: `/metrics` on its own listener after known traffic, the probes,
//! readiness during a shutdown, request ids, JSON logs and the audit events.

use std::time::{Duration, Instant};

use oauth2_jwt_server::auth::hash_pool::HashingConfig;
use oauth2_jwt_server::auth::refresh::RefreshConfig;
use oauth2_jwt_server::auth::throttle::ThrottleConfig;
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::store::{User, UserRecord, UserStore};
use serde_json::Value;

use crate::backends::{Backend, database_url, seed_records, test_store_options};
use crate::helpers::{Answer, TestApp, test_config};
use crate::postgres::TestPostgres;
use crate::processes::ServerProcess;
use crate::users_cli::{assert_exit, cli};

/// The test config with metrics on a free port.
fn with_metrics() -> Config {
    Config { metrics_addr: Some("127.0.0.1:0".parse().unwrap()), ..test_config() }
}

/// The value of one series (`name{labels}`) in a scrape; 0 when absent.
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |number| number.parse().unwrap())
}

/// The `_count` of a request-duration series.
fn requests(scrape: &str, method: &str, route: &str, status: u16) -> f64 {
    value(
        scrape,
        &format!(
            r#"http_server_request_duration_seconds_count{{http_request_method="{method}",http_route="{route}",http_response_status_code="{status}"}}"#
        ),
    )
}

fn logins(scrape: &str, outcome: &str) -> f64 {
    value(scrape, &format!(r#"auth_logins_total{{outcome="{outcome}"}}"#))
}

#[tokio::test]
async fn metrics_count_requests_and_logins_after_known_traffic_and_never_name_a_user_or_address() {
    let throttle = ThrottleConfig { enabled: true, max_failures: 2, ..ThrottleConfig::default() };
    let app = TestApp::spawn_with(Config { throttle, ..with_metrics() }, UserStore::seeded()).await;
    let before = app.scrape().await;
    assert_eq!(logins(&before, "success"), 0.0, "{before}");

    let token = app.token_for("johndoe", "secret").await;
    for _ in 0..3 {
        assert_eq!(app.get_with_token("/users/me/", &token).await.status(), 200);
    }
    assert_eq!(app.get_with_token("/users/me/items", &token).await.status(), 200);
    assert_eq!(app.login("nobody-at-all", "guess").await.status(), 401);
    assert_eq!(app.login("johndoe", "wrong-1").await.status(), 401);
    assert_eq!(app.login("johndoe", "wrong-2").await.status(), 401);
    assert_eq!(app.login("johndoe", "secret").await.status(), 429, "locked out after two failures");
    assert_eq!(app.get("/nope", None).await.status(), 404);
    assert_eq!(app.get("/token/", None).await.status(), 307);
    let public_metrics = Answer::of(app.get("/metrics", None).await).await;
    let scrape = app.scrape().await;

    public_metrics.assert_json(404, r#"{"detail":"Not Found"}"#);
    assert_eq!(logins(&scrape, "success"), 1.0, "{scrape}");
    assert_eq!(logins(&scrape, "wrong_credentials"), 3.0, "{scrape}");
    assert_eq!(logins(&scrape, "throttled"), 1.0, "{scrape}");
    assert_eq!(logins(&scrape, "shed"), 0.0, "{scrape}");
    assert_eq!(requests(&scrape, "GET", "/users/me/", 200), 3.0, "{scrape}");
    assert_eq!(requests(&scrape, "GET", "/users/me/items", 200), 1.0, "{scrape}");
    assert_eq!(requests(&scrape, "POST", "/token", 200), 1.0, "{scrape}");
    assert_eq!(requests(&scrape, "POST", "/token", 401), 3.0, "{scrape}");
    assert_eq!(requests(&scrape, "POST", "/token", 429), 1.0, "{scrape}");
    assert_eq!(requests(&scrape, "GET", "other", 404), 2.0, "/nope and the public /metrics: {scrape}");
    assert_eq!(requests(&scrape, "GET", "other", 307), 1.0, "FastAPI's slash redirect: {scrape}");
    assert_eq!(value(&scrape, r#"auth_throttle_lockouts_total{key="user_ip"}"#), 1.0, "{scrape}");
    assert_eq!(value(&scrape, r#"auth_password_hash_duration_seconds_count{operation="verify"}"#), 4.0);
    assert_eq!(value(&scrape, "auth_password_hash_queue_wait_seconds_count"), 4.0);
    assert_eq!(value(&scrape, "auth_password_hash_queue_depth"), 0.0);
    assert!(value(&scrape, r#"auth_throttle_entries{table="counters"}"#) >= 3.0, "{scrape}");
    assert_eq!(value(&scrape, r#"auth_throttle_entries{table="known"}"#), 1.0, "{scrape}");
    assert!(scrape.contains("# TYPE http_server_request_duration_seconds histogram"), "{scrape}");
    for private in ["johndoe", "nobody", "127.0.0.1", "secret", "wrong-", &token] {
        assert!(!scrape.contains(private), "the scrape names {private:?}");
    }
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_only_in_the_prometheus_text_format() {
    let app = TestApp::spawn_with(with_metrics(), UserStore::seeded()).await;
    let metrics = app.metrics_address.clone().unwrap();
    assert_eq!(app.get("/healthz", None).await.status(), 200);

    let scrape = app.client.get(format!("{metrics}/metrics")).send().await.unwrap();
    let other = Answer::of(app.client.get(format!("{metrics}/users/me/")).send().await.unwrap()).await;
    let post = app.client.post(format!("{metrics}/metrics")).send().await.unwrap();

    assert_eq!(scrape.status(), 200);
    assert_eq!(scrape.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = scrape.text().await.unwrap();
    for name in [
        "# TYPE http_server_request_duration_seconds histogram",
        "# TYPE auth_logins_total counter",
        "# TYPE auth_refreshes_total counter",
        "# TYPE auth_revocations_total counter",
        "# TYPE auth_password_hash_duration_seconds histogram",
        "# TYPE auth_password_hash_queue_wait_seconds histogram",
        "# TYPE auth_password_hash_queue_depth gauge",
        "# TYPE auth_legacy_hashes_upgraded_total counter",
        "# TYPE auth_throttle_lockouts_total counter",
        "# TYPE auth_throttle_entries gauge",
        "# TYPE db_client_errors_total counter",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    // The pool's gauges appear with a database (see the PostgreSQL test below).
    assert!(!text.contains("db_client_connection_count{"), "{text}");
    other.assert_json(404, r#"{"detail":"Not Found"}"#);
    assert_eq!((post.status().as_u16(), post.headers()["allow"].to_str().unwrap()), (405, "GET, HEAD"));
}

#[tokio::test]
async fn without_metrics_addr_nothing_is_kept() {
    let app = TestApp::spawn().await;
    app.token_for("johndoe", "secret").await;

    assert!(app.metrics_address.is_none());
    assert!(!app.state.metrics.is_on());
    assert_eq!(app.state.metrics.encode(), "");
}

#[tokio::test]
async fn shed_logins_and_upgraded_legacy_hashes_are_counted() {
    let bcrypt = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";
    let user = User { username: "migrated".into(), email: None, full_name: None, disabled: Some(false) };
    let store = UserStore::in_memory(vec![UserRecord::new(user, bcrypt)], "test");
    let app = TestApp::spawn_with(with_metrics(), store).await;
    let no_threads = HashingConfig { workers: 0, lane_threads: 1, queue: 0 };
    let shedding =
        TestApp::spawn_with(Config { hashing: no_threads, ..with_metrics() }, UserStore::seeded()).await;

    assert_eq!(app.login("migrated", "correctbatteryhorsestapler").await.status(), 200);
    assert_eq!(shedding.login("johndoe", "secret").await.status(), 503);

    let started = Instant::now();
    let scrape = loop {
        let scrape = app.scrape().await;
        if value(&scrape, "auth_legacy_hashes_upgraded_total") == 1.0 {
            break scrape;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the upgrade is counted: {scrape}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(value(&scrape, r#"auth_password_hash_duration_seconds_count{operation="hash"}"#), 1.0);
    assert_eq!(value(&scrape, r#"auth_password_hash_duration_seconds_count{operation="verify"}"#), 1.0);
    let shed = shedding.scrape().await;
    assert_eq!(logins(&shed, "shed"), 1.0, "{shed}");
    assert_eq!(value(&shed, "auth_password_hash_queue_depth"), 0.0, "{shed}");
}

#[tokio::test]
async fn refreshes_and_revocations_are_counted_by_outcome() {
    let refresh_tokens = Some(RefreshConfig {
        lifetime: Duration::from_secs(30 * 86_400),
        idle: Duration::from_secs(15 * 86_400),
    });
    let app = TestApp::spawn_with(Config { refresh_tokens, ..with_metrics() }, UserStore::seeded()).await;
    let first: Value = app.login("johndoe", "secret").await.json().await.unwrap();
    let refresh = async |token: String| {
        let form = [("grant_type", "refresh_token".to_owned()), ("refresh_token", token)];
        app.client.post(format!("{}/token", app.address)).form(&form).send().await.unwrap()
    };

    let second = refresh(first["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(refresh("not-a-token".into()).await.status(), 400);
    assert_eq!(refresh(first["refresh_token"].as_str().unwrap().to_owned()).await.status(), 400, "reused");
    let revoke = async |token: &str| {
        let form = [("token", token.to_owned())];
        app.client.post(format!("{}/revoke", app.address)).form(&form).send().await.unwrap()
    };
    assert_eq!(revoke(second["access_token"].as_str().unwrap()).await.status(), 200);
    assert_eq!(revoke("never-issued").await.status(), 200);
    let scrape = app.scrape().await;

    let refreshes =
        |outcome: &str| value(&scrape, &format!(r#"auth_refreshes_total{{outcome="{outcome}"}}"#));
    let revocations =
        |outcome: &str| value(&scrape, &format!(r#"auth_revocations_total{{outcome="{outcome}"}}"#));
    assert_eq!(
        (refreshes("success"), refreshes("invalid"), refreshes("reused")),
        (1.0, 1.0, 1.0),
        "{scrape}"
    );
    assert_eq!((revocations("access_token"), revocations("unknown")), (1.0, 1.0), "{scrape}");
    assert_eq!(requests(&scrape, "POST", "/revoke", 200), 2.0, "{scrape}");
}

#[tokio::test]
async fn the_probes_answer_tiny_json_and_are_not_documented() {
    let app = TestApp::spawn().await;

    let health = Answer::of(app.get("/healthz", None).await).await;
    let ready = Answer::of(app.get("/readyz", None).await).await;
    let post = Answer::of(app.client.post(format!("{}/readyz", app.address)).send().await.unwrap()).await;
    let document = app.get("/openapi.json", None).await.text().await.unwrap();

    health.assert_json(200, r#"{"status":"ok"}"#);
    ready.assert_json(200, r#"{"status":"ready"}"#);
    assert_eq!(ready.header("cache-control"), Some("no-store"));
    post.assert_json(405, r#"{"detail":"Method Not Allowed"}"#);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert!(!document.contains("healthz") && !document.contains("readyz"), "{document}");
}

#[tokio::test]
async fn readiness_turns_503_while_the_database_is_away_and_its_errors_are_counted() {
    let Some(postgres) = TestPostgres::start() else { return };
    let url = postgres.create_database();
    let store = UserStore::open(&database_url(&url), test_store_options()).await.unwrap();
    store.add(seed_records()).await.unwrap();
    let app = TestApp::spawn_with(with_metrics(), store).await;
    let scrape = app.scrape().await;
    assert_eq!(value(&scrape, "db_client_connection_max"), 8.0, "{scrape}");
    assert!(scrape.contains(r#"db_client_connection_count{db_client_connection_state="idle"}"#), "{scrape}");

    postgres.stop();
    let started = Instant::now();
    let away = loop {
        let answer = Answer::of(app.get("/readyz", None).await).await;
        if answer.status == 503 {
            break answer;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "readiness noticed the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let alive = Answer::of(app.get("/healthz", None).await).await;
    let scrape = app.scrape().await;
    postgres.start_again();

    away.assert_json(503, r#"{"status":"database unavailable"}"#);
    alive.assert_json(200, r#"{"status":"ok"}"#);
    assert!(value(&scrape, r#"db_client_errors_total{error_type="unavailable"}"#) >= 1.0, "{scrape}");
    let started = Instant::now();
    while app.get("/readyz", None).await.status() != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "ready again once the database is back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn on_sigterm_readiness_turns_503_first_and_the_listener_closes_after_the_drain() {
    let mut server = ServerProcess::start(&[("SHUTDOWN_DRAIN_SECS", "2")]);
    let client = reqwest::Client::new();
    let address = server.address.clone();
    let get = |path: &str| client.get(format!("{address}{path}")).send();
    assert_eq!(get("/readyz").await.unwrap().status(), 200);

    server.terminate();
    let signalled = Instant::now();
    let draining = loop {
        let answer = Answer::of(get("/readyz").await.unwrap()).await;
        if answer.status == 503 {
            break answer;
        }
        assert!(signalled.elapsed() < Duration::from_secs(1), "readiness turned off at once");
    };
    let alive = Answer::of(get("/healthz").await.unwrap()).await;
    let login = client
        .post(format!("{address}/token"))
        .form(&[("username", "johndoe"), ("password", "secret")])
        .send()
        .await
        .unwrap();
    let served_within = signalled.elapsed();
    let status = server.wait(Duration::from_secs(10)).expect("it stops after the drain");
    let stopped_after = signalled.elapsed();

    draining.assert_json(503, r#"{"status":"shutting down"}"#);
    alive.assert_json(200, r#"{"status":"ok"}"#);
    assert_eq!(login.status(), 200, "still served during the drain");
    assert!(served_within < Duration::from_secs(2), "{served_within:?}");
    assert!(status.success(), "a clean exit: {status}");
    assert!(
        stopped_after >= Duration::from_secs(2),
        "the listener stayed open for the drain: {stopped_after:?}"
    );
    assert!(get("/healthz").await.is_err(), "connections are refused once it has stopped");
    let log = server.log();
    assert!(log.contains("SIGTERM: /readyz answers 503"), "{log}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_only_a_trusted_proxy_may_choose_it() {
    let direct = TestApp::spawn().await;
    let proxied = TestApp::spawn_with(
        Config { trusted_proxies: "127.0.0.1".parse().unwrap(), ..test_config() },
        UserStore::seeded(),
    )
    .await;
    let with_id = async |app: &TestApp, path: &str, id: &str| {
        app.client.get(format!("{}{path}", app.address)).header("x-request-id", id).send().await.unwrap()
    };
    let id_of =
        |response: &reqwest::Response| response.headers()["x-request-id"].to_str().unwrap().to_owned();

    let first = id_of(&direct.get("/users/me/", None).await);
    let second = id_of(&direct.get("/nope", None).await);
    let ignored = id_of(&with_id(&direct, "/healthz", "chosen-by-the-client").await);
    let kept = id_of(&with_id(&proxied, "/healthz", "lb-7f3a-42").await);
    let too_long = id_of(&with_id(&proxied, "/healthz", &"x".repeat(129)).await);

    for made in [&first, &second, &ignored, &too_long] {
        assert_eq!(made.len(), 21, "{made}");
        assert!(made.bytes().all(|byte| byte.is_ascii_hexdigit() || byte == b'-'), "{made}");
    }
    assert_eq!(first[..13], second[..13], "one prefix per process");
    assert_ne!(first, second);
    assert_eq!(kept, "lb-7f3a-42");
}

#[tokio::test]
async fn the_html_pages_say_their_charset_as_fastapi_does() {
    let app = TestApp::spawn().await;

    for page in ["/docs", "/docs/oauth2-redirect", "/redoc"] {
        let answer = Answer::of(app.get(page, None).await).await;
        assert_eq!(answer.status, 200, "{page}");
        assert_eq!(answer.header("content-type"), Some("text/html; charset=utf-8"), "{page}");
        assert!(answer.body.starts_with("<!") || answer.body.starts_with("<html"), "{page}");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id_and_the_audit_events_and_no_secret() {
    let key = "a-signing-key-that-must-not-leak-0123456789";
    let server = ServerProcess::start(&[
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "trace"),
        ("SECRET_KEY", key),
        ("LOGIN_THROTTLE", "on"),
        ("LOGIN_MAX_FAILURES", "2"),
    ]);
    let client = reqwest::Client::new();
    let login = |password: &'static str| {
        client
            .post(format!("{}/token", server.address))
            .form(&[("username", "johndoe"), ("password", password)])
            .send()
    };
    let answer = login("secret").await.unwrap();
    let login_id = answer.headers()["x-request-id"].to_str().unwrap().to_owned();
    let token = answer.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let me =
        client.get(format!("{}/users/me/?q=1", server.address)).bearer_auth(&token).send().await.unwrap();
    let me_id = me.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(me.status(), 200);
    assert_eq!(login("hunter2-wrong").await.unwrap().status(), 401);
    assert_eq!(login("hunter2-wrong").await.unwrap().status(), 401);
    assert_eq!(login("hunter2-wrong").await.unwrap().status(), 429);
    assert_eq!(client.get(format!("{}/healthz", server.address)).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|line| line["target"] == "http").collect();
    assert_eq!(requests.len(), 6, "{log}");
    let me_line = requests.iter().find(|line| line["request_id"] == me_id.as_str()).expect("the read's line");
    assert_eq!(me_line["level"], "INFO");
    assert_eq!(me_line["message"], "request");
    assert_eq!(
        (&me_line["method"], &me_line["path"], &me_line["status"]),
        (&"GET".into(), &"/users/me/".into(), &200.into())
    );
    assert!(me_line["latency_ms"].is_f64() && me_line["timestamp"].is_string(), "{me_line}");
    let probe = requests.iter().find(|line| line["path"] == "/healthz").unwrap();
    assert_eq!(probe["level"], "DEBUG", "probes are not logged at info");
    let audit: Vec<&Value> = lines.iter().filter(|line| line["target"] == "audit").collect();
    let event = |name: &str| audit.iter().filter(|line| line["event"] == name).collect::<Vec<_>>();
    let succeeded = event("login.succeeded");
    assert_eq!(succeeded.len(), 1, "{log}");
    assert_eq!(succeeded[0]["username"], "johndoe");
    assert_eq!(succeeded[0]["client_ip"], "127.0.0.1");
    assert_eq!(succeeded[0]["span"]["request_id"], login_id.as_str(), "the audit event names its request");
    let failed: Vec<&str> =
        event("login.failed").iter().map(|line| line["outcome"].as_str().unwrap()).collect();
    assert_eq!(failed, ["wrong_credentials", "wrong_credentials", "throttled"]);
    let locked = event("login.locked_out");
    assert_eq!(
        (locked.len(), &locked[0]["key"], &locked[0]["level"]),
        (1, &"user_ip".into(), &"WARN".into())
    );
    let (_, signature) = token.rsplit_once('.').unwrap();
    for secret in ["secret", "hunter2", "$argon2", key, signature, "Bearer", "authorization"] {
        assert!(!log.contains(secret), "the log contains {secret:?}");
    }
}

#[tokio::test]
async fn a_user_change_by_the_cli_is_an_audit_event_on_stderr() {
    let Some(test_store) = Backend::Sqlite.seeded().await else { return };
    let url = test_store.url.clone().unwrap();

    let disabled = cli(Some(&url), &["users", "disable", "johndoe"], "");
    let added = cli(Some(&url), &["users", "add", "carol"], "carols-password\n");

    assert_exit(&disabled, 0, "");
    assert_eq!(String::from_utf8_lossy(&disabled.stdout), "disabled \"johndoe\"\n");
    let stderr = String::from_utf8_lossy(&disabled.stderr);
    let events: Vec<&str> = stderr.lines().filter(|line| line.contains(" audit: ")).collect();
    assert_eq!(events.len(), 2, "{stderr}");
    assert!(
        events[0].contains(r#"event="user.changed" username="johndoe" change="disable" actor="cli""#),
        "{stderr}"
    );
    assert!(events[1].contains(r#"event="user.tokens_revoked" username="johndoe""#), "{stderr}");
    let stderr = String::from_utf8_lossy(&added.stderr);
    assert!(stderr.contains(r#"event="user.changed" username="carol" change="add""#), "{stderr}");
    assert!(!stderr.contains("carols-password"), "{stderr}");
}
