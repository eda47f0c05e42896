//! Serving: the accept loop over hyper's HTTP/1 connection builder, with the limits that
//! `axum::serve` cannot set (a header-read timeout, a cap on open connections), and a graceful
//! shutdown that lets requests in flight finish.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::http::framing::{FramingFlags, FramingWatch};

/// Connection, size and time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body read (`POST /token` only reads one): 16 KiB.
    pub max_body_bytes: usize,
    /// A client must send its whole request head within this (`HEADER_READ_TIMEOUT_SECS`, 5);
    /// it is also how long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// A client must send its whole body within this (`BODY_READ_TIMEOUT_SECS`, 10).
    pub body_timeout: Duration,
    /// Longest time any request may take (`REQUEST_TIMEOUT_SECS`, 30).
    pub request_timeout: Duration,
    /// Most connections open at once; further clients wait in the kernel's backlog
    /// (`MAX_CONNECTIONS`, 1024).
    pub max_connections: usize,
    /// Largest request head (start line and headers): 32 KiB.
    pub max_header_bytes: usize,
    /// After SIGTERM, how long the listener keeps accepting while `/readyz` answers 503, so
    /// that a load balancer stops sending before connections are refused
    /// (`SHUTDOWN_DRAIN_SECS`, 5).
    pub shutdown_drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_header_bytes: 32 * 1024,
            shutdown_drain: Duration::from_secs(5),
        }
    }
}

/// What the server does with each request. `peer` is the client's socket address;
/// `ambiguous_lengths` says the request came with both `Content-Length` and
/// `Transfer-Encoding`, which hyper resolves silently (see `framing`).
pub trait Handler: Clone + Send + 'static {
    /// Answers one request. Each connection has its own clone of the handler: a clone per
    /// request would touch reference counts that every core shares.
    fn handle(
        &mut self,
        request: Request,
        peer: SocketAddr,
        ambiguous_lengths: bool,
    ) -> impl Future<Output = Response> + Send + 'static + use<Self>;
}

/// How long shutdown waits for open connections before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    app: impl Handler,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    // The header-read timeout is `FramingWatch`'s (one timer per connection, not per request).
    builder.header_read_timeout(None).max_buf_size(limits.max_header_bytes.max(8192));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = RefCell::new(app.clone());
        let framing = Arc::new(FramingFlags::default());
        let io = TokioIo::new(FramingWatch::new(
            stream,
            Arc::clone(&framing),
            limits.max_header_bytes,
            limits.header_read_timeout,
        ));
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            // Boxed: hyper moves the future it is given into place, and an answer's future (the
            // router's and every layer's state) is large enough for those copies to show.
            let answer = Box::pin(app.borrow_mut().handle(
                request.map(Body::new),
                peer,
                framing.next_request_is_ambiguous(),
            ));
            let framing = Arc::clone(&framing);
            async move {
                let response = answer.await;
                framing.answered();
                Ok::<_, Infallible>(response)
            }
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            // Errors here are clients misbehaving (timeouts, resets, bad HTTP); hyper has
            // already answered what can be answered.
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("shutdown: some connections were still open after {SHUTDOWN_GRACE:?}");
        }
    }
    Ok(())
}

/// Which signal asked the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C (SIGINT): someone at a terminal, who is not kept waiting.
    Interrupt,
    /// SIGTERM: a service manager or orchestrator, whose load balancer may still send.
    Terminate,
}

/// Resolves when the server should stop accepting connections: at once after Ctrl-C (SIGINT);
/// `drain` after SIGTERM, or sooner at a second signal. `on_signal` runs as soon as either
/// signal arrives (it turns readiness off). The handlers are installed when this is called, so
/// a signal that arrives right after start is not lost.
pub fn shutdown_signal(
    drain: Duration,
    on_signal: impl FnOnce() + Send + 'static,
) -> impl Future<Output = ()> {
    let first = stop_signal();
    async move {
        let stop = first.await;
        on_signal();
        if stop == Stop::Terminate && !drain.is_zero() {
            tracing::info!(
                "SIGTERM: /readyz answers 503; still serving for {drain:?} (SHUTDOWN_DRAIN_SECS) before closing the listener"
            );
            let again = stop_signal();
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                _ = again => tracing::info!("a second signal: closing the listener now"),
            }
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, saying which; the handlers are installed at once.
fn stop_signal() -> impl Future<Output = Stop> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok())
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            () = received(interrupt.as_mut()) => Stop::Interrupt,
            () = received(terminate.as_mut()) => Stop::Terminate,
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Stop::Interrupt
        }
    }
}

#[cfg(unix)]
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => drop(signal.recv().await),
        None => std::future::pending().await,
    }
}
