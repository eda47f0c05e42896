//! Watches a connection's bytes as hyper reads them: spots requests that carry both
//! `Content-Length` and `Transfer-Encoding`, and cuts off a client that takes longer than the
//! header-read timeout to send a head (`head_deadline`).
//!
//! hyper resolves the framing conflict itself (the body is read as chunked, the length header
//! is dropped and the connection closes afterwards), so the application never sees it. This
//! follows request boundaries by httparse's rules for where a head ends and how long a body
//! is, and records which request on the connection was ambiguous, so that `api::middleware`
//! can answer it 400 (RFC 9112 §6.1: the request-smuggling shape) instead of guessing. Heads
//! are only split into lines here: any head httparse would refuse, hyper refuses and closes
//! the connection, so where this loses track of such a stream does not matter.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::http::head_deadline::HeadDeadline;

/// Shared between a connection's reader and its requests: the 1-based index of the first
/// request whose head had both framing headers (0: none so far), how many requests have been
/// answered, and when the last was.
#[derive(Debug)]
pub struct FramingFlags {
    ambiguous: AtomicU64,
    served: AtomicU64,
    answered: AtomicU64,
    /// When the connection opened.
    opened: Instant,
    /// Nanoseconds after `opened` when the last request was answered (0: none yet).
    last_answered: AtomicU64,
}

impl Default for FramingFlags {
    fn default() -> Self {
        Self {
            ambiguous: AtomicU64::new(0),
            served: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            opened: Instant::now(),
            last_answered: AtomicU64::new(0),
        }
    }
}

impl FramingFlags {
    /// Called once per request, in order: true when this request was the ambiguous one.
    pub fn next_request_is_ambiguous(&self) -> bool {
        let index = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        self.ambiguous.load(Ordering::Relaxed) == index
    }

    /// Called once per request when the application has answered it: with every head seen
    /// answered, the connection waits for the client again, from now.
    pub fn answered(&self) {
        let after = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_answered.store(after, Ordering::Relaxed);
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// When the connection last had nothing to answer: when it opened or when the application
    /// made its last answer.
    fn last_answer_at(&self) -> Instant {
        self.opened + Duration::from_nanos(self.last_answered.load(Ordering::Relaxed))
    }
}

/// A connection's stream, watched as it is read.
pub struct FramingWatch<S> {
    inner: S,
    scanner: Scanner,
    deadline: HeadDeadline,
    /// The last write found the client's window full: an answer is still being sent, and hyper
    /// polls reads meanwhile only to notice a close, so no head is awaited yet.
    sending: bool,
    /// When a write last went through after one had to wait: the wait for the next head
    /// starts no earlier. (Writes that never wait cost nothing here, not even a clock read.)
    sent_at: Option<Instant>,
}

impl<S> FramingWatch<S> {
    /// Wraps `inner`; findings go to `flags`. Heads longer than `max_head` are not followed.
    /// A client that takes longer than `head_timeout` to send a head (counted from when the
    /// connection started waiting for it) gets a `TimedOut` read, which closes the connection.
    pub fn new(inner: S, flags: Arc<FramingFlags>, max_head: usize, head_timeout: Duration) -> Self {
        let scanner = Scanner::new(flags, max_head);
        Self { inner, scanner, deadline: HeadDeadline::new(head_timeout), sending: false, sent_at: None }
    }

    /// Since when the connection has waited for a head, if it has: every head seen answered,
    /// the next not complete, and every answer written.
    fn waiting_since(&self) -> Option<Instant> {
        if self.sending || !self.scanner.waiting_for_head() {
            return None;
        }
        let answered = self.scanner.flags.last_answer_at();
        Some(self.sent_at.map_or(answered, |sent| sent.max(answered)))
    }

