//! What the tracker costs a page: main-thread time per page load of a heavy shop
//! page (a category page of 400 product cards, a 200-link menu, a carousel and a
//! form, about 6,000 elements), in a real headless Chromium.
//!
//! Each round loads the page twice, once without the script tag and once with it,
//! and reads Chromium's own counters of main-thread work (`Performance.getMetrics`
//! over the `DevTools` protocol, through chromedriver): `TaskDuration` (every task on
//! the main thread: script, style, layout) and `ScriptDuration`. A load is
//! measured from navigation until 1 s after the tracker has started (it has listed
//! the links in view), and again until 4 s after (it has also read the session and
//! sent its first batch), the page idle otherwise. The tracker's
//! cost is the difference between the two loads of a round; the bench prints the
//! median and the 95th percentile over `BENCH_LOADS` rounds (default 40), and says
//! whether the median of the whole load is within the 10 ms budget. `BENCH_PROFILE=1` prints where
//! one load's script time goes instead; `BENCH_NOLINKS=1` makes the page's links
//! plain text (to see what watching links costs).
//!
//! `cargo bench -p clicktrail-e2e --bench tracker_cost` (part of `cargo xtask bench`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clicktrail_e2e::{Browser, Collector};
use fantoccini::Client;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

/// The most the median may cost.
const BUDGET_MS: f64 = 10.0;

/// When a load's counters are read, after the tracker has started (and as long
/// after the page has loaded without it): at 1 s it has listed the links in view;
/// at 4 s it has also read the session and sent its first batch (3 s after the
/// page view), which are part of the load too.
const WINDOWS: [(Duration, &str); 2] = [
    (
        Duration::from_secs(1),
        "until the links in view are listed (1 s)",
    ),
    (
        Duration::from_secs(4),
        "until the first batch is sent (4 s)",
    ),
];

/// A `DevTools` protocol command, sent through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

async fn cdp(c: &Client, cmd: &'static str, params: Value) -> Result<Value> {
    c.issue_cmd(Cdp { cmd, params })
        .await
        .with_context(|| format!("CDP {cmd}"))
}

/// The heavy page; `tracked` adds the script tag.
fn heavy_page(tracked: bool) -> String {
    let mut h = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Boots</title>\
         <link rel=\"icon\" href=\"data:,\"><style>.card{display:inline-block;width:220px;\
         margin:6px;vertical-align:top}.menu a{margin:2px}.slide{display:inline-block;\
         width:300px;height:60px}</style>",
    );
    if tracked {
        h.push_str("<script async src=\"/ct.js\" data-site=\"demo\"></script>");
    }
    h.push_str("</head><body><header><nav class=\"menu\">");
    for i in 0..200 {
        let _ = write!(
            h,
            "<a href=\"/category/{i}\" class=\"nav-link px-2 link-{i}\">Category {i}</a>"
        );
    }
    h.push_str("</nav></header><div class=\"swiper\"><div class=\"swiper-wrapper\">");
    for i in 0..8 {
        let _ = write!(
            h,
            "<div class=\"swiper-slide slide\"><a href=\"/promo/{i}\">Promo {i}</a></div>"
        );
    }
    h.push_str("</div></div><main><form id=\"filters\">");
    for i in 0..20 {
        let _ = write!(
            h,
            "<label><input type=\"checkbox\" name=\"f{i}\"> Filter {i}</label>"
        );
    }
    h.push_str("</form><section id=\"grid\">");
    for i in 0..400 {
        let _ = write!(
            h,
            "<article class=\"card product col-md-3\" data-id=\"{i}\"><a href=\"/product/{i}\">\
             <div class=\"thumb\"><svg width=\"40\" height=\"40\"><rect width=\"40\" \
             height=\"40\"/></svg></div><h3>Storm boots {i}</h3></a><p class=\"price\">\
             <span>€</span><span>{}.00</span></p><div class=\"qty\"><button type=\"button\">\
             -</button><input type=\"number\" value=\"1\" aria-label=\"Quantity\"><button \
             type=\"button\">+</button></div><button class=\"btn btn-primary add\">Add to \
             cart</button></article>",
            50 + i % 90
        );
    }
    h.push_str("</section></main></body></html>");
    if std::env::var_os("BENCH_NOLINKS").is_some() {
        h = h
            .replace("<a href=", "<span data-href=")
            .replace("</a>", "</span>");
    }
    h
}

