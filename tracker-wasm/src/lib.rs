//! The clicktrail browser tracker: Rust compiled to `wasm32-unknown-unknown`.
//!
//! The loader `js/ct.js` (a few hundred bytes) queues `clicktrail(…)` calls, loads
//! the wasm-bindgen output without blocking the page and calls [`start`] with the
//! site id, the collector endpoint and the queued calls. From then on the tracker
//! records clicks, screens, form-field activity, page views (SPA routes too),
//! links and ads in view, dead clicks and custom events, and sends them as batches to `ENDPOINT/collect` in the wire
//! format of the `protocol` crate.
//!
//! # Layout
//!
//! - `lib.rs`: [`start`]: privacy checks, then wiring every listener to one shared
//!   [`tracker::Tracker`].
//! - `tracker.rs`: the state, and what each DOM event or API call records.
//! - `view.rs`: links and ads in the viewport (`IntersectionObserver`).
//! - `dead.rs`: dead clicks (`MutationObserver`, `fetch` and XHR calls).
//! - `dom.rs`: reading the page (selectors, texts and links in view through
//!   `js/dom.js`, field names, the visible screen),
//!   the observers' binding.
//! - `send.rs`: the queue, batches, `fetch`/`sendBeacon`, retries.
//! - `json.rs`: the hand-written JSON writer and the cutting to protocol limits.
//!
//! # Frugal by construction
//!
//! Every byte is downloaded by every shop visitor. On wasm32 the crate is `no_std`
//! with a panic handler that traps, so std's panic and formatting machinery never
//! links in; there is no `format!`, `unwrap` or serde. Nothing may throw into the
//! page: every DOM call that can throw is checked, errors are swallowed, and a
//! re-entrant call finds the state borrowed and records nothing.
//!
//! # Privacy
//!
//! Do-Not-Track and Global Privacy Control stop the tracker before it records
//! anything. Field values are never read (only whether a field is empty), text of
//! editable elements is never sent, `data-ct-ignore` subtrees are invisible, and
//! `clicktrail('consent', false)` stops recording and drops what is unsent.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod dead;
mod dom;
mod json;
mod send;
mod tracker;
mod view;

use alloc::rc::Rc;
use core::cell::RefCell;

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue, closure::Closure, prelude::wasm_bindgen};
use web_sys::{EventTarget, Window};

use tracker::{Shared, Tracker};

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic (none is expected) traps: the JS call that entered wasm throws, nothing
/// is formatted.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// Start tracking this page. Called once by the loader with the script tag's
/// `data-site`, the collector endpoint, the calls queued before the wasm loaded
/// (an array of `arguments` objects) and the page's `error` and
/// `unhandledrejection` events it saw meanwhile (an array: a theme script that
/// fails while the page loads). Does nothing under Do-Not-Track or Global
/// Privacy Control, or for an invalid site id.
#[wasm_bindgen]
pub fn start(site: &str, endpoint: &str, queue: &JsValue, early: &JsValue) {
    let _ = boot(site, endpoint, queue, early);
}

#[wasm_bindgen]
extern "C" {
    /// `window` (`web_sys::window()` probes four globals to find it).
    #[wasm_bindgen(thread_local_v2, js_name = window)]
    static WINDOW: Option<Window>;
}

