//! Time helpers shared by the projections and queries: report periods, percentiles and the
//! parsing of the dates people type on the command line.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Seconds in a day, to express durations in days.
pub const SECONDS_PER_DAY: f64 = 86_400.0;
/// Microseconds in a day.
pub const MICROS_PER_DAY: f64 = SECONDS_PER_DAY * 1e6;

/// A reporting period granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Period {
    /// The bucket label of `t`: `2024-03-05`, `2024-W10` (ISO week), `2024-03`, `2024-Q1`,
    /// `2024`.
    /// Labels sort chronologically as strings within one granularity.
    pub fn label(&self, t: DateTime<Utc>) -> String {
        let d = t.date_naive();
        self.label_date(d)
    }

    /// The bucket label of a calendar date.
    pub fn label_date(&self, d: NaiveDate) -> String {
        match self {
            Period::Day => d.format("%Y-%m-%d").to_string(),
            Period::Week => {
                let w = d.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Period::Month => format!("{:04}-{:02}", d.year(), d.month()),
            Period::Quarter => format!("{:04}-Q{}", d.year(), (d.month() - 1) / 3 + 1),
            Period::Year => format!("{:04}", d.year()),
        }
    }

    /// The first instant of the period holding `t`, and the first instant after it.
    pub fn bounds(&self, t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let d = t.date_naive();
        let first_of_month = |year: i32, month: u32| {
            NaiveDate::from_ymd_opt(year, month, 1).expect("the first of a month exists")
        };
        let (start, end) = match self {
            Period::Day => (d, d + Duration::days(1)),
            Period::Week => {
                let monday = d - Duration::days(i64::from(d.weekday().num_days_from_monday()));
                (monday, monday + Duration::days(7))
            }
            Period::Month | Period::Quarter => {
                let months = if *self == Period::Month { 1 } else { 3 };
                let first = (d.month0() / months) * months;
                let next = first + months;
                (
                    first_of_month(d.year(), first + 1),
                    first_of_month(d.year() + (next / 12) as i32, next % 12 + 1),
                )
            }
            Period::Year => (first_of_month(d.year(), 1), first_of_month(d.year() + 1, 1)),
        };
        let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
        (midnight(start), midnight(end))
    }

    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }
}

/// Why a time given by a person could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a time; use RFC 3339 (2024-03-31T12:00:00Z), a date (2024-03-31), an ISO \
     week (2024-W13), a month (2024-03), a quarter (2024-Q1) or a year (2024); a period means its \
     first instant as a start and its last as an end (UTC)"
)]
pub struct TimeParseError {
    pub input: String,
}

/// Parses an RFC 3339 time, or a period as people write it (a date, `2024-W13`, `2024-03`,
/// `2024-Q1`, `2024`), meaning its last microsecond (UTC): `--as-of 2024-03-31` includes
/// everything that happened on the 31st, `--to 2024-Q1` everything up to the end of March.
pub fn parse_time_end(input: &str) -> Result<DateTime<Utc>, TimeParseError> {
    parse_time(input, true)
}

/// The quarter (`2024-Q1`) of a time or period as people write it (`2024-Q1`, `2024-02`,
/// `2024-02-10`, RFC 3339): the quarter its first instant falls in.
pub fn quarter_of(input: &str) -> Result<String, TimeParseError> {
    Ok(Period::Quarter.label(parse_time_start(input)?))
}

/// Parses an RFC 3339 time, or a period (see [`parse_time_end`]) meaning its first instant.
pub fn parse_time_start(input: &str) -> Result<DateTime<Utc>, TimeParseError> {
    parse_time(input, false)
}

fn parse_time(input: &str, end: bool) -> Result<DateTime<Utc>, TimeParseError> {
    let err = || TimeParseError {
        input: input.to_string(),
    };
    let text = input.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let (first, next) = period_bounds(text).ok_or_else(err)?;
    debug_assert!(first < next);
    Ok(if end {
        next - Duration::microseconds(1)
    } else {
        first
    })
}

