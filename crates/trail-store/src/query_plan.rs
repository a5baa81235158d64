//! A list query resolved before a backend renders it in its dialect: the page size, the
//! decoded cursor, which columns each filter compares, how actors and search terms are
//! matched, and the page (with its next cursor) made from the rows read. Both backends
//! use it; neither owns it, so the two cannot drift apart in what a filter means.

use serde_json::Value;
use trail_core::{Cursor, Filter, Sort};

use crate::{Page, StoreError};

/// Most events one page holds, whatever the caller asks.
pub(crate) const MAX_PAGE: usize = 1000;

/// The page size a query gets.
pub(crate) fn page_limit(asked: usize) -> usize {
    asked.clamp(1, MAX_PAGE)
}

/// The cursor a query continues from, checked against its sort.
pub(crate) fn cursor(q: &crate::ListQuery) -> Result<Option<Cursor>, StoreError> {
    Ok(q.cursor.as_deref().map(|c| Cursor::decode(c, q.filter.sort)).transpose()?)
}

/// The error of a cursor whose value does not fit the sort's column.
pub(crate) fn cursor_mismatch() -> StoreError {
    StoreError::Invalid { field: "cursor".into(), message: "does not match the sort".into() }
}

/// An indexed text column a filter compares values with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Category,
    Operation,
    RequestId,
    ResourceName,
    ResourceId,
    ResourceType,
    WorkspaceId,
    WorkspaceName,
    Project,
    Cluster,
    Namespace,
}

impl Col {
    /// The column's name in both schemas.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Col::Category => "category",
            Col::Operation => "operation",
            Col::RequestId => "request_id",
            Col::ResourceName => "resource_name",
            Col::ResourceId => "resource_id",
            Col::ResourceType => "resource_type",
            Col::WorkspaceId => "workspace_id",
            Col::WorkspaceName => "workspace_name",
            Col::Project => "project",
            Col::Cluster => "cluster",
            Col::Namespace => "namespace",
        }
    }

    /// Whether values compare exactly (request ids); every other column ignores case.
    pub(crate) fn exact(self) -> bool {
        self == Col::RequestId
    }
}

/// The filter's equality conditions, in the order they are rendered: each holds when
/// one of its values equals one of its columns. Filters without values are left out.
pub(crate) fn equalities(f: &Filter) -> Vec<(&'static [Col], &[String])> {
    let all: [(&'static [Col], &[String]); 9] = [
        (&[Col::Category], &f.category),
        (&[Col::Operation], &f.operation),
        (&[Col::RequestId], &f.request_id),
        (&[Col::ResourceName, Col::ResourceId], &f.resource),
        (&[Col::ResourceType], &f.resource_type),
        (&[Col::WorkspaceId, Col::WorkspaceName], &f.workspace),
        (&[Col::Project], &f.project),
        (&[Col::Cluster], &f.cluster),
        (&[Col::Namespace], &f.namespace),
    ];
    all.into_iter().filter(|(_, values)| !values.is_empty()).collect()
}

/// How one `actor` value matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActorMatch<'a> {
    /// `sarah@`: every email with this local part (the value keeps its `@`).
    EmailLocal(&'a str),
    /// Anything else: the actor's id, name or email, ignoring case.
    Any(&'a str),
}

pub(crate) fn actor_matches(f: &Filter) -> impl Iterator<Item = ActorMatch<'_>> {
    f.actor.iter().map(|v| if v.ends_with('@') { ActorMatch::EmailLocal(v) } else { ActorMatch::Any(v) })
}

/// One `q` term as both backends search it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term<'a> {
    /// The term as typed.
    pub text: &'a str,
    /// Its words: runs of letters and digits, as typed.
    pub words: Vec<&'a str>,
    /// Several words and nothing JSON escapes: the text itself is looked for in the
    /// stored event (the indexes know words, not their order).
    pub phrase: bool,
}

