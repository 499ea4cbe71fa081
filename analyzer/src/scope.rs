//! Which events an audit looks at: the site, the time range, and whether bots count.
//!
//! A [`Scope`] arrives as text, from the CLI flags `--site/--since/--until` or from the
//! JSON of an [`crate::AuditRequest`] posted to the collector. [`Scope::resolve`] turns
//! it into a [`ResolvedScope`] of UTC epoch milliseconds; [`crate::load`] pushes that
//! into the SQL `WHERE`, and every report carries it back so a reader knows exactly
//! which range was used (relative values like `7d` are resolved once, at request time).
//!
//! Time values accept:
//! - RFC 3339: `2026-11-24T10:00:00Z`, `2026-11-24T11:00:00+01:00`;
//! - a date: `2026-11-24` (midnight UTC);
//! - a duration back from now: `90m`, `24h`, `7d` (see [`parse_duration_ms`]).
//!
//! `since` is inclusive, `until` exclusive; either may be absent (unbounded).
//!
//! Events of bots (the collector stores `device = 'bot'` for crawler user agents) are
//! left out unless `include_bots` is set (`--include-bots`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The site and time range of a request, as the user wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scope {
    /// Site id (the snippet's `data-site`); absent means every site in the file.
    pub site: Option<String>,
    /// Start of the range (inclusive).
    pub since: Option<String>,
    /// End of the range (exclusive).
    pub until: Option<String>,
    /// Count the events of bots (`device = 'bot'`) too; they are left out by default.
    /// Absent from the JSON when false, so a request without it is the same as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_bots: bool,
}

/// The scope an audit actually ran on: UTC epoch milliseconds, `null` = unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedScope {
    pub site: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Whether bot events were counted (always in the JSON; `false` when absent, as
    /// in reports of collectors that predate it).
    #[serde(default)]
    pub include_bots: bool,
}

impl Scope {
    /// Parses `since`/`until` against `now_ms` (UTC epoch ms, used by relative values).
    pub fn resolve(&self, now_ms: i64) -> Result<ResolvedScope, Error> {
        let site = self
            .site
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let since_ms = self
            .since
            .as_deref()
            .map(|t| parse_time(t, now_ms))
            .transpose()?;
        let until_ms = self
            .until
            .as_deref()
            .map(|t| parse_time(t, now_ms))
            .transpose()?;
        if let (Some(since), Some(until)) = (since_ms, until_ms)
            && since >= until
        {
            return Err(Error::EmptyRange {
                since: format_ms(since),
                until: format_ms(until),
            });
        }
        Ok(ResolvedScope {
            site,
            since_ms,
            until_ms,
            include_bots: self.include_bots,
        })
    }
}

impl ResolvedScope {
    /// One line for humans: `site shop-1 · 2026-11-24T00:00:00Z .. 2026-11-25T00:00:00Z`,
    /// followed by ` · bots included` when they were counted.
    pub fn describe(&self) -> String {
        let site = match &self.site {
            Some(site) => format!("site {site}"),
            None => "all sites".to_owned(),
        };
        let range = match (self.since_ms, self.until_ms) {
            (None, None) => "all time".to_owned(),
            (Some(s), None) => format!("since {}", format_ms(s)),
            (None, Some(u)) => format!("until {}", format_ms(u)),
            (Some(s), Some(u)) => format!("{} .. {}", format_ms(s), format_ms(u)),
        };
        let bots = if self.include_bots {
            " · bots included"
        } else {
            ""
        };
        format!("{site} · {range}{bots}")
    }
}

/// The current time as UTC epoch milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Formats UTC epoch ms as RFC 3339 (`2026-11-24T10:00:00Z`, milliseconds only if set).
pub fn format_ms(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) if ms % 1000 == 0 => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{ms} ms"),
    }
}

