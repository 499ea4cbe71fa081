//! Secret scrubbing: the one filter every browser-sent text goes through before it
//! is stored (titles, click texts, selectors, screen/form/field names, event names,
//! custom props keys and values, error messages, ad names, identify ids, paths, page
//! URLs, referrers, link targets, script URLs).
//!
//! No **email**, **card number**, **phone number** or **token** survives, whatever
//! encoding the browser used: each becomes `[email]`, `[card]`, `[phone]` or
//! `[token]`.
//!
//! # How a string is read
//! 1. Fast path: one branch-free byte scan. A string with no `@ % & \`, no `0xEF`
//!    lead byte (fullwidth forms such as `＠`, `４`), fewer than 7 ASCII digits and
//!    no run of 16+ `[A-Za-z0-9_+/=-]` cannot hold a secret and is returned borrowed.
//! 2. Otherwise it is decoded, round after round until stable (at most 5), keeping
//!    for each decoded byte the offset of the original bytes it came from: `%XX`
//!    (whole UTF-8 sequences only) and `%uXXXX`, HTML references (`&#64;`,
//!    `&#x40;`, `&#64` without `;`, any number of leading zeros, `&commat;`,
//!    `&amp;`…), JS escapes (`\u0040`, `\u{40}`, `\x40`, octal `\100`), fullwidth
//!    ASCII, `﹫`, `。`, Unicode spaces and dashes; invisible characters (every
//!    format character, Cf: zero-width, soft hyphen, BOM, direction marks and
//!    isolates, tags…, and the variation selectors) are dropped. `+` is left as it
//!    is: every rule treats it like a space where that matters.
//! 3. The decoded bytes are searched, each find is mapped back to the original
//!    bytes and replaced; everything else is kept byte for byte.
//!
//! # Rules
//! - **Email**: `local@domain.tld`. The local part is the whole run of characters
//!   before `@` up to a space or a delimiter (`<>()[]{}",;:=/\|`), or a quoted
//!   string, so `jane.doe+tag`, unicode local parts and form-encoded
//!   `Signed+in+as+jane` all go. The domain has 2+ labels and a TLD of 2+
//!   characters with a letter. Not emails: `@clicktrail`, `@media`, `user@localhost`,
//!   `icon@2x.png`, `pkg@1.2.3`.
//! - **Token**: JWTs (`eyJ…`, 2–3 dot-separated parts, or one part of 20+); key
//!   prefixes (`sk_live_`, `sk_test_`, `pk_live_`, `pk_test_`, `rk_live_`, `whsec_`,
//!   `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`, `glpat-`, `xoxb-`,
//!   `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xapp-`, `npm_`, `shpat_`, `AKIA`/`ASIA` +
//!   16, `AIza` + 30, `SG.x.y`) and `Bearer <16+ chars>`; 16+ hex characters holding
//!   digits and letters (alone or inside a word), UUIDs and other dash-joined hex
//!   ids; and a run of 20+ `[A-Za-z0-9_+/=-]` that looks random. The run is cut
//!   into pieces at `_ - + / =`; it looks random when a piece of 8+ switches between
//!   letters and digits 3+ times (4+ under 12 characters), or mixes cases into 4+
//!   camel-case words averaging under 3.5 letters (with one-letter words or unusual
//!   letter pairs), or when 12%+ of its letter pairs (3+) are rare in English,
//!   German, French and Spanish words (`COMMON_BIGRAMS`). So readable slugs
//!   (`winter-boots-2024-limited-edition`) and camel-case names stay. A run that
//!   starts with `/` is a path: its `/`-parts that look random are judged together,
//!   so `/api/reset/<hex>` keeps `/api/reset/`. A run just before `.js`, `.mjs`,
//!   `.cjs`, `.css`, `.map`, `.woff`, `.woff2`, `.ttf` is a build hash
//!   (`main.8f3a…c1.js`), not a token.
//! - **Encoded**: a run of 16+ token characters whose base64 (standard or
//!   URL-safe, padded or not; pieces between `=`, or between `=` and `/`)
//!   decodes to text holding an email, card or phone number becomes that
//!   placeholder (`/unsubscribe/am9obkBzaG9wLmV4YW1wbGU=`, a newsletter link).
//! - **Card**: 13–19 digits, bare or in groups split by spaces, `-`, `.`, `+`,
//!   passing Luhn (not all zeros); also split by `_`, `,`, `/` or line breaks, one
//!   such separator throughout, in card groups (4-4-4-4…, 4-6-5, 4-6-4). Checked
//!   before phones: a card is never called a phone. A bare run of 16+ digits
//!   failing Luhn is a `[token]`.
//! - **Phone**: digit groups split by 1–3 of space, `-`, `.`, `(`, `)`, `+`, with
//!   7–15 digits after a leading `+`; a bare run of 10–15 digits; else 8–15 digits
//!   shaped like a number plan: with parentheses, with a national `0` prefix
//!   (`0171 1234567`), or 3+ groups ending in 3+ digits (`555-123-4567`). After a
//!   leading `+`, groups may also be split by `_`, `,`, `/` or line breaks
//!   (`+49,171,1234567`, `+49 171/1234567`); with a national `0` or parentheses,
//!   by line breaks (and `_ , /` right after the `)`), and one `/` may follow a
//!   `0`-led area code of 3–5 digits when 5+ digits follow (`0171/1234567`,
//!   `030/12345678`, the German notation). Never phones: dates (`2024-11-30`, `30.11.2024`), IPv4 addresses, thousands
//!   (`12.345.678`), groups of 4 digits only (years), one repeated digit, fewer than
//!   10 bare digits (`/p/40299672`), prices, sizes, versions. When `+` also
//!   separates the groups (`+1+555+123+4567`) the first `+` may be a form-encoded
//!   space: it is a country code only before 1–3 digits of a 9+ digit number with
//!   no letter glued to it.
//!
//! # Functions
//! [`text`] replaces each find and checks its result again, redacting until
//! [`has_secret`] is false (at worst the whole text becomes `[token]`). [`path`]
//! replaces whole `/` segments, drops the query and any fragment that is not a
//! route, and re-checks the path for a token split by `/`. [`url()`] also drops
//! credentials (and other schemes' content) and every query parameter but the
//! campaign and click ids, whose values are scrubbed; a host label holding a secret
//! becomes `redacted`. [`json`] scrubs custom-event props, keys included.
//! [`has_secret`] only tells.
//!
//! # Not caught, deliberately
//! Secrets with none of the shapes above: passwords and short or dictionary-like
//! strings (`password=hunter2`), letters-only single-case random strings, random
//! tokens under 20 characters, 0.3–6% of random 20-character tokens (under 0.5%
//! from 32 characters), obfuscated emails (`jane at mail dot example`), non-ASCII digits
//! other than fullwidth, phones written as words or as groups of two without `+` or
//! a leading `0` (`33 6 12 34 56 78`), 7-digit local numbers (`555 1234`), and
//! tokens inside click-id values (click ids are random by design). Over-redacted
//! on purpose: bare 10–15 digit ids (EAN barcodes, timestamps) become `[phone]`,
//! IBANs are cut up, the whole word around an email goes.

use std::{borrow::Cow, fmt::Write as _};

use serde_json::Value;
use url::{Host, Url};

pub use protocol::CLICK_ID_PARAMS;

/// Non-http schemes kept as just `scheme:`; any other scheme gives `None`.
const OTHER_SCHEMES: [&str; 30] = [
    "mailto",
    "tel",
    "sms",
    "callto",
    "javascript",
    "data",
    "blob",
    "about",
    "file",
    "ftp",
    "ftps",
    "ws",
    "wss",
    "chrome",
    "chrome-extension",
    "moz-extension",
    "safari-extension",
    "intent",
    "android-app",
    "ios-app",
    "whatsapp",
    "viber",
    "tg",
    "skype",
    "facetime",
    "maps",
    "geo",
    "market",
    "itms-apps",
    "webcal",
];

/// Decoding rounds at most (`%252540` needs 3).
const MAX_ROUNDS: usize = 5;
/// Extra redaction passes before a text is replaced whole.
const MAX_PASSES: usize = 3;
/// A run of `[A-Za-z0-9_+/=-]` this long sends a text to the slow path (the
/// shortest token is a 16-hex id).
const LONG_RUN: u32 = 16;
/// Fewer digits than this hold no phone or card number.
const MIN_DIGITS: u32 = 7;
/// Nesting of `ref=` URLs followed at most.
const MAX_URL_DEPTH: u8 = 3;
/// Digit groups looked at in one run of digits and separators; a longer run is
/// read in windows overlapping by [`GROUP_OVERLAP`] groups, more than a card
/// (19 digits) can span.
const MAX_GROUPS: usize = 48;
const GROUP_OVERLAP: usize = 20;

/// What a find is, in the order the placeholders are documented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Email,
    Card,
    Phone,
    Token,
}

impl Kind {
    const fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[email]",
            Kind::Card => "[card]",
            Kind::Phone => "[phone]",
            Kind::Token => "[token]",
        }
    }
}

/// A find in decoded bytes, `start..end`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
    kind: Kind,
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Free text (title, click text, selector, screen, form, field, event name, ad name,
/// error message, identify id...): every secret is replaced by its placeholder, the
/// rest is kept byte for byte. Borrowed when nothing was found.
#[must_use]
pub fn text(s: &str) -> Cow<'_, str> {
    let Some(mut out) = redact(s) else {
        return Cow::Borrowed(s);
    };
    for _ in 0..MAX_PASSES {
        match redact(&out) {
            None => return Cow::Owned(out),
            Some(next) => out = next,
        }
    }
    // Redaction keeps finding more: give the text up.
    Cow::Owned(Kind::Token.placeholder().to_owned())
}

/// A page path as the tracker sends it: may wrongly contain `?query` (dropped entirely) and a `#fragment`
/// (kept only when it is a route: starts with `/` or `!` or is a bare route name like `#cart`, `#product/12`;
/// the fragment is scrubbed like a path and its own `?query` dropped). Each `/` segment that (after decoding)
/// holds a secret becomes a placeholder; other segments are kept byte for byte (no re-encoding).
#[must_use]
pub fn path(p: &str) -> String {
    last_resort(path_once(p))
}

/// What the rules above left holding a secret (a find that only shows across the
/// pieces of a path or URL) is redacted piece by piece, and if that is not enough
/// the whole value goes: nothing that [`has_secret`] finds is ever returned.
/// Click-id values (random by design, kept) are not judged here.
fn last_resort(out: String) -> String {
    if !has_secret(&judged(&out)) {
        return out;
    }
    let mut clean = String::with_capacity(out.len());
    let mut click_id = false;
    for piece in out.split_inclusive(['/', '?', '&', '=', '#']) {
        let (body, delim) = match piece.char_indices().last() {
            Some((i, c)) if "/?&=#".contains(c) => (&piece[..i], &piece[i..]),
            _ => (piece, ""),
        };
        if has_secret(body) && !click_id {
            clean.push_str(Kind::Token.placeholder());
        } else {
            clean.push_str(body);
        }
        click_id = delim == "=" && CLICK_ID_PARAMS.contains(&body.to_ascii_lowercase().as_str());
        clean.push_str(delim);
    }
    if has_secret(&judged(&clean)) {
        Kind::Token.placeholder().to_owned()
    } else {
        clean
    }
}

/// `s` with the values of click-id parameters left out.
fn judged(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut skip = false;
    for piece in s.split_inclusive(['?', '&', '=', '#']) {
        let (body, delim) = match piece.char_indices().last() {
            Some((i, c)) if "?&=#".contains(c) => (&piece[..i], &piece[i..]),
            _ => (piece, ""),
        };
        if !skip {
            out.push_str(body);
        }
        skip = delim == "=" && CLICK_ID_PARAMS.contains(&body.to_ascii_lowercase().as_str());
        out.push_str(delim);
    }
    out
}

fn path_once(p: &str) -> String {
    let (main, fragment) = split_path(p);
    let mut out = String::with_capacity(main.len() + 8);
    push_path(main, &mut out);
    if let Some(f) = fragment {
        push_route(&mut out, f, true);
    }
    out
}

/// An absolute http(s) URL, or a path starting with `/`: credentials dropped; query keeps only allow-listed
/// parameters (`utm_*`, gclid, fbclid, msclkid, dclid, gbraid, wbraid, ttclid, twclid, ref) and their values are
/// scrubbed (a `ref=` value that is itself a URL is scrubbed recursively as a URL, else as text; click-id values
/// are kept as they are unless they hold an email/card/phone); the path scrubbed as `path()`; the fragment kept only
/// when it is a `#/…` or `#!…` route, else dropped. Other schemes (mailto:, tel:, javascript:, data:) become just
/// `scheme:`. Anything else: None.
#[must_use]
pub fn url(raw: &str) -> Option<String> {
    url_at(raw, 0, false).map(last_resort)
}

/// A link's href as the tracker sends it: scrubbed as [`url`], except that a bare
/// fragment name (`#cart`) is kept, since the tracker keeps a fragment in an href
/// only when it is a route of a hash-routed page.
#[must_use]
pub fn href(raw: &str) -> Option<String> {
    url_at(raw, 0, true).map(last_resort)
}

