//! The PDF report: title, organization, filter, period, generated-at, totals per
//! category and result, highlights (failed logins, access changes, data exports), then
//! the event table with page numbers. DejaVu Sans Condensed is embedded, so any text
//! renders. A4 landscape; rows that are failed logins or access changes are tinted.

use krilla::{
    color::rgb,
    geom::{PathBuilder, Point, Rect},
    num::NormalizedF32,
    page::PageSettings,
    paint::Fill,
    surface::Surface,
    text::{Font, TextDirection},
    Document,
};
use trail_core::Event;

use crate::{is_access_change, is_failed_login, ExportError, Meta, Summary};

static REGULAR: &[u8] = include_bytes!("../assets/DejaVuSansCondensed.ttf");
static BOLD: &[u8] = include_bytes!("../assets/DejaVuSansCondensed-Bold.ttf");

/// What the report is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    #[default]
    Standard,
    /// SOC 2 / GDPR style: access changes, security events and data exports.
    Compliance,
}

impl Preset {
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "standard" | "" => Some(Preset::Standard),
            "compliance" => Some(Preset::Compliance),
            _ => None,
        }
    }

    /// The categories the compliance preset selects when the filter names none.
    pub const COMPLIANCE_CATEGORIES: [&'static str; 9] =
        ["auth", "user", "member", "organization", "api_key", "ssh_key", "secret", "audit", "vpn"];
}

const W: f32 = 842.0;
const H: f32 = 595.0;
const MARGIN: f32 = 30.0;
const ROW: f32 = 11.0;
const SIZE: f32 = 7.5;
/// The table's columns: title and width in points.
const TABLE: [(&str, f32); 8] = [
    ("Date/Time (UTC)", 92.0),
    ("Source IP", 78.0),
    ("Performer", 110.0),
    ("Company", 74.0),
    ("Email", 150.0),
    ("Type", 70.0),
    ("Operation", 130.0),
    ("Result", 78.0),
];

struct Fonts {
    regular: Font,
    bold: Font,
}

fn fill(surface: &mut Surface, r: u8, g: u8, b: u8) {
    surface.set_fill(Some(Fill {
        paint: rgb::Color::new(r, g, b).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }));
}

fn rect(surface: &mut Surface, x: f32, y: f32, w: f32, h: f32, color: (u8, u8, u8)) {
    let mut pb = PathBuilder::new();
    if let Some(r) = Rect::from_xywh(x, y, w, h) {
        pb.push_rect(r);
    }
    if let Some(path) = pb.finish() {
        fill(surface, color.0, color.1, color.2);
        surface.draw_path(&path);
    }
}

fn text(surface: &mut Surface, font: &Font, size: f32, x: f32, y: f32, s: &str, color: (u8, u8, u8)) {
    if s.is_empty() {
        return;
    }
    fill(surface, color.0, color.1, color.2);
    surface.draw_text(Point::from_xy(x, y), font.clone(), size, s, false, TextDirection::Auto);
}

