//! The `report` audit: every audit of a scope in one self-contained HTML file that a
//! designer or marketer would rather look at than read. Sections come from the
//! audits' own reports ([`Report`]); each gets the question it answers, its facts,
//! an SVG chart where one helps (drawn with plotters) and a sortable table (from the
//! audit's [`Table`]). No external requests: styles, charts and the sorting script
//! are inline. Templated with minijinja (`templates/report.html`).

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};
use serde::{Deserialize, Serialize};

use crate::{Error, Report, ResolvedScope, table::Table};

/// All audits of one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullReport {
    pub scope: ResolvedScope,
    pub sessions: u64,
    /// One report per audit, in reading order.
    pub sections: Vec<Report>,
}

impl FullReport {
    /// A table of contents: one row per section.
    pub fn table(&self) -> Table {
        Table {
            audit: "report",
            facts: vec![format!("{} sessions", self.sessions)],
            columns: vec![("audit", "audit"), ("rows", "rows")],
            rows: self
                .sections
                .iter()
                .map(|r| {
                    vec![
                        crate::table::Cell::Text(r.audit().to_owned()),
                        crate::table::Cell::Count(r.table().rows.len() as u64),
                    ]
                })
                .collect(),
        }
    }
}

const TEMPLATE: &str = include_str!("templates/report.html");

/// One audit's section (see [`section`]): its title, question, facts, chart and
/// sortable table. The report includes it per audit; the dashboard's pages too.
pub const SECTION_TEMPLATE: &str = include_str!("templates/section.html");

/// The script that sorts a `table.sortable` by the clicked column (by each cell's
/// `data-v`, numerically when both values are numbers): twenty lines, so written
/// here rather than pulled from a table library; the report and the dashboard share it.
pub const SORT_JS: &str = include_str!("templates/sort.js");

const BAR: RGBColor = RGBColor(0x24, 0x58, 0xd6);
const DROP: RGBColor = RGBColor(0xf3, 0xc7, 0xb3);
const INK: RGBColor = RGBColor(0x1d, 0x23, 0x30);
const MUTED: RGBColor = RGBColor(0x5f, 0x6b, 0x7a);

/// The question each audit answers, for people.
fn question(audit: &str) -> &'static str {
    match audit {
        "funnel" => "Where do people drop out of the flow?",
        "screens" => "Which screens do people leave from, and where do they go next?",
        "forms" => "Which form field makes people give up?",
        "links" => "Which links are almost never clicked, and which lead nowhere?",
        "ads" => "Do some ads and campaigns perform better?",
        "frustration" => {
            "Where do people rage-click, click on dead elements, or bounce straight back?"
        }
        "errors" => "Which JavaScript errors and error pages do visitors hit?",
        _ => "",
    }
}

/// One labelled horizontal bar: `value` (and an optional lighter remainder up to `whole`).
struct Bar {
    label: String,
    value: f64,
    whole: Option<f64>,
    /// A confidence interval drawn as a whisker over the bar.
    range: Option<(f64, f64)>,
    note: String,
}

fn fail(e: impl std::fmt::Display) -> Error {
    Error::Render(e.to_string())
}

