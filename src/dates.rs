//! Date math for the range picker and the time display, as plain functions:
//! month grids, keyboard moves, typed dates, presets, and conversion between
//! UTC instants and wall-clock times in a zone whose offset may change (DST).

//! Formatting and parsing are written out by hand: chrono's format-string
//! machinery is large, and this module runs in the browser too.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A time zone as the browser knows it: the offset from UTC at an instant.
pub trait Zone {
    /// Minutes east of UTC in effect at `utc_micros`.
    fn offset_minutes(&self, utc_micros: i64) -> i32;
}

/// UTC, or any zone that never changes its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedZone(pub i32);

impl Zone for FixedZone {
    fn offset_minutes(&self, _: i64) -> i32 {
        self.0
    }
}

pub const UTC: FixedZone = FixedZone(0);

fn naive_micros(local: NaiveDateTime) -> i64 {
    local.and_utc().timestamp_micros()
}

/// The wall-clock time in `zone` at a UTC instant.
pub fn to_local(utc_micros: i64, zone: &impl Zone) -> NaiveDateTime {
    let local = utc_micros + i64::from(zone.offset_minutes(utc_micros)) * MICROS_PER_MINUTE;
    chrono::DateTime::from_timestamp_micros(local)
        .unwrap_or_default()
        .naive_utc()
}

/// Why a wall-clock time has no instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTimeError {
    /// Skipped by a clock change (e.g. 02:30 on the night clocks go forward).
    Skipped(NaiveDateTime),
}

impl std::fmt::Display for LocalTimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Skipped(t) => write!(
                f,
                "{} does not exist in your time zone (the clocks skip it)",
                format_day_time(*t)
            ),
        }
    }
}

/// The UTC instant of a wall-clock time in `zone`. A time that occurs twice
/// (clocks going back) is the earlier instant; one that is skipped is an error.
pub fn from_local(local: NaiveDateTime, zone: &impl Zone) -> Result<i64, LocalTimeError> {
    let wall = naive_micros(local);
    // Offsets in effect a day either side; transitions are months apart.
    let before = zone.offset_minutes(wall - MICROS_PER_DAY);
    let after = zone.offset_minutes(wall + MICROS_PER_DAY);
    let mut candidates = vec![before, after];
    // The earlier instant comes from the larger offset.
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    candidates.dedup();
    for offset in candidates {
        let utc = wall - i64::from(offset) * MICROS_PER_MINUTE;
        if zone.offset_minutes(utc) == offset {
            return Ok(utc);
        }
    }
    Err(LocalTimeError::Skipped(local))
}

pub fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The first day of the month `n` months after the month of `day`.
pub fn add_months(day: NaiveDate, n: i32) -> NaiveDate {
    let index = day.year() * 12 + day.month0() as i32 + n;
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1).unwrap_or(day)
}

/// The weeks (Monday first) covering the month of `day`; days of the
/// neighbouring months fill the first and last week.
pub fn month_grid(day: NaiveDate) -> Vec<[NaiveDate; 7]> {
    let first = first_of_month(day);
    let start = first - Duration::days(i64::from(first.weekday().num_days_from_monday()));
    let next_month = add_months(first, 1);
    let mut weeks = Vec::with_capacity(6);
    let mut cursor = start;
    while cursor < next_month {
        let week: [NaiveDate; 7] = std::array::from_fn(|i| cursor + Duration::days(i as i64));
        weeks.push(week);
        cursor += Duration::days(7);
    }
    weeks
}

/// The day a key moves the calendar focus to: arrows by a day or a week,
/// Page Up / Page Down by a month, Home / End to the week's ends.
pub fn move_day(day: NaiveDate, key: &str) -> Option<NaiveDate> {
    let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
    match key {
        "ArrowLeft" => day.pred_opt(),
        "ArrowRight" => day.succ_opt(),
        "ArrowUp" => day.checked_sub_signed(Duration::days(7)),
        "ArrowDown" => day.checked_add_signed(Duration::days(7)),
        "PageUp" => day.checked_sub_months(chrono::Months::new(1)),
        "PageDown" => day.checked_add_months(chrono::Months::new(1)),
        "Home" => Some(monday),
        "End" => Some(monday + Duration::days(6)),
        _ => None,
    }
}

/// Two ends in order.
pub fn ordered<T: Ord>(a: T, b: T) -> (T, T) {
    if b < a {
        (b, a)
    } else {
        (a, b)
    }
}

pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `October 2025`
pub fn month_title(day: NaiveDate) -> String {
    format!("{} {}", MONTHS[day.month0() as usize], day.year())
}