/// Custom-event properties: every key and every string value (recursively) scrubbed with `text`; a key that
/// becomes a placeholder must not overwrite another key (suffix it, e.g. `[email]`, `[email]#2`).
/// A number whose digits are a card or phone number becomes the placeholder string.
pub fn json(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Cow::Owned(clean) = text(s) {
                *s = clean;
            }
        }
        Value::Number(n) => {
            if let Some(kind) = number_secret(n) {
                *v = Value::String(kind.placeholder().to_owned());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(json),
        Value::Object(map) => {
            if map.keys().any(|k| needs_scan(k.as_bytes())) {
                let old = std::mem::take(map);
                let mut renamed = Vec::new();
                for (key, value) in old {
                    let clean = match text(&key) {
                        Cow::Borrowed(_) => None,
                        Cow::Owned(c) => Some(c),
                    };
                    match clean {
                        None => {
                            map.insert(key, value);
                        }
                        Some(c) => renamed.push((c, value)),
                    }
                }
                for (key, value) in renamed {
                    let mut unique = key.clone();
                    let mut n = 2;
                    while map.contains_key(&unique) {
                        unique = format!("{key}#{n}");
                        n += 1;
                    }
                    map.insert(unique, value);
                }
            }
            map.values_mut().for_each(json);
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Whether `s` (in any encoding) holds a secret: used by tests and by callers that must refuse rather than redact.
#[must_use]
pub fn has_secret(s: &str) -> bool {
    needs_scan(s.as_bytes()) && {
        let decoded = decode(s.as_bytes());
        !detect(&decoded.bytes, true).is_empty()
    }
}

// ---------------------------------------------------------------------------
// Text redaction
// ---------------------------------------------------------------------------

/// One redaction pass: `None` when `s` holds nothing.
fn redact(s: &str) -> Option<String> {
    if !needs_scan(s.as_bytes()) {
        return None;
    }
    let decoded = decode(s.as_bytes());
    let spans = detect(&decoded.bytes, false);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut done = 0;
    for span in spans {
        let mut start = decoded.origin(span.start);
        let mut end = decoded.origin(span.end);
        while start > 0 && !s.is_char_boundary(start) {
            start -= 1;
        }
        while end < s.len() && !s.is_char_boundary(end) {
            end += 1;
        }
        if end <= done {
            continue;
        }
        if start >= done {
            out.push_str(s.get(done..start).unwrap_or_default());
            out.push_str(span.kind.placeholder());
        }
        done = end.min(s.len());
    }
    out.push_str(s.get(done..).unwrap_or_default());
    Some(out)
}

/// The kind of secret held by a JSON number's digits.
fn number_secret(n: &serde_json::Number) -> Option<Kind> {
    let s = n.to_string();
    if s.len() < 7 {
        return None;
    }
    longest_kind(&detect(s.as_bytes(), false))
}

/// The kind of the longest find.
fn longest_kind(spans: &[Span]) -> Option<Kind> {
    spans.iter().max_by_key(|s| s.end - s.start).map(|s| s.kind)
}

// ---------------------------------------------------------------------------
// Paths and URLs
// ---------------------------------------------------------------------------

/// `(path, fragment)`: the query dropped, the fragment without its `#`.
fn split_path(p: &str) -> (&str, Option<&str>) {
    let b = p.as_bytes();
    let end = b
        .iter()
        .position(|&c| c == b'?' || c == b'#')
        .unwrap_or(b.len());
    let fragment = b[end..]
        .iter()
        .position(|&c| c == b'#')
        .map(|h| p.get(end + h + 1..).unwrap_or_default());
    (p.get(..end).unwrap_or_default(), fragment)
}

/// Push `p` with each `/` segment that holds a secret replaced by a placeholder;
/// then a token that only shows across segments (base64 holding `/`) is redacted
/// as in free text.
fn push_path(p: &str, out: &mut String) {
    let start = out.len();
    let mixed_neighbours = scrub_segments(p, out);
    let scrubbed = out.get(start..).unwrap_or_default();
    if mixed_neighbours && scrubbed.len() >= 20 {
        let decoded = decode(scrubbed.as_bytes());
        let mut spans = Vec::new();
        tokens(&decoded.bytes, &mut spans);
        if !spans.is_empty() {
            let clean = text(scrubbed).into_owned();
            out.truncate(start);
            out.push_str(&clean);
        }
    }
}

/// Push `p` with each `/` segment that holds a secret replaced by a placeholder.
/// Whether two neighbouring kept segments both mix letters with digits or cases,
/// as the pieces of a base64 token split by `/` do.
fn scrub_segments(p: &str, out: &mut String) -> bool {
    if !needs_scan(p.as_bytes()) {
        // No run of 16+ token characters, even across `/`: nothing to find.
        out.push_str(p);
        return false;
    }
    let (mut prev_mixed, mut neighbours) = (false, false);
    for (i, segment) in p.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if let Some(kind) = segment_secret(segment) {
            out.push_str(kind.placeholder());
            prev_mixed = false;
        } else {
            out.push_str(segment);
            let b = segment.as_bytes();
            let mixed = b.iter().any(u8::is_ascii_alphabetic)
                && b.iter()
                    .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
            neighbours |= prev_mixed && mixed;
            prev_mixed = mixed;
        }
    }
    neighbours
}

/// The kind of secret a path segment holds, after decoding.
fn segment_secret(segment: &str) -> Option<Kind> {
    if !needs_scan(segment.as_bytes()) {
        return None;
    }
    let decoded = decode(segment.as_bytes());
    longest_kind(&detect(&decoded.bytes, false))
}

/// Push `#fragment` when it is a route (`/…`, `!…`, or with `names` a bare route
/// name: the tracker sends `#cart` in a path only when it routes), scrubbed like a
/// path, without its own query. In URLs a bare name is an anchor and is dropped.
fn push_route(out: &mut String, fragment: &str, names: bool) {
    let route = fragment.split('?').next().unwrap_or_default();
    let bytes = route.as_bytes();
    match bytes.first() {
        Some(b'/') => {
            out.push('#');
            push_path(route, out);
        }
        Some(b'!') => {
            out.push_str("#!");
            push_path(route.get(1..).unwrap_or_default(), out);
        }
        Some(b)
            if names
                && b.is_ascii_alphabetic()
                && bytes
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || b"-_./~%".contains(&c)) =>
        {
            out.push('#');
            push_path(route, out);
        }
        _ => {}
    }
}

fn url_at(raw: &str, depth: u8, names: bool) -> Option<String> {
    let raw = raw.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
    if let Some(rest) = raw.strip_prefix("//") {
        // Protocol-relative: scrub as https, give it back without the scheme.
        let u = Url::parse(&format!("https://{rest}")).ok()?;
        let out = absolute(&u, depth, names)?;
        return Some(out.get("https:".len()..).unwrap_or_default().to_owned());
    }
    if raw.starts_with('/') {
        return Some(relative(raw, depth, names));
    }
    let u = Url::parse(raw).ok()?;
    match u.scheme() {
        "http" | "https" => absolute(&u, depth, names),
        s if OTHER_SCHEMES.contains(&s) => Some(format!("{s}:")),
        _ => None,
    }
}

fn absolute(u: &Url, depth: u8, names: bool) -> Option<String> {
    let mut out = String::with_capacity(u.as_str().len());
    out.push_str(u.scheme());
    out.push_str("://");
    match u.host()? {
        Host::Domain(d) => push_host(&mut out, d)?,
        Host::Ipv4(a) => {
            let _ = write!(out, "{a}");
        }
        Host::Ipv6(a) => {
            let _ = write!(out, "[{a}]");
        }
    }
    if let Some(port) = u.port() {
        let _ = write!(out, ":{port}");
    }
    push_path(u.path(), &mut out);
    if let Some(q) = u.query() {
        push_query(&mut out, q, depth);
    }
    if let Some(f) = u.fragment() {
        push_route(&mut out, f, names);
    }
    Some(out)
}

/// A host's labels that hold a secret become `redacted`; `None` if the host as a
/// whole still holds one.
fn push_host(out: &mut String, host: &str) -> Option<()> {
    if !has_secret(host) {
        out.push_str(host);
        return Some(());
    }
    let clean: Vec<&str> = host
        .split('.')
        .map(|l| if has_secret(l) { "redacted" } else { l })
        .collect();
    let clean = clean.join(".");
    if has_secret(&clean) {
        return None;
    }
    out.push_str(&clean);
    Some(())
}

fn relative(raw: &str, depth: u8, names: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let path_end = raw.find(['?', '#']).unwrap_or(raw.len());
    push_path(raw.get(..path_end).unwrap_or_default(), &mut out);
    let hash = raw.find('#');
    if raw.as_bytes().get(path_end) == Some(&b'?') {
        let q_end = hash.unwrap_or(raw.len());
        push_query(
            &mut out,
            raw.get(path_end + 1..q_end).unwrap_or_default(),
            depth,
        );
    }
    if let Some(h) = hash {
        push_route(&mut out, raw.get(h + 1..).unwrap_or_default(), names);
    }
    out
}

/// Push `?query` with only the allow-listed parameters, values scrubbed.
fn push_query(out: &mut String, query: &str, depth: u8) {
    let mut first = true;
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (name_raw, value_raw) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        let name = percent_decode(name_raw);
        let click = CLICK_ID_PARAMS
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&name));
        let is_ref = name.eq_ignore_ascii_case("ref");
        if !protocol::kept_param(&name) || has_secret(name_raw) {
            continue;
        }
        let value = match value_raw {
            None => None,
            Some(v) if click => Some(click_id_value(v)),
            Some(v) if is_ref => match ref_value(v, depth) {
                Some(v) => Some(v),
                None => continue,
            },
            Some(v) => Some(query_text(v)),
        };
        out.push(if first { '?' } else { '&' });
        first = false;
        out.push_str(name_raw);
        if let Some(v) = value {
            out.push('=');
            out.push_str(&v);
        }
    }
}

/// A query value scrubbed as text, kept in its own encoding; placeholders escaped.
fn query_text(v: &str) -> Cow<'_, str> {
    match text(v) {
        Cow::Borrowed(_) => Cow::Borrowed(v),
        Cow::Owned(s) => Cow::Owned(s.replace('[', "%5B").replace(']', "%5D")),
    }
}

/// A click id is random by design: only an email, card or phone in it counts.
fn click_id_value(v: &str) -> Cow<'_, str> {
    if !needs_scan(v.as_bytes()) {
        return Cow::Borrowed(v);
    }
    let decoded = decode(v.as_bytes());
    let spans = detect(&decoded.bytes, false);
    let worst = spans
        .iter()
        .filter(|s| s.kind != Kind::Token)
        .max_by_key(|s| s.end - s.start);
    match worst {
        Some(s) => Cow::Owned(s.kind.placeholder().replace('[', "%5B").replace(']', "%5D")),
        None => Cow::Borrowed(v),
    }
}

/// `ref=`: a URL is scrubbed as a URL (and encoded back), anything else as text.
/// `None` drops the parameter.
fn ref_value(v: &str, depth: u8) -> Option<Cow<'_, str>> {
    let decoded = percent_decode(v);
    let lower = decoded.get(..8).unwrap_or(&decoded).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || decoded.starts_with('/') {
        if depth >= MAX_URL_DEPTH {
            return None;
        }
        let clean = url_at(&decoded, depth + 1, false)?;
        if clean == decoded {
            return Some(Cow::Borrowed(v));
        }
        return Some(Cow::Owned(
            url::form_urlencoded::byte_serialize(clean.as_bytes()).collect(),
        ));
    }
    Some(query_text(v))
}

/// One round of `%XX` decoding (`+` left alone), lossy UTF-8.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (hex_at(b, i + 1), hex_at(b, i + 2))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

// ---------------------------------------------------------------------------
// Fast scan
// ---------------------------------------------------------------------------

/// Whether `s` could hold a secret: `@ % & \`, a `0xEF` lead byte (fullwidth
/// forms), 7+ digits, or a run of 16+ token characters (invisible characters
/// inside a run do not break it). Branch-free over 32-byte chunks.
fn needs_scan(s: &[u8]) -> bool {
    let (mut run, mut longest, mut digits, mut flags) = (0u32, 0u32, 0u32, 0u8);
    for chunk in s.chunks(32) {
        for &b in chunk {
            let class = BYTE_CLASS[usize::from(b)];
            flags |= class;
            digits += u32::from(class & DIGIT);
            run = if class & RUN == 0 { 0 } else { run + 1 };
            longest = longest.max(run);
        }
        if flags & TRIGGER != 0 || digits >= MIN_DIGITS || longest >= LONG_RUN {
            return true;
        }
    }
    // An invisible character may join two short runs.
    flags & LEAD != 0 && needs_scan_joined(s)
}

/// [`needs_scan`]'s run rule, skipping invisible characters.
fn needs_scan_joined(s: &[u8]) -> bool {
    let mut run = 0u32;
    let mut i = 0;
    while i < s.len() {
        if let Some(len) = invisible_at(s, i) {
            i += len;
            continue;
        }
        run = if BYTE_CLASS[usize::from(s[i])] & RUN == 0 {
            0
        } else {
            run + 1
        };
        if run >= LONG_RUN {
            return true;
        }
        i += 1;
    }
    false
}

/// Byte class bits for [`needs_scan`].
const DIGIT: u8 = 1;
const RUN: u8 = 2;
const TRIGGER: u8 = 4;
const LEAD: u8 = 8;
/// May start an escape or a look-alike decoded by [`decode`].
const ESCAPE: u8 = 16;

/// `@ % & \` and `0xEF` trigger the slow path; digits are counted; letters,
/// digits and `_ + / = -` make runs; the other lead bytes of [`invisible`]
/// characters may start one.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i {
            0x40 => TRIGGER,
            0x25 | 0x26 | 0x5C | 0xEF => TRIGGER | ESCAPE,
            0x30..=0x39 => DIGIT | RUN,
            0x41..=0x5A | 0x61..=0x7A | 0x5F | 0x2D | 0x2B | 0x2F | 0x3D => RUN,
            0xC2 | 0xD8 | 0xDB | 0xDC | 0xE0 | 0xE1 | 0xE2 | 0xF0 | 0xF3 => LEAD | ESCAPE,
            0xE3 => ESCAPE,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Characters that show nothing and are dropped before matching: every Unicode
/// format character (general category Cf: soft hyphen, zero-width space and
/// joiners, direction marks, embeddings, overrides and isolates, word joiner,
/// invisible operators, BOM, interlinear annotation, tags…) and the variation
/// selectors (`U+FE0F`). A page can put them between a number's digits; a browser
/// shows the number, the bytes break it.
fn invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xE0100..=0xE01EF
    )
}

