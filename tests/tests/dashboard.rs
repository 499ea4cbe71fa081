//! The dashboard in a real headless Chromium, against the real collector: sign-in,
//! sites, the overview and the saved funnel against `analyzer --collector` for the
//! same range, a CSV download against the table shown, one user's sites only, and
//! forged cross-site requests. A screenshot of every page is kept in
//! `target/dashboard-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use analyzer::{AuditRequest, Report, Scope};
use anyhow::{Context as _, Result, bail};
use clicktrail_e2e::{ADMIN_PASSWORD, ADMIN_TOKEN, Browser, Collector, Page, workspace};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

fn shots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), PathBuf::from);
    target.join("dashboard-screenshots")
}

async fn shot(c: &Client, name: &str) -> Result<()> {
    let dir = shots();
    std::fs::create_dir_all(&dir)?;
    let png = c.screenshot().await?;
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

async fn fill(c: &Client, id: &str, text: &str) -> Result<()> {
    let el = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(id))
        .await?;
    el.clear().await?;
    el.send_keys(text).await?;
    Ok(())
}

async fn submit(c: &Client, form_action: &str) -> Result<()> {
    c.find(Locator::Css(&format!(
        "form[action=\"{form_action}\"] button[type=submit]"
    )))
    .await?
    .click()
    .await?;
    Ok(())
}

async fn text(c: &Client, css: &str) -> Result<String> {
    Ok(c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await?
        .text()
        .await?)
}

async fn path(c: &Client) -> Result<String> {
    Ok(c.current_url().await?.path().to_owned())
}

async fn sign_in(c: &Client, base: &str, user: &str, password: &str) -> Result<()> {
    c.goto(&format!("{base}/app/login")).await?;
    fill(c, "user", user).await?;
    fill(c, "password", password).await?;
    submit(c, "/app/login").await?;
    Ok(())
}

/// Waits until the browser shows `want` (path, and the query if `want` has one).
async fn wait_at(c: &Client, want: &str) -> Result<()> {
    for _ in 0..100 {
        let url = c.current_url().await?;
        let at = match url.query() {
            Some(q) if want.contains('?') => format!("{}?{q}", url.path()),
            _ => url.path().to_owned(),
        };
        if at == want {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the browser never reached {want} (at {})",
        c.current_url().await?
    )
}

/// The page's body text (for "does it say …" checks).
async fn body(c: &Client) -> Result<String> {
    text(c, "body").await
}

/// `fetch(url)` in the page, with its cookies: (status, text).
async fn fetch(c: &Client, url: &str) -> Result<(u64, String)> {
    let v = c
        .execute_async(
            "var done = arguments[arguments.length - 1];
             fetch(arguments[0], {credentials: 'same-origin', redirect: 'manual'})
               .then(function (r) { return r.text().then(function (t) { done([r.status, t]); }); })
               .catch(function (e) { done([0, String(e)]); });",
            vec![json!(url)],
        )
        .await?;
    let status = v[0].as_u64().unwrap_or(0);
    Ok((status, v[1].as_str().unwrap_or("").to_owned()))
}

/// Three visitors of the demo shop: two reach the cart, one leaves at home.
async fn visit_shop(b: &Browser, base: &str) -> Result<()> {
    for product in ["boots", "scarf", ""] {
        let c = b.session().await?;
        let p = Page { c: &c, base };
        p.open("/demo/").await?;
        if !product.is_empty() {
            p.click_nav(
                &format!("p-{product}"),
                &format!("/demo/product/{product}.html"),
            )
            .await?;
            p.click_nav("add-to-cart", "/demo/cart.html").await?;
        }
        p.leave().await?;
        c.close().await?;
    }
    Ok(())
}

/// The sessions of `scope`, as the analyzer counts them through the collector's API.
fn stored_sessions(collector: &Collector, scope: &Scope) -> Result<u64> {
    let Report::Screens(screens) = collector.audit(&AuditRequest::Screens {
        scope: scope.clone(),
        top_next: 3,
    })?
    else {
        bail!("not a screens report")
    };
    Ok(screens.sessions)
}

fn today() -> String {
    analyzer::scope::format_ms(clicktrail_e2e_now())[..10].to_owned()
}

fn clicktrail_e2e_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    )
    .unwrap_or(0)
}

