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

use crate::json::{cut, int, squash};

/// Elements a click is attributed to when the click lands inside one.
pub(crate) const INTERESTING: &str =
    "a,button,input,select,textarea,label,summary,[role=button],[onclick],[data-ct-ad]";

#[wasm_bindgen]
extern "C" {
    /// Any DOM node, for the binding below.
    type AnyNode;
    /// `node.textContent`, kept as a JS string so that only a slice of it is copied.
    #[wasm_bindgen(method, getter = textContent)]
    fn text_content(this: &AnyNode) -> Option<JsString>;

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

/// An event target as an element, unless it sits in a `data-ct-ignore` subtree.
pub(crate) fn element(target: Option<EventTarget>) -> Option<Element> {
    let el: Element = target?.dyn_into().ok()?;
    // An error from `closest` cannot happen for this selector; treat it as ignored.
    matches!(el.closest("[data-ct-ignore]"), Ok(None)).then_some(el)
}

/// A short CSS selector for `el`: its own part prefixed by up to three ancestors,
/// stopping at the first one with an id, at most [`MAX_SELECTOR`] bytes.
pub(crate) fn selector(el: &Element) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(el.clone());
    while let Some(e) = cur {
        if !parts.is_empty() && matches!(e.local_name().as_str(), "body" | "html") {
            break;
        }
        let mut p = String::new();
        let anchored = part(&e, &mut p);
        parts.push(p);
        if anchored || parts.len() == 4 {
            break;
        }
        cur = e.parent_element();
    }
    // Drop outer ancestors until it fits; `parts` runs from `el` outwards.
    let mut keep = parts.len();
    while keep > 1 && parts.iter().take(keep).map(|p| p.len() + 3).sum::<usize>() - 3 > MAX_SELECTOR
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

/// One compound selector: `tag#id` (returns true: unique, stop), else `tag.c1.c2`
/// with `:nth-of-type(n)` when a sibling would match it too.
fn part(el: &Element, out: &mut String) -> bool {
    let tag = el.local_name();
    out.push_str(&tag);
    let id = el.id();
    if !id.is_empty() {
        out.push('#');
        css_ident(out, &id);
        return true;
    }
    let list = el.class_list();
    let classes = [list.item(0), list.item(1)];
    for c in classes.iter().flatten() {
        out.push('.');
        css_ident(out, c);
    }
    let same = |s: &Element| {
        let l = s.class_list();
        classes.iter().flatten().all(|c| l.contains(c))
    };
    let (mut nth, mut clash) = (1, false);
    let mut sib = el.previous_element_sibling();
    while let Some(s) = sib {
        if s.local_name() == tag {
            nth += 1;
            clash = clash || same(&s);
        }
        sib = s.previous_element_sibling();
    }
    let mut sib = el.next_element_sibling();
    while let (false, Some(s)) = (clash, sib) {
        clash = s.local_name() == tag && same(&s);
        sib = s.next_element_sibling();
    }
    if clash {
        out.push_str(":nth-of-type(");
        int(out, nth);
        out.push(')');
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
    if matches!(el.local_name().as_str(), "input" | "select" | "textarea")
        || prop(el, "isContentEditable").is_truthy()
        || !matches!(el.query_selector("[contenteditable]"), Ok(None))
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

/// The recordable form field an event target is: input (but not hidden or
/// button-like), select or textarea, outside `data-ct-ignore`.
pub(crate) fn field(target: Option<EventTarget>) -> Option<Element> {
    let el = element(target)?;
    let ok = match el.local_name().as_str() {
        "select" | "textarea" => true,
        "input" => !matches!(
            field_type(&el).as_str(),
            "hidden" | "submit" | "button" | "image" | "reset"
        ),
        _ => false,
    };
    ok.then_some(el)
}

/// A field's type: the input's `type`, `select-one`, `textarea`, …
pub(crate) fn field_type(el: &Element) -> String {
    prop(el, "type").as_string().unwrap_or_default()
}

/// How a field or form is named: its `name` attribute, else its id, else a selector.
pub(crate) fn name_of(el: &Element) -> String {
    for attr in ["name", "id"] {
        if let Some(v) = el.get_attribute(attr).filter(|v| !v.is_empty()) {
            return v;
        }
    }
    selector(el)
}

/// The form a field belongs to (also through the `form` attribute).
pub(crate) fn form_of(field: &Element) -> Option<Element> {
    prop(field, "form").dyn_into().ok()
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
    use super::css_ident;
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
