//! Where archives are kept (`[archive]`: an S3-compatible bucket; otherwise the
//! directory `[retention] archive_dir`), opening the archive, and `trail archive move`
//! (a directory archive copied into a bucket, each object read back and verified).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use trail_store::{
    archive::{parse_url, Archive, BucketConfig, LockMode},
    StoreError,
};

use crate::config::Config;

/// `[archive]`: archives in an S3-compatible bucket.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileArchive {
    /// `s3://bucket/prefix` (default: the directory `[retention] archive_dir`).
    pub url: Option<String>,
    /// The S3 endpoint, e.g. `https://s3.eu-central-1.amazonaws.com` or a MinIO /
    /// SeaweedFS server (default: AWS's own for the region).
    pub endpoint: Option<String>,
    /// Default: `AWS_REGION` or the AWS profile's, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), as most S3-compatible servers want.
    pub path_style: Option<bool>,
    /// `compliance` or `governance`: the Object Lock each archive object gets.
    pub object_lock: Option<String>,
    /// Years each object stays locked (with `object_lock`).
    pub retain_years: Option<u32>,
}

/// Where the archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Dir(PathBuf),
    Bucket(BucketConfig),
}

/// Resolves `[archive]` (and `TRAIL_ARCHIVE_*`) against the directory default: where
/// the archive is, and the bucket settings (`trail archive move` uses them before the
/// URL is set).
pub(crate) fn place(
    file: FileArchive,
    env: &dyn Fn(&str) -> Option<String>,
    archive_dir: Option<PathBuf>,
    data_dir: &Path,
) -> Result<(Place, BucketConfig)> {
    let url = env("TRAIL_ARCHIVE_URL").or(file.url);
    let object_lock = match env("TRAIL_ARCHIVE_OBJECT_LOCK").or(file.object_lock) {
        None => None,
        Some(m) => Some(LockMode::parse(&m).with_context(|| {
            format!("[archive] object_lock (TRAIL_ARCHIVE_OBJECT_LOCK) must be compliance or governance, not '{m}'")
        })?),
    };
    let retain_years = match env("TRAIL_ARCHIVE_RETAIN_YEARS") {
        Some(y) => Some(y.parse::<u32>().with_context(|| {
            format!("[archive] retain_years (TRAIL_ARCHIVE_RETAIN_YEARS) must be a whole number of years, not '{y}'")
        })?),
        None => file.retain_years,
    };
    let endpoint = env("TRAIL_ARCHIVE_ENDPOINT").or(file.endpoint);
    if let Some(e) = &endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            bail!("[archive] endpoint (TRAIL_ARCHIVE_ENDPOINT) must be an http(s) URL, not '{e}'");
        }
    }
    if object_lock.is_some() && retain_years.unwrap_or(0) == 0 {
        bail!("[archive] object_lock needs retain_years: how many years each archive object stays locked");
    }
    let settings = BucketConfig {
        url: String::new(),
        endpoint,
        region: env("TRAIL_ARCHIVE_REGION").or(file.region),
        path_style: file.path_style.unwrap_or(false),
        object_lock,
        retain_years: retain_years.unwrap_or(0),
        credentials: None,
    };
    // Without a bucket URL the archive is a directory: `url` as a path (or `file://…`),
    // else `[retention] archive_dir`.
    let url = match url {
        Some(u) if u.starts_with("s3://") => u,
        Some(u) if !u.contains("://") || u.starts_with("file://") => {
            return Ok((Place::Dir(PathBuf::from(u.trim_start_matches("file://"))), settings));
        }
        Some(u) => bail!("[archive] url (TRAIL_ARCHIVE_URL) must be s3://bucket/prefix or a directory, not '{u}'"),
        None => {
            let dir =
                env("TRAIL_ARCHIVE_DIR").map(PathBuf::from).or(archive_dir).unwrap_or_else(|| data_dir.join("archive"));
            return Ok((Place::Dir(dir), settings));
        }
    };
    parse_url(&url).map_err(|m| anyhow::anyhow!("[archive] url (TRAIL_ARCHIVE_URL): {m}"))?;
    Ok((Place::Bucket(BucketConfig { url, ..settings.clone() }), settings))
}

/// Resolves `[transparency] publish`: a bucket URL (with `[archive]`'s endpoint and
/// settings, no lock), or `archive` for the archive's own bucket.
pub(crate) fn publish_place(
    publish: Option<String>,
    archive: &Place,
    settings: &BucketConfig,
) -> Result<Option<BucketConfig>> {
    let Some(url) = publish else { return Ok(None) };
    let url = match (url.as_str(), archive) {
        ("archive", Place::Bucket(b)) => b.url.clone(),
        ("archive", Place::Dir(_)) => {
            bail!("[transparency] publish = \"archive\" needs the archive in a bucket ([archive] url = \"s3://…\")")
        }
        _ => url,
    };
    parse_url(&url).map_err(|m| anyhow::anyhow!("[transparency] publish (TRAIL_PUBLISH): {m}"))?;
    Ok(Some(BucketConfig { url, object_lock: None, ..settings.clone() }))
}

