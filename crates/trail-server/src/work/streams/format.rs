//! What a stream sends, per format and transport: HTTP batch bodies (JSON Lines of the
//! stored bytes, OCSF records, Splunk HTTP Event Collector events) and syslog
//! messages (RFC 5424, octet-counted per RFC 6587; the MSG is the stored bytes, an
//! OCSF record or a CEF line). No I/O.

use std::fmt::Write as _;

use serde::Serialize;
#[cfg(test)]
use serde_json::{json, Value};

use super::ocsf;
use trail_core::LeafView;

pub use trail_store::streams::StreamFormat as Format;

/// One event of a batch: its seq and stored bytes.
#[derive(Clone)]
pub struct Item {
    pub seq: u64,
    pub leaf: Vec<u8>,
}

/// Who is sending: the installation's name (syslog HOSTNAME, Splunk `host`) and
/// Trail's version.
#[derive(Clone)]
pub struct Origin {
    pub host: String,
    pub version: &'static str,
}

/// An HTTP batch's body and content type. An event whose stored bytes cannot be read
/// as an event (never expected) is sent as stored.
pub fn http_body(format: Format, items: &[Item], origin: &Origin) -> (Vec<u8>, &'static str) {
    let mut body = Vec::with_capacity(items.iter().map(|i| i.leaf.len() * 2 + 1).sum());
    for it in items {
        let view = match format {
            Format::Jsonl | Format::Cef => None,
            Format::Ocsf | Format::SplunkHec => LeafView::read(&it.leaf).ok(),
        };
        match (format, view) {
            (Format::Ocsf, Some(v)) => {
                let leaf = std::str::from_utf8(&it.leaf).unwrap_or_default();
                let _ = serde_json::to_writer(&mut body, &ocsf::record(&v, leaf, origin.version));
            }
            (Format::SplunkHec, Some(v)) => splunk(&mut body, it, &v, origin),
            _ => body.extend_from_slice(&it.leaf),
        }
        body.push(b'\n');
    }
    (body, "application/x-ndjson")
}

#[derive(Serialize)]
struct HecFields<'a> {
    org: &'a str,
    seq: u64,
    category: &'a str,
    result: &'a str,
}

/// A Splunk HTTP Event Collector event (the `/services/collector/event` shape), the
/// stored event as its `event`.
fn splunk(out: &mut Vec<u8>, it: &Item, v: &LeafView<'_>, origin: &Origin) {
    let t = v.time().unwrap_or(0);
    let time = format!("{}.{:06}", t.div_euclid(1_000_000), t.rem_euclid(1_000_000));
    let source = format!("trail:{}", v.org);
    let fields = HecFields { org: &v.org, seq: it.seq, category: v.category(), result: &v.result };
    let head = serde_json::json!({"time": time, "host": origin.host, "source": source, "sourcetype": "trail:audit"});
    let head = head.to_string();
    // `{…head…,"fields":{…},"event":<stored bytes>}`
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"fields\":");
    let _ = serde_json::to_writer(&mut *out, &fields);
    out.extend_from_slice(b",\"event\":");
    out.extend_from_slice(&it.leaf);
    out.push(b'}');
}

fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('=', "\\=").replace('\n', "\\n").replace('\r', "\\r")
}

/// One event as an ArcSight Common Event Format line.
pub fn cef(it: &Item, e: &LeafView<'_>, origin: &Origin) -> String {
    let severity = if e.failed() { 7 } else { 3 };
    let mut line = format!(
        "CEF:0|Trail|Trail|{}|{}|{}|{severity}|",
        cef_header(origin.version),
        cef_header(&e.action),
        cef_header(&e.action)
    );
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", (e.time().unwrap_or(0) / 1000).to_string()),
        ("act", e.action.to_string()),
        ("cat", e.category().to_string()),
        ("outcome", if e.failed() { "failure".into() } else { "success".into() }),
        ("externalId", e.id.to_string()),
        ("cs1Label", "org".into()),
        ("cs1", e.org.to_string()),
        ("cn1Label", "seq".into()),
        ("cn1", it.seq.to_string()),
    ];
    if let Some(a) = &e.actor {
        if let Some(v) = a.email.as_deref().or(a.name.as_deref()) {
            ext.push(("suser", v.to_string()));
        }
        if let Some(v) = &a.id {
            ext.push(("suid", v.to_string()));
        }
    }
    if let Some(ip) = &e.source_ip {
        ext.push(("src", ip.to_string()));
    }
    if let Some(ua) = &e.user_agent {
        ext.push(("requestClientApplication", ua.to_string()));
    }
    if let Some(r) = &e.resource {
        if let Some(v) = r.name.as_deref().or(r.id.as_deref()) {
            ext.push(("cs2Label", "resource".into()));
            ext.push(("cs2", v.to_string()));
        }
    }
    if let Some(id) = &e.request_id {
        ext.push(("cs3Label", "requestId".into()));
        ext.push(("cs3", id.to_string()));
    }
    if let Some(err) = &e.error {
        ext.push(("msg", err.to_string()));
    }
    let parts: Vec<String> = ext.iter().map(|(k, v)| format!("{k}={}", cef_value(v))).collect();
    line.push_str(&parts.join(" "));
    line
}

