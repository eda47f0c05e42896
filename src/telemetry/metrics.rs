//! `Metrics`: the counters, gauges and histograms the server keeps for Prometheus when
//! `METRICS_ADDR` is set, and their text exposition. Every label set is resolved once, at
//! start or at its first use, so recording is an atomic or a short lock, never a lookup by
//! label. No label ever holds a username, an address or a token: only outcomes, routes and
//! kinds from short fixed lists.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// How a password login ended (`auth_logins_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The password was right.
    Success,
    /// Wrong password or unknown user.
    WrongCredentials,
    /// Refused by the throttle (429), before any hashing.
    Throttled,
    /// Refused because the hashing queue was full (503).
    Shed,
    /// Refused because the user store or the shared throttle could not answer (503).
    Unavailable,
}

impl LoginOutcome {
    const ALL: [Self; 5] =
        [Self::Success, Self::WrongCredentials, Self::Throttled, Self::Shed, Self::Unavailable];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::WrongCredentials => "wrong_credentials",
            Self::Throttled => "throttled",
            Self::Shed => "shed",
            Self::Unavailable => "unavailable",
        }
    }
}

/// How a refresh grant ended (`auth_refreshes_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new access token and refresh token were issued.
    Success,
    /// Unknown, expired or revoked token, or a user who can no longer have tokens.
    Invalid,
    /// A token already exchanged was presented again: its family ended.
    Reused,
    /// Refused by the throttle (429).
    Throttled,
    /// The store could not answer (503).
    Unavailable,
}

impl RefreshOutcome {
    const ALL: [Self; 5] = [Self::Success, Self::Invalid, Self::Reused, Self::Throttled, Self::Unavailable];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Invalid => "invalid",
            Self::Reused => "reused",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What a call to `/revoke` found (`auth_revocations_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationOutcome {
    /// A refresh token: its family ended.
    RefreshToken,
    /// An access token: refused everywhere until it expires.
    AccessToken,
    /// Neither kind we know (answered 200 all the same, RFC 7009 §2.2).
    Unknown,
    /// The store could not answer (503).
    Unavailable,
}

impl RevocationOutcome {
    const ALL: [Self; 4] = [Self::RefreshToken, Self::AccessToken, Self::Unknown, Self::Unavailable];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "refresh_token",
            Self::AccessToken => "access_token",
            Self::Unknown => "unknown",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What a hashing thread computed (`auth_password_hash_duration_seconds{operation}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashOperation {
    /// A password checked against a stored hash (a login).
    Verify,
    /// A new argon2id hash (the upgrade of a legacy one).
    Hash,
}

/// The throttle's three keys (`auth_throttle_lockouts_total{key}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKey {
    /// One username from one client address.
    UserIp,
    /// One username from every address.
    User,
    /// One client address over every username.
    Ip,
}

impl ThrottleKey {
    const ALL: [Self; 3] = [Self::UserIp, Self::User, Self::Ip];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserIp => "user_ip",
            Self::User => "user",
            Self::Ip => "ip",
        }
    }
}

/// The connections of the database pool, sampled when metrics are scraped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections running a statement or held by a transaction.
    pub used: u64,
    /// Open connections waiting for work.
    pub idle: u64,
    /// The most the pool opens (`DATABASE_MAX_CONNECTIONS`).
    pub max: u64,
}

/// A request's labels, as OpenTelemetry's HTTP semantic conventions name them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    http_request_method: &'static str,
    http_route: &'static str,
    http_response_status_code: u16,
}

/// The methods given their own label value; any other is `_OTHER`, as OpenTelemetry asks, so
/// a client cannot make up series.
const METHODS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "_OTHER"];

/// The statuses this server answers, each with a slot resolved at first use; any other code
/// (a valid one, so at most 500 of them) goes through the family's lookup.
const STATUSES: [u16; 18] =
    [200, 204, 301, 302, 307, 308, 400, 401, 403, 404, 405, 408, 413, 415, 422, 429, 500, 503];

/// Request durations: OpenTelemetry's recommended boundaries, with finer ones below 5 ms,
/// where the routes that answer from memory live.
const REQUEST_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// Hashing and its queue: a tutorial argon2id check takes 45-70 ms, a bcrypt cost 12 250 ms.
const HASH_BUCKETS: [f64; 14] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One label, both parts known at compile time.
type Label = [(&'static str, &'static str); 1];

