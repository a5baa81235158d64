//! The one-line query language of the search box, e.g.
//! `category:auth result:FAILED actor:john@ created:>=2024-03-01 "vpc-prod"`.
//!
//! It parses into the same `Filter` as URL parameters; `render` is its inverse, so a
//! filter can always be shown back to the user as text (`parse(render(f)) == f`).
//!
//! Grammar: terms separated by whitespace. A term is `key:value` or a free-text value.
//! Values are bare (up to the next whitespace) or double-quoted with `\"` and `\\`
//! escapes. Unquoted values of enumerated keys may list several values with commas.
//! `created:` takes `>=`, `>`, `<=`, `<` or a bare date (that whole day).

use crate::{
    error::FieldError,
    filter::{Filter, Sort},
    time::Timestamp,
};

/// Keys the language knows: the URL filters plus `created`. Anything else shaped like
/// `word:` is an error rather than silently searched for, so typos are noticed.
fn known_key(key: &str) -> bool {
    key == "created" || crate::filter::FILTER_KEYS.contains(&key)
}

/// Parses a query line into a filter.
pub fn parse(input: &str) -> Result<Filter, FieldError> {
    let mut f = Filter::default();
    let mut chars = input.char_indices().peekable();
    let err = |m: String| FieldError::new("q", m);
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            let (s, _) = quoted(&mut chars).map_err(err)?;
            f.q.push(s);
            continue;
        }
        // Read a bare run; it may be `key:` followed by a value.
        let mut word = String::new();
        let mut key = None;
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == ':' && key.is_none() && is_key_shaped(&word) {
                key = Some(std::mem::take(&mut word));
                if let Some(&(_, '"')) = chars.peek() {
                    break;
                }
                continue;
            }
            word.push(c);
        }
        let Some(key) = key else {
            f.q.push(word);
            continue;
        };
        if !known_key(&key) {
            let known = crate::filter::FILTER_KEYS.join(", ");
            return Err(err(format!("unknown filter '{key}:' at position {start}; known: created, {known}"))
                .with_code(crate::error::FieldCode::UnknownFilter));
        }
        let (value, was_quoted) = match chars.peek() {
            Some(&(_, '"')) if word.is_empty() => quoted(&mut chars).map_err(err)?,
            _ => (word, false),
        };
        if value.is_empty() {
            return Err(err(format!("'{key}:' needs a value")));
        }
        if key == "created" {
            created(&mut f, &value).map_err(|m| err(format!("created: {m}")))?;
        } else {
            f.apply(&key, &value, was_quoted).map_err(|e| err(format!("{}: {}", e.field, e.message)))?;
        }
    }
    f.check_bounds().map_err(|e| match e.field.as_str() {
        "q" => e,
        field => err(format!("{field}: {}", e.message)),
    })?;
    Ok(f)
}

