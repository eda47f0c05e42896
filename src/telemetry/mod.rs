//! What the server tells its operators: Prometheus metrics (`METRICS_ADDR`) and the log's
//! format (`LOG_FORMAT`). The parts record into a plain `Metrics` handle; nothing here knows
//! axum.
//!
//! Audit events are ordinary log events with target `audit` and a stable `event` field
//! (`login.succeeded`, `login.failed`, `login.locked_out`, `token.refreshed`,
//! `token.refresh_failed`, `token.refresh_reused`, `token.revoked`, `user.changed`,
//! `user.tokens_revoked`), written where they happen, with the username, the client's address
//! and the outcome; never a password, hash or token.

/// `LOG_FORMAT`: readable lines or JSON lines.
pub mod logging;
/// Counters, gauges and histograms, and their Prometheus text.
pub mod metrics;

pub use metrics::Metrics;
