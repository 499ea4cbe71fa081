//! Step matchers: the `page:/cart`-style specs that name funnel steps and goals.
//!
//! A spec arrives as text (CLI `--step`, or `steps` in an [`crate::AuditRequest`]);
//! [`StepMatcher::parse`] checks it once and [`StepMatcher::matches`] then tests
//! events, given as an [`EventRef`] of the few columns a matcher reads. Audits first
//! narrow the events to [`StepMatcher::kinds`] in Polars, then call `matches` in their
//! sequential pass.
//!
//! | spec | matches |
//! |---|---|
//! | `page:/cart` | a `pageview` whose path equals `/cart` |
//! | `page:/product/*` | a `pageview` whose path matches the glob: `*` is any run of characters except `/`, `**` any run including `/` |
//! | `screen:payment` | a `screen` event named `payment`, or a `pageview` whose `screen` column is `payment` |
//! | `click:CSS` | a `click` on or inside an element `CSS` selects, judged on its `ancestry` or its selector (see below) |
//! | `submit:FORM` | a `submit` whose `form` equals `FORM` |
//! | `event:NAME` | a custom event (`clicktrail('event', NAME)`) |
//!
//! `click:CSS` matches a click whose `ancestry` (the clicked element and the
//! elements it is in, innermost first, `tag#id.class…` each) has an element the
//! last compound of `CSS` selects, each compound before it on an element further
//! out (with `>`, the next one out); `[attr]`, `:pseudo` and sibling combinators
//! never match there. It also matches a recorded selector `S` when
//! 1. `S` ends with the whole compounds of `CSS` (`click:form > button#pay` matches
//!    `main form > button#pay`; combinators and spaces must be written the same way), or
//! 2. `CSS` is one compound and all its parts (tag, `#id`, `.class`, `[attr]`,
//!    `:pseudo`) appear in one compound of `S`, in any order: the click landed on
//!    or inside such an element, as a click listener on it would see it
//!    (`click:#pay` and `click:button.primary` match `div.x > button#pay.primary`;
//!    `click:#pay` matches `#pay > span`; `click:div.card` matches
//!    `div#grid > div.card:nth-of-type(2) > h3`, a click on a card whose handler
//!    the page set in script).

use crate::Error;
use crate::load::Col;

/// The columns of one event a [`StepMatcher`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventRef<'a> {
    pub kind: &'a str,
    pub path: Option<&'a str>,
    pub screen: Option<&'a str>,
    pub selector: Option<&'a str>,
    pub form: Option<&'a str>,
    pub name: Option<&'a str>,
    /// A click's element and the elements it is in (the `ancestry` column).
    pub ancestry: Option<&'a str>,
}

impl<'a> EventRef<'a> {
    /// A click known by its selector and ancestry only: what a `click:` step
    /// re-checks of a row the SQL condition kept.
    pub fn click(selector: Option<&'a str>, ancestry: Option<&'a str>) -> Self {
        EventRef {
            kind: "click",
            selector,
            ancestry,
            ..EventRef::default()
        }
    }

    /// The columns to load for [`EventRef`] (besides the ones that order events).
    pub const COLUMNS: [Col; 7] = [
        Col::Kind,
        Col::Path,
        Col::Screen,
        Col::Selector,
        Col::Form,
        Col::Name,
        Col::Ancestry,
    ];
}

/// What a sequential matcher pass loads: the session and the (ts, seq) order, then
/// [`EventRef::COLUMNS`]. Audits that match steps start their column list with it.
pub const SEQUENCE_COLUMNS: [Col; 10] =
    concat::<3, 7, 10>([Col::SessionId, Col::Ts, Col::Seq], EventRef::COLUMNS);

/// `a` then `b`: column lists built from shared parts at compile time (`N = A + B`).
pub const fn concat<const A: usize, const B: usize, const N: usize>(
    a: [Col; A],
    b: [Col; B],
) -> [Col; N] {
    assert!(A + B == N, "N must be A + B");
    let mut out = [Col::SessionId; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < A { a[i] } else { b[i - A] };
        i += 1;
    }
    out
}

