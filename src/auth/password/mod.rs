//! Stored password hashes: argon2 (ours) for now.

/// Argon2 PHC strings, the hashes we write, and the reusable working memory.
pub mod argon2;

pub use self::argon2::{
    DEFAULT_PARAMS, HashFormatError, MAX_M_COST, Memory, PasswordHash, default_params, hash_password,
};
