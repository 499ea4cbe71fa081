//! What came into view: links (`links` events) and ads (`ad_view` events).
//!
//! One `IntersectionObserver` with threshold 0.5 watches every `a[href]` and
//! `[data-ct-ad]` element. An element counts as in view while at least half of its
//! box is inside the viewport (clipping by scrolling ancestors included), the
//! page is visible, and it is shown (not `visibility: hidden`, not in anything of
//! `opacity: 0`, which the observer does not see: a hover menu's links, the ad
//! under the one shown in a fading banner; see `js/dom.js` `unveiled`, and
//! [`Tracker::ads_due`]). Elements added later are watched after DOM changes
//! ([`Tracker::watch`], run by the debounced screen check: the elements added
//! since, not the whole page); observing an element twice is a no-op.
//!
//! **Links.** A *view* is a page view, or one screen of it: a new page view or a
//! change of the visible `data-ct-screen` ends it. Each link in view during a view
//! is listed once, as `["selector","href","label"]` (the label, its text or
//! accessible name, only when it has one), and the list goes out in `links`
//! events carrying the path and screen of that view: when the view ends, when the
//! page is hidden (the rest of the view follows later), and whenever
//! [`protocol::MAX_LINKS_PER_EVENT`] links or [`MAX_LINKS_BYTES`] are waiting, so
//! the beacon sent when the page is left stays small. At the start of a view the
//! observer starts afresh ([`Tracker::rewatch`]): it reports every element's
//! current state again, so links still in view count for the new view too.
//!
//! **Ads** (IAB viewable impression): an ad that stays in view for [`AD_VIEW_MS`]
//! in one go counts once per page view, however many elements show it (a
//! carousel's cloned slides, a banner the page renders again): one ad is one
//! `data-ct-ad` value. Leaving the view or the page being hidden restarts the
//! second.

use alloc::{string::String, vec::Vec};

use js_sys::Date;
use protocol::{MAX_LINKS_PER_EVENT, MAX_NAME, MAX_SELECTOR, MAX_URL, kind};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Element;

use crate::dom::{self, Observer};
use crate::json::{before, cut, quote};
use crate::tracker::Tracker;

/// Share of an element's box that must be in the viewport (the observer's
/// threshold, set in `lib.rs`).
const IN_VIEW: f64 = 0.5;
/// How long an ad must stay in view.
pub(crate) const AD_VIEW_MS: i32 = 1000;
/// Largest `links` list in one event, so that a batch stays within its byte budget.
const MAX_LINKS_BYTES: usize = 16 * 1024;

/// Links and ads in view, for the current view.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) io: Option<Observer>,
    /// `["selector","href","label"]` of each link seen in this view and not sent
    /// yet, in JSON; they take `unsent_bytes`.
    links: Vec<String>,
    /// A hash of each listed link's selector and href (one link is those two), to
    /// find a link listed already in this view without comparing strings.
    keys: Vec<u64>,
    unsent_bytes: usize,
    /// Number of the current view (`js/dom.js` remembers the view each link was
    /// listed in).
    view: u32,
    /// Ads of this page view: in view since (ms), 0 when out of view, -1 once counted.
    ads: Vec<(Element, f64)>,
    /// The `data-ct-ad` of each ad counted in this page view: one ad shown by
    /// several elements (a carousel's cloned slides, a re-rendered banner) counts
    /// once.
    counted: Vec<String>,
    /// When the next look at the ads in view but not shown is due.
    poll_at: f64,
}

impl Tracker {
    /// Observe the links and ads added to the page since the last look (all of
    /// them when `all`).
    pub(crate) fn watch(&self, all: bool) {
        if let Some(io) = &self.seen.io {
            dom::watch(io, all);
        }
    }

    /// Observe afresh: every element reports whether it is in view now.
    pub(crate) fn rewatch(&self) {
        if let Some(io) = &self.seen.io {
            io.disconnect();
        }
        self.watch(true);
    }

