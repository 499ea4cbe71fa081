//! The tracker's state and what it records.
//!
//! One [`Tracker`] lives per page, shared by the listeners that `lib.rs` installs
//! (`Rc<RefCell<…>>`; a listener that finds it borrowed, which only a re-entrant
//! call could cause, records nothing). Each handler turns a DOM event or an API
//! call into one event: [`Tracker::begin`] checks consent, keeps the session and
//! page view current and writes the fields every event has; the handler adds its
//! own fields and [`Tracker::push`] (in `send.rs`) queues it. Links and ads in view
//! (`view.rs`) and dead clicks (`dead.rs`) keep their own state in [`Tracker::seen`]
//! and [`Tracker::dead`]; page views, screens, clicks and hiding drive them from here.

use alloc::{rc::Rc, string::String, vec::Vec};
use core::cell::RefCell;

use js_sys::{Date, Function, JSON};
use protocol::{
    MAX_ANCESTRY, MAX_ERROR_CHARS, MAX_NAME, MAX_PATH, MAX_PROPS_BYTES, MAX_SELECTOR, MAX_TITLE,
    MAX_URL, SESSION_IDLE_MS, kind,
};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Crypto, Document, Element, Event, HtmlAnchorElement, MouseEvent, Storage, Window};

use crate::dead::Dead;
use crate::dom;
use crate::json::{
    Json, acceptable_props, before, cut, hex, int, is_hex_id, no_fragment, quote, squash,
};
use crate::send::Queued;
use crate::view::Seen;

pub(crate) type Shared = Rc<RefCell<Tracker>>;

/// How long the screen check waits after a DOM change, so a burst of mutations
/// costs one check.
const SCREEN_CHECK_MS: i32 = 100;
/// The longest a route's page view waits for the route to be drawn (see
/// [`Tracker::route_view`]).
const ROUTE_WAIT_MS: f64 = 1000.0;
/// How long after a click on a same-page link a fragment change is its jump (a
/// smooth-scroll script sets the fragment once it has scrolled).
const ANCHOR_JUMP_MS: f64 = 2000.0;
/// Step routes remembered per document.
const MAX_STEPS: usize = 64;
/// A field found invalid again within this time is the same attempt: a page that
/// calls `checkValidity()` and then `reportValidity()` makes the browser fire
/// `invalid` twice at each field for one press of "Pay".
const INVALID_SAME_MS: f64 = 250.0;
/// Buttons a browser sends no click for.
const DISABLED: &str = "button:disabled,\
    input:disabled:is([type=submit],[type=button],[type=image],[type=reset])";
/// The most `error` events one page load sends.
const MAX_ERRORS: u32 = 20;

/// Everything the tracker knows about this page.
pub(crate) struct Tracker {
    pub(crate) win: Window,
    pub(crate) doc: Document,
    crypto: Option<Crypto>,
    /// Random bytes for ids, and how many are used up.
    random: [u8; 512],
    random_used: usize,
    /// `sessionStorage`, once the session has been read from it (see
    /// [`Tracker::session`]).
    storage: Option<Storage>,
    /// Whether the session has been read from `sessionStorage`.
    session_read: bool,
    /// `endpoint + "/collect"`.
    pub(crate) url: String,
    pub(crate) site: String,
    /// The session id (empty until the session is read).
    pub(crate) sid: String,
    /// When the last event was recorded (ms).
    last_active: f64,
    /// Per-page-load sequence number of the next event.
    seq: u32,
    /// Consent: false after `clicktrail('consent', false)`.
    pub(crate) recording: bool,

    /// The current page's URL without its fragment, and its hash route (`#/cart`,
    /// or empty): SPA route changes compare against them.
    pub(crate) page_url: String,
    page_route: String,
    /// Its path, the route included (without a query in it): the `path` of every
    /// event of this page view, links seen during it included.
    pub(crate) page_path: String,
    /// The URL fragment as last read, and the route it gave (an in-page anchor
    /// keeps the route before it).
    frag: String,
    route: String,
    /// The fragments taken for a route as the one step shown of a set, kept by
    /// [`Tracker::route_of`]: a step visited again is the same route, whatever
    /// is shown then.
    steps: RefCell<Vec<String>>,
    /// The bare-name fragments of links' hrefs judged routes, and those judged
    /// in-page anchors: a link keeps one href for the page's life, although the
    /// section it names was hidden when it was first listed and shows on its
    /// route. (Only hrefs: what the page's own URL is, `route_of` judges anew.)
    link_routes: RefCell<Vec<String>>,
    anchors: RefCell<Vec<String>>,
    /// The fragment of the last same-page link clicked, and when: a fragment
    /// change right after it is the browser's (or a smooth-scroll script's) jump
    /// to an anchor, not the page's own route.
    anchor_click: (String, f64),
    /// The latest navigation (Navigation API) goes back or forward in history,
    /// and whether forward.
    traverse: bool,
    forward: bool,
    /// When the current page view started.
    page_t: f64,
    /// How the current page view happened, where from, its HTTP status.
    page_nav: &'static str,
    page_ref: String,
    page_status: u32,
    /// The current page view is not recorded (consent was withheld).
    page_unsent: bool,
    /// The opening of the last page view's event (its id) and the title it was
    /// recorded with, while it may still be waiting in the queue: a title the
    /// page sets a moment later (a client-rendered page's "Loading…" replaced)
    /// is written into it before it leaves.
    page_event: String,
    page_title: String,
    /// Where its title field starts in the event's text.
    page_title_at: usize,
    /// The current page view is an SPA route waiting to render (see
    /// [`Tracker::route_view`]); `route_drawn`: the page changed since the route did.
    pub(crate) route_pending: bool,
    route_drawn: bool,
    /// The status `<meta name="ct-status">` said when the last page view was
    /// recorded (the page's, or a drawn route's).
    route_meta: u32,
    /// A `leave` was sent for the current hidden period.
    pub(crate) left: bool,

    /// The visible `data-ct-screen`, as last checked.
    screen: Option<String>,
    /// Whether the page had any named `data-ct-screen` element then (a page with
    /// none needs no screen check when a style or class changes).
    screens: bool,
    screen_dirty: bool,
    screen_timer: bool,
    pub(crate) screen_fn: Function,

