//! What tests of Trail share, behind the `testing` feature (and in this crate's own
//! tests): the conformance suite every backend must pass, throwaway PostgreSQL
//! clusters and a throwaway S3 server (SeaweedFS). None of it is in a release build.

pub mod conformance;
mod pg_cluster;
pub mod s3;
pub mod tamper_cases;

pub use pg_cluster::Cluster;

/// Each migration's SHA-256 must be the pinned one: a migration that ran somewhere is
/// never edited (a change goes in a new one), or stores would differ by when they were
/// made.
pub fn pinned_migrations(migrations: &[&str], want: &[&str], backend: &str) {
    use sha2::{Digest, Sha256};
    assert_eq!(migrations.len(), want.len(), "{backend}: a migration was added without pinning its hash");
    for (i, (sql, want)) in migrations.iter().zip(want).enumerate() {
        let got: String = Sha256::digest(sql.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&got, want, "{backend} migration {} was edited", i + 1);
    }
}