/// The numbers of a table on the page: the text of each row's cells.
async fn table_rows(c: &Client, css: &str) -> Result<Vec<Vec<String>>> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr')).map(function (r) {
               return Array.from(r.cells).map(function (td) { return td.getAttribute('data-v'); });
             });",
            vec![json!(css)],
        )
        .await?;
    Ok(serde_json::from_value(v)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium() -> Result<()> {
    let collector = Collector::start().await?;
    let browser = Browser::start().await?;
    let base = collector.url.clone();

    visit_shop(&browser, &base).await?;
    collector.wait_quiet(10).await?;
    // The last visit's events are sent as its tab closes; on a busy machine they
    // may reach the store after the others have been quiet for a while. Every
    // number below is about what the pages show of stored events, so wait for the
    // three visits' sessions (or fail, if one never arrives).
    let scope = Scope {
        site: Some("demo".to_owned()),
        since: Some(today()),
        ..Scope::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stored = stored_sessions(&collector, &scope)?;
        if stored >= 3 {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("{stored} of the 3 visits' sessions stored after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let admin = browser.session().await?;
    let c = &admin;

    // Signed out: every page sends to the login page, and back after it.
    c.goto(&format!("{base}/app/site/demo")).await?;
    assert_eq!(path(c).await?, "/app/login");
    shot(c, "login").await?;

    // A wrong password is refused, on the login page, with a message.
    sign_in(c, &base, "admin", "not the password").await?;
    assert_eq!(path(c).await?, "/app/login");
    assert!(
        text(c, "#login-error")
            .await?
            .contains("Wrong user name or password"),
        "{}",
        body(c).await?
    );

    // The first-start admin signs in.
    sign_in(c, &base, "admin", ADMIN_PASSWORD).await?;
    wait_at(c, "/app/sites").await?;
    let sites = body(c).await?;
    assert!(sites.contains("demo"), "{sites}");
    assert!(sites.contains("Installed: last event"), "{sites}");

    // Create a site: it is listed with its snippet and a copy button.
    fill(c, "new-id", "shop-b").await?;
    fill(c, "new-domains", "shop-b.example").await?;
    submit(c, "/app/sites").await?;
    text(c, "a[href=\"/app/site/shop-b\"]").await?;
    let snippets = c.find_all(Locator::Css("pre[id^=snippet-]")).await?;
    let mut found = false;
    for s in snippets {
        let t = s.text().await?;
        if t.contains("data-site=\"shop-b\"") {
            assert!(
                t.starts_with(&format!("<script async src=\"{base}/ct.js\"")),
                "{t}"
            );
            found = true;
        }
    }
    assert!(found, "no snippet for shop-b");
    assert!(body(c).await?.contains("Not installed yet"));
    assert!(
        !c.find_all(Locator::Css("button[data-copy]"))
            .await?
            .is_empty()
    );
    shot(c, "sites").await?;

    // The overview of today equals the analyzer's count for the same range.
    c.goto(&format!("{base}/app/site/demo?range=today")).await?;
    let shown_sessions: u64 = text(c, "[data-testid=sessions]").await?.trim().parse()?;
    let sessions = stored_sessions(&collector, &scope)?;
    assert_eq!(shown_sessions, sessions);
    assert_eq!(shown_sessions, 3);
    let pageviews: u64 = text(c, "[data-testid=pageviews]").await?.trim().parse()?;
    assert_eq!(pageviews, 7, "home×3, product×2, cart×2");
    assert!(body(c).await?.contains("/demo/cart.html"));
    shot(c, "overview").await?;

    // Every audit has a page with its table, and a CSV equal to the table shown.
    for audit in ["screens", "forms", "links", "ads", "frustration", "errors"] {
        c.goto(&format!("{base}/app/site/demo/{audit}?range=today"))
            .await?;
        assert_eq!(path(c).await?, format!("/app/site/demo/{audit}"));
        shot(c, audit).await?;
    }
    c.goto(&format!("{base}/app/site/demo/screens?range=today"))
        .await?;
    let shown = table_rows(c, "table[data-testid=table]").await?;
    let csv_url = c
        .find(Locator::Css("a[data-testid=csv]"))
        .await?
        .attr("href")
        .await?
        .context("no CSV link")?;
    let (status, csv) = fetch(c, &csv_url).await?;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    lines.next(); // header
    let from_csv: Vec<Vec<String>> = lines
        .map(|l| {
            l.split(',')
                .map(|f| f.trim_matches('"').to_owned())
                .collect()
        })
        .collect();
    assert_eq!(from_csv.len(), shown.len(), "{csv}");
    assert!(!shown.is_empty());
    for (row, line) in shown.iter().zip(&from_csv) {
        assert_eq!(row[0], line[0], "screen of {line:?}");
        assert_eq!(row[1], line[1], "sessions of {line:?}");
    }
    let (status, json_text) = fetch(c, &csv_url.replace(".csv", ".json")).await?;
    assert_eq!(status, 200);
    let j: Value = serde_json::from_str(&json_text)?;
    assert_eq!(j["sessions"].as_u64(), Some(sessions));

    // The saved funnel: the demo's `checkout`, and one built in the page.
    c.goto(&format!("{base}/app/site/demo/funnels?range=today"))
        .await?;
    fill(c, "f-name", "to-cart").await?;
    fill(c, "step-1", "page:/demo/").await?;
    fill(c, "step-2", "page:/demo/cart.html").await?;
    submit(c, "/app/site/demo/funnels").await?;
    wait_at(c, "/app/site/demo/funnels?name=to-cart").await?;
    c.goto(&format!(
        "{base}/app/site/demo/funnels?range=today&name=to-cart"
    ))
    .await?;
    let compare = table_rows(c, "table[data-testid=compare]").await?;
    let Report::Funnel(funnel) = collector.audit(&AuditRequest::Funnel {
        scope: scope.clone(),
        steps: Vec::new(),
        name: Some("to-cart".to_owned()),
        window: None,
    })?
    else {
        bail!("not a funnel report")
    };
    let entered: Vec<String> = funnel.steps.iter().map(|s| s.entered.to_string()).collect();
    let shown_entered: Vec<String> = compare.iter().map(|r| r[1].clone()).collect();
    assert_eq!(shown_entered, entered);
    assert_eq!(entered, ["3", "2"]);
    shot(c, "funnels").await?;

    // A saved funnel can be deleted from its page.
    c.goto(&format!(
        "{base}/app/site/demo/funnels?range=today&name=test-delete"
    ))
    .await?;
    fill(c, "f-name", "test-delete").await?;
    fill(c, "step-1", "page:/demo/").await?;
    fill(c, "step-2", "page:/demo/cart.html").await?;
    submit(c, "/app/site/demo/funnels").await?;
    wait_at(c, "/app/site/demo/funnels?name=test-delete").await?;
    submit(c, "/app/site/demo/funnels/delete").await?;
    wait_at(c, "/app/site/demo/funnels?deleted=test-delete").await?;
    let listed: Vec<String> = collector
        .analyzer(&["--site", "demo", "--format", "json", "funnels"])
        .map(|(_, out, _)| out)
        .into_iter()
        .collect();
    assert!(!listed.concat().contains("test-delete"), "{listed:?}");
    assert!(listed.concat().contains("to-cart"), "{listed:?}");

    // The admin adds a user who may see shop-b only.
    c.goto(&format!("{base}/app/users")).await?;
    fill(c, "u-name", "ann").await?;
    fill(c, "u-password", "ann's long password").await?;
    c.find(Locator::Css("input[name=site][value=shop-b]"))
        .await?
        .click()
        .await?;
    submit(c, "/app/users").await?;
    text(c, "td[data-v=ann]").await?;
    shot(c, "users").await?;
    c.goto(&format!("{base}/app/account")).await?;
    shot(c, "account").await?;

    // Ann sees shop-b and nothing of demo: pages, downloads and the API.
    let ann = browser.session().await?;
    sign_in(&ann, &base, "ann", "ann's long password").await?;
    wait_at(&ann, "/app/sites").await?;
    let listed = body(&ann).await?;
    assert!(
        listed.contains("shop-b") && !listed.contains("demo"),
        "{listed}"
    );
    for p in [
        "/app/site/demo",
        "/app/site/demo/screens",
        "/app/site/demo/funnels",
        "/app/site/demo/download/screens.csv",
        "/app/site/demo/download/report.html",
        "/app/site/demo/live",
    ] {
        let (status, page) = fetch(&ann, &format!("{base}{p}")).await?;
        assert_eq!(status, 404, "{p}: {page}");
        assert!(!page.contains("/demo/cart.html"), "{p} leaks demo data");
    }
    // Her dashboard session works on `/api/*` too, for her sites only.
    for (site, want) in [("shop-b", 200), ("demo", 404)] {
        let v = ann
            .execute_async(
                "var done = arguments[arguments.length - 1];
                 fetch('/api/audit', {method: 'POST', credentials: 'same-origin',
                   headers: {'content-type': 'application/json'},
                   body: JSON.stringify({audit: 'screens', scope: {site: arguments[0]}})})
                   .then(function (r) { done(r.status); }).catch(function () { done(0); });",
                vec![json!(site)],
            )
            .await?;
        assert_eq!(
            v.as_u64(),
            Some(want),
            "/api/audit for {site} with ann's session"
        );
    }
    // Her API token does not open demo either.
    ann.goto(&format!("{base}/app/account")).await?;
    fill(&ann, "label", "cli").await?;
    submit(&ann, "/app/account/tokens").await?;
    wait_at(&ann, "/app/account/tokens").await?;
    let token = text(&ann, "[data-testid=new-token]").await?;
    assert!(token.starts_with("ct_"), "{token}");
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/audit"))
        .bearer_auth(token.trim())
        .json(&json!({"audit": "screens", "scope": {"site": "demo"}}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 404);

    // Ann changes her own password: she stays signed in, told so; then revokes her
    // token, which stops working.
    ann.goto(&format!("{base}/app/account")).await?;
    fill(&ann, "current", "ann's long password").await?;
    fill(&ann, "new", "ann's second password").await?;
    fill(&ann, "again", "ann's second password").await?;
    submit(&ann, "/app/account/password").await?;
    wait_at(&ann, "/app/account?changed=1").await?;
    assert!(body(&ann).await?.contains("Your password was changed"));
    ann.find(Locator::Css("form[action$='/revoke'] button"))
        .await?
        .click()
        .await?;
    text(&ann, "td.muted").await?; // "No token."
    let resp = http
        .post(format!("{base}/api/audit"))
        .bearer_auth(token.trim())
        .json(&json!({"audit": "screens", "scope": {"site": "shop-b"}}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401, "a revoked token");

    // The admin gives ann demo in the users page, then takes it away again.
    for (action, want) in [("grant", 200), ("revoke", 404)] {
        c.goto(&format!("{base}/app/users")).await?;
        c.find(Locator::Css("#a-user option[value=ann], #a-user option"))
            .await?;
        c.execute(
            "document.getElementById('a-user').value = 'ann';
             document.getElementById('a-site').value = 'demo';
             document.getElementById('a-action').value = arguments[0];",
            vec![json!(action)],
        )
        .await?;
        submit(c, "/app/users/access").await?;
        // The change goes through the writer: poll briefly.
        let mut status = 0;
        for _ in 0..50 {
            status = fetch(&ann, &format!("{base}/app/site/demo/live?range=today"))
                .await?
                .0;
            if status == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, want, "after {action}");
    }

    // On a phone-sized screen.
    c.set_window_size(390, 844).await?;
    c.goto(&format!("{base}/app/site/demo?range=today")).await?;
    shot(c, "overview-phone").await?;
    c.set_window_size(1280, 900).await?;

    // An admin sets a new password for ann: her browser is signed out at once.
    let resp = http
        .post(format!("{base}/api/users/ann/password"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"password": "ann's new long password"}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    ann.goto(&format!("{base}/app/sites")).await?;
    assert_eq!(path(&ann).await?, "/app/login");

    // A forged cross-site POST is refused: from another site (`localhost` is not
    // `127.0.0.1`) the browser does not send the session cookie at all, so the form
    // lands on the login page and creates nothing.
    let other = base.replace("127.0.0.1", "localhost");
    c.goto(&format!("{other}/demo/")).await?;
    c.execute(
        "var f = document.createElement('form'); f.method = 'POST'; f.action = arguments[0];
         var i = document.createElement('input'); i.name = 'id'; i.value = 'forged'; f.appendChild(i);
         document.body.appendChild(f); f.submit();",
        vec![json!(format!("{base}/app/sites"))],
    )
    .await?;
    for _ in 0..50 {
        if c.current_url().await?.as_str().starts_with(&base) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let landed = c.current_url().await?;
    assert!(
        landed.path() == "/app/login" || body(c).await?.contains("another site"),
        "{landed}"
    );
    // With the cookie but a foreign Origin, or without the form's CSRF token: 403.
    let cookie = c
        .get_named_cookie("ct_session")
        .await
        .context("the admin's session cookie")?;
    for (origin, csrf) in [("http://evil.example", true), (base.as_str(), false)] {
        let page_csrf = if csrf { "whatever" } else { "" };
        let resp = http
            .post(format!("{base}/app/sites"))
            .header("cookie", format!("ct_session={}", cookie.value()))
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("id=forged&csrf={page_csrf}"))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 403, "origin {origin}");
    }
    // The API with the session cookie from a foreign origin: 403 too.
    let resp = http
        .post(format!("{base}/api/funnels"))
        .header("cookie", format!("ct_session={}", cookie.value()))
        .header("origin", "http://evil.example")
        .json(&json!({"site": "demo", "name": "forged", "steps": ["page:/"]}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 403);
    c.goto(&format!("{base}/app/sites")).await?;
    assert!(
        !body(c).await?.contains("forged"),
        "a forged site was created"
    );

    // Sign-in attempts are limited: guessing at speed soon gets 429.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let page = http.get(format!("{base}/app/login")).send().await?;
        let cookie = page
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("no login cookie")?
            .to_owned();
        let csrf = cookie
            .split_once('=')
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let resp = http
            .post(format!("{base}/app/login"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&user=nobody&password=guess"))
            .send()
            .await?;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");

    // Signing out ends the session.
    submit(c, "/app/logout").await?;
    wait_at(c, "/app/login").await?;
    c.goto(&format!("{base}/app/sites")).await?;
    assert_eq!(path(c).await?, "/app/login");

    admin.close().await?;
    ann.close().await?;
    Ok(())
}