    /// `error` events sent by this page load.
    errors: u32,
    /// The fields found invalid in the last [`INVALID_SAME_MS`], with when.
    invalid: Vec<(Element, f64)>,
    /// The form of the last submit recorded, until a field changes: the page
    /// sending it by script after that (`form.submit()` from its own submit
    /// handler) finishes the same attempt.
    sent: Option<Element>,
    /// The focused field and when it got focus.
    focus: Option<(Element, f64)>,
    /// The click being dispatched follows a link away from the page.
    nav_click: bool,
    /// The field of the `<label>` just clicked: the click the label passes on to it
    /// (with no press of its own) is not recorded.
    pub(crate) label_field: Option<Element>,
    /// Links and ads in view.
    pub(crate) seen: Seen,
    /// The click being judged dead or not.
    pub(crate) dead: Dead,
    /// Timer → [`Tracker::on_tick`]: ads in view long enough, a click's time up.
    pub(crate) tick_fn: Function,

    /// Events waiting to be sent, oldest first.
    pub(crate) queue: Vec<Queued>,
    /// Events of the fetch in flight (put back if it fails).
    pub(crate) inflight: Vec<Queued>,
    pub(crate) sending: bool,
    pub(crate) backoff_ms: f64,
    pub(crate) resume_at: f64,
    pub(crate) timer: Option<i32>,
    /// Time and kind of the event being written, for its [`Queued`].
    pub(crate) event_t: f64,
    pub(crate) event_kind: &'static str,
    /// Rows the event being built becomes in the store (a `links` event: one per link).
    pub(crate) event_rows: usize,
    /// Timer → [`Tracker::on_timer`]; fetch settled → `on_response` / `on_fetch_error`; no-op.
    pub(crate) flush_fn: Function,
    pub(crate) ok_fn: Function,
    pub(crate) err_fn: Function,
    pub(crate) noop_fn: Function,
}

impl Tracker {
    pub(crate) fn new(win: Window, doc: Document, site: &str, endpoint: &str) -> Self {
        let mut url = String::from(endpoint);
        url.push_str("/collect");
        let placeholder = || JsValue::UNDEFINED.unchecked_into::<Function>();
        Tracker {
            crypto: win.crypto().ok(),
            random: [0; 512],
            random_used: 512,
            storage: None,
            session_read: false,
            page_url: String::new(),
            page_route: String::new(),
            page_path: String::new(),
            frag: String::new(),
            steps: RefCell::new(Vec::new()),
            link_routes: RefCell::new(Vec::new()),
            anchors: RefCell::new(Vec::new()),
            page_event: String::new(),
            page_title: String::new(),
            page_title_at: 0,
            anchor_click: (String::new(), 0.0),
            route: String::new(),
            traverse: false,
            forward: false,
            page_t: 0.0,
            page_nav: "navigate",
            page_ref: String::new(),
            page_status: 0,
            page_unsent: false,
            route_pending: false,
            route_drawn: false,
            route_meta: 0,
            url,
            site: String::from(site),
            sid: String::new(),
            last_active: 0.0,
            seq: 0,
            recording: true,
            left: false,
            screen: None,
            screens: true,
            screen_dirty: false,
            screen_timer: false,
            screen_fn: placeholder(),
            errors: 0,
            invalid: Vec::new(),
            sent: None,
            focus: None,
            nav_click: false,
            label_field: None,
            seen: Seen::default(),
            dead: Dead::default(),
            tick_fn: placeholder(),
            queue: Vec::new(),
            inflight: Vec::new(),
            sending: false,
            backoff_ms: 0.0,
            resume_at: 0.0,
            timer: None,
            event_t: 0.0,
            event_kind: kind::CUSTOM,
            event_rows: 1,
            flush_fn: placeholder(),
            ok_fn: placeholder(),
            err_fn: placeholder(),
            noop_fn: placeholder(),
            win,
            doc,
        }
    }

    /// 128 random bits as 32 hex chars. Random bytes are drawn 32 ids at a time:
    /// one `getRandomValues` costs tens of microseconds.
    fn random_id(&mut self) -> String {
        if self.random_used >= self.random.len() {
            let fresh = self
                .crypto
                .as_ref()
                .is_some_and(|c| c.get_random_values_with_u8_array(&mut self.random).is_ok());
            if !fresh {
                for x in &mut self.random {
                    *x = (js_sys::Math::random() * 256.0) as u8;
                }
            }
            self.random_used = 0;
        }
        let mut s = String::new();
        hex(
            &mut s,
            self.random
                .get(self.random_used..self.random_used + 16)
                .unwrap_or_default(),
        );
        self.random_used += 16;
        s
    }

    /// Read the session from `sessionStorage`, once, before the first batch is
    /// sent rather than while the page loads: the first access to storage waits
    /// for the browser process, which is busiest then (about 3 ms on the bench
    /// page at start, 1–2 ms a few seconds later). The stored session goes on
    /// if `first`, the time of the first event waiting (the first recorded on this
    /// page load), came within [`SESSION_IDLE_MS`] of its last one; else a new one
    /// starts. Anything missing or malformed starts a new one; without storage the
    /// id lives in memory.
    pub(crate) fn session(&mut self, first: f64) {
        if self.session_read {
            return;
        }
        self.session_read = true;
        self.storage = self.win.session_storage().ok().flatten();
        let get = |k: &str| {
            self.storage
                .as_ref()
                .and_then(|s| s.get_item(k).ok().flatten())
        };
        let stored = get("ct_sid")
            .filter(|s| is_hex_id(s))
            .zip(get("ct_last").and_then(|s| s.parse::<u64>().ok()));
        self.sid = match stored {
            Some((sid, last)) if first - last as f64 <= f64::from(SESSION_IDLE_MS) => sid,
            Some(_) => self.random_id(),
            // A new tab: the session of the tab it was opened from, if handed
            // one (see `handed` in `js/dom.js`).
            None => Some(dom::handed(first))
                .filter(|s| is_hex_id(s))
                .unwrap_or_else(|| self.random_id()),
        };
        self.store("ct_sid", &self.sid);
        if self.last_active > 0.0 {
            let mut t = String::new();
            int(&mut t, self.last_active as i64);
            self.store("ct_last", &t);
        }
    }

    /// A link of this origin is opened in a new tab: hand it this session
    /// through `localStorage`, for a moment (see `handed` in `js/dom.js`).
    fn hand_off(&mut self) {
        self.session(Date::now());
        dom::hand_off(&self.sid);
    }

    fn store(&self, key: &str, value: &str) {
        if let Some(s) = &self.storage {
            let _ = s.set_item(key, value);
        }
    }

    /// The current URL without its fragment.
    pub(crate) fn current_url(&self) -> String {
        let href = self.win.location().href().unwrap_or_default();
        String::from(no_fragment(&href))
    }

