//! The `forms` audit: which forms people start and give up on, and which field they
//! give up at.
//!
//! Params: optionally one form to look at. The events in scope come from
//! [`crate::load::events`] with [`Forms::COLUMNS`]. Polars keeps the form events
//! (`focus`, `blur`, `change`, `submit`, `invalid` with a `form`, and custom events
//! named `invalid`) in (session, ts, seq) order; a sequential pass in plain Rust
//! (`Forms::walk`) turns each session into one row per (session, form) and one per
//! (session, form, field); Polars then aggregates those per form and per field.
//!
//! A form is known by the tracker's name for it: the closest `data-ct-form` (one
//! name for a flow split over several `<form>`s, or for fields outside any), else
//! the `<form>`'s `name`, else its id, else its `aria-label`, else a selector.
//! A field outside any form and any `data-ct-form` (an order note, a coupon box)
//! counts as a field of the first form the session touched on the same page; where
//! the session touched no form on that page (a search box, a quantity stepper), it
//! is no form activity. Custom fields (`role=combobox`, `listbox`,
//! `spinbutton`, `slider`, `textbox`) count like native ones; a choice in a
//! custom dropdown is a `change`. Semantics, per session and form (a form started
//! twice in one session counts once):
//!
//! - **started**: the session did anything with it: a field focused, changed or
//!   left, or the form sent or blocked (a form sent with nothing touched, as an
//!   add-to-cart form with its default quantity, is started too, so `submitted`
//!   never exceeds `started`); **submitted**: a `submit` of it (any attempt in the
//!   session), or a custom event `clicktrail('event', 'submit', {form: FORM})`, the
//!   site's word for a flow with no `<form>` (a `data-ct-form` checkout whose "Buy
//!   now" posts the order in script), which counts as a submit in every rule below
//!   (right after a `submit` of the form with nothing touched between, it is the
//!   same attempt); a funnel step for it is `event:submit`; **completed by another form**: started, not
//!   submitted, but another form of the same page was submitted after it was last
//!   touched (a checkout split over two forms: the buyer who ordered sent the
//!   second); touching it again after that submit undoes this. A small form sent
//!   mid-checkout (a coupon) with nothing touched after it reads as completing the
//!   checkout; name the flow with `data-ct-form` where that matters.
//!   **abandoned**: started, never submitted and not completed by another form.
//! - **failed submits** ([`Attempts`]): a `submit` followed later by another attempt
//!   (a `submit` or a blocked one) failed, unless a page view of another path or
//!   hash route came between (the site moved on: a checkout step sent, the next
//!   one shown; a page reloaded with the server's errors is the same path); the
//!   first page view after a submit, within [`REFUSED_WITHIN_MS`] of it, served with
//!   an error status (>= 400: the server refused the order with an error page, or a
//!   route showed one) fails it at once; a run of `invalid` events is one attempt the
//!   browser blocked (it fires `invalid` at each bad field at once), which also
//!   fails a pending submit unless it comes right after it with no field touched
//!   between (the submit's own handler calling `checkValidity()`: one attempt); a custom event
//!   `clicktrail('event', 'invalid', {form: FORM})` (sites that validate in script or
//!   on the server) fails the pending submit, or counts as a failed attempt itself when
//!   none is pending. Invalid signals with no focus, blur or change of the form between
//!   them are one run and count once.
//! - Per field: **position**, the 0-based place of the field in the order the session
//!   first reached the form's fields; fields are listed by the median of it over the
//!   sessions that reached them (page order as people meet it), then by sessions
//!   reached, then name. **reached**: sessions that focused it (or changed or left
//!   it, its focus unseen: autofill, a checkbox in Safari, an `autofocus` field). **time focused**:
//!   `blur` durations summed per session, median over sessions. **corrections**: focus
//!   events beyond the first plus `change` events beyond the first, per session.
//!   **left blank**: the session's last `blur` of it said empty. **invalid**: sessions
//!   in which it failed validation (an `invalid` event, or a custom `invalid` whose
//!   props name the `field`). **last before abandoning**: abandoning sessions whose
//!   last focus, blur or change of the form was on this field.

use std::collections::HashMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Audit, Context, SessionOrder as _, kind_in, ratio};
use crate::Error;
use crate::load::Col;
use crate::scope::ResolvedScope;
use crate::table::{Cell, Table};

/// The custom event name a site sends for a failed submit (`props`: `form`, `field`).
pub const CUSTOM_INVALID: &str = "invalid";

/// The custom event name a site sends when a flow with no `<form>` is sent
/// (`props`: `form`): a checkout whose "Buy now" button posts the order in script.
pub const CUSTOM_SUBMIT: &str = "submit";

/// A page view with an error status this soon after a submit, and the first since
/// it, is the server's answer to it.
pub const REFUSED_WITHIN_MS: i64 = 30_000;

/// What the form rows of the table show in their `field` column.
const FORM_ROW: &str = "(form)";

/// Forms params.
#[derive(Debug, Clone, Default)]
pub struct Forms {
    form: Option<String>,
}

/// The forms report: one entry per form, most started first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormsReport {
    pub scope: ResolvedScope,
    /// Sessions with at least one event in scope.
    pub sessions: u64,
    /// Sorted by `started`, then `submitted` (both descending), then `form`.
    pub forms: Vec<FormStats>,
}

/// One form of a [`FormsReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormStats {
    /// The tracker's name for the form: its `name`, else its id, else a selector.
    pub form: String,
    /// Sessions that did anything with it: focused, changed or left a field, or
    /// sent it or had it blocked (never fewer than `submitted`).
    pub started: u64,
    /// Sessions that submitted it (at least once).
    pub submitted: u64,
    /// Sessions that started it, did not submit it, and then submitted another
    /// form of its page (one flow over several forms).
    pub completed_by_other: u64,
    /// Sessions that started it, never submitted it, and did not complete it
    /// through another form.
    pub abandoned: u64,
    /// `abandoned / started`; null when nobody started it.
    pub abandonment_rate: Option<f64>,
    /// Sessions with at least one failed submit.
    pub failed_submit_sessions: u64,
    /// Failed submit attempts, all sessions together.
    pub failed_submits: u64,
    /// In page order (median first-reach position), then by `reached`, then name.
    pub fields: Vec<FieldStats>,
}

/// One field of a [`FormStats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldStats {
    /// The field's `name`, else its id, else a selector.
    pub field: String,
    /// Median 0-based place in the order sessions first reached the form's fields;
    /// null when no session reached it.
    pub position: Option<f64>,
    /// Sessions that focused it, or changed or left it with no focus seen
    /// (autofill, a checkbox in Safari, an `autofocus` field).
    pub reached: u64,
    /// Sessions that reached it and submitted the form.
    pub submitted: u64,
    /// Median over sessions of the ms it had focus (blur durations summed per
    /// session); null when no blur carried a duration.
    pub median_ms_focused: Option<i64>,
    /// Focus events beyond the first plus change events beyond the first, per session,
    /// summed over sessions.
    pub corrections: u64,
    /// Sessions with at least one correction.
    pub correcting_sessions: u64,
    /// Sessions that reached it whose last blur of it was empty.
    pub left_blank: u64,
    /// `left_blank / reached`.
    pub left_blank_rate: Option<f64>,
    /// Sessions in which it failed validation.
    pub invalid: u64,
    /// Abandoning sessions whose last touched field of the form it was.
    pub last_before_abandon: u64,
    /// `last_before_abandon / abandoned` of the form.
    pub last_before_abandon_share: Option<f64>,
}

