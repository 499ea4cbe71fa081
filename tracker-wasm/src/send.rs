//! The outbox: queued events become batches and leave by `fetch` or `sendBeacon`.
//!
//! Events queue as finished JSON text. They are sent when the queue holds
//! [`FLUSH_AT_EVENTS`], [`FLUSH_INTERVAL_MS`] after the first waiting event, and all
//! at once by beacon when the page is hidden or left, a form is submitted or a link
//! leaves. Timed and size flushes keep one `fetch` in flight; its events go back
//! to the front of the queue if it fails (network error, 408, 429, 5xx) and are
//! retried with backoff (503/429 `Retry-After` when the collector exposes it);
//! other 4xx answers drop them, since the same bytes would fail again.

use alloc::{string::String, vec::Vec};

use js_sys::{Date, Function, Reflect};
use protocol::{
    FLUSH_AT_EVENTS, FLUSH_INTERVAL_MS, MAX_BODY_BYTES, MAX_EVENT_AGE_MS, MAX_EVENT_FUTURE_MS,
    MAX_EVENTS_PER_BATCH, MAX_ROWS_PER_BATCH, VERSION,
};
use wasm_bindgen::{JsCast, JsValue, prelude::wasm_bindgen};
use web_sys::Response;

use crate::json::{Json, int, quote};
use crate::tracker::Tracker;

/// Body size per request: half the collector's limit, because browsers allow about
/// 64 KiB of keepalive fetches and beacons in flight per page in all, and a page
/// that unloads while a fetch is in flight needs room for its last beacon.
const MAX_BATCH_BYTES: usize = MAX_BODY_BYTES / 2;
/// Beyond this many waiting events (collector unreachable for long), new ones are dropped.
const MAX_QUEUE: usize = 5 * MAX_EVENTS_PER_BATCH;
/// Longest wait between retries.
const MAX_BACKOFF_MS: f64 = 60_000.0;

#[wasm_bindgen]
extern "C" {
    /// The promise `fetch` returns.
    type Pending;

    #[wasm_bindgen(catch, js_name = fetch)]
    fn fetch_js(url: &str, init: &JsValue) -> Result<Pending, JsValue>;

    /// `promise.then(ok, err)`.
    #[wasm_bindgen(method, js_name = then)]
    fn settle(this: &Pending, ok: &Function, err: &Function);
}

/// An event waiting to be sent.
pub(crate) struct Queued {
    /// Its time, to drop events the collector would refuse as too old.
    t: f64,
    pub(crate) kind: &'static str,
    /// Rows it becomes in the store: a batch stays within [`MAX_ROWS_PER_BATCH`].
    rows: usize,
    pub(crate) json: String,
}

/// How a flush sends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// One `fetch` at a time, answer checked, retried on failure.
    Fetch,
    /// Everything now, by `sendBeacon` (falling back to an unchecked `fetch`): the
    /// page may be about to go.
    Beacon,
}

impl Tracker {
    /// Queue a finished event and send if the queue is full enough.
    pub(crate) fn push(&mut self, j: Json) {
        if self.queue.len() >= MAX_QUEUE {
            return;
        }
        self.queue.push(Queued {
            t: self.event_t,
            kind: self.event_kind,
            rows: self.event_rows,
            json: j.finish(),
        });
        if self.queue.len() >= FLUSH_AT_EVENTS {
            self.flush(Via::Fetch);
        } else {
            self.arm(f64::from(FLUSH_INTERVAL_MS));
        }
    }

    /// Make sure a flush timer is set (an earlier one stays).
    fn arm(&mut self, ms: f64) {
        if self.timer.is_none() {
            self.timer = self
                .win
                .set_timeout_with_callback_and_timeout_and_arguments_0(&self.flush_fn, ms as i32)
                .ok();
        }
    }

    pub(crate) fn on_timer(&mut self, _: &JsValue) {
        self.timer = None;
        self.flush(Via::Fetch);
    }

    /// Send queued events: one request for [`Via::Fetch`], all of them for [`Via::Beacon`].
    pub(crate) fn flush(&mut self, via: Via) {
        while !self.queue.is_empty() {
            if via == Via::Fetch {
                if self.sending {
                    return; // the answer to the request in flight sends the rest
                }
                let wait = self.resume_at - Date::now();
                if wait > 0.0 {
                    self.arm(wait);
                    return;
                }
            }
            let (body, taken) = self.batch();
            if body.is_empty() {
                continue; // every event taken was too old to send
            }
            if via == Via::Fetch {
                self.inflight = taken;
                self.sending = true;
                match fetch_js(&self.url, &request(&body)) {
                    Ok(p) => {
                        p.settle(&self.ok_fn, &self.err_fn);
                    }
                    Err(_) => self.on_fetch_error(&JsValue::UNDEFINED),
                }
                return;
            }
            let nav = self.win.navigator();
            if !nav
                .send_beacon_with_opt_str(&self.url, Some(&body))
                .unwrap_or(false)
                && let Ok(p) = fetch_js(&self.url, &request(&body))
            {
                p.settle(&self.noop_fn, &self.noop_fn);
            }
        }
    }