    /// The current URL without its fragment, and the current hash route. The
    /// fragment is classified only when it changed.
    fn here(&mut self) -> (String, String) {
        let href = self.win.location().href().unwrap_or_default();
        let url = before(&href, b'#');
        let frag = href.get(url.len() + 1..).unwrap_or_default();
        if frag != self.frag || url != self.page_url {
            self.frag = String::from(frag);
            // Set by the page: not the URL the page was opened on, and not right
            // after a click on a link to it.
            let jump =
                self.anchor_click.0 == frag && Date::now() - self.anchor_click.1 < ANCHOR_JUMP_MS;
            let set = !jump && !self.page_url.is_empty();
            match self.route_of(frag, set) {
                Some(r) => self.route = r,
                // An anchor on another page (pushState) is no route of it.
                None if url != self.page_url => self.route.clear(),
                None => {}
            }
        }
        (String::from(url), self.route.clone())
    }

    /// A link's href as recorded: without its fragment, unless the fragment is a
    /// hash route ([`Tracker::route_of`]), so that the `#/product/12` and
    /// `#/product/13` links of a hash-routed shop stay two links.
    /// A fragment is judged once per page load.
    pub(crate) fn link_href(&self, href: &str) -> String {
        let url = before(href, b'#');
        let mut out = String::from(url);
        let Some(frag) = href.get(url.len() + 1..) else {
            return out;
        };
        let known = |list: &RefCell<Vec<String>>| list.borrow().iter().any(|a| a == frag);
        if known(&self.anchors) {
            return out;
        }
        if known(&self.link_routes) {
            out.push('#');
            out.push_str(frag);
            return out;
        }
        let (judged, list) = match self.route_of(frag, false) {
            Some(r) => {
                out.push_str(&r);
                (
                    !r.is_empty() && !matches!(frag.as_bytes()[0], b'/' | b'!'),
                    &self.link_routes,
                )
            }
            None => (true, &self.anchors),
        };
        let mut list = list.borrow_mut();
        if judged && list.len() < MAX_STEPS {
            list.push(String::from(frag));
        }
        out
    }

    /// The hash route a URL fragment (without `#`) names: `#` + the fragment when
    /// it starts with `/` or `!` (`#/product/12`, `#!/cart`), or is a name no
    /// rendered element of the page has (`#cart` of a `#name` router); empty for
    /// no fragment and for the root `#!`, `#/`. None for an in-page anchor (a
    /// rendered element has that id, or an `<a>` that name; or `#top`), which
    /// stays on the current route, for a number (`#2`), and for a fragment
    /// holding `=` or `&` (state or tokens, as after an OAuth login).
    ///
    /// It runs at `popstate`, before a router listening to `hashchange` has shown
    /// the section of the new route. A page opened on `#cart` whose router
    /// already shows `<section id="cart">` when the tracker starts counts it as an
    /// anchor; use `#/cart` routes to be sure.
    ///
    /// `set`: the page's script gave the URL the fragment (not the URL the page
    /// was opened on, not a link's href, not right after a click on a same-page
    /// link to it). Then an element shown with that id whose siblings of its
    /// tag with ids are all hidden names a route too:
    /// the one step of a checkout shown (Magento's `li#shipping` beside a hidden
    /// `li#payment`, set as `#shipping` by its script), the one pane of a set.
    /// Such a step is remembered: it stays a route for the page's life (a step
    /// visited again, shown then, its siblings hidden or not).
    fn route_of(&self, frag: &str, set: bool) -> Option<String> {
        let mut r = String::from("#");
        r.push_str(frag);
        // `#!` and `#/` are the root route: no route, like no fragment (and `#!`
        // placeholder links on pages that do not route change nothing).
        if matches!(frag, "" | "!" | "/" | "!/") {
            return Some(String::new());
        }
        if matches!(frag.as_bytes().first(), Some(b'/' | b'!')) {
            return Some(r);
        }
        // Numbers (`#2`: a slide, a placeholder) and state are not routes.
        if frag.bytes().all(|c| c.is_ascii_digit())
            || frag.bytes().any(|c| c == b'=' || c == b'&')
            || frag.eq_ignore_ascii_case("top")
        {
            return None;
        }
        if self.steps.borrow().iter().any(|s| s == frag) {
            return Some(r);
        }
        let name: String =
            js_sys::decode_uri_component(frag).map_or_else(|_| String::from(frag), String::from);
        let mut sel = String::from("a");
        dom::attr_part(&mut sel, "name", &name);
        // Only a rendered element can be scrolled to: a router that shows one
        // hidden section per route (`<section id="cart" hidden>`) is routing.
        let by_id = self.doc.get_element_by_id(&name);
        if set && by_id.as_ref().is_some_and(dom::shown_of_set) {
            let mut steps = self.steps.borrow_mut();
            if steps.len() < MAX_STEPS {
                steps.push(String::from(frag));
            }
            return Some(r);
        }
        let anchor = [by_id, self.doc.query_selector(&sel).ok().flatten()]
            .into_iter()
            .flatten()
            .any(|e| e.get_client_rects().length() > 0);
        (!anchor).then_some(r)
    }

    /// What every event starts with, or None while consent is withheld: keeps the
    /// session alive (see [`Tracker::active`]) and catches route changes made
    /// through a `pushState` captured before the tracker wrapped it. (An event on
    /// a route that waits to be drawn is recorded as it comes: its page view, timed
    /// from the route change, sorts before it.)
    fn prelude(&mut self) -> Option<f64> {
        let now = self.active()?;
        let (url, route) = self.here();
        if url != self.page_url {
            self.route("push");
        } else if route != self.page_route {
            self.route("hash");
        }
        Some(now)
    }

    /// The time now, or None while consent is withheld; keeps the session alive
    /// (a new one after [`SESSION_IDLE_MS`] idle).
    fn active(&mut self) -> Option<f64> {
        if !self.recording {
            return None;
        }
        let now = Date::now();
        // Before the session is read, the first batch decides it (see `session`).
        if self.session_read && now - self.last_active > f64::from(SESSION_IDLE_MS) {
            // The old session's events leave under the old id.
            self.flush(crate::send::Via::Beacon);
            self.sid = self.random_id();
            self.store("ct_sid", &self.sid);
        }
        self.last_active = now;
        if self.session_read {
            let mut t = String::new();
            int(&mut t, now as i64);
            self.store("ct_last", &t);
        }
        Some(now)
    }

    /// Start an event of `kind`: `id`, `k`, `t`, `seq`, `path`, `screen`. A pending
    /// screen change is recorded first, so the event carries the screen it happened on.
    pub(crate) fn begin(&mut self, kind: &'static str) -> Option<Json> {
        let now = self.prelude()?;
        if self.screen_dirty && self.refresh_screen() {
            let j = self.head(kind::SCREEN, now);
            self.push(j);
        }
        Some(self.head(kind, now))
    }