/// Horizontal bars with labels on the left and notes on the right, as inline SVG.
fn bars(title: &str, bars: &[Bar]) -> Result<Option<String>, Error> {
    if bars.is_empty() {
        return Ok(None);
    }
    let (w, row, top, label_w, note_w) = (900i32, 30i32, 34i32, 260i32, 220i32);
    let h = top + row * bars.len() as i32 + 10;
    let max = bars
        .iter()
        .map(|b| {
            b.whole
                .unwrap_or(b.value)
                .max(b.value)
                .max(b.range.map_or(0.0, |(_, high)| high))
        })
        .fold(0.0, f64::max)
        .max(1e-9);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let font = |size: i32, color: &RGBColor, h: HPos| {
            ("sans-serif", size)
                .into_font()
                .color(color)
                .pos(Pos::new(h, VPos::Center))
        };
        root.draw(&Text::new(
            title.to_string(),
            (0, 12),
            font(15, &INK, HPos::Left),
        ))
        .map_err(fail)?;
        let span = f64::from(w - label_w - note_w - 20);
        for (i, b) in bars.iter().enumerate() {
            let y = top + row * i as i32;
            let x0 = label_w + 10;
            let label: String = b.label.chars().take(38).collect();
            root.draw(&Text::new(
                label,
                (label_w, y + row / 2 - 2),
                font(13, &INK, HPos::Right),
            ))
            .map_err(fail)?;
            if let Some(whole) = b.whole {
                let xw = x0 + (whole / max * span) as i32;
                root.draw(&Rectangle::new(
                    [(x0, y + 4), (xw.max(x0 + 1), y + row - 8)],
                    DROP.filled(),
                ))
                .map_err(fail)?;
            }
            let xv = x0 + (b.value / max * span) as i32;
            root.draw(&Rectangle::new(
                [(x0, y + 4), (xv.max(x0 + 1), y + row - 8)],
                BAR.filled(),
            ))
            .map_err(fail)?;
            if let Some((lo, hi)) = b.range {
                let (xl, xh) = (x0 + (lo / max * span) as i32, x0 + (hi / max * span) as i32);
                let mid = y + row / 2 - 2;
                let ink = INK.stroke_width(2);
                root.draw(&PathElement::new(vec![(xl, mid), (xh, mid)], ink))
                    .map_err(fail)?;
                for x in [xl, xh] {
                    root.draw(&PathElement::new(vec![(x, mid - 6), (x, mid + 6)], ink))
                        .map_err(fail)?;
                }
            }
            let note_x = x0 + span as i32 + 10;
            root.draw(&Text::new(
                b.note.clone(),
                (note_x, y + row / 2 - 2),
                font(13, &MUTED, HPos::Left),
            ))
            .map_err(fail)?;
        }
        root.present().map_err(fail)?;
    }
    Ok(Some(svg))
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

