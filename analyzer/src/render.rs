//! Reports as text: an aligned table, JSON, CSV or a small HTML page.
//!
//! A [`Report`] comes from [`crate::run`] (or from a collector through
//! [`crate::remote`]). JSON is the report's serde form, the documented contract for
//! scripts and the dashboard. The other formats go through [`Table`], which each audit
//! builds from its report (`FooReport::table()`): the same rows and columns, shown for
//! people (percentages, `1m 05s`) in the table and HTML, and as raw numbers (fractions,
//! milliseconds) in CSV, whose header uses the JSON field names.
//!
//! Texts in a report come from visitors' browsers (selectors, link texts, paths, error
//! messages), so the text outputs are made safe for where they end up:
//! - the table, for a terminal: control characters, line and paragraph separators and
//!   bidi controls are shown as visible escapes (`\u{1b}`, `\n`, `\u{202e}`), see
//!   [`terminal_safe`];
//! - CSV, for a spreadsheet: a text cell that a spreadsheet would evaluate (starting
//!   with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`, see
//!   [`csv_text`]; number cells stay numbers;
//! - HTML is escaped (here, and by minijinja in [`crate::report`]); JSON is the exact
//!   data (serde escapes control characters).

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::table::{Cell, Table, human_duration};
use crate::{Error, Report, SavedFunnel};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned text with a header line (the default).
    #[default]
    Table,
    /// The report's JSON, pretty-printed.
    Json,
    /// One header row (JSON field names), one row per table row; raw numbers.
    Csv,
    /// A self-contained HTML page with the table.
    Html,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Table, Format::Json, Format::Csv, Format::Html];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown format `{s}`; use table, json, csv or html"))
    }
}

/// Renders `report` in `format`; the text ends with a newline.
pub fn render(report: &Report, format: Format) -> Result<String, Error> {
    if let Report::Report(full) = report {
        return Ok(match format {
            Format::Json => serde_json::to_string_pretty(report)? + "\n",
            Format::Html => crate::report::html(full)?,
            Format::Table | Format::Csv => full
                .sections
                .iter()
                .map(|s| render(s, format))
                .collect::<Result<Vec<_>, _>>()?
                .join("\n"),
        });
    }
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
        Format::Table => text(&report.table()),
        Format::Csv => csv(&report.table()),
        Format::Html => html(&report.table()),
    })
}

/// Renders saved funnels (`analyzer funnels …`): JSON `{"funnels": [...]}` (the
/// collector's `/api/funnels` answer), or a table of name, site, window and steps.
pub fn render_funnels(funnels: &[SavedFunnel], format: Format) -> Result<String, Error> {
    if format == Format::Json {
        return Ok(
            serde_json::to_string_pretty(&serde_json::json!({ "funnels": funnels }))? + "\n",
        );
    }
    let table = Table {
        audit: "funnels",
        facts: vec![format!("{} saved", funnels.len())],
        columns: vec![
            ("name", "name"),
            ("site", "site"),
            ("window", "window"),
            ("steps", "steps"),
        ],
        rows: funnels
            .iter()
            .map(|f| {
                vec![
                    Cell::Text(f.name.clone()),
                    Cell::Text(f.site.clone()),
                    Cell::Text(f.window.clone()),
                    Cell::Text(f.steps.join(" → ")),
                ]
            })
            .collect(),
    };
    Ok(match format {
        Format::Csv => csv(&table),
        Format::Html => html(&table),
        Format::Table | Format::Json => text(&table),
    })
}

