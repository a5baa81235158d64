//! Clients behind a trusted proxy. A connection from an address in
//! `trusted_proxies` carries many clients' requests: the client of each is the nearest
//! address in `X-Forwarded-For` that is not itself a trusted proxy, and it is that
//! address (not the proxy's) that self-audit records and that is capped, by requests in
//! flight rather than by connections (a proxy reuses its connections across clients).
//! Past the cap, the address's newest request is answered 429 at once, so one client
//! behind the proxy cannot take everyone's turn. From any other peer the header is
//! ignored: it is whatever the client wrote.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address a request is from, as self-audit and the caps see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

/// Whether `ip` is one of the trusted proxies.
pub(crate) fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The client of a request from the trusted proxy `peer`: walking `X-Forwarded-For`
/// from the right (the hop the proxy added), the first address that is not a trusted
/// proxy; the proxy itself when the header is missing or a hop is unreadable.
pub(crate) fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())) else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(trusted, client) {
            break;
        }
    }
    client
}

/// Requests in flight by forwarded client address.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One request in flight, counted until dropped (with the response's body).
pub(crate) struct Entered {
    table: InFlight,
    ip: IpAddr,
}

impl InFlight {
    /// Counts a request from `ip`, unless it has `cap` in flight already.
    pub(crate) fn enter(&self, ip: IpAddr, cap: usize) -> Option<Entered> {
        let mut t = self.0.lock().ok()?;
        let n = t.entry(ip).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Entered { table: self.clone(), ip })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.0.lock() {
            if let Some(n) = t.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    t.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let at = |xff: &[&str]| client(proxy, &headers(xff), &trusted).to_string();
        assert_eq!(at(&[]), "10.0.0.2");
        assert_eq!(at(&["203.0.113.9"]), "203.0.113.9");
        // A client's own spoofed hops are to the left of what the proxies added.
        assert_eq!(at(&["1.1.1.1, 203.0.113.9, 10.0.0.7"]), "203.0.113.9");
        assert_eq!(at(&["1.1.1.1", "203.0.113.9"]), "203.0.113.9");
        assert_eq!(at(&["[2001:db8::1]:443"]), "2001:db8::1");
        assert_eq!(at(&["::ffff:198.51.100.1"]), "198.51.100.1");
        assert_eq!(at(&["garbage, 10.0.0.9"]), "10.0.0.9", "an unreadable hop stops the walk");
    }

    #[test]
    fn a_cap_on_requests_in_flight_per_address() {
        let t = InFlight::default();
        let a: IpAddr = "203.0.113.9".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| t.enter(a, 3).unwrap()).collect();
        assert!(t.enter(a, 3).is_none());
        assert!(t.enter("203.0.113.10".parse().unwrap(), 3).is_some());
        drop(held);
        assert!(t.enter(a, 3).is_some());
        assert!(t.0.lock().unwrap().is_empty(), "nothing kept for addresses with nothing in flight");
    }
}
