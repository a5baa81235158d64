//! Streams in the SIEM formats, against receivers started here: a syslog listener over
//! TCP and one over TLS (a certificate made for the test, trusted through
//! `[streams] ca_file`) that split octet-counted frames (RFC 6587) and parse each as
//! RFC 5424 with `syslog_loose`; CEF lines; OCSF records validated against the OCSF
//! schema by `tests/support/ocsf_check.py` (the pinned `ocsf-json-schema` package);
//! Splunk HTTP Event Collector events.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use trail_server::AppState;
use trail_store::KeyScope;

use crate::{
    streams::{config, receiver, vkey},
    support::{self, until, Api},
};

/// One parsed syslog message.
#[derive(Debug, Clone)]
struct Received {
    facility: Option<String>,
    msgid: Option<String>,
    /// `id`: `[(name, value)]` of each structured data element.
    sd: Vec<(String, Vec<(String, String)>)>,
    msg: String,
}

impl Received {
    fn param(&self, id: &str, name: &str) -> Option<String> {
        let e = self.sd.iter().find(|(i, _)| i == id)?;
        e.1.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// Reads one connection to its end: `LEN SP MSG` frames, each parsed as RFC 5424.
async fn frames(mut conn: impl AsyncRead + Unpin, inbox: Inbox) {
    let mut bytes = Vec::new();
    if conn.read_to_end(&mut bytes).await.is_err() {
        return;
    }
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').expect("a frame length");
        let len: usize = std::str::from_utf8(&rest[..space]).unwrap().parse().expect("a decimal length");
        let msg = std::str::from_utf8(&rest[space + 1..space + 1 + len]).expect("UTF-8");
        rest = &rest[space + 1 + len..];
        let m = syslog_loose::parse_message(msg, syslog_loose::Variant::RFC5424);
        assert!(matches!(m.protocol, syslog_loose::Protocol::RFC5424(1)), "not RFC 5424: {msg}");
        let sd = m
            .structured_data
            .iter()
            .map(|e| (e.id.to_string(), e.params().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
            .collect();
        inbox.lock().unwrap().push(Received {
            facility: m.facility.map(|f| format!("{f:?}")),
            msgid: m.msgid.map(str::to_string),
            sd,
            msg: m.msg.to_string(),
        });
    }
}

async fn tcp_listener() -> (Inbox, u16) {
    let inbox: Inbox = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let i = inbox.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            tokio::spawn(frames(c, i.clone()));
        }
    });
    (inbox, port)
}

/// A TLS listener with a certificate for 127.0.0.1 whose PEM is written to `ca`.
async fn tls_listener(ca: &Path) -> (Inbox, u16) {
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(ca, cert.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let inbox: Inbox = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let i = inbox.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            let (acceptor, i) = (acceptor.clone(), i.clone());
            tokio::spawn(async move {
                if let Ok(t) = acceptor.accept(c).await {
                    frames(t, i).await;
                }
            });
        }
    });
    (inbox, port)
}

