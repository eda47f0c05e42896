//! `Config`: everything the server reads from its environment, as a plain value tests build directly.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::api::client_ip::TrustedProxies;
use crate::api::error::ErrorStyle;
use crate::auth::hash_pool::HashingConfig;
use crate::auth::keys::{SecretKey, SigningKeys};
use crate::auth::refresh::RefreshConfig;
use crate::auth::scopes::ScopesConfig;
use crate::auth::throttle::ThrottleConfig;
use crate::http::server::Limits;
use crate::store::{DatabaseUrl, StoreOptions};
use crate::telemetry::logging::LogFormat;

/// The server's settings. `Config::from_env` reads them; tests write the struct out.
#[derive(Debug, Clone)]
pub struct Config {
    /// HS256 key: the bytes of `SECRET_KEY` as given. Not used when `jwt_keys` is set.
    pub secret_key: SecretKey,
    /// The key set of `JWT_KEYS_FILE`, read at start: its first key signs, every key verifies,
    /// tokens carry a `kid`. `None`: tokens are HS256 with `secret_key`, without `kid`.
    pub jwt_keys: Option<SigningKeys>,
    /// Token lifetime (`ACCESS_TOKEN_EXPIRE_MINUTES`, 30 minutes by default).
    pub access_token_lifetime: Duration,
    /// Where to listen (`BIND_ADDR`, 127.0.0.1:8000 by default).
    pub bind_addr: SocketAddr,
    /// A JSON user table replacing the embedded seed (`USERS_FILE`).
    pub users_file: Option<PathBuf>,
    /// Where users are kept (`DATABASE_URL`): unset, in memory (the seed or `USERS_FILE`).
    pub database_url: Option<DatabaseUrl>,
    /// How the server follows the database.
    pub store: StoreOptions,
    /// How many argon2 computations run at once and how many may wait.
    pub hashing: HashingConfig,
    /// Brute-force throttling of failed logins.
    pub throttle: ThrottleConfig,
    /// Peers whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`); empty by default.
    pub trusted_proxies: TrustedProxies,
    /// Connection, timeout and size limits.
    pub limits: Limits,
    /// Refresh tokens (`REFRESH_TOKEN_EXPIRE_DAYS`, `REFRESH_TOKEN_IDLE_DAYS`); `None`: off, as
    /// in the tutorial.
    pub refresh_tokens: Option<RefreshConfig>,
    /// The shape of `/token`'s errors (`TOKEN_ERRORS`): FastAPI's by default, or RFC 6749's.
    pub token_errors: ErrorStyle,
    /// OAuth2 scopes (`SCOPES`, a JSON object of name to description); `None`: off, as in the
    /// tutorial.
    pub scopes: Option<ScopesConfig>,
    /// Where `GET /metrics` is served (`METRICS_ADDR`), on a listener of its own; `None`: no
    /// metrics are kept.
    pub metrics_addr: Option<SocketAddr>,
    /// How log lines are written (`LOG_FORMAT`): readable text by default, or JSON.
    pub log_format: LogFormat,
}

/// Why the environment could not be turned into a `Config`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable is set to something we cannot use.
    #[error("invalid {name}={value:?}: expected {expected}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// What it was set to.
        value: String,
        /// What it should look like.
        expected: String,
    },
    /// A file named by a variable cannot be used.
    #[error("{name} {path}: {problem}")]
    File {
        /// The variable's name.
        name: &'static str,
        /// The file, as given.
        path: String,
        /// What is wrong (never the file's content).
        problem: String,
    },
    /// The OS random number generator failed.
    #[error("the operating system's random number generator is unavailable")]
    NoRandomness,
}

impl Config {
    /// Reads the process environment (after `.env`, which `main` loads).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a config from any variable lookup, so it can be tested without touching the
    /// process environment. Unset and empty variables take their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        // Like every variable, an empty SECRET_KEY counts as unset (so a copied .env.example
        // works); the start-up warning then says loudly that the key is random.
        let secret_key = match lookup("SECRET_KEY").filter(|key| !key.is_empty()) {
            Some(key) => SecretKey::new(key),
            None => SecretKey::random().ok_or(ConfigError::NoRandomness)?,
        };
        let minutes: u64 = env.parse_in("ACCESS_TOKEN_EXPIRE_MINUTES", 30, 1..=525_600)?;
        Ok(Self {
            secret_key,
            jwt_keys: jwt_keys(&env)?,
            access_token_lifetime: Duration::from_secs(minutes * 60),
            bind_addr: env.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            users_file: env.get("USERS_FILE").map(PathBuf::from),
            database_url: env.parse_optional("DATABASE_URL")?,
            store: store(&env)?,
            hashing: hashing(&env)?,
            throttle: throttle(&env)?,
            trusted_proxies: env.parse("TRUSTED_PROXIES", TrustedProxies::default())?,
            limits: limits(&env)?,
            refresh_tokens: refresh_tokens(&env)?,
            token_errors: env.parse("TOKEN_ERRORS", ErrorStyle::FastApi)?,
            scopes: env.parse_optional("SCOPES")?,
            metrics_addr: env.parse_some("METRICS_ADDR")?,
            log_format: env.parse("LOG_FORMAT", LogFormat::Text)?,
        })
    }
}