    fn head(&mut self, kind: &'static str, now: f64) -> Json {
        self.head_at(kind, now, self.page_path.clone())
    }

    /// [`Tracker::head`] on another path than the current one.
    pub(crate) fn head_at(&mut self, kind: &'static str, now: f64, mut path: String) -> Json {
        let mut j = Json::object();
        j.str("id", &self.random_id(), 32);
        j.str("k", kind, MAX_NAME);
        j.int("t", now as i64);
        j.int("seq", i64::from(self.seq));
        self.seq = self.seq.wrapping_add(1);
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        j.str("path", &path, MAX_PATH);
        if let Some(s) = &self.screen {
            j.str("screen", s, MAX_NAME);
        }
        self.event_t = now;
        self.event_kind = kind;
        self.event_rows = 1;
        j
    }

    /// Re-read the visible screen; true when it changed and a `screen` event is
    /// due (without `screen` when the marked element went away: a closed modal, an
    /// SPA route with no marked step). A change ends the links view of the screen
    /// before (its `links` go out first).
    fn refresh_screen(&mut self) -> bool {
        self.screen_dirty = false;
        let (cur, any) = dom::visible_screen(&self.doc);
        if any != self.screens {
            self.screens = any;
            dom::has_screens(any);
        }
        if cur == self.screen {
            return false;
        }
        self.send_links(true);
        self.screen = cur;
        self.rewatch();
        true
    }

    /// Run the screen check now if the DOM changed since the last one.
    pub(crate) fn screen_check(&mut self) {
        if self.screen_dirty
            && self.recording
            && self.refresh_screen()
            && let Some(now) = self.prelude()
        {
            let j = self.head(kind::SCREEN, now);
            self.push(j);
        }
    }

    /// Set a timer for [`Tracker::on_tick`].
    pub(crate) fn tick(&self, ms: i32) {
        let _ = self
            .win
            .set_timeout_with_callback_and_timeout_and_arguments_0(&self.tick_fn, ms);
    }

    pub(crate) fn on_tick(&mut self, _: &JsValue) {
        self.ads_due();
        self.dead_due();
    }

    // ---- page views and leaving ------------------------------------------------

    /// A page view: `nav` says how it happened, `referrer` where from; `status`
    /// is the document's HTTP status on the first load (0 when unknown).
    pub(crate) fn pageview(&mut self, nav: &'static str, referrer: &str, status: u32) {
        self.new_view(nav, referrer, status);
        self.route_meta = crate::dom::meta_status(&self.doc);
        self.record_pageview(None);
        self.rewatch();
    }

    /// An SPA route's page view. A router draws the new route after the URL
    /// changed: at `popstate` a hash router has not even been told yet, and many
    /// routers set the title, or fetch what they show, afterwards. Until the route
    /// is drawn, the links in view and the title are still the route's before. So
    /// the page view is recorded, timed from the route change, once the page has
    /// changed (elements added or removed) and settled, at least
    /// [`SCREEN_CHECK_MS`] after the route change, or [`ROUTE_WAIT_MS`] after it;
    /// or when the page is hidden, or the route changes again. Its status is that
    /// of the route's `<meta name="ct-status">`, if the route put one there or
    /// changed it (one the page view before had says nothing of this route: an
    /// error page served with it, whose later routes leave it in place).
    fn route_view(&mut self, nav: &'static str, referrer: &str) {
        self.new_view(nav, referrer, 0);
        self.route_pending = true;
        self.route_drawn = false;
        self.screen_later();
    }

    /// The route has been drawn: record its page view and what is in view now.
    fn route_settle(&mut self) {
        self.route_pending = false;
        let status = crate::dom::meta_status(&self.doc);
        self.page_status = if status == self.route_meta { 0 } else { status };
        self.route_meta = status;
        self.record_pageview(Some(self.page_t));
        self.rewatch();
    }

    /// Start a new page view: its URL, path, time and how it happened.
    fn new_view(&mut self, nav: &'static str, referrer: &str, status: u32) {
        // A route before this one that had no time to be drawn is a page view too.
        if self.route_pending {
            self.route_pending = false;
            self.record_pageview(Some(self.page_t));
        }
        // The links of the page view before, on its own path and screen.
        self.send_links(true);
        self.reset_ads();
        (self.page_url, self.page_route) = self.here();
        self.page_path = self.win.location().pathname().unwrap_or_default();
        // The route without a query in it (`#/search?q=…`).
        self.page_path.push_str(before(&self.page_route, b'?'));
        self.page_t = Date::now();
        self.left = false;
        self.page_nav = nav;
        self.page_ref = String::from(referrer);
        self.page_status = status;
    }

    /// Record the current page view (unless consent is withheld: then it is
    /// recorded when consent comes back), timed `at` (a route drawn a moment
    /// after it changed) or now.
    fn record_pageview(&mut self, at: Option<f64>) {
        self.page_unsent = true;
        let Some(now) = self.active() else { return };
        let now = at.map_or(now, |t| t.min(now));
        self.page_unsent = false;
        // The page view carries the screen shown now; its `screen` event follows it
        // (none when no marked element shows: the page view enters the page).
        let due = self.refresh_screen() && self.screen.is_some();
        let mut j = self.head(kind::PAGEVIEW, now);
        j.str("url", &self.page_url, MAX_URL);
        if !self.page_ref.is_empty() {
            j.str("ref", &self.page_ref, MAX_URL);
        }
        let title = dom::doc_string("title");
        self.page_title_at = j.text().len();
        j.str("title", &title, MAX_TITLE);
        self.page_title = title;
        self.page_event = String::from(before(j.text(), b','));
        j.str("nav", self.page_nav, MAX_NAME);
        if self.page_status > 0 {
            j.int("status", self.page_status.into());
        }
        self.push(j);
        if due {
            let j = self.head(kind::SCREEN, now);
            self.push(j);
        }
    }

