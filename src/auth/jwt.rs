//! Access tokens: JWTs with `sub` and `exp`, minted and checked the way PyJWT does it.
//!
//! With `SECRET_KEY` they are HS256 tokens exactly as the tutorial's PyJWT writes them. With a
//! key set (`JWT_KEYS_FILE`) the set's first key signs, the header names it by `kid`, and
//! every key of the set verifies the tokens that name it.
//!
//! Minting writes PyJWT's exact header bytes and has `jsonwebtoken` sign. Checking follows
//! PyJWT's rules to the letter, which `jsonwebtoken`'s typed `Header` cannot express (a `null`
//! `kid` or `crit`, `b64`, duplicate keys, padded segments): the header and claims are read
//! here and the signature is checked by the key the header names, HS256 with an HMAC keyed
//! once at start. On top of PyJWT: `exp` is required (RFC 8725), any `crit` is refused, and so
//! is a token over 8 KiB. Only the key's own algorithm is accepted, and `jwk`, `jku`, `x5u`
//! and `x5c` are never read: a token cannot choose its key or algorithm.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use bytes::Bytes;
use getrandom::SysRng;
use quick_cache::sync::Cache;
use rand_core::TryRng;
use serde::Serialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::keys::{SecretKey, SigningKey, SigningKeys};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// How many tokens that passed every check are remembered (see `TokenKeys::verified`): a few
/// MiB at most, and the cache keeps the ones in use.
const VERIFIED_CAPACITY: usize = 4096;

/// `{"alg":"HS256","typ":"JWT"}`, byte for byte as PyJWT writes it.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// PyJWT's segment decoding: URL-safe alphabet, canonical, padding allowed but not required.
const SEGMENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The keys, ready to sign and verify, the signing key's header, and the token lifetime,
/// built once at start.
pub struct TokenKeys {
    keys: SigningKeys,
    /// The base64url header of minted tokens, as PyJWT writes it for the signing key.
    header_b64: String,
    lifetime: Duration,
    /// Minted tokens carry `iat` and `jti`.
    lifecycle_claims: bool,
    /// Tokens that passed every check, by their exact text, with what they were found to say.
    /// A client sends the same token with each request of its session: a lookup then replaces
    /// base64, the signature check and the JSON parse, which give the same result for the same
    /// bytes and keys. What depends on the time (`exp`, `nbf`, `iat`) is checked on every use.
    verified: Cache<Box<str>, Arc<Verified>>,
}

/// What a token that passed every check says, and its revocation id.
struct Verified {
    claims: Validated,
    id: [u8; 16],
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys").field("keys", &self.keys).field("lifetime", &self.lifetime).finish()
    }
}

/// A token we refuse. Clients only ever see "Could not validate credentials".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Over `MAX_TOKEN_LEN`.
    #[error("token too long")]
    TooLong,
    /// Bad structure or encoding.
    #[error("malformed token")]
    Malformed,
    /// A header we refuse: an algorithm other than the key's, a `crit` (RFC 7515 §4.1.11: we
    /// understand no extensions), a non-string `kid`, or an unencoded payload (`b64: false`).
    #[error("unacceptable header")]
    Header,
    /// With a key set: no `kid`, or a `kid` naming none of our keys.
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not match.
    #[error("bad signature")]
    Signature,
    /// No `exp`, or `exp` in the past.
    #[error("expired or without expiry")]
    Expired,
    /// `nbf` or `iat` in the future.
    #[error("not yet valid")]
    Immature,
    /// A claim of the wrong type, or an audience we do not serve.
    #[error("invalid claims")]
    Claims,
}

#[derive(Serialize)]
struct NewClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// Its subject: the username (shared with the verified-token cache, not copied).
    pub sub: Arc<str>,
    /// When it expires (seconds since the epoch).
    pub exp: u64,
    /// When it was issued: its `iat`, or, for tokens without one (the tutorial's), `exp` less
    /// the configured lifetime.
    pub issued_at: i64,
    /// Its `scope` claim (scopes mode).
    pub scope: ScopeClaim,
    id: [u8; 16],
}

/// A token's `scope` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeClaim {
    /// No claim: no scopes.
    Absent,
    /// Space-separated scopes.
    Text(String),
    /// A claim that is not a string (the chapter's app answers 500 for it; we refuse the token).
    NotText,
}

