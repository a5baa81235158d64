//! The filter and search index (FTS5): the tokens of each event's field values, its
//! free text, and the expression a search becomes. The token hash is stored on disk and
//! pinned by a golden test.

use std::net::IpAddr;

use rusqlite::{params, Connection};
use trail_core::{Event, Outcome, StatusClass};

use crate::{
    query_plan::{Col, Term},
    search_doc::search_text,
    StoreError,
};

/// The distinct plain words of a text: ASCII letters only, 2 to 32 of them, lowercased
/// (what the unicode61 tokenizer makes of them too).
pub(super) fn plain_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| (2..=32).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase)
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// Stable 64-bit FNV-1a of the ASCII-lowercased value: the token of a field value in
/// the filter index. Stored on disk, so it must never change.
pub(super) fn fnv(value: &str) -> u64 {
    value
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3))
}

/// Field prefixes of filter tokens (letters outside a-f, so `prefix + 16 hex digits`
/// never collides across fields).
pub(super) mod field {
    pub const ORG: char = 'g';
    pub const CATEGORY: char = 'h';
    pub const OPERATION: char = 'i';
    pub const RESULT: char = 'k';
    pub const STATUS: char = 'l';
    pub const ACTOR_ID: char = 'm';
    pub const ACTOR_NAME: char = 'n';
    pub const ACTOR_EMAIL: char = 'o';
    pub const EMAIL_LOCAL: char = 'j';
    pub const REQUEST: char = 'p';
    pub const RESOURCE_ID: char = 'q';
    pub const RESOURCE_NAME: char = 'r';
    pub const RESOURCE_TYPE: char = 's';
    pub const WORKSPACE_ID: char = 't';
    pub const WORKSPACE_NAME: char = 'u';
    pub const PROJECT: char = 'v';
    pub const CLUSTER: char = 'w';
    pub const NAMESPACE: char = 'x';
    pub const IP: char = 'y';
}

/// The token field of a column the plan compares.
pub(super) fn col_field(c: Col) -> char {
    match c {
        Col::Category => field::CATEGORY,
        Col::Operation => field::OPERATION,
        Col::RequestId => field::REQUEST,
        Col::ResourceName => field::RESOURCE_NAME,
        Col::ResourceId => field::RESOURCE_ID,
        Col::ResourceType => field::RESOURCE_TYPE,
        Col::WorkspaceId => field::WORKSPACE_ID,
        Col::WorkspaceName => field::WORKSPACE_NAME,
        Col::Project => field::PROJECT,
        Col::Cluster => field::CLUSTER,
        Col::Namespace => field::NAMESPACE,
    }
}

pub(super) fn token(field: char, value: &str) -> String {
    format!("{field}{:016x}", fnv(value))
}

/// The FTS document an event was indexed with (to delete it from the contentless index).
pub(super) fn fts_doc(org_id: i64, ev: &Event) -> String {
    let mut doc = String::new();
    terms(ev, &mut doc);
    search_text(ev, &mut doc);
    format!("{} {doc}", org_token(org_id))
}

pub(super) fn org_token(org_id: i64) -> String {
    format!("{}{org_id}", field::ORG)
}

/// Prefix lengths at which addresses are indexed; a CIDR block of another length uses
/// the next shorter one and is then checked exactly.
pub(super) const V4_PREFIXES: [u8; 7] = [8, 12, 16, 20, 24, 28, 32];
pub(super) const V6_PREFIXES: [u8; 8] = [16, 32, 48, 64, 80, 96, 112, 128];

pub(super) fn ip_tokens(ip: IpAddr) -> Vec<String> {
    let lens: &[u8] = if ip.is_ipv4() { &V4_PREFIXES } else { &V6_PREFIXES };
    lens.iter()
        .filter_map(|l| ipnet::IpNet::new(ip, *l).ok())
        .map(|n| token(field::IP, &n.trunc().to_string()))
        .collect()
}

/// The status class an event counts in for `status=success|failure`.
pub(super) fn status_class(ev: &Event) -> Option<StatusClass> {
    match (ev.status_code, ev.result) {
        (Some(c), _) if (200..300).contains(&c) => Some(StatusClass::Success),
        (Some(c), _) if c >= 400 => Some(StatusClass::Failure),
        (None, Outcome::Done) => Some(StatusClass::Success),
        (None, Outcome::Failed) => Some(StatusClass::Failure),
        _ => None,
    }
}

