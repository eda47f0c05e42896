//! Private JSON Web Keys (RFC 7517, 7518 §6, RFC 8037) read into `SigningKey`s, their RFC 7638
//! thumbprints, and the public key set that `/.well-known/jwks.json` serves.
//!
//! The members are read here with serde_json, as values, so that no error message ever repeats
//! one (a type error from a derived deserializer would print the offending value, which may be
//! key material). The keys themselves are checked by the RustCrypto crates that jsonwebtoken
//! signs with, and every key signs and verifies a test message before it is accepted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
use rsa::{BigUint, RsaPrivateKey};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::{KeyError, KeyProblem};
use super::{KeyAlgorithm, SigningKey};

/// A JWK as we write it, its fields named as RFC 7517/7518 name the members: public members,
/// private members when generating one, then `kid`, `alg` and `use`. No `Debug`: it may hold
/// private members.
#[derive(Default, Serialize)]
pub(super) struct Jwk {
    pub(super) kty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) d: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) p: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dq: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) qi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) k: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) kid: Option<String>,
    pub(super) alg: &'static str,
    #[serde(rename = "use")]
    pub(super) use_: &'static str,
}

impl Jwk {
    /// A JWK of `algorithm`'s key type, with `alg` and `use: "sig"`, members to be filled in.
    pub fn new(algorithm: KeyAlgorithm) -> Self {
        Self { kty: algorithm.key_type(), alg: algorithm.name(), use_: "sig", ..Self::default() }
    }

    /// The RFC 7638 thumbprint: base64url SHA-256 of the required public members (for `oct`,
    /// `k` and `kty`) as JSON in lexicographic order without whitespace. The members are
    /// base64url and the curve names plain ASCII, so none needs escaping.
    pub fn thumbprint(&self) -> String {
        let member = |value: &Option<String>| value.clone().unwrap_or_default();
        let canonical = match self.kty {
            "oct" => format!(r#"{{"k":"{}","kty":"oct"}}"#, member(&self.k)),
            "OKP" => {
                format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, self.crv.unwrap_or(""), member(&self.x))
            }
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                self.crv.unwrap_or(""),
                member(&self.x),
                member(&self.y)
            ),
            _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, member(&self.e), member(&self.n)),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical))
    }
}

