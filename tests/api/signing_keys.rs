//! Signing keys from `JWT_KEYS_FILE`: tokens name the signing key by `kid`, every key of the set
//! verifies, `/.well-known/jwks.json` publishes what a resource server needs, alg confusion and
//! key hints get 401, keys rotate, `keys generate` makes usable keys, and bad key files stop the
//! server at start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth2_jwt_server::auth::keys::{KeyAlgorithm, SigningKeys, generate};
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::store::UserStore;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, forge, now, test_config};

const BINARY: &str = env!("CARGO_BIN_EXE_oauth2-jwt-server");
const ME: &str =
    r#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#;
const INVALID: &str = "Could not validate credentials";
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// A new private JWK.
fn new_key(algorithm: KeyAlgorithm) -> Value {
    serde_json::from_str(&generate(algorithm).unwrap()).unwrap()
}

fn key_set(keys: &[&Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn kid(jwk: &Value) -> &str {
    jwk["kid"].as_str().unwrap()
}

/// The test config with these keys as `JWT_KEYS_FILE`.
fn config_with(keys: &[&Value]) -> Config {
    Config { jwt_keys: Some(SigningKeys::from_jwks(&key_set(keys)).unwrap()), ..test_config() }
}

async fn spawn_with(keys: &[&Value]) -> TestApp {
    TestApp::spawn_with(config_with(keys), UserStore::seeded()).await
}

/// A token's header, as JSON text.
fn header_text(token: &str) -> String {
    String::from_utf8(URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

/// Valid claims for johndoe.
fn claims() -> Value {
    json!({"sub": "johndoe", "exp": now() + 600})
}

/// A token with this header and claims, signed by `jwk` (a private JWK) whatever the header says.
fn signed_by(jwk: &Value, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let keys = SigningKeys::from_jwks(&key_set(&[jwk])).unwrap();
    format!("{input}.{}", keys.signing_key().sign(input.as_bytes()).unwrap())
}

async fn assert_accepted(app: &TestApp, token: &str) {
    Answer::of(app.get_with_token("/users/me/", token).await).await.assert_json(200, ME);
}

async fn assert_refused(app: &TestApp, token: &str) {
    Answer::of(app.get_with_token("/users/me/", token).await).await.assert_401(INVALID);
}

#[tokio::test]
async fn tokens_are_signed_by_the_first_key_and_name_it() {
    let (ed, ec, rsa, oct) = (
        new_key(KeyAlgorithm::EdDSA),
        new_key(KeyAlgorithm::ES256),
        new_key(KeyAlgorithm::RS256),
        new_key(KeyAlgorithm::HS256),
    );
    let app = spawn_with(&[&ed, &ec, &rsa, &oct]).await;

    let token = app.token_for("johndoe", "secret").await;

    assert_eq!(header_text(&token), format!(r#"{{"alg":"EdDSA","kid":"{}","typ":"JWT"}}"#, kid(&ed)));
    assert_accepted(&app, &token).await;
    Answer::of(app.get_with_token("/users/me/items/", &token).await)
        .await
        .assert_json(200, r#"[{"item_id":"Foo","owner":"johndoe"}]"#);
}

#[tokio::test]
async fn every_key_of_the_set_verifies_the_tokens_it_signed() {
    let (ed, ec, rsa, oct) = (
        new_key(KeyAlgorithm::EdDSA),
        new_key(KeyAlgorithm::ES256),
        new_key(KeyAlgorithm::RS256),
        new_key(KeyAlgorithm::HS256),
    );
    let app = spawn_with(&[&ed, &ec, &rsa, &oct]).await;

    // Another instance with the same set in another order signs with another key.
    for (first, alg) in [(&ec, "ES256"), (&rsa, "RS256"), (&oct, "HS256")] {
        let other = spawn_with(&[first, &ed]).await;
        let token = other.token_for("johndoe", "secret").await;
        assert_eq!(header_text(&token), format!(r#"{{"alg":"{alg}","kid":"{}","typ":"JWT"}}"#, kid(first)));
        assert_accepted(&app, &token).await;
    }
}

#[tokio::test]
async fn an_unknown_kid_a_missing_kid_or_a_strangers_signature_gets_401() {
    let ed = new_key(KeyAlgorithm::EdDSA);
    let stranger = new_key(KeyAlgorithm::EdDSA);
    let app = spawn_with(&[&ed]).await;

    let unknown =
        signed_by(&stranger, &json!({"alg": "EdDSA", "kid": kid(&stranger), "typ": "JWT"}), &claims());
    let named_ours = signed_by(&stranger, &json!({"alg": "EdDSA", "kid": kid(&ed), "typ": "JWT"}), &claims());
    let no_kid = signed_by(&ed, &json!({"alg": "EdDSA", "typ": "JWT"}), &claims());
    let wrong_case = signed_by(&ed, &json!({"alg": "EdDSA", "kid": kid(&ed).to_lowercase()}), &claims());
    for token in [unknown, named_ours, no_kid, wrong_case] {
        assert_refused(&app, &token).await;
    }
    assert_accepted(&app, &signed_by(&ed, &json!({"alg": "EdDSA", "kid": kid(&ed)}), &claims())).await;
}

#[tokio::test]
async fn alg_confusion_never_passes() {
    let (ed, rsa) = (new_key(KeyAlgorithm::EdDSA), new_key(KeyAlgorithm::RS256));
    let app = spawn_with(&[&ed, &rsa]).await;
    let jwks = app.get("/.well-known/jwks.json", None).await.bytes().await.unwrap();
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap());
    let hs256_for = |kid: &str| json!({"alg": "HS256", "kid": kid, "typ": "JWT"});

    let mut refused = Vec::new();
    // HS256 "signed" with what an attacker knows of our public keys.
    for public_bytes in [
        jwks.to_vec(),
        URL_SAFE_NO_PAD.decode(ed["x"].as_str().unwrap()).unwrap(),
        ed["x"].as_str().unwrap().as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap(),
    ] {
        refused.push(forge(&hs256_for(kid(&ed)), &claims(), &public_bytes));
        refused.push(forge(&hs256_for(kid(&rsa)), &claims(), &public_bytes));
    }
    // No signature at all.
    for key in [&ed, &rsa] {
        refused.push(format!("{}.{}.", encode(&json!({"alg": "none", "kid": kid(key)})), encode(&claims())));
    }
    // A real RS256 signature by our own RSA key, labelled with the EdDSA key's kid, and the
    // other way round.
    refused.push(signed_by(&rsa, &json!({"alg": "RS256", "kid": kid(&ed)}), &claims()));
    refused.push(signed_by(&ed, &json!({"alg": "EdDSA", "kid": kid(&rsa)}), &claims()));
    refused.push(signed_by(&rsa, &json!({"alg": "PS256", "kid": kid(&rsa)}), &claims()));

    for token in refused {
        assert_refused(&app, &token).await;
    }
}

#[tokio::test]
async fn keys_offered_by_the_token_are_never_used() {
    let ed = new_key(KeyAlgorithm::EdDSA);
    let attacker = new_key(KeyAlgorithm::EdDSA);
    let app = spawn_with(&[&ed]).await;
    let attacker_public: Value = PRIVATE_MEMBERS.iter().fold(attacker.clone(), |mut jwk, member| {
        jwk.as_object_mut().unwrap().remove(*member);
        jwk
    });

    for kid in [kid(&ed), kid(&attacker)] {
        for hint in [
            json!({"jwk": attacker_public}),
            json!({"jku": "http://127.0.0.1:9/jwks.json"}),
            json!({"x5u": "http://127.0.0.1:9/cert.pem"}),
            json!({"x5c": ["MIIBCgKCAQEA"]}),
        ] {
            let mut header = json!({"alg": "EdDSA", "kid": kid, "typ": "JWT"});
            header.as_object_mut().unwrap().extend(hint.as_object().unwrap().clone());
            assert_refused(&app, &signed_by(&attacker, &header, &claims())).await;
        }
    }
}

#[tokio::test]
async fn without_a_key_file_there_is_no_key_set_and_no_kid() {
    let app = TestApp::spawn().await;

    Answer::of(app.get("/.well-known/jwks.json", None).await)
        .await
        .assert_json(404, r#"{"detail":"Not Found"}"#);
    let token = app.token_for("johndoe", "secret").await;
    assert_eq!(header_text(&token), r#"{"alg":"HS256","typ":"JWT"}"#);
}

#[tokio::test]
async fn the_key_set_route_serves_public_keys_only_with_a_cache_header() {
    let (ed, ec, rsa, oct) = (
        new_key(KeyAlgorithm::EdDSA),
        new_key(KeyAlgorithm::ES256),
        new_key(KeyAlgorithm::RS256),
        new_key(KeyAlgorithm::HS256),
    );
    let app = spawn_with(&[&oct, &ed, &ec, &rsa]).await;

    let answer = Answer::of(app.get("/.well-known/jwks.json", None).await).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    let published = body["keys"].as_array().unwrap();
    let kids: Vec<&str> = published.iter().map(kid).collect();
    assert_eq!(kids, [kid(&ed), kid(&ec), kid(&rsa)], "the asymmetric keys, in order, never the oct key");
    for key in published {
        assert_eq!(key["use"], "sig");
        for member in PRIVATE_MEMBERS {
            assert!(key.get(member).is_none(), "{member} published: {key}");
        }
    }
    for private in [&oct["k"], &ed["d"], &ec["d"], &rsa["d"], &rsa["p"]] {
        assert!(!answer.body.contains(private.as_str().unwrap()));
    }

    let head = app.client.head(format!("{}/.well-known/jwks.json", app.address)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response =
            app.client.request(method, format!("{}/.well-known/jwks.json", app.address)).send().await;
        let answer = Answer::of(response.unwrap()).await;
        answer.assert_json(405, r#"{"detail":"Method Not Allowed"}"#);
        assert_eq!(answer.header("allow"), Some("GET, HEAD"));
    }
}

/// What a resource server that only knows our key set does: fetch it, pick the token's `kid`,
/// and check the token with plain jsonwebtoken.
async fn check_as_a_resource_server(app: &TestApp, token: &str) -> Value {
    let set: jsonwebtoken::jwk::JwkSet =
        app.get("/.well-known/jwks.json", None).await.json().await.expect("a JWK set");
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).expect("the token's key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation).expect("the token checks out").claims
}

#[tokio::test]
async fn a_resource_server_checks_tokens_with_the_published_keys_alone() {
    for algorithm in [KeyAlgorithm::EdDSA, KeyAlgorithm::ES256, KeyAlgorithm::RS256] {
        let (first, other) = (new_key(algorithm), new_key(KeyAlgorithm::EdDSA));
        let app = spawn_with(&[&first, &other]).await;
        let token = app.token_for("johndoe", "secret").await;

        let claims = check_as_a_resource_server(&app, &token).await;

        assert_eq!(claims["sub"], "johndoe", "{algorithm}");
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().alg, algorithm_of(algorithm));
    }
}

fn algorithm_of(algorithm: KeyAlgorithm) -> jsonwebtoken::Algorithm {
    algorithm.name().parse().unwrap()
}

#[tokio::test]
async fn a_key_is_rotated_by_publishing_it_then_putting_it_first_then_retiring_the_old_one() {
    let (old, new) = (new_key(KeyAlgorithm::EdDSA), new_key(KeyAlgorithm::ES256));
    let before = spawn_with(&[&old]).await;
    let old_token = before.token_for("johndoe", "secret").await;

    // 1. Published, not yet signing: old tokens and old-signed new tokens work as before.
    let published = spawn_with(&[&old, &new]).await;
    assert!(header_text(&published.token_for("johndoe", "secret").await).contains(kid(&old)));
    assert_accepted(&published, &old_token).await;

    // 2. First: it signs; tokens of the old key keep working until they expire.
    let rotated = spawn_with(&[&new, &old]).await;
    let new_token = rotated.token_for("johndoe", "secret").await;
    assert!(header_text(&new_token).contains(kid(&new)));
    assert_accepted(&rotated, &old_token).await;
    assert_accepted(&rotated, &new_token).await;
    assert_accepted(&published, &new_token).await;
    // An instance that never saw the new key refuses its tokens: why step 1 comes first.
    assert_refused(&before, &new_token).await;

    // 3. Retired once its tokens have expired: a leftover old token is refused.
    let retired = spawn_with(&[&new]).await;
    assert_accepted(&retired, &new_token).await;
    assert_refused(&retired, &old_token).await;
}

/// The binary with a clean environment plus `vars`, in an empty directory (no .env).
fn run(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let dir = std::env::temp_dir().join(format!("oauth2-jwt-server-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(BINARY);
    command.args(args).env_clear().envs(vars.iter().copied()).current_dir(dir);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn output(args: &[&str], vars: &[(&str, &str)]) -> Output {
    run(args, vars).output().unwrap()
}

#[test]
fn keys_generate_prints_a_private_jwk_that_loads_as_a_key_set() {
    for (alg, kty) in [("EdDSA", "OKP"), ("ES256", "EC"), ("RS256", "RSA"), ("HS256", "oct")] {
        let output = output(&["keys", "generate", "--alg", alg], &[]);
        assert!(output.status.success(), "{alg}: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.starts_with("{\n  \"kty\": "), "pretty JSON: {text}");
        let jwk: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()),
            (Some(kty), Some(alg), Some("sig"))
        );
        let keys = SigningKeys::from_jwks(&format!(r#"{{"keys": [{text}]}}"#)).unwrap();
        assert_eq!(keys.signing_key().kid(), jwk["kid"].as_str());
        assert_eq!(keys.signing_key().algorithm().name(), alg);
        // The kid is the thumbprint: the key without its kid gets the same one.
        let mut bare = jwk.clone();
        bare.as_object_mut().unwrap().remove("kid");
        let again = SigningKeys::from_jwks(&key_set(&[&bare])).unwrap();
        assert_eq!(again.signing_key().kid(), jwk["kid"].as_str());
    }
    let first = output(&["keys", "generate", "--alg", "EdDSA"], &[]).stdout;
    let second = output(&["keys", "generate", "--alg", "EdDSA"], &[]).stdout;
    assert_ne!(first, second, "a new key each time");
}

#[test]
fn keys_generate_refuses_an_unknown_algorithm_as_a_usage_error() {
    for args in [
        &["keys", "generate", "--alg", "HS512"][..],
        &["keys", "generate", "--alg", "eddsa"],
        &["keys", "generate"],
    ] {
        let output = output(args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--alg"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bad_key_file_stops_the_server_with_exit_2_and_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let ed = new_key(KeyAlgorithm::EdDSA);
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let secret = ed["d"].as_str().unwrap();
    let wrong_alg =
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "RS256", "kid": "b", "x": ed["x"], "d": secret});
    let cases = [
        (write("malformed.json", r#"{"keys": [{"kty": "OKP",}]}"#), "not a JSON Web Key Set: "),
        (
            write("empty.json", r#"{"keys": []}"#),
            r#"the key set is empty: "keys" must hold at least one key"#,
        ),
        (write("no-set.json", r#"{"kty": "oct"}"#), "this is one JWK"),
        (
            write(
                "ed448.json",
                &key_set(&[&json!({"kty": "OKP", "crv": "Ed448", "kid": "a", "x": "AA", "d": "AA"})]),
            ),
            r#"keys[0] (kid "a"): unsupported crv "Ed448" for kty OKP"#,
        ),
        (
            write("unknown-kty.json", &key_set(&[&json!({"kty": "EC2", "d": secret})])),
            r#"keys[0] (no kid): unsupported kty "EC2""#,
        ),
        (
            write("mismatch.json", &key_set(&[&wrong_alg])),
            r#"keys[0] (kid "b"): alg "RS256" does not fit kty OKP: OKP keys sign with EdDSA"#,
        ),
        ("/does/not/exist.json".to_owned(), "cannot read the file: No such file or directory"),
    ];
    for (path, expected) in cases {
        let output = output(&[], &[("BIND_ADDR", "127.0.0.1:0"), ("JWT_KEYS_FILE", &path)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{path}: {stderr}");
        assert!(stderr.starts_with(&format!("error: JWT_KEYS_FILE {path}: ")), "{stderr}");
        assert!(stderr.contains(expected), "{path}: {stderr}");
        assert!(!stderr.contains(secret) && !stderr.contains("panicked"), "{stderr}");
    }
}

/// Starts the server, reads its log until it listens, stops it with SIGTERM; returns the log.
fn startup_log(vars: &[(&str, &str)]) -> String {
    let mut vars = vars.to_vec();
    vars.extend([("BIND_ADDR", "127.0.0.1:0"), ("RUST_LOG", "info")]);
    let mut child: Child = run(&[], &vars).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains("docs at") && Instant::now() < deadline {
        if stdout.read_line(&mut log).unwrap() == 0 {
            break;
        }
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success(), "{log}");
    log
}

#[test]
fn the_key_file_replaces_secret_key_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let ed = new_key(KeyAlgorithm::EdDSA);
    let path = dir.path().join("keys.json");
    std::fs::write(&path, key_set(&[&ed])).unwrap();
    let path = path.to_str().unwrap();

    let alone = startup_log(&[("JWT_KEYS_FILE", path)]);
    assert!(alone.contains("signing keys loaded from JWT_KEYS_FILE"), "{alone}");
    assert!(alone.contains(kid(&ed)) && alone.contains("alg=EdDSA"), "{alone}");
    assert!(!alone.contains("SECRET_KEY"), "no word about SECRET_KEY: {alone}");

    let both = startup_log(&[("JWT_KEYS_FILE", path), ("SECRET_KEY", "an-old-secret-key-0123456789abcdef")]);
    assert!(both.contains("SECRET_KEY is ignored"), "{both}");
    assert!(!both.contains("an-old-secret-key"), "{both}");
}
