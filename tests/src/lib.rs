//! Harness for the end-to-end tests: a real collector process on a free port over a
//! temporary DuckDB file, a real chromedriver + headless Chromium, and helpers to
//! drive pages and wait for the data to land.
//!
//! Prerequisites (the README's test command, `cargo xtask test`, provides them):
//! the tracker built into `dist/tracker/`, the `clicktrail` binary built in the same
//! profile, and Debian's `chromium` + `chromium-driver` (or `CHROME` / `CHROMEDRIVER`
//! pointing at them).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The tracker as `cargo xtask build-tracker` builds it.
fn tracker_dir() -> PathBuf {
    workspace().join("dist/tracker")
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    // Read at run time (`cargo run` and `cargo test` set it for the process): a
    // compile-time `env!` bakes in the path of whichever checkout built the binary,
    // and checkouts that share a target dir reuse each other's up-to-date builds.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || std::env::current_dir().expect("a current dir"),
            PathBuf::from,
        )
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn binary(name: &str) -> Result<PathBuf> {
    // target/<profile>/deps/e2e-xxxx → target/<profile>/<name>
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary has no profile dir")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is not built; run the tests with `cargo xtask test`",
            path.display()
        );
    }
    Ok(path)
}

/// The password of `admin` in the collectors the tests start.
pub const ADMIN_PASSWORD: &str = "e2e admin password";
/// An API token of `admin` in the collectors the tests start.
pub const ADMIN_TOKEN: &str = "ct_e2e0000000000000000000000000000000000000000000000000000000000000";

/// A running collector process.
pub struct Collector {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The DuckDB file it owns.
    pub db: PathBuf,
    dir: tempfile::TempDir,
}

impl Collector {
    /// Start `clicktrail --demo` on a free port with a fresh DuckDB file, serving
    /// the demo shop (`examples/shop`) at `/demo/`.
    pub async fn start() -> Result<Collector> {
        Collector::launch(tempfile::tempdir()?).await
    }

    /// [`Collector::start`] with another folder served at `/demo/` (e.g.
    /// `examples/patterns`).
    pub async fn serving(demo_dir: &Path) -> Result<Collector> {
        Collector::serving_tracker(demo_dir, &tracker_dir()).await
    }

    /// Start `clicktrail --demo` again on the DuckDB file in `dir` (after [`Self::kill`]).
    pub async fn launch(dir: tempfile::TempDir) -> Result<Collector> {
        Collector::launch_with(dir, &[]).await
    }

