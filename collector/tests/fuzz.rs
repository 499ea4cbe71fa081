//! A property test over generated inputs: the batch parser and enrich never panic,
//! whatever a client sends, and what enrich stores holds no secret.
//!
//! Inputs are generated from a seed: batches shaped like the tracker's with hostile
//! values (every string field filled with mixes of emails in their encodings, digits,
//! card and phone shapes, tokens, unicode, control characters and escapes, at and
//! past the limits; numbers at their edges; wrong types; missing fields), and then
//! byte-level mutations of them (flips, cuts, inserts, duplications). Each input goes
//! through `protocol::parse_batch`; each accepted batch through `enrich`.
//!
//! `CLICKTRAIL_FUZZ_ITERS` sets the count (default 200,000 in the test suite;
//! `cargo xtask fuzz` runs 10,000,000); `CLICKTRAIL_FUZZ_SEED` the seed.

use std::sync::atomic::{AtomicU64, Ordering};

use clicktrail_collector::{enrich, scrub};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const PIECES: &[&str] = &[
    "jane.doe@mail.example",
    "jane%40mail.example",
    "jane%2540mail.example",
    "a&#64;b.example",
    "x＠y.example",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111111111111111",
    "+1 (555) 123-4567",
    "%2B15551234567",
    "555.123.4567",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "9f86d081884c7d659a2feaa0c55ad015",
    "123e4567-e89b-12d3-a456-426614174000",
    "Add to cart",
    "/product/boots",
    "?q=1&email=a@b.c",
    "#/route",
    "%",
    "%%",
    "%zz",
    "%e2%82",
    "\\u0000",
    "\\ud800",
    "\\n",
    "\\\"",
    "é",
    "日本",
    "🛒",
    "\u{202e}",
    "\u{1b}[31m",
    "=HYPERLINK(\"x\")",
    "@",
    "..",
    "//",
    "https://",
    "http://a",
    "mailto:",
    "javascript:alert(1)",
    "0",
    "-1",
    "99999999999999999999",
    " ",
    "\t",
    "&amp;",
    "&#x40;",
    "&commat;",
    "+",
    "++",
    "a",
    "Z9",
    "_",
    "-",
];

fn junk(r: &mut Rng, max: usize) -> String {
    let mut s = String::new();
    let n = r.below(6);
    for _ in 0..n {
        s.push_str(r.pick(PIECES));
        if r.chance(30) {
            for _ in 0..r.below(40) {
                s.push(char::from(b'a' + (r.below(26) as u8)));
            }
        }
    }
    if r.chance(3) {
        s = s.repeat(1 + r.below(max / s.len().max(1) + 2));
    }
    s
}

fn json_str(s: &str) -> String {
    // Mostly proper JSON strings; sometimes raw (broken) ones.
    serde_json::to_string(s).unwrap_or_default()
}

fn value(r: &mut Rng, max: usize) -> String {
    match r.below(40) {
        0 => r
            .pick(&[
                "null",
                "true",
                "1",
                "-1",
                "1e308",
                "18446744073709551616",
                "[]",
                "{}",
            ])
            .to_owned(),
        1 => format!("\"{}\"", r.pick(PIECES)),
        _ => json_str(&junk(r, max)),
    }
}

const KINDS: &[&str] = &[
    "pageview",
    "screen",
    "click",
    "focus",
    "blur",
    "change",
    "submit",
    "leave",
    "custom",
    "identify",
    "links",
    "ad_view",
    "error",
    "dead_click",
    "invalid",
    "warp",
    "",
];
const FIELDS: &[(&str, usize)] = &[
    ("url", 2048),
    ("ref", 2048),
    ("title", 256),
    ("nav", 16),
    ("screen", 128),
    ("sel", 512),
    ("anc", 512),
    ("text", 64),
    ("href", 2048),
    ("form", 128),
    ("field", 128),
    ("ft", 32),
    ("name", 128),
    ("uid", 128),
    ("ad", 128),
    ("msg", 256),
    ("src", 2048),
];

fn event(r: &mut Rng, i: usize, sent: i64) -> String {
    let mut f = vec![
        format!(
            "\"id\":\"{:032x}\"",
            u128::from(r.next()) * u128::from(r.next())
        ),
        format!("\"k\":\"{}\"", r.pick(KINDS)),
        format!("\"t\":{}", sent - (r.below(100_000) as i64)),
        format!("\"seq\":{i}"),
        format!(
            "\"path\":{}",
            if r.chance(80) {
                json_str(&format!("/{}", junk(r, 1000)))
            } else {
                value(r, 1024)
            }
        ),
    ];
    for (name, max) in FIELDS {
        if r.chance(25) {
            f.push(format!("\"{name}\":{}", value(r, *max)));
        }
    }
    for (name, v) in [
        ("x", "12"),
        ("y", "-5"),
        ("dur", "1500"),
        ("status", "404"),
        ("line", "7"),
        ("empty", "true"),
    ] {
        if r.chance(15) {
            f.push(format!("\"{name}\":{v}"));
        }
    }
    if r.chance(15) {
        let keys: Vec<String> = (0..r.below(5))
            .map(|_| format!("{}:{}", json_str(&junk(r, 40)), value(r, 200)))
            .collect();
        f.push(format!("\"props\":{{{}}}", keys.join(",")));
    }
    if r.chance(15) {
        let links: Vec<String> = (0..r.below(120))
            .map(|_| format!("[{},{}]", json_str(&junk(r, 100)), json_str(&junk(r, 300))))
            .collect();
        f.push(format!("\"links\":[{}]", links.join(",")));
    }
    if r.chance(5) {
        let other = r.below(f.len());
        f.swap(0, other);
    }
    format!("{{{}}}", f.join(","))
}