    /// An SPA route change (`push`, `replace`, `pop`, `hash`): a page view when the
    /// path, query or hash route changed, with the previous URL as referrer. A
    /// `popstate` that only changed the hash route is `hash`, unless it went back
    /// or forward in history (known where the Navigation API is).
    #[inline(never)]
    pub(crate) fn route(&mut self, nav: &'static str) {
        // Going to `#` (a link to nowhere followed: `hashchange`, and `popstate`
        // in Chromium) changes nothing to see.
        if !self
            .win
            .location()
            .href()
            .unwrap_or_default()
            .ends_with('#')
        {
            self.on_answer(&JsValue::UNDEFINED);
        }
        let (url, route) = self.here();
        // A new page is a new path or hash route, or (but for `replaceState`,
        // which rewrites this page's URL: a variant picked, a page of an
        // infinite list, campaign parameters tidied away) a new value of a query
        // parameter that is stored; a change of others alone leaves the stored
        // page as it was.
        let same = if nav == "replace" {
            before(&url, b'?') == before(&self.page_url, b'?')
        } else {
            same_stored_query(&url, &self.page_url)
                && before(&url, b'?') == before(&self.page_url, b'?')
        };
        if !same || route != self.page_route {
            let nav = match nav {
                "pop" if self.forward => "forward",
                "pop" if url == self.page_url && !self.traverse => "hash",
                _ => nav,
            };
            let prev = self.page_url.clone();
            self.route_view(nav, &prev);
        }
    }

    pub(crate) fn on_hashchange(&mut self, _: &JsValue) {
        self.route("hash");
    }

    /// The Navigation API's `navigate`: a navigation answers the click; remember
    /// whether it goes back or forward in history, and which.
    pub(crate) fn on_navigate(&mut self, e: &JsValue) {
        self.traverse = dom::prop(e, "navigationType").as_string().as_deref() == Some("traverse");
        let current = dom::prop(&dom::prop(&self.win, "navigation"), "currentEntry");
        self.forward = self.traverse && dom::later(&dom::prop(e, "destination"), &current);
        // Going to `#` on this page (a link to nowhere followed) is no answer.
        let to_nowhere = dom::prop(e, "hashChange").is_truthy()
            && dom::prop(&dom::prop(e, "destination"), "url")
                .as_string()
                .is_some_and(|u| u.ends_with('#'));
        if !to_nowhere {
            self.on_answer(e);
        }
    }

    pub(crate) fn on_push(&mut self, _: &JsValue) {
        self.route("push");
    }

    pub(crate) fn on_replace(&mut self, _: &JsValue) {
        self.route("replace");
    }

    pub(crate) fn on_popstate(&mut self, _: &JsValue) {
        self.route("pop");
    }

    /// `pageshow` after a back/forward-cache restore is a new page view.
    pub(crate) fn on_pageshow(&mut self, e: &JsValue) {
        if dom::prop(e, "persisted").is_truthy() {
            let nav = if dom::arrived_forward(&self.win) {
                "forward"
            } else {
                "back_forward"
            };
            self.pageview(nav, "", 0);
        }
    }

    /// `pagehide` and `visibilitychange`: the links seen so far and one `leave` per
    /// hidden period, then everything by beacon. Visible again: what is in view
    /// counts again.
    pub(crate) fn on_hide(&mut self, e: &JsValue) {
        let e: &Event = e.unchecked_ref();
        if e.type_() == "visibilitychange" && !self.doc.hidden() {
            self.left = false;
            self.rewatch();
            return;
        }
        self.on_answer(&JsValue::UNDEFINED);
        // A route waiting to be drawn is recorded before the page goes.
        if self.route_pending {
            self.route_settle();
        }
        self.dead_settle();
        self.pause_ads();
        self.send_links(false);
        if !self.left {
            self.left = true;
            if let Some(mut j) = self.begin(kind::LEAVE) {
                j.int("dur", (Date::now() - self.page_t).max(0.0) as i64);
                self.push(j);
            }
        }
        self.flush(crate::send::Via::Beacon);
    }

    // ---- screens -----------------------------------------------------------------

    /// The page changed in a way that may change the screen or what to watch (the
    /// always-on observer in `js/dom.js` says so): check once things settle.
    pub(crate) fn on_mutation(&mut self, drawn: &JsValue) {
        self.route_drawn |= drawn.is_truthy();
        self.screen_later();
    }

    /// Check the screen in a moment.
    fn screen_later(&mut self) {
        self.screen_dirty = true;
        if !self.screen_timer {
            self.screen_timer = self
                .win
                .set_timeout_with_callback_and_timeout_and_arguments_0(
                    &self.screen_fn,
                    SCREEN_CHECK_MS,
                )
                .is_ok();
        }
    }

    /// The DOM settled: check the screen, and watch the links and ads added.
    pub(crate) fn on_screen_timer(&mut self, _: &JsValue) {
        self.screen_timer = false;
        if self.route_pending {
            let waited = Date::now() - self.page_t;
            if waited < ROUTE_WAIT_MS && (!self.route_drawn || waited < f64::from(SCREEN_CHECK_MS))
            {
                self.screen_later();
                return;
            }
            self.route_settle();
        }
        self.screen_check();
        self.watch(false);
        self.links_unveiled();
        self.retitle();
    }

    /// The page set its title after its page view was recorded (a client-rendered
    /// page replaces its placeholder once drawn): while the page view waits in
    /// the queue and the page is visible (a page that changes its title when
    /// hidden, to call the visitor back, is not read then), it takes the new one.
    fn retitle(&mut self) {
        if self.page_event.is_empty() || self.doc.hidden() {
            return;
        }
        let title = dom::doc_string("title");
        if title == self.page_title {
            return;
        }
        let Some(q) = self
            .queue
            .iter_mut()
            .find(|q| q.json.starts_with(self.page_event.as_str()))
        else {
            // Sent: it keeps the title it had.
            self.page_event.clear();
            return;
        };
        let at = self.page_title_at;
        let mut old = String::from(",\"title\":");
        quote(&mut old, cut(&self.page_title, MAX_TITLE));
        if let (Some(head), Some(tail)) = (q.json.get(..at), q.json.get(at..))
            && tail.starts_with(old.as_str())
        {
            let mut json = String::from(head);
            json.push_str(",\"title\":");
            quote(&mut json, cut(&title, MAX_TITLE));
            json.push_str(tail.get(old.len()..).unwrap_or_default());
            q.json = json;
        }
        self.page_title = title;
    }

    // ---- clicks ----------------------------------------------------------------------

    /// A click, credited to what the visitor meant: the link it is in (a button
    /// or icon inside `a[href]` is a click on the link), else the nearest
    /// [`dom::INTERESTING`] element, else the `svg` an icon part is in, else the
    /// target. A click made by the browser or a script for another element than
    /// the one the visitor acted on is not recorded (see [`Tracker::echo`]); a
    /// keyboard click (Enter or Space on the focused element) is, without `x`, `y`.
    pub(crate) fn on_click(&mut self, e: &JsValue) {
        let e: &MouseEvent = e.unchecked_ref();
        // The middle button is `auxclick`'s (a browser that sends both a click
        // and an `auxclick` for it would count it twice).
        if e.button() == 1 {
            return;
        }
        let pointer = dom::prop(e, "detail").as_f64().unwrap_or(0.0) > 0.0;
        self.click(e, pointer);
    }

