//! Reads of the log in PostgreSQL: the filter rendered as row conditions and `tsquery`
//! matches, pages in any sort order, streams, counts and facets.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use trail_core::{Filter, SortField, StatusClass, Timestamp};
use uuid::Uuid;

use super::{index::MAX_LEXEME, org_id, pg, writer::PgPrepared, PgBatch, PgStore};
use crate::{
    query_plan::{
        actor_matches, cursor, cursor_mismatch, equalities, page_limit, terms, ActorMatch, Col, PageBuilder,
        MIN_PREFIX_CHARS,
    },
    row::outcome_code,
    AppendBatch, Appended, Categories, Count, EventLog, Facets, ListQuery, Page, Scope, StoreError, StreamRx,
};

/// A dynamic SQL condition with its parameters.
#[derive(Default)]
pub(super) struct Sql {
    pub(super) clauses: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    /// Positions in `clauses` of the `q` conditions.
    search: Vec<usize>,
    /// Whether a `q` term is a phrase of plain words (`image pull`): see `PHRASE_PROBE`.
    word_phrase: bool,
}

impl Sql {
    pub(super) fn param(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    /// Every value must equal one of the columns (OR), ignoring case where the plan
    /// says so.
    fn any_eq(&mut self, cols: &[Col], values: &[String]) {
        if values.is_empty() {
            return;
        }
        if let [c] = cols {
            if c.exact() {
                let p = self.param(values.to_vec());
                self.clauses.push(format!("e.{} = ANY({p})", c.name()));
                return;
            }
        }
        let mut ors = Vec::new();
        for v in values {
            let p = self.param(v.to_lowercase());
            for c in cols {
                ors.push(format!("lower(e.{}) = {p}", c.name()));
            }
        }
        self.clauses.push(format!("({})", ors.join(" OR ")));
    }

    pub(super) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }

