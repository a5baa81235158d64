//! Archives in an S3-compatible bucket (`s3://bucket/prefix`), through the AWS SDK:
//! each object written once (`If-None-Match: *`), with its SHA-256 for the server to
//! check and, when configured, an Object Lock retention; confirmed afterwards by a
//! `HEAD` that returns the checksum the server stored. Credentials come from the
//! environment or the AWS profile files, as the AWS tools read them.

use std::time::Duration;

use aws_sdk_s3::{
    config::{Region, RequestChecksumCalculation, ResponseChecksumValidation},
    error::{ProvideErrorMetadata, SdkError},
    primitives::{ByteStream, DateTime},
    types::{ChecksumMode, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode},
    Client,
};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// How a bucket archive is reached and what each object it writes carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketConfig {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// The S3 endpoint (`https://…`); `None`: AWS's own for the region.
    pub endpoint: Option<String>,
    /// `None`: the AWS profile's or `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), as most S3-compatible servers want.
    pub path_style: bool,
    /// The Object Lock every archive object gets, with `retain_years`.
    pub object_lock: Option<LockMode>,
    pub retain_years: u32,
    /// An access key and secret given directly (tests, tools); `None`: the environment
    /// and the AWS profile files.
    pub credentials: Option<(String, String)>,
}

/// An Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Nobody can delete or overwrite the object before its date, the operator included.
    Compliance,
    /// Users with a special permission can lift it.
    Governance,
}

impl LockMode {
    pub fn parse(s: &str) -> Option<LockMode> {
        match s {
            "compliance" => Some(LockMode::Compliance),
            "governance" => Some(LockMode::Governance),
            _ => None,
        }
    }
}

/// The bucket and prefix of an `s3://` URL.
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("'{url}' is not an s3://bucket/prefix URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid {
        return Err(format!("'{bucket}' is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"));
    }
    let prefix = prefix.trim_matches('/');
    Ok((bucket.to_string(), if prefix.is_empty() { String::new() } else { format!("{prefix}/") }))
}

/// A bucket, a prefix inside it, and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Bucket {
    client: Client,
    bucket: String,
    prefix: String,
    lock: Option<(LockMode, u32)>,
    url: String,
}

/// What a write found at its key.
pub enum Put {
    Written,
    /// An object was already there (write-once): its bytes are not overwritten.
    Exists,
}

fn err<E: ProvideErrorMetadata + std::fmt::Debug>(what: &str, e: &SdkError<E>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("error");
            let msg = s.err().message().unwrap_or("");
            format!("{what}: {code} (HTTP {}) {msg}", s.raw().status().as_u16()).trim_end().to_string()
        }
        SdkError::TimeoutError(_) => format!("{what}: the bucket did not answer in time"),
        SdkError::DispatchFailure(d) => format!("{what}: the bucket cannot be reached ({d:?})"),
        other => format!("{what}: {other}"),
    }
}

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn unavailable(m: String) -> StoreError {
    StoreError::Unavailable(m)
}

