//! The users-file shape: the tutorial's `fake_users_db`, as JSON (`USERS_FILE`, `users import`,
//! `users list --json`) or pasted from the tutorial's Python source as it is.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::store::user::{User, UserInDb, UserRecord, check_scope_list};

/// One entry of a users file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    hashed_password: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// One entry as `users list --json` prints it: the users-file shape without the hash.
#[derive(Serialize)]
struct PublicEntry<'a> {
    username: &'a str,
    full_name: &'a Option<String>,
    email: &'a Option<String>,
    disabled: &'a Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: &'a Option<Vec<String>>,
}

/// Why a users file could not be read. The message names the entry and the problem.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not JSON (nor the tutorial's Python dict) of the expected shape.
    #[error(
        "not a valid users file: {0} (expected {{\"<username>\": {{\"username\": ..., \"hashed_password\": \"$argon2id$...\", \"email\"?, \"full_name\"?, \"disabled\"?, \"scopes\"?: [...]}}}})"
    )]
    Json(serde_json::Error),
    /// An entry whose key is not its username.
    #[error("entry {key:?} has username {username:?}; the key must be the username")]
    KeyMismatch {
        /// The map key.
        key: String,
        /// The username inside the entry.
        username: String,
    },
    /// An entry whose hash cannot be verified.
    #[error("entry {key:?}: hashed_password: {reason}")]
    Hash {
        /// The map key.
        key: String,
        /// What is wrong with the hash.
        reason: String,
    },
    /// An entry whose username the CLI would not accept.
    #[error("entry {key:?}: {reason}")]
    Username {
        /// The map key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry whose scopes list is not one of scope names.
    #[error("entry {key:?}: scopes: {reason}")]
    Scopes {
        /// The map key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No users at all.
    #[error("the file defines no users")]
    Empty,
}

/// Reads a users file; `check_hash` says whether a stored hash can be verified.
pub fn load(
    path: &Path,
    check_hash: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<UserRecord>, UsersFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| UsersFileError::Read { path: path.display().to_string(), source })?;
    parse(&text, check_hash)
}

