//! `users ...`: adding, changing, listing and importing the users of `DATABASE_URL`. Each
//! command is one change in one transaction; a running server sees it within a second.

use std::process::ExitCode;
use std::sync::Arc;

use crate::auth::password::{Memory, hash_password};
use crate::auth::scopes::ScopesConfig;
use crate::cli::UsersCommand;
use crate::cli::password::read_new_password;
use crate::cli::serve::check_hash;
use crate::config::Config;
use crate::store::user::{check_scope_list, check_username};
use crate::store::{StoreError, Update, User, UserInDb, UserRecord, UserStore, users_file};

/// The longest full name or email accepted, in characters.
const MAX_FIELD_CHARS: usize = 320;

/// Runs one users command: exit 0 when done, 1 with a one-line message when it cannot be.
pub fn run(command: UsersCommand) -> ExitCode {
    match execute(command) {
        Ok(message) => {
            if !message.is_empty() {
                println!("{message}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What the command prints on success, or why it could not be done.
fn execute(command: UsersCommand) -> Result<String, String> {
    let config = Config::from_env().map_err(|error| error.to_string())?;
    let url = config.database_url.clone().ok_or(
        "the users commands need DATABASE_URL (sqlite://PATH or postgres://...), in the environment or .env; without it the server serves the embedded users or USERS_FILE, which are read-only",
    )?;
    // Everything that needs no database (and the slow password hash) comes first.
    let change = prepare(command, config.scopes.as_ref())?;
    let audit = Audit::of(&change);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    runtime.block_on(async {
        let store = UserStore::connect(&url, config.store).await.map_err(|error| error.to_string())?;
        let done = apply(&store, change).await.map_err(|error| match error {
            StoreError::Exists(name) => format!("user {name:?} already exists"),
            StoreError::NotFound(name) => format!("no user {name:?}"),
            other => other.to_string(),
        })?;
        audit.log();
        Ok(done)
    })
}

/// The audit events of a change, written once it is committed (`user.changed`, and
/// `user.tokens_revoked` when it logs the user out everywhere), to the command's log (stderr).
struct Audit {
    usernames: Vec<String>,
    change: &'static str,
    revokes_tokens: bool,
}

impl Audit {
    fn of(change: &Change) -> Self {
        let (usernames, change, revokes_tokens) = match change {
            Change::Add(record) => (vec![record.user.username.clone()], "add", false),
            Change::Update(name, update, _) => {
                let kind = match update {
                    Update { password: Some(_), .. } => "set-password",
                    Update { disabled: Some(true), .. } => "disable",
                    Update { disabled: Some(false), .. } => "enable",
                    Update { scopes: Some(_), .. } => "set-scopes",
                    _ => "revoke-tokens",
                };
                (vec![name.clone()], kind, update.revoke_tokens_before.is_some())
            }
            Change::Remove(name) => (vec![name.clone()], "remove", false),
            Change::List { .. } => (Vec::new(), "list", false),
            Change::Import(records) => {
                (records.iter().map(|record| record.user.username.clone()).collect(), "import", false)
            }
        };
        Self { usernames, change, revokes_tokens }
    }

    fn log(&self) {
        // Who ran the command: the operating system's user id (there is no client address).
        #[cfg(unix)]
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        #[cfg(not(unix))]
        let uid = 0;
        for username in &self.usernames {
            tracing::info!(target: "audit", event = "user.changed", username = username.as_str(), change = self.change, actor = "cli", uid, outcome = "done", "user changed");
            if self.revokes_tokens {
                tracing::info!(target: "audit", event = "user.tokens_revoked", username = username.as_str(), change = self.change, actor = "cli", uid, outcome = "done", "logged out everywhere");
            }
        }
    }
}

/// A users command with its values checked and its password hashed.
enum Change {
    Add(UserRecord),
    Update(String, Update, &'static str),
    Remove(String),
    List { json: bool },
    Import(Vec<UserRecord>),
}

fn prepare(command: UsersCommand, configured: Option<&ScopesConfig>) -> Result<Change, String> {
    Ok(match command {
        UsersCommand::Add { name, full_name, email, disabled, scopes } => {
            check_username(&name)?;
            check_field("--full-name", full_name.as_deref())?;
            check_field("--email", email.as_deref())?;
            let scopes = scopes.map(|list| scope_list(&list, configured)).transpose()?;
            let hashed_password = new_hash()?;
            let user = User { username: name, email, full_name, disabled: Some(disabled) };
            Change::Add(UserRecord { scopes, ..UserRecord::new(user, hashed_password) })
        }
        UsersCommand::SetScopes { name, list, all } => {
            let scopes =
                if all { None } else { Some(scope_list(list.as_deref().unwrap_or(""), configured)?) };
            Change::Update(name, Update { scopes: Some(scopes), ..Update::default() }, "set the scopes of")
        }
        // A new password, a disabled account and logging out everywhere each end the user's
        // refresh tokens and the access tokens issued so far.
        UsersCommand::SetPassword { name } => {
            let update = Update { password: Some(new_hash()?), ..revoking_tokens() };
            Change::Update(name, update, "set the password of")
        }
        UsersCommand::Disable { name } => {
            Change::Update(name, Update { disabled: Some(true), ..revoking_tokens() }, "disabled")
        }
        UsersCommand::Enable { name } => {
            Change::Update(name, Update { disabled: Some(false), ..Update::default() }, "enabled")
        }
        UsersCommand::RevokeTokens { name } => {
            Change::Update(name, revoking_tokens(), "revoked the tokens of")
        }
        UsersCommand::Remove { name } => Change::Remove(name),
        UsersCommand::List { json } => Change::List { json },
        UsersCommand::Import { file } => {
            let records = users_file::load(&file, check_hash)
                .map_err(|error| format!("{}: {error}", file.display()))?;
            for record in &records {
                check_username(&record.user.username).map_err(|reason| {
                    format!("{}: entry {:?}: {reason}", file.display(), record.user.username)
                })?;
            }
            Change::Import(records)
        }
    })
}

async fn apply(store: &UserStore, change: Change) -> Result<String, StoreError> {
    Ok(match change {
        Change::Add(record) => {
            let name = record.user.username.clone();
            store.add(vec![record]).await?;
            format!("added {name:?}")
        }
        Change::Update(name, update, done) => {
            store.update(&name, update).await?;
            format!("{done} {name:?}")
        }
        Change::Remove(name) => {
            store.remove(&name).await?;
            format!("removed {name:?}")
        }
        Change::List { json } => {
            let users = store.list();
            if json { users_file::to_public_json(&users) } else { table(&users) }
        }
        Change::Import(records) => {
            let count = records.len();
            store.add(records).await?;
            format!("imported {count} users")
        }
    })
}

/// An update that refuses the user's tokens issued so far: those of this second too (tokens
/// carry whole seconds), so the cut-off is the next second; a login in the rest of this second
/// waits for it before its token is minted.
fn revoking_tokens() -> Update {
    Update { revoke_tokens_before: Some(tokens_cutoff()), ..Update::default() }
}

/// The first second whose tokens stay valid after a revocation made now.
pub fn tokens_cutoff() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(now).unwrap_or(i64::MAX) + 1
}

/// A comma-separated scope list, each name a scope token (and one SCOPES configures, when it
/// is set here), repeats dropped.
fn scope_list(list: &str, configured: Option<&ScopesConfig>) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in list.split(',').map(str::trim).filter(|scope| !scope.is_empty()) {
        if !scopes.iter().any(|seen| seen == scope) {
            scopes.push(scope.to_owned());
        }
    }
    check_scope_list(&scopes)?;
    if let Some(configured) = configured
        && let Some(unknown) = scopes.iter().find(|scope| !configured.contains(scope))
    {
        let known: Vec<&str> = configured.iter().map(|(name, _)| name).collect();
        return Err(format!("scope {unknown:?} is not in SCOPES ({})", known.join(", ")));
    }
    Ok(scopes)
}

fn new_hash() -> Result<String, String> {
    let password = read_new_password()?;
    Ok(hash_password(password.as_bytes(), &mut Memory::default()))
}

fn check_field(option: &str, value: Option<&str>) -> Result<(), String> {
    match value {
        Some(value) if value.chars().any(char::is_control) => {
            Err(format!("{option} cannot contain control characters"))
        }
        Some(value) if value.chars().count() > MAX_FIELD_CHARS => {
            Err(format!("{option} has at most {MAX_FIELD_CHARS} characters"))
        }
        _ => Ok(()),
    }
}

/// The users as a readable table.
fn table(users: &[Arc<UserInDb>]) -> String {
    let rows: Vec<[String; 5]> = users
        .iter()
        .map(|user| {
            [
                user.username.clone(),
                user.full_name.clone().unwrap_or_default(),
                user.email.clone().unwrap_or_default(),
                if user.is_disabled() { "yes".into() } else { "no".into() },
                match &user.scopes {
                    None => "(all)".into(),
                    Some(scopes) if scopes.is_empty() => "(none)".into(),
                    Some(scopes) => scopes.join(","),
                },
            ]
        })
        .collect();
    let header = ["USERNAME", "FULL NAME", "EMAIL", "DISABLED", "SCOPES"].map(String::from);
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            std::iter::once(&header).chain(&rows).map(|row| row[column].chars().count()).max().unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&match users.len() {
        1 => "(1 user)".to_owned(),
        n => format!("({n} users)"),
    });
    out
}