    /// `auxclick` of the middle button on a link: the visitor opens it in a new
    /// tab (browsers send no `click` for it).
    pub(crate) fn on_auxclick(&mut self, e: &JsValue) {
        let e: &MouseEvent = e.unchecked_ref();
        if e.button() == 1 && dom::origin_in(e, "a[href]").is_some() {
            self.click(e, true);
        }
    }

    /// The context menu of a link of this origin: it may be opened in a new tab
    /// ("Open in new tab", a long press), which then goes on with this session.
    pub(crate) fn on_menu(&mut self, e: &JsValue) {
        if self.recording
            && let Some(a) = dom::origin_in(e, "a[href]")
            && dom::opens_tab(e, &a)
        {
            self.hand_off();
        }
    }

    /// `pointerup` of the main button on a disabled button: the browser sends no
    /// click, but the visitor clicked ("Checkout" greyed out until the terms are
    /// ticked, pressed again and again). Recorded as a click and judged as one:
    /// nothing answers it, so it is dead, and rage when repeated. Only where it
    /// was pressed too (not at the end of a drag from elsewhere).
    pub(crate) fn on_release(&mut self, e: &JsValue) {
        let e: &MouseEvent = e.unchecked_ref();
        let button = dom::origin_in(e, DISABLED);
        if e.button() == 0
            && let Some(b) = button
            && self
                .dead
                .near
                .dyn_ref::<Element>()
                .is_some_and(|pressed| dom::within(&b, pressed))
        {
            self.click(e, true);
        }
    }

    /// A click (`pointer`: made with a pointer, so with a place), as [`Tracker::on_click`] says.
    #[inline(never)]
    fn click(&mut self, e: &MouseEvent, pointer: bool) {
        let Some(target) = dom::element(dom::origin(e)) else {
            self.dead_begin();
            self.nav_click = false;
            return;
        };
        let link = dom::closest(&target, "a[href]");
        let anchor = link
            .clone()
            .and_then(|a| a.dyn_into::<HtmlAnchorElement>().ok());
        let href = anchor.as_ref().map(HtmlAnchorElement::href);
        // A link to a fragment of this page (the page's URL read once, for
        // links with a fragment only).
        let to_fragment = href
            .as_deref()
            .and_then(|h| Some((h, h.get(no_fragment(h).len() + 1..)?)))
            .filter(|(h, _)| no_fragment(h) == self.current_url());
        // The fragment change it makes is a jump (remembered whatever is
        // recorded of the click).
        if let Some((_, f)) = to_fragment {
            self.anchor_click = (String::from(f), Date::now());
        }
        let el = link
            .or_else(|| dom::closest(&target, dom::INTERESTING))
            .or_else(|| dom::closest(&target, "svg"))
            .unwrap_or_else(|| target.clone());
        if self.echo(&el, pointer) {
            return;
        }
        self.dead_begin();
        self.nav_click = false;
        let Some(mut j) = self.begin(kind::CLICK) else {
            return;
        };
        let sel = dom::selector(&el);
        j.str("sel", &sel, MAX_SELECTOR);
        j.str("anc", &dom::ancestry(&target), MAX_ANCESTRY);
        if let Some(text) = dom::text(&el) {
            j.str("text", &text, usize::MAX);
        }
        if let Some(h) = &href {
            j.str("href", &self.link_href(h), MAX_URL);
        }
        if pointer {
            j.int("x", e.client_x().into());
            j.int("y", e.client_y().into());
        }
        // The ad clicked in, if any.
        if let Some(ad) =
            dom::closest(&target, "[data-ct-ad]").and_then(|a| a.get_attribute("data-ct-ad"))
        {
            j.str("ad", &ad, MAX_NAME);
        }
        // A label passes the click on to its field: that second click is no new action.
        self.label_field = (el.local_name() == "label")
            .then(|| dom::prop(&el, "control").dyn_into().ok())
            .flatten();
        self.push(j);
        // A choice in a custom dropdown, which fires no `change`: its field changed.
        if let Some(f) = dom::option_field(&self.doc, &target) {
            self.field_event(kind::CHANGE, &f, None, false);
        }
        // A `javascript:` link, or one to `#` on this page, goes nowhere: what
        // its script does is judged, as a button's is (a broken "Quick view" or
        // "Add to wishlist" link of a jQuery template).
        let nowhere = to_fragment.is_some_and(|(_, f)| f.is_empty());
        let goes = href.as_deref().is_some_and(|h| {
            let script = h
                .get(..11)
                .is_some_and(|s| s.eq_ignore_ascii_case("javascript:"));
            !(script || nowhere)
        });
        self.dead_arm(e, pointer, &target, sel, goes);
        if anchor.as_ref().is_some_and(|a| dom::opens_tab(e, a)) {
            self.hand_off();
        }
        self.nav_click = anchor.is_some_and(|a| {
            let h = href.as_deref().unwrap_or_default();
            e.button() == 0
                && !["ctrlKey", "metaKey", "shiftKey", "altKey"]
                    .iter()
                    .any(|k| dom::prop(e, k).is_truthy())
                && matches!(a.target().as_str(), "" | "_self" | "_top" | "_parent")
                && !a.has_attribute("download")
                && (h.starts_with("http:") || h.starts_with("https:"))
                && no_fragment(h) != self.page_url
        });
    }

    /// Whether a click is the echo of one already recorded, or of a key press
    /// on another element, rather than an action of its own: the click a
    /// `<label>` passes on to its field; and a click with no pointer (`detail`
    /// 0) on another element than the focused one (Enter in a text field clicks
    /// the form's submit button; a page script clicks a hidden file input) or on
    /// a `<select>` (a choice made with the keyboard). Enter or Space on a focused
    /// button, link or checkbox is the visitor's click on it and counts.
    fn echo(&mut self, el: &Element, pointer: bool) -> bool {
        if self.label_field.take().is_some_and(|f| f == *el) {
            return true;
        }
        !pointer
            && (el.local_name() == "select" || !dom::focused().is_some_and(|a| dom::within(el, &a)))
    }

    /// The same click once every page handler ran (bubble phase on window): a link
    /// that really leaves the page flushes by beacon before the page unloads.
    pub(crate) fn on_click_done(&mut self, e: &JsValue) {
        if core::mem::take(&mut self.nav_click) && !e.unchecked_ref::<Event>().default_prevented() {
            self.flush(crate::send::Via::Beacon);
        }
    }

