//! The filter set shared by the list, the live stream, exports and deep links, and its
//! URL query-parameter form.

use chrono::{Datelike, Duration, TimeZone, Utc};
use ipnet::IpNet;

use crate::{error::FieldError, event::Outcome, time::Timestamp};

/// Relative periods offered as presets; resolved against "now" at query time so that a
/// deep link to "last 7 days" stays relative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Today,
    Last24h,
    Last7d,
    ThisMonth,
    Last30d,
    Last90d,
}

impl Period {
    pub const ALL: [Period; 6] =
        [Period::Today, Period::Last24h, Period::Last7d, Period::ThisMonth, Period::Last30d, Period::Last90d];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Today => "today",
            Period::Last24h => "24h",
            Period::Last7d => "7d",
            Period::ThisMonth => "month",
            Period::Last30d => "30d",
            Period::Last90d => "90d",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == s.to_ascii_lowercase())
    }

    /// Start of the period (inclusive) for the given current time, in UTC.
    pub fn start(self, now: Timestamp) -> Timestamp {
        let now = now.to_datetime();
        let start = match self {
            Period::Today => now.date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(now),
            Period::Last24h => now - Duration::hours(24),
            Period::Last7d => now - Duration::days(7),
            Period::ThisMonth => Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now),
            Period::Last30d => now - Duration::days(30),
            Period::Last90d => now - Duration::days(90),
        };
        Timestamp::from_datetime(start)
    }
}

/// `status=success` (2xx) or `status=failure` (4xx/5xx), as the KubeVision seed filters.
/// Events without a status code count by their result (DONE or FAILED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    Success,
    Failure,
}

impl StatusClass {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "success",
            StatusClass::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<StatusClass> {
        match s.to_ascii_lowercase().as_str() {
            "success" | "2xx" | "ok" => Some(StatusClass::Success),
            "failure" | "failed" | "error" | "4xx" | "5xx" => Some(StatusClass::Failure),
            _ => None,
        }
    }
}

/// Columns the list can be sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    Timestamp,
    ReceivedAt,
    Seq,
    SourceIp,
    Performer,
    Company,
    Email,
    Category,
    Operation,
    Action,
    Result,
    StatusCode,
    RequestId,
    Resource,
}

impl SortField {
    pub const ALL: [SortField; 14] = [
        SortField::Timestamp,
        SortField::ReceivedAt,
        SortField::Seq,
        SortField::SourceIp,
        SortField::Performer,
        SortField::Company,
        SortField::Email,
        SortField::Category,
        SortField::Operation,
        SortField::Action,
        SortField::Result,
        SortField::StatusCode,
        SortField::RequestId,
        SortField::Resource,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortField::Timestamp => "timestamp",
            SortField::ReceivedAt => "received_at",
            SortField::Seq => "seq",
            SortField::SourceIp => "source_ip",
            SortField::Performer => "performer",
            SortField::Company => "company",
            SortField::Email => "email",
            SortField::Category => "type",
            SortField::Operation => "operation",
            SortField::Action => "action",
            SortField::Result => "result",
            SortField::StatusCode => "status_code",
            SortField::RequestId => "request_id",
            SortField::Resource => "resource",
        }
    }

    /// Accepts the column names of the list and a few natural aliases.
    pub fn parse(s: &str) -> Option<SortField> {
        let s = s.to_ascii_lowercase();
        let alias = match s.as_str() {
            "time" | "date" | "created" | "datetime" => Some(SortField::Timestamp),
            "ip" => Some(SortField::SourceIp),
            "actor" | "user" => Some(SortField::Performer),
            "category" => Some(SortField::Category),
            "status" => Some(SortField::StatusCode),
            _ => None,
        };
        alias.or_else(|| SortField::ALL.into_iter().find(|f| f.as_str() == s))
    }
}

