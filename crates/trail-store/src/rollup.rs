//! Per-day counts (rollups), shared by both backends: what an append, a deletion or a
//! backfill adds to them (`Tally`), how a time range splits into whole days the
//! rollups answer and partial days counted exactly (`split`), how the parts' facets
//! merge, and how a timeline is planned and assembled.
//!
//! Two tables hold the rollups, kept in the same transaction as the rows they count:
//! `day_counts (org, day, category, result, view) -> n` and
//! `day_actors (org, day, category, actor_email) -> n, actor_name`. Days are UTC days
//! since 1970 (`ts` in microseconds, floored). `view` marks Trail's own `audit:view`
//! events, which the page hides by default.

use std::collections::HashMap;

use serde::Serialize;
use trail_core::{Filter, Outcome, Timestamp};

use crate::{Count, Facets};

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;
/// Microseconds in an hour.
pub const HOUR_US: i64 = 3_600_000_000;
/// A timeline counts matches exactly up to this many when the rollups cannot answer
/// its filter; beyond, it says "more than" and draws the newest this many.
pub const TIMELINE_BOUND: u64 = 100_000;
/// Timelines of periods up to this long have one bar per hour, longer ones per day.
pub const HOURLY_UP_TO: i64 = 2 * DAY_US;

/// The UTC day of a timestamp in microseconds.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY_US)
}

/// Whether an event is Trail's own record of a view (`audit:view`).
pub fn is_view(category: &str, operation: &str) -> bool {
    category.eq_ignore_ascii_case("audit") && operation.eq_ignore_ascii_case("view")
}

/// One row of `day_counts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DayKey {
    pub org: i64,
    pub day: i64,
    pub category: String,
    pub result: i64,
    pub view: bool,
}

/// One row of `day_actors`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActorKey {
    pub org: i64,
    pub day: i64,
    pub category: String,
    pub email: String,
}

/// The columns of a stored event the rollups count by.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub ts: i64,
    pub category: &'a str,
    pub operation: &'a str,
    /// The stored result code (the index in `Outcome::ALL`).
    pub result: i64,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Changes to the rollups: appended events count `+1`, deleted ones `-1`.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub days: HashMap<DayKey, i64>,
    /// Count change and the newest actor name seen.
    pub actors: HashMap<ActorKey, (i64, Option<String>)>,
}