    // ---- forms -------------------------------------------------------------------

    pub(crate) fn on_focus(&mut self, e: &JsValue) {
        let target = dom::inner(e);
        self.dead_focus(&target);
        if let Some(el) = dom::field(target) {
            self.focus = Some((el.clone(), Date::now()));
            self.field_event(kind::FOCUS, &el, None, false);
        }
    }

    pub(crate) fn on_blur(&mut self, e: &JsValue) {
        if let Some(el) = dom::field(dom::inner(e)) {
            let dur = match self.focus.take() {
                Some((f, t)) if f == el => Some(Date::now() - t),
                _ => None,
            };
            self.field_event(kind::BLUR, &el, dur, true);
        }
    }

    pub(crate) fn on_change(&mut self, e: &JsValue) {
        self.dead_change(e);
        if let Some(el) = dom::field(dom::inner(e)) {
            self.field_event(kind::CHANGE, &el, None, true);
        }
    }

    fn field_event(
        &mut self,
        kind: &'static str,
        el: &Element,
        dur: Option<f64>,
        with_empty: bool,
    ) {
        self.acted();
        if kind == kind::CHANGE {
            self.sent = None;
        }
        let ty = dom::field_type(el);
        let Some(mut j) = self.begin(kind) else {
            return;
        };
        j.str("field", &dom::name_of(el), MAX_SELECTOR);
        j.str("ft", &ty, MAX_NAME);
        if let Some(form) = dom::form_name(el) {
            j.str("form", &form, MAX_SELECTOR);
        }
        if let Some(d) = dur {
            j.int("dur", d.max(0.0) as i64);
        }
        // A custom field's emptiness is not known (its contents are not read).
        if with_empty && dom::native(el) {
            j.bool("empty", dom::is_empty(el, &ty));
        }
        self.push(j);
    }

    pub(crate) fn on_submit(&mut self, e: &JsValue) {
        if let Some(form) = dom::element(dom::inner(e)) {
            self.submitted(form);
        }
    }

    /// The page sent a form by script (`form.submit()`: a sort menu's
    /// `onchange`, jQuery's `.submit()`, a payment step posting itself), which
    /// fires no `submit` event: a submit of it, unless it finishes the attempt
    /// recorded last (its submit handler stopped the browser's, checked the
    /// form, and sent it itself), no field changed since.
    pub(crate) fn on_form_sent(&mut self, this: &JsValue) {
        let Some(form) = dom::element(this.clone()) else {
            return;
        };
        if self.sent.as_ref() != Some(&form) {
            self.submitted(form);
        }
    }

    fn submitted(&mut self, form: Element) {
        let Some(mut j) = self.begin(kind::SUBMIT) else {
            return;
        };
        j.str(
            "form",
            &dom::form_name(&form).unwrap_or_else(|| dom::name_of(&form)),
            MAX_SELECTOR,
        );
        self.sent = Some(form);
        self.push(j);
        self.flush(crate::send::Via::Beacon);
        // A submission navigates or is the page's to handle: the click is answered.
        self.on_answer(&JsValue::UNDEFINED);
    }

    /// A field failed the browser's validation (`invalid` fires at each field on a
    /// submit attempt or `checkValidity()`).
    pub(crate) fn on_invalid(&mut self, e: &JsValue) {
        // The browser's validation bubble answers the click.
        self.on_answer(&JsValue::UNDEFINED);
        // A page checking its form by itself (at load, or at each key typed, to
        // enable its Pay button once the form is complete) is no failed attempt.
        if !dom::attempting() {
            return;
        }
        if let Some(el) = dom::field(dom::inner(e)) {
            let now = Date::now();
            self.invalid.retain(|(_, t)| now - *t < INVALID_SAME_MS);
            if self.invalid.iter().any(|(f, _)| *f == el) {
                return;
            }
            self.invalid.push((el.clone(), now));
            self.field_event(kind::INVALID, &el, None, false);
        }
    }

    // ---- errors --------------------------------------------------------------------

