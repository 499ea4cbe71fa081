//! The `analyzer` CLI: flags in, a rendered report out.
//!
//! `analyzer [--db PATH | --collector URL [--token TOKEN]] [--site ID] [--since T]
//! [--until T] [--include-bots] [--format table|json|csv|html] [--out FILE] AUDIT [ARGS]`
//!
//! The flags become an [`AuditRequest`]; with `--db` (default
//! `./data/clicktrail.duckdb`) it runs here on a read-only connection, with
//! `--collector` it is posted to a running collector, which owns the file (with the
//! API token of `--token` or `CLICKTRAIL_TOKEN`). Either way the [`analyzer::Report`]
//! is rendered locally and written to stdout or `--out`. Failures print one line on
//! stderr (control characters shown as escapes) and exit with status 1.

// Doc comments here are clap's --help text, not Markdown.
#![allow(clippy::doc_markdown)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use analyzer::remote::Remote;
use analyzer::saved::{self, FunnelsAction};
use analyzer::{AuditRequest, Format, SavedFunnel, Scope};
use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

/// The DuckDB file the collector writes by default.
const DEFAULT_DB: &str = "./data/clicktrail.duckdb";

/// Usability audits over clicktrail's events.
#[derive(Debug, Parser)]
#[command(name = "analyzer", version, about, max_term_width = 100)]
struct Cli {
    /// DuckDB file to read; it must not be held by a running collector (then use
    /// --collector) [default: ./data/clicktrail.duckdb]
    #[arg(long, value_name = "PATH", global = true, conflicts_with = "collector")]
    db: Option<PathBuf>,

    /// Ask a running collector instead of reading the file, e.g. http://127.0.0.1:8080
    #[arg(long, value_name = "URL", global = true)]
    collector: Option<String>,

    /// API token for --collector, sent as `Authorization: Bearer TOKEN` (create one
    /// on the collector's host with `clicktrail tokens create --user NAME`)
    #[arg(
        long,
        value_name = "TOKEN",
        global = true,
        env = "CLICKTRAIL_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// Only this site (the snippet's data-site)
    #[arg(long, value_name = "ID", global = true)]
    site: Option<String>,

    /// From this time on (inclusive): 2026-11-24T10:00:00Z, 2026-11-24, or 90m/24h/7d ago
    #[arg(long, value_name = "T", global = true)]
    since: Option<String>,

    /// Up to this time (exclusive), same forms as --since
    #[arg(long, value_name = "T", global = true)]
    until: Option<String>,

    /// Count the events of bots (device `bot`, from crawler user agents) too; they are
    /// left out by default
    #[arg(long, global = true)]
    include_bots: bool,

    /// Output format [default: from the --out file's extension (.html, .json, .csv),
    /// else table]
    #[arg(long, value_enum, global = true)]
    format: Option<FormatArg>,

    /// Write the output to FILE instead of stdout
    #[arg(long, short, value_name = "FILE", global = true)]
    out: Option<PathBuf>,