fn boot(site: &str, endpoint: &str, queue: &JsValue, early: &JsValue) -> Option<()> {
    let win = WINDOW.with(Clone::clone)?;
    let doc = win.document()?;
    let nav = win.navigator();
    if dom::prop(&nav, "doNotTrack").as_string().as_deref() == Some("1")
        || dom::prop(&nav, "globalPrivacyControl") == JsValue::TRUE
        || !tracker::valid_site(site)
    {
        return None;
    }
    let t: Shared = Rc::new(RefCell::new(Tracker::new(
        win.clone(),
        doc.clone(),
        site,
        endpoint.trim_end_matches('/'),
    )));
    {
        let mut s = t.try_borrow_mut().ok()?;
        s.flush_fn = callback(&t, Tracker::on_timer);
        s.screen_fn = callback(&t, Tracker::on_screen_timer);
        s.ok_fn = callback(&t, Tracker::on_response);
        s.err_fn = callback(&t, Tracker::on_fetch_error);
        s.noop_fn = Closure::<dyn FnMut()>::new(|| {})
            .into_js_value()
            .unchecked_into();
        s.tick_fn = callback(&t, Tracker::on_tick);
        let half = dom::json(r#"{"threshold":0.5}"#);
        s.seen.io =
            dom::Observer::intersection_observer(&callback(&t, Tracker::on_view), &half).ok();
        s.dead.mo = dom::Observer::mutation_observer(&callback(&t, Tracker::on_dom_answer)).ok();
    }

    let d: &EventTarget = &doc;
    let w: &EventTarget = &win;
    listen(d, "pointerdown", &t, Tracker::on_press, true);
    listen(d, "click", &t, Tracker::on_click, true);
    listen(d, "pointerup", &t, Tracker::on_release, true);
    listen(d, "auxclick", &t, Tracker::on_auxclick, true);
    listen(d, "contextmenu", &t, Tracker::on_menu, true);
    listen(w, "click", &t, Tracker::on_click_done, false);
    // Form events, on the document and on each open shadow root the visitor acts
    // in (they do not leave one; focus moving inside one does not either).
    let forms = js_sys::Array::new();
    for (ty, f) in [
        ("focusin", Tracker::on_focus as fn(&mut Tracker, &JsValue)),
        ("focusout", Tracker::on_blur),
        ("change", Tracker::on_change),
        ("submit", Tracker::on_submit),
        ("invalid", Tracker::on_invalid),
    ] {
        let f = callback(&t, f);
        let _ = d.add_event_listener_with_callback_and_bool(ty, &f, true);
        forms.push(&js_sys::Array::of2(&JsValue::from_str(ty), &f));
    }
    dom::shadow_listeners(&forms);
    // Bubble phase on window: script errors only (failed images and scripts
    // don't bubble up here).
    listen(w, "error", &t, Tracker::on_error, false);
    listen(w, "unhandledrejection", &t, Tracker::on_error, false);
    listen(d, "visibilitychange", &t, Tracker::on_hide, false);
    listen(w, "pagehide", &t, Tracker::on_hide, false);
    listen(w, "pageshow", &t, Tracker::on_pageshow, false);
    listen(w, "popstate", &t, Tracker::on_popstate, false);
    // Capture: before the page's own listeners show the new route's section.
    listen(w, "hashchange", &t, Tracker::on_hashchange, true);
    // Any navigation, also to another document (where the Navigation API exists).
    if let Some(n) = dom::prop(&win, "navigation").dyn_ref::<EventTarget>() {
        listen(n, "navigate", &t, Tracker::on_navigate, false);
    }

    // Screen changes (elements added or removed, or shown and hidden), links and
    // ads added, and what the page changes by itself (see dead.rs).
    let _ = dom::observe_page(&callback(&t, Tracker::on_mutation));

    let history = dom::prop(&win, "history");
    wrap(&t, &history, "pushState", Tracker::on_push);
    wrap(&t, &history, "replaceState", Tracker::on_replace);
    // Requests started by the page answer a click (see dead.rs), a tag's excepted.
    wrap_passing(&t, &win, "fetch", Tracker::on_fetch, Pass::Args);
    let xhr = dom::prop(&dom::prop(&win, "XMLHttpRequest"), "prototype");
    dom::watch_xhr();
    wrap_passing(&t, &xhr, "send", Tracker::on_xhr, Pass::This);
    // A form sent by script fires no `submit` event (see `on_form_sent`).
    let form = dom::prop(&dom::prop(&win, "HTMLFormElement"), "prototype");
    wrap_passing(&t, &form, "submit", Tracker::on_form_sent, Pass::This);
    // So do what changes nothing in the page: a video or sound it plays, a window
    // or tab it opens, its print dialog, the share sheet, a copy to the clipboard
    // ("Share", "Print", "Copy code"), and a scroll it makes ("Back to top").
    let media = dom::prop(&dom::prop(&win, "HTMLMediaElement"), "prototype");
    wrap(&t, &media, "play", Tracker::on_answer);
    wrap(&t, &win, "open", Tracker::on_answer);
    wrap(&t, &win, "print", Tracker::on_answer);
    let nav = dom::prop(&win, "navigator");
    wrap(&t, &nav, "share", Tracker::on_answer);
    wrap(
        &t,
        &dom::prop(&nav, "clipboard"),
        "writeText",
        Tracker::on_answer,
    );
    dom::answer_scrolls(&callback(&t, Tracker::on_answer));
    // So does a value the page sets on a field (a quantity stepper): the setters
    // are wrapped, the value is never read.
    for (class, props) in [
        ("HTMLInputElement", &["value", "checked"][..]),
        ("HTMLTextAreaElement", &["value"]),
        ("HTMLSelectElement", &["value", "selectedIndex"]),
    ] {
        let proto = dom::prop(&dom::prop(&win, class), "prototype");
        for p in props {
            wrap_setter(&t, &proto, p, Tracker::on_answer);
        }
    }

    let api = {
        let t = Rc::clone(&t);
        Closure::<dyn FnMut(JsValue, JsValue, JsValue)>::new(move |a, b, c| {
            if let Ok(mut s) = t.try_borrow_mut() {
                s.api(&a, &b, &c);
            }
        })
    };
    let _ = Reflect::set(&win, &JsValue::from_str("clicktrail"), &api.into_js_value());

    let mut s = t.try_borrow_mut().ok()?;
    let (nav, status) = first_nav(&win, &doc);
    s.pageview(nav, &dom::doc_string("referrer"), status);
    // Calls queued before the wasm loaded, in order, after the first page view.
    let len = dom::prop(queue, "length").as_f64().unwrap_or(0.0) as u32;
    for i in 0..len {
        let args = Reflect::get_u32(queue, i).unwrap_or(JsValue::UNDEFINED);
        let arg = |k| Reflect::get_u32(&args, k).unwrap_or(JsValue::UNDEFINED);
        s.api(&arg(0), &arg(1), &arg(2));
    }
    // The page's errors before the tracker ran, on this page view (after the
    // queued calls: a consent withheld there holds them too).
    dom::each(early, |e| s.on_error(&e));
    Some(())
}

/// How the document itself was loaded: `navigate`, `reload`, `back_forward`, or
/// `forward` where the browser tells the direction (a prerendered page counts as
/// `navigate`), and its HTTP status: the page's
/// `<meta name="ct-status">` (for error pages served as 200), else
/// `responseStatus` where the browser exposes it, else 0.
fn first_nav(win: &Window, doc: &web_sys::Document) -> (&'static str, u32) {
    let entry = win.performance().map_or(JsValue::UNDEFINED, |p| {
        p.get_entries_by_type("navigation").get(0)
    });
    let nav = match dom::prop(&entry, "type").as_string().as_deref() {
        Some("reload") => "reload",
        Some("back_forward") if dom::arrived_forward(win) => "forward",
        Some("back_forward") => "back_forward",
        _ => "navigate",
    };
    let status = match dom::meta_status(doc) {
        0 => dom::prop(&entry, "responseStatus").as_f64().unwrap_or(0.0) as u32,
        meta => meta,
    };
    (
        nav,
        if (100..=599).contains(&status) {
            status
        } else {
            0
        },
    )
}

/// A JS function that runs `f` on the shared tracker (unless it is busy). Not
/// inlined: it is called for every listener.
#[inline(never)]
fn callback(t: &Shared, f: fn(&mut Tracker, &JsValue)) -> Function {
    let t = Rc::clone(t);
    Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
        if let Ok(mut s) = t.try_borrow_mut() {
            f(&mut s, &v);
        }
    })
    .into_js_value()
    .unchecked_into()
}