impl Forms {
    /// All forms (`None`), or only the form named `form`.
    pub fn new(form: Option<&str>) -> Result<Self, Error> {
        if form.is_some_and(|f| f.trim().is_empty()) {
            return Err(Error::BadParam {
                name: "form",
                reason: "an empty form name; leave --form out for every form".to_owned(),
            });
        }
        Ok(Forms {
            form: form.map(str::to_owned),
        })
    }
}

impl Audit for Forms {
    type Report = FormsReport;

    const COLUMNS: &'static [Col] = &[
        Col::SessionId,
        Col::Ts,
        Col::Seq,
        Col::Kind,
        Col::Path,
        Col::Form,
        Col::Field,
        Col::DurationMs,
        Col::Empty,
        Col::Name,
        Col::Props,
        Col::Screen,
        Col::Status,
    ];

    fn kinds(&self) -> Option<Vec<&'static str>> {
        Some(vec![
            "focus", "blur", "change", "submit", "invalid", "custom", "pageview", "screen",
        ])
    }

    fn compute(&self, events: DataFrame, ctx: &Context<'_>) -> Result<FormsReport, Error> {
        let (sessions, scope) = (ctx.sessions, ctx.scope.clone());
        // Polars: the form events, in (session, ts, seq) order.
        let is_field_event = kind_in(["focus", "blur", "change", "submit", "invalid"])
            .and(col("form").is_not_null().or(col("field").is_not_null()));
        let is_custom_form_event = col("kind").eq(lit("custom")).and(
            col("name")
                .eq(lit(CUSTOM_INVALID))
                .or(col("name").eq(lit(CUSTOM_SUBMIT))),
        );
        let sorted = events
            .lazy()
            .filter(
                is_field_event
                    .or(is_custom_form_event)
                    .or(kind_in(["pageview", "screen"])),
            )
            .in_session_order()
            .collect()?;

        // Rust: one sequential pass per session.
        let (per_form, per_field) = self.walk(&sorted)?;

        // Polars: per form, then per field.
        let per_form = per_form
            .lazy()
            .group_by([col("form")])
            .agg([
                col("started").sum().cast(DataType::UInt64).alias("started"),
                col("submitted")
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("submitted"),
                col("abandoned")
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("abandoned"),
                col("completed")
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("completed"),
                col("failures")
                    .gt(lit(0u64))
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("failed_sessions"),
                col("failures")
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("failures"),
            ])
            .collect()?;
        let per_field = per_field
            .lazy()
            .group_by([col("form"), col("field")])
            .agg([
                col("reached").sum().cast(DataType::UInt64).alias("reached"),
                col("submitted")
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("submitted"),
                col("position")
                    .median()
                    .cast(DataType::Float64)
                    .alias("position"),
                col("focused_ms")
                    .median()
                    .cast(DataType::Float64)
                    .alias("median_ms"),
                col("corrections")
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("corrections"),
                col("corrections")
                    .gt(lit(0u64))
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("correcting"),
                col("left_blank")
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("left_blank"),
                col("invalid").sum().cast(DataType::UInt64).alias("invalid"),
                col("last_touched")
                    .sum()
                    .cast(DataType::UInt64)
                    .alias("last_touched"),
            ])
            .collect()?;

        let abandoned_of: HashMap<&str, u64> = per_form
            .column("form")?
            .str()?
            .iter()
            .zip(per_form.column("abandoned")?.u64()?.iter())
            .filter_map(|(f, a)| Some((f?, a.unwrap_or(0))))
            .collect();
        let mut fields: HashMap<String, Vec<FieldStats>> = HashMap::new();
        let u64_at = |name: &str, i: usize| -> Result<u64, Error> {
            Ok(per_field.column(name)?.u64()?.get(i).unwrap_or(0))
        };
        let form_col = per_field.column("form")?.str()?;
        let field_col = per_field.column("field")?.str()?;
        let position = per_field.column("position")?.f64()?;
        let median = per_field.column("median_ms")?.f64()?;
        for i in 0..per_field.height() {
            let (Some(form), Some(field)) = (form_col.get(i), field_col.get(i)) else {
                continue;
            };
            let reached = u64_at("reached", i)?;
            let left_blank = u64_at("left_blank", i)?;
            let last = u64_at("last_touched", i)?;
            fields.entry(form.to_owned()).or_default().push(FieldStats {
                field: field.to_owned(),
                position: position.get(i),
                reached,
                submitted: u64_at("submitted", i)?,
                median_ms_focused: median.get(i).map(|m| m.round() as i64),
                corrections: u64_at("corrections", i)?,
                correcting_sessions: u64_at("correcting", i)?,
                left_blank,
                left_blank_rate: ratio(left_blank, reached),
                invalid: u64_at("invalid", i)?,
                last_before_abandon: last,
                last_before_abandon_share: ratio(
                    last,
                    abandoned_of.get(form).copied().unwrap_or(0),
                ),
            });
        }

        let u64_at = |name: &str, i: usize| -> Result<u64, Error> {
            Ok(per_form.column(name)?.u64()?.get(i).unwrap_or(0))
        };
        let form_col = per_form.column("form")?.str()?;
        let mut forms = Vec::with_capacity(per_form.height());
        for i in 0..per_form.height() {
            let Some(form) = form_col.get(i) else {
                continue;
            };
            let (started, abandoned) = (u64_at("started", i)?, u64_at("abandoned", i)?);
            let mut form_fields = fields.remove(form).unwrap_or_default();
            form_fields.sort_by(|a, b| {
                let pos = |f: &FieldStats| f.position.unwrap_or(f64::INFINITY);
                pos(a)
                    .total_cmp(&pos(b))
                    .then(b.reached.cmp(&a.reached))
                    .then_with(|| a.field.cmp(&b.field))
            });
            forms.push(FormStats {
                form: form.to_owned(),
                started,
                submitted: u64_at("submitted", i)?,
                completed_by_other: u64_at("completed", i)?,
                abandoned,
                abandonment_rate: ratio(abandoned, started),
                failed_submit_sessions: u64_at("failed_sessions", i)?,
                failed_submits: u64_at("failures", i)?,
                fields: form_fields,
            });
        }
        forms.sort_by(|a, b| {
            b.started
                .cmp(&a.started)
                .then(b.submitted.cmp(&a.submitted))
                .then_with(|| a.form.cmp(&b.form))
        });
        Ok(FormsReport {
            scope,
            sessions,
            forms,
        })
    }
}

