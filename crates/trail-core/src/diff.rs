//! A structured diff of an event's `before` and `after` states: which paths were added,
//! removed or changed, with their old and new values.

use serde::Serialize;
use serde_json::Value;

/// One difference between `before` and `after`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// Dotted path, with `[i]` for array positions, e.g. `spec.containers[0].image`.
    /// Empty when the whole value differs at the top.
    pub path: String,
    pub kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// Compares two JSON states. Objects are compared key by key and arrays position by
/// position, so that the change is reported at the deepest path that differs.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<Change> {
    let mut out = Vec::new();
    walk(String::new(), before, after, &mut out);
    out
}

fn walk(path: String, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
    match (old, new) {
        (None, None) => {}
        (Some(o), None) => out.push(Change { path, kind: ChangeKind::Removed, old: Some(o.clone()), new: None }),
        (None, Some(n)) => out.push(Change { path, kind: ChangeKind::Added, old: None, new: Some(n.clone()) }),
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            for (k, ov) in o {
                walk(join(&path, k), Some(ov), n.get(k), out);
            }
            for (k, nv) in n {
                if !o.contains_key(k) {
                    walk(join(&path, k), None, Some(nv), out);
                }
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) => {
            for i in 0..o.len().max(n.len()) {
                walk(format!("{path}[{i}]"), o.get(i), n.get(i), out);
            }
        }
        (Some(o), Some(n)) if o == n => {}
        (Some(o), Some(n)) => {
            out.push(Change { path, kind: ChangeKind::Changed, old: Some(o.clone()), new: Some(n.clone()) })
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(before: Value, after: Value, want: &[(&str, ChangeKind, Option<Value>, Option<Value>)]) {
        let got = diff(Some(&before), Some(&after));
        let got: Vec<_> = got.into_iter().map(|c| (c.path, c.kind, c.old, c.new)).collect();
        let want: Vec<_> = want.iter().map(|(p, k, o, n)| (p.to_string(), *k, o.clone(), n.clone())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn reports_deepest_paths() {
        use ChangeKind::*;
        check(
            json!({"replicas": 2, "image": "a:1", "env": {"A": "1"}, "ports": [80]}),
            json!({"replicas": 3, "image": "a:1", "env": {"B": "2"}, "ports": [80, 443]}),
            &[
                ("replicas", Changed, Some(json!(2)), Some(json!(3))),
                ("env.A", Removed, Some(json!("1")), None),
                ("env.B", Added, None, Some(json!("2"))),
                ("ports[1]", Added, None, Some(json!(443))),
            ],
        );
        check(json!(1), json!("1"), &[("", Changed, Some(json!(1)), Some(json!("1")))]);
        assert!(diff(None, None).is_empty());
        assert_eq!(diff(None, Some(&json!({"a": 1}))).len(), 1);
    }
}
