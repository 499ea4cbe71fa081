//! Reading the page: the selector and text of a clicked element, the names of form
//! fields and forms, and which `data-ct-screen` is visible; plus the one binding
//! that drives the observers the tracker uses.
//!
//! Everything here reads the DOM and never changes it. Nothing here reads what a
//! visitor typed: for a field only its emptiness is looked at, through the value's
//! length, and the value never crosses into wasm memory.

use alloc::string::String;

use js_sys::{Function, JsString, Reflect};
use protocol::{MAX_NAME, MAX_SELECTOR, MAX_TEXT_CHARS};
use wasm_bindgen::{JsCast, JsValue, prelude::wasm_bindgen};
use web_sys::{Document, Element, Window};

use crate::json::{cut, squash};

/// Elements a click is attributed to when the click lands inside one (a click
/// inside a link is the link's, whatever else it is in: see `on_click`).
pub(crate) const INTERESTING: &str = "a,button,input,select,textarea,label,summary,\
    [role=button],[role=link],[role=tab],[role=menuitem],[role=option],[role=checkbox],\
    [role=radio],[role=switch],[onclick],[data-ct-ad]";

/// A named ad outside `data-ct-ignore` subtrees.
const AD: &str = "[data-ct-ad]:not([data-ct-ad=''],[data-ct-ignore],[data-ct-ignore] *)";

