//! Token-bucket rate limits, keyed by client address, site or user name.
//!
//! Each key has a bucket of `burst` tokens that refills at `rate` per second; a
//! request costs tokens (one per request, or one per event); an empty bucket answers
//! how long to wait, which becomes `429 Too Many Requests` + `Retry-After`. IPv6
//! clients are keyed by their /64 (one host usually holds a whole /64). The map is
//! bounded: when it grows past its limit, buckets that have refilled (idle keys) are
//! dropped, so a flood of new addresses cannot grow memory without bound.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Most keys held before idle ones are swept.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A rate limit per key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `rate` tokens per second, at most `burst` saved up. A rate of 0 (or less) lets
    /// everything through.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` tokens for `key`, or says how long to wait before it could.
    pub fn check(&self, key: &K, cost: f64) -> Result<(), Duration> {
        self.check_at(key, cost, Instant::now())
    }

    fn check_at(&self, key: &K, cost: f64, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= cost {
            b.tokens -= cost;
            Ok(())
        } else {
            let missing = cost.min(self.burst) - b.tokens;
            Err(Duration::from_secs_f64(missing / self.rate))
        }
    }
}

/// The key of a client address: IPv4 as is, IPv6 by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                IpAddr::V4(v4)
            } else {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }
    }
}

/// Whole seconds to put in `Retry-After` (at least 1).
pub fn retry_after_s(wait: Duration) -> u32 {
    wait.as_secs_f64().ceil().clamp(1.0, 3600.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let l = RateLimiter::new(2.0, 4.0);
        let t0 = Instant::now();
        for _ in 0..4 {
            l.check_at(&"a", 1.0, t0).unwrap();
        }
        let wait = l.check_at(&"a", 1.0, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(l.check_at(&"b", 1.0, t0).is_ok(), "keys are separate");
        l.check_at(&"a", 1.0, t0 + Duration::from_millis(500))
            .unwrap();
        assert!(
            l.check_at(&"a", 1.0, t0 + Duration::from_millis(500))
                .is_err()
        );
        assert_eq!(retry_after_s(Duration::from_millis(10)), 1);
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let l = RateLimiter::new(0.0, 0.0);
        for _ in 0..1000 {
            l.check(&1, 5.0).unwrap();
        }
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(client_key(mapped), "203.0.113.9".parse::<IpAddr>().unwrap());
    }
}
