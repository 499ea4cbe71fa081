//! Dead clicks: a click that nothing answered within [`DEAD_MS`].
//!
//! An answer is a DOM change anywhere in the document (a `MutationObserver`
//! watching everything), a request started by the page (`fetch` and
//! `XMLHttpRequest.send` are wrapped in `lib.rs`; the tracker's own requests don't
//! count), or a navigation: a history change, the Navigation API's `navigate`
//! event where the browser has it, a link followed (its click not prevented), a
//! form submitted or found invalid, the page hidden or left.
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
//! Clicks on form fields and labels (focus is the answer, and no observer sees
//! it) and in `data-ct-ignore` never count.

use alloc::string::String;

use js_sys::Date;
use protocol::{MAX_SELECTOR, kind};
use wasm_bindgen::JsValue;
use web_sys::{Element, Event, MouseEvent};

use crate::dom::{self, Observer};
use crate::tracker::Tracker;

/// How long a click may wait for an answer.
const DEAD_MS: i32 = 1000;
/// Clicks here are answered by focus.
const FIELDS: &str = "input,select,textarea,label,[contenteditable]";

/// The click being judged, and whether something answered since watching started.
#[derive(Default)]
pub(crate) struct Dead {
    pub(crate) mo: Option<Observer>,
    click: Option<Click>,
    answered: bool,
    /// A `pointerdown` started watching for the coming click.
    primed: bool,
}

struct Click {
    sel: String,
    /// Where, for a pointer click (a keyboard click has no place).
    xy: Option<(i32, i32)>,
    t: f64,
    /// The click event when it was on a link: following the link is an answer.
    link: Option<Event>,
}

impl Tracker {
    /// `pointerdown`: the previous click's time is up; watching for the next one starts.
    pub(crate) fn on_press(&mut self, _: &JsValue) {
        // A press starts a new action: a label's pass-on click is past by now.
        self.label_field = None;
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
        if dom::closest(target, FIELDS).is_none() {
            self.dead.click = Some(Click {
                sel,
                xy: pointer.then(|| (e.client_x(), e.client_y())),
                t: Date::now(),
                link: link.then(|| e.clone().into()),
            });
            self.tick(DEAD_MS);
        }
    }

    fn dead_watch(&mut self) {
        self.dead.answered = false;
        if let Some(o) = &self.dead.mo {
            let all = r#"{"subtree":1,"childList":1,"attributes":1,"characterData":1}"#;
            let _ = o.observe(&self.doc, &dom::json(all));
        }
    }

    /// Something answered the click: nothing more to watch for.
    pub(crate) fn on_answer(&mut self, _: &JsValue) {
        self.dead.answered = true;
        if let Some(o) = &self.dead.mo {
            o.disconnect();
        }
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