/// `JWT_KEYS_FILE`, read now, so that a bad file stops the server before it serves.
fn jwt_keys(env: &Env) -> Result<Option<SigningKeys>, ConfigError> {
    let Some(path) = env.get("JWT_KEYS_FILE") else { return Ok(None) };
    SigningKeys::from_file(std::path::Path::new(&path)).map(Some).map_err(|error| ConfigError::File {
        name: "JWT_KEYS_FILE",
        path,
        problem: error.to_string(),
    })
}

/// `REFRESH_TOKEN_EXPIRE_DAYS` (turns refresh tokens on) and `REFRESH_TOKEN_IDLE_DAYS`.
fn refresh_tokens(env: &Env) -> Result<Option<RefreshConfig>, ConfigError> {
    let lifetime = env.days("REFRESH_TOKEN_EXPIRE_DAYS")?;
    let idle = env.days("REFRESH_TOKEN_IDLE_DAYS")?;
    match (lifetime, idle) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ConfigError::Invalid {
            name: "REFRESH_TOKEN_IDLE_DAYS",
            value: env.get("REFRESH_TOKEN_IDLE_DAYS").unwrap_or_default(),
            expected: "REFRESH_TOKEN_EXPIRE_DAYS to be set too (it turns refresh tokens on)".into(),
        }),
        (Some(lifetime), idle) => {
            let idle = idle.unwrap_or(lifetime / 2);
            if idle > lifetime {
                return Err(ConfigError::Invalid {
                    name: "REFRESH_TOKEN_IDLE_DAYS",
                    value: env.get("REFRESH_TOKEN_IDLE_DAYS").unwrap_or_default(),
                    expected: "at most REFRESH_TOKEN_EXPIRE_DAYS".into(),
                });
            }
            Ok(Some(RefreshConfig { lifetime, idle }))
        }
    }
}

/// `HASH_WORKERS` and `HASH_QUEUE`.
fn hashing(env: &Env) -> Result<HashingConfig, ConfigError> {
    let d = HashingConfig::default();
    Ok(HashingConfig {
        workers: env.parse_in("HASH_WORKERS", d.workers, 1..=64)?,
        queue: env.parse_in("HASH_QUEUE", d.queue, 1..=10_000)?,
        ..d
    })
}

/// The `LOGIN_*` variables.
fn throttle(env: &Env) -> Result<ThrottleConfig, ConfigError> {
    let d = ThrottleConfig::default();
    Ok(ThrottleConfig {
        enabled: env.switch("LOGIN_THROTTLE", d.enabled)?,
        max_failures: env.parse_in("LOGIN_MAX_FAILURES", d.max_failures, 1..=1000)?,
        user_max_failures: env.parse_in("LOGIN_USER_MAX_FAILURES", d.user_max_failures, 1..=100_000)?,
        ip_max_failures: env.parse_in("LOGIN_IP_MAX_FAILURES", d.ip_max_failures, 1..=100_000)?,
        window: env.seconds("LOGIN_FAILURE_WINDOW_SECS", d.window.as_secs(), 1..=86_400)?,
        lockout: env.seconds("LOGIN_LOCKOUT_SECS", d.lockout.as_secs(), 1..=86_400)?,
        max_lockout: env.seconds("LOGIN_LOCKOUT_MAX_SECS", d.max_lockout.as_secs(), 1..=86_400)?,
        max_entries: env.parse_in("LOGIN_THROTTLE_MAX_ENTRIES", d.max_entries, 100..=10_000_000)?,
    })
}

/// The `DATABASE_*` variables besides the URL.
fn store(env: &Env) -> Result<StoreOptions, ConfigError> {
    let d = StoreOptions::default();
    let millis = |name, default: std::time::Duration, range| {
        env.parse_in(name, u64::try_from(default.as_millis()).unwrap_or(u64::MAX), range)
            .map(Duration::from_millis)
    };
    Ok(StoreOptions {
        poll_interval: millis("DATABASE_POLL_MS", d.poll_interval, 10..=60_000)?,
        max_staleness: millis("DATABASE_STALE_MS", d.max_staleness, 100..=3_600_000)?,
        max_connections: env.parse_in("DATABASE_MAX_CONNECTIONS", d.max_connections, 1..=1000)?,
        timeout: env.seconds("DATABASE_TIMEOUT_SECS", d.timeout.as_secs(), 1..=300)?,
    })
}

