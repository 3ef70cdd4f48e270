//! Calendar buckets for the activity chart: a size chosen so that a view's
//! range has about 60 to 120 of them, aligned in the viewer's time zone
//! (whole minutes, hours, local midnights, Mondays, firsts of the month),
//! right across daylight-saving changes: a day is 23 or 25 hours when the
//! clocks change, and the hour that happens twice is two bars.

use crate::charts::{fold_series, Bar, Histogram};
use crate::errors::{AppError, AppResult};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// A bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Minutes(u32),
    Hours(u32),
    Day,
    Week,
    Month,
    Year,
}

/// Every size offered, smallest first. Minutes and hours divide an hour and
/// a day, so buckets line up with the clock.
pub const UNITS: [Unit; 15] = [
    Unit::Minutes(1),
    Unit::Minutes(2),
    Unit::Minutes(5),
    Unit::Minutes(10),
    Unit::Minutes(15),
    Unit::Minutes(30),
    Unit::Hours(1),
    Unit::Hours(2),
    Unit::Hours(3),
    Unit::Hours(6),
    Unit::Hours(12),
    Unit::Day,
    Unit::Week,
    Unit::Month,
    Unit::Year,
];

/// The bar counts a chart aims for.
const FEWEST: f64 = 60.0;
const MOST: f64 = 120.0;

impl Unit {
    /// About how long one bucket is.
    pub fn typical(self) -> i64 {
        match self {
            Self::Minutes(n) => i64::from(n) * MINUTE,
            Self::Hours(n) => i64::from(n) * HOUR,
            Self::Day => DAY,
            Self::Week => 7 * DAY,
            Self::Month => 30 * DAY,
            Self::Year => 365 * DAY,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Self::Minutes(1) => "minute".into(),
            Self::Minutes(n) => format!("{n} minutes"),
            Self::Hours(1) => "hour".into(),
            Self::Hours(n) => format!("{n} hours"),
            Self::Day => "day".into(),
            Self::Week => "week".into(),
            Self::Month => "month".into(),
            Self::Year => "year".into(),
        }
    }

    /// The start of the bucket a local time is in.
    fn floor(self, t: NaiveDateTime) -> NaiveDateTime {
        let day = t.date();
        let at =
            |h: u32, m: u32| day.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default());
        match self {
            Self::Minutes(n) => at(t.hour(), t.minute() / n * n),
            Self::Hours(n) => at(t.hour() / n * n, 0),
            Self::Day => at(0, 0),
            Self::Week => {
                let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
                monday.and_time(NaiveTime::MIN)
            }
            Self::Month => first(day.year(), day.month()),
            Self::Year => first(day.year(), 1),
        }
    }

    /// The local bucket start after `t` (a bucket start).
    fn next(self, t: NaiveDateTime) -> NaiveDateTime {
        match self {
            Self::Minutes(n) => t + Duration::minutes(i64::from(n)),
            Self::Hours(n) => t + Duration::hours(i64::from(n)),
            Self::Day => t + Duration::days(1),
            Self::Week => t + Duration::days(7),
            Self::Month if t.month() == 12 => first(t.year() + 1, 1),
            Self::Month => first(t.year(), t.month() + 1),
            Self::Year => first(t.year() + 1, 1),
        }
    }

    /// How a bucket's start reads on the axis and in its tooltip.
    fn label(self, t: NaiveDateTime) -> String {
        match self {
            Self::Minutes(_) | Self::Hours(_) => t.format("%b %-d, %H:%M").to_string(),
            Self::Day => t.format("%a %b %-d, %Y").to_string(),
            Self::Week => t.format("week of %b %-d, %Y").to_string(),
            Self::Month => t.format("%B %Y").to_string(),
            Self::Year => t.format("%Y").to_string(),
        }
    }
}

fn first(year: i32, month: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(year, month, 1)
        .unwrap_or_default()
        .and_time(NaiveTime::MIN)
}

/// The size whose bar count for `span` microseconds is nearest 60–120.
pub fn choose_unit(span: i64) -> Unit {
    let distance = |unit: Unit| {
        let bars = (span as f64 / unit.typical() as f64).max(1.0);
        if bars < FEWEST {
            FEWEST / bars
        } else if bars > MOST {
            bars / MOST
        } else {
            1.0
        }
    };
    UNITS
        .into_iter()
        .min_by(|a, b| distance(*a).total_cmp(&distance(*b)))
        .unwrap_or(Unit::Day)
}

/// A zone from its IANA name (what the browser reports).
pub fn parse_zone(name: &str) -> AppResult<Tz> {
    name.parse::<Tz>().map_err(|_| {
        AppError::bad_request(format!(
            "zone: \"{name}\" is not a time zone (an IANA name such as Europe/Berlin, or UTC)"
        ))
    })
}

fn local(zone: Tz, micros: i64) -> NaiveDateTime {
    zone.timestamp_micros(micros)
        .single()
        .map(|t| t.naive_local())
        .unwrap_or_default()
}

