//! The table of tampering cases (each an edit of one table, as someone with access to
//! the database files would make it, and what verify must say), and the signed log
//! they edit: shared by the store's own tamper test (both backends) and the `trail`
//! binary's, which runs each case through `trail verify` and checks it writes nothing.

use std::time::Duration;

use serde_json::json;
use trail_core::{event::parse_event, Timestamp};

use crate::{AppendBatch, Org, Store};

/// One edit: its SQL for each backend (`None`: the backend has nothing to edit there),
/// and what the report must say.
pub struct Case {
    pub name: &'static str,
    pub sqlite: Option<&'static str>,
    pub postgres: Option<&'static str>,
    pub expect: &'static str,
    /// Verify against the checkpoint of the whole log, saved before the edit.
    pub with_saved_checkpoint: bool,
}

const DELETE_TAIL_SQLITE: &str = "DELETE FROM events WHERE seq >= 15; DELETE FROM leaves WHERE seq >= 15; \
    DELETE FROM tree_nodes WHERE ((idx + 1) << level) > 15; DELETE FROM checkpoints WHERE size > 15;";
const DELETE_TAIL_PG: &str = "DELETE FROM events WHERE seq >= 15; DELETE FROM idempotency WHERE seq >= 15; \
    DELETE FROM tree_nodes WHERE ((idx + 1) << level) > 15; DELETE FROM checkpoints WHERE size > 15; \
    UPDATE logs SET size = 15;";