impl AccessToken {
    /// A name for the token that reveals nothing of it: the first 16 bytes of the SHA-256 of
    /// its signature (unique to the token, and checked, so not chosen by whoever presents it).
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// `id` as 32 hex digits, as the store keeps revoked tokens.
    pub fn id_hex(&self) -> String {
        self.id().iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl TokenKeys {
    /// Keys from the secret's bytes as given (HS256, no `kid`), and tokens that live for
    /// `lifetime`.
    pub fn new(secret: &SecretKey, lifetime: Duration) -> Self {
        Self::from_keys(SigningKeys::from_secret(secret), lifetime)
    }

    /// Tokens signed by the first of `keys` and checked by the key their `kid` names, that live
    /// for `lifetime`.
    pub fn from_keys(keys: SigningKeys, lifetime: Duration) -> Self {
        let header_b64 = header_b64(keys.signing_key());
        Self { keys, header_b64, lifetime, lifecycle_claims: false, verified: Cache::new(VERIFIED_CAPACITY) }
    }

    /// Tokens also carry `iat` and a random `jti` (with refresh tokens on; the tutorial's
    /// tokens have only `sub` and `exp`, so two minted in the same second for the same user are
    /// the same token, which could not be revoked one without the other).
    pub fn with_lifecycle_claims(self) -> Self {
        Self { lifecycle_claims: true, ..self }
    }

    /// How long tokens live.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The public key set to publish (`{"keys":[...]}`), when the keys come from a key set.
    pub fn public_jwks(&self) -> Option<&Bytes> {
        self.keys.public_jwks()
    }

    /// Mints a token for `username` that expires `lifetime` from now. The bytes are what
    /// PyJWT writes for the same claims: header `{"alg":"HS256","typ":"JWT"}` (with a key set,
    /// `{"alg":...,"kid":...,"typ":"JWT"}`: PyJWT sorts the header's keys), claims
    /// `{"sub":...,"exp":...}` (then `"iat"` and `"jti"` when asked for).
    pub fn create_access_token(
        &self,
        username: &str,
        scope: Option<&str>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = unix_now();
        let exp = now.saturating_add(self.lifetime.as_secs());
        let (iat, jti) = if self.lifecycle_claims { (Some(now), Some(random_id())) } else { (None, None) };
        let claims = serde_json::to_vec(&NewClaims { sub: username, scope, exp, iat, jti })?;
        let mut token = String::with_capacity(self.header_b64.len() + claims.len() * 2 + 48);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = self.keys.signing_key().sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// Checks a token as PyJWT's `jwt.decode(token, key, algorithms=[<the key's>])` does, plus
    /// a required `exp` and RFC 7519's numeric dates, and returns what it says.
    pub fn decode_token(&self, token: &str) -> Result<AccessToken, TokenError> {
        self.decode_token_at(token, unix_now())
    }

    /// `decode_token` at `now` (seconds since the epoch).
    fn decode_token_at(&self, token: &str, now: u64) -> Result<AccessToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        if let Some(verified) = self.verified.get(token) {
            return match verified.claims.check_times(now) {
                Ok(()) => Ok(self.access_token(&verified)),
                Err(error) => {
                    self.verified.remove(token);
                    Err(error)
                }
            };
        }
        // PyJWT splits at the last dot, then at the first: `header.payload.signature`.
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        let key = if header == self.header_b64 {
            // The header this server mints, byte for byte: parsing it would name the signing key
            // and pass its checks (see `the_minted_header_parses_to_the_signing_key`).
            self.keys.signing_key()
        } else {
            self.key_for_header(header)?
        };
        let signature = decode_segment(signature)?;
        if !key.verify(signing_input.as_bytes(), &signature) {
            return Err(TokenError::Signature);
        }
        let claims = Claims::from_json(&decode_segment(payload)?)?.validate(now)?;
        let id = Sha256::digest(&signature)[..16].try_into().expect("SHA-256 has 32 bytes");
        let verified = Arc::new(Verified { claims, id });
        self.verified.insert(token.into(), Arc::clone(&verified));
        Ok(self.access_token(&verified))
    }

    /// The token's claims as `decode_token` returns them.
    fn access_token(&self, verified: &Verified) -> AccessToken {
        let claims = &verified.claims;
        let exp = u64::try_from(claims.exp).unwrap_or(u64::MAX);
        let issued_at = claims.iat.unwrap_or(claims.exp - i128::from(self.lifetime.as_secs()));
        let issued_at = i64::try_from(issued_at).unwrap_or(if issued_at < 0 { i64::MIN } else { i64::MAX });
        AccessToken { sub: claims.sub.clone(), exp, issued_at, scope: claims.scope.clone(), id: verified.id }
    }

    /// The key that checks a token whose base64url header is `header`, once the header passes
    /// PyJWT's checks.
    fn key_for_header(&self, header: &str) -> Result<&SigningKey, TokenError> {
        let [alg, kid, b64, crit] = object_fields(&decode_segment(header)?, ["alg", "kid", "b64", "crit"])?;
        let header = Header { alg, kid, b64, crit };
        let key = self.key_for(&header)?;
        header.check(key)?;
        Ok(key)
    }

    /// The key that checks a token with this header.
    fn key_for(&self, header: &Header) -> Result<&SigningKey, TokenError> {
        if !self.keys.is_key_set() {
            // `SECRET_KEY`: one key, and the `kid` is not looked at, as PyJWT does not.
            return Ok(self.keys.signing_key());
        }
        match &header.kid {
            Some(Value::String(kid)) => self.keys.find(kid).ok_or(TokenError::UnknownKey),
            // With a key set, every token we mint names its key, so a token without `kid` was
            // not minted with this set (a forgery, or a token of `SECRET_KEY` from before the
            // key file). Trying each key in turn instead would let one forged token cost as many
            // signature checks as there are keys, and would leave the choice of key to the
            // token; after a switch to a key file, clients log in again once.
            None => Err(TokenError::UnknownKey),
            Some(_) => Err(TokenError::Header),
        }
    }
}

/// The base64url header PyJWT writes for `key`: `json.dumps(header, separators=(",", ":"),
/// sort_keys=True)`. A `kid` is printable ASCII (checked at load), which Python's `json.dumps`
/// and serde_json escape alike.
fn header_b64(key: &SigningKey) -> String {
    match key.kid() {
        None => {
            debug_assert_eq!(key.algorithm().name(), "HS256");
            HEADER_B64.to_owned()
        }
        Some(kid) => {
            let kid = serde_json::to_string(kid).expect("a string serialises");
            let header = format!(r#"{{"alg":"{}","kid":{kid},"typ":"JWT"}}"#, key.algorithm().name());
            URL_SAFE_NO_PAD.encode(header)
        }
    }
}

/// 128 random bits, base64url: a `jti` (RFC 7519 §4.1.7).
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness there is no safe token to give out.
    SysRng.try_fill_bytes(&mut bytes).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    SEGMENT.decode(segment).map_err(|_| TokenError::Malformed)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The header fields PyJWT looks at.
struct Header {
    alg: Option<Value>,
    kid: Option<Value>,
    b64: Option<Value>,
    crit: Option<Value>,
}

impl Header {
    /// PyJWT's header checks, with `key`'s algorithm as the only one allowed: exactly, so that
    /// neither `none` nor an HMAC "signed" with a public key's bytes ever reaches a verifier.
    fn check(&self, key: &SigningKey) -> Result<(), TokenError> {
        let alg_is_the_keys = matches!(&self.alg, Some(Value::String(alg)) if alg == key.algorithm().name());
        let kid_ok = self.kid.as_ref().is_none_or(Value::is_string);
        let encoded_payload = self.b64 != Some(Value::Bool(false));
        let no_crit = self.crit.is_none();
        if alg_is_the_keys && kid_ok && encoded_payload && no_crit { Ok(()) } else { Err(TokenError::Header) }
    }
}

/// The values of `keys` in a JSON object, the other keys skipped unparsed. Only an object is
/// accepted (PyJWT refuses arrays); a repeated key keeps its last value, as Python's
/// `json.loads` does, and `null` is a value (`Some(Value::Null)`), not an absent key.
fn object_fields<const N: usize>(json: &[u8], keys: [&str; N]) -> Result<[Option<Value>; N], TokenError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let fields = deserializer.deserialize_map(Fields(keys)).map_err(|_| TokenError::Malformed)?;
    deserializer.end().map_err(|_| TokenError::Malformed)?;
    Ok(fields)
}

struct Fields<'k, const N: usize>([&'k str; N]);

