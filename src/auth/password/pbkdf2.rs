//! PBKDF2-HMAC-SHA256 in the three ways it is written: Django's `pbkdf2_sha256$`, passlib's
//! `$pbkdf2-sha256$<rounds>$` and the PHC form `$pbkdf2-sha256$i=<n>,l=<len>$`. The key
//! derivation is the `pbkdf2` crate's.

use std::fmt;

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD, STANDARD, STANDARD_NO_PAD};
use pbkdf2::{Algorithm, Params};
use subtle::ConstantTimeEq;

use super::HashFormatError;

/// The fewest iterations we accept: the `pbkdf2` crate's floor. Django never defaulted to fewer
/// than 10,000 and passlib to fewer than 6,400, so a lower count is a typo or a forgery.
pub const MIN_ITERATIONS: u32 = 1_000;

/// The most iterations we accept: about 0.6 s per check on one core here, near a check at
/// argon2's memory bound (0.7 s). Django 5.2 writes 1,000,000 and 6.0 1,200,000, raising it
/// about a fifth each release: this leaves room for several more.
pub const MAX_ITERATIONS: u32 = 5_000_000;

/// The longest salt we accept, as passlib: the salt is hashed once per block, so this bounds
/// memory rather than time.
const MAX_SALT_LEN: usize = 1024;

/// passlib's "adapted base64": the standard alphabet with `.` for `+`, no padding.
const AB64: GeneralPurpose = GeneralPurpose::new(
    &match Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./") {
        Ok(alphabet) => alphabet,
        Err(_) => panic!("the ab64 alphabet is valid"),
    },
    NO_PAD,
);

/// A PBKDF2-HMAC-SHA256 hash: iterations, salt bytes and derived key. Never printed.
#[derive(Clone)]
pub struct Pbkdf2Hash {
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Pbkdf2Hash {
    /// Parses the part of Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` after the
    /// prefix. Django hashes the salt *text* as the salt.
    pub fn parse_django(fields: &str) -> Result<Self, HashFormatError> {
        const SCHEME: &str = "Django pbkdf2_sha256";
        let [iterations, salt, hash] = split_exactly(fields)
            .ok_or_else(|| malformed(SCHEME, "expected pbkdf2_sha256$<iterations>$<salt>$<base64 hash>"))?;
        if salt.is_empty() {
            return Err(malformed(SCHEME, "empty salt"));
        }
        let hash = STANDARD.decode(hash).map_err(|_| malformed(SCHEME, "the hash is not padded base64"))?;
        Self::new(SCHEME, iterations, salt.as_bytes().to_vec(), hash)
    }

    /// Parses passlib's `$pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64 hash>`, or the PHC form
    /// `$pbkdf2-sha256$i=<iterations>[,l=<length>]$<base64 salt>$<base64 hash>`.
    pub fn parse_modular(text: &str) -> Result<Self, HashFormatError> {
        let fields = text
            .strip_prefix("$pbkdf2-sha256$")
            .ok_or_else(|| malformed("pbkdf2-sha256", "no $pbkdf2-sha256$ prefix"))?;
        // passlib writes a bare number where PHC writes `i=`.
        if fields.starts_with(|c: char| c.is_ascii_digit()) {
            Self::parse_passlib(fields)
        } else {
            Self::parse_phc(fields)
        }
    }

    fn parse_passlib(fields: &str) -> Result<Self, HashFormatError> {
        const SCHEME: &str = "passlib pbkdf2-sha256";
        let [rounds, salt, hash] = split_exactly(fields)
            .ok_or_else(|| malformed(SCHEME, "expected $pbkdf2-sha256$<rounds>$<salt>$<hash>"))?;
        let salt = AB64.decode(salt).map_err(|_| malformed(SCHEME, "the salt is not adapted base64"))?;
        let hash = AB64.decode(hash).map_err(|_| malformed(SCHEME, "the hash is not adapted base64"))?;
        Self::new(SCHEME, rounds, salt, hash)
    }

    fn parse_phc(fields: &str) -> Result<Self, HashFormatError> {
        const SCHEME: &str = "PHC pbkdf2-sha256";
        let expected = "expected $pbkdf2-sha256$i=<iterations>[,l=<length>]$<salt>$<hash>";
        let [settings, salt, hash] = split_exactly(fields).ok_or_else(|| malformed(SCHEME, expected))?;
        let mut iterations = None;
        let mut length = None;
        for setting in settings.split(',') {
            match setting.split_once('=') {
                Some(("i", value)) if iterations.is_none() => iterations = Some(value),
                Some(("l", value)) if length.is_none() => length = Some(value),
                _ => return Err(malformed(SCHEME, expected)),
            }
        }
        let iterations = iterations.ok_or_else(|| malformed(SCHEME, expected))?;
        // PHC's base64 is standard without padding (B64).
        let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| malformed(SCHEME, "the salt is not base64"))?;
        let hash = STANDARD_NO_PAD.decode(hash).map_err(|_| malformed(SCHEME, "the hash is not base64"))?;
        if length.is_some_and(|length| length != hash.len().to_string()) {
            return Err(malformed(SCHEME, "l= is not the length of the hash"));
        }
        Self::new(SCHEME, iterations, salt, hash)
    }