/// The form of each field event outside any form: the first form the session
/// touched on the same page (before or after it), else None.
fn loose_forms<'a>(
    session: &UInt64Chunked,
    path: &'a StringChunked,
    form: &'a StringChunked,
    field: &StringChunked,
) -> Vec<Option<&'a str>> {
    let n = session.len();
    let mut out = vec![None; n];
    let mut start = 0;
    while start < n {
        let sid = session.get(start);
        let mut end = start;
        let mut first: HashMap<Option<&str>, &str> = HashMap::new();
        while end < n && session.get(end) == sid {
            if let Some(f) = form.get(end) {
                first.entry(path.get(end)).or_insert(f);
            }
            end += 1;
        }
        for (i, slot) in out.iter_mut().enumerate().take(end).skip(start) {
            if form.get(i).is_none() && field.get(i).is_some() {
                *slot = first.get(&path.get(i)).copied();
            }
        }
        start = end;
    }
    out
}

/// What one form event means for a form's submit attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A `submit` of the form.
    Submit,
    /// A field of the form failed the browser's validation (`invalid`).
    Invalid,
    /// `clicktrail('event', 'invalid', {form})`: the site says a submit failed.
    CustomInvalid,
    /// A focus, blur or change of one of its fields.
    Touch,
    /// The first page view after the submit was served with an error status: the
    /// server refused it (a checkout answered by an error page).
    Refused,
    /// A page view of another path (or hash route) than the pending submit's, or
    /// another `data-ct-screen` shown: the site moved on, so that submit went
    /// through (a checkout step sent, the next step shown), whatever the visitor
    /// does with the form later (comes back to edit the address and sends it
    /// again).
    MovedOn,
}

/// Failed submit attempts of one form in one session, fed its [`Signal`]s in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    /// A submit whose outcome is not known yet.
    pending_submit: bool,
    /// A field of the form was touched since that submit.
    touched_since_submit: bool,
    /// The previous signal was an invalid one (no touch or submit since).
    in_invalid_run: bool,
    /// Failed attempts so far.
    pub failed: u64,
}

impl Attempts {
    pub fn push(&mut self, signal: Signal) {
        match signal {
            Signal::Submit => {
                // Another attempt: the pending one did not get them through.
                if self.pending_submit {
                    self.failed += 1;
                }
                self.pending_submit = true;
                self.touched_since_submit = false;
                self.in_invalid_run = false;
            }
            Signal::Invalid => {
                if !self.in_invalid_run {
                    // An attempt the browser blocked; it also ends a pending submit
                    // that came before a field was touched again. Right after the
                    // submit, with nothing touched between, it is that submit's own
                    // check (a form whose submit handler calls `checkValidity()`):
                    // one attempt.
                    let earlier = self.pending_submit && self.touched_since_submit;
                    self.failed += 1 + u64::from(earlier);
                    self.pending_submit = false;
                }
                self.in_invalid_run = true;
            }
            Signal::CustomInvalid => {
                if !self.in_invalid_run {
                    // The pending submit failed, or an attempt without a submit did.
                    self.failed += 1;
                    self.pending_submit = false;
                }
                self.in_invalid_run = true;
            }
            Signal::Touch => {
                self.in_invalid_run = false;
                self.touched_since_submit = true;
            }
            Signal::Refused => {
                // As the site's own `invalid` event would: one failure, and one
                // that such an event on the error page does not count again.
                if self.pending_submit {
                    self.failed += 1;
                    self.pending_submit = false;
                    self.in_invalid_run = true;
                }
            }
            Signal::MovedOn => self.pending_submit = false,
        }
    }
}

/// One session's activity on one form.
#[derive(Debug, Default)]
struct SessionForm<'a> {
    started: bool,
    submitted: bool,
    /// Another form of the page where this one was first touched was submitted
    /// after that.
    completed: bool,
    /// The page where it was first touched.
    page: Option<&'a str>,
    /// The page of its latest submit.
    submit_page: Option<&'a str>,
    /// The screen shown at that submit.
    submit_screen: Option<&'a str>,
    /// When that submit was sent, and whether a page view came since.
    submit_ts: i64,
    viewed_since_submit: bool,
    attempts: Attempts,
    /// The field of the last focus, blur or change.
    last_touched: Option<&'a str>,
    /// Fields first focused so far (the next field's position).
    focused_fields: u32,
    fields: HashMap<&'a str, SessionField>,
}

/// One session's activity on one field.
#[derive(Debug, Default)]
struct SessionField {
    position: Option<u32>,
    focuses: u64,
    changes: u64,
    focused_ms: Option<i64>,
    last_blur_empty: Option<bool>,
    invalid: bool,
}

/// The rows [`Forms::walk`] emits, as columns.
#[derive(Debug, Default)]
struct Rows {
    // One per (session, form).
    form: Vec<String>,
    started: Vec<bool>,
    submitted: Vec<bool>,
    completed: Vec<bool>,
    abandoned: Vec<bool>,
    failures: Vec<u64>,
    // One per (session, form, field).
    f_form: Vec<String>,
    f_field: Vec<String>,
    f_reached: Vec<bool>,
    f_submitted: Vec<bool>,
    f_position: Vec<Option<u32>>,
    f_focused_ms: Vec<Option<i64>>,
    f_corrections: Vec<u64>,
    f_left_blank: Vec<bool>,
    f_invalid: Vec<bool>,
    f_last_touched: Vec<bool>,
}

impl Rows {
    /// Adds the rows of one finished session.
    fn flush(&mut self, session: &mut HashMap<&str, SessionForm<'_>>) {
        for (form, s) in session.drain() {
            let completed = s.started && !s.submitted && s.completed;
            let abandoned = s.started && !s.submitted && !s.completed;
            self.form.push(form.to_owned());
            self.started.push(s.started);
            self.submitted.push(s.submitted);
            self.completed.push(completed);
            self.abandoned.push(abandoned);
            self.failures.push(s.attempts.failed);
            for (field, f) in s.fields {
                let reached = f.position.is_some();
                self.f_form.push(form.to_owned());
                self.f_field.push(field.to_owned());
                self.f_reached.push(reached);
                self.f_submitted.push(reached && s.submitted);
                self.f_position.push(f.position);
                self.f_focused_ms.push(f.focused_ms);
                self.f_corrections
                    .push(f.focuses.saturating_sub(1) + f.changes.saturating_sub(1));
                self.f_left_blank
                    .push(reached && f.last_blur_empty == Some(true));
                self.f_invalid.push(f.invalid);
                self.f_last_touched
                    .push(abandoned && s.last_touched == Some(field));
            }
        }
    }

