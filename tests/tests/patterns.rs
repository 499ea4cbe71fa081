//! The storefront patterns of `examples/patterns/` in a real headless Chromium,
//! through the real tracker and collector into a real DuckDB file: for each one
//! the stored events must be exactly what the visitor did.
//!
//! - `hash.html`: a single-page shop routed with the URL fragment gives a page
//!   view per route (`#/…`, `#!…`, `#name`, a deep link, back, the root `#!`),
//!   with the route in the path; an in-page anchor or a number is no page view.
//! - `links.html`: a click inside a link (a button, an SVG icon) is the link's,
//!   with the selector of its `link_view` rows; an icon inside a button is the
//!   button's; an icon inside nothing clickable is its `svg`; an HTML link in an
//!   SVG `foreignObject` is a link, an SVG `<a>` is not; links rendered after the
//!   tracker started, and a link given its `href` then, are seen.
//! - `ids.html`, loaded twice: ids and classes generated anew on every load give
//!   the same, short selectors; stable ids are kept (escaped as `CSS.escape`
//!   does), generated ones give way to a test id, a label or a component class.
//! - `session.html`, four loads in one tab: the session goes on across pages and
//!   restarts after 30 minutes idle or an unreadable stored id.
//! - `privacy.html`: the tag twice runs one tracker; under Do-Not-Track or Global
//!   Privacy Control nothing is fetched or recorded.
//! - `keys.html`: a label click is one click, Enter in a field and a keyboard
//!   choice in a select are none; Enter on a focused button is a click without
//!   a place; a Tab right after Enter on a button that does nothing is no answer.
//! - `reject.html`: unhandled promise rejections carry the script and line of
//!   their stack.
//! - `checkout.html`: a checkout over two forms with a custom dropdown, a note
//!   outside any form and a `data-ct-form` field is one flow: the buyer who paid
//!   abandoned nothing.
//! - `steps.html`: an SPA checkout whose routes render after they are pushed gives
//!   the screens the visitor saw, the confirmation after the last step included;
//!   a variant written into the URL with `replaceState` is no page view; each page
//!   view has the title the app set a moment after drawing it.
//! - `routes.html`: a hash-bang shop that draws each route a moment after the URL
//!   changed: each route's page view has its own title and lists only its own
//!   links (not those of the route before, still on screen until it is drawn);
//!   a route that says `<meta name="ct-status" content="404">` is an error page
//!   and the link to it a broken link.
//! - `widgets.html`: quick clicks on a carousel, a stepper, a dropdown, a modal
//!   are neither dead nor rage; a button that does nothing is dead, and rage when
//!   clicked quickly, though a dropdown library rewrites the page on every click
//!   and a countdown and the carousel change the page by themselves all along;
//!   the opt-outs hold; the search icon (focusing the search box), "Play" (a
//!   video), "Share" (a window opened), "Copy code" (the clipboard) and "Back to
//!   top" (the page scrolled by script) are not dead, a button that
//!   does nothing is though the visitor turns the wheel right after it.
//!
//! - `folds.html`, `slides.html`: checkouts whose steps are all on the page,
//!   folded to no height by an accordion or slid out of a clipping window: the
//!   screen is the step shown; marked elements off the page, hidden or
//!   transparent are none.
//! - `tabs.html`: a size chart opened in a new tab goes on with the visitor's
//!   session, so its 404 is a broken link of the page.
//! - `tags.html`: analytics tags report every click (a keepalive beacon, a fetch
//!   to an analytics service): a button that does nothing is still dead.
//! - `stepper.html`: a Magento-style checkout whose script names the step shown
//!   in the fragment (`#shipping`, `#payment`): each visit of a step is a page
//!   view of that step, the first one too; an in-page anchor is none.
//!
//! - `early.html`: with the optional inline snippet, a script failing while the
//!   page is parsed, before the async tracker has loaded, is recorded.
//! - `deal.html`: an ad shown for 1.4 s right after an SPA route change, while
//!   the route is still drawn, counts on that route.
//!
//! - `shadow.html`: web components with open shadow roots (product cards, a
//!   checkout form): clicks, dead clicks and link views inside a card are the
//!   card's elements, written after the card's part; every card's link is
//!   seen, one added later too; the form's focus, change, blur and submit, which
//!   never reach the document, are each recorded once.
//!
//! - `product.html`: a Shopify-style product page: product and quick-add forms
//!   with a hidden field named `id` (so `form.id` is not a string), an image named
//!   `title` (so `document.title` is not one), size swatches, a carousel whose
//!   ad slide is cloned, a theme script failing before the tracker starts: the
//!   failure is recorded, the forms by their ids, the page by its title, the ad
//!   once, and nothing of the tracker reaches the page's error handler.
//! - `sort.html`: forms sent by script (`form.submit()`): a sort menu's from its
//!   `onchange`, a newsletter's from its submit handler after stopping the
//!   browser's: each is one submit, neither abandoned nor failed.
//! - `prerender.html`: a page the browser prerenders records nothing until the
//!   visitor opens it (`prerenderingchange`): then one page view.
//! - `order.html`: an order form sent to a server that answers with an error page
//!   (the demo's 404): the forms audit counts the submit as failed, though the
//!   visitor is on another path after it.
//!
//! Results are read from the DuckDB file once the collector has stopped.

use std::time::Duration;

use analyzer::{AuditRequest, Scope};
use anyhow::{Context as _, Result, bail};
use clicktrail_e2e::{Browser, Collector, Page, workspace};
use duckdb::Connection;
use fantoccini::actions::{
    InputSource as _, KeyAction, KeyActions, MouseActions, PointerAction, WheelAction, WheelActions,
};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

/// Key codes of the `WebDriver` protocol.
const ENTER: &str = "\u{E007}";
const ARROW_DOWN: &str = "\u{E015}";
const TAB: &str = "\u{E004}";

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Click the first element matching a CSS selector.
async fn click_css(c: &Client, css: &str) -> Result<()> {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await?
        .click()
        .await?;
    Ok(())
}

/// Wait until `location.hash` is `hash`.
async fn wait_hash(c: &Client, hash: &str) -> Result<()> {
    for _ in 0..100 {
        if c.execute("return location.hash;", vec![]).await? == json!(hash) {
            return Ok(());
        }
        pause(30).await;
    }
    bail!("location.hash never became {hash}")
}

/// Deep link to a route, four route changes through links (a `#/…`, a `#name`, a
/// `#!…` and a `#/…?query` route) with an in-page anchor among them, back, a
/// photo number (no route) and the root `#!`.
async fn hash_shop(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/hash.html#/cart").await?;
    for (id, hash) in [
        ("to-product", "#/product/12"),
        ("to-reviews", "#reviews"),
        ("to-catalog", "#catalog"),
        ("to-cart", "#!/cart"),
        ("to-search", "#/search?q=boots"),
    ] {
        p.click(id).await?;
        wait_hash(&c, hash).await?;
        pause(150).await;
    }
    c.back().await?;
    wait_hash(&c, "#!/cart").await?;
    pause(150).await;
    c.forward().await?;
    wait_hash(&c, "#/search?q=boots").await?;
    pause(150).await;
    c.back().await?;
    wait_hash(&c, "#!/cart").await?;
    pause(150).await;
    for (id, hash) in [("to-slide", "#2"), ("to-home", "#!")] {
        p.click(id).await?;
        wait_hash(&c, hash).await?;
        pause(150).await;
    }
    pause(150).await;
    done(&p, col).await
}