    fn new(
        scheme: &'static str,
        iterations: &str,
        salt: Vec<u8>,
        hash: Vec<u8>,
    ) -> Result<Self, HashFormatError> {
        if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(scheme, "the iteration count is not a number"));
        }
        // Too many digits for a u64 is out of bounds all the same.
        let count: u64 = iterations.parse().unwrap_or(u64::MAX);
        if !(u64::from(MIN_ITERATIONS)..=u64::from(MAX_ITERATIONS)).contains(&count) {
            return Err(HashFormatError::Cost {
                scheme,
                parameter: "iterations",
                value: count,
                min: MIN_ITERATIONS.into(),
                max: MAX_ITERATIONS.into(),
            });
        }
        if salt.len() > MAX_SALT_LEN {
            return Err(malformed(scheme, "the salt is longer than 1024 bytes"));
        }
        // A short derived key would let random passwords match; a long one costs a derivation
        // per 32 bytes. The crate's bounds (10 to 64 bytes) cover both; Django and passlib use 32.
        if !(Params::MIN_OUTPUT_LENGTH..=Params::MAX_OUTPUT_LENGTH).contains(&hash.len()) {
            return Err(malformed(scheme, "the hash is not 10 to 64 bytes long"));
        }
        let rounds = u32::try_from(count).expect("checked against MAX_ITERATIONS");
        let params = Params::new_with_output_len(rounds, hash.len())
            .map_err(|_| malformed(scheme, "iterations or hash length refused by pbkdf2"))?;
        Ok(Self { params, salt, hash })
    }

    /// The number of PBKDF2 iterations.
    pub fn iterations(&self) -> u32 {
        self.params.rounds()
    }

    /// True when `password` derives this hash (compared in constant time).
    pub fn verify(&self, password: &[u8]) -> bool {
        let mut derived = [0u8; Params::MAX_OUTPUT_LENGTH];
        let derived = &mut derived[..self.hash.len()];
        // The non-generic entry point: compiled (optimised) in the pbkdf2 crate, not here.
        pbkdf2::pbkdf2_hmac_with_params(password, &self.salt, Algorithm::Pbkdf2Sha256, self.params, derived);
        derived.ct_eq(&self.hash).into()
    }
}

/// Three `$`-separated fields, no more.
fn split_exactly(fields: &str) -> Option<[&str; 3]> {
    let mut parts = fields.split('$');
    let three = [parts.next()?, parts.next()?, parts.next()?];
    parts.next().is_none().then_some(three)
}

fn malformed(scheme: &'static str, reason: &str) -> HashFormatError {
    HashFormatError::Malformed { scheme, reason: reason.into() }
}