/// `27 October 2025`, how a screen reader hears a calendar day.
pub fn long_day(day: NaiveDate) -> String {
    format!("{} {}", day.day(), month_title(day))
}

/// `2025-10-27`
pub fn iso_day(day: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day())
}

pub fn format_day(day: NaiveDate) -> String {
    format!("{:02}-{:02}-{:04}", day.day(), day.month(), day.year())
}

pub fn format_clock(time: NaiveTime) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// `2025-10-27 12:00:05`
pub fn iso_day_time(t: NaiveDateTime) -> String {
    format!(
        "{} {:02}:{:02}:{:02}",
        iso_day(t.date()),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `27-10-2025 12:00`
pub fn format_day_time(t: NaiveDateTime) -> String {
    format!("{} {}", format_day(t.date()), format_clock(t.time()))
}

/// `2025-10-27 12:00:00` in the zone.
pub fn format_instant(utc_micros: i64, zone: &impl Zone) -> String {
    iso_day_time(to_local(utc_micros, zone))
}

/// A typed day, `DD-MM-YYYY` (also `/` or `.` between the parts).
pub fn parse_day(text: &str) -> Result<NaiveDate, String> {
    let text = text.trim();
    let parts: Vec<&str> = text.split(['-', '/', '.']).collect();
    let numbers: Option<Vec<u32>> = match parts.as_slice() {
        [d, m, y] if y.len() == 4 && (1..=2).contains(&d.len()) && (1..=2).contains(&m.len()) => {
            [d, m, y].iter().map(|p| p.parse().ok()).collect()
        }
        _ => None,
    };
    let Some([d, m, y]) = numbers.as_deref().map(|n| [n[0], n[1], n[2]]) else {
        return Err(format!("\"{text}\" is not a date; write it as DD-MM-YYYY"));
    };
    NaiveDate::from_ymd_opt(y as i32, m, d)
        .ok_or_else(|| format!("\"{text}\" is not a date in the calendar"))
}

/// A typed time of day, `HH:MM` (24-hour).
pub fn parse_clock(text: &str) -> Result<NaiveTime, String> {
    let text = text.trim();
    let parsed = text.split_once(':').and_then(|(h, m)| {
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
    });
    parsed.ok_or_else(|| format!("\"{text}\" is not a time; write it as HH:MM (00:00 to 23:59)"))
}

/// The last minute of a day, the default end time of a picked range.
pub fn end_of_day() -> NaiveTime {
    NaiveTime::from_hms_opt(23, 59, 0).unwrap_or_default()
}

/// The ready-made ranges of the picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    Last15Minutes,
    LastHour,
    Last24Hours,
    Last7Days,
    Last30Days,
    Today,
    Yesterday,
    ThisMonth,
}

impl Preset {
    pub const ALL: [Preset; 8] = [
        Self::Last15Minutes,
        Self::LastHour,
        Self::Last24Hours,
        Self::Last7Days,
        Self::Last30Days,
        Self::Today,
        Self::Yesterday,
        Self::ThisMonth,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Last15Minutes => "Last 15 minutes",
            Self::LastHour => "Last hour",
            Self::Last24Hours => "Last 24 hours",
            Self::Last7Days => "Last 7 days",
            Self::Last30Days => "Last 30 days",
            Self::Today => "Today",
            Self::Yesterday => "Yesterday",
            Self::ThisMonth => "This month",
        }
    }

    /// The URL code of a rolling preset (it stays "the last hour" when the
    /// page is refreshed later); calendar presets have none.
    pub fn code(self) -> Option<&'static str> {
        match self {
            Self::Last15Minutes => Some("15m"),
            Self::LastHour => Some("1h"),
            Self::Last24Hours => Some("24h"),
            Self::Last7Days => Some("7d"),
            Self::Last30Days => Some("30d"),
            _ => None,
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == Some(code))
    }

    /// Length of a rolling preset in microseconds.
    pub fn rolling_micros(self) -> Option<i64> {
        let minutes = match self {
            Self::Last15Minutes => 15,
            Self::LastHour => 60,
            Self::Last24Hours => 24 * 60,
            Self::Last7Days => 7 * 24 * 60,
            Self::Last30Days => 30 * 24 * 60,
            _ => return None,
        };
        Some(minutes * MICROS_PER_MINUTE)
    }

    /// The instants a calendar preset covers in `zone` (start, inclusive
    /// end), as of `now`.
    pub fn calendar_bounds(
        self,
        now_micros: i64,
        zone: &impl Zone,
    ) -> Result<(i64, i64), LocalTimeError> {
        let today = to_local(now_micros, zone).date();
        let (start, end) = match self {
            Self::Today => (today, today),
            Self::Yesterday => {
                let y = today.pred_opt().unwrap_or(today);
                (y, y)
            }
            Self::ThisMonth => (first_of_month(today), today),
            _ => {
                let length = self.rolling_micros().unwrap_or_default();
                return Ok((now_micros - length, now_micros));
            }
        };
        let start = midnight_after(start.pred_opt().unwrap_or(start), zone)?;
        let end = midnight_after(end, zone)? - 1;
        Ok((start, end))
    }
}

