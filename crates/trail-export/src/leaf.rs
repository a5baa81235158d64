//! The fields of a stored event that the CSV columns need, read straight from its
//! stored bytes (the compact JSON `Event::to_leaf` wrote). A small scanner walks the
//! object, borrowing the strings it needs and skipping everything else (before/after,
//! context, user agent) without building anything; strings are only copied when they
//! hold escapes. Whatever the scanner does not expect makes it give up, and the caller
//! then reads the event with serde_json, which also names what is wrong.

use std::borrow::Cow;

/// The CSV-relevant fields of one stored event.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
pub(crate) struct LeafRow<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub org: Cow<'a, str>,
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(borrow)]
    pub result: Cow<'a, str>,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(borrow, default)]
    pub actor: Option<LeafActor<'a>>,
    #[serde(borrow, default)]
    pub resource: Option<LeafResource<'a>>,
    #[serde(borrow, default)]
    pub source_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub request_id: Option<Cow<'a, str>>,
    /// The details object as stored (`null` when absent or null).
    #[serde(borrow, default, deserialize_with = "raw")]
    pub details: Option<&'a str>,
    #[serde(borrow, default)]
    pub error: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, PartialEq, serde::Deserialize)]
pub(crate) struct LeafActor<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub email: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, PartialEq, serde::Deserialize)]
pub(crate) struct LeafResource<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
}

fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
    let v: &'de serde_json::value::RawValue = serde::Deserialize::deserialize(d)?;
    Ok(Some(v.get()).filter(|s| *s != "null"))
}

impl<'a> LeafRow<'a> {
    /// Reads a stored event's columns: the scanner, or serde_json where the scanner
    /// gives up (and to report what is wrong with a malformed event).
    pub fn read(text: &'a str) -> Result<LeafRow<'a>, serde_json::Error> {
        match scan(text) {
            Some(row) => Ok(row),
            None => serde_json::from_str(text),
        }
    }
}

/// The scanner: `None` when the text is not what `Event::to_leaf` writes.
pub(crate) fn scan(text: &str) -> Option<LeafRow<'_>> {
    let mut c = Cursor { text, b: text.as_bytes(), i: 0 };
    let mut row = LeafRow::default();
    let mut seen = 0u8;
    c.object(|c, key| {
        match key {
            "id" => (row.id, seen) = (c.string()?, seen | 1),
            "org" => (row.org, seen) = (c.string()?, seen | 2),
            "timestamp" => (row.timestamp, seen) = (c.string()?, seen | 4),
            "action" => (row.action, seen) = (c.string()?, seen | 8),
            "result" => (row.result, seen) = (c.string()?, seen | 16),
            "status_code" => row.status_code = c.nullable(Cursor::u16)?,
            "source_ip" => row.source_ip = c.nullable(Cursor::string)?,
            "request_id" => row.request_id = c.nullable(Cursor::string)?,
            "error" => row.error = c.nullable(Cursor::string)?,
            "details" => {
                let start = c.i;
                c.skip()?;
                row.details = Some(&c.text[start..c.i]).filter(|s| *s != "null");
            }
            "actor" => {
                row.actor = c.nullable(|c| {
                    let [name, email] = c.strings(["name", "email"])?;
                    Some(LeafActor { name, email })
                })?
            }
            "resource" => {
                row.resource = c.nullable(|c| {
                    let [kind, id, name] = c.strings(["type", "id", "name"])?;
                    Some(LeafResource { kind, id, name })
                })?
            }
            _ => c.skip()?,
        }
        Some(())
    })?;
    c.ws();
    (seen == 31 && c.i == c.b.len()).then_some(row)
}