/// A button inside a link, an icon inside a link, the icon and the label inside a
/// button, a decorative icon (a dead click).
async fn links_inside(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/links.html").await?;
    pause(300).await;
    for css in [
        "#card-button",
        "#cart-icon",
        "#like-icon",
        "#like-label",
        "#decor-icon",
    ] {
        click_css(&c, css).await?;
        pause(200).await;
    }
    pause(1_300).await; // the decorative icon's click is judged dead
    // The pointer on the mega menu opens it: its links show; then on the first
    // folded menu: it unfolds.
    for menu in ["#shop-menu", "#sale-menu"] {
        let element = c.find(Locator::Css(menu)).await?;
        let hover = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
            element,
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        c.perform_actions(hover).await?;
        pause(900).await;
    }
    done(&p, col).await
}

/// The selectors of the buttons of `ids.html`'s `.names`, in order.
const NAMES: [&str; 13] = [
    "button#checkout",
    "button#p-boots",
    "button#step2",
    "button#product-12",
    "button#add-to-cart",
    "button#nav_home",
    r"button#\31 st",
    r"button#-\32 x",
    "button#é",
    r#"div.names > button[aria-label="Uuid"]"#,
    r#"button[data-testid="size-picker"]"#,
    r#"div.names > button[aria-label="Fewer"]"#,
    "div.names > button.Buy",
];

/// The page with generated ids: the button, the field and the second slide's link,
/// then each of the buttons of [`NAMES`].
/// Returns the generated ids and classes of this load.
async fn generated_ids(b: &Browser, base: &str, col: &Collector) -> Result<Vec<String>> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/ids.html").await?;
    pause(300).await;
    let ids: Vec<String> = serde_json::from_value(
        c.execute(
            "return Array.from(document.querySelectorAll('[id]:not(#status, .names *)'), e => e.id)\
             .concat(Array.from(document.querySelector('form button').classList));",
            vec![],
        )
        .await?,
    )?;
    for css in ["form button", "form input", ".swiper-slide:nth-child(2) a"] {
        click_css(&c, css).await?;
        pause(200).await;
    }
    for i in 1..=NAMES.len() {
        click_css(&c, &format!(".names button:nth-child({i})")).await?;
        pause(50).await;
    }
    done(&p, col).await?;
    Ok(ids)
}

/// Two label clicks, a cancelled label click then its field, a swatch whose script
/// clicks a hidden radio, Enter in a field, a keyboard choice in a select, Enter
/// on a focused button.
async fn keys(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/keys.html").await?;
    p.click("news-label").await?;
    pause(100).await;
    p.click("fast-label").await?;
    pause(100).await;
    p.click("gift-label").await?; // cancelled: the field's own click counts next
    pause(100).await;
    p.click("gift").await?;
    pause(100).await;
    p.click("swatch-red").await?; // its script clicks the hidden radio
    pause(100).await;
    p.type_into("email", "kim@example.com").await?;
    c.active_element().await?.send_keys(ENTER).await?;
    for _ in 0..100 {
        if c.find(Locator::Id("done")).await?.is_displayed().await? {
            break;
        }
        pause(30).await;
    }
    c.execute("document.getElementById('size').focus();", vec![])
        .await?;
    c.active_element()
        .await?
        .send_keys(&format!("{ARROW_DOWN}{ARROW_DOWN}"))
        .await?;
    pause(100).await;
    c.execute("document.getElementById('kbd').focus();", vec![])
        .await?;
    c.active_element().await?.send_keys(ENTER).await?;
    pause(300).await;
    // Nothing answers "Save for later"; the visitor's Tab right after moves the
    // focus, which is no answer of the page's.
    c.execute("document.getElementById('later').focus();", vec![])
        .await?;
    c.active_element().await?.send_keys(ENTER).await?;
    c.active_element().await?.send_keys(TAB).await?;
    pause(1300).await;
    done(&p, col).await
}

/// Three unhandled rejections: an Error, a throw in an async function, a string.
async fn rejections(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/reject.html").await?;
    for id in ["stock", "pay", "plain"] {
        p.click(id).await?;
        pause(200).await;
    }
    done(&p, col).await
}

/// Click each element of `ids` `times` times in quick succession.
async fn quickly(p: &Page<'_>, ids: &[&str], times: usize) -> Result<()> {
    for id in ids {
        for _ in 0..times {
            p.click(id).await?;
            pause(60).await;
        }
        pause(1_200).await; // each burst is judged on its own
    }
    Ok(())
}

/// Bursts of three quick clicks on the carousel's arrows, the stepper's buttons;
/// the dropdown opened and closed; the size guide opened and closed; one click on
/// "Add to cart" (which does nothing), "Checkout" (disabled), "Quick view" (a
/// `javascript:` link that does nothing), "Add to wishlist" (a link to `#` that
/// does nothing); the search icon, "Play", "Share", "Copy
/// code", "Back to top"; a
/// burst on "Add to cart"; a burst on each opt-out; "Notify me" (which does
/// nothing), the wheel turned right after it.
async fn widgets(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/widgets.html").await?;
    // The visitor reads first: the tracker learns the countdown's and the
    // carousel's own beats (two changes each).
    pause(3_500).await;
    quickly(&p, &["next", "prev", "plus", "minus"], 3).await?;
    let once = [
        "sort",
        "sort",
        "open-guide",
        "close-guide",
        "add",
        "checkout",
        "quick-view",
        "wish-link",
        "search-icon",
        "play",
        "share",
        "copy",
        "top",
    ];
    quickly(&p, &once, 1).await?;
    quickly(&p, &["add", "compare", "wishlist"], 3).await?;
    p.click("notify").await?;
    let mut wheel = WheelActions::new("wheel".to_string());
    wheel.push(WheelAction::Scroll {
        duration: None,
        x: 100,
        y: 100,
        delta_x: 0,
        delta_y: 400,
    });
    c.perform_actions(wheel).await?;
    pause(1_200).await;
    let qty = c
        .execute("return document.getElementById('qty').value;", vec![])
        .await?;
    assert_eq!(qty, json!("1"), "the stepper went up by 3 and down by 3");
    done(&p, col).await
}

/// The buyer: the address form (two fields and the custom country dropdown), the
/// order note, "Continue", "Pay" with no card, the card and the gift message, "Pay".
async fn checkout(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/checkout.html").await?;
    pause(300).await;
    p.type_into("street", "1 Fjord Road").await?;
    p.type_into("city", "Bergen").await?;
    p.click("country").await?;
    pause(100).await;
    p.click("opt-no").await?;
    pause(100).await;
    p.type_into("note", "Leave at the door").await?;
    p.click("continue").await?;
    pause(100).await;
    p.click("pay").await?;
    pause(300).await;
    p.type_into("card", "4111111111111111").await?;
    p.type_into("gift", "Happy birthday").await?;
    p.type_into("gift-note", "With love").await?;
    p.click("pay").await?;
    for _ in 0..100 {
        if c.find(Locator::Id("thanks")).await?.is_displayed().await? {
            break;
        }
        pause(30).await;
    }
    pause(200).await;
    done(&p, col).await
}

