//! `clicktrail`: run the collector, or manage its users, tokens and sites.
//!
//! Without a subcommand it opens the DuckDB file, starts the writer, registers the
//! `--sites` (and the demo site), creates the first admin from
//! `CLICKTRAIL_ADMIN_PASSWORD`, serves HTTP until SIGINT/SIGTERM, then stops
//! accepting, drains, commits and checkpoints. `users`, `tokens`, `sites` and `erase`
//! work on a database file no collector holds (while one runs, use its `/api/*`).

// Doc comments here are clap's --help text, not Markdown.
#![allow(clippy::doc_markdown)]

use std::{io::BufRead as _, path::Path, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use clicktrail_collector::{
    App, Config,
    accounts::{self, Change, Site, State},
    retention, router, server,
    store::{self, Store},
};
use tracing_subscriber::EnvFilter;

/// clicktrail collector: receives tracker batches and commits them to DuckDB; serves
/// the audits to signed-in users.
#[derive(Debug, Parser)]
#[command(name = "clicktrail", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    config: Config,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Users who may read the audits (the database must not be held by a collector)
    #[command(subcommand)]
    Users(UsersCmd),
    /// API tokens (`Authorization: Bearer …`, `analyzer --token`)
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Sites whose events /collect takes
    #[command(subcommand)]
    Sites(SitesCmd),
    /// Delete one visitor's, session's or identified user's events of a site (GDPR)
    Erase {
        #[arg(long)]
        site: String,
        #[arg(long, conflicts_with_all = ["session", "user"])]
        visitor: Option<String>,
        #[arg(long, conflicts_with = "user")]
        session: Option<String>,
        /// The id given to clicktrail('identify', id)
        #[arg(long)]
        user: Option<String>,
    },
    /// Load events from a Parquet file (columns site, session_id, kind, ts as Int64
    /// ms, seq, path, and any other events column by name), checked and scrubbed as
    /// /collect does, each event once
    Import {
        /// The Parquet file
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCmd {
    /// List users and their sites
    List,
    /// Add a user; the password comes from CLICKTRAIL_PASSWORD or the first line of stdin
    Add {
        name: String,
        /// May see every site and manage users and sites
        #[arg(long)]
        admin: bool,
        /// A site the user may see (repeat)
        #[arg(long = "site")]
        sites: Vec<String>,
    },
    /// Set a user's password (from CLICKTRAIL_PASSWORD or the first line of stdin)
    Passwd { name: String },
    /// Delete a user and their tokens
    Delete { name: String },
    /// Let a user see a site
    Grant { name: String, site: String },
    /// Take a site away from a user
    Revoke { name: String, site: String },
}

#[derive(Debug, Subcommand)]
enum TokensCmd {
    /// Create a token for a user and print it (it is shown only this once)
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List tokens (never their secrets)
    List,
    /// Revoke a token by its id
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
enum SitesCmd {
    /// List registered sites
    List,
    /// Register a site, or change its settings
    Add {
        id: String,
        /// A domain its pages are on (repeat; subdomains included). None: any.
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Delete its events older than this many days
        #[arg(long)]
        retention_days: Option<u32>,
        /// Store identify() ids as sent instead of as a keyed hash
        #[arg(long)]
        clear_ids: bool,
    },
    /// Stop taking a site's events (they stay stored)
    Delete { id: String },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CLICKTRAIL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(cli.config)),
        Some(cmd) => manage(&cli.config.db, cmd),
    }
}

/// A password from `CLICKTRAIL_PASSWORD`, else the first line of stdin.
fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("CLICKTRAIL_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn apply(conn: &duckdb::Connection, state: &mut State, change: &Change) -> anyhow::Result<()> {
    state.check(change)?;
    change.apply_db(conn)?;
    state.apply(change);
    Ok(())
}

/// `users`, `tokens`, `sites`, `erase`, `import`, on a file no collector holds.
fn manage(db: &Path, cmd: Command) -> anyhow::Result<()> {
    let conn = store::open_file(db).map_err(|e| {
        anyhow::anyhow!("{e}\n(while a collector runs, manage accounts through its /api/*)")
    })?;
    let mut state = State::load(&conn)?;
    match cmd {
        Command::Users(UsersCmd::List) => {
            for u in state.users.values() {
                let sites = if u.admin {
                    "every site".to_owned()
                } else {
                    u.sites.iter().cloned().collect::<Vec<_>>().join(", ")
                };
                println!(
                    "{}\t{}\t{sites}",
                    u.name,
                    if u.admin { "admin" } else { "user" }
                );
            }
        }
        Command::Users(UsersCmd::Add { name, admin, sites }) => {
            let hash = accounts::hash_password(&password()?)?;
            apply(
                &conn,
                &mut state,
                &Change::AddUser {
                    name: name.clone(),
                    password_hash: hash,
                    admin,
                    sites,
                    created_ms: clicktrail_collector::ingest::now_ms(),
                },
            )?;
            println!("user {name} added");
        }
        Command::Users(UsersCmd::Passwd { name }) => {
            let hash = accounts::hash_password(&password()?)?;
            apply(
                &conn,
                &mut state,
                &Change::SetPassword {
                    name: name.clone(),
                    password_hash: hash,
                },
            )?;
            println!("password of {name} changed");
        }
        Command::Users(UsersCmd::Delete { name }) => {
            apply(&conn, &mut state, &Change::DeleteUser(name.clone()))?;
            println!("user {name} deleted, with their tokens");
        }
        Command::Users(UsersCmd::Grant { name, site }) => {
            apply(&conn, &mut state, &Change::Grant { user: name, site })?;
        }
        Command::Users(UsersCmd::Revoke { name, site }) => {
            apply(&conn, &mut state, &Change::Revoke { user: name, site })?;
        }
        Command::Tokens(TokensCmd::Create { user, label }) => {
            let (change, token) = accounts::token_for(&user, &label);
            apply(&conn, &mut state, &change)?;
            println!("{token}");
        }
        Command::Tokens(TokensCmd::List) => {
            let mut tokens: Vec<_> = state.tokens.values().collect();
            tokens.sort_by_key(|t| (t.created_ms, t.id.clone()));
            for t in tokens {
                println!("{}\t{}\t{}", t.id, t.user, t.label);
            }
        }
        Command::Tokens(TokensCmd::Revoke { id }) => {
            apply(&conn, &mut state, &Change::DeleteToken(id.clone()))?;
            println!("token {id} revoked");
        }
        Command::Sites(SitesCmd::List) => {
            for s in state.sites.values() {
                println!(
                    "{}\tdomains: {}\tretention: {}\tids: {}",
                    s.id,
                    if s.domains.is_empty() {
                        "any".to_owned()
                    } else {
                        s.domains.join(",")
                    },
                    s.retention_days
                        .map_or_else(|| "forever".to_owned(), |d| format!("{d} days")),
                    if s.clear_ids { "clear" } else { "hashed" }
                );
            }
        }
        Command::Sites(SitesCmd::Add {
            id,
            domains,
            retention_days,
            clear_ids,
        }) => {
            let mut site = state
                .sites
                .get(&id)
                .cloned()
                .unwrap_or_else(|| Site::new(&id));
            site.domains = domains;
            site.retention_days = retention_days;
            site.clear_ids = clear_ids;
            site.validate()?;
            apply(&conn, &mut state, &Change::PutSite(site))?;
            println!("site {id} registered");
        }
        Command::Sites(SitesCmd::Delete { id }) => {
            apply(&conn, &mut state, &Change::DeleteSite(id.clone()))?;
            println!("site {id} no longer takes events (its events stay stored)");
        }
        Command::Erase {
            site,
            visitor,
            session,
            user,
        } => {
            let req = retention::EraseRequest {
                site: site.clone(),
                visitor_id: visitor,
                session_id: session,
                user_id: user,
            };
            let target = req.target(&state.uid_key).map_err(anyhow::Error::msg)?;
            let n = retention::erase(&conn, &site, &target)?;
            println!("{n} events of site {site} deleted");
        }
        Command::Import { file } => {
            // The import opens the file for bulk writes; no other handle may hold it.
            drop(conn);
            let summary = clicktrail_collector::import::import(db, &file, state.uid_key)?;
            println!("{}", summary.describe(&file));
        }
    }
    Ok(())
}

/// Registers the `--sites` and the demo site, creates the first admin (and token)
/// from the environment, and saves the demo funnel.
async fn first_start(app: &App) -> anyhow::Result<()> {
    let mut sites = app.config.sites.clone();
    if app.config.demo {
        sites.push("demo".to_owned());
    }
    for id in sites {
        if app.accounts.read(|s| s.sites.contains_key(&id)) {
            continue;
        }
        let mut site = Site::new(&id);
        site.validate()?;
        app.accounts
            .apply(&app.store, Change::PutSite(site))
            .await?;
        tracing::info!(site = %id, "site registered");
    }
    if app.accounts.read(|s| s.users.is_empty()) {
        let (password, shown) = match std::env::var("CLICKTRAIL_ADMIN_PASSWORD") {
            Ok(p) if !p.is_empty() => (p, false),
            _ if app.config.demo => (random_password(), true),
            _ => {
                tracing::warn!(
                    "no users yet: start once with CLICKTRAIL_ADMIN_PASSWORD set to create `admin`, \
                     or run `clicktrail users add NAME --admin` while the collector is stopped"
                );
                (String::new(), false)
            }
        };
        if !password.is_empty() {
            let hash = tokio::task::spawn_blocking(move || {
                accounts::hash_password(&password).map(|h| (h, password))
            })
            .await??;
            app.accounts
                .apply(
                    &app.store,
                    Change::AddUser {
                        name: "admin".to_owned(),
                        password_hash: hash.0,
                        admin: true,
                        sites: Vec::new(),
                        created_ms: clicktrail_collector::ingest::now_ms(),
                    },
                )
                .await?;
            if shown {
                let (change, token) = accounts::token_for("admin", "demo");
                app.accounts.apply(&app.store, change).await?;
                tracing::info!(
                    "created the user `admin` with the password {} and an API token (both shown this once; \
                     change the password in the dashboard's account page or with `clicktrail users passwd admin`); \
                     dashboard: sign in at /app/ as `admin`; for the analyzer: export CLICKTRAIL_TOKEN={token}",
                    hash.1
                );
            } else {
                tracing::info!("created the user `admin` from CLICKTRAIL_ADMIN_PASSWORD");
            }
        }
    }
    if let Ok(token) = std::env::var("CLICKTRAIL_ADMIN_TOKEN")
        && !token.is_empty()
    {
        let known = app.accounts.read(|s| s.token_user(&token).is_some());
        let admin = app.accounts.read(|s| s.users.contains_key("admin"));
        if !known && admin {
            if token.len() < 32 {
                bail!("CLICKTRAIL_ADMIN_TOKEN must be at least 32 characters");
            }
            let (mut change, _) = accounts::token_for("admin", "CLICKTRAIL_ADMIN_TOKEN");
            if let Change::AddToken { hash, .. } = &mut change {
                *hash = accounts::token_hash(&token);
            }
            app.accounts.apply(&app.store, change).await?;
            tracing::info!("API token of `admin` registered from CLICKTRAIL_ADMIN_TOKEN");
        }
    }
    if app.config.demo && serves_demo_shop(&app.config.demo_dir) {
        // The demo shop's checkout flow, so the first report has a funnel (not
        // for a shop of another `--demo-dir`, which has none of its steps).
        app.store
            .write(|conn| {
                let own = analyzer::saved::list(conn, Some("demo"))?
                    .iter()
                    .any(|f| f.site == "demo");
                if !own {
                    let funnel = analyzer::saved::demo_funnel();
                    analyzer::saved::save(conn, &funnel, analyzer::scope::now_ms())?;
                }
                Ok::<(), analyzer::Error>(())
            })
            .await?
            .context("cannot save the demo shop's funnel")?;
    }
    Ok(())
}

/// Whether `dir` holds the bundled demo shop: the cart and product pages, and a
/// checkout with the shipping and payment screens the demo funnel names.
fn serves_demo_shop(dir: &std::path::Path) -> bool {
    dir.join("cart.html").is_file()
        && dir.join("product").is_dir()
        && std::fs::read_to_string(dir.join("checkout.html")).is_ok_and(|page| {
            page.contains(r#"data-ct-screen="shipping""#)
                && page.contains(r#"data-ct-screen="payment""#)
        })
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("the operating system provides randomness");
    b.iter()
        .map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char)
        .collect()
}

/// Deletes events past their site's retention now and every hour.
fn spawn_retention(app: App) {
    tokio::spawn(async move {
        loop {
            let state = app.accounts.read(Clone::clone);
            if state.sites.values().any(|s| s.retention_days.is_some()) {
                let now = clicktrail_collector::ingest::now_ms();
                match app
                    .store
                    .write(move |conn| retention::sweep(conn, &state, now))
                    .await
                {
                    Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "retention"),
                    Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

/// Moves the sessions idle for longer than the tracker's session timeout (plus its
/// retries) into the sorted layout, every minute, on the writer.
fn spawn_compaction(app: App) {
    const IDLE_MS: i64 = protocol::SESSION_IDLE_MS as i64 + 5 * 60_000;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let before = clicktrail_collector::ingest::now_ms() - IDLE_MS;
            let started = std::time::Instant::now();
            match app
                .store
                .write(move |conn| ::store::compact(conn, ::store::Select::IdleBefore(before)))
                .await
            {
                Ok(Ok(done)) if done.rows > 0 => tracing::info!(
                    sessions = done.sessions,
                    rows = done.rows,
                    took_ms = started.elapsed().as_millis() as u64,
                    "compacted"
                ),
                Ok(Err(e)) => tracing::error!(error = %e, "compaction failed"),
                _ => {}
            }
        }
    });
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let fds = server::raise_fd_limit();
    let (store, writer) = Store::open(&config.db, config.writer_options())
        .map_err(|e| anyhow::anyhow!("cannot start: {e}"))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let app = App::new(config, store.clone()).map_err(|e| anyhow::anyhow!("cannot start: {e}"))?;
    first_start(&app).await?;
    spawn_retention(app.clone());
    spawn_compaction(app.clone());
    let config = app.config.clone();
    tracing::info!(%addr, db = %config.db.display(), demo = config.demo, fds, "clicktrail collector listening");
    tracing::info!(
        "dashboard: http://{addr}/app/ (sign in as `admin` with the password printed on the first start, \
         or set with `clicktrail users passwd admin`)"
    );
    if config.demo {
        tracing::info!("demo shop: http://{addr}/demo/");
        tracing::info!(
            "after a few visits: cargo run --release --bin analyzer -- --collector http://{addr} --token TOKEN report --out report.html \
             (a token: `curl -u admin:PASSWORD -X POST http://{addr}/api/tokens`)"
        );
    }
    if !config.tracker_dir.join("ct.js").exists() {
        tracing::warn!("tracker not built: run `cargo xtask build-tracker`");
    }
    let opts = server::ServerOptions {
        max_connections: config.max_connections,
        max_per_ip: config.max_connections_per_ip,
        header_timeout: Duration::from_secs(config.request_timeout_s.max(1)),
        ..server::ServerOptions::default()
    };
    server::serve(listener, router(app), opts, shutdown_signal()).await?;
    tracing::info!("stopped accepting; draining the write queue");
    store.close();
    drop(store);
    tokio::task::spawn_blocking(move || writer.join()).await?;
    tracing::info!("all accepted events committed; bye");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