/// The first instant of the period `text` names and the first instant after it, for a date
/// (`2024-03-31`), an ISO week (`2024-W13`), a month (`2024-03`), a quarter (`2024-Q1`) or a
/// year (`2024`).
fn period_bounds(text: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
    let number = |s: &str, digits: usize| -> Option<u32> {
        (s.len() == digits && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(Period::Day.bounds(midnight(d)));
    }
    let (year_text, rest) = match text.split_once('-') {
        Some((y, r)) => (y, Some(r)),
        None => (text, None),
    };
    let year = number(year_text, 4)? as i32;
    let Some(rest) = rest else {
        let first = NaiveDate::from_ymd_opt(year, 1, 1)?;
        let next = NaiveDate::from_ymd_opt(year + 1, 1, 1)?;
        return Some((midnight(first), midnight(next)));
    };
    let (period, day) = if let Some(q) = rest.strip_prefix(['Q', 'q']) {
        let q = number(q, 1).filter(|q| (1..=4).contains(q))?;
        (
            Period::Quarter,
            NaiveDate::from_ymd_opt(year, 3 * q - 2, 1)?,
        )
    } else if let Some(w) = rest.strip_prefix(['W', 'w']) {
        let w = number(w, 2)?;
        (
            Period::Week,
            NaiveDate::from_isoywd_opt(year, w, chrono::Weekday::Mon)?,
        )
    } else {
        let m = number(rest, 2)?;
        (Period::Month, NaiveDate::from_ymd_opt(year, m, 1)?)
    };
    Some(period.bounds(midnight(day)))
}

/// The last microsecond of a day (UTC).
pub fn day_end(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)) + Duration::days(1)
        - Duration::microseconds(1)
}

/// A duration in days, as a fraction, computed from the microseconds the times are stored in.
pub fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    // Events logged late can make `to` precede `from`; such a span counts as zero, not negative.
    let span = to - from;
    // Microseconds overflow an i64 only past 292,000 years; whole seconds serve then.
    let micros = span
        .num_microseconds()
        .unwrap_or_else(|| span.num_seconds().saturating_mul(1_000_000));
    micros.max(0) as f64 / MICROS_PER_DAY
}

/// Median and 90th percentile of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Spread {
    /// How many values the figures are computed from.
    pub count: u64,
    /// The median (mean of the two middle values for an even count); `None` without values.
    pub median: Option<f64>,
    /// The 90th percentile by nearest rank (the value at rank ceil(0.9 n)); `None` without values.
    pub p90: Option<f64>,
}

impl Spread {
    /// Computes the spread of `values` (the order does not matter).
    pub fn of(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        values.sort_by(|a, b| a.total_cmp(b));
        let n = values.len();
        if n == 0 {
            return Spread::default();
        }
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        let rank = (0.9 * n as f64).ceil() as usize;
        let p90 = values[rank.clamp(1, n) - 1];
        Spread {
            count: n as u64,
            median: Some(round6(median)),
            p90: Some(round6(p90)),
        }
    }
}

