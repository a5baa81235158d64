//! What tests of Trail share, behind the `testing` feature (and in this crate's own
//! tests): the conformance suite every backend must pass, and throwaway PostgreSQL
//! clusters. None of it is in a release build.

pub mod conformance;
mod pg_cluster;

pub use pg_cluster::Cluster;
