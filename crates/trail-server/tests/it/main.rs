//! The server's integration tests, one binary: real HTTP against a server on an
//! ephemeral port, a real SQLite store, real SMTP and file systems where a feature
//! needs them. `support` holds what they share.

mod access;
mod alerts;
mod attacks;
mod exports;
mod failures;
mod holds;
mod http;
mod import;
mod isolation;
mod metrics;
mod openapi;
mod slow_clients;
mod streams;
mod support;
mod syslog;
mod tiles;