    #[command(subcommand)]
    audit: AuditCmd,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// How many sessions get how far through a sequence of steps
    Funnel {
        /// A step, in order (repeat): page:/cart, page:/product/*, screen:payment,
        /// click:#pay, submit:checkout, event:order_placed. Without steps: a saved
        /// funnel (--name, else the site's first saved one)
        #[arg(long = "step", value_name = "SPEC")]
        steps: Vec<String>,

        /// Run this saved funnel (see `analyzer funnels`)
        #[arg(long, value_name = "NAME", conflicts_with = "steps")]
        name: Option<String>,

        /// All steps within this long of the first: 30m, 2h, 1d [default: the saved
        /// funnel's, else 30m]
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,
    },
    /// List, save or delete saved funnels: the default of `funnel` and `report`, and
    /// (the first one's last step) the default goal of `ads`
    Funnels {
        #[command(subcommand)]
        action: Option<FunnelsCmd>,
    },
    /// Drop-off by screen: sessions, views, exits, time on screen, next screens
    Screens {
        /// How many of the most common next screens to list per screen
        #[arg(long, value_name = "N", default_value_t = 3)]
        top_next: usize,
    },
    /// Which forms people give up on: started, submitted, abandoned, failed submits,
    /// and per field reach, time, corrections, blanks and the last field before giving up
    Forms {
        /// Only this form (its name, id or selector as the tracker records it)
        #[arg(long, value_name = "NAME")]
        form: Option<String>,
    },
    /// Rage clicks, dead clicks, error clicks and quick backs, by page and element
    Frustration {
        /// A rage click is at least this many clicks on one element...
        #[arg(long, value_name = "N", default_value_t = 3)]
        rage_clicks: u32,

        /// ...the last at most this many ms after the first...
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        rage_ms: u64,

        /// ...each at most this many px from the first
        #[arg(long, value_name = "PX", default_value_t = 30)]
        rage_px: u32,

        /// A page left by going back within this many ms is a quick back
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        quick_back_ms: u64,
    },
    /// JavaScript errors by message and page; pages served with HTTP status >= 400
    Errors {
        /// How many of the pages that led to an error page to list per page
        #[arg(long, value_name = "N", default_value_t = 3)]
        top_from: usize,
    },
    /// Links almost never clicked (CTR with a 95% Wilson interval), clicks that lead
    /// to error pages, and the error pages
    Links {
        /// A link needs this many viewable impressions to be called unused
        #[arg(long, value_name = "N", default_value_t = 30)]
        min_impressions: u64,

        /// ...and the upper end of its CTR's 95% interval below this fraction (0.01 = 1%)
        #[arg(long, value_name = "FRACTION", default_value_t = 0.01)]
        max_ctr: f64,
    },
    /// Do some ads perform better? On-site variants (data-ct-ad="CAMPAIGN:VARIANT")
    /// compared with a z-test, and inbound campaigns (utm_*, click ids), against a goal
    Ads {
        /// The goal: page:/thanks, screen:done, click:#buy, submit:checkout,
        /// event:purchase [default: the last step of the site's first saved funnel,
        /// else event:purchase]
        #[arg(long, value_name = "SPEC")]
        goal: Option<String>,

        /// The control variant of each campaign [default: its first variant by name]
        #[arg(long, value_name = "VARIANT")]
        control: Option<String>,

        /// Fewest exposed sessions in each variant before a verdict
        #[arg(long, value_name = "N", default_value_t = 100)]
        min_sessions: u64,

        /// The intended split of exposures for the sample-ratio check, e.g. A:90,B:10
        /// [default: even]
        #[arg(long, value_name = "VARIANT:WEIGHT,...")]
        split: Option<String>,
    },
    /// Every audit in one report: `--format html --out report.html` for a
    /// self-contained page with charts
    Report {
        /// Funnel steps, in order (repeat) [default: every saved funnel of the site]
        #[arg(long = "step", value_name = "SPEC")]
        steps: Vec<String>,

        /// All funnel steps within this long of the first [default: the saved
        /// funnel's, else 30m]
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,

        /// Goal for the ads section (a step spec) [default: as for `ads`]
        #[arg(long, value_name = "SPEC")]
        goal: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum FunnelsCmd {
    /// The saved funnels that apply to --site (all of them without --site); the default
    List,
    /// Save a funnel for --site (for every site without --site); saving a name again
    /// replaces its steps
    Save {
        /// Its name: letters, digits, - _ .
        name: String,

        /// A step, in order (repeat), as for `funnel`
        #[arg(long = "step", value_name = "SPEC", required = true)]
        steps: Vec<String>,

        /// All steps within this long of the first
        #[arg(long, value_name = "DURATION", default_value = "30m")]
        window: String,
    },
    /// Delete the funnel NAME of --site (of every site without --site)
    Delete {
        /// Its name
        name: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
    Csv,
    Html,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Csv => Format::Csv,
            FormatArg::Html => Format::Html,
        }
    }
}

impl Cli {
    fn request(&self) -> AuditRequest {
        let scope = Scope {
            site: self.site.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            include_bots: self.include_bots,
        };
        match &self.audit {
            AuditCmd::Funnel {
                steps,
                name,
                window,
            } => AuditRequest::Funnel {
                scope,
                steps: steps.clone(),
                name: name.clone(),
                window: window.clone(),
            },
            AuditCmd::Funnels { .. } => unreachable!("funnels is not an audit"),
            AuditCmd::Screens { top_next } => AuditRequest::Screens {
                scope,
                top_next: *top_next,
            },
            AuditCmd::Forms { form } => AuditRequest::Forms {
                scope,
                form: form.clone(),
            },
            AuditCmd::Frustration {
                rage_clicks,
                rage_ms,
                rage_px,
                quick_back_ms,
            } => AuditRequest::Frustration {
                scope,
                rage_clicks: *rage_clicks,
                rage_ms: *rage_ms,
                rage_px: *rage_px,
                quick_back_ms: *quick_back_ms,
            },
            AuditCmd::Errors { top_from } => AuditRequest::Errors {
                scope,
                top_from: *top_from,
            },
            AuditCmd::Links {
                min_impressions,
                max_ctr,
            } => AuditRequest::Links {
                scope,
                min_impressions: *min_impressions,
                max_ctr: *max_ctr,
            },
            AuditCmd::Ads {
                goal,
                control,
                min_sessions,
                split,
            } => AuditRequest::Ads {
                scope,
                goal: goal.clone(),
                control: control.clone(),
                min_sessions: *min_sessions,
                split: split.clone(),
            },
            AuditCmd::Report {
                steps,
                window,
                goal,
            } => AuditRequest::Report {
                scope,
                steps: steps.clone(),
                window: window.clone(),
                goal: goal.clone(),
            },
        }
    }

