//! Enrichment: turns a validated [`protocol::Batch`] plus what the request tells
//! (client address, user agent, arrival time) into rows for the events table.
//!
//! Privacy by construction: the client address is used only inside the visitor
//! hash and dropped; URLs keep only allow-listed query parameters; emails and
//! token-like values are redacted from paths, URLs, referrers, link targets, texts,
//! titles and custom properties before anything is stored.

use std::{fmt::Write as _, net::IpAddr, sync::Mutex};

use sha2::{Digest, Sha256};
use url::Url;

use crate::store::Row;

/// Query parameters kept in stored URLs; everything else is dropped.
pub const KEPT_QUERY_PARAMS: [&str; 9] = [
    "gclid", "fbclid", "msclkid", "ref", "dclid", "gbraid", "wbraid", "ttclid", "twclid",
];

/// The visitor hash salt in memory: random, one per UTC day (persisted by the
/// store so a restart keeps today's visitor ids), never derived from anything else,
/// so a day's visitor ids cannot be recomputed once its salt is deleted.
#[derive(Debug, Default)]
pub struct Salts {
    current: Mutex<Option<(i64, [u8; 32])>>,
}

impl Salts {
    /// A fresh random salt.
    pub fn random() -> [u8; 32] {
        let mut s = [0u8; 32];
        // getrandom only fails when the OS has no entropy source at all.
        getrandom::fill(&mut s).expect("the operating system provides randomness");
        s
    }

    /// The salt for `day` (days since the epoch), if it is the one held.
    pub fn get(&self, day: i64) -> Option<[u8; 32]> {
        let cur = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cur.filter(|(d, _)| *d == day).map(|(_, s)| s)
    }

    /// Hold `salt` for `day`.
    pub fn set(&self, day: i64, salt: [u8; 32]) {
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((day, salt));
    }
}

/// `hex(sha256(salt, site, ip, user agent))[..32]`.
pub fn visitor_id(salt: &[u8; 32], site: &str, ip: IpAddr, ua: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(site.as_bytes());
    h.update([0]);
    h.update(ip.to_string().as_bytes());
    h.update([0]);
    h.update(ua.as_bytes());
    let d = h.finalize();
    d[..16]
        .iter()
        .fold(String::with_capacity(32), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Browser, OS and device class from a user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub browser: String,
    pub os: String,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device: String,
}

/// Parse a user agent with woothee's maintained dataset.
pub fn parse_agent(ua: &str) -> Agent {
    let parser = woothee::parser::Parser::new();
    let Some(r) = parser.parse(ua) else {
        return Agent {
            browser: "unknown".into(),
            os: "unknown".into(),
            device: "other".into(),
        };
    };
    let lower = ua.to_ascii_lowercase();
    let device = if r.category == "crawler" || lower.contains("bot") && !lower.contains("cubot") {
        "bot"
    } else if r.os == "iPad"
        || (lower.contains("android") && !lower.contains("mobile"))
        || lower.contains("tablet")
    {
        "tablet"
    } else {
        match r.category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" => "mobile",
            _ => "other",
        }
    };
    let browser = if lower.contains("headlesschrome") {
        "HeadlessChrome"
    } else {
        r.name
    };
    let clean = |s: &str| {
        if s == "UNKNOWN" {
            "unknown".to_string()
        } else {
            s.to_string()
        }
    };
    Agent {
        browser: clean(browser),
        os: clean(r.os),
        device: device.to_string(),
    }
}

