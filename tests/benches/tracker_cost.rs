//! What the tracker costs a page: main-thread time per page load of a heavy shop
//! page (a category page of 400 product cards, a 200-link menu, a carousel and a
//! form, about 6,000 elements), in a real headless Chromium.
//!
//! Each round loads the page three times: without the script tag, with it, and
//! with an empty async script instead (what any script tag costs the page), in
//! turn in one order and the other, each after a full garbage collection (of the
//! page before, which would otherwise fall in one load or another). It
//! reads Chromium's own counters of main-thread work (`Performance.getMetrics`
//! over the `DevTools` protocol, through chromedriver): `TaskDuration` (every task
//! on the main thread: script, style, layout) and `ScriptDuration`. A load is
//! measured from navigation until 1 s after the page has loaded (the tracker has
//! started and listed the links in view), and again until 4 s after (it has also
//! read the session and sent its first batch). Nothing else runs in the page
//! meanwhile: whether the tracker started is asked after the last reading. The
//! tracker's cost is the difference between the loads with and without it; the
//! bench prints the median and the 95th percentile over `BENCH_LOADS` rounds
//! (default 40).
//!
//! That difference of all tasks swings by tens of ms from round to round: the
//! page alone does one layout on most loads and two or three on others. So the
//! bench also loads the page `BENCH_LOADS` times in a Chromium that records a
//! trace (chromedriver's performance log) and adds up the tracker's own tasks,
//! as Lighthouse attributes main-thread time to scripts: every main-thread task
//! that ran the tracker's script or compiled its wasm, whole (the style, layout
//! and microtasks it caused included), and the intersection work of its
//! `IntersectionObserver` in the page's frames, until 4 s after the load. It says
//! whether the median of that is within the 10 ms budget. In turn with those
//! loads it loads the page with the least any tracker does (`FLOOR`) in place of
//! the tracker, traced and attributed the same way: what the browser itself
//! charges on this machine for work every tracker must do, the floor under the
//! tracker's figure.
//!
//! After the last reading it takes the page's JS heap in use after a full garbage
//! collection (`HeapProfiler.collectGarbage`, then `JSHeapUsedSize`; the tracker's
//! share is again the difference between the loads) and the size of its wasm
//! memory (every `WebAssembly.Memory` of the page, found with
//! `Runtime.queryObjects`).
//!
//! Then it measures what the tracker costs a page that animates all along (a
//! ticker whose style changes every frame, a countdown whose text changes every
//! second, as carousels moved by script and countdowns do): script time per
//! second from 4 s to 8 s after the load (after the first batch), with and
//! without it, over a quarter of the rounds. (All tasks are not compared there:
//! the page's own frames take half the main thread of headless Chromium and
//! vary by hundreds of ms from load to load.)
//!
//! `BENCH_PROFILE=1` prints where one load's script time goes instead (until 4 s
//! after the load: the first batch too);
//! `BENCH_DUMP=1` writes each traced load's events (the last one's stays) to
//! `clicktrail-bench-trace.json` in the temporary directory, and the profile to
//! `clicktrail-bench-profile.json`;
//! `BENCH_NOLINKS=1` makes the page's links plain text (to see what watching links
//! costs). `BENCH_AGAINST=DIR` compares the tracker built in `dist/tracker` with
//! another build of it (a copy of `dist/tracker` in `DIR`) instead: traced loads
//! only, one of each in turn, each page served with its tracker by a collector
//! of its own; it prints both medians of each part and the median of the
//! per-round differences.
//!
//! `cargo bench -p clicktrail-e2e --bench tracker_cost` (part of `cargo xtask bench`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clicktrail_e2e::{Browser, Collector, cdp};
use fantoccini::Client;
use serde_json::{Value, json};

/// The most the median may cost.
const BUDGET_MS: f64 = 10.0;

