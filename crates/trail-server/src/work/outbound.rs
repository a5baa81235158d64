//! Outbound connections' one rule, shared by alert destinations and streams: the
//! address connected to is the one checked, and loopback, private, link-local and
//! other internal networks are refused unless the configuration allows them.

use base64::Engine;
use std::{net::IpAddr, time::Duration};

use super::WorkError;

/// Whether an address is internal: loopback, private, link-local, shared (CGNAT),
/// unique-local, unspecified, multicast or documentation.
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0
        }
        IpAddr::V6(a) => {
            if let Some(v4) = embedded_v4(a) {
                return internal(IpAddr::V4(v4));
            }
            let s = a.segments();
            // Local-use NAT64 (64:ff9b:1::/48) translates to whatever the site chose.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
                return true;
            }
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The IPv4 address an IPv6 one carries, in every spelling that reaches it: mapped
/// (`::ffff:a.b.c.d`), translated (`::ffff:0:a.b.c.d`), compatible (`::a.b.c.d`), NAT64
/// well-known prefix (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(a: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = a.segments();
    let v4 = |hi: u16, lo: u16| std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(v4(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        // Compatible form; `::` and `::1` are themselves (unspecified, loopback).
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// A destination URL as shown after it was given: its scheme, host and port, and the
/// last four characters as a hint. Webhook URLs carry their secret in the path (Slack,
/// Discord) or in `user:password@`; none of it is shown, logged or recorded again.
pub fn masked(url: &str) -> String {
    let hint: String = {
        let tail: Vec<char> = url.chars().rev().take(4).collect();
        tail.into_iter().rev().collect()
    };
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…{hint}", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => format!("…{hint}"),
    }
}

/// Why a destination URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Never usable as it stands (not an http(s) URL, an internal address).
    Refused(String),
    /// Perhaps later (the name does not resolve now).
    Unresolved(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Refused(m) | Unusable::Unresolved(m) => f.write_str(m),
        }
    }
}

/// Checks a destination URL (http or https, a host) and resolves it; the address to
/// connect to, or why not.
pub async fn resolve(
    url: &str,
    allow_private: bool,
    setting: &str,
) -> Result<(reqwest::Url, std::net::SocketAddr), Unusable> {
    let refused = |m: String| Unusable::Refused(m);
    let u = reqwest::Url::parse(url).map_err(|e| refused(format!("not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(refused("must be an http or https URL".into()));
    }
    let host = u.host_str().ok_or_else(|| refused("the URL has no host".into()))?.trim_matches(['[', ']']).to_string();
    let port = u.port_or_known_default().unwrap_or(443);
    let addr = resolve_host(&host, port, allow_private, setting).await?;
    Ok((u, addr))
}

/// Resolves a host and port to the address to connect to, refusing internal
/// addresses unless `allow_private` (`setting` names the section that allows them).
pub async fn resolve_host(
    host: &str,
    port: u16,
    allow_private: bool,
    setting: &str,
) -> Result<std::net::SocketAddr, Unusable> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Unusable::Unresolved(format!("cannot resolve {host}: {e}")))?
        .collect();
    let first = addrs.first().copied().ok_or_else(|| Unusable::Unresolved(format!("{host} has no address")))?;
    if !allow_private {
        if let Some(a) = addrs.iter().find(|a| internal(a.ip())) {
            return Err(Unusable::Refused(format!(
                "{host} resolves to the internal address {}; internal destinations are refused \
                 ({setting} allow_private_destinations)",
                a.ip()
            )));
        }
    }
    Ok(first)
}

/// An HTTP client for one checked destination: it connects only to `addr` (the
/// address that was checked) for `host`, never follows redirects, and gives up after
/// `timeout` (connecting: after at most 5 s).
pub fn client(
    host: &str,
    addr: std::net::SocketAddr,
    timeout: Duration,
    agent: &str,
) -> Result<reqwest::Client, WorkError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .resolve(host, addr)
        .user_agent(agent)
        .build()
        .map_err(|e| WorkError::Unavailable(e.to_string()))
}

/// A client for `fetch`: no redirects, and it gives up after `timeout`.
pub fn fetcher(timeout: Duration) -> Result<reqwest::Client, WorkError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Trail-Mirror/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| WorkError::Unavailable(e.to_string()))
}

/// One GET of a Trail server's resource (a mirror's tiles), with an API key: the body,
/// or why not (404 as `NotFound`, any other refusal with the server's words).
pub async fn fetch(client: &reqwest::Client, url: &str, key: Option<&str>) -> Result<Vec<u8>, WorkError> {
    let mut req = client.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.map_err(|e| WorkError::Unavailable(format!("{url}: {e}")))?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| WorkError::Unavailable(format!("{url}: {e}")))?;
    match status.as_u16() {
        200 => Ok(body.to_vec()),
        code => {
            let said = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
            let m = format!("{url}: HTTP {code}: {said}");
            Err(if code == 404 { WorkError::NotFound(m) } else { WorkError::Unavailable(m) })
        }
    }
}

