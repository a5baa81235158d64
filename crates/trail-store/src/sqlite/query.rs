//! Reads of the log in SQLite: the filter rendered as row conditions plus an FTS5
//! match, pages in any sort order, streams, counts and facets.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{params, types::Value as SqlValue, Connection, OptionalExtension};
use serde_json::Value;
use trail_core::{Filter, Outcome, SortField, StatusClass, Timestamp};
use uuid::Uuid;

use super::{
    index::{col_field, field, fts_query, org_token, token, V4_PREFIXES, V6_PREFIXES},
    open_unmapped, SqliteStore, SLOTS, SPILL,
};
use crate::{
    query_plan::{actor_matches, cursor, cursor_mismatch, equalities, page_limit, terms, ActorMatch, Col, PageBuilder},
    row::{ip_bytes as ip_key, outcome_code},
    AppendBatch, Appended, AppendedRange, Categories, Count, EventLog, Facets, ListQuery, Page, Scope, StoreError,
    StreamRx,
};

/// A query under construction: exact SQL conditions on the row, which decide, and
/// FTS5 conditions (one AND-ed group per filter) that find the candidates fast.
#[derive(Default)]
pub(super) struct Sql {
    pub(super) clauses: Vec<String>,
    pub(super) params: Vec<SqlValue>,
    /// Groups of filter tokens, each `(a OR b ...)`, all of which must match.
    terms: Vec<String>,
    /// The free-text part, matched against the `body` column.
    text: Option<String>,
    /// Bounds on `pos` implied by the time range (a superset; `ts` is checked exactly).
    lo: Option<i64>,
    hi: Option<i64>,
    /// A condition reads the event's JSON (`l.leaf`).
    pub(super) needs_leaf: bool,
    /// How many of `terms` only restate the scope (organization, allowed categories),
    /// which the row conditions already decide; and where the organization condition
    /// is in `clauses`.
    scope_terms: usize,
    org_clause: Option<usize>,
}

