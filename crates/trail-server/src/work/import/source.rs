//! A source read as it streams: whatever its size, one line or one record is held at a
//! time, so a 5 GB log imports in the memory of one record.
//!
//! A source is JSON Lines, one JSON document (an array, an envelope such as
//! CloudTrail's `{"Records": […]}`, one record), or several of these in a row. A line
//! that is a whole JSON value on its own is a record (or an envelope of records). A
//! line that starts a value it does not finish starts a document, which serde reads
//! from the stream, handing over the envelope's (or the array's) items one at a time.
//! Nothing longer than [`MAX_RECORD_BYTES`] is held: such a line is read as a document
//! instead, and such a record is skipped, and reading the source stops there, as it
//! does where a document breaks (serde cannot find the next record after an error).

use std::{cell::Cell, fmt, io, io::BufRead};

use serde::{
    de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor},
    Deserialize,
};
use serde_json::{Map, Value};

/// The longest record (and line) held in memory.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Where a record starts: its line (1-based) and, for an item of an array or an
/// envelope read as a document, its position there (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub line: usize,
    pub item: Option<usize>,
}

impl At {
    fn line(line: usize) -> At {
        At { line, item: None }
    }
}

/// A record and where it starts, or why that place holds none.
pub type Record = (At, Result<Value, String>);

/// Hands each record of `input` to `each`, in order, until `each` answers `false`.
/// Records that are not JSON are handed over as errors; only the input's own read
/// errors end with `Err`.
pub fn records<R: BufRead>(input: R, envelope: &str, each: &mut dyn FnMut(Record) -> bool) -> io::Result<()> {
    let place = Place::default();
    place.line.set(1);
    let mut src = Source { back: Vec::new(), back_at: 0, inner: input, place: &place };
    if src.buffered()?.starts_with(b"\xEF\xBB\xBF") {
        src.advance(3);
    }
    loop {
        if src.skip_blank()? {
            return Ok(());
        }
        let start = place.line.get();
        let (line, whole) = src.line()?;
        if whole {
            let record = match serde_json::from_slice::<Value>(&line) {
                Err(e) if e.is_eof() && !src.buffered()?.is_empty() => None,
                read => Some(read.map_err(|e| format!("not JSON ({e})"))),
            };
            if let Some(record) = record {
                if !each((At::line(start), record)) {
                    return Ok(());
                }
                continue;
            }
        }
        src.give_back(line);
        if !document(&mut src, envelope, each, start)? {
            return Ok(());
        }
    }
}

/// Reads one document from `src`; `false` when reading stops (asked to, or the
/// document breaks).
fn document<R: BufRead>(
    src: &mut Source<'_, R>,
    envelope: &str,
    each: &mut dyn FnMut(Record) -> bool,
    start: usize,
) -> io::Result<bool> {
    let place = src.place;
    place.window.set(0);
    let doc = Doc { envelope: Some(envelope), each: &mut *each, place }
        .deserialize(&mut serde_json::Deserializer::from_reader(&mut *src));
    match doc {
        Ok(Some(record)) => Ok(each((At::line(start), Ok(record)))),
        Ok(None) => Ok(true),
        Err(_) if place.stopped.get() => Ok(false),
        Err(_) if place.too_long.get() => {
            let reason = format!("a record longer than {} MiB; the rest is not read", MAX_RECORD_BYTES >> 20);
            each((At::line(place.line.get()), Err(reason)));
            Ok(false)
        }
        Err(e) if e.is_io() => Err(e.into()),
        Err(e) => {
            let line = start + e.line().saturating_sub(1);
            let text = e.to_string();
            let what = text.rsplit_once(" at line ").map_or(text.as_str(), |(what, _)| what);
            let reason = format!("not JSON ({what} at column {}); the rest is not read", e.column());
            each((At::line(line), Err(reason)));
            Ok(false)
        }
    }
}

/// What the reader and the visitors share while serde holds the reader.
#[derive(Default)]
struct Place {
    /// The line of the next byte handed out.
    line: Cell<usize>,
    /// Bytes handed out since the current record began.
    window: Cell<usize>,
    /// The window passed [`MAX_RECORD_BYTES`].
    too_long: Cell<bool>,
    /// The caller asked to stop.
    stopped: Cell<bool>,
}

/// The input, with the bytes given back served first.
struct Source<'p, R> {
    back: Vec<u8>,
    back_at: usize,
    inner: R,
    place: &'p Place,
}