impl fmt::Debug for Pbkdf2Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pbkdf2Hash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::{Memory, StoredHash};

    const UNICODE: &str = "pässwörd ✓ 🔑";

    /// Django 5.2.19 `make_password(UNICODE, hasher="pbkdf2_sha256")` (its default 1,000,000).
    const DJANGO: &str =
        "pbkdf2_sha256$1000000$9NYaKCyvptjJug8IMYijRQ$YiBfaBPxK/cGIn4FfZbFmAEO9nmv50LrgmrrvWNT0cA=";
    /// passlib 1.7.4 `pbkdf2_sha256.hash(UNICODE)` (its default 29,000; `.` in the hash is ab64).
    const PASSLIB: &str =
        "$pbkdf2-sha256$29000$Xcs5RyhFSKkVQihFKMWYcw$XtgIIslF8tlN7LKUeOrcIy2g.yfLrNGl4kM.U0xH6to";
    /// The pbkdf2 crate's own PHC test vector (0.13, `phc.rs`): 4096 iterations, a 40-byte key.
    const PHC: &str = "$pbkdf2-sha256$i=4096,l=40\
        $c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0\
        $NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+HGNVGMfaxH6Q";
    const PHC_PASSWORD: &str = "passwordPASSWORDpassword";
    /// Python 3.11 `hashlib.pbkdf2_hmac("sha256", UNICODE, b"saltsaltsaltsalt", 600000)` in PHC form.
    const PHC_HASHLIB: &str =
        "$pbkdf2-sha256$i=600000,l=32$c2FsdHNhbHRzYWx0c2FsdA$geIRBq7kXZUzp375J8qmYpqKlpo06n1l5R6y76Dq6L4";

    fn check(text: &str, password: &str) {
        let hash = StoredHash::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut memory = Memory::default();
        let started = std::time::Instant::now();
        assert!(hash.verify(password.as_bytes(), &mut memory), "{text}");
        eprintln!("{:>8.1} ms  {}", started.elapsed().as_secs_f64() * 1e3, hash.scheme());
        assert!(!hash.verify(format!("{password}!").as_bytes(), &mut memory), "{text}");
        assert!(!hash.verify(b"", &mut memory), "{text}");
        assert!(hash.needs_upgrade(), "{text}");
    }

    #[test]
    fn djangos_pbkdf2_verifies_with_the_salt_text_as_salt() {
        check(DJANGO, UNICODE);
    }

    #[test]
    fn passlibs_pbkdf2_verifies_in_adapted_base64() {
        check(PASSLIB, UNICODE);
    }

    #[test]
    fn the_phc_form_verifies() {
        check(PHC, PHC_PASSWORD);
        check(PHC_HASHLIB, UNICODE);
        // `l=` is optional.
        check(&PHC.replacen(",l=40", "", 1), PHC_PASSWORD);
    }

    #[test]
    fn bad_pbkdf2_hashes_are_refused_with_a_reason() {
        let message = |text: &str| StoredHash::parse(text).unwrap_err().to_string();
        assert_eq!(
            message(&DJANGO.replacen("1000000", "999", 1)),
            "Django pbkdf2_sha256 iterations 999 is outside the accepted 1000..=5000000"
        );
        assert_eq!(
            message(&DJANGO.replacen("1000000", "5000001", 1)),
            "Django pbkdf2_sha256 iterations 5000001 is outside the accepted 1000..=5000000"
        );
        assert_eq!(
            message(&DJANGO.replacen("1000000", "99999999999999999999999", 1)),
            format!("Django pbkdf2_sha256 iterations {} is outside the accepted 1000..=5000000", u64::MAX)
        );
        assert_eq!(
            message(&DJANGO.replacen("1000000", "-1", 1)),
            "malformed Django pbkdf2_sha256 hash: the iteration count is not a number"
        );
        assert_eq!(
            message(DJANGO.strip_suffix('=').unwrap()),
            "malformed Django pbkdf2_sha256 hash: the hash is not padded base64"
        );
        assert_eq!(
            message("pbkdf2_sha256$1000000$salt"),
            "malformed Django pbkdf2_sha256 hash: expected pbkdf2_sha256$<iterations>$<salt>$<base64 hash>"
        );
        assert_eq!(
            message("pbkdf2_sha256$1000000$$YiBfaBPxK/cGIn4FfZbFmAEO9nmv50LrgmrrvWNT0cA="),
            "malformed Django pbkdf2_sha256 hash: empty salt"
        );
        assert_eq!(
            message("pbkdf2_sha256$1000000$salt$YWJj"),
            "malformed Django pbkdf2_sha256 hash: the hash is not 10 to 64 bytes long"
        );
        assert_eq!(
            message(&PASSLIB.replacen("29000", "500", 1)),
            "passlib pbkdf2-sha256 iterations 500 is outside the accepted 1000..=5000000"
        );
        assert_eq!(
            message(&PASSLIB.replace('.', "+")),
            "malformed passlib pbkdf2-sha256 hash: the hash is not adapted base64"
        );
        assert_eq!(
            message(&PHC.replacen("i=4096", "i=4096000000", 1)),
            "PHC pbkdf2-sha256 iterations 4096000000 is outside the accepted 1000..=5000000"
        );
        assert_eq!(
            message(&PHC.replacen("l=40", "l=32", 1)),
            "malformed PHC pbkdf2-sha256 hash: l= is not the length of the hash"
        );
        assert_eq!(
            message(&PHC.replacen("i=4096", "rounds=4096", 1)),
            "malformed PHC pbkdf2-sha256 hash: expected $pbkdf2-sha256$i=<iterations>[,l=<length>]$<salt>$<hash>"
        );
    }

    #[test]
    fn the_iterations_are_read_back() {
        assert_eq!(Pbkdf2Hash::parse_modular(PASSLIB).unwrap().iterations(), 29_000);
    }
}