    fn into_frames(self) -> Result<(DataFrame, DataFrame), Error> {
        let forms = DataFrame::new(
            self.form.len(),
            vec![
                Column::new("form".into(), self.form),
                Column::new("started".into(), self.started),
                Column::new("submitted".into(), self.submitted),
                Column::new("completed".into(), self.completed),
                Column::new("abandoned".into(), self.abandoned),
                Column::new("failures".into(), self.failures),
            ],
        )?;
        let fields = DataFrame::new(
            self.f_form.len(),
            vec![
                Column::new("form".into(), self.f_form),
                Column::new("field".into(), self.f_field),
                Column::new("reached".into(), self.f_reached),
                Column::new("submitted".into(), self.f_submitted),
                Column::new("position".into(), self.f_position),
                Column::new("focused_ms".into(), self.f_focused_ms),
                Column::new("corrections".into(), self.f_corrections),
                Column::new("left_blank".into(), self.f_left_blank),
                Column::new("invalid".into(), self.f_invalid),
                Column::new("last_touched".into(), self.f_last_touched),
            ],
        )?;
        Ok((forms, fields))
    }
}

/// The `form` and `field` a custom `invalid` or `submit` event's props name
/// (JSON text).
fn custom_target(props: Option<&str>) -> Option<(String, Option<String>)> {
    let value: serde_json::Value = serde_json::from_str(props?).ok()?;
    let text = |key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Some((text("form")?, text("field")))
}

impl Forms {
    /// Walks the sorted form events session by session and returns the per (session,
    /// form) frame (`form`, `started`, `submitted`, `abandoned`, `failures`) and the
    /// per (session, form, field) frame (`form`, `field`, `reached`, `submitted`,
    /// `position`, `focused_ms`, `corrections`, `left_blank`, `invalid`,
    /// `last_touched`).
    fn walk(&self, sorted: &DataFrame) -> Result<(DataFrame, DataFrame), Error> {
        let session = sorted.column("session_id")?.u64()?;
        let kind = sorted.column("kind")?.str()?;
        let path = sorted.column("path")?.str()?;
        let form = sorted.column("form")?.str()?;
        let field = sorted.column("field")?.str()?;
        let duration = sorted.column("duration_ms")?.i64()?;
        let empty = sorted.column("empty")?.bool()?;
        let props = sorted.column("props")?.str()?;
        let name = sorted.column("name")?.str()?;
        let screen = sorted.column("screen")?.str()?;
        let ts = sorted.column("ts")?.i64()?;
        let status = sorted.column("status")?.i32()?;

        // Custom invalid and submit events name their form in JSON: parsed once,
        // kept alive here so the per-session maps can borrow them like the columns.
        let custom: Vec<Option<(String, Option<String>)>> = kind
            .iter()
            .zip(props.iter())
            .map(|(k, p)| {
                if k == Some("custom") {
                    custom_target(p)
                } else {
                    None
                }
            })
            .collect();

        let loose = loose_forms(session, path, form, field);

        let mut rows = Rows::default();
        let mut current: Option<u64> = None;
        let mut state: HashMap<&str, SessionForm<'_>> = HashMap::new();
        for (i, custom) in custom.iter().enumerate() {
            let (Some(sid), Some(mut kind)) = (session.get(i), kind.get(i)) else {
                continue;
            };
            if current != Some(sid) {
                rows.flush(&mut state);
                current = Some(sid);
            }
            // The site's own word that a flow with no `<form>` was sent.
            let by_site = kind == "custom";
            if by_site && name.get(i) == Some(CUSTOM_SUBMIT) {
                kind = "submit";
            }
            if kind == "pageview" || kind == "screen" {
                let (page, shown) = (path.get(i), screen.get(i));
                let error = kind == "pageview" && status.get(i).is_some_and(|c| c >= 400);
                let at = ts.get(i).unwrap_or_default();
                for s in state.values_mut() {
                    if s.submit_page.is_none() {
                        continue;
                    }
                    if error && !s.viewed_since_submit && at - s.submit_ts <= REFUSED_WITHIN_MS {
                        s.attempts.push(Signal::Refused);
                    } else if s.submit_page != page
                        || (kind == "screen" && shown.is_some() && s.submit_screen != shown)
                    {
                        s.attempts.push(Signal::MovedOn);
                    }
                    s.viewed_since_submit |= kind == "pageview";
                }
                continue;
            }
            let (form, field) = if by_site {
                match custom {
                    Some((form, field)) => (form.as_str(), field.as_deref()),
                    None => continue,
                }
            } else {
                match form.get(i).or(loose[i]) {
                    Some(form) => (form, field.get(i)),
                    None => continue,
                }
            };
            let page = path.get(i);
            if kind == "submit" {
                // One flow over several forms: a submit completes the other forms
                // started on its page before it.
                for (name, other) in &mut state {
                    if *name != form && other.started && other.page == page {
                        other.completed = true;
                    }
                }
            }
            if self.form.as_deref().is_some_and(|only| only != form) {
                continue;
            }
            let s = state.entry(form).or_default();
            // The site's word for a submit the browser just reported, nothing
            // touched since (a page that sends its `<form>` in script and says
            // so): one attempt, not a second that fails the first.
            if by_site
                && kind == "submit"
                && s.attempts.pending_submit
                && !s.attempts.touched_since_submit
            {
                continue;
            }
            if s.page.is_none() {
                s.page = page;
            }
            // Anything the visitor did with the form starts it: a field focused,
            // and also a form sent or blocked with no field focused (an add-to-cart
            // form with its default quantity, a required field left empty), or a
            // field changed or left whose focus came before the tracker did (an
            // `autofocus` field) or never came (Safari does not focus a checkbox on
            // click). So `submitted` never exceeds `started`.
            s.started = true;
            let signal = match kind {
                "submit" => {
                    s.submitted = true;
                    s.submit_page = page;
                    s.submit_screen = screen.get(i);
                    s.submit_ts = ts.get(i).unwrap_or_default();
                    s.viewed_since_submit = false;
                    Signal::Submit
                }
                "invalid" => Signal::Invalid,
                "custom" => Signal::CustomInvalid,
                _ => Signal::Touch,
            };
            s.attempts.push(signal);
            let Some(field) = field else { continue };
            if signal == Signal::Submit {
                continue;
            }
            let next_position = s.focused_fields;
            let f = s.fields.entry(field).or_default();
            // A field is reached when focused, or changed or left without a focus
            // seen (see above); not when only the browser's check names it.
            if f.position.is_none() && signal == Signal::Touch {
                f.position = Some(next_position);
                s.focused_fields += 1;
            }
            match kind {
                "focus" => f.focuses += 1,
                "blur" => {
                    if let Some(ms) = duration.get(i) {
                        f.focused_ms = Some(f.focused_ms.unwrap_or(0) + ms.max(0));
                    }
                    if let Some(e) = empty.get(i) {
                        f.last_blur_empty = Some(e);
                    }
                }
                "change" => f.changes += 1,
                _ => f.invalid = true,
            }
            if signal == Signal::Touch {
                s.last_touched = Some(field);
                // Back in the form after another one was sent: not completed by it.
                s.completed = false;
            }
        }
        rows.flush(&mut state);
        rows.into_frames()
    }
}

