//! trail-client's integration tests, one binary: the client and the layer against a
//! real Trail server started by the tests.

mod client;
