//! Request ids: the `X-Request-Id` of a trusted proxy, kept when it is short visible ASCII,
//! or one made here; echoed in every answer and written in the request's log line.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use getrandom::SysRng;
use rand_core::TryRng;

use crate::api::client_ip::{TrustedProxies, to_canonical};

/// `X-Request-Id`, as it is read and echoed.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id kept (a UUID is 36 characters; tracing ids such as AWS's under 64).
pub const MAX_LEN: usize = 128;

/// Makes the ids of this process: a random 48-bit prefix (so processes, and restarts, differ)
/// and a counter, as `<12 hex digits>-<at least 8 hex digits>`. Cheap: one atomic addition.
pub struct RequestIds {
    /// The prefix, as the 12 hex digits every id starts with.
    prefix: [u8; 12],
    next: AtomicU64,
}

impl RequestIds {
    /// A new random prefix and a counter from zero.
    pub fn new() -> Self {
        let mut bytes = [0u8; 8];
        // Ids need not be secret: a time-based prefix will do if the OS has no randomness.
        let prefix = match SysRng.try_fill_bytes(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos() as u64),
        };
        let mut digits = [0u8; 12];
        hex(&mut digits, prefix);
        Self { prefix: digits, next: AtomicU64::new(0) }
    }

    /// The id of a request from `peer` with these headers: its own `X-Request-Id` when `peer`
    /// is a trusted proxy and the id is acceptable, otherwise a new one.
    pub fn for_request(&self, headers: &HeaderMap, peer: IpAddr, trusted: &TrustedProxies) -> HeaderValue {
        if !trusted.is_empty() && trusted.contains(to_canonical(peer)) {
            let mut given = headers.get_all(&X_REQUEST_ID).iter();
            if let (Some(id), None) = (given.next(), given.next())
                && acceptable(id.as_bytes())
            {
                return id.clone();
            }
        }
        self.make()
    }

    /// A new id.
    fn make(&self) -> HeaderValue {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let mut text = [0u8; 29];
        text[..12].copy_from_slice(&self.prefix);
        text[12] = b'-';
        let width = (16 - number.leading_zeros() as usize / 4).max(8);
        hex(&mut text[13..13 + width], number);
        HeaderValue::from_bytes(&text[..13 + width]).expect("hex digits and a dash")
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// 1 to `MAX_LEN` visible ASCII characters: nothing that could break a log line or a header.
pub fn acceptable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|byte| (0x21..=0x7e).contains(byte))
}

/// Writes `value`'s low `out.len()` hex digits into `out`.
fn hex(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ids: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for id in ids {
            headers.append(X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn made_ids_share_the_process_prefix_and_count_up() {
        let ids = RequestIds::new();
        let none = TrustedProxies::default();
        let first = ids.for_request(&HeaderMap::new(), ip("127.0.0.1"), &none);
        let second = ids.for_request(&HeaderMap::new(), ip("127.0.0.1"), &none);
        let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
        assert_eq!(first.len(), 21, "{first}");
        assert_eq!(first[..13], second[..13]);
        assert!(first.ends_with("-00000000") && second.ends_with("-00000001"), "{first} {second}");
        assert_ne!(RequestIds::new().prefix, ids.prefix, "another process, another prefix");
        ids.next.store(u64::MAX, Ordering::Relaxed);
        let last = ids.make();
        assert_eq!(last.to_str().unwrap()[13..], *"ffffffffffffffff");
    }

    #[test]
    fn an_incoming_id_is_kept_only_from_a_trusted_proxy_and_only_when_it_is_sane() {
        let ids = RequestIds::new();
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let given = headers(&["req-42"]);
        assert_eq!(ids.for_request(&given, ip("10.1.1.1"), &proxies), "req-42");
        assert_eq!(ids.for_request(&given, ip("::ffff:10.1.1.1"), &proxies), "req-42");
        assert_ne!(ids.for_request(&given, ip("203.0.113.5"), &proxies), "req-42", "not a proxy");
        assert_ne!(ids.for_request(&given, ip("10.1.1.1"), &TrustedProxies::default()), "req-42");
        for bad in [&["a b"][..], &["two", "ids"], &[&"x".repeat(MAX_LEN + 1)]] {
            let made = ids.for_request(&headers(bad), ip("10.1.1.1"), &proxies);
            assert_eq!(made.len(), 21, "{bad:?} replaced by {made:?}");
        }
        assert!(acceptable("x".repeat(MAX_LEN).as_bytes()));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"caf\xc3\xa9"));
        assert!(!acceptable(b"line\r\nbreak"));
    }
}
