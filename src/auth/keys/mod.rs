//! The keys tokens are signed with: `SECRET_KEY` as one HS256 key without `kid` (the tutorial's
//! way), or the JSON Web Key Set of `JWT_KEYS_FILE`, whose first key signs and whose every key
//! verifies, each known by its `kid`.
//!
//! The signatures themselves are made and checked by `jsonwebtoken` (RustCrypto underneath);
//! this module only turns keys into its `EncodingKey`/`DecodingKey` once, at load. HS256 keys
//! are also kept as an HMAC keyed once, which checking a token clones instead of re-keying.

/// Why a key set is refused.
mod error;
/// `keys generate`: new private JWKs from the operating system's random number generator.
mod generate;
/// Private JWKs read into signing keys, their thumbprints, and the public key set we publish.
mod jwk;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use getrandom::SysRng;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand_core::TryRng;
use sha2::Sha256;

pub use error::{KeyError, KeyProblem};
pub use generate::{GenerateError, generate};

/// The JWT signing key of `SECRET_KEY`. Its `Debug` never prints it.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Vec<u8>,
    generated: bool,
}

impl SecretKey {
    /// A key given by the operator.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { bytes: key.into(), generated: false }
    }

    /// A fresh random key (64 hex characters, like `openssl rand -hex 32`); `None` when the
    /// operating system's random number generator is unavailable.
    pub fn random() -> Option<Self> {
        let mut raw = [0u8; 32];
        SysRng.try_fill_bytes(&mut raw).ok()?;
        let hex: String = raw.iter().map(|byte| format!("{byte:02x}")).collect();
        Some(Self { bytes: hex.into_bytes(), generated: true })
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True when no key was configured and this one was made up at start.
    pub fn is_generated(&self) -> bool {
        self.generated
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The signature algorithms we sign and verify with: one per key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// HMAC with SHA-256, with an `oct` key (or `SECRET_KEY`).
    HS256,
    /// Ed25519 (RFC 8037), with an `OKP` key on curve `Ed25519`.
    EdDSA,
    /// ECDSA on P-256 with SHA-256, with an `EC` key on curve `P-256`.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, with an `RSA` key of 2048 to 4096 bits.
    RS256,
}

impl KeyAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [KeyAlgorithm; 4] = [Self::EdDSA, Self::ES256, Self::RS256, Self::HS256];

    /// The JOSE name, as in a token's `alg` header and a JWK's `alg` member.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    /// The JWK key type (`kty`) that signs with this algorithm.
    pub const fn key_type(self) -> &'static str {
        match self {
            Self::HS256 => "oct",
            Self::EdDSA => "OKP",
            Self::ES256 => "EC",
            Self::RS256 => "RSA",
        }
    }

    /// True for HS256: its key is a shared secret and is never published.
    pub const fn is_symmetric(self) -> bool {
        matches!(self, Self::HS256)
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One key, ready to sign and to verify. Its `Debug` shows its `kid` and algorithm only.
pub struct SigningKey {
    kid: Option<String>,
    algorithm: KeyAlgorithm,
    encoding: EncodingKey,
    verifier: Verifier,
}

/// How a key checks signatures, built once at load.
enum Verifier {
    /// HS256: an HMAC keyed once; each check clones it instead of re-keying (the hot path).
    Hmac(Hmac<Sha256>),
    /// The public key, for `jsonwebtoken::crypto::verify`.
    Public(DecodingKey),
}

impl SigningKey {
    /// An HS256 key from raw bytes.
    fn hmac(kid: Option<String>, secret: &[u8]) -> Self {
        Self {
            kid,
            algorithm: KeyAlgorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            verifier: Verifier::Hmac(Hmac::new_from_slice(secret).expect("HMAC takes keys of any length")),
        }
    }

    /// An asymmetric key: what signs (the private key) and what verifies (the public key).
    fn asymmetric(
        kid: String,
        algorithm: KeyAlgorithm,
        encoding: EncodingKey,
        decoding: DecodingKey,
    ) -> Self {
        Self { kid: Some(kid), algorithm, encoding, verifier: Verifier::Public(decoding) }
    }

    /// The key's id: the file's `kid`, or its RFC 7638 thumbprint; `None` only for `SECRET_KEY`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm the key signs with.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The signature of `message` (a JWS signing input), base64url-encoded without padding.
    pub fn sign(&self, message: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::crypto::sign(message, &self.encoding, self.algorithm.jsonwebtoken())
    }

    /// Whether `signature` (raw bytes) is this key's signature of `message`. HMACs are
    /// compared in constant time.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verifier::Hmac(keyed) => {
                let mut mac = keyed.clone();
                mac.update(message);
                mac.verify_slice(signature).is_ok()
            }
            Verifier::Public(decoding) => {
                let signature = URL_SAFE_NO_PAD.encode(signature);
                jsonwebtoken::crypto::verify(&signature, message, decoding, self.algorithm.jsonwebtoken())
                    .unwrap_or(false)
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The keys tokens are signed and checked with: the first signs, every one verifies. Cheap to
/// clone (shared); its `Debug` shows kids and algorithms, never key material.
#[derive(Clone)]
pub struct SigningKeys(Arc<Keys>);

struct Keys {
    keys: Vec<SigningKey>,
    /// `{"keys":[...]}` of the public keys; `None` when the keys are `SECRET_KEY`.
    public_jwks: Option<Bytes>,
}

impl SigningKeys {
    /// `SECRET_KEY`'s bytes, as given, as one HS256 key without `kid`: tokens exactly as
    /// before key sets existed.
    pub fn from_secret(secret: &SecretKey) -> Self {
        Self(Arc::new(Keys { keys: vec![SigningKey::hmac(None, secret.as_bytes())], public_jwks: None }))
    }

    /// A JSON Web Key Set (RFC 7517) of private keys, as text: `{"keys": [...]}`. Each key
    /// needs `kty` and its private members; `alg`, when given, must be the one algorithm its
    /// type signs with, and `use`, when given, `sig`. A key without `kid` is known by its
    /// RFC 7638 thumbprint (base64url SHA-256 of its required public members; for `oct`, of
    /// `k` and `kty`). Kids must be unique.
    pub fn from_jwks(json: &str) -> Result<Self, KeyError> {
        let (keys, public_jwks) = jwk::parse_set(json)?;
        Ok(Self(Arc::new(Keys { keys, public_jwks: Some(public_jwks) })))
    }

    /// The key set in the file at `path` (see `from_jwks`).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(KeyError::Read)?;
        Self::from_jwks(&text)
    }

    /// The key that signs new tokens: the first of the set.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0.keys[0]
    }

    /// The key whose `kid` is `kid`, if any.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.0.keys.iter().find(|key| key.kid.as_deref() == Some(kid))
    }

    /// Every key, the signing one first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.0.keys
    }

    /// True when the keys come from a key set, whose tokens carry and need a `kid`; false for
    /// `SECRET_KEY`.
    pub fn is_key_set(&self) -> bool {
        self.0.public_jwks.is_some()
    }

    /// `{"keys":[...]}`: the public members of the set's asymmetric keys with `kid`, `alg` and
    /// `use`, rendered once at load; never an `oct` key. `None` for `SECRET_KEY`.
    pub fn public_jwks(&self) -> Option<&Bytes> {
        self.0.public_jwks.as_ref()
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0.keys).finish()
    }
}

#[cfg(test)]
mod tests;