/// How a query tests a step ([`StepMatcher::sql_test`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlTest {
    /// `column = value`.
    Equals { column: &'static str, value: String },
    /// A condition and its parameters.
    Condition(String, Vec<String>),
}

/// One parsed step spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMatcher {
    spec: String,
    rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Page(Glob),
    Screen(String),
    Click(Css),
    Submit(String),
    Event(String),
}

const KINDS_PAGE: &[&str] = &["pageview"];
const KINDS_SCREEN: &[&str] = &["screen", "pageview"];
const KINDS_CLICK: &[&str] = &["click"];
const KINDS_SUBMIT: &[&str] = &["submit"];
const KINDS_EVENT: &[&str] = &["custom"];

impl StepMatcher {
    /// Parses a spec like `page:/product/*`; [`Error::BadStep`] says what is wrong.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::BadStep {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((kind, value)) = spec.split_once(':') else {
            return Err(bad(
                "expected TYPE:VALUE, e.g. page:/cart, screen:payment, click:#pay, submit:checkout, event:signup",
            ));
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(bad("nothing after the ':'"));
        }
        let rule = match kind.trim() {
            "page" => {
                if !value.starts_with('/') {
                    return Err(bad(
                        "a page path starts with '/', e.g. page:/cart or page:/product/*",
                    ));
                }
                Rule::Page(Glob::new(value))
            }
            "screen" => Rule::Screen(value.to_owned()),
            "click" => Rule::Click(Css::new(value).map_err(|reason| bad(&reason))?),
            "submit" => Rule::Submit(value.to_owned()),
            "event" => Rule::Event(value.to_owned()),
            other => {
                return Err(bad(&format!(
                    "unknown step type `{other}`; use page:, screen:, click:, submit: or event:"
                )));
            }
        };
        Ok(StepMatcher {
            spec: spec.trim().to_owned(),
            rule,
        })
    }

    /// The spec as written (trimmed).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The event kinds this step can match; other events can be skipped.
    pub fn kinds(&self) -> &'static [&'static str] {
        match self.rule {
            Rule::Page(_) => KINDS_PAGE,
            Rule::Screen(_) => KINDS_SCREEN,
            Rule::Click(_) => KINDS_CLICK,
            Rule::Submit(_) => KINDS_SUBMIT,
            Rule::Event(_) => KINDS_EVENT,
        }
    }

    /// A SQL condition over the events table (`path`, `screen`, `selector`,
    /// `ancestry`, `form`, `name`) that, for an event of one of [`Self::kinds`], holds whenever
    /// [`Self::matches`] does, with its parameters in order. It is exact
    /// ([`Self::exact_in_sql`]) for every step but `click:`, whose condition only keeps
    /// selectors holding each `#id`, `.class` and `[attr]` of the pattern; those rows
    /// are then checked with [`Self::matches`]. [`Self::sql_with_kind`] adds the kind.
    pub fn sql(&self) -> (String, Vec<String>) {
        match &self.rule {
            Rule::Page(glob) => glob.sql("path"),
            Rule::Screen(name) => ("screen = ?".to_owned(), vec![name.clone()]),
            Rule::Click(css) => {
                let parts: Vec<String> = css
                    .parts
                    .iter()
                    .flatten()
                    .filter(|p| !is_tag(p))
                    .cloned()
                    .collect();
                let mut cond = "((selector IS NOT NULL".to_owned();
                for _ in &parts {
                    cond.push_str(" AND contains(selector, ?)");
                }
                cond.push_str(") OR (ancestry IS NOT NULL");
                for _ in &css.needles {
                    cond.push_str(" AND contains(ancestry, ?)");
                }
                cond.push_str("))");
                let mut params = parts;
                params.extend(css.needles.iter().cloned());
                (cond, params)
            }
            Rule::Submit(form) => ("form = ?".to_owned(), vec![form.clone()]),
            Rule::Event(name) => ("name = ?".to_owned(), vec![name.clone()]),
        }
    }

    /// How a query tests this step: an equality on one column (which a query can
    /// answer for many steps at once, with one `list_position`), or the condition of
    /// [`Self::sql`]. The kind is tested apart (see [`Self::kinds`]).
    pub fn sql_test(&self) -> SqlTest {
        match &self.rule {
            Rule::Page(glob) => {
                if let [GlobPart::Literal(lit)] = glob.0.as_slice() {
                    SqlTest::Equals {
                        column: "path",
                        value: lit.clone(),
                    }
                } else {
                    let (cond, params) = self.sql();
                    SqlTest::Condition(cond, params)
                }
            }
            Rule::Screen(v) => SqlTest::Equals {
                column: "screen",
                value: v.clone(),
            },
            Rule::Submit(v) => SqlTest::Equals {
                column: "form",
                value: v.clone(),
            },
            Rule::Event(v) => SqlTest::Equals {
                column: "name",
                value: v.clone(),
            },
            Rule::Click(_) => {
                let (cond, params) = self.sql();
                SqlTest::Condition(cond, params)
            }
        }
    }

    /// [`Self::sql`] with the test of the event's kind.
    pub fn sql_with_kind(&self) -> (String, Vec<String>) {
        let (cond, params) = self.sql();
        (format!("({} AND {cond})", kind_sql(self.kinds())), params)
    }

    /// Whether [`Self::sql`] decides this step alone (every step but `click:`).
    pub fn exact_in_sql(&self) -> bool {
        !matches!(self.rule, Rule::Click(_))
    }

    /// Whether `ev` is this step.
    pub fn matches(&self, ev: &EventRef<'_>) -> bool {
        match &self.rule {
            Rule::Page(glob) => ev.kind == "pageview" && ev.path.is_some_and(|p| glob.matches(p)),
            Rule::Screen(name) => {
                (ev.kind == "screen" || ev.kind == "pageview") && ev.screen == Some(name.as_str())
            }
            Rule::Click(css) => {
                ev.kind == "click"
                    && (ev.selector.is_some_and(|s| css.matches(s))
                        || ev.ancestry.is_some_and(|a| css.matches_ancestry(a)))
            }
            Rule::Submit(form) => ev.kind == "submit" && ev.form == Some(form.as_str()),
            Rule::Event(name) => ev.kind == "custom" && ev.name == Some(name.as_str()),
        }
    }
}