fn header_line(table: &Table) -> String {
    std::iter::once(table.audit.to_owned())
        .chain(table.facts.iter().cloned())
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Aligned columns: text left, numbers right.
fn text(table: &Table) -> String {
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| row.iter().map(|c| terminal_safe(&c.human())).collect())
        .collect();
    let labels: Vec<String> = table
        .columns
        .iter()
        .map(|(_, label)| terminal_safe(label))
        .collect();
    let widths: Vec<usize> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            cells
                .iter()
                .filter_map(|row| row.get(i))
                .map(|c| c.chars().count())
                .chain([label.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..table.columns.len())
        .map(|i| {
            table
                .rows
                .first()
                .and_then(|r| r.get(i))
                .is_some_and(Cell::is_numeric)
        })
        .collect();
    let line = |values: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::new();
        for (i, value) in values.enumerate() {
            let pad = widths[i].saturating_sub(value.chars().count());
            if i > 0 {
                out.push_str("  ");
            }
            if numeric[i] {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(value);
            } else {
                out.push_str(value);
                if i + 1 < widths.len() {
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = terminal_safe(&header_line(table)) + "\n\n";
    out += &line(&mut labels.iter().map(String::as_str));
    for row in &cells {
        out += &line(&mut row.iter().map(String::as_str));
    }
    if table.rows.is_empty() {
        out += "(no data in scope)\n";
    }
    out
}

/// `text` with everything a terminal would act on instead of show made visible: C0
/// and C1 control characters and DEL (`\n`, `\r`, `\t`, else `\u{1b}`, `\u{9b}`, …:
/// no escape sequence, bell or line break gets through), the line and paragraph
/// separators U+2028/U+2029, and the bidi controls (U+061C, U+200E/U+200F,
/// U+202A–U+202E, U+2066–U+2069) that could reorder what is shown. Other text,
/// including non-Latin scripts and emoji, is unchanged.
pub fn terminal_safe(text: &str) -> String {
    if !text.chars().any(is_terminal_unsafe) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_terminal_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether [`terminal_safe`] escapes `c`.
fn is_terminal_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' // line and paragraph separator
                | '\u{061c}' // arabic letter mark
                | '\u{200e}' | '\u{200f}' // left-to-right and right-to-left mark
                | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
                | '\u{2066}'..='\u{2069}' // bidi isolates
        )
}

/// A text cell for CSV: one that a spreadsheet would take for a formula (it starts
/// with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`, which
/// spreadsheets show as text (OWASP's advice against CSV injection). Only for text:
/// number cells ([`Cell::raw`] of the other variants) are written as they are.
pub fn csv_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// A cell as CSV text: [`csv_text`] for text, the raw number otherwise.
fn csv_cell(cell: &Cell) -> String {
    match cell {
        Cell::Text(t) => csv_text(t),
        other => other.raw(),
    }
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// RFC 4180 CSV, `\n` line ends; text cells made safe for spreadsheets ([`csv_text`]).
fn csv(table: &Table) -> String {
    let mut out = String::new();
    let header: Vec<String> = table
        .columns
        .iter()
        .map(|(key, _)| csv_field(key))
        .collect();
    out += &(header.join(",") + "\n");
    for row in &table.rows {
        let fields: Vec<String> = row.iter().map(|c| csv_field(&csv_cell(c))).collect();
        out += &(fields.join(",") + "\n");
    }
    out
}

fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A minimal self-contained page (no scripts, no external files).
fn html(table: &Table) -> String {
    let title = escape_html(&header_line(table));
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>clicktrail {audit}</title>\n<style>\n\
         body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }}\n\
         table {{ border-collapse: collapse; }}\n\
         th, td {{ padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }}\n\
         td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
         </style>\n</head>\n<body>\n<h1>clicktrail {audit}</h1>\n<p>{title}</p>\n<table>\n<thead><tr>",
        audit = escape_html(table.audit),
    );
    for (_, label) in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape_html(label));
    }
    out += "</tr></thead>\n<tbody>\n";
    for row in &table.rows {
        out += "<tr>";
        for cell in row {
            let class = if cell.is_numeric() {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape_html(&cell.human()));
        }
        out += "</tr>\n";
    }
    if table.rows.is_empty() {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"{}\">no data in scope</td></tr>",
            table.columns.len()
        );
    }
    out += "</tbody>\n</table>\n</body>\n</html>\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FunnelReport, FunnelStep, NextScreen, ResolvedScope, ScreenStats, ScreensReport};

    fn funnel() -> Report {
        Report::Funnel(FunnelReport {
            scope: ResolvedScope {
                site: Some("shop".into()),
                since_ms: Some(1_795_478_400_000),
                until_ms: None,
                include_bots: false,
            },
            sessions: 10,
            name: None,
            window_ms: 1_800_000,
            steps: vec![
                FunnelStep {
                    step: "page:/cart".into(),
                    entered: 8,
                    conversion_from_previous: None,
                    conversion_from_first: Some(1.0),
                    dropped: 0,
                    median_ms_from_previous: None,
                    matches_any_event: true,
                },
                FunnelStep {
                    step: "click:a, b".into(),
                    entered: 5,
                    conversion_from_previous: Some(0.625),
                    conversion_from_first: Some(0.625),
                    dropped: 3,
                    median_ms_from_previous: Some(65_000),
                    matches_any_event: true,
                },
            ],
        })
    }

    #[test]
    fn table_has_a_header_line_and_aligned_columns() {
        let out = render(&funnel(), Format::Table).unwrap();
        let expected = "\
funnel · site shop · since 2026-11-24T00:00:00Z · 10 sessions · window 30m

step        entered  from previous  from first  dropped  median time from previous
page:/cart        8              –      100.0%        0                          –
click:a, b        5          62.5%       62.5%        3                     1m 05s
";
        assert_eq!(out, expected);
    }

    #[test]
    fn csv_uses_json_names_and_raw_numbers() {
        let out = render(&funnel(), Format::Csv).unwrap();
        let expected = "\
step,entered,conversion_from_previous,conversion_from_first,dropped,median_ms_from_previous
page:/cart,8,,1,0,
\"click:a, b\",5,0.625,0.625,3,65000
";
        assert_eq!(out, expected);
    }

    #[test]
    fn json_round_trips() {
        let report = funnel();
        let json = render(&report, Format::Json).unwrap();
        assert!(json.starts_with("{\n  \"audit\": \"funnel\","), "{json}");
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
    }

    #[test]
    fn html_escapes_and_empty_reports_say_so() {
        let report = Report::Screens(ScreensReport {
            scope: ResolvedScope::default(),
            sessions: 0,
            screens: vec![],
        });
        let out = render(&report, Format::Html).unwrap();
        assert!(out.contains("no data in scope"));
        assert!(
            render(&report, Format::Table)
                .unwrap()
                .contains("(no data in scope)")
        );
        assert_eq!(render(&report, Format::Csv).unwrap().lines().count(), 1);

        let report = Report::Screens(ScreensReport {
            scope: ResolvedScope::default(),
            sessions: 1,
            screens: vec![ScreenStats {
                screen: "<script>".into(),
                sessions: 1,
                views: 1,
                exits: 1,
                exit_rate: Some(1.0),
                median_ms_on_screen: None,
                next: vec![NextScreen {
                    screen: "/x".into(),
                    count: 1,
                }],
            }],
        });
        let out = render(&report, Format::Html).unwrap();
        assert!(out.contains("<td>&lt;script&gt;</td>"));
        assert!(!out.contains("<script>"));
    }

    /// A screens report whose texts (screen names, next screens) are `texts`.
    fn screens_named(texts: &[&str]) -> Report {
        Report::Screens(ScreensReport {
            scope: ResolvedScope::default(),
            sessions: 3,
            screens: texts
                .iter()
                .map(|t| ScreenStats {
                    screen: (*t).to_owned(),
                    sessions: 1,
                    views: 2,
                    exits: 1,
                    exit_rate: Some(0.5),
                    median_ms_on_screen: Some(-500),
                    next: vec![NextScreen {
                        screen: (*t).to_owned(),
                        count: 1,
                    }],
                })
                .collect(),
        })
    }

    #[test]
    fn csv_neutralises_formulas_in_text_cells_only() {
        let hostile = [
            "=HYPERLINK(\"http://evil\",\"x\")",
            "+cmd|' /C calc'!A0",
            "@SUM(1)",
            "-2+3",
            "\t=1",
            "\r=1",
            "/cart",
        ];
        let out = render(&screens_named(&hostile), Format::Csv).unwrap();
        let expected = "\
screen,sessions,views,exits,exit_rate,median_ms_on_screen,next
\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",1,2,1,0.5,-500,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\") (1)\"
'+cmd|' /C calc'!A0,1,2,1,0.5,-500,'+cmd|' /C calc'!A0 (1)
'@SUM(1),1,2,1,0.5,-500,'@SUM(1) (1)
'-2+3,1,2,1,0.5,-500,'-2+3 (1)
'\t=1,1,2,1,0.5,-500,'\t=1 (1)
\"'\r=1\",1,2,1,0.5,-500,\"'\r=1 (1)\"
/cart,1,2,1,0.5,-500,/cart (1)
";
        assert_eq!(out, expected);

        // Numbers stay numbers, negative ones included; only text gets the quote.
        assert_eq!(csv_cell(&Cell::Float(Some(-0.5))), "-0.5");
        assert_eq!(csv_cell(&Cell::Ms(Some(-1_500))), "-1500");
        assert_eq!(csv_cell(&Cell::Text("-0.5".into())), "'-0.5");
        assert_eq!(csv_cell(&Cell::Text(String::new())), "");
        assert_eq!(csv_text("a=b"), "a=b");
        assert_eq!(csv_text("–"), "–");

        // Saved funnels go through the same path.
        let funnel = SavedFunnel {
            site: "shop".into(),
            name: "x".into(),
            steps: vec!["=1+1".into(), "page:/".into()],
            window: "30m".into(),
        };
        let out = render_funnels(&[funnel], Format::Csv).unwrap();
        assert_eq!(out.lines().nth(1), Some("x,shop,30m,'=1+1 → page:/"));
    }

    #[test]
    fn the_table_shows_terminal_controls_as_escapes() {
        let hostile = [
            "\u{1b}[2J\u{1b}]0;pwned\u{7}red",
            "\u{9b}31mc1",
            "line\nbreak\r\ttab",
            "abc\u{202e}fed\u{2066}x\u{2069}",
            "para\u{2028}graph\u{2029}",
            "caf\u{e9} \u{1f6d2} \u{5e9}\u{5dc}\u{5d5}\u{5dd}",
        ];
        let out = render(&screens_named(&hostile), Format::Table).unwrap();
        assert!(
            !out.chars().any(|c| is_terminal_unsafe(c) && c != '\n'),
            "{out:?}"
        );
        let expected = [
            r"screens · all sites · all time · 3 sessions",
            r"",
            r"screen                           sessions  views  exits  exit rate  median time on screen  next screens",
            r"\u{1b}[2J\u{1b}]0;pwned\u{7}red         1      2      1      50.0%                 -500ms  \u{1b}[2J\u{1b}]0;pwned\u{7}red (1)",
            r"\u{9b}31mc1                             1      2      1      50.0%                 -500ms  \u{9b}31mc1 (1)",
            r"line\nbreak\r\ttab                      1      2      1      50.0%                 -500ms  line\nbreak\r\ttab (1)",
            r"abc\u{202e}fed\u{2066}x\u{2069}         1      2      1      50.0%                 -500ms  abc\u{202e}fed\u{2066}x\u{2069} (1)",
            r"para\u{2028}graph\u{2029}               1      2      1      50.0%                 -500ms  para\u{2028}graph\u{2029} (1)",
            r"café 🛒 שלום                             1      2      1      50.0%                 -500ms  café 🛒 שלום (1)",
        ]
        .map(|l| l.to_owned() + "\n")
        .concat();
        assert_eq!(out, expected);

        // The header line too: facts may carry saved funnel names and goals.
        let table = Table {
            audit: "funnels",
            facts: vec!["site \u{1b}[8m".into()],
            columns: vec![("name", "name")],
            rows: vec![],
        };
        assert!(text(&table).starts_with("funnels · site \\u{1b}[8m\n"));

        // JSON keeps the exact text, with control characters escaped by serde; HTML
        // escapes markup and keeps the text.
        let json = render(&screens_named(&hostile[..1]), Format::Json).unwrap();
        assert!(json.contains(r"\u001b[2J\u001b]0;pwned\u0007red"), "{json}");
        assert!(!json.contains('\u{1b}'));
        let html = render(&screens_named(&["<b>\u{202e}x"]), Format::Html).unwrap();
        assert!(html.contains("<td>&lt;b&gt;\u{202e}x</td>"), "{html}");
    }

    #[test]
    fn formats_and_durations() {
        assert_eq!("JSON".parse::<Format>().unwrap(), Format::Json);
        assert!("xml".parse::<Format>().is_err());
        assert_eq!(human_duration(850), "850ms");
        assert_eq!(human_duration(12_340), "12.3s");
        assert_eq!(human_duration(245_000), "4m 05s");
        assert_eq!(human_duration(7_380_000), "2h 03m");
    }
}
