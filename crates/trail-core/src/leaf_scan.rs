//! A lazy reader of a stored event's `LeafView`: one pass over the bytes that borrows
//! the fields the view holds and steps over the rest, several times cheaper than serde
//! for the same view.
//!
//! It gives way rather than guess: anything it does not read exactly as serde would (a
//! repeated field, a value of another type, an escape it cannot judge in a skipped
//! value, nesting past its limit, bytes that are not UTF-8 or not JSON) makes it answer
//! `None`, and `LeafView::read` reads the bytes with serde. So when it answers, it
//! answers what serde answers (`tests` hold it to that). A kept string with escapes is
//! unescaped by serde itself.

use std::borrow::Cow;

use crate::leaf::{LeafContext, LeafParty, LeafView};

/// The bytes that end a run of plain string content: a quote, a backslash, a control.
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// How deep skipped values may nest before the scanner gives way.
const MAX_DEPTH: usize = 64;

/// The indexed fields of `leaf`, or `None` to read it with serde.
pub(crate) fn scan(leaf: &[u8]) -> Option<LeafView<'_>> {
    let text = std::str::from_utf8(leaf).ok()?;
    let mut s = Scanner { b: leaf, text, i: 0 };
    let view = s.leaf()?;
    s.ws();
    (s.i == s.b.len()).then_some(view)
}

struct Scanner<'a> {
    b: &'a [u8],
    /// The same bytes, known to be UTF-8.
    text: &'a str,
    i: usize,
}

