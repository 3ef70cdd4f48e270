//! The activity chart, the top breakdowns and the Overview's figures against
//! a real database: bucket edges in a zone that changes its clocks, bars
//! that add up to the view's own count, and the quarter-hour rollup still
//! exact after a bulk deletion and a retention run.

use crate::common::{sample_event, test_now, TestApp};
use auditdeck::bulk::Selection;
use auditdeck::charts::Histogram;
use auditdeck::integrity::RetentionPolicy;
use auditdeck::query::{EventQuery, InitiatorKey};
use auditdeck::server::charts::parse_zone;
use auditdeck::server::store::{self, NewEvent};

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const ACTIONS: [&str; 9] = [
    "UPDATE",
    "CREATE",
    "LOGIN",
    "DELETE",
    "EXPORT",
    "LOGOUT",
    "LOGIN_FAILED",
    "GRANT",
    "REVOKE",
];

/// Berlin's clocks go back an hour at 01:00 UTC on 25 October 2026.
const FALL_BACK: i64 = 1_792_890_000_000_000;

/// Events every 7 minutes 13 seconds for three days around `FALL_BACK`,
/// spread over actions, users and tables.
fn events() -> Vec<NewEvent> {
    (0..600u32)
        .map(|i| {
            let at = FALL_BACK - 36 * HOUR + i64::from(i) * (7 * MINUTE + 13 * SECOND);
            let mut e = sample_event(i % 13, at);
            e.action = ACTIONS[(i as usize * 7) % ACTIONS.len()].to_string();
            e.table_name = Some(["invoices", "users", "orders"][i as usize % 3].to_string());
            e.description = if i % 5 == 0 {
                format!("Refund approved {i}")
            } else {
                format!("Routine change {i}")
            };
            e
        })
        .collect()
}

async fn app_with_events() -> (TestApp, Vec<NewEvent>) {
    let app = TestApp::new().await;
    let events = events();
    store::insert_events(&app.db, &events, None).await.unwrap();
    (app, events)
}

fn matches(e: &NewEvent, q: &EventQuery) -> bool {
    (q.actions.is_empty() || q.actions.contains(&e.action))
        && q.table
            .as_ref()
            .is_none_or(|t| e.table_name.as_ref() == Some(t))
        && q.user.as_ref().is_none_or(|u| e.initiator.id == u.id)
        && q.q
            .as_ref()
            .is_none_or(|k| e.description.contains(k.as_str()))
        && q.from.is_none_or(|f| e.occurred_at >= f)
        && q.to.is_none_or(|t| e.occurred_at <= t)
}

/// Every bar holds exactly the view's events in its range, and the bars add
/// up to the view's exact count.
async fn assert_bars_exact(app: &TestApp, events: &[NewEvent], q: &EventQuery, zone: &str) {
    let h: Histogram = store::event_histogram(&app.db, q, parse_zone(zone).unwrap())
        .await
        .unwrap()
        .expect("a histogram");
    let count = store::count_matching(&app.db, q).await.unwrap();
    assert!(count.exact);
    assert_eq!(h.total, count.total, "{q:?}: bars add up to the count");
    for bar in &h.bars {
        assert!(bar.start < bar.end);
        let want = events
            .iter()
            .filter(|e| matches(e, q) && e.occurred_at >= bar.start && e.occurred_at < bar.end)
            .count() as u64;
        assert_eq!(bar.total(), want, "{q:?}: the bar at {}", bar.label);
    }
    assert!(
        h.bars.windows(2).all(|w| w[0].end == w[1].start),
        "bars touch"
    );
    assert!((1..=200).contains(&h.bars.len()));
}