impl Tally {
    pub fn add(&mut self, org: i64, f: Facts<'_>, delta: i64) {
        let day = day_of(f.ts);
        let key = DayKey {
            org,
            day,
            category: f.category.to_string(),
            result: f.result,
            view: is_view(f.category, f.operation),
        };
        *self.days.entry(key).or_default() += delta;
        if let Some(email) = f.email {
            let key = ActorKey { org, day, category: f.category.to_string(), email: email.to_string() };
            let e = self.actors.entry(key).or_default();
            e.0 += delta;
            if f.name.is_some() {
                e.1 = f.name.map(String::from);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.days.is_empty() && self.actors.is_empty()
    }

    /// Adds another tally's changes to this one.
    pub fn absorb(&mut self, other: Tally) {
        for (k, n) in other.days {
            *self.days.entry(k).or_default() += n;
        }
        for (k, (n, name)) in other.actors {
            let e = self.actors.entry(k).or_default();
            e.0 += n;
            if name.is_some() {
                e.1 = name;
            }
        }
    }
}

/// A time range cut into whole days (answered by the rollups) and the partial days
/// around them (counted exactly on the events). Bounds are inclusive microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// First and last whole day, if any.
    pub days: Option<(i64, i64)>,
    /// Ranges counted exactly (at most two; `None` is unbounded).
    pub exact: Vec<(Option<i64>, Option<i64>)>,
}

pub fn split(from: Option<Timestamp>, to: Option<Timestamp>) -> Split {
    let lo_day = from.map_or(i64::MIN / DAY_US, |f| day_of(f.0 + DAY_US - 1));
    let hi_day = to.map_or(i64::MAX / DAY_US - 1, |t| day_of(t.0 + 1) - 1);
    if lo_day > hi_day {
        return Split { days: None, exact: vec![(from.map(|t| t.0), to.map(|t| t.0))] };
    }
    let mut exact = Vec::new();
    if let Some(f) = from {
        if f.0 < lo_day * DAY_US {
            exact.push((Some(f.0), Some(lo_day * DAY_US - 1)));
        }
    }
    if let Some(t) = to {
        if (hi_day + 1) * DAY_US <= t.0 {
            exact.push((Some((hi_day + 1) * DAY_US), Some(t.0)));
        }
    }
    Split { days: Some((lo_day, hi_day)), exact }
}

/// How many values each facet keeps (as the single query had).
const CATEGORY_LIMIT: usize = 200;
const USER_LIMIT: usize = 200;
const COMPANY_LIMIT: usize = 1000;

/// Adds up facets counted over disjoint parts of a range.
pub fn merge_facets(parts: impl IntoIterator<Item = Facets>) -> Facets {
    fn add(into: &mut Vec<Count>, index: &mut HashMap<String, usize>, from: Vec<Count>) {
        for c in from {
            match index.get(&c.value) {
                Some(i) => {
                    into[*i].count += c.count;
                    if into[*i].label.is_none() {
                        into[*i].label = c.label;
                    }
                }
                None => {
                    index.insert(c.value.clone(), into.len());
                    into.push(c);
                }
            }
        }
    }
    fn finish(mut v: Vec<Count>, limit: usize) -> Vec<Count> {
        v.retain(|c| c.count > 0);
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        v.truncate(limit);
        v
    }
    let mut out = Facets::default();
    let mut idx: [HashMap<String, usize>; 4] = Default::default();
    for p in parts {
        add(&mut out.categories, &mut idx[0], p.categories);
        add(&mut out.results, &mut idx[1], p.results);
        add(&mut out.users, &mut idx[2], p.users);
        add(&mut out.companies, &mut idx[3], p.companies);
    }
    out.total = out.categories.iter().map(|c| c.count).sum();
    out.categories = finish(out.categories, CATEGORY_LIMIT);
    out.results = finish(out.results, 4);
    out.users = finish(out.users, USER_LIMIT);
    out.companies = finish(out.companies, COMPANY_LIMIT);
    out
}

/// The filter with its time range replaced by one exact part of a split.
pub fn with_range(f: &Filter, from: Option<i64>, to: Option<i64>) -> Filter {
    Filter { period: None, from: from.map(Timestamp), to: to.map(Timestamp), ..f.clone() }
}

/// Whether the rollups can count a filter's matches: it narrows only by time,
/// category, result, organization and the view toggle.
pub fn rollups_answer(f: &Filter) -> bool {
    f.operation.is_empty()
        && f.action.is_empty()
        && f.status.is_none()
        && f.actor.is_empty()
        && f.request_id.is_empty()
        && f.resource.is_empty()
        && f.resource_type.is_empty()
        && f.workspace.is_empty()
        && f.project.is_empty()
        && f.cluster.is_empty()
        && f.namespace.is_empty()
        && f.ip.is_empty()
        && f.q.iter().all(|q| q.trim().is_empty())
}

/// The width of a timeline's bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn micros(self) -> i64 {
        match self {
            Bucket::Hour => HOUR_US,
            Bucket::Day => DAY_US,
        }
    }

    /// The start of the bar holding `ts`.
    pub fn start(self, ts: i64) -> i64 {
        ts.div_euclid(self.micros()) * self.micros()
    }
}

/// Matching events per hour or day of a period, by result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub bucket: Bucket,
    /// Matching events; a lower bound when `exact` is false.
    pub total: u64,
    pub exact: bool,
    pub bars: Vec<Bar>,
}

/// One bar: events from `start` for one bucket, per result (`Outcome::ALL` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub start: Timestamp,
    pub counts: [u64; 4],
}