    /// Take the next batch off the queue: its body (empty when no event was
    /// sendable) and the events it holds.
    fn batch(&mut self) -> (String, Vec<Queued>) {
        self.session(self.queue.first().map_or_else(Date::now, |q| q.t));
        let sent = Date::now();
        let mut body = String::from("{\"v\":");
        int(&mut body, VERSION.into());
        body.push_str(",\"site\":");
        quote(&mut body, &self.site);
        body.push_str(",\"sid\":");
        quote(&mut body, &self.sid);
        body.push_str(",\"sent\":");
        int(&mut body, sent as i64);
        body.push_str(",\"events\":[");
        // The collector refuses a whole batch for one event outside its time window.
        let fresh = |q: &Queued| {
            let age = sent - q.t;
            age <= (MAX_EVENT_AGE_MS - 60_000) as f64
                && -age <= (MAX_EVENT_FUTURE_MS - 1_000) as f64
        };
        // Which events go, then the body grown once to its size: a batch is up to
        // 32 KiB, and wasm memory never shrinks.
        let (mut taken, mut rows, mut len, mut sendable) = (0, 0, body.len(), 0);
        for q in &self.queue {
            if taken == MAX_EVENTS_PER_BATCH
                || (taken > 0
                    && (len + q.json.len() + 3 > MAX_BATCH_BYTES
                        || rows + q.rows > MAX_ROWS_PER_BATCH))
            {
                break;
            }
            taken += 1;
            rows += q.rows;
            if fresh(q) {
                len += q.json.len() + usize::from(sendable > 0);
                sendable += 1;
            }
        }
        if sendable == 0 {
            body = String::new();
        } else {
            body.reserve_exact(len + 2 - body.len());
            for (k, q) in self.queue[..taken].iter().filter(|q| fresh(q)).enumerate() {
                if k > 0 {
                    body.push(',');
                }
                body.push_str(&q.json);
            }
            body.push_str("]}");
        }
        let events = self.queue.drain(..taken).collect();
        (body, events)
    }

    /// The collector answered the fetch in flight.
    pub(crate) fn on_response(&mut self, resp: &JsValue) {
        self.sending = false;
        let resp: &Response = resp.unchecked_ref();
        let status = resp.status();
        if status >= 500 || status == 408 || status == 429 {
            // Readable cross-origin only if the collector exposes Retry-After.
            let retry_after = resp
                .headers()
                .get("retry-after")
                .ok()
                .flatten()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .map_or(0.0, |s| f64::from(s.min(300)) * 1000.0);
            self.retry(retry_after);
        } else {
            // 2xx: committed. Other 4xx: the same bytes would fail again.
            self.inflight.clear();
            self.backoff_ms = 0.0;
            if self.queue.len() >= FLUSH_AT_EVENTS {
                self.flush(Via::Fetch);
            } else if !self.queue.is_empty() {
                self.arm(f64::from(FLUSH_INTERVAL_MS));
            }
        }
    }

    /// The fetch in flight failed without an answer (offline, blocked, CORS).
    pub(crate) fn on_fetch_error(&mut self, _: &JsValue) {
        self.sending = false;
        if self.left {
            // The page is being hidden or left. Browsers reject a keepalive fetch
            // when its document unloads although the request itself goes on:
            // resending it by beacon now would deliver the events twice.
            self.inflight.clear();
            return;
        }
        self.retry(0.0);
    }

    /// Put the events in flight back in front and try again later.
    fn retry(&mut self, retry_after_ms: f64) {
        let mut back = core::mem::take(&mut self.inflight);
        back.append(&mut self.queue);
        back.truncate(MAX_QUEUE);
        self.queue = back;
        self.backoff_ms =
            (self.backoff_ms * 2.0).clamp(f64::from(FLUSH_INTERVAL_MS), MAX_BACKOFF_MS);
        let wait = if retry_after_ms > 0.0 {
            retry_after_ms
        } else {
            self.backoff_ms
        };
        self.resume_at = Date::now() + wait;
        self.arm(wait);
    }
}

/// `{method: "POST", body, keepalive: true}`. A string body goes out as
/// `text/plain;charset=UTF-8`: a CORS simple request, no preflight.
fn request(body: &str) -> JsValue {
    let init = crate::dom::json(r#"{"method":"POST","keepalive":true}"#);
    let _ = Reflect::set(&init, &JsValue::from_str("body"), &JsValue::from_str(body));
    init
}
