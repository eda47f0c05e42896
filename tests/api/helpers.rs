//! `TestApp::spawn()`: the real server on a free port, a reqwest client, and small helpers to
//! mint tokens and send raw HTTP.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth2_jwt_server::api::error::ErrorStyle;
use oauth2_jwt_server::api::metrics::MetricsApp;
use oauth2_jwt_server::auth::hash_pool::HashingConfig;
use oauth2_jwt_server::auth::keys::SecretKey;
use oauth2_jwt_server::auth::throttle::ThrottleConfig;
use oauth2_jwt_server::config::Config;
use oauth2_jwt_server::http::server::{Limits, serve};
use oauth2_jwt_server::store::{StoreOptions, UserStore};
use oauth2_jwt_server::telemetry::logging::LogFormat;
use oauth2_jwt_server::{AppState, app};
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The tutorial's key, so tokens minted by the reference app (PyJWT) are valid here.
pub const TUTORIAL_KEY: &str = "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7";

/// Minted by the reference app's PyJWT with the tutorial key: `{"sub":"johndoe","exp":4102444800}`.
pub const PYJWT_JOHNDOE_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqb2huZG9lIiwiZXhwIjo0MTAyNDQ0ODAwfQ.4sh0Q1TUl-n_pM9DffzrC-WTE2hGuun7_RrAC6Ce1Rg";

/// The body FastAPI answers when both username and password are missing.
pub const BOTH_MISSING: &str = r#"{"detail":[{"type":"missing","loc":["body","username"],"msg":"Field required","input":null},{"type":"missing","loc":["body","password"],"msg":"Field required","input":null}]}"#;

/// A running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    /// The bound socket address, for raw TCP tests.
    pub socket: SocketAddr,
    /// A client that never follows redirects.
    pub client: reqwest::Client,
    /// The server's state, to look at its counters.
    pub state: AppState,
    /// `http://127.0.0.1:<port>` of the metrics listener, when the config has `metrics_addr`.
    pub metrics_address: Option<String>,
}

/// The config tests start from: the tutorial's key and lifetime, throttling off.
pub fn test_config() -> Config {
    Config {
        secret_key: SecretKey::new(TUTORIAL_KEY),
        jwt_keys: None,
        access_token_lifetime: Duration::from_secs(30 * 60),
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        users_file: None,
        database_url: None,
        store: StoreOptions::default(),
        hashing: HashingConfig { workers: 2, lane_threads: 2, queue: 64 },
        throttle: ThrottleConfig { enabled: false, ..ThrottleConfig::default() },
        trusted_proxies: Default::default(),
        limits: Limits::default(),
        refresh_tokens: None,
        token_errors: ErrorStyle::FastApi,
        scopes: None,
        metrics_addr: None,
        log_format: LogFormat::Text,
    }
}

impl TestApp {
    /// The server with the embedded users and `test_config()`.
    pub async fn spawn() -> Self {
        Self::spawn_with(test_config(), UserStore::seeded()).await
    }

    /// The server with this config and user table.
    pub async fn spawn_with(config: Config, users: UserStore) -> Self {
        let listener = TcpListener::bind(config.bind_addr).await.expect("bind 127.0.0.1:0");
        let socket = listener.local_addr().unwrap();
        let limits = config.limits;
        let state = AppState::new(&config, users);
        let mut metrics_address = None;
        if let Some(address) = config.metrics_addr {
            let metrics = TcpListener::bind(address).await.expect("bind the metrics listener");
            metrics_address = Some(format!("http://{}", metrics.local_addr().unwrap()));
            tokio::spawn(serve(metrics, MetricsApp(state.clone()), limits, std::future::pending()));
        }
        tokio::spawn(serve(listener, app(state.clone()), limits, std::future::pending()));
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { address: format!("http://{socket}"), socket, client, state, metrics_address }
    }

    /// `GET /metrics` on the metrics listener: the Prometheus text.
    pub async fn scrape(&self) -> String {
        let address = self.metrics_address.as_ref().expect("spawned with metrics_addr");
        let response = self.client.get(format!("{address}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// `POST /token` with a urlencoded form.
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_form(&[("username", username), ("password", password)]).await
    }

    /// `POST /token` with these fields, urlencoded.
    pub async fn post_form(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(format!("{}/token", self.address)).form(fields).send().await.unwrap()
    }

    /// `POST /token` with a raw body and content type.
    pub async fn post_token_body(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/token", self.address)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.unwrap()
    }

    /// Logs in and returns the access token.
    pub async fn token_for(&self, username: &str, password: &str) -> String {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), 200, "login as {username} failed");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET path` with an optional raw `Authorization` header value.
    pub async fn get(&self, path: &str, authorization: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.unwrap()
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.get(path, Some(&format!("Bearer {token}"))).await
    }

    /// After any abuse: a normal login and `GET /users/me/` still work.
    pub async fn assert_still_serves(&self) {
        let token = self.token_for("johndoe", "secret").await;
        let me = self.get_with_token("/users/me/", &token).await;
        assert_eq!(me.status(), 200, "the server still serves a normal login and /users/me/");
    }

    /// Sends raw bytes on a fresh connection and reads until the server closes it or 5 s pass.
    pub async fn raw(&self, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.socket).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
        String::from_utf8_lossy(&response).into_owned()
    }
}

/// Status, the headers we compare, and the body, read together.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// All response headers.
    pub headers: HeaderMap,
    /// The body bytes as text.
    pub body: String,
}

impl Answer {
    /// Reads a response completely.
    pub async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Self { status, headers, body }
    }

    /// The value of a header, if present exactly once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        let first = values.next()?;
        assert!(values.next().is_none(), "header {name} appears more than once");
        Some(first.to_str().unwrap())
    }

    /// Asserts status, content type and exact body bytes.
    pub fn assert_json(&self, status: u16, body: &str) {
        assert_eq!((self.status, self.body.as_str()), (status, body));
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("content-length"), Some(body.len().to_string().as_str()));
    }

    /// Asserts a 401 with this detail and exactly one `WWW-Authenticate: Bearer`.
    pub fn assert_401(&self, detail: &str) {
        self.assert_json(401, &format!(r#"{{"detail":"{detail}"}}"#));
        assert_eq!(self.header("www-authenticate"), Some("Bearer"));
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token with any header and claims, HMAC-SHA256-signed with `key` (whatever `alg` says).
pub fn forge(header: &Value, claims: &Value, key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(key),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

/// A token signed with the tutorial key and a standard HS256 header.
pub fn token_with_claims(claims: &Value) -> String {
    forge(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), claims, TUTORIAL_KEY.as_bytes())
}
