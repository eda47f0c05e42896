//! Why a key set is refused: the key, by its position and `kid`, and the problem, in words
//! that never contain key material.

use super::KeyAlgorithm;

/// Why a key set was refused. Messages name the key by its position and `kid`, and never
/// contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    /// Not JSON, or JSON that is not a key set.
    #[error("not a JSON Web Key Set: {0}")]
    Malformed(String),
    /// `keys` holds no key.
    #[error("the key set is empty: \"keys\" must hold at least one key")]
    Empty,
    /// A key that cannot be used.
    #[error("keys[{index}] ({}): {problem}", kid_label(.kid.as_deref()))]
    Key {
        /// Its position in `keys`, from 0.
        index: usize,
        /// Its `kid`, when it has a usable one.
        kid: Option<String>,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// Two keys with one `kid`.
    #[error("keys[{index}] (kid {kid:?}): keys[{first}] has the same kid; kids must be unique")]
    DuplicateKid {
        /// The position of the second one.
        index: usize,
        /// The position of the first one.
        first: usize,
        /// The shared `kid` (for keys without one, their thumbprint: the same key twice).
        kid: String,
    },
}

fn kid_label(kid: Option<&str>) -> String {
    kid.map_or_else(|| "no kid".to_owned(), |kid| format!("kid {kid:?}"))
}

/// What is wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// The entry is not a JSON object.
    #[error("not a JSON object")]
    NotAnObject,
    /// A `kid` we could not put in a token header.
    #[error("\"kid\" must be 1 to 256 printable ASCII characters")]
    BadKid,
    /// A required member is absent.
    #[error("\"{0}\" is missing")]
    Missing(&'static str),
    /// A public key: no `d`.
    #[error("no \"d\": this is a public key, and the file must hold private keys")]
    NotPrivate,
    /// A member that is not a string.
    #[error("\"{0}\" must be a string")]
    NotAString(&'static str),
    /// A member that is not base64url.
    #[error("\"{0}\" is not base64url without padding")]
    NotBase64(&'static str),
    /// A member of the wrong size.
    #[error("\"{member}\" must be {expected} bytes, not {actual}")]
    Length {
        /// The member.
        member: &'static str,
        /// The size its curve needs.
        expected: usize,
        /// Its size.
        actual: usize,
    },
    /// A `kty` we do not sign with.
    #[error("unsupported kty {0:?}: supported are oct (HS256), OKP (EdDSA), EC (ES256) and RSA (RS256)")]
    UnsupportedType(String),
    /// A curve we do not sign with.
    #[error("unsupported crv {crv:?} for kty {kty}: only {supported} is supported")]
    UnsupportedCurve {
        /// The key type.
        kty: &'static str,
        /// The curve given.
        crv: String,
        /// The one curve we support for it.
        supported: &'static str,
    },
    /// An `alg` other than the one algorithm the key type signs with here.
    #[error("alg {alg:?} does not fit kty {kty}: {kty} keys sign with {expected}")]
    AlgMismatch {
        /// The `alg` given.
        alg: String,
        /// The key type.
        kty: &'static str,
        /// The algorithm keys of that type sign with.
        expected: KeyAlgorithm,
    },
    /// A `use` other than `sig`.
    #[error("use {0:?}: a signing key must have use \"sig\" (or none)")]
    NotForSigning(String),
    /// An HS256 key shorter than its hash (RFC 7518 §3.2).
    #[error("an oct key of {0} bytes: HS256 needs at least 32")]
    ShortSecret(usize),
    /// An RSA modulus under 2048 bits (RFC 7518 §3.3).
    #[error("an RSA key of {0} bits: at least 2048 are required")]
    ShortRsa(usize),
    /// An RSA modulus over 4096 bits, which the verifier refuses.
    #[error("an RSA key of {0} bits: at most 4096 are supported")]
    LongRsa(usize),
    /// An RSA key with more than two primes.
    #[error("multi-prime RSA keys (\"oth\") are not supported")]
    MultiPrime,
    /// A public member that does not belong to the private key.
    #[error("\"{0}\" does not match the private key")]
    Mismatch(&'static str),
    /// A key its library refuses.
    #[error("not a valid {kty} key: {reason}")]
    Invalid {
        /// The key type.
        kty: &'static str,
        /// The library's reason (never key material).
        reason: String,
    },
}