/// Runs the OCSF schema check on records; panics with its findings.
fn ocsf_valid(records: &[String]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ocsf_check.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the OCSF check");
    child.stdin.take().unwrap().write_all(records.join("\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "OCSF records do not validate (pip install ocsf-json-schema==1.2.0; bash .ci/run installs it):\n{text}"
    );
    assert_eq!(text.trim(), format!("ok {}", records.len()));
}

fn sample() -> Value {
    json!([
        {"action": "auth:login", "result": "FAILED", "actor": {"email": "eve@acme.com"}, "source_ip": "203.0.113.7",
         "user_agent": "curl/8", "error": "bad password | twice"},
        {"action": "auth:logout", "actor": {"email": "ann@acme.com", "name": "Ann"}},
        {"action": "user:create", "actor": {"email": "ann@acme.com"}, "resource": {"type": "user", "id": "u-9", "name": "bob"}},
        {"action": "role:assign", "actor": {"id": "key-1", "type": "api_key"}, "resource": {"name": "admin"}},
        {"action": "cluster:delete", "actor": {"email": "ops@acme.com"}, "resource": {"type": "cluster", "name": "prod"},
         "request_id": "req-1", "status_code": 500, "result": "FAILED"},
        {"action": "billing:view"}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tcp_and_tls_and_the_siem_formats() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], true).await;
    let admin = support::key(&*store, "acme", KeyScope::Admin).await;
    let ca = dir.path().join("ca.pem");
    let (tls_inbox, tls_port) = tls_listener(&ca).await;
    let (tcp_inbox, tcp_port) = tcp_listener().await;
    let (rx, addr) = receiver().await;
    let mut c = config(None);
    c.streams.ca_pem = Some(std::fs::read_to_string(&ca).unwrap());
    let server = support::serve(AppState::new(store.clone(), c, trail_server::system_clock())).await;
    let api = Api::new(&server.base, &admin);
    api.ingest(sample()).await;
    for (name, body) in [
        ("cef", json!({"kind": "syslog", "address": format!("127.0.0.1:{tcp_port}"), "format": "cef"})),
        (
            "ocsf-tls",
            json!({"kind": "syslog", "address": format!("127.0.0.1:{tls_port}"), "tls": true, "format": "ocsf"}),
        ),
        ("ocsf-http", json!({"kind": "http", "url": format!("http://{addr}/raw-ocsf"), "format": "ocsf"})),
        (
            "hec",
            json!({"kind": "http", "url": format!("http://{addr}/raw-hec"), "format": "splunk_hec",
                       "headers": {"Authorization": "Splunk 0000-1111"}}),
        ),
    ] {
        let mut body = body;
        body["name"] = json!(name);
        body["start"] = json!("beginning");
        body["query"] = json!("category:auth,user,role,cluster,billing");
        let (code, v) = api.call(Method::POST, "/api/v1/streams", Some(body)).await;
        assert_eq!(code, 201, "{name}: {v}");
    }
    let n = sample().as_array().unwrap().len();
    let events = |inbox: &Inbox| -> Vec<Received> {
        inbox.lock().unwrap().iter().filter(|m| m.msgid.as_deref() != Some("trail.batch")).cloned().collect()
    };
    until("the syslog messages", async || {
        (events(&tcp_inbox).len() >= n && events(&tls_inbox).len() >= n).then_some(())
    })
    .await;

    // Syslog over TCP, CEF: log audit facility, Trail's structured data, seqs in order.
    let cef = events(&tcp_inbox);
    assert!(cef.iter().all(|m| m.facility.as_deref() == Some("LOG_AUDIT")), "{cef:?}");
    let seqs: Vec<u64> = cef.iter().map(|m| m.param("trail@32473", "seq").unwrap().parse().unwrap()).collect();
    assert_eq!(seqs, (0..n as u64).collect::<Vec<_>>());
    assert!(cef[0].msg.starts_with("CEF:0|Trail|Trail|"), "{}", cef[0].msg);
    assert!(
        cef[0].msg.contains("|auth:login|auth:login|7|") && cef[0].msg.contains("src=203.0.113.7"),
        "{}",
        cef[0].msg
    );
    assert!(cef[0].msg.contains("msg=bad password | twice") && cef[0].msg.contains("cn1=0"), "{}", cef[0].msg);
    assert_eq!(cef[4].msgid.as_deref(), Some("cluster:delete"));
    // Each batch ends with its seqs and a checkpoint that covers them, signed by the log.
    let batches: Vec<Received> =
        tcp_inbox.lock().unwrap().iter().filter(|m| m.msgid.as_deref() == Some("trail.batch")).cloned().collect();
    assert!(!batches.is_empty());
    for b in &batches {
        use base64::Engine;
        let last: u64 = b.param("trail-batch@32473", "last").unwrap().parse().unwrap();
        let note = base64::engine::general_purpose::STANDARD
            .decode(b.param("trail-batch@32473", "checkpoint").unwrap())
            .unwrap();
        let cp = trail_core::checkpoint::verify(std::str::from_utf8(&note).unwrap(), &vkey()).unwrap();
        assert!(cp.size > last, "{b:?}");
    }

    // Syslog over TLS, OCSF: every record validates against the OCSF schema.
    let ocsf: Vec<String> = events(&tls_inbox).into_iter().map(|m| m.msg).collect();
    ocsf_valid(&ocsf);
    let classes: Vec<u64> =
        ocsf.iter().map(|r| serde_json::from_str::<Value>(r).unwrap()["class_uid"].as_u64().unwrap()).collect();
    assert_eq!(classes, [3002, 3002, 3001, 3001, 6003, 6003]);

    // HTTP, OCSF and Splunk HEC.
    until("the HTTP streams", async || {
        (rx.copy("/raw-ocsf", |c| c.lines.len()) >= n && rx.copy("/raw-hec", |c| c.lines.len()) >= n).then_some(())
    })
    .await;
    let records = rx.copy("/raw-ocsf", |c| c.lines.clone());
    ocsf_valid(&records);
    let first: Value = serde_json::from_str(&records[0]).unwrap();
    assert_eq!(first["metadata"]["version"], trail_server::work::streams::ocsf::OCSF_VERSION);
    let raw: Value = serde_json::from_str(first["raw_data"].as_str().unwrap()).unwrap();
    assert_eq!(raw["seq"], 0, "the stored event is kept whole");
    let hec = rx.copy("/raw-hec", |c| {
        assert!(c.headers.iter().all(|h| h["authorization"] == "Splunk 0000-1111"));
        c.lines.clone()
    });
    let e: Value = serde_json::from_str(&hec[4]).unwrap();
    assert_eq!((e["sourcetype"].as_str(), e["source"].as_str()), (Some("trail:audit"), Some("trail:acme")), "{e}");
    assert_eq!((e["event"]["action"].as_str(), e["fields"]["seq"].as_u64()), (Some("cluster:delete"), Some(4)), "{e}");
    assert!(e["time"].as_str().unwrap().contains('.'), "{e}");
}
