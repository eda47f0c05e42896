//! bcrypt (`$2a$`, `$2b$`, `$2y$`), bare or wrapped: Django's `bcrypt$` and `bcrypt_sha256$`,
//! passlib's `$bcrypt-sha256$` (v1 and v2). The blowfish work is the `bcrypt` crate's.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::HashFormatError;

/// The lowest cost bcrypt itself allows.
pub const MIN_COST: u32 = 4;

/// The highest cost we accept: 2^14 rounds, about 1 s per check on one core here (cost 12, the
/// usual default, takes about a quarter of a second; 16 would hold the hashing thread for 4 s),
/// so one stored hash cannot stall everyone's logins.
pub const MAX_COST: u32 = 14;

/// A bcrypt hash and how the password is prepared before bcrypt sees it. Never printed.
#[derive(Clone)]
pub struct BcryptHash {
    /// The plain `$2?$NN$<salt><digest>` string (60 ASCII characters) the `bcrypt` crate verifies.
    modular: String,
    prehash: Prehash,
}

/// What bcrypt is fed: the password itself, or a digest of it (wrappers exist because bcrypt
/// only reads the first 72 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prehash {
    /// The password bytes: pwdlib, passlib's `bcrypt`, PHP, Django's `bcrypt$`.
    Plain,
    /// Lowercase hex of SHA-256(password): Django's `bcrypt_sha256$`.
    DjangoSha256Hex,
    /// Base64 of SHA-256(password): passlib's `$bcrypt-sha256$` version 1.
    PasslibSha256,
    /// Base64 of HMAC-SHA256 keyed by the 22-character salt text: passlib's version 2.
    PasslibHmacSha256,
}

impl BcryptHash {
    /// Parses a bare `$2a$`, `$2b$` or `$2y$` hash (pwdlib, passlib, PHP).
    pub fn parse(text: &str) -> Result<Self, HashFormatError> {
        Self::new(text, Prehash::Plain, "bcrypt")
    }

    /// Parses the part of Django's `bcrypt$<hash>` after the prefix.
    pub fn parse_django(modular: &str) -> Result<Self, HashFormatError> {
        Self::new(modular, Prehash::Plain, "Django bcrypt")
    }

    /// Parses the part of Django's `bcrypt_sha256$<hash>` after the prefix.
    pub fn parse_django_sha256(modular: &str) -> Result<Self, HashFormatError> {
        Self::new(modular, Prehash::DjangoSha256Hex, "Django bcrypt_sha256")
    }

    /// Parses passlib's `$bcrypt-sha256$v=2,t=2b,r=<cost>$<salt>$<digest>`, or version 1's
    /// `$bcrypt-sha256$<2a|2b>,<cost>$<salt>$<digest>`.
    pub fn parse_passlib_sha256(text: &str) -> Result<Self, HashFormatError> {
        const SCHEME: &str = "passlib bcrypt-sha256";
        let malformed = |reason: &str| HashFormatError::Malformed { scheme: SCHEME, reason: reason.into() };
        let fields =
            text.strip_prefix("$bcrypt-sha256$").ok_or_else(|| malformed("no $bcrypt-sha256$ prefix"))?;
        let [settings, salt, digest] = split_exactly(fields)
            .ok_or_else(|| malformed("expected $bcrypt-sha256$<settings>$<salt>$<digest>"))?;
        let (variant, cost, prehash) = if let Some(v2) = settings.strip_prefix("v=2,") {
            // Version 2 is only ever written with bcrypt's 2b variant.
            let cost = v2.strip_prefix("t=2b,r=").ok_or_else(|| malformed("expected v=2,t=2b,r=<cost>"))?;
            ("2b", cost, Prehash::PasslibHmacSha256)
        } else {
            let (variant, cost) = settings
                .split_once(',')
                .filter(|(variant, _)| matches!(*variant, "2a" | "2b"))
                .ok_or_else(|| malformed("expected v=2,t=2b,r=<cost> or <2a|2b>,<cost>"))?;
            (variant, cost, Prehash::PasslibSha256)
        };
        // passlib writes the cost without padding, one or two digits.
        if !(1..=2).contains(&cost.len())
            || !cost.bytes().all(|b| b.is_ascii_digit())
            || cost.starts_with('0')
        {
            return Err(malformed("the cost is not a number of one or two digits"));
        }
        let cost: u32 = cost.parse().map_err(|_| malformed("the cost is not a number"))?;
        if salt.len() != 22 || digest.len() != 31 {
            return Err(malformed("expected a 22-character salt and a 31-character digest"));
        }
        Self::new(&format!("${variant}${cost:02}${salt}{digest}"), prehash, SCHEME)
    }