/// Rows `(bar start, result code, count)` counted on the events, and whether they
/// are all the matches (a bounded count may stop short).
pub type ExactBars = (Vec<(i64, i64, u64)>, bool);

/// How a backend computes a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelinePlan {
    pub bucket: Bucket,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Set when the rollups answer whole days; the split's exact parts are counted
    /// on the events. Otherwise the whole range is counted on the events, at most
    /// `TIMELINE_BOUND` of them (newest first).
    pub split: Option<Split>,
}

pub fn plan_timeline(f: &Filter, now: Timestamp) -> TimelinePlan {
    let (from, to) = f.time_range(now);
    let (from, to) = (from.map(|t| t.0), to.map(|t| t.0));
    let span = to.unwrap_or(now.0).saturating_sub(from.unwrap_or(i64::MIN));
    let bucket = if span <= HOURLY_UP_TO { Bucket::Hour } else { Bucket::Day };
    let split = (bucket == Bucket::Day && rollups_answer(f)).then(|| split(from.map(Timestamp), to.map(Timestamp)));
    TimelinePlan { bucket, from, to, split }
}

/// One part of a timeline a backend counts with its own SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum TimelinePart {
    /// Whole days `(first, last)` from the rollups, narrowed as the filter says
    /// (category, result, views).
    Days((i64, i64)),
    /// The events matching `filter` counted per bar of `width` microseconds; with a
    /// bound, only the newest `bound` of them.
    Exact { filter: Box<Filter>, width: i64, bound: Option<u64> },
}

/// The timeline's control flow, shared by both backends: the plan, the parts each
/// backend counts with `count` (its SQL; SQLite's answers at once), and the bars
/// assembled from what they found.
pub async fn timeline<E, Fut: std::future::Future<Output = Result<ExactBars, E>>>(
    f: &Filter,
    now: Timestamp,
    mut count: impl FnMut(TimelinePart) -> Fut,
) -> Result<Timeline, E> {
    let plan = plan_timeline(f, now);
    let mut rows = Vec::new();
    let mut exact = true;
    for part in timeline_parts(&plan, f) {
        let (found, whole) = count(part).await?;
        rows.extend(found);
        exact &= whole;
    }
    let mut t = assemble(&plan, rows, exact, now);
    if !exact {
        t.total = TIMELINE_BOUND;
    }
    Ok(t)
}

/// What `plan` counts: the rollups' whole days and the exact edges, or the whole range
/// on the events up to `TIMELINE_BOUND`.
pub fn timeline_parts(plan: &TimelinePlan, f: &Filter) -> Vec<TimelinePart> {
    let width = plan.bucket.micros();
    match &plan.split {
        Some(split) => split
            .days
            .map(TimelinePart::Days)
            .into_iter()
            .chain(split.exact.iter().map(|(lo, hi)| TimelinePart::Exact {
                filter: Box::new(with_range(f, *lo, *hi)),
                width,
                bound: None,
            }))
            .collect(),
        None => vec![TimelinePart::Exact { filter: Box::new(f.clone()), width, bound: Some(TIMELINE_BOUND) }],
    }
}

/// Rows `(bucket start, result code, count)` from any part, made into dense bars from
/// the range's first bucket (or the first with events) to its last.
pub fn assemble(
    plan: &TimelinePlan,
    rows: impl IntoIterator<Item = (i64, i64, u64)>,
    exact: bool,
    now: Timestamp,
) -> Timeline {
    let mut by: HashMap<i64, [u64; 4]> = HashMap::new();
    let mut total = 0;
    for (start, result, n) in rows {
        let slot = by.entry(plan.bucket.start(start)).or_default();
        slot[result.clamp(0, 3) as usize] += n;
        total += n;
    }
    let w = plan.bucket.micros();
    let first = plan.from.map(|t| plan.bucket.start(t)).or_else(|| by.keys().min().copied());
    let last = plan.bucket.start(plan.to.unwrap_or(now.0).max(by.keys().max().copied().unwrap_or(i64::MIN)));
    let mut bars = Vec::new();
    if let Some(first) = first {
        // Dense bars only where a range is known; a stray far-off day stays sparse.
        let n = (last - first) / w + 1;
        if n <= 2_000 {
            let mut t = first;
            while t <= last {
                bars.push(Bar { start: Timestamp(t), counts: by.remove(&t).unwrap_or_default() });
                t += w;
            }
        }
    }
    let mut rest: Vec<Bar> = by.into_iter().map(|(t, counts)| Bar { start: Timestamp(t), counts }).collect();
    bars.append(&mut rest);
    bars.sort_by_key(|b| b.start.0);
    Timeline { bucket: plan.bucket, total, exact, bars }
}

