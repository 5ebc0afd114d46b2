//! The client's address, which keys the per-address rate limits: the TCP peer, or, when the peer
//! is a proxy the operator trusts (`--trusted-proxy`), the address the proxies name in
//! `X-Forwarded-For`.
//!
//! Behind a load balancer every request comes from the balancer's address, so without this all
//! callers whose credentials are not known yet share one per-address bucket (and an open server's
//! callers one caller bucket). `X-Forwarded-For` is what any client may send, so it is believed
//! only as far as trusted proxies vouch for it: starting at the peer and walking the header from
//! its right end (each proxy appends the address it was reached from), every trusted address
//! hands over to the one before it; the first address not trusted is the client. An entry that is
//! not an address ends the walk at the last one reached. With no proxy trusted (the default), the
//! header is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts the proxies in `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Parses one `--trusted-proxy`: a network (`10.0.0.0/8`, `fd00::/8`) or an address.
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{s:?} is neither an address nor a network like 10.0.0.0/8"))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers` (see the module docs).
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = peer?;
        if self.0.is_empty() {
            return Some(client);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match parse_hop(hop) {
                Some(ip) => client = ip,
                None => break,
            }
        }
        Some(canonical(client))
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`203.0.113.7:4711`,
/// `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`, as a dual-stack listener sees it) as
/// the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            nets.iter()
                .map(|n| TrustedProxies::parse(n).unwrap())
                .collect(),
        )
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.2"), &xff(&["203.0.113.7"])),
            ip("10.0.0.2")
        );
        assert_eq!(none.client(None, &xff(&["203.0.113.7"])), None);
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_an_untrusted_peer_does_not() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            t.client(ip("10.0.0.2"), &xff(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // A client sending the header itself, straight to the server, is its own address.
        assert_eq!(
            t.client(ip("198.51.100.9"), &xff(&["203.0.113.7"])),
            ip("198.51.100.9")
        );
        // No header: the proxy's address.
        assert_eq!(t.client(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop_so_a_forged_start_does_not_count() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.1"]);
        // The client forged "1.2.3.4"; the trusted proxies appended the real address, then their own.
        let headers = xff(&["1.2.3.4, 203.0.113.7", "192.0.2.1"]);
        assert_eq!(t.client(ip("10.0.0.2"), &headers), ip("203.0.113.7"));
        // Every hop trusted: the leftmost.
        assert_eq!(
            t.client(ip("10.0.0.2"), &xff(&["10.1.1.1, 192.0.2.1"])),
            ip("10.1.1.1")
        );
        // An entry that is no address ends the walk at the last address reached.
        assert_eq!(
            t.client(ip("10.0.0.2"), &xff(&["203.0.113.7, unknown"])),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ports_v6_and_mapped_addresses_are_read() {
        let t = trusted(&["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(
            t.client(ip("::ffff:10.0.0.2"), &xff(&["203.0.113.7:4711"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            t.client(ip("fd00::1"), &xff(&["[2001:db8::1]:4711"])),
            ip("2001:db8::1")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
        assert_eq!(
            TrustedProxies::parse(" 192.0.2.1 ").unwrap(),
            "192.0.2.1/32".parse::<IpNet>().unwrap()
        );
    }
}