/// The keys of a JSON Web Key Set and the rendered public set, or why the set is refused.
pub(super) fn parse_set(json: &str) -> Result<(Vec<SigningKey>, Bytes), KeyError> {
    // A syntax error names a line and column, never the text there.
    let value: Value = serde_json::from_str(json).map_err(|error| KeyError::Malformed(error.to_string()))?;
    let Some(set) = value.as_object() else {
        return Err(KeyError::Malformed(r#"expected an object {"keys": [...]}"#.into()));
    };
    let keys = match set.get("keys") {
        Some(Value::Array(keys)) => keys,
        Some(_) => return Err(KeyError::Malformed(r#""keys" must be an array"#.into())),
        None if set.contains_key("kty") => {
            return Err(KeyError::Malformed(r#"this is one JWK; write it as {"keys": [JWK]}"#.into()));
        }
        None => return Err(KeyError::Malformed(r#"no "keys" member: expected {"keys": [...]}"#.into())),
    };
    if keys.is_empty() {
        return Err(KeyError::Empty);
    }
    let mut signing_keys: Vec<SigningKey> = Vec::with_capacity(keys.len());
    let mut public = Vec::new();
    for (index, entry) in keys.iter().enumerate() {
        let (key, public_jwk) = read_key(index, entry)?;
        let kid = key.kid().unwrap_or_default();
        if let Some(first) = signing_keys.iter().position(|other| other.kid() == Some(kid)) {
            return Err(KeyError::DuplicateKid { index, first, kid: kid.to_owned() });
        }
        signing_keys.push(key);
        public.extend(public_jwk);
    }
    #[derive(Serialize)]
    struct PublicSet<'a> {
        keys: &'a [Jwk],
    }
    let rendered = serde_json::to_vec(&PublicSet { keys: &public }).expect("public JWKs serialise");
    Ok((signing_keys, Bytes::from(rendered)))
}

/// What a key's type-specific reader returns.
struct Read {
    /// For asymmetric keys, the public JWK to publish; for `oct`, `k` only, for the thumbprint.
    jwk: Jwk,
    material: Material,
}

enum Material {
    Secret(Vec<u8>),
    Pair { encoding: EncodingKey, decoding: DecodingKey },
}

/// One entry of `keys`: the signing key, and its public JWK unless it is an `oct` key.
fn read_key(index: usize, entry: &Value) -> Result<(SigningKey, Option<Jwk>), KeyError> {
    let refuse = |kid: Option<&str>, problem| KeyError::Key { index, kid: kid.map(str::to_owned), problem };
    let members = Members(entry.as_object().ok_or_else(|| refuse(None, KeyProblem::NotAnObject))?);
    let kid = members.text("kid").map_err(|problem| refuse(None, problem))?;
    if let Some(kid) = kid
        && (!(1..=256).contains(&kid.len()) || !kid.bytes().all(|byte| (b' '..=b'~').contains(&byte)))
    {
        return Err(refuse(None, KeyProblem::BadKid));
    }
    let (algorithm, read) = read_members(&members).map_err(|problem| refuse(kid, problem))?;
    let kid = kid.map_or_else(|| read.jwk.thumbprint(), str::to_owned);
    let key = match read.material {
        Material::Secret(secret) => SigningKey::hmac(Some(kid), &secret),
        Material::Pair { encoding, decoding } => SigningKey::asymmetric(kid, algorithm, encoding, decoding),
    };
    // The readers check that public and private members agree; this checks that what
    // jsonwebtoken was given really signs and verifies, before the server relies on it.
    let probe = b"oauth2-jwt-server key check";
    let works = key.sign(probe).ok().and_then(|signature| URL_SAFE_NO_PAD.decode(signature).ok());
    if !works.is_some_and(|signature| key.verify(probe, &signature)) {
        let reason = "it does not sign and verify".to_owned();
        return Err(refuse(key.kid(), KeyProblem::Invalid { kty: algorithm.key_type(), reason }));
    }
    let public = (!algorithm.is_symmetric()).then(|| Jwk { kid: key.kid.clone(), ..read.jwk });
    Ok((key, public))
}

/// `kty`, `alg`, `use` and the key type's own members.
fn read_members(members: &Members) -> Result<(KeyAlgorithm, Read), KeyProblem> {
    let kty = members.required("kty")?;
    let algorithm = KeyAlgorithm::ALL
        .into_iter()
        .find(|algorithm| algorithm.key_type() == kty)
        .ok_or_else(|| KeyProblem::UnsupportedType(kty.to_owned()))?;
    if let Some(alg) = members.text("alg")?
        && alg != algorithm.name()
    {
        return Err(KeyProblem::AlgMismatch {
            alg: alg.to_owned(),
            kty: algorithm.key_type(),
            expected: algorithm,
        });
    }
    if let Some(usage) = members.text("use")?
        && usage != "sig"
    {
        return Err(KeyProblem::NotForSigning(usage.to_owned()));
    }
    let read = match algorithm {
        KeyAlgorithm::HS256 => read_oct(members)?,
        KeyAlgorithm::EdDSA => read_okp(members)?,
        KeyAlgorithm::ES256 => read_ec(members)?,
        KeyAlgorithm::RS256 => read_rsa(members)?,
    };
    Ok((algorithm, read))
}

/// `oct`: `k`, at least 32 bytes.
fn read_oct(members: &Members) -> Result<Read, KeyProblem> {
    let secret = members.bytes("k")?;
    if secret.len() < 32 {
        return Err(KeyProblem::ShortSecret(secret.len()));
    }
    let mut jwk = Jwk::new(KeyAlgorithm::HS256);
    jwk.k = Some(URL_SAFE_NO_PAD.encode(&secret));
    Ok(Read { jwk, material: Material::Secret(secret) })
}

/// `OKP` on `Ed25519` (RFC 8037): the 32-byte seed `d` and public key `x`.
fn read_okp(members: &Members) -> Result<Read, KeyProblem> {
    members.curve("OKP", "Ed25519")?;
    let seed: [u8; 32] = members.private_d(32)?.try_into().expect("length checked");
    let x = members.sized("x", 32)?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    if signing.verifying_key().as_bytes() != x.as_slice() {
        return Err(KeyProblem::Mismatch("x"));
    }
    let invalid =
        |error: &dyn std::fmt::Display| KeyProblem::Invalid { kty: "OKP", reason: error.to_string() };
    let der = signing.to_pkcs8_der().map_err(|error| invalid(&error))?;
    let mut jwk = Jwk::new(KeyAlgorithm::EdDSA);
    jwk.crv = Some("Ed25519");
    let x = URL_SAFE_NO_PAD.encode(&x);
    let decoding = DecodingKey::from_ed_components(&x).map_err(|error| invalid(&error))?;
    jwk.x = Some(x);
    Ok(Read {
        jwk,
        material: Material::Pair { encoding: EncodingKey::from_ed_der(der.as_bytes()), decoding },
    })
}

/// `EC` on `P-256`: the 32-byte scalar `d` and the point (`x`, `y`).
fn read_ec(members: &Members) -> Result<Read, KeyProblem> {
    members.curve("EC", "P-256")?;
    let d = members.private_d(32)?;
    let x = members.sized("x", 32)?;
    let y = members.sized("y", 32)?;
    let invalid = |reason: String| KeyProblem::Invalid { kty: "EC", reason };
    let secret = p256::SecretKey::from_slice(&d).map_err(|_| {
        invalid("\"d\" is not a P-256 private key (zero, or not below the group order)".into())
    })?;
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    if point.x().map(|x| &x[..]) != Some(&x[..]) {
        return Err(KeyProblem::Mismatch("x"));
    }
    if point.y().map(|y| &y[..]) != Some(&y[..]) {
        return Err(KeyProblem::Mismatch("y"));
    }
    let der =
        p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&secret).map_err(|error| invalid(error.to_string()))?;
    let mut jwk = Jwk::new(KeyAlgorithm::ES256);
    jwk.crv = Some("P-256");
    let (x, y) = (URL_SAFE_NO_PAD.encode(&x), URL_SAFE_NO_PAD.encode(&y));
    let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|error| invalid(error.to_string()))?;
    (jwk.x, jwk.y) = (Some(x), Some(y));
    Ok(Read {
        jwk,
        material: Material::Pair { encoding: EncodingKey::from_ec_der(der.as_bytes()), decoding },
    })
}

/// `RSA`: `n`, `e`, `d`, and optionally `p` and `q` (recovered from `d` when absent) and the
/// CRT values `dp`, `dq`, `qi` (checked when present; the library computes its own).
fn read_rsa(members: &Members) -> Result<Read, KeyProblem> {
    if members.0.contains_key("oth") {
        return Err(KeyProblem::MultiPrime);
    }
    let d = BigUint::from_bytes_be(&members.private_d(0)?);
    let n = BigUint::from_bytes_be(&members.bytes("n")?);
    let e = BigUint::from_bytes_be(&members.bytes("e")?);
    let bits = n.bits();
    if bits < 2048 {
        return Err(KeyProblem::ShortRsa(bits));
    }
    if bits > 4096 {
        return Err(KeyProblem::LongRsa(bits));
    }
    let primes = match (members.text("p")?, members.text("q")?) {
        (Some(_), Some(_)) => {
            vec![BigUint::from_bytes_be(&members.bytes("p")?), BigUint::from_bytes_be(&members.bytes("q")?)]
        }
        (None, None) => Vec::new(),
        (Some(_), None) => return Err(KeyProblem::Missing("q")),
        (None, Some(_)) => return Err(KeyProblem::Missing("p")),
    };
    let invalid = |reason: String| KeyProblem::Invalid { kty: "RSA", reason };
    let key = RsaPrivateKey::from_components(n, e, d, primes).map_err(|error| invalid(error.to_string()))?;
    for (member, computed) in
        [("dp", key.dp().cloned()), ("dq", key.dq().cloned()), ("qi", key.crt_coefficient())]
    {
        if members.text(member)?.is_some()
            && Some(BigUint::from_bytes_be(&members.bytes(member)?)) != computed
        {
            return Err(KeyProblem::Mismatch(member));
        }
    }
    let der = key.to_pkcs1_der().map_err(|error| invalid(error.to_string()))?;
    let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
    let mut jwk = Jwk::new(KeyAlgorithm::RS256);
    (jwk.n, jwk.e) = (Some(URL_SAFE_NO_PAD.encode(&n)), Some(URL_SAFE_NO_PAD.encode(&e)));
    let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
    Ok(Read {
        jwk,
        material: Material::Pair { encoding: EncodingKey::from_rsa_der(der.as_bytes()), decoding },
    })
}

/// A JWK's members, read without ever repeating a value in an error.
struct Members<'a>(&'a Map<String, Value>);

impl Members<'_> {
    /// A string member, if present.
    fn text(&self, name: &'static str) -> Result<Option<&str>, KeyProblem> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(KeyProblem::NotAString(name)),
        }
    }

    /// A string member that must be present.
    fn required(&self, name: &'static str) -> Result<&str, KeyProblem> {
        self.text(name)?.ok_or(KeyProblem::Missing(name))
    }

    /// A base64url member's bytes.
    fn bytes(&self, name: &'static str) -> Result<Vec<u8>, KeyProblem> {
        URL_SAFE_NO_PAD.decode(self.required(name)?).map_err(|_| KeyProblem::NotBase64(name))
    }

    /// A base64url member of exactly `size` bytes.
    fn sized(&self, name: &'static str, size: usize) -> Result<Vec<u8>, KeyProblem> {
        let bytes = self.bytes(name)?;
        if bytes.len() != size {
            return Err(KeyProblem::Length { member: name, expected: size, actual: bytes.len() });
        }
        Ok(bytes)
    }

    /// The private member `d` (of `size` bytes unless `size` is 0); its absence means a
    /// public key.
    fn private_d(&self, size: usize) -> Result<Vec<u8>, KeyProblem> {
        if self.text("d")?.is_none() {
            return Err(KeyProblem::NotPrivate);
        }
        if size == 0 { self.bytes("d") } else { self.sized("d", size) }
    }

    /// `crv`, which must be `supported`.
    fn curve(&self, kty: &'static str, supported: &'static str) -> Result<(), KeyProblem> {
        let crv = self.required("crv")?;
        if crv != supported {
            return Err(KeyProblem::UnsupportedCurve { kty, crv: crv.to_owned(), supported });
        }
        Ok(())
    }
}