impl<'de, const N: usize> Visitor<'de> for Fields<'_, N> {
    type Value = [Option<Value>; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = [const { None }; N];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.0.iter().position(|wanted| *wanted == key) {
                Some(index) => values[index] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(values)
    }
}

/// The registered claims we look at.
struct Claims {
    sub: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    aud: Option<Value>,
    jti: Option<Value>,
    scope: Option<Value>,
}

impl Claims {
    fn from_json(json: &[u8]) -> Result<Self, TokenError> {
        let [sub, exp, nbf, iat, aud, jti, scope] =
            object_fields(json, ["sub", "exp", "nbf", "iat", "aud", "jti", "scope"])?;
        Ok(Self { sub, exp, nbf, iat, aud, jti, scope })
    }

    /// PyJWT's checks, in its order, at `now` (whole seconds since the epoch); the subject,
    /// expiry and issue time of a token that passes.
    fn validate(self, now: u64) -> Result<Validated, TokenError> {
        let now = i128::from(now);
        let iat = self.iat.as_ref().map(|iat| numeric_date(iat).ok_or(TokenError::Claims)).transpose()?;
        if iat.is_some_and(|iat| iat > now) {
            return Err(TokenError::Immature);
        }
        let nbf = self.nbf.as_ref().map(|nbf| numeric_date(nbf).ok_or(TokenError::Claims)).transpose()?;
        if nbf.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::Immature);
        }
        // Unlike PyJWT, a token without `exp` is refused: a leaked token must expire.
        let exp = numeric_date(self.exp.as_ref().ok_or(TokenError::Expired)?).ok_or(TokenError::Claims)?;
        if exp <= now {
            return Err(TokenError::Expired);
        }
        if self.aud.as_ref().is_some_and(truthy) {
            return Err(TokenError::Claims);
        }
        if self.jti.as_ref().is_some_and(|jti| !jti.is_string()) {
            return Err(TokenError::Claims);
        }
        match self.sub {
            Some(Value::String(sub)) => {
                let scope = match self.scope {
                    None => ScopeClaim::Absent,
                    Some(Value::String(scope)) => ScopeClaim::Text(scope),
                    Some(_) => ScopeClaim::NotText,
                };
                Ok(Validated { sub: sub.into(), exp, iat, nbf, scope })
            }
            _ => Err(TokenError::Claims),
        }
    }
}

