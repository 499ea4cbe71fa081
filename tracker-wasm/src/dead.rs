//! Dead clicks: a click that nothing answered within [`DEAD_MS`].
//!
//! An answer is a real DOM change anywhere in the document (a `MutationObserver`
//! watching everything, see [`Tracker::on_dom_answer`]), a value set by the page
//! on a field (a quantity stepper writes `input.value`, which no observer sees:
//! the `value`, `checked` and `selectedIndex` setters are wrapped in `lib.rs`,
//! and the value itself is never read; a field's `change` while a click is
//! judged, as when a swatch clicks its hidden radio), a request started by the page (`fetch`
//! and `XMLHttpRequest.send` are wrapped in `lib.rs`; the tracker's own requests
//! don't count, nor a tag's: a `keepalive` beacon, or a `fetch` or XHR to an
//! analytics or advertising service), focus the page moves elsewhere than to what was clicked (not
//! the visitor's Tab), a
//! video or sound it plays (`play` is wrapped), what acts outside the page
//! (`window.open`, `print`, `navigator.share`, `navigator.clipboard.writeText`:
//! "Share", "Print", "Copy code"), a scroll the page makes of itself or of a box
//! the clicked element is in ("Back to top"; not one the visitor makes with a
//! wheel, a touch or keys: see `answerScrolls` in `js/dom.js`), or a navigation:
//! a history change, the Navigation API's `navigate` event where the browser has
//! it, a link followed (its click not prevented; a `javascript:` link, or one to
//! `#` on the same page, goes nowhere and is judged by what its script does), a form submitted or found invalid, the page hidden
//! or left.
//!
//! A real change is one that leaves something different: an attribute or a text
//! whose value is not the one it had, or nodes added or removed. Scripts that
//! rewrite the same classes and styles on every click anywhere (dropdown and
//! tooltip libraries do) change nothing, and so answer nothing.
//!
//! Requests are caught when they start rather than through resource timing: a
//! resource entry only appears once a request is complete (a slow answer, the
//! case that matters, comes after the verdict), and Chrome writes none for a
//! `fetch` whose body is never read. There is no `beforeunload` listener: Firefox
//! keeps no page with one in its back/forward cache, and most link clicks would
//! leave while it is set.
//!
//! Watching starts at `pointerdown`, because many widgets (menus, selects) answer
//! there rather than on the click, or at the click itself when none came first (a
//! keyboard click). Only the latest click is judged: a new one ends the window of
//! the one before, which is dead if nothing answered in between. The observer
//! runs only from a `pointerdown` or click until the first answer or the verdict.
//! Clicks on form fields (not the button-like inputs) and labels (focus is the
//! answer, and no observer sees it), in `data-ct-ignore` and in
//! `data-ct-no-dead` never count. A click on a disabled button, for which the
//! browser sends no `click`, is taken from its `pointerup` (see
//! `Tracker::on_release`): the visitor pressed "Checkout" and nothing happened.
//!
//! What the page changes by itself at a steady pace (a countdown, a carousel that
//! turns on its own) answers nothing, or no click on such a page would ever be
//! dead. The always-on observer of screens learns each element's beat from the
//! changes that come while the visitor does nothing (250 ms after a press,
//! click or focus); a change on an element's beat is no answer, unless it comes
//! at once next to what was pressed (an arrow turns a carousel that also turns by
//! itself). See `beat` and `steady` in `js/dom.js`.
//!
//! Rage clicks are told by the audit from these verdicts: a burst of clicks is
//! rage only when the clicks after its first got no answer. Inside
//! `data-ct-no-rage` only the first unanswered click of a burst (clicks on one
//! element less than [`BURST_MS`] apart) is judged dead, so a burst there is never
//! rage and still shows one dead click.

use alloc::string::String;

use js_sys::Date;
use protocol::{MAX_SELECTOR, kind};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Element, Event, MouseEvent};

use crate::dom::{self, Observer};
use crate::tracker::Tracker;

/// How long a click may wait for an answer.
const DEAD_MS: i32 = 1000;
/// Clicks here are answered by focus, or are not to be judged.
const FIELDS: &str = "input:not([type=submit],[type=button],[type=image],[type=reset]),\
    select,textarea,label,[contenteditable],[data-ct-no-dead]";
