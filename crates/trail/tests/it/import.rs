//! `trail import` as a user runs it: a gzip CloudTrail log file and a JSON Lines file of
//! Kubernetes events with a malformed line, the summary printed last, a second import
//! storing nothing twice, bad input refused.

use std::io::Write;

use serde_json::json;

use crate::{
    cli::run_err,
    support::{run_ok, trail},
};

#[test]
fn cloudtrail_and_kubernetes_files_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(trail(d).args(["keys", "create", "--org", "acme", "--scope", "ingest"]));
    let records: Vec<_> = (0..30)
        .map(|i| {
            json!({"eventTime": "2026-11-26T09:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "PutObject",
                   "eventID": format!("ct-{i}"), "sourceIPAddress": if i % 2 == 0 { "198.51.100.2" } else { "ec2.amazonaws.com" },
                   "userIdentity": {"type": "IAMUser", "userName": "bob"}, "awsRegion": "eu-west-1"})
        })
        .collect();
    let gz = d.join("cloudtrail.json.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(json!({"Records": records}).to_string().as_bytes()).unwrap();
    enc.finish().unwrap();
    let k8s = d.join("audit.log");
    let line = |id: &str, stage: &str| {
        json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": id, "stage": stage, "verb": "get",
               "user": {"username": "alice"}, "sourceIPs": ["10.0.0.1"], "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db"}})
        .to_string()
    };
    std::fs::write(
        &k8s,
        [line("k-1", "ResponseComplete"), "{not json".into(), line("k-2", "RequestReceived")].join("\n"),
    )
    .unwrap();

    let out =
        trail(d).args(["import", "--format", "cloudtrail", "--org", "acme", gz.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("imported 30, duplicates 0, skipped 0"));
    let out = trail(d).args(["import", "--format", "k8s", "--org", "acme", k8s.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("audit.log:2: skipped: not JSON") && err.contains("audit.log:3: skipped: stage RequestReceived"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("imported 1, duplicates 0, skipped 2"));
    // Importing the same file again stores nothing twice.
    let again = run_ok(trail(d).args(["import", "--format", "cloudtrail", "--org", "acme", gz.to_str().unwrap()]));
    assert_eq!(again.lines().last(), Some("imported 0, duplicates 30, skipped 0"));
    let table = run_ok(trail(d).args(["query", "--format", "jsonl", "--limit", "1000", "action:s3:putobject"]));
    assert_eq!(table.lines().count(), 30);
    assert!(table.contains("\"origin\":\"ec2.amazonaws.com\""), "a service name is kept as the origin");
    // Bad input: a format, an organization, a file.
    assert!(run_err(trail(d).args(["import", "--format", "splunk", "--org", "acme", "x"])).contains("--format"));
    assert!(run_err(trail(d).args(["import", "--format", "k8s", "--org", "nobody", k8s.to_str().unwrap()]))
        .contains("nobody"));
    assert!(run_err(trail(d).args(["import", "--format", "k8s", "--org", "acme", "/no/such/file"]))
        .contains("/no/such/file"));
}

/// A small `.gz` that expands past the limit is refused, naming the file and the limit,
/// before the expansion is held in memory; under the limit the same content imports.
#[test]
fn a_decompression_bomb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(trail(d).args(["keys", "create", "--org", "acme", "--scope", "ingest"]));
    let bomb = d.join("bomb.json.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&bomb).unwrap(), flate2::Compression::best());
    enc.write_all(b"{\"Records\": [").unwrap();
    // 3 MiB of spaces: a few KB compressed.
    enc.write_all(&vec![b' '; 3 << 20]).unwrap();
    enc.write_all(b"]}").unwrap();
    enc.finish().unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 64 * 1024);
    let path = bomb.to_str().unwrap();
    let err =
        run_err(trail(d).args(["import", "--format", "cloudtrail", "--org", "acme", "--max-expanded-mib", "2", path]));
    assert!(err.contains("bomb.json.gz: expands to more than 2 MiB"), "{err}");
    let ok =
        run_ok(trail(d).args(["import", "--format", "cloudtrail", "--org", "acme", "--max-expanded-mib", "4", path]));
    assert!(ok.contains("imported 0"), "{ok}");
}