/// Rounds to 6 decimals so that reports compare equal however the sums were ordered.
pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_bounds_hold_exactly_the_times_of_the_label() {
        let t = parse_time_start("2024-11-20").unwrap() + Duration::hours(15);
        for period in [Period::Day, Period::Week, Period::Month, Period::Quarter] {
            let (start, end) = period.bounds(t);
            assert!(start <= t && t < end, "{period:?}");
            assert_eq!(period.label(start), period.label(t), "{period:?}");
            assert_eq!(
                period.label(end - Duration::microseconds(1)),
                period.label(t)
            );
            assert_ne!(period.label(end), period.label(t), "{period:?}");
            assert_ne!(
                period.label(start - Duration::microseconds(1)),
                period.label(t)
            );
        }
        let (start, end) = Period::Quarter.bounds(t);
        assert_eq!((start.month(), end.month(), end.year()), (10, 1, 2025));
        let (start, end) = Period::Week.bounds(t);
        assert_eq!((start.day(), end.day()), (18, 25));
    }

    #[test]
    fn period_labels() {
        let t = parse_time_start("2024-03-05").unwrap();
        assert_eq!(Period::Day.label(t), "2024-03-05");
        assert_eq!(Period::Week.label(t), "2024-W10");
        assert_eq!(Period::Month.label(t), "2024-03");
        assert_eq!(Period::Quarter.label(t), "2024-Q1");
        let dec = parse_time_start("2024-12-31").unwrap();
        assert_eq!(Period::Quarter.label(dec), "2024-Q4");
        assert_eq!(Period::Week.label(dec), "2025-W01");
    }

    #[test]
    fn dates_mean_whole_days() {
        let end = parse_time_end("2024-03-31").unwrap();
        assert_eq!(end.to_rfc3339(), "2024-03-31T23:59:59.999999+00:00");
        assert!(parse_time_end("31/03/2024").is_err());
        assert_eq!(
            parse_time_end("2024-03-31T10:00:00Z").unwrap().to_rfc3339(),
            "2024-03-31T10:00:00+00:00"
        );
    }

    #[test]
    fn periods_mean_their_first_instant_as_a_start_and_their_last_as_an_end() {
        let span = |text: &str| {
            (
                parse_time_start(text).unwrap().to_rfc3339(),
                parse_time_end(text).unwrap().to_rfc3339(),
            )
        };
        let expect = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            span("2026"),
            expect(
                "2026-01-01T00:00:00+00:00",
                "2026-12-31T23:59:59.999999+00:00"
            )
        );
        assert_eq!(
            span("2026-Q1"),
            expect(
                "2026-01-01T00:00:00+00:00",
                "2026-03-31T23:59:59.999999+00:00"
            )
        );
        assert_eq!(
            span("2026-q4"),
            expect(
                "2026-10-01T00:00:00+00:00",
                "2026-12-31T23:59:59.999999+00:00"
            )
        );
        assert_eq!(
            span("2026-02"),
            expect(
                "2026-02-01T00:00:00+00:00",
                "2026-02-28T23:59:59.999999+00:00"
            )
        );
        assert_eq!(
            span("2024-02"),
            expect(
                "2024-02-01T00:00:00+00:00",
                "2024-02-29T23:59:59.999999+00:00"
            )
        );
        // ISO week 10 of 2026 runs from Monday 2 March to Sunday 8 March.
        assert_eq!(
            span("2026-W10"),
            expect(
                "2026-03-02T00:00:00+00:00",
                "2026-03-08T23:59:59.999999+00:00"
            )
        );
        // ISO week 1 of 2025 starts in December 2024.
        assert_eq!(
            span("2025-W01"),
            expect(
                "2024-12-30T00:00:00+00:00",
                "2025-01-05T23:59:59.999999+00:00"
            )
        );
        // 2020 has 53 ISO weeks, 2021 has 52.
        assert!(parse_time_end("2020-W53").is_ok());
        for bad in [
            "2021-W53",
            "2026-Q5",
            "2026-Q0",
            "2026-13",
            "2026-00",
            "26-03",
            "2026-3",
            "2026-W1",
            "20261",
            "2026-",
            "Q1-2026",
            "2026-03-32",
        ] {
            assert!(parse_time_end(bad).is_err(), "{bad} was accepted");
        }
        let message = parse_time_end("2026-Q5").unwrap_err().to_string();
        assert!(
            message.contains("2024-Q1") && message.contains("2024-W13"),
            "{message}"
        );
    }

    #[test]
    fn spread_uses_mean_median_and_nearest_rank_p90() {
        let s = Spread::of(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.median, Some(2.5));
        assert_eq!(s.p90, Some(4.0));
        let s = Spread::of((1..=10).map(f64::from).collect());
        assert_eq!(s.p90, Some(9.0));
        assert_eq!(Spread::of(vec![]).median, None);
    }
}
