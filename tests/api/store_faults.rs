//! The database going away, or never there: 503s with `Retry-After` while it is gone and a
//! recovery on its own afterwards; clear refusals at start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oauth2_jwt_server::store::UserStore;

use crate::backends::{database_url, on_every_database, seed_records, test_store_options};
use crate::helpers::{Answer, TestApp, test_config};
use crate::postgres::TestPostgres;
use crate::users_cli::{assert_exit, cli};

const BINARY: &str = env!("CARGO_BIN_EXE_oauth2-jwt-server");
const UNAVAILABLE: &str = r#"{"detail":"Database unavailable, try again later"}"#;

/// Starts the server binary on `url` and returns its exit status and stderr (it must stop by
/// itself within 20 s).
fn start_server_on(url: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .args(["20", BINARY])
        .env_clear()
        .env("DATABASE_URL", url)
        .env("BIND_ADDR", "127.0.0.1:0")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn postgres_stopped_under_load_gives_503s_then_the_server_recovers_by_itself() {
    let Some(postgres) = TestPostgres::start() else { return };
    let url = postgres.create_database();
    let store = UserStore::open(&database_url(&url), test_store_options()).await.unwrap();
    store.add(seed_records()).await.unwrap();
    let app = TestApp::spawn_with(test_config(), store).await;
    let token = app.token_for("johndoe", "secret").await;

    // Reads and logins for 9 s; the database is away from second 1 to second 6.
    let load = async {
        let mut seen = Vec::new();
        let started = Instant::now();
        let mut round = 0;
        while started.elapsed() < Duration::from_secs(9) {
            round += 1;
            let sent = Instant::now();
            let response = if round % 10 == 0 {
                app.login("johndoe", "secret").await
            } else {
                app.get_with_token("/users/me/", &token).await
            };
            let answer = Answer::of(response).await;
            seen.push((started.elapsed(), sent.elapsed(), answer));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    };
    let outage = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        postgres.stop();
        tokio::time::sleep(Duration::from_secs(5)).await;
        postgres.start_again();
    };
    let (seen, ()) = tokio::join!(load, outage);

    let mut unavailable = 0;
    for (at, took, answer) in &seen {
        assert!(*took < Duration::from_secs(3), "no request hangs: {took:?} at {at:?}");
        match answer.status {
            200 => {}
            503 => {
                unavailable += 1;
                answer.assert_json(503, UNAVAILABLE);
                assert_eq!(answer.header("retry-after"), Some("1"));
                assert!(
                    *at > Duration::from_secs(1) && *at < Duration::from_secs(8),
                    "only while it was away: {at:?}"
                );
            }
            other => panic!("{other} at {at:?}: {}", answer.body),
        }
    }
    assert!(unavailable > 10, "the outage was noticed: {unavailable} answers of 503");
    let last_second = seen.iter().filter(|(at, _, _)| *at > Duration::from_secs(8));
    assert!(
        last_second.clone().count() > 5 && last_second.clone().all(|(_, _, answer)| answer.status == 200),
        "recovered"
    );

    // Changes propagate again: a user added now is seen within a second.
    assert_exit(&cli(Some(&url), &["users", "add", "carol"], "pw\n"), 0, "");
    let started = Instant::now();
    while app.login("carol", "pw").await.status() != 200 {
        assert!(started.elapsed() < Duration::from_secs(1), "the change was seen after the outage");
    }
}

#[test]
fn a_database_unreachable_at_start_stops_the_server_naming_the_host_not_the_password() {
    let (code, stderr) = start_server_on("postgres://admin:hunter2-secret@127.0.0.1:9/users");

    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to postgres://admin@127.0.0.1:9/users"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn users_file_and_database_url_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("u.db").display()))
        .env("USERS_FILE", "users.json")
        .current_dir(dir.path())
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("USERS_FILE and DATABASE_URL are both set"));
}

on_every_database! {
    async fn a_schema_newer_than_the_binary_is_refused_at_start(backend) {
        let Some(test_store) = backend.seeded().await else { return };
        let url = test_store.url.clone().unwrap();
        let from_the_future = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000000, 'from a newer binary', TRUE, $1, 0)";
        match backend {
            crate::backends::Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                sqlx::query(from_the_future).bind(vec![0u8]).execute(&pool).await.unwrap();
            }
            _ => {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query(from_the_future).bind(vec![0u8]).execute(&pool).await.unwrap();
            }
        }

        let (code, stderr) = start_server_on(&url);

        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("the database schema is newer than this binary: it has migration 99990101000000"), "{stderr}");
        assert_exit(&cli(Some(&url), &["users", "list"], ""), 1, "newer than this binary");
    }

    async fn a_new_database_starts_empty_and_says_how_to_add_a_user(backend) {
        let Some((url, _dir)) = backend.new_database() else { return };
        let dir = tempfile::tempdir().unwrap();
        let mut server = Command::new(BINARY)
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("BIND_ADDR", "127.0.0.1:0")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut log = String::new();
        let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
        while !log.contains("listening on") {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
                break;
            }
            log.push_str(&line);
        }
        server.kill().unwrap();
        server.wait().unwrap();

        assert!(log.contains("users=0"), "{log}");
        assert!(log.contains("add one with: oauth2-jwt-server users add NAME"), "{log}");
        assert!(!log.contains("hunter2"));
    }
}

on_every_database! {
    async fn processes_starting_together_on_a_new_database_apply_the_schema_once(backend) {
        let Some((url, _dir)) = backend.new_database() else { return };

        let lists: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || cli(Some(&url), &["users", "list"], ""))
            })
            .collect();

        for list in lists {
            assert_exit(&list.join().unwrap(), 0, "");
        }
        assert_exit(&cli(Some(&url), &["users", "add", "carol"], "pw\n"), 0, "");
    }
}