/// Clicks on one `data-ct-no-rage` element closer than this are one burst.
const BURST_MS: f64 = 2000.0;

/// The click being judged, and whether something answered since watching started.
#[derive(Default)]
pub(crate) struct Dead {
    pub(crate) mo: Option<Observer>,
    click: Option<Click>,
    answered: bool,
    /// A `pointerdown` started watching for the coming click.
    primed: bool,
    /// The latest click on a `data-ct-no-rage` element: its selector and time.
    burst: Option<(String, f64)>,
    /// What was pressed or clicked last: changes next to it answer.
    pub(crate) near: JsValue,
    /// When the visitor last pressed, clicked or focused something.
    pub(crate) input_at: f64,
}

struct Click {
    sel: String,
    /// Where, for a pointer click (a keyboard click has no place).
    xy: Option<(i32, i32)>,
    t: f64,
    /// The click event when it was on a link that goes somewhere (not
    /// `javascript:`, not `#`): following the link is an answer.
    link: Option<Event>,
    /// Not judged: a later click of a burst on a `data-ct-no-rage` element.
    repeat: bool,
}

impl Tracker {
    /// `pointerdown`: the previous click's time is up; watching for the next one starts.
    pub(crate) fn on_press(&mut self, e: &JsValue) {
        // A press starts a new action: a label's pass-on click is past by now.
        self.label_field = None;
        // First, so that a shadow root pressed in is found, and watched too.
        self.dead.near = dom::origin(e);
        self.dead_settle();
        self.dead_watch();
        self.dead.primed = true;
    }

    /// Called first for every click: one without a `pointerdown` before it
    /// (keyboard, `el.click()`) starts watching itself.
    pub(crate) fn dead_begin(&mut self) {
        if !core::mem::take(&mut self.dead.primed) {
            self.dead_settle();
            self.dead_watch();
        }
    }

    /// Judge this click (already recorded as `click`) after [`DEAD_MS`], unless it
    /// was on a field.
    pub(crate) fn dead_arm(
        &mut self,
        e: &MouseEvent,
        pointer: bool,
        target: &Element,
        sel: String,
        link: bool,
    ) {
        self.dead.near = target.clone().into();
        self.acted();
        if dom::closest(target, FIELDS).is_none() {
            let t = Date::now();
            let mut repeat = false;
            if dom::closest(target, "[data-ct-no-rage]").is_some() {
                repeat = self
                    .dead
                    .burst
                    .as_ref()
                    .is_some_and(|(s, bt)| *s == sel && t - bt < BURST_MS);
                self.dead.burst = Some((sel.clone(), t));
            }
            self.dead.click = Some(Click {
                sel,
                xy: pointer.then(|| (e.client_x(), e.client_y())),
                t,
                link: link.then(|| e.clone().into()),
                repeat,
            });
            self.tick(DEAD_MS);
        } else {
            // Not judged: nothing to watch for.
            self.on_answer(&JsValue::UNDEFINED);
        }
    }