/// The chart of a section, where one helps.
fn chart(report: &Report) -> Result<Option<String>, Error> {
    match report {
        Report::Funnel(f) => {
            let first = f.steps.first().map_or(0, |s| s.entered) as f64;
            let rows: Vec<Bar> = f
                .steps
                .iter()
                .map(|s| Bar {
                    label: s.step.clone(),
                    value: s.entered as f64,
                    whole: Some(first),
                    range: None,
                    note: if s.dropped > 0 {
                        format!(
                            "{} · {} of first · −{}",
                            s.entered,
                            pct(s.conversion_from_first),
                            s.dropped
                        )
                    } else {
                        format!("{} · {} of first", s.entered, pct(s.conversion_from_first))
                    },
                })
                .collect();
            bars(
                "Sessions reaching each step (light: lost since step 1)",
                &rows,
            )
        }
        Report::Screens(s) => {
            let mut by_exits: Vec<_> = s.screens.iter().filter(|x| x.exits > 0).collect();
            by_exits.sort_by(|a, b| b.exits.cmp(&a.exits).then(a.screen.cmp(&b.screen)));
            let rows: Vec<Bar> = by_exits
                .iter()
                .take(10)
                .map(|x| Bar {
                    label: x.screen.clone(),
                    value: x.exits as f64,
                    whole: Some(x.sessions as f64),
                    range: None,
                    note: format!("{} exits of {} · {}", x.exits, x.sessions, pct(x.exit_rate)),
                })
                .collect();
            bars("Top exits (light: sessions that saw the screen)", &rows)
        }
        Report::Forms(f) => {
            let mut rows: Vec<Bar> = f
                .forms
                .iter()
                .flat_map(|form| {
                    form.fields
                        .iter()
                        .filter(|x| x.last_before_abandon > 0)
                        .map(move |x| Bar {
                            label: format!("{} · {}", form.form, x.field),
                            value: x.last_before_abandon as f64,
                            whole: Some(x.reached as f64),
                            range: None,
                            note: format!(
                                "{} gave up here · {} reached it",
                                x.last_before_abandon, x.reached
                            ),
                        })
                })
                .collect();
            rows.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.label.cmp(&b.label)));
            rows.truncate(12);
            bars(
                "Last field touched before giving up (light: sessions that reached it)",
                &rows,
            )
        }
        Report::Ads(a) => {
            let rows: Vec<Bar> = a
                .campaigns
                .iter()
                .flat_map(|c| {
                    c.variants.iter().map(move |v| Bar {
                        label: format!("{}:{}", c.campaign, v.variant),
                        value: v.conversion_rate.unwrap_or(0.0),
                        whole: None,
                        range: v.conversion_low.zip(v.conversion_high),
                        note: format!(
                            "{} converted of {} · {}",
                            v.conversions,
                            v.sessions,
                            pct(v.conversion_rate)
                        ),
                    })
                })
                .collect();
            bars("Conversion after exposure, with 95 % interval", &rows)
        }
        Report::Links(l) => {
            let mut seen: Vec<_> = l.links.iter().filter(|x| x.impressions > 0).collect();
            seen.sort_by(|a, b| {
                b.impressions
                    .cmp(&a.impressions)
                    .then_with(|| a.page.cmp(&b.page))
                    .then_with(|| a.selector.cmp(&b.selector))
            });
            let rows: Vec<Bar> = seen
                .iter()
                .take(12)
                .map(|x| Bar {
                    label: format!("{} {}", x.page, x.selector),
                    value: x.ctr.unwrap_or(0.0),
                    whole: None,
                    range: x.ctr_low.zip(x.ctr_high),
                    note: format!(
                        "{} clicks of {} seen · {}",
                        x.clicks,
                        x.impressions,
                        pct(x.ctr)
                    ),
                })
                .collect();
            bars(
                "Click-through of the most-seen links, with 95 % interval",
                &rows,
            )
        }
        Report::Frustration(f) => {
            let mut worst: Vec<_> = f.issues.iter().collect();
            worst.sort_by(|a, b| {
                b.sessions
                    .cmp(&a.sessions)
                    .then_with(|| b.occurrences.cmp(&a.occurrences))
                    .then_with(|| a.page.cmp(&b.page))
            });
            let rows: Vec<Bar> = worst
                .iter()
                .take(10)
                .map(|x| Bar {
                    label: format!(
                        "{} {}{}",
                        x.kind.label(),
                        x.page,
                        x.selector
                            .as_ref()
                            .map_or_else(String::new, |s| format!(" {s}"))
                    ),
                    value: x.sessions as f64,
                    whole: Some(x.page_sessions as f64),
                    range: None,
                    note: format!(
                        "{} sessions of {} · {}×",
                        x.sessions, x.page_sessions, x.occurrences
                    ),
                })
                .collect();
            bars(
                "Sessions hit, by page and element (light: the page's sessions)",
                &rows,
            )
        }
        _ => Ok(None),
    }
}

fn cells(table: &Table) -> Vec<Vec<minijinja::Value>> {
    table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| {
                    minijinja::context! { human => c.human(), raw => c.raw(), numeric => c.is_numeric() }
                })
                .collect()
        })
        .collect()
}

/// The time range for the page's header, and whether bots were counted.
fn range(scope: &ResolvedScope) -> String {
    let t = |ms: Option<i64>| ms.map(crate::scope::format_ms);
    let range = match (t(scope.since_ms), t(scope.until_ms)) {
        (None, None) => "all time".to_owned(),
        (Some(a), None) => format!("since {a}"),
        (None, Some(b)) => format!("until {b}"),
        (Some(a), Some(b)) => format!("{a} – {b}"),
    };
    if scope.include_bots {
        range + " · bots included"
    } else {
        range
    }
}

