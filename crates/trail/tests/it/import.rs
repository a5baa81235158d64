//! `trail import` as a user runs it: a gzip CloudTrail log file and a JSON Lines file of
//! Kubernetes events with a malformed line, the summary printed last, a second import
//! storing nothing twice, bad input refused.

use std::{io::Write, process::Command};

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
        err.contains("audit.log:2: skipped: not JSON") && err.contains("audit.log:3: skipped: stage: RequestReceived"),
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

/// A log far larger than the memory `trail import` is seen to use imports whole: a
/// pretty-printed CloudTrail file and then JSON Lines, 320 MiB expanded from a small
/// `.gz`, through a process whose peak resident memory stays under half of that.
#[test]
fn a_large_log_imports_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(trail(d).args(["keys", "create", "--org", "acme", "--scope", "ingest"]));
    let pad = "p".repeat(4000);
    let record = |i: usize| {
        json!({"eventTime": "2026-11-26T09:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
               "eventID": format!("big-{}", i % 500), "userIdentity": {"type": "IAMUser", "userName": "bob"},
               "requestParameters": {"pad": pad}})
    };
    let gz = d.join("big.json.gz");
    let file = std::io::BufWriter::new(std::fs::File::create(&gz).unwrap());
    let mut out = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let (mut written, mut records) = (0usize, 0usize);
    // 64 MiB as one pretty-printed envelope, read item by item...
    out.write_all(b"{\n  \"Records\": [\n").unwrap();
    while written < 64 << 20 {
        let item = serde_json::to_string_pretty(&record(records)).unwrap();
        out.write_all(if records == 0 { b"    " } else { b",\n    " }).unwrap();
        out.write_all(item.as_bytes()).unwrap();
        (written, records) = (written + item.len(), records + 1);
    }
    out.write_all(b"\n  ]\n}\n").unwrap();
    // ...then JSON Lines, one of them broken.
    let mut bad_line_written = false;
    while written < 320 << 20 {
        let line = if records % 20_000 == 0 && !bad_line_written {
            bad_line_written = true;
            "{\"eventID\": broken".to_string()
        } else {
            records += 1;
            record(records).to_string()
        };
        out.write_all(line.as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
        written += line.len() + 1;
    }
    out.finish().unwrap().into_inner().unwrap().sync_all().unwrap();
    assert!(std::fs::metadata(&gz).unwrap().len() < 32 << 20);

    // Python runs it and reports the peak resident memory of exactly that child, as
    // the kernel counted it (`getrusage` of the children it waited for).
    let (stdout, stderr) = (d.join("out.txt"), d.join("err.txt"));
    let measured = Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys\n\
                      code = subprocess.call(sys.argv[1:])\n\
                      print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                      sys.exit(code)",
        ])
        .arg(env!("CARGO_BIN_EXE_trail"))
        .args(trail(d).get_args())
        .args(["import", "--format", "cloudtrail", "--org", "acme", "--max-expanded-mib", "400"])
        .arg(&gz)
        .envs(trail(d).get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("TRAIL_CONFIG")
        .stderr(std::fs::File::create(&stderr).unwrap())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .status()
        .unwrap();
    let (out, err) = (std::fs::read_to_string(&stdout).unwrap(), std::fs::read_to_string(&stderr).unwrap());
    assert!(measured.success(), "{err}");
    let mut out = out.lines().collect::<Vec<_>>();
    let peak_kib: usize = out.pop().unwrap().parse().unwrap();
    assert_eq!(out.last().copied(), Some(format!("imported 500, duplicates {}, skipped 1", records - 500).as_str()));
    assert_eq!(err.lines().filter(|l| l.contains("skipped: not JSON")).count(), 1, "{err}");
    let peak_mib = peak_kib / 1024;
    assert!(peak_mib < 160, "trail import of 320 MiB peaked at {peak_mib} MiB");
    eprintln!("320 MiB imported with a peak of {peak_mib} MiB");
}