/// A field seen twice is serde's error: give way.
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(v);
            Some(())
        }
    }
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Skips whitespace and takes `c`.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// After whitespace, whether the next value is `null` (taken if so).
    fn null(&mut self) -> Option<bool> {
        self.ws();
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            return Some(true);
        }
        self.peek().map(|_| false)
    }

    /// A string, borrowed when it holds no escape; escapes are unescaped by serde
    /// (which judges them, lone surrogates included).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let end = self.to_stop();
        if self.b.get(end) == Some(&b'"') {
            self.i = end + 1;
            return self.text.get(start..end).map(Cow::Borrowed);
        }
        let mut j = end;
        loop {
            match *self.b.get(j)? {
                b'"' => break,
                b'\\' => j += 2,
                c if c < 0x20 => return None,
                _ => j += 1,
            }
        }
        self.i = j + 1;
        serde_json::from_str::<String>(self.text.get(start - 1..j + 1)?).ok().map(Cow::Owned)
    }

    /// A string without escapes, borrowed (`None` on an escape): for keys, which serde
    /// would match after unescaping.
    fn plain(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = self.to_stop();
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        self.text.get(start..end)
    }

    /// The index of the next quote, backslash or control byte (or the end).
    fn to_stop(&self) -> usize {
        let mut i = self.i;
        while let Some(&c) = self.b.get(i) {
            if STOP[c as usize] {
                break;
            }
            i += 1;
        }
        i
    }

    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        Some(Some(self.string()?))
    }

    /// An unsigned integer as JSON writes it (no sign, fraction or exponent).
    fn unsigned(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = &self.b[start..self.i];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// An object's members: `f` is called with each key and reads its value.
    fn object(&mut self, mut f: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.plain()?;
            self.eat(b':')?;
            f(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn leaf(&mut self) -> Option<LeafView<'a>> {
        let (mut id, mut org, mut seq, mut timestamp, mut received_at, mut action, mut result) =
            (None, None, None, None, None, None, None);
        let (mut status_code, mut actor, mut resource, mut context) = (None, None, None, None);
        let (mut source_ip, mut user_agent, mut request_id, mut idempotency_key) = (None, None, None, None);
        let (mut error, mut details) = (None, None);
        self.object(|s, key| match key {
            "id" => once(&mut id, s.string()?),
            "org" => once(&mut org, s.string()?),
            "seq" => once(&mut seq, s.unsigned()?),
            "timestamp" => once(&mut timestamp, s.string()?),
            "received_at" => once(&mut received_at, s.string()?),
            "action" => once(&mut action, s.string()?),
            "result" => once(&mut result, s.string()?),
            "status_code" => {
                let v = if s.null()? { None } else { Some(u16::try_from(s.unsigned()?).ok()?) };
                once(&mut status_code, v)
            }
            "actor" => once(&mut actor, s.opt_party()?),
            "resource" => once(&mut resource, s.opt_party()?),
            "context" => once(&mut context, s.opt_context()?),
            "source_ip" => once(&mut source_ip, s.opt_string()?),
            "user_agent" => once(&mut user_agent, s.opt_string()?),
            "request_id" => once(&mut request_id, s.opt_string()?),
            "idempotency_key" => once(&mut idempotency_key, s.opt_string()?),
            "error" => once(&mut error, s.opt_string()?),
            "details" => {
                s.ws();
                let start = s.i;
                s.skip(1)?;
                once(&mut details, Some(&s.text[start..s.i]).filter(|v| *v != "null"))
            }
            _ => s.skip(0),
        })?;
        Some(LeafView {
            id: id?,
            org: org?,
            seq: seq?,
            timestamp: timestamp?,
            received_at: received_at?,
            action: action?,
            result: result?,
            status_code: status_code.flatten(),
            actor: actor.flatten(),
            resource: resource.flatten(),
            context: context.flatten(),
            source_ip: source_ip.flatten(),
            user_agent: user_agent.flatten(),
            request_id: request_id.flatten(),
            idempotency_key: idempotency_key.flatten(),
            error: error.flatten(),
            details: details.flatten(),
        })
    }

    fn opt_party(&mut self) -> Option<Option<LeafParty<'a>>> {
        if self.null()? {
            return Some(None);
        }
        let (mut id, mut name, mut email, mut kind) = (None, None, None, None);
        self.object(|s, key| match key {
            "id" => once(&mut id, s.opt_string()?),
            "name" => once(&mut name, s.opt_string()?),
            "email" => once(&mut email, s.opt_string()?),
            "type" => once(&mut kind, s.opt_string()?),
            _ => s.skip(1),
        })?;
        Some(Some(LeafParty { id: id.flatten(), name: name.flatten(), email: email.flatten(), kind: kind.flatten() }))
    }

    fn opt_context(&mut self) -> Option<Option<LeafContext<'a>>> {
        if self.null()? {
            return Some(None);
        }
        let (mut workspace, mut project, mut cluster, mut namespace) = (None, None, None, None);
        self.object(|s, key| match key {
            "workspace" => once(&mut workspace, s.opt_party()?),
            "project" => once(&mut project, s.opt_string()?),
            "cluster" => once(&mut cluster, s.opt_string()?),
            "namespace" => once(&mut namespace, s.opt_string()?),
            _ => s.skip(1),
        })?;
        Some(Some(LeafContext {
            workspace: workspace.flatten(),
            project: project.flatten(),
            cluster: cluster.flatten(),
            namespace: namespace.flatten(),
        }))
    }

    /// Steps over any JSON value, checking its grammar.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.object(|s, _| s.skip(depth + 1)),
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    fn word(&mut self, w: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(w).then(|| self.i += w.len())
    }

    fn skip_string(&mut self) -> Option<()> {
        self.i += 1;
        loop {
            self.i = self.to_stop();
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => self.i += 1,
                _ => return None,
            }
            match self.peek()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                // Escaped code points are serde's to judge (lone surrogates).
                _ => return None,
            }
        }
    }

    fn skip_number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.i += 1;
        }
        let digits = |s: &mut Self| {
            let start = s.i;
            while matches!(s.peek(), Some(b'0'..=b'9')) {
                s.i += 1;
            }
            s.i - start
        };
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            (digits(self) > 0).then_some(())?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            (digits(self) > 0).then_some(())?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    /// The scanner answers exactly what serde answers, or gives way.
    fn agrees(bytes: &[u8]) -> Result<bool, TestCaseError> {
        let serde = serde_json::from_slice::<LeafView<'_>>(bytes).ok();
        match scan(bytes) {
            Some(v) => {
                prop_assert_eq!(Some(&v), serde.as_ref(), "{}", String::from_utf8_lossy(bytes));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn base() -> Value {
        json!({
            "id": "01a25066-d4d5-70a1-b861-24b814078f45", "org": "acme", "seq": 5,
            "timestamp": "2026-08-09T12:08:27.454991Z", "received_at": "2026-12-07T12:07:25.834062Z",
            "action": "pod:delete", "result": "DONE", "status_code": 200,
            "actor": {"id": "u1", "name": "Fatima Wei", "email": "f@acme.com", "type": "user", "company": "x"},
            "resource": {"type": "pod", "id": "p-1", "name": "n", "parent": {"type": "project", "id": "p"}},
            "context": {"workspace": {"id": "ws", "name": "Staging"}, "project": "c", "cluster": "k", "namespace": "d"},
            "source_ip": "10.26.151.233", "user_agent": "Mozilla/5.0", "request_id": "req_1",
            "details": {"method": "POST", "n": [1, -2.5e3, true, false, null, {"a": "b\\n\"c"}], "t": "x"},
            "idempotency_key": "k"
        })
    }

    #[test]
    fn escapes_and_details_are_read_as_serde_reads_them() {
        let mut v = base();
        v["actor"]["name"] = json!("Zo\u{eb} \"Z\"\n");
        v["error"] = json!("bad\\\"");
        v["details"] = json!({"a": [1, {"b": "}"}], "c": null});
        let leaf = serde_json::to_vec(&v).unwrap();
        assert!(agrees(&leaf).unwrap());
        let view = scan(&leaf).unwrap();
        assert_eq!(view.actor.unwrap().name.unwrap(), "Zo\u{eb} \"Z\"\n");
        assert_eq!(view.details, Some(r#"{"a":[1,{"b":"}"}],"c":null}"#));
        v["details"] = Value::Null;
        assert_eq!(scan(&serde_json::to_vec(&v).unwrap()).unwrap().details, None);
    }

    #[test]
    fn it_gives_way_on_what_it_does_not_expect() {
        let leaf = serde_json::to_string(&base()).unwrap();
        for text in [
            String::new(),
            "{".into(),
            "[]".into(),
            r#"{"id":"e1"}"#.into(),
            leaf[..leaf.len() - 1].to_string(),
            format!("{leaf} x"),
            leaf.replace(r#""status_code":200"#, r#""status_code":"x""#),
            leaf.replace(r#""org":"acme""#, r#""org":1"#),
            leaf.replace(r#""org":"acme""#, r#""org":"a\q""#),
        ] {
            assert_eq!(scan(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn it_reads_what_the_writers_write() {
        let leaf = serde_json::to_vec(&base()).unwrap();
        assert!(agrees(&leaf).unwrap(), "the common form is read by the scanner");
        let pretty = serde_json::to_vec_pretty(&base()).unwrap();
        assert!(agrees(&pretty).unwrap());
    }

    fn values() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!("plain")),
            Just(json!("esc\"aped\\")),
            Just(json!("tab\there é ☃")),
            Just(json!(0)),
            Just(json!(65535)),
            Just(json!(65536)),
            Just(json!(-1)),
            Just(json!(1.5)),
            Just(json!(u64::MAX)),
            Just(json!(true)),
            Just(json!([])),
            Just(json!({})),
            Just(json!({"id": "i", "name": null, "email": "e", "type": "t", "x": [1, {"y": 2}]})),
            Just(json!({"workspace": {"id": "w"}, "project": "p", "cluster": null})),
            Just(json!("2024-03-01T19:30:00+09:00")),
            Just(json!("2024-03-01 10:30")),
            Just(json!("FAILED")),
            Just(json!("done")),
            Just(json!("{01a25066-d4d5-70a1-b861-24b814078f45}")),
            Just(json!("01a25066d4d570a1b86124b814078f45")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any field given any value (or removed) is read as serde reads it.
        #[test]
        fn fields_of_every_shape(
            changes in proptest::collection::vec((0usize..20, values(), any::<bool>()), 0..4),
            pretty in any::<bool>(),
        ) {
            let keys = ["id", "org", "seq", "timestamp", "received_at", "action", "result", "status_code",
                "actor", "resource", "context", "source_ip", "request_id", "idempotency_key", "details",
                "user_agent", "extra", "workspace", "email", "type"];
            let mut v = base();
            let obj = v.as_object_mut().unwrap();
            for (k, val, remove) in changes {
                if remove { obj.remove(keys[k]); } else { obj.insert(keys[k].into(), val); }
            }
            let bytes = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.unwrap();
            agrees(&bytes)?;
        }

        /// Bytes changed, inserted or cut anywhere are never read otherwise than serde reads them.
        #[test]
        fn damaged_bytes(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4)) {
            let mut bytes = serde_json::to_vec(&base()).unwrap();
            for (at, byte, how) in edits {
                let i = at.index(bytes.len());
                match how {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => { bytes.remove(i); }
                }
            }
            agrees(&bytes)?;
        }

        /// Repeated fields, escaped keys and trailing bytes give way, as serde refuses or
        /// reads them differently.
        #[test]
        fn odd_text(dup in 0usize..6, tail in "[ \\n}a,]{0,2}") {
            let fields = ["\"seq\":6", "\"org\":\"other\"", "\"\\u0069d\":\"x\"", "\"actor\":null", "\"status_code\":-0", "\"seq\":5.0"];
            let leaf = serde_json::to_string(&base()).unwrap();
            let bytes = format!("{{{},{}{tail}", fields[dup], &leaf[1..]);
            agrees(bytes.as_bytes())?;
        }
    }
}