/// One audit's section as the report's template reads it: `id`, `title`, `audit`,
/// `question` (what it answers, for people), `facts`, `chart` (an SVG, or none),
/// `columns` (their labels) and `rows` (cells with `human`, `raw` and `numeric`).
/// The dashboard renders its audit pages from the same values.
/// At most `max_rows` rows go into its table (a dashboard page stays light; the
/// downloads have them all); `total_rows` says how many there are.
pub fn section(
    r: &Report,
    id: &str,
    title: &str,
    max_rows: usize,
) -> Result<minijinja::Value, Error> {
    let mut table = r.table();
    let total_rows = table.rows.len();
    table.rows.truncate(max_rows);
    let chart = chart(r)?.map(minijinja::Value::from_safe_string);
    Ok(minijinja::context! {
        total_rows => total_rows,
        id => id,
        title => title,
        audit => r.audit(),
        question => question(r.audit()),
        facts => table.facts.join(" · "),
        chart => chart,
        columns => table.columns.iter().map(|(_, label)| *label).collect::<Vec<_>>(),
        rows => cells(&table),
    })
}

/// A bar chart (SVG) of labelled values, as the report draws them; `None` for no bars.
pub fn bar_chart(title: &str, values: &[(String, f64)]) -> Result<Option<String>, Error> {
    let drawn: Vec<Bar> = values
        .iter()
        .map(|(label, value)| Bar {
            label: label.clone(),
            value: *value,
            whole: None,
            range: None,
            note: format!("{value}"),
        })
        .collect();
    bars(title, &drawn)
}

/// The whole report as one self-contained HTML page.
pub fn html(full: &FullReport) -> Result<String, Error> {
    html_at(full, crate::scope::now_ms())
}

/// [`html`] stamped as generated at `now_ms` (fixed in snapshot tests).
pub fn html_at(full: &FullReport, now_ms: i64) -> Result<String, Error> {
    let mut sections = Vec::new();
    let mut funnels = 0;
    for r in &full.sections {
        // Several funnels: `funnel`, `funnel-2`, …, titled with their saved names.
        let (id, title) = if let Report::Funnel(f) = r {
            funnels += 1;
            let id = if funnels == 1 {
                "funnel".to_owned()
            } else {
                format!("funnel-{funnels}")
            };
            let title = f
                .name
                .as_ref()
                .map_or_else(|| "funnel".to_owned(), |n| format!("funnel · {n}"));
            (id, title)
        } else {
            (r.audit().to_owned(), r.audit().to_owned())
        };
        sections.push(section(r, &id, &title, usize::MAX)?);
    }
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE).map_err(fail)?;
    env.add_template("section.html", SECTION_TEMPLATE)
        .map_err(fail)?;
    let tmpl = env.get_template("report.html").map_err(fail)?;
    tmpl.render(minijinja::context! {
        site => full.scope.site.clone().unwrap_or_else(|| "all sites".to_owned()),
        range => range(&full.scope),
        sessions => full.sessions,
        has_funnel => full.sections.iter().any(|r| matches!(r, Report::Funnel(_))),
        generated => crate::scope::format_ms(now_ms),
        sections => sections,
        sort_js => minijinja::Value::from_safe_string(SORT_JS.to_owned()),
    })
    .map_err(fail)
}

#[cfg(test)]
mod tests {
    use duckdb::Connection;

    use crate::saved::{self, SavedFunnel};
    use crate::testing::{Db, Ev, assert_snapshot, ev, link_seen as seen, page_200 as page};
    use crate::{AuditRequest, Format, Report, Scope, render};

    /// The audits of a full report, in reading order.
    const SECTIONS: [&str; 7] = [
        "funnel",
        "screens",
        "forms",
        "links",
        "frustration",
        "ads",
        "errors",
    ];

    /// 2026-11-24T09:00:00Z
    const T0: i64 = 1_795_510_800_000;
    const S: i64 = 1_000;

