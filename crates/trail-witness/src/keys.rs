//! The witness's identity in its data directory: `witness.key` (the Ed25519 seed, hex,
//! mode 0600) and `witness.name` (its cosigner name), created on first use. Rotation
//! moves the old key aside (`witness.key.<unix seconds>`) and keeps the state.

use std::{fs, io::Write, path::Path};

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

const KEY: &str = "witness.key";
const NAME: &str = "witness.name";

/// The witness's name and key, created if the directory has none. A `name` given for
/// an existing witness must be its own.
pub fn load_or_create(dir: &Path, name: Option<&str>) -> Result<(String, SigningKey)> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key_path = dir.join(KEY);
    let key = if key_path.exists() { read_key(&key_path)? } else { write_key(&key_path)? };
    let name_path = dir.join(NAME);
    let stored = fs::read_to_string(&name_path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let name = match (stored, name) {
        (Some(s), Some(n)) if s != n => bail!("this witness is named {s}, not {n}"),
        (Some(s), _) => s,
        (None, given) => {
            let n = given.map(str::to_string).unwrap_or_else(|| {
                let h = Sha256::digest(key.verifying_key().as_bytes());
                format!("trail-witness.local/{}", hex::encode(&h[..4]))
            });
            if n.is_empty() || n.contains(['+', ' ', '\n', '\t']) {
                bail!("a witness name has no spaces or '+': {n:?}");
            }
            fs::write(&name_path, format!("{n}\n"))?;
            n
        }
    };
    Ok((name, key))
}

/// A new key for the witness; the old one is kept aside, the state untouched.
pub fn rotate(dir: &Path) -> Result<SigningKey> {
    let key_path = dir.join(KEY);
    if key_path.exists() {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        fs::rename(&key_path, dir.join(format!("{KEY}.{secs}")))?;
    }
    write_key(&key_path)
}

fn read_key(path: &Path) -> Result<SigningKey> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    let seed = bytes.with_context(|| format!("{} is not a 32-byte hex key", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn write_key(path: &Path) -> Result<SigningKey> {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(format!("{}\n", hex::encode(key.to_bytes())).as_bytes())?;
    f.sync_all()?;
    Ok(key)
}
