//! Swagger UI in a real browser: `e2e/swagger-ui.mjs` drives Debian's headless Chromium against
//! the server (authorize as johndoe, try both protected routes, alice's 400, a wrong password).
//! Without Chromium or the node modules the test is skipped with a notice, unless
//! `E2E_REQUIRED=1` (as `.ci/run` sets it), which makes their absence a failure.

use std::io::Write;
use std::path::Path;

use crate::helpers::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";

fn missing_prerequisites(e2e: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install -y chromium)"));
    }
    if !e2e.join("node_modules/playwright-core").exists() {
        missing.push("e2e/node_modules (cd e2e && npm ci)".to_owned());
    }
    if std::process::Command::new("node").arg("--version").output().is_err() {
        missing.push("node".to_owned());
    }
    missing
}

/// Runs `e2e/swagger-ui.mjs` against `app` (expecting `extra_operations` after the tutorial's
/// three), or says plainly why it cannot run; screenshots go to `target/e2e/<name>/`.
async fn drive_swagger_ui(app: &TestApp, extra_operations: &str, name: &str) {
    drive_swagger_ui_with(app, extra_operations, None, name).await;
}

/// As `drive_swagger_ui`; with `scopes` (the server's `SCOPES`), checks scopes mode instead.
async fn drive_swagger_ui_with(app: &TestApp, extra_operations: &str, scopes: Option<&str>, name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let missing = missing_prerequisites(&root.join("e2e"));
    if !missing.is_empty() {
        let notice = format!(
            "browser test SKIPPED: missing {}. Install them with e2e/install.sh, or run everything with .ci/run",
            missing.join(", ")
        );
        assert!(std::env::var_os("E2E_REQUIRED").is_none(), "E2E_REQUIRED is set but {notice}");
        // Straight to stderr, past the test harness's capture, so that it is seen.
        let _ = writeln!(std::io::stderr(), "\n{notice}\n");
        return;
    }

    let mut node = tokio::process::Command::new("node");
    if let Some(scopes) = scopes {
        node.env("SCOPES", scopes);
    }
    let run = node
        .arg(root.join("e2e/swagger-ui.mjs"))
        .env("BASE_URL", &app.address)
        .env("SCREENSHOT_DIR", root.join("target/e2e").join(name))
        .env("CHROMIUM", CHROMIUM)
        .env("EXTRA_OPERATIONS", extra_operations)
        .output()
        .await
        .expect("node runs");

    assert!(
        run.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[tokio::test]
async fn swagger_ui_logs_in_and_tries_both_protected_routes_in_a_real_browser() {
    let app = TestApp::spawn().await;

    drive_swagger_ui(&app, "[]", "screenshots").await;
}

#[tokio::test]
async fn swagger_ui_keeps_working_with_refresh_tokens_and_a_key_set() {
    use oauth2_jwt_server::auth::keys::{KeyAlgorithm, SigningKeys, generate};
    let jwk = generate(KeyAlgorithm::EdDSA).unwrap();
    let config = oauth2_jwt_server::config::Config {
        refresh_tokens: Some(oauth2_jwt_server::auth::refresh::RefreshConfig {
            lifetime: std::time::Duration::from_secs(86_400),
            idle: std::time::Duration::from_secs(3600),
        }),
        jwt_keys: Some(SigningKeys::from_jwks(&format!(r#"{{"keys":[{jwk}]}}"#)).unwrap()),
        ..crate::helpers::test_config()
    };
    let app = TestApp::spawn_with(config, oauth2_jwt_server::store::UserStore::seeded()).await;

    let extra = r#"[["POST", "/revoke", "Revoke Token"], ["GET", "/.well-known/jwks.json", "Signing Keys"]]"#;
    drive_swagger_ui(&app, extra, "screenshots-lifecycle").await;
}

#[tokio::test]
async fn swagger_ui_offers_the_scopes_and_the_ticked_ones_end_up_in_the_token() {
    let scopes = r#"{"me": "Read information about the current user.", "items": "Read items."}"#;
    let config = oauth2_jwt_server::config::Config {
        scopes: Some(scopes.parse().unwrap()),
        ..crate::helpers::test_config()
    };
    let app = TestApp::spawn_with(config, oauth2_jwt_server::store::UserStore::seeded()).await;

    drive_swagger_ui_with(
        &app,
        r#"[["GET", "/status/", "Read System Status"]]"#,
        Some(scopes),
        "screenshots-scopes",
    )
    .await;
}
