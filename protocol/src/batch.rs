//! Parsing and validating a batch (collector side).

use serde::Deserialize;

use crate::{
    MAX_ANCESTRY, MAX_ERROR_CHARS, MAX_EVENT_AGE_MS, MAX_EVENT_FUTURE_MS, MAX_EVENTS_PER_BATCH,
    MAX_LINKS_PER_EVENT, MAX_NAME, MAX_PATH, MAX_PROPS_BYTES, MAX_SELECTOR, MAX_SITE,
    MAX_TEXT_CHARS, MAX_TITLE, MAX_URL, VERSION, kind,
};

/// What was wrong with a batch. The collector turns each into a 400 with a JSON body
/// whose `error` is [`Error::code`] and whose `message` is the `Display` text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The body is not JSON, or not a batch object.
    #[error("body is not a valid batch: {0}")]
    InvalidJson(String),
    /// The batch's `v` is not [`VERSION`].
    #[error("unsupported batch version {0}, this collector speaks version {VERSION}")]
    Version(u32),
    /// More than [`MAX_EVENTS_PER_BATCH`] events, or none.
    #[error("a batch holds 1 to {MAX_EVENTS_PER_BATCH} events, this one holds {0}")]
    EventCount(usize),
    /// A batch-level field is missing or malformed.
    #[error("batch field `{field}` {problem}")]
    BatchField {
        field: &'static str,
        problem: String,
    },
    /// An event field is missing or malformed.
    #[error("event {index}: field `{field}` {problem}")]
    EventField {
        index: usize,
        field: &'static str,
        problem: String,
    },
    /// An event kind this collector does not know.
    #[error("event {index}: unknown kind `{kind}`")]
    UnknownKind { index: usize, kind: String },
    /// An event time too far from the batch's send time.
    #[error(
        "event {index}: time {t} is not within 24 h before / 60 s after the batch's send time {sent}"
    )]
    Timestamp { index: usize, t: i64, sent: i64 },
}