fn is_key_shaped(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

fn quoted(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Result<(String, bool), String> {
    let (start, _) = chars.next().ok_or("expected a quote")?;
    let mut out = String::new();
    loop {
        match chars.next() {
            None => return Err(format!("unclosed quote starting at position {start}")),
            Some((_, '"')) => return Ok((out, true)),
            Some((_, '\\')) => match chars.next() {
                Some((_, c)) => out.push(c),
                None => return Err(format!("unclosed quote starting at position {start}")),
            },
            Some((_, c)) => out.push(c),
        }
    }
}

fn created(f: &mut Filter, value: &str) -> Result<(), String> {
    let micro = 1;
    if let Some(v) = value.strip_prefix(">=") {
        f.from = Some(Timestamp::parse_bound(v, false)?);
    } else if let Some(v) = value.strip_prefix('>') {
        f.from = Some(Timestamp(Timestamp::parse_bound(v, true)?.0 + micro));
    } else if let Some(v) = value.strip_prefix("<=") {
        f.to = Some(Timestamp::parse_bound(v, true)?);
    } else if let Some(v) = value.strip_prefix('<') {
        f.to = Some(Timestamp(Timestamp::parse_bound(v, false)?.0 - micro));
    } else {
        let v = value.strip_prefix('=').unwrap_or(value);
        f.from = Some(Timestamp::parse_bound(v, false)?);
        f.to = Some(Timestamp::parse_bound(v, true)?);
    }
    Ok(())
}

/// Renders a filter as a query line; the canonical inverse of `parse`.
pub fn render(f: &Filter) -> String {
    let mut terms: Vec<String> = Vec::new();
    if let Some(p) = f.period {
        terms.push(format!("period:{}", p.as_str()));
    }
    if let Some(t) = f.from {
        terms.push(format!("created:>={}", t.to_rfc3339_micros()));
    }
    if let Some(t) = f.to {
        terms.push(format!("created:<={}", t.to_rfc3339_micros()));
    }
    for (key, values) in f.text_fields() {
        for v in values {
            if key == "q" {
                terms.push(if needs_quotes(v) || v.contains(':') { quote(v) } else { v.clone() });
            } else {
                terms.push(format!("{key}:{}", if needs_quotes(v) { quote(v) } else { v.clone() }));
            }
        }
    }
    for r in &f.result {
        terms.push(format!("result:{}", r.as_str()));
    }
    if let Some(s) = f.status {
        terms.push(format!("status:{}", s.as_str()));
    }
    if f.hide_views {
        terms.push("views:hide".into());
    }
    for n in &f.ip {
        terms.push(format!("ip:{n}"));
    }
    if f.sort != Sort::default() {
        terms.push(format!("sort:{}", f.sort.render()));
    }
    terms.join(" ")
}

fn needs_quotes(v: &str) -> bool {
    v.is_empty() || v.starts_with('"') || v.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == ',')
}

fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::Outcome,
        filter::{Period, SortField, StatusClass},
    };
    use proptest::prelude::*;

    #[test]
    fn parses_the_design_example() {
        let f = parse(r#"category:auth result:FAILED actor:john@ created:>=2024-03-01 "vpc-prod""#).unwrap();
        assert_eq!(
            f,
            Filter {
                category: vec!["auth".into()],
                result: vec![Outcome::Failed],
                actor: vec!["john@".into()],
                from: Some(Timestamp::parse_rfc3339("2024-03-01T00:00:00Z").unwrap()),
                q: vec!["vpc-prod".into()],
                ..Filter::default()
            }
        );
    }

    #[test]
    fn parses_lists_quotes_and_ranges() {
        let f = parse(r#"type:auth,vpn user:"John Smith" created:2024-03-01 deploy failed sort:email"#).unwrap();
        assert_eq!(f.category, vec!["auth", "vpn"]);
        assert_eq!(f.actor, vec!["John Smith"]);
        assert_eq!(f.to.unwrap().0 - f.from.unwrap().0, 86_400_000_000 - 1);
        assert_eq!(f.q, vec!["deploy", "failed"]);
        assert_eq!(f.sort, Sort { field: SortField::Email, desc: false });
        let f = parse("created:>2024-03-01 created:<2024-04-01").unwrap();
        assert_eq!(f.from.unwrap().to_rfc3339(), "2024-03-02T00:00:00Z");
        assert_eq!(f.to.unwrap().to_rfc3339(), "2024-03-31T23:59:59.999999Z");
    }

    #[test]
    fn reports_errors() {
        for bad in ["colour:red", "result:maybe", "\"open", "created:>=soon", "actor:", "ip:1.2.3.999", "sort:x"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.field, "q", "{bad}");
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9@._-]{1,12}",
            "[a-z]{1,5}:[a-z]{0,4}",
            any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
            Just("a \"quoted\" \\ value, with commas".to_string()),
        ]
    }

    fn lower() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9_]{1,10}", Just("with space".to_string()), Just("a,b".to_string())]
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let ts = proptest::option::of((0i64..=crate::time::MAX_MICROS).prop_map(Timestamp));
        let v = |s: BoxedStrategy<String>| proptest::collection::vec(s, 0..3);
        (
            (proptest::option::of(proptest::sample::select(Period::ALL.to_vec())), ts.clone(), ts),
            (v(lower().boxed()), v(lower().boxed()), v("[a-z]{1,6}:[a-z_]{1,8}".boxed())),
            (
                proptest::collection::vec(proptest::sample::select(Outcome::ALL.to_vec()), 0..3),
                proptest::option::of(prop_oneof![Just(StatusClass::Success), Just(StatusClass::Failure)]),
            ),
            (v(text().boxed()), v(text().boxed()), v(text().boxed()), v(text().boxed()), v(text().boxed())),
            (v(text().boxed()), v(text().boxed()), v(text().boxed()), v(text().boxed()), v(text().boxed())),
            (
                proptest::collection::vec(
                    (any::<[u8; 4]>(), 0u8..=32)
                        .prop_map(|(a, p)| ipnet::IpNet::from(ipnet::Ipv4Net::new(a.into(), p).unwrap()).trunc()),
                    0..2,
                ),
                v(text().boxed()),
                (proptest::sample::select(SortField::ALL.to_vec()), any::<bool>())
                    .prop_map(|(field, desc)| Sort { field, desc }),
                any::<bool>(),
            ),
        )
            .prop_map(|(t, (category, operation, action), (result, status), a, b, c)| Filter {
                period: t.0,
                from: t.1,
                to: t.2,
                category,
                operation,
                action,
                result,
                status,
                actor: a.0,
                company: a.1,
                request_id: a.2,
                resource: a.3,
                resource_type: a.4,
                workspace: b.0,
                project: b.1,
                cluster: b.2,
                namespace: b.3,
                ip: c.0,
                q: c.1,
                sort: c.2,
                hide_views: c.3,
            })
            .prop_filter("within the bounds of one request", |f| f.check_bounds().is_ok())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn parse_inverts_render(f in filter()) {
            let line = render(&f);
            let back = parse(&line).map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
            prop_assert_eq!(back, f, "line: {}", line);
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }
    }

    #[test]
    fn a_period_that_ends_before_it_starts_is_refused() {
        let e = Filter::from_pairs([("from", "2026-02-01"), ("to", "2026-01-01")]).unwrap_err();
        assert_eq!(e.field, "to");
        assert!(Filter::from_pairs([("from", "2026-01-01"), ("to", "2026-01-01")]).is_ok());
    }
}