/// When a load's counters are read, after the page has loaded (the tracker
/// starts within a few hundred ms): at 1 s it has listed the links in view; at
/// 4 s it has also read the session and sent its first batch (3 s after the page
/// view), which are part of the load too.
const WINDOWS: [(Duration, &str); 2] = [
    (
        Duration::from_secs(1),
        "until the links in view are listed (1 s after the load)",
    ),
    (
        Duration::from_secs(4),
        "until the first batch is sent (4 s after the load)",
    ),
];

/// The tracker's script tag.
const TRACKER: &str = "<script async src=\"/ct.js\" data-site=\"demo\"></script>";
/// An async script that does nothing but say it ran: what any script tag costs
/// the page (its source inline in a `data:` URL, so it is not fetched).
const EMPTY: &str =
    "<script async src=\"data:text/javascript,window.clicktrail={ready:1}\"></script>";

/// The least any tracker does on a page load, as a script of its own: what the
/// browser itself charges for it is the floor under the tracker's figure. It
/// listens for the visitor's actions, observes every link and ad with an
/// `IntersectionObserver` (keeping the `href` of those that come into view: no
/// selector, no label), and 3 s later (when the tracker sends its first batch)
/// reads and writes the session in `sessionStorage` (where the session id lives)
/// and sends what it kept in one `fetch`, reading the answer's status. It loads
/// no module, keeps no queue and looks at nothing else. Served as `ct.js`, so
/// the trace attributes it as it does the tracker.
const FLOOR: &str = r#"(function (w, d) {
  var seen = [], src = d.currentScript.src;
  var io = new IntersectionObserver(function (es) {
    for (var i = 0; i < es.length; i++) if (es[i].isIntersecting) seen.push(es[i].target.href);
  });
  d.querySelectorAll("a[href],[data-ct-ad]").forEach(function (a) { io.observe(a); });
  ["click", "change", "submit", "focusin", "focusout", "pagehide", "visibilitychange"].forEach(function (t) {
    w.addEventListener(t, function () {}, true);
  });
  w.clicktrail = { ready: 1 };
  setTimeout(function () {
    var sid = "";
    try {
      sid = w.sessionStorage.getItem("ct_sid") || Math.random().toString(16).slice(2);
      w.sessionStorage.setItem("ct_sid", sid);
    } catch (e) {}
    fetch(new URL("/collect", src).href, {
      method: "POST", keepalive: true, body: JSON.stringify({ sid: sid, links: seen })
    }).then(function (r) { return r.status; }, function () {});
  }, 3000);
})(window, document);
"#;

/// The heavy page, with `script` in its head.
/// What makes the page animate all along: a ticker moved every frame, a countdown
/// written every second.
const ANIMATION: &str = "<div id=\"ticker\" style=\"width:60px;height:8px;background:#c00\"></div>\
    <p id=\"countdown\">Sale ends in 3600 s</p><script>\
    var ticker = document.getElementById(\"ticker\"), left = 3600;\
    requestAnimationFrame(function move(t) {\
      ticker.style.transform = \"translateX(\" + (t / 20 % 200 | 0) + \"px)\";\
      requestAnimationFrame(move);\
    });\
    setInterval(function () {\
      document.getElementById(\"countdown\").textContent = \"Sale ends in \" + --left + \" s\";\
    }, 1000);</script>";

/// When the steady cost of the animated page is read, after it loaded.
const STEADY: [Duration; 2] = [Duration::from_secs(4), Duration::from_secs(8)];

fn heavy_page(script: &str, tail: &str) -> String {
    let mut h = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Boots</title>\
         <link rel=\"icon\" href=\"data:,\"><style>.card{display:inline-block;width:220px;\
         margin:6px;vertical-align:top}.menu a{margin:2px}.slide{display:inline-block;\
         width:300px;height:60px}</style>",
    );
    h.push_str(script);
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
    h.push_str("</section></main>");
    h.push_str(tail);
    h.push_str("</body></html>");
    if std::env::var_os("BENCH_NOLINKS").is_some() {
        h = h
            .replace("<a href=", "<span data-href=")
            .replace("</a>", "</span>");
    }
    h
}

