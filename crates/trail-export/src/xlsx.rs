//! XLSX: a constant-memory "Audit Log" sheet (styled, frozen header, autofilter, real
//! date-time cells, set widths) written row by row, then a "Summary" sheet with the
//! filter, the period, when it was made and counts per category and result.

use std::path::Path;

use rust_xlsxwriter::{Color, Format, FormatAlign, Workbook};
use trail_core::{Event, Timestamp};

use crate::{leaf_cells, read_leaf, ExportError, Meta, Summary, COLUMNS};

/// Widths (in characters) of the `COLUMNS`.
const WIDTHS: [f64; 16] =
    [20.0, 16.0, 20.0, 14.0, 28.0, 14.0, 18.0, 11.0, 38.0, 18.0, 16.0, 20.0, 24.0, 8.0, 30.0, 50.0];

/// Rows a worksheet holds below its header (Excel's limit is 1,048,576 rows).
pub const XLSX_MAX_ROWS: u32 = 1_048_575;

/// Excel's serial date of the Unix epoch (1970-01-01 in the 1900 date system).
const EPOCH_SERIAL: f64 = 25_569.0;

/// Deflate level of the workbook's zip (1 fastest … 9; the crate's default is 6).
const ZIP_LEVEL: u8 = 1;

/// Stored events' spreadsheet cells, decoded from their bytes: all the cells' text in
/// one buffer and, per row, where each cell lies in it. Decoding costs about a tenth
/// of writing the cells, so a job decodes the next chunk on one thread while the sheet
/// is written on another.
pub struct XlsxChunk {
    text: String,
    rows: Vec<DecodedRow>,
}

struct DecodedRow {
    at: Timestamp,
    status: Option<u16>,
    /// Start and end in `text` of each of the `COLUMNS`' cells (empty for the time and
    /// the status code, which are numbers).
    cells: [(u32, u32); 16],
}

