//! The per-day counts in PostgreSQL (`day_counts`, `day_actors`; see `crate::rollup`):
//! kept by appends, restores and retention in their transactions, and read for facets
//! and timelines, whole days from the rollups and partial days from the events.

use deadpool_postgres::GenericClient;
use trail_core::{Filter, Timestamp};

use super::{
    pg,
    query::{exact_facets, where_clause, Sql},
};
use crate::{
    rollup::{self, merge_facets, with_range, ExactBars, Tally, Timeline, TimelinePart, DAY_US},
    row::outcome_code,
    Count, Facets, Scope, StoreError,
};

/// Adds a tally to the rollups (in the caller's transaction); rows counted down to
/// nothing are removed. Rows are upserted in key order, so that concurrent appends
/// from several processes lock them in the same order.
pub(super) async fn apply(tx: &impl GenericClient, tally: &Tally) -> Result<(), StoreError> {
    if tally.is_empty() {
        return Ok(());
    }
    let mut days: Vec<_> = tally.days.iter().collect();
    days.sort_by(|a, b| {
        (a.0.day, a.0.org, &a.0.category, a.0.result, a.0.view).cmp(&(
            b.0.day,
            b.0.org,
            &b.0.category,
            b.0.result,
            b.0.view,
        ))
    });
    let day: Vec<i64> = days.iter().map(|(k, _)| k.day).collect();
    let org: Vec<i64> = days.iter().map(|(k, _)| k.org).collect();
    let category: Vec<&str> = days.iter().map(|(k, _)| k.category.as_str()).collect();
    let result: Vec<i16> = days.iter().map(|(k, _)| k.result as i16).collect();
    let view: Vec<bool> = days.iter().map(|(k, _)| k.view).collect();
    let n: Vec<i64> = days.iter().map(|(_, n)| **n).collect();
    tx.execute(
        "INSERT INTO day_counts (day, org_id, category, result, is_view, n) \
         SELECT * FROM UNNEST($1::INT8[], $2::INT8[], $3::TEXT[], $4::INT2[], $5::BOOL[], $6::INT8[]) \
         ON CONFLICT (day, org_id, category, result, is_view) DO UPDATE SET n = day_counts.n + EXCLUDED.n",
        &[&day, &org, &category, &result, &view, &n],
    )
    .await
    .map_err(pg)?;
    let mut actors: Vec<_> = tally.actors.iter().collect();
    actors.sort_by(|a, b| {
        (a.0.day, a.0.org, &a.0.category, &a.0.email).cmp(&(b.0.day, b.0.org, &b.0.category, &b.0.email))
    });
    let aday: Vec<i64> = actors.iter().map(|(k, _)| k.day).collect();
    let aorg: Vec<i64> = actors.iter().map(|(k, _)| k.org).collect();
    let acategory: Vec<&str> = actors.iter().map(|(k, _)| k.category.as_str()).collect();
    let email: Vec<&str> = actors.iter().map(|(k, _)| k.email.as_str()).collect();
    let name: Vec<Option<&str>> = actors.iter().map(|(_, (_, name))| name.as_deref()).collect();
    let an: Vec<i64> = actors.iter().map(|(_, (n, _))| *n).collect();
    if !actors.is_empty() {
        tx.execute(
            "INSERT INTO day_actors (day, org_id, category, actor_email, actor_name, n) \
             SELECT * FROM UNNEST($1::INT8[], $2::INT8[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::INT8[]) \
             ON CONFLICT (day, org_id, category, actor_email) DO UPDATE SET n = day_actors.n + EXCLUDED.n, \
             actor_name = COALESCE(EXCLUDED.actor_name, day_actors.actor_name)",
            &[&aday, &aorg, &acategory, &email, &name, &an],
        )
        .await
        .map_err(pg)?;
    }
    // Rows counted down to nothing go (only deletions count down).
    if n.iter().chain(&an).any(|n| *n < 0) {
        tx.execute(
            "DELETE FROM day_counts WHERE (day, org_id) IN (SELECT * FROM UNNEST($1::INT8[], $2::INT8[])) AND n <= 0",
            &[&day, &org],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "DELETE FROM day_actors WHERE (day, org_id) IN (SELECT * FROM UNNEST($1::INT8[], $2::INT8[])) AND n <= 0",
            &[&aday, &aorg],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// The scope's (and `company` filter's) conditions on a rollup table aliased `e`, and
/// its whole days.
async fn day_where(c: &impl GenericClient, scope: &Scope, f: &Filter, days: (i64, i64)) -> Result<Sql, StoreError> {
    let orgs_only = Filter { company: f.company.clone(), ..Filter::default() };
    let mut sql = where_clause(c, scope, &orgs_only, Timestamp(0), true).await?;
    let (lo, hi) = (sql.param(days.0), sql.param(days.1));
    sql.clauses.push(format!("e.day BETWEEN {lo} AND {hi}"));
    Ok(sql)
}

/// Facets of whole days from the rollups.
async fn day_facets(c: &impl GenericClient, scope: &Scope, f: &Filter, days: (i64, i64)) -> Result<Facets, StoreError> {
    let sql = day_where(c, scope, f, days).await?;
    let w = sql.where_sql();
    let refs = sql.refs();
    let run = |text: String| {
        let refs = &refs;
        async move {
            let rows = c.query(&text, refs).await.map_err(pg)?;
            Ok::<_, StoreError>(
                rows.iter()
                    .map(|r| Count { value: r.get(0), label: r.get(1), count: r.get::<_, i64>(2) as u64 })
                    .collect::<Vec<_>>(),
            )
        }
    };
    let mut results =
        run(format!("SELECT e.result::TEXT, NULL::TEXT, SUM(e.n)::INT8 FROM day_counts e WHERE {w} GROUP BY e.result"))
            .await?;
    for r in &mut results {
        r.value = rollup::outcome_name(r.value.parse().unwrap_or(0)).to_string();
    }
    Ok(Facets {
        total: 0,
        categories: run(format!(
            "SELECT e.category, NULL::TEXT, SUM(e.n)::INT8 FROM day_counts e WHERE {w} GROUP BY e.category"
        ))
        .await?,
        results,
        users: run(format!(
            "SELECT e.actor_email, MAX(e.actor_name), SUM(e.n)::INT8 FROM day_actors e WHERE {w} GROUP BY e.actor_email"
        ))
        .await?,
        companies: run(format!(
            "SELECT o.slug, o.name, SUM(e.n)::INT8 FROM day_counts e JOIN orgs o ON o.id = e.org_id WHERE {w} \
             GROUP BY o.slug, o.name"
        ))
        .await?,
    })
}

/// Counts per category, result, user and organization in the filter's time range:
/// whole days from the rollups, the partial first and last day from the events.
pub(super) async fn facets(
    c: &impl GenericClient,
    scope: Scope,
    f: Filter,
    now: Timestamp,
) -> Result<Facets, StoreError> {
    let (from, to) = f.time_range(now);
    let split = rollup::split(from, to);
    let mut parts = Vec::new();
    if let Some(days) = split.days {
        parts.push(day_facets(c, &scope, &f, days).await?);
    }
    for (lo, hi) in split.exact {
        parts.push(exact_facets(c, &scope, &with_range(&f, lo, hi), now, 100_000).await?);
    }
    Ok(merge_facets(parts))
}

/// Matching events per hour or day, by result.
pub(super) async fn timeline(
    c: &impl GenericClient,
    scope: Scope,
    f: Filter,
    now: Timestamp,
) -> Result<Timeline, StoreError> {
    rollup::timeline(&f, now, |part| count_part(c, &scope, &f, now, part)).await
}

/// One part of a timeline, counted with this backend's SQL.
async fn count_part(
    c: &impl GenericClient,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    part: TimelinePart,
) -> Result<ExactBars, StoreError> {
    let days = match part {
        TimelinePart::Exact { filter, width, bound } => return exact_bars(c, scope, &filter, now, width, bound).await,
        TimelinePart::Days(days) => days,
    };
    let mut sql = day_where(c, scope, f, days).await?;
    if !f.category.is_empty() {
        let p = sql.param(f.category.iter().map(|c| c.to_lowercase()).collect::<Vec<_>>());
        sql.clauses.push(format!("lower(e.category) = ANY({p})"));
    }
    if !f.result.is_empty() {
        let p = sql.param(f.result.iter().map(|r| outcome_code(*r) as i16).collect::<Vec<_>>());
        sql.clauses.push(format!("e.result = ANY({p})"));
    }
    if f.hide_views {
        sql.clauses.push("NOT e.is_view".into());
    }
    let text = format!(
        "SELECT e.day * {DAY_US}, e.result::INT8, SUM(e.n)::INT8 FROM day_counts e WHERE {} \
         GROUP BY e.day, e.result",
        sql.where_sql()
    );
    let rows = c.query(&text, &sql.refs()).await.map_err(pg)?;
    Ok((rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2) as u64)).collect(), true))
}

/// Matching events per bar and result counted on the events; with a bound, only the
/// newest `bound` matches are counted, and the flag says whether that was all.
async fn exact_bars(
    c: &impl GenericClient,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    width: i64,
    bound: Option<u64>,
) -> Result<ExactBars, StoreError> {
    let sql = where_clause(c, scope, f, now, false).await?;
    let limit = bound.map_or("ALL".to_string(), |b| (b + 1).to_string());
    let text = format!(
        "SELECT (ts - ((ts % {width}) + {width}) % {width}), result::INT8, COUNT(*) FROM \
         (SELECT e.ts, e.result FROM events e WHERE {} ORDER BY e.ts DESC, e.pos DESC LIMIT {limit}) m GROUP BY 1, 2",
        sql.where_sql()
    );
    let rows: Vec<(i64, i64, u64)> = c
        .query(&text, &sql.refs())
        .await
        .map_err(pg)?
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2) as u64))
        .collect();
    let seen: u64 = rows.iter().map(|r| r.2).sum();
    Ok((rows, bound.is_none_or(|b| seen <= b)))
}
