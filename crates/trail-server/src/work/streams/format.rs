//! What a stream sends, per format and transport: HTTP batch bodies (JSON Lines of the
//! stored bytes, OCSF records, Splunk HTTP Event Collector events) and syslog
//! messages (RFC 5424, octet-counted per RFC 6587; the MSG is the stored bytes, an
//! OCSF record or a CEF line). No I/O.

use std::fmt::Write as _;

use serde_json::{json, Value};
use trail_core::{event::Outcome, Event};

use super::ocsf;

/// A stream's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Ocsf,
    SplunkHec,
    Cef,
}

impl Format {
    /// A format by its API name, if the transport (`http`, `syslog`) carries it.
    pub fn parse(name: &str, kind: &str) -> Result<Format, String> {
        let f = match name {
            "jsonl" => Format::Jsonl,
            "ocsf" => Format::Ocsf,
            "splunk_hec" => Format::SplunkHec,
            "cef" => Format::Cef,
            _ => return Err(format!("'{name}' is not a format (jsonl, ocsf, splunk_hec, cef)")),
        };
        match (kind, f) {
            ("http", Format::Cef) => Err("cef is sent over syslog; HTTP streams send jsonl, ocsf or splunk_hec".into()),
            ("syslog", Format::SplunkHec) => {
                Err("splunk_hec is sent over HTTP; syslog streams send jsonl, ocsf or cef".into())
            }
            _ => Ok(f),
        }
    }
}

/// One event of a batch: its seq, stored bytes and parsed form.
pub struct Item {
    pub seq: u64,
    pub leaf: Vec<u8>,
    pub event: Event,
}

/// Who is sending: the installation's name (syslog HOSTNAME, Splunk `host`) and
/// Trail's version.
pub struct Origin {
    pub host: String,
    pub version: &'static str,
}

/// An HTTP batch's body and content type.
pub fn http_body(format: Format, items: &[Item], origin: &Origin) -> (Vec<u8>, &'static str) {
    let mut body = Vec::new();
    for it in items {
        match format {
            Format::Jsonl | Format::Cef => body.extend_from_slice(&it.leaf),
            Format::Ocsf => {
                body.extend_from_slice(ocsf::record(&it.event, &it.leaf, origin.version).to_string().as_bytes())
            }
            Format::SplunkHec => body.extend_from_slice(splunk(it, origin).to_string().as_bytes()),
        }
        body.push(b'\n');
    }
    (body, "application/x-ndjson")
}

/// A Splunk HTTP Event Collector event (the `/services/collector/event` shape).
pub fn splunk(it: &Item, origin: &Origin) -> Value {
    let event: Value = serde_json::from_slice(&it.leaf).unwrap_or(Value::Null);
    json!({
        "time": format!("{}.{:06}", it.event.timestamp.0.div_euclid(1_000_000), it.event.timestamp.0.rem_euclid(1_000_000)),
        "host": origin.host,
        "source": format!("trail:{}", it.event.org),
        "sourcetype": "trail:audit",
        "event": event,
        "fields": { "org": it.event.org, "seq": it.seq, "category": it.event.category(), "result": it.event.result.as_str() },
    })
}

fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('=', "\\=").replace('\n', "\\n").replace('\r', "\\r")
}

/// One event as an ArcSight Common Event Format line.
pub fn cef(it: &Item, origin: &Origin) -> String {
    let e = &it.event;
    let severity = match e.result {
        Outcome::Failed => 7,
        _ => 3,
    };
    let mut line = format!(
        "CEF:0|Trail|Trail|{}|{}|{}|{severity}|",
        cef_header(origin.version),
        cef_header(&e.action),
        cef_header(&e.action)
    );
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", (e.timestamp.0 / 1000).to_string()),
        ("act", e.action.clone()),
        ("cat", e.category().to_string()),
        ("outcome", if e.result == Outcome::Failed { "failure".into() } else { "success".into() }),
        ("externalId", e.id.to_string()),
        ("cs1Label", "org".into()),
        ("cs1", e.org.clone()),
        ("cn1Label", "seq".into()),
        ("cn1", it.seq.to_string()),
    ];
    if let Some(a) = &e.actor {
        if let Some(v) = a.email.clone().or_else(|| a.name.clone()) {
            ext.push(("suser", v));
        }
        if let Some(v) = &a.id {
            ext.push(("suid", v.clone()));
        }
    }
    if let Some(ip) = &e.source_ip {
        ext.push(("src", ip.clone()));
    }
    if let Some(ua) = &e.user_agent {
        ext.push(("requestClientApplication", ua.clone()));
    }
    if let Some(r) = &e.resource {
        if let Some(v) = r.name.clone().or_else(|| r.id.clone()) {
            ext.push(("cs2Label", "resource".into()));
            ext.push(("cs2", v));
        }
    }
    if let Some(id) = &e.request_id {
        ext.push(("cs3Label", "requestId".into()));
        ext.push(("cs3", id.clone()));
    }
    if let Some(err) = &e.error {
        ext.push(("msg", err.clone()));
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

/// An event as one framed syslog message.
pub fn syslog_event(format: Format, it: &Item, origin: &Origin) -> Vec<u8> {
    let e = &it.event;
    let msg = match format {
        Format::Cef => cef(it, origin),
        Format::Ocsf => ocsf::record(e, &it.leaf, origin.version).to_string(),
        Format::Jsonl | Format::SplunkHec => String::from_utf8_lossy(&it.leaf).into_owned(),
    };
    let sd = format!("[trail@{PEN} org=\"{}\" seq=\"{}\" id=\"{}\"]", sd_value(&e.org), it.seq, e.id);
    let severity = if e.result == Outcome::Failed { 4 } else { 6 };
    frame(severity, &e.timestamp.to_rfc3339_micros(), &origin.host, &e.action, &sd, &msg)
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
        Item { seq: 7, event: Event::from_leaf(&leaf).unwrap(), leaf }
    }

    fn origin() -> Origin {
        Origin { host: "trail host".into(), version: "0.1.0" }
    }

    #[test]
    fn formats_belong_to_their_transport() {
        assert!(Format::parse("cef", "http").is_err());
        assert!(Format::parse("splunk_hec", "syslog").is_err());
        assert!(Format::parse("xml", "http").unwrap_err().contains("not a format"));
        assert_eq!(Format::parse("ocsf", "syslog"), Ok(Format::Ocsf));
    }

    #[test]
    fn cef_escapes_its_separators() {
        let line = cef(&item(), &origin());
        assert!(line.starts_with("CEF:0|Trail|Trail|0.1.0|auth:login|auth:login|7|rt=1709287200000 "), "{line}");
        assert!(line.contains("suser=a\\=b@x.io") && line.contains("msg=bad | password"), "{line}");
        assert!(line.contains("src=203.0.113.9") && line.contains("cn1=7"), "{line}");
    }

    #[test]
    fn syslog_frames_count_their_octets() {
        let f = syslog_event(Format::Jsonl, &item(), &origin());
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
    }
}