impl Error {
    /// A stable machine-readable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidJson(_) => "invalid_json",
            Error::Version(_) => "unsupported_version",
            Error::EventCount(_) => "event_count",
            Error::BatchField { .. } | Error::EventField { .. } => "invalid_field",
            Error::UnknownKind { .. } => "unknown_kind",
            Error::Timestamp { .. } => "bad_timestamp",
        }
    }

    /// The index of the offending event, if the problem is in one.
    pub fn event_index(&self) -> Option<usize> {
        match self {
            Error::EventField { index, .. }
            | Error::UnknownKind { index, .. }
            | Error::Timestamp { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// A batch of events from one page of one session.
#[derive(Debug, Clone, Deserialize)]
pub struct Batch {
    /// Format version, must equal [`VERSION`].
    pub v: u32,
    /// The site id from the snippet's `data-site`.
    pub site: String,
    /// Session id: 32 hex chars, kept by the tracker in sessionStorage.
    pub sid: String,
    /// Client clock (ms since the epoch) when the batch was sent.
    pub sent: i64,
    /// The events, in the order they happened.
    pub events: Vec<Event>,
}

/// One event. Which optional fields are set depends on the kind (see [`crate::kind`]).
/// Unknown fields are ignored, so newer trackers can talk to older collectors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    /// Random 128-bit id, 32 lowercase hex chars.
    pub id: String,
    /// Kind, one of [`crate::kind::ALL`].
    pub k: String,
    /// Client time, ms since the epoch.
    pub t: i64,
    /// Per-page sequence number: orders events with equal times.
    pub seq: u32,
    /// Page path (no query), plus the hash route of a page that routes with the
    /// URL fragment (`/shop.html#/product/12`); no other fragment.
    pub path: String,
    /// Full page URL (the collector keeps only allow-listed query parameters).
    pub url: Option<String>,
    /// `document.referrer` on a page view.
    #[serde(rename = "ref")]
    pub referrer: Option<String>,
    /// Page title on a page view.
    pub title: Option<String>,
    /// How the page view happened: `navigate`, `reload`, `back_forward`, `push`, `replace`,
    /// `pop`, `hash` (a new hash route: the URL fragment changed to one), `forward`
    /// (forward in history, where the browser tells the direction; else
    /// `back_forward` or `pop`).
    pub nav: Option<String>,
    /// The `data-ct-screen` shown when the event happened; on a `screen` event, the
    /// one now shown (none: the marked element went away, the page itself shows).
    pub screen: Option<String>,
    /// CSS selector of the clicked element.
    pub sel: Option<String>,
    /// The element clicked and the elements it is in, innermost first, up to
    /// `<body>`: `tag#id.class…` each, separated by spaces (for `click:` steps).
    pub anc: Option<String>,
    /// Text of the clicked element (cut to 64 chars).
    pub text: Option<String>,
    /// Link target of the clicked element.
    pub href: Option<String>,
    /// Click position in the viewport.
    pub x: Option<i32>,
    /// Click position in the viewport.
    pub y: Option<i32>,
    /// The form: its `name`, else `id`, else a selector.
    pub form: Option<String>,
    /// The field: its `name`, else `id`, else a selector.
    pub field: Option<String>,
    /// The field's type (`email`, `select-one`, …).
    pub ft: Option<String>,
    /// Milliseconds: time focused (blur) or time on page (leave).
    pub dur: Option<i64>,
    /// Whether the field was left empty (blur/change). Never the value.
    pub empty: Option<bool>,
    /// Custom event name.
    pub name: Option<String>,
    /// Custom event properties (a JSON object).
    pub props: Option<serde_json::Value>,
    /// `identify` id.
    pub uid: Option<String>,
    /// HTTP status of the document (page views), from
    /// `PerformanceNavigationTiming.responseStatus` or `<meta name="ct-status">`.
    pub status: Option<u16>,
    /// `CAMPAIGN:VARIANT` of the `data-ct-ad` element (ad views, clicks inside an ad).
    pub ad: Option<String>,
    /// Links seen in the viewport (`links` events): `[selector, href]` or
    /// `[selector, href, label]` arrays.
    pub links: Option<Vec<LinkSeen>>,
    /// Error message (`error` events), cut to 256 chars.
    pub msg: Option<String>,
    /// Script URL of an error.
    pub src: Option<String>,
    /// Line of an error.
    pub line: Option<u32>,
}

/// One link of a `links` event, sent as the array `[selector, href]` or
/// `[selector, href, label]`; the label is the link's text or accessible name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkSeen {
    pub sel: String,
    pub href: String,
    #[serde(default)]
    pub label: Option<String>,
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How many rows `batch` becomes once stored: one per event, except a `links` event,
/// which is one per link.
pub fn stored_rows(batch: &Batch) -> usize {
    batch
        .events
        .iter()
        .map(|e| match &e.links {
            Some(links) if e.k == kind::LINKS => links.len(),
            _ => 1,
        })
        .sum()
}

/// Parse and validate a batch body. The batch is accepted or rejected whole.
pub fn parse_batch(body: &[u8]) -> Result<Batch, Error> {
    let batch: Batch =
        serde_json::from_slice(body).map_err(|e| Error::InvalidJson(e.to_string()))?;
    validate(&batch)?;
    Ok(batch)
}

fn check_len(
    index: usize,
    field: &'static str,
    value: Option<&String>,
    max: usize,
) -> Result<(), Error> {
    match value {
        Some(v) if v.len() > max => Err(Error::EventField {
            index,
            field,
            problem: format!("is {} bytes long, the limit is {max}", v.len()),
        }),
        _ => Ok(()),
    }
}

fn validate(b: &Batch) -> Result<(), Error> {
    if b.v != VERSION {
        return Err(Error::Version(b.v));
    }
    if b.site.is_empty()
        || b.site.len() > MAX_SITE
        || !b
            .site
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
    {
        return Err(Error::BatchField {
            field: "site",
            problem: format!("must be 1 to {MAX_SITE} characters of [A-Za-z0-9._-]"),
        });
    }
    if !is_hex_id(&b.sid) {
        return Err(Error::BatchField {
            field: "sid",
            problem: "must be 32 lowercase hex characters".into(),
        });
    }
    if b.sent <= 0 {
        return Err(Error::BatchField {
            field: "sent",
            problem: "must be a positive time in ms".into(),
        });
    }
    if b.events.is_empty() || b.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(Error::EventCount(b.events.len()));
    }
    for (index, e) in b.events.iter().enumerate() {
        validate_event(index, e, b.sent)?;
    }
    Ok(())
}

fn validate_event(index: usize, e: &Event, sent: i64) -> Result<(), Error> {
    if !is_hex_id(&e.id) {
        return Err(Error::EventField {
            index,
            field: "id",
            problem: "must be 32 lowercase hex characters".into(),
        });
    }
    if !kind::is_known(&e.k) {
        return Err(Error::UnknownKind {
            index,
            kind: e.k.chars().take(MAX_NAME).collect(),
        });
    }
    if e.t < sent - MAX_EVENT_AGE_MS || e.t > sent + MAX_EVENT_FUTURE_MS {
        return Err(Error::Timestamp {
            index,
            t: e.t,
            sent,
        });
    }
    if !e.path.starts_with('/') || e.path.len() > MAX_PATH {
        return Err(Error::EventField {
            index,
            field: "path",
            problem: format!("must start with `/` and be at most {MAX_PATH} bytes"),
        });
    }
    check_len(index, "url", e.url.as_ref(), MAX_URL)?;
    check_len(index, "ref", e.referrer.as_ref(), MAX_URL)?;
    check_len(index, "href", e.href.as_ref(), MAX_URL)?;
    check_len(index, "title", e.title.as_ref(), MAX_TITLE)?;
    check_len(index, "sel", e.sel.as_ref(), MAX_SELECTOR)?;
    check_len(index, "anc", e.anc.as_ref(), MAX_ANCESTRY)?;
    check_len(index, "src", e.src.as_ref(), MAX_URL)?;
    check_len(index, "ad", e.ad.as_ref(), MAX_NAME)?;
    if let Some(msg) = &e.msg {
        let n = msg.chars().count();
        if n > MAX_ERROR_CHARS {
            return Err(Error::EventField {
                index,
                field: "msg",
                problem: format!("has {n} characters, the limit is {MAX_ERROR_CHARS}"),
            });
        }
    }
    if let Some(links) = &e.links {
        if links.len() > MAX_LINKS_PER_EVENT {
            return Err(Error::EventField {
                index,
                field: "links",
                problem: format!(
                    "has {} links, the limit is {MAX_LINKS_PER_EVENT}",
                    links.len()
                ),
            });
        }
        for l in links {
            check_len(index, "links", Some(&l.sel), MAX_SELECTOR)?;
            check_len(index, "links", Some(&l.href), MAX_URL)?;
            if l.label
                .as_ref()
                .is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS)
            {
                return Err(Error::EventField {
                    index,
                    field: "links",
                    problem: format!("has a label over {MAX_TEXT_CHARS} characters"),
                });
            }
        }
    }
    if e.status.is_some_and(|s| !(100..=599).contains(&s)) {
        return Err(Error::EventField {
            index,
            field: "status",
            problem: "must be an HTTP status (100-599)".into(),
        });
    }
    for (field, v) in [
        ("nav", &e.nav),
        ("screen", &e.screen),
        ("form", &e.form),
        ("field", &e.field),
        ("ft", &e.ft),
        ("name", &e.name),
        ("uid", &e.uid),
    ] {
        check_len(index, field, v.as_ref(), MAX_NAME.max(MAX_SELECTOR))?;
    }
    if let Some(text) = &e.text {
        let n = text.chars().count();
        if n > MAX_TEXT_CHARS {
            return Err(Error::EventField {
                index,
                field: "text",
                problem: format!("has {n} characters, the limit is {MAX_TEXT_CHARS}"),
            });
        }
    }
    if e.dur.is_some_and(|d| d < 0) {
        return Err(Error::EventField {
            index,
            field: "dur",
            problem: "must not be negative".into(),
        });
    }
    if let Some(props) = &e.props {
        if !props.is_object() {
            return Err(Error::EventField {
                index,
                field: "props",
                problem: "must be a JSON object".into(),
            });
        }
        let n = props.to_string().len();
        if n > MAX_PROPS_BYTES {
            return Err(Error::EventField {
                index,
                field: "props",
                problem: format!("is {n} bytes serialised, the limit is {MAX_PROPS_BYTES}"),
            });
        }
    }
    let needs = |field: &'static str, present: bool| {
        if present {
            Ok(())
        } else {
            Err(Error::EventField {
                index,
                field,
                problem: format!("is required for `{}` events", e.k),
            })
        }
    };
    match e.k.as_str() {
        kind::CUSTOM => needs("name", e.name.as_ref().is_some_and(|n| !n.is_empty())),
        kind::IDENTIFY => needs("uid", e.uid.is_some()),
        kind::FOCUS | kind::BLUR | kind::CHANGE | kind::INVALID => {
            needs("field", e.field.is_some())
        }
        kind::SUBMIT => needs("form", e.form.is_some()),
        kind::LINKS => needs("links", e.links.is_some()),
        kind::AD_VIEW => needs("ad", e.ad.is_some()),
        kind::ERROR => needs("msg", e.msg.is_some()),
        kind::DEAD_CLICK => needs("sel", e.sel.is_some()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn body(events: &str) -> String {
        format!(r#"{{"v":1,"site":"shop","sid":"{ID}","sent":1700000000000,"events":[{events}]}}"#)
    }

    fn ev(k: &str, extra: &str) -> String {
        format!(r#"{{"id":"{ID}","k":"{k}","t":1700000000000,"seq":0,"path":"/"{extra}}}"#)
    }

    #[test]
    fn accepts_a_good_batch_and_ignores_unknown_fields() {
        let b =
            parse_batch(body(&ev("click", r#","sel":"a#x","future_field":1"#)).as_bytes()).unwrap();
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.events[0].sel.as_deref(), Some("a#x"));
    }

    #[test]
    fn audit_kinds_parse() {
        let events = [
            ev("pageview", r#","status":404"#),
            ev(
                "links",
                r#","links":[["a#x","https://s.example/a"],["a.y","/b","Boots"]]"#,
            ),
            ev("ad_view", r#","ad":"winter:A","sel":"a#banner""#),
            ev(
                "error",
                r#","msg":"x is undefined","src":"https://s.example/app.js","line":12"#,
            ),
            ev("dead_click", r#","sel":"span.price""#),
            ev("invalid", r#","form":"shipping","field":"email""#),
        ];
        let b = parse_batch(body(&events.join(",")).as_bytes()).unwrap();
        assert_eq!(b.events[0].status, Some(404));
        let links = b.events[1].links.as_ref().unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].label, None);
        assert_eq!(links[1].label.as_deref(), Some("Boots"));
        // Not a link: too few or too many parts.
        for bad in [r#"[["a#x"]]"#, r#"[["a#x","/b","c","d"]]"#] {
            let e = ev("links", &format!(r#","links":{bad}"#));
            assert!(parse_batch(body(&e).as_bytes()).is_err(), "{bad}");
        }
        let bad = parse_batch(body(&ev("pageview", r#","status":42"#)).as_bytes()).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "event 0: field `status` must be an HTTP status (100-599)"
        );
        let missing = parse_batch(body(&ev("ad_view", "")).as_bytes()).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "event 0: field `ad` is required for `ad_view` events"
        );
    }

    #[test]
    fn rejects_with_named_problems() {
        let err = |s: String| parse_batch(s.as_bytes()).unwrap_err();
        assert_eq!(err("nope".into()).code(), "invalid_json");
        assert_eq!(err(body("")).code(), "event_count");
        let e = err(body(&format!("{},{}", ev("click", ""), ev("teleport", ""))));
        assert_eq!((e.code(), e.event_index()), ("unknown_kind", Some(1)));
        let e = err(body(&ev("submit", "")));
        assert_eq!(
            e.to_string(),
            "event 0: field `form` is required for `submit` events"
        );
        // A `screen` event without `screen`: the marked element went away.
        assert!(parse_batch(body(&ev("screen", "")).as_bytes()).is_ok());
        let e = err(body(&ev(
            "click",
            &format!(r#","text":"{}""#, "é".repeat(65)),
        )));
        assert_eq!(e.code(), "invalid_field");
        let late = body(&ev("click", "")).replace("\"t\":1700000000000", "\"t\":1700000090000");
        assert_eq!(err(late).code(), "bad_timestamp");
        let bad_site = body(&ev("click", "")).replace("\"shop\"", "\"sh op\"");
        assert!(err(bad_site).to_string().contains("site"));
        let v2 = body(&ev("click", "")).replace("\"v\":1", "\"v\":2");
        assert_eq!(err(v2).code(), "unsupported_version");
    }
}