/// The length of an [`invisible`] character starting at `i`.
fn invisible_at(s: &[u8], i: usize) -> Option<usize> {
    let len = match *s.get(i)? {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(s.get(i..i + len)?)
        .ok()?
        .chars()
        .next()?;
    invisible(c).then_some(len)
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decoded bytes and, for each, the offset in the original of the unit it came from
/// (plus a last entry: the original length). `map: None` means identity.
struct Decoded<'a> {
    bytes: Cow<'a, [u8]>,
    map: Option<Vec<usize>>,
}

impl Decoded<'_> {
    fn origin(&self, i: usize) -> usize {
        match &self.map {
            None => i,
            Some(m) => m.get(i).or(m.last()).copied().unwrap_or(i),
        }
    }
}

/// Whether a decoding round would change anything.
fn needs_decode(s: &[u8]) -> bool {
    let escapes = s.iter().fold(0u8, |f, &b| f | BYTE_CLASS[usize::from(b)]);
    if escapes & ESCAPE == 0 {
        return false;
    }
    s.iter().enumerate().any(|(i, &b)| match b {
        b'%' => percent_unit(s, i).is_some(),
        b'&' => entity_unit(s, i).is_some(),
        b'\\' => js_unit(s, i).is_some(),
        0xC2..=0xF4 => unicode_unit(s, i).is_some(),
        _ => false,
    })
}

fn decode(s: &[u8]) -> Decoded<'_> {
    let borrowed = Decoded {
        bytes: Cow::Borrowed(s),
        map: None,
    };
    if !needs_decode(s) {
        return borrowed;
    }
    let mut cur = Vec::with_capacity(s.len());
    let mut map = Vec::with_capacity(s.len() + 1);
    if !decode_once(s, &mut cur, &mut map) {
        return borrowed;
    }
    for _ in 1..MAX_ROUNDS {
        if !needs_decode(&cur) {
            break;
        }
        let mut next = Vec::with_capacity(cur.len());
        let mut next_map = Vec::with_capacity(cur.len() + 1);
        if !decode_once(&cur, &mut next, &mut next_map) {
            break;
        }
        for m in &mut next_map {
            *m = map.get(*m).copied().unwrap_or(s.len());
        }
        cur = next;
        map = next_map;
    }
    Decoded {
        bytes: Cow::Owned(cur),
        map: Some(map),
    }
}

/// What an escape stands for.
enum Unit {
    Char(char),
    Nothing,
}

/// One decoding round into `out`, with `map` (one entry per output byte plus the
/// input length). Whether anything was decoded.
fn decode_once(src: &[u8], out: &mut Vec<u8>, map: &mut Vec<usize>) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < src.len() {
        let found = match src[i] {
            b'%' => percent_unit(src, i),
            b'&' => entity_unit(src, i),
            b'\\' => js_unit(src, i),
            0xC2..=0xF4 => unicode_unit(src, i),
            _ => None,
        };
        if let Some((len, unit)) = found {
            changed = true;
            if let Unit::Char(c) = unit {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    out.push(b);
                    map.push(i);
                }
            }
            i += len;
        } else {
            out.push(src[i]);
            map.push(i);
            i += 1;
        }
    }
    map.push(src.len());
    changed
}

fn hex_at(s: &[u8], i: usize) -> Option<u8> {
    match *s.get(i)? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Up to `max` hex digits from `i`: `(value, digits)`.
fn hex_number(s: &[u8], i: usize, max: usize) -> (u32, usize) {
    let mut value = 0u32;
    let mut count = 0;
    while count < max {
        match hex_at(s, i + count) {
            Some(digit) => value = value << 4 | u32::from(digit),
            None => break,
        }
        count += 1;
    }
    (value, count)
}

fn percent_unit(s: &[u8], i: usize) -> Option<(usize, Unit)> {
    if let (Some(h), Some(l)) = (hex_at(s, i + 1), hex_at(s, i + 2)) {
        let b = h << 4 | l;
        // A byte of a multi-byte character is decoded only with the whole
        // character (`%C3%A9`), so decoded bytes stay UTF-8.
        return if b < 0x80 {
            Some((3, Unit::Char(char::from(b))))
        } else {
            utf8_percent(s, i)
        };
    }
    if matches!(s.get(i + 1), Some(b'u' | b'U')) {
        let (v, n) = hex_number(s, i + 2, 4);
        if n == 4 {
            return char::from_u32(v).map(|c| (6, Unit::Char(c)));
        }
    }
    None
}

/// `%E2%80%8B`-style: a percent-encoded UTF-8 character.
fn utf8_percent(s: &[u8], i: usize) -> Option<(usize, Unit)> {
    let mut bytes = [0u8; 4];
    let mut count = 0;
    while count < 4 {
        let at = i + 3 * count;
        if s.get(at) != Some(&b'%') {
            break;
        }
        let (Some(high), Some(low)) = (hex_at(s, at + 1), hex_at(s, at + 2)) else {
            break;
        };
        bytes[count] = high << 4 | low;
        count += 1;
        if let Ok(st) = std::str::from_utf8(&bytes[..count]) {
            return st.chars().next().map(|c| (3 * count, Unit::Char(c)));
        }
    }
    // Not UTF-8 (Latin-1 `%E9`…): left as it is.
    None
}

const ENTITIES: [(&[u8], char); 31] = [
    (b"commat", '@'),
    (b"period", '.'),
    (b"plus", '+'),
    (b"amp", '&'),
    (b"nbsp", ' '),
    (b"percnt", '%'),
    (b"lpar", '('),
    (b"rpar", ')'),
    (b"hyphen", '-'),
    (b"dash", '-'),
    (b"ndash", '-'),
    (b"mdash", '-'),
    (b"minus", '-'),
    (b"num", '#'),
    (b"sol", '/'),
    (b"bsol", '\\'),
    (b"colon", ':'),
    (b"semi", ';'),
    (b"comma", ','),
    (b"equals", '='),
    (b"lowbar", '_'),
    (b"quot", '"'),
    (b"apos", '\''),
    (b"lt", '<'),
    (b"gt", '>'),
    (b"excl", '!'),
    (b"quest", '?'),
    (b"ensp", ' '),
    (b"emsp", ' '),
    (b"thinsp", ' '),
    (b"shy", '\u{AD}'),
];

fn entity_unit(s: &[u8], i: usize) -> Option<(usize, Unit)> {
    if s.get(i + 1) == Some(&b'#') {
        // Any number of leading zeros, as browsers read them (`&#00000064;`).
        let hex = matches!(s.get(i + 2), Some(b'x' | b'X'));
        let digits = i + 2 + usize::from(hex);
        let zeros = run_end(s, digits, |b| b == b'0') - digits;
        let at = digits + zeros;
        let (value, count, end) = if hex {
            let (value, count) = hex_number(s, at, 6);
            (value, zeros + count, at + count)
        } else {
            let mut value = 0u32;
            let mut count = 0;
            while count < 7 {
                match s.get(at + count) {
                    Some(digit @ b'0'..=b'9') => value = value * 10 + u32::from(digit - b'0'),
                    _ => break,
                }
                count += 1;
            }
            (value, zeros + count, at + count)
        };
        if count == 0 {
            return None;
        }
        let len = end - i + usize::from(s.get(end) == Some(&b';'));
        return char::from_u32(value)
            .filter(|&c| c != '\0')
            .map(|c| (len, Unit::Char(c)));
    }
    let name_start = i + 1;
    let semi = s
        .get(name_start..)?
        .iter()
        .take(8)
        .position(|&b| b == b';')?;
    let name = s.get(name_start..name_start + semi)?;
    ENTITIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, c)| (semi + 2, Unit::Char(c)))
}

fn js_unit(s: &[u8], i: usize) -> Option<(usize, Unit)> {
    match s.get(i + 1)? {
        b'u' if s.get(i + 2) == Some(&b'{') => {
            let (v, n) = hex_number(s, i + 3, 6);
            (n > 0 && s.get(i + 3 + n) == Some(&b'}'))
                .then(|| char::from_u32(v).map(|c| (n + 4, Unit::Char(c))))
                .flatten()
        }
        b'u' => {
            let (v, n) = hex_number(s, i + 2, 4);
            (n == 4)
                .then(|| char::from_u32(v).map(|c| (6, Unit::Char(c))))
                .flatten()
        }
        b'x' => {
            let (v, n) = hex_number(s, i + 2, 2);
            (n == 2)
                .then(|| char::from_u32(v).map(|c| (4, Unit::Char(c))))
                .flatten()
        }
        // Legacy octal escapes (`\100` is `@`): 2 or 3 digits, printable ASCII only.
        b'0'..=b'7' => {
            let digits = run_end(s, i + 1, |b| matches!(b, b'0'..=b'7')).min(i + 4) - (i + 1);
            let mut n = digits;
            while n >= 2 {
                let v = s[i + 1..i + 1 + n]
                    .iter()
                    .fold(0u32, |v, &b| v * 8 + u32::from(b - b'0'));
                if (0x20..=0x7E).contains(&v) {
                    return char::from_u32(v).map(|c| (n + 1, Unit::Char(c)));
                }
                n -= 1;
            }
            None
        }
        _ => None,
    }
}

/// Unicode look-alikes: fullwidth ASCII, small/ideographic signs, spaces, dashes,
/// invisible characters.
fn unicode_unit(s: &[u8], i: usize) -> Option<(usize, Unit)> {
    if let Some(len) = invisible_at(s, i) {
        return Some((len, Unit::Nothing));
    }
    let b1 = *s.get(i + 1)?;
    if s[i] == 0xC2 {
        return match b1 {
            0xA0 => Some((2, Unit::Char(' '))),
            _ => None,
        };
    }
    let b2 = *s.get(i + 2)?;
    let unit = match (s[i], b1, b2) {
        (0xE2, 0x80, 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF)
        | (0xE2, 0x81, 0x9F)
        | (0xE3, 0x80, 0x80) => Unit::Char(' '),
        (0xE2, 0x80, 0x90..=0x95) | (0xE2, 0x88, 0x92) | (0xEF, 0xB9, 0xA3) => Unit::Char('-'),
        (0xE2, 0x80, 0xA4) | (0xE3, 0x80, 0x82) | (0xEF, 0xB9, 0x92) | (0xEF, 0xBD, 0xA1) => {
            Unit::Char('.')
        }
        (0xEF, 0xB9, 0xAB) => Unit::Char('@'),
        (0xEF, 0xBC, 0x81..=0xBF) | (0xEF, 0xBD, 0x80..=0x9E) => {
            // U+FF01..U+FF5E → U+0021..U+007E.
            let cp = (u32::from(b1 & 0x3F) << 6 | u32::from(b2 & 0x3F)) + 0xF000;
            Unit::Char(char::from_u32(cp - 0xFEE0)?)
        }
        _ => return None,
    };
    Some((3, unit))
}

// ---------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------

/// Every secret in decoded bytes, sorted and merged (an overlap takes the kind of
/// its longest find). With `first_only`, stops at the first detector that finds.
fn detect(d: &[u8], first_only: bool) -> Vec<Span> {
    let mut spans = Vec::new();
    if d.contains(&b'@') {
        emails(d, &mut spans);
        if first_only && !spans.is_empty() {
            return spans;
        }
    }
    tokens(d, &mut spans);
    if first_only && !spans.is_empty() {
        return spans;
    }
    numbers(d, &mut spans);
    weakly_split_numbers(d, &mut spans);
    merge(&mut spans);
    spans
}

fn merge(spans: &mut Vec<Span>) {
    if spans.len() < 2 {
        return;
    }
    spans.sort_unstable_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    let mut longest = 0;
    for s in spans.drain(..) {
        match merged.last_mut() {
            Some(last) if s.start < last.end => {
                if s.end - s.start > longest {
                    longest = s.end - s.start;
                    last.kind = s.kind;
                }
                last.end = last.end.max(s.end);
            }
            _ => {
                longest = s.end - s.start;
                merged.push(s);
            }
        }
    }
    *spans = merged;
}

// --- emails ---------------------------------------------------------------

fn emails(d: &[u8], spans: &mut Vec<Span>) {
    let mut from = 0;
    while let Some(off) = d
        .get(from..)
        .and_then(|r| r.iter().position(|&b| b == b'@'))
    {
        let at = from + off;
        from = at + 1;
        let mut start = at;
        // A quoted local part: `"jane doe"@mail.example`.
        if at > 0
            && d[at - 1] == b'"'
            && let Some(open) = d[..at - 1].iter().rposition(|&b| b == b'"')
        {
            start = open;
        }
        while start > 0 && is_local_byte(d[start - 1]) {
            start -= 1;
        }
        if !d[start..at]
            .iter()
            .any(|&b| b.is_ascii_alphanumeric() || b >= 0x80)
        {
            continue;
        }
        if let Some(end) = domain_end(d, at + 1) {
            spans.push(Span {
                start,
                end,
                kind: Kind::Email,
            });
            from = end;
        }
    }
}

/// Bytes of a local part, generously: anything but spaces and delimiters.
fn is_local_byte(b: u8) -> bool {
    b > b' '
        && b != 0x7F
        && !matches!(
            b,
            b'<' | b'>'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'"'
                | b','
                | b';'
                | b':'
                | b'='
                | b'/'
                | b'\\'
                | b'|'
                | b'@'
                | b'`'
        )
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80
}

/// End of `label.label…tld` from `start`, if it is a domain.
fn domain_end(d: &[u8], start: usize) -> Option<usize> {
    // Retina image names: icon@2x.png, icon@1.5x.png.
    let mut k = start;
    while k < d.len() && (d[k].is_ascii_digit() || d[k] == b'.') {
        k += 1;
    }
    if k > start
        && matches!(d.get(k), Some(b'x' | b'X'))
        && !d.get(k + 1).is_some_and(u8::is_ascii_alphanumeric)
    {
        return None;
    }
    let mut i = start;
    let mut labels = 0;
    let mut last = (start, start);
    loop {
        let label_start = i;
        while i < d.len() && is_domain_byte(d[i]) {
            i += 1;
        }
        if i == label_start {
            break;
        }
        labels += 1;
        last = (label_start, i);
        if d.get(i) == Some(&b'.') && d.get(i + 1).is_some_and(|&b| is_domain_byte(b)) {
            i += 1;
        } else {
            break;
        }
    }
    let tld = &d[last.0..last.1];
    (labels >= 2 && tld.len() >= 2 && tld.iter().any(|&b| b.is_ascii_alphabetic() || b >= 0x80))
        .then_some(last.1)
}