/// Parses a user table in the tutorial's `fake_users_db` shape, sorted by username. JSON, or
/// the dict as the tutorial's Python source writes it (`fake_users_db = {..., "disabled": False,}`).
pub fn parse(
    text: &str,
    check_hash: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<UserRecord>, UsersFileError> {
    let entries: BTreeMap<String, Entry> = match serde_json::from_str(text) {
        Ok(entries) => entries,
        Err(error) => {
            serde_json::from_str(&python_dict_as_json(text)).map_err(|_| UsersFileError::Json(error))?
        }
    };
    if entries.is_empty() {
        return Err(UsersFileError::Empty);
    }
    let mut records = Vec::with_capacity(entries.len());
    for (key, entry) in entries {
        if key != entry.username {
            return Err(UsersFileError::KeyMismatch { key, username: entry.username });
        }
        if let Err(reason) = check_hash(&entry.hashed_password) {
            return Err(UsersFileError::Hash { key, reason });
        }
        if let Some(Err(reason)) = entry.scopes.as_deref().map(check_scope_list) {
            return Err(UsersFileError::Scopes { key, reason });
        }
        let user = User {
            username: entry.username,
            email: entry.email,
            full_name: entry.full_name,
            disabled: entry.disabled,
        };
        records.push(UserRecord { scopes: entry.scopes, ..UserRecord::new(user, entry.hashed_password) });
    }
    Ok(records)
}

/// The users-file shape without hashes, for `users list --json`, keys in username order.
pub fn to_public_json(users: &[Arc<UserInDb>]) -> String {
    let entries: BTreeMap<&str, PublicEntry> = users
        .iter()
        .map(|user| {
            let entry = PublicEntry {
                username: &user.username,
                full_name: &user.full_name,
                email: &user.email,
                disabled: &user.disabled,
                scopes: &user.scopes,
            };
            (user.username.as_str(), entry)
        })
        .collect();
    serde_json::to_string_pretty(&entries).expect("users always serialise")
}

/// Rewrites a Python dict literal as JSON: an optional `name =` in front is dropped, `True`,
/// `False` and `None` become `true`, `false` and `null`, single-quoted strings become
/// double-quoted, `#` comments and trailing commas go. Strings are copied as they are
/// otherwise. Anything that is not such a literal comes out as invalid JSON.
fn python_dict_as_json(text: &str) -> String {
    let text = text.trim_start();
    let text = match text.split_once('=') {
        Some((name, rest)) if is_identifier(name.trim()) && !rest.starts_with('=') => rest,
        _ => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let quote = c;
                out.push('"');
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            // `\'` is not a JSON escape; every other escape reads the same.
                            Some('\'') => out.push('\''),
                            Some(other) => {
                                out.push('\\');
                                out.push(other);
                            }
                            None => out.push('\\'),
                        },
                        c if c == quote => break,
                        '"' => out.push_str("\\\""),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ',' => {
                let mut lookahead = chars.clone();
                let next = loop {
                    match lookahead.next() {
                        Some(c) if c.is_whitespace() => continue,
                        other => break other,
                    }
                };
                if !matches!(next, Some('}' | ']')) {
                    out.push(',');
                }
            }
            c if c.is_alphabetic() => {
                let mut word = String::from(c);
                while let Some(&c) = chars.peek() {
                    if !(c.is_alphanumeric() || c == '_') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push_str(match word.as_str() {
                    "True" => "true",
                    "False" => "false",
                    "None" => "null",
                    other => other,
                });
            }
            other => out.push(other),
        }
    }
    out
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";

    fn any_hash(_: &str) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn a_users_file_in_the_tutorials_shape_loads_with_optional_fields() {
        let records =
            parse(&format!(r#"{{"bob": {{"username": "bob", "hashed_password": "{HASH}"}}}}"#), any_hash)
                .unwrap();
        assert_eq!(records.len(), 1);
        let bob = &records[0].user;
        assert_eq!((bob.username.as_str(), bob.email.as_ref(), bob.disabled), ("bob", None, None));
        assert_eq!(records[0].hashed_password, HASH);
    }

    #[test]
    fn the_tutorials_python_dict_is_read_as_it_is() {
        let pasted = format!(
            r#"fake_users_db = {{
    "johndoe": {{
        "username": "johndoe",
        "full_name": "John Doe",  # the tutorial's user
        'email': 'johndoe@example.com',
        "hashed_password": "{HASH}",
        "disabled": False,
    }},
    "nobody": {{"username": "nobody", "email": None, "hashed_password": "{HASH}", "disabled": True}},
}}
"#
        );
        let records = parse(&pasted, any_hash).unwrap();
        let users: Vec<&User> = records.iter().map(|record| &record.user).collect();
        assert_eq!(users[0].username, "johndoe");
        assert_eq!(users[0].email.as_deref(), Some("johndoe@example.com"));
        assert_eq!(users[0].full_name.as_deref(), Some("John Doe"));
        assert_eq!(users[0].disabled, Some(false));
        assert_eq!((users[1].email.as_ref(), users[1].disabled), (None, Some(true)));
    }

    #[test]
    fn bad_users_files_are_refused_with_the_entry_and_the_problem() {
        let mismatch = format!(r#"{{"bob": {{"username": "rob", "hashed_password": "{HASH}"}}}}"#);
        let error = parse(&mismatch, any_hash).unwrap_err().to_string();
        assert!(error.contains("\"bob\"") && error.contains("\"rob\""), "{error}");

        let plain = r#"{"bob": {"username": "bob", "hashed_password": "secret"}}"#;
        let error = parse(plain, |_| Err("not a PHC string".into())).unwrap_err().to_string();
        assert_eq!(error, "entry \"bob\": hashed_password: not a PHC string");

        let typo =
            format!(r#"{{"bob": {{"username": "bob", "disable": true, "hashed_password": "{HASH}"}}}}"#);
        let error = parse(&typo, any_hash).unwrap_err().to_string();
        assert!(error.contains("unknown field `disable`"), "{error}");

        let bad_scopes =
            format!(r#"{{"bob": {{"username": "bob", "hashed_password": "{HASH}", "scopes": ["a b"]}}}}"#);
        let error = parse(&bad_scopes, any_hash).unwrap_err().to_string();
        assert!(error.contains(r#"entry "bob": scopes: scope "a b""#), "{error}");

        assert!(matches!(parse("{}", any_hash), Err(UsersFileError::Empty)));
        assert!(matches!(parse("[1, 2", any_hash), Err(UsersFileError::Json(_))));
        assert!(matches!(parse("users = [True]", any_hash), Err(UsersFileError::Json(_))));
    }

    #[test]
    fn the_public_json_has_the_files_shape_without_hashes() {
        let records = parse(
            &format!(
                r#"{{"bob": {{"username": "bob", "email": "b@x", "hashed_password": "{HASH}"}},
                    "eve": {{"username": "eve", "hashed_password": "{HASH}", "scopes": ["me"]}}}}"#
            ),
            any_hash,
        )
        .unwrap();
        let users: Vec<Arc<UserInDb>> = records.into_iter().map(|record| Arc::new(record.into())).collect();
        let json: serde_json::Value = serde_json::from_str(&to_public_json(&users)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "bob": {"username": "bob", "full_name": null, "email": "b@x", "disabled": null},
                "eve": {"username": "eve", "full_name": null, "email": null, "disabled": null, "scopes": ["me"]},
            })
        );
        assert!(!to_public_json(&users).contains(HASH));
    }
}
