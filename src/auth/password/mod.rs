//! Stored password hashes of every format we accept (`StoredHash`), and why a text is refused.
//!
//! We write argon2id only; bcrypt, PBKDF2 and Django's wrappers are read so that users migrated
//! from other apps can log in, after which the caller rehashes them (`needs_upgrade`), as
//! pwdlib's `verify_and_update` does.

/// Argon2 PHC strings, the hashes we write, and the reusable working memory.
pub mod argon2;
/// bcrypt and its SHA-256 wrappers (Django, passlib).
pub mod bcrypt;
/// PBKDF2-HMAC-SHA256 (Django, passlib, PHC).
pub mod pbkdf2;

use std::fmt;

pub use self::argon2::{DEFAULT_PARAMS, MAX_M_COST, Memory, PasswordHash, default_params, hash_password};
use self::bcrypt::BcryptHash;
use self::pbkdf2::Pbkdf2Hash;

/// The formats `StoredHash::parse` accepts, for error messages.
const SUPPORTED: &str = "argon2 PHC ($argon2id$, $argon2i$, $argon2d$), bcrypt ($2a$, $2b$, $2y$), \
    passlib's $bcrypt-sha256$ and $pbkdf2-sha256$, PHC $pbkdf2-sha256$i=..., \
    Django's pbkdf2_sha256$, argon2$, bcrypt$ and bcrypt_sha256$";

/// Schemes recognised by their prefix but not verified here. Only these are named back in an
/// error: any other prefix could be the start of a plain-text password.
const KNOWN_UNSUPPORTED: &[&str] = &[
    // Modular crypt identifiers (`$<id>$`); `2x` is crypt_blowfish's mark for hashes made with
    // its sign-extension bug, which the bcrypt crate would wrongly verify as `2b`.
    "1",
    "2",
    "2x",
    "3",
    "5",
    "6",
    "7",
    "y",
    "gy",
    "apr1",
    "md5",
    "sha1",
    "scrypt",
    "pbkdf2",
    "pbkdf2-sha1",
    "pbkdf2-sha512",
    // Django algorithm names (`<name>$`), besides md5, sha1 and scrypt above.
    "unsalted_md5",
    "unsalted_sha1",
    "crypt",
    "pbkdf2_sha1",
];

/// Why a text cannot be used as a stored password hash. Messages never quote the hash.
#[derive(Debug, thiserror::Error)]
pub enum HashFormatError {
    /// Not a format we know at all (plain text, an empty string, an unknown prefix).
    #[error("not a password hash we know (expected {SUPPORTED})")]
    Unrecognised,
    /// A known scheme that we do not verify.
    #[error("unsupported password hash scheme {0:?} (supported: {SUPPORTED})")]
    Algorithm(String),
    /// A supported scheme whose fields are missing or do not decode.
    #[error("malformed {scheme} hash: {reason}")]
    Malformed {
        /// The scheme the text claims to be.
        scheme: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A cost we refuse to spend on every login, or too low for a real hash.
    #[error("{scheme} {parameter} {value} is outside the accepted {min}..={max}")]
    Cost {
        /// The scheme of the hash.
        scheme: &'static str,
        /// Which cost parameter.
        parameter: &'static str,
        /// Its value in the hash.
        value: u64,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
}

/// A stored password hash in any supported format, parsed once when users are loaded.
/// Never printed.
#[derive(Clone)]
pub enum StoredHash {
    /// An argon2 PHC string (pwdlib, passlib, argon2-cffi, `hash_password`).
    Argon2(PasswordHash),
    /// Django's `argon2$` + an argon2 PHC string: always upgraded, to leave the wrapper behind.
    DjangoArgon2(PasswordHash),
    /// bcrypt, bare or in one of its wrappers.
    Bcrypt(BcryptHash),
    /// PBKDF2-HMAC-SHA256 in Django's, passlib's or the PHC form.
    Pbkdf2Sha256(Pbkdf2Hash),
}

impl StoredHash {
    /// Recognises the format by its prefix and parses it, refusing costs out of bounds.
    pub fn parse(text: &str) -> Result<Self, HashFormatError> {
        if let Some(rest) = text.strip_prefix('$') {
            // Modular crypt / PHC: `$<id>$...`.
            let id = rest.split_once('$').map_or(rest, |(id, _)| id);
            return match id {
                "argon2id" | "argon2i" | "argon2d" => PasswordHash::parse(text).map(Self::Argon2),
                "2a" | "2b" | "2y" => BcryptHash::parse(text).map(Self::Bcrypt),
                "bcrypt-sha256" => BcryptHash::parse_passlib_sha256(text).map(Self::Bcrypt),
                "pbkdf2-sha256" => Pbkdf2Hash::parse_modular(text).map(Self::Pbkdf2Sha256),
                _ => Err(unsupported(id)),
            };
        }
        // Django: `<algorithm>$...`.
        let Some((algorithm, rest)) = text.split_once('$') else {
            return Err(HashFormatError::Unrecognised);
        };
        match algorithm {
            "pbkdf2_sha256" => Pbkdf2Hash::parse_django(rest).map(Self::Pbkdf2Sha256),
            "argon2" => {
                // What follows the prefix is a PHC string without its leading `$`.
                let phc = format!("${rest}");
                if !rest.starts_with("argon2") {
                    return Err(HashFormatError::Malformed {
                        scheme: "Django argon2",
                        reason: "expected argon2$argon2id$... or argon2$argon2i$...".into(),
                    });
                }
                PasswordHash::parse(&phc).map(Self::DjangoArgon2)
            }
            "bcrypt" => BcryptHash::parse_django(rest).map(Self::Bcrypt),
            "bcrypt_sha256" => BcryptHash::parse_django_sha256(rest).map(Self::Bcrypt),
            _ => Err(unsupported(algorithm)),
        }
    }

    /// True when `password` matches. `memory` is argon2's reused working space (the other
    /// schemes need none). Digests are compared in constant time.
    pub fn verify(&self, password: &[u8], memory: &mut Memory) -> bool {
        match self {
            Self::Argon2(hash) | Self::DjangoArgon2(hash) => hash.verify(password, memory),
            Self::Bcrypt(hash) => hash.verify(password),
            Self::Pbkdf2Sha256(hash) => hash.verify(password),
        }
    }

    /// True unless this is exactly what `hash_password` writes today (argon2id, version 0x13,
    /// m=65536, t=3, p=4, a 32-byte output): after a successful login, rehash the password.
    pub fn needs_upgrade(&self) -> bool {
        match self {
            Self::Argon2(hash) => !hash.is_current(),
            Self::DjangoArgon2(_) | Self::Bcrypt(_) | Self::Pbkdf2Sha256(_) => true,
        }
    }

    /// The family, for logs and metrics ("argon2", "Django argon2", "bcrypt", "pbkdf2-sha256").
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Argon2(_) => "argon2",
            Self::DjangoArgon2(_) => "Django argon2",
            Self::Bcrypt(_) => "bcrypt",
            Self::Pbkdf2Sha256(_) => "pbkdf2-sha256",
        }
    }
}