/// A client for the installation log's witnesses (named by the operator's policy, so
/// loopback and private addresses are theirs to choose), kept alive between rounds.
pub fn witness_client(timeout: Duration) -> Result<reqwest::Client, WorkError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Trail-Witness-Client/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| WorkError::Unavailable(e.to_string()))
}

/// One POST of a text body (a witness's `add-checkpoint`): the status, the answer's
/// content type and text, or why there was none.
pub async fn post_text(client: &reqwest::Client, url: &str, body: String) -> Result<(u16, String, String), String> {
    let r = client.post(url).body(body).send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = r.text().await.map_err(|e| format!("{url}: {e}"))?;
    Ok((status, ct, text))
}

/// A new signing secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256, keyed with the
/// secret after `whsec_` (base64), of `id.timestamp.body`. RustCrypto's HMAC, which
/// uses the CPU's SHA extensions (the `standardwebhooks` crate's portable SHA-256 was
/// 4× slower on a 1 MB batch; the tests check each signature against that crate).
pub fn signature(secret: &str, id: &str, ts: i64, body: &[u8]) -> Result<String, WorkError> {
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let unusable = WorkError::Unavailable;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).map_err(|e| unusable(e.to_string()))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| unusable(e.to_string()))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", b64.encode(mac.finalize().into_bytes())))
}

/// One message signed the Standard Webhooks way: its id, its time (Unix seconds), and
/// the secrets that sign it (one signature each: two while a secret is rotated).
pub struct Signing<'a> {
    pub id: String,
    pub ts: i64,
    pub secrets: &'a [String],
}

/// What became of a POST.
#[derive(Debug)]
pub enum Posted {
    /// The receiver answered: its status and the first 300 characters of its body.
    Answered { code: u16, text: String },
    /// A secret cannot sign (it is not base64): the message cannot go as it is.
    Unsigned(String),
    /// No answer: the error and its causes, without the URL (whose path or
    /// credentials may be the receiver's secret).
    Unreachable(String),
}

/// POSTs `body` to `url` through `client` (one of [`client`]) with `headers` and, when
/// `signing` has secrets, the `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` headers. Every outbound request of the work layer goes here.
pub async fn post(
    client: &reqwest::Client,
    url: reqwest::Url,
    headers: &[(String, String)],
    signing: Option<Signing<'_>>,
    body: Vec<u8>,
) -> Posted {
    let mut req = client.post(url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(s) = signing.filter(|s| !s.secrets.is_empty()) {
        let mut sigs = Vec::new();
        for secret in s.secrets {
            match signature(secret, &s.id, s.ts, &body) {
                Ok(sig) => sigs.push(sig),
                Err(e) => return Posted::Unsigned(format!("signing secret unusable: {e}")),
            }
        }
        req = req
            .header("webhook-id", s.id)
            .header("webhook-timestamp", s.ts.to_string())
            .header("webhook-signature", sigs.join(" "));
    }
    match req.body(body).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            let text = r.text().await.unwrap_or_default().chars().take(300).collect();
            Posted::Answered { code, text }
        }
        Err(e) => Posted::Unreachable(error_chain(&e.without_url())),
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_standard_webhooks_ones() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        let body = b"{\"seq\":0}\n{\"seq\":1}\n";
        let reference =
            standardwebhooks::Webhook::new(&secret).unwrap().sign("stream_1_0_1", 1_700_000_000, body).unwrap();
        assert_eq!(signature(&secret, "stream_1_0_1", 1_700_000_000, body).unwrap(), reference);
        assert!(signature("whsec_%%%", "x", 1, b"").is_err());
    }

    #[test]
    fn urls_are_shown_masked() {
        let slack = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXSECRET1234";
        assert_eq!(masked(slack), "https://hooks.slack.com/…1234");
        let basic = "https://ann:hunter2@siem.example.com:8443/ingest?token=abcd";
        let m = masked(basic);
        assert!(!m.contains("hunter2") && !m.contains("ann") && !m.contains("token"), "{m}");
        assert_eq!(m, "https://siem.example.com:8443/…abcd");
        assert_eq!(masked("not a url"), "…_url".replace('_', " "));
    }

    #[test]
    fn internal_addresses_are_known() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            // Other spellings of internal IPv4 addresses.
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "::127.0.0.1",
            "::ffff:0:7f00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(internal(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::8.8.8.8", "2002:808:808::1"] {
            assert!(!internal(a.parse().unwrap()), "{a}");
        }
    }
}