fn body(r: &mut Rng) -> Vec<u8> {
    let sent = 1_767_225_600_000i64 + r.below(1_000_000) as i64;
    let n = if r.chance(5) {
        r.below(260)
    } else {
        1 + r.below(8)
    };
    let events: Vec<String> = (0..n).map(|i| event(r, i, sent)).collect();
    let site = if r.chance(90) {
        "shop".to_owned()
    } else {
        junk(r, 80)
    };
    let mut b = format!(
        "{{\"v\":1,\"site\":{},\"sid\":\"00112233445566778899aabbccddeeff\",\"sent\":{sent},\"events\":[{}]}}",
        json_str(&site),
        events.join(",")
    )
    .into_bytes();
    // Byte-level mutations.
    for _ in 0..if r.chance(15) { 1 + r.below(4) } else { 0 } {
        if b.is_empty() {
            break;
        }
        let at = r.below(b.len());
        match r.below(5) {
            0 => b[at] = r.next() as u8,
            1 => b.truncate(at),
            2 => b.insert(
                at,
                *r.pick(&["{", "}", "[", "\"", ",", "\\", "\u{0}"])
                    .as_bytes()
                    .first()
                    .unwrap_or(&0),
            ),
            3 => {
                let end = (at + r.below(64)).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(at..at, piece);
            }
            _ => {
                b.remove(at);
            }
        }
    }
    b
}

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

#[test]
fn parser_and_enrich_survive_every_generated_input() {
    let iters: u64 = std::env::var("CLICKTRAIL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let seed: u64 = std::env::var("CLICKTRAIL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let threads = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let (accepted, rows) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..threads {
            let (accepted, rows) = (&accepted, &rows);
            s.spawn(move || {
                let mut r = Rng(seed.wrapping_mul(t + 1) | 1);
                let ctx = enrich::Context {
                    ip: "203.0.113.9".parse().unwrap(),
                    user_agent: "Mozilla/5.0 Chrome/120.0".into(),
                    received_ms: 1_767_225_700_000,
                    uid_key: [3; 32],
                    clear_ids: t % 2 == 0,
                };
                for i in 0..iters / threads {
                    let b = body(&mut r);
                    let Ok(batch) = protocol::parse_batch(&b) else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let want = protocol::stored_rows(&batch);
                    let out = enrich::enrich(batch, &ctx, &[1; 32]);
                    assert_eq!(out.len(), want, "input {i} of thread {t}");
                    rows.fetch_add(out.len() as u64, Ordering::Relaxed);
                    for row in &out {
                        // Props are JSON: each key and string value is a stored text.
                        if let Some(p) = &row.props {
                            let v: serde_json::Value =
                                serde_json::from_str(p).expect("props stay JSON");
                            let mut texts = Vec::new();
                            strings(&v, &mut texts);
                            for t in texts {
                                assert!(
                                    !scrub::has_secret(&t),
                                    "input {i} of thread {t:?} stored a secret in props"
                                );
                            }
                        }
                        for text in [
                            Some(&row.path),
                            row.url.as_ref(),
                            row.referrer.as_ref(),
                            row.title.as_ref(),
                            row.screen.as_ref(),
                            row.selector.as_ref(),
                            row.text.as_ref(),
                            row.href.as_ref(),
                            row.form.as_ref(),
                            row.field.as_ref(),
                            row.name.as_ref(),
                            row.user_id.as_ref().filter(|_| ctx.clear_ids),
                            row.ad.as_ref(),
                            row.message.as_ref(),
                            row.source.as_ref(),
                        ]
                        .into_iter()
                        .flatten()
                        {
                            assert!(
                                !scrub::has_secret(text),
                                "input {i} of thread {t} stored a secret: {text:?}\nbody: {}",
                                String::from_utf8_lossy(&b)
                            );
                        }
                    }
                }
            });
        }
    });
    let accepted = accepted.load(Ordering::Relaxed);
    println!(
        "fuzz: {iters} inputs, {accepted} accepted batches, {} rows, no panic, no secret stored",
        rows.load(Ordering::Relaxed)
    );
    assert!(
        accepted > iters / 50,
        "the generator must reach enrich often ({accepted})"
    );
}