/// A path glob: `*` within one path segment, `**` across segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob(Vec<GlobPart>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobPart {
    Literal(String),
    Star,
    DoubleStar,
}

impl Glob {
    fn new(pattern: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(tail) = rest.strip_prefix("**") {
                parts.push(GlobPart::DoubleStar);
                rest = tail.trim_start_matches('*');
            } else if let Some(tail) = rest.strip_prefix('*') {
                parts.push(GlobPart::Star);
                rest = tail;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                parts.push(GlobPart::Literal(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        Glob(parts)
    }

    /// The same test in SQL over `column`: equality for a plain path, LIKE patterns
    /// for `/a/*` and `/a/**`, a full regular-expression match otherwise.
    fn sql(&self, column: &str) -> (String, Vec<String>) {
        match self.0.as_slice() {
            [GlobPart::Literal(lit)] => (format!("{column} = ?"), vec![lit.clone()]),
            [GlobPart::Literal(prefix), GlobPart::DoubleStar] => (
                format!("{column} LIKE ? ESCAPE '\\'"),
                vec![format!("{}%", like_escape(prefix))],
            ),
            [GlobPart::Literal(prefix), GlobPart::Star] => (
                format!("({column} LIKE ? ESCAPE '\\' AND {column} NOT LIKE ? ESCAPE '\\')"),
                vec![
                    format!("{}%", like_escape(prefix)),
                    format!("{}%/%", like_escape(prefix)),
                ],
            ),
            parts => {
                let mut re = String::from("(?s)");
                for part in parts {
                    match part {
                        GlobPart::Literal(lit) => re.push_str(&regex_escape(lit)),
                        GlobPart::Star => re.push_str("[^/]*"),
                        GlobPart::DoubleStar => re.push_str(".*"),
                    }
                }
                (format!("regexp_full_match({column}, ?)"), vec![re])
            }
        }
    }

    /// Set-of-positions matching: O(parts × path length), no backtracking blow-up.
    fn matches(&self, path: &str) -> bool {
        if let [GlobPart::Literal(lit)] = self.0.as_slice() {
            return lit == path;
        }
        let bytes = path.as_bytes();
        let mut reach = vec![false; bytes.len() + 1];
        reach[0] = true;
        for part in &self.0 {
            let mut next = vec![false; bytes.len() + 1];
            match part {
                GlobPart::Literal(lit) => {
                    for p in (0..=bytes.len()).filter(|&p| reach[p]) {
                        if bytes[p..].starts_with(lit.as_bytes()) {
                            next[p + lit.len()] = true;
                        }
                    }
                }
                GlobPart::Star => {
                    for p in (0..=bytes.len()).filter(|&p| reach[p]) {
                        next[p] = true;
                        let mut q = p;
                        while q < bytes.len() && bytes[q] != b'/' {
                            q += 1;
                            next[q] = true;
                        }
                    }
                }
                GlobPart::DoubleStar => {
                    if let Some(first) = reach.iter().position(|&r| r) {
                        next[first..].iter_mut().for_each(|n| *n = true);
                    }
                }
            }
            reach = next;
        }
        reach[bytes.len()]
    }
}

/// A `click:` selector pattern, split into compounds and their simple parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Css {
    /// Compounds and combinators, as [`split_compounds`] gives them.
    tokens: Vec<String>,
    /// The simple parts of the pattern when it is a single compound.
    parts: Option<Vec<String>>,
    /// Every `#id`, `.class`, `[attr]` and `:pseudo` part of every compound: an
    /// element list without one of them cannot match.
    needles: Vec<String>,
}

impl Css {
    fn new(pattern: &str) -> Result<Self, String> {
        let tokens: Vec<String> = split_compounds(pattern)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let starts_ok = tokens.first().is_some_and(|t| !is_combinator(t));
        let ends_ok = tokens.last().is_some_and(|t| !is_combinator(t));
        if !starts_ok || !ends_ok {
            return Err("a selector cannot start or end with a combinator".to_owned());
        }
        let parts = match tokens.as_slice() {
            [one] => Some(simple_parts(one).into_iter().map(str::to_owned).collect()),
            _ => None,
        };
        let needles = tokens
            .iter()
            .filter(|t| !is_combinator(t))
            .flat_map(|t| simple_parts(t))
            .filter(|p| !is_tag(p))
            .map(str::to_owned)
            .collect();
        Ok(Css {
            tokens,
            parts,
            needles,
        })
    }

    /// Whether the pattern selects the clicked element or one it is in, judged on
    /// its `ancestry` (`tag#id.class…` of each element, innermost first, separated
    /// by spaces): the last compound on one of them, each compound before it on an
    /// element further out (with `>`, the next one out). Parts such a list does not
    /// hold (`[attr]`, `:pseudo`) and sibling combinators never match there.
    fn matches_ancestry(&self, ancestry: &str) -> bool {
        if !self.needles.iter().all(|n| ancestry.contains(n.as_str())) {
            return false;
        }
        // The tracker sends at most 16 elements; a longer list (forged, or
        // imported) is judged on its first 16, so that a pattern of descendant
        // combinators never has more than 16 elements to try.
        let chain: Vec<Vec<&str>> = ancestry
            .split_ascii_whitespace()
            .take(16)
            .map(simple_parts)
            .collect();
        let tokens: Vec<&str> = self.tokens.iter().map(String::as_str).collect();
        (0..chain.len()).any(|i| Self::ends_at(&tokens, &chain, i))
    }

    /// Whether `tokens` (compounds and combinators) select element `i` of `chain`.
    fn ends_at(tokens: &[&str], chain: &[Vec<&str>], i: usize) -> bool {
        let Some((last, before)) = tokens.split_last() else {
            return true;
        };
        let have = &chain[i];
        let on_it = simple_parts(last)
            .iter()
            .all(|p| *p == "*" || have.iter().any(|h| same_part(p, h)));
        if !on_it {
            return false;
        }
        match before.split_last() {
            None => true,
            Some((&">", rest)) => i + 1 < chain.len() && Self::ends_at(rest, chain, i + 1),
            Some((&" ", rest)) => (i + 1..chain.len()).any(|j| Self::ends_at(rest, chain, j)),
            Some(_) => false,
        }
    }

    fn matches(&self, selector: &str) -> bool {
        // Cheap rejection: every #id, .class, [attr] of the pattern occurs in the selector.
        if let Some(parts) = &self.parts
            && !parts
                .iter()
                .filter(|p| !is_tag(p))
                .all(|p| selector.contains(p.as_str()))
        {
            return false;
        }
        let tokens = split_compounds(selector);
        if tokens.ends_with(&self.tokens.iter().map(String::as_str).collect::<Vec<_>>()) {
            return true;
        }
        let Some(parts) = &self.parts else {
            return false;
        };
        tokens.into_iter().filter(|t| !is_combinator(t)).any(|c| {
            let have = simple_parts(c);
            parts.iter().all(|p| have.iter().any(|h| same_part(p, h)))
        })
    }
}

/// `text` as a LIKE pattern that matches only itself (escape character `\`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `kind IN ('a', 'b')` for kinds (plain words, safe to write into SQL).
pub fn kind_sql(kinds: &[&str]) -> String {
    let list = kinds
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("kind IN ({list})")
}

/// `text` with every regular-expression metacharacter escaped (RE2 syntax).
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A type selector (`button`, `*`), as opposed to `#id`, `.class`, `[attr]`, `:pseudo`.
fn is_tag(part: &str) -> bool {
    part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '*')
}

/// Tags compare case-insensitively, everything else exactly.
fn same_part(a: &str, b: &str) -> bool {
    if is_tag(a) && is_tag(b) {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

fn is_combinator(token: &str) -> bool {
    matches!(token, " " | ">" | "+" | "~")
}

/// Splits a selector into compounds and combinators: `div.x > a b` →
/// `["div.x", ">", "a", " ", "b"]`. Brackets, parentheses and quotes are kept whole.
fn split_compounds(selector: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut start: Option<usize> = None;
    let mut pending: Option<&str> = None; // combinator seen since the last compound
    for (i, c) in selector.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let separator = depth == 0 && (c.is_whitespace() || matches!(c, '>' | '+' | '~'));
        if separator {
            if let Some(s) = start.take() {
                tokens.push(&selector[s..i]);
            }
            let this = match c {
                '>' => ">",
                '+' => "+",
                '~' => "~",
                _ => " ",
            };
            if pending.is_none_or(|p| p == " ") {
                pending = Some(this);
            }
        } else if start.is_none() {
            if let Some(p) = pending.take()
                && !tokens.is_empty()
            {
                tokens.push(p);
            }
            start = Some(i);
        }
    }
    if let Some(s) = start {
        tokens.push(&selector[s..]);
    } else if let Some(p) = pending
        && p != " "
    {
        tokens.push(p); // trailing combinator: kept so that a pattern can be rejected
    }
    if tokens.is_empty() {
        return tokens;
    }
    if selector.trim_start().starts_with(['>', '+', '~']) {
        tokens.insert(0, ">");
    }
    tokens
}

/// Splits one compound into its simple parts: `button#pay.primary[type=submit]` →
/// `["button", "#pay", ".primary", "[type=submit]"]`.
fn simple_parts(compound: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in compound.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' | '(' if depth > 0 => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            '#' | '.' | '[' | ':' if depth == 0 => {
                // `::before` stays one part.
                let double_colon = c == ':' && i > 0 && compound[..i].ends_with(':');
                if i > start && !double_colon {
                    parts.push(&compound[start..i]);
                    start = i;
                }
                if c == '[' {
                    depth += 1;
                }
            }
            '(' => depth += 1,
            _ => {}
        }
    }
    if start < compound.len() {
        parts.push(&compound[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(path: &str) -> EventRef<'_> {
        EventRef {
            kind: "pageview",
            path: Some(path),
            ..EventRef::default()
        }
    }

    fn click(selector: &str) -> EventRef<'_> {
        EventRef {
            kind: "click",
            path: Some("/"),
            selector: Some(selector),
            ..EventRef::default()
        }
    }

    fn step(spec: &str) -> StepMatcher {
        StepMatcher::parse(spec).unwrap()
    }

    #[test]
    fn page_paths_and_globs() {
        assert!(step("page:/cart").matches(&page("/cart")));
        assert!(!step("page:/cart").matches(&page("/cart/")));
        assert!(!step("page:/cart").matches(&click("#x")));
        let product = step("page:/product/*");
        assert!(product.matches(&page("/product/42")));
        assert!(product.matches(&page("/product/")));
        assert!(!product.matches(&page("/product/42/reviews")));
        assert!(!product.matches(&page("/products/42")));
        assert!(step("page:/product/**").matches(&page("/product/42/reviews")));
        assert!(step("page:/p/*/edit").matches(&page("/p/7/edit")));
        assert!(!step("page:/p/*/edit").matches(&page("/p/7/8/edit")));
        assert!(step("page:/*-sale").matches(&page("/winter-sale")));
        assert!(step("page:/a*b*c").matches(&page("/aXbYbZc")));
        assert!(!step("page:/a*b*c").matches(&page("/aXbYbZ")));
    }

    #[test]
    fn screens_match_screen_events_and_marked_pageviews() {
        let s = step("screen:payment");
        let screen = EventRef {
            kind: "screen",
            screen: Some("payment"),
            ..EventRef::default()
        };
        let marked = EventRef {
            kind: "pageview",
            path: Some("/checkout"),
            screen: Some("payment"),
            ..EventRef::default()
        };
        let clicked_there = EventRef {
            kind: "click",
            screen: Some("payment"),
            ..EventRef::default()
        };
        assert!(s.matches(&screen));
        assert!(s.matches(&marked));
        assert!(!s.matches(&clicked_there));
        assert!(!step("screen:pay").matches(&screen));
    }

    #[test]
    fn clicks_match_the_element_or_one_it_is_in() {
        let pay = step("click:#pay");
        assert!(pay.matches(&click("#pay")));
        assert!(pay.matches(&click("div.x > button#pay")));
        assert!(pay.matches(&click("button.big#pay.primary")));
        assert!(pay.matches(&click("#pay > span")), "inside the element");
        assert!(!pay.matches(&click("#payment")));
        assert!(!pay.matches(&click("div.x > button#paypal")));

        let button = step("click:button.primary");
        assert!(button.matches(&click("form > button#pay.primary")));
        assert!(button.matches(&click("BUTTON.primary")));
        assert!(button.matches(&click("button.primary > span")), "inside");
        assert!(!button.matches(&click("button.primary-x")));
        assert!(!button.matches(&click("button.primary-x > span")));

        let card = step("click:div.card");
        assert!(card.matches(&click("div#grid > div.card:nth-of-type(2) > h3")));
        assert!(!card.matches(&click("div#grid > div.cards > h3")));
        assert!(!card.matches(&click("section.card > h3")));

        let path = step("click:form > button#pay");
        assert!(path.matches(&click("main form > button#pay")));
        assert!(path.matches(&click("form>button#pay")));
        assert!(!path.matches(&click("form button#pay")));
        assert!(!path.matches(&click("div > button#pay")));

        let attr = step("click:a[href=\"/a.b\"]");
        assert!(attr.matches(&click("nav > a.link[href=\"/a.b\"]")));
        assert!(!step("click:a.b").matches(&click("a[href=\"/a.b\"]")));
    }

    /// A click is judged on every class and id of its element and the elements
    /// it is in, not only on the ones its selector keeps.
    #[test]
    fn clicks_match_on_the_elements_they_are_in() {
        let at = |selector, ancestry| EventRef {
            kind: "click",
            path: Some("/"),
            selector: Some(selector),
            ancestry: Some(ancestry),
            ..EventRef::default()
        };
        // `<button id="buy" class="btn btn-primary">` holding an icon; its
        // selector keeps the id only.
        let icon = at(
            "form#cart > button#buy",
            "svg.icon button#buy.btn.btn-primary form#cart main body.shop",
        );
        for yes in [
            "click:.btn-primary",
            "click:button.btn.btn-primary",
            "click:.icon",
            "click:BUTTON.btn",
            "click:form#cart button",
            "click:form#cart > button.btn",
            "click:main > form .icon",
            "click:body.shop .btn",
            "click:main *",
        ] {
            assert!(step(yes).matches(&icon), "{yes}");
        }
        for no in [
            "click:.btn-secondary",
            "click:button.btn-primary.icon",
            "click:main > button",
            "click:form#cart > .icon",
            "click:.btn-primary form",
            "click:button[type=submit]",
            "click:.btn + .icon",
            "click:#buy:hover",
        ] {
            assert!(!step(no).matches(&icon), "{no}");
        }
        // What the selector alone matches still matches without an ancestry.
        assert!(step("click:#buy").matches(&click("form#cart > button#buy")));
        assert!(!step("click:.btn-primary").matches(&click("form#cart > button#buy")));
    }

    #[test]
    fn submits_and_custom_events() {
        let submit = EventRef {
            kind: "submit",
            form: Some("checkout"),
            ..EventRef::default()
        };
        let custom = EventRef {
            kind: "custom",
            name: Some("signup"),
            ..EventRef::default()
        };
        assert!(step("submit:checkout").matches(&submit));
        assert!(!step("submit:login").matches(&submit));
        assert!(step("event:signup").matches(&custom));
        assert!(!step("event:signup").matches(&submit));
        assert_eq!(step(" event:signup ").spec(), "event:signup");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, reason) in [
            ("/cart", "expected TYPE:VALUE"),
            ("page:", "nothing after"),
            ("page:cart", "starts with '/'"),
            ("tap:#x", "unknown step type `tap`"),
            ("click:> a", "combinator"),
            ("click:a >", "combinator"),
        ] {
            let err = StepMatcher::parse(spec).unwrap_err();
            match &err {
                Error::BadStep { spec: s, reason: r } => {
                    assert_eq!(s, spec);
                    assert!(r.contains(reason), "{spec}: {r}");
                }
                other => panic!("{spec}: {other}"),
            }
        }
    }