/// Whether a string holds an email address.
fn has_email(s: &str) -> bool {
    s.char_indices().any(|(i, c)| {
        c == '@'
            && i > 0
            && s[..i]
                .chars()
                .next_back()
                .is_some_and(|p| p.is_alphanumeric() || "._%+-".contains(p))
            && s[i + 1..]
                .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
                .next()
                .is_some_and(|d| d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
    })
}

/// Whether a path segment or value looks like a secret: a long run of letters and
/// digits (API keys, reset tokens, session ids), a long hex string, or a JWT.
fn looks_like_token(s: &str) -> bool {
    let s = s.trim();
    if s.len() >= 16
        && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && s.bytes().filter(u8::is_ascii_digit).count() >= 4
    {
        return true;
    }
    if s.starts_with("eyJ") && s.len() >= 20 {
        return true;
    }
    let alnum = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let letters = s.bytes().filter(u8::is_ascii_alphabetic).count();
    alnum && s.len() >= 20 && digits >= 3 && letters >= 3
}

/// Redact emails (whole whitespace-separated words holding one) in free text.
pub fn scrub_text(s: &str) -> String {
    if !s.contains('@') {
        return s.to_string();
    }
    s.split(' ')
        .map(|w| if has_email(w) { "[email]" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Redact path segments that hold an email or a token.
pub fn scrub_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let decoded = percent_decode(seg);
            if has_email(&decoded) {
                "[email]"
            } else if looks_like_token(&decoded) {
                "[token]"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    url::form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .collect()
}

fn keep_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("utm_") || KEPT_QUERY_PARAMS.contains(&n.as_str())
}

/// Scrub a URL: drop the fragment and credentials, keep only allow-listed query
/// parameters, redact emails and tokens in the path and the kept values. A value
/// that is not an absolute http(s) URL is returned scrubbed as a path, or `None`.
pub fn scrub_url(raw: &str) -> Option<String> {
    let Ok(mut u) = Url::parse(raw) else {
        return raw
            .starts_with('/')
            .then(|| scrub_path(raw.split(['?', '#']).next().unwrap_or("/")));
    };
    if !matches!(u.scheme(), "http" | "https") {
        // mailto:, tel:, javascript: … keep the scheme only.
        return Some(format!("{}:", u.scheme()));
    }
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| keep_param(k))
        .map(|(k, v)| {
            let v = if has_email(&v) {
                "[email]".to_string()
            } else if looks_like_token(&v) && !k.ends_with("clid") && !k.ends_with("braid") {
                "[token]".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
    let path = scrub_path(u.path());
    u.set_path(&path);
    Some(u.to_string())
}

fn scrub_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if has_email(s) {
                *s = scrub_text(s);
            } else if looks_like_token(s) {
                *s = "[token]".into();
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(scrub_json),
        _ => {}
    }
}

/// What the request tells about the sender.
#[derive(Debug, Clone)]
pub struct Context {
    /// Client address (used only inside the visitor hash).
    pub ip: IpAddr,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Arrival time, ms since the epoch.
    pub received_ms: i64,
}

/// Clock skew beyond which event times are shifted to the collector's clock.
pub const MAX_TRUSTED_SKEW_MS: i64 = 60_000;

/// Turn a validated batch into rows. A `links` event becomes one `link_view` row
/// per link (event id `ID-N`), so every link impression is a row like any other.
pub fn enrich(batch: protocol::Batch, ctx: &Context, salt: &[u8; 32]) -> Vec<Row> {
    let agent = parse_agent(&ctx.user_agent);
    let visitor = visitor_id(salt, &batch.site, ctx.ip, &ctx.user_agent);
    let skew = ctx.received_ms - batch.sent;
    let shift = if skew.abs() > MAX_TRUSTED_SKEW_MS {
        skew
    } else {
        0
    };
    let mut rows = Vec::with_capacity(batch.events.len());
    for mut e in batch.events {
        let links = e.links.take();
        let row = Row {
            site: batch.site.clone(),
            event_id: e.id,
            kind: e.k,
            ts_ms: e.t + shift,
            received_ms: ctx.received_ms,
            seq: e.seq as i32,
            session_id: batch.sid.clone(),
            visitor_id: visitor.clone(),
            path: scrub_path(&e.path),
            url: e.url.as_deref().and_then(scrub_url),
            referrer: e
                .referrer
                .as_deref()
                .filter(|r| !r.is_empty())
                .and_then(scrub_url),
            title: e.title.as_deref().map(scrub_text),
            nav: e.nav,
            screen: e.screen,
            selector: e.sel,
            text: e.text.as_deref().map(scrub_text),
            href: e.href.as_deref().and_then(scrub_url),
            x: e.x,
            y: e.y,
            form: e.form,
            field: e.field,
            field_type: e.ft,
            duration_ms: e.dur,
            empty: e.empty,
            name: e.name,
            props: e.props.map(|mut p| {
                scrub_json(&mut p);
                p.to_string()
            }),
            user_id: e.uid,
            browser: agent.browser.clone(),
            os: agent.os.clone(),
            device: agent.device.clone(),
            status: e.status.map(i32::from),
            ad: e.ad,
            message: e.msg.as_deref().map(scrub_text),
            source: e.src.as_deref().and_then(scrub_url),
            line: e.line.map(|l| l.min(i32::MAX as u32) as i32),
        };
        match links {
            Some(links) if row.kind == protocol::kind::LINKS => {
                for (i, (sel, href)) in links.into_iter().enumerate() {
                    let mut r = row.clone();
                    r.event_id = format!("{}-{i}", r.event_id);
                    protocol::kind::LINK_VIEW.clone_into(&mut r.kind);
                    r.selector = Some(sel);
                    r.href = scrub_url(&href);
                    rows.push(r);
                }
            }
            _ => rows.push(row),
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_only_the_allow_list_and_lose_secrets() {
        assert_eq!(
            scrub_url("https://shop.example/cart?utm_source=news&email=a%40b.com&session=xyz&gclid=Cj0KCQ123abcdefghijklmnop#top").as_deref(),
            Some("https://shop.example/cart?utm_source=news&gclid=Cj0KCQ123abcdefghijklmnop")
        );
        assert_eq!(
            scrub_url("https://u:p@shop.example/reset/9f86d081884c7d659a2feaa0c55ad015/done?utm_content=jane.doe@mail.example").as_deref(),
            Some("https://shop.example/reset/[token]/done?utm_content=%5Bemail%5D")
        );
        assert_eq!(
            scrub_url("https://shop.example/u/jane@mail.example/orders").as_deref(),
            Some("https://shop.example/u/[email]/orders")
        );
        assert_eq!(
            scrub_url("mailto:jane@mail.example").as_deref(),
            Some("mailto:")
        );
        assert_eq!(
            scrub_url("/product/boots?x=1").as_deref(),
            Some("/product/boots")
        );
        assert_eq!(scrub_url("not a url"), None);
    }

    #[test]
    fn ordinary_paths_and_texts_survive() {
        assert_eq!(
            scrub_path("/product/winter-boots-2024"),
            "/product/winter-boots-2024"
        );
        assert_eq!(scrub_path("/orders/12345"), "/orders/12345");
        assert_eq!(scrub_text("Add to cart"), "Add to cart");
        assert_eq!(
            scrub_text("Signed in as jane@mail.example"),
            "Signed in as [email]"
        );
        assert_eq!(scrub_text("Follow @clicktrail"), "Follow @clicktrail");
    }

    #[test]
    fn visitor_ids_depend_on_salt_and_never_show_the_ip() {
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let a = visitor_id(&[1; 32], "shop", ip, "UA");
        assert_eq!(a.len(), 32);
        assert_eq!(a, visitor_id(&[1; 32], "shop", ip, "UA"));
        assert_ne!(a, visitor_id(&[2; 32], "shop", ip, "UA"));
        assert_ne!(a, visitor_id(&[1; 32], "other", ip, "UA"));
        assert!(!a.contains("203"));
    }

    #[test]
    fn salts_are_per_day() {
        let s = Salts::default();
        assert_eq!(s.get(10), None);
        s.set(10, [7; 32]);
        assert_eq!(s.get(10), Some([7; 32]));
        assert_eq!(s.get(11), None);
        assert_ne!(Salts::random(), Salts::random());
    }

    #[test]
    fn agents() {
        let chrome = parse_agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(
            (chrome.browser.as_str(), chrome.device.as_str()),
            ("Chrome", "desktop")
        );
        let iphone = parse_agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(iphone.device, "mobile");
        let bot =
            parse_agent("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert_eq!(bot.device, "bot");
    }
}