impl Bucket {
    /// Connects, and checks at once that the bucket exists, the credentials reach it,
    /// and (with a lock configured) that it has Object Lock enabled: each error names
    /// the setting to fix.
    pub async fn open(config: &BucketConfig) -> Result<Bucket, StoreError> {
        let bad = |field: &str, message: String| StoreError::Invalid { field: field.into(), message };
        let (bucket, prefix) = parse_url(&config.url).map_err(|m| bad("archive.url", m))?;
        if let Some(e) = &config.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(bad("archive.endpoint", format!("'{e}' is not an http(s):// URL")));
            }
        }
        if config.object_lock.is_some() && config.retain_years == 0 {
            return Err(bad("archive.retain_years", "an Object Lock needs a retention of at least one year".into()));
        }
        let client = client(config).await;
        let b = Bucket {
            client,
            bucket: bucket.clone(),
            prefix,
            lock: config.object_lock.map(|m| (m, config.retain_years)),
            url: config.url.clone(),
        };
        if let Err(e) = b.client.head_bucket().bucket(&bucket).send().await {
            let (field, why) = match status(&e) {
                Some(404) => ("archive.url", format!("the bucket '{bucket}' does not exist")),
                Some(401 | 403) => (
                    "archive.url",
                    format!(
                        "the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS profile) are refused for bucket '{bucket}'"
                    ),
                ),
                Some(_) => ("archive.url", err(&format!("bucket '{bucket}'"), &e)),
                None => ("archive.endpoint", err(&format!("bucket '{bucket}'"), &e)),
            };
            return Err(bad(field, why));
        }
        if config.object_lock.is_some() {
            let enabled = match b.client.get_object_lock_configuration().bucket(&bucket).send().await {
                Ok(o) => o.object_lock_configuration().and_then(|c| c.object_lock_enabled()).cloned(),
                Err(_) => None,
            };
            if enabled != Some(ObjectLockEnabled::Enabled) {
                return Err(bad(
                    "archive.object_lock",
                    format!("the bucket '{bucket}' was not created with Object Lock enabled"),
                ));
            }
        }
        Ok(b)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// Writes `bytes` at `path` unless something is there already (`Put::Exists`), with
    /// its SHA-256 for the server to check and the configured lock (`locked`).
    pub async fn put_once(&self, path: &str, bytes: Vec<u8>, locked: bool, now: i64) -> Result<Put, StoreError> {
        let sum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .if_none_match("*")
            .checksum_sha256(sum)
            .body(ByteStream::from(bytes));
        if let (true, Some((mode, years))) = (locked, self.lock) {
            let until = now / 1_000_000 + i64::from(years) * 365 * 86_400 + i64::from(years / 4) * 86_400;
            put = put
                .object_lock_mode(match mode {
                    LockMode::Compliance => ObjectLockMode::Compliance,
                    LockMode::Governance => ObjectLockMode::Governance,
                })
                .object_lock_retain_until_date(DateTime::from_secs(until));
        }
        match put.send().await {
            Ok(_) => Ok(Put::Written),
            Err(e) if status(&e) == Some(412) => Ok(Put::Exists),
            Err(e) => Err(unavailable(err(&format!("writing {}", self.key(path)), &e))),
        }
    }

    /// Overwrites `path` (a published checkpoint: the only object that changes).
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let sum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        let put = self.client.put_object().bucket(&self.bucket).key(self.key(path)).checksum_sha256(sum);
        put.body(ByteStream::from(bytes))
            .send()
            .await
            .map(drop)
            .map_err(|e| unavailable(err(&format!("writing {}", self.key(path)), &e)))
    }

    /// The SHA-256 (base64) and length the server stored for `path` (`HEAD` with its
    /// checksum); no checksum when the server keeps none.
    pub async fn stored_checksum(&self, path: &str) -> Result<(Option<String>, Option<i64>), StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| unavailable(err(&format!("checking {}", self.key(path)), &e)))?;
        Ok((head.checksum_sha256().map(|s| s.split('-').next().unwrap_or(s).to_string()), head.content_length()))
    }

    /// Whether the object at `path` holds exactly `len` bytes of SHA-256 `sha256`, as
    /// the server reports them (`HEAD` with its stored checksum).
    pub async fn confirm(&self, path: &str, len: usize, sha256: &[u8]) -> Result<bool, StoreError> {
        let want = base64::engine::general_purpose::STANDARD.encode(sha256);
        match self.stored_checksum(path).await? {
            (Some(sum), stored_len) => Ok(sum == want && stored_len == Some(len as i64)),
            // A server that keeps no checksum: the bytes are read back instead.
            (None, _) => Ok(self.get(path).await?.is_some_and(|b| b.len() == len && Sha256::digest(&b)[..] == *sha256)),
        }
    }

    /// The object at `path`, or `None` if there is none.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.client.get_object().bucket(&self.bucket).key(self.key(path)).send().await {
            Ok(o) => {
                let body = o.body.collect().await.map_err(|e| unavailable(format!("reading {path}: {e}")))?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(unavailable(err(&format!("reading {}", self.key(path)), &e))),
        }
    }

    /// The paths (below the prefix) of the objects under `dir`.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut pages =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(self.key(dir)).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable(err(&format!("listing {}", self.key(dir)), &e)))?;
            for o in page.contents() {
                if let Some(k) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    out.push(k.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every version of `path` (newest first) and whether each is a delete marker.
    async fn versions(&self, path: &str) -> Result<Vec<(String, bool)>, StoreError> {
        let key = self.key(path);
        let out = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(&key)
            .send()
            .await
            .map_err(|e| unavailable(err(&format!("listing the versions of {key}"), &e)))?;
        let mut all: Vec<(String, bool, Option<DateTime>)> = Vec::new();
        for v in out.versions().iter().filter(|v| v.key() == Some(&key)) {
            all.push((v.version_id().unwrap_or("null").to_string(), false, v.last_modified().cloned()));
        }
        for m in out.delete_markers().iter().filter(|m| m.key() == Some(&key)) {
            all.push((m.version_id().unwrap_or("null").to_string(), true, m.last_modified().cloned()));
        }
        all.sort_by_key(|v| std::cmp::Reverse(v.2));
        Ok(all.into_iter().map(|(v, marker, _)| (v, marker)).collect())
    }

    /// The bytes at `path` that `ok` accepts: the current version, else (when someone
    /// hid it behind a delete marker or a newer version, which a lock allows) the newest
    /// older version it accepts; else the current one, or `None`.
    pub async fn get_checked(&self, path: &str, ok: impl Fn(&[u8]) -> bool) -> Result<Option<Vec<u8>>, StoreError> {
        let current = self.get(path).await?;
        if current.as_deref().is_some_and(&ok) {
            return Ok(current);
        }
        for (v, _) in self.versions(path).await?.into_iter().filter(|(_, marker)| !marker) {
            let got = self.client.get_object().bucket(&self.bucket).key(self.key(path)).version_id(&v).send().await;
            if let Ok(o) = got {
                let body = o.body.collect().await.map_err(|e| unavailable(format!("reading {path}: {e}")))?;
                let bytes = body.into_bytes().to_vec();
                if ok(&bytes) {
                    return Ok(Some(bytes));
                }
            }
        }
        Ok(current)
    }

    /// Deletes every version of `path`; `false` if a lock (or a legal hold) keeps one.
    pub async fn delete(&self, path: &str) -> Result<bool, StoreError> {
        let mut all = true;
        for (v, _) in self.versions(path).await? {
            let del = self.client.delete_object().bucket(&self.bucket).key(self.key(path)).version_id(&v).send().await;
            match del {
                Ok(_) => {}
                Err(e) if status(&e) == Some(404) => {}
                Err(e) if status(&e) == Some(403) => all = false,
                Err(e) => return Err(unavailable(err(&format!("deleting {}", self.key(path)), &e))),
            }
        }
        Ok(all)
    }

    /// Sets or lifts the S3 legal hold of `path`.
    pub async fn legal_hold(&self, path: &str, on: bool) -> Result<(), StoreError> {
        let status = if on { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
        self.client
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(self.key(path))
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map(drop)
            .map_err(|e| unavailable(err(&format!("the legal hold of {}", self.key(path)), &e)))
    }

    /// Whether the S3 legal hold of `path` is on.
    pub async fn held(&self, path: &str) -> Result<bool, StoreError> {
        match self.client.get_object_legal_hold().bucket(&self.bucket).key(self.key(path)).send().await {
            Ok(o) => Ok(o.legal_hold().and_then(|h| h.status()) == Some(&ObjectLockLegalHoldStatus::On)),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(unavailable(err(&format!("the legal hold of {}", self.key(path)), &e))),
        }
    }
}

/// Creates the bucket of `config.url` (with Object Lock enabled when `lock`): for tests
/// and first setups; an existing bucket of ours is fine.
pub async fn create_bucket(config: &BucketConfig, lock: bool) -> Result<(), StoreError> {
    let (bucket, _) =
        parse_url(&config.url).map_err(|m| StoreError::Invalid { field: "archive.url".into(), message: m })?;
    let c = client(config).await;
    match c.create_bucket().bucket(&bucket).object_lock_enabled_for_bucket(lock).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => Ok(()),
        Err(e) => Err(unavailable(err(&format!("creating bucket '{bucket}'"), &e))),
    }
}

/// The SDK client: rustls on ring, a timeout on every call, checksums only where we
/// give them (S3-compatible servers differ in the newer trailing checksums).
async fn client(config: &BucketConfig) -> Client {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(180))
        .build();
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http).timeout_config(timeouts);
    if let Some(r) = &config.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some((key, secret)) = &config.credentials {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(key, secret, None, None, "trail"));
    }
    let sdk = loader.load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(config.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if sdk.region().is_none() {
        b = b.region(Region::new("us-east-1"));
    }
    if let Some(e) = &config.endpoint {
        b = b.endpoint_url(e.trim_end_matches('/'));
    }
    Client::from_conf(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(parse_url("s3://trail-archive").unwrap(), ("trail-archive".into(), String::new()));
        assert_eq!(parse_url("s3://trail-archive/prod/eu/").unwrap(), ("trail-archive".into(), "prod/eu/".into()));
        assert!(parse_url("https://x/y").unwrap_err().contains("s3://"));
        assert!(parse_url("s3://Not_A_Bucket/x").unwrap_err().contains("bucket name"));
    }
}
