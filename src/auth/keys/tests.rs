//! Key sets: every key type parses, signs and verifies; kids and thumbprints; the public set;
//! every refusal, with a message that names the key and never its material.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::jwk::Jwk;
use super::*;

/// A generated private JWK of `algorithm`, as JSON (RSA keys are made once: they are slow).
fn generated(algorithm: KeyAlgorithm) -> Value {
    static RSA: LazyLock<Value> =
        LazyLock::new(|| serde_json::from_str(&generate(KeyAlgorithm::RS256).unwrap()).unwrap());
    match algorithm {
        KeyAlgorithm::RS256 => RSA.clone(),
        _ => serde_json::from_str(&generate(algorithm).unwrap()).unwrap(),
    }
}

fn set(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn without(mut jwk: Value, members: &[&str]) -> Value {
    for member in members {
        jwk.as_object_mut().unwrap().remove(*member);
    }
    jwk
}

fn with(mut jwk: Value, member: &str, value: Value) -> Value {
    jwk[member] = value;
    jwk
}

/// The values of the private members of `jwk`, which no message may contain.
fn secrets(jwk: &Value) -> Vec<String> {
    ["d", "k", "p", "q", "dp", "dq", "qi"]
        .iter()
        .filter_map(|member| jwk.get(*member).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The message refusing a set of these keys, checked to hold none of their private members.
fn refusal(keys: &[Value]) -> String {
    let message = SigningKeys::from_jwks(&set(keys)).unwrap_err().to_string();
    for secret in keys.iter().flat_map(secrets) {
        assert!(!message.contains(&secret), "the message holds key material: {message}");
    }
    message
}

#[test]
fn every_key_type_parses_signs_and_verifies() {
    for algorithm in KeyAlgorithm::ALL {
        let jwk = generated(algorithm);
        let keys = SigningKeys::from_jwks(&set(std::slice::from_ref(&jwk))).unwrap();
        let key = keys.signing_key();
        assert_eq!(key.algorithm(), algorithm);
        assert_eq!(key.kid(), jwk["kid"].as_str());
        let signature = URL_SAFE_NO_PAD.decode(key.sign(b"header.payload").unwrap()).unwrap();
        assert!(key.verify(b"header.payload", &signature), "{algorithm}");
        assert!(!key.verify(b"header.payloaD", &signature), "{algorithm}: another message");
        let mut flipped = signature.clone();
        flipped[0] ^= 1;
        assert!(!key.verify(b"header.payload", &flipped), "{algorithm}: another signature");
        assert!(!key.verify(b"header.payload", &[]), "{algorithm}: no signature");
        // Another key of the same type does not verify it.
        let other = SigningKeys::from_jwks(&set(&[generated(algorithm)])).unwrap();
        if algorithm != KeyAlgorithm::RS256 {
            assert!(!other.signing_key().verify(b"header.payload", &signature), "{algorithm}");
        }
    }
}

#[test]
fn the_first_key_signs_and_every_key_is_found_by_its_kid() {
    let jwks: Vec<Value> = KeyAlgorithm::ALL.iter().map(|algorithm| generated(*algorithm)).collect();
    let keys = SigningKeys::from_jwks(&set(&jwks)).unwrap();
    assert!(keys.is_key_set());
    assert_eq!(keys.signing_key().algorithm(), KeyAlgorithm::EdDSA);
    assert_eq!(keys.keys().len(), 4);
    for jwk in &jwks {
        let kid = jwk["kid"].as_str().unwrap();
        assert_eq!(keys.find(kid).unwrap().kid(), Some(kid));
    }
    assert!(keys.find("no such kid").is_none());
}

#[test]
fn a_secret_key_is_one_hs256_key_without_kid_and_nothing_to_publish() {
    let keys = SigningKeys::from_secret(&SecretKey::new("the secret"));
    assert!(!keys.is_key_set());
    assert_eq!(keys.signing_key().kid(), None);
    assert_eq!(keys.signing_key().algorithm(), KeyAlgorithm::HS256);
    assert!(keys.public_jwks().is_none());
}

#[test]
fn a_key_without_kid_is_known_by_its_rfc_7638_thumbprint() {
    // RFC 7638 §3.1's example.
    let rfc = Jwk {
        n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
        e: Some("AQAB".into()),
        ..Jwk::new(KeyAlgorithm::RS256)
    };
    assert_eq!(rfc.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    for algorithm in KeyAlgorithm::ALL {
        let jwk = generated(algorithm);
        let keys = SigningKeys::from_jwks(&set(&[without(jwk.clone(), &["kid"])])).unwrap();
        assert_eq!(
            keys.signing_key().kid(),
            jwk["kid"].as_str(),
            "{algorithm}: generated kids are thumbprints"
        );
        // jsonwebtoken's own thumbprint of the public key agrees.
        if !algorithm.is_symmetric() {
            let public: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
            let theirs = public.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).unwrap();
            assert_eq!(Some(theirs.as_str()), keys.signing_key().kid(), "{algorithm}");
        }
    }
}

#[test]
fn the_public_set_has_the_asymmetric_keys_public_members_only() {
    let jwks: Vec<Value> =
        [KeyAlgorithm::HS256, KeyAlgorithm::EdDSA, KeyAlgorithm::ES256, KeyAlgorithm::RS256]
            .iter()
            .map(|algorithm| generated(*algorithm))
            .collect();
    let keys = SigningKeys::from_jwks(&set(&jwks)).unwrap();
    let public: Value = serde_json::from_slice(keys.public_jwks().unwrap()).unwrap();
    let published = public["keys"].as_array().unwrap();
    assert_eq!(published.len(), 3, "no oct key: {public}");
    for (key, jwk) in published.iter().zip(&jwks[1..]) {
        let members: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
        for member in &members {
            assert!(
                ["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"].contains(member),
                "{member} in {key}"
            );
        }
        assert_eq!((&key["kid"], &key["alg"], &key["use"]), (&jwk["kid"], &jwk["alg"], &json!("sig")));
        assert_eq!(key, &without(jwk.clone(), &["d", "p", "q", "dp", "dq", "qi"]));
    }
    let rendered = String::from_utf8(keys.public_jwks().unwrap().to_vec()).unwrap();
    for secret in jwks.iter().flat_map(secrets) {
        assert!(!rendered.contains(&secret));
    }
    let only_oct = SigningKeys::from_jwks(&set(&[generated(KeyAlgorithm::HS256)])).unwrap();
    assert_eq!(only_oct.public_jwks().unwrap().as_ref(), br#"{"keys":[]}"#);
}

#[test]
fn debug_output_never_shows_key_material() {
    let jwks: Vec<Value> = KeyAlgorithm::ALL.iter().map(|algorithm| generated(*algorithm)).collect();
    let keys = SigningKeys::from_jwks(&set(&jwks)).unwrap();
    let debug = format!("{keys:?}");
    assert!(debug.contains("<redacted>") && debug.contains(jwks[0]["kid"].as_str().unwrap()), "{debug}");
    for secret in jwks.iter().flat_map(secrets) {
        assert!(!debug.contains(&secret), "{debug}");
    }
}

#[test]
fn rsa_primes_may_be_left_out_and_are_recovered() {
    let jwk = without(generated(KeyAlgorithm::RS256), &["p", "q", "dp", "dq", "qi"]);
    let keys = SigningKeys::from_jwks(&set(&[jwk])).unwrap();
    let signature = URL_SAFE_NO_PAD.decode(keys.signing_key().sign(b"m").unwrap()).unwrap();
    assert!(keys.signing_key().verify(b"m", &signature));
}

#[test]
fn files_that_are_not_key_sets_are_refused_plainly() {
    let refused = |text: &str| SigningKeys::from_jwks(text).unwrap_err().to_string();
    assert_eq!(refused(""), "not a JSON Web Key Set: EOF while parsing a value at line 1 column 0");
    assert!(refused(r#"{"keys": [}"#).starts_with("not a JSON Web Key Set: expected value at line 1"));
    assert_eq!(refused("[]"), r#"not a JSON Web Key Set: expected an object {"keys": [...]}"#);
    assert_eq!(refused(r#"{"keys": {}}"#), r#"not a JSON Web Key Set: "keys" must be an array"#);
    assert_eq!(
        refused(r#"{"kty": "oct", "k": "x"}"#),
        r#"not a JSON Web Key Set: this is one JWK; write it as {"keys": [JWK]}"#
    );
    assert_eq!(refused("{}"), r#"not a JSON Web Key Set: no "keys" member: expected {"keys": [...]}"#);
    assert_eq!(refused(r#"{"keys": []}"#), r#"the key set is empty: "keys" must hold at least one key"#);
    assert_eq!(refused(r#"{"keys": [7]}"#), "keys[0] (no kid): not a JSON object");
    let missing = SigningKeys::from_file(std::path::Path::new("/does/not/exist.json")).unwrap_err();
    assert!(missing.to_string().starts_with("cannot read the file: No such file"), "{missing}");
}

#[test]
fn unsupported_types_curves_and_algorithms_are_refused_with_the_keys_position_and_kid() {
    let ed = generated(KeyAlgorithm::EdDSA);
    let ec = generated(KeyAlgorithm::ES256);
    let oct = generated(KeyAlgorithm::HS256);
    let kid = ed["kid"].as_str().unwrap().to_owned();
    let cases = [
        (
            with(ed.clone(), "kty", json!("OKP2")),
            r#"unsupported kty "OKP2": supported are oct (HS256), OKP (EdDSA), EC (ES256) and RSA (RS256)"#,
        ),
        (without(ed.clone(), &["kty"]), r#""kty" is missing"#),
        (
            with(ed.clone(), "crv", json!("Ed448")),
            r#"unsupported crv "Ed448" for kty OKP: only Ed25519 is supported"#,
        ),
        (
            with(ed.clone(), "crv", json!("X25519")),
            r#"unsupported crv "X25519" for kty OKP: only Ed25519 is supported"#,
        ),
        (
            with(ec.clone(), "crv", json!("P-384")),
            r#"unsupported crv "P-384" for kty EC: only P-256 is supported"#,
        ),
        (
            with(ed.clone(), "alg", json!("ES256")),
            r#"alg "ES256" does not fit kty OKP: OKP keys sign with EdDSA"#,
        ),
        (
            with(ec.clone(), "alg", json!("ES384")),
            r#"alg "ES384" does not fit kty EC: EC keys sign with ES256"#,
        ),
        (
            with(oct.clone(), "alg", json!("HS512")),
            r#"alg "HS512" does not fit kty oct: oct keys sign with HS256"#,
        ),
        (
            with(generated(KeyAlgorithm::RS256), "alg", json!("PS256")),
            r#"alg "PS256" does not fit kty RSA: RSA keys sign with RS256"#,
        ),
        (with(ed.clone(), "use", json!("enc")), r#"use "enc": a signing key must have use "sig" (or none)"#),
    ];
    for (jwk, expected) in cases {
        let kid = jwk["kid"].as_str().unwrap().to_owned();
        let message = refusal(&[oct.clone(), jwk]);
        assert_eq!(message, format!("keys[1] (kid {kid:?}): {expected}"));
    }
    let message = refusal(&[without(with(ed, "kty", json!("oct-ish")), &["kid"])]);
    assert!(message.starts_with("keys[0] (no kid): unsupported kty \"oct-ish\""), "{message}");
    assert!(!message.contains(&kid));
}

#[test]
fn missing_malformed_and_mismatched_members_are_refused() {
    let ed = generated(KeyAlgorithm::EdDSA);
    let ec = generated(KeyAlgorithm::ES256);
    let oct = generated(KeyAlgorithm::HS256);
    let rsa = generated(KeyAlgorithm::RS256);
    let other_ed = generated(KeyAlgorithm::EdDSA);
    let other_ec = generated(KeyAlgorithm::ES256);
    let padded = format!("{}=", ed["d"].as_str().unwrap());
    let cases = [
        (without(ed.clone(), &["d"]), r#"no "d": this is a public key, and the file must hold private keys"#),
        (without(ed.clone(), &["x"]), r#""x" is missing"#),
        (without(ec.clone(), &["y"]), r#""y" is missing"#),
        (without(ec.clone(), &["crv"]), r#""crv" is missing"#),
        (without(oct.clone(), &["k"]), r#""k" is missing"#),
        (without(rsa.clone(), &["n"]), r#""n" is missing"#),
        (without(rsa.clone(), &["e"]), r#""e" is missing"#),
        (
            without(rsa.clone(), &["d"]),
            r#"no "d": this is a public key, and the file must hold private keys"#,
        ),
        (without(rsa.clone(), &["q"]), r#""q" is missing"#),
        (with(ed.clone(), "d", json!(12345)), r#""d" must be a string"#),
        (with(ed.clone(), "d", json!(padded)), r#""d" is not base64url without padding"#),
        (with(ec.clone(), "x", json!("AAAA")), r#""x" must be 32 bytes, not 3"#),
        (with(ed.clone(), "x", other_ed["x"].clone()), r#""x" does not match the private key"#),
        (with(ec.clone(), "y", other_ec["y"].clone()), r#""y" does not match the private key"#),
        (with(rsa.clone(), "dp", rsa["dq"].clone()), r#""dp" does not match the private key"#),
        (with(rsa.clone(), "qi", rsa["dq"].clone()), r#""qi" does not match the private key"#),
        (with(rsa.clone(), "oth", json!([])), r#"multi-prime RSA keys ("oth") are not supported"#),
        (
            with(oct.clone(), "k", json!(URL_SAFE_NO_PAD.encode([7u8; 31]))),
            "an oct key of 31 bytes: HS256 needs at least 32",
        ),
        (
            with(ec.clone(), "d", json!(URL_SAFE_NO_PAD.encode([0u8; 32]))),
            r#"not a valid EC key: "d" is not a P-256 private key (zero, or not below the group order)"#,
        ),
        (with(rsa.clone(), "e", json!("AQAA")), "not a valid RSA key: invalid exponent"),
    ];
    for (jwk, expected) in cases {
        let kid = jwk["kid"].as_str().unwrap().to_owned();
        assert_eq!(refusal(&[jwk]), format!("keys[0] (kid {kid:?}): {expected}"));
    }
    assert_eq!(refusal(&[with(ed.clone(), "kid", json!(7))]), r#"keys[0] (no kid): "kid" must be a string"#);
    for kid in ["", "tab\there", "é", &"k".repeat(257)] {
        let message = refusal(&[with(ed.clone(), "kid", json!(kid))]);
        assert_eq!(message, r#"keys[0] (no kid): "kid" must be 1 to 256 printable ASCII characters"#);
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    let small = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let encode = |value: &rsa::BigUint| json!(URL_SAFE_NO_PAD.encode(value.to_bytes_be()));
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let (n, e, d) = (encode(small.n()), encode(small.e()), encode(small.d()));
    let jwk = json!({"kty": "RSA", "kid": "small", "n": n, "e": e, "d": d});
    assert_eq!(
        refusal(&[jwk]),
        r#"keys[0] (kid "small"): an RSA key of 1024 bits: at least 2048 are required"#
    );
}

#[test]
fn kids_must_be_unique() {
    let ed = generated(KeyAlgorithm::EdDSA);
    let ec = with(generated(KeyAlgorithm::ES256), "kid", json!("2026-01"));
    let oct = with(generated(KeyAlgorithm::HS256), "kid", json!("2026-01"));
    assert_eq!(
        refusal(&[ec, ed.clone(), oct]),
        r#"keys[2] (kid "2026-01"): keys[0] has the same kid; kids must be unique"#
    );
    // The same key twice without kid: the same thumbprint.
    let bare = without(ed, &["kid"]);
    let message = refusal(&[bare.clone(), bare]);
    assert!(
        message.starts_with("keys[1] (kid ")
            && message.ends_with("keys[0] has the same kid; kids must be unique")
    );
}
