//! The server binary: `oauth2-jwt-server` serves; `oauth2-jwt-server hash-password` reads a
//! password on stdin and prints its argon2id PHC string for a users file.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use oauth2_jwt_server::auth::password::{Memory, hash_password};
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::http::server;
use oauth2_jwt_server::store::UserStore;
use oauth2_jwt_server::{AppState, app};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => serve(),
        Some("hash-password") => print_hash(),
        Some("-h" | "--help" | "help") => {
            println!(
                "usage: oauth2-jwt-server [hash-password]\n\nWithout arguments, serves the API (configured by environment variables and .env; see .env.example).\nhash-password reads one password from stdin and prints its argon2id PHC string for USERS_FILE."
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("error: unknown command {other:?} (try --help)");
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    // Real environment variables win over .env; a missing .env is fine. Only the working
    // directory's .env is read (dotenvy::dotenv would also search parent directories).
    let dotenv = dotenvy::from_path(".env");
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    if let Err(error) = &dotenv {
        if !error.not_found() {
            eprintln!("error: cannot read .env: {error}");
            return ExitCode::from(2);
        }
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let users = match &config.users_file {
        None => UserStore::seeded(),
        Some(path) => match UserStore::load(path) {
            Ok(users) => users,
            Err(error) => {
                eprintln!("error: USERS_FILE {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    if config.secret_key.is_generated() {
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.bind_addr).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("error: cannot listen on BIND_ADDR={}: {error}", config.bind_addr);
                return ExitCode::from(2);
            }
        };
        let shutdown = server::shutdown_signal();
        let address = listener.local_addr().unwrap_or(config.bind_addr);
        let users_source = config.users_file.as_ref().map_or("embedded seed".to_owned(), |p| p.display().to_string());
        tracing::info!(users = users.len(), source = %users_source, "user table loaded");
        tracing::info!("listening on http://{address}");
        tracing::info!("docs at http://{address}/docs (Swagger UI) and http://{address}/redoc; OpenAPI at http://{address}/openapi.json");
        let limits = config.limits;
        let state = AppState::new(&config, users);
        match server::serve(listener, app(state), limits, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `hash-password`: one line from stdin (without its line ending) to a PHC string on stdout.
fn print_hash() -> ExitCode {
    let mut line = String::new();
    if let Err(error) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("error: cannot read the password from stdin: {error}");
        return ExitCode::from(2);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("error: empty password (type it, then Enter; or pipe it in)");
        return ExitCode::from(2);
    }
    let phc = hash_password(password.as_bytes(), &mut Memory::default());
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{phc}").is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