impl Sql {
    pub(super) fn param(&mut self, v: impl Into<SqlValue>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    /// Every value must equal one of the columns (OR); each column has its token field.
    /// The columns are declared `NOCASE` where the plan compares without case.
    fn any_eq(&mut self, cols: &[Col], values: &[String]) {
        if values.is_empty() {
            return;
        }
        let mut ors = Vec::new();
        let mut toks = Vec::new();
        for v in values {
            for c in cols {
                let p = self.param(v.clone());
                ors.push(format!("{} = {p}", c.name()));
                toks.push(token(col_field(*c), v));
            }
        }
        self.clauses.push(format!("({})", ors.join(" OR ")));
        self.terms.push(format!("({})", toks.join(" OR ")));
    }

    /// Adds the time range's bounds on a position column.
    pub(super) fn bound_pos(&mut self, col: &str) {
        if let Some(lo) = self.lo {
            let p = self.param(lo);
            self.clauses.push(format!("{col} >= {p}"));
        }
        if let Some(hi) = self.hi {
            let p = self.param(hi);
            self.clauses.push(format!("{col} <= {p}"));
        }
    }

    /// The FTS5 match for queries that read every matching row (counts, sorts other
    /// than time, aggregates): `None` when it would only restate the scope, since the
    /// match's rowids would all be collected first (every row of an organization).
    pub(super) fn narrowing_match(&self) -> Option<String> {
        if self.terms.len() == self.scope_terms && self.text.is_none() {
            return None;
        }
        self.match_expr()
    }

    /// For aggregates over a time range: the range of positions drives the query, not
    /// an index led by the organization (which would visit all of its rows).
    pub(super) fn drive_by_time(&mut self) {
        if let (Some(i), Some(_)) = (self.org_clause, self.lo) {
            self.clauses[i] = format!("+{}", self.clauses[i]);
        }
    }

    /// Restricts the rows to an FTS5 match, collecting only the matching rowids within
    /// the time range's positions (FTS5 seeks to a rowid range instead of reading the
    /// term's whole list).
    pub(super) fn match_in(&mut self, m: String) {
        let p = self.param(m);
        let mut sub = format!("SELECT rowid FROM events_fts WHERE events_fts MATCH {p}");
        if let Some(lo) = self.lo {
            let p = self.param(lo);
            sub.push_str(&format!(" AND rowid >= {p}"));
        }
        if let Some(hi) = self.hi {
            let p = self.param(hi);
            sub.push_str(&format!(" AND rowid <= {p}"));
        }
        self.clauses.push(format!("e.pos IN ({sub})"));
    }

    pub(super) fn match_expr(&self) -> Option<String> {
        let mut parts = self.terms.clone();
        parts.extend(self.text.clone());
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }

    pub(super) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            "1".into()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

/// Resolves the scope and the `company` filter into organization ids; `None` means no
/// restriction. An unknown organization yields an empty list (nothing matches).
pub(super) fn org_ids(conn: &Connection, scope: &Scope, companies: &[String]) -> Result<Option<Vec<i64>>, StoreError> {
    let lookup = |slug: &str| -> Result<Option<i64>, StoreError> {
        Ok(conn
            .prepare_cached("SELECT id FROM orgs WHERE slug = ?1 COLLATE NOCASE OR name = ?1 COLLATE NOCASE")?
            .query_row([slug], |r| r.get(0))
            .optional()?)
    };
    let scoped = match &scope.org {
        None => None,
        Some(slug) => Some(lookup(slug)?.into_iter().collect::<Vec<_>>()),
    };
    if companies.is_empty() {
        return Ok(scoped);
    }
    let mut ids = Vec::new();
    for c in companies {
        if let Some(id) = lookup(c)? {
            if scoped.as_ref().is_none_or(|s| s.contains(&id)) {
                ids.push(id);
            }
        }
    }
    Ok(Some(ids))
}

pub(super) fn where_clause(
    conn: &Connection,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    time_only: bool,
) -> Result<Sql, StoreError> {
    use field::*;
    let mut sql = Sql::default();
    if let Some(ids) = org_ids(conn, scope, &f.company)? {
        if ids.is_empty() {
            sql.clauses.push("0".into());
        } else {
            let ps: Vec<String> = ids.iter().map(|i| sql.param(*i)).collect();
            sql.org_clause = Some(sql.clauses.len());
            sql.clauses.push(format!("e.org_id IN ({})", ps.join(",")));
            let toks: Vec<String> = ids.iter().map(|i| org_token(*i)).collect();
            sql.terms.push(format!("({})", toks.join(" OR ")));
        }
    }
    match &scope.categories {
        Categories::All => {}
        Categories::Only(list) if list.is_empty() => sql.clauses.push("0".into()),
        Categories::Only(list) => {
            let ps: Vec<String> = list.iter().map(|c| sql.param(c.clone())).collect();
            sql.clauses.push(format!("category IN ({})", ps.join(",")));
            if f.category.is_empty() && f.action.is_empty() {
                let toks: Vec<String> = list.iter().map(|c| token(CATEGORY, c)).collect();
                sql.terms.push(format!("({})", toks.join(" OR ")));
            }
        }
        Categories::Except(list) => {
            let ps: Vec<String> = list.iter().map(|c| sql.param(c.clone())).collect();
            sql.clauses.push(format!("category NOT IN ({})", ps.join(",")));
        }
    }
    sql.scope_terms = sql.terms.len();
    let (from, to) = f.time_range(now);
    if let Some(t) = from {
        let p = sql.param(t.0);
        sql.clauses.push(format!("ts >= {p}"));
        sql.lo = Some(t.0 * SLOTS);
    }
    if let Some(t) = to {
        let p = sql.param(t.0);
        sql.clauses.push(format!("ts <= {p}"));
        sql.hi = Some((t.0 + 1) * SLOTS + SPILL);
    }
    if time_only {
        return Ok(sql);
    }
    if !f.action.is_empty() {
        let mut ors = Vec::new();
        let mut toks = Vec::new();
        for a in &f.action {
            let (c, o) = a.split_once(':').unwrap_or((a, ""));
            let (pc, po) = (sql.param(c.to_string()), sql.param(o.to_string()));
            ors.push(format!("(category = {pc} AND operation = {po})"));
            toks.push(format!("({} AND {})", token(CATEGORY, c), token(OPERATION, o)));
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
        sql.terms.push(format!("({})", toks.join(" OR ")));
    }
    if !f.result.is_empty() {
        let ps: Vec<String> = f.result.iter().map(|r| sql.param(outcome_code(*r))).collect();
        sql.clauses.push(format!("result IN ({})", ps.join(",")));
        let toks: Vec<String> = f.result.iter().map(|r| token(RESULT, r.as_str())).collect();
        sql.terms.push(format!("({})", toks.join(" OR ")));
    }
    if let Some(status) = f.status {
        sql.clauses.push(match status {
            StatusClass::Success => {
                "((status_code BETWEEN 200 AND 299) OR (status_code IS NULL AND result = 0))".into()
            }
            StatusClass::Failure => "((status_code >= 400) OR (status_code IS NULL AND result = 1))".into(),
        });
        sql.terms.push(token(STATUS, status.as_str()));
    }
    if !f.actor.is_empty() {
        let mut ors = Vec::new();
        let mut toks = Vec::new();
        for m in actor_matches(f) {
            match m {
                ActorMatch::EmailLocal(v) => {
                    let lo = sql.param(v.to_string());
                    let hi = sql.param(format!("{v}\u{10FFFF}"));
                    ors.push(format!("(actor_email >= {lo} AND actor_email < {hi})"));
                    toks.push(token(EMAIL_LOCAL, v));
                }
                ActorMatch::Any(v) => {
                    for (c, f) in [("actor_id", ACTOR_ID), ("actor_name", ACTOR_NAME), ("actor_email", ACTOR_EMAIL)] {
                        let p = sql.param(v.to_string());
                        ors.push(format!("{c} = {p}"));
                        toks.push(token(f, v));
                    }
                }
            }
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
        sql.terms.push(format!("({})", toks.join(" OR ")));
    }
    if f.hide_views {
        // The columns compare without case, as the model does.
        sql.clauses.push("NOT (category = 'audit' AND operation = 'view')".into());
    }
    for (cols, values) in equalities(f) {
        sql.any_eq(cols, values);
    }
    if !f.ip.is_empty() {
        let mut ors = Vec::new();
        let mut toks = Vec::new();
        for net in &f.ip {
            let (lo, hi) = match net {
                ipnet::IpNet::V4(n) => (ip_key(n.network().into()), ip_key(n.broadcast().into())),
                ipnet::IpNet::V6(n) => (ip_key(n.network().into()), ip_key(n.broadcast().into())),
            };
            let (plo, phi) = (sql.param(lo.to_vec()), sql.param(hi.to_vec()));
            ors.push(format!("(ip BETWEEN {plo} AND {phi})"));
            let lens: &[u8] = if net.addr().is_ipv4() { &V4_PREFIXES } else { &V6_PREFIXES };
            // The longest indexed prefix the block lies within; a block wider than
            // every indexed prefix cannot use the index at all.
            let indexed = lens.iter().rev().find(|l| **l <= net.prefix_len());
            toks.push(
                indexed.and_then(|l| ipnet::IpNet::new(net.addr(), *l).ok()).map(|n| token(IP, &n.trunc().to_string())),
            );
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
        if toks.iter().all(Option::is_some) {
            let toks: Vec<String> = toks.into_iter().flatten().collect();
            sql.terms.push(format!("({})", toks.join(" OR ")));
        }
    }
    let terms = terms(f);
    sql.text = fts_query(conn, &terms)?;
    for term in terms.iter().filter(|t| t.phrase) {
        // The index knows words, not their order: a phrase is checked on the stored
        // JSON text (ASCII case-insensitively). Terms with characters JSON escapes are
        // left to the word match.
        let p = sql.param(term.text.to_ascii_lowercase());
        sql.clauses.push(format!("instr(lower(CAST(l.leaf AS TEXT)), {p}) > 0"));
        sql.needs_leaf = true;
    }
    Ok(sql)
}

/// The SQL expression a sort orders by (NULLs folded to a value so keyset comparisons
/// work), and whether it is an integer.
pub(super) fn sort_expr(field: SortField) -> (&'static str, bool) {
    match field {
        SortField::Timestamp => ("pos", true),
        SortField::ReceivedAt => ("received", true),
        SortField::Seq => ("e.seq", true),
        SortField::SourceIp => ("IFNULL(ip, x'')", false),
        // Text sorts ignore case (an expression, unlike a column, would compare bytes).
        SortField::Performer => ("IFNULL(actor_name, IFNULL(actor_email, '')) COLLATE NOCASE", false),
        SortField::Company => ("IFNULL(company, '') COLLATE NOCASE", false),
        // Exactly the expression of the index `events_email_sort` (migration 8).
        SortField::Email => ("IFNULL(actor_email, '') COLLATE NOCASE", false),
        SortField::Category => ("category", false),
        SortField::Operation => ("operation", false),
        SortField::Action => ("(category || ':' || operation) COLLATE NOCASE", false),
        SortField::Result => ("result", true),
        SortField::StatusCode => ("IFNULL(status_code, -1)", true),
        SortField::RequestId => ("IFNULL(request_id, '')", false),
        SortField::Resource => ("IFNULL(resource_name, IFNULL(resource_id, '')) COLLATE NOCASE", false),
    }
}

/// Joins an event row (`e`) to its stored JSON (`l`).
pub(super) const LEAF_JOIN: &str = "JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq";

/// The statement listing `q`'s events (`pos, ts, sort value, leaf`) in sort order,
/// `limit` of them (`None`: all). With `narrow` (time order only) it selects
/// `pos, org_id, seq` instead, for `stream_blocking` to read the JSON a chunk at a time.
pub(super) fn list_sql(
    conn: &Connection,
    q: &ListQuery,
    limit: Option<usize>,
    narrow: bool,
) -> Result<(String, Sql), StoreError> {
    let sort = q.filter.sort;
    let cursor = cursor(q)?;
    let mut sql = where_clause(conn, &q.scope, &q.filter, q.now, false)?;
    let (expr, is_int) = sort_expr(sort.field);
    let cmp = if sort.desc { "<" } else { ">" };
    let dir = if sort.desc { "DESC" } else { "ASC" };
    let time_sort = sort.field == SortField::Timestamp;
    let limit = limit.map_or(-1, |l| l as i64);
    let match_expr = if time_sort { sql.match_expr() } else { sql.narrowing_match() };
    // Time order is storage order: with filters, FTS5 walks the matching rowids newest
    // first and stops after one page; without, the table itself is walked.
    let text = if time_sort {
        let via_fts = match_expr.is_some();
        let col = if via_fts { "f.rowid" } else { "e.pos" };
        if let Some(m) = match_expr {
            let p = sql.param(m);
            sql.clauses.push(format!("events_fts MATCH {p}"));
        }
        sql.bound_pos(col);
        if let Some(c) = &cursor {
            let p = sql.param(c.pos);
            sql.clauses.push(format!("{col} {cmp} {p}"));
        }
        let from = if via_fts { "events_fts f JOIN events e ON e.pos = f.rowid" } else { "events e" };
        let (columns, join) = match narrow {
            true => ("e.pos, e.org_id, e.seq", if sql.needs_leaf { LEAF_JOIN } else { "" }),
            false => ("e.pos, e.ts, NULL, l.leaf", LEAF_JOIN),
        };
        format!("SELECT {columns} FROM {from} {join} WHERE {} ORDER BY {col} {dir} LIMIT {}", sql.where_sql(), limit)
    } else {
        if let Some(m) = match_expr {
            sql.match_in(m);
        }
        sql.bound_pos("e.pos");
        if let Some(c) = &cursor {
            let v = match &c.value {
                Value::String(s) if sort.field == SortField::SourceIp => SqlValue::Blob(decode_hex(s)),
                Value::String(s) => SqlValue::Text(s.clone()),
                Value::Number(n) if is_int => SqlValue::Integer(n.as_i64().unwrap_or(0)),
                _ => return Err(cursor_mismatch()),
            };
            let (pv, pp) = (sql.param(v), sql.param(c.pos));
            sql.clauses.push(format!("({expr}, e.pos) {cmp} ({pv}, {pp})"));
        }
        // Sort the narrow rows first; read the events' JSON for one page only.
        let inner = if sql.needs_leaf { format!("events e {LEAF_JOIN}") } else { "events e".to_string() };
        format!(
            "SELECT e.pos, e.ts, {expr}, l.leaf FROM (SELECT e.pos AS page_pos FROM {inner} WHERE {} \
             ORDER BY {expr} {dir}, e.pos {dir} LIMIT {}) JOIN events e ON e.pos = page_pos {LEAF_JOIN} \
             ORDER BY {expr} {dir}, e.pos {dir}",
            sql.where_sql(),
            limit
        )
    };
    Ok((text, sql))
}

/// Sends every event of `q` in chunks until done or the receiver is gone.
pub(super) fn stream_blocking(
    conn: &Connection,
    q: ListQuery,
    chunk: usize,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<Vec<u8>>, StoreError>>,
) -> Result<(), StoreError> {
    let time_sort = q.filter.sort.field == SortField::Timestamp;
    let (text, sql) = list_sql(conn, &ListQuery { cursor: None, ..q }, None, time_sort)?;
    let mut stmt = conn.prepare(&text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let send = |out: Vec<Vec<u8>>| tx.blocking_send(Ok(out)).is_ok();
    if !time_sort {
        let mut out = Vec::with_capacity(chunk);
        while let Some(r) = rows.next()? {
            out.push(r.get::<_, Vec<u8>>(3)?);
            if out.len() == chunk && !send(std::mem::replace(&mut out, Vec::with_capacity(chunk))) {
                return Ok(());
            }
        }
        if !out.is_empty() {
            send(out);
        }
        return Ok(());
    }
    let mut keys = Vec::with_capacity(chunk);
    while let Some(r) = rows.next()? {
        keys.push((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?));
        if keys.len() == chunk {
            if !send(fetch_leaves(conn, &keys)?) {
                return Ok(());
            }
            keys.clear();
        }
    }
    if !keys.is_empty() {
        send(fetch_leaves(conn, &keys)?);
    }
    Ok(())
}

/// The stored JSON of `keys` (organization id, seq), in their order. Rows walked in
/// time order mostly have consecutive seqs, so where an organization's seqs in the
/// chunk are dense one range read of `leaves` replaces a lookup per row (a lookup costs
/// about 2 µs at 1M events, the range read a fraction of that).
pub(super) fn fetch_leaves(conn: &Connection, keys: &[(i64, i64)]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
    let mut by_org: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, (org, _)) in keys.iter().enumerate() {
        by_org.entry(*org).or_default().push(i);
    }
    for (org, idx) in by_org {
        let (lo, hi) = idx.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &i| (lo.min(keys[i].1), hi.max(keys[i].1)));
        let span = (hi - lo + 1) as usize;
        if span <= 2 * idx.len() + 64 {
            let mut slot = vec![usize::MAX; span];
            for &i in &idx {
                slot[(keys[i].1 - lo) as usize] = i;
            }
            let mut stmt =
                conn.prepare_cached("SELECT seq, leaf FROM leaves WHERE org_id = ?1 AND seq BETWEEN ?2 AND ?3")?;
            let mut rows = stmt.query(params![org, lo, hi])?;
            while let Some(r) = rows.next()? {
                let i = slot[(r.get::<_, i64>(0)? - lo) as usize];
                if i != usize::MAX {
                    out[i] = Some(r.get(1)?);
                }
            }
        } else {
            let mut stmt = conn.prepare_cached("SELECT leaf FROM leaves WHERE org_id = ?1 AND seq = ?2")?;
            for &i in &idx {
                out[i] = stmt.query_row(params![org, keys[i].1], |r| r.get(0)).optional()?;
            }
        }
    }
    out.into_iter()
        .zip(keys)
        .map(|(leaf, (org, seq))| {
            leaf.ok_or_else(|| StoreError::Corrupt(format!("entry {seq} of organization {org} has no stored JSON")))
        })
        .collect()
}

pub(super) fn count_blocking(conn: &Connection, scope: &Scope, f: &Filter, now: Timestamp) -> Result<u64, StoreError> {
    let mut sql = where_clause(conn, scope, f, now, false)?;
    sql.drive_by_time();
    if let Some(m) = sql.narrowing_match() {
        sql.match_in(m);
    }
    sql.bound_pos("e.pos");
    let from = if sql.needs_leaf { format!("events e {LEAF_JOIN}") } else { "events e".to_string() };
    let text = format!("SELECT COUNT(*) FROM {from} WHERE {}", sql.where_sql());
    let n: i64 = conn.prepare_cached(&text)?.query_row(rusqlite::params_from_iter(sql.params.iter()), |r| r.get(0))?;
    Ok(n as u64)
}

pub(super) fn list_blocking(conn: &Connection, q: ListQuery) -> Result<Page, StoreError> {
    let limit = page_limit(q.limit);
    let (text, sql) = list_sql(conn, &q, Some(limit + 1), false)?;
    let mut stmt = conn.prepare_cached(&text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut page = PageBuilder::new(q.filter.sort, limit);
    while let Some(r) = rows.next()? {
        let value = match r.get_ref(2)? {
            rusqlite::types::ValueRef::Integer(i) => Value::from(i),
            rusqlite::types::ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
            rusqlite::types::ValueRef::Blob(b) => Value::from(encode_hex(b)),
            _ => Value::Null,
        };
        if !page.push(value, r.get(1)?, r.get(0)?, r.get(3)?) {
            break;
        }
    }
    Ok(page.finish())
}

pub(super) fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// Facets counted on the events themselves (the partial days around the rollups'
/// whole days); each facet keeps at most `limit` values.
pub(super) fn exact_facets(
    conn: &Connection,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    limit: usize,
) -> Result<Facets, StoreError> {
    let mut sql = where_clause(conn, scope, f, now, true)?;
    sql.drive_by_time();
    sql.bound_pos("pos");
    let where_sql = sql.where_sql();
    let group = |select: &str, group: &str, limit: usize| -> Result<Vec<(Value, Option<String>, u64)>, StoreError> {
        let text = format!(
            "SELECT {select}, COUNT(*) AS n FROM events e WHERE {where_sql} GROUP BY {group} ORDER BY n DESC \
             LIMIT {limit}"
        );
        let mut stmt = conn.prepare_cached(&text)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            let v = match r.get_ref(0)? {
                rusqlite::types::ValueRef::Integer(i) => Value::from(i),
                rusqlite::types::ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                _ => Value::Null,
            };
            Ok((v, r.get::<_, Option<String>>(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let categories = group("category, NULL", "category", limit)?
        .into_iter()
        .map(|(v, _, count)| Count { value: text(&v), label: None, count })
        .collect::<Vec<_>>();
    let results = group("result, NULL", "result", 4)?
        .into_iter()
        .map(|(v, _, count)| {
            let o = Outcome::ALL[v.as_i64().unwrap_or(0).clamp(0, 3) as usize];
            Count { value: o.as_str().into(), label: None, count }
        })
        .collect();
    let users = group("actor_email, MAX(actor_name)", "actor_email", limit)?
        .into_iter()
        .filter(|(v, _, _)| v.is_string())
        .map(|(v, label, count)| Count { value: text(&v), label, count })
        .collect();
    let companies = group(
        "(SELECT slug FROM orgs WHERE orgs.id = org_id), (SELECT name FROM orgs WHERE orgs.id = org_id)",
        "org_id",
        limit,
    )?
    .into_iter()
    .map(|(v, label, count)| Count { value: text(&v), label, count })
    .collect();
    let total = categories.iter().map(|c| c.count).sum();
    Ok(Facets { total, categories, results, users, companies })
}

#[async_trait]
impl EventLog for SqliteStore {
    /// One process owns the file: nothing is appended elsewhere.
    fn appended_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<AppendedRange>> {
        None
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        self.enqueue(batch).await
    }

    async fn list(&self, query: ListQuery) -> Result<Page, StoreError> {
        self.read(move |c| list_blocking(c, query)).await
    }

    async fn stream(&self, query: ListQuery, chunk: usize) -> Result<StreamRx, StoreError> {
        // Eight chunks ahead (about 8 MB of events): enough that a consumer building
        // rows on other threads (CSV) does not leave the reading thread waiting.
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        // A long scan through a memory map would pull the whole file into the
        // process's resident set; plain reads through a small cache keep it flat.
        let conn = open_unmapped(&self.path, true, 8)?;
        // A search the index refuses is refused before the stream starts.
        super::index::fts_query(&conn, &crate::query_plan::terms(&query.filter))?;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = stream_blocking(&conn, query, chunk.max(1), &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }

    async fn count(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<u64, StoreError> {
        // Counts serve exports, which may count a million rows: as for streams, plain
        // reads through a small cache instead of the pooled readers' map, which would
        // leave every page the count touched in the process's resident set.
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_unmapped(&path, true, 8)?;
            count_blocking(&conn, &scope, &filter, now)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    async fn get(&self, scope: Scope, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| {
            let row: Option<(Vec<u8>, String, String)> = c
                .prepare_cached(
                    "SELECT l.leaf, o.slug, e.category FROM events e JOIN orgs o ON o.id = e.org_id \
                     JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq WHERE e.id = ?1",
                )?
                .query_row([&id.as_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            Ok(row.and_then(|(leaf, org, category)| scope.allows(&org, &category).then_some(leaf)))
        })
        .await
    }

    async fn scan(&self, org: &str, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT l.seq, l.leaf FROM leaves l WHERE l.org_id = (SELECT id FROM orgs WHERE slug = ?1) \
                 AND l.seq >= ?2 ORDER BY l.seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![org, from as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn facets(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<Facets, StoreError> {
        self.read(move |c| super::rollup::facets_blocking(c, scope, filter, now)).await
    }

    async fn timeline(
        &self,
        scope: Scope,
        filter: Filter,
        now: Timestamp,
    ) -> Result<crate::rollup::Timeline, StoreError> {
        self.read(move |c| super::rollup::timeline_blocking(c, scope, filter, now)).await
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        self.read(|c| Ok(c.query_row("SELECT NOT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))?)).await
    }

    async fn writable(&self) -> Result<(), StoreError> {
        self.writable_now()
    }

    fn stats(&self) -> crate::StoreStats {
        self.writer_stats()
    }

    fn close(&self) {
        SqliteStore::close(self);
    }
}