impl FormsReport {
    /// The report as rows for the table, CSV and HTML renderers: per form, a row with
    /// `field` = `(form)` (sessions = started, abandoned and its rate, failed submits),
    /// then one row per field in page order (sessions = reached, abandoned = abandoning
    /// sessions whose last field it was and their share, failed = sessions where it
    /// was invalid).
    pub fn table(&self) -> Table {
        let mut rows = Vec::new();
        for f in &self.forms {
            rows.push(vec![
                Cell::Text(f.form.clone()),
                Cell::Text(FORM_ROW.to_owned()),
                Cell::Count(f.started),
                Cell::Count(f.submitted),
                Cell::Count(f.completed_by_other),
                Cell::Count(f.abandoned),
                Cell::Ratio(f.abandonment_rate),
                Cell::Count(f.failed_submits),
                Cell::Ms(None),
                Cell::Count(f.fields.iter().map(|x| x.corrections).sum()),
                Cell::Ratio(None),
            ]);
            for x in &f.fields {
                rows.push(vec![
                    Cell::Text(f.form.clone()),
                    Cell::Text(x.field.clone()),
                    Cell::Count(x.reached),
                    Cell::Count(x.submitted),
                    Cell::Ratio(None),
                    Cell::Count(x.last_before_abandon),
                    Cell::Ratio(x.last_before_abandon_share),
                    Cell::Count(x.invalid),
                    Cell::Ms(x.median_ms_focused),
                    Cell::Count(x.corrections),
                    Cell::Ratio(x.left_blank_rate),
                ]);
            }
        }
        Table {
            audit: "forms",
            facts: vec![
                self.scope.describe(),
                format!("{} sessions", self.sessions),
                format!("{} forms", self.forms.len()),
            ],
            columns: vec![
                ("form", "form"),
                ("field", "field"),
                ("sessions", "sessions"),
                ("submitted", "submitted"),
                ("completed_by_other", "completed by another form"),
                ("abandoned", "abandoned (here)"),
                ("abandoned_share", "abandoned %"),
                ("failed", "failed / invalid"),
                ("median_ms_focused", "median time in field"),
                ("corrections", "corrections"),
                ("left_blank_rate", "left blank"),
            ],
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audits::run_audit;
    use crate::testing::{Db, Ev, ev};

    const S: i64 = 1_000;

    fn forms(db: &Db, only: Option<&str>) -> FormsReport {
        run_audit(
            &db.conn(),
            ResolvedScope::default(),
            &Forms::new(only).unwrap(),
        )
        .unwrap()
    }

    fn find<'a>(r: &'a FormsReport, form: &str) -> &'a FormStats {
        r.forms.iter().find(|f| f.form == form).unwrap()
    }