/// Cuts `s` to what fits `width` points at `size` (DejaVu Sans Condensed averages about
/// half an em per character).
fn fit(s: &str, width: f32, size: f32) -> String {
    let max = ((width - 4.0) / (size * 0.52)).max(1.0) as usize;
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn row_cells(e: &Event) -> [String; 8] {
    let actor = e.actor.as_ref();
    [
        e.timestamp.to_datetime().format("%Y-%m-%d %H:%M:%S").to_string(),
        e.source_ip.clone().unwrap_or_default(),
        actor.and_then(|a| a.name.clone()).unwrap_or_default(),
        e.company().to_string(),
        actor.and_then(|a| a.email.clone()).unwrap_or_default(),
        e.category().to_string(),
        e.operation().to_string(),
        match e.status_code {
            Some(c) => format!("{} ({c})", e.result.as_str()),
            None => e.result.as_str().to_string(),
        },
    ]
}

/// Writes the report of `events` (in the order given).
pub fn pdf(events: &[Event], meta: &Meta, preset: Preset) -> Result<Vec<u8>, ExportError> {
    let fonts = Fonts {
        regular: Font::new(REGULAR.into(), 0).ok_or_else(|| ExportError::Pdf("font unreadable".into()))?,
        bold: Font::new(BOLD.into(), 0).ok_or_else(|| ExportError::Pdf("font unreadable".into()))?,
    };
    let mut summary = Summary::default();
    for e in events {
        summary.add(e);
    }
    // The first page holds the summary block; the table starts below it.
    let lines = summary.categories.len().max(summary.results.len() + 4) as f32;
    let first_table_y = (MARGIN + 150.0 + lines * 10.0).min(H - 120.0);
    let per_page = |top: f32| ((H - MARGIN - 20.0 - top - ROW) / ROW).floor().max(1.0) as usize;
    let first_rows = per_page(first_table_y);
    let later_rows = per_page(MARGIN + 20.0);
    let pages = 1 + events.len().saturating_sub(first_rows).div_ceil(later_rows);

    let mut doc = Document::new();
    let mut next = 0usize;
    for page_no in 1..=pages {
        let settings = PageSettings::from_wh(W, H).ok_or_else(|| ExportError::Pdf("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        let mut s = page.surface();
        let top =
            if page_no == 1 { header(&mut s, &fonts, meta, &summary, preset, first_table_y) } else { MARGIN + 20.0 };
        if page_no > 1 {
            let title = format!("{} — {}", title(preset), meta.org);
            text(&mut s, &fonts.regular, 8.0, MARGIN, MARGIN + 4.0, &title, (90, 90, 90));
        }
        let rows = if page_no == 1 { first_rows } else { later_rows };
        // Column titles.
        rect(&mut s, MARGIN, top, W - 2.0 * MARGIN, ROW + 2.0, (31, 56, 100));
        let mut x = MARGIN;
        for (t, w) in TABLE {
            text(&mut s, &fonts.bold, SIZE, x + 2.0, top + ROW - 1.5, t, (255, 255, 255));
            x += w;
        }
        let mut y = top + ROW + 2.0;
        for e in events.iter().skip(next).take(rows) {
            let tint = if is_failed_login(e) {
                Some((253, 226, 226))
            } else if is_access_change(e) {
                Some((255, 243, 205))
            } else {
                None
            };
            if let Some(c) = tint {
                rect(&mut s, MARGIN, y, W - 2.0 * MARGIN, ROW, c);
            }
            let mut x = MARGIN;
            for ((_, w), v) in TABLE.iter().zip(row_cells(e)) {
                text(&mut s, &fonts.regular, SIZE, x + 2.0, y + ROW - 2.5, &fit(&v, *w, SIZE), (20, 20, 20));
                x += w;
            }
            y += ROW;
        }
        next += rows;
        if events.is_empty() {
            text(
                &mut s,
                &fonts.regular,
                9.0,
                MARGIN,
                top + 2.0 * ROW + 4.0,
                "No events match this filter.",
                (20, 20, 20),
            );
        }
        let footer = format!("Page {page_no} of {pages}");
        text(&mut s, &fonts.regular, 8.0, W - MARGIN - 60.0, H - MARGIN + 8.0, &footer, (90, 90, 90));
        let made = format!("Trail audit log · generated {}", meta.generated_at.to_rfc3339());
        text(&mut s, &fonts.regular, 8.0, MARGIN, H - MARGIN + 8.0, &made, (90, 90, 90));
        s.finish();
        page.finish();
    }
    doc.finish().map_err(|e| ExportError::Pdf(format!("{e:?}")))
}

fn title(preset: Preset) -> &'static str {
    match preset {
        Preset::Standard => "Audit Log Report",
        Preset::Compliance => "Compliance Report (SOC 2 / GDPR): access changes, security events, data exports",
    }
}

/// Draws the first page's block; returns where the table starts.
fn header(s: &mut Surface, f: &Fonts, meta: &Meta, sum: &Summary, preset: Preset, table_y: f32) -> f32 {
    let dark = (20, 20, 20);
    text(s, &f.bold, 16.0, MARGIN, MARGIN + 14.0, title(preset), (31, 56, 100));
    let period = match (sum.first, sum.last) {
        (Some(a), Some(b)) => format!("{} to {}", a.to_rfc3339(), b.to_rfc3339()),
        _ => "no events".into(),
    };
    let filter = if meta.filter.is_empty() { "(none: every event)".to_string() } else { meta.filter.clone() };
    let info = [
        ("Organization", meta.org.clone()),
        ("Filter", filter),
        ("Period requested", meta.period.clone()),
        ("Events from", period),
        ("Generated at (UTC)", meta.generated_at.to_rfc3339()),
        ("Generated by", meta.generated_by.clone()),
    ];
    let mut y = MARGIN + 34.0;
    for (k, v) in info {
        text(s, &f.bold, 9.0, MARGIN, y, k, dark);
        text(s, &f.regular, 9.0, MARGIN + 100.0, y, &fit(&v, 600.0, 9.0), dark);
        y += 12.0;
    }
    y += 8.0;
    let col2 = MARGIN + 250.0;
    let col3 = MARGIN + 450.0;
    text(s, &f.bold, 10.0, MARGIN, y, &format!("Events: {}", sum.rows), dark);
    text(s, &f.bold, 10.0, col2, y, "By result", dark);
    text(s, &f.bold, 10.0, col3, y, "Highlights", dark);
    y += 13.0;
    let mut yc = y;
    text(s, &f.bold, 8.0, MARGIN, yc, "By category", dark);
    yc += 10.0;
    for (k, n) in &sum.categories {
        if yc > table_y - 12.0 {
            text(s, &f.regular, 8.0, MARGIN, yc, "…", dark);
            break;
        }
        text(s, &f.regular, 8.0, MARGIN, yc, k, dark);
        text(s, &f.regular, 8.0, MARGIN + 120.0, yc, &n.to_string(), dark);
        yc += 10.0;
    }
    let mut yr = y;
    for (k, n) in &sum.results {
        text(s, &f.regular, 8.0, col2, yr, k, dark);
        text(s, &f.regular, 8.0, col2 + 80.0, yr, &n.to_string(), dark);
        yr += 10.0;
    }
    let highlights = [
        ("Failed logins", sum.failed_logins, (253, 226, 226)),
        ("Access / permission changes", sum.access_changes, (255, 243, 205)),
        ("Data exports", sum.data_exports, (255, 255, 255)),
    ];
    let mut yh = y;
    for (k, n, c) in highlights {
        rect(s, col3 - 2.0, yh - 8.0, 200.0, 10.0, c);
        text(s, &f.regular, 8.0, col3, yh, k, dark);
        text(s, &f.bold, 8.0, col3 + 150.0, yh, &n.to_string(), dark);
        yh += 11.0;
    }
    if preset == Preset::Compliance {
        let note = "Tinted rows: failed logins (red), access and permission changes (amber).";
        text(s, &f.regular, 8.0, col3, yh + 4.0, note, (90, 90, 90));
    }
    table_y
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::event;

    #[test]
    fn a_report_renders_with_unicode_and_pages() {
        let evs: Vec<Event> = (0..120)
            .map(|i| event(json!({"action": "auth:login", "result": "FAILED", "actor": {"name": "Zoë Ünal 李"}}), i))
            .collect();
        let bytes = pdf(&evs, &Meta { org: "acme".into(), ..Meta::default() }, Preset::Compliance).unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(bytes.len() > 10_000);
        let empty = pdf(&[], &Meta::default(), Preset::Standard).unwrap();
        assert!(empty.starts_with(b"%PDF-"));
    }
}