/// The claims of a token that passed `Claims::validate`.
#[derive(Debug, PartialEq, Eq)]
struct Validated {
    sub: Arc<str>,
    exp: i128,
    iat: Option<i128>,
    nbf: Option<i128>,
    scope: ScopeClaim,
}

impl Validated {
    /// The checks of `Claims::validate` that depend on the time, in its order, for claims that
    /// passed all its checks before: what `validate` would say of them at `now`.
    fn check_times(&self, now: u64) -> Result<(), TokenError> {
        let now = i128::from(now);
        if self.iat.is_some_and(|iat| iat > now) || self.nbf.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::Immature);
        }
        if self.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, a fraction truncated as PyJWT's
/// `int()` does. Unlike PyJWT, a string (`"exp": "1999999999"`) or a boolean is not a number
/// and is refused.
fn numeric_date(value: &Value) -> Option<i128> {
    let Value::Number(number) = value else { return None };
    if let Some(int) = number.as_i64() {
        Some(i128::from(int))
    } else if let Some(int) = number.as_u64() {
        Some(i128::from(int))
    } else {
        number.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i128)
    }
}

/// Python truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::KeyAlgorithm;
    use serde_json::json;

    const TUTORIAL_KEY: &str = "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7";

    fn keys() -> TokenKeys {
        TokenKeys::new(&SecretKey::new(TUTORIAL_KEY), Duration::from_secs(30 * 60))
    }

    fn claims(value: Value) -> Claims {
        Claims::from_json(&serde_json::to_vec(&value).unwrap()).unwrap()
    }

    #[test]
    fn a_minted_token_has_pyjwts_header_and_claims_and_decodes_back() {
        let token = keys().create_access_token("johndoe", None).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[0]).unwrap(), br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let exp = payload["exp"].as_u64().unwrap();
        assert!(exp.abs_diff(unix_now() + 1800) <= 2, "exp {exp}");
        assert_eq!(
            String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap(),
            format!(r#"{{"sub":"johndoe","exp":{exp}}}"#)
        );
        assert_eq!(&*keys().decode_token(&token).unwrap().sub, "johndoe");
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let other = TokenKeys::new(&SecretKey::new("another key"), Duration::from_secs(60));
        let token = other.create_access_token("johndoe", None).unwrap();
        assert_eq!(keys().decode_token(&token), Err(TokenError::Signature));
    }

    /// A token with these raw claims, signed with the tutorial key.
    fn with_claims(claims: &str) -> String {
        let input = format!("{HEADER_B64}.{}", URL_SAFE_NO_PAD.encode(claims));
        let signature = keys().keys.signing_key().sign(input.as_bytes()).unwrap();
        format!("{input}.{signature}")
    }

    #[test]
    fn a_token_checked_again_gets_the_same_answer_and_its_times_are_checked_each_time() {
        let keys = keys();
        let token = with_claims(r#"{"sub":"johndoe","exp":2000,"iat":1000,"jti":"a"}"#);

        let first = keys.decode_token_at(&token, 1500).unwrap();
        assert!(keys.verified.get(token.as_str()).is_some(), "remembered once it passed");
        let again = keys.decode_token_at(&token, 1500).unwrap();
        assert_eq!(again, first);
        assert_eq!((&*again.sub, again.exp, again.issued_at), ("johndoe", 2000, 1000));
        assert_eq!(keys.decode_token_at(&token, 999), Err(TokenError::Immature), "iat after now");
        assert_eq!(keys.decode_token_at(&token, 2000), Err(TokenError::Expired));
        assert!(keys.verified.get(token.as_str()).is_none(), "forgotten once expired");
        assert_eq!(keys.decode_token_at(&token, 2000), Err(TokenError::Expired), "checked anew");
    }

    #[test]
    fn only_tokens_that_pass_every_check_are_remembered() {
        let keys = keys();
        let not_yet = with_claims(r#"{"sub":"johndoe","exp":2000,"nbf":1800}"#);
        let no_subject = with_claims(r#"{"exp":2000}"#);
        let forged = format!("{}x", &not_yet[..not_yet.len() - 1]);

        assert_eq!(keys.decode_token_at(&not_yet, 1500), Err(TokenError::Immature));
        assert_eq!(keys.decode_token_at(&no_subject, 1500), Err(TokenError::Claims));
        assert!(keys.decode_token_at(&forged, 1900).is_err());
        for token in [&not_yet, &no_subject, &forged] {
            assert!(keys.verified.get(token.as_str()).is_none(), "{token}");
        }
        assert_eq!(&*keys.decode_token_at(&not_yet, 1900).unwrap().sub, "johndoe", "valid from nbf on");
        assert_eq!(
            keys.decode_token_at(&not_yet, 1700),
            Err(TokenError::Immature),
            "remembered, still checked"
        );
    }

    /// A token with this raw header JSON and valid claims, signed with the tutorial key.
    fn with_header(header: &str) -> String {
        let claims = format!(r#"{{"sub":"johndoe","exp":{}}}"#, unix_now() + 600);
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = keys().keys.signing_key().sign(input.as_bytes()).unwrap();
        format!("{input}.{signature}")
    }

    #[test]
    fn headers_are_checked_as_pyjwt_checks_them() {
        let keys = keys();
        for accepted in [
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":1}"#,
            r#"{"alg":"none","alg":"HS256"}"#,
            r#"{"alg":"HS256","kid":"k1","b64":true}"#,
        ] {
            assert_eq!(
                keys.decode_token(&with_header(accepted)).map(|token| token.sub).as_deref(),
                Ok("johndoe"),
                "{accepted}"
            );
        }
        for refused in [
            r#"{"alg":"hs256"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"alg":"HS384"}"#,
            r#"{"alg":"HS256","crit":null}"#,
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","kid":null}"#,
            r#"{"alg":"HS256","kid":7}"#,
            r#"{"alg":"HS256","b64":false}"#,
        ] {
            assert_eq!(keys.decode_token(&with_header(refused)), Err(TokenError::Header), "{refused}");
        }
        assert_eq!(keys.decode_token(&with_header(r#"["alg","HS256"]"#)), Err(TokenError::Malformed));
    }

    #[test]
    fn correctly_padded_segments_are_accepted_and_bad_base64_is_not() {
        let keys = keys();
        let token = keys.create_access_token("johndoe", None).unwrap();
        let signature = token.rsplit('.').next().unwrap();
        assert_eq!(signature.len(), 43);
        assert_eq!(keys.decode_token(&format!("{token}=")).map(|token| token.sub).as_deref(), Ok("johndoe"));
        assert_eq!(keys.decode_token(&format!("{token}==")), Err(TokenError::Malformed));
        let standard_alphabet = token.replace('-', "+").replace('_', "/");
        if standard_alphabet != token {
            assert!(keys.decode_token(&standard_alphabet).is_err());
        }
        assert_eq!(keys.decode_token("a.b"), Err(TokenError::Malformed));
        assert_eq!(keys.decode_token("nodots"), Err(TokenError::Malformed));
    }

    #[test]
    fn expiry_is_exact_and_required() {
        let now = 1_000_000;
        assert_eq!(claims(json!({"sub": "a", "exp": now + 1})).validate(now).unwrap().sub, "a".into());
        assert_eq!(claims(json!({"sub": "a", "exp": now})).validate(now), Err(TokenError::Expired));
        assert_eq!(claims(json!({"sub": "a"})).validate(now), Err(TokenError::Expired));
        assert_eq!(claims(json!({"sub": "a", "exp": null})).validate(now), Err(TokenError::Claims));
    }

    #[test]
    fn time_claims_are_json_numbers_truncated_as_pythons_int() {
        let now = 1_000_000;
        let check = |exp: Value| claims(json!({"sub": "a", "exp": exp})).validate(now).map(|valid| valid.sub);
        assert_eq!(check(json!(1_000_001)).as_deref(), Ok("a"));
        assert_eq!(check(json!(1_000_001.9)).as_deref(), Ok("a"));
        assert_eq!(check(json!(1_000_000.9)), Err(TokenError::Expired), "floats truncate");
        // RFC 7519 §2: a NumericDate is a number. PyJWT also takes `int()` of strings and booleans.
        for not_a_number in
            [json!("1000001"), json!(" 1_000_001 "), json!("soon"), json!([1]), json!(true), json!(null)]
        {
            assert_eq!(check(not_a_number.clone()), Err(TokenError::Claims), "{not_a_number}");
        }
        let iat = claims(json!({"sub": "a", "exp": now + 60, "iat": "999999"})).validate(now);
        assert_eq!(iat, Err(TokenError::Claims));
    }

    #[test]
    fn a_decoded_token_tells_when_it_was_issued_and_has_a_stable_id() {
        let keys = keys();
        let token = keys.create_access_token("johndoe", None).unwrap();
        let decoded = keys.decode_token(&token).unwrap();
        assert_eq!(decoded.issued_at, i64::try_from(decoded.exp).unwrap() - 1800, "exp less the lifetime");
        assert_eq!(decoded.id_hex().len(), 32);
        assert_eq!(decoded.id(), keys.decode_token(&token).unwrap().id());
        let with_iat = keys.with_lifecycle_claims();
        let token = with_iat.create_access_token("johndoe", None).unwrap();
        let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        let (exp, iat) = (payload["exp"].as_u64().unwrap(), payload["iat"].as_u64().unwrap());
        assert_eq!((payload.as_object().unwrap().len(), exp - iat), (4, 1800), "{payload}");
        assert_eq!(payload["jti"].as_str().unwrap().len(), 22, "128 random bits");
        assert_eq!(with_iat.decode_token(&token).unwrap().issued_at, i64::try_from(iat).unwrap());
    }

    #[test]
    fn future_nbf_or_iat_is_refused() {
        let now = 1_000_000;
        let with = |extra: Value| {
            let mut value = json!({"sub": "a", "exp": now + 60});
            value.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            claims(value).validate(now)
        };
        assert_eq!(with(json!({"nbf": now + 1})), Err(TokenError::Immature));
        assert_eq!(with(json!({"iat": now + 1})), Err(TokenError::Immature));
        assert!(with(json!({"nbf": now, "iat": now})).is_ok());
        assert_eq!(with(json!({"iat": "later"})), Err(TokenError::Claims));
    }

    #[test]
    fn subject_audience_and_id_are_checked_as_pyjwt_does() {
        let now = 1_000_000;
        let with = |value: Value| claims(value).validate(now);
        assert_eq!(with(json!({"sub": 42, "exp": now + 60})), Err(TokenError::Claims));
        assert_eq!(with(json!({"exp": now + 60})), Err(TokenError::Claims));
        assert_eq!(with(json!({"sub": "a", "exp": now + 60, "aud": "api"})), Err(TokenError::Claims));
        assert!(with(json!({"sub": "a", "exp": now + 60, "aud": ""})).is_ok());
        assert_eq!(with(json!({"sub": "a", "exp": now + 60, "jti": 7})), Err(TokenError::Claims));
        let repeated: Claims =
            Claims::from_json(format!(r#"{{"sub":"a","exp":1,"sub":"b","exp":{}}}"#, now + 60).as_bytes())
                .unwrap();
        assert_eq!(repeated.validate(now).unwrap().sub, "b".into(), "the last of repeated keys wins");
    }

    #[test]
    fn claims_must_be_an_object() {
        assert!(Claims::from_json(br#"["johndoe", 9999999999]"#).is_err());
        assert!(Claims::from_json(br#"{"sub": "johndoe"} trailing"#).is_err());
    }

    /// Token keys for a set of new keys of these algorithms, and the keys as JWKs.
    fn key_set(algorithms: &[KeyAlgorithm]) -> (TokenKeys, Vec<Value>) {
        let jwks: Vec<Value> = algorithms
            .iter()
            .map(|algorithm| serde_json::from_str(&crate::auth::keys::generate(*algorithm).unwrap()).unwrap())
            .collect();
        let keys = SigningKeys::from_jwks(&json!({ "keys": jwks }).to_string()).unwrap();
        (TokenKeys::from_keys(keys, Duration::from_secs(600)), jwks)
    }

    /// A token with this raw header JSON and valid claims, signed by `key`.
    fn signed_by(key: &SigningKey, header: &str) -> String {
        let claims = format!(r#"{{"sub":"johndoe","exp":{}}}"#, unix_now() + 600);
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        format!("{input}.{}", key.sign(input.as_bytes()).unwrap())
    }

    #[test]
    fn with_a_key_set_tokens_name_their_key_in_pyjwts_header_layout() {
        for algorithm in KeyAlgorithm::ALL {
            let (keys, jwks) = key_set(&[algorithm]);
            let token = keys.create_access_token("johndoe", None).unwrap();
            let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
            let kid = jwks[0]["kid"].as_str().unwrap();
            let expected = format!(r#"{{"alg":"{algorithm}","kid":"{kid}","typ":"JWT"}}"#);
            assert_eq!(String::from_utf8(header).unwrap(), expected);
            assert_eq!(
                keys.decode_token(&token).map(|token| token.sub).as_deref(),
                Ok("johndoe"),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn the_minted_header_parses_to_the_signing_key() {
        // `decode_token` skips parsing the header it mints; parsed, it must come to the same.
        let (set, _) = key_set(&[KeyAlgorithm::EdDSA, KeyAlgorithm::HS256]);
        for keys in [keys(), set] {
            let parsed = keys.key_for_header(&keys.header_b64).unwrap();
            assert!(std::ptr::eq(parsed, keys.keys.signing_key()));
        }
    }

    #[test]
    fn without_a_key_set_the_header_is_the_tutorials() {
        assert_eq!(keys().header_b64, HEADER_B64);
        assert_eq!(URL_SAFE_NO_PAD.decode(HEADER_B64).unwrap(), br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn every_key_of_the_set_verifies_the_tokens_that_name_it() {
        let (keys, _) =
            key_set(&[KeyAlgorithm::EdDSA, KeyAlgorithm::ES256, KeyAlgorithm::HS256, KeyAlgorithm::RS256]);
        for key in keys.keys.keys() {
            let header = format!(r#"{{"alg":"{}","kid":"{}"}}"#, key.algorithm(), key.kid().unwrap());
            assert_eq!(
                keys.decode_token(&signed_by(key, &header)).map(|token| token.sub).as_deref(),
                Ok("johndoe"),
                "{key:?}"
            );
        }
        // A key that is not in the set, under a kid of the set.
        let (stranger, _) = key_set(&[KeyAlgorithm::EdDSA]);
        let kid = keys.keys.signing_key().kid().unwrap();
        let forged = signed_by(stranger.keys.signing_key(), &format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#));
        assert_eq!(keys.decode_token(&forged), Err(TokenError::Signature));
    }

    #[test]
    fn with_a_key_set_the_kid_chooses_the_key_and_the_key_its_algorithm() {
        use hmac::{Hmac, Mac};
        let (keys, _) = key_set(&[KeyAlgorithm::EdDSA, KeyAlgorithm::HS256]);
        let ed = &keys.keys.keys()[0];
        let oct = &keys.keys.keys()[1];
        let (ed_kid, oct_kid) = (ed.kid().unwrap(), oct.kid().unwrap());
        let refused = |token: &str| keys.decode_token(token).unwrap_err();

        assert_eq!(refused(&signed_by(ed, r#"{"alg":"EdDSA"}"#)), TokenError::UnknownKey, "no kid");
        assert_eq!(refused(&signed_by(ed, r#"{"alg":"EdDSA","kid":"nope"}"#)), TokenError::UnknownKey);
        assert_eq!(refused(&signed_by(ed, r#"{"alg":"EdDSA","kid":null}"#)), TokenError::Header);
        assert_eq!(refused(&signed_by(ed, r#"{"alg":"EdDSA","kid":7}"#)), TokenError::Header);
        // The key's algorithm exactly: not another one, not another spelling, not `none`.
        for alg in ["HS256", "ES256", "RS256", "eddsa", "Ed25519", "none"] {
            let header = format!(r#"{{"alg":"{alg}","kid":"{ed_kid}"}}"#);
            assert_eq!(refused(&signed_by(ed, &header)), TokenError::Header, "{alg}");
        }
        assert_eq!(
            refused(&signed_by(oct, &format!(r#"{{"alg":"EdDSA","kid":"{oct_kid}"}}"#))),
            TokenError::Header
        );
        // alg confusion: an HMAC keyed with the public key set, or with the public key's bytes.
        let public = keys.public_jwks().unwrap().to_vec();
        let public_jwk: Value = serde_json::from_slice(&public).unwrap();
        let x = URL_SAFE_NO_PAD.decode(public_jwk["keys"][0]["x"].as_str().unwrap()).unwrap();
        for hmac_key in [public, x] {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{ed_kid}"}}"#)),
                URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"johndoe","exp":{}}}"#, unix_now() + 600))
            );
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&hmac_key).unwrap();
            mac.update(input.as_bytes());
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
            assert_eq!(refused(&token), TokenError::Header);
        }
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{ed_kid}"}}"#)),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"johndoe","exp":{}}}"#, unix_now() + 600))
        );
        assert_eq!(refused(&unsigned), TokenError::Header);
        // PyJWT's other header rules still hold with a key set.
        for extra in [r#""crit":["exp"]"#, r#""b64":false"#] {
            let header = format!(r#"{{"alg":"EdDSA","kid":"{ed_kid}",{extra}}}"#);
            assert_eq!(refused(&signed_by(ed, &header)), TokenError::Header, "{extra}");
        }
        // Key hints are never followed: the token is checked against our key only.
        let hints = concat!(
            r#""jku":"https://evil.example/jwks","x5u":"https://evil.example/x","#,
            r#""jwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA"},"x5c":["AAAA"]"#
        );
        let hinted = format!(r#"{{"alg":"EdDSA","kid":"{ed_kid}",{hints}}}"#);
        assert_eq!(
            keys.decode_token(&signed_by(ed, &hinted)).map(|token| token.sub).as_deref(),
            Ok("johndoe")
        );
    }

    #[test]
    fn overlong_tokens_are_refused_unparsed() {
        let token = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(keys().decode_token(&token), Err(TokenError::TooLong));
    }
}