    #[test]
    fn selector_splitting() {
        assert_eq!(
            split_compounds("div.x > a  b"),
            ["div.x", ">", "a", " ", "b"]
        );
        assert_eq!(
            split_compounds("a[title=\"x > y\"] + b"),
            ["a[title=\"x > y\"]", "+", "b"]
        );
        assert_eq!(
            simple_parts("button#pay.primary[type=submit]:hover::after"),
            [
                "button",
                "#pay",
                ".primary",
                "[type=submit]",
                ":hover",
                "::after"
            ]
        );
        assert_eq!(
            simple_parts("li:nth-child(2n+1).a"),
            ["li", ":nth-child(2n+1)", ".a"]
        );
    }

    /// The SQL condition of every step is exactly `matches` (a superset for
    /// `click:`), on a corpus of paths, screens, selectors, forms and names.
    #[test]
    fn sql_conditions_agree_with_the_matcher() {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            String,
            bool,
            Option<String>,
        );
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (kind VARCHAR, path VARCHAR, screen VARCHAR, selector VARCHAR,
                             form VARCHAR, name VARCHAR, ancestry VARCHAR)",
        )
        .unwrap();
        let paths = [
            "/",
            "/cart",
            "/cart/",
            "/product/1",
            "/product/1/reviews",
            "/product/",
            "/products",
            "/a.b/c",
            "/a+b",
            "/ünï/x",
            "/cart?x",
            "/p/(1)",
            "/x/y/z",
            "/CART",
            "/50%/x",
            "/50%off",
            "/a_b/c",
            "/axb/c",
            "/back\\slash/x",
        ];
        let selectors = [
            "button#pay",
            "div.x > button#pay.primary",
            "#pay > span",
            "form > button#pay",
            "main form > button#pay",
            "a.buy",
            "A.buy",
            "li:nth-child(2) > a",
            "#paypal",
        ];
        let ancestries = [
            None,
            Some("svg.icon button#buy.btn.btn-primary form#cart main body"),
            Some("span button#pay.primary.btn form.checkout div.x body"),
            Some("a#shop.nav-link li nav.menu header body"),
            Some("button.btn-primary-x div.buy body"),
        ];
        let mut rows = Vec::new();
        for kind in ["pageview", "screen", "click", "submit", "custom", "blur"] {
            for (i, path) in paths.iter().enumerate() {
                let sel = selectors[i % selectors.len()];
                let word = ["payment", "checkout", "order", "pay"][i % 4];
                let anc = ancestries[i % ancestries.len()];
                rows.push((kind, *path, word, sel, word, word, anc));
            }
            for (i, sel) in selectors.iter().enumerate() {
                let anc = ancestries[(i + 1) % ancestries.len()];
                rows.push((kind, "/", "payment", sel, "checkout", "order", anc));
            }
        }
        let mut insert = conn
            .prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)")
            .unwrap();
        for r in &rows {
            insert
                .execute(duckdb::params![r.0, r.1, r.2, r.3, r.4, r.5, r.6])
                .unwrap();
        }
        let specs = [
            "page:/50%/*",
            "page:/a_b/*",
            "page:/a_b/**",
            "page:/back\\slash/*",
            "page:/",
            "page:/cart",
            "page:/product/*",
            "page:/product/**",
            "page:/*/1",
            "page:/a.b/*",
            "page:/a+b",
            "page:/ünï/*",
            "page:/p/(1)",
            "page:/**/z",
            "page:/*",
            "screen:payment",
            "submit:checkout",
            "event:order",
            "click:#pay",
            "click:button.primary",
            "click:form > button#pay",
            "click:a.buy",
            "click:li:nth-child(2) > a",
            "click:.btn-primary",
            "click:form#cart button.btn",
            "click:main > form .icon",
            "click:nav.menu a",
        ];
        for spec in specs {
            let matcher = step(spec);
            let (condition, params) = matcher.sql_with_kind();
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT kind, path, screen, selector, form, name, {condition}, ancestry FROM t"
                ))
                .unwrap();
            let got: Vec<Row> = stmt
                .query_map(duckdb::params_from_iter(params), |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got.len(), rows.len());
            let mut hits = 0;
            for (kind, path, screen, selector, form, name, sql, ancestry) in &got {
                let ev = EventRef {
                    kind,
                    path: Some(path),
                    screen: Some(screen),
                    selector: Some(selector),
                    form: Some(form),
                    name: Some(name),
                    ancestry: ancestry.as_deref(),
                };
                let rust = matcher.matches(&ev);
                hits += usize::from(rust);
                if matcher.exact_in_sql() {
                    assert_eq!(*sql, rust, "{spec} on {ev:?}");
                } else {
                    assert!(*sql || !rust, "{spec}: SQL dropped a match {ev:?}");
                }
            }
            assert!(hits > 0, "{spec} matched nothing in the corpus");
        }
    }
}