/// The timeout and connection variables.
fn limits(env: &Env) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    Ok(Limits {
        header_read_timeout: env.seconds(
            "HEADER_READ_TIMEOUT_SECS",
            d.header_read_timeout.as_secs(),
            1..=300,
        )?,
        body_timeout: env.seconds("BODY_READ_TIMEOUT_SECS", d.body_timeout.as_secs(), 1..=300)?,
        request_timeout: env.seconds("REQUEST_TIMEOUT_SECS", d.request_timeout.as_secs(), 1..=600)?,
        max_connections: env.parse_in("MAX_CONNECTIONS", d.max_connections, 1..=1_000_000)?,
        shutdown_drain: env.seconds("SHUTDOWN_DRAIN_SECS", d.shutdown_drain.as_secs(), 0..=300)?,
        ..d
    })
}

/// Typed access to the environment: unset and empty variables take their defaults, and a bad
/// value is an error naming the variable.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The variable's value, treating an empty value as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    /// Parses the variable with `FromStr`, or returns `default` when it is unset.
    fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|error: T::Err| ConfigError::Invalid {
                name,
                expected: error.to_string(),
                value,
            }),
        }
    }

    /// Parses the variable with `FromStr` when it is set.
    fn parse_some<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value.trim().parse().map(Some).map_err(|error: T::Err| ConfigError::Invalid {
                name,
                expected: error.to_string(),
                value,
            }),
        }
    }

    /// Parses the variable with `FromStr` when it is set. The value is not repeated in the
    /// error: it may hold a password.
    fn parse_optional<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.get(name)
            .map(|value| {
                value.trim().parse().map_err(|error: T::Err| ConfigError::Invalid {
                    name,
                    value: "<hidden>".into(),
                    expected: error.to_string(),
                })
            })
            .transpose()
    }

    /// A positive number of days (decimals allowed, at most ten years), when set.
    fn days(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.get(name) else { return Ok(None) };
        match value.trim().parse::<f64>() {
            Ok(days) if days > 0.0 && days <= 3650.0 => Ok(Some(Duration::from_secs_f64(days * 86_400.0))),
            _ => Err(ConfigError::Invalid {
                name,
                value,
                expected: "a positive number of days, at most 3650".into(),
            }),
        }
    }

    /// Parses a whole number that must lie in `range`.
    fn parse_in<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let invalid = |value: String| ConfigError::Invalid {
            name,
            value,
            expected: format!("a whole number from {} to {}", range.start(), range.end()),
        };
        match self.get(name) {
            None => Ok(default),
            Some(value) => match value.trim().parse::<T>() {
                Ok(number) if range.contains(&number) => Ok(number),
                _ => Err(invalid(value)),
            },
        }
    }

    /// Parses `on`/`off` (also `true`/`false`, `1`/`0`, `yes`/`no`).
    fn switch(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|value| value.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(value) => match value.as_str() {
                "on" | "true" | "1" | "yes" => Ok(true),
                "off" | "false" | "0" | "no" => Ok(false),
                _ => Err(ConfigError::Invalid { name, value, expected: "on or off".into() }),
            },
        }
    }

    /// A duration given in whole seconds within `range`.
    fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.parse_in(name, default, range).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_tutorial() {
        let config = config(&[]).unwrap();
        assert_eq!(config.access_token_lifetime, Duration::from_secs(30 * 60));
        assert_eq!(config.bind_addr.to_string(), "127.0.0.1:8000");
        assert!(config.secret_key.is_generated());
        assert_eq!(config.secret_key.as_bytes().len(), 64);
        assert!(config.throttle.enabled);
        assert!(config.users_file.is_none());
    }

    #[test]
    fn two_generated_keys_differ() {
        let (a, b) = (SecretKey::random().unwrap(), SecretKey::random().unwrap());
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn the_secret_key_is_used_as_given_and_never_printed() {
        let config = config(&[("SECRET_KEY", "s3cr3t-value")]).unwrap();
        assert_eq!(config.secret_key.as_bytes(), b"s3cr3t-value");
        assert!(!config.secret_key.is_generated());
        assert!(!format!("{config:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn a_lifetime_that_is_not_a_number_is_refused_with_its_name() {
        let error = config(&[("ACCESS_TOKEN_EXPIRE_MINUTES", "abc")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("ACCESS_TOKEN_EXPIRE_MINUTES"), "{message}");
        assert!(message.contains("\"abc\""), "{message}");
        let zero = config(&[("ACCESS_TOKEN_EXPIRE_MINUTES", "0")]).unwrap_err();
        assert!(zero.to_string().contains("from 1 to 525600"), "{zero}");
    }

    #[test]
    fn a_bad_bind_address_is_refused() {
        let error = config(&[("BIND_ADDR", "localhost")]).unwrap_err();
        assert!(error.to_string().starts_with("invalid BIND_ADDR=\"localhost\""), "{error}");
    }

    #[test]
    fn an_empty_secret_key_counts_as_unset() {
        assert!(config(&[("SECRET_KEY", "")]).unwrap().secret_key.is_generated());
    }

    #[test]
    fn the_documented_example_env_file_gives_the_defaults() {
        let example: Vec<(&str, &str)> = include_str!("../.env.example")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| line.split_once('=').expect("KEY=value lines"))
            .collect();
        let from_example = config(&example).unwrap();
        let defaults = config(&[]).unwrap();
        assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
        for name in [
            "SECRET_KEY",
            "JWT_KEYS_FILE",
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            "BIND_ADDR",
            "USERS_FILE",
            "DATABASE_URL",
            "DATABASE_POLL_MS",
            "DATABASE_STALE_MS",
            "DATABASE_MAX_CONNECTIONS",
            "DATABASE_TIMEOUT_SECS",
            "REFRESH_TOKEN_EXPIRE_DAYS",
            "REFRESH_TOKEN_IDLE_DAYS",
            "TOKEN_ERRORS",
            "SCOPES",
            "RUST_LOG",
            "LOG_FORMAT",
            "METRICS_ADDR",
            "SHUTDOWN_DRAIN_SECS",
            "LOGIN_THROTTLE",
        ] {
            assert!(example.iter().any(|(key, _)| *key == name), "{name} is documented");
        }
    }

    #[test]
    fn a_key_file_is_read_with_the_config_and_a_bad_one_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("keys.json");
        let jwk: serde_json::Value = serde_json::from_str(
            &crate::auth::keys::generate(crate::auth::keys::KeyAlgorithm::EdDSA).unwrap(),
        )
        .unwrap();
        std::fs::write(&good, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
        let loaded = config(&[("JWT_KEYS_FILE", good.to_str().unwrap()), ("SECRET_KEY", "ignored")]).unwrap();
        let keys = loaded.jwt_keys.as_ref().expect("the key set is loaded");
        assert_eq!(keys.signing_key().kid(), jwk["kid"].as_str());
        assert!(!format!("{loaded:?}").contains(jwk["d"].as_str().unwrap()), "no key material in Debug");

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"keys": []}"#).unwrap();
        let error = config(&[("JWT_KEYS_FILE", bad.to_str().unwrap())]).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                r#"JWT_KEYS_FILE {}: the key set is empty: "keys" must hold at least one key"#,
                bad.display()
            )
        );
        let missing = config(&[("JWT_KEYS_FILE", "/does/not/exist.json")]).unwrap_err().to_string();
        assert!(
            missing.starts_with("JWT_KEYS_FILE /does/not/exist.json: cannot read the file: "),
            "{missing}"
        );
        assert!(config(&[("JWT_KEYS_FILE", "")]).unwrap().jwt_keys.is_none(), "empty is unset");
    }

    #[test]
    fn operations_settings_are_off_by_default_and_checked() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.metrics_addr, None);
        assert_eq!(defaults.log_format, LogFormat::Text);
        assert_eq!(defaults.limits.shutdown_drain, Duration::from_secs(5));
        let set = config(&[
            ("METRICS_ADDR", "127.0.0.1:9100"),
            ("LOG_FORMAT", "JSON"),
            ("SHUTDOWN_DRAIN_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(set.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(set.log_format, LogFormat::Json);
        assert_eq!(set.limits.shutdown_drain, Duration::ZERO);
        let bad = config(&[("METRICS_ADDR", ":9100")]).unwrap_err().to_string();
        assert!(bad.starts_with("invalid METRICS_ADDR=\":9100\""), "{bad}");
        let bad = config(&[("LOG_FORMAT", "yaml")]).unwrap_err().to_string();
        assert_eq!(bad, "invalid LOG_FORMAT=\"yaml\": expected text or json");
        assert!(config(&[("SHUTDOWN_DRAIN_SECS", "301")]).is_err());
    }

    #[test]
    fn throttling_can_be_switched_off_and_garbage_is_refused() {
        assert!(!config(&[("LOGIN_THROTTLE", "off")]).unwrap().throttle.enabled);
        assert!(config(&[("LOGIN_THROTTLE", "maybe")]).is_err());
    }
}
