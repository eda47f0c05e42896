//! Who is logging in, for throttling: the socket's peer address, unless the peer is a
//! configured trusted proxy, in which case `X-Forwarded-For` is read from the right.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Networks whose `X-Forwarded-For` we believe (`TRUSTED_PROXIES=10.0.0.0/8,::1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// True when no proxy is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `ip` lies in one of the trusted networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(network, bits)| in_network(ip, *network, *bits))
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For` values: walking
    /// from the right, the first address that is not a trusted proxy.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded_for.iter().rev().flat_map(|value| value.rsplit(','));
        for hop in hops {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

fn in_network(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (ip, network, width) = match (to_canonical(ip), to_canonical(network)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (network >> shift)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn to_canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The reason a `TRUSTED_PROXIES` entry was refused.
#[derive(Debug)]
pub struct BadNetwork(String);

impl fmt::Display for BadNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "comma-separated IP addresses or networks like 10.0.0.0/8 (bad entry {:?})", self.0)
    }
}

impl FromStr for TrustedProxies {
    type Err = BadNetwork;

    fn from_str(text: &str) -> Result<Self, BadNetwork> {
        let parse = |entry: &str| -> Option<(IpAddr, u8)> {
            let (address, bits) = match entry.split_once('/') {
                Some((address, bits)) => (address, Some(bits.parse::<u8>().ok()?)),
                None => (entry, None),
            };
            let ip = to_canonical(address.parse::<IpAddr>().ok()?);
            let width = if ip.is_ipv4() { 32 } else { 128 };
            let bits = bits.unwrap_or(width);
            (bits <= width).then_some((ip, bits))
        };
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| parse(entry).ok_or_else(|| BadNetwork(entry.to_owned())))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("203.0.113.9"), &["1.2.3.4"]), ip("203.0.113.9"));
        let proxies: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().unwrap();
        assert_eq!(proxies.client(ip("203.0.113.9"), &["1.2.3.4"]), ip("203.0.113.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let peer = ip("10.1.2.3");
        assert_eq!(proxies.client(peer, &["6.6.6.6, 198.51.100.2, 10.9.9.9"]), ip("198.51.100.2"));
        assert_eq!(proxies.client(peer, &["6.6.6.6", "198.51.100.2"]), ip("198.51.100.2"));
        assert_eq!(proxies.client(peer, &[]), peer);
        assert_eq!(proxies.client(peer, &["garbage"]), peer);
    }

    #[test]
    fn networks_parse_and_match_v4_v6_and_mapped_addresses() {
        let proxies: TrustedProxies = "192.168.0.0/16,::1,fd00::/8".parse().unwrap();
        assert!(proxies.contains(ip("192.168.4.5")));
        assert!(proxies.contains(ip("::ffff:192.168.4.5")));
        assert!(!proxies.contains(ip("192.169.0.1")));
        assert!(proxies.contains(ip("::1")));
        assert!(proxies.contains(ip("fd12::1")));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("localhost".parse::<TrustedProxies>().is_err());
        assert!("0.0.0.0/0".parse::<TrustedProxies>().unwrap().contains(ip("8.8.8.8")));
    }
}