/// What is read from the page in JS (`js/dom.js`, bundled into the glue): a
/// selector or a batch of links in view takes one call instead of a dozen per
/// element, each a crossing of the wasm boundary and each string read a copy.
#[wasm_bindgen(module = "/js/dom.js")]
extern "C" {
    /// A short, stable CSS selector (see `js/dom.js`).
    #[wasm_bindgen(js_name = selector)]
    fn selector_js(el: &Element) -> String;
    /// The visible text or accessible name, as a raw slice; none for fields and
    /// editable elements.
    #[wasm_bindgen(js_name = label)]
    fn label_js(el: &Element) -> Option<String>;
    /// The element and the elements it is in, up to `<body>`: `tag#id.class…`
    /// each, innermost first (see `js/dom.js`).
    pub(crate) fn ancestry(el: &Element) -> String;
    /// Whether an id or attribute value looks generated (differs between loads).
    pub(crate) fn generated(s: &str) -> bool;
    /// `document[name]` (`title`, `referrer`) as the browser has it, also when
    /// the page has an `<img>`, `<form>`, `<embed>` or `<object>` of that name
    /// (`<form name="title">` makes `document.title` that form).
    #[wasm_bindgen(js_name = docString)]
    pub(crate) fn doc_string(name: &str) -> String;
    /// Observe the whole page: its own beats and the elements added are noted in
    /// JS; `changed` is called when the screen or what to watch may have changed.
    #[wasm_bindgen(catch, js_name = observePage)]
    pub(crate) fn observe_page(changed: &Function) -> Result<(), JsValue>;
    /// The visitor acted (pressed, clicked, focused, filled in a field).
    pub(crate) fn act();
    /// Call `answer` when the page scrolls itself, or a box the pressed element
    /// is in, right after a press (see `js/dom.js`).
    #[wasm_bindgen(js_name = answerScrolls)]
    pub(crate) fn answer_scrolls(answer: &Function);
    /// Whether the page has any named `data-ct-screen` element.
    #[wasm_bindgen(js_name = hasScreens)]
    pub(crate) fn has_screens(any: bool);
    /// The element an event happened on, also inside an open shadow root (whose
    /// listeners and observers the tracker then adds: see `js/dom.js`).
    pub(crate) fn origin(e: &JsValue) -> JsValue;
    /// [`origin`], for the events the tracker also listens to in shadow roots:
    /// null except at the listener on the element's own root.
    pub(crate) fn inner(e: &JsValue) -> JsValue;
    /// The listeners (`[type, function]` pairs) to add to each shadow root found.
    #[wasm_bindgen(js_name = shadowListeners)]
    pub(crate) fn shadow_listeners(list: &JsValue);
    /// Observe with `mo` each shadow root found too.
    #[wasm_bindgen(js_name = observeShadows)]
    pub(crate) fn observe_shadows(mo: &Observer, options: &JsValue);
    /// The closest element matching `sel`, through shadow root hosts too.
    #[wasm_bindgen(catch, js_name = closest)]
    fn closest_js(el: &Element, sel: &str) -> Result<Option<Element>, JsValue>;
    /// The focused element, inside open shadow roots too.
    pub(crate) fn focused() -> Option<Element>;
    /// Whether `node` is `el` or in it, inside a shadow root in it too.
    pub(crate) fn within(el: &Element, node: &Element) -> bool;
    /// The host of the shadow root `el` is in; none in the document.
    #[wasm_bindgen(js_name = hostOf)]
    fn host_of(el: &Element) -> Option<Element>;
    /// Whether `el` is shown and every sibling of its tag with an id is hidden:
    /// the one step of a set shown.
    #[wasm_bindgen(js_name = shownOfSet)]
    pub(crate) fn shown_of_set(el: &Element) -> bool;
    /// Whether `el` is in a shadow root (where an id is unique to its component).
    fn shadowed(el: &Element) -> bool;
    /// Whether a form check now may be the visitor's attempt to send it (a
    /// press, click or Enter less than 100 ms ago).
    pub(crate) fn attempting() -> bool;
    /// Whether the page's `fetch` with these arguments is a tag's: a
    /// `keepalive` beacon, or a request to an analytics or advertising service.
    #[wasm_bindgen(js_name = tagRequest)]
    pub(crate) fn tag_request(args: &JsValue) -> bool;
    /// Whether the focus moves now because the visitor pressed Tab.
    pub(crate) fn tabbing() -> bool;
    /// Note the XHRs the page opens to an analytics or advertising service.
    #[wasm_bindgen(js_name = watchXhr)]
    pub(crate) fn watch_xhr();
    /// Whether `xhr` was opened to an analytics or advertising service.
    #[wasm_bindgen(js_name = tagXhr)]
    pub(crate) fn tag_xhr(xhr: &JsValue) -> bool;
    /// Whether the click `e` on the link `a` opens a page of this origin in a
    /// new tab (or `e` is the context menu of such a link: "Open in new tab").
    #[wasm_bindgen(js_name = opensTab)]
    pub(crate) fn opens_tab(e: &JsValue, a: &JsValue) -> bool;
    /// Hand the session `sid` to the tab a link is opened in.
    #[wasm_bindgen(js_name = handOff)]
    pub(crate) fn hand_off(sid: &str);
    /// The session handed to this new tab by the tab it was opened from, at most
    /// a moment before `first` (this page's first event); else empty.
    pub(crate) fn handed(first: f64) -> String;
    /// Whether a `data-ct-screen` element shows: rendered, drawn visibly, and
    /// not cut away by the boxes it is in (a folded accordion step, a slider's
    /// step out of its window).
    #[wasm_bindgen(js_name = screenShown)]
    pub(crate) fn screen_shown(el: &Element) -> bool;
    /// Observe with `io` the links and ads of the whole page (`all`), or those
    /// among and inside the elements added since the last call (noted by `beat`).
    pub(crate) fn watch(io: &Observer, all: bool);
    /// Whether a change of `node` is the page's own steady beat, not an answer to
    /// pressing `near` `since` ms ago.
    pub(crate) fn steady(node: &JsValue, near: &JsValue, since: f64) -> bool;
    /// Whether `el` is drawn visibly (not `visibility: hidden`, not in anything
    /// of `opacity: 0`); never while the page is parsed (its style is not up to
    /// date then).
    pub(crate) fn shown(el: &Element) -> bool;
    /// The links in view kept aside as not shown that show now, not yet listed
    /// in view number `view`, as [`links_in_view`] lists them.
    pub(crate) fn unveiled(view: u32) -> String;
    /// The links of `entries` in view and not yet listed in view number `view`, as
    /// `selector\0href\0label\0` each; ad entries are pushed onto `ads`.
    #[wasm_bindgen(js_name = links)]
    pub(crate) fn links_in_view(
        entries: &JsValue,
        view: u32,
        ratio: f64,
        ads: &js_sys::Array,
    ) -> String;
}

