//! Trail's export formats, written from events one at a time so that memory stays flat
//! whatever the size: CSV (RFC 4180), JSON (one array), JSON Lines, XLSX (constant-memory
//! worksheets) and PDF reports. No I/O of its own beyond the writer or path it is given;
//! no HTTP, no SQL.

mod pdf;
mod xlsx;

use std::{borrow::Cow, collections::BTreeMap, io::Write};

use trail_core::{event::split_action, Event, LeafView, Timestamp};

pub use pdf::{pdf, Preset};
pub use xlsx::{XlsxChunk, XlsxWriter, XLSX_MAX_ROWS};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("xlsx: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("pdf: {0}")]
    Pdf(String),
    #[error("more than {0} rows do not fit in a worksheet: export them as CSV or JSON Lines")]
    TooManyRows(u32),
    #[error("stored event unreadable: {0}")]
    Event(#[from] serde_json::Error),
    #[error("stored event unreadable: {0}")]
    Stored(String),
}

impl ExportError {
    /// The I/O error behind this one, if a write failed (so a full disk can be told
    /// apart from a bad event).
    pub fn into_io(self) -> Result<std::io::Error, ExportError> {
        match self {
            ExportError::Io(e) | ExportError::Xlsx(rust_xlsxwriter::XlsxError::IoError(e)) => Ok(e),
            ExportError::Csv(e) if e.is_io_error() => match e.into_kind() {
                csv::ErrorKind::Io(e) => Ok(e),
                other => Err(ExportError::Stored(format!("{other:?}"))),
            },
            e => Err(e),
        }
    }
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Xlsx,
    Json,
    Jsonl,
    Pdf,
    Evidence,
}

impl Format {
    pub const ALL: [Format; 6] =
        [Format::Csv, Format::Xlsx, Format::Json, Format::Jsonl, Format::Pdf, Format::Evidence];

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s.to_ascii_lowercase())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Pdf => "pdf",
            Format::Evidence => "evidence",
        }
    }

    /// The file name extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Evidence => "evidence.jsonl",
            f => f.as_str(),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Json => "application/json",
            Format::Jsonl | Format::Evidence => "application/x-ndjson",
            Format::Pdf => "application/pdf",
        }
    }

    /// Formats written row by row into a stream (the others need a file or the whole
    /// set first).
    pub fn streams(self) -> bool {
        matches!(self, Format::Csv | Format::Json | Format::Jsonl | Format::Evidence)
    }

    /// `Audit_Log_YYYYMMDD.<ext>`, dated when the export was made (UTC).
    pub fn file_name(self, made: Timestamp) -> String {
        format!("Audit_Log_{}.{}", made.to_datetime().format("%Y%m%d"), self.ext())
    }
}

/// The columns of CSV and XLSX: the list's eight, then the detail.
pub const COLUMNS: [&str; 16] = [
    "Date/Time (UTC)",
    "Source IP",
    "Performer",
    "Company",
    "Email",
    "Type",
    "Operation",
    "Result",
    "Event ID",
    "Request ID",
    "Resource Type",
    "Resource ID",
    "Resource Name",
    "Status Code",
    "Error",
    "Details",
];

/// A cell a spreadsheet would run as a formula (`= + - @`, tab or CR first) gets a
/// leading apostrophe, which spreadsheets show as text (OWASP's CSV-injection advice).
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// CSV: RFC 4180 (CRLF line ends, quotes doubled), UTF-8, one header row.
pub struct CsvWriter<W: Write> {
    w: csv::Writer<W>,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(w: W) -> Result<CsvWriter<W>, ExportError> {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(w);
        w.write_record(COLUMNS)?;
        Ok(CsvWriter { w })
    }

    pub fn event(&mut self, e: &Event) -> Result<(), ExportError> {
        self.leaves(&[e.to_leaf()])
    }