/// The index of the first `"` or `\` at or after `j`, eight bytes at a time (most
/// strings are short: this beat a call into memchr for each by about 10 % of a row).
fn quote_or_backslash(b: &[u8], mut j: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(w) = b.get(j..j + 8) {
        let w = u64::from_le_bytes(w.try_into().ok()?);
        let (q, s) = (w ^ (LO * u64::from(b'"')), w ^ (LO * u64::from(b'\\')));
        // A byte of q or s is zero where w holds a quote or a backslash; the lowest
        // flagged byte is exact (borrows only run towards higher bytes).
        let m = ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s)) & HI;
        if m != 0 {
            return Some(j + (m.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    (j..b.len()).find(|&k| matches!(b[k], b'"' | b'\\'))
}

struct Cursor<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `null`, or what `f` reads.
    fn nullable<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            Some(None)
        } else {
            f(self).map(Some)
        }
    }

    /// The members of an object, each value read (or skipped) by `member`.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        self.ws();
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, &key)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
            self.ws();
        }
    }

    /// The string (or null) members named by `keys` of an object, the others skipped.
    fn strings<const N: usize>(&mut self, keys: [&str; N]) -> Option<[Option<Cow<'a, str>>; N]> {
        let mut found = std::array::from_fn(|_| None);
        self.object(|c, key| {
            match keys.iter().position(|k| *k == key) {
                Some(i) => found[i] = c.nullable(Cursor::string)?,
                None => c.skip()?,
            }
            Some(())
        })?;
        Some(found)
    }

    /// The end of the string whose opening quote is at `i` (the index after its closing
    /// quote), and whether it holds escapes.
    fn string_end(&self) -> Option<(usize, bool)> {
        let mut j = self.i + 1;
        let mut escaped = false;
        loop {
            j = quote_or_backslash(self.b, j)?;
            if self.b[j] == b'"' {
                return Some((j + 1, escaped));
            }
            escaped = true;
            j += 2;
            if j > self.b.len() {
                return None;
            }
        }
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        let (end, escaped) = self.string_end()?;
        let quoted = &self.text[self.i..end];
        self.i = end;
        if escaped {
            serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(&quoted[1..quoted.len() - 1]))
        }
    }

    fn u16(&mut self) -> Option<u16> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.text[start..self.i].parse().ok()
    }

    /// Steps over one value of any kind.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.i = self.string_end()?.0,
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => {
                            self.i = self.string_end()?.0;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let start = self.i;
                while !matches!(self.peek(), None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')) {
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &str) -> (Option<LeafRow<'_>>, Option<LeafRow<'_>>) {
        (scan(text), serde_json::from_str(text).ok())
    }

    #[test]
    fn scanner_reads_what_serde_reads() {
        let cases = [
            r#"{"id":"e1","org":"acme","seq":1,"timestamp":"2024-03-01T10:00:00Z","received_at":"x","action":"a:b","result":"DONE"}"#,
            r#"{"id":"e1","org":"acme","timestamp":"t","action":"a:b","result":"FAILED","status_code":403,"actor":{"id":"u","name":"Zo\u00eb \"Z\"","email":"=x@y","company":null,"type":"user"},"resource":{"type":"user","id":"u\n1","name":"-2","parent":{"type":"p","id":"q"}},"context":{"workspace":{"id":"w","name":"W"},"cluster":"c"},"source_ip":"10.0.0.1","user_agent":"ua}{][","request_id":"r","details":{"a":[1,{"b":"}"}],"c":null,"d":true,"e":-1.5e3},"before":{"x":"\\"},"after":[],"error":"bad\\\"","idempotency_key":"k"}"#,
            r#" { "id" : "e1" , "org":"acme","timestamp":"t","action":"a","result":"DONE","details":null,"actor":null } "#,
            r#"{"id":"e1","org":"acme","timestamp":"t","action":"a","result":"DONE","details":{},"resource":{}}"#,
        ];
        for text in cases {
            let (fast, slow) = both(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, slow, "{text}");
        }
    }

    #[test]
    fn finds_quotes_and_backslashes_at_every_offset() {
        let text: Vec<u8> = (0..300u32)
            .map(|i| [b'a', b'"', 0x80, b'\\', b'\xff', b'!', b']', b'#'][(i * i % 11 % 8) as usize])
            .collect();
        for j in 0..=text.len() {
            let naive = (j..text.len()).find(|&k| matches!(text[k], b'"' | b'\\'));
            assert_eq!(quote_or_backslash(&text, j), naive, "at {j}");
        }
        assert_eq!(quote_or_backslash(&[b'a'; 40], 0), None);
    }

    #[test]
    fn scanner_gives_up_on_what_it_does_not_expect() {
        for text in [
            "",
            "{",
            "[]",
            r#"{"id":"e1"}"#,
            r#"{"id":"e1","org":"acme","timestamp":"t","action":"a","result":"DONE""#,
            r#"{"id":"e1","org":"acme","timestamp":"t","action":"a","result":"DONE","status_code":"x"}"#,
            r#"{"id":"e1","org":"acme","timestamp":"t","action":"a","result":"DONE","details":{"a":"}"#,
            r#"{"id":"e1","org":"acme","timestamp":"t","action":"a","result":"DONE"} x"#,
            r#"{"id":1,"org":"acme","timestamp":"t","action":"a","result":"DONE"}"#,
            r#"{"id":"e1\","org":"acme","timestamp":"t","action":"a","result":"DONE"}"#,
        ] {
            assert_eq!(scan(text), None, "{text}");
        }
    }
}