// --- tokens ---------------------------------------------------------------

/// Prefixed API keys: prefix and the least number of key characters after it.
const KEY_PREFIXES: [(&[u8], usize); 23] = [
    (b"sk_live_", 10),
    (b"sk_test_", 10),
    (b"pk_live_", 10),
    (b"pk_test_", 10),
    (b"rk_live_", 10),
    (b"rk_test_", 10),
    (b"whsec_", 16),
    (b"ghp_", 16),
    (b"gho_", 16),
    (b"ghu_", 16),
    (b"ghs_", 16),
    (b"ghr_", 16),
    (b"github_pat_", 16),
    (b"glpat-", 16),
    (b"xoxb-", 10),
    (b"xoxp-", 10),
    (b"xoxa-", 10),
    (b"xoxr-", 10),
    (b"xoxs-", 10),
    (b"xapp-", 10),
    (b"npm_", 16),
    (b"shpat_", 16),
    (b"shpss_", 16),
];

/// Static-asset extensions whose file names carry content hashes.
const ASSET_EXTENSIONS: [&[u8]; 8] = [
    b"js", b"mjs", b"cjs", b"css", b"map", b"woff", b"woff2", b"ttf",
];

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// End of the run of bytes matching `f` from `i`.
fn run_end(d: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
    d.get(i..)
        .and_then(|r| r.iter().position(|&b| !f(b)))
        .map_or(d.len(), |n| i + n)
}

fn tokens(d: &[u8], spans: &mut Vec<Span>) {
    // Every token shape has a run of 10+ token characters.
    let mut run = 0u32;
    let mut longest = 0u32;
    for &b in d {
        run = if BYTE_CLASS[usize::from(b)] & RUN == 0 {
            0
        } else {
            run + 1
        };
        longest = longest.max(run);
    }
    if longest < 10 {
        return;
    }
    let mut i = 0;
    // The shortest known shape is 13 bytes long.
    while i + 13 <= d.len() {
        let word_start = i == 0 || !d[i - 1].is_ascii_alphanumeric();
        if word_start
            && may_start_known_token(d[i], d[i + 1])
            && let Some(span) = known_token(d, i)
        {
            i = span.end;
            spans.push(span);
            continue;
        }
        i += 1;
    }
    let mut i = 0;
    while i < d.len() {
        if !is_run_byte(d[i]) {
            i += 1;
            continue;
        }
        let start = i;
        i = run_end(d, i, is_run_byte);
        if i - start >= 16 {
            if let Some(span) = encoded_secret(&d[start..i]) {
                spans.push(Span {
                    start: start + span.start,
                    end: start + span.end,
                    kind: span.kind,
                });
            } else {
                generic_run(d, start, i, spans);
            }
        }
    }
}

/// The base64 alphabets an encoded secret may be in, padded or not (and bits
/// after the last byte ignored, as decoders in browsers do).
const BASE64: [base64::engine::GeneralPurpose; 2] = {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone);
    [
        GeneralPurpose::new(&base64::alphabet::STANDARD, config),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, config),
    ]
};

/// Base64 in `run` holding a secret, standard or URL-safe, padded or not
/// (`am9obkBzaG9wLmV4YW1wbGU=`, an email in a newsletter link): the first piece
/// of 8+ characters between `=` (or between `=` and `/`, a path's separator)
/// that decoded is text (UTF-8, no control character) holding an email, a card
/// or a phone number; its span in `run`, with the padding after it. Random ids
/// decode to bytes that are no text.
fn encoded_secret(run: &[u8]) -> Option<Span> {
    use base64::Engine as _;
    // Each piece between `=`, then the parts of it between `/` where it has one:
    // no piece is decoded twice.
    let pieces = run.split(|&b| b == b'=').flat_map(|piece| {
        let parts = piece.contains(&b'/').then(|| piece.split(|&b| b == b'/'));
        std::iter::once(piece).chain(parts.into_iter().flatten())
    });
    for piece in pieces.filter(|p| p.len() >= 8 && p.len() % 4 != 1) {
        for engine in &BASE64 {
            let Ok(bytes) = engine.decode(piece) else {
                continue;
            };
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            if text.chars().any(char::is_control) {
                continue;
            }
            let found = detect(text.as_bytes(), false);
            if let Some(kind) = found
                .iter()
                .map(|s| s.kind)
                .find(|k| !matches!(k, Kind::Token))
            {
                // `piece` is a slice of `run`.
                let start = piece.as_ptr() as usize - run.as_ptr() as usize;
                let end = run_end(run, start + piece.len(), |b| b == b'=');
                return Some(Span { start, end, kind });
            }
        }
    }
    None
}

/// The first two bytes of a key prefix, `eyJ`, `SG.` or `Bearer`.
fn may_start_known_token(a: u8, b: u8) -> bool {
    matches!(
        (a, b),
        (b's', b'k' | b'h')
            | (b'p' | b'r' | b'n', b'k' | b'p')
            | (b'w', b'h')
            | (b'g', b'h' | b'i' | b'l')
            | (b'x', b'o' | b'a')
            | (b'A', b'K' | b'S' | b'I')
            | (b'S', b'G')
            | (b'e', b'y')
            | (b'B' | b'b', b'e' | b'E')
    )
}

/// A token of a known shape starting at word start `i`.
fn known_token(d: &[u8], i: usize) -> Option<Span> {
    let rest = &d[i..];
    let token = |end: usize| {
        Some(Span {
            start: i,
            end,
            kind: Kind::Token,
        })
    };
    for (prefix, min) in KEY_PREFIXES {
        if prefix[..2] == rest[..2] && rest.starts_with(prefix) {
            let from = i + prefix.len();
            let end = run_end(d, from, is_b64url);
            return if end - from >= min { token(end) } else { None };
        }
    }
    if rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA") {
        let end = run_end(d, i + 4, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
        return if end - (i + 4) >= 16 {
            token(end)
        } else {
            None
        };
    }
    if rest.starts_with(b"AIza") {
        let end = run_end(d, i + 4, is_b64url);
        return if end - (i + 4) >= 30 {
            token(end)
        } else {
            None
        };
    }
    if rest.starts_with(b"SG.") {
        let mid = run_end(d, i + 3, is_b64url);
        if mid - (i + 3) >= 16 && d.get(mid) == Some(&b'.') {
            let end = run_end(d, mid + 1, is_b64url);
            return if end - (mid + 1) >= 16 {
                token(end)
            } else {
                None
            };
        }
        return None;
    }
    if rest.starts_with(b"eyJ") {
        return jwt(d, i);
    }
    if rest.len() > 6 && rest[..6].eq_ignore_ascii_case(b"bearer") {
        return bearer(d, i + 6);
    }
    None
}

fn jwt(d: &[u8], i: usize) -> Option<Span> {
    let b64 = |b: u8| is_b64url(b) || b == b'+' || b == b'/' || b == b'=';
    let end1 = run_end(d, i, b64);
    if end1 - i < 10 {
        return None;
    }
    let mut end = end1;
    let mut parts = 1;
    while parts < 3 && d.get(end) == Some(&b'.') {
        let next = run_end(d, end + 1, b64);
        if next - (end + 1) < 2 && parts == 1 {
            break;
        }
        end = next;
        parts += 1;
    }
    (parts >= 2 || end1 - i >= 20).then_some(Span {
        start: i,
        end,
        kind: Kind::Token,
    })
}

/// `Bearer <token>`: the token (16+ characters).
fn bearer(d: &[u8], after: usize) -> Option<Span> {
    let start = run_end(d, after, |b| matches!(b, b' ' | b'\t' | b'+' | b':'));
    if start == after {
        return None;
    }
    let end = run_end(d, start, |b| is_b64url(b) || b"._~+/=".contains(&b));
    (end - start >= 16).then_some(Span {
        start,
        end,
        kind: Kind::Token,
    })
}

fn is_run_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=')
}

fn is_piece_sep(b: u8) -> bool {
    matches!(b, b'_' | b'-' | b'+' | b'=' | b'/')
}

/// A run of `[A-Za-z0-9_+=/-]`: a token when it holds a hex id, or is 20+ long and
/// random-looking. A run starting with `/` is a path, judged by `/`-parts:
/// consecutive parts that show any sign of randomness form a region, judged alone.
fn generic_run(d: &[u8], start: usize, end: usize, spans: &mut Vec<Span>) {
    if d[start] != b'/' {
        // Not a path: one unit, `/` splitting pieces like `+` (standard base64).
        let asset = is_asset_extension(d, end);
        let sig = if asset {
            Signals::default()
        } else {
            part_signals(&d[start..end], end - start >= 20)
        };
        if sig.strong || (end - start >= 20 && sig.random_looking()) {
            spans.push(Span {
                start,
                end,
                kind: Kind::Token,
            });
        }
        return;
    }
    let mut region: Option<(usize, usize, Signals)> = None;
    let mut flush = |region: &mut Option<(usize, usize, Signals)>| {
        if let Some((s, e, sig)) = region.take()
            && (sig.strong || (e - s >= 20 && sig.random_looking()))
        {
            spans.push(Span {
                start: s,
                end: e,
                kind: Kind::Token,
            });
        }
    };
    let mut p = start;
    loop {
        let q = d[p..end]
            .iter()
            .position(|&b| b == b'/')
            .map_or(end, |n| p + n);
        let asset = q == end && is_asset_extension(d, end);
        let sig = if asset {
            Signals::default()
        } else {
            part_signals(&d[p..q], true)
        };
        if sig.suspicious() {
            let r = region.get_or_insert((p, q, Signals::default()));
            r.1 = q;
            r.2.add(sig);
        } else {
            flush(&mut region);
        }
        if q >= end {
            break;
        }
        p = q + 1;
    }
    flush(&mut region);
}

/// Whether `.js`, `.css`… follows `end` (a content-hashed asset name).
fn is_asset_extension(d: &[u8], end: usize) -> bool {
    if d.get(end) != Some(&b'.') {
        return false;
    }
    let ext_end = run_end(d, end + 1, |b| b.is_ascii_alphanumeric());
    let ext = &d[end + 1..ext_end];
    ASSET_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext))
}

/// Letter pairs (case-folded) common in English, German, French and Spanish
/// words: bit `b` of row `a` is set when `ab` occurs in 200+ words of the Debian
/// word lists. Uniformly random letters make a rare pair 27% of the time, words
/// 0.3% of the time.
const COMMON_BIGRAMS: [u32; 26] = [
    0x3FF_FFFF, 0x37E_FFFB, 0x11F_4D95, 0x37E_FFFB, 0x3FF_FFFF, 0x25E_FDF3, 0x35E_7DF3, 0x37E_FDFB,
    0x2FF_FFFF, 0x010_4111, 0x37E_FDF3, 0x37F_FDFF, 0x35E_FDFB, 0x37F_FFFF, 0x3FF_FFFF, 0x11E_C9B1,
    0x010_0000, 0x37F_FFFF, 0x37F_FFFF, 0x37E_FDFF, 0x3EF_FFFF, 0x016_4111, 0x016_6991, 0x118_C195,
    0x01E_F95F, 0x35C_DD73,
];

fn common_bigram(a: u8, b: u8) -> bool {
    let a = a.to_ascii_lowercase().wrapping_sub(b'a');
    let b = b.to_ascii_lowercase().wrapping_sub(b'a');
    a >= 26 || b >= 26 || COMMON_BIGRAMS[usize::from(a)] >> b & 1 == 1
}

/// What the pieces of a run tell about randomness.
#[derive(Clone, Copy, Default)]
struct Signals {
    /// Rare letter pairs inside camel-case words, and all pairs counted.
    rare: usize,
    pairs: usize,
    /// A piece mixes letters and digits or cases like random text does.
    random: bool,
    /// A hex id: 16+ hex characters with digits and letters, or a UUID.
    strong: bool,
}

impl Signals {
    fn add(&mut self, o: Signals) {
        self.rare += o.rare;
        self.pairs += o.pairs;
        self.random |= o.random;
        self.strong |= o.strong;
    }
    fn suspicious(self) -> bool {
        self.random || self.strong || self.rare > 0
    }
    fn random_looking(self) -> bool {
        self.random || (self.rare >= 3 && self.rare * 100 >= self.pairs * 12)
    }
}

/// The signals of one `/`-part: pieces split on `-_+=`, and dash-joined hex
/// pieces (UUIDs).
fn part_signals(part: &[u8], full: bool) -> Signals {
    let mut sig = Signals::default();
    // Dash-joined hex chain: hex count, pieces holding digits and letters.
    let mut chain = (0usize, 0usize);
    let mut i = 0;
    while i <= part.len() {
        let e = part[i..]
            .iter()
            .position(|&b| is_piece_sep(b))
            .map_or(part.len(), |n| i + n);
        let piece = &part[i..e];
        sig.add(piece_signals(piece, full));
        let all_hex = piece.len() >= 4 && piece.iter().all(u8::is_ascii_hexdigit);
        if all_hex {
            let mixed =
                piece.iter().any(u8::is_ascii_digit) && piece.iter().any(u8::is_ascii_alphabetic);
            chain = (chain.0 + piece.len(), chain.1 + usize::from(mixed));
            sig.strong |= chain.0 >= 16 && chain.1 >= 2;
        }
        if !all_hex || part.get(e) != Some(&b'-') {
            chain = (0, 0);
        }
        i = e + 1;
    }
    sig
}

