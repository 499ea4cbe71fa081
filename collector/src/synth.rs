//! Synthetic shop traffic for benchmarks: realistic sessions (landing, browsing,
//! cart, a two-screen checkout, purchase, with clicks and form-field events on the
//! way and drop-outs at every step) written through the same path as real traffic:
//! [`crate::enrich::enrich`] then [`crate::store::Store::commit`].

use std::net::{IpAddr, Ipv4Addr};

use protocol::{Batch, Event, kind};

/// A small deterministic PRNG (xorshift64*), so runs are repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn hex32(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

const PRODUCTS: [&str; 6] = ["boots", "scarf", "gloves", "parka", "beanie", "socks"];

struct SessionWriter<'a> {
    rng: &'a mut Rng,
    t: i64,
    seq: u32,
    path: String,
    screen: Option<String>,
    events: Vec<Event>,
}

impl SessionWriter<'_> {
    fn push(&mut self, k: &str, f: impl FnOnce(&mut Event)) {
        self.t += 300 + self.rng.below(9_000) as i64;
        let mut e = Event {
            id: self.rng.hex32(),
            k: k.to_string(),
            t: self.t,
            seq: self.seq,
            path: self.path.clone(),
            screen: self.screen.clone(),
            ..Event::default()
        };
        f(&mut e);
        self.seq += 1;
        self.events.push(e);
    }

    fn page(&mut self, path: &str, screen: Option<&str>) {
        self.path = path.to_string();
        self.screen = screen.map(str::to_string);
        self.seq = 0;
        self.push(kind::PAGEVIEW, |e| {
            e.url = Some(format!("https://shop.example{path}"));
            e.nav = Some("navigate".into());
        });
    }

    fn click(&mut self, sel: &str, text: &str) {
        let (x, y) = (self.rng.below(1200) as i32, self.rng.below(800) as i32);
        self.push(kind::CLICK, |e| {
            e.sel = Some(sel.into());
            e.text = Some(text.into());
            e.x = Some(x);
            e.y = Some(y);
        });
    }

    fn field(&mut self, form: &str, field: &str) {
        let dur = 500 + self.rng.below(6_000) as i64;
        let empty = self.rng.chance(0.05);
        self.push(kind::FOCUS, |e| {
            e.form = Some(form.into());
            e.field = Some(field.into());
            e.ft = Some("text".into());
        });
        self.push(kind::BLUR, |e| {
            e.form = Some(form.into());
            e.field = Some(field.into());
            e.ft = Some("text".into());
            e.dur = Some(dur);
            e.empty = Some(empty);
        });
    }
}

/// One visitor's session as batches (one per page, like the tracker sends them).
pub fn session(rng: &mut Rng, site: &str, start_ms: i64) -> Vec<Batch> {
    let sid = rng.hex32();
    let mut w = SessionWriter {
        rng,
        t: start_ms,
        seq: 0,
        path: String::new(),
        screen: None,
        events: Vec::new(),
    };
    let mut batches = Vec::new();
    let flush = |w: &mut SessionWriter<'_>, batches: &mut Vec<Batch>| {
        if !w.events.is_empty() {
            batches.push(Batch {
                v: protocol::VERSION,
                site: site.to_string(),
                sid: sid.clone(),
                sent: w.t,
                events: std::mem::take(&mut w.events),
            });
        }
    };
    w.page("/", None);
    w.click("a#banner", "Winter sale");
    for _ in 0..=w.rng.below(3) {
        let p = PRODUCTS[w.rng.below(PRODUCTS.len() as u64) as usize];
        flush(&mut w, &mut batches);
        w.page(&format!("/product/{p}"), None);
        if w.rng.chance(0.3) {
            w.push(kind::LEAVE, |e| e.dur = Some(4_000));
            flush(&mut w, &mut batches);
            return batches;
        }
    }
    w.click("button#add-to-cart", "Add to cart");
    flush(&mut w, &mut batches);
    w.page("/cart", None);
    if w.rng.chance(0.25) {
        flush(&mut w, &mut batches);
        return batches;
    }
    w.click("a#checkout", "Checkout");
    flush(&mut w, &mut batches);
    w.page("/checkout", Some("shipping"));
    w.push(kind::SCREEN, |e| e.screen = Some("shipping".into()));
    for f in ["full-name", "email", "address", "city", "zip"] {
        w.field("shipping", f);
        if w.rng.chance(0.06) {
            w.push(kind::LEAVE, |e| e.dur = Some(30_000));
            flush(&mut w, &mut batches);
            return batches;
        }
    }
    w.push(kind::SUBMIT, |e| e.form = Some("shipping".into()));
    w.screen = Some("payment".into());
    w.push(kind::SCREEN, |e| e.screen = Some("payment".into()));
    for f in ["card-number", "expiry", "cvc", "card-name"] {
        w.field("payment", f);
        if w.rng.chance(0.07) {
            flush(&mut w, &mut batches);
            return batches;
        }
    }
    w.push(kind::SUBMIT, |e| e.form = Some("payment".into()));
    flush(&mut w, &mut batches);
    w.page("/confirmation", None);
    w.push(kind::CUSTOM, |e| {
        e.name = Some("purchase".into());
        e.props = Some(serde_json::json!({"total": 120}));
    });
    w.push(kind::LEAVE, |e| e.dur = Some(5_000));
    flush(&mut w, &mut batches);
    batches
}

/// A batch as the tracker would send it (JSON body of `POST /collect`).
pub fn to_json(b: &Batch) -> String {
    let events: Vec<serde_json::Value> = b
        .events
        .iter()
        .map(|e| {
            let mut v =
                serde_json::json!({"id": e.id, "k": e.k, "t": e.t, "seq": e.seq, "path": e.path});
            let o = v.as_object_mut().expect("an object");
            let mut put = |k: &str, x: Option<serde_json::Value>| {
                if let Some(x) = x {
                    o.insert(k.to_string(), x);
                }
            };
            put("url", e.url.clone().map(Into::into));
            put("nav", e.nav.clone().map(Into::into));
            put("screen", e.screen.clone().map(Into::into));
            put("sel", e.sel.clone().map(Into::into));
            put("text", e.text.clone().map(Into::into));
            put("x", e.x.map(Into::into));
            put("y", e.y.map(Into::into));
            put("form", e.form.clone().map(Into::into));
            put("field", e.field.clone().map(Into::into));
            put("ft", e.ft.clone().map(Into::into));
            put("dur", e.dur.map(Into::into));
            put("empty", e.empty.map(Into::into));
            put("name", e.name.clone().map(Into::into));
            put("props", e.props.clone());
            v
        })
        .collect();
    serde_json::json!({"v": b.v, "site": b.site, "sid": b.sid, "sent": b.sent, "events": events})
        .to_string()
}

/// A synthetic client address for session `i` (only ever hashed).
pub fn client_ip(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (i as u32 & 0x00FF_FFFF)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_valid_batches() {
        let mut rng = Rng::new(7);
        let start = 1_700_000_000_000;
        let (mut total, mut purchases) = (0, 0);
        for _ in 0..200 {
            for b in session(&mut rng, "bench", start) {
                let parsed = protocol::parse_batch(to_json(&b).as_bytes()).expect("valid");
                total += parsed.events.len();
                purchases += parsed
                    .events
                    .iter()
                    .filter(|e| e.name.as_deref() == Some("purchase"))
                    .count();
            }
        }
        assert!(total > 200 * 5, "{total}");
        assert!(purchases > 10 && purchases < 150, "{purchases}");
    }
}