/// Chromium's main-thread counters at one reading.
#[derive(Clone, Copy)]
struct Reading {
    /// ms of all tasks.
    task: f64,
    /// ms of script.
    script: f64,
    /// ms of style recalculation and layout.
    layout: f64,
    /// Layouts done (a layout forced by script, before the page's own, is one more).
    layouts: f64,
}

impl Reading {
    fn of(m: &Value) -> Self {
        Self {
            task: metric(m, "TaskDuration") * 1000.0,
            script: metric(m, "ScriptDuration") * 1000.0,
            layout: (metric(m, "LayoutDuration") + metric(m, "RecalcStyleDuration")) * 1000.0,
            layouts: metric(m, "LayoutCount"),
        }
    }

    fn any_nan(&self) -> bool {
        [self.task, self.script, self.layout, self.layouts]
            .iter()
            .any(|v| v.is_nan())
    }
}

/// What one load of the page cost.
struct Load {
    /// Main-thread counters at each of [`WINDOWS`].
    times: [Reading; 2],
    /// Bytes of JS heap in use after the last window and a full garbage collection.
    heap: f64,
    /// Bytes of the page's wasm memories then.
    wasm: f64,
}

/// Open `url` with Chromium's counters set to zero.
async fn open(c: &Client, url: &str) -> Result<()> {
    c.goto("about:blank").await?;
    // The page before leaves its whole DOM as garbage: collected now, not during
    // this load (where a full collection of it took 0 or 15 ms, whichever load
    // it fell in).
    cdp(c, "HeapProfiler.collectGarbage", json!({})).await?;
    cdp(c, "Performance.disable", json!({})).await?;
    cdp(c, "Performance.enable", json!({})).await?;
    c.goto(url).await?;
    Ok(())
}

/// One load of `url`.
async fn load(c: &Client, url: &str, tracked: bool) -> Result<Load> {
    open(c, url).await?;
    // WebDriver answers once the page has loaded. Nothing runs in the page while
    // it is measured: asking whether the tracker has started (by polling, or with
    // a timer in the page) would run script tasks that count as the tracker's.
    let start = tokio::time::Instant::now();
    let mut times = [Reading::of(&Value::Null); 2];
    for (i, (after, _)) in WINDOWS.iter().enumerate() {
        tokio::time::sleep_until(start + *after).await;
        let m = cdp(c, "Performance.getMetrics", json!({})).await?;
        times[i] = Reading::of(&m);
    }
    cdp(c, "HeapProfiler.collectGarbage", json!({})).await?;
    let m = cdp(c, "Performance.getMetrics", json!({})).await?;
    let heap = metric(&m, "JSHeapUsedSize");
    if tracked
        && c.execute(
            "return !!(window.clicktrail && window.clicktrail.ready);",
            vec![],
        )
        .await?
            != json!(true)
    {
        bail!("the script on {url} had not started 4 s after the page loaded");
    }
    Ok(Load {
        times,
        heap,
        wasm: wasm_memory(c).await?,
    })
}

/// Script ms per second of `url` between the [`STEADY`] readings.
async fn steady(c: &Client, url: &str) -> Result<f64> {
    open(c, url).await?;
    let start = tokio::time::Instant::now();
    let mut read = Vec::new();
    for after in STEADY {
        tokio::time::sleep_until(start + after).await;
        let m = cdp(c, "Performance.getMetrics", json!({})).await?;
        read.push(metric(&m, "ScriptDuration"));
    }
    let secs = STEADY[1].saturating_sub(STEADY[0]).as_secs_f64();
    Ok((read[1] - read[0]) * 1000.0 / secs)
}