/// Histograms made with their buckets.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics handle the parts of the server record into. Cheap to clone; the default
/// (`Metrics::off()`) records nothing, at the cost of one branch.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Kept>>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Metrics(on)" } else { "Metrics(off)" })
    }
}

struct Kept {
    registry: Registry,
    requests: Histograms<RequestLabels>,
    /// Resolved series by (route, method, status slot), made at first use.
    request_slots: Box<[OnceLock<Histogram>]>,
    routes: &'static [&'static str],
    logins: Vec<Counter>,
    refreshes: Vec<Counter>,
    revocations: Vec<Counter>,
    hash_durations: [Histogram; 2],
    queue_wait: Histogram,
    queue_depth: Gauge,
    upgraded: Counter,
    lockouts: Vec<Counter>,
    throttle_entries: [Gauge; 2],
    db_connections: Family<Label, Gauge>,
    db_max: Family<[(&'static str, &'static str); 0], Gauge>,
    /// used, idle and max, resolved at the first sample: a server without a database shows none.
    db_pool: OnceLock<[Gauge; 3]>,
    db_errors: [Counter; 2],
}

impl Metrics {
    /// A handle that records nothing (no `METRICS_ADDR`).
    pub fn off() -> Self {
        Self(None)
    }

    /// A handle with every metric registered. `routes` are the router's path templates, the
    /// last being the label for requests that match none (`other`); `observe_request` takes
    /// an index into them.
    pub fn new(routes: &'static [&'static str]) -> Self {
        let mut registry = Registry::default();
        let requests: Histograms<RequestLabels> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP server requests (OpenTelemetry http.server.request.duration)",
            Unit::Seconds,
            requests.clone(),
        );
        let slots = routes.len() * METHODS.len() * STATUSES.len();
        let logins = labelled_counters(
            &mut registry,
            "auth_logins",
            "Password logins by outcome",
            "outcome",
            LoginOutcome::ALL.map(LoginOutcome::as_str),
        );
        let refreshes = labelled_counters(
            &mut registry,
            "auth_refreshes",
            "Refresh grants by outcome",
            "outcome",
            RefreshOutcome::ALL.map(RefreshOutcome::as_str),
        );
        let revocations = labelled_counters(
            &mut registry,
            "auth_revocations",
            "Calls to /revoke by what the token was",
            "outcome",
            RevocationOutcome::ALL.map(RevocationOutcome::as_str),
        );
        let hashing: Histograms<Label> = Family::new_with_constructor(|| Histogram::new(HASH_BUCKETS));
        registry.register_with_unit(
            "auth_password_hash_duration",
            "Time a hashing thread spent on one password (verify: a login; hash: an upgrade)",
            Unit::Seconds,
            hashing.clone(),
        );
        let hash_durations = [
            hashing.get_or_create_owned(&[("operation", "verify")]),
            hashing.get_or_create_owned(&[("operation", "hash")]),
        ];
        let queue_wait = Histogram::new(HASH_BUCKETS);
        registry.register_with_unit(
            "auth_password_hash_queue_wait",
            "Time a password waited in the queue for a hashing thread",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "auth_password_hash_queue_depth",
            "Passwords waiting for a hashing thread now",
            queue_depth.clone(),
        );
        let upgraded = Counter::default();
        registry.register(
            "auth_legacy_hashes_upgraded",
            "Legacy password hashes (bcrypt, PBKDF2, other argon2 parameters) replaced by argon2id",
            upgraded.clone(),
        );
        let lockouts = labelled_counters(
            &mut registry,
            "auth_throttle_lockouts",
            "Lockouts started or lengthened by a failed attempt, by throttle key",
            "key",
            ThrottleKey::ALL.map(ThrottleKey::as_str),
        );
        let entries: Family<Label, Gauge> = Family::default();
        registry.register(
            "auth_throttle_entries",
            "Entries in the in-process throttle tables (counters: keys with failures or attempts in flight; known: username and address pairs that logged in)",
            entries.clone(),
        );
        let throttle_entries = [
            entries.get_or_create_owned(&[("table", "counters")]),
            entries.get_or_create_owned(&[("table", "known")]),
        ];
        let db_connections: Family<Label, Gauge> = Family::default();
        registry.register(
            "db_client_connection_count",
            "Database pool connections by state (OpenTelemetry db.client.connection.count)",
            db_connections.clone(),
        );
        let db_max: Family<[(&'static str, &'static str); 0], Gauge> = Family::default();
        registry.register(
            "db_client_connection_max",
            "The most connections the database pool opens (OpenTelemetry db.client.connection.max)",
            db_max.clone(),
        );
        let errors: Family<Label, Counter> = Family::default();
        registry.register(
            "db_client_errors",
            "Database operations that failed (unavailable: refused or timed out; failed: any other error)",
            errors.clone(),
        );
        let db_errors = [
            errors.get_or_create_owned(&[("error_type", "unavailable")]),
            errors.get_or_create_owned(&[("error_type", "failed")]),
        ];
        Self(Some(Arc::new(Kept {
            registry,
            requests,
            request_slots: (0..slots).map(|_| OnceLock::new()).collect(),
            routes,
            logins,
            refreshes,
            revocations,
            hash_durations,
            queue_wait,
            queue_depth,
            upgraded,
            lockouts,
            throttle_entries,
            db_connections,
            db_max,
            db_pool: OnceLock::new(),
            db_errors,
        })))
    }

    /// True when metrics are kept.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Records one request: `route` indexes the templates given to `new`, `method` is the
    /// request's, `status` the answer's.
    pub fn observe_request(&self, route: usize, method: &str, status: u16, duration: Duration) {
        let Some(kept) = &self.0 else { return };
        let route = route.min(kept.routes.len() - 1);
        let method = METHODS.iter().position(|known| *known == method).unwrap_or(METHODS.len() - 1);
        let labels = || RequestLabels {
            http_request_method: METHODS[method],
            http_route: kept.routes[route],
            http_response_status_code: status,
        };
        let seconds = duration.as_secs_f64();
        match STATUSES.iter().position(|known| *known == status) {
            Some(slot) => {
                let index = (route * METHODS.len() + method) * STATUSES.len() + slot;
                kept.request_slots[index]
                    .get_or_init(|| kept.requests.get_or_create_owned(&labels()))
                    .observe(seconds);
            }
            None if (100..=599).contains(&status) => kept.requests.get_or_create(&labels()).observe(seconds),
            None => {}
        }
    }

    /// Counts a password login.
    pub fn login(&self, outcome: LoginOutcome) {
        if let Some(kept) = &self.0 {
            kept.logins[outcome as usize].inc();
        }
    }

    /// Counts a refresh grant.
    pub fn refresh(&self, outcome: RefreshOutcome) {
        if let Some(kept) = &self.0 {
            kept.refreshes[outcome as usize].inc();
        }
    }

    /// Counts a call to `/revoke`.
    pub fn revocation(&self, outcome: RevocationOutcome) {
        if let Some(kept) = &self.0 {
            kept.revocations[outcome as usize].inc();
        }
    }

    /// Records how long a password waited for a hashing thread, then took on it.
    pub fn hashed(&self, operation: HashOperation, waited: Duration, took: Duration) {
        if let Some(kept) = &self.0 {
            kept.queue_wait.observe(waited.as_secs_f64());
            kept.hash_durations[operation as usize].observe(took.as_secs_f64());
        }
    }

    /// One more (`+1`) or one fewer (`-1`) password waiting for a hashing thread.
    pub fn queue_depth_add(&self, change: i64) {
        if let Some(kept) = &self.0 {
            kept.queue_depth.inc_by(change);
        }
    }

    /// Counts a legacy hash replaced by argon2id.
    pub fn legacy_hash_upgraded(&self) {
        if let Some(kept) = &self.0 {
            kept.upgraded.inc();
        }
    }

    /// Counts a lockout started or lengthened under `key`.
    pub fn lockout(&self, key: ThrottleKey) {
        if let Some(kept) = &self.0 {
            kept.lockouts[key as usize].inc();
        }
    }

    /// The sizes of the in-process throttle tables.
    pub fn throttle_entries(&self, counters: usize, known: usize) {
        if let Some(kept) = &self.0 {
            kept.throttle_entries[0].set(i64::try_from(counters).unwrap_or(i64::MAX));
            kept.throttle_entries[1].set(i64::try_from(known).unwrap_or(i64::MAX));
        }
    }

    /// The database pool as it is now.
    pub fn database_pool(&self, stats: PoolStats) {
        if let Some(kept) = &self.0 {
            let [used, idle, max] = kept.db_pool.get_or_init(|| {
                let state =
                    |state| kept.db_connections.get_or_create_owned(&[("db_client_connection_state", state)]);
                [state("used"), state("idle"), kept.db_max.get_or_create_owned(&[])]
            });
            let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
            used.set(gauge(stats.used));
            idle.set(gauge(stats.idle));
            max.set(gauge(stats.max));
        }
    }

    /// Counts a failed database operation: `unavailable` when the database could not be
    /// reached in time, otherwise any other failure.
    pub fn database_error(&self, unavailable: bool) {
        if let Some(kept) = &self.0 {
            kept.db_errors[usize::from(!unavailable)].inc();
        }
    }

    /// Every metric in the Prometheus text format (version 0.0.4); empty when off.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Some(kept) = &self.0 {
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &kept.registry);
        }
        text
    }
}