/// Sort order: one column, either way. Ties are always broken by time, then by storage
/// order, so pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sort {
    pub field: SortField,
    pub desc: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort { field: SortField::Timestamp, desc: true }
    }
}

impl Sort {
    /// `timestamp` (ascending) or `-timestamp` (descending); `field:asc`/`field:desc`
    /// are accepted too.
    pub fn parse(s: &str) -> Option<Sort> {
        let (name, desc) = if let Some(rest) = s.strip_prefix('-') {
            (rest, true)
        } else if let Some(rest) = s.strip_suffix(":desc") {
            (rest, true)
        } else if let Some(rest) = s.strip_suffix(":asc") {
            (rest, false)
        } else {
            (s.strip_prefix('+').unwrap_or(s), false)
        };
        SortField::parse(name).map(|field| Sort { field, desc })
    }

    pub fn render(self) -> String {
        format!("{}{}", if self.desc { "-" } else { "" }, self.field.as_str())
    }
}

/// Every filter of the design contract. Several values for one field match any of them
/// (OR); different fields must all match (AND).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    pub period: Option<Period>,
    /// Inclusive lower bound.
    pub from: Option<Timestamp>,
    /// Inclusive upper bound.
    pub to: Option<Timestamp>,
    pub category: Vec<String>,
    pub operation: Vec<String>,
    /// Full `category:operation` codes.
    pub action: Vec<String>,
    pub result: Vec<Outcome>,
    pub status: Option<StatusClass>,
    /// Matches the actor's id, name or email exactly, or an email prefix ending in `@`
    /// (`john@` finds every John address).
    pub actor: Vec<String>,
    /// Organization slugs (platform callers only).
    pub company: Vec<String>,
    pub request_id: Vec<String>,
    /// Resource name or id.
    pub resource: Vec<String>,
    pub resource_type: Vec<String>,
    /// Workspace id or name.
    pub workspace: Vec<String>,
    pub project: Vec<String>,
    pub cluster: Vec<String>,
    pub namespace: Vec<String>,
    pub ip: Vec<IpNet>,
    /// Full-text terms; each word or quoted phrase must match (prefix match on its last
    /// word).
    pub q: Vec<String>,
    /// Leave out Trail's own `audit:view` events (who looked at which filter), which
    /// otherwise fill a busy list (`views=hide`).
    pub hide_views: bool,
    pub sort: Sort,
}

/// Most search words one filter may hold, over all its `q` terms: each word is a term
/// the search index walks (a short one stands for every word it begins), so a query of
/// thousands of words would hold thousands of index cursors at once.
pub const MAX_SEARCH_WORDS: usize = 16;
/// Longest text of one `q` term (characters).
pub const MAX_SEARCH_CHARS: usize = 256;
/// Most values one filter field may list.
pub const MAX_FIELD_VALUES: usize = 100;

/// The action of Trail's own record of someone viewing a filter or an event.
pub const VIEW_ACTION: &str = "audit:view";

/// The query-parameter names a filter understands (besides paging parameters, which
/// the server handles).
pub const FILTER_KEYS: &[&str] = &[
    "period",
    "from",
    "to",
    "category",
    "type",
    "operation",
    "action",
    "result",
    "status",
    "actor",
    "user",
    "company",
    "request_id",
    "resource",
    "resource_type",
    "workspace",
    "project",
    "cluster",
    "namespace",
    "ip",
    "q",
    "views",
    "sort",
];