impl<R: BufRead> Source<'_, R> {
    fn buffered(&mut self) -> io::Result<&[u8]> {
        if self.back_at < self.back.len() {
            return Ok(&self.back[self.back_at..]);
        }
        self.inner.fill_buf()
    }

    /// Moves past `n` bytes of [`Self::buffered`], counting lines.
    fn advance(&mut self, n: usize) {
        let newlines = |b: &[u8]| memchr::memchr_iter(b'\n', b).count();
        let lines = if self.back_at < self.back.len() {
            let lines = newlines(&self.back[self.back_at..self.back_at + n]);
            self.back_at += n;
            if self.back_at == self.back.len() {
                self.back.clear();
                self.back_at = 0;
            }
            lines
        } else {
            let lines = self.inner.fill_buf().map_or(0, |b| newlines(&b[..n.min(b.len())]));
            self.inner.consume(n);
            lines
        };
        self.place.line.set(self.place.line.get() + lines);
        self.place.window.set(self.place.window.get() + n);
    }

    /// Skips blank space; `true` at the end of the input.
    fn skip_blank(&mut self) -> io::Result<bool> {
        loop {
            let buf = self.buffered()?;
            if buf.is_empty() {
                return Ok(true);
            }
            let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let rest = blank < buf.len();
            self.advance(blank);
            if rest {
                return Ok(false);
            }
        }
    }

    /// The next line with its newline, and whether it is whole: a line longer than
    /// [`MAX_RECORD_BYTES`] is cut just past that length.
    fn line(&mut self) -> io::Result<(Vec<u8>, bool)> {
        let mut line = Vec::new();
        loop {
            let room = MAX_RECORD_BYTES + 1 - line.len();
            let buf = self.buffered()?;
            if buf.is_empty() {
                return Ok((line, true));
            }
            let buf = &buf[..buf.len().min(room)];
            let (n, end) = memchr::memchr(b'\n', buf).map_or((buf.len(), false), |i| (i + 1, true));
            line.extend_from_slice(&buf[..n]);
            self.advance(n);
            if end {
                return Ok((line, true));
            }
            if line.len() > MAX_RECORD_BYTES {
                return Ok((line, false));
            }
        }
    }

    /// Serves `bytes` (just read) again, before the rest.
    fn give_back(&mut self, mut bytes: Vec<u8>) {
        let lines = memchr::memchr_iter(b'\n', &bytes).count();
        self.place.line.set(self.place.line.get() - lines);
        bytes.extend_from_slice(&self.back[self.back_at..]);
        self.back = bytes;
        self.back_at = 0;
    }
}

impl<R: BufRead> io::Read for Source<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.place.window.get() >= MAX_RECORD_BYTES {
            self.place.too_long.set(true);
            return Err(io::Error::other("record too long"));
        }
        let buf = self.buffered()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.advance(n);
        Ok(n)
    }
}

/// A document: an array of records handed over item by item (`None` answered), an
/// object that is an envelope of records (the same), or anything else, which is one
/// record (answered). An envelope's own value is read as a document with no envelope.
struct Doc<'a, 'f> {
    envelope: Option<&'a str>,
    each: &'a mut (dyn FnMut(Record) -> bool + 'f),
    place: &'a Place,
}