    fn click(id: &str, session: &str, ts: i64, path: &str, sel: &str) -> Ev {
        ev(id, session, ts, 3, "click")
            .path(path)
            .selector(sel)
            .xy(100, 200)
    }

    fn field(id: &str, session: &str, ts: i64, kind: &str, name: &str) -> Ev {
        ev(id, session, ts, 4, kind)
            .path("/checkout")
            .form("shipping")
            .field(name)
    }

    /// A small shop day with something for every audit: a buyer who saw ad A, a
    /// rage-clicker who saw ad B and hit an error, a visitor who followed a broken
    /// link, and one who bounced back from help and gave up at the address field.
    fn shop_day() -> Vec<Ev> {
        let t = |s: i64| T0 + s * S;
        vec![
            // b: the buyer.
            page("b1", "b", t(0), "/").url("https://shop.example/?utm_source=mail"),
            seen("b2", "b", t(1), "/", "a#gift", "https://shop.example/gift").text("Gift cards"),
            seen(
                "b3",
                "b",
                t(1),
                "/",
                "a#press",
                "https://shop.example/press",
            ),
            ev("b4", "b", t(2), 5, "ad_view").path("/").ad("winter:A"),
            click("b5", "b", t(3), "/", "a#banner").ad("winter:A"),
            page("b6", "b", t(4), "/product/boots"),
            click("b7", "b", t(10), "/product/boots", "button#add"),
            page("b8", "b", t(11), "/cart"),
            page("b9", "b", t(20), "/checkout").screen("shipping"),
            field("b10", "b", t(21), "focus", "name"),
            field("b11", "b", t(25), "blur", "name")
                .duration_ms(4_000)
                .empty(false),
            field("b12", "b", t(26), "focus", "address"),
            field("b13", "b", t(36), "blur", "address")
                .duration_ms(10_000)
                .empty(false),
            ev("b14", "b", t(37), 6, "submit")
                .path("/checkout")
                .form("shipping"),
            ev("b15", "b", t(38), 7, "screen")
                .path("/checkout")
                .screen("payment"),
            ev("b16", "b", t(60), 8, "custom")
                .path("/checkout")
                .name("purchase"),
            // r: saw ad B, rage-clicked a dead size guide, then an error.
            page("r1", "r", t(100), "/"),
            seen(
                "r2",
                "r",
                t(101),
                "/",
                "a#press",
                "https://shop.example/press",
            ),
            ev("r3", "r", t(102), 5, "ad_view").path("/").ad("winter:B"),
            page("r4", "r", t(110), "/product/boots"),
            // Each click judged dead by the tracker: the next press ends the wait
            // of the one before; the last one's second runs out.
            click("r5", "r", t(111), "/product/boots", "span#size").text("Size guide"),
            ev("r5d", "r", t(111) + 200, 2, "dead_click")
                .path("/product/boots")
                .selector("span#size"),
            click("r6", "r", t(111) + 200, "/product/boots", "span#size").text("Size guide"),
            ev("r6d", "r", t(111) + 400, 2, "dead_click")
                .path("/product/boots")
                .selector("span#size"),
            click("r7", "r", t(111) + 400, "/product/boots", "span#size").text("Size guide"),
            ev("r8", "r", t(112) + 400, 9, "dead_click")
                .path("/product/boots")
                .selector("span#size"),
            click("r9", "r", t(120), "/product/boots", "button#notify").text("Notify me"),
            ev("r10", "r", t(120) + 300, 10, "error")
                .path("/product/boots")
                .message("TypeError: subscribe is not a function")
                .source("https://shop.example/app.js")
                .line(42),
            // g: followed the gift-card link to a page that is not there.
            page("g1", "g", t(200), "/"),
            seen(
                "g2",
                "g",
                t(201),
                "/",
                "a#gift",
                "https://shop.example/gift",
            ),
            click("g3", "g", t(202), "/", "a#gift")
                .href("https://shop.example/gift")
                .text("Gift cards"),
            page("g4", "g", t(203), "/gift")
                .status(404)
                .referrer("https://shop.example/"),
            // q: cart → help → straight back; then gives up at the address field.
            page("q1", "q", t(300), "/cart"),
            page("q2", "q", t(302), "/help"),
            page("q3", "q", t(304), "/cart").nav("back_forward"),
            page("q4", "q", t(310), "/checkout").screen("shipping"),
            field("q5", "q", t(311), "focus", "name"),
            field("q6", "q", t(314), "blur", "name")
                .duration_ms(3_000)
                .empty(false),
            field("q7", "q", t(315), "focus", "address"),
            field("q8", "q", t(330), "blur", "address")
                .duration_ms(15_000)
                .empty(true),
        ]
    }