/// The counter `name` of a `Performance.getMetrics` answer (NaN when missing).
fn metric(m: &Value, name: &str) -> f64 {
    m["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == name)
        .and_then(|x| x["value"].as_f64())
        .unwrap_or(f64::NAN)
}

/// Bytes of all the `WebAssembly.Memory` objects of the page (the tracker's).
async fn wasm_memory(c: &Client) -> Result<f64> {
    let proto = cdp(
        c,
        "Runtime.evaluate",
        json!({ "expression": "WebAssembly.Memory.prototype" }),
    )
    .await?;
    let proto = proto["result"]["objectId"]
        .as_str()
        .context("no WebAssembly.Memory.prototype")?;
    let all = cdp(
        c,
        "Runtime.queryObjects",
        json!({ "prototypeObjectId": proto }),
    )
    .await?;
    let all = all["objects"]["objectId"]
        .as_str()
        .context("Runtime.queryObjects gave no array")?;
    let sum = cdp(
        c,
        "Runtime.callFunctionOn",
        json!({
            "objectId": all,
            "functionDeclaration":
                "function () { return this.reduce(function (s, m) { return s + m.buffer.byteLength; }, 0); }",
            "returnByValue": true,
        }),
    )
    .await?;
    sum["result"]["value"]
        .as_f64()
        .context("the wasm memories' size is no number")
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
    tokio::time::sleep(WINDOWS[1].0).await;
    let p = cdp(c, "Profiler.stop", json!({})).await?;
    if std::env::var_os("BENCH_DUMP").is_some() {
        let to = std::env::temp_dir().join("clicktrail-bench-profile.json");
        std::fs::write(to, p.to_string())?;
    }
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

/// The trace categories of the traced loads: tasks, script and the wasm's
/// compilation, intersection work.
const TRACE: &str = "toplevel,devtools.timeline,disabled-by-default-devtools.timeline,v8.wasm";

/// What the tracker's tasks took in one traced load, in ms, by kind: the loader's
/// script, the wasm's compilation and the tracker's start, the callbacks of its
/// observers and listeners (the links in view among them), its timers (the
/// batches), and the browser's intersection work for its observer in other tasks.
#[derive(Default, Clone, Copy)]
struct Attributed {
    loader: f64,
    start: f64,
    callbacks: f64,
    timers: f64,
    intersections: f64,
    /// Of all of the above: V8 compiling the wasm's functions as each is first
    /// called (it compiles a module's functions lazily, on the main thread).
    lazy: f64,
}

impl Attributed {
    fn total(&self) -> f64 {
        self.loader + self.start + self.callbacks + self.timers + self.intersections
    }
}

/// Whether a trace event is the tracker's: its script (the loader or the wasm)
/// or the wasm's compilation and instantiation (the page has no other wasm).
/// The wasm runs from promise reactions too (its instantiation, its requests'
/// answers), in tasks that name no script: those have wasm events.
fn tracker_event(e: &Value) -> bool {
    let url = e["args"]["data"]["url"].as_str().unwrap_or("");
    wasm_event(e) || url.ends_with("/ct.js") || url.contains("/ct_wasm_bg.wasm")
}

fn wasm_event(e: &Value) -> bool {
    e["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("v8.wasm.") || n.starts_with("wasm."))
}

/// A wasm event of the module's compilation or instantiation (not of a function
/// compiled on its first call, nor of memory growing).
fn instantiation_event(e: &Value) -> bool {
    e["name"].as_str().is_some_and(|n| {
        n.starts_with("v8.wasm.")
            || (n.starts_with("wasm.")
                && ["Streaming", "Instantiate", "AsyncCompile", "NativeModule"]
                    .iter()
                    .any(|k| n.contains(k)))
    })
}

/// The main-thread time of one page load that is the tracker's, from Chromium's
/// trace (as Lighthouse attributes main-thread time to scripts): every task on
/// the page's main thread that ran the tracker's script or compiled its wasm, in
/// whole (with the style, layout and microtasks it caused), and the
/// intersection work of the other tasks (the rendering frames: the page has no
/// other `IntersectionObserver`), from the evaluation of `ct.js` until the
/// `console.timeStamp` `end` the bench wrote after the window. Not counted: the
/// network, and the collection of its garbage in the page's own tasks.
fn attribute(events: &[Value], end: &str) -> Result<Attributed> {
    let thread = |e: &Value| (e["pid"].as_i64(), e["tid"].as_i64());
    // Times in µs (chromedriver may write them as floats).
    let us = |v: &Value| v.as_f64().map(|x| x as i64);
    let marker = events
        .iter()
        .find(|e| end_mark(e, end))
        .context("the trace has no end mark")?;
    let (main, until) = (thread(marker), us(&marker["ts"]).unwrap_or(0));
    let mut on_main: Vec<(i64, i64, &Value)> = events
        .iter()
        .filter(|e| e["ph"] == "X" && thread(e) == main)
        .filter_map(|e| Some((us(&e["ts"])?, us(&e["dur"])?, e)))
        .filter(|&(ts, _, _)| ts < until)
        .collect();
    // Outer events first where two start together.
    on_main.sort_by_key(|&(ts, dur, _)| (ts, -dur));
    // This load's evaluation of the loader (the page before was the same page).
    let from = on_main
        .iter()
        .rev()
        .find(|(_, _, e)| e["name"] == "EvaluateScript" && tracker_event(e))
        .map(|&(ts, _, _)| ts)
        .context("the trace has no evaluation of ct.js")?;
    let mut out = Attributed::default();
    let mut i = 0;
    while i < on_main.len() {
        let (ts, dur, e) = on_main[i];
        i += 1;
        if e["name"] != "RunTask" {
            continue;
        }
        // The events inside this task.
        let start = i;
        while i < on_main.len() && on_main[i].0 < ts + dur {
            i += 1;
        }
        if ts + dur < from {
            continue;
        }
        let inner = &on_main[start..i];
        let ms = dur as f64 / 1000.0;
        let has = |name: &str| inner.iter().any(|(_, _, e)| e["name"] == name);
        if inner.iter().any(|(_, _, e)| tracker_event(e)) {
            // Lazy compilations nest (a function compiled calls one not yet).
            let mut lazy_end = 0;
            for &(t, d, e) in inner {
                if e["name"] == "wasm.CompileLazy" && t >= lazy_end {
                    out.lazy += d as f64 / 1000.0;
                    lazy_end = t + d;
                }
            }
            if has("EvaluateScript") {
                out.loader += ms;
            } else if inner.iter().any(|(_, _, e)| instantiation_event(e)) {
                out.start += ms;
            } else if has("TimerFire") {
                out.timers += ms;
            } else {
                out.callbacks += ms;
            }
        } else {
            out.intersections += inner
                .iter()
                .filter(|(_, _, e)| {
                    e["name"] == "IntersectionObserverController::computeIntersections"
                })
                .map(|&(_, d, _)| d as f64 / 1000.0)
                .sum::<f64>();
        }
    }
    Ok(out)
}

/// Whether a trace event is the `console.timeStamp` mark `end`.
fn end_mark(e: &Value, end: &str) -> bool {
    e["name"] == "TimeStamp" && e["args"]["data"]["message"] == end
}

/// One traced load of `url` (number `n`): what the tracker's tasks took until 4 s
/// after the load.
async fn traced(c: &Client, url: &str, n: usize) -> Result<Attributed> {
    // Opened as the measured loads are. What comes of the load before (its
    // page's last tasks, handed over late) ends before this load's `ct.js` is
    // evaluated, and is left out by `attribute`.
    open(c, url).await?;
    tokio::time::sleep(WINDOWS[1].0).await;
    // The end of the window, in the trace; chromedriver hands a trace over in
    // pieces, the page's main thread in order: this load's events are all in
    // once the mark is.
    let end = format!("clicktrail-bench-end-{n}");
    c.execute(&format!("console.timeStamp({end:?})"), vec![])
        .await?;
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        events.extend(clicktrail_e2e::trace_events(c).await?);
        if events.iter().any(|e| end_mark(e, &end)) {
            if std::env::var_os("BENCH_DUMP").is_some() {
                let to = std::env::temp_dir().join("clicktrail-bench-trace.json");
                std::fs::write(to, Value::from(events.clone()).to_string())?;
            }
            return attribute(&events, &end);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("Chromium's trace of {url} did not come within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Traced loads of the pages `a` and `b`, `rounds` of each, one of each in turn
/// (in either order) in one traced browser, after three of each that warm the
/// caches (the third is the first to take the script's compiled code from V8's
/// cache, as a returning visitor's does): what each load's tasks took.
async fn paired(
    browser: &Browser,
    rounds: usize,
    a: &str,
    b: &str,
) -> Result<(Vec<Attributed>, Vec<Attributed>)> {
    let t = browser.traced_session(TRACE).await?;
    for n in 0..3 {
        traced(&t, a, 2 * n).await?;
        traced(&t, b, 2 * n + 1).await?;
    }
    let (mut pa, mut pb) = (Vec::new(), Vec::new());
    for n in 0..rounds {
        let m = 6 + 2 * n;
        if n % 2 == 0 {
            pa.push(traced(&t, a, m).await?);
            pb.push(traced(&t, b, m + 1).await?);
        } else {
            pb.push(traced(&t, b, m).await?);
            pa.push(traced(&t, a, m + 1).await?);
        }
    }
    t.close().await?;
    Ok((pa, pb))
}

/// The median and the 95th percentile of one part of `loads`.
fn spread(loads: &[Attributed], f: fn(&Attributed) -> f64) -> (f64, f64) {
    let mut v: Vec<f64> = loads.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.95))
}

/// `BENCH_AGAINST`: the traced cost of the tracker served at `a` against the one
/// served at `b`, loaded in turn (in either order) in one traced browser.
async fn against(browser: &Browser, rounds: usize, a: &str, b: &str) -> Result<()> {
    let (a, b) = (
        format!("{a}/demo/heavy.html"),
        format!("{b}/demo/heavy.html"),
    );
    let (pa, pb) = paired(browser, rounds, &a, &b).await?;
    println!("dist/tracker (A) against BENCH_AGAINST (B), {rounds} traced loads each, ms:");
    println!("  {:<40} {:>8} {:>8} {:>10}", "", "A", "B", "A − B");
    for (label, f) in [
        (
            "all of the tracker's tasks",
            Attributed::total as fn(&Attributed) -> f64,
        ),
        ("the loader's script", |x: &Attributed| x.loader),
        ("the wasm's compilation and the start", |x| x.start),
        ("observer and listener callbacks", |x| x.callbacks),
        ("timers (the first batch)", |x| x.timers),
        ("intersection work", |x| x.intersections),
        ("wasm functions compiled on first call", |x| x.lazy),
    ] {
        let mut d: Vec<f64> = pa.iter().zip(&pb).map(|(x, y)| f(x) - f(y)).collect();
        d.sort_by(f64::total_cmp);
        println!(
            "  {label:<40} {:>8.2} {:>8.2} {:>10.2}",
            spread(&pa, f).0,
            spread(&pb, f).0,
            percentile(&d, 0.5)
        );
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
    std::fs::write(dir.path().join("heavy.html"), heavy_page(TRACKER, ""))?;
    std::fs::write(dir.path().join("bare.html"), heavy_page("", ""))?;
    std::fs::write(dir.path().join("empty.html"), heavy_page(EMPTY, ""))?;
    std::fs::write(
        dir.path().join("moving.html"),
        heavy_page(TRACKER, ANIMATION),
    )?;
    std::fs::write(
        dir.path().join("moving-bare.html"),
        heavy_page("", ANIMATION),
    )?;
    let collector = Collector::serving(dir.path()).await?;
    let browser = Browser::start().await?;
    if let Some(other) = std::env::var_os("BENCH_AGAINST") {
        // A relative path is the workspace's (cargo runs benches in their package).
        let other = clicktrail_e2e::workspace().join(other);
        let other = Collector::serving_tracker(dir.path(), &other).await?;
        return against(&browser, rounds, &collector.url, &other.url).await;
    }
    let c = browser.session().await?;
    let (bare, heavy, empty) = (
        format!("{}/demo/bare.html", collector.url),
        format!("{}/demo/heavy.html", collector.url),
        format!("{}/demo/empty.html", collector.url),
    );
    // Warm the caches (the wasm's compiled code among them) as a returning visitor's.
    load(&c, &heavy, true).await?;
    load(&c, &bare, false).await?;
    if std::env::var_os("BENCH_PROFILE").is_some() {
        return profile(&c, &heavy).await;
    }
    // Per window: the tracker's (task, script) cost of each round, the page's
    // tasks without and with it, what the empty script's tasks cost, and the
    // style and layout ms and layouts the tracker adds.
    let mut rows: [[Vec<f64>; 7]; 2] = Default::default();
    // And the JS heap it adds (after a full collection), and its wasm memory.
    let (mut heap, mut wasm) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // In turn in either order: a load's place in the round does not count.
        let (bare, heavy, empty) = if round % 2 == 0 {
            let bare = load(&c, &bare, false).await?;
            let heavy = load(&c, &heavy, true).await?;
            (bare, heavy, load(&c, &empty, true).await?)
        } else {
            let empty = load(&c, &empty, true).await?;
            let heavy = load(&c, &heavy, true).await?;
            (load(&c, &bare, false).await?, heavy, empty)
        };
        if bare.heap.is_nan() || heavy.heap.is_nan() {
            bail!("Chromium gave no JSHeapUsedSize");
        }
        heap.push(heavy.heap - bare.heap);
        wasm.push(heavy.wasm);
        for (w, ((b, h), e)) in bare
            .times
            .into_iter()
            .zip(heavy.times)
            .zip(empty.times)
            .enumerate()
        {
            if b.any_nan() || h.any_nan() || e.any_nan() {
                bail!("Chromium gave no TaskDuration/ScriptDuration/LayoutDuration");
            }
            let diffs = [
                h.task - b.task,
                h.script - b.script,
                b.task,
                h.task,
                e.task - b.task,
                h.layout - b.layout,
                h.layouts - b.layouts,
            ];
            for (v, x) in rows[w].iter_mut().zip(diffs) {
                v.push(x);
            }
        }
    }
    // The animated page: script ms per second the tracker adds.
    let (moving, moving_bare) = (
        format!("{}/demo/moving.html", collector.url),
        format!("{}/demo/moving-bare.html", collector.url),
    );
    let mut moving_script = Vec::new();
    for _ in 0..rounds.div_ceil(4) {
        let bare = steady(&c, &moving_bare).await?;
        moving_script.push(steady(&c, &moving).await? - bare);
    }
    c.close().await?;
    // The tracker's own tasks, from Chromium's trace, in a browser that records
    // one all along (the recording slows every load a little, so the loads above
    // are not traced), in turn with the floor (see `FLOOR`), served by a
    // collector of its own.
    let floor_dir = tempfile::tempdir()?;
    std::fs::write(floor_dir.path().join("ct.js"), FLOOR)?;
    let floor_collector = Collector::serving_tracker(dir.path(), floor_dir.path()).await?;
    let floor_url = format!("{}/demo/heavy.html", floor_collector.url);
    let (parts, floor) = paired(&browser, rounds, &heavy, &floor_url).await?;
    let events = collector.wait_quiet(1).await?;
    println!(
        "tracker main-thread cost per load of a heavy page ({rounds} loads, about 6,000 elements, 608 links):"
    );
    let mut median = 0.0;
    for (w, (_, label)) in WINDOWS.iter().enumerate() {
        for v in &mut rows[w] {
            v.sort_by(f64::total_cmp);
        }
        let [task, script, without, with, empty, layout, layouts] = &rows[w];
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
        println!(
            "    of which style and layout: median {:.1} ms, p95 {:.1} ms ({:.0} more layouts, median)",
            percentile(layout, 0.5),
            percentile(layout, 0.95),
            percentile(layouts, 0.5)
        );
        println!(
            "    an empty async script adds: median {:.1} ms, p95 {:.1} ms of tasks (what any script tag costs this page)",
            percentile(empty, 0.5),
            percentile(empty, 0.95)
        );
        median = percentile(task, 0.5);
    }
    heap.sort_by(f64::total_cmp);
    wasm.sort_by(f64::total_cmp);
    println!(
        "  memory, 4 s after the load: JS heap (after a full garbage collection) median {:.0} KiB, p95 {:.0} KiB more than without it; wasm memory {:.0} KiB (at most {:.0} KiB)",
        percentile(&heap, 0.5) / 1024.0,
        percentile(&heap, 0.95) / 1024.0,
        percentile(&wasm, 0.5) / 1024.0,
        percentile(&wasm, 1.0) / 1024.0
    );
    moving_script.sort_by(f64::total_cmp);
    println!(
        "  on the page animating all along (a style each frame, a text each second), 4–8 s after the load ({} loads): script median {:.2} ms, p95 {:.2} ms per second",
        moving_script.len(),
        percentile(&moving_script, 0.5),
        percentile(&moving_script, 0.95)
    );
    let part = |f| spread(&parts, f);
    let (total, total95) = part(Attributed::total);
    println!(
        "  the tracker's own main-thread tasks, from Chromium's trace, until 4 s after the load ({} loads): median {total:.1} ms, p95 {total95:.1} ms",
        parts.len()
    );
    for (label, f) in [
        (
            "the loader's script",
            (|a: &Attributed| a.loader) as fn(&Attributed) -> f64,
        ),
        ("the wasm's compilation and the start", |a| a.start),
        ("observer and listener callbacks (the links in view)", |a| {
            a.callbacks
        }),
        ("timers (the first batch)", |a| a.timers),
        ("intersection work in the page's frames", |a| {
            a.intersections
        }),
        (
            "of all of these, V8 compiling wasm functions as each is first called",
            |a| a.lazy,
        ),
    ] {
        let (m, p) = part(f);
        println!("    {label}: median {m:.1} ms, p95 {p:.1} ms");
    }
    let floor_part = |f| spread(&floor, f);
    let (least, least95) = floor_part(Attributed::total);
    let mut above: Vec<f64> = parts
        .iter()
        .zip(&floor)
        .map(|(x, y)| x.total() - y.total())
        .collect();
    above.sort_by(f64::total_cmp);
    println!(
        "  the least any tracker does (a script that observes the links, reads the session and sends one batch; loaded in turn with the tracker): median {least:.1} ms, p95 {least95:.1} ms"
    );
    for (label, f) in [
        (
            "its script",
            (|a: &Attributed| a.loader) as fn(&Attributed) -> f64,
        ),
        ("its observer's callbacks and its answer", |a| a.callbacks),
        ("its timer (the session and the batch)", |a| a.timers),
        ("intersection work in the page's frames", |a| {
            a.intersections
        }),
    ] {
        let (m, p) = floor_part(f);
        println!("    {label}: median {m:.1} ms, p95 {p:.1} ms");
    }
    println!(
        "    the tracker above it: median {:.1} ms (paired loads)",
        percentile(&above, 0.5)
    );
    println!(
        "  (the difference of all tasks above was median {median:.1} ms: the page's own tasks vary by more than that from load to load)"
    );
    println!("  events stored: {events}");
    if total > BUDGET_MS {
        println!(
            "  OVER the {BUDGET_MS} ms budget by {:.1} ms (the least any tracker does takes {least:.1} ms of it here)",
            total - BUDGET_MS
        );
    } else {
        println!("  within the {BUDGET_MS} ms budget");
    }
    Ok(())
}