impl Filter {
    /// Whether one event matches, evaluated in memory (the live stream uses this; the
    /// stores evaluate the same semantics in SQL, and the conformance suite checks the
    /// two agree). `q` terms match when every word occurs in the event's JSON text
    /// (case-insensitively), which may accept slightly more than the index does.
    pub fn matches(&self, ev: &crate::Event, now: Timestamp) -> bool {
        let eq = |a: Option<&str>, b: &str| a.is_some_and(|a| a.eq_ignore_ascii_case(b));
        let any = |vals: &[String], pred: &dyn Fn(&str) -> bool| vals.is_empty() || vals.iter().any(|v| pred(v));
        let (from, to) = self.time_range(now);
        // Borrowed, not cloned: alert rules run this for every committed event.
        let actor = ev.actor.as_ref();
        let email = actor.and_then(|a| a.email.as_deref());
        let res = ev.resource.as_ref();
        let ctx = ev.context.as_ref();
        let ws = ctx.and_then(|c| c.workspace.as_ref());
        let ctx_field = |f: fn(&crate::event::Context) -> Option<&str>| ctx.and_then(f);
        let basic = !(self.hide_views && ev.action.eq_ignore_ascii_case(VIEW_ACTION))
            && from.is_none_or(|t| ev.timestamp >= t)
            && to.is_none_or(|t| ev.timestamp <= t)
            && any(&self.category, &|v| ev.category().eq_ignore_ascii_case(v))
            && any(&self.operation, &|v| ev.operation().eq_ignore_ascii_case(v))
            && any(&self.action, &|v| ev.action.eq_ignore_ascii_case(v))
            && (self.result.is_empty() || self.result.contains(&ev.result))
            && match self.status {
                None => true,
                Some(StatusClass::Success) => match ev.status_code {
                    Some(c) => (200..300).contains(&c),
                    None => ev.result == Outcome::Done,
                },
                Some(StatusClass::Failure) => match ev.status_code {
                    Some(c) => c >= 400,
                    None => ev.result == Outcome::Failed,
                },
            }
            && any(&self.actor, &|v| {
                if v.ends_with('@') {
                    email.is_some_and(|e| e.to_ascii_lowercase().starts_with(&v.to_ascii_lowercase()))
                } else {
                    eq(actor.and_then(|a| a.id.as_deref()), v)
                        || eq(actor.and_then(|a| a.name.as_deref()), v)
                        || eq(email, v)
                }
            })
            && any(&self.company, &|v| ev.org.eq_ignore_ascii_case(v))
            && any(&self.request_id, &|v| ev.request_id.as_deref() == Some(v))
            && any(&self.resource, &|v| {
                eq(res.and_then(|r| r.name.as_deref()), v) || eq(res.and_then(|r| r.id.as_deref()), v)
            })
            && any(&self.resource_type, &|v| eq(res.and_then(|r| r.kind.as_deref()), v))
            && any(&self.workspace, &|v| {
                eq(ws.and_then(|w| w.id.as_deref()), v) || eq(ws.and_then(|w| w.name.as_deref()), v)
            })
            && any(&self.project, &|v| eq(ctx_field(|c| c.project.as_deref()), v))
            && any(&self.cluster, &|v| eq(ctx_field(|c| c.cluster.as_deref()), v))
            && any(&self.namespace, &|v| eq(ctx_field(|c| c.namespace.as_deref()), v))
            && (self.ip.is_empty()
                || ev
                    .source_ip
                    .as_deref()
                    .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|ip| self.ip.iter().any(|n| n.contains(&ip))));
        if !basic || self.q.is_empty() {
            return basic;
        }
        let text = String::from_utf8_lossy(&ev.to_leaf()).to_lowercase();
        self.q.iter().all(|term| {
            term.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .all(|w| text.contains(&w.to_lowercase()))
        })
    }

    /// Resolves the period and explicit bounds into one inclusive time range.
    pub fn time_range(&self, now: Timestamp) -> (Option<Timestamp>, Option<Timestamp>) {
        let from = match (self.period.map(|p| p.start(now)), self.from) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        (from, self.to)
    }

    /// Adds one `key=value` to the filter. `quoted` values are never split on commas.
    pub(crate) fn apply(&mut self, key: &str, value: &str, quoted: bool) -> Result<(), FieldError> {
        let err = |m: &str| FieldError::new(key, m.to_string());
        if value.is_empty() {
            return Err(err("must not be empty"));
        }
        let list = |v: &str| -> Vec<String> {
            if quoted {
                vec![v.to_string()]
            } else {
                v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
            }
        };
        match key {
            "period" => {
                self.period =
                    Some(Period::parse(value).ok_or_else(|| err("must be today, 24h, 7d, month, 30d or 90d"))?)
            }
            "from" => self.from = Some(Timestamp::parse_bound(value, false).map_err(|e| err(&e))?),
            "to" => self.to = Some(Timestamp::parse_bound(value, true).map_err(|e| err(&e))?),
            "category" | "type" => self.category.extend(list(value).into_iter().map(|s| s.to_lowercase())),
            "operation" => self.operation.extend(list(value).into_iter().map(|s| s.to_lowercase())),
            "action" => {
                for a in list(value) {
                    let (c, o) = crate::event::parse_action(&a).map_err(|e| err(&e))?;
                    self.action.push(format!("{c}:{o}"));
                }
            }
            "result" => {
                for r in list(value) {
                    self.result
                        .push(Outcome::parse(&r).ok_or_else(|| err("must be DONE, FAILED, PROCESSING or PENDING"))?);
                }
            }
            "status" => self.status = Some(StatusClass::parse(value).ok_or_else(|| err("must be success or failure"))?),
            "views" => {
                self.hide_views = match value.to_ascii_lowercase().as_str() {
                    "hide" => true,
                    "show" => false,
                    _ => return Err(err("must be hide or show")),
                }
            }
            "actor" | "user" => self.actor.push(value.to_string()),
            "company" => self.company.extend(list(value)),
            "request_id" => self.request_id.push(value.to_string()),
            "resource" => self.resource.push(value.to_string()),
            "resource_type" => self.resource_type.push(value.to_string()),
            "workspace" => self.workspace.push(value.to_string()),
            "project" => self.project.push(value.to_string()),
            "cluster" => self.cluster.push(value.to_string()),
            "namespace" => self.namespace.push(value.to_string()),
            "ip" => {
                for v in list(value) {
                    let net = v
                        .parse::<IpNet>()
                        .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| err("must be an IP address or CIDR block"))?;
                    self.ip.push(net.trunc());
                }
            }
            "q" => self.q.push(value.to_string()),
            "sort" => {
                self.sort = Sort::parse(value).ok_or_else(|| err("must be a column name, optionally prefixed by -"))?
            }
            _ => {
                return Err(FieldError::new(key, format!("unknown filter; known filters: {}", FILTER_KEYS.join(", ")))
                    .with_code(crate::error::FieldCode::UnknownFilter))
            }
        }
        Ok(())
    }

    /// Refuses a filter over the bounds of what one request may ask: at most
    /// `MAX_SEARCH_WORDS` search words of at most `MAX_SEARCH_CHARS` characters a term,
    /// at most `MAX_FIELD_VALUES` values a field.
    pub fn check_bounds(&self) -> Result<(), FieldError> {
        let mut words = 0;
        for t in &self.q {
            if t.chars().count() > MAX_SEARCH_CHARS {
                return Err(FieldError::new(
                    "q",
                    format!("a search term may have at most {MAX_SEARCH_CHARS} characters"),
                ));
            }
            words += t.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).count();
        }
        if words > MAX_SEARCH_WORDS {
            return Err(FieldError::new(
                "q",
                format!("at most {MAX_SEARCH_WORDS} search words (this has {words}); use filters such as actor: or category: to narrow further"),
            ));
        }
        let mut counts: Vec<(&str, usize)> = self.text_fields().iter().map(|(k, v)| (*k, v.len())).collect();
        counts.extend([("result", self.result.len()), ("ip", self.ip.len())]);
        match counts.into_iter().find(|(_, n)| *n > MAX_FIELD_VALUES) {
            Some((field, n)) => {
                Err(FieldError::new(field, format!("at most {MAX_FIELD_VALUES} values (this has {n})")))
            }
            None => Ok(()),
        }
    }

    /// Adds every condition of `other` to this filter (used when `q` carries filters).
    pub fn merge(&mut self, other: Filter) {
        let Filter {
            period,
            from,
            to,
            category,
            operation,
            action,
            result,
            status,
            actor,
            company,
            request_id,
            resource,
            resource_type,
            workspace,
            project,
            cluster,
            namespace,
            ip,
            q,
            hide_views,
            sort,
        } = other;
        self.hide_views |= hide_views;
        self.period = period.or(self.period);
        self.from = from.or(self.from);
        self.to = to.or(self.to);
        self.category.extend(category);
        self.operation.extend(operation);
        self.action.extend(action);
        self.result.extend(result);
        self.status = status.or(self.status);
        self.actor.extend(actor);
        self.company.extend(company);
        self.request_id.extend(request_id);
        self.resource.extend(resource);
        self.resource_type.extend(resource_type);
        self.workspace.extend(workspace);
        self.project.extend(project);
        self.cluster.extend(cluster);
        self.namespace.extend(namespace);
        self.ip.extend(ip);
        self.q.extend(q);
        if sort != Sort::default() {
            self.sort = sort;
        }
    }

    /// Builds a filter from URL query parameters. Repeated keys add values; the
    /// enumerated fields also take comma-separated lists. `q` is read with the query
    /// language, so `q=category:auth failed` works like the search box.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Filter, FieldError> {
        let mut f = Filter::default();
        let mut typed_q = Vec::new();
        for (key, value) in pairs {
            if key == "q" {
                typed_q.push(value);
            } else {
                f.apply(key, value, false)?;
            }
        }
        for q in typed_q {
            let parsed = crate::query::parse(q).map_err(|e| FieldError::new("q", e.message))?;
            f.merge(parsed);
        }
        f.check_bounds()?;
        if let (Some(from), Some(to)) = (f.from, f.to) {
            if from > to {
                return Err(FieldError::new("to", "is before from: choose an end after the start"));
            }
        }
        Ok(f)
    }

    /// The filter as URL query parameters (the inverse of `from_pairs`), used for deep
    /// links.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        if let Some(p) = self.period {
            out.push(("period", p.as_str().into()));
        }
        if let Some(t) = self.from {
            out.push(("from", t.to_rfc3339_micros()));
        }
        if let Some(t) = self.to {
            out.push(("to", t.to_rfc3339_micros()));
        }
        for (key, values) in self.text_fields() {
            for v in values {
                out.push((key, v.clone()));
            }
        }
        for r in &self.result {
            out.push(("result", r.as_str().into()));
        }
        if self.hide_views {
            out.push(("views", "hide".into()));
        }
        if let Some(s) = self.status {
            out.push(("status", s.as_str().into()));
        }
        for n in &self.ip {
            out.push(("ip", n.to_string()));
        }
        if self.sort != Sort::default() {
            out.push(("sort", self.sort.render()));
        }
        out
    }

    /// The free-text-valued fields, in canonical order.
    pub(crate) fn text_fields(&self) -> [(&'static str, &Vec<String>); 13] {
        [
            ("category", &self.category),
            ("operation", &self.operation),
            ("action", &self.action),
            ("actor", &self.actor),
            ("company", &self.company),
            ("request_id", &self.request_id),
            ("resource", &self.resource),
            ("resource_type", &self.resource_type),
            ("workspace", &self.workspace),
            ("project", &self.project),
            ("cluster", &self.cluster),
            ("namespace", &self.namespace),
            ("q", &self.q),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)], want: Result<Filter, &str>) {
        let got = Filter::from_pairs(pairs.iter().copied());
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w),
            (Err(e), Err(field)) => assert_eq!(e.field, field, "{e}"),
            (g, w) => panic!("got {g:?}, want {w:?}"),
        }
    }

    #[test]
    fn pairs_build_filters() {
        check(
            &[("category", "auth,vpn"), ("result", "failed"), ("ip", "10.1.2.3/8"), ("sort", "performer")],
            Ok(Filter {
                category: vec!["auth".into(), "vpn".into()],
                result: vec![Outcome::Failed],
                ip: vec!["10.0.0.0/8".parse().unwrap()],
                sort: Sort { field: SortField::Performer, desc: false },
                ..Filter::default()
            }),
        );
        check(
            &[("q", "category:auth \"vpc-prod\"")],
            Ok(Filter { category: vec!["auth".into()], q: vec!["vpc-prod".into()], ..Filter::default() }),
        );
        check(&[("colour", "red")], Err("colour"));
        check(&[("result", "maybe")], Err("result"));
        check(&[("from", "last tuesday")], Err("from"));
        check(&[("ip", "999.1.1.1")], Err("ip"));
        check(&[("sort", "shoe_size")], Err("sort"));
        check(&[("actor", "")], Err("actor"));
        check(&[("q", "colour:red")], Err("q"));
    }

    #[test]
    fn pairs_round_trip() {
        let f = Filter::from_pairs([
            ("period", "7d"),
            ("to", "2024-03-31"),
            ("category", "auth"),
            ("actor", "a,b"),
            ("status", "failure"),
            ("sort", "-email"),
        ])
        .unwrap();
        let pairs = f.to_pairs();
        let back = Filter::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn periods_resolve_against_now() {
        let now = Timestamp::parse_rfc3339("2024-03-15T10:00:00Z").unwrap();
        assert_eq!(Period::Today.start(now).to_rfc3339(), "2024-03-15T00:00:00Z");
        assert_eq!(Period::ThisMonth.start(now).to_rfc3339(), "2024-03-01T00:00:00Z");
        assert_eq!(Period::Last7d.start(now).to_rfc3339(), "2024-03-08T10:00:00Z");
        let f = Filter { period: Some(Period::Last24h), from: Some(Timestamp(0)), ..Filter::default() };
        assert_eq!(f.time_range(now).0.unwrap().to_rfc3339(), "2024-03-14T10:00:00Z");
    }
}