/// Main-thread (task, script) ms of one load of `url`, at each of [`WINDOWS`].
async fn load(c: &Client, url: &str, tracked: bool) -> Result<[(f64, f64); 2]> {
    c.goto("about:blank").await?;
    cdp(c, "Performance.disable", json!({})).await?;
    cdp(c, "Performance.enable", json!({})).await?;
    c.goto(url).await?;
    for _ in 0..300 {
        let ready = c
            .execute(
                "return document.readyState === 'complete' && \
                 (!arguments[0] || !!(window.clicktrail && window.clicktrail.ready));",
                vec![json!(tracked)],
            )
            .await?;
        if ready == json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = tokio::time::Instant::now();
    let mut out = [(f64::NAN, f64::NAN); 2];
    for (i, (after, _)) in WINDOWS.iter().enumerate() {
        tokio::time::sleep_until(start + *after).await;
        let m = cdp(c, "Performance.getMetrics", json!({})).await?;
        let metric = |name: &str| -> f64 {
            m["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["name"] == name)
                .and_then(|x| x["value"].as_f64())
                .unwrap_or(f64::NAN)
                * 1000.0
        };
        out[i] = (metric("TaskDuration"), metric("ScriptDuration"));
    }
    Ok(out)
}

/// `BENCH_PROFILE=1`: where one load's script time goes (self time by function).
async fn profile(c: &Client, url: &str) -> Result<()> {
    c.goto("about:blank").await?;
    cdp(c, "Profiler.enable", json!({})).await?;
    cdp(
        c,
        "Profiler.setSamplingInterval",
        json!({ "interval": 100 }),
    )
    .await?;
    cdp(c, "Profiler.start", json!({})).await?;
    c.goto(url).await?;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let p = cdp(c, "Profiler.stop", json!({})).await?;
    let nodes = p["profile"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let samples = p["profile"]["samples"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let deltas = p["profile"]["timeDeltas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let name: std::collections::HashMap<i64, String> = nodes
        .iter()
        .map(|n| {
            let f = &n["callFrame"];
            (
                n["id"].as_i64().unwrap_or(0),
                format!(
                    "{} {}:{}:{}",
                    f["functionName"].as_str().unwrap_or(""),
                    f["url"]
                        .as_str()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or(""),
                    f["lineNumber"],
                    f["columnNumber"]
                ),
            )
        })
        .collect();
    let mut self_us: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for (s, d) in samples.iter().zip(deltas.iter().skip(1).chain([&json!(0)])) {
        let n = name
            .get(&s.as_i64().unwrap_or(0))
            .cloned()
            .unwrap_or_default();
        *self_us.entry(n).or_default() += d.as_f64().unwrap_or(0.0);
    }
    // Inclusive time by the entry point (the outermost frame under the root).
    let mut parent: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for n in &nodes {
        for ch in n["children"].as_array().into_iter().flatten() {
            parent.insert(ch.as_i64().unwrap_or(0), n["id"].as_i64().unwrap_or(0));
        }
    }
    let mut entry_us: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    let mut total_us: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for (s, d) in samples.iter().zip(deltas.iter().skip(1).chain([&json!(0)])) {
        let mut id = s.as_i64().unwrap_or(0);
        let mut chain = Vec::new();
        while let Some(&p) = parent.get(&id) {
            chain.push(id);
            id = p;
        }
        // Inclusive time: each function once per sample, however deep it recurses.
        let mut names: Vec<&String> = chain.iter().filter_map(|x| name.get(x)).collect();
        names.sort_unstable();
        names.dedup();
        for n in names {
            *total_us.entry(n.clone()).or_default() += d.as_f64().unwrap_or(0.0);
        }
        let Some(&top) = chain.last() else { continue };
        let second = chain
            .len()
            .checked_sub(2)
            .and_then(|i| chain.get(i))
            .copied();
        let label = format!(
            "{} / {}",
            name.get(&top).cloned().unwrap_or_default(),
            second
                .and_then(|x| name.get(&x))
                .cloned()
                .unwrap_or_default()
        );
        *entry_us.entry(label).or_default() += d.as_f64().unwrap_or(0.0);
    }
    let mut entries: Vec<_> = entry_us.into_iter().collect();
    entries.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (n, us) in entries.iter().take(25) {
        println!("{:>9.2} ms  entry {n}", us / 1000.0);
    }
    let mut total: Vec<_> = total_us
        .into_iter()
        .filter(|(n, _)| !n.starts_with('('))
        .collect();
    total.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (n, us) in total.iter().take(40) {
        println!("{:>9.2} ms  total {n}", us / 1000.0);
    }
    let mut top: Vec<_> = self_us.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (n, us) in top.iter().take(40) {
        println!("{:>9.2} ms  {n}", us / 1000.0);
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let rounds: usize = std::env::var("BENCH_LOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("heavy.html"), heavy_page(true))?;
    std::fs::write(dir.path().join("bare.html"), heavy_page(false))?;
    let collector = Collector::serving(dir.path()).await?;
    let browser = Browser::start().await?;
    let c = browser.session().await?;
    let (bare, heavy) = (
        format!("{}/demo/bare.html", collector.url),
        format!("{}/demo/heavy.html", collector.url),
    );
    // Warm the caches (the wasm's compiled code among them) as a returning visitor's.
    load(&c, &heavy, true).await?;
    load(&c, &bare, false).await?;
    if std::env::var_os("BENCH_PROFILE").is_some() {
        return profile(&c, &heavy).await;
    }
    // Per window: the tracker's (task, script) cost of each round, and the page's
    // tasks without and with it.
    let mut rows: [[Vec<f64>; 4]; 2] = Default::default();
    for _ in 0..rounds {
        let bare = load(&c, &bare, false).await?;
        let heavy = load(&c, &heavy, true).await?;
        for (w, ((bt, bs), (ht, hs))) in bare.into_iter().zip(heavy).enumerate() {
            if [bt, bs, ht, hs].iter().any(|v| v.is_nan()) {
                bail!("Chromium gave no TaskDuration/ScriptDuration");
            }
            for (v, x) in rows[w].iter_mut().zip([ht - bt, hs - bs, bt, ht]) {
                v.push(x);
            }
        }
    }
    c.close().await?;
    let events = collector.wait_quiet(1).await?;
    println!(
        "tracker main-thread cost per load of a heavy page ({rounds} loads, about 6,000 elements, 608 links):"
    );
    let mut median = 0.0;
    for (w, (_, label)) in WINDOWS.iter().enumerate() {
        for v in &mut rows[w] {
            v.sort_by(f64::total_cmp);
        }
        let [task, script, without, with] = &rows[w];
        println!("  {label}:");
        println!(
            "    main-thread tasks: median {:.1} ms, p95 {:.1} ms (the page: median {:.1} ms without the tracker, {:.1} ms with it)",
            percentile(task, 0.5),
            percentile(task, 0.95),
            percentile(without, 0.5),
            percentile(with, 0.5)
        );
        println!(
            "    of which script:   median {:.1} ms, p95 {:.1} ms",
            percentile(script, 0.5),
            percentile(script, 0.95)
        );
        median = percentile(task, 0.5);
    }
    println!("  events stored: {events}");
    if median > BUDGET_MS {
        println!(
            "  OVER the {BUDGET_MS} ms budget by {:.1} ms",
            median - BUDGET_MS
        );
    } else {
        println!("  within the {BUDGET_MS} ms budget");
    }
    Ok(())
}