/// `sort.html`: "Price" chosen with the keyboard in the sort menu (which sends
/// its form by script), then the newsletter: an address typed and "Join" (its
/// handler sends the form by script a moment later).
async fn sorted(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/sort.html").await?;
    c.execute("document.getElementById('order-by').focus();", vec![])
        .await?;
    c.active_element().await?.send_keys(ARROW_DOWN).await?;
    p.wait_query("sort=price").await?;
    p.type_into("email", "kim@example.com").await?;
    p.click("join").await?;
    p.wait_query("email=").await?;
    pause(300).await;
    done(&p, col).await
}

/// `prerender.html`: loaded as a prerendered page (nothing runs the tracker
/// for 1.5 s), then opened: "Add to cart". Returns when it was opened (ms).
async fn prerendered(b: &Browser, base: &str, col: &Collector) -> Result<i64> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    c.goto(&format!("{base}/demo/prerender.html")).await?;
    pause(1_500).await;
    let running = c
        .execute(
            "return !!(window.clicktrail && window.clicktrail.ready);",
            vec![],
        )
        .await?;
    assert_eq!(running, json!(false), "the tracker ran while prerendered");
    c.execute("open();", vec![]).await?;
    p.tracker_ready().await?;
    let opened = c.execute("return window.openedAt;", vec![]).await?;
    p.click("buy").await?;
    pause(300).await;
    done(&p, col).await?;
    opened.as_i64().context("the page says when it was opened")
}

/// Four loads of `session.html` in one tab: the second goes on with the first's
/// session; before the third the stored session is made 31 minutes idle, before
/// the fourth its id is made unreadable (each time from a page of the same origin
/// without the tracker, so no tracker writes over it).
async fn sessions(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/session.html?load=1").await?;
    p.open("/demo/session.html?load=2").await?;
    for (load, change) in [
        (
            3,
            "sessionStorage.setItem('ct_last', String(Date.now() - 31 * 60 * 1000));",
        ),
        (4, "sessionStorage.setItem('ct_sid', 'not-a-session-id');"),
    ] {
        c.goto(&format!("{base}/healthz")).await?;
        c.execute(change, vec![]).await?;
        p.open(&format!("/demo/session.html?load={load}")).await?;
    }
    done(&p, col).await
}

/// The size chart of tabs.html opened in a new tab (`target=_blank`): a 404
/// there, read for a moment, then the tab closed.
async fn new_tab(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/tabs.html").await?;
    pause(700).await;
    let first = c.window().await?;
    p.click("size-chart").await?;
    let mut tab = None;
    for _ in 0..100 {
        tab = c.windows().await?.into_iter().find(|w| *w != first);
        if tab.is_some() {
            break;
        }
        pause(50).await;
    }
    let Some(tab) = tab else {
        bail!("the size chart opened no tab");
    };
    c.switch_to_window(tab).await?;
    pause(1500).await;
    c.goto("about:blank").await?;
    pause(300).await;
    c.close_window().await?;
    c.switch_to_window(first).await?;
    done(&p, col).await
}

/// Open `page`, then click each of `ids` after a moment to read, and leave.
async fn click_through(
    b: &Browser,
    base: &str,
    col: &Collector,
    page: &str,
    ids: &[&str],
) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open(page).await?;
    for id in ids {
        pause(700).await;
        p.click(id).await?;
    }
    pause(700).await;
    done(&p, col).await
}

/// `privacy.html` (the tag twice) loaded as it is, then with Do-Not-Track, then
/// with Global Privacy Control: a click on its button each time. Under either
/// signal the loader must not even fetch the module.
async fn privacy(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/privacy.html").await?;
    p.click("ok").await?;
    for signal in ["dnt", "gpc"] {
        c.goto(&format!("{base}/demo/privacy.html?{signal}"))
            .await?;
        pause(1_500).await;
        let loaded = c
            .execute(
                "return [!!(window.clicktrail && window.clicktrail.ready), \
                 performance.getEntriesByType('resource').some(r => r.name.includes('ct_wasm'))];",
                vec![],
            )
            .await?;
        assert_eq!(
            loaded,
            json!([false, false]),
            "{signal}: the tracker loaded"
        );
        p.click("ok").await?;
        pause(200).await;
    }
    done(&p, col).await
}

/// `frame.html` (the tag, and a frame of a page of the shop that has the tag too:
/// the card fields) and `embed.html` (a page without the tag, the same frame in
/// it): the card typed and Pay pressed in the frame each time, Place order on
/// `frame.html`. In a frame of a page that records, the tag loads nothing.
async fn frames(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    let started = "return [!!window.clicktrail, !!(window.clicktrail && window.clicktrail.ready), \
         performance.getEntriesByType('resource').some(r => r.name.includes('ct_wasm'))];";
    p.open("/demo/frame.html").await?;
    c.enter_frame(0).await?;
    pause(1_000).await;
    assert_eq!(
        c.execute(started, vec![]).await?,
        json!([true, false, false]),
        "the frame's tag: a stub for the page's calls, no module"
    );
    p.type_into("card", "4242 4242 4242 4242").await?;
    p.click("pay").await?;
    c.enter_parent_frame().await?;
    p.click("place").await?;
    pause(300).await;
    c.goto(&format!("{base}/demo/embed.html")).await?;
    c.enter_frame(0).await?;
    p.tracker_ready().await?;
    p.type_into("card", "4242 4242 4242 4242").await?;
    p.click("pay").await?;
    pause(300).await;
    c.enter_parent_frame().await?;
    done(&p, col).await
}

/// "Show more" on `shadow.html`, then in its shadow roots: the second card's title link and "Add to
/// cart", the third card's heart (which does nothing), then the size picker (a
/// component in the form's component), the e-mail and the card of the checkout
/// form (which checks itself at each key), and Pay.
async fn shadow_dom(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/shadow.html").await?;
    pause(300).await;
    p.click("more").await?;
    pause(300).await;
    let inside = |host: &'static str, css: &'static str| {
        let c = c.clone();
        async move {
            c.find(Locator::Css(host))
                .await?
                .shadow_root()
                .await?
                .find(Locator::Css(css))
                .await
        }
    };
    for (host, css) in [
        ("shop-card:nth-of-type(2)", "a.title"),
        ("shop-card:nth-of-type(2)", "button.add"),
        ("shop-card:nth-of-type(3)", "button.wish"),
    ] {
        inside(host, css).await?.click().await?;
        pause(200).await;
    }
    let size = c
        .find(Locator::Css("checkout-form"))
        .await?
        .shadow_root()
        .await?
        .find(Locator::Css("size-pick"))
        .await?
        .shadow_root()
        .await?
        .find(Locator::Css("button"))
        .await?;
    size.click().await?;
    pause(200).await;
    for (name, text) in [("email", "ann@example.com"), ("card", "4111111111111111")] {
        let css = if name == "email" {
            "[name=email]"
        } else {
            "[name=card]"
        };
        inside("checkout-form", css).await?.click().await?;
        // Typed as keys to the focused field: sending keys to the element would
        // make chromedriver blur the host and focus the field again.
        let mut keys = KeyActions::new("keyboard".into());
        for ch in text.chars() {
            keys = keys
                .then(KeyAction::Down { value: ch })
                .then(KeyAction::Up { value: ch });
        }
        c.perform_actions(keys).await?;
    }
    inside("checkout-form", "#pay").await?.click().await?;
    pause(1_300).await; // the heart's click is judged dead
    done(&p, col).await
}

