//! `keys generate`: a new private JWK for one algorithm, from the operating system's random
//! number generator, with its RFC 7638 thumbprint as `kid`, its `alg` and `use: "sig"`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use getrandom::SysRng;
use rand_core::TryRng;
use rsa::RsaPrivateKey;
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};

use super::KeyAlgorithm;
use super::jwk::Jwk;

/// The size of generated RSA keys. 2048 bits is RFC 7518's minimum and NIST's 112-bit level
/// (SP 800-57: acceptable through 2030); signing keys here are rotated, so a key is trusted
/// for months, not decades, and 3072 bits would make every verification (done by every
/// resource server, on every request) about twice as slow and every signature half as long
/// again. Who wants 128-bit security picks EdDSA or ES256, which also sign faster.
pub const RSA_BITS: usize = 2048;

/// Why no key could be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator is unavailable")]
    NoRandomness,
    /// RSA key generation failed.
    #[error("RSA key generation failed: {0}")]
    Rsa(String),
}

/// A new private key for `algorithm` as a JWK (pretty JSON), ready to go into a
/// `JWT_KEYS_FILE` set.
pub fn generate(algorithm: KeyAlgorithm) -> Result<String, GenerateError> {
    let mut jwk = Jwk::new(algorithm);
    match algorithm {
        KeyAlgorithm::HS256 => jwk.k = Some(URL_SAFE_NO_PAD.encode(random::<32>()?)),
        KeyAlgorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::from_bytes(&random::<32>()?);
            jwk.crv = Some("Ed25519");
            jwk.x = Some(URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()));
            jwk.d = Some(URL_SAFE_NO_PAD.encode(key.to_bytes()));
        }
        KeyAlgorithm::ES256 => {
            // Rejection sampling: 32 random bytes are a valid scalar unless zero or above the
            // group order (odds about 2^-32).
            let key = loop {
                if let Ok(key) = p256::SecretKey::from_slice(&random::<32>()?) {
                    break key;
                }
            };
            let point =
                p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
            jwk.crv = Some("P-256");
            jwk.x = point.x().map(|x| URL_SAFE_NO_PAD.encode(x));
            jwk.y = point.y().map(|y| URL_SAFE_NO_PAD.encode(y));
            jwk.d = Some(URL_SAFE_NO_PAD.encode(key.to_bytes()));
        }
        KeyAlgorithm::RS256 => {
            // rsa's `OsRng` is the operating system's generator too (getrandom).
            let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|error| GenerateError::Rsa(error.to_string()))?;
            let encode = |value: &rsa::BigUint| Some(URL_SAFE_NO_PAD.encode(value.to_bytes_be()));
            let [p, q] = key.primes() else { return Err(GenerateError::Rsa("not two primes".into())) };
            (jwk.n, jwk.e, jwk.d) = (encode(key.n()), encode(key.e()), encode(key.d()));
            (jwk.p, jwk.q) = (encode(p), encode(q));
            (jwk.dp, jwk.dq) = (key.dp().and_then(encode), key.dq().and_then(encode));
            jwk.qi = key.crt_coefficient().as_ref().and_then(encode);
        }
    }
    jwk.kid = Some(jwk.thumbprint());
    Ok(serde_json::to_string_pretty(&jwk).expect("a JWK serialises"))
}

/// `N` bytes from the operating system's random number generator.
fn random<const N: usize>() -> Result<[u8; N], GenerateError> {
    let mut bytes = [0u8; N];
    SysRng.try_fill_bytes(&mut bytes).map_err(|_| GenerateError::NoRandomness)?;
    Ok(bytes)
}