impl From<PasswordHash> for StoredHash {
    fn from(hash: PasswordHash) -> Self {
        Self::Argon2(hash)
    }
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredHash({}, <redacted>)", self.scheme())
    }
}

/// A known scheme is named back; anything else might be a password and is not.
fn unsupported(id: &str) -> HashFormatError {
    if KNOWN_UNSUPPORTED.contains(&id) {
        HashFormatError::Algorithm(id.to_owned())
    } else {
        HashFormatError::Unrecognised
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "correct horse battery staple";
    const UNICODE: &str = "pässwörd ✓ 🔑";

    /// pwdlib 0.3.1 `Argon2Hasher().hash(UNICODE)` (argon2-cffi 25.1.0): our own parameters.
    const PWDLIB: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$KJ3JepHnaZvCC7COTsCaXw$REYfMSlG+BQOS4cjmF2g9vLZaTE8wRLxU6xqj1frNB4";
    /// passlib 1.7.4 `argon2.hash(PLAIN)`: its defaults (m=65536, t=3, p=4, argon2id) are ours.
    const PASSLIB: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$zfmfU0ppTak1xvjfOyek1A$nAzBtySI8/gxNAwYTNl7OS0ntFs5s7gvnD9VBHSQKWg";
    /// argon2-cffi 25.1.0 `PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)`.
    const CFFI_OTHER_PARAMS: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$HTHvR+UF0NpUXL+goLWO6Q$GgGtmsZ5vD5TLYv3P5N7kDMWDIDx309dmj4y8aF9x0o";
    /// argon2-cffi 25.1.0 `PasswordHasher(hash_len=16)` with our other parameters.
    const CFFI_16_BYTES: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$keXUdSdMbvh1F6khracPeA$mPy5po/Jox6qiIM/SdSefQ";
    /// argon2-cffi 25.1.0 `low_level.hash_secret(..., version=16)` with our parameters.
    const CFFI_V16: &str =
        "$argon2id$v=16$m=65536,t=3,p=4$dmVyc2lvbnNpeHRlZW4hIQ$pbLtpfhzoLDBXwSsLumtgrdx6EtHxaNVWzm5vQpnHy8";
    /// argon2-cffi 25.1.0 `low_level.hash_secret(..., type=Type.I)`.
    const CFFI_ARGON2I: &str =
        "$argon2i$v=19$m=4096,t=3,p=2$c29tZXNhbHRzb21lc2FsdA$/Mt6aNguOFbxXKLKp9Lh7Vyl736GhCcVmb1LP82dxUk";
    /// argon2-cffi 25.1.0 `low_level.hash_secret(..., type=Type.D)`.
    const CFFI_ARGON2D: &str =
        "$argon2d$v=19$m=8192,t=2,p=1$b3RoZXJzYWx0b3RoZXJzYQ$jc7RQqHH3BI3KXW6I1DkBP44P8zfQfDuRnhCWL0UVAU";
    /// Django 5.2.19 `make_password(PLAIN, hasher="argon2")` (m=102400, t=2, p=8).
    const DJANGO: &str = "argon2$argon2id$v=19$m=102400,t=2,p=8$TFk2dkxOODFMcjFZYmxiUlpkRGVTeA\
        $80vvqJg+a+7eQgCvfBzwNNNKDXFIMUNvAhEC1uBJ7JU";

    /// Verifies right and wrong passwords; returns `needs_upgrade`.
    fn check(text: &str, password: &str) -> bool {
        let hash = StoredHash::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut memory = Memory::default();
        let started = std::time::Instant::now();
        assert!(hash.verify(password.as_bytes(), &mut memory), "{text}");
        eprintln!("{:>8.1} ms  {} {}", started.elapsed().as_secs_f64() * 1e3, hash.scheme(), &text[..24]);
        assert!(!hash.verify(format!("{password}!").as_bytes(), &mut memory), "{text}");
        assert!(!hash.verify(b"", &mut memory), "{text}");
        hash.needs_upgrade()
    }

    #[test]
    fn argon2id_with_our_parameters_needs_no_upgrade() {
        assert!(!check(PWDLIB, UNICODE));
        assert!(!check(PASSLIB, PLAIN));
        let ours = hash_password(PLAIN.as_bytes(), &mut Memory::default());
        assert!(!check(&ours, PLAIN));
    }

    #[test]
    fn other_argon2_hashes_verify_and_need_an_upgrade() {
        assert!(check(CFFI_OTHER_PARAMS, PLAIN));
        assert!(check(CFFI_16_BYTES, PLAIN));
        assert!(check(CFFI_V16, PLAIN));
        assert!(check(CFFI_ARGON2I, PLAIN));
        assert!(check(CFFI_ARGON2D, PLAIN));
    }

    #[test]
    fn djangos_argon2_verifies_and_needs_an_upgrade() {
        assert!(check(DJANGO, PLAIN));
        // Even with our parameters: the stored form is Django's, not ours.
        let wrapped = format!("argon2{PWDLIB}");
        assert!(check(&wrapped, UNICODE));
    }

    #[test]
    fn the_argon2_memory_bound_still_holds() {
        let huge = PWDLIB.replace("m=65536", "m=262145");
        let error = StoredHash::parse(&huge).unwrap_err().to_string();
        assert_eq!(error, "argon2 memory cost m (KiB) 262145 is outside the accepted 8..=262144");
        let error = StoredHash::parse(&format!("argon2{huge}")).unwrap_err().to_string();
        assert_eq!(error, "argon2 memory cost m (KiB) 262145 is outside the accepted 8..=262144");
    }

    #[test]
    fn unknown_formats_are_refused_without_quoting_them() {
        let message = |text: &str| StoredHash::parse(text).unwrap_err().to_string();
        let unrecognised = format!("not a password hash we know (expected {SUPPORTED})");
        for text in ["", "secret", "hunter2$with$dollars", "$", "$$", "$hunter2$x", "!unusable", "argon2id"] {
            assert_eq!(message(text), unrecognised, "{text:?}");
        }
        for (text, scheme) in [
            ("md5$salt$5f4dcc3b5aa765d61d8327deb882cf99", "md5"),
            ("sha1$salt$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8", "sha1"),
            ("scrypt$16384$salt$8$1$aGFzaA==", "scrypt"),
            ("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "1"),
            ("$6$rounds=5000$saltsalt$abcdefghijklmnop", "6"),
            ("$5$saltsalt$abc", "5"),
            ("$y$j9T$salt$hash", "y"),
            ("$2x$12$q.7kak5yRv1HbJTUavtrpO3tjyz3WnuIkW3PaTe0.2Z6hCFrgSweS", "2x"),
            ("$pbkdf2-sha512$25000$c2FsdA$aGFzaA", "pbkdf2-sha512"),
            ("$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA", "scrypt"),
        ] {
            assert_eq!(
                message(text),
                format!("unsupported password hash scheme {scheme:?} (supported: {SUPPORTED})"),
                "{text}"
            );
        }
        assert_eq!(
            message("argon2$bcrypt$x"),
            "malformed Django argon2 hash: expected argon2$argon2id$... or argon2$argon2i$..."
        );
        assert_eq!(message("$argon2id$v=19$m=65536,t=3,p=4"), "malformed argon2 hash: no salt");
    }

    #[test]
    fn debug_output_names_the_scheme_but_never_shows_the_hash() {
        assert_eq!(format!("{:?}", StoredHash::parse(PWDLIB).unwrap()), "StoredHash(argon2, <redacted>)");
        let bcrypt =
            StoredHash::parse("$2b$12$dCqMX2b8rxlq0FSLTMihDe2OgLFis29/adsTBHL2KlDvkqlpcF5uG").unwrap();
        assert_eq!(format!("{bcrypt:?}"), "StoredHash(bcrypt, <redacted>)");
        let StoredHash::Bcrypt(inner) = &bcrypt else { unreachable!() };
        assert_eq!(format!("{inner:?}"), "BcryptHash(<redacted>)");
    }
}