    /// Rows for stored events, read from their bytes (see `csv_leaf_rows`).
    pub fn leaves(&mut self, leaves: &[Vec<u8>]) -> Result<(), ExportError> {
        leaf_rows(&mut self.w, leaves)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> Result<W, ExportError> {
        self.w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
    }

    pub fn flush(&mut self) -> Result<(), ExportError> {
        Ok(self.w.flush()?)
    }
}

/// A stored RFC 3339 UTC time (fractional digits only when present) with exactly six
/// fractional digits, as `Timestamp::to_rfc3339_micros` writes it.
fn micros(t: &str, out: &mut String) {
    out.clear();
    let Some(body) = t.strip_suffix('Z') else {
        out.push_str(t);
        return;
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    out.push_str(whole);
    out.push('.');
    out.push_str(&frac[..frac.len().min(6)]);
    for _ in frac.len()..6 {
        out.push('0');
    }
    out.push('Z');
}

fn get<'s>(v: Option<&'s Cow<'_, str>>) -> &'s str {
    v.map(|c| c.as_ref()).unwrap_or("")
}

/// The text cells of a stored event in `COLUMNS` order (the time as ISO 8601 UTC with
/// six fractional digits); `time` and `code` hold the first and the status code's cell.
fn leaf_cells<'r>(r: &'r LeafView<'_>, time: &'r mut String, code: &'r mut String) -> [&'r str; 16] {
    micros(&r.timestamp, time);
    code.clear();
    if let Some(c) = r.status_code {
        use std::fmt::Write;
        let _ = write!(code, "{c}");
    }
    let (category, operation) = split_action(&r.action);
    let actor = r.actor.as_ref();
    let res = r.resource.as_ref();
    // The tenant, as `Event::company`; the actor's claimed company is not a column.
    let company = &*r.org;
    [
        time,
        get(r.source_ip.as_ref()),
        get(actor.and_then(|a| a.name.as_ref())),
        company,
        get(actor.and_then(|a| a.email.as_ref())),
        category,
        operation,
        &r.result,
        &r.id,
        get(r.request_id.as_ref()),
        get(res.and_then(|x| x.kind.as_ref())),
        get(res.and_then(|x| x.id.as_ref())),
        get(res.and_then(|x| x.name.as_ref())),
        code,
        get(r.error.as_ref()),
        r.details.unwrap_or(""),
    ]
}

/// Reads a stored event's columns.
fn read_leaf(leaf: &[u8]) -> Result<LeafView<'_>, ExportError> {
    Ok(LeafView::read(leaf)?)
}

/// Appends the CSV rows of stored events (no header) to a csv writer.
fn leaf_rows<W: Write>(w: &mut csv::Writer<W>, leaves: &[Vec<u8>]) -> Result<(), ExportError> {
    let (mut time, mut code) = (String::with_capacity(32), String::new());
    for leaf in leaves {
        let r = read_leaf(leaf)?;
        let cells: SmallRow = leaf_cells(&r, &mut time, &mut code).iter().map(|c| neutralise(c)).collect();
        w.write_record(cells.0.iter().map(|c| c.as_bytes()))?;
    }
    Ok(())
}

/// The 16 cells of a row after `neutralise` (a fixed array: no vector per row).
struct SmallRow<'a>([Cow<'a, str>; 16]);

impl<'a> FromIterator<Cow<'a, str>> for SmallRow<'a> {
    fn from_iter<I: IntoIterator<Item = Cow<'a, str>>>(iter: I) -> Self {
        let mut it = iter.into_iter();
        SmallRow(std::array::from_fn(|_| it.next().unwrap_or_default()))
    }
}

/// The CSV lines of stored events, without a header (for streaming in chunks after
/// the first, which `CsvWriter::new` starts with the header).
pub fn csv_leaf_rows(leaves: &[Vec<u8>], out: Vec<u8>) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
    leaf_rows(&mut w, leaves)?;
    w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
}

/// JSON (`[ev,ev,...]`) or JSON Lines: the stored bytes of each event, verbatim.
pub struct JsonWriter {
    lines: bool,
    first: bool,
}

impl JsonWriter {
    pub fn new(lines: bool) -> JsonWriter {
        JsonWriter { lines, first: true }
    }

    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.lines {
            out.push(b'[');
        }
    }

    pub fn leaf(&mut self, out: &mut Vec<u8>, leaf: &[u8]) {
        if self.lines {
            out.extend_from_slice(leaf);
            out.push(b'\n');
        } else {
            if !self.first {
                out.push(b',');
            }
            out.push(b'\n');
            out.extend_from_slice(leaf);
        }
        self.first = false;
    }

    pub fn end(&mut self, out: &mut Vec<u8>) {
        if !self.lines {
            out.extend_from_slice(b"\n]\n");
        }
    }
}