pub const CASES: &[Case] = &[
    Case {
        name: "a row and its bytes added outside the log, at seq -1",
        sqlite: Some(
            "CREATE TEMP TABLE x AS SELECT * FROM events WHERE seq = 5;
             UPDATE x SET seq = -1, pos = pos + 1, id = randomblob(16), idem = NULL;
             INSERT INTO events SELECT * FROM x;
             INSERT INTO leaves (org_id, seq, leaf) SELECT org_id, -1, leaf FROM leaves WHERE seq = 5;",
        ),
        postgres: Some(
            "CREATE TEMP TABLE x AS SELECT * FROM events WHERE seq = 5;
             UPDATE x SET seq = -1, id = gen_random_uuid();
             INSERT INTO events SELECT * FROM x;",
        ),
        expect: "at seq -1",
        with_saved_checkpoint: false,
    },
    Case {
        name: "a second row claiming an entry's seq",
        sqlite: Some(
            "DROP INDEX events_seq;
             CREATE TEMP TABLE x AS SELECT * FROM events WHERE seq = 5;
             UPDATE x SET pos = pos + 1, id = randomblob(16), idem = NULL;
             INSERT INTO events SELECT * FROM x;",
        ),
        postgres: None,
        expect: "a second stored row claims its seq",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an id claimed twice, its unique index dropped",
        sqlite: Some(
            "DROP INDEX events_id;
             UPDATE events SET id = (SELECT id FROM events WHERE seq = 3) WHERE seq = 4;",
        ),
        postgres: None,
        expect: "an id is claimed twice",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an event's stored bytes",
        sqlite: Some("UPDATE leaves SET leaf = CAST(replace(CAST(leaf AS TEXT), 'deploy', 'deplOy') AS BLOB) WHERE seq = 7"),
        postgres: Some("UPDATE events SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'), 'deploy', 'deplOy'), 'UTF8') WHERE seq = 7"),
        expect: "entry 7 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the indexed category",
        sqlite: Some("UPDATE events SET category = 'other' WHERE seq = 3"),
        postgres: Some("UPDATE events SET category = 'other' WHERE seq = 3"),
        expect: "its indexed copy differs: category: stored 'other', the event says 'service'",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the indexed time, moved back",
        sqlite: Some("UPDATE events SET ts = ts - 400 * 86400000000 WHERE seq = 4"),
        // Within the month: PostgreSQL has no partition 400 days back.
        postgres: Some("UPDATE events SET ts = ts - 86400000000 WHERE seq = 4"),
        expect: "entry 4 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the indexed email",
        sqlite: Some("UPDATE events SET actor_email = 'someone@else.com' WHERE seq = 5"),
        postgres: Some("UPDATE events SET actor_email = 'someone@else.com' WHERE seq = 5"),
        expect: "actor.email: stored 'someone@else.com'",
        with_saved_checkpoint: false,
    },
    Case {
        name: "two rows' time and position swapped",
        sqlite: Some(
            "CREATE TEMP TABLE p AS SELECT seq, pos, ts FROM events WHERE seq IN (8, 9);
             UPDATE events SET pos = -pos WHERE seq IN (8, 9);
             UPDATE events SET pos = (SELECT pos FROM p WHERE p.seq = 17 - events.seq),
                               ts = (SELECT ts FROM p WHERE p.seq = 17 - events.seq) WHERE seq IN (8, 9);",
        ),
        postgres: Some(
            "CREATE TEMP TABLE p AS SELECT seq, pos, ts FROM events WHERE seq IN (8, 9);
             UPDATE events SET pos = (SELECT pos FROM p WHERE p.seq = 17 - events.seq),
                               ts = (SELECT ts FROM p WHERE p.seq = 17 - events.seq) WHERE seq IN (8, 9);",
        ),
        expect: "entry 8 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an indexed row deleted",
        sqlite: Some("DELETE FROM events WHERE seq = 6"),
        postgres: Some("DELETE FROM events WHERE seq = 6"),
        expect: "entry 6",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an event's bytes deleted",
        sqlite: Some("DELETE FROM leaves WHERE seq = 4"),
        postgres: None,
        expect: "entry 4 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the search entries",
        sqlite: None,
        postgres: Some("UPDATE events SET doc = to_tsvector('simple', 'nothing here') WHERE seq = 10"),
        expect: "its search entries differ",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an interior tree node",
        sqlite: Some("UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1"),
        postgres: Some("UPDATE tree_nodes SET hash = decode(repeat('00', 32), 'hex') WHERE level = 2 AND idx = 1"),
        expect: "tree node level 2 index 1 (entries 4 to 7) differs",
        with_saved_checkpoint: false,
    },
    Case {
        name: "a leaf hash",
        sqlite: Some("UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 12"),
        postgres: Some("UPDATE tree_nodes SET hash = decode(repeat('00', 32), 'hex') WHERE level = 0 AND idx = 12"),
        expect: "entry 12 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "every checkpoint deleted",
        sqlite: Some("DELETE FROM checkpoints"),
        postgres: Some("DELETE FROM checkpoints"),
        expect: "no signed checkpoint covers the log's 21 entries",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the search index emptied",
        sqlite: Some("INSERT INTO events_fts(events_fts) VALUES('delete-all')"),
        postgres: None,
        expect: "entry 0: it is missing from the search index",
        with_saved_checkpoint: false,
    },
    Case {
        name: "1,000 added to a day's counts",
        sqlite: Some("UPDATE day_counts SET n = n + 1000"),
        postgres: Some("UPDATE day_counts SET n = n + 1000"),
        expect: "category 'service', result 0, view false: stored 1021, the events say 21",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an actor's day count",
        sqlite: Some("UPDATE day_actors SET n = 7 WHERE actor_email = 'user3@acme.com'"),
        postgres: Some("UPDATE day_actors SET n = 7 WHERE actor_email = 'user3@acme.com'"),
        expect: "actor user3@acme.com: stored 7, the events say 1",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the search words emptied",
        sqlite: Some("DELETE FROM search_words"),
        postgres: None,
        expect: "the search words lack words the index holds",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an event's indexed idempotency key",
        sqlite: Some("UPDATE events SET idem = 'other' WHERE seq = 3"),
        postgres: Some("UPDATE idempotency SET key = 'other' WHERE seq = 3"),
        expect: "idempotency_key: stored 'other', the event says 'k3'",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an idempotency key record deleted",
        sqlite: Some("DELETE FROM idempotency WHERE seq = 4"),
        postgres: Some("DELETE FROM idempotency WHERE seq = 4"),
        expect: "entry 4",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the checkpoints of the newest entries deleted",
        sqlite: Some("DELETE FROM checkpoints WHERE size > 7"),
        postgres: Some("DELETE FROM checkpoints WHERE size > 7"),
        expect: "with no signed checkpoint among them: checkpoints were removed",
        with_saved_checkpoint: false,
    },
    Case {
        name: "a checkpoint's note",
        sqlite: Some("UPDATE checkpoints SET note = replace(note, char(10) || '21' || char(10), char(10) || '22' || char(10))"),
        postgres: Some("UPDATE checkpoints SET note = replace(note, chr(10) || '21' || chr(10), chr(10) || '22' || chr(10))"),
        expect: "checkpoint of size 21",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the newest entries deleted with their tree nodes and checkpoints",
        sqlite: Some(DELETE_TAIL_SQLITE),
        postgres: Some(DELETE_TAIL_PG),
        expect: "the saved checkpoint covers 21 entries but the log has 15: entries from 15 on were removed",
        with_saved_checkpoint: true,
    },
];