    fn field<'a>(f: &'a FormStats, name: &str) -> &'a FieldStats {
        f.fields.iter().find(|x| x.field == name).unwrap()
    }

    fn names(f: &FormStats) -> Vec<&str> {
        f.fields.iter().map(|x| x.field.as_str()).collect()
    }

    /// A field event of `form` on `/checkout`.
    fn fe(id: &str, session: &str, ts: i64, kind: &str, form: &str, name: &str) -> Ev {
        ev(id, session, ts, (ts / S) as i32, kind)
            .path("/checkout")
            .form(form)
            .field(name)
    }

    fn focus(id: &str, session: &str, ts: i64, name: &str) -> Ev {
        fe(id, session, ts, "focus", "checkout", name)
    }

    fn blur(id: &str, session: &str, ts: i64, name: &str, ms: i64, empty: bool) -> Ev {
        fe(id, session, ts, "blur", "checkout", name)
            .duration_ms(ms)
            .empty(empty)
    }

    fn change(id: &str, session: &str, ts: i64, name: &str) -> Ev {
        fe(id, session, ts, "change", "checkout", name).empty(false)
    }

    fn invalid(id: &str, session: &str, ts: i64, name: &str) -> Ev {
        fe(id, session, ts, "invalid", "checkout", name)
    }

    fn submit(id: &str, session: &str, ts: i64, form: &str) -> Ev {
        ev(id, session, ts, (ts / S) as i32, "submit")
            .path("/checkout")
            .form(form)
    }

    /// A custom event `name` with `props` on `/checkout`.
    fn custom(id: &str, session: &str, ts: i64, name: &str, props: &str) -> Ev {
        ev(id, session, ts, (ts / S) as i32, "custom")
            .path("/checkout")
            .name(name)
            .props(props)
    }

    fn custom_invalid(id: &str, session: &str, ts: i64, props: &str) -> Ev {
        custom(id, session, ts, CUSTOM_INVALID, props)
    }

    #[test]
    fn abandonment_and_fields_in_page_order() {
        let db = Db::new();
        db.insert(&[
            // s1 fills email, name, card in order and submits.
            focus("a1", "s1", 0, "email"),
            blur("a2", "s1", 3 * S, "email", 3 * S, false),
            focus("a3", "s1", 3 * S, "name"),
            change("a4", "s1", 4 * S, "name"),
            blur("a5", "s1", 5 * S, "name", 2 * S, false),
            focus("a6", "s1", 5 * S, "card"),
            change("a7", "s1", 9 * S, "card"),
            blur("a8", "s1", 10 * S, "card", 5 * S, false),
            submit("a9", "s1", 11 * S, "checkout"),
            // s2: email, then leaves name blank and the page: abandons at name.
            focus("b1", "s2", 0, "email"),
            blur("b2", "s2", S, "email", S, false),
            focus("b3", "s2", S, "name"),
            blur("b4", "s2", 5 * S, "name", 4 * S, true),
            ev("b5", "s2", 6 * S, 6, "leave").path("/checkout"),
            // s3: email, skips name, fights with card (3 changes, focused twice) and
            // leaves it blank: abandons at card.
            focus("c1", "s3", 0, "email"),
            blur("c2", "s3", 2 * S, "email", 2 * S, false),
            focus("c3", "s3", 2 * S, "card"),
            change("c4", "s3", 3 * S, "card"),
            change("c5", "s3", 4 * S, "card"),
            change("c6", "s3", 5 * S, "card"),
            blur("c7", "s3", 8 * S, "card", 6 * S, false),
            focus("c8", "s3", 9 * S, "card"),
            blur("c9", "s3", 10 * S, "card", S, true),
            // s4: a field outside any form does not count.
            ev("d1", "s4", 0, 1, "pageview").path("/"),
            ev("d2", "s4", S, 2, "focus").path("/").field("q"),
            // s5: the newsletter form, started and submitted.
            fe("e1", "s5", 0, "focus", "newsletter", "email"),
            submit("e2", "s5", S, "newsletter"),
        ]);
        let r = forms(&db, None);
        assert_eq!(r.sessions, 5);
        let order: Vec<&str> = r.forms.iter().map(|f| f.form.as_str()).collect();
        assert_eq!(order, ["checkout", "newsletter"]);

        let checkout = find(&r, "checkout");
        assert_eq!(
            (checkout.started, checkout.submitted, checkout.abandoned),
            (3, 1, 2)
        );
        assert_eq!(checkout.abandonment_rate, Some(2.0 / 3.0));
        assert_eq!(
            (checkout.failed_submit_sessions, checkout.failed_submits),
            (0, 0)
        );
        // Positions: email 0, 0, 0; name 1, 1; card 2 (s1), 1 (s3) → 1.5.
        assert_eq!(names(checkout), ["email", "name", "card"]);

        let email = field(checkout, "email");
        assert_eq!(email.position, Some(0.0));
        assert_eq!((email.reached, email.submitted), (3, 1));
        assert_eq!(email.median_ms_focused, Some(2 * S)); // 3 s, 1 s, 2 s
        assert_eq!((email.corrections, email.correcting_sessions), (0, 0));
        assert_eq!((email.left_blank, email.left_blank_rate), (0, Some(0.0)));
        assert_eq!(email.last_before_abandon, 0);
        assert_eq!(email.last_before_abandon_share, Some(0.0));

        let name = field(checkout, "name");
        assert_eq!(name.position, Some(1.0));
        assert_eq!((name.reached, name.submitted), (2, 1));
        assert_eq!(name.median_ms_focused, Some(3 * S)); // 2 s, 4 s
        assert_eq!(name.corrections, 0); // one change is no correction
        assert_eq!((name.left_blank, name.left_blank_rate), (1, Some(0.5)));
        assert_eq!(name.last_before_abandon, 1);
        assert_eq!(name.last_before_abandon_share, Some(0.5));

        let card = field(checkout, "card");
        assert_eq!(card.position, Some(1.5));
        assert_eq!((card.reached, card.submitted), (2, 1));
        // s1: 5 s; s3: 6 s + 1 s = 7 s → median 6 s.
        assert_eq!(card.median_ms_focused, Some(6 * S));
        // s3: 1 focus beyond the first + 2 changes beyond the first.
        assert_eq!((card.corrections, card.correcting_sessions), (3, 1));
        // s3's first blur was not empty, its last one was.
        assert_eq!((card.left_blank, card.left_blank_rate), (1, Some(0.5)));
        assert_eq!(
            (card.last_before_abandon, card.last_before_abandon_share),
            (1, Some(0.5))
        );
        assert_eq!(card.invalid, 0);

        let newsletter = find(&r, "newsletter");
        assert_eq!(
            (
                newsletter.started,
                newsletter.submitted,
                newsletter.abandoned
            ),
            (1, 1, 0)
        );
        assert_eq!(newsletter.abandonment_rate, Some(0.0));
        let email = field(newsletter, "email");
        assert_eq!((email.reached, email.median_ms_focused), (1, None));
        assert_eq!(email.last_before_abandon_share, None);

        let only = forms(&db, Some("newsletter"));
        assert_eq!(only.sessions, 5);
        assert_eq!(only.forms.len(), 1);
        assert_eq!(only.forms[0], *newsletter);
    }

    #[test]
    fn a_form_started_twice_in_a_session_counts_once() {
        let db = Db::new();
        db.insert(&[
            // s1: starts, goes away, comes back, submits on the second attempt.
            focus("a1", "s1", 0, "email"),
            blur("a2", "s1", S, "email", S, false),
            ev("a3", "s1", 2 * S, 2, "pageview").path("/"),
            focus("a4", "s1", 60 * S, "email"),
            blur("a5", "s1", 61 * S, "email", S, false),
            focus("a6", "s1", 61 * S, "name"),
            submit("a7", "s1", 62 * S, "checkout"),
            // s2: submits on the first attempt, starts again and leaves.
            focus("b1", "s2", 0, "email"),
            submit("b2", "s2", S, "checkout"),
            focus("b3", "s2", 10 * S, "email"),
            focus("b4", "s2", 11 * S, "name"),
        ]);
        let r = forms(&db, None);
        assert_eq!(r.forms.len(), 1);
        let f = &r.forms[0];
        assert_eq!((f.started, f.submitted, f.abandoned), (2, 2, 0));
        assert_eq!(f.abandonment_rate, Some(0.0));
        assert_eq!((f.failed_submit_sessions, f.failed_submits), (0, 0));
        assert_eq!(names(f), ["email", "name"]);
        let email = field(f, "email");
        // Reached once per session; the second focus is a correction in each.
        assert_eq!((email.reached, email.corrections), (2, 2));
        assert_eq!(email.correcting_sessions, 2);
        assert_eq!(email.median_ms_focused, Some(2 * S)); // s1: 1 s + 1 s; s2: none
        assert_eq!(field(f, "name").position, Some(1.0));
        assert!(f.fields.iter().all(|x| x.last_before_abandon == 0));
    }

    #[test]
    fn failed_submits_from_resubmits_invalid_fields_and_custom_events() {
        let db = Db::new();
        db.insert(&[
            // s1: submit, the server refuses (custom event naming the field), fixes
            // email, submits again: 1 failed.
            focus("a1", "s1", 0, "email"),
            submit("a2", "s1", S, "checkout"),
            custom_invalid("a3", "s1", 2 * S, r#"{"form":"checkout","field":"email"}"#),
            focus("a4", "s1", 3 * S, "email"),
            change("a5", "s1", 4 * S, "email"),
            submit("a6", "s1", 5 * S, "checkout"),
            // s2: the browser blocks a submit (invalid at card and zip at once: one
            // attempt), then card is fixed and the form submitted: 1 failed.
            focus("b1", "s2", 0, "card"),
            invalid("b2", "s2", S, "card"),
            invalid("b3", "s2", S, "zip"),
            focus("b4", "s2", S + 1, "card"),
            change("b5", "s2", 2 * S, "card"),
            submit("b6", "s2", 3 * S, "checkout"),
            // s3: submits twice (the first did not go through): 1 failed.
            focus("c1", "s3", 0, "email"),
            submit("c2", "s3", S, "checkout"),
            submit("c3", "s3", 4 * S, "checkout"),
            // s4: starts and leaves: abandoned, nothing failed.
            focus("d1", "s4", 0, "email"),
            blur("d2", "s4", S, "email", S, true),
            // s5: a custom invalid of another form, with no field of it touched: the
            // site says an attempt failed, so the visitor started it, and left.
            custom_invalid("e1", "s5", 0, r#"{"form":"login"}"#),
            // Custom events that are not about a form are ignored.
            custom_invalid("e2", "s5", S, r#"{"field":"x"}"#),
            custom_invalid("e3", "s5", 2 * S, "not json"),
            ev("e4", "s5", 3 * S, 4, "custom").name("order"),
            // s6: a checkout step sent, the next step shown (another hash route),
            // then back to edit it and sent again: nothing failed.
            focus("f1", "s6", 0, "email").path("/checkout#shipping"),
            submit("f2", "s6", S, "checkout").path("/checkout#shipping"),
            ev("f3", "s6", 2 * S, 3, "pageview").path("/checkout#payment"),
            ev("f4", "s6", 3 * S, 4, "pageview").path("/checkout#shipping"),
            focus("f5", "s6", 4 * S, "email").path("/checkout#shipping"),
            submit("f6", "s6", 5 * S, "checkout").path("/checkout#shipping"),
            // s7: sent, the same page again (the server's errors), sent again: 1 failed.
            focus("g1", "s7", 0, "email"),
            submit("g2", "s7", S, "checkout"),
            ev("g3", "s7", 2 * S, 3, "pageview").path("/checkout"),
            submit("g4", "s7", 3 * S, "checkout"),
            // s8: the same flow in one URL, its steps marked screens: the payment
            // screen shown after the shipping step was sent, back to shipping, sent
            // again: nothing failed.
            focus("h1", "s8", 0, "email").screen("shipping"),
            submit("h2", "s8", S, "checkout").screen("shipping"),
            ev("h3", "s8", 2 * S, 3, "screen").screen("payment"),
            ev("h4", "s8", 3 * S, 4, "screen").screen("shipping"),
            submit("h5", "s8", 4 * S, "checkout").screen("shipping"),
        ]);
        let r = forms(&db, None);
        let order: Vec<&str> = r.forms.iter().map(|f| f.form.as_str()).collect();
        assert_eq!(order, ["checkout", "login"]);

        let f = find(&r, "checkout");
        assert_eq!((f.started, f.submitted, f.abandoned), (7, 6, 1));
        assert_eq!((f.failed_submit_sessions, f.failed_submits), (4, 4));
        // zip was never focused: no position, listed last.
        assert_eq!(names(f), ["email", "card", "zip"]);
        assert_eq!(field(f, "email").invalid, 1);
        assert_eq!(field(f, "card").invalid, 1);
        let zip = field(f, "zip");
        assert_eq!((zip.reached, zip.invalid, zip.position), (0, 1, None));
        assert_eq!(zip.left_blank_rate, None);
        let email = field(f, "email");
        assert_eq!(email.last_before_abandon, 1);
        assert_eq!(email.last_before_abandon_share, Some(1.0));
        assert_eq!(email.left_blank, 1);

        let login = find(&r, "login");
        assert_eq!((login.started, login.submitted, login.abandoned), (1, 0, 1));
        assert_eq!(login.abandonment_rate, Some(1.0));
        assert_eq!((login.failed_submit_sessions, login.failed_submits), (1, 1));
        assert!(login.fields.is_empty());
    }

    #[test]
    fn a_submit_answered_by_an_error_page_failed() {
        let page = |id: &str, session: &str, ts: i64, path: &str, status: i32| {
            ev(id, session, ts, (ts / S) as i32, "pageview")
                .path(path)
                .status(status)
        };
        let db = Db::new();
        db.insert(&[
            // s1: the order placed, answered by a 500 page at another path (not
            // the site moving on); back to the form, sent again, thanked: 1 failed.
            focus("a1", "s1", 0, "email"),
            submit("a2", "s1", S, "checkout"),
            page("a3", "s1", 2 * S, "/checkout/place", 500),
            page("a4", "s1", 3 * S, "/checkout", 200),
            focus("a5", "s1", 4 * S, "email"),
            submit("a6", "s1", 5 * S, "checkout"),
            page("a7", "s1", 6 * S, "/thanks", 200),
            // s2: the server renders the form again with its errors and a 422 at
            // the same path; sent again, thanked: 1 failed, not 2.
            focus("b1", "s2", 0, "email"),
            submit("b2", "s2", S, "checkout"),
            page("b3", "s2", 2 * S, "/checkout", 422),
            submit("b4", "s2", 3 * S, "checkout"),
            page("b5", "s2", 4 * S, "/thanks", 200),
            // s3: sent, the next page shown, then a broken link: nothing failed.
            focus("c1", "s3", 0, "email"),
            submit("c2", "s3", S, "checkout"),
            page("c3", "s3", 2 * S, "/thanks", 200),
            page("c4", "s3", 3 * S, "/gone", 404),
            // s4: sent in script (no page change), a 404 long after: nothing failed.
            focus("d1", "s4", 0, "email"),
            submit("d2", "s4", S, "checkout"),
            page("d3", "s4", S + REFUSED_WITHIN_MS + 1, "/gone", 404),
            // s5: a 500 page that also sends the site's `invalid` event: 1 failed.
            focus("e1", "s5", 0, "email"),
            submit("e2", "s5", S, "checkout"),
            page("e3", "s5", 2 * S, "/checkout/place", 500),
            custom_invalid("e4", "s5", 3 * S, r#"{"form":"checkout"}"#),
        ]);
        let r = forms(&db, None);
        let f = find(&r, "checkout");
        assert_eq!((f.started, f.submitted, f.abandoned), (5, 5, 0));
        assert_eq!((f.failed_submit_sessions, f.failed_submits), (3, 3));
    }

    #[test]
    fn a_flow_with_no_form_is_sent_by_the_sites_submit_event() {
        let said = |id: &str, session: &str, ts: i64, props: &str| {
            custom(id, session, ts, CUSTOM_SUBMIT, props)
        };
        let db = Db::new();
        db.insert(&[
            // s1: email and card, "Buy now" posts the order in script and the
            // site says so: submitted, not abandoned.
            fe("a1", "s1", 0, "focus", "express", "email"),
            fe("a2", "s1", S, "focus", "express", "card"),
            said("a3", "s1", 2 * S, r#"{"form":"express"}"#),
            // s2: the same, refused once by the site, then sent: 1 failed submit.
            fe("b1", "s2", 0, "focus", "express", "email"),
            said("b2", "s2", S, r#"{"form":"express"}"#),
            custom_invalid("b3", "s2", 2 * S, r#"{"form":"express","field":"card"}"#),
            fe("b4", "s2", 3 * S, "focus", "express", "card"),
            said("b5", "s2", 4 * S, r#"{"form":"express"}"#),
            // s3: gives up at the card.
            fe("c1", "s3", 0, "focus", "express", "email"),
            fe("c2", "s3", S, "focus", "express", "card"),
            // s4: a submit event naming no form counts for none.
            fe("d1", "s4", 0, "focus", "express", "email"),
            said("d2", "s4", S, r#"{"step":2}"#),
            // s5: a <form> the page sends in script, and says so too: one
            // attempt, not a failed one.
            fe("e1", "s5", 0, "focus", "express", "email"),
            submit("e2", "s5", S, "express"),
            said("e3", "s5", S + 5, r#"{"form":"express"}"#),
        ]);
        let r = forms(&db, None);
        let f = find(&r, "express");
        assert_eq!((f.started, f.submitted, f.abandoned), (5, 3, 2));
        assert_eq!((f.failed_submit_sessions, f.failed_submits), (1, 1));
        assert_eq!(field(f, "card").last_before_abandon, 1);
        assert_eq!(field(f, "email").last_before_abandon, 1);
    }

    #[test]
    fn a_form_used_without_a_focus_is_started() {
        let db = Db::new();
        db.insert(&[
            // s1: sends the add-to-cart form with its default quantity.
            submit("a1", "s1", 0, "add"),
            // s2: presses Pay with nothing filled in (the browser blocks it) and
            // leaves.
            invalid("b1", "s2", 0, "card"),
            // s3: ticks a box (Safari does not focus it) and sends the form.
            change("c1", "s3", 0, "terms"),
            submit("c2", "s3", S, "checkout"),
            // s4: types in the field focused before the tracker started, leaves it.
            blur("d1", "s4", 0, "card", 2 * S, false),
        ]);
        let r = forms(&db, None);
        let add = find(&r, "add");
        assert_eq!((add.started, add.submitted, add.abandoned), (1, 1, 0));
        let f = find(&r, "checkout");
        assert_eq!((f.started, f.submitted, f.abandoned), (3, 1, 2));
        assert_eq!((f.failed_submit_sessions, f.failed_submits), (1, 1));
        // The browser's check alone reaches no field; a change or a blur does.
        let card = field(f, "card");
        assert_eq!(
            (card.reached, card.invalid, card.position),
            (1, 1, Some(0.0))
        );
        assert_eq!(card.last_before_abandon, 1);
        let terms = field(f, "terms");
        assert_eq!((terms.reached, terms.submitted), (1, 1));
        for form in &r.forms {
            assert!(form.submitted <= form.started, "{}", form.form);
        }
    }

    #[test]
    fn attempts_count_each_failed_submit_once() {
        use Signal::{CustomInvalid as C, Invalid as I, Submit as Sub, Touch as T};
        let failed = |signals: &[Signal]| {
            let mut a = Attempts::default();
            for &s in signals {
                a.push(s);
            }
            a.failed
        };
        assert_eq!(failed(&[]), 0);
        assert_eq!(failed(&[Sub]), 0);
        assert_eq!(failed(&[T, Sub, T]), 0);
        assert_eq!(failed(&[Sub, Sub, Sub]), 2);
        assert_eq!(failed(&[Sub, C, T, Sub]), 1);
        // One blocked attempt fires invalid at each bad field.
        assert_eq!(failed(&[I, I, T, I]), 2);
        // A submit followed by a blocked attempt: both failed.
        assert_eq!(failed(&[Sub, T, I, I]), 2);
        // A submit whose own handler finds the form invalid (nothing touched
        // between): one failed attempt; fixed and sent again: still one.
        assert_eq!(failed(&[Sub, I]), 1);
        assert_eq!(failed(&[T, Sub, I, T, T, Sub]), 1);
        // Custom invalids in a row are one report; a later one without a pending
        // submit is an attempt of its own.
        assert_eq!(failed(&[C, C]), 1);
        assert_eq!(failed(&[Sub, C, C, T, C]), 2);
        // A custom invalid right after a browser-blocked attempt is the same attempt.
        assert_eq!(failed(&[I, C]), 1);
    }

    #[test]
    fn no_data_gives_an_empty_report() {
        let db = Db::new();
        let r = forms(&db, None);
        assert_eq!(r.sessions, 0);
        assert!(r.forms.is_empty());
        assert!(r.table().rows.is_empty());

        db.insert(&[ev("a1", "s1", 0, 1, "pageview").path("/")]);
        let r = forms(&db, None);
        assert_eq!(r.sessions, 1);
        assert!(r.forms.is_empty());
    }

    #[test]
    fn table_has_a_form_row_then_its_fields() {
        let db = Db::new();
        db.insert(&[
            focus("a1", "s1", 0, "email"),
            blur("a2", "s1", 2 * S, "email", 2 * S, true),
            focus("b1", "s2", 0, "email"),
            blur("b2", "s2", S, "email", S, false),
            submit("b3", "s2", 2 * S, "checkout"),
        ]);
        let r = forms(&db, None);
        let out = crate::render(&crate::Report::Forms(r), crate::Format::Table).unwrap();
        let expected = "\
forms · all sites · all time · 2 sessions · 1 forms

form      field   sessions  submitted  completed by another form  abandoned (here)  abandoned %  failed / invalid  median time in field  corrections  left blank
checkout  (form)         2          1                          0                 1        50.0%                 0                     –            0           –
checkout  email          2          1                          –                 1       100.0%                 0                  1.5s            0       50.0%
";
        assert_eq!(out, expected);
    }

    #[test]
    fn a_flow_over_two_forms_and_loose_fields_is_one_flow() {
        let db = Db::new();
        // An order note outside any form on /checkout.
        let note = |id: &str, session: &str, ts: i64, kind: &str| {
            ev(id, session, ts, (ts / S) as i32, kind)
                .path("/checkout")
                .field("note")
        };
        db.insert(&[
            // s1, the buyer: the note, then the address form (never submitted: a
            // script reads it) and the payment form (submitted), all on /checkout.
            note("a0", "s1", 0, "focus"),
            note("a0b", "s1", S, "blur"),
            fe("a1", "s1", 10 * S, "focus", "address", "street"),
            fe("a2", "s1", 12 * S, "blur", "address", "street"),
            fe("a3", "s1", 13 * S, "focus", "payment", "card"),
            submit("a4", "s1", 15 * S, "payment"),
            // s2 gives up in the address form.
            fe("b1", "s2", 0, "focus", "address", "street"),
            fe("b2", "s2", S, "blur", "address", "street"),
            // s3 submits the payment form first, then starts the address form: the
            // submit came before, so the address form is abandoned. The note is the
            // payment form's (the first form s3 touched on the page).
            fe("c1", "s3", 0, "focus", "payment", "card"),
            submit("c2", "s3", S, "payment"),
            fe("c3", "s3", 2 * S, "focus", "address", "street"),
            note("c4", "s3", 3 * S, "focus"),
            // s4: a newsletter form on another page, then the payment: the
            // newsletter is no part of the checkout, so it is abandoned.
            ev("d1", "s4", 0, 0, "focus")
                .path("/")
                .form("newsletter")
                .field("email"),
            fe("d2", "s4", S, "focus", "payment", "card"),
            submit("d3", "s4", 2 * S, "payment"),
            // s5 starts the address, sends the payment form, then goes back to the
            // address and leaves: abandoned after all.
            fe("e1", "s5", 0, "focus", "address", "street"),
            fe("e2", "s5", S, "focus", "payment", "card"),
            submit("e3", "s5", 2 * S, "payment"),
            fe("e4", "s5", 3 * S, "focus", "address", "street"),
        ]);
        let r = forms(&db, None);
        let row = |f: &FormStats| (f.started, f.submitted, f.completed_by_other, f.abandoned);
        assert_eq!(row(find(&r, "address")), (4, 0, 1, 3));
        assert_eq!(row(find(&r, "payment")), (4, 4, 0, 0));
        assert_eq!(row(find(&r, "newsletter")), (1, 0, 0, 1));
        assert_eq!(r.forms.len(), 3, "no form for the note");
        assert_eq!(names(find(&r, "address")), ["street", "note"]);
        assert_eq!(field(find(&r, "address"), "note").reached, 1);
        assert_eq!(names(find(&r, "payment")), ["card", "note"]);
        assert_eq!(field(find(&r, "address"), "street").last_before_abandon, 3);
    }

    #[test]
    fn an_empty_form_name_is_rejected() {
        assert!(matches!(
            Forms::new(Some(" ")),
            Err(Error::BadParam { name: "form", .. })
        ));
        assert!(Forms::new(None).is_ok());
    }
}
