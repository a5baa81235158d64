//! The per-day counts in SQLite (`day_counts`, `day_actors`; see `crate::rollup`):
//! kept by the writer and by retention in their transactions, and read for facets and
//! timelines, whole days from the rollups and partial days from the events.

use rusqlite::{params, Connection};
use trail_core::{Filter, Timestamp};

use super::query::{exact_facets, where_clause, Sql, LEAF_JOIN};
use crate::{
    rollup::{self, merge_facets, with_range, ExactBars, Tally, Timeline, TimelinePart, DAY_US},
    row::outcome_code,
    Count, Facets, Scope, StoreError,
};

/// Adds a tally to the rollups (in the caller's transaction); rows counted down to
/// nothing are removed.
pub(super) fn apply(conn: &Connection, tally: &Tally) -> Result<(), StoreError> {
    if tally.is_empty() {
        return Ok(());
    }
    let mut days = conn.prepare_cached(
        "INSERT INTO day_counts (day, org_id, category, result, is_view, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT DO UPDATE SET n = n + excluded.n",
    )?;
    for (k, n) in &tally.days {
        days.execute(params![k.day, k.org, k.category, k.result, k.view, n])?;
    }
    let mut actors = conn.prepare_cached(
        "INSERT INTO day_actors (day, org_id, category, actor_email, actor_name, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT DO UPDATE SET n = n + excluded.n, actor_name = IFNULL(excluded.actor_name, actor_name)",
    )?;
    for (k, (n, name)) in &tally.actors {
        actors.execute(params![k.day, k.org, k.category, k.email, name, n])?;
    }
    // Rows counted down to nothing go (only deletions count down).
    let mut gone_day = conn.prepare_cached(
        "DELETE FROM day_counts WHERE day = ?1 AND org_id = ?2 AND category = ?3 AND result = ?4 AND is_view = ?5 \
         AND n <= 0",
    )?;
    for (k, _) in tally.days.iter().filter(|(_, n)| **n < 0) {
        gone_day.execute(params![k.day, k.org, k.category, k.result, k.view])?;
    }
    let mut gone_actor = conn.prepare_cached(
        "DELETE FROM day_actors WHERE day = ?1 AND org_id = ?2 AND category = ?3 AND actor_email = ?4 AND n <= 0",
    )?;
    for (k, _) in tally.actors.iter().filter(|(_, (n, _))| *n < 0) {
        gone_actor.execute(params![k.day, k.org, k.category, k.email])?;
    }
    Ok(())
}

/// The scope's (and `company` filter's) conditions on a rollup table aliased `e`, and
/// its whole days.
fn day_where(conn: &Connection, scope: &Scope, f: &Filter, days: (i64, i64)) -> Result<Sql, StoreError> {
    let orgs_only = Filter { company: f.company.clone(), ..Filter::default() };
    let mut sql = where_clause(conn, scope, &orgs_only, Timestamp(0), true)?;
    let (lo, hi) = (sql.param(days.0), sql.param(days.1));
    sql.clauses.push(format!("e.day BETWEEN {lo} AND {hi}"));
    Ok(sql)
}

/// Facets of whole days from the rollups.
fn day_facets(conn: &Connection, scope: &Scope, f: &Filter, days: (i64, i64)) -> Result<Facets, StoreError> {
    let sql = day_where(conn, scope, f, days)?;
    let w = sql.where_sql();
    let run = |text: String| -> Result<Vec<Count>, StoreError> {
        let mut stmt = conn.prepare_cached(&text)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            let value = match r.get_ref(0)? {
                rusqlite::types::ValueRef::Integer(i) => rollup::outcome_name(i).to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                _ => String::new(),
            };
            Ok(Count { value, label: r.get(1)?, count: r.get::<_, i64>(2)? as u64 })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    };
    Ok(Facets {
        total: 0,
        categories: run(format!("SELECT category, NULL, SUM(n) FROM day_counts e WHERE {w} GROUP BY category"))?,
        results: run(format!("SELECT result, NULL, SUM(n) FROM day_counts e WHERE {w} GROUP BY result"))?,
        users: run(format!(
            "SELECT actor_email, MAX(actor_name), SUM(n) FROM day_actors e WHERE {w} GROUP BY actor_email"
        ))?,
        companies: run(format!(
            "SELECT o.slug, o.name, SUM(n) FROM day_counts e JOIN orgs o ON o.id = e.org_id WHERE {w} \
             GROUP BY e.org_id"
        ))?,
    })
}