/// Appends 21 events (a minute apart) in three requests received ten minutes apart,
/// each covered by a checkpoint before the next; returns the note of the checkpoint of
/// all 21.
pub async fn signed_log(store: &dyn Store) -> String {
    store.ensure_org(Org { slug: "acme".into(), name: "acme".into() }).await.unwrap();
    let start = Timestamp::parse_rfc3339("2024-03-09T10:00:00Z").unwrap().0;
    let mut note = String::new();
    for part in 0..3i64 {
        let events = (part * 7..part * 7 + 7)
            .map(|i| {
                let ts = Timestamp(start + i * 60_000_000).to_rfc3339();
                let ev = json!({"action": "service:deploy", "timestamp": ts, "request_id": format!("r{i}"),
                                "actor": {"email": format!("user{i}@acme.com"), "name": "Someone"},
                                "source_ip": "10.0.0.7", "details": {"n": i}, "idempotency_key": format!("k{i}")});
                (uuid::Uuid::now_v7(), parse_event(ev).unwrap())
            })
            .collect();
        let received_at = Timestamp(start + part * 600_000_000);
        store.append(AppendBatch { org: "acme".into(), received_at, events }).await.unwrap();
        note = covered(store, (part as u64 + 1) * 7).await;
    }
    note
}

/// Waits until a checkpoint covers `size` entries; returns its note.
pub async fn covered(store: &dyn Store, size: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(cp) = store.checkpoint("acme", None).await.unwrap().filter(|c| c.size == size) {
            return cp.note;
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint covers {size} entries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What an insider without the key does after editing leaves in a SQLite store:
/// recomputes every leaf hash and tree node of `org` from the stored bytes, so that
/// the tree agrees with them again (only the signed checkpoints do not).
pub fn rehash_sqlite_tree(conn: &rusqlite::Connection, org: &str) {
    let leaves: Vec<Vec<u8>> = conn
        .prepare("SELECT l.leaf FROM leaves l JOIN orgs o ON o.id = l.org_id WHERE o.slug = ?1 ORDER BY l.seq")
        .unwrap()
        .query_map([org], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    conn.execute("DELETE FROM tree_nodes WHERE org_id = (SELECT id FROM orgs WHERE slug = ?1)", [org]).unwrap();
    let mut tree = trail_core::merkle::Frontier::default();
    for leaf in &leaves {
        for (level, idx, hash) in tree.push(trail_core::merkle::leaf_hash(leaf)) {
            conn.execute(
                "INSERT INTO tree_nodes (org_id, level, idx, hash) SELECT id, ?1, ?2, ?3 FROM orgs WHERE slug = ?4",
                rusqlite::params![level, idx as i64, &hash[..], org],
            )
            .unwrap();
        }
    }
}