/// A run of 16+ hex characters holding digits and letters inside a piece.
fn hex_inside(piece: &[u8]) -> bool {
    if piece.len() < 16 {
        return false;
    }
    let mut i = 0;
    while i < piece.len() {
        let e = run_end(piece, i, |b| b.is_ascii_hexdigit());
        if e - i >= 16
            && piece[i..e].iter().any(u8::is_ascii_digit)
            && piece[i..e].iter().any(u8::is_ascii_alphabetic)
        {
            return true;
        }
        i = e + 1;
    }
    false
}

/// Calls `f` with each camel-case word of `p`: `getHTMLElement2` gives `get`,
/// `HTML`, `Element`, `2`.
fn camel_words(p: &[u8], mut f: impl FnMut(&[u8])) {
    let mut start = 0;
    for i in 1..p.len() {
        let (a, b) = (p[i - 1], p[i]);
        if a.is_ascii_digit() != b.is_ascii_digit()
            || (a.is_ascii_lowercase() && b.is_ascii_uppercase())
        {
            f(&p[start..i]);
            start = i;
        } else if a.is_ascii_uppercase()
            && b.is_ascii_lowercase()
            && i - start >= 2
            && p[i - 2].is_ascii_uppercase()
        {
            f(&p[start..i - 1]);
            start = i - 1;
        }
    }
    f(&p[start..]);
}

/// The signals of one piece (letters and digits): random when letters and digits
/// switch 3+ times (`a1b2c3d4`), or when mixed case cuts it into 4+ camel-case
/// words shorter than 3.5 letters on average; rare letter pairs counted in pieces
/// of 6+. Without `full` (a run too short to be a random token) only hex ids.
fn piece_signals(p: &[u8], full: bool) -> Signals {
    let mut sig = Signals {
        strong: hex_inside(p),
        ..Signals::default()
    };
    if !full || p.len() < 6 {
        return sig;
    }
    let (mut digits, mut upper, mut lower, mut switches) = (0usize, false, false, 0usize);
    // Letter pairs, right when there is no upper case (camel words then split
    // only at digits).
    let (mut pairs, mut rare) = (0usize, 0usize);
    let mut prev: Option<u8> = None;
    for &b in p {
        if !b.is_ascii_alphanumeric() {
            return sig;
        }
        let digit = b.is_ascii_digit();
        digits += usize::from(digit);
        upper |= b.is_ascii_uppercase();
        lower |= b.is_ascii_lowercase();
        if let Some(a) = prev {
            switches += usize::from(digit != a.is_ascii_digit());
            if !digit && a.is_ascii_alphabetic() {
                pairs += 1;
                rare += usize::from(!common_bigram(a, b));
            }
        }
        prev = Some(b);
    }
    let letters = p.len() - digits;
    let n = p.len();
    let letters_digits = digits >= 2 && letters >= 2 && switches >= if n >= 12 { 3 } else { 4 };
    if !upper {
        sig.pairs = pairs;
        sig.rare = rare;
        sig.random = n >= 8 && letters_digits;
        return sig;
    }
    // Camel-case words: count, letters, one-letter words, rare pairs outside
    // acronyms.
    let (mut words, mut word_letters, mut singles, mut rare_in_words) = (0, 0, 0, 0);
    camel_words(p, |w| {
        if w.first().is_some_and(u8::is_ascii_alphabetic) {
            words += 1;
            word_letters += w.len();
            singles += usize::from(w.len() == 1);
            let acronym = !w.iter().any(u8::is_ascii_lowercase);
            for pair in w.windows(2) {
                let rare = !common_bigram(pair[0], pair[1]);
                sig.pairs += 1;
                sig.rare += usize::from(rare);
                rare_in_words += usize::from(rare && !acronym);
            }
        }
    });
    let case_soup = lower
        && words >= 4
        && word_letters * 10 < words * 35
        && (singles >= 2 || rare_in_words >= 1);
    sig.random = n >= 8 && (letters_digits || case_soup);
    sig
}

// --- cards and phones -----------------------------------------------------

/// A run of digit groups with what precedes it.
struct Run<'a> {
    d: &'a [u8],
    groups: &'a [(usize, usize)],
    /// Start including a leading `+` and/or `(`.
    lead: usize,
    plus: bool,
    paren: bool,
}

impl Run<'_> {
    fn len(&self, k: usize) -> usize {
        self.groups[k].1 - self.groups[k].0
    }
    fn digits(&self, a: usize, b: usize) -> usize {
        (a..=b).map(|k| self.len(k)).sum()
    }
    fn sep(&self, k: usize) -> &[u8] {
        &self.d[self.groups[k].1..self.groups[k + 1].0]
    }
    fn value(&self, k: usize) -> u32 {
        self.d[self.groups[k].0..self.groups[k].1]
            .iter()
            .take(6)
            .fold(0, |v, &b| v * 10 + u32::from(b - b'0'))
    }
    fn start(&self, a: usize) -> usize {
        if a == 0 { self.lead } else { self.groups[a].0 }
    }
}

fn numbers(d: &[u8], spans: &mut Vec<Span>) {
    if d.iter().filter(|b| b.is_ascii_digit()).count() < 7 {
        return;
    }
    let mut groups = [(0usize, 0usize); MAX_GROUPS];
    let mut at = 0;
    while at < d.len() {
        if !d[at].is_ascii_digit() {
            at += 1;
            continue;
        }
        let mut count = 0;
        loop {
            let group_start = at;
            at = run_end(d, at, |b| b.is_ascii_digit());
            groups[count] = (group_start, at);
            count += 1;
            if count == MAX_GROUPS {
                // Read on from a group well inside this window.
                at = groups[MAX_GROUPS - GROUP_OVERLAP].0;
                break;
            }
            match separator_end(d, at) {
                Some(next) => at = next,
                None => break,
            }
        }
        number_run(d, &groups[..count], spans);
    }
}

/// After a digit group: 1–3 separators then a digit (at most one `.` and one `-`).
fn separator_end(d: &[u8], j: usize) -> Option<usize> {
    let (mut k, mut dots, mut dashes) = (j, 0, 0);
    while k < d.len() && k - j < 3 {
        match d[k] {
            b'.' => dots += 1,
            b'-' => dashes += 1,
            b' ' | b'(' | b')' | b'+' | b'\t' => {}
            _ => break,
        }
        k += 1;
    }
    (k > j && dots <= 1 && dashes <= 1 && d.get(k).is_some_and(u8::is_ascii_digit)).then_some(k)
}

/// Separators a number is sometimes written with that are no separators for
/// [`numbers`] (in lists, dates, prices and sizes they are something else).
const WEAK_SEPARATORS: &[u8] = b"_,/\r\n";

/// Digit groups split by `_`, `,`, `/` or a line break, read again with those as
/// spaces (the same length, so offsets stay): a card in card groups
/// ([`card_grouped`]) with one such separator throughout (`4111_1111_1111_1111`);
/// a phone led by a country code's `+` (`+49,171,1234567`, `+49 171/1234567`);
/// a phone led by a national `0` or a parenthesis split by a line break
/// (`0171⏎1234567`), or by `_`, `,` or `/` right after its `)` (`(555)_123-4567`),
/// or with one `/` after a `0`-led area code of 3–5 digits and 5+ digits after it
/// (`0171/1234567`, `030/12345678`). Dates (`03/12/2026`), sizes (`42/44`), prices
/// (`1,299.00`) and lists stay.
fn weakly_split_numbers(d: &[u8], spans: &mut Vec<Span>) {
    if !d.iter().any(|b| WEAK_SEPARATORS.contains(b)) {
        return;
    }
    let mut found = Vec::new();
    numbers(&respaced(d, |_, _| true), &mut found);
    spans.extend(found.drain(..).filter(|s| match s.kind {
        Kind::Card => card_grouped(d, s),
        Kind::Phone => d[s.start] == b'+',
        _ => false,
    }));
    let national = respaced(d, |stretch, at| match d[at] {
        b'\r' | b'\n' => true,
        // `(555)_123-4567`, `(555),123-4567`, `(555)/123-4567`.
        b'_' | b',' | b'/' if d[stretch.0] == b')' && at == stretch.0 + 1 => true,
        b'/' => area_code_slash(d, stretch),
        _ => false,
    });
    numbers(&national, &mut found);
    spans.extend(
        found
            .into_iter()
            .filter(|s| s.kind == Kind::Phone && matches!(d[s.start], b'0' | b'(')),
    );
}

/// `d` with each weak separator between two digit groups that `keep` accepts (given
/// the separators' stretch `(start, end)` and the byte's offset) as a space.
fn respaced(d: &[u8], mut keep: impl FnMut((usize, usize), usize) -> bool) -> Vec<u8> {
    let mut out = d.to_vec();
    let mut i = 0;
    while i < d.len() {
        if !(d[i].is_ascii_digit() && d.get(i + 1).is_some_and(|b| !b.is_ascii_digit())) {
            i += 1;
            continue;
        }
        let start = i + 1;
        let end = run_end(d, start, |b| {
            b" \t()-.+".contains(&b) || WEAK_SEPARATORS.contains(&b)
        });
        if end - start <= 3 && d.get(end).is_some_and(u8::is_ascii_digit) {
            for at in start..end {
                if WEAK_SEPARATORS.contains(&d[at]) && keep((start, end), at) {
                    out[at] = b' ';
                }
            }
        }
        i = end;
    }
    out
}

/// A `/` (with spaces around it, or none) after the area code of a national number
/// (`0171/1234567`): the group before it has 3–5 digits, starts with `0` and
/// starts its number; 5+ digits follow in groups split by spaces, `-` or `.`.
fn area_code_slash(d: &[u8], (start, end): (usize, usize)) -> bool {
    let stretch = &d[start..end];
    let slash = stretch.iter().position(|&b| b == b'/');
    if slash.is_none()
        || slash != stretch.iter().rposition(|&b| b == b'/')
        || stretch.iter().any(|&b| b != b'/' && b != b' ')
    {
        return false;
    }
    let code_start = d[..start]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |p| p + 1);
    let glued = code_start > 0 && b"-./,_".contains(&d[code_start - 1]);
    let after_digits = d[..code_start]
        .iter()
        .rev()
        .find(|&&b| b != b' ')
        .is_some_and(u8::is_ascii_digit);
    let first = !glued && !after_digits;
    let after = run_end(d, end, |b| b.is_ascii_digit() || b" -.".contains(&b));
    let rest = d[end..after].iter().filter(|b| b.is_ascii_digit()).count();
    first && d[code_start] == b'0' && (3..=5).contains(&(start - code_start)) && rest >= 5
}

/// A card found in [`respaced`] bytes that is written as cards are: one separator
/// throughout, groups of 4 (the last 1–4) or Amex's and Diners' 4-6-5 and 4-6-4.
fn card_grouped(d: &[u8], s: &Span) -> bool {
    let part = &d[s.start..s.end];
    if !part.iter().any(|b| WEAK_SEPARATORS.contains(b)) {
        return true;
    }
    let mut lens = Vec::new();
    let mut seps: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < part.len() {
        let e = run_end(part, i, |b| b.is_ascii_digit());
        lens.push(e - i);
        let next = run_end(part, e, |b| !b.is_ascii_digit());
        if next > e && next < part.len() {
            seps.push(&part[e..next]);
        }
        i = next;
    }
    let one_separator = seps.windows(2).all(|w| w[0] == w[1]);
    let fours = lens.len() >= 4
        && lens[..lens.len() - 1].iter().all(|&l| l == 4)
        && (1..=4).contains(&lens[lens.len() - 1]);
    one_separator && (fours || lens == [4, 6, 5] || lens == [4, 6, 4])
}

fn number_run(d: &[u8], groups: &[(usize, usize)], spans: &mut Vec<Span>) {
    if groups.iter().map(|g| g.1 - g.0).sum::<usize>() < 7 {
        return;
    }
    let mut lead = groups[0].0;
    let mut paren = false;
    let mut plus = false;
    if lead > 0 && d[lead - 1] == b'(' {
        lead -= 1;
        paren = true;
    }
    let plus_separates =
        (0..groups.len() - 1).any(|k| d[groups[k].1..groups[k + 1].0].contains(&b'+'));
    if lead > 0 && d[lead - 1] == b'+' {
        // `+44+20+7946+0958`, `Size+42+43`: `+` may be form-encoded spaces; the
        // first is still read as a country code when it looks like one, the number
        // is long and no letter is glued to it.
        let total: usize = groups.iter().map(|g| g.1 - g.0).sum();
        let glued = lead > 1 && d[lead - 2].is_ascii_alphanumeric();
        plus = !plus_separates || (!glued && groups[0].1 - groups[0].0 <= 3 && total >= 9);
        if plus || !glued {
            lead -= 1;
        }
    }
    let run = Run {
        d,
        groups,
        lead,
        plus,
        paren,
    };
    let n = groups.len();
    // Cards first: every group range of 13–19 digits passing Luhn, but for one
    // of at most 15 digits led by a country code: that is a phone number (E.164)
    // that passes Luhn, as one in ten does (`+49 151 12345678`).
    let mut taken = [false; MAX_GROUPS];
    for a in 0..n {
        let mut sum = 0;
        let mut best = None;
        for b in a..n {
            sum += run.len(b);
            if sum > 19 {
                break;
            }
            let phone = a == 0 && run.plus && sum <= 15;
            if sum >= 13 && !phone && luhn(d, &groups[a..=b]) {
                best = Some(b);
            }
        }
        if let Some(b) = best {
            spans.push(Span {
                start: groups[a].0,
                end: groups[b].1,
                kind: Kind::Card,
            });
            taken[a..=b].iter_mut().for_each(|t| *t = true);
        }
    }
    // Long bare digit runs that are no card.
    for k in 0..n {
        if !taken[k] && run.len(k) >= 16 {
            spans.push(Span {
                start: groups[k].0,
                end: groups[k].1,
                kind: Kind::Token,
            });
            taken[k] = true;
        }
    }
    // Phones in each stretch of groups left.
    let mut a = 0;
    while a < n {
        if taken[a] {
            a += 1;
            continue;
        }
        let mut b = a;
        while b + 1 < n && !taken[b + 1] {
            b += 1;
        }
        phones(&run, a, b, spans);
        a = b + 1;
    }
}

