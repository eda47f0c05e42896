//! Users migrated from other apps: their bcrypt, PBKDF2 and foreign argon2 hashes log in as
//! they are, and after the first successful login the store holds one of our argon2id hashes
//! instead, written after the answer, once, however many logins race.

use std::time::{Duration, Instant};

use futures::future::join_all;
use oauth2_jwt_server::auth::password::{Memory, StoredHash};
use oauth2_jwt_server::store::{User, UserRecord, UserStore};

use crate::backends::{database_url, on_every_backend, on_every_database, test_store_options};
use crate::helpers::{TestApp, test_config};

const PLAIN: &str = "correct horse battery staple";
const UNICODE: &str = "pässwörd ✓ 🔑";

/// (username, hash as another library wrote it, its password). The generators are named in
/// the unit tests of `src/auth/password/`.
const LEGACY: [(&str, &str, &str); 6] = [
    ("pwdlib-bcrypt", "$2b$12$dCqMX2b8rxlq0FSLTMihDe2OgLFis29/adsTBHL2KlDvkqlpcF5uG", PLAIN),
    (
        "django-pbkdf2",
        "pbkdf2_sha256$1000000$9NYaKCyvptjJug8IMYijRQ$YiBfaBPxK/cGIn4FfZbFmAEO9nmv50LrgmrrvWNT0cA=",
        UNICODE,
    ),
    (
        "passlib-pbkdf2",
        "$pbkdf2-sha256$29000$Xcs5RyhFSKkVQihFKMWYcw$XtgIIslF8tlN7LKUeOrcIy2g.yfLrNGl4kM.U0xH6to",
        UNICODE,
    ),
    (
        "django-bcrypt-sha256",
        "bcrypt_sha256$$2b$12$TsMvDlN87hYz.It8QQXsj.EWmPW9/D9sNqxkzBcyzS7U1M.nHgCg2",
        UNICODE,
    ),
    ("passlib-bcrypt-2y", "$2y$12$q.7kak5yRv1HbJTUavtrpO3tjyz3WnuIkW3PaTe0.2Z6hCFrgSweS", PLAIN),
    (
        "cffi-argon2-other-params",
        "$argon2id$v=19$m=19456,t=2,p=1$HTHvR+UF0NpUXL+goLWO6Q$GgGtmsZ5vD5TLYv3P5N7kDMWDIDx309dmj4y8aF9x0o",
        PLAIN,
    ),
];

fn legacy_users() -> Vec<UserRecord> {
    LEGACY
        .iter()
        .map(|(name, hash, _)| {
            let user = User { username: (*name).into(), email: None, full_name: None, disabled: Some(false) };
            UserRecord::new(user, *hash)
        })
        .collect()
}

/// The hash the server holds for `username` now.
fn hash_of(app: &TestApp, username: &str) -> String {
    app.state.users.get(username).unwrap().unwrap().hashed_password.clone()
}