#[tokio::test]
async fn every_view_s_bars_hold_exactly_its_events_in_any_zone() {
    let (app, events) = app_with_events().await;
    // Cut mid-quarter at both ends, so the rollup's edges are read from the log.
    let (from, to) = (
        FALL_BACK - 20 * HOUR - 7 * MINUTE,
        FALL_BACK + 9 * HOUR + 22 * SECOND,
    );
    let views = [
        EventQuery::default(),
        EventQuery {
            actions: vec!["LOGIN".into(), "DELETE".into()],
            ..Default::default()
        },
        EventQuery {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        },
        EventQuery {
            from: Some(from),
            to: Some(to),
            actions: vec!["UPDATE".into()],
            ..Default::default()
        },
        EventQuery {
            table: Some("users".into()),
            ..Default::default()
        },
        EventQuery {
            user: Some(InitiatorKey::parse("user:3").unwrap()),
            from: Some(from),
            ..Default::default()
        },
        EventQuery {
            q: Some("Refund".into()),
            ..Default::default()
        },
        // A short range: minute buckets, read from the log.
        EventQuery {
            from: Some(from),
            to: Some(from + 50 * MINUTE),
            ..Default::default()
        },
    ];
    for zone in ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"] {
        for q in &views {
            assert_bars_exact(&app, &events, q, zone).await;
        }
    }
}

#[tokio::test]
async fn buckets_follow_the_local_clock_across_a_dst_change() {
    let (app, _) = app_with_events().await;
    let berlin = parse_zone("Europe/Berlin").unwrap();
    // 84 hours around the change: hour bars, and the hour that happens
    // twice is two bars labelled 02:00.
    let q = EventQuery {
        from: Some(FALL_BACK - 25 * HOUR),
        to: Some(FALL_BACK + 59 * HOUR - 1),
        ..Default::default()
    };
    let h = store::event_histogram(&app.db, &q, berlin)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.unit, "hour");
    let twos = h
        .bars
        .iter()
        .filter(|b| b.label.ends_with("25, 02:00"))
        .count();
    assert_eq!(
        twos,
        2,
        "{:?}",
        h.bars.iter().map(|b| &b.label).collect::<Vec<_>>()
    );
    assert!(h.bars.iter().all(|b| b.end - b.start == HOUR));
    // Day bars: the day of the change is 25 hours long.
    let q = EventQuery {
        from: Some(FALL_BACK - 36 * HOUR),
        to: Some(FALL_BACK + 80 * DAY),
        ..Default::default()
    };
    let h = store::event_histogram(&app.db, &q, berlin)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.unit, "day");
    let long = h
        .bars
        .iter()
        .find(|b| b.label.starts_with("Sun Oct 25"))
        .unwrap();
    assert_eq!(long.end - long.start, 25 * HOUR);
}

#[tokio::test]
async fn a_view_whose_events_share_one_bucket_is_one_bar() {
    let app = TestApp::new().await;
    let at = store::quarter_of(test_now()) - 3 * HOUR;
    let events: Vec<_> = (0..5)
        .map(|i| sample_event(i, at + i64::from(i) * SECOND))
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let h = store::event_histogram(&app.db, &EventQuery::default(), parse_zone("UTC").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.bars.len(), 1);
    assert_eq!(h.bars[0].counts, [5]);
    assert_eq!(h.series, ["UPDATE"]);
    assert_eq!((h.bars[0].start, h.bars[0].end), (at, at + 4 * SECOND + 1));
    // An empty log and no range: nothing to draw.
    let empty = TestApp::new().await;
    let none = store::event_histogram(&empty.db, &EventQuery::default(), chrono_tz::UTC)
        .await
        .unwrap();
    assert!(none.is_none());
}