/// Every instant a local time names in `zone`, earliest first: one, two in
/// the hour that happens twice, or (in a gap) the first that exists after it.
fn instants(zone: Tz, t: NaiveDateTime) -> Vec<i64> {
    let mut t = t;
    for _ in 0..=240 {
        match zone.from_local_datetime(&t) {
            chrono::LocalResult::Single(x) => return vec![x.timestamp_micros()],
            chrono::LocalResult::Ambiguous(a, b) => {
                return vec![a.timestamp_micros(), b.timestamp_micros()]
            }
            chrono::LocalResult::None => t += Duration::minutes(1),
        }
    }
    vec![t.and_utc().timestamp_micros()]
}

/// The first instant of the week holding `at` (µs) in `zone`: its Monday's
/// local midnight (or, where the clocks skip midnight, the first time that
/// day has).
pub fn week_start_in(at: i64, zone: Tz) -> i64 {
    let day = local(zone, at).date();
    let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
    instants(zone, monday.and_time(NaiveTime::MIN))[0]
}

/// The start of the week after the one beginning `start` ([`week_start_in`]):
/// 168 hours later, or 167 or 169 across a clock change.
pub fn next_week_in(start: i64, zone: Tz) -> i64 {
    let monday = local(zone, start).date() + Duration::days(7);
    instants(zone, monday.and_time(NaiveTime::MIN))[0]
}

/// The bucket boundaries covering `from..=to` (microseconds): the first at
/// or before `from`, each next one the next bucket start in `zone`, the last
/// after `to`.
pub fn boundaries(from: i64, to: i64, unit: Unit, zone: Tz) -> Vec<i64> {
    let start = unit.floor(local(zone, from));
    let mut at = instants(zone, start)
        .into_iter()
        .rfind(|t| *t <= from)
        .unwrap_or(from);
    let mut out = vec![at];
    while at <= to && out.len() <= 2_000 {
        // The bucket start the clock shows a typical bucket later, or the
        // next one when that is still this bucket (a 25-hour day).
        let mut s = unit.floor(local(zone, at + unit.typical()));
        let next = loop {
            if let Some(t) = instants(zone, s).into_iter().find(|t| *t > at) {
                break t;
            }
            s = unit.next(s);
        };
        at = next;
        out.push(at);
    }
    out
}