    /// Follows whether writes have to wait (see `sending`).
    fn note_write<T>(&mut self, poll: &Poll<T>) {
        if poll.is_pending() {
            self.sending = true;
        } else if self.sending {
            self.sending = false;
            self.sent_at = Some(Instant::now());
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingWatch<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.scanner.feed(&buf.filled()[before..]);
        }
        if poll.is_pending() {
            let waiting_since = this.waiting_since();
            if this.deadline.poll_expired(cx, waiting_since) {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head too slow")));
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramingWatch<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        self.note_write(&poll);
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.note_write(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

enum State {
    /// Collecting a request head (possibly split over reads).
    Head,
    /// Skipping a body of known length.
    Body(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Skipping trailer lines up to the empty line.
    Trailers,
    /// Nothing more to follow (an ambiguous head was found, or the stream is not HTTP we can
    /// follow; hyper answers or closes those itself).
    Done,
}

struct Scanner {
    state: State,
    pending: Vec<u8>,
    requests: u64,
    flags: Arc<FramingFlags>,
    max_head: usize,
}

impl Scanner {
    fn new(flags: Arc<FramingFlags>, max_head: usize) -> Self {
        Self { state: State::Head, pending: Vec::new(), requests: 0, flags, max_head }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let used = match self.state {
                State::Done => return,
                State::Body(remaining) => {
                    let take = remaining.min(data.len() as u64);
                    self.state = if take == remaining { State::Head } else { State::Body(remaining - take) };
                    take as usize
                }
                State::ChunkData(remaining) => {
                    let take = remaining.min(data.len() as u64);
                    self.state = State::ChunkData(remaining - take);
                    if take == remaining {
                        // The data is followed by CRLF, which the next size line skips as blank.
                        self.state = State::ChunkSize;
                    }
                    take as usize
                }
                State::Head | State::ChunkSize | State::Trailers => match self.line_based(data) {
                    Some(used) => used,
                    None => return,
                },
            };
            data = &data[used..];
        }
    }

    /// Handles the states that need whole lines or heads; returns how much of `data` was used,
    /// or `None` when everything was buffered waiting for more.
    fn line_based(&mut self, data: &[u8]) -> Option<usize> {
        let already = self.pending.len();
        let joined;
        let input: &[u8] = if already == 0 {
            data
        } else {
            self.pending.extend_from_slice(data);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        let consumed = match self.state {
            State::Head => self.head(input),
            State::ChunkSize => self.chunk_size(input),
            _ => self.trailer_line(input),
        };
        match consumed {
            Some(consumed) => Some(consumed - already),
            None => {
                if input.len() > self.max_head {
                    self.state = State::Done;
                } else if already == 0 {
                    self.pending.extend_from_slice(input);
                } else {
                    self.pending = input.to_vec();
                }
                None
            }
        }
    }

    /// True while the connection waits for a client: every head seen has been answered and
    /// the next has not fully arrived (or the stream is no longer followed).
    fn waiting_for_head(&self) -> bool {
        match self.state {
            State::Head => self.flags.answered.load(Ordering::Relaxed) >= self.requests,
            State::Done => true,
            _ => false,
        }
    }

    /// A request head: where it ends and what its framing headers say. httparse's rules for
    /// the shape: empty lines before the request line are skipped, a line ends with LF or
    /// CRLF, the first empty line ends the head, a header's name runs to its colon and its
    /// value is trimmed of spaces and tabs.
    fn head(&mut self, input: &[u8]) -> Option<usize> {
        let start = input.iter().position(|&b| b != b'\r' && b != b'\n')?;
        let mut content_length = None;
        let mut chunked = None;
        let mut line_start = start;
        let mut end = None;
        for newline in memchr::memchr_iter(b'\n', &input[start..]).map(|at| start + at) {
            let line = input[line_start..newline].strip_suffix(b"\r").unwrap_or(&input[line_start..newline]);
            if line.is_empty() {
                end = Some(newline + 1);
                break;
            }
            if line_start != start {
                if let Some(value) = header_value(line, b"content-length:") {
                    let length = std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
                    content_length = Some(length.unwrap_or(0));
                } else if let Some(value) = header_value(line, b"transfer-encoding:") {
                    let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
                    chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                }
            }
            line_start = newline + 1;
        }
        let length = end?;
        self.requests += 1;
        self.state = match (content_length, chunked) {
            (Some(_), Some(_)) => {
                self.flags
                    .ambiguous
                    .compare_exchange(0, self.requests, Ordering::Relaxed, Ordering::Relaxed)
                    .ok();
                State::Done
            }
            (None, Some(true)) => State::ChunkSize,
            (None, Some(false)) => State::Done,
            (Some(0) | None, None) => State::Head,
            (Some(length), None) => State::Body(length),
        };
        Some(length)
    }

    fn chunk_size(&mut self, input: &[u8]) -> Option<usize> {
        // The CRLF that ends the previous chunk's data comes first; skip blank line ends.
        let start = input.iter().take_while(|&&b| b == b'\r' || b == b'\n').count().min(2);
        match httparse::parse_chunk_size(&input[start..]) {
            Ok(httparse::Status::Complete((length, 0))) => {
                self.state = State::Trailers;
                Some(start + length)
            }
            Ok(httparse::Status::Complete((length, size))) => {
                self.state = State::ChunkData(size);
                Some(start + length)
            }
            Ok(httparse::Status::Partial) => None,
            Err(_) => {
                self.state = State::Done;
                Some(input.len())
            }
        }
    }

    fn trailer_line(&mut self, input: &[u8]) -> Option<usize> {
        let end = input.iter().position(|&b| b == b'\n')?;
        if input[..end].iter().all(|&b| b == b'\r') {
            self.state = State::Head;
        }
        Some(end + 1)
    }
}

/// The value of a header line named `name` (lowercase, with its colon), trimmed as httparse
/// trims it; `None` for other lines.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let value =
        line.get(..name.len()).filter(|head| head.eq_ignore_ascii_case(name)).map(|_| &line[name.len()..])?;
    Some(value.trim_ascii_start().trim_ascii_end())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn ambiguous_index(chunks: &[&[u8]]) -> u64 {
        let flags = Arc::new(FramingFlags::default());
        let mut scanner = Scanner::new(Arc::clone(&flags), 32 * 1024);
        for chunk in chunks {
            scanner.feed(chunk);
        }
        flags.ambiguous.load(Ordering::Relaxed)
    }

    #[test]
    fn both_headers_in_one_head_are_found() {
        let request = b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(ambiguous_index(&[request]), 1);
        let reversed =
            b"POST /token HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\nHost: x\r\n\r\n";
        assert_eq!(ambiguous_index(&[reversed]), 1);
    }

    #[test]
    fn plain_requests_are_not_flagged() {
        let get = b"GET /users/me/ HTTP/1.1\r\nHost: x\r\n\r\n";
        let post = b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nusername=a&";
        let chunked = b"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nTrailer: y\r\n\r\n";
        assert_eq!(ambiguous_index(&[get, post, chunked, get]), 0);
    }

    #[test]
    fn heads_end_where_httparse_ends_them() {
        // Empty lines before the request line, bare LF line ends, any case, padded values.
        let lf =
            b"\r\n\nPOST /token HTTP/1.1\nhost: x\nCONTENT-LENGTH:\t3 \ntransfer-encoding: gzip, chunked\n\n";
        assert_eq!(ambiguous_index(&[lf]), 1);
        let mixed = b"POST /token HTTP/1.1\r\nHost: x\nContent-Length: 2\r\n\nab\
            POST /token HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(ambiguous_index(&[mixed]), 2, "the body of the first is skipped by its length");
    }

    #[test]
    fn only_header_names_count_not_values_or_the_request_line() {
        let request = b"POST /content-length:5 HTTP/1.1\r\nHost: x\r\nX-Note: content-length: 5\r\nx-content-length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(ambiguous_index(&[request]), 0);
    }

    /// A client that reads a large answer slowly is sent all of it: the wait for its next head
    /// starts when the answer has been written, not when the application made it. (On TCP the
    /// kernel's send buffer usually hides this; a 1 KiB pipe does not.)
    #[tokio::test(start_paused = true)]
    async fn an_answer_read_slowly_is_sent_whole_however_long_it_takes() {
        const SIZE: usize = 64 * 1024;
        let (mut client, server) = tokio::io::duplex(1024);
        let flags = Arc::new(FramingFlags::default());
        let watched = FramingWatch::new(server, Arc::clone(&flags), 32 * 1024, Duration::from_secs(1));
        let service = hyper::service::service_fn(move |_request| {
            // As `http::server` does once the application has answered.
            flags.answered();
            let body = http_body_util::Full::new(axum::body::Bytes::from(vec![b'x'; SIZE]));
            async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(body)) }
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.header_read_timeout(None);
        tokio::spawn(http.serve_connection(hyper_util::rt::TokioIo::new(watched), service));

        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        // 1 KiB every 100 ms: 6.4 s for the body, against a head timeout of 1 s.
        let started = Instant::now();
        let mut received = Vec::new();
        let mut chunk = [0u8; 1024];
        let head_end = |received: &[u8]| received.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4);
        while head_end(&received).is_none_or(|end| received.len() - end < SIZE) {
            let read = client.read(&mut chunk).await.unwrap();
            assert_ne!(read, 0, "closed after {} bytes, {:?} in", received.len(), started.elapsed());
            received.extend_from_slice(&chunk[..read]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(received.len() - head_end(&received).unwrap(), SIZE);
        assert!(started.elapsed() > Duration::from_secs(6), "{:?}", started.elapsed());

        // Then the wait for the next head gets its whole second from when the answer was
        // written (its last bytes went into the pipe two reads, 0.2 s, before they were read),
        // not whatever is left of a timer armed while it was being written.
        let idle = Instant::now();
        assert_eq!(client.read(&mut chunk).await.unwrap(), 0);
        let idle = idle.elapsed();
        assert!(
            idle >= Duration::from_millis(700) && idle <= Duration::from_secs(1),
            "closed after {idle:?} idle"
        );
    }

    #[test]
    fn the_index_counts_pipelined_requests_across_split_reads() {
        let stream: Vec<u8> = [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\nContent-Length: 1\r\nTransfer-E",
            b"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"POST /token HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nHost: x\r\n\r\n0\r\n\r\n",
        ]
        .concat();
        for split in [1, 2, 3, 7, 50] {
            let chunks: Vec<&[u8]> = stream.chunks(split).collect();
            assert_eq!(ambiguous_index(&chunks), 4, "split every {split} bytes");
        }
    }
}