/// Shortest last word searched as a prefix: a one-character prefix stands for a large
/// share of the vocabulary (every word beginning with `a`), which the index would walk
/// at once; such a word matches only itself.
pub(crate) const MIN_PREFIX_CHARS: usize = 2;

impl Term<'_> {
    /// Whether word `i` is searched as a prefix (the last word, long enough).
    pub(crate) fn prefix_at(&self, i: usize) -> bool {
        i + 1 == self.words.len() && self.words[i].chars().count() >= MIN_PREFIX_CHARS
    }
}

/// The filter's search terms; terms without any letter or digit are left out.
pub(crate) fn terms(f: &Filter) -> Vec<Term<'_>> {
    f.q.iter()
        .filter_map(|text| {
            let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
            let phrase = words.len() > 1 && !text.chars().any(|c| c == '"' || c == '\\' || c.is_control());
            (!words.is_empty()).then_some(Term { text, words, phrase })
        })
        .collect()
}

/// A page made from rows read in sort order, one more than the page holds if there
/// are more: the next cursor points after the page's last row.
pub(crate) struct PageBuilder {
    sort: Sort,
    limit: usize,
    events: Vec<Vec<u8>>,
    last: Option<(Value, i64, i64)>,
    more: bool,
}

impl PageBuilder {
    pub(crate) fn new(sort: Sort, limit: usize) -> PageBuilder {
        PageBuilder { sort, limit, events: Vec::with_capacity(limit), last: None, more: false }
    }

    /// Takes a row (its sort value, timestamp, position and stored bytes); false once
    /// the page is full (the row shows there are more).
    pub(crate) fn push(&mut self, value: Value, ts: i64, pos: i64, leaf: Vec<u8>) -> bool {
        if self.events.len() == self.limit {
            self.more = true;
            return false;
        }
        self.events.push(leaf);
        self.last = Some((value, ts, pos));
        true
    }

    pub(crate) fn finish(self) -> Page {
        let next_cursor = match (self.more, self.last) {
            (true, Some((value, ts, pos))) => Some(Cursor { sort: self.sort.render(), value, ts, pos }.encode()),
            _ => None,
        };
        Page { events: self.events, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(q: &[&str], expect: &[(&[&str], bool)]) {
        let f = Filter { q: q.iter().map(|s| s.to_string()).collect(), ..Filter::default() };
        let got: Vec<(Vec<&str>, bool)> = terms(&f).into_iter().map(|t| (t.words, t.phrase)).collect();
        let want: Vec<(Vec<&str>, bool)> = expect.iter().map(|(w, p)| (w.to_vec(), *p)).collect();
        assert_eq!(got, want, "{q:?}");
    }

    #[test]
    fn terms_are_words_and_phrases() {
        check(&["deploy"], &[(&["deploy"], false)]);
        check(&["image pull"], &[(&["image", "pull"], true)]);
        check(&["a\"b"], &[(&["a", "b"], false)]);
        check(&["--", "x"], &[(&["x"], false)]);
    }

    #[test]
    fn actors_ending_in_at_match_local_parts() {
        let f = Filter { actor: vec!["sarah@".into(), "Sarah Kim".into()], ..Filter::default() };
        let got: Vec<_> = actor_matches(&f).collect();
        assert_eq!(got, [ActorMatch::EmailLocal("sarah@"), ActorMatch::Any("Sarah Kim")]);
    }

    #[test]
    fn a_full_page_has_a_cursor_after_its_last_row() {
        let mut p = PageBuilder::new(Sort::default(), 2);
        assert!(p.push(Value::Null, 1, 10, b"a".to_vec()));
        assert!(p.push(Value::Null, 2, 20, b"b".to_vec()));
        assert!(!p.push(Value::Null, 3, 30, b"c".to_vec()));
        let page = p.finish();
        assert_eq!(page.events.len(), 2);
        let c = Cursor::decode(page.next_cursor.as_deref().unwrap(), Sort::default()).unwrap();
        assert_eq!((c.ts, c.pos), (2, 20));
    }
}