/// A histogram of `counts` (`(instant, action, n)`: each instant the start of
/// a quarter hour or minute that lies wholly in one bucket) over the
/// buckets `edges` (from [`boundaries`]), with bars clipped to `from..=to`.
pub fn histogram(
    zone: Tz,
    unit: Unit,
    edges: &[i64],
    from: i64,
    to: i64,
    counts: Vec<(i64, String, u64)>,
) -> Histogram {
    let bars = edges.len().saturating_sub(1);
    let indexed: Vec<(usize, String, u64)> = counts
        .into_iter()
        .filter_map(|(at, action, n)| {
            let i = edges.partition_point(|e| *e <= at).checked_sub(1)?;
            (i < bars).then_some((i, action, n))
        })
        .collect();
    let (series, grid) = fold_series(bars, &indexed);
    let bars: Vec<Bar> = grid
        .into_iter()
        .enumerate()
        .map(|(i, counts)| Bar {
            start: edges[i].max(from),
            end: edges[i + 1].min(to.saturating_add(1)),
            label: unit.label(local(zone, edges[i])),
            counts,
        })
        .collect();
    Histogram {
        zone: zone.name().to_string(),
        unit: unit.describe(),
        total: bars.iter().map(Bar::total).sum(),
        series,
        bars,
        sample: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(zone: Tz, text: &str) -> i64 {
        let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        zone.from_local_datetime(&t)
            .earliest()
            .unwrap()
            .timestamp_micros()
    }

    fn labels(zone: Tz, edges: &[i64]) -> Vec<String> {
        edges
            .iter()
            .map(|e| local(zone, *e).format("%m-%d %H:%M").to_string())
            .collect()
    }

    #[test]
    fn a_range_gets_about_sixty_to_a_hundred_and_twenty_bars() {
        for (span, unit) in [
            (HOUR, Unit::Minutes(1)),
            (6 * HOUR, Unit::Minutes(5)),
            (24 * HOUR, Unit::Minutes(15)),
            (7 * DAY, Unit::Hours(2)),
            (30 * DAY, Unit::Hours(6)),
            (90 * DAY, Unit::Day),
            (5 * 365 * DAY, Unit::Month),
        ] {
            assert_eq!(choose_unit(span), unit, "{span}");
        }
        assert_eq!(choose_unit(0), Unit::Minutes(1));
    }

    #[test]
    fn days_in_a_dst_changing_zone_are_23_and_25_hours_long() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Spring: 2026-03-29 02:00 → 03:00. Autumn: 2026-10-25 03:00 → 02:00.
        let edges = boundaries(
            at(berlin, "2026-03-28 12:00"),
            at(berlin, "2026-03-30 12:00"),
            Unit::Day,
            berlin,
        );
        assert_eq!(
            labels(berlin, &edges),
            ["03-28 00:00", "03-29 00:00", "03-30 00:00", "03-31 00:00"]
        );
        assert_eq!(edges[2] - edges[1], 23 * HOUR);
        let edges = boundaries(
            at(berlin, "2026-10-25 00:30"),
            at(berlin, "2026-10-25 23:00"),
            Unit::Day,
            berlin,
        );
        assert_eq!(edges[1] - edges[0], 25 * HOUR);
    }

    #[test]
    fn the_hour_that_happens_twice_is_two_bars_and_the_skipped_one_none() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let from = at(berlin, "2026-10-25 01:00");
        let edges = boundaries(from, from + 4 * HOUR - 1, Unit::Hours(1), berlin);
        assert_eq!(
            labels(berlin, &edges),
            [
                "10-25 01:00",
                "10-25 02:00",
                "10-25 02:00",
                "10-25 03:00",
                "10-25 04:00"
            ]
        );
        assert!(edges.windows(2).all(|w| w[1] - w[0] == HOUR));
        let from = at(berlin, "2026-03-29 00:00");
        let edges = boundaries(from, from + 3 * HOUR - 1, Unit::Hours(1), berlin);
        assert_eq!(
            labels(berlin, &edges),
            ["03-29 00:00", "03-29 01:00", "03-29 03:00", "03-29 04:00"]
        );
        // Six-hour buckets keep to the clock: 00, 06, 12, 18 (00–06 is 5 h).
        let edges = boundaries(from, from + 12 * HOUR, Unit::Hours(6), berlin);
        assert_eq!(
            labels(berlin, &edges),
            ["03-29 00:00", "03-29 06:00", "03-29 12:00", "03-29 18:00"]
        );
        assert_eq!(edges[1] - edges[0], 5 * HOUR);
    }

    #[test]
    fn half_hour_zones_keep_their_own_hours_and_weeks_start_on_monday() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        let from = at(kolkata, "2026-12-07 10:20");
        let edges = boundaries(from, from + 2 * HOUR, Unit::Hours(1), kolkata);
        assert_eq!(labels(kolkata, &edges)[0], "12-07 10:00");
        assert_eq!(edges[0] % (15 * MINUTE), 0, "quarter-hour aligned in UTC");
        let edges = boundaries(from, from + 20 * DAY, Unit::Week, kolkata);
        assert_eq!(labels(kolkata, &edges)[..2], ["12-07 00:00", "12-14 00:00"]);
        let edges = boundaries(from, from + 60 * DAY, Unit::Month, kolkata);
        assert_eq!(
            labels(kolkata, &edges)[..3],
            ["12-01 00:00", "01-01 00:00", "02-01 00:00"]
        );
    }

    #[test]
    fn weeks_begin_on_local_mondays_and_are_167_or_169_hours_across_a_clock_change() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Clocks go forward on Sunday 28 March 2027: that week is 167 hours.
        let start = at(berlin, "2027-03-22 00:00");
        assert_eq!(week_start_in(start, berlin), start);
        assert_eq!(
            week_start_in(at(berlin, "2027-03-28 23:59") + 59_999_999, berlin),
            start
        );
        let next = next_week_in(start, berlin);
        assert_eq!(next, at(berlin, "2027-03-29 00:00"));
        assert_eq!(next - start, 167 * HOUR);
        assert_eq!(week_start_in(next, berlin), next);
        assert_eq!(week_start_in(next - 1, berlin), start);
        // Back on Sunday 31 October 2027: 169 hours.
        let autumn = at(berlin, "2027-10-25 00:00");
        assert_eq!(next_week_in(autumn, berlin) - autumn, 169 * HOUR);
        // In UTC a week is the Monday the UTC calendar has.
        let utc: Tz = "UTC".parse().unwrap();
        assert_eq!(
            week_start_in(at(utc, "2027-01-03 23:00"), utc),
            at(utc, "2026-12-28 00:00")
        );
    }

    #[test]
    fn counts_land_in_their_bucket_and_bars_are_clipped_to_the_range() {
        let utc = chrono_tz::UTC;
        let from = at(utc, "2026-12-07 10:07");
        let to = at(utc, "2026-12-07 12:59") + MINUTE - 1;
        let edges = boundaries(from, to, Unit::Hours(1), utc);
        assert_eq!(edges.len(), 4);
        let counts = vec![
            (at(utc, "2026-12-07 10:07"), "UPDATE".to_string(), 2),
            (at(utc, "2026-12-07 10:59"), "UPDATE".to_string(), 1),
            (at(utc, "2026-12-07 11:00"), "LOGIN".to_string(), 5),
            (at(utc, "2026-12-07 12:59"), "UPDATE".to_string(), 1),
        ];
        let h = histogram(utc, Unit::Hours(1), &edges, from, to, counts);
        assert_eq!(h.series, ["LOGIN", "UPDATE"]);
        let totals: Vec<u64> = h.bars.iter().map(Bar::total).collect();
        assert_eq!(totals, [3, 5, 1]);
        assert_eq!(h.total, 9);
        assert_eq!(
            h.bars[0].start, from,
            "the first bar starts where the range does"
        );
        assert_eq!(h.bars[2].end, to + 1);
        assert_eq!(h.bars[1].label, "Dec 7, 11:00");
    }
}