fn phones(run: &Run, a: usize, b: usize, spans: &mut Vec<Span>) {
    let mut push = |x: usize, y: usize| {
        spans.push(Span {
            start: run.start(x),
            end: run.groups[y].1,
            kind: Kind::Phone,
        });
    };
    if phone_ok(run, a, b) {
        push(a, b);
        return;
    }
    let mut x = a;
    while x <= b {
        // The longest stretch from `x` with at most 15 digits, then shorter ones.
        let mut longest = x;
        let mut sum = run.len(x);
        while longest < b && sum + run.len(longest + 1) <= 15 {
            longest += 1;
            sum += run.len(longest);
        }
        let found = (x..=longest)
            .rev()
            .find(|&y| (x, y) != (a, b) && phone_ok(run, x, y));
        match found {
            Some(y) => {
                push(x, y);
                x = y + 1;
            }
            None => x += 1,
        }
    }
}

fn phone_ok(run: &Run, x: usize, y: usize) -> bool {
    let digits = run.digits(x, y);
    if !(7..=15).contains(&digits) || one_digit_repeated(run, x, y) {
        return false;
    }
    let plus = x == 0 && run.plus;
    if x == y {
        return plus || digits >= 10;
    }
    if is_date(run, x, y) || is_ipv4(run, x, y) {
        return false;
    }
    if plus {
        return true;
    }
    if digits < 8 {
        return false;
    }
    let last = run.len(y);
    let paren =
        (x == 0 && run.paren) || (x..y).any(|k| run.sep(k).iter().any(|&c| c == b'(' || c == b')'));
    if paren {
        return last >= 3;
    }
    let first = run.len(x);
    if run.d[run.groups[x].0] == b'0' && first >= 2 {
        return last >= 2;
    }
    let years = (x..=y).all(|k| run.len(k) == 4);
    let thousands = first <= 3 && (x + 1..=y).all(|k| run.len(k) == 3);
    y - x >= 2 && last >= 3 && !years && !thousands
}

/// `0000 0000 0000`: a mask, not a number.
fn one_digit_repeated(run: &Run, x: usize, y: usize) -> bool {
    let first = run.d[run.groups[x].0];
    (x..=y).all(|k| {
        run.d[run.groups[k].0..run.groups[k].1]
            .iter()
            .all(|&b| b == first)
    })
}

/// `2024-11-30`, `30.11.2024`, `11.30.2024` at group `x`.
fn is_date(run: &Run, x: usize, y: usize) -> bool {
    if y < x + 2 {
        return false;
    }
    let (s1, s2) = (run.sep(x), run.sep(x + 1));
    if s1 != s2 || !matches!(s1, b"-" | b"." | b"/") {
        return false;
    }
    let (l0, l1, l2) = (run.len(x), run.len(x + 1), run.len(x + 2));
    let (v0, v1, v2) = (run.value(x), run.value(x + 1), run.value(x + 2));
    let year = |v: u32| (1900..=2099).contains(&v);
    let day = |v: u32| (1..=31).contains(&v);
    if l0 == 4 && l1 <= 2 && l2 <= 2 {
        return year(v0) && (1..=12).contains(&v1) && day(v2);
    }
    l0 <= 2 && l1 <= 2 && l2 == 4 && year(v2) && day(v0) && day(v1) && (v0 <= 12 || v1 <= 12)
}

fn is_ipv4(run: &Run, x: usize, y: usize) -> bool {
    y == x + 3 && (x..y).all(|k| run.sep(k) == b".") && (x..=y).all(|k| run.len(k) <= 3)
}