/// The result code a stored result maps to, as a facet value.
pub fn outcome_name(code: i64) -> &'static str {
    Outcome::ALL[code.clamp(0, 3) as usize].as_str()
}

/// Rows counted as the rollups count them (for `verify`, one chunk at a time), then
/// made a `Tally`. Strings are kept once each, so counting a row copies nothing.
#[derive(Default)]
pub struct Counter {
    index: foldhash::HashMap<String, u32>,
    strings: Vec<String>,
    days: foldhash::HashMap<(i64, u32, i64, bool), i64>,
    actors: foldhash::HashMap<(i64, u32, u32), (i64, Option<u32>)>,
}

impl Counter {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }

    pub fn add(&mut self, row: &crate::row::RowRef<'_>) {
        let day = day_of(row.ts);
        let view = is_view(row.category, row.operation);
        let category = self.intern(row.category);
        *self.days.entry((day, category, row.result, view)).or_default() += 1;
        if let Some(email) = row.actor_email {
            let email = self.intern(email);
            let name = row.actor_name.map(|n| self.intern(n));
            let e = self.actors.entry((day, category, email)).or_default();
            e.0 += 1;
            if name.is_some() {
                e.1 = name;
            }
        }
    }

    pub fn into_tally(self) -> Tally {
        let mut t = Tally::default();
        let s = |i: u32| self.strings[i as usize].clone();
        for ((day, category, result, view), n) in &self.days {
            let key = DayKey { org: 0, day: *day, category: s(*category), result: *result, view: *view };
            t.days.insert(key, *n);
        }
        for ((day, category, email), (n, name)) in &self.actors {
            let key = ActorKey { org: 0, day: *day, category: s(*category), email: s(*email) };
            t.actors.insert(key, (*n, name.map(s)));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = DAY_US;

    #[test]
    fn a_range_splits_into_whole_days_and_exact_edges() {
        // From the middle of day 10 to the middle of day 13.
        let s = split(Some(Timestamp(10 * D + 5)), Some(Timestamp(13 * D + 7)));
        assert_eq!(s.days, Some((11, 12)));
        assert_eq!(s.exact, vec![(Some(10 * D + 5), Some(11 * D - 1)), (Some(13 * D), Some(13 * D + 7))]);
        // Exactly whole days: no exact part.
        let s = split(Some(Timestamp(10 * D)), Some(Timestamp(12 * D - 1)));
        assert_eq!(s, Split { days: Some((10, 11)), exact: vec![] });
        // Within one day: all exact.
        let s = split(Some(Timestamp(10 * D + 1)), Some(Timestamp(10 * D + 9)));
        assert_eq!(s, Split { days: None, exact: vec![(Some(10 * D + 1), Some(10 * D + 9))] });
        // Unbounded below.
        let s = split(None, Some(Timestamp(10 * D + 9)));
        assert_eq!(s.exact, vec![(Some(10 * D), Some(10 * D + 9))]);
        assert_eq!(s.days.unwrap().1, 9);
        // Before 1970 days floor.
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn facets_of_parts_add_up() {
        let c = |v: &str, n| Count { value: v.into(), label: None, count: n };
        let a = Facets { total: 3, categories: vec![c("auth", 2), c("db", 1)], ..Facets::default() };
        let b = Facets { total: 2, categories: vec![c("db", 2)], users: vec![c("x@y", 1)], ..Facets::default() };
        let m = merge_facets([a, b]);
        assert_eq!(m.total, 5);
        assert_eq!(m.categories, vec![c("db", 3), c("auth", 2)]);
        assert_eq!(m.users, vec![c("x@y", 1)]);
    }

    #[test]
    fn timelines_are_dense_and_hourly_for_short_periods() {
        let now = Timestamp(100 * D + 3 * HOUR_US + 5);
        let f = Filter { period: Some(trail_core::filter::Period::Last24h), ..Filter::default() };
        let plan = plan_timeline(&f, now);
        assert_eq!(plan.bucket, Bucket::Hour);
        assert!(plan.split.is_none());
        let t = assemble(&plan, [(now.0 - 2, 1, 4)], true, now);
        assert_eq!(t.bars.len(), 25);
        assert_eq!(t.bars.last().unwrap().counts, [0, 4, 0, 0]);
        assert_eq!(t.total, 4);
        let f = Filter { period: Some(trail_core::filter::Period::Last7d), ..Filter::default() };
        let plan = plan_timeline(&f, now);
        assert_eq!(plan.bucket, Bucket::Day);
        assert_eq!(plan.split.as_ref().unwrap().days.unwrap().0, 94);
        let q = Filter { q: vec!["deploy".into()], ..f };
        assert!(plan_timeline(&q, now).split.is_none());
    }
}

/// The per-day counts a backend keeps for one organization, as stored (for `verify`).
#[derive(Debug, Default, Clone)]
pub struct StoredRollups {
    /// `(day, category, result, is_view, n)`.
    pub days: Vec<(i64, String, i64, bool, i64)>,
    /// `(day, category, actor email, n)`.
    pub actors: Vec<(i64, String, String, i64)>,
}

/// Where the stored per-day counts differ from `expected` (counted from the events'
/// rows), at most `max` differences, each naming the day and what is counted. Keys
/// compare without ASCII case, as SQLite's columns do.
pub fn differences(expected: &Tally, stored: &StoredRollups, max: usize) -> Vec<String> {
    type Key = (i64, String, String);
    let mut days: std::collections::BTreeMap<Key, (i64, i64)> = Default::default();
    for (k, n) in &expected.days {
        let key = (k.day, k.category.to_ascii_lowercase(), format!("result {}, view {}", k.result, k.view));
        days.entry(key).or_default().0 += n;
    }
    for (day, category, result, view, n) in &stored.days {
        let key = (*day, category.to_ascii_lowercase(), format!("result {result}, view {view}"));
        days.entry(key).or_default().1 += n;
    }
    let mut actors: std::collections::BTreeMap<Key, (i64, i64)> = Default::default();
    for (k, (n, _)) in &expected.actors {
        let key = (k.day, k.category.to_ascii_lowercase(), k.email.to_ascii_lowercase());
        actors.entry(key).or_default().0 += n;
    }
    for (day, category, email, n) in &stored.actors {
        actors.entry((*day, category.to_ascii_lowercase(), email.to_ascii_lowercase())).or_default().1 += n;
    }
    let date = |day: i64| Timestamp(day * DAY_US).to_datetime().format("%Y-%m-%d").to_string();
    let mut out = Vec::new();
    for ((day, category, what), (want, got)) in days.iter().filter(|(_, (a, b))| a != b) {
        out.push(format!(
            "the per-day count of {}, category '{category}', {what}: stored {got}, the events say {want} (facets, totals and the timeline would lie)",
            date(*day)
        ));
    }
    for ((day, category, email), (want, got)) in actors.iter().filter(|(_, (a, b))| a != b) {
        out.push(format!(
            "the per-day count of {}, category '{category}', actor {email}: stored {got}, the events say {want} (the user facet would lie)",
            date(*day)
        ));
    }
    out.truncate(max);
    out
}
