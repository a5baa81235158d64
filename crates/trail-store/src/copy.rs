//! Copying a whole store into another, through the traits alone (`trail
//! migrate-store`): organizations, users, roles, keys, scheduled exports, alert rules
//! and destinations, streams (with their cursors, so a SIEM gets neither a repeat nor
//! a gap), and every log entry's exact bytes with its seq, so that ids, seqs, leaf
//! hashes and signed checkpoints are the same in the copy. Sessions, deliveries and
//! streams' counters are not copied (users log in again; the counters start at zero).

use std::collections::BTreeMap;

use trail_core::{
    merkle::{leaf_hash, Hash},
    Event,
};

use crate::{archive::Archive, NewKey, NewUser, Restore, RestoredEntry, Store, StoreError, UserChange};

/// What `copy` copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// Per organization: entries copied and checkpoints whose roots matched.
    pub logs: Vec<(String, u64, u64)>,
    pub users: usize,
    pub keys: usize,
    pub alert_rules: usize,
    pub destinations: usize,
    pub streams: usize,
}

/// Entries read from the source per step (and restored per transaction).
const CHUNK: usize = 2000;

/// Copies `src` into `dst`, which must hold no events and no users. Entries that
/// retention archived in the source are read from `archive` (their leaf hashes; the
/// files stay where they are and are recorded in the copy).
pub async fn copy(src: &dyn Store, dst: &dyn Restore, archive: Option<&Archive>) -> Result<Copied, StoreError> {
    if !dst.is_empty().await? || !dst.list_users(None).await?.is_empty() {
        return Err(StoreError::Invalid {
            field: "to".into(),
            message: "the target database already holds events or users; migrate into an empty one".into(),
        });
    }
    let mut out = Copied::default();
    let orgs = src.orgs().await?;
    for org in &orgs {
        dst.ensure_org(org.clone()).await?;
    }
    // Users (ids change; keys refer to them by the new ids).
    let mut user_ids = std::collections::HashMap::new();
    for u in src.list_users(None).await? {
        let new = dst
            .create_user(NewUser {
                org: u.org.clone(),
                email: u.email.clone(),
                name: u.name.clone(),
                role: u.role.clone(),
                password_hash: u.password_hash.clone(),
                must_change: u.must_change,
            })
            .await?;
        if u.disabled {
            dst.update_user(new.id, UserChange { disabled: Some(true), ..UserChange::default() }).await?;
        }
        user_ids.insert(u.id, new.id);
        out.users += 1;
    }
    for org in &orgs {
        for r in src.roles(&org.slug).await? {
            dst.put_role(r).await?;
        }
        for s in src.schedules(Some(&org.slug)).await? {
            dst.create_schedule(s).await?;
        }
        // Destinations get new ids; the rules that name them are given those.
        let mut destination_ids = std::collections::HashMap::new();
        for d in src.destinations(&org.slug).await? {
            let old = d.id;
            destination_ids.insert(old, dst.create_destination(d).await?.id);
            out.destinations += 1;
        }
        for mut r in src.alert_rules(&org.slug).await? {
            r.destinations = r.destinations.iter().filter_map(|id| destination_ids.get(id).copied()).collect();
            dst.put_alert_rule(r).await?;
            out.alert_rules += 1;
        }
    }
    for s in src.streams(None).await? {
        dst.create_stream(s).await?;
        out.streams += 1;
    }
    for k in src.list_keys(None).await? {
        let user_id = k.user_id.and_then(|u| user_ids.get(&u).copied());
        let new =
            NewKey { org: k.org.clone(), scope: k.scope, hash: k.hash, prefix: k.prefix, user_id, label: k.label };
        let id = dst.create_key(new).await?;
        if k.revoked {
            dst.revoke_key(None, id).await?;
        }
        out.keys += 1;
    }
    for org in &orgs {
        let (entries, matched) = copy_log(src, dst, &org.slug, archive).await?;
        out.logs.push((org.slug.clone(), entries, matched));
    }
    Ok(out)
}

/// Copies one organization's log; returns its entries and the checkpoints copied.
async fn copy_log(
    src: &dyn Store,
    dst: &dyn Restore,
    org: &str,
    archive: Option<&Archive>,
) -> Result<(u64, u64), StoreError> {
    let mut checkpoints = src.checkpoints(org).await?;
    let copied_checkpoints = checkpoints.len() as u64;
    // Archived entries: leaf hashes from the archive files, the files recorded.
    let files = src.archives(Some(org)).await?;
    let mut archived: BTreeMap<u64, Hash> = BTreeMap::new();
    if !files.is_empty() {
        let a = archive.ok_or_else(|| StoreError::Invalid {
            field: "archive".into(),
            message: format!("{org} has archived entries: name the archive directory"),
        })?;
        for f in &files {
            for leaf in a.read(f).await? {
                let e = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                archived.insert(e.seq, leaf_hash(&leaf));
            }
        }
        dst.archived(org, files, Vec::new()).await?;
    }
    let mut next = 0u64;
    loop {
        let chunk = src.scan(org, next, CHUNK).await?;
        let done = chunk.is_empty();
        // The entries in log order: archived ones (a hash) between stored ones.
        let mut entries = Vec::with_capacity(chunk.len());
        let mut at = next;
        for (seq, leaf) in chunk {
            while let Some(hash) = archived.remove(&at) {
                entries.push(RestoredEntry { leaf: None, hash });
                at += 1;
            }
            if seq != at {
                return Err(StoreError::Corrupt(format!("entry {at} of {org} is out of place")));
            }
            entries.push(RestoredEntry { hash: leaf_hash(&leaf), leaf: Some(leaf) });
            at += 1;
        }
        if done {
            while let Some(hash) = archived.remove(&at) {
                entries.push(RestoredEntry { leaf: None, hash });
                at += 1;
            }
        }
        let ends = checkpoints.partition_point(|c| c.size <= at);
        let covered: Vec<_> = checkpoints.drain(..ends).collect();
        if !entries.is_empty() || !covered.is_empty() {
            dst.restore(org, next, entries, covered).await?;
        }
        next = at;
        if done {
            break;
        }
    }
    if !archived.is_empty() {
        return Err(StoreError::Corrupt(format!("{org}: archived entries lie beyond the log")));
    }
    if !checkpoints.is_empty() {
        return Err(StoreError::Corrupt(format!("{org}: a checkpoint covers more entries than are stored")));
    }
    Ok((next, copied_checkpoints))
}
