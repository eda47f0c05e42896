//! Users: the public `User`, the stored `UserRecord`, and `UserInDb`, the form a running
//! server keeps in memory.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user as clients see it: the tutorial's `User` model, never with the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(title = "User")]
pub struct User {
    /// The login name.
    pub username: String,
    /// Contact address.
    #[schema(required = false)]
    pub email: Option<String>,
    /// Display name.
    #[schema(required = false)]
    pub full_name: Option<String>,
    /// A disabled user can log in but is refused by every protected route.
    #[schema(required = false)]
    pub disabled: Option<bool>,
}

impl User {
    /// True when the account is disabled (`disabled: true`; absent or null means active).
    pub fn is_disabled(&self) -> bool {
        self.disabled == Some(true)
    }
}

/// A user as the store keeps it: the public fields, the password hash, and what governs the
/// user's tokens. The store does not look inside the hash (the auth domain parses and checks
/// it). Its `Debug` hides the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// What `/users/me/` shows.
    pub user: User,
    /// The password hash as stored (argon2 PHC, or a legacy format awaiting its upgrade).
    pub hashed_password: String,
    /// The user's tokens issued before this time (Unix seconds) are refused: set when the user
    /// logs out everywhere, changes password or is disabled. 0: none.
    pub tokens_valid_after: i64,
    /// The scopes the user may be granted; `None`: every configured scope.
    pub scopes: Option<Vec<String>>,
}

impl UserRecord {
    /// A user with this hash, no token cut-off and no scope list.
    pub fn new(user: User, hashed_password: impl Into<String>) -> Self {
        Self { user, hashed_password: hashed_password.into(), tokens_valid_after: 0, scopes: None }
    }
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("hashed_password", &"<redacted>")
            .field("tokens_valid_after", &self.tokens_valid_after)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A stored user as a running server holds it: the public part (it derefs to `User`, as the
/// tutorial's `UserInDB` extends `User`), that part already rendered as JSON, and the hash.
pub struct UserInDb {
    /// What `/users/me/` shows.
    pub user: User,
    /// `user` as compact JSON, rendered once when the user is loaded.
    pub json: Bytes,
    /// The password hash as stored.
    pub hashed_password: String,
    /// The user's tokens issued before this time (Unix seconds) are refused.
    pub tokens_valid_after: i64,
    /// The scopes the user may be granted; `None`: every configured scope.
    pub scopes: Option<Vec<String>>,
}

impl From<UserRecord> for UserInDb {
    fn from(record: UserRecord) -> Self {
        let json = Bytes::from(serde_json::to_vec(&record.user).expect("a User always serialises"));
        Self {
            user: record.user,
            json,
            hashed_password: record.hashed_password,
            tokens_valid_after: record.tokens_valid_after,
            scopes: record.scopes,
        }
    }
}

impl Deref for UserInDb {
    type Target = User;

    fn deref(&self) -> &User {
        &self.user
    }
}

impl fmt::Debug for UserInDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserInDb").field("user", &self.user).field("hashed_password", &"<redacted>").finish()
    }
}

/// The longest username the CLI accepts, in characters (Django's limit).
pub const MAX_USERNAME_CHARS: usize = 150;

/// Checks a username as the users CLI accepts it: non-empty, at most 150 characters, no
/// control characters, no whitespace around it. (Logins compare usernames exactly, so a
/// stray space would make an account nobody can type.)
pub fn check_username(username: &str) -> Result<(), &'static str> {
    if username.is_empty() {
        Err("a username cannot be empty")
    } else if username.chars().count() > MAX_USERNAME_CHARS {
        Err("a username has at most 150 characters")
    } else if username.chars().any(char::is_control) {
        Err("a username cannot contain control characters")
    } else if username.trim() != username {
        Err("a username cannot start or end with whitespace")
    } else {
        Ok(())
    }
}

/// The longest scope name, in bytes.
pub const MAX_SCOPE_LEN: usize = 128;

/// Checks a scope name as RFC 6749 §3.3 allows it (`scope-token`: printable ASCII but space,
/// `"` and `\`), not empty, at most 128 bytes.
pub fn check_scope_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("a scope name cannot be empty")
    } else if name.len() > MAX_SCOPE_LEN {
        Err("a scope name has at most 128 characters")
    } else if !name.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
        Err("a scope name is printable ASCII without spaces, '\"' or '\\' (RFC 6749 §3.3)")
    } else {
        Ok(())
    }
}

/// The most scopes a user's list may name (as `SCOPES` may define).
pub const MAX_SCOPES: usize = 100;

/// Checks a user's list of allowed scopes: each name as [`check_scope_name`] allows, at most
/// [`MAX_SCOPES`] of them.
pub fn check_scope_list(scopes: &[String]) -> Result<(), String> {
    if scopes.len() > MAX_SCOPES {
        return Err(format!("a user has at most {MAX_SCOPES} scopes"));
    }
    for scope in scopes {
        check_scope_name(scope).map_err(|reason| format!("scope {scope:?}: {reason}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_are_rfc_6749_scope_tokens() {
        assert_eq!(check_scope_name("items:read"), Ok(()));
        assert_eq!(check_scope_name(&"s".repeat(128)), Ok(()));
        for bad in ["", "read all", "quote\"", "back\\slash", "é", "tab\t", &"s".repeat(129)] {
            assert!(check_scope_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_scope_list(&["me".into(), "items".into()]).is_ok());
        assert!(check_scope_list(&vec!["me".to_owned(); 101]).unwrap_err().contains("at most 100"));
        assert!(check_scope_list(&["me".into(), "a b".into()]).unwrap_err().contains("\"a b\""));
    }

    #[test]
    fn usernames_are_checked_as_the_cli_accepts_them() {
        assert_eq!(check_username("johndoe"), Ok(()));
        assert_eq!(check_username("Zoë Ünicode-ok.42@x"), Ok(()));
        assert_eq!(check_username(&"é".repeat(150)), Ok(()));
        assert!(check_username("").is_err());
        assert!(check_username(&"a".repeat(151)).is_err());
        assert!(check_username("bad\u{7}bell").is_err());
        assert!(check_username("tab\there").is_err());
        assert!(check_username(" padded").is_err());
        assert!(check_username("padded\u{a0}").is_err());
    }

    #[test]
    fn debug_output_never_shows_the_hash() {
        let user = User { username: "bob".into(), email: None, full_name: None, disabled: None };
        let record = UserRecord::new(user, "$argon2id$secret-hash");
        assert!(!format!("{record:?}").contains("secret-hash"));
        assert!(!format!("{:?}", UserInDb::from(record)).contains("secret-hash"));
    }
}
