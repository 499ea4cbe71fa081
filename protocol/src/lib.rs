//! The wire format between the clicktrail tracker and the collector.
//!
//! The tracker (wasm32, no serde) uses only the constants: event kind names, field
//! names and limits. The collector (feature `serde`, on by default) parses a batch
//! with [`parse_batch`], which checks every limit below and accepts or rejects the
//! batch whole, with an [`Error`] that names the problem.
//!
//! # A batch
//!
//! ```json
//! {"v":1,"site":"shop-1","sid":"9f0c…(32 hex)","sent":1732412345678,
//!  "events":[{"id":"…32 hex…","k":"click","t":1732412345000,"seq":3,
//!             "path":"/cart","sel":"button#pay","text":"Pay now","x":210,"y":480}]}
//! ```
//!
//! Field names are short because every byte is paid by a shop visitor.

#![cfg_attr(not(feature = "serde"), no_std)]

/// Version of the batch format. The collector accepts this version only.
pub const VERSION: u32 = 1;

/// The largest request body the collector reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most events in one batch.
pub const MAX_EVENTS_PER_BATCH: usize = 200;
/// The most rows one batch may become once stored (a `links` event is one row per
/// link): what a request may cost the store, whatever its byte size.
pub const MAX_ROWS_PER_BATCH: usize = 1000;
/// The tracker sends a batch once it holds this many events (or after [`FLUSH_INTERVAL_MS`]).
pub const FLUSH_AT_EVENTS: usize = 30;
/// The tracker sends what it holds at least this often while the page is open.
pub const FLUSH_INTERVAL_MS: u32 = 3_000;
/// A session ends after this much inactivity.
pub const SESSION_IDLE_MS: u32 = 30 * 60 * 1000;

/// Longest site id.
pub const MAX_SITE: usize = 64;
/// Longest URL (after the tracker drops the fragment).
pub const MAX_URL: usize = 2048;
/// Longest path.
pub const MAX_PATH: usize = 1024;
/// Longest CSS selector of a clicked element or a form.
pub const MAX_SELECTOR: usize = 512;
/// Longest list of a clicked element and the elements it is in (`anc`).
pub const MAX_ANCESTRY: usize = 512;
/// Clicked element text is cut to this many characters by the tracker.
pub const MAX_TEXT_CHARS: usize = 64;
/// Longest name (screen, field, form, custom event, campaign …).
pub const MAX_NAME: usize = 128;
/// Longest page title.
pub const MAX_TITLE: usize = 256;
/// Largest custom-event properties object, serialised.
pub const MAX_PROPS_BYTES: usize = 2048;
/// Most links in one `links` event.
pub const MAX_LINKS_PER_EVENT: usize = 100;
/// JavaScript error messages are cut to this many characters.
pub const MAX_ERROR_CHARS: usize = 256;

/// Events may be at most this much older than the batch's `sent` time.
pub const MAX_EVENT_AGE_MS: i64 = 24 * 60 * 60 * 1000;
/// Events may be at most this much newer than the batch's `sent` time.
pub const MAX_EVENT_FUTURE_MS: i64 = 60 * 1000;

/// Query parameters that are click ids, kept in stored URLs as they are unless
/// they hold an email, a card or a phone number.
pub const CLICK_ID_PARAMS: [&str; 8] = [
    "gclid", "fbclid", "msclkid", "dclid", "gbraid", "wbraid", "ttclid", "twclid",
];

/// Whether a query parameter (by its name) is kept in stored URLs: `utm_*`, a
/// click id ([`CLICK_ID_PARAMS`]) or `ref`, in any case. Every other parameter is
/// dropped by the collector, so a change of one alone (the `?variant=42` of a
/// variant picker, the `?page=3` of an infinite list) is no new page.
#[must_use]
pub fn kept_param(name: &str) -> bool {
    let name = name.as_bytes();
    name.eq_ignore_ascii_case(b"ref")
        || name
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"utm_"))
        || CLICK_ID_PARAMS
            .iter()
            .any(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

/// Event kinds: the value of an event's `k` field.
pub mod kind {
    /// A page load or an SPA route change (`history.pushState`/`replaceState`/`popstate`).
    pub const PAGEVIEW: &str = "pageview";
    /// The visible `data-ct-screen` element changed (to none: the page itself).
    pub const SCREEN: &str = "screen";
    /// A click (selector, text, href, x, y).
    pub const CLICK: &str = "click";
    /// A form field got focus.
    pub const FOCUS: &str = "focus";
    /// A form field lost focus (`dur` = ms focused, `empty` = left blank).
    pub const BLUR: &str = "blur";
    /// A form field's value changed (the value itself is never sent).
    pub const CHANGE: &str = "change";
    /// A form was submitted.
    pub const SUBMIT: &str = "submit";
    /// The page is being left (`dur` = ms since the page view).
    pub const LEAVE: &str = "leave";
    /// `clicktrail('event', name, props)`.
    pub const CUSTOM: &str = "custom";
    /// `clicktrail('identify', id)`.
    pub const IDENTIFY: &str = "identify";
    /// Links that were in the viewport for this page view or screen (`links`: a list of
    /// `[selector, href]`). Stored as one [`LINK_VIEW`] row per link.
    pub const LINKS: &str = "links";
    /// Stored kind: one link seen in the viewport (from a [`LINKS`] event).
    pub const LINK_VIEW: &str = "link_view";
    /// A viewable impression of a `data-ct-ad` element (IAB: >= 50 % in view for >= 1 s,
    /// once per page view): `ad`, `sel`.
    pub const AD_VIEW: &str = "ad_view";
    /// A JavaScript error or unhandled rejection: `msg`, `src`, `line`.
    pub const ERROR: &str = "error";
    /// A click followed within 1 s by no navigation, no DOM change and no network
    /// request: `sel`, `x`, `y`.
    pub const DEAD_CLICK: &str = "dead_click";
    /// A form field failed the browser's validation (`invalid` event): `form`, `field`.
    pub const INVALID: &str = "invalid";

    /// Every kind the collector accepts from a tracker.
    pub const ALL: [&str; 15] = [
        PAGEVIEW, SCREEN, CLICK, FOCUS, BLUR, CHANGE, SUBMIT, LEAVE, CUSTOM, IDENTIFY, LINKS,
        AD_VIEW, ERROR, DEAD_CLICK, INVALID,
    ];

    /// Whether `k` is a kind the collector accepts.
    pub fn is_known(k: &str) -> bool {
        ALL.contains(&k)
    }
}

#[cfg(feature = "serde")]
mod batch;
#[cfg(feature = "serde")]
pub use batch::{Batch, Error, Event, LinkSeen, parse_batch, stored_rows};