    /// [`Self::launch`] with more `CLICKTRAIL_*` settings in the environment.
    pub async fn launch_with(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Result<Collector> {
        Collector::spawn(dir, &workspace().join("examples/shop"), &tracker_dir(), env).await
    }

    /// [`Collector::serving`] with the tracker built in `tracker_dir` instead of
    /// `dist/tracker` (to compare two builds of it).
    pub async fn serving_tracker(demo_dir: &Path, tracker_dir: &Path) -> Result<Collector> {
        Collector::spawn(tempfile::tempdir()?, demo_dir, tracker_dir, &[]).await
    }

    async fn spawn(
        dir: tempfile::TempDir,
        demo_dir: &Path,
        tracker: &Path,
        env: &[(&str, &str)],
    ) -> Result<Collector> {
        if !tracker.join("ct.js").exists() {
            bail!(
                "the tracker is not built in {}; run `cargo xtask build-tracker`",
                tracker.display()
            );
        }
        let db = dir.path().join("clicktrail.duckdb");
        let port = free_port()?;
        let child = Command::new(binary("clicktrail")?)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--demo"])
            .arg("--db")
            .arg(&db)
            .arg("--tracker-dir")
            .arg(tracker)
            .arg("--demo-dir")
            .arg(demo_dir)
            .env("CLICKTRAIL_LOG", "warn")
            .env("CLICKTRAIL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CLICKTRAIL_ADMIN_TOKEN", ADMIN_TOKEN)
            // Every scripted visitor comes from 127.0.0.1.
            .env("CLICKTRAIL_RATE_LIMIT_IP", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the collector")?;
        let c = Collector {
            child,
            url: format!("http://127.0.0.1:{port}"),
            db,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest_get(&format!("{}/healthz", c.url)).await.is_err() {
            if Instant::now() > deadline {
                bail!("collector did not answer /healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(c)
    }

    /// `GET /healthz` as JSON.
    pub async fn health(&self) -> Result<Value> {
        reqwest_get(&format!("{}/healthz", self.url)).await
    }

    /// Wait until the committed event count stops changing (beacons have landed).
    pub async fn wait_quiet(&self, min_events: u64) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = u64::MAX;
        let mut stable_since = Instant::now();
        loop {
            let n = self.health().await?["events_committed"]
                .as_u64()
                .unwrap_or(0);
            if n != last {
                last = n;
                stable_since = Instant::now();
            } else if n >= min_events && stable_since.elapsed() > Duration::from_millis(1500) {
                return Ok(n);
            }
            if Instant::now() > deadline {
                bail!(
                    "events did not settle within 30 s (last count {last}, wanted at least {min_events})"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Run an audit through the collector's HTTP API.
    pub fn audit(&self, req: &analyzer::AuditRequest) -> Result<analyzer::Report> {
        Ok(analyzer::Remote::new(&self.url)
            .with_token(Some(ADMIN_TOKEN))
            .run(req)?)
    }

    /// Runs the `analyzer` CLI against this collector (`--collector URL` first, then
    /// `args`); its exit success, stdout and stderr.
    pub fn analyzer(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = std::process::Command::new(binary("analyzer")?)
            .args(["--collector", &self.url])
            .env("CLICKTRAIL_TOKEN", ADMIN_TOKEN)
            .args(args)
            .output()
            .context("cannot run the analyzer CLI")?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `kill -9`: no drain, no checkpoint; the folder with the DuckDB file and its WAL.
    pub async fn kill(mut self) -> Result<tempfile::TempDir> {
        self.child.kill().await?;
        Ok(self.dir)
    }

    /// Stop with SIGTERM and wait: the collector drains, commits and checkpoints.
    pub async fn stop(mut self) -> Result<PathBuf> {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        if !status.success() {
            bail!("collector exited with {status}");
        }
        let keep = self.dir.keep();
        Ok(keep.join("clicktrail.duckdb"))
    }
}

async fn reqwest_get(url: &str) -> Result<Value> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || -> Result<Value> {
        let resp = reqwest::blocking::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()?;
        Ok(resp.json()?)
    })
    .await?
}

fn find_program(env: &str, candidates: &[&str]) -> Result<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Ok(PathBuf::from(p));
    }
    for c in candidates {
        let p = Path::new(c);
        if p.exists() {
            return Ok(p.to_path_buf());
        }
    }
    bail!(
        "{} not found (looked in {}); install Debian's `chromium` and `chromium-driver` or set {env}",
        candidates[0],
        candidates.join(", ")
    )
}

/// A chromedriver process; each [`Browser::session`] is a fresh headless Chromium
/// (fresh sessionStorage and localStorage: a new visitor tab).
pub struct Browser {
    child: Child,
    url: String,
    chrome: PathBuf,
}

impl Browser {
    /// Start chromedriver on a free port.
    pub async fn start() -> Result<Browser> {
        let driver = find_program(
            "CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        )?;
        let chrome = find_program(
            "CHROME",
            &[
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
                "/usr/bin/google-chrome",
            ],
        )?;
        let port = free_port()?;
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest_get(&format!("{url}/status")).await.is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not start within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Browser { child, url, chrome })
    }

    /// A new browser session (a new visitor).
    pub async fn session(&self) -> Result<Client> {
        self.session_with(None).await
    }

    /// A new browser session whose Chromium records a trace of the trace
    /// `categories` (comma-separated) all along: chromedriver's performance log,
    /// read (and emptied) with [`trace_events`].
    pub async fn traced_session(&self, categories: &str) -> Result<Client> {
        self.session_with(Some(categories)).await
    }

    async fn session_with(&self, trace: Option<&str>) -> Result<Client> {
        let profile = tempfile::tempdir()?.keep();
        let mut caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chrome,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        if let Some(categories) = trace {
            caps["goog:loggingPrefs"] = json!({ "performance": "ALL" });
            caps["goog:chromeOptions"]["perfLoggingPrefs"] = json!({
                "enableNetwork": false,
                "enablePage": false,
                "traceCategories": categories,
            });
        }
        let caps = caps.as_object().cloned().unwrap_or_default();
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .context("creating a Chromium session through chromedriver")?;
        Ok(client)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A `DevTools` protocol command (`Performance.getMetrics`, …) on the session's
/// page, through chromedriver.
pub async fn cdp(c: &Client, cmd: &str, params: Value) -> Result<Value> {
    c.issue_cmd(Chromedriver {
        path: "goog/cdp/execute",
        body: json!({ "cmd": cmd, "params": params }),
    })
    .await
    .with_context(|| format!("CDP {cmd}"))
}

/// The trace events Chromium recorded since the last call, for a session of
/// [`Browser::traced_session`] (chromedriver ends the trace, hands it over in its
/// performance log and starts a new one).
pub async fn trace_events(c: &Client) -> Result<Vec<Value>> {
    let log = c
        .issue_cmd(Chromedriver {
            path: "se/log",
            body: json!({ "type": "performance" }),
        })
        .await
        .context("reading chromedriver's performance log")?;
    let mut out = Vec::new();
    for entry in log.as_array().into_iter().flatten() {
        let Some(m) = entry["message"].as_str() else {
            continue;
        };
        let mut m: Value = serde_json::from_str(m).context("a performance log entry")?;
        if m["message"]["method"] == "Tracing.dataCollected" {
            out.push(m["message"]["params"].take());
        }
    }
    Ok(out)
}

/// A chromedriver command beyond `WebDriver`: `POST /session/{id}/{path}`.
#[derive(Debug)]
struct Chromedriver {
    path: &'static str,
    body: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Chromedriver {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// Page helpers on a fantoccini client.
pub struct Page<'a> {
    pub c: &'a Client,
    pub base: &'a str,
}

impl Page<'_> {
    /// Open a path of the collector (e.g. `/demo/`) and wait for the tracker.
    pub async fn open(&self, path: &str) -> Result<()> {
        self.c.goto(&format!("{}{path}", self.base)).await?;
        self.tracker_ready().await
    }

    /// Wait until the tracker has started on the current page.
    pub async fn tracker_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = self
                .c
                .execute("return document.readyState === 'complete' && !!(window.clicktrail && window.clicktrail.ready);", vec![])
                .await
                .unwrap_or(Value::Bool(false));
            if ready == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let url = self
                    .c
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                bail!("tracker did not start on {url} within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Click the element with this id.
    pub async fn click(&self, id: &str) -> Result<()> {
        self.c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id(id))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// Click a link/button that loads a new document, then wait for the tracker there.
    pub async fn click_nav(&self, id: &str, expect_path: &str) -> Result<()> {
        self.click(id).await?;
        self.wait_path(expect_path).await
    }

    /// Wait until the browser shows `expect_path` (after a click, back or forward)
    /// and the tracker runs there.
    pub async fn wait_path(&self, expect_path: &str) -> Result<()> {
        self.wait_url(expect_path, |url| url.path() == expect_path)
            .await
    }

    /// Wait until the browser shows an address whose query has `part` in it (a
    /// form sent with GET) and the tracker runs there.
    pub async fn wait_query(&self, part: &str) -> Result<()> {
        self.wait_url(part, |url| url.query().is_some_and(|q| q.contains(part)))
            .await
    }

    /// Wait until the browser shows an address that is `reached`, then for the
    /// tracker there; `what` names it in the error.
    async fn wait_url(&self, what: &str, reached: impl Fn(&url::Url) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.c.current_url().await?;
            if reached(&url) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the browser did not reach {what} (at {url})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.tracker_ready().await
    }

    /// Type into the field with this id.
    pub async fn type_into(&self, id: &str, text: &str) -> Result<()> {
        let el = self
            .c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id(id))
            .await?;
        el.click().await?;
        el.send_keys(text).await?;
        Ok(())
    }

    /// Leave the site: the page hides, the tracker flushes with sendBeacon. Waits a
    /// little for the beacon to be on the wire: a browser closed at once can drop
    /// it (a visit that bounced then has no events at all).
    pub async fn leave(&self) -> Result<()> {
        self.c.goto("about:blank").await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }
}
