//! The log at a glance: activity over time (a histogram of a view, split by
//! action) and the view's top initiators, actions, tables and IPs. The
//! server works out the buckets and counts; the page draws them as SVG.

use serde::{Deserialize, Serialize};

/// Actions drawn as series of their own; the rest are stacked as "Other".
pub const MAX_SERIES: usize = 6;
/// Entries in each top list.
pub const TOP_N: usize = 10;
/// The series name of every action beyond the [`MAX_SERIES`] largest.
pub const OTHER: &str = "Other";

/// A view's events over its time range, in calendar buckets of one size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// The IANA zone the buckets are aligned in ("UTC", "Europe/Berlin").
    pub zone: String,
    /// The bucket size, in words ("hour", "5 minutes", "day").
    pub unit: String,
    /// The series, largest first: action types, then [`OTHER`] if any.
    pub series: Vec<String>,
    pub bars: Vec<Bar>,
    /// The sum of every bar: the view's own count.
    pub total: u64,
    /// Read from one in this many of the view's events (a view of very many
    /// of them), the bars scaled up: estimates. `None`: exact.
    pub sample: Option<u32>,
}

/// One bucket: `[start, end)` in microseconds, clipped to the view's range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    pub start: i64,
    /// Exclusive.
    pub end: i64,
    /// The bucket's start in the zone, as the axis and the tooltip say it.
    pub label: String,
    /// Per series, in [`Histogram::series`] order.
    pub counts: Vec<u64>,
}

impl Bar {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    /// The largest bar's total (the chart's scale), at least 1.
    pub fn peak(&self) -> u64 {
        self.bars.iter().map(Bar::total).max().unwrap_or(0).max(1)
    }
}

/// Folds `(bucket index, action, count)` into per-bar series: the
/// [`MAX_SERIES`] actions with the most events each get a series, the rest
/// are added up as [`OTHER`]. Series are ordered largest first, then by name.
pub fn fold_series(bars: usize, counts: &[(usize, String, u64)]) -> (Vec<String>, Vec<Vec<u64>>) {
    let mut totals: std::collections::BTreeMap<&str, u64> = Default::default();
    for (_, action, n) in counts {
        *totals.entry(action.as_str()).or_default() += n;
    }
    let mut ranked: Vec<(&str, u64)> = totals.into_iter().filter(|(_, n)| *n > 0).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let keep = if ranked.len() > MAX_SERIES + 1 {
        MAX_SERIES
    } else {
        ranked.len()
    };
    let mut series: Vec<String> = ranked[..keep].iter().map(|(a, _)| a.to_string()).collect();
    let other = ranked.len() > keep;
    if other {
        series.push(OTHER.to_string());
    }
    let mut grid = vec![vec![0u64; series.len()]; bars];
    for (bar, action, n) in counts {
        let Some(row) = grid.get_mut(*bar) else {
            continue;
        };
        let column = series[..keep]
            .iter()
            .position(|s| s == action)
            .unwrap_or(keep);
        if column < series.len() {
            row[column] += n;
        }
    }
    (series, grid)
}

/// The view's most frequent values of each field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdowns {
    pub initiators: Vec<Top>,
    pub actions: Vec<Top>,
    pub tables: Vec<Top>,
    pub ips: Vec<Top>,
    /// The IP list counts networks (an IPv4 /16, an IPv6 /32), read from the
    /// combination counts, rather than single addresses.
    pub ip_networks: bool,
    /// How many events the view holds (each list's share is of this).
    pub total: u64,
    /// As [`Histogram::sample`]: the counts are estimates from one in this
    /// many events.
    pub sample: Option<u32>,
}

/// One value and how many of the view's events hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Top {
    /// As the page shows it.
    pub label: String,
    /// As the view's filter takes it (`user:u-17`, `UPDATE`, `10.0.0.0/16`);
    /// `None` for a value no filter can pick (an event with no table).
    pub filter: Option<String>,
    pub n: u64,
}

/// The Overview: the last day's and week's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub windows: Vec<OverviewWindow>,
}

/// One window's figures; each links to the view behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewWindow {
    /// The Activity Log's rolling range code (`24h`, `7d`).
    pub range: String,
    pub label: String,
    pub events: u64,
    pub failed_sign_ins: u64,
    pub deletions: u64,
    pub exports: u64,
    /// Alerts of new-IP rules that began in the window (auditors and up).
    pub new_ips: Option<u64>,
}

/// The Overview's windows: (range code, label).
pub const OVERVIEW_WINDOWS: [(&str, &str); 2] = [("24h", "Last 24 hours"), ("7d", "Last 7 days")];

/// A share of `total` in whole percent, for the share bars (at least 1 when
/// there is any).
pub fn share_percent(n: u64, total: u64) -> u64 {
    if total == 0 || n == 0 {
        return 0;
    }
    (n * 100 / total).clamp(1, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bar: usize, action: &str, n: u64) -> (usize, String, u64) {
        (bar, action.to_string(), n)
    }

    #[test]
    fn the_largest_actions_get_series_and_the_rest_are_other() {
        let mut counts = Vec::new();
        for (i, action) in ["A", "B", "C", "D", "E", "F", "G", "H"].iter().enumerate() {
            counts.push(row(i % 2, action, 100 - i as u64));
        }
        let (series, grid) = fold_series(2, &counts);
        assert_eq!(series, ["A", "B", "C", "D", "E", "F", OTHER]);
        assert_eq!(grid[0], [100, 0, 98, 0, 96, 0, 94]);
        assert_eq!(grid[1], [0, 99, 0, 97, 0, 95, 93]);
        let sum: u64 = grid.iter().flatten().sum();
        assert_eq!(sum, counts.iter().map(|c| c.2).sum::<u64>());
    }

    #[test]
    fn seven_actions_need_no_other_series() {
        let counts: Vec<_> = ["A", "B", "C", "D", "E", "F", "G"]
            .iter()
            .map(|a| row(0, a, 1))
            .collect();
        let (series, grid) = fold_series(1, &counts);
        assert_eq!(series.len(), 7);
        assert!(!series.contains(&OTHER.to_string()));
        assert_eq!(grid[0], [1; 7]);
    }

    #[test]
    fn shares_round_down_but_never_hide_a_value() {
        assert_eq!(share_percent(1, 1_000_000), 1);
        assert_eq!(share_percent(0, 10), 0);
        assert_eq!(share_percent(5, 10), 50);
        assert_eq!(share_percent(10, 0), 0);
    }
}