#[cfg(test)]
mod bounds {
    use super::*;

    /// A query of thousands of words held thousands of index cursors at once (issue 31):
    /// over the bounds, the filter is refused naming `q` (or the field).
    #[test]
    fn a_filter_over_the_bounds_is_refused_naming_the_field() {
        let many = vec!["a"; 2000].join(" ");
        let e = crate::query::parse(&many).unwrap_err();
        assert_eq!(e.field, "q");
        assert!(e.message.contains("at most 16 search words"), "{}", e.message);
        let e = Filter::from_pairs([("q", many.as_str())]).unwrap_err();
        assert_eq!(e.field, "q");
        let quoted = format!("\"{}\"", vec!["deploy"; 17].join(" "));
        assert_eq!(Filter::from_pairs([("q", quoted.as_str())]).unwrap_err().field, "q");
        let long = "x".repeat(MAX_SEARCH_CHARS + 1);
        assert_eq!(Filter::from_pairs([("q", long.as_str())]).unwrap_err().field, "q");
        let words = vec!["deploy"; MAX_SEARCH_WORDS].join(" ");
        assert!(Filter::from_pairs([("q", words.as_str())]).is_ok(), "the bound itself is allowed");
        let actors: Vec<(&str, &str)> = (0..=MAX_FIELD_VALUES).map(|_| ("actor", "a@b.c")).collect();
        assert_eq!(Filter::from_pairs(actors).unwrap_err().field, "actor");
        let e = crate::query::parse(&vec!["actor:x"; MAX_FIELD_VALUES + 1].join(" ")).unwrap_err();
        assert_eq!(e.field, "q", "{}", e.message);
    }
}