/// Counts per category, result, user and organization in the filter's time range:
/// whole days from the rollups, the partial first and last day from the events.
pub(super) fn facets_blocking(
    conn: &Connection,
    scope: Scope,
    f: Filter,
    now: Timestamp,
) -> Result<Facets, StoreError> {
    let (from, to) = f.time_range(now);
    let split = rollup::split(from, to);
    let mut parts = Vec::new();
    if let Some(days) = split.days {
        parts.push(day_facets(conn, &scope, &f, days)?);
    }
    for (lo, hi) in split.exact {
        parts.push(exact_facets(conn, &scope, &with_range(&f, lo, hi), now, 100_000)?);
    }
    Ok(merge_facets(parts))
}

/// Matching events per hour or day, by result.
pub(super) fn timeline_blocking(
    conn: &Connection,
    scope: Scope,
    f: Filter,
    now: Timestamp,
) -> Result<Timeline, StoreError> {
    // Every part is counted as it is asked for: the future is ready at once.
    let count = |part| std::future::ready(count_part(conn, &scope, &f, now, part));
    use futures::FutureExt;
    rollup::timeline(&f, now, count)
        .now_or_never()
        .unwrap_or_else(|| Err(StoreError::Unavailable("a timeline part did not answer at once".into())))
}

/// One part of a timeline, counted with this backend's SQL.
fn count_part(
    conn: &Connection,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    part: TimelinePart,
) -> Result<ExactBars, StoreError> {
    let days = match part {
        TimelinePart::Exact { filter, width, bound } => return exact_bars(conn, scope, &filter, now, width, bound),
        TimelinePart::Days(days) => days,
    };
    let mut sql = day_where(conn, scope, f, days)?;
    if !f.category.is_empty() {
        let ps: Vec<String> = f.category.iter().map(|c| sql.param(c.clone())).collect();
        sql.clauses.push(format!("e.category IN ({})", ps.join(",")));
    }
    if !f.result.is_empty() {
        let ps: Vec<String> = f.result.iter().map(|r| sql.param(outcome_code(*r))).collect();
        sql.clauses.push(format!("e.result IN ({})", ps.join(",")));
    }
    if f.hide_views {
        sql.clauses.push("e.is_view = 0".into());
    }
    let text = format!(
        "SELECT e.day * {DAY_US}, e.result, SUM(e.n) FROM day_counts e WHERE {} GROUP BY e.day, e.result",
        sql.where_sql()
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let found = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)? as u64))
    })?;
    let rows = found.collect::<Result<Vec<_>, _>>()?;
    Ok((rows, true))
}

/// Matching events per bar and result counted on the events; with a bound, only the
/// newest `bound` matches are counted, and the flag says whether that was all.
fn exact_bars(
    conn: &Connection,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    width: i64,
    bound: Option<u64>,
) -> Result<ExactBars, StoreError> {
    let mut sql = where_clause(conn, scope, f, now, false)?;
    sql.drive_by_time();
    if let Some(m) = sql.narrowing_match() {
        sql.match_in(m);
    }
    sql.bound_pos("e.pos");
    let from = if sql.needs_leaf { format!("events e {LEAF_JOIN}") } else { "events e".to_string() };
    let limit = bound.map_or(-1, |b| b as i64 + 1);
    let text = format!(
        "SELECT (ts - ((ts % {width}) + {width}) % {width}), result, COUNT(*) FROM \
         (SELECT e.ts, e.result FROM {from} WHERE {} ORDER BY e.pos DESC LIMIT {limit}) GROUP BY 1, 2",
        sql.where_sql()
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let seen: u64 = rows.iter().map(|r| r.2).sum();
    Ok((rows, bound.is_none_or(|b| seen <= b)))
}
