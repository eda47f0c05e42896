//! Running the server: a users file, the `hash-password` command, configuration errors at
//! start, the startup log, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oauth2_jwt_server::cli::serve::check_hash;
use oauth2_jwt_server::store::{UserStore, users_file};

use crate::backends::on_every_database;
use crate::helpers::{TestApp, test_config};

const BINARY: &str = env!("CARGO_BIN_EXE_oauth2-jwt-server");

fn hash_with_the_cli(password: &str) -> String {
    let mut child = Command::new(BINARY)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim_end().to_owned()
}

/// The server binary with a clean environment plus `vars`, run in an empty directory (no .env);
/// SIGTERM stops it without a drain unless `vars` say otherwise.
pub fn start_binary(vars: &[(&str, &str)]) -> Child {
    let dir = std::env::temp_dir().join(format!("oauth2-jwt-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    start_binary_in(&dir, vars)
}

fn start_binary_in(dir: &std::path::Path, vars: &[(&str, &str)]) -> Child {
    Command::new(BINARY)
        .env_clear()
        .env("SHUTDOWN_DRAIN_SECS", "0")
        .envs(vars.iter().copied())
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_user_added_with_hash_password_can_log_in_from_a_users_file() {
    let hash = hash_with_the_cli("correct horse battery staple");
    assert!(hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{hash}");
    let file = std::env::temp_dir().join(format!("users-{}.json", std::process::id()));
    let users = serde_json::json!({
        "carol": {"username": "carol", "full_name": "Carol", "email": null, "hashed_password": hash, "disabled": false}
    });
    std::fs::write(&file, users.to_string()).unwrap();
    let records = users_file::load(&file, check_hash).unwrap();
    let app = TestApp::spawn_with(test_config(), UserStore::in_memory(records, "test")).await;

    let token = app.token_for("carol", "correct horse battery staple").await;
    let me = app.get_with_token("/users/me/", &token).await.text().await.unwrap();

    assert_eq!(me, r#"{"username":"carol","email":null,"full_name":"Carol","disabled":false}"#);
    assert_eq!(app.login("johndoe", "secret").await.status(), 401, "the file replaces the seed");
    std::fs::remove_file(file).unwrap();
}

#[test]
fn hash_password_refuses_an_empty_password() {
    let mut child = Command::new(BINARY)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("empty password"));
}

#[test]
fn bad_configuration_stops_the_server_with_a_clear_message() {
    let bad_file = std::env::temp_dir().join(format!("bad-users-{}.json", std::process::id()));
    std::fs::write(&bad_file, r#"{"bob": {"username": "bob", "hashed_password": "plaintext"}}"#).unwrap();
    let bad_file = bad_file.to_str().unwrap().to_owned();
    for (vars, expected) in [
        (vec![("ACCESS_TOKEN_EXPIRE_MINUTES", "abc")], "invalid ACCESS_TOKEN_EXPIRE_MINUTES=\"abc\""),
        (vec![("BIND_ADDR", "nowhere")], "invalid BIND_ADDR=\"nowhere\""),
        (vec![("LOGIN_THROTTLE", "sometimes")], "invalid LOGIN_THROTTLE=\"sometimes\""),
        (vec![("USERS_FILE", "/does/not/exist.json")], "cannot read /does/not/exist.json"),
        (
            vec![("USERS_FILE", bad_file.as_str())],
            "entry \"bob\": hashed_password: not a password hash we know",
        ),
    ] {
        let output = start_binary(&vars).wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{vars:?}: {stderr}");
        assert!(stderr.contains(expected), "{vars:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Reads the log until the server says where its docs are; returns the log and the address.
fn wait_until_listening(child: &mut Child) -> (BufReader<std::process::ChildStdout>, String, String) {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains("docs at") && Instant::now() < deadline {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        log.push_str(&line);
    }
    let address =
        log.split("listening on http://").nth(1).expect(&log).split_whitespace().next().unwrap().to_owned();
    (stdout, log, address)
}

fn stop(mut child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean exit after SIGTERM, got {status:?}");
}

#[test]
fn a_dot_env_file_is_read_and_real_environment_variables_win() {
    let dir = std::env::temp_dir().join(format!("oauth2-jwt-server-dotenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".env"), "BIND_ADDR=127.0.0.1:0\nACCESS_TOKEN_EXPIRE_MINUTES=abc\n").unwrap();

    let from_file = start_binary_in(&dir, &[]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&from_file.stderr);
    assert!(stderr.contains("invalid ACCESS_TOKEN_EXPIRE_MINUTES=\"abc\""), "{stderr}");

    let mut overridden = start_binary_in(&dir, &[("ACCESS_TOKEN_EXPIRE_MINUTES", "5")]);
    let (_, log, _) = wait_until_listening(&mut overridden);
    assert!(log.contains("listening on http://127.0.0.1:"), "BIND_ADDR came from .env: {log}");
    stop(overridden);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn logs_have_one_line_per_request_and_never_a_secret() {
    let key = "a-signing-key-that-must-not-leak-0123456789";
    let mut child = start_binary(&[("BIND_ADDR", "127.0.0.1:0"), ("RUST_LOG", "trace"), ("SECRET_KEY", key)]);
    let (mut stdout, mut log, address) = wait_until_listening(&mut child);
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    let login = |password: &'static str| {
        client.post(format!("{base}/token")).form(&[("username", "johndoe"), ("password", password)]).send()
    };
    let body: serde_json::Value = login("secret").await.unwrap().json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let me = client.get(format!("{base}/users/me/?q=1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(login("hunter2-wrong").await.unwrap().status(), 401);

    stop(child);
    std::io::Read::read_to_string(&mut stdout, &mut log).unwrap();
    let requests: Vec<&str> = log.lines().filter(|line| line.contains(" request ")).collect();
    assert_eq!(requests.len(), 3, "{log}");
    assert!(requests[0].contains("method=POST path=/token status=200 latency_ms="), "{log}");
    assert!(requests[1].contains("method=GET path=/users/me/ status=200"), "no query string: {log}");
    assert!(requests[2].contains("status=401"), "{log}");
    let (_, signature) = token.rsplit_once('.').unwrap();
    for secret in ["secret", "hunter2", "$argon2", key, signature, "Bearer"] {
        assert!(!log.contains(secret), "the log contains {secret:?}: {log}");
    }
}

#[test]
fn without_a_secret_key_the_server_starts_warns_and_stops_on_sigterm() {
    let mut child = start_binary(&[("BIND_ADDR", "127.0.0.1:0"), ("RUST_LOG", "info")]);
    let (_, log, address) = wait_until_listening(&mut child);
    assert!(log.contains("SECRET_KEY is not set"), "{log}");
    assert!(log.contains("will NOT survive a restart"), "{log}");
    assert!(log.contains(&format!("http://{address}/docs")), "{log}");

    let response = std::net::TcpStream::connect(&address).map(|_| ());
    assert!(response.is_ok(), "the server accepts connections at {address}");
    stop(child);
}

on_every_database! {
    async fn with_a_database_the_logs_hold_no_password_hash_or_token_even_at_trace(backend) {
        let Some(test_store) = backend.seeded().await else { return };
        // The throwaway PostgreSQL trusts its socket, so any password in the URL is accepted:
        // enough to check that it is never printed.
        let url = test_store.url.clone().unwrap().replacen("postgres://postgres@", "postgres://postgres:hunter2-db-secret@", 1);
        let added = crate::users_cli::cli(Some(&url), &["users", "add", "carol"], "carols-password\n");
        assert!(added.status.success());
        let mut child = start_binary(&[("BIND_ADDR", "127.0.0.1:0"), ("RUST_LOG", "trace"), ("DATABASE_URL", &url)]);
        let (mut stdout, mut log, address) = wait_until_listening(&mut child);
        let client = reqwest::Client::new();
        let base = format!("http://{address}");
        let login = |username: &'static str, password: &'static str| {
            client.post(format!("{base}/token")).form(&[("username", username), ("password", password)]).send()
        };
        let body: serde_json::Value = login("carol", "carols-password").await.unwrap().json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(client.get(format!("{base}/users/me/")).bearer_auth(&token).send().await.unwrap().status(), 200);
        assert_eq!(login("johndoe", "hunter2-wrong").await.unwrap().status(), 401);

        stop(child);
        std::io::Read::read_to_string(&mut stdout, &mut log).unwrap();
        assert!(log.contains("sqlx"), "trace shows the database work: {log}");
        let (_, signature) = token.rsplit_once('.').unwrap();
        for secret in ["hunter2", "carols-password", "$argon2", signature, "Bearer"] {
            assert!(!log.contains(secret), "the log contains {secret:?}");
        }
    }
}
