//! A report as rows and columns ([`Table`] of [`Cell`]s): what each audit's report
//! turns into (`FooReport::table()`) and what the renderers ([`crate::render`], the
//! HTML [`crate::report`], the dashboard) draw. It depends on nothing else of the
//! crate, so the audits build tables without knowing how they are shown.

/// A report as rows and columns: what the table, CSV and HTML renderers draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The audit's name.
    pub audit: &'static str,
    /// Facts for the header line: scope, sessions, params.
    pub facts: Vec<String>,
    /// (JSON field name for CSV, label for people).
    pub columns: Vec<(&'static str, &'static str)>,
    pub rows: Vec<Vec<Cell>>,
}

/// One value of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(u64),
    /// A fraction 0..1, shown as a percentage; `None` = undefined.
    Ratio(Option<f64>),
    /// Milliseconds, shown as a duration; `None` = unknown.
    Ms(Option<i64>),
    /// A plain number such as a p-value, shown with 3 decimals (tiny ones as `7.7e-6`);
    /// `None` = undefined.
    Float(Option<f64>),
}

impl Cell {
    /// For people: `62.5%`, `1m 05s`, `–` for no value.
    pub(crate) fn human(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Ratio(Some(r)) => format!("{:.1}%", r * 100.0),
            Cell::Ms(Some(ms)) => human_duration(*ms),
            Cell::Float(Some(x)) if *x != 0.0 && x.abs() < 0.001 => format!("{x:.1e}"),
            Cell::Float(Some(x)) => format!("{x:.3}"),
            Cell::Ratio(None) | Cell::Ms(None) | Cell::Float(None) => "–".to_owned(),
        }
    }

    /// For machines: raw numbers, empty for no value.
    pub(crate) fn raw(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Ratio(Some(r)) => r.to_string(),
            Cell::Ms(Some(ms)) => ms.to_string(),
            Cell::Float(Some(x)) => x.to_string(),
            Cell::Ratio(None) | Cell::Ms(None) | Cell::Float(None) => String::new(),
        }
    }

    pub(crate) fn is_numeric(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }
}

/// `850ms`, `12.3s`, `4m 05s`, `2h 03m`.
pub fn human_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1_000 {
        format!("{sign}{ms}ms")
    } else if ms < 60_000 {
        format!("{sign}{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        let s = ms / 1000;
        format!("{sign}{}m {:02}s", s / 60, s % 60)
    } else {
        let m = ms / 60_000;
        format!("{sign}{}h {:02}m", m / 60, m % 60)
    }
}
