//! Reading the page: the selector and text of a clicked element, the names of form
//! fields and forms, and which `data-ct-screen` is visible; plus the one binding
//! that drives the observers the tracker uses.
//!
//! Everything here reads the DOM and never changes it. Nothing here reads what a
//! visitor typed: for a field only its emptiness is looked at, through the value's
//! length, and the value never crosses into wasm memory.

use alloc::{string::String, vec::Vec};

use js_sys::{Function, JsString, Reflect};
use protocol::{MAX_NAME, MAX_SELECTOR, MAX_TEXT_CHARS};
use wasm_bindgen::{JsCast, JsValue, prelude::wasm_bindgen};
use web_sys::{Document, Element, EventTarget};

use crate::json::{cut, has, int, squash};

/// Elements a click is attributed to when the click lands inside one (a click
/// inside a link is the link's, whatever else it is in: see `on_click`).
pub(crate) const INTERESTING: &str = "a,button,input,select,textarea,label,summary,\
    [role=button],[role=link],[role=tab],[role=menuitem],[role=option],[role=checkbox],\
    [role=radio],[role=switch],[onclick],[data-ct-ad]";

/// Selectors longer than this lose their outer ancestors.
const SHORT_SELECTOR: usize = 80;

#[wasm_bindgen]
extern "C" {
    /// Any DOM node, for the binding below.
    type AnyNode;
    /// `node.textContent`, kept as a JS string so that only a slice of it is copied.
    #[wasm_bindgen(method, getter = textContent)]
    fn text_content(this: &AnyNode) -> Option<JsString>;
    /// `el.isContentEditable` (undefined outside HTML).
    #[wasm_bindgen(method, getter = isContentEditable)]
    fn is_content_editable(this: &AnyNode) -> JsValue;

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

    /// `el.matches(s)` and `el.querySelector(s)` with `s`
    /// a JS string made once ([`Words`]): a `&str` argument is decoded from wasm
    /// memory on every call, and these run for each link in view. The selectors
    /// are constants that parse, so the calls do not throw.
    #[wasm_bindgen(method, js_name = matches)]
    fn matches_js(this: &AnyNode, s: &JsString) -> bool;
    #[wasm_bindgen(method, js_name = querySelector)]
    fn query_js(this: &AnyNode, s: &JsString) -> Option<Element>;

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

/// The closest element matching `sel`, from `el` itself upwards.
pub(crate) fn closest(el: &Element, sel: &str) -> Option<Element> {
    el.closest(sel).ok().flatten()
}

/// What the tracker asks the browser about each link in view, as JS strings
/// made once per batch.
pub(crate) struct Words {
    link: JsString,
    ad: JsString,
    any_attr: JsString,
    editable: JsString,
}

impl Words {
    fn new() -> Self {
        Self {
            // HTML links only, those in an SVG `foreignObject` too (an SVG `<a>`
            // has no string `href`; CSS has no namespaces here, so an SVG `<a>` is
            // one in an `<svg>` outside any `foreignObject`, or in an `<svg>`
            // inside one).
            link: "a[href]:not(svg a:not(foreignObject *),foreignObject svg a,\
                   [data-ct-ignore],[data-ct-ignore] *)"
                .into(),
            ad: "[data-ct-ad]:not([data-ct-ad=''],[data-ct-ignore],[data-ct-ignore] *)".into(),
            any_attr: ANY_ATTR.into(),
            editable: "[contenteditable]".into(),
        }
    }
}

/// The attributes a selector part may use: an element with none of them (most)
/// takes one question to the browser.
const ANY_ATTR: &str =
    "[data-testid],[data-test],[data-cy],[data-qa],[name],[aria-label],[role],[type]";

/// Whether an element is an HTML link outside `data-ct-ignore` subtrees (one
/// question to the browser).
pub(crate) fn is_link(el: &Element, known: &mut Siblings) -> bool {
    el.unchecked_ref::<AnyNode>()
        .matches_js(&known.words().link)
}

/// Whether an element is a named ad outside `data-ct-ignore` subtrees.
pub(crate) fn is_ad(el: &Element, known: &mut Siblings) -> bool {
    el.unchecked_ref::<AnyNode>().matches_js(&known.words().ad)
}

/// An event target as an element, unless it sits in a `data-ct-ignore` subtree.
pub(crate) fn element(target: Option<EventTarget>) -> Option<Element> {
    let el: Element = target?.dyn_into().ok()?;
    // An error from `closest` cannot happen for this selector; treat it as ignored.
    matches!(el.closest("[data-ct-ignore]"), Ok(None)).then_some(el)
}

/// A short, stable CSS selector for `el`: its own part prefixed by up to three
/// ancestors, stopping at the first one that is unique by itself (a stable id or a
/// test id). Outer ancestors are dropped while it is over [`SHORT_SELECTOR`] bytes.
///
/// The same element gets the same selector on every load and whatever the page
/// does to its state: generated ids and classes ([`generated`]) and state classes
/// are skipped, at most one class is used (the shortest, so that the order of the
/// `class` attribute does not matter), and `:nth-of-type` only tells apart siblings
/// that would otherwise get the same part. No text is put in a selector.
pub(crate) fn selector(el: &Element) -> String {
    selector_in(el, &mut Siblings::default())
}

/// What [`selector`] learnt of parents' children, shared by the selectors of one
/// batch (the links that came into view together), so that a menu of 200 links
/// asks the browser about its 200 children once, not 200 times.
#[derive(Default)]
pub(crate) struct Siblings {
    /// Each element asked about (a parent, or an ancestor of a link) → its index in
    /// `nodes`: one question to the browser per lookup, however many are known
    /// (comparing elements one by one from Rust is a call each).
    index: Option<js_sys::Map>,
    nodes: Vec<Node>,
    /// The batch's constant questions, made on first use.
    words: Option<Words>,
}

/// What one batch learnt about one element.
#[derive(Default)]
struct Node {
    /// (part, whether several of its children have that part).
    twins: Vec<(String, bool)>,
    /// (tag, its children of that tag, in order).
    of_type: Vec<(String, js_sys::Array)>,
    /// The parts of it and its ancestors (see [`ancestor_parts`]).
    chain: Option<Vec<String>>,
}

impl Siblings {
    fn words(&mut self) -> &Words {
        self.words.get_or_insert_with(Words::new)
    }

    /// What is known of `el`, made empty when it is new.
    fn node(&mut self, el: &Element) -> &mut Node {
        let index = self.index.get_or_insert_with(js_sys::Map::new);
        let i = if let Some(i) = index.get(el).as_f64() {
            i as usize
        } else {
            index.set(el, &JsValue::from(self.nodes.len() as u32));
            self.nodes.push(Node::default());
            self.nodes.len() - 1
        };
        &mut self.nodes[i]
    }
}

/// The parts of `el` and its ancestors that a selector of one of its children
/// takes: up to three, stopping at an anchored part or at `<body>`.
fn ancestor_parts(el: &Element, known: &mut Siblings) -> Vec<String> {
    if let Some(chain) = &known.node(el).chain {
        return chain.clone();
    }
    let mut parts = Vec::new();
    let mut cur = Some(el.clone());
    while let Some(e) = cur {
        if matches!(e.local_name().as_str(), "body" | "html") {
            break;
        }
        let mut p = String::new();
        let (anchored, parent) = part(&e, &mut p, known);
        parts.push(p);
        if anchored || parts.len() == 3 {
            break;
        }
        cur = parent;
    }
    known.node(el).chain = Some(parts.clone());
    parts
}

/// [`selector`], with what `known` holds about the siblings on the way.
pub(crate) fn selector_in(el: &Element, known: &mut Siblings) -> String {
    let mut first = String::new();
    let (anchored, parent) = part(el, &mut first, known);
    let mut parts = Vec::from([first]);
    if !anchored && let Some(p) = parent {
        parts.extend(ancestor_parts(&p, known));
    }
    // Drop outer ancestors until it is short; `parts` runs from `el` outwards.
    let mut keep = parts.len();
    while keep > 1
        && parts.iter().take(keep).map(|p| p.len() + 3).sum::<usize>() - 3 > SHORT_SELECTOR
    {
        keep -= 1;
    }
    let mut out = String::new();
    for p in parts.iter().take(keep).rev() {
        if !out.is_empty() {
            out.push_str(" > ");
        }
        out.push_str(p);
    }
    let len = cut(&out, MAX_SELECTOR).len();
    out.truncate(len);
    out
}

/// One compound selector, the first of these that applies: `tag#id` (unique:
/// returns true), `tag[data-testid="…"]` (and `data-test`, `data-cy`, `data-qa`:
/// also true), else `tag` with `[name]`, else `[aria-label]`, else one class;
/// plus `[role]` and an input's or button's `[type]`; `:nth-of-type(n)` when a
/// sibling gets the same part. Also gives the parent (read on the way).
fn part(el: &Element, out: &mut String, known: &mut Siblings) -> (bool, Option<Element>) {
    let tag = el.local_name();
    out.push_str(&tag);
    let id = el.id();
    if !generated(&id) {
        out.push('#');
        css_ident(out, &id);
        return (true, el.parent_element());
    }
    // One question to the browser first: most elements have none of these.
    let any = el
        .unchecked_ref::<AnyNode>()
        .matches_js(&known.words().any_attr);
    let attr = |name: &str, max: usize| {
        any.then(|| el.get_attribute(name))
            .flatten()
            .filter(|v| v.len() <= max && !generated(v))
    };
    let mut anchored = false;
    if let Some((name, v)) = ["data-testid", "data-test", "data-cy", "data-qa"]
        .into_iter()
        .find_map(|a| Some((a, attr(a, 48)?)))
    {
        attr_part(out, name, &v);
        anchored = true;
    } else if let Some(v) = attr("name", 48) {
        attr_part(out, "name", &v);
    } else if let Some(v) = attr("aria-label", 32) {
        attr_part(out, "aria-label", &v);
    } else if let Some(c) = class(el) {
        out.push('.');
        css_ident(out, &c);
    }
    if let Some(v) = attr("role", 24) {
        attr_part(out, "role", &v);
    }
    if matches!(tag.as_str(), "input" | "button")
        && let Some(v) = attr("type", 16)
    {
        attr_part(out, "type", &v);
    }
    // Siblings this part would match too: then its position among its type.
    let parent = el.parent_element();
    if let Some(p) = parent.as_ref().filter(|p| p.child_element_count() > 1) {
        let node = known.node(p);
        let twins = if let Some(t) = node.twins.iter().find(|t| t.0 == *out) {
            t.1
        } else {
            let mut s = String::from(":scope>");
            s.push_str(out);
            let twins = p.query_selector_all(&s).is_ok_and(|l| l.length() > 1);
            node.twins.push((out.clone(), twins));
            twins
        };
        if twins {
            let i = if let Some(t) = node.of_type.iter().find(|t| t.0 == tag) {
                t.1.index_of(el, 0)
            } else {
                let mut s = String::from(":scope>");
                s.push_str(&tag);
                let list = p
                    .query_selector_all(&s)
                    .map_or_else(|_| js_sys::Array::new(), |l| js_sys::Array::from(&l));
                let i = list.index_of(el, 0);
                node.of_type.push((tag.clone(), list));
                i
            };
            out.push_str(":nth-of-type(");
            int(out, (i + 1).into());
            out.push(')');
        }
    }
    (anchored, parent)
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

/// The class that stands for `el` in its selector: the shortest (then first in
/// alphabetical order) of its classes that names a component rather than a state
/// (`active`, `is-open`, …), a generated name or a utility (anything with a digit
/// or punctuation: `mt-3`, `md:flex`, `css-1x2y3z`).
fn class(el: &Element) -> Option<String> {
    // The attribute, one string (an SVG element's `className` is no string, and
    // `classList` takes a question per class).
    let list = el.get_attribute("class")?;
    let mut best: Option<&str> = None;
    for c in list.split_ascii_whitespace().take(16) {
        let plain = (2..=40).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
            && !c.starts_with("sc-")
            && !STATES.iter().any(|s| has(c, s));
        if plain && best.is_none_or(|b| (c.len(), c) < (b.len(), b)) {
            best = Some(c);
        }
    }
    best.map(String::from)
}

/// Parts of class names that say what state an element is in, not what it is.
const STATES: [&str; 19] = [
    "active", "show", "open", "select", "current", "hover", "focus", "visible", "hidden",
    "collaps", "expand", "loaded", "loading", "animat", "disabled", "checked", "valid", "error",
    "is-",
];

/// Whether an id, class or attribute value is empty or looks generated by a
/// framework or library, so that it may differ on the next load: React's `:r1:`,
/// a run of three digits (`main_123`, `ember123`), six hex chars with a digit
/// among them (`swiper-wrapper-3f9a1b2c…`, UUIDs), or a number between words
/// (`react-select-2-input`).
pub(crate) fn generated(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| matches!(c, ':' | '«' | '»')) {
        return true;
    }
    let (mut digits, mut hexes, mut hex_digit) = (0, 0, false);
    // The current `-`/`_`-separated word is a number.
    let mut number = false;
    for (i, b) in s.bytes().enumerate() {
        let digit = b.is_ascii_digit();
        if matches!(b, b'-' | b'_') {
            if number && digits > 0 && i + 1 < s.len() {
                return true;
            }
            number = true;
        } else {
            number &= digit;
        }
        digits = if digit { digits + 1 } else { 0 };
        if b.is_ascii_hexdigit() {
            hexes += 1;
            hex_digit |= digit;
        } else {
            (hexes, hex_digit) = (0, false);
        }
        if digits >= 3 || (hexes >= 6 && hex_digit) {
            return true;
        }
    }
    false
}

/// Append `s` escaped as a CSS identifier (what `CSS.escape` does).
pub(crate) fn css_ident(out: &mut String, s: &str) {
    let first_dash = s.starts_with('-');
    for (i, c) in s.chars().enumerate() {
        let digit_start = c.is_ascii_digit() && (i == 0 || (i == 1 && first_dash));
        if c == '\0' {
            out.push('\u{FFFD}');
        } else if u32::from(c) < 0x20 || c == '\x7f' || digit_start {
            out.push('\\');
            let mut h = String::new();
            crate::json::hex(&mut h, &[c as u8]);
            out.push_str(h.trim_start_matches('0'));
            out.push(' ');
        } else if c.is_ascii_alphanumeric()
            || c == '_'
            || !c.is_ascii()
            || (c == '-' && s.len() > 1)
        {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
}

/// The visible text of a clicked element (else its `aria-label`, `title` or image
/// `alt`), whitespace collapsed, at most [`MAX_TEXT_CHARS`] chars. None for fields
/// and anything editable: what a visitor typed is never sent.
pub(crate) fn text(el: &Element) -> Option<String> {
    text_in(el, &mut Siblings::default())
}

/// [`text`], asking with the batch's [`Words`].
pub(crate) fn text_in(el: &Element, known: &mut Siblings) -> Option<String> {
    if matches!(el.local_name().as_str(), "input" | "select" | "textarea")
        || el
            .unchecked_ref::<AnyNode>()
            .is_content_editable()
            .is_truthy()
        || el
            .unchecked_ref::<AnyNode>()
            .query_js(&known.words().editable)
            .is_some()
    {
        return None;
    }
    // Copy a bounded slice only: a click on a page-wide container must stay cheap.
    let s: String = el
        .unchecked_ref::<AnyNode>()
        .text_content()?
        .slice(0, 1024)
        .into();
    let s = squash(&s, MAX_TEXT_CHARS);
    if !s.is_empty() {
        return Some(s);
    }
    // Icon buttons and image links: their label, title or image alt text.
    let img = el.query_selector("img[alt]").ok().flatten();
    [
        el.get_attribute("aria-label"),
        el.get_attribute("title"),
        img.and_then(|i| i.get_attribute("alt")),
    ]
    .into_iter()
    .flatten()
    .map(|v| squash(&v, MAX_TEXT_CHARS))
    .find(|v| !v.is_empty())
}

/// Widgets that are fields by their role: custom dropdowns, steppers, sliders
/// and editable boxes built from `div`s. Their contents are never read.
pub(crate) const CUSTOM_FIELDS: &str =
    "[role=combobox],[role=listbox],[role=spinbutton],[role=slider],[role=textbox]";

/// The recordable form field an event target is: input (but not hidden or
/// button-like), select or textarea, or a [`CUSTOM_FIELDS`] widget; outside
/// `data-ct-ignore`.
pub(crate) fn field(target: Option<EventTarget>) -> Option<Element> {
    let el = element(target)?;
    let ok = match el.local_name().as_str() {
        "select" | "textarea" => true,
        "input" => !matches!(
            field_type(&el).as_str(),
            "hidden" | "submit" | "button" | "image" | "reset"
        ),
        _ => el.matches(CUSTOM_FIELDS).unwrap_or(false),
    };
    ok.then_some(el)
}

/// Whether a field is a native one (its value and validity are the browser's).
pub(crate) fn native(el: &Element) -> bool {
    matches!(el.local_name().as_str(), "input" | "select" | "textarea")
}

/// A field's type: the input's `type`, `select-one`, `textarea`, …, or a custom
/// field's role.
pub(crate) fn field_type(el: &Element) -> String {
    if native(el) {
        prop(el, "type").as_string().unwrap_or_default()
    } else {
        el.get_attribute("role").unwrap_or_default()
    }
}

/// How a field or form is named: its `name` attribute, else its id unless
/// generated, else its `aria-label`, else a selector.
pub(crate) fn name_of(el: &Element) -> String {
    if let Some(v) = el.get_attribute("name").filter(|v| !v.is_empty()) {
        return v;
    }
    let id = el.id();
    if !id.is_empty() && !generated(&id) {
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
    let id = list.id();
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

/// The name of the visible `data-ct-screen` element: the last one in document
/// order (the innermost) that is rendered, or `<body>`.
pub(crate) fn visible_screen(doc: &Document) -> Option<String> {
    let list = doc
        .query_selector_all("[data-ct-screen]:not([data-ct-screen=''])")
        .ok()?;
    let mut i = list.length();
    while i > 0 {
        i -= 1;
        let Some(el) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
            continue;
        };
        if el.local_name() == "body" || el.get_client_rects().length() > 0 {
            return el
                .get_attribute("data-ct-screen")
                .map(|s| String::from(cut(&s, MAX_NAME)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{css_ident, generated};

    #[test]
    fn knows_generated_names() {
        for g in [
            "",
            "swiper-wrapper-3f9a1b2c4d5e6f70",
            "main_123",
            "ember123",
            "react-select-2-input",
            ":r1:",
            "«r2»",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
        ] {
            assert!(generated(g), "{g}");
        }
        for g in [
            "checkout",
            "p-boots",
            "step2",
            "product-12",
            "add-to-cart",
            "nav_home",
        ] {
            assert!(!generated(g), "{g}");
        }
    }
    use alloc::string::String;

    fn esc(s: &str) -> String {
        let mut out = String::new();
        css_ident(&mut out, s);
        out
    }

    #[test]
    fn escapes_like_css_escape() {
        assert_eq!(esc("pay-now_2"), "pay-now_2");
        assert_eq!(esc("1st"), "\\31 st");
        assert_eq!(esc("-2x"), "-\\32 x");
        assert_eq!(esc("-"), "\\-");
        assert_eq!(esc("a:b.c"), "a\\:b\\.c");
        assert_eq!(esc(":r1:"), "\\:r1\\:");
        assert_eq!(esc("é"), "é");
        assert_eq!(esc("a\u{1}"), "a\\1 ");
    }
}