    fn new(modular: &str, prehash: Prehash, scheme: &'static str) -> Result<Self, HashFormatError> {
        let malformed = |reason: &str| HashFormatError::Malformed { scheme, reason: reason.into() };
        // Not $2x$: see `KNOWN_UNSUPPORTED`.
        let variant = modular.get(..4).ok_or_else(|| malformed("expected $2a$, $2b$ or $2y$"))?;
        if !matches!(variant, "$2a$" | "$2b$" | "$2y$") {
            return Err(malformed("expected $2a$, $2b$ or $2y$"));
        }
        if modular.len() != 60 || !modular.is_ascii() || modular.as_bytes()[6] != b'$' {
            return Err(malformed("expected $2b$<two-digit cost>$ then 53 characters of salt and digest"));
        }
        let cost = &modular[4..6];
        if !cost.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("the cost is not a two-digit number"));
        }
        let cost: u32 = cost.parse().map_err(|_| malformed("the cost is not a number"))?;
        if !(MIN_COST..=MAX_COST).contains(&cost) {
            return Err(HashFormatError::Cost {
                scheme,
                parameter: "cost",
                value: cost.into(),
                min: MIN_COST.into(),
                max: MAX_COST.into(),
            });
        }
        // The crate decodes salt and digest strictly (no stray padding bits), as it will to verify.
        bcrypt::HashParts::from_str(modular)
            .map_err(|_| malformed("the salt or digest is not bcrypt base64"))?;
        Ok(Self { modular: modular.to_owned(), prehash })
    }

    /// bcrypt's cost: log2 of its rounds.
    pub fn cost(&self) -> u32 {
        // Checked to be two digits by `new`.
        self.modular[4..6].parse().unwrap_or(MAX_COST)
    }

    /// True when `password` (prepared as its scheme says) matches. bcrypt reads at most 72
    /// bytes, as every implementation that wrote these hashes did.
    pub fn verify(&self, password: &[u8]) -> bool {
        let check = |key: &[u8]| bcrypt::verify(key, &self.modular).unwrap_or(false);
        match self.prehash {
            Prehash::Plain => check(password),
            Prehash::DjangoSha256Hex => {
                let digest = Sha256::digest(password);
                let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
                check(hex.as_bytes())
            }
            Prehash::PasslibSha256 => check(STANDARD.encode(Sha256::digest(password)).as_bytes()),
            Prehash::PasslibHmacSha256 => {
                // The key is the salt as written (bcrypt's base64 text), not its decoded bytes.
                let salt = &self.modular.as_bytes()[7..29];
                let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes keys of any length");
                mac.update(password);
                check(STANDARD.encode(mac.finalize().into_bytes()).as_bytes())
            }
        }
    }
}

/// Three `$`-separated fields, no more.
fn split_exactly(fields: &str) -> Option<[&str; 3]> {
    let mut parts = fields.split('$');
    let three = [parts.next()?, parts.next()?, parts.next()?];
    parts.next().is_none().then_some(three)
}