/// The filter tokens of one event.
pub(super) fn terms(ev: &Event, out: &mut String) {
    use std::fmt::Write;
    let mut push = |f: char, v: Option<&str>| {
        if let Some(v) = v {
            let _ = write!(out, "{f}{:016x} ", fnv(v));
        }
    };
    push(field::CATEGORY, Some(ev.category()));
    push(field::OPERATION, Some(ev.operation()));
    push(field::RESULT, Some(ev.result.as_str()));
    push(field::STATUS, status_class(ev).map(StatusClass::as_str));
    if let Some(a) = &ev.actor {
        push(field::ACTOR_ID, a.id.as_deref());
        push(field::ACTOR_NAME, a.name.as_deref());
        push(field::ACTOR_EMAIL, a.email.as_deref());
        push(field::EMAIL_LOCAL, a.email.as_deref().and_then(|e| e.find('@').map(|i| &e[..=i])));
    }
    push(field::REQUEST, ev.request_id.as_deref());
    if let Some(r) = &ev.resource {
        push(field::RESOURCE_ID, r.id.as_deref());
        push(field::RESOURCE_NAME, r.name.as_deref());
        push(field::RESOURCE_TYPE, r.kind.as_deref());
    }
    if let Some(c) = &ev.context {
        if let Some(w) = &c.workspace {
            push(field::WORKSPACE_ID, w.id.as_deref());
            push(field::WORKSPACE_NAME, w.name.as_deref());
        }
        push(field::PROJECT, c.project.as_deref());
        push(field::CLUSTER, c.cluster.as_deref());
        push(field::NAMESPACE, c.namespace.as_deref());
    }
    if let Some(ip) = ev.source_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) {
        for t in ip_tokens(ip) {
            out.push_str(&t);
            out.push(' ');
        }
    }
}

/// Most words a prefix may stand for before the search falls back to FTS5's own
/// (slower, but complete) prefix query.
pub(super) const MAX_EXPANSION: usize = 64;

/// Most prefixes of one search that stand for more than `MAX_EXPANSION` words: FTS5
/// reads each of those as one merged list of every event holding any of its words,
/// held in memory while the search runs.
pub(super) const MAX_OPEN_PREFIXES: usize = 2;

/// Turns search terms into an FTS5 expression: every word of every term must match,
/// the last word of each term as a prefix (of two characters or more). A plain-word prefix becomes an OR of the
/// stored words it begins (`deploy` → `deploy OR deployment OR deployments`), which
/// FTS5 walks lazily, newest first. Terms without any letter or digit are ignored.
pub(super) fn fts_query(conn: &Connection, terms: &[Term<'_>]) -> Result<Option<String>, StoreError> {
    let mut parts = Vec::new();
    let mut open = Vec::new();
    for t in terms {
        let words = &t.words;
        for (i, w) in words.iter().enumerate() {
            if !t.prefix_at(i) {
                parts.push(format!("\"{w}\""));
                continue;
            }
            let lower = w.to_ascii_lowercase();
            let expansion = if w.bytes().all(|b| b.is_ascii_alphabetic()) {
                let mut stmt = conn.prepare_cached(
                    "SELECT word FROM search_words WHERE word >= ?1 AND word < ?1 || char(127) ORDER BY word LIMIT ?2",
                )?;
                let found = stmt
                    .query_map(params![lower, MAX_EXPANSION as i64 + 1], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                (found.len() <= MAX_EXPANSION).then_some(found)
            } else {
                None
            };
            match expansion {
                Some(mut found) => {
                    if !found.contains(&lower) {
                        found.push(lower);
                    }
                    let ors: Vec<String> = found.iter().map(|x| format!("\"{x}\"")).collect();
                    parts.push(format!("({})", ors.join(" OR ")));
                }
                None => {
                    open.push(*w);
                    parts.push(format!("\"{w}\"*"))
                }
            }
        }
    }
    if open.len() > MAX_OPEN_PREFIXES {
        return Err(StoreError::Invalid {
            field: "q".into(),
            message: format!(
                "at most {MAX_OPEN_PREFIXES} search words may each begin more than {MAX_EXPANSION} indexed words \
                 ({}); type more of them",
                open.join(", ")
            ),
        });
    }
    Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
}

/// One bounded step of merging the search index's segments; returns true when there
/// is nothing left to merge. Runs only while no append is waiting.
pub(super) fn merge_step(conn: &Connection) -> bool {
    let before = conn.total_changes();
    match conn.execute("INSERT INTO events_fts(events_fts, rank) VALUES('merge', 256)", []) {
        Ok(_) => conn.total_changes() - before < 2,
        Err(e) => {
            tracing::warn!(error = %e, "search index merge failed");
            true
        }
    }
}

/// The writer's copy of `search_words`.
pub(super) type Words = foldhash::HashSet<String>;

pub(super) fn load_words(conn: &Connection) -> Words {
    let load = || -> Result<Words, rusqlite::Error> {
        let mut stmt = conn.prepare("SELECT word FROM search_words")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    load().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read search words");
        Words::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter tokens are stored in every database's FTS5 index: a change of the hash
    /// or of a field letter would make every stored event unfindable by that filter.
    #[test]
    fn token_hashes_are_pinned() {
        assert_eq!(fnv(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(token(field::ACTOR_EMAIL, "Sarah.Kim@acme.com"), token(field::ACTOR_EMAIL, "sarah.kim@acme.com"));
        let golden = [
            (field::CATEGORY, "auth", "h5dc77a84260a774f"),
            (field::OPERATION, "login", "i03c75db6e18f29d2"),
            (field::ACTOR_EMAIL, "sarah.kim@acme.com", "o587be52ee238c3ee"),
            (field::IP, "10.0.0.0/8", "yf9acf1ec24f0e735"),
        ];
        for (f, v, want) in golden {
            assert_eq!(token(f, v), want, "{f} {v}");
        }
        assert_eq!(org_token(7), "g7");
    }
}