/// What an export is about, for the summary sheet and the report.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// The organization(s) exported, e.g. `acme` or `all organizations`.
    pub org: String,
    /// The filter, in the query language (empty: everything).
    pub filter: String,
    /// The period the filter selects, as text.
    pub period: String,
    pub generated_at: Timestamp,
    pub generated_by: String,
}

/// Counts gathered while writing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub categories: BTreeMap<String, u64>,
    pub results: BTreeMap<String, u64>,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    /// `auth:login` events that failed.
    pub failed_logins: u64,
    /// Role, permission, membership and key changes.
    pub access_changes: u64,
    /// `audit:export` events.
    pub data_exports: u64,
}

impl Summary {
    pub fn add(&mut self, e: &Event) {
        self.count(e.category(), e.operation(), e.result.as_str(), e.timestamp);
    }

    /// Counts one event given its parts (`result` as `Outcome::as_str` writes it).
    pub fn count(&mut self, category: &str, operation: &str, result: &str, at: Timestamp) {
        self.rows += 1;
        match self.categories.get_mut(category) {
            Some(n) => *n += 1,
            None => _ = self.categories.insert(category.to_string(), 1),
        }
        match self.results.get_mut(result) {
            Some(n) => *n += 1,
            None => _ = self.results.insert(result.to_string(), 1),
        }
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        if failed_login(category, operation, result) {
            self.failed_logins += 1;
        }
        if access_change(category, operation) {
            self.access_changes += 1;
        }
        if category == "audit" && operation == "export" {
            self.data_exports += 1;
        }
    }
}

pub fn is_failed_login(e: &Event) -> bool {
    failed_login(e.category(), e.operation(), e.result.as_str())
}

fn failed_login(category: &str, operation: &str, result: &str) -> bool {
    category == "auth" && operation.starts_with("login") && result == trail_core::Outcome::Failed.as_str()
}

/// Changes of who may do what: roles, permissions, memberships, keys.
pub fn is_access_change(e: &Event) -> bool {
    access_change(e.category(), e.operation())
}

