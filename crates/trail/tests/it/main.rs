//! The `trail` binary's integration tests, one binary: the command line, `trail serve`
//! over HTTP, the page in Chromium, PostgreSQL clusters started by the tests, retention
//! with its failpoint, an S3 server (SeaweedFS). `support` holds what they share.

mod architecture;
mod bucket;
mod cli;
mod e2e;
mod import;
mod lifecycle;
mod mirror;
mod package;
mod postgres;
mod prometheus;
mod readme;
mod retention;
mod streams;
mod support;
mod tamper;
mod witness;
