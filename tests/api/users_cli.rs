//! `oauth2-jwt-server users ...` run as a process against each database, and a running server
//! seeing what it changes.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use std::io::Write;

use crate::backends::{database_url, on_every_database, temp_file, test_store_options};
use crate::helpers::{Answer, TestApp, test_config};
use oauth2_jwt_server::store::UserStore;

const BINARY: &str = env!("CARGO_BIN_EXE_oauth2-jwt-server");
const JOHNDOE_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";

/// Runs the binary with `args`, `DATABASE_URL` (if any) as its only setting, `stdin` piped in,
/// in an empty directory (no `.env`).
pub fn cli(url: Option<&str>, args: &[&str], stdin: &str) -> Output {
    cli_with(url, &[], args, stdin)
}

/// As `cli`, with these settings too.
pub fn cli_with(url: Option<&str>, vars: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BINARY);
    command.args(args).env_clear().envs(vars.iter().copied()).current_dir(dir.path());
    if let Some(url) = url {
        command.env("DATABASE_URL", url);
    }
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A command that fails before reading its input closes the pipe: that is no error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// Asserts the exit code and that stderr is one line containing `reason` (or empty on 0).
#[track_caller]
pub fn assert_exit(output: &Output, code: i32, reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(reason), "{reason:?} not in: {stderr}");
    if code == 1 {
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A server in this process on the database at `url`, following its changes.
async fn server_on(url: &str) -> TestApp {
    let store = UserStore::open(&database_url(url), test_store_options()).await.unwrap();
    TestApp::spawn_with(test_config(), store).await
}

/// A token for `username` as the server mints it now (`exp` = now + its 30 minutes).
fn token_for(username: &str) -> String {
    crate::helpers::token_with_claims(
        &serde_json::json!({"sub": username, "exp": crate::helpers::now() + 1800}),
    )
}

/// As `token_for`, minted in the next second: after a change that ended the tokens issued so
/// far (they carry whole seconds).
async fn token_after_this_second(username: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    tokio::time::sleep(Duration::from_millis(1000 - u64::from(now.subsec_millis()) + 10)).await;
    token_for(username)
}

/// How long until `check` holds, polling every 20 ms; fails after 5 s.
pub async fn time_until(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: not seen after 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

on_every_database! {
    async fn a_user_added_by_the_cli_is_listed_and_can_log_in(backend) {
        let Some(test_store) = backend.store_with(vec![]).await else { return };
        let url = test_store.url.clone().unwrap();

        let added = cli(Some(&url), &["users", "add", "carol", "--full-name", "Carol Jones", "--email", "carol@example.com"], "pw-carol\n");
        assert_exit(&added, 0, "");
        assert_eq!(stdout(&added), "added \"carol\"\n");

        let list = cli(Some(&url), &["users", "list"], "");
        assert_exit(&list, 0, "");
        assert_eq!(
            stdout(&list),
            "USERNAME  FULL NAME    EMAIL              DISABLED  SCOPES\ncarol     Carol Jones  carol@example.com  no        (all)\n(1 user)\n"
        );
        let json: serde_json::Value = serde_json::from_slice(&cli(Some(&url), &["users", "list", "--json"], "").stdout).unwrap();
        assert_eq!(json, serde_json::json!({"carol": {"username": "carol", "full_name": "Carol Jones", "email": "carol@example.com", "disabled": false}}));

        let app = server_on(&url).await;
        let token = app.token_for("carol", "pw-carol").await;
        let me = Answer::of(app.get_with_token("/users/me/", &token).await).await;
        me.assert_json(200, r#"{"username":"carol","email":"carol@example.com","full_name":"Carol Jones","disabled":false}"#);
        assert_eq!(app.login("carol", "pw-carol\n").await.status(), 401, "the newline was not part of it");
    }

    async fn each_command_that_cannot_be_done_exits_1_with_the_reason(backend) {
        let Some(test_store) = backend.seeded().await else { return };
        let url = test_store.url.clone().unwrap();
        let run = |args: &[&str], stdin: &str| cli(Some(&url), args, stdin);

        assert_exit(&run(&["users", "add", "johndoe"], "pw\n"), 1, "user \"johndoe\" already exists");
        for command in ["set-password", "disable", "enable", "remove", "revoke-tokens"] {
            assert_exit(&run(&["users", command, "nobody"], "pw\n"), 1, "no user \"nobody\"");
        }
        assert_exit(&run(&["users", "add", "carol"], "\n"), 1, "empty password");
        assert_exit(&run(&["users", "add", "carol"], &format!("{}\n", "x".repeat(1025))), 1, "longer than 1024 characters");
        for (name, reason) in [
            ("", "cannot be empty"),
            (" carol", "whitespace"),
            ("carol\u{1b}[31m", "control characters"),
            (&"c".repeat(151), "at most 150 characters"),
        ] {
            assert_exit(&run(&["users", "add", name], "pw\n"), 1, reason);
        }
        assert_exit(&run(&["users", "add", "carol", "--email", "a\nb"], "pw\n"), 1, "--email cannot contain control characters");
        let list = stdout(&run(&["users", "list"], ""));
        assert!(list.ends_with("(2 users)\n") && !list.contains("carol"), "nothing was added: {list}");

        // Bad usage is 2, as clap has it.
        assert_eq!(run(&["users", "frobnicate"], "").status.code(), Some(2));
        assert_eq!(run(&["users", "add"], "").status.code(), Some(2));
        assert_eq!(run(&["users", "add", "carol", "--colour", "red"], "").status.code(), Some(2));
    }

    async fn changes_by_the_cli_reach_a_running_server_within_a_second(backend) {
        let Some(test_store) = backend.seeded().await else { return };
        let url = test_store.url.clone().unwrap();
        let app = server_on(&url).await;
        // Tokens for carol as the server mints them, so probes show what the server sees
        // without a password hash each.
        let status = async |token: &str| app.get_with_token("/users/me/", token).await.status();
        let hash_of_carol = || app.state.users.get("carol").unwrap().map(|user| user.hashed_password.clone());
        let mut delays = Vec::new();

        let first = token_for("carol");
        assert_eq!(status(&first).await, 401);
        assert_exit(&cli(Some(&url), &["users", "add", "carol"], "first\n"), 0, "");
        delays.push(time_until("added", async || status(&first).await == 200).await);
        assert_eq!(app.login("carol", "first").await.status(), 200, "the new user logs in");

        assert_exit(&cli(Some(&url), &["users", "disable", "carol"], ""), 0, "");
        delays.push(time_until("disabled", async || status(&first).await == 400).await);
        Answer::of(app.get_with_token("/users/me/", &first).await).await.assert_json(400, r#"{"detail":"Inactive user"}"#);

        assert_exit(&cli(Some(&url), &["users", "enable", "carol"], ""), 0, "");
        let second = token_after_this_second("carol").await;
        delays.push(time_until("enabled", async || status(&second).await == 200).await);
        assert_eq!(status(&first).await, 401, "disabling ended the tokens issued before it");

        let before = hash_of_carol();
        assert_exit(&cli(Some(&url), &["users", "set-password", "carol"], "second\n"), 0, "");
        delays.push(time_until("new password", async || hash_of_carol() != before).await);
        assert_eq!(status(&second).await, 401, "a new password ends the tokens issued before it");
        assert_eq!(app.login("carol", "second").await.status(), 200, "the new password works");
        assert_eq!(app.login("carol", "first").await.status(), 401, "the old password no longer does");

        let third = token_after_this_second("carol").await;
        assert_eq!(status(&third).await, 200);
        assert_exit(&cli(Some(&url), &["users", "remove", "carol"], ""), 0, "");
        delays.push(time_until("removed", async || status(&third).await == 401).await);
        Answer::of(app.get_with_token("/users/me/", &third).await).await.assert_401("Could not validate credentials");

        for delay in &delays {
            assert!(*delay < Duration::from_secs(1), "seen within a second: {delays:?}");
        }
        eprintln!("{backend:?}: changes seen after {delays:?}");
    }

    async fn an_import_is_all_or_nothing(backend) {
        let Some(test_store) = backend.seeded().await else { return };
        let url = test_store.url.clone().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let entry = |name: &str| format!(r#""{name}": {{"username": "{name}", "hashed_password": "{JOHNDOE_HASH}"}}"#);

        let clash = temp_file(&dir, "clash.json", &format!("{{{}, {}}}", entry("dave"), entry("johndoe")));
        assert_exit(&cli(Some(&url), &["users", "import", clash.to_str().unwrap()], ""), 1, "user \"johndoe\" already exists");
        let bad_hash = format!(r#"{{{}, "erin": {{"username": "erin", "hashed_password": "md5$abc$def"}}}}"#, entry("dave"));
        let bad_hash = temp_file(&dir, "bad.json", &bad_hash);
        assert_exit(&cli(Some(&url), &["users", "import", bad_hash.to_str().unwrap()], ""), 1, "entry \"erin\": hashed_password:");
        let bad_name = temp_file(&dir, "name.json", &format!("{{{}}}", entry("dave\\t")));
        assert_exit(&cli(Some(&url), &["users", "import", bad_name.to_str().unwrap()], ""), 1, "control characters");
        assert!(stdout(&cli(Some(&url), &["users", "list"], "")).ends_with("(2 users)\n"), "none was added");

        let pasted = format!("fake_users_db = {{\n    \"dave\": {{\n        \"username\": \"dave\",\n        \"hashed_password\": \"{JOHNDOE_HASH}\",\n        \"disabled\": False,\n    }},\n    {},\n}}\n", entry("erin"));
        let pasted = temp_file(&dir, "tutorial.py", &pasted);
        let imported = cli(Some(&url), &["users", "import", pasted.to_str().unwrap()], "");
        assert_exit(&imported, 0, "");
        assert_eq!(stdout(&imported), "imported 2 users\n");
        let app = server_on(&url).await;
        assert_eq!(app.login("dave", "secret").await.status(), 200, "hashes are kept as they are");
        assert_eq!(app.login("erin", "secret").await.status(), 200);
    }

    async fn an_import_killed_midway_leaves_the_database_as_it_was(backend) {
        let Some(test_store) = backend.seeded().await else { return };
        let url = test_store.url.clone().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let many: Vec<String> = (0..20_000)
            .map(|i| format!(r#""user{i}": {{"username": "user{i}", "hashed_password": "{JOHNDOE_HASH}"}}"#))
            .collect();
        let file = temp_file(&dir, "many.json", &format!("{{{}}}", many.join(",")));
        let count = || stdout(&cli(Some(&url), &["users", "list", "--json"], "")).matches("\"username\"").count();

        let mut outcomes = Vec::new();
        // The import takes seconds (one transaction of 20,000 inserts): the later kills land
        // inside that transaction.
        for delay_ms in [50, 1500, 3000] {
            let mut child = Command::new(BINARY)
                .args(["users", "import", file.to_str().unwrap()])
                .env_clear()
                .env("DATABASE_URL", &url)
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            child.kill().unwrap();
            child.wait().unwrap();
            let users = count();
            assert!(users == 2 || users == 20_002, "all or nothing, found {users} users");
            outcomes.push(users);
            if users == 20_002 {
                break;
            }
        }
        assert_eq!(outcomes[0], 2, "the first import was killed before it committed: {outcomes:?}");
    }
}

#[test]
fn without_database_url_the_users_commands_say_they_need_one() {
    let output = cli(None, &["users", "list"], "");

    assert_exit(&output, 1, "the users commands need DATABASE_URL");
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let url = "postgres://admin:hunter2-secret@127.0.0.1:9/users";

    let output = cli(Some(url), &["users", "list"], "");

    assert_exit(&output, 1, "cannot connect to postgres://admin@127.0.0.1:9/users");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
}

#[test]
fn a_malformed_database_url_is_refused_without_repeating_it() {
    let output = cli(Some("mysql://root:hunter2@db/users"), &["users", "list"], "");

    assert_exit(&output, 1, "invalid DATABASE_URL");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
}