    /// What `funnels …` asks for.
    fn funnels_action(&self, action: Option<&FunnelsCmd>) -> FunnelsAction {
        let site = || {
            self.site
                .clone()
                .unwrap_or_else(|| saved::ANY_SITE.to_owned())
        };
        match action {
            None | Some(FunnelsCmd::List) => FunnelsAction::List {
                site: self.site.clone(),
            },
            Some(FunnelsCmd::Save {
                name,
                steps,
                window,
            }) => FunnelsAction::Save(SavedFunnel {
                site: site(),
                name: name.clone(),
                steps: steps.clone(),
                window: window.clone(),
            }),
            Some(FunnelsCmd::Delete { name }) => FunnelsAction::Delete {
                site: site(),
                name: name.clone(),
            },
        }
    }

    /// `--format`, else what the `--out` file's extension says, else a table.
    fn format(&self) -> Format {
        if let Some(f) = self.format {
            return f.into();
        }
        let ext = self.out.as_ref().and_then(|p| p.extension()?.to_str());
        match ext.map(str::to_ascii_lowercase).as_deref() {
            Some("html" | "htm") => Format::Html,
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            _ => Format::Table,
        }
    }

    fn db_path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
    }

    /// The collector to ask, with the token if one is given (an empty one is none).
    fn remote(&self) -> Option<Remote> {
        let url = self.collector.as_deref()?;
        Some(Remote::new(url).with_token(self.token.as_deref()))
    }
}

/// `funnels …`: on the collector, or on the file (read-write to change it).
fn funnels(cli: &Cli, action: &FunnelsAction) -> anyhow::Result<String> {
    let list = if let Some(remote) = cli.remote() {
        remote.saved_funnels(action)?
    } else if let FunnelsAction::List { .. } = action {
        saved::apply(&analyzer::open_read_only(&cli.db_path())?, action, 0)?
    } else {
        let conn = analyzer::load::open_read_write(&cli.db_path())?;
        saved::apply(&conn, action, analyzer::scope::now_ms())?
    };
    Ok(analyzer::render_funnels(&list, cli.format())?)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let text = if let AuditCmd::Funnels { action } = &cli.audit {
        funnels(cli, &cli.funnels_action(action.as_ref()))?
    } else {
        let req = cli.request();
        let report = if let Some(remote) = cli.remote() {
            remote.run(&req)?
        } else {
            let conn = analyzer::open_read_only(&cli.db_path())?;
            analyzer::run(&conn, &req)?
        };
        analyzer::render(&report, cli.format())?
    };
    if let Some(path) = &cli.out {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .context("cannot write to stdout")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, and nothing a terminal would act on: messages can quote
            // the collector's answer or names from the data.
            let message = format!("{err:#}");
            eprintln!(
                "error: {}",
                analyzer::render::terminal_safe(
                    &message.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            );
            ExitCode::FAILURE
        }
    }
}