    /// An uncaught error (`ErrorEvent`: message, script, line) or an unhandled
    /// promise rejection (its reason's message, and the script and line of the
    /// first frame of its stack that has a URL). At most [`MAX_ERRORS`] per page load,
    /// so an error in a loop does not flood the collector.
    pub(crate) fn on_error(&mut self, e: &JsValue) {
        if self.errors >= MAX_ERRORS {
            return;
        }
        let reason = dom::prop(e, "reason");
        let msg = [
            dom::prop(e, "message"),
            dom::prop(&reason, "message"),
            reason.clone(),
        ]
        .iter()
        .find_map(JsValue::as_string)
        .map(|m| squash(&m, MAX_ERROR_CHARS))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from("unhandled rejection"));
        let mut src = dom::prop(e, "filename").as_string().unwrap_or_default();
        let mut line = dom::prop(e, "lineno").as_f64().unwrap_or(0.0) as u32;
        if src.is_empty()
            && let Some((s, l)) = dom::prop(&reason, "stack")
                .as_string()
                .as_deref()
                .and_then(stack_frame)
        {
            (src, line) = (String::from(s), l);
        }
        let Some(mut j) = self.begin(kind::ERROR) else {
            return;
        };
        self.errors += 1;
        j.str("msg", &msg, usize::MAX);
        if !src.is_empty() {
            j.str("src", no_fragment(&src), MAX_URL);
        }
        if line > 0 {
            j.int("line", line.into());
        }
        self.push(j);
    }

    // ---- the JS API ----------------------------------------------------------------

    /// `clicktrail(a, b, c)`: `('event', name, props)`, `('identify', id)`,
    /// `('consent', bool)`. Anything else is ignored. Consent withdrawn drops what
    /// is unsent; consent given records the current page view if it was not.
    pub(crate) fn api(&mut self, a: &JsValue, b: &JsValue, c: &JsValue) {
        match a.as_string().as_deref() {
            Some("event") => {
                let Some(name) = b.as_string().filter(|n| !n.is_empty()) else {
                    return;
                };
                let props = c
                    .is_object()
                    .then(|| JSON::stringify(c).ok())
                    .flatten()
                    .map(String::from)
                    // Headroom: the collector measures props re-serialised by serde_json.
                    .filter(|p| acceptable_props(p, MAX_PROPS_BYTES - 128));
                let Some(mut j) = self.begin(kind::CUSTOM) else {
                    return;
                };
                j.str("name", &name, MAX_NAME);
                if let Some(p) = props {
                    j.raw("props", &p);
                }
                self.push(j);
            }
            Some("identify") => {
                // Strings, and numbers as their JSON text.
                let uid = b.as_string().or_else(|| {
                    (b.as_f64().is_some_and(f64::is_finite))
                        .then(|| JSON::stringify(b).ok().map(String::from))
                        .flatten()
                });
                let Some(uid) = uid.filter(|u| !u.is_empty()) else {
                    return;
                };
                let Some(mut j) = self.begin(kind::IDENTIFY) else {
                    return;
                };
                j.str("uid", &uid, MAX_NAME);
                self.push(j);
            }
            Some("consent") => match b.as_bool() {
                Some(true) if !self.recording => {
                    self.recording = true;
                    // An opt-in banner accepted on this page: its page view counts.
                    // (A route waiting to be drawn records it when it is.)
                    if self.page_unsent && !self.route_pending {
                        self.record_pageview(None);
                    }
                    // What is in view now counts.
                    self.rewatch();
                }
                Some(false) if self.recording => {
                    self.recording = false;
                    self.page_unsent = self.queue.iter().any(|q| q.kind == kind::PAGEVIEW);
                    if self.page_unsent {
                        // Its `screen` event goes too: record the screen again with it.
                        self.screen = None;
                    }
                    self.queue.clear();
                    self.inflight.clear();
                    // Links seen and ads timed so far go too.
                    self.send_links(false);
                    self.pause_ads();
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// The script URL and line of the first frame of a JS stack trace that has a URL:
/// Chrome's `    at f (https://x/app.js:12:5)` or `    at https://x/app.js:12:5`,
/// Firefox's and Safari's `f@https://x/app.js:12:5`. Chrome's first line, the
/// message, is no frame even when it holds a URL.
pub(crate) fn stack_frame(stack: &str) -> Option<(&str, u32)> {
    let mut rest = stack;
    while !rest.is_empty() {
        let line = before(rest, b'\n');
        rest = rest.get(line.len() + 1..).unwrap_or_default();
        if let Some(f) = frame(line) {
            return Some(f);
        }
    }
    None
}

/// The script URL and line of one stack frame (see [`stack_frame`]).
fn frame(l: &str) -> Option<(&str, u32)> {
    let b = l.as_bytes();
    let scheme = b.windows(3).position(|w| w == b"://")?;
    let mut start = scheme;
    while let Some(c) = start.checked_sub(1).and_then(|i| b.get(i))
        && (c.is_ascii_alphanumeric() || b"+-.".contains(c))
    {
        start -= 1;
    }
    let at = l.trim_start().starts_with("at ")
        || start.checked_sub(1).and_then(|i| b.get(i)) == Some(&b'@');
    let mut end = scheme;
    while b
        .get(end)
        .is_some_and(|c| !matches!(c, b')' | b' ' | b'\r'))
    {
        end += 1;
    }
    let url = l.get(start..end).filter(|_| at)?;
    // `URL:line:column`, or `URL:line`.
    let (rest, last) = tail_number(url)?;
    Some(tail_number(rest).unwrap_or((rest, last)))
}

/// `s` without its last `:N`, and N (a positive number).
fn tail_number(s: &str) -> Option<(&str, u32)> {
    let i = s.bytes().rposition(|c| c == b':')?;
    let n = s.get(i + 1..)?.parse::<u32>().ok().filter(|n| *n > 0)?;
    Some((s.get(..i)?, n))
}

/// Whether a site id is one the collector accepts.
pub(crate) fn valid_site(site: &str) -> bool {
    (1..=protocol::MAX_SITE).contains(&site.len())
        && site
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
}

/// Whether two URLs (without fragment) have the same stored query parameters
/// ([`protocol::kept_param`]), in the same order and as they are written.
fn same_stored_query(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (query(a), query(b));
    loop {
        let (x, y) = (next_stored(&mut a), next_stored(&mut b));
        if x != y {
            return false;
        }
        if x.is_none() {
            return true;
        }
    }
}

/// The query string of a URL (without fragment), without its `?`.
fn query(url: &str) -> &str {
    url.get(before(url, b'?').len() + 1..).unwrap_or_default()
}

/// The next stored parameter (`name=value`) of the query string `rest`, which it
/// then goes past.
fn next_stored<'a>(rest: &mut &'a str) -> Option<&'a str> {
    while !rest.is_empty() {
        let p = before(rest, b'&');
        *rest = rest.get(p.len() + 1..).unwrap_or_default();
        if protocol::kept_param(before(p, b'=')) {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{next_stored, query, same_stored_query, stack_frame};

    #[test]
    fn only_stored_query_parameters_make_a_new_page() {
        let stored = |url| {
            let (mut rest, mut out) = (query(url), alloc::vec::Vec::new());
            while let Some(p) = next_stored(&mut rest) {
                out.push(p);
            }
            out
        };
        assert!(stored("https://s.example/p?variant=42&page=3").is_empty());
        assert_eq!(
            stored("https://s.example/p?variant=4&utm_source=news&GCLID=x&&ref=a&reference=b"),
            ["utm_source=news", "GCLID=x", "ref=a"]
        );
        assert!(stored("https://s.example/p").is_empty());
        assert_eq!(stored("/p?utm_medium"), ["utm_medium"]);
        let same = same_stored_query;
        assert!(same("/p?variant=1", "/p?variant=2&page=3"));
        assert!(same(
            "/p?utm_source=a&variant=1",
            "/p?variant=2&utm_source=a"
        ));
        assert!(!same("/p?utm_source=a", "/p?utm_source=b"));
        assert!(!same("/p?utm_source=a", "/p"));
    }

    #[test]
    fn finds_the_first_frame_with_a_url() {
        let chrome = "Error: boom at https://a.b/x.js:1:2\n    at <anonymous>\n    at fail (https://shop.example:8443/js/app.js:12:5)\n    at https://shop.example/other.js:1:1";
        assert_eq!(
            stack_frame(chrome),
            Some(("https://shop.example:8443/js/app.js", 12))
        );
        assert_eq!(
            stack_frame("    at async http://127.0.0.1:8080/demo/a.js:7:30"),
            Some(("http://127.0.0.1:8080/demo/a.js", 7))
        );
        let firefox = "fail@https://x.example/app.js:3:9\n@https://x.example/app.js:10:1\n";
        assert_eq!(stack_frame(firefox), Some(("https://x.example/app.js", 3)));
        assert_eq!(
            stack_frame("f@https://x.example/app.js:42"),
            Some(("https://x.example/app.js", 42))
        );
        assert_eq!(stack_frame("Error: no frames\n    at <anonymous>"), None);
        assert_eq!(stack_frame(""), None);
    }
}