impl<'de> DeserializeSeed<'de> for Doc<'_, '_> {
    type Value = Option<Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Doc<'_, '_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Value>, A::Error> {
        stream(seq, self.each, self.place).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut kept = Map::new();
        let mut streamed = false;
        while let Some(key) = map.next_key::<String>()? {
            if self.envelope == Some(key.as_str()) && !streamed {
                match map.next_value_seed(Doc { envelope: None, each: &mut *self.each, place: self.place })? {
                    None => streamed = true,
                    Some(v) => drop(kept.insert(key, v)),
                }
            } else {
                let v: Value = map.next_value()?;
                kept.insert(key, v);
            }
        }
        Ok((!streamed).then_some(Value::Object(kept)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }
}

/// Hands over an array's items one at a time, each with the line it starts on.
fn stream<'de, A: SeqAccess<'de>>(
    mut seq: A,
    each: &mut dyn FnMut(Record) -> bool,
    place: &Place,
) -> Result<(), A::Error> {
    let mut n = 0;
    while let Some((line, item)) = seq.next_element_seed(Item(place))? {
        place.window.set(0);
        n += 1;
        if !each((At { line, item: Some(n) }, Ok(item))) {
            place.stopped.set(true);
            return Err(de::Error::custom("stopped"));
        }
    }
    Ok(())
}

/// One item, and the line where it starts (serde has read its first byte).
struct Item<'a>(&'a Place);

impl<'de> DeserializeSeed<'de> for Item<'_> {
    type Value = (usize, Value);

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(usize, Value), D::Error> {
        let line = self.0.line.get();
        self.0.window.set(0);
        Ok((line, Value::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Every record of `text` with its line; stops after `stop_after` records.
    fn read(text: &[u8], stop_after: usize) -> Vec<(usize, Result<Value, String>)> {
        let mut out = Vec::new();
        records(text, "Records", &mut |(at, value)| {
            out.push((at.line, value));
            out.len() < stop_after
        })
        .unwrap();
        out
    }

    fn ok(line: usize, v: Value) -> (usize, Result<Value, String>) {
        (line, Ok(v))
    }

    #[test]
    fn json_lines_with_blank_bad_and_crlf_lines() {
        let text = "\u{feff}{\"a\":1}\r\n\n{not json\n  {\"b\":2}\n[1,2]\n";
        let got = read(text.as_bytes(), usize::MAX);
        assert_eq!(got[0], ok(1, json!({"a": 1})));
        assert_eq!(got[1].0, 3);
        assert!(got[1].1.as_ref().unwrap_err().starts_with("not JSON"), "{got:?}");
        assert_eq!(got[2..], [ok(4, json!({"b": 2})), ok(5, json!([1, 2]))]);
    }

    #[test]
    fn a_pretty_envelope_is_handed_over_item_by_item_with_its_lines() {
        let text = "{\n  \"Other\": [0],\n  \"Records\": [\n    {\"a\": 1},\n    {\n      \"b\": 2\n    }\n  ],\n  \"x\": 1\n}\n{\"c\":3}\n";
        assert_eq!(
            read(text.as_bytes(), usize::MAX),
            [ok(4, json!({"a": 1})), ok(5, json!({"b": 2})), ok(11, json!({"c": 3}))]
        );
        // An object that is not an envelope is one record; an array's items are records.
        let one = "{\n\"Records\": \"none\",\n\"y\": [1,\n2]}";
        assert_eq!(read(one.as_bytes(), usize::MAX), [ok(1, json!({"Records": "none", "y": [1, 2]}))]);
        let array = "[\n{\"a\":1},\n\n{\"a\":2}]";
        assert_eq!(read(array.as_bytes(), usize::MAX), [ok(2, json!({"a": 1})), ok(4, json!({"a": 2}))]);
        // Items read as a document know their position.
        let mut at = Vec::new();
        records(array.as_bytes(), "Records", &mut |(a, _)| {
            at.push(a);
            true
        })
        .unwrap();
        assert_eq!(at, [At { line: 2, item: Some(1) }, At { line: 4, item: Some(2) }]);
    }

    #[test]
    fn reading_stops_when_asked_and_where_a_document_breaks() {
        let text = "[\n{\"a\":1},\n{\"a\":2},\n{\"a\":3}\n]\n{\"z\":0}";
        assert_eq!(read(text.as_bytes(), 2), [ok(2, json!({"a": 1})), ok(3, json!({"a": 2}))]);
        let broken = "{\"Records\": [\n{\"a\":1},\n{\"a\": tru}\n]}\n{\"z\":0}";
        let got = read(broken.as_bytes(), usize::MAX);
        assert_eq!(got[0], ok(2, json!({"a": 1})));
        assert_eq!(got.len(), 2, "{got:?}");
        let (line, why) = (&got[1].0, got[1].1.as_ref().unwrap_err());
        assert_eq!(*line, 3);
        assert!(why.contains("expected ident at column") && why.ends_with("the rest is not read"), "{why}");
        // Ends before it is finished.
        let cut = read(b"{\"Records\": [{\"a\":1},\n{\"a\"", usize::MAX);
        assert_eq!((cut.len(), cut[1].0), (2, 2), "{cut:?}");
    }

    #[test]
    fn nothing_longer_than_the_limit_is_held() {
        // A one-line envelope longer than the limit is read item by item.
        let item = json!({"pad": "x".repeat(1 << 20)}).to_string();
        let mut big = String::from("{\"Records\": [");
        for i in 0..20 {
            big.push_str(&item);
            big.push_str(if i < 19 { "," } else { "]}\n{\"after\":1}\n" });
        }
        let got = read(big.as_bytes(), usize::MAX);
        assert_eq!(got.len(), 21, "{:?}", got.iter().map(|r| (r.0, r.1.as_ref().err())).collect::<Vec<_>>());
        assert!(got.iter().all(|r| r.1.is_ok()));
        assert_eq!(got[20], ok(2, json!({"after": 1})));
        // One record longer than the limit is refused, and reading stops.
        let huge = format!("{{\"x\":1}}\n[{{\"pad\": \"{}\"}}, {{\"y\":1}}]\n", "x".repeat(MAX_RECORD_BYTES + 10));
        let got = read(huge.as_bytes(), usize::MAX);
        assert_eq!(got.len(), 2);
        assert!(got[1].1.as_ref().unwrap_err().starts_with("a record longer than 16 MiB"), "{:?}", got[1].1);
    }

    fn record() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[ -~\\n\u{e9}\u{1F600}]{0,12}".prop_map(Value::from),
        ];
        let tree = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-zA-Z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        prop::collection::btree_map("[a-z]{1,6}", tree, 0..5).prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The same records, whatever the shape of the source: JSON Lines, a pretty or
        /// compact envelope, a pretty array.
        #[test]
        fn every_shape_gives_the_same_records(records in prop::collection::vec(record(), 1..8)) {
            let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
            let pretty = serde_json::to_string_pretty(&json!({"Records": records})).unwrap();
            let compact = json!({"Records": records}).to_string();
            let array = serde_json::to_string_pretty(&records).unwrap();
            let shapes = [(lines, false), (pretty, false), (array, false), (compact, true)];
            for (text, enveloped) in shapes {
                let got: Vec<Value> = read(text.as_bytes(), usize::MAX).into_iter().map(|r| r.1.unwrap()).collect();
                if enveloped {
                    prop_assert_eq!(&got, &vec![json!({"Records": records})]);
                } else {
                    prop_assert_eq!(&got, &records);
                }
            }
        }
    }
}