#[wasm_bindgen]
extern "C" {
    /// An `IntersectionObserver` or `MutationObserver`. Their methods share names
    /// and the calls go by name, so one binding (and one piece of JS glue per
    /// method) serves both.
    pub(crate) type Observer;
    #[wasm_bindgen(method, catch)]
    pub(crate) fn observe(
        this: &Observer,
        target: &JsValue,
        options: &JsValue,
    ) -> Result<(), JsValue>;
    #[wasm_bindgen(method)]
    pub(crate) fn disconnect(this: &Observer);
    #[wasm_bindgen(catch, constructor, js_class = "IntersectionObserver")]
    pub(crate) fn intersection_observer(
        cb: &Function,
        options: &JsValue,
    ) -> Result<Observer, JsValue>;
    #[wasm_bindgen(catch, constructor, js_class = "MutationObserver")]
    pub(crate) fn mutation_observer(cb: &Function) -> Result<Observer, JsValue>;

    /// An `IntersectionObserverEntry`.
    pub(crate) type Entry;
    #[wasm_bindgen(method, getter)]
    pub(crate) fn target(this: &Entry) -> Element;
    #[wasm_bindgen(method, getter = intersectionRatio)]
    pub(crate) fn intersection_ratio(this: &Entry) -> f64;
}

/// The value of a JSON literal (smaller than setting properties one by one).
pub(crate) fn json(text: &str) -> JsValue {
    js_sys::JSON::parse(text).unwrap_or(JsValue::UNDEFINED)
}

/// Each item of an array-like `list` (a JS array, `NodeList`, …).
pub(crate) fn each(list: &JsValue, mut f: impl FnMut(JsValue)) {
    let n = prop(list, "length").as_f64().unwrap_or(0.0) as u32;
    for i in 0..n {
        f(Reflect::get_u32(list, i).unwrap_or(JsValue::UNDEFINED));
    }
}