    /// The observer's callback: elements that crossed the threshold, or were just observed.
    pub(crate) fn on_view(&mut self, entries: &JsValue) {
        if !self.recording || self.doc.hidden() {
            return;
        }
        let ads = js_sys::Array::new();
        if self.route_pending {
            // A route not drawn yet shows the links of the route before; its page
            // view looks at the links in view afresh. Its ads start their second
            // as they come into view (a deal shown for a second or so right after
            // the route changed counts): the ads of the new page view are only
            // those that come into view, or are in view when it is drawn.
            dom::each(entries, |e| {
                if e.unchecked_ref::<dom::Entry>()
                    .target()
                    .has_attribute("data-ct-ad")
                {
                    ads.push(&e);
                }
            });
        } else {
            // A screen change waiting for its check ends the view before this
            // one's links count.
            self.screen_check();
            let list = dom::links_in_view(entries, self.seen.view, IN_VIEW, &ads);
            self.links_seen(&list);
        }
        let now = Date::now();
        dom::each(&ads, |e| {
            let e: dom::Entry = e.unchecked_into();
            let el = e.target();
            if e.intersection_ratio() < IN_VIEW {
                // Out of view; one taken out of the page keeps its second for
                // the element the page draws in its place.
                let gone = !connected(&el);
                for ad in &mut self.seen.ads {
                    if ad.0 == el && (ad.1 > 0.0 || ad.1 == VEILED) && !gone {
                        ad.1 = 0.0;
                    }
                }
                return;
            }
            if dom::is_ad(&el) {
                let start = match self.seen.ads.iter_mut().find(|ad| ad.0 == el) {
                    Some(ad) if ad.1 == 0.0 => {
                        ad.1 = now;
                        true
                    }
                    Some(_) => false,
                    None => {
                        // Elements the page has taken out since are let go; one
                        // of the same ad that was in view hands on its second (a
                        // page that draws its banner again at each change).
                        let name = el.get_attribute("data-ct-ad");
                        let mut since = now;
                        let mut i = 0;
                        while let Some(ad) = self.seen.ads.get(i) {
                            if connected(&ad.0) {
                                i += 1;
                                continue;
                            }
                            if ad.1 > 0.0 && ad.0.get_attribute("data-ct-ad") == name {
                                since = since.min(ad.1);
                            }
                            self.seen.ads.swap_remove(i);
                        }
                        self.seen.ads.push((el.clone(), since));
                        true
                    }
                };
                if start {
                    self.ad_started(&el);
                }
            }
        });
    }

    /// Links in view that were not shown (a hover menu's) and show now.
    pub(crate) fn links_unveiled(&mut self) {
        if self.recording && !self.doc.hidden() && !self.route_pending {
            let list = dom::unveiled(self.seen.view);
            self.links_seen(&list);
        }
    }

    /// The links of a list from `js/dom.js` (`selector\0href\0label\0` each).
    fn links_seen(&mut self, list: &str) {
        let mut rest = list;
        let mut field = || {
            let f = before(rest, 0);
            rest = rest.get(f.len() + 1..).unwrap_or_default();
            f
        };
        loop {
            let (sel, href, label) = (field(), field(), field());
            if sel.is_empty() {
                break;
            }
            self.link_seen(sel, href, label);
        }
    }

    /// A link in view, not listed in this view yet (as its element): its selector,
    /// href and raw label, as read by `js/dom.js`.
    fn link_seen(&mut self, sel: &str, href: &str, label: &str) {
        let mut link = String::from("[");
        quote(&mut link, cut(sel, MAX_SELECTOR));
        link.push(',');
        quote(&mut link, cut(&self.link_href(href), MAX_URL));
        // The same link again, e.g. re-rendered by the page (its text may have
        // changed: "Cart (2)"): one link is its selector and href.
        let key = fnv(link.as_bytes());
        if self.seen.keys.contains(&key) {
            return;
        }
        self.seen.keys.push(key);
        // Its label for the report: the text, else the accessible name.
        if let Some(text) = dom::label(label) {
            link.push(',');
            quote(&mut link, &text);
        }
        link.push(']');
        self.seen.unsent_bytes += link.len() + 1;
        self.seen.links.push(link);
        if self.seen.links.len() >= MAX_LINKS_PER_EVENT || self.seen.unsent_bytes >= MAX_LINKS_BYTES
        {
            self.send_links(false);
        }
    }