#[tokio::test]
async fn the_rollup_stays_exact_after_a_bulk_deletion_and_a_retention_run() {
    let (app, mut events) = app_with_events().await;
    let ids: Vec<i64> = (100..160).collect();
    let up_to = store::max_event_id(&app.db).await.unwrap();
    let mut record = sample_event(999, test_now());
    record.action = "DELETE".into();
    store::delete_selection(
        &app.db,
        &Selection::Ids(ids.clone()),
        up_to,
        60,
        record.clone(),
    )
    .await
    .unwrap();
    assert_eq!(store::volume_differences(&app.db).await.unwrap(), 0);
    assert_eq!(store::combo_differences(&app.db).await.unwrap(), 0);
    // Ids are 1-based in insertion order.
    let kept: Vec<NewEvent> = events
        .drain(..)
        .enumerate()
        .filter(|(i, _)| !ids.contains(&(*i as i64 + 1)))
        .map(|(_, e)| e)
        .collect();
    let mut events = kept;
    events.push(record);
    let cutoff = FALL_BACK - 12 * HOUR;
    let policy = RetentionPolicy {
        keep_days: Some(1),
        by_action: vec![],
    };
    store::apply_retention(&app.db, &policy, cutoff + DAY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store::volume_differences(&app.db).await.unwrap(), 0);
    events.retain(|e| e.occurred_at >= cutoff);
    let creates = EventQuery {
        actions: vec!["CREATE".into()],
        ..Default::default()
    };
    let want = events.iter().filter(|e| matches(e, &creates)).count() as u64;
    // The retention run records an event of its own: the log's count says.
    for (q, want) in [
        (
            EventQuery::default(),
            store::count_matching(&app.db, &EventQuery::default())
                .await
                .unwrap()
                .total,
        ),
        (creates, want),
    ] {
        let h = store::event_histogram(&app.db, &q, chrono_tz::UTC)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(h.total, want, "{q:?}");
    }
}

#[tokio::test]
async fn breakdowns_count_the_view_and_agree_with_its_filters() {
    let (app, events) = app_with_events().await;
    for q in [
        EventQuery::default(),
        EventQuery {
            table: Some("orders".into()),
            ..Default::default()
        },
        EventQuery {
            from: Some(FALL_BACK),
            ..Default::default()
        },
        EventQuery {
            q: Some("Refund".into()),
            ..Default::default()
        },
    ] {
        let b = store::event_breakdowns(&app.db, &q).await.unwrap();
        let want = events.iter().filter(|e| matches(e, &q)).count() as u64;
        assert_eq!(b.total, want, "{q:?}");
        assert!(b.actions.len() <= 10 && !b.actions.is_empty());
        assert!(
            b.actions.windows(2).all(|w| w[0].n >= w[1].n),
            "largest first"
        );
        // Each entry's count is the count of the view with it as a filter.
        let top = &b.initiators[0];
        let key = InitiatorKey::parse(top.filter.as_deref().unwrap()).unwrap();
        let narrowed = EventQuery {
            user: Some(key),
            ..q.clone()
        };
        let n = store::count_matching(&app.db, &narrowed).await.unwrap();
        assert_eq!(n.total, top.n, "{q:?}: {}", top.label);
        let table = &b.tables[0];
        let narrowed = EventQuery {
            table: table.filter.clone(),
            ..q.clone()
        };
        assert_eq!(
            store::count_matching(&app.db, &narrowed)
                .await
                .unwrap()
                .total,
            table.n
        );
        let ip = &b.ips[0];
        let narrowed = EventQuery {
            ip: ip.filter.clone(),
            ..q.clone()
        };
        assert_eq!(
            store::count_matching(&app.db, &narrowed)
                .await
                .unwrap()
                .total,
            ip.n
        );
    }
    // Without time range or keyword the combination counts answer: IPs by network.
    let b = store::event_breakdowns(&app.db, &EventQuery::default())
        .await
        .unwrap();
    assert!(b.ip_networks);
    assert_eq!(b.ips[0].label, "10.0.0.0/16");
    assert_eq!(b.ips[0].n, 600);
    assert_eq!(b.initiators[0].label, "User 0");
}