    pub(super) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            "true".into()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

pub(super) async fn where_clause(
    c: &impl deadpool_postgres::GenericClient,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    time_only: bool,
) -> Result<Sql, StoreError> {
    let mut sql = Sql::default();
    // Organizations: the scope's, narrowed by the company filter.
    let mut ids: Option<Vec<i64>> = match &scope.org {
        Some(slug) => Some(
            c.query_opt("SELECT id FROM orgs WHERE slug = $1", &[slug])
                .await
                .map_err(pg)?
                .map(|r| r.get(0))
                .into_iter()
                .collect(),
        ),
        None => None,
    };
    if !f.company.is_empty() {
        let mut found = Vec::new();
        for name in &f.company {
            let row = c
                .query_opt("SELECT id FROM orgs WHERE lower(slug) = lower($1) OR lower(name) = lower($1)", &[name])
                .await
                .map_err(pg)?;
            if let Some(r) = row {
                let id: i64 = r.get(0);
                if ids.as_ref().is_none_or(|s| s.contains(&id)) {
                    found.push(id);
                }
            }
        }
        ids = Some(found);
    }
    match ids.as_deref() {
        // One organization compares by `=`, so that an index led by `org_id` also
        // gives its order (sorting by email walks `events_email_sort`).
        Some([id]) => {
            let p = sql.param(*id);
            sql.clauses.push(format!("e.org_id = {p}"));
        }
        Some(_) => {
            let p = sql.param(ids.unwrap_or_default());
            sql.clauses.push(format!("e.org_id = ANY({p})"));
        }
        None => {}
    }
    match &scope.categories {
        Categories::All => {}
        Categories::Only(list) => {
            let p = sql.param(list.clone());
            sql.clauses.push(format!("lower(e.category) = ANY({p})"));
        }
        Categories::Except(list) => {
            let p = sql.param(list.clone());
            sql.clauses.push(format!("NOT (lower(e.category) = ANY({p}))"));
        }
    }
    let (from, to) = f.time_range(now);
    if let Some(t) = from {
        let p = sql.param(t.0);
        sql.clauses.push(format!("e.ts >= {p}"));
    }
    if let Some(t) = to {
        let p = sql.param(t.0);
        sql.clauses.push(format!("e.ts <= {p}"));
    }
    if time_only {
        return Ok(sql);
    }
    if !f.action.is_empty() {
        let p = sql.param(f.action.iter().map(|a| a.to_lowercase()).collect::<Vec<_>>());
        sql.clauses.push(format!("lower(e.category || ':' || e.operation) = ANY({p})"));
    }
    if !f.result.is_empty() {
        let p = sql.param(f.result.iter().map(|r| outcome_code(*r) as i16).collect::<Vec<_>>());
        sql.clauses.push(format!("e.result = ANY({p})"));
        // Spelled out so that the planner can use the partial index `events_unfinished`
        // (it cannot see through the parameter).
        if f.result.iter().all(|r| outcome_code(*r) >= 2) {
            sql.clauses.push("e.result >= 2".into());
        }
    }
    if let Some(s) = f.status {
        sql.clauses.push(match s {
            StatusClass::Success => {
                "((e.status_code BETWEEN 200 AND 299) OR (e.status_code IS NULL AND e.result = 0))".into()
            }
            StatusClass::Failure => "((e.status_code >= 400) OR (e.status_code IS NULL AND e.result = 1))".into(),
        });
    }
    if !f.actor.is_empty() {
        let mut ors = Vec::new();
        for m in actor_matches(f) {
            match m {
                ActorMatch::EmailLocal(v) => {
                    let prefix = v.strip_suffix('@').unwrap_or(v);
                    let p = sql.param(format!(
                        "{}@%",
                        prefix.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                    ));
                    ors.push(format!("lower(e.actor_email) LIKE {p}"));
                }
                ActorMatch::Any(v) => {
                    let p = sql.param(v.to_lowercase());
                    ors.push(format!(
                        "lower(e.actor_id) = {p} OR lower(e.actor_name) = {p} OR lower(e.actor_email) = {p}"
                    ));
                }
            }
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
    }
    if f.hide_views {
        sql.clauses.push("NOT (lower(e.category) = 'audit' AND lower(e.operation) = 'view')".into());
    }
    for (cols, values) in equalities(f) {
        sql.any_eq(cols, values);
    }
    if !f.ip.is_empty() {
        // Each block as a range of the address index (`<<=` over an array of blocks
        // cannot use it: a block matching nothing walked the whole organization).
        let mut ors = Vec::new();
        for net in &f.ip {
            let (lo, hi) = (sql.param(net.network().to_string()), sql.param(net.broadcast().to_string()));
            let block = sql.param(net.trunc().to_string());
            ors.push(format!(
                "(e.ip >= {lo}::TEXT::INET AND e.ip <= {hi}::TEXT::INET AND e.ip <<= {block}::TEXT::CIDR)"
            ));
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
    }
    check_prefixes(f)?;
    for term in terms(f) {
        let words: Vec<String> = term.words.iter().map(|w| w.to_lowercase()).collect();
        if words.iter().any(|w| w.len() > MAX_LEXEME) {
            // No indexed word is that long, so none starts with it.
            sql.clauses.push("FALSE".into());
            continue;
        }
        // The term's text is then looked for in the stored event: every word but the
        // last is followed by more of the term, so it is a whole word of the text.
        let phrase = term.phrase;
        // Quoted lexemes, as the documents hold them (words have no quote or backslash);
        // whole words match exactly, which lets the index skip through common ones
        // (`req` of every request id) instead of collecting every row they are in.
        let last = words.len() - 1;
        let q = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                // A one-character word stands for itself only (`MIN_PREFIX_CHARS`).
                if (phrase && i < last) || w.chars().count() < MIN_PREFIX_CHARS {
                    format!("'{w}'")
                } else {
                    format!("'{w}':*")
                }
            })
            .collect::<Vec<_>>()
            .join(" & ");
        let p = sql.param(q);
        sql.search.push(sql.clauses.len());
        sql.clauses.push(format!("e.doc @@ {p}::TEXT::TSQUERY"));
        if phrase {
            let p = sql.param(term.text.to_lowercase());
            sql.search.push(sql.clauses.len());
            sql.clauses.push(format!("position({p} in lower(convert_from(e.leaf, 'UTF8'))) > 0"));
            sql.word_phrase |= words.iter().all(|w| w.chars().all(char::is_alphabetic));
        }
    }
    Ok(sql)
}

/// Refuses a search of more than `MAX_SHORT_PREFIXES` two-letter prefixes: each stands
/// for a large share of the vocabulary, which the index merges while the search runs
/// (as SQLite's `MAX_OPEN_PREFIXES`).
pub(super) fn check_prefixes(f: &trail_core::Filter) -> Result<(), StoreError> {
    let terms = terms(f);
    let short: Vec<&str> = terms
        .iter()
        .filter_map(|t| t.words.last().filter(|w| t.prefix_at(t.words.len() - 1) && w.chars().count() < 3).copied())
        .collect();
    if short.len() > MAX_SHORT_PREFIXES {
        return Err(StoreError::Invalid {
            field: "q".into(),
            message: format!(
                "at most {MAX_SHORT_PREFIXES} search words of two characters ({}); type more of them",
                short.join(", ")
            ),
        });
    }
    Ok(())
}

/// Most two-letter prefixes one search may hold (SQLite's `MAX_OPEN_PREFIXES`).
const MAX_SHORT_PREFIXES: usize = 2;

pub(super) fn sort_expr(field: SortField) -> (&'static str, bool) {
    match field {
        SortField::Timestamp => ("e.ts", true),
        SortField::ReceivedAt => ("e.received", true),
        SortField::Seq => ("e.seq", true),
        SortField::SourceIp => ("COALESCE(host(e.ip), '')", false),
        // Text sorts ignore case, as on SQLite.
        SortField::Performer => ("lower(COALESCE(e.actor_name, e.actor_email, ''))", false),
        SortField::Company => ("lower(COALESCE(e.company, ''))", false),
        SortField::Email => ("COALESCE(lower(e.actor_email), '')", false),
        SortField::Category => ("lower(e.category)", false),
        SortField::Operation => ("lower(e.operation)", false),
        SortField::Action => ("lower(e.category || ':' || e.operation)", false),
        SortField::Result => ("e.result::BIGINT", true),
        SortField::StatusCode => ("COALESCE(e.status_code, -1)::BIGINT", true),
        SortField::RequestId => ("COALESCE(e.request_id, '')", false),
        SortField::Resource => ("lower(COALESCE(e.resource_name, e.resource_id, ''))", false),
    }
}

/// The statement listing a query's events (`ts, pos, sort value, leaf`) in order.
pub(super) fn list_sql(mut sql: Sql, q: &ListQuery, limit: Option<usize>) -> Result<(String, Sql), StoreError> {
    let sort = q.filter.sort;
    let cursor = cursor(q)?;
    let (expr, is_int) = sort_expr(sort.field);
    let cmp = if sort.desc { "<" } else { ">" };
    let dir = if sort.desc { "DESC" } else { "ASC" };
    let time = sort.field == SortField::Timestamp;
    if let Some(c) = &cursor {
        if time {
            let (pt, pp) = (sql.param(c.ts), sql.param(c.pos));
            sql.clauses.push(format!("(e.ts, e.pos) {cmp} ({pt}, {pp})"));
        } else {
            let pp = sql.param(c.pos);
            let v = match (&c.value, is_int) {
                (serde_json::Value::Number(n), true) => sql.param(n.as_i64().unwrap_or(0)),
                (serde_json::Value::String(s), false) => sql.param(s.clone()),
                _ => return Err(cursor_mismatch()),
            };
            sql.clauses.push(format!("({expr}, e.pos) {cmp} ({v}, {pp})"));
        }
    }
    let order = if time { format!("e.ts {dir}, e.pos {dir}") } else { format!("{expr} {dir}, e.pos {dir}") };
    let limit = limit.map_or(String::new(), |l| format!(" LIMIT {l}"));
    let value = if time {
        "NULL::TEXT".to_string()
    } else if is_int {
        format!("({expr})::TEXT")
    } else {
        expr.to_string()
    };
    let text =
        format!("SELECT e.ts, e.pos, {value}, e.leaf FROM events e WHERE {} ORDER BY {order}{limit}", sql.where_sql());
    Ok((text, sql))
}

/// Newest rows a phrase search of plain words first looks through (see `probe_sql`).
pub(super) const PHRASE_PROBE: usize = 10_000;

/// For a page in time order searching a phrase of plain words: the same page taken from
/// only the first `PHRASE_PROBE` rows (in the page's order) that meet the other
/// conditions. The planner multiplies the words' frequencies as if they were unrelated
/// (`image` and `pull` nearly always come together), so it expects a handful of
/// matches, collects every one of them through the search index and checks the phrase
/// in each stored event: 70-100 ms at 1M events. Common phrases fill a page within the
/// newest rows; when this query returns `limit` rows they are exactly the page's (a
/// filtered prefix of the ordered rows keeps their order), and otherwise the caller
/// runs the full query. `None` when the probe does not apply.
pub(super) fn probe_sql(sql: &Sql, q: &ListQuery, limit: usize) -> Option<String> {
    if !sql.word_phrase || q.filter.sort.field != SortField::Timestamp {
        return None;
    }
    let order = if q.filter.sort.desc { "e.ts DESC, e.pos DESC" } else { "e.ts ASC, e.pos ASC" };
    let (search, other): (Vec<_>, Vec<_>) = sql.clauses.iter().enumerate().partition(|(i, _)| sql.search.contains(i));
    let and = |c: Vec<(usize, &String)>| c.into_iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>().join(" AND ");
    // `search` holds at least the phrase; `other` may be empty (every organization).
    Some(format!(
        "SELECT e.ts, e.pos, NULL::TEXT, e.leaf FROM (SELECT e.ts, e.pos, e.doc, e.leaf FROM events e WHERE {} \
         ORDER BY {order} LIMIT {PHRASE_PROBE}) e WHERE {} ORDER BY {order} LIMIT {limit}",
        if other.is_empty() { "true".into() } else { and(other) },
        and(search)
    ))
}

pub(super) fn cursor_value(sort: SortField, v: Option<String>) -> serde_json::Value {
    let (_, is_int) = sort_expr(sort);
    match v {
        None => serde_json::Value::Null,
        Some(s) if is_int => serde_json::Value::from(s.parse::<i64>().unwrap_or(0)),
        Some(s) => serde_json::Value::from(s),
    }
}

#[async_trait]
impl EventLog for PgStore {
    /// The pool closes when the store is dropped; nothing is pending between appends.
    fn close(&self) {}

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        // Prepared before queueing, so the group's writer does little beyond the
        // database's own work.
        let (org, events) = crate::prepare::prepare_batch(batch, &self.preparing, PgPrepared::new).await?;
        self.group_append(PgBatch { org, events }).await
    }