/// The first instant of the day after `day` in `zone` (midnight, or the first
/// minute that exists when a clock change skips midnight).
fn midnight_after(day: NaiveDate, zone: &impl Zone) -> Result<i64, LocalTimeError> {
    let next = day.succ_opt().unwrap_or(day).and_time(NaiveTime::MIN);
    let mut t = next;
    for _ in 0..=120 {
        if let Ok(utc) = from_local(t, zone) {
            return Ok(utc);
        }
        t += Duration::minutes(1);
    }
    Err(LocalTimeError::Skipped(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn utc(y: i32, m: u32, day: u32, h: u32, min: u32) -> i64 {
        d(y, m, day)
            .and_hms_opt(h, min, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    /// Central European time: +1, +2 from the last Sunday of March 01:00 UTC
    /// to the last Sunday of October 01:00 UTC (2025: 30 March, 26 October).
    struct Berlin;
    impl Zone for Berlin {
        fn offset_minutes(&self, t: i64) -> i32 {
            if (utc(2025, 3, 30, 1, 0)..utc(2025, 10, 26, 1, 0)).contains(&t) {
                120
            } else {
                60
            }
        }
    }

    #[test]
    fn month_grid_starts_on_monday_and_covers_the_month() {
        // October 2025 begins on a Wednesday and ends on a Friday.
        let weeks = month_grid(d(2025, 10, 17));
        assert_eq!(weeks.len(), 5);
        assert_eq!(weeks[0][0], d(2025, 9, 29));
        assert_eq!(weeks[0][2], d(2025, 10, 1));
        assert_eq!(weeks[4][4], d(2025, 10, 31));
        assert_eq!(weeks[4][6], d(2025, 11, 2));
        // February 2021 fills exactly four weeks; March 2026 needs six.
        assert_eq!(month_grid(d(2021, 2, 1)).len(), 4);
        assert_eq!(month_grid(d(2026, 3, 1)).len(), 6);
        // Leap years.
        assert!(month_grid(d(2024, 2, 1))
            .iter()
            .flatten()
            .any(|x| *x == d(2024, 2, 29)));
    }

    #[test]
    fn add_months_crosses_years_both_ways() {
        assert_eq!(add_months(d(2025, 12, 31), 1), d(2026, 1, 1));
        assert_eq!(add_months(d(2025, 1, 15), -1), d(2024, 12, 1));
        assert_eq!(add_months(d(2025, 10, 27), 0), d(2025, 10, 1));
        assert_eq!(add_months(d(2025, 10, 27), -22), d(2023, 12, 1));
    }

    #[test]
    fn keys_move_the_focused_day() {
        let day = d(2025, 10, 31); // a Friday
        assert_eq!(move_day(day, "ArrowRight"), Some(d(2025, 11, 1)));
        assert_eq!(move_day(day, "ArrowLeft"), Some(d(2025, 10, 30)));
        assert_eq!(move_day(day, "ArrowDown"), Some(d(2025, 11, 7)));
        assert_eq!(move_day(day, "ArrowUp"), Some(d(2025, 10, 24)));
        assert_eq!(move_day(day, "PageDown"), Some(d(2025, 11, 30)));
        assert_eq!(move_day(day, "PageUp"), Some(d(2025, 9, 30)));
        assert_eq!(move_day(day, "Home"), Some(d(2025, 10, 27)));
        assert_eq!(move_day(day, "End"), Some(d(2025, 11, 2)));
        assert_eq!(move_day(day, "a"), None);
    }

    #[test]
    fn range_ends_are_put_in_order() {
        assert_eq!(
            ordered(d(2025, 10, 29), d(2025, 10, 27)),
            (d(2025, 10, 27), d(2025, 10, 29))
        );
        assert_eq!(ordered(1, 2), (1, 2));
    }

    #[test]
    fn typed_days_must_exist() {
        assert_eq!(parse_day("27-10-2025"), Ok(d(2025, 10, 27)));
        assert_eq!(parse_day(" 1/2/2024 "), Ok(d(2024, 2, 1)));
        assert_eq!(parse_day("29-02-2024"), Ok(d(2024, 2, 29)));
        for bad in [
            "31-02-2025",
            "29-02-2025",
            "00-01-2025",
            "32-01-2025",
            "12-13-2025",
        ] {
            assert!(
                parse_day(bad)
                    .unwrap_err()
                    .contains("not a date in the calendar"),
                "{bad}"
            );
        }
        for bad in ["", "2025-10-27", "27-10-25", "yesterday", "27-10-2025x"] {
            assert!(parse_day(bad).unwrap_err().contains("DD-MM-YYYY"), "{bad}");
        }
    }

    #[test]
    fn typed_times_are_24_hour_minutes() {
        assert_eq!(
            parse_clock("09:05"),
            Ok(NaiveTime::from_hms_opt(9, 5, 0).unwrap())
        );
        assert_eq!(
            parse_clock("9:05"),
            Ok(NaiveTime::from_hms_opt(9, 5, 0).unwrap())
        );
        for bad in ["24:00", "12:60", "12", "12:5", "noon", ""] {
            assert!(parse_clock(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn utc_and_local_convert_both_ways() {
        let t = utc(2025, 10, 27, 12, 0);
        assert_eq!(format_day_time(to_local(t, &UTC)), "27-10-2025 12:00");
        assert_eq!(
            format_day_time(to_local(t, &FixedZone(-300))),
            "27-10-2025 07:00"
        );
        let local = d(2025, 10, 27).and_hms_opt(7, 0, 0).unwrap();
        assert_eq!(from_local(local, &FixedZone(-300)), Ok(t));
        // Summer and winter offsets of one zone.
        assert_eq!(
            format_day_time(to_local(utc(2025, 7, 1, 10, 0), &Berlin)),
            "01-07-2025 12:00"
        );
        assert_eq!(
            format_day_time(to_local(utc(2025, 12, 1, 10, 0), &Berlin)),
            "01-12-2025 11:00"
        );
    }

    #[test]
    fn clock_changes_skip_and_repeat_wall_times() {
        // 30 March 2025: 02:00 -> 03:00, so 02:30 does not exist.
        let skipped = d(2025, 3, 30).and_hms_opt(2, 30, 0).unwrap();
        let err = from_local(skipped, &Berlin).unwrap_err();
        assert!(
            err.to_string().contains("30-03-2025 02:30 does not exist"),
            "{err}"
        );
        let after = d(2025, 3, 30).and_hms_opt(3, 0, 0).unwrap();
        assert_eq!(from_local(after, &Berlin), Ok(utc(2025, 3, 30, 1, 0)));
        // 26 October 2025: 03:00 -> 02:00, so 02:30 happens twice; the earlier wins.
        let twice = d(2025, 10, 26).and_hms_opt(2, 30, 0).unwrap();
        assert_eq!(from_local(twice, &Berlin), Ok(utc(2025, 10, 26, 0, 30)));
        // Round trips away from the changes.
        for t in [
            utc(2025, 1, 1, 0, 0),
            utc(2025, 6, 15, 23, 59),
            utc(2025, 10, 26, 2, 0),
        ] {
            assert_eq!(from_local(to_local(t, &Berlin), &Berlin), Ok(t));
        }
    }

    #[test]
    fn calendar_presets_follow_the_zone_and_its_clock_changes() {
        let now = utc(2025, 10, 27, 12, 0); // Monday, 13:00 in Berlin (winter time)
        let (start, end) = Preset::Today.calendar_bounds(now, &Berlin).unwrap();
        assert_eq!(start, utc(2025, 10, 26, 23, 0));
        assert_eq!(end, utc(2025, 10, 27, 23, 0) - 1);
        // Yesterday had 25 hours (the clocks went back).
        let (start, end) = Preset::Yesterday.calendar_bounds(now, &Berlin).unwrap();
        assert_eq!(start, utc(2025, 10, 25, 22, 0));
        assert_eq!(end - start + 1, 25 * 3_600_000_000);
        let (start, end) = Preset::ThisMonth.calendar_bounds(now, &UTC).unwrap();
        assert_eq!(start, utc(2025, 10, 1, 0, 0));
        assert_eq!(end, utc(2025, 10, 28, 0, 0) - 1);
        let (start, end) = Preset::LastHour.calendar_bounds(now, &Berlin).unwrap();
        assert_eq!((start, end), (now - 3_600_000_000, now));
    }

    #[test]
    fn rolling_presets_have_codes() {
        for preset in Preset::ALL {
            match preset.code() {
                Some(code) => {
                    assert_eq!(Preset::from_code(code), Some(preset));
                    assert!(preset.rolling_micros().unwrap() > 0);
                }
                None => assert!(preset.rolling_micros().is_none()),
            }
        }
        assert_eq!(Preset::from_code("2y"), None);
    }
}
