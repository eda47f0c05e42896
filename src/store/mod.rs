//! Users: the public `User`, the stored `UserInDb`, and the `UserStore` they live in.
//!
//! The store is the tutorial's `fake_users_db`: the embedded seed by default, or a JSON file of
//! the same shape given as `USERS_FILE`.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::password::{HashFormatError, PasswordHash, StoredHash, default_params};

/// The embedded user table: the tutorial's johndoe, and alice (disabled) from its scopes chapter.
pub const SEED_USERS: &str = include_str!("seed_users.json");

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

/// A stored user: the public part (it derefs to `User`, as the tutorial's `UserInDB` extends
/// `User`), that part already rendered as JSON, and the password hash. Its `Debug` hides the hash.
pub struct UserInDb {
    /// What `/users/me/` shows.
    pub user: User,
    /// `user` as compact JSON, rendered once when the table is loaded.
    pub json: Bytes,
    /// The parsed hash: argon2, or a legacy format to upgrade at the next login.
    pub hashed_password: StoredHash,
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

/// The users, keyed by username, and the dummy hash that unknown usernames are checked against.
#[derive(Debug)]
pub struct UserStore {
    users: HashMap<String, Arc<UserInDb>>,
    dummy: StoredHash,
}

/// One entry of a users file, in the tutorial's `fake_users_db` shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRecord {
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    hashed_password: String,
}

/// Why a user table could not be loaded. The message names the entry and the problem.
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
    /// Not JSON of the expected shape.
    #[error(
        "not a valid users file: {0} (expected {{\"<username>\": {{\"username\": ..., \"hashed_password\": \"$argon2id$...\", \"email\"?, \"full_name\"?, \"disabled\"?}}}})"
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
    /// An entry whose hash cannot be used.
    #[error("entry {key:?}: hashed_password: {source}")]
    Hash {
        /// The map key.
        key: String,
        /// What is wrong with the hash.
        source: HashFormatError,
    },
    /// No users at all.
    #[error("the file defines no users")]
    Empty,
}

impl UserStore {
    /// The embedded seed (johndoe and alice).
    pub fn seeded() -> Self {
        Self::from_json(SEED_USERS).expect("the embedded seed is valid")
    }