    async fn list(&self, q: ListQuery) -> Result<Page, StoreError> {
        let c = self.client().await?;
        let sql = where_clause(&c, &q.scope, &q.filter, q.now, false).await?;
        let limit = page_limit(q.limit);
        let (text, sql) = list_sql(sql, &q, Some(limit + 1))?;
        let mut rows = Vec::new();
        if let Some(probe) = probe_sql(&sql, &q, limit + 1) {
            rows = c.query(&probe, &sql.refs()).await.map_err(pg)?;
        }
        if rows.len() <= limit {
            rows = c.query(&text, &sql.refs()).await.map_err(pg)?;
        }
        let mut page = PageBuilder::new(q.filter.sort, limit);
        for r in rows {
            let value = cursor_value(q.filter.sort.field, r.get(2));
            if !page.push(value, r.get(0), r.get(1), r.get(3)) {
                break;
            }
        }
        Ok(page.finish())
    }

    async fn stream(&self, q: ListQuery, chunk: usize) -> Result<StreamRx, StoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let c = self.client().await?;
        check_prefixes(&q.filter)?;
        tokio::spawn(async move {
            let run = async {
                let sql = where_clause(&c, &q.scope, &q.filter, q.now, false).await?;
                let (text, sql) = list_sql(sql, &ListQuery { cursor: None, ..q.clone() }, None)?;
                let rows = c.query_raw(&text, sql.refs()).await.map_err(pg)?;
                let mut rows = std::pin::pin!(rows);
                let mut out = Vec::with_capacity(chunk);
                use futures::StreamExt;
                while let Some(r) = rows.next().await {
                    out.push(r.map_err(pg)?.get::<_, Vec<u8>>(3));
                    if out.len() == chunk.max(1) && tx.send(Ok(std::mem::take(&mut out))).await.is_err() {
                        return Ok(());
                    }
                }
                if !out.is_empty() {
                    let _ = tx.send(Ok(out)).await;
                }
                Ok::<(), StoreError>(())
            };
            if let Err(e) = run.await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    async fn count(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let sql = where_clause(&c, &scope, &filter, now, false).await?;
        let text = format!("SELECT COUNT(*) FROM events e WHERE {}", sql.where_sql());
        Ok(c.query_one(&text, &sql.refs()).await.map_err(pg)?.get::<_, i64>(0) as u64)
    }

    async fn get(&self, scope: Scope, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT e.leaf, o.slug, e.category FROM events e JOIN orgs o ON o.id = e.org_id WHERE e.id = $1",
                &[&id],
            )
            .await
            .map_err(pg)?;
        Ok(row.and_then(|r| {
            let (org, cat): (String, String) = (r.get(1), r.get(2));
            scope.allows(&org, &cat).then(|| r.get(0))
        }))
    }

    async fn scan(&self, org: &str, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let rows = c
            .query(
                "SELECT seq, leaf FROM events WHERE org_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                &[&id, &(from as i64), &(limit.min(i64::MAX as usize) as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0) as u64, r.get(1))).collect())
    }

    async fn facets(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<Facets, StoreError> {
        let c = self.client().await?;
        super::rollup::facets(&c, scope, filter, now).await
    }

    async fn timeline(
        &self,
        scope: Scope,
        filter: Filter,
        now: Timestamp,
    ) -> Result<crate::rollup::Timeline, StoreError> {
        let c = self.client().await?;
        super::rollup::timeline(&c, scope, filter, now).await
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt("SELECT 1 FROM events LIMIT 1", &[]).await.map_err(pg)?.is_none())
    }

    fn stats(&self) -> crate::StoreStats {
        let s = self.pool.status();
        crate::StoreStats { pool: Some((s.size as u64, s.available as u64)), ..Default::default() }
    }

    async fn writable(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'", &[])
            .await
            .map_err(pg)?;
        match row.get::<_, bool>(0) {
            true => Err(StoreError::Unavailable("the database is read-only (a replica or in recovery)".into())),
            false => Ok(()),
        }
    }

    fn appended_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<crate::AppendedRange>> {
        Some(self.elsewhere.subscribe())
    }
}

/// Facets counted on the events themselves (the partial days around the rollups'
/// whole days); each facet keeps at most `limit` values.
pub(super) async fn exact_facets(
    c: &impl deadpool_postgres::GenericClient,
    scope: &Scope,
    filter: &Filter,
    now: Timestamp,
    limit: usize,
) -> Result<Facets, StoreError> {
    let sql = where_clause(c, scope, filter, now, true).await?;
    let w = sql.where_sql();
    let q = |select: &str, group: &str, limit: usize| {
        format!("SELECT {select}, COUNT(*) AS n FROM events e WHERE {w} GROUP BY {group} ORDER BY n DESC LIMIT {limit}")
    };
    let refs = sql.refs();
    let categories: Vec<Count> = c
        .query(&q("e.category, NULL::TEXT", "e.category", limit), &refs)
        .await
        .map_err(pg)?
        .iter()
        .map(|r| Count { value: r.get(0), label: None, count: r.get::<_, i64>(2) as u64 })
        .collect();
    let results = c
        .query(&q("e.result::TEXT, NULL::TEXT", "e.result", limit), &refs)
        .await
        .map_err(pg)?
        .iter()
        .map(|r| {
            let code: i64 = r.get::<_, String>(0).parse().unwrap_or(0);
            let o = trail_core::Outcome::ALL[code.clamp(0, 3) as usize];
            Count { value: o.as_str().into(), label: None, count: r.get::<_, i64>(2) as u64 }
        })
        .collect();
    let users = c
        .query(&q("e.actor_email, MAX(e.actor_name)", "e.actor_email", limit), &refs)
        .await
        .map_err(pg)?
        .iter()
        .filter_map(|r| {
            Some(Count { value: r.get::<_, Option<String>>(0)?, label: r.get(1), count: r.get::<_, i64>(2) as u64 })
        })
        .collect();
    let companies = c
        .query(
            &format!(
                "SELECT o.slug, o.name, COUNT(*) AS n FROM events e JOIN orgs o ON o.id = e.org_id WHERE {w} \
                 GROUP BY o.slug, o.name ORDER BY n DESC LIMIT {limit}"
            ),
            &refs,
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| Count { value: r.get(0), label: r.get(1), count: r.get::<_, i64>(2) as u64 })
        .collect();
    let total = categories.iter().map(|c| c.count).sum();
    Ok(Facets { total, categories, results, users, companies })
}
