//! Strict reading of event JSON: an object that names a key twice is ambiguous (JSON
//! parsers disagree on which value wins), so it is refused, naming the key and where.

use std::collections::HashSet;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The first key given twice in one object, as a path (`action`, `details.user.id`,
/// `details.items[2].id`), or `None`. Malformed JSON is left to the real parse.
pub fn duplicate_key(text: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut found = None;
    let _ = Check { path: String::new(), found: &mut found }.deserialize(&mut de);
    found
}

struct Check<'a> {
    path: String,
    found: &'a mut Option<String>,
}

/// Stops the walk once a duplicate is found.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("duplicate key")
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<std::borrow::Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let path = join(&self.path, &key);
            if !seen.insert(key) {
                *self.found = Some(path);
                return Err(serde::de::Error::custom(Stop));
            }
            map.next_value_seed(Check { path, found: &mut *self.found })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq.next_element_seed(Check { path: format!("{}[{i}]", self.path), found: &mut *self.found })?.is_some() {
            i += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_duplicate_at_any_depth() {
        for (text, want) in [
            (r#"{"action":"a:b","x":1}"#, None),
            (r#"{"action":"a:b","action":"c:d"}"#, Some("action")),
            (r#"{"details":{"a":1,"b":{"c":1,"c":2}}}"#, Some("details.b.c")),
            (r#"{"details":{"items":[{"id":1},{"id":1,"id":2}]}}"#, Some("details.items[1].id")),
            (r#"{"details":{"n":184467440737095516170000,"m":1E2}}"#, None),
            (r#"{"a":"\u0061","\u0061":1}"#, Some("a")),
            (r#"[{"a":1},{"a":1}]"#, None),
            (r#"{"a":1,"#, None),
        ] {
            assert_eq!(duplicate_key(text).as_deref(), want, "{text}");
        }
    }
}