/// On `product.html`: a look at the hero (its ad in view 1 s), the size 42
/// swatch, the quantity, "Add to cart", the quick-add of the mug; the page's own
/// error handler has seen the theme's failure only.
async fn product(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/product.html").await?;
    pause(1_500).await;
    p.click("swatch-42").await?;
    pause(100).await;
    p.type_into("quantity", "2").await?;
    p.click("add").await?;
    pause(300).await;
    p.click("quick-add").await?;
    pause(300).await;
    let seen = c.execute("return window.pageErrors;", vec![]).await?;
    let seen: Vec<String> = serde_json::from_value(seen)?;
    assert!(
        seen.len() == 1 && seen[0].contains("init"),
        "the page's error handler saw {seen:?}, not just the theme's failure"
    );
    done(&p, col).await
}

/// `deal.html`: the deal route, whose banner shows for 1.4 s while the route
/// keeps drawing.
async fn deal(b: &Browser, base: &str, col: &Collector) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/deal.html").await?;
    pause(700).await;
    p.click("go").await?;
    pause(2_000).await;
    done(&p, col).await
}

/// Leave the page, wait until its last beacon is stored, close the browser.
/// (Closing at once can kill the browser before the beacon is on the wire.)
async fn done(p: &Page<'_>, col: &Collector) -> Result<()> {
    p.leave().await?;
    col.wait_quiet(1).await?;
    p.c.clone().close().await?;
    Ok(())
}

/// The rows of a query whose one column is a string (NULL as `-`).
fn strings(conn: &Connection, sql: &str) -> Vec<String> {
    let mut st = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    st.query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .map(|r| r.expect("a row").unwrap_or_else(|| "-".into()))
        .collect()
}