/// The Private Enterprise Number RFC 5612 reserves for documentation, naming Trail's
/// structured data (`trail@32473`).
const PEN: u32 = 32473;

fn sd_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]")
}

/// A printable-ASCII header field of at most `max` characters (`-` when empty).
fn header_field(s: &str, max: usize) -> String {
    let v: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

/// One RFC 5424 message, octet-counted (RFC 6587 3.4.1: `LEN SP MSG`).
fn frame(severity: u8, timestamp: &str, host: &str, msgid: &str, sd: &str, msg: &str) -> Vec<u8> {
    // Facility 13: log audit.
    let pri = 13 * 8 + u32::from(severity);
    let mut m = String::new();
    let _ =
        write!(m, "<{pri}>1 {timestamp} {} trail - {} {sd} {msg}", header_field(host, 255), header_field(msgid, 32));
    let mut out = format!("{} ", m.len()).into_bytes();
    out.extend_from_slice(m.as_bytes());
    out
}

/// An event as one framed syslog message (`None`: its stored bytes are not an event).
pub fn syslog_event(format: Format, it: &Item, origin: &Origin) -> Option<Vec<u8>> {
    let e = LeafView::read(&it.leaf).ok()?;
    let leaf = std::str::from_utf8(&it.leaf).ok()?;
    let msg = match format {
        Format::Cef => cef(it, &e, origin),
        Format::Ocsf => serde_json::to_string(&ocsf::record(&e, leaf, origin.version)).ok()?,
        Format::Jsonl | Format::SplunkHec => leaf.to_string(),
    };
    let sd = format!("[trail@{PEN} org=\"{}\" seq=\"{}\" id=\"{}\"]", sd_value(&e.org), it.seq, e.id);
    let severity = if e.failed() { 4 } else { 6 };
    let time = trail_core::Timestamp(e.time().unwrap_or(0)).to_rfc3339_micros();
    Some(frame(severity, &time, &origin.host, &e.action, &sd, &msg))
}

/// The message that closes a syslog batch: its first and last seq and the signed
/// checkpoint (base64) that covers it.
pub fn syslog_batch_end(org: &str, first: u64, last: u64, checkpoint: &str, now: &str, origin: &Origin) -> Vec<u8> {
    let sd = format!(
        "[trail-batch@{PEN} org=\"{}\" first=\"{first}\" last=\"{last}\" checkpoint=\"{}\"]",
        sd_value(org),
        sd_value(checkpoint)
    );
    frame(6, now, &origin.host, "trail.batch", &sd, &format!("batch of seqs {first}..={last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        let leaf = serde_json::to_vec(&json!({
            "id": "0190f0e8-0000-7000-8000-000000000001", "org": "acme", "seq": 7,
            "timestamp": "2024-03-01T10:00:00Z", "received_at": "2024-03-01T10:00:01Z",
            "action": "auth:login", "result": "FAILED", "actor": {"email": "a=b@x.io"},
            "source_ip": "203.0.113.9", "error": "bad | password"
        }))
        .unwrap();
        Item { seq: 7, leaf }
    }

    fn origin() -> Origin {
        Origin { host: "trail host".into(), version: "0.1.0" }
    }

    #[test]
    fn formats_belong_to_their_transport() {
        use trail_store::streams::StreamKind;
        assert!(Format::Cef.carried_by(StreamKind::Http).is_err());
        assert!(Format::SplunkHec.carried_by(StreamKind::Syslog).is_err());
        assert_eq!(Format::parse("xml"), None);
        assert_eq!(Format::Ocsf.carried_by(StreamKind::Syslog), Ok(Format::Ocsf));
    }

    #[test]
    fn cef_escapes_its_separators() {
        let it = item();
        let line = cef(&it, &LeafView::read(&it.leaf).unwrap(), &origin());
        assert!(line.starts_with("CEF:0|Trail|Trail|0.1.0|auth:login|auth:login|7|rt=1709287200000 "), "{line}");
        assert!(line.contains("suser=a\\=b@x.io") && line.contains("msg=bad | password"), "{line}");
        assert!(line.contains("src=203.0.113.9") && line.contains("cn1=7"), "{line}");
    }

    #[test]
    fn syslog_frames_count_their_octets() {
        let f = syslog_event(Format::Jsonl, &item(), &origin()).unwrap();
        let text = String::from_utf8(f).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(
            msg.starts_with("<108>1 2024-03-01T10:00:00.000000Z trailhost trail - auth:login [trail@32473 "),
            "{msg}"
        );
        let (body, _) = http_body(Format::SplunkHec, &[item()], &origin());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((v["time"].as_str(), v["fields"]["seq"].as_u64()), (Some("1709287200.000000"), Some(7)));
        assert_eq!(
            (v["event"]["action"].as_str(), v["sourcetype"].as_str()),
            (Some("auth:login"), Some("trail:audit"))
        );
    }
}
