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

/// An audit (its parameters are [`AuditRequest`]'s: the same for the CLI and the
/// collector's JSON API), or the saved funnels.
#[derive(Debug, Subcommand)]
enum AuditCmd {
    #[command(flatten)]
    Audit(AuditRequest),
    /// List, save or delete saved funnels: the default of `funnel` and `report`, and
    /// (the first one's last step) the default goal of `ads`
    Funnels {
        #[command(subcommand)]
        action: Option<FunnelsCmd>,
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
        let AuditCmd::Audit(request) = &self.audit else {
            unreachable!("funnels is not an audit")
        };
        let mut request = request.clone();
        *request.scope_mut() = scope;
        request
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
