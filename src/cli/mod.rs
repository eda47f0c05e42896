//! The binary's commands: serving (the default), `users ...` against `DATABASE_URL`,
//! `hash-password`, and `keys generate`. Usage errors exit 2 (clap's convention); a command that cannot be done
//! exits 1 with a one-line message saying why.

/// `keys generate`: a new private JWK for `JWT_KEYS_FILE`.
mod keys;
/// Reading passwords from standard input or a terminal.
mod password;
/// Serving the API.
pub mod serve;
/// `users ...`: managing the users of a database.
pub mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::telemetry::logging::{self, LogTo};

/// `oauth2-jwt-server [COMMAND]`: without a command, serves the API.
#[derive(Debug, Parser)]
#[command(
    name = "oauth2-jwt-server",
    version,
    about = "FastAPI's OAuth2 password + JWT tutorial as a server. Without a command, serves the API.",
    after_help = "Configured by environment variables and a .env file in the working directory (see .env.example)."
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Read one password from standard input and print its argon2id PHC string (for USERS_FILE).
    HashPassword,
    /// Manage the users kept in DATABASE_URL.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Signing keys for JWT_KEYS_FILE.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new private key as a JWK (with kid, alg and use) for a JWT_KEYS_FILE key set:
    /// `{"keys": [<newest first>, ...]}`.
    Generate {
        /// The algorithm the key signs with.
        #[arg(long, value_enum)]
        alg: KeyAlg,
    },
}

/// The algorithms `keys generate` makes keys for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KeyAlg {
    /// Ed25519 (OKP): small, fast, deterministic signatures.
    #[value(name = "EdDSA")]
    EdDSA,
    /// ECDSA on P-256 (EC).
    #[value(name = "ES256")]
    ES256,
    /// RSA, 2048 bits (RFC 9068 asks JWT access-token issuers to support it).
    #[value(name = "RS256")]
    RS256,
    /// HMAC-SHA256 with 32 random bytes (oct): a shared secret, never published.
    #[value(name = "HS256")]
    HS256,
}

/// `users ...`. A password is read from standard input when it is not a terminal (one line,
/// without its line ending), otherwise prompted for twice without echo.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user; the password is read as described above.
    Add {
        /// The username (at most 150 characters, no control characters, no surrounding spaces).
        name: String,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
        /// Contact address.
        #[arg(long)]
        email: Option<String>,
        /// Create the account disabled.
        #[arg(long)]
        disabled: bool,
        /// The scopes the user may be granted, comma-separated (e.g. `me,items`); without it,
        /// every scope in SCOPES.
        #[arg(long, value_name = "LIST")]
        scopes: Option<String>,
    },
    /// Set the scopes a user may be granted: a comma-separated LIST (`me,items`; `""` for
    /// none), or --all for every scope in SCOPES. Tokens already issued keep their scopes.
    SetScopes {
        /// The username.
        name: String,
        /// The scopes, comma-separated.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        list: Option<String>,
        /// Every scope SCOPES configures, now and later (no list).
        #[arg(long)]
        all: bool,
    },
    /// Set a user's password; the password is read as described above.
    SetPassword {
        /// The username.
        name: String,
    },
    /// Disable an account: its tokens are refused with 400 "Inactive user".
    Disable {
        /// The username.
        name: String,
    },
    /// Enable a disabled account.
    Enable {
        /// The username.
        name: String,
    },
    /// Remove a user: its tokens are refused with 401.
    Remove {
        /// The username.
        name: String,
    },
    /// Log a user out everywhere: end their refresh tokens and refuse the access tokens issued
    /// so far (set-password and disable do this too).
    RevokeTokens {
        /// The username.
        name: String,
    },
    /// List the users (a table; --json for the USERS_FILE shape without hashes).
    List {
        /// Print JSON in the USERS_FILE shape, without hashes.
        #[arg(long)]
        json: bool,
    },
    /// Import a file in the USERS_FILE shape (or the tutorial's fake_users_db dict), hashes as
    /// they are; all users or none.
    Import {
        /// The file.
        file: PathBuf,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Real environment variables win over .env; only the working directory's .env is read
    // (dotenvy::dotenv would also search parent directories).
    let dotenv = dotenvy::from_path(".env");
    let serving = matches!(cli.command, None | Some(Command::Serve));
    // An unusable LOG_FORMAT logs as text until the config, read next, stops with its name.
    let format = std::env::var("LOG_FORMAT").ok().and_then(|format| format.parse().ok()).unwrap_or_default();
    if serving {
        logging::init(format, "info", LogTo::Stdout);
    } else {
        // The commands answer on stdout; their log, audit events of user changes included,
        // goes to stderr.
        logging::init(format, "warn,audit=info", LogTo::Stderr);
    }
    if let Err(error) = &dotenv
        && !error.not_found()
    {
        eprintln!("error: cannot read .env: {error}");
        return ExitCode::from(2);
    }
    match cli.command {
        None | Some(Command::Serve) => serve::serve(),
        Some(Command::HashPassword) => password::print_hash(),
        Some(Command::Users(command)) => users::run(command),
        Some(Command::Keys(KeysCommand::Generate { alg })) => keys::generate(alg),
    }
}
