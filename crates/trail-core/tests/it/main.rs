//! trail-core's integration tests, one binary: the proof verifiers against the shared
//! RFC 6962 / RFC 9162 vectors.

mod vectors;