/// `v[name]`, or `undefined` when reading it throws.
pub(crate) fn prop(v: &JsValue, name: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Whether the history entry `a` comes after `b` (both `NavigationHistoryEntry`
/// or a navigation's `destination`; false when either index is unknown).
#[inline(never)]
pub(crate) fn later(a: &JsValue, b: &JsValue) -> bool {
    let index = |v: &JsValue| prop(v, "index").as_f64().filter(|i| *i >= 0.0);
    matches!((index(a), index(b)), (Some(a), Some(b)) if a > b)
}

/// Whether this document was last shown by going forward in history (the
/// Navigation API's `activation`, where the browser has it).
#[inline(never)]
pub(crate) fn arrived_forward(win: &Window) -> bool {
    let activation = prop(&prop(win, "navigation"), "activation");
    later(&prop(&activation, "entry"), &prop(&activation, "from"))
}

/// The closest element matching `sel`, from `el` itself upwards (past the host of
/// a shadow root `el` is in).
pub(crate) fn closest(el: &Element, sel: &str) -> Option<Element> {
    closest_js(el, sel).ok().flatten()
}

/// Whether an element is a named ad outside `data-ct-ignore` subtrees.
pub(crate) fn is_ad(el: &Element) -> bool {
    el.matches(AD).unwrap_or(false)
}

/// An event's element (see [`origin`]) as an element, unless it sits in a
/// `data-ct-ignore` subtree.
pub(crate) fn element(target: JsValue) -> Option<Element> {
    let el: Element = target.dyn_into().ok()?;
    // An error from `closest` cannot happen for this selector; treat it as ignored.
    matches!(closest_js(&el, "[data-ct-ignore]"), Ok(None)).then_some(el)
}

/// The element matching `sel` that the event `e` happened in (see [`origin`] and
/// [`element`]: none in a `data-ct-ignore` subtree).
pub(crate) fn origin_in(e: &JsValue, sel: &str) -> Option<Element> {
    element(origin(e)).and_then(|t| closest(&t, sel))
}

/// A short, stable CSS selector for `el` (`selector` in `js/dom.js`: its own
/// part prefixed by up to three ancestors, generated names and state classes
/// skipped), cut to the protocol's limit.
pub(crate) fn selector(el: &Element) -> String {
    let mut s = selector_js(el);
    s.truncate(cut(&s, MAX_SELECTOR).len());
    s
}

/// The label of an element: its visible text, else its `aria-label`, `title` or
/// image `alt`, whitespace collapsed, at most [`MAX_TEXT_CHARS`] chars. None for
/// fields and anything editable: what a visitor typed is never sent.
pub(crate) fn text(el: &Element) -> Option<String> {
    label(label_js(el)?.as_str())
}

/// A raw label, squashed; None when nothing is left.
pub(crate) fn label(raw: &str) -> Option<String> {
    Some(squash(raw, MAX_TEXT_CHARS)).filter(|s| !s.is_empty())
}

/// `[name="value"]`, the value as a CSS string.
pub(crate) fn attr_part(out: &mut String, name: &str, v: &str) {
    out.push('[');
    out.push_str(name);
    out.push_str("=\"");
    for c in v.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        if c < ' ' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.push_str("\"]");
}

/// Widgets that are fields by their role: custom dropdowns, steppers, sliders
/// and editable boxes built from `div`s (by role, or `contenteditable`: a gift
/// note). Their contents are never read.
pub(crate) const CUSTOM_FIELDS: &str = "[role=combobox],[role=listbox],[role=spinbutton],\
    [role=slider],[role=textbox],[contenteditable]:not([contenteditable=false])";

/// The recordable form field an event target is: input (but not hidden or
/// button-like), select or textarea, or a [`CUSTOM_FIELDS`] widget; outside
/// `data-ct-ignore`.
///
/// In a web component, the element focused inside may be a part of the field
/// its host is (`<x-combo role="combobox">` focusing a button of its own): then
/// the host is the field.
pub(crate) fn field(target: JsValue) -> Option<Element> {
    let mut el = element(target)?;
    loop {
        let ok = match el.local_name().as_str() {
            "select" | "textarea" => true,
            "input" => !matches!(
                field_type(&el).as_str(),
                "hidden" | "submit" | "button" | "image" | "reset"
            ),
            _ => el.matches(CUSTOM_FIELDS).unwrap_or(false),
        };
        if ok {
            return Some(el);
        }
        el = host_of(&el)?;
    }
}

/// Whether a field is a native one (its value and validity are the browser's).
pub(crate) fn native(el: &Element) -> bool {
    matches!(el.local_name().as_str(), "input" | "select" | "textarea")
}

/// A field's type: the input's `type`, `select-one`, `textarea`, …, or a custom
/// field's role (`textbox` for an editable element without one).
pub(crate) fn field_type(el: &Element) -> String {
    if native(el) {
        prop(el, "type").as_string().unwrap_or_default()
    } else {
        el.get_attribute("role")
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| String::from("textbox"))
    }
}

/// How a field or form is named: its `name` attribute, else its id unless
/// generated or in a shadow root (every text field component may call its input
/// `#input`), else its `aria-label`, else a selector.
pub(crate) fn name_of(el: &Element) -> String {
    if let Some(v) = el.get_attribute("name").filter(|v| !v.is_empty()) {
        return v;
    }
    // The attribute, not `el.id`: a form's `id` property is its field named `id`
    // when it has one (every Shopify product form does).
    let id = el.get_attribute("id").unwrap_or_default();
    if !id.is_empty() && !generated(&id) && !shadowed(el) {
        return id;
    }
    match el.get_attribute("aria-label").map(|l| squash(&l, MAX_NAME)) {
        Some(l) if !l.is_empty() => l,
        _ => selector(el),
    }
}

/// The form a field belongs to (also through the `form` attribute; a custom
/// field, through its place in a `<form>`).
pub(crate) fn form_of(field: &Element) -> Option<Element> {
    prop(field, "form")
        .dyn_into()
        .ok()
        .or_else(|| closest(field, "form"))
}

/// The name of the form flow a field or form is part of: the closest
/// `data-ct-form` (one name for a checkout split over several forms, or for
/// fields outside any form), else its form's name; None for a field outside any.
pub(crate) fn form_name(el: &Element) -> Option<String> {
    if let Some(flow) = closest(el, "[data-ct-form]")
        .and_then(|f| f.get_attribute("data-ct-form"))
        .map(|v| squash(&v, MAX_NAME))
        .filter(|v| !v.is_empty())
    {
        return Some(flow);
    }
    let form = if el.local_name() == "form" {
        Some(el.clone())
    } else {
        form_of(el)
    };
    form.map(|f| name_of(&f))
}

/// The custom field a chosen `[role=option]` sets: the combobox that controls or
/// owns its listbox, else the listbox.
pub(crate) fn option_field(doc: &Document, target: &Element) -> Option<Element> {
    closest(target, "[role=option]")?;
    let list = closest(target, "[role=listbox]")?;
    let id = list.get_attribute("id").unwrap_or_default();
    if !id.is_empty() {
        let mut sel = String::from("[role=combobox]");
        attr_part(&mut sel, "aria-controls", &id);
        sel.push_str(",[role=combobox]");
        attr_part(&mut sel, "aria-owns", &id);
        if let Ok(Some(c)) = doc.query_selector(&sel) {
            return Some(c);
        }
    }
    Some(list)
}

/// Whether a field is empty: unchecked for checkboxes and radios, else an empty
/// value. Only the value's length is read, never its contents.
pub(crate) fn is_empty(el: &Element, ty: &str) -> bool {
    if matches!(ty, "checkbox" | "radio") {
        return !prop(el, "checked").is_truthy();
    }
    prop(el, "value")
        .dyn_ref::<JsString>()
        .is_none_or(|v| v.length() == 0)
}

/// The HTTP status a page (or an SPA route) declares with `<meta name="ct-status"
/// content="404">` (for error pages served as 200, and routes that show one), 0
/// when none.
pub(crate) fn meta_status(doc: &Document) -> u32 {
    doc.query_selector("meta[name=ct-status]")
        .ok()
        .flatten()
        .and_then(|m| m.get_attribute("content"))
        .and_then(|c| c.trim().parse::<u32>().ok())
        .filter(|s| (100..=599).contains(s))
        .unwrap_or(0)
}

/// The name of the visible `data-ct-screen` element: the last one in document
/// order (the innermost) that shows (see `screenShown` in `js/dom.js`), or
/// `<body>`; and whether the page has
/// any named `data-ct-screen` element at all.
pub(crate) fn visible_screen(doc: &Document) -> (Option<String>, bool) {
    let Ok(list) = doc.query_selector_all("[data-ct-screen]:not([data-ct-screen=''])") else {
        return (None, false);
    };
    let any = list.length() > 0;
    let mut i = list.length();
    while i > 0 {
        i -= 1;
        let Some(el) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
            continue;
        };
        if screen_shown(&el) {
            let name = el.get_attribute("data-ct-screen");
            return (name.map(|s| String::from(cut(&s, MAX_NAME))), any);
        }
    }
    (None, any)
}