    fn dead_watch(&mut self) {
        self.dead.answered = false;
        self.acted();
        if let Some(o) = &self.dead.mo {
            let all = r#"{"subtree":1,"childList":1,"attributes":1,"characterData":1,
                "attributeOldValue":1}"#;
            let all = dom::json(all);
            let _ = o.observe(&self.doc, &all);
            dom::observe_shadows(o, &all);
        }
    }

    /// Something answered the click: nothing more to watch for.
    pub(crate) fn on_answer(&mut self, _: &JsValue) {
        self.dead.answered = true;
        if let Some(o) = &self.dead.mo {
            o.disconnect();
        }
    }

    /// The observer's records: an answer when one of them really changed
    /// something, other than what the page changes by itself at a steady pace.
    pub(crate) fn on_dom_answer(&mut self, records: &JsValue) {
        let mut real = false;
        let since = Date::now() - self.dead.input_at;
        dom::each(records, |r| {
            real = real
                || changed(&r) && !dom::steady(&dom::prop(&r, "target"), &self.dead.near, since);
        });
        if real {
            self.on_answer(records);
        }
    }

    /// Focus the page moves elsewhere than to what was pressed answers the click
    /// (a search icon that focuses the search box, "Write a review" focusing its
    /// text box); the browser's own focus of what was pressed, or of the link or
    /// button around it, does not, nor the visitor's Tab right after a keyboard
    /// click.
    pub(crate) fn dead_focus(&mut self, focused: &JsValue) {
        if dom::tabbing() {
            return;
        }
        if let (Some(f), Some(near)) = (
            focused.dyn_ref::<Element>(),
            self.dead.near.dyn_ref::<Element>(),
        ) && !dom::within(near, f)
            && !dom::within(f, near)
        {
            self.on_answer(focused);
        }
    }

    /// A `fetch` the page starts answers the click being judged, unless it is a
    /// tag's: a beacon (`keepalive`: a request that outlives the page, which is
    /// how analytics report a click that may leave it) or one to an analytics or
    /// advertising service (see `tagRequest` in `js/dom.js`). A tag that reports
    /// every click would otherwise answer every click, dead or not.
    pub(crate) fn on_fetch(&mut self, args: &JsValue) {
        if !self.dead.answered && !dom::tag_request(args) {
            self.on_answer(args);
        }
    }

    /// An `XMLHttpRequest` the page sends answers the click, unless it was opened
    /// to an analytics or advertising service (see [`Tracker::on_fetch`]).
    pub(crate) fn on_xhr(&mut self, xhr: &JsValue) {
        if !self.dead.answered && !dom::tag_xhr(xhr) {
            self.on_answer(xhr);
        }
    }

    /// A field changed while a click is judged: its script changed it (a colour
    /// swatch ticking its hidden radio with `click()`, which sets no value any
    /// wrapped setter sees). A field the press took the focus from changes
    /// before the click, when none is judged.
    pub(crate) fn dead_change(&mut self, e: &JsValue) {
        if self.dead.click.is_some() {
            self.on_answer(e);
        }
    }

    /// The visitor pressed, clicked, focused or filled in a field: what the page
    /// changes now is no beat of its own (see `js/dom.js`).
    pub(crate) fn acted(&mut self) {
        self.dead.input_at = Date::now();
        dom::act();
    }

    /// The click's time is up.
    pub(crate) fn dead_due(&mut self) {
        if self
            .dead
            .click
            .as_ref()
            .is_some_and(|c| Date::now() - c.t >= f64::from(DEAD_MS - 10))
        {
            self.dead_settle();
        }
    }

    /// The verdict on the click being judged, if any: `dead_click` when nothing answered.
    pub(crate) fn dead_settle(&mut self) {
        let Some(c) = self.dead.click.take() else {
            return;
        };
        let answered = core::mem::replace(&mut self.dead.answered, true);
        self.on_answer(&JsValue::UNDEFINED);
        if answered
            || c.repeat
            || c.link.is_some_and(|e| !e.default_prevented())
            || self.current_url() != self.page_url
        {
            return;
        }
        if let Some(mut j) = self.begin(kind::DEAD_CLICK) {
            j.str("sel", &c.sel, MAX_SELECTOR);
            if let Some((x, y)) = c.xy {
                j.int("x", x.into());
                j.int("y", y.into());
            }
            self.push(j);
        }
    }
}

/// Whether a `MutationRecord` leaves the page different: nodes added or removed,
/// or an attribute now unlike its old value (a rewrite of the same value is no
/// change). A field's `value` attribute and text changes always count, unread:
/// what a visitor types never crosses into wasm.
fn changed(r: &JsValue) -> bool {
    if dom::prop(r, "type").as_string().as_deref() != Some("attributes") {
        return true;
    }
    let name = dom::prop(r, "attributeName")
        .as_string()
        .unwrap_or_default();
    if name == "value" {
        return true;
    }
    let old = dom::prop(r, "oldValue").as_string();
    dom::prop(r, "target")
        .dyn_ref::<Element>()
        .is_none_or(|el| el.get_attribute(&name) != old)
}
