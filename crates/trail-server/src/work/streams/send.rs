//! One batch to one receiver: an HTTP POST (the stream's headers, `Trail-First-Seq`,
//! `Trail-Last-Seq`, `Trail-Checkpoint`, Standard Webhooks signatures as alert
//! webhooks have), or syslog frames over a TCP or TLS connection opened for the batch
//! and closed in order once it is written. Addresses are checked as every outbound
//! connection's are (`outbound`).

use std::{sync::Arc, time::Duration};

use base64::Engine;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use trail_store::streams::{Stream, StreamKind};

use super::format::{self, Format, Item, Origin};
use crate::work::{
    outbound::{self, resolve, resolve_host, Posted, Unusable},
    Services, WorkError,
};

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Worth another attempt (network errors, 5xx, 429, other 4xx).
    Failed(String),
    /// Never worth retrying as the stream stands (410 Gone, a refused address).
    Gone(String),
}

/// One batch: its events (in seq order), and the signed checkpoint covering them.
pub struct Batch {
    pub items: Vec<Item>,
    pub checkpoint: std::sync::Arc<str>,
}

impl Batch {
    fn first(&self) -> u64 {
        self.items.first().map_or(0, |i| i.seq)
    }

    fn last(&self) -> u64 {
        self.items.last().map_or(0, |i| i.seq)
    }
}

/// A driver's HTTP client, kept while its stream's receiver resolves to the same
/// address (so connections are reused and TLS is set up once).
#[derive(Default)]
pub struct Client {
    held: Option<(String, std::net::SocketAddr, reqwest::Client)>,
}

impl Client {
    fn get(&mut self, host: &str, addr: std::net::SocketAddr, timeout: Duration) -> Result<reqwest::Client, WorkError> {
        if let Some((h, a, c)) = &self.held {
            if h == host && *a == addr {
                return Ok(c.clone());
            }
        }
        let c = outbound::client(host, addr, timeout, concat!("Trail-Streams/", env!("CARGO_PKG_VERSION")))?;
        self.held = Some((host.to_string(), addr, c.clone()));
        Ok(c)
    }
}

pub async fn attempt(st: &Services, s: &Stream, batch: Batch, origin: &Origin, client: &mut Client) -> Outcome {
    let Ok(format) = s.format.carried_by(s.kind) else {
        return Outcome::Gone(format!("'{}' is not a format of {} streams", s.format, s.kind));
    };
    match s.kind {
        StreamKind::Http => http(st, s, format, batch, origin, client).await,
        StreamKind::Syslog => syslog(st, s, format, batch, origin).await,
    }
}