#[tokio::test]
async fn the_overview_counts_what_its_links_show() {
    let app = TestApp::new().await;
    let now = test_now();
    // Inside the last day, inside the week only, and before it; one a
    // microsecond inside each window's start.
    let times = [
        now - 10 * MINUTE,
        now - 23 * HOUR,
        now - DAY + 1,
        now - DAY,
        now - DAY - 1,
        now - 6 * DAY,
        now - 7 * DAY,
        now - 7 * DAY - 1,
        now - 30 * DAY,
    ];
    let events: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, at)| {
            let mut e = sample_event(i as u32, *at);
            e.action = ["LOGIN_FAILED", "DELETE", "EXPORT"][i % 3].to_string();
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    for (range, length) in [("24h", DAY), ("7d", 7 * DAY)] {
        let by_action = store::actions_since(&app.db, now - length).await.unwrap();
        for action in ["LOGIN_FAILED", "DELETE", "EXPORT"] {
            let q = EventQuery {
                range: Some(range.into()),
                actions: vec![action.into()],
                ..Default::default()
            };
            let shown = store::count_matching(&app.db, &q).await.unwrap();
            let want = times
                .iter()
                .enumerate()
                .filter(|(i, at)| {
                    **at >= now - length && ["LOGIN_FAILED", "DELETE", "EXPORT"][i % 3] == action
                })
                .count() as u64;
            assert_eq!(shown.total, want, "{range} {action}");
            assert_eq!(
                by_action.get(action).copied().unwrap_or(0),
                want,
                "{range} {action}"
            );
        }
    }
}

#[tokio::test]
async fn a_view_of_very_many_events_is_estimated_from_a_sample_and_says_so() {
    let app = TestApp::new().await;
    let start = FALL_BACK - 20 * DAY;
    let events: Vec<_> = (0..64_000u32)
        .map(|i| {
            let mut e = sample_event(i % 50, start + i64::from(i) * 25 * SECOND);
            // In arrival order: CREATE, UPDATE, DELETE, LOGIN, again and again.
            e.action = ["CREATE", "UPDATE", "DELETE", "LOGIN"][i as usize % 4].into();
            e
        })
        .collect();
    for chunk in events.chunks(8_000) {
        store::insert_events(&app.db, chunk, None).await.unwrap();
    }
    let q = EventQuery {
        table: Some("invoices".into()),
        ..Default::default()
    };
    let h = store::event_histogram(&app.db, &q, chrono_tz::UTC)
        .await
        .unwrap()
        .unwrap();
    let k = h.sample.expect("a sample");
    assert!(k >= 2);
    let within = |estimate: u64, exact: u64, margin: f64| {
        (estimate as f64 - exact as f64).abs() / exact as f64 <= margin
    };
    assert!(within(h.total, 64_000, 0.03), "≈ {} of 64,000", h.total);
    // Each action is a quarter: the sample is not every k-th id, which would
    // see one action only.
    let per_series: Vec<u64> = (0..h.series.len())
        .map(|s| h.bars.iter().map(|b| b.counts[s]).sum())
        .collect();
    assert_eq!(h.series.len(), 4);
    for n in per_series {
        assert!(within(n, 16_000, 0.08), "≈ {n} of 16,000");
    }
    // Breakdowns without time range or keyword are the exact combination
    // counts; with a range, a sample of the log.
    let b = store::event_breakdowns(&app.db, &q).await.unwrap();
    assert_eq!((b.sample, b.total), (None, 64_000));
    let ranged = EventQuery {
        from: Some(start),
        ..q.clone()
    };
    let b = store::event_breakdowns(&app.db, &ranged).await.unwrap();
    assert!(b.sample.is_some());
    assert!(within(b.total, 64_000, 0.03), "≈ {} of 64,000", b.total);
    assert!(
        b.actions.iter().all(|a| within(a.n, 16_000, 0.08)),
        "{:?}",
        b.actions
    );
    // A view of few events is counted exactly.
    let few = EventQuery {
        table: Some("invoices".into()),
        user: Some(InitiatorKey::parse("user:7").unwrap()),
        ..Default::default()
    };
    let h = store::event_histogram(&app.db, &few, chrono_tz::UTC)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((h.sample, h.total), (None, 1_280));
    let b = store::event_breakdowns(
        &app.db,
        &EventQuery {
            from: Some(start),
            ..few
        },
    )
    .await
    .unwrap();
    assert_eq!((b.sample, b.total), (None, 1_280));
}