    /// Send the links not sent yet, on the path and screen of their view; `end`
    /// ends the view. Dropped while consent is withheld.
    pub(crate) fn send_links(&mut self, end: bool) {
        let links = core::mem::take(&mut self.seen.links);
        let (mut i, now) = (0, Date::now());
        while self.recording && i < links.len() {
            let (start, mut list) = (i, String::from("["));
            while let Some(l) = links.get(i) {
                if i - start == MAX_LINKS_PER_EVENT
                    || (i > start && list.len() + l.len() >= MAX_LINKS_BYTES)
                {
                    break;
                }
                if i > start {
                    list.push(',');
                }
                list.push_str(l);
                i += 1;
            }
            list.push(']');
            let mut j = self.head_at(kind::LINKS, now, self.page_path.clone());
            j.raw("links", &list);
            self.event_rows = i - start;
            self.push(j);
        }
        // Sent (or dropped while consent is withheld): only their keys stay, so
        // that a link is listed once per view.
        self.seen.unsent_bytes = 0;
        if end {
            self.seen.keys.clear();
            self.seen.view += 1;
        }
    }

    /// A new page view: every ad may count again.
    pub(crate) fn reset_ads(&mut self) {
        self.seen.ads.clear();
        self.seen.counted.clear();
    }

    /// The page is hidden or consent withdrawn: the ads' seconds start over.
    pub(crate) fn pause_ads(&mut self) {
        for ad in &mut self.seen.ads {
            if ad.1 != COUNTED {
                ad.1 = 0.0;
            }
        }
    }

    /// An ad came into view: its second starts if it is shown, else (a fade
    /// carousel's slide under the one shown) once it shows. While the page is
    /// parsed it is looked at a moment later (see [`dom::shown`]).
    fn ad_started(&mut self, el: &Element) {
        if dom::shown(el) {
            self.tick(AD_VIEW_MS);
        } else {
            for ad in &mut self.seen.ads {
                if ad.0 == *el {
                    ad.1 = VEILED;
                }
            }
            self.ad_poll(Date::now());
        }
    }

    /// Count the ads that have been in view long enough.
    pub(crate) fn ads_due(&mut self) {
        let now = Date::now();
        let (mut i, mut veiled, mut started) = (0, false, false);
        while let Some(ad) = self.seen.ads.get_mut(i) {
            i += 1;
            if ad.1 == VEILED && connected(&ad.0) {
                if dom::shown(&ad.0) {
                    ad.1 = now;
                    started = true;
                } else {
                    veiled = true;
                }
                continue;
            }
            // A timer may fire a few ms early against `Date.now()`. An ad taken
            // out of the page counts only through the element drawn in its place.
            if ad.1 <= 0.0 || now - ad.1 < f64::from(AD_VIEW_MS - 10) || !connected(&ad.0) {
                continue;
            }
            // Hidden meanwhile (the fade carousel moved on): it waits to show again.
            if !dom::shown(&ad.0) {
                ad.1 = VEILED;
                veiled = true;
                continue;
            }
            ad.1 = COUNTED;
            let el = ad.0.clone();
            let name = el.get_attribute("data-ct-ad").unwrap_or_default();
            if !name.is_empty() {
                if self.seen.counted.contains(&name) {
                    continue;
                }
                self.seen.counted.push(name.clone());
            }
            if let Some(mut j) = self.begin(kind::AD_VIEW) {
                j.str("ad", &name, MAX_NAME);
                j.str("sel", &dom::selector(&el), MAX_SELECTOR);
                self.push(j);
            }
        }
        if started {
            self.tick(AD_VIEW_MS);
        }
        if veiled {
            self.ad_poll(now);
        }
    }

    /// Look at the ads in view but not shown in [`AD_POLL_MS`], unless a look is
    /// due already.
    fn ad_poll(&mut self, now: f64) {
        // A timer may fire a few ms early against `Date.now()`.
        if now + f64::from(AD_POLL_MS / 2) >= self.seen.poll_at {
            self.seen.poll_at = now + f64::from(AD_POLL_MS);
            self.tick(AD_POLL_MS);
        }
    }
}

/// An ad's in-view time once it has been counted in this page view.
const COUNTED: f64 = -1.0;
/// An ad's in-view time while it is in view but not shown (`opacity: 0`,
/// `visibility: hidden`); it is looked at every [`AD_POLL_MS`] until it shows.
const VEILED: f64 = -2.0;
/// How often an ad in view but not shown is looked at.
const AD_POLL_MS: i32 = 250;

/// Whether the element is in the page (not taken out by a re-render).
fn connected(el: &Element) -> bool {
    dom::prop(el, "isConnected").is_truthy()
}

/// 64-bit FNV-1a: two links' keys are equal only when their texts are (a false
/// match, one in 2^64 per pair, would leave a link out of one view's list).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