    #[test]
    fn the_report_of_a_shop_day_renders_as_in_its_snapshots() {
        let db = Db::new();
        db.insert(&shop_day());
        {
            let conn = Connection::open(db.path()).unwrap();
            let funnel = SavedFunnel {
                site: "shop".into(),
                name: "checkout".into(),
                steps: [
                    "page:/",
                    "page:/product/*",
                    "page:/cart",
                    "screen:shipping",
                    "screen:payment",
                    "event:purchase",
                ]
                .map(str::to_owned)
                .to_vec(),
                window: "30m".into(),
            };
            saved::save(&conn, &funnel, T0).unwrap();
        }
        let req = AuditRequest::Report {
            scope: Scope {
                site: Some("shop".into()),
                since: Some("2026-11-24".into()),
                ..Scope::default()
            },
            steps: Vec::new(),
            window: None,
            goal: None,
        };
        let report = crate::run_at(&db.conn(), &req, T0 + 3_600_000).unwrap();
        let Report::Report(full) = &report else {
            panic!("not a full report")
        };
        let audits: Vec<&str> = full.sections.iter().map(Report::audit).collect();
        assert_eq!(audits, SECTIONS);
        assert_eq!(full.sessions, 4);

        assert_snapshot("report.txt", &render(&report, Format::Table).unwrap());
        assert_snapshot("report.csv", &render(&report, Format::Csv).unwrap());
        assert_snapshot("report.json", &render(&report, Format::Json).unwrap());
        // Without a saved funnel the page says how to get one.
        let mut no_funnel = full.clone();
        no_funnel
            .sections
            .retain(|r| !matches!(r, Report::Funnel(_)));
        let html = super::html_at(&no_funnel, T0).unwrap();
        assert!(html.contains("No funnel is saved for this site yet"));
        assert!(
            !super::html_at(full, T0)
                .unwrap()
                .contains("No funnel is saved")
        );
        assert_snapshot(
            "report.html",
            &super::html_at(full, T0 + 3_600_000).unwrap(),
        );
    }

    /// The sections run side by side on their own connections: each equals its
    /// audit run alone, in reading order.
    #[test]
    fn each_section_of_the_report_equals_its_audit_run_alone() {
        let db = Db::new();
        db.insert(&shop_day());
        let conn = db.conn();
        let now = T0 + 3_600_000;
        let request = |audit: &str| -> AuditRequest {
            let mut req = serde_json::json!({"audit": audit, "scope": {"site": "shop"}});
            if audit == "funnel" {
                req["steps"] = serde_json::json!(["page:/", "page:/cart"]);
            }
            serde_json::from_value(req).unwrap()
        };
        let mut full = request("report");
        if let AuditRequest::Report { steps, .. } = &mut full {
            *steps = vec!["page:/".into(), "page:/cart".into()];
        }
        let Report::Report(full) = crate::run_at(&conn, &full, now).unwrap() else {
            panic!("not a full report")
        };
        let alone: Vec<Report> = SECTIONS
            .iter()
            .map(|audit| crate::run_at(&conn, &request(audit), now).unwrap())
            .collect();
        assert_eq!(full.sections, alone);
        assert!(full.sections.iter().all(|s| s.sessions() == 4));
    }
}
