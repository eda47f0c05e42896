//! The transport: the accept loop with its connection and time limits, graceful shutdown, and
//! the framing checks hyper cannot do. It serves any `server::Handler`; `api::App` is ours.

/// Spotting requests with both `Content-Length` and `Transfer-Encoding`; the header-read
/// timeout.
pub mod framing;
/// The header-read timeout: one timer per connection.
pub mod head_deadline;
/// The accept loop, connection limits and graceful shutdown.
pub mod server;
