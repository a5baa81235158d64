//! The full-log verification benchmark: `verify::verify` against SHA-256 of the same
//! stored bytes, in the same run.

use std::time::Instant;

use anyhow::Result;
use trail_store::sqlite::SqliteStore;

use crate::signed;

/// The full verification of the 900k-event organization against its reference, SHA-256
/// of the same stored bytes read by a bare rusqlite loop, alternating three times each;
/// returns the number of entries.
pub(crate) async fn verify_table(db: &std::path::Path, vkey: &str) -> Result<u64> {
    use sha2::Digest;
    let store = SqliteStore::open(db, signed())?;
    let mut rows = Vec::new();
    let mut entries = 0;
    for run in 0..3 {
        let started = Instant::now();
        let conn = rusqlite::Connection::open(db)?;
        let mut stmt = conn
            .prepare("SELECT leaf FROM leaves WHERE org_id = (SELECT id FROM orgs WHERE slug = 'acme') ORDER BY seq")?;
        let mut q = stmt.query([])?;
        let mut n = 0u64;
        let mut acc = [0u8; 32];
        while let Some(r) = q.next()? {
            let leaf: &[u8] = r.get_ref(0)?.as_blob()?;
            let h = sha2::Sha256::new().chain_update([0u8]).chain_update(leaf).finalize();
            acc[0] ^= h[0];
            n += 1;
        }
        let reference = started.elapsed().as_secs_f64();
        let cpu0 = cpu();
        let started = Instant::now();
        let opts = trail_store::verify::VerifyOptions { vkey, ..Default::default() };
        let report = trail_store::verify::verify(&store, "acme", opts).await?;
        let took = started.elapsed().as_secs_f64();
        let cpu_s = cpu() - cpu0;
        if !report.ok() {
            anyhow::bail!("verify failed: {}", report.problems());
        }
        entries = report.entries;
        rows.push((run, n, reference, report, took, cpu_s, acc[0]));
    }
    println!("## Full-log verification\n");
    println!(
        "`trail verify --org` (`verify::verify`) on the 900k-event organization: every entry's bytes hashed and \
         parsed, its indexed row compared field by field, every stored tree node recomputed, every checkpoint's \
         signature and root. Reference, in the same run: a bare rusqlite loop reading the same stored bytes in seq \
         order and taking SHA-256 of each (one core). Alternating, three runs each.\n"
    );
    println!(
        "| Run | Reference (read + SHA-256) | Trail verify | CPU time of verify (both cores) | Trail / reference |"
    );
    println!("|---|---|---|---|---|");
    for (run, n, reference, report, took, cpu_s, _) in &rows {
        let (r, t) = (*n as f64 / reference, report.entries as f64 / took);
        println!(
            "| {} | {r:.0} entries/s | {t:.0} entries/s ({} entries, {} nodes) | {cpu_s:.2} s in {took:.2} s | {:.2} |",
            run + 1,
            report.entries,
            report.nodes,
            t / r
        );
    }
    println!();
    Ok(entries)
}

/// The CPU time (user and system, s) this process has used, from `/proc/self/stat`
/// (0 where it cannot be read).
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