/// The `Content-Type` of `Metrics::encode`'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A counter family with one label, every value resolved now, in the order given.
fn labelled_counters<const N: usize>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: [&'static str; N],
) -> Vec<Counter> {
    let family: Family<Label, Counter> = Family::default();
    registry.register(name, help, family.clone());
    values.iter().map(|value| family.get_or_create_owned(&[(label, *value)])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[&str] = &["/token", "/users/me/", "other"];

    #[test]
    fn off_records_nothing_and_encodes_nothing() {
        let metrics = Metrics::off();
        metrics.login(LoginOutcome::Success);
        metrics.observe_request(0, "GET", 200, Duration::from_millis(1));
        assert_eq!(metrics.encode(), "");
    }

    #[test]
    fn outcomes_are_counted_under_their_label_and_counters_end_in_total_once() {
        let metrics = Metrics::new(ROUTES);
        metrics.login(LoginOutcome::WrongCredentials);
        metrics.login(LoginOutcome::WrongCredentials);
        metrics.refresh(RefreshOutcome::Reused);
        metrics.lockout(ThrottleKey::User);
        let text = metrics.encode();
        assert!(text.contains("auth_logins_total{outcome=\"wrong_credentials\"} 2\n"), "{text}");
        assert!(text.contains("auth_logins_total{outcome=\"success\"} 0\n"), "{text}");
        assert!(text.contains("auth_refreshes_total{outcome=\"reused\"} 1\n"), "{text}");
        assert!(text.contains("auth_throttle_lockouts_total{key=\"user\"} 1\n"), "{text}");
        assert!(!text.contains("_total_total"), "{text}");
    }

    #[test]
    fn the_pool_appears_at_its_first_sample() {
        let metrics = Metrics::new(ROUTES);
        assert!(!metrics.encode().contains("db_client_connection_max "));
        metrics.database_pool(PoolStats { used: 1, idle: 2, max: 8 });
        let text = metrics.encode();
        assert!(text.contains("db_client_connection_max 8\n"), "{text}");
        assert!(
            text.contains("db_client_connection_count{db_client_connection_state=\"used\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn requests_are_labelled_by_route_template_method_and_status_and_bounded() {
        let metrics = Metrics::new(ROUTES);
        metrics.observe_request(1, "GET", 200, Duration::from_micros(80));
        metrics.observe_request(1, "GET", 200, Duration::from_micros(90));
        metrics.observe_request(2, "BREW", 418, Duration::from_micros(10));
        metrics.observe_request(9, "GET", 404, Duration::from_micros(10));
        let text = metrics.encode();
        let me = r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/users/me/",http_response_status_code="200"} 2"#;
        assert!(text.contains(me), "{text}");
        let other = r#"http_server_request_duration_seconds_count{http_request_method="_OTHER",http_route="other",http_response_status_code="418"} 1"#;
        assert!(text.contains(other), "{text}");
        let clamped = r#"{http_request_method="GET",http_route="other",http_response_status_code="404"} 1"#;
        assert!(text.contains(clamped), "{text}");
        assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"), "{text}");
    }
}