/// `audit` with its default params, run on the file, as JSON.
fn audit(conn: &Connection, audit: &str) -> Result<Value> {
    let req: AuditRequest = serde_json::from_value(json!({
        "audit": audit,
        "scope": Scope { site: Some("demo".into()), ..Scope::default() },
    }))?;
    Ok(serde_json::to_value(analyzer::run(conn, &req)?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storefront_patterns_are_recorded_as_they_happened() -> Result<()> {
    let collector = Collector::serving(&workspace().join("examples/patterns")).await?;
    let browser = Browser::start().await?;
    let base = collector.url.clone();

    hash_shop(&browser, &base, &collector).await?;
    links_inside(&browser, &base, &collector).await?;
    let ids = [
        generated_ids(&browser, &base, &collector).await?,
        generated_ids(&browser, &base, &collector).await?,
    ];
    keys(&browser, &base, &collector).await?;
    rejections(&browser, &base, &collector).await?;
    widgets(&browser, &base, &collector).await?;
    checkout(&browser, &base, &collector).await?;
    sorted(&browser, &base, &collector).await?;
    let opened = prerendered(&browser, &base, &collector).await?;
    sessions(&browser, &base, &collector).await?;
    // steps.html: a size (written into the URL), Checkout, Continue, Place order;
    // routes.html: Shoes, Home, the
    // old sale, Home.
    let steps = ["size", "checkout", "continue", "place"];
    click_through(&browser, &base, &collector, "/demo/steps.html", &steps).await?;
    let routes = ["to-shoes", "shoes-home", "to-sale", "nf-home"];
    click_through(&browser, &base, &collector, "/demo/routes.html", &routes).await?;
    // folds.html and slides.html: on to delivery, on to billing, back to delivery.
    let folds = ["to-delivery", "to-pay", "edit-delivery"];
    click_through(&browser, &base, &collector, "/demo/folds.html", &folds).await?;
    let slides = ["next-1", "next-2", "back-2"];
    click_through(&browser, &base, &collector, "/demo/slides.html", &slides).await?;
    new_tab(&browser, &base, &collector).await?;
    // tags.html: Zoom, Add to bag, Load more.
    let tags = ["zoom", "add", "more"];
    click_through(&browser, &base, &collector, "/demo/tags.html", &tags).await?;
    // stepper.html: Next, back to edit the shipping step, Next, the help anchor.
    let stepper = ["next", "edit-shipping", "next", "to-help"];
    click_through(&browser, &base, &collector, "/demo/stepper.html", &stepper).await?;
    deal(&browser, &base, &collector).await?;
    // order.html: the terms accepted, the order placed, answered by a 404 page.
    click_through(
        &browser,
        &base,
        &collector,
        "/demo/order.html",
        &["terms", "place"],
    )
    .await?;
    // early.html: the OK button fails once the tracker runs.
    click_through(&browser, &base, &collector, "/demo/early.html", &["ok"]).await?;
    shadow_dom(&browser, &base, &collector).await?;
    product(&browser, &base, &collector).await?;
    privacy(&browser, &base, &collector).await?;
    frames(&browser, &base, &collector).await?;
    collector.wait_quiet(60).await?;
    let db = collector.stop().await?;
    let conn = analyzer::open_read_only(&db)?;
    let rows = |sql: &str| strings(&conn, sql);
    // In recording order: the rows of one `links` event are `<id>-0`, `<id>-1`, …
    // `<id>-10`.
    let on = |page: &str, kind: &str, what: &str| {
        rows(&format!(
            "SELECT {what} FROM events WHERE path LIKE '/demo/{page}%' AND kind = '{kind}' \
             ORDER BY session_id, ts, seq, length(event_id), event_id"
        ))
    };

    // Routes drawn a moment after the URL changed: each page view has its
    // route's title (and status), each route lists its own links only.
    let routes = "/demo/routes.html";
    assert_eq!(
        on(
            "routes.html",
            "pageview",
            "path || ' ' || title || ' ' || coalesce(CAST(status AS VARCHAR), '-')"
        ),
        [
            format!("{routes} Home 200"),
            format!("{routes}#!/shoes Shoes -"),
            format!("{routes} Home -"),
            format!("{routes}#!/old-sale Not found 404"),
            format!("{routes} Home -"),
        ]
    );
    assert_eq!(
        rows(&format!(
            "SELECT path || ': ' || string_agg(selector, ' ' ORDER BY selector) FROM events \
             WHERE path LIKE '{routes}%' AND kind = 'link_view' GROUP BY path ORDER BY path"
        )),
        [
            format!("{routes}: a#to-sale a#to-sale a#to-sale a#to-shoes a#to-shoes a#to-shoes"),
            format!("{routes}#!/old-sale: a#nf-home"),
            format!("{routes}#!/shoes: a#boot a#shoes-home"),
        ]
    );
    let errors = audit(&conn, "errors")?;
    let gone: Vec<String> = errors["error_pages"]
        .as_array()
        .expect("a list of error pages")
        .iter()
        .map(|p| format!("{} {}", p["page"], p["status"]))
        .collect();
    // The order placed on order.html was answered by the 404 page too, and so
    // was the size chart opened in a new tab.
    assert_eq!(
        gone,
        [
            "\"/demo/order/place\" 404".to_string(),
            format!("\"{routes}#!/old-sale\" 404"),
            "\"/demo/size-chart.html\" 404".to_string(),
        ]
    );
    let broken: Vec<String> = audit(&conn, "links")?["broken"]
        .as_array()
        .expect("a list of broken links")
        .iter()
        .map(|l| {
            format!(
                "{} {} {} {}",
                l["page"], l["selector"], l["status"], l["clicks"]
            )
        })
        .collect();
    // "Place order" on order.html led to the error page as the sale link did,
    // and the size chart in its new tab.
    assert_eq!(
        broken,
        [
            "\"/demo/order.html\" \"button#place\" 404 1".to_string(),
            format!("\"{routes}\" \"a#to-sale\" 404 1"),
            "\"/demo/tabs.html\" \"a#size-chart\" 404 1".to_string(),
        ]
    );

    // The size chart opened in a new tab goes on with the session of the page
    // it was opened from.
    assert_eq!(
        rows(
            "SELECT path || ' ' || kind FROM events WHERE session_id IN \
             (SELECT session_id FROM events WHERE path = '/demo/tabs.html') \
             AND kind IN ('pageview', 'click') ORDER BY ts, seq"
        ),
        [
            "/demo/tabs.html pageview",
            "/demo/tabs.html click",
            "/demo/size-chart.html pageview"
        ]
    );

    // The tags' requests answer no click: Zoom is dead; the page's own request
    // answered Load more.
    assert_eq!(on("tags.html", "dead_click", "selector"), ["button#zoom"]);

    // Steps folded away or slid out of their window are not shown, nor are
    // marked elements parked off the page, hidden or transparent: the screen is
    // the step the buyer sees, also after a step folds or slides back (the
    // change is seen when its transition ends).
    for page in ["folds.html", "slides.html"] {
        assert_eq!(
            rows(&format!(
                "SELECT kind || ' ' || coalesce(screen, '-') FROM events \
                 WHERE path = '/demo/{page}' AND kind IN ('pageview', 'screen', 'click') \
                 ORDER BY session_id, ts, seq"
            )),
            [
                "pageview contact",
                "screen contact",
                "click contact",
                "screen delivery",
                "click delivery",
                "screen billing",
                "click billing",
                "screen delivery",
            ],
            "{page}"
        );
    }

    // A Magento-style checkout names its steps `#shipping`, `#payment` from its
    // script: each visit of a step is a page view of that step, the first one
    // too (the step shown has the fragment's id); the help anchor is none.
    let stepper = "/demo/stepper.html";
    assert_eq!(
        on("stepper.html", "pageview", "nav || ' ' || path"),
        [
            format!("navigate {stepper}"),
            format!("hash {stepper}#shipping"),
            format!("hash {stepper}#payment"),
            format!("hash {stepper}#shipping"),
            format!("hash {stepper}#payment"),
        ]
    );
    assert_eq!(
        on("stepper.html", "click", "path || ' ' || selector"),
        [
            format!("{stepper}#shipping button#next"),
            format!("{stepper}#payment button#edit-shipping"),
            format!("{stepper}#shipping button#next"),
            format!("{stepper}#payment a#to-help"),
        ]
    );

    // Hash routes: a page view per route, the route in the path of everything
    // recorded on it (its `?query` dropped); the anchor is no page view; back is
    // `pop`, forward `forward`.
    let hash = "/demo/hash.html";
    assert_eq!(
        on("hash.html", "pageview", "nav || ' ' || path || ' ' || url"),
        [
            format!("navigate {hash}#/cart {base}{hash}"),
            format!("hash {hash}#/product/12 {base}{hash}"),
            format!("hash {hash}#catalog {base}{hash}"),
            format!("hash {hash}#!/cart {base}{hash}"),
            format!("hash {hash}#/search {base}{hash}"),
            format!("pop {hash}#!/cart {base}{hash}"),
            format!("forward {hash}#/search {base}{hash}"),
            format!("pop {hash}#!/cart {base}{hash}"),
            format!("hash {hash} {base}{hash}"),
        ]
    );
    assert_eq!(
        on("hash.html", "click", "path || ' ' || selector"),
        [
            format!("{hash}#/cart a#to-product"),
            format!("{hash}#/product/12 a#to-reviews"),
            format!("{hash}#/product/12 a#to-catalog"),
            format!("{hash}#catalog a#to-cart"),
            format!("{hash}#!/cart a#to-search"),
            format!("{hash}#!/cart a#to-slide"),
            format!("{hash}#!/cart a#to-home"),
        ]
    );
    // A link's href keeps its hash route (its `?query` dropped), not an anchor,
    // a number or the root.
    assert_eq!(
        on("hash.html", "click", "href"),
        [
            format!("{base}{hash}#/product/12"),
            format!("{base}{hash}"),
            format!("{base}{hash}#catalog"),
            format!("{base}{hash}#!/cart"),
            format!("{base}{hash}#/search"),
            format!("{base}{hash}"),
            format!("{base}{hash}"),
        ]
    );
    assert_eq!(on("hash.html", "leave", "path"), [hash]);
    assert_eq!(
        on("hash.html", "dead_click", "selector"),
        Vec::<String>::new()
    );
    // Each route's view lists the seven links once; the anchor is no new view.
    assert_eq!(
        rows(&format!(
            "SELECT path || ' ' || count(*) FROM events WHERE path LIKE '{hash}%' \
             AND kind = 'link_view' GROUP BY path ORDER BY min(ts)"
        )),
        [
            format!("{hash}#/cart 7"),
            format!("{hash}#/product/12 7"),
            format!("{hash}#catalog 7"),
            format!("{hash}#!/cart 21"),
            format!("{hash}#/search 14"),
            format!("{hash} 7"),
        ]
    );
    // A link keeps its href on every view, also on its own route, where the
    // section named like it shows: one link in the links audit, not two.
    assert_eq!(
        rows(&format!(
            "SELECT DISTINCT href FROM events WHERE path LIKE '{hash}%' \
             AND kind = 'link_view' AND selector = 'a#to-catalog'"
        )),
        [format!("{base}{hash}#catalog")]
    );
    // Routes are screens like pushState ones.
    let screens = audit(&conn, "screens")?;
    let screen = |name: &str| -> Value {
        screens["screens"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["screen"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no screen {name}: {screens:#}"))
    };
    let cart = screen(&format!("{hash}#!/cart"));
    assert_eq!((&cart["views"], &cart["exits"]), (&json!(3), &json!(0)));
    let root = screen(hash);
    assert_eq!((&root["views"], &root["exits"]), (&json!(1), &json!(1)));
    assert_eq!(screen(&format!("{hash}#catalog"))["views"], json!(1));

    // A variant picked (`replaceState` to `?variant=42`) is the same page.
    assert_eq!(
        on("steps", "pageview", "path || ' ' || nav || ' ' || title"),
        [
            "/demo/steps.html navigate Basket",
            "/demo/steps/checkout push Checkout",
            "/demo/steps/thanks push Thank you"
        ],
        "each page view has the title the app set once it drew it"
    );

    // Web components: clicks, link views, dead clicks and the form inside open
    // shadow roots, each once. An element in a shadow root is written after its
    // host's part.
    let in_card = |n: u32, css: &str| format!("shop-card:nth-of-type({n}) > div.card > {css}");
    let title = format!("section#grid > {}", in_card(2, "a.title"));
    let add = format!("section#grid > {}", in_card(2, "button.add"));
    let wish = in_card(3, r#"button[aria-label="Wishlist"]"#);
    let pay = r#"form[name="pay"]"#;
    assert_eq!(
        on(
            "shadow.html",
            "click",
            "selector || ' | ' || coalesce(text, '-') || ' | ' || coalesce(href, '-')"
        ),
        [
            "button#more | Show more | -".to_string(),
            format!("{title} | Floor lamp | {base}/demo/shadow.html"),
            format!("{add} | Add to cart | -"),
            format!("{wish} | \u{2661} | -"),
            r#"size-pick[aria-label="Size"][role="combobox"] > button[type="button"] | M | -"#
                .to_string(),
            format!(r#"{pay} > label:nth-of-type(1) > input[name="email"][type="email"] | - | -"#),
            format!(r#"checkout-form > {pay} > label:nth-of-type(2) > input[name="card"] | - | -"#),
            format!("checkout-form > {pay} > button#pay | Pay | -"),
        ]
    );
    assert_eq!(on("shadow.html", "dead_click", "selector"), [wish]);
    let mut seen = on("shadow.html", "link_view", "selector");
    seen.sort();
    assert_eq!(
        seen,
        (1..=4)
            .map(|n| format!("section#grid > {}", in_card(n, "a.title")))
            .collect::<Vec<_>>(),
        "every card's link, the one added later too"
    );
    assert_eq!(
        rows(
            "SELECT kind || ' ' || coalesce(form, '-') || ' ' || coalesce(field, '-') \
             FROM events WHERE path LIKE '/demo/shadow.html%' \
             AND kind IN ('focus', 'blur', 'change', 'submit', 'invalid') ORDER BY ts, seq"
        ),
        [
            "focus pay Size",
            "blur pay Size",
            "focus pay email",
            "change pay email",
            "blur pay email",
            "focus pay card",
            "change pay card",
            "blur pay card",
            "submit pay -",
        ]
    );

    // A click inside a link is the link's: its selector, text and href, as in its
    // link_view rows; icons inside a button are the button's; a decorative icon is
    // its svg, not a path of it.
    let icon_link = r#"nav#top-nav > a[aria-label="Cart"]"#;
    let card_link = "section#cards > a.card";
    let decor = "main > div.decor > svg";
    assert_eq!(
        on(
            "links.html",
            "click",
            "selector || ' | ' || coalesce(text, '-') || ' | ' || coalesce(href, '-')"
        ),
        [
            format!("{card_link} | Storm boots €89 View product | {base}/demo/product-12.html"),
            format!("{icon_link} | Cart | {base}/demo/cart.html"),
            "button#like | Like | -".to_string(),
            "button#like | Like | -".to_string(),
            format!("{decor} | - | -"),
        ]
    );
    // The diagram's HTML link in a foreignObject is a link; its SVG `<a>` is not.
    let help_link = "a#help-link";
    // Links rendered after the tracker started, and a link given its href then.
    let (rec_link, late_link) = ("section#recs > div.rec > a", "a#late");
    assert_eq!(
        on("links.html", "link_view", "selector || ' | ' || href"),
        [
            format!("a#shop-menu | {base}/demo/shop.html"),
            format!("a#sale-menu | {base}/demo/sale.html"),
            format!("a#more-menu | {base}/demo/more.html"),
            format!("{icon_link} | {base}/demo/cart.html"),
            format!("a#logo | {base}/demo/home.html"),
            format!("{card_link} | {base}/demo/product-12.html"),
            format!("{help_link} | {base}/demo/help.html"),
            format!("{rec_link} | {base}/demo/rec-1.html"),
            format!("{late_link} | {base}/demo/late.html"),
            format!("a#mega-boots | {base}/demo/boots.html"),
            format!("a#mega-socks | {base}/demo/socks.html"),
            format!("a#fold-hats | {base}/demo/hats.html"),
        ],
        "the menus' links once they opened, never the faded drawer's, the folded \
         menu's not hovered or the screen-reader link's"
    );
    assert_eq!(on("links.html", "dead_click", "selector"), [decor]);
    let links = audit(&conn, "links")?;
    let on_page: Vec<String> = links["links"]
        .as_array()
        .expect("a list of links")
        .iter()
        .filter(|l| l["page"] == "/demo/links.html")
        .map(|l| format!("{} {} {}", l["selector"], l["impressions"], l["clicks"]))
        .collect();
    assert_eq!(
        on_page,
        [
            "\"a#fold-hats\" 1 0".to_string(),
            format!("{help_link:?} 1 0"),
            format!("{late_link:?} 1 0"),
            "\"a#logo\" 1 0".to_string(),
            "\"a#mega-boots\" 1 0".to_string(),
            "\"a#mega-socks\" 1 0".to_string(),
            "\"a#more-menu\" 1 0".to_string(),
            "\"a#sale-menu\" 1 0".to_string(),
            "\"a#shop-menu\" 1 0".to_string(),
            format!("{icon_link:?} 1 1"),
            format!("{card_link:?} 1 1"),
            format!("{rec_link:?} 1 0")
        ],
        "each link seen once, the two clicked once"
    );

    // Generated ids: the same selectors on both loads, no generated name in them,
    // all short.
    // The button's classes are `btn btn-primary add-to-cart mt-3 css-<hex>` in
    // any order: `add-to-cart` says what it is, `btn` only how it looks.
    let button = r#"main > form > button.add-to-cart[type="button"]"#;
    let field = r#"main > form > input[aria-label="Size"][type="text"]"#;
    let slide = "div.swiper > div.swiper-wrapper > div.swiper-slide:nth-of-type(2) > a.slide-link";
    let clicks = on("ids.html", "click", "selector");
    let load = [&[button, field, slide][..], &NAMES].concat();
    assert_eq!(clicks, [&load[..], &load].concat());
    // A funnel step names the button by its own class, or by any class of it or
    // of the elements it is in, as a theme's stylesheet names it: both loads
    // clicked it. A step no click matches stays empty.
    let entered = |step: &str| -> Result<Vec<Value>> {
        let req: AuditRequest = serde_json::from_value(json!({
            "audit": "funnel",
            "scope": Scope { site: Some("demo".into()), ..Scope::default() },
            "steps": ["page:/demo/ids.html", step],
        }))?;
        let funnel = serde_json::to_value(analyzer::run(&conn, &req)?)?;
        Ok(funnel["steps"]
            .as_array()
            .expect("funnel steps")
            .iter()
            .map(|s| s["entered"].clone())
            .collect())
    };
    for step in [
        "click:.add-to-cart",
        "click:.btn-primary",
        "click:form > .btn.mt-3",
        "click:.names #checkout",
        "click:div.names > button.is-active",
        "click:.swiper-slide .slide-link",
    ] {
        assert_eq!(
            entered(step)?,
            [json!(2), json!(2)],
            "{step}: {:#?}",
            rows(
                "SELECT coalesce(ancestry, '-') FROM events WHERE path = '/demo/ids.html' AND kind = 'click'"
            )
        );
    }
    for step in ["click:.names .slide-link", "click:.swiper > .btn"] {
        assert_eq!(entered(step)?, [json!(2), json!(0)], "{step}");
    }
    let seen = on("ids.html", "link_view", "selector");
    assert_eq!(seen.len(), 6, "{seen:#?}");
    assert_eq!(seen[..3], seen[3..]);
    for sel in clicks
        .iter()
        .filter(|s| !NAMES.contains(&s.as_str()))
        .chain(&seen)
    {
        assert!(sel.len() <= 80, "{sel}");
        for generated in ids
            .iter()
            .flatten()
            .filter(|i| i.contains(char::is_numeric))
        {
            assert!(!sel.contains(generated.as_str()), "{generated} in {sel}");
        }
    }
    assert_ne!(ids[0], ids[1], "the page makes new ids on every load");
    // Nor in the elements a click was in, which keep the stable names.
    let ancestries = rows(
        "SELECT ancestry FROM events WHERE path = '/demo/ids.html' AND kind = 'click' \
         ORDER BY session_id, ts, seq",
    );
    assert_eq!(ancestries.len(), 2 * load.len());
    for anc in &ancestries {
        assert!(anc.ends_with(" body"), "{anc}");
        // `mt-3` is the page's one stable class with a digit: the list keeps it.
        for generated in ids
            .iter()
            .flatten()
            .filter(|i| i.contains(char::is_numeric) && *i != "mt-3")
        {
            assert!(!anc.contains(generated.as_str()), "{generated} in {anc}");
        }
    }
    assert!(
        ancestries.iter().any(|a| a.starts_with("button.")
            && a.contains(".add-to-cart")
            && a.contains(" form main body")),
        "{ancestries:#?}"
    );

    // Privacy: with the tag twice, one page view and one click; nothing under
    // Do-Not-Track or Global Privacy Control.
    assert_eq!(
        on("privacy.html", "pageview", "path"),
        ["/demo/privacy.html"]
    );
    assert_eq!(on("privacy.html", "click", "selector"), ["button#ok"]);
    assert_eq!(
        rows("SELECT count(*)::VARCHAR FROM events WHERE path LIKE '/demo/privacy.html%'"),
        ["3"],
        "the page view, the click and the leave of the first load only"
    );

    // Frames: the card frame of a page that records is part of it, no page view
    // of its own and nothing recorded in it; in a page without the tag it
    // records (its page view, the card field, Pay).
    assert_eq!(on("frame.html", "pageview", "path"), ["/demo/frame.html"]);
    assert_eq!(on("frame.html", "click", "selector"), ["button#place"]);
    assert_eq!(
        rows("SELECT path FROM events WHERE name = 'card_shown' ORDER BY ts"),
        ["/demo/frame.html", "/demo/frame-card.html"],
        "the frame's own call goes to the page around it, where that records"
    );
    assert_eq!(
        rows(
            "SELECT kind || ' ' || coalesce(selector, field, '-') FROM events \
             WHERE path = '/demo/frame-card.html' AND kind NOT IN ('links', 'leave') \
             ORDER BY ts, seq"
        ),
        [
            "pageview -",
            "custom -",
            "focus card",
            "click input#card",
            "change card",
            "blur card",
            "click button#pay"
        ],
        "only the frame in the page without the tag"
    );
    assert_eq!(
        rows(
            "SELECT count(DISTINCT session_id)::VARCHAR FROM events WHERE path LIKE '/demo/%frame%'"
        ),
        ["1"]
    );

    // Sessions: the second load goes on with the first's; 31 minutes idle and an
    // unreadable stored id each start a new one.
    let loads = rows(
        "SELECT session_id FROM events WHERE path = '/demo/session.html' \
         AND kind = 'pageview' ORDER BY ts",
    );
    let sid = |i: usize| loads.get(i).map_or("?", String::as_str);
    assert_eq!(loads.len(), 4, "{loads:#?}");
    assert_eq!(sid(0), sid(1), "{loads:#?}");
    assert_ne!(sid(1), sid(2), "{loads:#?}");
    assert_ne!(sid(2), sid(3), "{loads:#?}");
    assert_ne!(sid(0), sid(3), "{loads:#?}");

    // One user action, one click: the label's, not also its field's; the
    // swatch's, not also the radio's its script clicks; none for Enter in the
    // field (the form is submitted) or the keyboard choice; Enter on the focused
    // button is its click, with no place.
    assert_eq!(
        on(
            "keys.html",
            "click",
            "selector || ' ' || coalesce(x::VARCHAR, '-') || ' ' || coalesce(y::VARCHAR, '-')"
        )
        .iter()
        .map(|c| {
            let sel = c.split(' ').next().unwrap_or_default().to_string();
            if c.ends_with(" - -") {
                sel + " (keyboard)"
            } else {
                sel
            }
        })
        .collect::<Vec<_>>(),
        [
            "label#news-label",
            "label#fast-label",
            "label#gift-label",
            "input#gift",
            "span#swatch-red",
            "input#email",
            "button#kbd (keyboard)",
            "button#later (keyboard)"
        ]
    );
    assert_eq!(on("keys.html", "dead_click", "selector"), ["button#later"]);
    assert_eq!(on("keys.html", "submit", "form"), ["signup"]);
    assert_eq!(
        on("keys.html", "change", "field"),
        ["news", "ship", "gift", "colour", "email", "size", "size"]
    );

    // Widgets: only "Add to cart" is dead (once, then three times in a burst,
    // which is a rage click); the carousel, the stepper, the dropdown and the
    // modal answered every quick click, and the search box focused, the video
    // played, the window opened, the copy to the clipboard and the page's scroll
    // up answered theirs; the disabled "Checkout", for which the browser sends
    // no click, was clicked and dead, and so were the `javascript:` link and
    // the link to `#` that do nothing; the visitor's own
    // wheel did not answer "Notify me"; the dropdown library's rewrite of the
    // same state, the countdown's ticks and the carousel turning by itself hid
    // nothing; data-ct-no-dead is never dead; data-ct-no-rage is dead once per
    // burst, never rage.
    assert_eq!(
        on("widgets.html", "dead_click", "selector"),
        [
            "button#add",
            "button#checkout",
            "a#quick-view",
            "a#wish-link",
            "button#add",
            "button#add",
            "button#add",
            "button#wishlist",
            "button#notify"
        ]
    );
    assert_eq!(
        on("widgets.html", "click", "selector").len(),
        4 * 3 + 13 + 3 * 3 + 1
    );
    // An SPA checkout whose routes render a moment after they are pushed: the
    // checkout route is its first step, and the thanks page follows payment.
    let steps = audit(&conn, "screens")?;
    let of = |name: &str| -> (Value, Value, Value) {
        let s = steps["screens"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["screen"] == name).cloned())
            .unwrap_or_else(|| panic!("no screen {name}: {steps:#}"));
        (s["views"].clone(), s["exits"].clone(), s["next"].clone())
    };
    let next = |to: &str| json!([{"screen": to, "count": 1}]);
    assert_eq!(
        of("/demo/steps.html"),
        (json!(1), json!(0), next("shipping"))
    );
    assert_eq!(of("shipping"), (json!(1), json!(0), next("payment")));
    assert_eq!(
        of("payment"),
        (json!(1), json!(0), next("/demo/steps/thanks"))
    );
    assert_eq!(of("/demo/steps/thanks"), (json!(1), json!(1), json!([])));
    assert!(
        steps["screens"]
            .as_array()
            .is_some_and(|l| l.iter().all(|s| s["screen"] != "/demo/steps/checkout")),
        "the checkout route before its first step is no screen: {steps:#}"
    );

    // The size guide (a modal marked as a screen) was opened and closed: a
    // screen event for each, the second without a screen (back to the page).
    assert_eq!(on("widgets.html", "screen", "screen"), ["size-guide", "-"]);
    let screens = audit(&conn, "screens")?;
    let guide = screens["screens"]
        .as_array()
        .expect("a list of screens")
        .iter()
        .find(|s| s["screen"] == "size-guide")
        .expect("the size guide is a screen");
    assert_eq!(guide["views"], 1);
    assert_eq!(
        guide["next"],
        json!([{"screen": "/demo/widgets.html", "count": 1}])
    );
    let frustration = audit(&conn, "frustration")?;
    let issues: Vec<String> = frustration["issues"]
        .as_array()
        .expect("a list of issues")
        .iter()
        .filter(|i| i["page"] == "/demo/widgets.html")
        .map(|i| {
            format!(
                "{} {} {} {}",
                i["kind"].as_str().unwrap_or_default(),
                i["selector"].as_str().unwrap_or_default(),
                i["label"].as_str().unwrap_or_default(),
                i["occurrences"]
            )
        })
        .collect();
    assert_eq!(
        issues,
        [
            "dead_click button#add Add to cart 4",
            "rage_click button#add Add to cart 1",
            "dead_click a#quick-view Quick view 1",
            "dead_click a#wish-link Add to wishlist 1",
            "dead_click button#checkout Checkout 1",
            "dead_click button#notify Notify me 1",
            "dead_click button#wishlist Wishlist 1",
        ]
    );

    // The two-form checkout: the custom dropdown is a field with a change, the
    // note outside any form goes to the first form touched on the page, the gift
    // message to the payment flow by data-ct-form; nothing typed is stored.
    assert_eq!(
        on(
            "checkout.html",
            "focus",
            "coalesce(form, '-') || ' ' || field || ' ' || field_type"
        ),
        [
            "address street text",
            "address city text",
            "address country combobox",
            "- note textarea",
            "payment card text",
            "payment gift text",
            "payment gift-note textbox",
        ]
    );
    assert_eq!(
        on(
            "checkout.html",
            "change",
            "coalesce(form, '-') || ' ' || field"
        ),
        [
            "address street",
            "address city",
            "address country",
            "- note",
            "payment card",
            "payment gift",
        ]
    );
    assert_eq!(on("checkout.html", "submit", "form"), ["payment"]);
    // One press of "Pay" with no card: one failure, though the page's
    // checkValidity() and reportValidity() each fired `invalid`.
    assert_eq!(
        on("checkout.html", "invalid", "form || ' ' || field"),
        ["payment card"]
    );
    let typed = rows(
        "SELECT count(*)::VARCHAR FROM events WHERE concat_ws(' ', text, field, form, props,          selector, name) SIMILAR TO '.*(Fjord|Bergen|door|4111|birthday|With love).*'",
    );
    assert_eq!(typed, ["0"]);
    let forms = audit(&conn, "forms")?;
    let flows: Vec<String> = forms["forms"]
        .as_array()
        .expect("a list of forms")
        .iter()
        .filter(|f| f["form"] == "address" || f["form"] == "payment")
        .map(|f| {
            let fields: Vec<&str> = f["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x["field"].as_str())
                .collect();
            format!(
                "{} started {} submitted {} completed_by_other {} abandoned {}: {}",
                f["form"].as_str().unwrap_or_default(),
                f["started"],
                f["submitted"],
                f["completed_by_other"],
                f["abandoned"],
                fields.join(" ")
            )
        })
        .collect();
    assert_eq!(
        flows,
        [
            "payment started 1 submitted 1 completed_by_other 0 abandoned 0: card gift gift-note",
            "address started 1 submitted 0 completed_by_other 1 abandoned 0: street city country note",
        ]
    );

    // An order answered by an error page failed, though the visitor moved to
    // another path.
    assert_eq!(
        on("order", "pageview", "path || ' ' || status"),
        ["/demo/order.html 200", "/demo/order/place 404"]
    );
    let order = forms["forms"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["form"] == "order")
        .expect("the order form");
    assert_eq!(
        [
            &order["started"],
            &order["submitted"],
            &order["abandoned"],
            &order["failed_submits"]
        ],
        [1, 1, 0, 1]
    );

    // Forms sent by script: the sort menu's once, the newsletter's once (its
    // handler finishing the attempt the browser's submit began); neither is
    // abandoned, nor failed; the address typed is nowhere.
    assert_eq!(on("sort.html", "submit", "form"), ["sort", "newsletter"]);
    for name in ["sort", "newsletter"] {
        let form = forms["forms"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["form"] == name)
            .expect("the form");
        assert_eq!(
            [
                &form["started"],
                &form["submitted"],
                &form["abandoned"],
                &form["failed_submits"]
            ],
            [1, 1, 0, 0],
            "{name}"
        );
    }
    assert_eq!(
        on("sort.html", "pageview", "path"),
        ["/demo/sort.html", "/demo/sort.html", "/demo/sort.html"]
    );
    assert_eq!(
        rows(
            "SELECT count(*)::VARCHAR FROM events e WHERE e.path LIKE '/demo/sort.html%' \
             AND (e::VARCHAR ILIKE '%kim%' OR e::VARCHAR ILIKE '%example.com%')"
        ),
        ["0"]
    );

    // A prerendered page: one page view, when the visitor opened it, and the
    // click after it.
    assert_eq!(
        on(
            "prerender.html",
            "pageview",
            &format!("path || ' ' || (epoch_ms(ts) >= {opened})::VARCHAR")
        ),
        ["/demo/prerender.html true"]
    );
    assert_eq!(on("prerender.html", "click", "selector"), ["button#buy"]);

    // Promise rejections: the script and line of the frame that made the Error.
    let script = format!("{base}/demo/reject.js");
    assert_eq!(
        on(
            "reject.html",
            "error",
            "message || ' ' || coalesce(source, '-') || ' ' || coalesce(line::VARCHAR, '-')"
        ),
        [
            format!("stock service unavailable {script} 5"),
            format!("card declined {script} 9"),
            "no reason given - -".to_string(),
        ]
    );

    // The product page: its title though an image is named `title`; the theme's
    // failure before the tracker started; the forms by their ids though each has
    // a field named `id`; the cloned hero ad counted once.
    assert_eq!(on("product.html", "pageview", "title"), ["Storm boots"]);
    let failed = on(
        "product.html",
        "error",
        "message || ' ' || coalesce(line::VARCHAR, '-')",
    );
    assert!(
        failed.len() == 1 && failed[0].contains("init") && !failed[0].ends_with(" -"),
        "the theme's failure with its line: {failed:?}"
    );
    assert_eq!(
        on("product.html", "submit", "form"),
        ["product-form-main", "quick-add-mug"]
    );
    assert_eq!(
        on("product.html", "focus", "form || ' ' || field"),
        ["product-form-main size", "product-form-main quantity"]
    );
    // With the inline snippet, a script failing while the page is parsed, before
    // the async tracker loaded, is recorded with its line; a later one once.
    let failed = on(
        "early.html",
        "error",
        "message || ' ' || coalesce(line::VARCHAR, '-')",
    );
    assert!(
        failed.len() == 2
            && failed[0].contains("'mount'")
            && failed[0].ends_with(" 17")
            && failed[1].contains("'open'"),
        "the parse-time failure, then the click's: {failed:?}"
    );

    // An ad shown for 1.4 s right after a route change, while the route is still
    // drawn, counts on that route.
    assert_eq!(
        rows(
            "SELECT path || ' ' || ad FROM events WHERE path LIKE '/demo/deal%' AND kind = 'ad_view'"
        ),
        ["/demo/deal/today deal:A"]
    );

    // Ads only when shown: the faded-out one under the banner never.
    assert_eq!(
        on("product.html", "ad_view", "ad"),
        ["winter-sale:A", "gift-card:A", "promo:C"]
    );
    Ok(())
}