impl fmt::Debug for BcryptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BcryptHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::{Memory, StoredHash};

    const PLAIN: &str = "correct horse battery staple";
    const UNICODE: &str = "pässwörd ✓ 🔑";

    /// pwdlib 0.3.1 `BcryptHasher().hash(PLAIN)` (bcrypt 5.0.0).
    const PWDLIB: &str = "$2b$12$dCqMX2b8rxlq0FSLTMihDe2OgLFis29/adsTBHL2KlDvkqlpcF5uG";
    /// passlib 1.7.4 `bcrypt.hash(PLAIN)` (bcrypt 4.0.1 backend).
    const PASSLIB: &str = "$2b$12$2SQ8wH4WVdgkOalGVPcd/O/.R1ItDXuWhndF7TbsEfuQ4gRhWCqK.";
    /// passlib 1.7.4 `bcrypt.using(ident="2a").hash(UNICODE)`.
    const PASSLIB_2A: &str = "$2a$12$NSp4zApKH1RpyI03OcTT/OuDfMAf4wJ6ktmg4YzT9eOxfQVBOSuAu";
    /// passlib 1.7.4 `bcrypt.using(ident="2y").hash(PLAIN)` (PHP's prefix).
    const PASSLIB_2Y: &str = "$2y$12$q.7kak5yRv1HbJTUavtrpO3tjyz3WnuIkW3PaTe0.2Z6hCFrgSweS";
    /// passlib 1.7.4 `bcrypt_sha256.hash(UNICODE)` (version 2, HMAC).
    const PASSLIB_SHA256_V2: &str =
        "$bcrypt-sha256$v=2,t=2b,r=12$KIZgsAve.aheRsxcaLAwjO$iqQfkLFPM1Y3T1hhjVG7wm6ZcOST4IW";
    /// passlib 1.7.4 `bcrypt_sha256.using(version=1).hash(UNICODE)`.
    const PASSLIB_SHA256_V1: &str =
        "$bcrypt-sha256$2b,12$bkXo8WMYx3AlxmnelLKI9O$aLzM7fljxm/yiLWp5Eb1VipRA1CRhXi";
    /// Django 5.2.19 `make_password(PLAIN, hasher="bcrypt")` (bcrypt 5.0.0).
    const DJANGO: &str = "bcrypt$$2b$12$Xs.L9EAW/aN3Z7ZY6bV2k.4FyY5dBad9syMqFIecujerm9GtoKAy.";
    /// Django 5.2.19 `make_password(UNICODE, hasher="bcrypt_sha256")`.
    const DJANGO_SHA256: &str = "bcrypt_sha256$$2b$12$TsMvDlN87hYz.It8QQXsj.EWmPW9/D9sNqxkzBcyzS7U1M.nHgCg2";

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
    fn pwdlib_and_passlib_bcrypt_verify() {
        check(PWDLIB, PLAIN);
        check(PASSLIB, PLAIN);
    }

    #[test]
    fn the_2a_and_2y_prefixes_verify() {
        check(PASSLIB_2A, UNICODE);
        check(PASSLIB_2Y, PLAIN);
        // The same algorithm under another prefix: PHP's $2y$ for a $2b$ hash.
        check(&PWDLIB.replacen("$2b$", "$2y$", 1), PLAIN);
    }

    #[test]
    fn passlib_bcrypt_sha256_verifies_in_both_versions() {
        check(PASSLIB_SHA256_V2, UNICODE);
        check(PASSLIB_SHA256_V1, UNICODE);
    }

    #[test]
    fn djangos_bcrypt_forms_verify() {
        check(DJANGO, PLAIN);
        check(DJANGO_SHA256, UNICODE);
    }

    #[test]
    fn a_wrapped_hash_is_not_the_bare_one() {
        // The same bcrypt string under another wrapper hashes another key: no match.
        let bare = DJANGO_SHA256.strip_prefix("bcrypt_sha256$").unwrap();
        let hash = StoredHash::parse(bare).unwrap();
        assert!(!hash.verify(UNICODE.as_bytes(), &mut Memory::default()));
    }

    #[test]
    fn bad_bcrypt_hashes_are_refused_with_a_reason() {
        let message = |text: &str| StoredHash::parse(text).unwrap_err().to_string();
        assert_eq!(
            message(&PWDLIB.replacen("$12$", "$15$", 1)),
            "bcrypt cost 15 is outside the accepted 4..=14"
        );
        assert_eq!(
            message(&PWDLIB.replacen("$12$", "$03$", 1)),
            "bcrypt cost 3 is outside the accepted 4..=14"
        );
        assert_eq!(
            message(&PWDLIB.replacen("$12$", "$1a$", 1)),
            "malformed bcrypt hash: the cost is not a two-digit number"
        );
        assert_eq!(
            message(&PWDLIB[..59]),
            "malformed bcrypt hash: expected $2b$<two-digit cost>$ then 53 characters of salt and digest"
        );
        assert_eq!(
            message(&PWDLIB.replacen('d', "!", 1)),
            "malformed bcrypt hash: the salt or digest is not bcrypt base64"
        );
        assert!(
            message(&PWDLIB.replacen("$2b$", "$2x$", 1))
                .starts_with(r#"unsupported password hash scheme "2x""#)
        );
        assert_eq!(
            message("bcrypt$2b$12$Xs.L9EAW/aN3Z7ZY6bV2k.4FyY5dBad9syMqFIecujerm9GtoKAy."),
            "malformed Django bcrypt hash: expected $2a$, $2b$ or $2y$"
        );
        assert_eq!(
            message(&DJANGO_SHA256.replacen("$12$", "$31$", 1)),
            "Django bcrypt_sha256 cost 31 is outside the accepted 4..=14"
        );
        assert_eq!(
            message(&PASSLIB_SHA256_V2.replacen("r=12", "r=15", 1)),
            "passlib bcrypt-sha256 cost 15 is outside the accepted 4..=14"
        );
        assert_eq!(
            message(&PASSLIB_SHA256_V2.replacen("t=2b", "t=2a", 1)),
            "malformed passlib bcrypt-sha256 hash: expected v=2,t=2b,r=<cost>"
        );
        assert_eq!(
            message(&PASSLIB_SHA256_V2.replacen("r=12", "r=012", 1)),
            "malformed passlib bcrypt-sha256 hash: the cost is not a number of one or two digits"
        );
        assert_eq!(
            message(&format!("{PASSLIB_SHA256_V1}$")),
            "malformed passlib bcrypt-sha256 hash: expected $bcrypt-sha256$<settings>$<salt>$<digest>"
        );
        assert_eq!(
            message(&PASSLIB_SHA256_V1[..PASSLIB_SHA256_V1.len() - 1]),
            "malformed passlib bcrypt-sha256 hash: expected a 22-character salt and a 31-character digest"
        );
    }

    #[test]
    fn the_cost_is_read_back() {
        assert_eq!(BcryptHash::parse(PWDLIB).unwrap().cost(), 12);
    }
}
