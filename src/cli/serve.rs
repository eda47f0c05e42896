//! Serving: read the config, open the user store, listen (and on `METRICS_ADDR` serve the
//! metrics), and serve until SIGINT or SIGTERM, draining after SIGTERM.

use std::process::ExitCode;

use crate::api::metrics::MetricsApp;
use crate::auth::password::StoredHash;
use crate::config::Config;
use crate::http::server;
use crate::store::{UserStore, users_file};
use crate::{AppState, app};

/// Whether a stored hash can be verified, for users files and imports.
pub fn check_hash(hash: &str) -> Result<(), String> {
    StoredHash::parse(hash).map(drop).map_err(|error| error.to_string())
}

/// Reads the config from the environment, opens the users and serves.
pub fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    warn_about(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let users = match open_users(&config).await {
            Ok(users) => users,
            Err((code, message)) => {
                eprintln!("error: {message}");
                return ExitCode::from(code);
            }
        };
        let listener = match tokio::net::TcpListener::bind(config.bind_addr).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("error: cannot listen on BIND_ADDR={}: {error}", config.bind_addr);
                return ExitCode::from(2);
            }
        };
        let metrics_listener = match config.metrics_addr {
            Some(address) => match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    eprintln!("error: cannot listen on METRICS_ADDR={address}: {error}");
                    return ExitCode::from(2);
                }
            },
            None => None,
        };
        let limits = config.limits;
        let state = AppState::new(&config, users);
        let users = &state.users;
        let draining = state.draining.clone();
        let shutdown = server::shutdown_signal(limits.shutdown_drain, move || draining.begin());
        let address = listener.local_addr().unwrap_or(config.bind_addr);
        tracing::info!(users = users.len(), source = %users.location(), "user table loaded");
        if users.is_empty() {
            tracing::warn!(
                "the user store holds no users yet; add one with: oauth2-jwt-server users add NAME (with the same DATABASE_URL)"
            );
        }
        tracing::info!("listening on http://{address}");
        tracing::info!("docs at http://{address}/docs (Swagger UI) and http://{address}/redoc; OpenAPI at http://{address}/openapi.json");
        if let Some(metrics) = metrics_listener {
            let at = metrics.local_addr().map_or_else(|_| "METRICS_ADDR".into(), |at| at.to_string());
            tracing::info!("metrics at http://{at}/metrics");
            // It serves until the process ends, through the drain, so the last scrape sees it.
            let endpoint = MetricsApp(state.clone());
            tokio::spawn(server::serve(metrics, endpoint, limits, std::future::pending()));
        }
        match server::serve(listener, app(state), limits, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The users: the database of `DATABASE_URL`, else `USERS_FILE` or the embedded seed in
/// memory. An error is an exit code (2: bad configuration, 1: the database) and a message.
async fn open_users(config: &Config) -> Result<UserStore, (u8, String)> {
    match (&config.database_url, &config.users_file) {
        (Some(_), Some(_)) => Err((
            2,
            "USERS_FILE and DATABASE_URL are both set: unset USERS_FILE, and load the file into the database with `oauth2-jwt-server users import FILE`".into(),
        )),
        (Some(url), None) => UserStore::open(url, config.store).await.map_err(|error| (1, error.to_string())),
        (None, Some(path)) => match users_file::load(path, check_hash) {
            Ok(records) => Ok(UserStore::in_memory(records, &path.display().to_string())),
            Err(error) => Err((2, format!("USERS_FILE {}: {error}", path.display()))),
        },
        (None, None) => Ok(UserStore::seeded()),
    }
}

fn warn_about(config: &Config) {
    if let Some(keys) = &config.jwt_keys {
        let signing = keys.signing_key();
        tracing::info!(
            keys = keys.keys().len(),
            kid = signing.kid().unwrap_or_default(),
            alg = %signing.algorithm(),
            "signing keys loaded from JWT_KEYS_FILE; the first signs"
        );
        if !config.secret_key.is_generated() {
            tracing::warn!(
                "JWT_KEYS_FILE and SECRET_KEY are both set: SECRET_KEY is ignored, tokens are signed and checked with the key file's keys"
            );
        }
    } else if config.secret_key.is_generated() {
        tracing::warn!(
            "SECRET_KEY is not set: using a random key for this run only. Tokens will NOT survive a restart. Set SECRET_KEY (e.g. `openssl rand -hex 32`) in the environment or .env."
        );
    } else if config.secret_key.as_bytes().len() < 32 {
        tracing::warn!(
            "SECRET_KEY is shorter than 32 bytes; use a long random value (e.g. `openssl rand -hex 32`)"
        );
    }
    if !config.throttle.enabled {
        tracing::warn!("LOGIN_THROTTLE=off: failed logins are not throttled");
    }
}
