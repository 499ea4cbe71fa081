//! `clicktrail`: run the collector. Opens the DuckDB file, starts the writer, serves
//! HTTP until SIGINT/SIGTERM, then stops accepting, drains, commits and checkpoints.

use anyhow::Context as _;
use clap::Parser;
use clicktrail_collector::{
    App, Config, router,
    store::{Store, WriterOptions},
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CLICKTRAIL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    let opts = WriterOptions {
        queue_capacity: config.queue_capacity,
        commit_max_events: config.commit_max_events,
        linger: std::time::Duration::from_millis(config.commit_linger_ms),
    };
    let (store, writer) = Store::open(&config.db, opts).with_context(|| {
        format!(
            "cannot start: is another process holding {}?",
            config.db.display()
        )
    })?;
    if config.demo {
        // The demo shop's checkout flow, so the first report has a funnel.
        store
            .with_reader(|conn| {
                let own = analyzer::saved::list(conn, Some("demo"))?
                    .iter()
                    .any(|f| f.site == "demo");
                if !own {
                    let funnel = analyzer::saved::demo_funnel();
                    analyzer::saved::save(conn, &funnel, analyzer::scope::now_ms())?;
                }
                Ok::<(), analyzer::Error>(())
            })
            .context("cannot save the demo shop's funnel")?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, db = %config.db.display(), demo = config.demo, "clicktrail collector listening");
    if config.demo {
        tracing::info!("demo shop: http://{addr}/demo/");
        tracing::info!(
            "after a few visits: cargo run --release --bin analyzer -- --collector http://{addr} report --out report.html"
        );
    }
    if !config.tracker_dir.join("ct.js").exists() {
        tracing::warn!(dir = %config.tracker_dir.display(), "tracker not built: run `cargo xtask build-tracker`");
    }
    let app = App::new(config, store.clone());
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
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