/// Waits (up to 5 s) until the server holds one of our current argon2id hashes for `username`.
async fn upgraded_hash(app: &TestApp, username: &str) -> String {
    let started = Instant::now();
    loop {
        let hash = hash_of(app, username);
        if !StoredHash::parse(&hash).unwrap().needs_upgrade() {
            return hash;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{username}'s hash was not upgraded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a fresh reader of the same database sees (the memory store has no other reader).
async fn stored_elsewhere(test_url: &Option<String>, username: &str) -> Option<String> {
    let store = UserStore::connect(&database_url(test_url.as_ref()?), test_store_options()).await.unwrap();
    Some(store.get(username).unwrap().unwrap().hashed_password.clone())
}

on_every_backend! {
    async fn legacy_hashes_log_in_and_are_upgraded_to_argon2id_after_the_answer(backend) {
        let Some(test_store) = backend.store_with(legacy_users()).await else { return };
        let app = TestApp::spawn_with(test_config(), test_store.store.clone()).await;

        for (username, legacy, password) in LEGACY {
            assert_eq!(app.login(username, &format!("{password}!")).await.status(), 401, "{username}: a wrong password");
            assert_eq!(hash_of(&app, username), legacy, "a failed login changes nothing");

            let token = app.token_for(username, password).await;
            // The answer did not wait for the new hash: it is computed afterwards.
            assert_eq!(hash_of(&app, username), legacy, "{username}: upgraded before the answer");

            let upgraded = upgraded_hash(&app, username).await;
            assert!(upgraded.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{upgraded}");
            assert!(StoredHash::parse(&upgraded).unwrap().verify(password.as_bytes(), &mut Memory::default()));
            if let Some(stored) = stored_elsewhere(&test_store.url, username).await {
                assert_eq!(stored, upgraded, "{username}: the database holds the new hash");
            }
            assert_eq!(app.get_with_token("/users/me/", &token).await.status(), 200);
            assert_eq!(app.login(username, password).await.status(), 200, "{username}: logs in with the new hash");
            assert_eq!(app.login(username, &format!("{password}!")).await.status(), 401);
        }
    }

    async fn simultaneous_logins_of_a_legacy_user_leave_exactly_one_argon2id_hash(backend) {
        let Some(test_store) = backend.store_with(legacy_users()).await else { return };
        let app = TestApp::spawn_with(test_config(), test_store.store.clone()).await;
        let (username, legacy, password) = LEGACY[2];
        let revision = test_store.store.revision();

        let logins = join_all((0..16).map(|_| app.login(username, password))).await;

        assert!(logins.iter().all(|response| response.status() == 200));
        let upgraded = upgraded_hash(&app, username).await;
        // Give the losing upgrades time to try (and fail) their swap.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(hash_of(&app, username), upgraded, "the first swap won, the others found it gone");
        assert_ne!(upgraded, legacy);
        assert_eq!(test_store.store.revision(), revision + 1, "exactly one change was stored");
        assert!(StoredHash::parse(&upgraded).unwrap().verify(password.as_bytes(), &mut Memory::default()));
    }
}

on_every_database! {
    async fn upgrades_racing_from_several_processes_store_exactly_one_hash(backend) {
        let Some(test_store) = backend.store_with(legacy_users()).await else { return };
        let url = database_url(test_store.url.as_ref().unwrap());
        let (username, legacy, _) = LEGACY[0];
        let mut stores = Vec::new();
        for _ in 0..8 {
            stores.push(UserStore::connect(&url, test_store_options()).await.unwrap());
        }

        let swaps = join_all(stores.iter().enumerate().map(|(i, store)| {
            let new = format!("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$upgrade-{i}");
            async move { store.replace_hash(username, legacy, &new).await.unwrap() }
        }))
        .await;

        assert_eq!(swaps.iter().filter(|won| **won).count(), 1, "{swaps:?}");
        test_store.store.refresh().await.unwrap();
        let winner = swaps.iter().position(|won| *won).unwrap();
        assert!(test_store.store.get(username).unwrap().unwrap().hashed_password.ends_with(&format!("upgrade-{winner}")));
    }
}

#[tokio::test]
async fn a_users_file_is_never_written_the_upgrade_lives_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.json");
    let (username, legacy, password) = LEGACY[0];
    let contents =
        format!(r#"{{"{username}": {{"username": "{username}", "hashed_password": "{legacy}"}}}}"#);
    std::fs::write(&file, &contents).unwrap();
    let records =
        oauth2_jwt_server::store::users_file::load(&file, oauth2_jwt_server::cli::serve::check_hash).unwrap();
    let app = TestApp::spawn_with(test_config(), UserStore::in_memory(records, "users.json")).await;

    app.token_for(username, password).await;
    upgraded_hash(&app, username).await;

    assert_eq!(std::fs::read_to_string(&file).unwrap(), contents);
}