async fn http(
    st: &Services,
    s: &Stream,
    format: Format,
    batch: Batch,
    origin: &Origin,
    client: &mut Client,
) -> Outcome {
    let Some(url) = s.url.as_deref() else { return Outcome::Gone("the stream has no url".into()) };
    let (url, addr) = match resolve(url, st.config.streams.allow_private_destinations, "[streams]").await {
        Ok(x) => x,
        Err(Unusable::Refused(m)) => return Outcome::Gone(m),
        Err(Unusable::Unresolved(m)) => return Outcome::Failed(m),
    };
    let timeout = st.config.streams.timeout;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = match client.get(&host, addr, timeout) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let (first, last) = (batch.first(), batch.last());
    let checkpoint = base64::engine::general_purpose::STANDARD.encode(batch.checkpoint.as_bytes());
    let (body, content_type) = if format == Format::Jsonl {
        format::http_body(format, &batch.items, origin)
    } else {
        let (items, o) = (batch.items, origin.clone());
        match super::render::run(move || format::http_body(format, &items, &o)).await {
            Some(x) => x,
            None => return Outcome::Failed("the batch could not be rendered".into()),
        }
    };
    let mut headers = vec![
        ("content-type".to_string(), content_type.to_string()),
        ("trail-first-seq".to_string(), first.to_string()),
        ("trail-last-seq".to_string(), last.to_string()),
        ("trail-checkpoint".to_string(), checkpoint),
    ];
    headers.extend(s.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    // The same batch keeps its id across retries, so that a receiver can drop repeats.
    let signing = outbound::Signing {
        id: format!("stream_{}_{first}_{last}", s.id),
        ts: (st.clock)().0.div_euclid(1_000_000),
        secrets: &s.secrets,
    };
    match outbound::post(&client, url, &headers, Some(signing), body).await {
        Posted::Answered { code, .. } if (200..300).contains(&code) => Outcome::Delivered,
        Posted::Answered { code: 410, text } => Outcome::Gone(format!("410 Gone: the receiver asked to stop. {text}")),
        Posted::Answered { code, text } => Outcome::Failed(format!("HTTP {code}: {text}")),
        Posted::Unsigned(error) => Outcome::Gone(error),
        Posted::Unreachable(error) => Outcome::Failed(error),
    }
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// The TLS settings: the public roots and the extra ones of `[streams] ca_file`.
fn tls_config(st: &Services) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, WorkError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = &st.config.streams.ca_pem {
        for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let unusable = |e: String| WorkError::Unavailable(format!("[streams] ca_file: {e}"));
            let c = c.map_err(|e| unusable(e.to_string()))?;
            roots.add(c).map_err(|e| unusable(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WorkError::Unavailable(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn connect(st: &Services, s: &Stream) -> Result<Box<dyn Conn>, Outcome> {
    let a = s.address.as_deref().ok_or_else(|| Outcome::Gone("the stream has no address".into()))?;
    let (host, port) = super::setup::split_address(a).map_err(Outcome::Gone)?;
    let addr = match resolve_host(&host, port, st.config.streams.allow_private_destinations, "[streams]").await {
        Ok(x) => x,
        Err(Unusable::Refused(m)) => return Err(Outcome::Gone(m)),
        Err(Unusable::Unresolved(m)) => return Err(Outcome::Failed(m)),
    };
    let timeout = st.config.streams.timeout;
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(Outcome::Failed(format!("cannot connect to {a}: {e}"))),
        Err(_) => return Err(Outcome::Failed(format!("connecting to {a} timed out"))),
    };
    if !s.tls {
        return Ok(Box::new(tcp));
    }
    let config = tls_config(st).map_err(|e| Outcome::Failed(e.to_string()))?;
    let name =
        rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| Outcome::Gone(format!("{host}: {e}")))?;
    match tokio::time::timeout(timeout, tokio_rustls::TlsConnector::from(config).connect(name, tcp)).await {
        Ok(Ok(t)) => Ok(Box::new(t)),
        Ok(Err(e)) => Err(Outcome::Failed(format!("TLS with {a}: {e}"))),
        Err(_) => Err(Outcome::Failed(format!("TLS with {a} timed out"))),
    }
}

async fn syslog(st: &Services, s: &Stream, format: Format, batch: Batch, origin: &Origin) -> Outcome {
    let mut conn = match connect(st, s).await {
        Ok(c) => c,
        Err(o) => return o,
    };
    let (first, last) = (batch.first(), batch.last());
    let (items, o) = (batch.items, origin.clone());
    let frames = super::render::run(move || {
        let mut out = Vec::new();
        for it in &items {
            match format::syslog_event(format, it, &o) {
                Some(frame) => out.extend(frame),
                None => return Err(it.seq),
            }
        }
        Ok(out)
    })
    .await;
    let mut out = match frames {
        Some(Ok(out)) => out,
        Some(Err(seq)) => return Outcome::Gone(format!("seq {seq} is not a readable event")),
        None => return Outcome::Failed("the batch could not be rendered".into()),
    };
    let cp = base64::engine::general_purpose::STANDARD.encode(batch.checkpoint.as_bytes());
    let now = (st.clock)().to_rfc3339_micros();
    out.extend(format::syslog_batch_end(&s.org, first, last, &cp, &now, origin));
    let timeout = st.config.streams.timeout;
    let addr = s.address.as_deref().unwrap_or_default();
    let written = tokio::time::timeout(timeout, async {
        conn.write_all(&out).await?;
        conn.flush().await?;
        conn.shutdown().await
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Outcome::Failed(format!("syslog {addr}: {e}")),
        Err(_) => return Outcome::Failed(format!("syslog {addr}: timed out")),
    }
    // Our side is closed in order; a receiver that then closes its side read it all,
    // and one that resets the connection may not have. One that keeps it open is
    // taken at its word (syslog has no acknowledgements).
    let mut sink = [0u8; 512];
    let closed = tokio::time::timeout(timeout.min(Duration::from_secs(2)), async {
        while conn.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
    match closed {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Outcome::Failed(format!("syslog {addr}: the receiver reset the connection"))
        }
        _ => Outcome::Delivered,
    }
}
