//! Micro-benchmarks of the two costs behind every request: argon2 password verification
//! (`POST /token`) and HS256 token minting/validation (`POST /token`, `GET /users/me/`), and
//! what a migrated user's legacy hash costs to check once before it is upgraded; and minting
//! and checking with each algorithm of a `JWT_KEYS_FILE` key set.
//!
//! Run with `cargo bench` (about 1-2 minutes on 2 cores, most of it compiling), or one group
//! with `cargo bench --bench auth -- password`. Only the library's public API is used.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use oauth2_jwt_server::auth::jwt::TokenKeys;
use oauth2_jwt_server::auth::keys::{KeyAlgorithm, SecretKey, SigningKeys, generate};
use oauth2_jwt_server::auth::password::{Memory, PasswordHash, StoredHash};

/// The tutorial's stored hash for johndoe (pwdlib's argon2id defaults: 64 MiB, t=3, p=4).
const JOHNDOE_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";
const TUTORIAL_KEY: &str = "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7";

fn password(c: &mut Criterion) {
    let hash = PasswordHash::parse(JOHNDOE_HASH).expect("the tutorial hash parses");
    let mut memory = Memory::default();
    // A benchmark of a broken check would be meaningless: make sure it answers right first.
    assert!(hash.verify(b"secret", &mut memory), "johndoe's password must verify");

    let mut group = c.benchmark_group("password");
    // One verification takes ~50-400 ms (more on a busy machine): flat sampling runs each of
    // the 10 samples (criterion's minimum) once or twice, so the group takes seconds, not minutes.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    // What the server's hashing threads do: the 64 MiB working area is allocated once.
    group.bench_function("verify_reused_memory", |b| {
        b.iter(|| hash.verify(black_box(b"secret"), &mut memory))
    });
    // For comparison: allocating (and faulting in) 64 MiB on every call.
    group.bench_function("verify_fresh_memory", |b| {
        b.iter(|| hash.verify(black_box(b"secret"), &mut Memory::default()))
    });
    group.finish();
}

/// Legacy hashes as the other apps' defaults write them (see src/auth/password/ for the vectors).
const LEGACY: &[(&str, &str, &str)] = &[
    (
        "bcrypt_cost12",
        "$2b$12$dCqMX2b8rxlq0FSLTMihDe2OgLFis29/adsTBHL2KlDvkqlpcF5uG",
        "correct horse battery staple",
    ),
    (
        "django_pbkdf2_1M",
        "pbkdf2_sha256$1000000$9NYaKCyvptjJug8IMYijRQ$YiBfaBPxK/cGIn4FfZbFmAEO9nmv50LrgmrrvWNT0cA=",
        "pässwörd ✓ 🔑",
    ),
    (
        "passlib_pbkdf2_29000",
        "$pbkdf2-sha256$29000$Xcs5RyhFSKkVQihFKMWYcw$XtgIIslF8tlN7LKUeOrcIy2g.yfLrNGl4kM.U0xH6to",
        "pässwörd ✓ 🔑",
    ),
];

fn legacy(c: &mut Criterion) {
    let mut memory = Memory::default();
    let mut group = c.benchmark_group("legacy");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for &(name, text, password) in LEGACY {
        let hash = StoredHash::parse(text).expect("the vector parses");
        assert!(hash.verify(password.as_bytes(), &mut memory), "{name} must verify");
        group.bench_function(name, |b| b.iter(|| hash.verify(black_box(password.as_bytes()), &mut memory)));
    }
    group.finish();
}

fn jwt(c: &mut Criterion) {
    let keys = TokenKeys::new(&SecretKey::new(TUTORIAL_KEY), Duration::from_secs(30 * 60));
    let token = keys.create_access_token("johndoe", None).expect("a token can be minted");
    assert_eq!(keys.decode_token(&token).map(|token| token.sub).as_deref(), Ok("johndoe"));

    let mut group = c.benchmark_group("jwt");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.bench_function("create_access_token", |b| {
        b.iter(|| keys.create_access_token(black_box("johndoe"), None).expect("mint"))
    });
    group.bench_function("decode_token", |b| {
        b.iter(|| keys.decode_token(black_box(&token)).expect("valid token"))
    });
    group.finish();
}

/// Minting and checking with a key set whose first key has each algorithm (the key's `kid` in
/// the header, the key looked up by it).
fn jwt_key_set(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt_key_set");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for algorithm in KeyAlgorithm::ALL {
        let jwk = generate(algorithm).expect("a key");
        let keys = SigningKeys::from_jwks(&format!(r#"{{"keys": [{jwk}]}}"#)).expect("a key set");
        let keys = TokenKeys::from_keys(keys, Duration::from_secs(30 * 60));
        let token = keys.create_access_token("johndoe", None).expect("a token can be minted");
        assert_eq!(keys.decode_token(&token).map(|token| token.sub).as_deref(), Ok("johndoe"));
        group.bench_function(format!("create_access_token/{algorithm}"), |b| {
            b.iter(|| keys.create_access_token(black_box("johndoe"), None).expect("mint"))
        });
        group.bench_function(format!("decode_token/{algorithm}"), |b| {
            b.iter(|| keys.decode_token(black_box(&token)).expect("valid token"))
        });
    }
    group.finish();
}

criterion_group!(benches, password, legacy, jwt, jwt_key_set);
criterion_main!(benches);