/// The publisher's settings, its bucket opened (checked at once).
pub(crate) async fn publish(config: &Config) -> Result<Option<trail_server::work::publish::PublishConfig>> {
    let Some((bucket, private)) = &config.publish else { return Ok(None) };
    let target = Archive::open_bucket(bucket).await.map_err(|e| match e {
        StoreError::Invalid { field, message } if field.starts_with("archive.") => {
            anyhow::anyhow!("[transparency] publish: {message}")
        }
        other => anyhow::anyhow!("[transparency] publish: {other}"),
    })?;
    Ok(Some(trail_server::work::publish::PublishConfig {
        target,
        entries: *private,
        every: std::time::Duration::from_secs(1),
    }))
}

/// A store error from opening a bucket, naming the setting (`[archive] url: …`).
fn setting_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Invalid { field, message } => {
            anyhow::anyhow!("[archive] {}: {message}", field.trim_start_matches("archive."))
        }
        other => anyhow::anyhow!("the archive: {other}"),
    }
}

/// Opens the archive the configuration names (a bucket is checked at once).
pub(crate) async fn open(place: &Place) -> Result<Archive> {
    match place {
        Place::Dir(d) => Ok(Archive::new(d)),
        Place::Bucket(b) => Archive::open_bucket(b).await.map_err(setting_error),
    }
}

/// The archive retention writes to (and downloads and verification read).
pub(crate) async fn archive(config: &Config) -> Result<Option<Arc<Archive>>> {
    Ok(Some(Arc::new(open(&config.archive).await?)))
}

/// The retention settings with the archive opened.
pub(crate) async fn retention(config: &Config) -> Result<trail_server::RetentionConfig> {
    let mut r = config.retention.clone();
    r.archive = Some(open(&config.archive).await?);
    Ok(r)
}

/// `trail archive move --to s3://…`: every archive file the store records is copied
/// from the directory into the bucket (written once, locked as `[archive]` says), read
/// back and checked against its manifest; the directory's files are removed only when
/// every one is in the bucket.
pub(crate) async fn move_to(config: &Config, to: &str, keep: bool) -> Result<()> {
    let dir = config.archive_dir.clone();
    let bucket_config = BucketConfig { url: to.to_string(), ..config.archive_settings.clone() };
    parse_url(to).map_err(|m| anyhow::anyhow!("--to: {m}"))?;
    let from = Archive::new(&dir);
    let into = Archive::open_bucket(&bucket_config).await.map_err(setting_error)?;
    let store = crate::store::open_store(config).await?;
    let files = store.archives(None).await;
    store.close();
    let files = files?;
    let mut moved = 0;
    for f in &files {
        let data =
            from.get(&f.path).await?.with_context(|| format!("{} is recorded but not in {}", f.path, dir.display()))?;
        let manifest = serde_json::to_vec_pretty(f)?;
        let kept = into.keep(f.clone(), data, manifest).await?;
        if kept.path != f.path {
            bail!("{}: the bucket already holds other bytes at its key; nothing was removed", f.path);
        }
        into.check(f).await.with_context(|| format!("{} read back from {to}", f.path))?;
        moved += 1;
    }
    if !keep {
        for f in &files {
            from.remove(&f.path).await?;
        }
    }
    println!(
        "moved {moved} archive files from {} to {to}, each read back and verified{}",
        dir.display(),
        if keep { " (the directory's copies kept)" } else { "" }
    );
    println!("now set [archive] url = \"{to}\" (with its endpoint and credentials) and restart trail");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(toml: &str, env: &[(&str, &str)]) -> Result<(Place, BucketConfig)> {
        let file: FileArchive = toml::from_str(toml)?;
        let env = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        place(file, &env, None, Path::new("/data"))
    }

    #[test]
    fn the_archive_is_a_directory_or_a_bucket() {
        assert_eq!(resolve("", &[]).unwrap().0, Place::Dir("/data/archive".into()));
        assert_eq!(resolve("url = \"/srv/archive\"", &[]).unwrap().0, Place::Dir("/srv/archive".into()));
        assert_eq!(resolve("url = \"file:///srv/a\"", &[]).unwrap().0, Place::Dir("/srv/a".into()));
        let (place, _) = resolve(
            "url = \"s3://trail/prod\"\nendpoint = \"http://127.0.0.1:9000\"\npath_style = true\nobject_lock = \"compliance\"\nretain_years = 7",
            &[],
        )
        .unwrap();
        let Place::Bucket(b) = place else { panic!("a bucket") };
        assert_eq!(
            (b.url.as_str(), b.path_style, b.object_lock, b.retain_years),
            ("s3://trail/prod", true, Some(LockMode::Compliance), 7)
        );
        let env = resolve(
            "",
            &[
                ("TRAIL_ARCHIVE_URL", "s3://other"),
                ("TRAIL_ARCHIVE_OBJECT_LOCK", "governance"),
                ("TRAIL_ARCHIVE_RETAIN_YEARS", "1"),
            ],
        );
        assert!(matches!(env.unwrap().0, Place::Bucket(BucketConfig { object_lock: Some(LockMode::Governance), .. })));
        let err = |toml: &str| resolve(toml, &[]).unwrap_err().to_string();
        assert!(err("url = \"s3://trail\"\nobject_lock = \"forever\"").contains("must be compliance or governance"));
        assert!(err("url = \"s3://trail\"\nobject_lock = \"compliance\"").contains("needs retain_years"));
        assert!(err("url = \"https://trail.example/x\"").contains("must be s3://bucket/prefix or a directory"));
        assert!(err("url = \"s3://x\"").contains("not a bucket name"));
        assert!(err("url = \"s3://trail\"\nendpoint = \"minio:9000\"").contains("[archive] endpoint"));
    }
}