    /// Loads a users file (`USERS_FILE`); every problem names the file.
    pub fn load(path: &Path) -> Result<Self, UsersFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| UsersFileError::Read { path: path.display().to_string(), source })?;
        Self::from_json(&text)
    }

    /// Parses a user table in the tutorial's `fake_users_db` shape.
    pub fn from_json(text: &str) -> Result<Self, UsersFileError> {
        let records: HashMap<String, UserRecord> =
            serde_json::from_str(text).map_err(UsersFileError::Json)?;
        if records.is_empty() {
            return Err(UsersFileError::Empty);
        }
        let mut users = HashMap::with_capacity(records.len());
        for (key, record) in records {
            if key != record.username {
                return Err(UsersFileError::KeyMismatch { key, username: record.username });
            }
            let hashed_password = StoredHash::parse(&record.hashed_password)
                .map_err(|source| UsersFileError::Hash { key: key.clone(), source })?;
            let user = User {
                username: record.username,
                email: record.email,
                full_name: record.full_name,
                disabled: record.disabled,
            };
            let json = Bytes::from(serde_json::to_vec(&user).map_err(UsersFileError::Json)?);
            users.insert(key, Arc::new(UserInDb { user, json, hashed_password }));
        }
        let dummy = StoredHash::from(PasswordHash::dummy(dummy_params(&users)));
        Ok(Self { users, dummy })
    }

    /// The user with this exact username (case-sensitive, no trimming, as the tutorial).
    pub fn get(&self, username: &str) -> Option<&Arc<UserInDb>> {
        self.users.get(username)
    }

    /// The hash a login for `username` is checked against: the user's own, or the dummy.
    pub fn hash_to_check(&self, username: &str) -> (Option<Arc<UserInDb>>, StoredHash) {
        match self.users.get(username) {
            Some(stored) => (Some(Arc::clone(stored)), stored.hashed_password.clone()),
            None => (None, self.dummy.clone()),
        }
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there are no users (never, for a loaded store).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The dummy hash costs what the users' hashes cost: their parameters when they are all argon2
/// and agree, otherwise the default ones (legacy hashes are upgraded to those at login).
fn dummy_params(users: &HashMap<String, Arc<UserInDb>>) -> argon2::Params {
    let mut params = users.values().map(|stored| match &stored.hashed_password {
        StoredHash::Argon2(hash) => Some(hash.params()),
        _ => None,
    });
    match params.next() {
        Some(Some(first)) if params.all(|other| other.is_some_and(|other| same_cost(first, other))) => {
            first.clone()
        }
        _ => default_params(),
    }
}

fn same_cost(a: &argon2::Params, b: &argon2::Params) -> bool {
    (a.m_cost(), a.t_cost(), a.p_cost()) == (b.m_cost(), b.t_cost(), b.p_cost())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_has_johndoe_active_and_alice_disabled() {
        let store = UserStore::seeded();
        assert_eq!(store.len(), 2);
        let john = store.get("johndoe").unwrap();
        assert_eq!(john.full_name.as_deref(), Some("John Doe"));
        assert_eq!(john.email.as_deref(), Some("johndoe@example.com"));
        assert!(!john.is_disabled());
        assert!(store.get("alice").unwrap().is_disabled());
        assert_eq!(
            john.json,
            r#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#
        );
        assert!(store.get("JohnDoe").is_none());
    }

    fn argon2(hash: &StoredHash) -> &PasswordHash {
        match hash {
            StoredHash::Argon2(hash) => hash,
            other => panic!("not argon2: {other:?}"),
        }
    }

    #[test]
    fn unknown_users_are_checked_against_a_dummy_with_the_same_cost() {
        let store = UserStore::seeded();
        let (user, dummy) = store.hash_to_check("nobody");
        assert!(user.is_none());
        let (_, real) = store.hash_to_check("johndoe");
        assert!(same_cost(argon2(&dummy).params(), argon2(&real).params()));
    }

    #[test]
    fn migrated_users_load_and_unknown_users_still_cost_our_own_argon2id() {
        let store = UserStore::from_json(
            r#"{"bob": {"username": "bob", "hashed_password": "$2b$12$dCqMX2b8rxlq0FSLTMihDe2OgLFis29/adsTBHL2KlDvkqlpcF5uG"}}"#,
        )
        .unwrap();
        let (_, bob) = store.hash_to_check("bob");
        assert!(bob.needs_upgrade());
        let (_, dummy) = store.hash_to_check("nobody");
        assert!(same_cost(argon2(&dummy).params(), &default_params()));
    }

    #[test]
    fn a_users_file_in_the_tutorials_shape_loads_with_optional_fields() {
        let store = UserStore::from_json(
            r#"{"bob": {"username": "bob", "hashed_password": "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc"}}"#,
        )
        .unwrap();
        let bob = store.get("bob").unwrap();
        assert_eq!((bob.email.as_ref(), bob.disabled), (None, None));
        assert!(!bob.is_disabled());
    }

    #[test]
    fn bad_users_files_are_refused_with_the_entry_and_the_problem() {
        let hash = "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";
        let mismatch = format!(r#"{{"bob": {{"username": "rob", "hashed_password": "{hash}"}}}}"#);
        let error = UserStore::from_json(&mismatch).unwrap_err().to_string();
        assert!(error.contains("\"bob\"") && error.contains("\"rob\""), "{error}");

        let plain = r#"{"bob": {"username": "bob", "hashed_password": "secret"}}"#;
        let error = UserStore::from_json(plain).unwrap_err().to_string();
        assert!(error.starts_with("entry \"bob\": hashed_password: not a password hash we know"), "{error}");

        let typo =
            format!(r#"{{"bob": {{"username": "bob", "disable": true, "hashed_password": "{hash}"}}}}"#);
        let error = UserStore::from_json(&typo).unwrap_err().to_string();
        assert!(error.contains("unknown field `disable`"), "{error}");

        assert!(matches!(UserStore::from_json("{}"), Err(UsersFileError::Empty)));
        assert!(matches!(UserStore::from_json("[1, 2"), Err(UsersFileError::Json(_))));
    }
}