/// Parses one `since`/`until` value into UTC epoch ms.
pub fn parse_time(input: &str, now_ms: i64) -> Result<i64, Error> {
    let text = input.trim();
    let bad = |reason: &str| Error::BadTime {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if looks_like_duration(text) {
        let back = parse_duration_ms(text).map_err(|e| match e {
            Error::BadDuration { reason, .. } => bad(&reason),
            other => other,
        })?;
        return now_ms.checked_sub(back).ok_or_else(|| bad("too far back"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    let without_zone = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .any(|f| NaiveDateTime::parse_from_str(text, f).is_ok());
    if without_zone {
        return Err(bad("no time zone; add Z for UTC or an offset like +01:00"));
    }
    Err(bad("not a time"))
}

/// `90m`-like: digits then letters, nothing else.
fn looks_like_duration(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && digits < text.len() && text[digits..].bytes().all(|b| b.is_ascii_alphabetic())
}

/// Parses a positive duration: a whole number and a unit, `ms`, `s`, `m`, `h`, `d` or
/// `w` (`250ms`, `90s`, `30m`, `24h`, `7d`, `2w`), into milliseconds.
pub fn parse_duration_ms(input: &str) -> Result<i64, Error> {
    let text = input.trim();
    let bad = |reason: &str| Error::BadDuration {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad("no number"));
    }
    let number: i64 = text[..digits]
        .parse()
        .map_err(|_| bad("number too large"))?;
    let unit_ms: i64 = match &text[digits..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "" => return Err(bad("no unit")),
        _ => return Err(bad("unknown unit")),
    };
    if number == 0 {
        return Err(bad("must be more than zero"));
    }
    number.checked_mul(unit_ms).ok_or_else(|| bad("too large"))
}

/// Formats a duration in ms the way [`parse_duration_ms`] reads it, in the largest
/// unit that divides it (`1800000` → `30m`).
pub fn format_duration_ms(ms: i64) -> String {
    for (unit, size) in [
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z

    #[test]
    fn parses_rfc3339_dates_and_relative_times() {
        assert_eq!(format_ms(NOW), "2026-11-24T10:00:00Z");
        assert_eq!(parse_time("2026-11-24T10:00:00Z", 0).unwrap(), NOW);
        assert_eq!(parse_time("2026-11-24T11:00:00+01:00", 0).unwrap(), NOW);
        assert_eq!(parse_time("2026-11-24", 0).unwrap(), NOW - 10 * 3_600_000);
        assert_eq!(parse_time("90m", NOW).unwrap(), NOW - 90 * 60_000);
        assert_eq!(parse_time("24h", NOW).unwrap(), NOW - 86_400_000);
        assert_eq!(parse_time(" 7d ", NOW).unwrap(), NOW - 7 * 86_400_000);
    }

    #[test]
    fn rejects_bad_times_with_a_reason() {
        for (input, reason) in [
            ("", "empty"),
            ("yesterday", "not a time"),
            ("2026-11-24T10:00:00", "no time zone"),
            ("7y", "unknown unit"),
            ("0m", "more than zero"),
            ("2026-13-01", "not a time"),
        ] {
            let err = parse_time(input, NOW).unwrap_err();
            assert!(
                matches!(&err, Error::BadTime { reason: r, .. } if r.contains(reason)),
                "{input}: {err}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30m").unwrap(), 1_800_000);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert_eq!(parse_duration_ms("2w").unwrap(), 14 * 86_400_000);
        assert!(parse_duration_ms("30").is_err());
        assert!(parse_duration_ms("m").is_err());
        assert!(parse_duration_ms("-5m").is_err());
        assert!(parse_duration_ms("1.5h").is_err());
        assert!(parse_duration_ms("99999999999999999d").is_err());
        assert_eq!(format_duration_ms(1_800_000), "30m");
        assert_eq!(format_duration_ms(90_000), "90s");
        assert_eq!(format_duration_ms(1_500), "1500ms");
    }

    #[test]
    fn resolve_checks_the_range_and_trims_the_site() {
        let scope = Scope {
            site: Some(" shop-1 ".into()),
            since: Some("2026-11-24".into()),
            until: Some("1h".into()),
            include_bots: false,
        };
        let r = scope.resolve(NOW).unwrap();
        assert_eq!(r.site.as_deref(), Some("shop-1"));
        assert_eq!(r.since_ms, Some(NOW - 10 * 3_600_000));
        assert_eq!(r.until_ms, Some(NOW - 3_600_000));

        let empty = Scope {
            since: Some("1h".into()),
            until: Some("2h".into()),
            ..Scope::default()
        };
        let err = empty.resolve(NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            "empty time range: since (2026-11-24T09:00:00Z) is not before until (2026-11-24T08:00:00Z)"
        );
        assert_eq!(
            Scope::default().resolve(NOW).unwrap(),
            ResolvedScope::default()
        );
    }

    #[test]
    fn bots_are_left_out_unless_asked_and_the_report_says_so() {
        // Old requests (without the field) still parse, and leave bots out.
        let old: Scope = serde_json::from_str(r#"{"site":"shop"}"#).unwrap();
        assert!(!old.include_bots);
        // A default request serializes as before, so older collectors accept it.
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"site":"shop","since":null,"until":null}"#
        );
        let with: Scope = serde_json::from_str(r#"{"include_bots":true}"#).unwrap();
        assert!(with.include_bots);
        assert!(
            serde_json::to_string(&with)
                .unwrap()
                .contains(r#""include_bots":true"#)
        );

        let resolved = with.resolve(NOW).unwrap();
        assert!(resolved.include_bots);
        assert_eq!(resolved.describe(), "all sites · all time · bots included");
        assert_eq!(old.resolve(NOW).unwrap().describe(), "site shop · all time");
        // Reports always carry it; reports of older collectors parse as "left out".
        assert_eq!(
            serde_json::to_string(&ResolvedScope::default()).unwrap(),
            r#"{"site":null,"since_ms":null,"until_ms":null,"include_bots":false}"#
        );
        let old_report: ResolvedScope =
            serde_json::from_str(r#"{"site":null,"since_ms":null,"until_ms":null}"#).unwrap();
        assert!(!old_report.include_bots);
    }
}