fn luhn(d: &[u8], groups: &[(usize, usize)]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &(s, e) in groups.iter().rev() {
        for &b in d[s..e].iter().rev() {
            let mut v = u32::from(b - b'0');
            if double {
                v *= 2;
                if v > 9 {
                    v -= 9;
                }
            }
            sum += v;
            double = !double;
        }
    }
    sum != 0 && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // --- helpers -----------------------------------------------------------

    /// What a browser, a log viewer or an attacker would decode: `+` as space and
    /// `%XX` until stable, then HTML references and Unicode look-alikes.
    fn decode_fully(s: &str) -> String {
        let mut cur = s.to_owned();
        for _ in 0..8 {
            let next = percent_decode(&cur.replace('+', " ")).into_owned();
            if next == cur {
                break;
            }
            cur = next;
        }
        String::from_utf8_lossy(&decode(cur.as_bytes()).bytes).into_owned()
    }

    fn digits_of(s: &str) -> String {
        s.chars().filter(char::is_ascii_digit).collect()
    }

    /// Percent-encode everything but unreserved characters.
    fn pct(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    fn fullwidth(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '@' | '0'..='9' => char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c),
                _ => c,
            })
            .collect()
    }

    fn entities(s: &str, f: impl Fn(char) -> String) -> String {
        s.chars()
            .map(|c| {
                if "@.+ -()".contains(c) {
                    f(c)
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    /// Every encoding of `plain` a browser (or a careless script) may send.
    fn encodings(plain: &str) -> Vec<(&'static str, String)> {
        let form: String = url::form_urlencoded::byte_serialize(plain.as_bytes()).collect();
        let all = vec![
            ("plain", plain.to_owned()),
            ("pct", pct(plain)),
            ("pct2", pct(&pct(plain))),
            ("pct3", pct(&pct(&pct(plain)))),
            ("plus", plain.replace(' ', "+")),
            ("form", form.clone()),
            ("form-pct", pct(&form)),
            (
                "html-dec",
                entities(plain, |c| format!("&#{};", u32::from(c))),
            ),
            (
                "html-hex",
                entities(plain, |c| format!("&#x{:x};", u32::from(c))),
            ),
            (
                "html-named",
                plain
                    .replace('@', "&commat;")
                    .replace('.', "&period;")
                    .replace('+', "&plus;"),
            ),
            ("fullwidth", fullwidth(plain)),
            (
                "zero-width",
                plain
                    .replace('@', "\u{200b}@\u{200b}")
                    .replace('.', ".\u{ad}"),
            ),
        ];
        let mut seen = Vec::new();
        all.into_iter()
            .filter(|(_, e)| {
                let new = !seen.contains(e);
                seen.push(e.clone());
                new
            })
            .collect()
    }

    /// Make `enc` safe inside a URL component the way a browser would.
    fn in_url(enc: &str) -> String {
        if enc.contains(['&', '#', '?', '/', ' ', '%']) || !enc.is_ascii() {
            pct(enc)
        } else {
            enc.to_owned()
        }
    }

    /// `enc` planted in every kind of input; each output with where it came from.
    /// Click ids keep tokens by design, so `click_ids` is false for tokens.
    fn planted(enc: &str, click_ids: bool) -> Vec<(String, String)> {
        let q = in_url(enc);
        // A raw `#` or `?` in a path starts the fragment or query, as in a browser.
        let raw_path = if enc.contains(['#', '?']) {
            q.clone()
        } else {
            enc.to_owned()
        };
        let mut out = vec![
            (
                format!("text: {enc}"),
                text(&format!("Hello {enc} thanks")).into_owned(),
            ),
            (format!("text alone: {enc}"), text(enc).into_owned()),
            (
                format!("path: {raw_path}"),
                path(&format!("/account/{raw_path}/orders")),
            ),
            (
                format!("path pct: {q}"),
                path(&format!("/account/{q}/orders?x=1")),
            ),
            (
                format!("path route: {q}"),
                path(&format!("/app#/user/{q}/settings")),
            ),
            (
                format!("path bang route: {q}"),
                path(&format!("/app#!/user/{q}")),
            ),
        ];
        let urls = [
            format!("https://shop.example/account/{q}/orders"),
            format!("/account/{q}/orders?utm_campaign=spring"),
            format!("https://shop.example/p?utm_term={q}&x=1"),
            format!("https://shop.example/p?utm_content={}", pct(&q)),
            format!("/p?utm_source={q}"),
            format!(
                "https://shop.example/?ref={}",
                pct(&format!(
                    "https://other.example/landing?utm_content={q}&a=b"
                ))
            ),
            format!(
                "https://shop.example/?ref={}",
                pct(&format!("/landing/{q}"))
            ),
            format!("https://shop.example/?ref={q}"),
            format!("https://shop.example/app#/user/{q}/settings"),
            format!("https://shop.example/app#cart/{q}"),
            format!("https://u:{q}@shop.example/"),
        ];
        let click = click_ids.then(|| format!("https://shop.example/?gclid={q}&fbclid={q}"));
        for u in urls.into_iter().chain(click) {
            out.push((format!("url: {u}"), url(&u).unwrap_or_default()));
        }
        let mut props = json!({ enc: "x", "note": enc, "nested": [{ "v": enc }, enc] });
        json(&mut props);
        out.push((format!("props: {enc}"), props.to_string()));
        out
    }

    /// A secret, and the part of it that must not survive: for digits, the digits
    /// (separators removed); else a substring.
    struct Secret {
        plain: &'static str,
        core: &'static str,
        digits: bool,
    }

    const fn s(plain: &'static str, core: &'static str) -> Secret {
        Secret {
            plain,
            core,
            digits: false,
        }
    }

    const fn n(plain: &'static str, core: &'static str) -> Secret {
        Secret {
            plain,
            core,
            digits: true,
        }
    }

    const EMAILS: [Secret; 5] = [
        s("jane.doe+tag@mail.example", "jane.doe"),
        s("jürgen.müller@beispiel.de", "jürgen.müller"),
        s("ops.team@eu.mail.shop-example.co.uk", "ops.team"),
        s("j.smith99@corp.example.com", "j.smith99"),
        s("Kim_Lee@xn--bcher-kva.example", "Kim_Lee"),
    ];
    const TOKENS: [Secret; 11] = [
        s(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            "SflKxwRJSMeKKF2QT4fw",
        ),
        s("9f86d081884c7d659a2feaa0c55ad015", "884c7d659a2f"),
        s("123e4567-e89b-12d3-a456-426614174000", "e89b-12d3"),
        s("sk_live_51HqLyjWDarjtT1zdp7dcXyz0", "HqLyjWDarjtT1"),
        s("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "F292c6912E77"),
        s("AKIAIOSFODNN7EXAMPLE", "IOSFODNN7"),
        s("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "DaGmWKa4JsXZ"),
        s(
            "xoxb-2047238123-4011338422-Z8hTxQ2vLkP9rW3mN7bY",
            "Z8hTxQ2vLkP9",
        ),
        s("glpat-x9Yk2Lm4Np7Qr1St3Uv5", "x9Yk2Lm4Np7"),
        s(
            "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",
            "TwL2iGABf9DH",
        ),
        s("Kx9mQ2pL7vR4tZ8wN3bY6cJ1", "pL7vR4tZ8wN3"),
    ];
    const CARDS: [Secret; 6] = [
        n("4111 1111 1111 1111", "4111111111111111"),
        n("4111-1111-1111-1111", "4111111111111111"),
        n("4111111111111111", "4111111111111111"),
        n("5555 5555 5555 4444", "5555555555554444"),
        n("3782 822463 10005", "378282246310005"),
        n("6011-0009-9013-9424", "6011000990139424"),
    ];
    const PHONES: [Secret; 10] = [
        n("+1 (555) 123-4567", "5551234567"),
        n("+15551234567", "5551234567"),
        n("555-123-4567", "5551234567"),
        n("(555) 123-4567", "5551234567"),
        n("555.123.4567", "5551234567"),
        n("+44 20 7946 0958", "2079460958"),
        n("+49 171 1234567", "1711234567"),
        n("0171 1234567", "1711234567"),
        n("07700 900123", "7700900123"),
        n("+33 6 12 34 56 78", "612345678"),
    ];

    fn assert_scrubbed(secret: &Secret, kind: &str) {
        for (encoding, enc) in encodings(secret.plain) {
            for (place, out) in planted(&enc, kind != "token") {
                let decoded = decode_fully(&out);
                let why = format!(
                    "{kind} {:?} as {encoding} in {place} -> {out:?}",
                    secret.plain
                );
                assert!(!has_secret(&out), "still a secret: {why}");
                assert!(!has_secret(&decoded), "decodes to a secret: {why}");
                if secret.digits {
                    assert!(
                        !digits_of(&decoded).contains(secret.core),
                        "digits kept: {why}"
                    );
                } else {
                    assert!(
                        !decoded.to_lowercase().contains(&secret.core.to_lowercase()),
                        "kept {:?}: {why}",
                        secret.core
                    );
                }
            }
        }
    }

    // --- 1. planted secrets ----------------------------------------------

    #[test]
    fn planted_emails_never_survive() {
        for secret in &EMAILS {
            assert_scrubbed(secret, "email");
        }
    }

    #[test]
    fn planted_tokens_never_survive() {
        for secret in &TOKENS {
            assert_scrubbed(secret, "token");
        }
    }

    #[test]
    fn planted_cards_never_survive() {
        for secret in &CARDS {
            assert_scrubbed(secret, "card");
        }
    }

    #[test]
    fn planted_phones_never_survive() {
        for secret in &PHONES {
            assert_scrubbed(secret, "phone");
        }
    }

    #[test]
    fn each_kind_gets_its_placeholder() {
        for (list, placeholder) in [
            (&EMAILS[..], "[email]"),
            (&TOKENS[..], "[token]"),
            (&CARDS[..], "[card]"),
            (&PHONES[..], "[phone]"),
        ] {
            for secret in list {
                let t = format!("Hello {} thanks", secret.plain);
                assert_eq!(text(&t), format!("Hello {placeholder} thanks"), "{t}");
                assert_eq!(
                    path(&format!("/a/{}/b", in_url(secret.plain))),
                    format!("/a/{placeholder}/b")
                );
            }
        }
    }

    // --- 2. benign inputs --------------------------------------------------

    const BENIGN_TEXTS: [&str; 44] = [
        "Add to cart",
        "Proceed to checkout",
        "Apply coupon",
        "Size 42",
        "€1,299.00",
        "$49.99",
        "1.299,00 €",
        "Sale ends 2024-11-30",
        "Sale ends 30.11.2024 at 23:59",
        "Offer valid until 11/30/2024",
        "Follow @clicktrail",
        "@media (max-width: 600px)",
        "Write to user@localhost",
        "EU 38-39",
        "Sizes 36 37 38 39 40 41",
        "Collections 2019 2020 2021 2022",
        "v1.2.3",
        "Version 10.15.7 build 2024",
        "Qty 2 x 3 pack",
        "Dimensions 120 x 60 x 75 cm",
        "Order 12345 shipped",
        "Population 12.345.678",
        "Save 25% today",
        "Tom &amp; Jerry",
        "logo@2x.png",
        "Call us!",
        "winter-boots-2024-limited-edition",
        "product-category-womens-shoes",
        "size-guide-modal-button-primary",
        "ProceedToCheckoutButton",
        "iPhoneXSMaxCase15ProMax",
        "checkoutButtonClickedEvent",
        "internationalization",
        "Versandkostenfrei bestellen",
        "Grüße aus München",
        "送料無料キャンペーン",
        "main.8f3a2b1c9d4e5f6a7b8c.js",
        "Cannot read properties of undefined (reading 'map')",
        "TypeError: x is undefined at app.js:12:5",
        "10:30 - 11:45",
        "1080p60 HDR",
        "email",
        "phone",
        "card-number",
    ];

    const BENIGN_SELECTORS: [&str; 9] = [
        "button#pay",
        "div.product-card > a.title",
        "li:nth-of-type(3)",
        "input[name=\"email\"]",
        "input[type=\"tel\"]#phone",
        "form#checkout input[name=card-number]",
        "div.ProductCard_root__3xK9f > span",
        "ul.grid > li:nth-child(12) > a[href=\"/p/40299672\"]",
        "section#reviews-2024 .star-5",
    ];

    const BENIGN_PATHS: [&str; 10] = [
        "/product/winter-boots-2024",
        "/orders/12345",
        "/p/40299672",
        "/demo/help/returns",
        "/category/womens-shoes/page/2",
        "/blog/2024/11/30/black-friday",
        "/static/js/main.8f3a2b1c9d4e5f6a7b8c.js",
        "/_next/static/chunks/pages/_app-3f9a1c2e8b7d4f60.js",
        "/de/damen/schuhe/größe-38",
        "/",
    ];

    const BENIGN_URLS: [&str; 7] = [
        "https://shop.example/product/winter-boots-2024?utm_source=newsletter&utm_medium=email&utm_campaign=black-friday-2024",
        "https://shop.example/?gclid=Cj0KCQiA4Y-sBhC6ARIsAGXF1g7hLQ2pR5vX8Yk3Nm9Tq_EAAYASAAEgL1M_D_BwE",
        "https://shop.example/?fbclid=IwAR2F4-Kq8vYx7L3mN9pQ1rS5tU6wV8xY0zA2bC4dE6fG8hI",
        "https://shop.example/cart#/checkout/shipping",
        "https://shop.example/app#!/orders/12345",
        "https://192.168.1.10:8080/p/40299672",
        "https://shop.example/?ref=https%3A%2F%2Fblog.example%2Fpost%2Fbest-boots-2024",
    ];

    #[test]
    fn benign_texts_and_selectors_come_out_unchanged() {
        for t in BENIGN_TEXTS.iter().chain(&BENIGN_SELECTORS) {
            assert!(
                matches!(text(t), Cow::Borrowed(_)),
                "changed: {t:?} -> {:?}",
                text(t)
            );
            assert!(!has_secret(t), "{t:?}");
        }
    }

    #[test]
    fn benign_paths_and_urls_come_out_unchanged() {
        for p in BENIGN_PATHS {
            assert_eq!(path(p), p);
            assert_eq!(url(p).as_deref(), Some(p));
        }
        for u in BENIGN_URLS {
            assert_eq!(url(u).as_deref(), Some(u));
        }
        let mut props = json!({ "email": "newsletter", "phone": "mobile", "card-number": "visible", "size": 42, "price": 1299.0, "sku": 40_299_672 });
        let before = props.clone();
        json(&mut props);
        assert_eq!(props, before);
    }

    // --- 3. rules ----------------------------------------------------------

    #[test]
    fn emails_in_every_encoding() {
        for t in [
            "jane.doe+tag@mail.example",
            "jane.doe%40mail.example",
            "jane.doe%2540mail.example",
            "jane.doe%252540mail.example",
            "jane.doe&#64;mail.example",
            "jane.doe&#x40;mail.example",
            "jane.doe&commat;mail.example",
            "jane.doe＠mail.example",
            "jane.doe﹫mail.example",
            "jane.doe\\u0040mail.example",
            "jane.doe@mail。example",
            "jane.doe@mail\u{200b}.example",
            "jane.doe&amp;#64;mail.example",
            "ü.ñ@sub.mail.example",
        ] {
            assert_eq!(text(t), "[email]", "{t}");
            assert!(has_secret(t), "{t}");
        }
        assert_eq!(
            text("Signed in as jane@mail.example"),
            "Signed in as [email]"
        );
        assert_eq!(
            text("Signed in as jane@mail.example."),
            "Signed in as [email]."
        );
        assert_eq!(text("<jane@mail.example>, bob@x.org"), "<[email]>, [email]");
        assert_eq!(text("To: \"jane doe\"@mail.example"), "To: [email]");
        assert_eq!(text("Signed+in+as+jane%40mail.example"), "[email]");
        assert_eq!(
            text("mailto:jane@mail.example?subject=Hi"),
            "mailto:[email]?subject=Hi"
        );
        for t in [
            "Follow @clicktrail",
            "@media print",
            "user@localhost",
            "icon@2x.png",
            "icon@1.5x.png",
            "npm i pkg@1.2.3",
        ] {
            assert!(!has_secret(t), "{t}");
        }
    }

    #[test]
    fn base64_of_secrets() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        for secret in [
            "jane.doe@mail.example",
            "bob+news@shop.example.org",
            "4111 1111 1111 1111",
            "+49 171 1234567",
        ] {
            let kind = if secret.contains('@') {
                "[email]"
            } else if secret.starts_with('4') {
                "[card]"
            } else {
                "[phone]"
            };
            for enc in [STANDARD.encode(secret), URL_SAFE_NO_PAD.encode(secret)] {
                assert_eq!(text(&format!("Hi {enc} there")), format!("Hi {kind} there"));
                assert_eq!(
                    path(&format!("/unsubscribe/{enc}")),
                    format!("/unsubscribe/{kind}")
                );
                assert!(has_secret(&format!("u={enc}")), "{enc}");
            }
        }
        // Percent-encoded padding, as in a query.
        let enc = STANDARD.encode("ann@mail.example").replace('=', "%3D");
        assert_eq!(text(&format!("e={enc}")), "e=[email]");
        // Base64 of text without a secret is no email (it may look random: a
        // token); readable slugs stay.
        assert_eq!(text(&STANDARD.encode("winter boots, size 42")), "[token]");
        for t in [
            "winter-boots-2024-limited-edition",
            "/category/running-shoes-for-women",
        ] {
            assert_eq!(text(t), t);
        }
    }

    #[test]
    fn tokens_of_known_shapes() {
        for t in TOKENS.iter().map(|s| s.plain) {
            assert_eq!(text(t), "[token]", "{t}");
        }
        assert_eq!(
            text("Authorization: Bearer abc123def456ghi7"),
            "Authorization: Bearer [token]"
        );
        assert_eq!(text("Bearer of good news"), "Bearer of good news");
        assert_eq!(text("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0"), "[token]"); // two parts
        assert_eq!(text("id_9f86d081884c7d65"), "[token]"); // 16 hex inside a word
        assert_eq!(text("deadbeef-cafe-f00d-1234-56789abcdef0"), "[token]");
        assert_eq!(text("sk_test_short"), "sk_test_short");
        assert_eq!(text("task_live_update"), "task_live_update");
        // standard base64 with + / =
        assert_eq!(
            text("key uiA0dDf6UrmUvKQt4z/QX7d3g+qrgcqK= end"),
            "key [token] end"
        );
        assert_eq!(text("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "[token]");
        // a path in free text keeps its readable parts
        assert_eq!(
            text("GET /api/v1/reset/9f86d081884c7d659a2feaa0c55ad015 failed"),
            "GET /api/v1/reset/[token] failed"
        );
        assert_eq!(text("see docs/api/v1/reset"), "see docs/api/v1/reset");
    }

    #[test]
    fn random_looking_runs_versus_slugs() {
        for t in [
            "a1b2c3d4e5f6g7h8i9j0k1",
            "Kx9mQ2pL7vR4tZ8wN3bY6cJ1",
            "4f9Tq2LmZ8xR1vB7nK3pW6yH",
            "sess-Qm9xT2Lk8vZ4pN7rB3wY",
        ] {
            assert!(has_secret(t), "{t}");
        }
        for t in [
            "winter-boots-2024-limited-edition",
            "product-category-womens-shoes",
            "size-guide-modal-button-primary",
            "nike-air-max-90-white-size-42",
            "utm_source=newsletter_2024_spring",
            "ProductCardContainerV2Header",
            "getElementById_querySelectorAll",
            "XMLHttpRequestEventTarget",
        ] {
            assert!(!has_secret(t), "{t}");
        }
    }

    #[test]
    fn random_tokens_are_caught_at_documented_rates() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % 64).unwrap_or(0)
        };
        let b64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b64url = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (alphabet, len, most_missed) in [
            (b64url, 20, 60),
            (b64, 24, 30),
            (b64url, 32, 5),
            (b64, 40, 2),
        ] {
            let missed = (0..1000)
                .filter(|_| {
                    let t: String = (0..len).map(|_| char::from(alphabet[next()])).collect();
                    !has_secret(&format!("id {t} end"))
                })
                .count();
            assert!(missed <= most_missed, "len {len}: {missed} of 1000 missed");
        }
    }

    #[test]
    fn cards_pass_luhn_and_come_before_phones() {
        for t in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "3782 822463 10005",
            "4111%201111%201111%201111",
            "4111+1111+1111+1111",
            "４１１１ １１１１ １１１１ １１１１",
            "4111\u{a0}1111\u{a0}1111\u{a0}1111",
        ] {
            assert_eq!(text(t), "[card]", "{t}");
        }
        assert_eq!(text("Qty 2 4111 1111 1111 1111"), "Qty 2 [card]");
        // A phone number that passes Luhn is still a phone number.
        assert_eq!(text("Call +49 151 12345678"), "Call [phone]");
        assert_eq!(text("tel:+4915112345678"), "tel:[phone]");
        // A card at the end of a run longer than one window of digit groups.
        for lead in [23, 28, 47, 48, 60] {
            let t = format!("{} 4111 1111 1111 1111", vec!["7"; lead].join(" "));
            assert!(!digits_of(&text(&t)).contains("4111111111111111"), "{lead}");
            let t = format!(
                "{} 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
                vec!["7"; lead].join(" ")
            );
            assert!(text(&t).ends_with("[card]"), "{lead}: {}", text(&t));
        }
        // 16 digits failing Luhn: not a card, still not stored.
        assert_eq!(text("4111111111111112"), "[token]");
        assert_eq!(text("0000 0000 0000 0000"), "0000 0000 0000 0000");
        // 15 digits passing Luhn are a card, not a phone; after a country code's
        // `+`, a phone (a card number has no `+`; a phone has at most 15 digits).
        assert_eq!(text("378282246310005"), "[card]");
        assert_eq!(text("+378282246310005"), "[phone]");
        assert_eq!(text("+4111 1111 1111 1111"), "+[card]");
    }

    #[test]
    fn phones_in_every_shape() {
        for t in [
            "+1 (555) 123-4567",
            "+15551234567",
            "555-123-4567",
            "(555) 123-4567",
            "555.123.4567",
            "+44 20 7946 0958",
            "+44 (0)20 7946 0958",
            "+49 171 1234567",
            "0171 1234567",
            "07700 900123",
            "%2B1%20555%20123%204567",
            "+1+555+123+4567",
            "5551234567",
            "555–123–4567",
            "+1&#32;555&#32;123&#32;4567",
        ] {
            assert_eq!(text(t), "[phone]", "{t}");
        }
        assert_eq!(text("Call 555-123-4567 now"), "Call [phone] now");
        assert_eq!(
            text("Sale ends 2024-11-30 call 555-123-4567"),
            "Sale ends 2024-11-30 call [phone]"
        );
        for t in [
            "2024-11-30",
            "30.11.2024",
            "11/30/2024",
            "12:30",
            "€1,299.00",
            "Size 42",
            "EU 38-39",
            "/orders/12345",
            "/p/40299672",
            "2024",
            "v1.2.3",
            "192.168.1.1",
            "12.345.678",
            "2019 2020 2021",
            "Size+42+43+44+45",
        ] {
            assert!(!has_secret(t), "{t}");
        }
    }

    #[test]
    fn numbers_split_by_slashes_commas_underscores_and_line_breaks() {
        for (t, want) in [
            ("Rückruf unter 0171/1234567", "Rückruf unter [phone]"),
            ("Tel. 030/12345678 (Zentrale)", "Tel. [phone] (Zentrale)"),
            ("Tel. 030 / 123 456 78", "Tel. [phone]"),
            ("+49 171/1234567", "[phone]"),
            ("+49/171/1234567", "[phone]"),
            ("+49,171,1234567", "[phone]"),
            ("+49_171_1234567", "[phone]"),
            ("+49\n171\n1234567", "[phone]"),
            ("Fax:\r\n0171\r\n1234567", "Fax:\r\n[phone]"),
            ("(555)\n123-4567", "[phone]"),
            ("(555)_123-4567", "[phone]"),
            ("(555),123-4567", "[phone]"),
            ("(555)/123-4567", "[phone]"),
            ("Karte 4111_1111_1111_1111", "Karte [card]"),
            ("4111,1111,1111,1111", "[card]"),
            ("4111/1111/1111/1111", "[card]"),
            ("4111\n1111\n1111\n1111", "[card]"),
            ("4111\r\n1111\r\n1111\r\n1111", "[card]"),
            ("3782/822463/10005", "[card]"),
            (
                "Preis 1,299.00 € – Tel 0171/1234567",
                "Preis 1,299.00 € – Tel [phone]",
            ),
        ] {
            assert_eq!(text(t), want, "{t:?}");
        }
        // Ordinary shop text keeps its numbers.
        for t in [
            "03/12/2026",
            "Lieferung 12/05",
            "am 03/12/2026 um 14:30",
            "€1,299.00",
            "1.234,56 €",
            "1,234,567 Besucher",
            "Größe 42/44",
            "Größen 036, 038, 040, 042",
            "Artikel 12/345/678",
            "Größen (36),38,40,42",
            "Seiten (12)/34/56",
            "Best.-Nr. 0815/4711",
            "SKU AB-1234/56_7",
            "4 x 1,99 € = 7,96 €",
            "Menge: 12,5,300,40,1000,25,12",
            "1234,5678,9012,3457",
            "Seite 1/2/3/4/5/6/7",
            "100\n250\n1000",
            "0171/1234",
            "12345/1234567",
        ] {
            assert!(!has_secret(t), "{t:?}: {}", text(t));
        }
    }

    #[test]
    fn invisible_characters_and_rarer_escapes_hide_nothing() {
        let card = "4111 1111 1111 1111";
        let key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
        for c in [
            '\u{202A}',
            '\u{202C}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{200E}',
            '\u{FE0F}',
            '\u{FE00}',
            '\u{2063}',
            '\u{E0041}',
            '\u{E0100}',
            '\u{180E}',
            '\u{FFF9}',
        ] {
            for secret in [card, "+49 171 1234567", key, "jane.doe@example.com"] {
                let t: String = secret.chars().flat_map(|x| [x, c]).collect();
                let out = text(&format!("Karte {t} ok")).into_owned();
                assert!(
                    out.contains("] ") && !has_secret(&out),
                    "{c:?} {secret}: {out:?}"
                );
                assert!(digits_of(&out).len() < 7, "{c:?} {secret}: {out:?}");
            }
        }
        for (t, want) in [
            ("jane.doe&#00000064;example.com", "[email]"),
            ("jane.doe&#x0000040;example.com", "[email]"),
            ("jane.doe&#x000000000040;example.com", "[email]"),
            ("jane.doe\\100example.com", "[email]"),
            ("4111\\0401111\\0401111\\0401111", "[card]"),
        ] {
            assert_eq!(text(t), want, "{t}");
        }
        // Emoji with their variation selectors, and text with escapes that are
        // not octal, stay as they are.
        for t in ["Top ❤\u{FE0F} 5 Sterne", "C:\\9 files", "\\8080", "a\\1b"] {
            assert_eq!(text(t), t);
        }
    }

    #[test]
    fn decoding_maps_back_to_the_original_bytes() {
        assert_eq!(text("Mail: jane%40x.com, ok"), "Mail: [email], ok");
        assert_eq!(text("x=jane%252540x.com&y=1"), "x=[email]&y=1");
        assert_eq!(
            text("Grüße jane&#64;x.de – bis bald"),
            "Grüße [email] – bis bald"
        );
        assert_eq!(
            text("Tel%3A%20%2B1%20555%20123%204567%20ok"),
            "Tel%3A%20[phone]%20ok"
        );
        // Latin-1 percent bytes are left alone.
        assert_eq!(text("caf%E9 5"), "caf%E9 5");
    }

    #[test]
    fn fast_path_borrows() {
        for t in [
            "Add to cart",
            "Proceed to checkout",
            "div.product-card > a.title",
            "",
        ] {
            assert!(matches!(text(t), Cow::Borrowed(_)));
            assert!(!needs_scan(t.as_bytes()));
        }
        assert!(!needs_scan(b"Size 42, EU 38-39"));
        assert!(needs_scan(b"Tel 555 1234"));
        assert!(needs_scan("jane＠x".as_bytes()));
        assert!(needs_scan(b"jane@x"));
        assert!(needs_scan(b"abcdefghijklmnopqrst"));
        assert!(needs_scan(b"Ab3dEfGh/IjKlMn0p+QrSt"));
        assert!(needs_scan("abcdefgh\u{200b}ijklmnopq".as_bytes()));
    }

    #[test]
    fn paths() {
        assert_eq!(path("/u/jane%40mail.example/orders"), "/u/[email]/orders");
        assert_eq!(
            path("/reset/9f86d081884c7d659a2feaa0c55ad015/done"),
            "/reset/[token]/done"
        );
        assert_eq!(path("/search?q=jane@mail.example"), "/search");
        assert_eq!(path("/a?x=1#/cart?email=jane@x.com"), "/a#/cart");
        assert_eq!(path("/a#!/user/jane%40x.com"), "/a#!/user/[email]");
        assert_eq!(path("/a#cart"), "/a#cart");
        assert_eq!(path("/a#product/12"), "/a#product/12");
        assert_eq!(path("/a#access_token=abc.def&state=1"), "/a");
        assert_eq!(path("/a#jane@x.com"), "/a");
        assert_eq!(path("/a#"), "/a");
        // kept segments are not re-encoded
        assert_eq!(path("/caf%C3%A9/Grüße%20x"), "/caf%C3%A9/Grüße%20x");
        // a token split by `/` across segments
        assert_eq!(path("/a/k3Jd9aLq/Xm2pQ8rTzYw4vBn"), "/a/[token]");
        assert_eq!(path(""), "");
    }

    #[test]
    fn urls() {
        assert_eq!(
            url("https://jane:hunter2@shop.example:8443/x?utm_source=a&session=b#section-2")
                .as_deref(),
            Some("https://shop.example:8443/x?utm_source=a")
        );
        assert_eq!(
            url("https://shop.example/?UTM_Source=x&Ref=y&gclid=abc&wbraid=q&x=1").as_deref(),
            Some("https://shop.example/?UTM_Source=x&Ref=y&gclid=abc&wbraid=q")
        );
        assert_eq!(
            url("https://shop.example/?utm_jane%40x.com=1").as_deref(),
            Some("https://shop.example/")
        );
        assert_eq!(
            url("https://shop.example/?gclid=jane%40x.com&fbclid=%2B15551234567").as_deref(),
            Some("https://shop.example/?gclid=%5Bemail%5D&fbclid=%5Bphone%5D")
        );
        assert_eq!(
            url(
                "https://shop.example/?ref=https%3A%2F%2Fa.example%2F%3Futm_source%3Djane%2540x.com"
            )
            .as_deref(),
            Some(
                "https://shop.example/?ref=https%3A%2F%2Fa.example%2F%3Futm_source%3D%255Bemail%255D"
            )
        );
        // the local part takes the whole word before `@`
        assert_eq!(
            url("https://shop.example/?ref=friend-jane%40x.com").as_deref(),
            Some("https://shop.example/?ref=%5Bemail%5D")
        );
        assert_eq!(
            url("https://shop.example/?ref=newsletter%20for%20jane%40x.com").as_deref(),
            Some("https://shop.example/?ref=newsletter%20for%20%5Bemail%5D")
        );
        assert_eq!(
            url("https://shop.example/?utm_term=%2B1+555+123+4567").as_deref(),
            Some("https://shop.example/?utm_term=%5Bphone%5D")
        );
        assert_eq!(
            url("//cdn.example/app.js?v=1").as_deref(),
            Some("//cdn.example/app.js")
        );
        assert_eq!(
            url("https://9f86d081884c7d659a2feaa0c55ad015.tunnel.example/").as_deref(),
            Some("https://redacted.tunnel.example/")
        );
        for (raw, want) in [
            ("tel:+15551234567", "tel:"),
            ("javascript:void(0)", "javascript:"),
            ("data:text/plain,jane@x.com", "data:"),
        ] {
            assert_eq!(url(raw).as_deref(), Some(want));
        }
        for raw in [
            "not a url",
            "",
            "jane.doe:pw@mail.example",
            "www.shop.example/x",
            "foo:bar",
        ] {
            assert_eq!(url(raw), None, "{raw}");
        }
        // ref nesting deeper than MAX_URL_DEPTH is dropped
        let mut u = String::from("https://a.example/");
        for _ in 0..5 {
            u = format!("https://a.example/?ref={}", pct(&u));
        }
        assert!(url(&u).is_some_and(|o| o.matches("ref").count() <= 3));
    }

    #[test]
    fn json_scrubs_keys_values_and_numbers_without_collisions() {
        let mut v = json!({
            "jane@x.com": 1,
            "bob@y.org": 2,
            "[email]": 3,
            "note": "call 555-123-4567",
            "list": ["4111 1111 1111 1111", {"deep": "jane%40x.com"}, true, null],
            "phone": 5_551_234_567_u64,
            "card": 4_111_111_111_111_111_u64,
            "qty": 3,
        });
        json(&mut v);
        assert_eq!(
            v,
            json!({
                "[email]": 3,
                "[email]#2": 2,
                "[email]#3": 1,
                "note": "call [phone]",
                "list": ["[card]", {"deep": "[email]"}, true, null],
                "phone": "[phone]",
                "card": "[card]",
                "qty": 3,
            })
        );
    }

    #[test]
    fn scrubbing_is_idempotent() {
        for t in [
            "Hello jane@x.com and 555-123-4567",
            "x 9f86d081884c7d659a2feaa0c55ad015",
            "Add to cart",
        ] {
            let once = text(t).into_owned();
            assert_eq!(text(&once), once);
        }
    }

    // --- the old enrich.rs expectations --------------------------------------

    #[test]
    fn an_href_keeps_its_hash_route_and_drops_secrets() {
        assert_eq!(
            href("https://shop.example/#cart").as_deref(),
            Some("https://shop.example/#cart")
        );
        assert_eq!(
            href("https://shop.example/app#/product/12?ref=x").as_deref(),
            Some("https://shop.example/app#/product/12")
        );
        assert_eq!(href("/app#catalog").as_deref(), Some("/app#catalog"));
        // A page URL drops a bare name (an anchor there).
        assert_eq!(url("/app#catalog").as_deref(), Some("/app"));
        assert_eq!(
            href("https://shop.example/#jane@mail.example").as_deref(),
            Some("https://shop.example/")
        );
        assert_eq!(
            href("https://shop.example/#/u/jane@mail.example").as_deref(),
            Some("https://shop.example/#/u/[email]")
        );
        // A route name that encodes a secret keeps none of it.
        for raw in [
            "https://shop.example/#jane%40mail.example",
            "/app#order-4111111111111111",
        ] {
            let out = href(raw).unwrap_or_default();
            assert!(
                !out.contains("jane") && !out.contains("4111111111111111"),
                "{raw} -> {out}"
            );
        }
    }

    #[test]
    fn enrich_rs_expectations() {
        // Deliberate change: `#top` is a bare route name, so it is kept (the old
        // scrub_url dropped every fragment).
        assert_eq!(
            url("https://shop.example/cart?utm_source=news&email=a%40b.com&session=xyz&gclid=Cj0KCQ123abcdefghijklmnop#top").as_deref(),
            Some("https://shop.example/cart?utm_source=news&gclid=Cj0KCQ123abcdefghijklmnop")
        );
        assert_eq!(
            url("https://u:p@shop.example/reset/9f86d081884c7d659a2feaa0c55ad015/done?utm_content=jane.doe@mail.example").as_deref(),
            Some("https://shop.example/reset/[token]/done?utm_content=%5Bemail%5D")
        );
        assert_eq!(
            url("https://shop.example/u/jane@mail.example/orders").as_deref(),
            Some("https://shop.example/u/[email]/orders")
        );
        assert_eq!(url("mailto:jane@mail.example").as_deref(), Some("mailto:"));
        assert_eq!(url("/product/boots?x=1").as_deref(), Some("/product/boots"));
        assert_eq!(url("not a url"), None);
        assert_eq!(
            path("/product/winter-boots-2024"),
            "/product/winter-boots-2024"
        );
        assert_eq!(path("/orders/12345"), "/orders/12345");
        assert_eq!(text("Add to cart"), "Add to cart");
        assert_eq!(
            text("Signed in as jane@mail.example"),
            "Signed in as [email]"
        );
        assert_eq!(text("Follow @clicktrail"), "Follow @clicktrail");
    }

    // --- robustness ------------------------------------------------------------

    #[test]
    fn never_panics_and_text_output_is_always_clean() {
        const PIECES: [&str; 40] = [
            "%",
            "%2",
            "%25",
            "%40",
            "%E2%80%8B",
            "%C3",
            "%u0040",
            "&#",
            "&#x4",
            "&#64",
            "&commat;",
            "&amp;",
            "＠",
            "４",
            "é",
            "€",
            "\u{200b}",
            "\u{ad}",
            "\\u00",
            "\\x4",
            "@",
            ".",
            "+",
            "-",
            " ",
            "(",
            ")",
            "/",
            "?",
            "#",
            "=",
            "&",
            "5",
            "12",
            "4111",
            "eyJ",
            "sk_live_",
            "x.com",
            "Ab9",
            "\u{10FFFF}",
        ];
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..4000 {
            let len = usize::try_from(next() % 24).unwrap_or(0);
            let s: String = if round % 4 == 0 {
                let bytes: Vec<u8> = (0..len * 2).map(|_| next().to_le_bytes()[0]).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                (0..len)
                    .map(|_| PIECES[usize::try_from(next() % 40).unwrap_or(0)])
                    .collect()
            };
            let t = text(&s);
            assert!(!has_secret(&t), "{s:?} -> {t:?}");
            let p = path(&s);
            assert!(!has_secret(&p), "{s:?} -> {p:?}");
            let _ = url(&s);
            let _ = url(&format!(
                "https://shop.example/{s}?utm_term={s}&ref={s}#{s}"
            ));
            let _ = url(&format!("/{s}"));
            let mut v = json!({ s.clone(): [s.clone(), { s.clone(): s.clone() }] });
            json(&mut v);
        }
    }
}
