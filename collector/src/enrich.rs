//! Enrichment: turns a validated [`protocol::Batch`] plus what the request tells
//! (client address, user agent, arrival time) into rows for the events table.
//!
//! Privacy by construction: the client address is used only inside the visitor
//! hash and dropped; every stored text goes through [`crate::scrub`] (URLs keep only
//! allow-listed query parameters; emails, tokens, card and phone numbers are
//! redacted in every encoding a browser sends); `identify` ids are stored as a keyed
//! hash unless the site opted in to clear ids; bot user agents are marked
//! `device = 'bot'`, which the audits leave out.

use std::{fmt::Write as _, net::IpAddr, sync::Mutex};

use sha2::{Digest, Sha256};

use crate::{scrub, store::Row};

/// The visitor hash salt in memory: random, one per UTC day (kept in the database's
/// key file, [`crate::keyfile`], so a restart keeps today's visitor ids; never in
/// the database itself), never derived from anything else,
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

/// Whether `ua` is a bot's: empty, or on the maintained list of bot user agents
/// (crawlers, monitors, HTTP libraries, link previews, AI agents …) of the `isbot`
/// crate. Headless Chrome is not on it here: it runs the page's scripts like a
/// visitor, and shops test and monitor their flows with it.
pub fn is_bot(ua: &str) -> bool {
    static BOTS: std::sync::OnceLock<isbot::Bots> = std::sync::OnceLock::new();
    let ua = ua.trim();
    ua.is_empty()
        || BOTS
            .get_or_init(|| {
                let mut bots = isbot::Bots::default();
                bots.remove(&["headlesschrome", "headless"]);
                bots
            })
            .is_bot(ua)
}

/// [`parse_agent`] remembered for the user agents seen lately: one visitor sends the
/// same one with every batch, and the woothee parse and the bot list cost far more
/// than the lookup.
pub fn agent(ua: &str) -> Agent {
    const KEEP: usize = 4096;
    static SEEN: std::sync::OnceLock<Mutex<std::collections::HashMap<String, Agent>>> =
        std::sync::OnceLock::new();
    let seen = SEEN.get_or_init(Mutex::default);
    if let Some(a) = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(ua)
    {
        return a.clone();
    }
    let a = parse_agent(ua);
    let mut map = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if map.len() >= KEEP {
        map.clear();
    }
    if ua.len() <= 512 {
        map.insert(ua.to_owned(), a.clone());
    }
    a
}

/// Parse a user agent with woothee's maintained dataset.
pub fn parse_agent(ua: &str) -> Agent {
    let parser = woothee::parser::Parser::new();
    let Some(r) = parser.parse(ua) else {
        return Agent {
            browser: "unknown".into(),
            os: "unknown".into(),
            device: if is_bot(ua) { "bot" } else { "other" }.into(),
        };
    };
    let lower = ua.to_ascii_lowercase();
    let device = if r.category == "crawler" || is_bot(ua) {
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

/// What the request tells about the sender.
#[derive(Debug, Clone)]
pub struct Context {
    /// Client address (used only inside the visitor hash).
    pub ip: IpAddr,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Arrival time, ms since the epoch.
    pub received_ms: i64,
    /// Key of the keyed hash of `identify` ids.
    pub uid_key: [u8; 32],
    /// The site stores `identify` ids as sent (still scrubbed).
    pub clear_ids: bool,
}

fn text(v: Option<&str>) -> Option<String> {
    v.map(|s| scrub::text(s).into_owned())
}

/// The stored form of an `identify` id: `u_` + 32 hex characters of
/// HMAC-SHA-256(key, site, id). The same person gets the same value on every visit,
/// and nobody without the key can tell who it is.
pub fn user_hash(key: &[u8; 32], site: &str, uid: &str) -> String {
    use hmac::Mac as _;
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
        return "u_".to_owned();
    };
    mac.update(site.as_bytes());
    mac.update(&[0]);
    mac.update(uid.as_bytes());
    let d = mac.finalize().into_bytes();
    d[..16].iter().fold(String::from("u_"), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Clock skew beyond which event times are shifted to the collector's clock.
pub const MAX_TRUSTED_SKEW_MS: i64 = 60_000;

/// Turn a validated batch into rows. A `links` event becomes one `link_view` row
/// per link (event id `ID-N`), so every link impression is a row like any other.
pub fn enrich(batch: protocol::Batch, ctx: &Context, salt: &[u8; 32]) -> Vec<Row> {
    let agent = agent(&ctx.user_agent);
    let visitor = visitor_id(salt, &batch.site, ctx.ip, &ctx.user_agent);
    let skew = ctx.received_ms - batch.sent;
    let shift = if skew.abs() > MAX_TRUSTED_SKEW_MS {
        skew
    } else {
        0
    };
    let session_key = store::session_key(&batch.site, &batch.sid);
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
            path: scrub::path(&e.path),
            url: e.url.as_deref().and_then(scrub::url),
            referrer: e
                .referrer
                .as_deref()
                .filter(|r| !r.is_empty())
                .and_then(scrub::url),
            title: text(e.title.as_deref()),
            nav: text(e.nav.as_deref()),
            screen: text(e.screen.as_deref()),
            selector: text(e.sel.as_deref()),
            text: text(e.text.as_deref()),
            href: e.href.as_deref().and_then(scrub::href),
            x: e.x,
            y: e.y,
            form: text(e.form.as_deref()),
            field: text(e.field.as_deref()),
            field_type: text(e.ft.as_deref()),
            duration_ms: e.dur,
            empty: e.empty,
            name: text(e.name.as_deref()),
            props: e.props.map(|mut p| {
                scrub::json(&mut p);
                p.to_string()
            }),
            user_id: e.uid.as_deref().map(|u| {
                if ctx.clear_ids {
                    scrub::text(u).into_owned()
                } else {
                    user_hash(&ctx.uid_key, &batch.site, u)
                }
            }),
            browser: agent.browser.clone(),
            os: agent.os.clone(),
            device: agent.device.clone(),
            status: e.status.map(i32::from),
            ad: text(e.ad.as_deref()),
            message: text(e.msg.as_deref()),
            source: e.src.as_deref().and_then(scrub::url),
            line: e.line.map(|l| l.min(i32::MAX as u32) as i32),
            session_key,
            ancestry: text(e.anc.as_deref()),
        };
        match links {
            Some(links) if row.kind == protocol::kind::LINKS => {
                for (i, l) in links.into_iter().enumerate() {
                    let mut r = row.clone();
                    r.event_id = format!("{}-{i}", r.event_id);
                    protocol::kind::LINK_VIEW.clone_into(&mut r.kind);
                    r.selector = Some(scrub::text(&l.sel).into_owned());
                    r.href = scrub::href(&l.href);
                    r.text = text(l.label.as_deref());
                    r.ancestry = None;
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
    fn user_ids_are_a_keyed_hash() {
        let a = user_hash(&[1; 32], "shop", "jane@mail.example");
        assert!(a.starts_with("u_") && a.len() == 34, "{a}");
        assert_eq!(a, user_hash(&[1; 32], "shop", "jane@mail.example"));
        assert_ne!(a, user_hash(&[2; 32], "shop", "jane@mail.example"));
        assert_ne!(a, user_hash(&[1; 32], "other", "jane@mail.example"));
    }

    #[test]
    fn bots_are_known_by_their_user_agent() {
        for ua in [
            "",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        ] {
            assert!(is_bot(ua), "{ua}");
            assert_eq!(parse_agent(ua).device, "bot", "{ua}");
        }
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        ] {
            assert!(!is_bot(ua), "{ua}");
        }
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