impl XlsxChunk {
    pub fn decode(leaves: &[Vec<u8>]) -> Result<XlsxChunk, ExportError> {
        let (mut time, mut code) = (String::with_capacity(32), String::new());
        let mut text = String::with_capacity(leaves.iter().map(Vec::len).sum::<usize>() / 2);
        let mut rows = Vec::with_capacity(leaves.len());
        for leaf in leaves {
            let r = read_leaf(leaf)?;
            let at = Timestamp::parse_rfc3339(&r.timestamp).map_err(ExportError::Stored)?;
            let c = leaf_cells(&r, &mut time, &mut code);
            let mut cells = [(0u32, 0u32); 16];
            for (i, (cell, v)) in cells.iter_mut().zip(c).enumerate() {
                // The time and the status code are written as numbers: no text for them.
                if matches!(i, 0 | 13) {
                    continue;
                }
                let start = text.len() as u32;
                text.push_str(v);
                *cell = (start, text.len() as u32);
            }
            rows.push(DecodedRow { at, status: r.status_code, cells });
        }
        Ok(XlsxChunk { text, rows })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn cell(&self, span: (u32, u32)) -> &str {
        &self.text[span.0 as usize..span.1 as usize]
    }
}

pub struct XlsxWriter {
    book: Workbook,
    row: u32,
    summary: Summary,
}

impl XlsxWriter {
    /// Starts a workbook whose row data is buffered in temporary files under `tmp`.
    pub fn new(tmp: &Path) -> Result<XlsxWriter, ExportError> {
        let mut book = Workbook::new();
        book.set_tempdir(tmp)?;
        // Half of a large workbook's time was the zip of the sheet's XML: level 1 zips a
        // million rows in about 4 s instead of 8-16 s at level 3, for a file about 40 %
        // larger (208 MB instead of 148 MB).
        book.set_zip_compression_level(ZIP_LEVEL);
        let header = Format::new()
            .set_bold()
            .set_font_color(Color::White)
            .set_background_color(Color::RGB(0x1F_3864))
            .set_align(FormatAlign::Center);
        let sheet = book.add_worksheet_with_constant_memory()?;
        sheet.set_name("Audit Log")?;
        let date = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        for (i, w) in WIDTHS.iter().enumerate() {
            sheet.set_column_width(i as u16, *w)?;
        }
        // One format for the whole column: cheaper than a format on each cell.
        sheet.set_column_format(0, &date)?;
        for (i, c) in COLUMNS.iter().enumerate() {
            sheet.write_string_with_format(0, i as u16, *c, &header)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        Ok(XlsxWriter { book, row: 0, summary: Summary::default() })
    }

    pub fn event(&mut self, e: &Event) -> Result<(), ExportError> {
        self.leaves(&[e.to_leaf()])
    }

    /// Rows for stored events, read from their bytes as CSV's are.
    pub fn leaves(&mut self, leaves: &[Vec<u8>]) -> Result<(), ExportError> {
        self.chunk(&XlsxChunk::decode(leaves)?)
    }

    /// Rows for a decoded chunk of stored events.
    pub fn chunk(&mut self, chunk: &XlsxChunk) -> Result<(), ExportError> {
        let sheet = self.book.worksheet_from_index(0)?;
        for row in &chunk.rows {
            if self.row >= XLSX_MAX_ROWS {
                return Err(ExportError::TooManyRows(XLSX_MAX_ROWS));
            }
            self.row += 1;
            let [category, operation, result] = [5, 6, 7].map(|i| chunk.cell(row.cells[i]));
            self.summary.count(category, operation, result, row.at);
            // The column's format makes the serial a date-time.
            sheet.write_number(self.row, 0, EPOCH_SERIAL + row.at.0 as f64 / 86_400_000_000.0)?;
            if let Some(n) = row.status {
                sheet.write_number(self.row, 13, n)?;
            }
            for (i, span) in row.cells.iter().enumerate() {
                if span.1 > span.0 {
                    // Cells are written as strings, never formulas.
                    sheet.write_string(self.row, i as u16, chunk.cell(*span))?;
                }
            }
        }
        Ok(())
    }

    /// Adds the summary sheet and writes the file.
    pub fn finish(mut self, meta: &Meta, path: &Path) -> Result<Summary, ExportError> {
        let rows = self.row;
        let sheet = self.book.worksheet_from_index(0)?;
        sheet.autofilter(0, 0, rows.max(1), (COLUMNS.len() - 1) as u16)?;
        let bold = Format::new().set_bold();
        let s = self.book.add_worksheet();
        s.set_name("Summary")?;
        s.set_column_width(0, 24)?;
        s.set_column_width(1, 60)?;
        let summary = &self.summary;
        let period = match (summary.first, summary.last) {
            (Some(a), Some(b)) => format!("{} – {}", a.to_rfc3339(), b.to_rfc3339()),
            _ => "no events".into(),
        };
        let info = [
            ("Organization", meta.org.clone()),
            ("Filter", if meta.filter.is_empty() { "(none: every event)".into() } else { meta.filter.clone() }),
            ("Period requested", meta.period.clone()),
            ("Events from – to", period),
            ("Generated at (UTC)", meta.generated_at.to_rfc3339()),
            ("Generated by", meta.generated_by.clone()),
            ("Events", summary.rows.to_string()),
        ];
        let mut r = 0u32;
        for (k, v) in info {
            s.write_string_with_format(r, 0, k, &bold)?;
            s.write_string(r, 1, v)?;
            r += 1;
        }
        for (title, counts) in [("Category", &summary.categories), ("Result", &summary.results)] {
            r += 1;
            s.write_string_with_format(r, 0, title, &bold)?;
            s.write_string_with_format(r, 1, "Events", &bold)?;
            r += 1;
            for (k, n) in counts {
                s.write_string(r, 0, k)?;
                s.write_number(r, 1, *n as f64)?;
                r += 1;
            }
        }
        self.book.save(path)?;
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use calamine::{open_workbook, Data, Reader, Xlsx};
    use serde_json::json;

    use super::*;
    use crate::tests::event;

    #[test]
    fn sheets_cells_and_summary_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = XlsxWriter::new(dir.path()).unwrap();
        let evs: Vec<Event> = (0..50)
            .map(|i| {
                let action = if i % 5 == 0 { "auth:login" } else { "service:deploy" };
                event(
                    json!({"action": action, "result": if i % 2 == 0 { "FAILED" } else { "DONE" },
                    "actor": {"email": format!("u{i}@acme.com"), "name": "=cmd()"}, "status_code": 200}),
                    i,
                )
            })
            .collect();
        for e in &evs {
            w.event(e).unwrap();
        }
        let path = dir.path().join("out.xlsx");
        let meta = Meta { org: "acme".into(), filter: "category:auth".into(), ..Meta::default() };
        let summary = w.finish(&meta, &path).unwrap();
        assert_eq!(summary.rows, 50);
        let mut book: Xlsx<_> = open_workbook(&path).unwrap();
        assert_eq!(book.sheet_names(), vec!["Audit Log".to_string(), "Summary".to_string()]);
        let log = book.worksheet_range("Audit Log").unwrap();
        assert_eq!(log.height(), 51);
        assert_eq!(log.get((0, 0)), Some(&Data::String("Date/Time (UTC)".into())));
        // A real date-time cell.
        assert!(matches!(log.get((1, 0)), Some(Data::DateTime(_))), "{:?}", log.get((1, 0)));
        assert_eq!(log.get((1, 2)), Some(&Data::String("=cmd()".into())), "a string, not a formula");
        assert_eq!(log.get((3, 4)), Some(&Data::String("u2@acme.com".into())));
        assert_eq!(log.get((1, 13)), Some(&Data::Float(200.0)));
        let sum = book.worksheet_range("Summary").unwrap();
        let text: Vec<String> =
            sum.rows().map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("|")).collect();
        assert!(text.contains(&"Filter|category:auth".to_string()), "{text:?}");
        assert!(text.contains(&"auth|10".to_string()) && text.contains(&"FAILED|25".to_string()), "{text:?}");
    }
}