fn listen(
    target: &EventTarget,
    ty: &str,
    t: &Shared,
    f: fn(&mut Tracker, &JsValue),
    capture: bool,
) {
    let _ = target.add_event_listener_with_callback_and_bool(ty, &callback(t, f), capture);
}

/// Wrap the setter of the accessor property `name` of `proto` as [`wrap`] wraps a
/// method: the page's assignment runs unchanged, then `f`.
fn wrap_setter(t: &Shared, proto: &JsValue, name: &str, f: fn(&mut Tracker, &JsValue)) {
    let Ok(proto) = proto.clone().dyn_into::<js_sys::Object>() else {
        return;
    };
    let desc = js_sys::Object::get_own_property_descriptor(&proto, &JsValue::from_str(name));
    if dom::prop(&desc, "set").is_function() && dom::prop(&desc, "configurable").is_truthy() {
        wrap(t, &desc, "set", f);
        let _ = Reflect::define_property(&proto, &JsValue::from_str(name), desc.unchecked_ref());
    }
}

/// What a wrapper hands its handler of the call: nothing (never what the page
/// passed: a value set on a field, a text copied), the arguments (`fetch`: its
/// URL and options), or `this` (the `XMLHttpRequest` sent).
#[derive(Clone, Copy)]
enum Pass {
    Nothing,
    Args,
    This,
}

/// Replace `obj[method]` by a proxy that calls the original (its result and any
/// exception reach the caller unchanged, `this` too), then runs `f`. A call the
/// tracker itself makes (its own `fetch`) finds the tracker busy and runs nothing.
fn wrap(t: &Shared, obj: &JsValue, method: &str, f: fn(&mut Tracker, &JsValue)) {
    wrap_passing(t, obj, method, f, Pass::Nothing);
}

/// [`wrap`], handing `f` what `pass` says of the call.
fn wrap_passing(
    t: &Shared,
    obj: &JsValue,
    method: &str,
    f: fn(&mut Tracker, &JsValue),
    pass: Pass,
) {
    let Some(orig) = dom::prop(obj, method).dyn_into::<Function>().ok() else {
        return;
    };
    let t = Rc::clone(t);
    let apply = Closure::<dyn FnMut(JsValue, JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
        move |target: JsValue, this: JsValue, args: JsValue| {
            let r = Reflect::apply::<fn() -> JsValue>(
                target.unchecked_ref(),
                &this,
                args.unchecked_ref(),
            )?;
            if let Ok(mut s) = t.try_borrow_mut() {
                let what = match pass {
                    Pass::Nothing => JsValue::UNDEFINED,
                    Pass::Args => args,
                    Pass::This => this,
                };
                f(&mut s, &what);
            }
            Ok(r)
        },
    );
    let handler = js_sys::Object::new();
    let _ = Reflect::set(
        &handler,
        &JsValue::from_str("apply"),
        &apply.into_js_value(),
    );
    let _ = Reflect::set(
        obj,
        &JsValue::from_str(method),
        &js_sys::Proxy::new(&orig, &handler),
    );
}