fn access_change(cat: &str, op: &str) -> bool {
    op.contains("role")
        || op.contains("permission")
        || op.contains("grant")
        || op.contains("revoke")
        || (matches!(cat, "member" | "api_key" | "ssh_key") && !op.starts_with("list") && !op.starts_with("view"))
        || (cat == "user" && (op.contains("create") || op.contains("delete") || op.contains("invite")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn event(v: serde_json::Value, seq: u64) -> Event {
        let new = trail_core::event::parse_event(v).unwrap();
        Event::from_new(new, uuid_for(seq), "acme", seq, Timestamp(1_710_000_000_000_000 + seq as i64))
    }

    /// The CSV lines of parsed events: the reference for `csv_leaf_rows`.
    fn csv_rows<'a>(events: impl IntoIterator<Item = &'a Event>, out: Vec<u8>) -> Result<Vec<u8>, ExportError> {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
        for e in events {
            let c = cells(e);
            w.write_record(c.iter().map(|x| neutralise(x).into_owned()))?;
        }
        w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
    }

    /// The cells of a parsed event, built independently of the scanner: the reference
    /// the rows from stored bytes are compared with.
    fn cells(e: &Event) -> [String; 16] {
        let actor = e.actor.as_ref();
        let res = e.resource.as_ref();
        let s = |v: Option<&String>| v.cloned().unwrap_or_default();
        [
            e.timestamp.to_rfc3339_micros(),
            e.source_ip.clone().unwrap_or_default(),
            s(actor.and_then(|a| a.name.as_ref())),
            e.company().to_string(),
            s(actor.and_then(|a| a.email.as_ref())),
            e.category().to_string(),
            e.operation().to_string(),
            e.result.as_str().to_string(),
            e.id.to_string(),
            e.request_id.clone().unwrap_or_default(),
            s(res.and_then(|r| r.kind.as_ref())),
            s(res.and_then(|r| r.id.as_ref())),
            s(res.and_then(|r| r.name.as_ref())),
            e.status_code.map(|c| c.to_string()).unwrap_or_default(),
            e.error.clone().unwrap_or_default(),
            e.details.as_ref().map(|d| d.to_string()).unwrap_or_default(),
        ]
    }

    fn uuid_for(seq: u64) -> uuid::Uuid {
        uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + seq as u128)
    }

    #[test]
    fn formats_and_names() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse("XLSX"), Some(Format::Xlsx));
        assert_eq!(Format::parse("doc"), None);
        let t = Timestamp::parse_rfc3339("2024-03-09T23:59:59Z").unwrap();
        assert_eq!(Format::Csv.file_name(t), "Audit_Log_20240309.csv");
        assert_eq!(Format::Evidence.file_name(t), "Audit_Log_20240309.evidence.jsonl");
    }

    #[test]
    fn rows_from_stored_bytes_equal_rows_from_events() {
        let events = vec![
            event(json!({"action": "auth:login"}), 0),
            event(
                json!({"action": "user:update", "timestamp": "2024-03-01T10:00:00.5+02:00", "status_code": 403,
                       "actor": {"name": "Zoë \"Z\" Ünal", "email": "=cmd@x", "company": "Globex"},
                       "resource": {"type": "user", "id": "u\n1", "name": "-2+3"}, "source_ip": "10.0.0.1",
                       "request_id": "r-1", "error": "denied,\r\nnope", "before": {"a": 1}, "after": {"a": 2},
                       "details": {"note": "tab\there", "n": 1.5, "big": 12345678901234567u64, "u": "名前", "z": null}}),
                1,
            ),
            event(json!({"action": "Service.Deploy", "timestamp": "2024-03-01T10:00:00.123456Z"}), 2),
            event(json!({"action": "service:deploy", "timestamp": "2024-03-01T10:00:00.120Z", "details": {}}), 3),
        ];
        let leaves: Vec<Vec<u8>> = events.iter().map(|e| e.to_leaf()).collect();
        let from_events = String::from_utf8(csv_rows(&events, Vec::new()).unwrap()).unwrap();
        let from_leaves = String::from_utf8(csv_leaf_rows(&leaves, Vec::new()).unwrap()).unwrap();
        assert_eq!(from_leaves, from_events);
    }

    #[test]
    fn csv_is_rfc4180_and_neutralises_formulas() {
        let e = event(
            json!({"action": "user:update", "actor": {"name": "=HYPERLINK(\"x\")", "email": "a@b.c"},
                   "resource": {"name": "-2+3", "type": "user", "id": "u1"}, "error": "line1\nline2, \"quoted\"",
                   "details": {"k": "@SUM(A1)"}, "status_code": 403}),
            1,
        );
        let mut w = CsvWriter::new(Vec::new()).unwrap();
        w.event(&e).unwrap();
        let out = w.finish().unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("Date/Time (UTC),Source IP,Performer,"));
        assert!(text.contains("\r\n"));
        let mut r = csv::Reader::from_reader(&out[..]);
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[2], "'=HYPERLINK(\"x\")");
        assert_eq!(&row[12], "'-2+3");
        assert_eq!(&row[13], "403");
        assert_eq!(&row[14], "line1\nline2, \"quoted\"");
        assert_eq!(&row[15], "{\"k\":\"@SUM(A1)\"}");
        assert_eq!(&row[7], "FAILED");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("plain"), "plain");
    }

    #[test]
    fn json_and_lines_keep_the_stored_bytes() {
        let leaves: Vec<Vec<u8>> = (0..3).map(|i| event(json!({"action": "a:b"}), i).to_leaf()).collect();
        for lines in [false, true] {
            let mut w = JsonWriter::new(lines);
            let mut out = Vec::new();
            w.start(&mut out);
            for l in &leaves {
                w.leaf(&mut out, l);
            }
            w.end(&mut out);
            let got: Vec<serde_json::Value> = if lines {
                out.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice(l).unwrap())
                    .collect()
            } else {
                serde_json::from_slice(&out).unwrap()
            };
            assert_eq!(got.len(), 3);
            assert_eq!(serde_json::to_vec(&got[1]).unwrap(), leaves[1]);
        }
    }
}
