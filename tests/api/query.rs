//! The Activity Log's query builder against a real database: each filter
//! alone and combined, CIDR ranges, phrases, sorting, keyset boundaries,
//! keyword search order, counts, filter choices and record history.

use crate::common::{sample_event, TestApp};
use auditdeck::errors::AppError;
use auditdeck::models::{EventRow, InitiatorKind};
use auditdeck::query::{Cursor, EventQuery, InitiatorKey, SortColumn};
use auditdeck::server::store::{self, NewEvent, COUNT_LIMIT};

const T0: i64 = 1_761_566_400_000_000; // 2025-10-27 12:00 UTC
const MINUTE: i64 = 60_000_000;

fn q() -> EventQuery {
    EventQuery {
        per_page: 250,
        ..EventQuery::default()
    }
}

async fn ids(app: &TestApp, query: &EventQuery) -> Vec<i64> {
    store::list_events(&app.db, query)
        .await
        .expect("list")
        .rows
        .iter()
        .map(|r| r.id)
        .collect()
}

/// Ten events that differ in every filtered field; returns their ids.
async fn varied(app: &TestApp) -> Vec<i64> {
    let mut events = Vec::new();
    for i in 0..10u32 {
        let mut e = sample_event(i, T0 + i64::from(i) * 60 * MINUTE);
        e.action = ["CREATE", "UPDATE", "DELETE", "LOGIN", "PUBLISH"][i as usize % 5].into();
        e.table_name = Some(if i % 2 == 0 { "invoices" } else { "customers" }.into());
        e.ip = Some(
            match i {
                0..=3 => format!("10.1.0.{i}"),
                4..=6 => format!("192.168.7.{i}"),
                _ => format!("2001:db8:{i}::1"),
            }
            .parse()
            .unwrap(),
        );
        e.initiator.id = Some(format!("u-{}", i % 3));
        e.initiator.name = Some(format!("Person {}", i % 3));
        e.description = match i {
            2 => "Disk full on volume A".into(),
            5 => "Full disk report sent".into(),
            8 => "Invoice paid by card".into(),
            _ => format!("Routine change {i}"),
        };
        events.push(e);
    }
    store::insert_events(&app.db, &events, None).await.unwrap()
}

/// ids picked by index, newest (highest time) first.
fn pick(all: &[i64], idx: &[usize]) -> Vec<i64> {
    let mut v: Vec<i64> = idx.iter().map(|&i| all[i]).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

#[tokio::test]
async fn each_filter_alone() {
    let app = TestApp::new().await;
    let all = varied(&app).await;
    let user = EventQuery {
        user: Some(InitiatorKey::parse("user:u-1").unwrap()),
        ..q()
    };
    assert_eq!(ids(&app, &user).await, pick(&all, &[1, 4, 7]));
    let actions = EventQuery {
        actions: vec!["CREATE".into(), "LOGIN".into()],
        ..q()
    };
    assert_eq!(ids(&app, &actions).await, pick(&all, &[0, 3, 5, 8]));
    let table = EventQuery {
        table: Some("customers".into()),
        ..q()
    };
    assert_eq!(ids(&app, &table).await, pick(&all, &[1, 3, 5, 7, 9]));
    let one_ip = EventQuery {
        ip: Some("192.168.7.5".into()),
        ..q()
    };
    assert_eq!(ids(&app, &one_ip).await, pick(&all, &[5]));
    let from = EventQuery {
        from: Some(T0 + 7 * 60 * MINUTE),
        ..q()
    };
    assert_eq!(ids(&app, &from).await, pick(&all, &[7, 8, 9]));
    let to = EventQuery {
        to: Some(T0 + 60 * MINUTE),
        ..q()
    };
    assert_eq!(
        ids(&app, &to).await,
        pick(&all, &[0, 1]),
        "bounds are inclusive"
    );
    let word = EventQuery {
        q: Some("INVOICE".into()),
        ..q()
    };
    assert_eq!(ids(&app, &word).await, pick(&all, &[8]), "case-insensitive");
}

#[tokio::test]
async fn cidr_ranges_for_ipv4_and_ipv6() {
    let app = TestApp::new().await;
    let all = varied(&app).await;
    let range = |ip: &str| EventQuery {
        ip: Some(ip.into()),
        ..q()
    };
    assert_eq!(
        ids(&app, &range("10.0.0.0/8")).await,
        pick(&all, &[0, 1, 2, 3])
    );
    assert_eq!(
        ids(&app, &range("192.168.0.0/16")).await,
        pick(&all, &[4, 5, 6])
    );
    assert_eq!(
        ids(&app, &range("2001:db8::/32")).await,
        pick(&all, &[7, 8, 9])
    );
    assert_eq!(ids(&app, &range("2001:db8:8::/48")).await, pick(&all, &[8]));
    assert_eq!(
        ids(&app, &range("0.0.0.0/0")).await.len(),
        7,
        "all IPv4, no IPv6"
    );
    assert!(ids(&app, &range("172.16.0.0/12")).await.is_empty());
}

#[tokio::test]
async fn phrases_match_words_in_order() {
    let app = TestApp::new().await;
    let all = varied(&app).await;
    let search = |text: &str| EventQuery {
        q: Some(text.into()),
        ..q()
    };
    assert_eq!(ids(&app, &search("\"disk full\"")).await, pick(&all, &[2]));
    assert_eq!(ids(&app, &search("disk full")).await, pick(&all, &[2, 5]));
    assert_eq!(
        ids(&app, &search("\"full disk\" report")).await,
        pick(&all, &[5])
    );
    // Search reaches user names, tables, keys and IPs too.
    assert_eq!(
        ids(&app, &search("\"Person 2\"")).await,
        pick(&all, &[2, 5, 8])
    );
    assert_eq!(ids(&app, &search("192.168.7.6")).await, pick(&all, &[6]));
    // FTS syntax in user text is only text.
    assert!(ids(&app, &search("NEAR(disk full) OR *")).await.is_empty());
}

#[tokio::test]
async fn filters_combine() {
    let app = TestApp::new().await;
    let all = varied(&app).await;
    let combined = EventQuery {
        user: Some(InitiatorKey::parse("user:u-2").unwrap()),
        table: Some("invoices".into()),
        from: Some(T0 + 3 * 60 * MINUTE),
        ..q()
    };
    assert_eq!(ids(&app, &combined).await, pick(&all, &[8]));
    let keyword_and_more = EventQuery {
        q: Some("disk".into()),
        ip: Some("10.0.0.0/8".into()),
        actions: vec!["DELETE".into()],
        ..q()
    };
    assert_eq!(ids(&app, &keyword_and_more).await, pick(&all, &[2]));
    let nothing = EventQuery {
        q: Some("disk".into()),
        table: Some("customers".into()),
        to: Some(T0),
        ..q()
    };
    assert!(ids(&app, &nothing).await.is_empty());
}

#[tokio::test]
async fn sorting_uses_the_whitelist_and_breaks_ties_by_time() {
    let app = TestApp::new().await;
    varied(&app).await;
    let rows = |column, descending| {
        let query = EventQuery {
            sort: column,
            descending,
            ..q()
        };
        let app = &app;
        async move { store::list_events(&app.db, &query).await.unwrap().rows }
    };
    let by_user: Vec<EventRow> = rows(SortColumn::User, false).await;
    let names: Vec<_> = by_user
        .iter()
        .map(|r| r.initiator.name.clone().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // Within one name, time ascending too.
    for w in by_user.windows(2) {
        if w[0].initiator.name == w[1].initiator.name {
            assert!(w[0].occurred_at < w[1].occurred_at);
        }
    }
    let by_action = rows(SortColumn::Action, true).await;
    assert_eq!(by_action[0].action, "UPDATE");
    assert_eq!(by_action.last().unwrap().action, "CREATE");
    let by_ip = rows(SortColumn::Ip, false).await;
    let first_ips: Vec<_> = by_ip
        .iter()
        .map(|r| r.ip.clone().unwrap())
        .take(2)
        .collect();
    assert_eq!(
        first_ips,
        ["10.1.0.0", "10.1.0.1"],
        "IPs sort numerically, v4 before v6"
    );
    assert!(by_ip
        .last()
        .unwrap()
        .ip
        .as_deref()
        .unwrap()
        .starts_with("2001:db8:9"));
    let by_table = rows(SortColumn::Table, false).await;
    assert_eq!(by_table[0].table_name.as_deref(), Some("customers"));
    // An unknown column never reaches SQL.
    let bad =
        EventQuery::from_params(|k| (k == "sort").then_some("description; DROP TABLE events"));
    assert!(matches!(bad, Err(AppError::BadRequest(m)) if m.starts_with("sort:")));
}

/// Pages through a whole result with cursors, as the pager does.
async fn walk(app: &TestApp, base: &EventQuery) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut query = base.clone();
    loop {
        let page = store::list_events(&app.db, &query).await.unwrap();
        seen.extend(page.rows.iter().map(|r| r.id));
        if !page.has_next {
            return seen;
        }
        let last = page.rows.last().unwrap().id;
        let next = query.page + 1;
        query = query.at(next, Some(Cursor::After(last)));
    }
}

#[tokio::test]
async fn keyset_pages_hold_when_timestamps_are_equal() {
    let app = TestApp::new().await;
    // 23 events in the same microsecond, among others before and after.
    let mut events: Vec<NewEvent> = (0..23).map(|i| sample_event(i, T0)).collect();
    events.extend((23..30).map(|i| sample_event(i, T0 - i64::from(i))));
    events.extend((30..35).map(|i| sample_event(i, T0 + i64::from(i))));
    let mut all = store::insert_events(&app.db, &events, None).await.unwrap();
    // Expected: newest first, equal times by id descending.
    let times: std::collections::HashMap<i64, i64> = all
        .iter()
        .zip(&events)
        .map(|(id, e)| (*id, e.occurred_at))
        .collect();
    all.sort_by_key(|id| std::cmp::Reverse((times[id], *id)));
    for per_page in [10, 25] {
        let base = EventQuery {
            per_page,
            ..EventQuery::default()
        };
        assert_eq!(walk(&app, &base).await, all, "per page {per_page}");
    }
    // Backwards from page 3 gives page 2 exactly.
    let base = EventQuery {
        per_page: 10,
        ..EventQuery::default()
    };
    let page3_first = all[20];
    let back = store::list_events(
        &app.db,
        &base.clone().at(2, Some(Cursor::Before(page3_first))),
    )
    .await
    .unwrap();
    assert_eq!(
        back.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        all[10..20]
    );
    assert!(back.has_prev && back.has_next);
    // The end is the last ten, in display order.
    let end = store::list_events(&app.db, &base.clone().at(4, Some(Cursor::End)))
        .await
        .unwrap();
    assert_eq!(end.rows.iter().map(|r| r.id).collect::<Vec<_>>(), all[25..]);
    assert!(!end.has_next && end.has_prev);
    // Ascending, and sorted by another column, the walk still sees each row once.
    let asc = EventQuery {
        per_page: 10,
        descending: false,
        ..EventQuery::default()
    };
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(walk(&app, &asc).await, reversed);
    let by_user = EventQuery {
        per_page: 10,
        sort: SortColumn::User,
        descending: false,
        ..EventQuery::default()
    };
    let mut seen = walk(&app, &by_user).await;
    assert_eq!(seen.len(), all.len());
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), all.len());
    // A cursor naming a missing event is a clear error.
    let gone = store::list_events(&app.db, &base.at(2, Some(Cursor::After(999_999)))).await;
    assert!(matches!(gone, Err(AppError::BadRequest(m)) if m.contains("no longer in the log")));
}

#[tokio::test]
async fn keyword_search_finds_the_newest_even_when_events_arrive_late() {
    let app = TestApp::new().await;
    // 9,000 events over several search windows, a third of them matching;
    // their times are shuffled against insertion order (late deliveries,
    // backfills).
    let n = 9_000u32;
    let events: Vec<NewEvent> = (0..n)
        .map(|i| {
            let scrambled = i64::from((i * 7_919) % n);
            let mut e = sample_event(i, T0 + scrambled * MINUTE);
            e.description = if i % 3 == 0 {
                format!("Backup job {i} finished")
            } else {
                format!("Routine check {i}")
            };
            if i % 2 == 0 {
                e.table_name = Some("backups".into());
            }
            e
        })
        .collect();
    let ids = store::insert_events(&app.db, &events, None).await.unwrap();
    let expect = |from: i64| -> Vec<i64> {
        let mut v: Vec<(i64, i64)> = ids
            .iter()
            .zip(&events)
            .filter(|(_, e)| {
                e.table_name.as_deref() == Some("backups")
                    && e.description.starts_with("Backup")
                    && e.occurred_at >= from
            })
            .map(|(id, e)| (e.occurred_at, *id))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, id)| id).collect()
    };
    let query = EventQuery {
        q: Some("backup finished".into()),
        table: Some("backups".into()),
        per_page: 50,
        ..EventQuery::default()
    };
    let all = expect(0);
    assert_eq!(all.len(), 1_500);
    let page = store::list_events(&app.db, &query).await.unwrap();
    assert_eq!(
        page.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        all[..50]
    );
    // Walking every page with cursors returns every match once, in order.
    assert_eq!(walk(&app, &query).await, all);
    // With a start time too.
    let recent = EventQuery {
        from: Some(T0 + 6_000 * MINUTE),
        per_page: 250,
        ..query
    };
    assert_eq!(walk(&app, &recent).await, expect(T0 + 6_000 * MINUTE));
}

#[tokio::test]
async fn keyword_search_finds_the_oldest_even_when_events_arrive_late() {
    let app = TestApp::new().await;
    // 6,000 events, two in three of them matching, their times shuffled
    // against insertion order and each time held by three events, two of
    // them matches (ties broken by id); 250 of them from 10.0.0.0/24.
    let n = 6_000u32;
    let events: Vec<NewEvent> = (0..n)
        .map(|i| {
            let scrambled = i64::from((i * 7_919) % 2_000);
            let mut e = sample_event(i, T0 + scrambled * MINUTE);
            e.description = if i % 3 != 2 {
                format!("Backup job {i} finished")
            } else {
                format!("Routine check {i}")
            };
            e
        })
        .collect();
    let stored = store::insert_events(&app.db, &events, None).await.unwrap();
    let matching = |range: (i64, i64), cidr: bool| -> Vec<i64> {
        let mut v: Vec<(i64, i64)> = stored
            .iter()
            .zip(&events)
            .filter(|(_, e)| {
                e.description.starts_with("Backup")
                    && (range.0..=range.1).contains(&e.occurred_at)
                    && (!cidr || e.ip.is_some_and(|ip| ip.to_string().starts_with("10.0.0.")))
            })
            .map(|(id, e)| (e.occurred_at, *id))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    };
    let oldest_first = EventQuery {
        q: Some("backup finished".into()),
        descending: false,
        per_page: 50,
        ..EventQuery::default()
    };
    let newest_first = EventQuery {
        descending: true,
        ..oldest_first.clone()
    };
    let everything = (i64::MIN, i64::MAX);
    let all = matching(everything, false);
    assert_eq!(all.len(), 4_000);
    let page = store::list_events(&app.db, &oldest_first).await.unwrap();
    assert_eq!(
        page.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        all[..50]
    );
    // Forwards oldest first; from the last page back, newest first (the
    // last pages are read oldest first); and the other way round.
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(walk(&app, &oldest_first).await, all);
    assert_eq!(walk_back(&app, &newest_first).await, reversed);
    assert_eq!(walk_back(&app, &oldest_first).await, all);
    // Within a time range (its edges held by several events each), and
    // with a filter the full-text index does not hold.
    let range = (T0 + 700 * MINUTE, T0 + 1_300 * MINUTE);
    let ranged = EventQuery {
        from: Some(range.0),
        to: Some(range.1),
        per_page: 25,
        ..oldest_first.clone()
    };
    let in_range = matching(range, false);
    assert_eq!(in_range.len(), 1_202);
    assert_eq!(walk(&app, &ranged).await, in_range);
    let mut back = in_range.clone();
    back.reverse();
    let ranged_newest = EventQuery {
        descending: true,
        ..ranged.clone()
    };
    assert_eq!(walk_back(&app, &ranged_newest).await, back);
    let cidr = EventQuery {
        ip: Some("10.0.0.0/24".into()),
        ..ranged
    };
    let in_cidr = matching(range, true);
    assert!(
        !in_cidr.is_empty() && in_cidr.len() < 100,
        "{}",
        in_cidr.len()
    );
    assert_eq!(walk(&app, &cidr).await, in_cidr);
    // A range no event falls in.
    let empty = EventQuery {
        from: Some(T0 - 10 * MINUTE),
        to: Some(T0 - MINUTE),
        ..oldest_first
    };
    assert!(walk(&app, &empty).await.is_empty());
    // A user who never acted from the range: nothing, either way, counted
    // as 0; and from their own address, their one match.
    let user = |ip: &str| EventQuery {
        user: Some(InitiatorKey::parse("user:7").unwrap()),
        ip: Some(ip.into()),
        from: None,
        to: None,
        ..empty.clone()
    };
    for descending in [false, true] {
        let elsewhere = EventQuery {
            descending,
            ..user("10.0.5.0/24")
        };
        assert!(ids(&app, &elsewhere).await.is_empty());
        let count = store::count_matching(&app.db, &elsewhere).await.unwrap();
        assert!(count.exact && count.total == 0);
        let own = EventQuery {
            descending,
            ..user("10.0.0.0/24")
        };
        assert_eq!(ids(&app, &own).await, vec![stored[7]]);
        assert_eq!(store::count_matching(&app.db, &own).await.unwrap().total, 1);
    }
}

#[tokio::test]
async fn a_keyword_range_with_an_end_finds_late_arrivals_in_every_sort() {
    let app = TestApp::new().await;
    // 9,000 events a minute apart, inserted in time order, two in three of
    // them matching (more than are simply sorted); then late arrivals: some
    // in the range, some after its end, some before its start. A newest-first
    // read starts at the range's end and looks the late ones up on their own;
    // beyond a few hundred of them it reads from the newest match instead.
    // Either way every sort gives every match once, in order.
    let event = |i: u32, t: i64| {
        let mut e = sample_event(i, t);
        if i % 3 == 2 {
            e.description = format!("Routine check {i}");
        }
        e.action = ["UPDATE", "CREATE", "DELETE"][(i / 7) as usize % 3].into();
        e.table_name =
            Some(["orders", "payments", "users", "refunds"][(i / 5) as usize % 4].into());
        e.initiator.id = Some(format!("u{}", i % 40));
        e.initiator.name = Some(format!("Person {:02}", i % 40));
        e
    };
    let events: Vec<NewEvent> = (0..9_000u32)
        .map(|i| event(i, T0 + i64::from(i) * MINUTE))
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let (from, to) = (T0 + 3_000 * MINUTE, T0 + 6_000 * MINUTE);
    let late = |n: u32, base: u32, start: i64, step: i64| -> Vec<NewEvent> {
        (0..n)
            .map(|k| event(base + k, start + i64::from(k) * step))
            .collect()
    };
    let mut first = late(24, 9_000, from + 17 * MINUTE, 119 * MINUTE);
    first.extend(late(9, 9_100, to + MINUTE, 301 * MINUTE));
    first.extend(late(9, 9_200, from - 900 * MINUTE, 97 * MINUTE));
    // The range's own edges, arriving late.
    first.extend([event(9_300, from), event(9_301, to), event(9_303, to + 1)]);
    let second = late(400, 10_000, from + 3 * MINUTE, 7 * MINUTE + 13);
    for (phase, batch) in [first, second].into_iter().enumerate() {
        store::insert_events(&app.db, &batch, None).await.unwrap();
        let everything = every_row(&app).await;
        for column in [
            SortColumn::Date,
            SortColumn::Action,
            SortColumn::Table,
            SortColumn::User,
        ] {
            for descending in [true, false] {
                let mut expected: Vec<&EventRow> = everything
                    .iter()
                    .filter(|r| r.description.contains("invoice"))
                    .filter(|r| (from..=to).contains(&r.occurred_at))
                    .collect();
                expected.sort_by_key(|r| sort_key(r, column));
                if descending {
                    expected.reverse();
                }
                let expected: Vec<i64> = expected.iter().map(|r| r.id).collect();
                let query = EventQuery {
                    q: Some("invoice".into()),
                    from: Some(from),
                    to: Some(to),
                    sort: column,
                    descending,
                    per_page: 50,
                    ..EventQuery::default()
                };
                let what = format!("phase {phase}, {column:?}, descending {descending}");
                assert_pages_both_ways(&app, &query, &expected, &what).await;
                let count = store::count_matching(&app.db, &query).await.unwrap();
                assert!(count.exact, "{what}");
                assert_eq!(count.total as usize, expected.len(), "{what}");
            }
        }
    }
}

#[tokio::test]
async fn counts_are_exact_to_the_limit_then_estimated() {
    let app = TestApp::new().await;
    let n = COUNT_LIMIT as u32 + 6_000;
    let events: Vec<NewEvent> = (0..n)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i));
            e.action = if i % 4 == 0 { "DELETE" } else { "UPDATE" }.into();
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let count = |query: EventQuery| {
        let app = &app;
        async move { store::count_matching(&app.db, &query).await.unwrap() }
    };
    let deletes = count(EventQuery {
        actions: vec!["DELETE".into()],
        ..EventQuery::default()
    })
    .await;
    assert!(deletes.exact);
    assert_eq!(deletes.total, u64::from(n).div_ceil(4));
    // Without keyword or time range, any count is exact: the sum over the
    // filters' combinations.
    let all = count(EventQuery::default()).await;
    assert_eq!((all.total, all.exact), (u64::from(n), true));
    let truth = u64::from(n) * 3 / 4;
    let updates = count(EventQuery {
        actions: vec!["UPDATE".into()],
        ..EventQuery::default()
    })
    .await;
    assert_eq!((updates.total, updates.exact), (truth, true));
    // With a range, beyond the limit, it is estimated from the log.
    let updates = count(EventQuery {
        actions: vec!["UPDATE".into()],
        from: Some(T0),
        ..EventQuery::default()
    })
    .await;
    assert!(!updates.exact);
    assert!(
        updates.total > truth * 8 / 10 && updates.total < truth * 12 / 10,
        "{} vs {truth}",
        updates.total
    );
    // A time range narrows where the estimate samples.
    let recent = count(EventQuery {
        from: Some(T0 + 2_000),
        ..EventQuery::default()
    })
    .await;
    assert!(!recent.exact);
    let truth = u64::from(n) - 2_000;
    assert!(
        recent.total > truth * 8 / 10 && recent.total < truth * 12 / 10,
        "{} vs {truth}",
        recent.total
    );
    let keyword = count(EventQuery {
        q: Some("updated invoice".into()),
        ..EventQuery::default()
    })
    .await;
    assert!(!keyword.exact);
    assert!(keyword.total > 10_000);
    let none = count(EventQuery {
        q: Some("zanzibar".into()),
        ..EventQuery::default()
    })
    .await;
    assert_eq!((none.total, none.exact), (0, true));
}

#[tokio::test]
async fn filter_choices_come_from_the_log() {
    let app = TestApp::new().await;
    varied(&app).await;
    let mut system = sample_event(99, T0);
    system.initiator.kind = InitiatorKind::System;
    system.initiator.id = None;
    system.initiator.name = None;
    system.initiator.email = None;
    system.table_name = None;
    store::insert_events(&app.db, &[system], None)
        .await
        .unwrap();
    let options = store::filter_options(&app.db).await.unwrap();
    assert_eq!(
        options.actions,
        ["CREATE", "DELETE", "LOGIN", "PUBLISH", "UPDATE"]
    );
    assert_eq!(options.tables, ["customers", "invoices"]);
    let labels: Vec<_> = options
        .initiators
        .iter()
        .map(|i| i.label.as_str())
        .collect();
    assert_eq!(labels.len(), 4, "{labels:?}");
    assert!(labels.contains(&"System"));
    let person = options
        .initiators
        .iter()
        .find(|i| i.label.starts_with("Person 1"))
        .unwrap();
    assert_eq!(person.key, InitiatorKey::parse("user:u-1").unwrap());
    // The system's key finds its event.
    let sys = options
        .initiators
        .iter()
        .find(|i| i.label == "System")
        .unwrap();
    let query = EventQuery {
        user: Some(sys.key.clone()),
        ..q()
    };
    assert_eq!(ids(&app, &query).await.len(), 1);
    // Joined with a keyword, the filter is matched inside the full-text index.
    let with_keyword = EventQuery {
        q: Some("invoice".into()),
        ..query
    };
    assert_eq!(ids(&app, &with_keyword).await.len(), 1);
    let other = EventQuery {
        user: Some(person.key.clone()),
        ..with_keyword
    };
    assert!(
        ids(&app, &other).await.is_empty(),
        "Person 1 wrote no invoice text"
    );
}

#[tokio::test]
async fn details_carry_every_field_and_the_record_history() {
    let app = TestApp::new().await;
    let mut events: Vec<NewEvent> = (0..4)
        .map(|i| sample_event(i, T0 + i64::from(i) * MINUTE))
        .collect();
    for e in &mut events {
        e.primary_key = Some("INV-7".into());
        e.user_agent = Some("Mozilla/5.0 test".into());
        e.request_id = Some("req-1".into());
    }
    events[3].primary_key = Some("INV-8".into());
    let ids = store::insert_events(&app.db, &events, None).await.unwrap();
    let detail = store::event_detail(&app.db, ids[1]).await.unwrap();
    assert_eq!(detail.row.id, ids[1]);
    assert_eq!(detail.user_agent.as_deref(), Some("Mozilla/5.0 test"));
    assert_eq!(detail.request_id.as_deref(), Some("req-1"));
    assert_eq!(detail.initiator_role.as_deref(), Some("editor"));
    let history: Vec<i64> = detail.history.iter().map(|r| r.id).collect();
    assert_eq!(
        history,
        [ids[2], ids[1], ids[0]],
        "same record, newest first"
    );
    assert!(matches!(
        store::event_detail(&app.db, 424_242).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn broad_unordered_filters_walk_the_time_order_and_stay_correct() {
    let app = TestApp::new().await;
    // More matches than the small-set limit, times shuffled against ids.
    let n = 6_000u32;
    let events: Vec<NewEvent> = (0..n)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from((i * 7_919) % n) * MINUTE);
            e.ip = Some(
                format!("10.{}.{}.{}", i % 7, i % 250, i % 200 + 1)
                    .parse()
                    .unwrap(),
            );
            e.action = ["CREATE", "UPDATE", "DELETE"][i as usize % 3].into();
            e
        })
        .collect();
    let ids = store::insert_events(&app.db, &events, None).await.unwrap();
    let expect = |keep: &dyn Fn(&NewEvent) -> bool| -> Vec<i64> {
        let mut v: Vec<(i64, i64)> = ids
            .iter()
            .zip(&events)
            .filter(|(_, e)| keep(e))
            .map(|(id, e)| (e.occurred_at, *id))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, id)| id).collect()
    };
    let cidr = EventQuery {
        ip: Some("10.0.0.0/14".into()),
        per_page: 250,
        ..EventQuery::default()
    };
    let in_range =
        |e: &NewEvent| matches!(e.ip, Some(std::net::IpAddr::V4(v4)) if v4.octets()[1] < 4);
    assert_eq!(walk(&app, &cidr).await, expect(&in_range));
    let two_actions = EventQuery {
        actions: vec!["CREATE".into(), "DELETE".into()],
        per_page: 250,
        ..EventQuery::default()
    };
    let wanted = expect(&|e: &NewEvent| e.action != "UPDATE");
    assert_eq!(walk(&app, &two_actions).await, wanted);
    // Backwards and the last page take the same road.
    let end = store::list_events(&app.db, &two_actions.clone().at(9, Some(Cursor::End)))
        .await
        .unwrap();
    assert_eq!(
        end.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        wanted[wanted.len() - 250..]
    );
}

/// Which rows a filter should keep.
type RowTest = dyn Fn(&EventRow) -> bool;

/// The sort key of a row, as the Activity Log orders it: the column's value
/// (NULL below every value; IPs as their 16-byte key), then time, then id.
fn sort_key(row: &EventRow, column: SortColumn) -> (Option<Vec<u8>>, i64, i64) {
    let value = match column {
        SortColumn::Date => Some(Vec::new()),
        SortColumn::User => row.initiator.name.clone().map(String::into_bytes),
        SortColumn::Action => Some(row.action.clone().into_bytes()),
        SortColumn::Table => row.table_name.clone().map(String::into_bytes),
        SortColumn::Ip => row
            .ip
            .as_deref()
            .map(|ip| store::ip_key(ip.parse().unwrap()).to_vec()),
    };
    (value, row.occurred_at, row.id)
}

/// Pages backwards from the end with `before` cursors, as the pager's
/// Previous does from the last page; returns the ids in display order.
async fn walk_back(app: &TestApp, base: &EventQuery) -> Vec<i64> {
    let mut page = store::list_events(&app.db, &base.clone().at(99, Some(Cursor::End)))
        .await
        .unwrap();
    let mut seen: Vec<i64> = page.rows.iter().map(|r| r.id).collect();
    while page.has_prev {
        let first = page.rows.first().unwrap().id;
        page = store::list_events(&app.db, &base.clone().at(2, Some(Cursor::Before(first))))
            .await
            .unwrap();
        let mut ids: Vec<i64> = page.rows.iter().map(|r| r.id).collect();
        ids.extend(seen);
        seen = ids;
    }
    seen
}

/// Every event's row, newest first, read page by page.
async fn every_row(app: &TestApp) -> Vec<EventRow> {
    let mut everything = Vec::new();
    let mut query = EventQuery {
        per_page: 250,
        ..q()
    };
    loop {
        let page = store::list_events(&app.db, &query).await.unwrap();
        everything.extend(page.rows.iter().cloned());
        if !page.has_next {
            return everything;
        }
        let last = page.rows.last().unwrap().id;
        query = query.clone().at(query.page + 1, Some(Cursor::After(last)));
    }
}

/// Paging forwards (`after`) and backwards from the end (`before`) both
/// give `expected`.
async fn assert_pages_both_ways(app: &TestApp, base: &EventQuery, expected: &[i64], what: &str) {
    assert_eq!(walk(app, base).await, expected, "forwards, {what}");
    assert_eq!(walk_back(app, base).await, expected, "backwards, {what}");
}

#[tokio::test]
async fn every_sort_column_pages_both_ways_across_equal_values_and_nulls() {
    // 64 events: few distinct values per column (long runs of equal
    // values), NULLs in the nullable ones, and many equal times.
    let app = TestApp::new().await;
    let events: Vec<NewEvent> = (0..64u32)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i % 5) * MINUTE);
            e.initiator.name = match i % 4 {
                0 => None,
                1 | 2 => Some("Ann Archer".into()),
                _ => Some("Bea Brook".into()),
            };
            e.initiator.id = e.initiator.name.as_ref().map(|n| n[..3].to_lowercase());
            if e.initiator.name.is_none() {
                e.initiator.kind = InitiatorKind::System;
                e.initiator.id = None;
                e.initiator.email = None;
            }
            e.action = ["UPDATE", "CREATE", "UPDATE"][i as usize % 3].into();
            e.table_name = (i % 7 != 0).then(|| ["orders", "invoices"][i as usize % 2].into());
            e.ip = match i % 6 {
                0 => None,
                1 | 2 => Some("10.0.0.9".parse().unwrap()),
                3 => Some("2001:db8::1".parse().unwrap()),
                _ => Some("9.255.0.1".parse().unwrap()),
            };
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let everything = store::list_events(&app.db, &q()).await.unwrap().rows;
    assert_eq!(everything.len(), 64);
    for column in SortColumn::ALL {
        for descending in [false, true] {
            let mut expected = everything.clone();
            expected.sort_by_key(|r| sort_key(r, column));
            if descending {
                expected.reverse();
            }
            let expected: Vec<i64> = expected.iter().map(|r| r.id).collect();
            let what = format!(
                "{} {}",
                column.as_str(),
                if descending { "desc" } else { "asc" }
            );
            let base = EventQuery {
                per_page: 10,
                sort: column,
                descending,
                ..EventQuery::default()
            };
            assert_pages_both_ways(&app, &base, &expected, &what).await;
            // Pages reached by number (an offset) are the same slices.
            for page in [1u32, 4, 7] {
                let got = ids(&app, &base.clone().at(page, None)).await;
                let from = (page as usize - 1) * 10;
                let want = &expected[from.min(64)..(from + 10).min(64)];
                assert_eq!(got, want, "page {page} by number, {what}");
            }
            // With filters, the same order restricted to their matches,
            // either way: an action, a CIDR range, the System initiator
            // (no name) with a table, a name with a time range.
            let filters: [(EventQuery, &RowTest); 4] = [
                (
                    EventQuery {
                        actions: vec!["UPDATE".into()],
                        ..base.clone()
                    },
                    &|r| r.action == "UPDATE",
                ),
                (
                    EventQuery {
                        ip: Some("10.0.0.0/8".into()),
                        ..base.clone()
                    },
                    &|r| r.ip.as_deref() == Some("10.0.0.9"),
                ),
                (
                    EventQuery {
                        user: Some(InitiatorKey {
                            kind: "system".into(),
                            id: None,
                        }),
                        table: Some("orders".into()),
                        ..base.clone()
                    },
                    &|r| r.initiator.name.is_none() && r.table_name.as_deref() == Some("orders"),
                ),
                (
                    EventQuery {
                        user: Some(InitiatorKey::parse("user:ann").unwrap()),
                        from: Some(T0 + MINUTE),
                        to: Some(T0 + 3 * MINUTE),
                        ..base.clone()
                    },
                    &|r| {
                        r.initiator.name.as_deref() == Some("Ann Archer")
                            && (T0 + MINUTE..=T0 + 3 * MINUTE).contains(&r.occurred_at)
                    },
                ),
            ];
            for (n, (filtered, keep)) in filters.iter().enumerate() {
                let matching: Vec<i64> = expected
                    .iter()
                    .copied()
                    .filter(|id| everything.iter().any(|r| r.id == *id && keep(r)))
                    .collect();
                assert!(!matching.is_empty(), "filter {n} matches some");
                assert_pages_both_ways(&app, filtered, &matching, &format!("filter {n}, {what}"))
                    .await;
            }
        }
    }
}

#[tokio::test]
async fn a_sort_the_filter_correlates_with_pages_right_on_a_large_log() {
    // 17,000 events, so that the filters match more than the few thousand
    // under which a page simply sorts the matches: one user (3 in 8 events)
    // always has the same name and address, both last in order, so walking
    // the name or IP index upwards passes over 10,000 other rows before it
    // reaches that user's, and the page reads the user's own index instead.
    // Every way must give the same order.
    let app = TestApp::new().await;
    let events: Vec<NewEvent> = (0..17_000u32)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i % 97) * MINUTE);
            if i % 8 < 3 {
                e.initiator.id = Some("zed".into());
                e.initiator.name = Some("Zed Zimmer".into());
                e.ip = Some("250.1.1.1".parse().unwrap());
            } else {
                e.initiator.id = Some(format!("u{}", i % 40));
                e.initiator.name = Some(format!("Person {:02}", i % 40));
            }
            e.action = ["UPDATE", "CREATE"][i as usize % 2].into();
            if i % 3 == 0 {
                e.description = format!("Closed ticket {i}");
            }
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let everything = every_row(&app).await;
    assert_eq!(everything.len(), 17_000);
    let zed = InitiatorKey {
        kind: "user".into(),
        id: Some("zed".into()),
    };
    // A keyword that matches two events in three (more than are simply
    // sorted), alone or with the user.
    let cases = [
        (vec![], None, true),
        (vec!["CREATE".to_string()], None, true),
        (vec![], Some("invoice"), true),
        (vec!["CREATE".to_string()], Some("invoice"), false),
    ];
    for column in [
        SortColumn::User,
        SortColumn::Ip,
        SortColumn::Table,
        SortColumn::Action,
    ] {
        for descending in [false, true] {
            for (actions, keyword, only_zed) in cases.clone() {
                let mut expected: Vec<&EventRow> = everything
                    .iter()
                    .filter(|r| !only_zed || r.initiator.id.as_deref() == Some("zed"))
                    .filter(|r| actions.is_empty() || actions.contains(&r.action))
                    .filter(|r| keyword.is_none_or(|k| r.description.contains(k)))
                    .collect();
                expected.sort_by_key(|r| sort_key(r, column));
                if descending {
                    expected.reverse();
                }
                let expected: Vec<i64> = expected.iter().map(|r| r.id).collect();
                let base = EventQuery {
                    per_page: 250,
                    sort: column,
                    descending,
                    user: only_zed.then(|| zed.clone()),
                    actions: actions.clone(),
                    q: keyword.map(str::to_string),
                    ..EventQuery::default()
                };
                let what = format!(
                    "{} desc={descending} {actions:?} {keyword:?} zed={only_zed}",
                    column.as_str()
                );
                assert_eq!(walk(&app, &base).await, expected, "{what}");
                let end = store::list_events(&app.db, &base.clone().at(9, Some(Cursor::End)))
                    .await
                    .unwrap();
                let tail: Vec<i64> = end.rows.iter().map(|r| r.id).collect();
                assert_eq!(tail, expected[expected.len() - tail.len()..], "end, {what}");
            }
        }
    }
}

#[tokio::test]
async fn a_users_events_sorted_by_ip_go_address_by_address_through_shared_networks() {
    // 3,000 events from addresses of one IPv4 /16 and one IPv6 /32 that many
    // people share. Zed acts from three addresses spread across the /16 (one
    // of them shared with others), one IPv6 address, and without an IP; the
    // page reads Zed's own addresses one by one. Every page, either way,
    // with a CIDR range that cuts the /16, an action or a keyword, is in the
    // reference order.
    let app = TestApp::new().await;
    let zed_ips = ["10.1.0.5", "10.1.130.7", "10.1.200.9", "2001:db8::7"];
    let events: Vec<NewEvent> = (0..3_000u32)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i % 89) * MINUTE);
            if i % 5 == 0 {
                e.initiator.id = Some("zed".into());
                e.initiator.name = Some("Zed Zimmer".into());
                e.ip = zed_ips
                    .get((i as usize / 5) % 5)
                    .map(|ip| ip.parse().unwrap());
            } else {
                e.initiator.id = Some(format!("u{}", i % 30));
                e.initiator.name = Some(format!("Person {:02}", i % 30));
                let ip = match i % 11 {
                    0 => "10.1.130.7".to_string(),
                    1 | 2 => format!("2001:db8::{:x}", i % 50 + 1),
                    _ => format!("10.1.{}.{}", i % 256, i % 200 + 1),
                };
                e.ip = Some(ip.parse().unwrap());
            }
            e.action = ["UPDATE", "CREATE", "DELETE"][i as usize % 3].into();
            if i % 4 == 0 {
                e.description = format!("Closed invoice {i}");
            }
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    assert_eq!(store::combo_differences(&app.db).await.unwrap(), 0);
    let everything = every_row(&app).await;
    assert_eq!(everything.len(), 3_000);
    let zed = InitiatorKey::parse("user:zed").unwrap();
    let in_upper_half = |r: &EventRow| {
        r.ip.as_deref()
            .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
            .is_some_and(|ip| ip.octets()[..2] == [10, 1] && ip.octets()[2] >= 128)
    };
    let cases: [(&str, EventQuery, &RowTest); 4] = [
        ("user", EventQuery::default(), &|_| true),
        (
            "user + 10.1.128.0/17",
            EventQuery {
                ip: Some("10.1.128.0/17".into()),
                ..EventQuery::default()
            },
            &in_upper_half,
        ),
        (
            "user + DELETE",
            EventQuery {
                actions: vec!["DELETE".into()],
                ..EventQuery::default()
            },
            &|r| r.action == "DELETE",
        ),
        (
            "user + keyword",
            EventQuery {
                q: Some("invoice".into()),
                ..EventQuery::default()
            },
            &|r| r.description.contains("invoice"),
        ),
    ];
    for descending in [false, true] {
        for (what, filters, keep) in &cases {
            let mut expected: Vec<&EventRow> = everything
                .iter()
                .filter(|r| r.initiator.id.as_deref() == Some("zed") && keep(r))
                .collect();
            expected.sort_by_key(|r| sort_key(r, SortColumn::Ip));
            if descending {
                expected.reverse();
            }
            let expected: Vec<i64> = expected.iter().map(|r| r.id).collect();
            assert!(expected.len() > 20, "{what} matches enough to page");
            let base = EventQuery {
                per_page: 10,
                sort: SortColumn::Ip,
                descending,
                user: Some(zed.clone()),
                ..filters.clone()
            };
            let what = format!("{what}, desc={descending}");
            assert_pages_both_ways(&app, &base, &expected, &what).await;
            for page in [2u32, 5] {
                let from = (page as usize - 1) * 10;
                assert_eq!(
                    ids(&app, &base.clone().at(page, None)).await,
                    expected[from.min(expected.len())..(from + 10).min(expected.len())],
                    "page {page} by number, {what}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_count_with_a_range_narrower_than_a_network_is_exact_beyond_the_count_limit() {
    // 24,000 events over a few addresses of 10.1.0.0/16 and 10.2.0.0/16:
    // counts of ranges that are not whole networks (a /24, a /30, one
    // address), alone or with a user, an action or a table, are exact even
    // past the limit under which the log itself is counted, and stay exact
    // after a deletion.
    let app = TestApp::new().await;
    let events: Vec<NewEvent> = (0..24_000u32)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i) * 1_000);
            e.initiator.id = Some(format!("u{}", i % 3));
            e.initiator.name = Some(format!("Person {}", i % 3));
            e.action = ["UPDATE", "CREATE", "DELETE", "LOGIN"][i as usize % 4].into();
            e.table_name = (i % 5 != 0).then(|| ["orders", "invoices"][i as usize % 2].into());
            let ip = match i % 7 {
                0 => "10.2.0.1".to_string(),
                1 => "10.1.7.200".to_string(),
                _ => format!("10.1.130.{}", i % 6 + 1),
            };
            e.ip = Some(ip.parse().unwrap());
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let cases: [(&str, EventQuery); 6] = [
        (
            "a /24",
            EventQuery {
                ip: Some("10.1.130.0/24".into()),
                ..q()
            },
        ),
        (
            "a /30",
            EventQuery {
                ip: Some("10.1.130.0/30".into()),
                ..q()
            },
        ),
        (
            "one address",
            EventQuery {
                ip: Some("10.1.130.5".into()),
                ..q()
            },
        ),
        (
            "a /17 and a user",
            EventQuery {
                ip: Some("10.1.128.0/17".into()),
                user: Some(InitiatorKey::parse("user:u1").unwrap()),
                ..q()
            },
        ),
        (
            "a /24 and two actions",
            EventQuery {
                ip: Some("10.1.130.0/24".into()),
                actions: vec!["UPDATE".into(), "LOGIN".into()],
                ..q()
            },
        ),
        (
            "a /20 and a table",
            EventQuery {
                ip: Some("10.1.128.0/20".into()),
                table: Some("orders".into()),
                ..q()
            },
        ),
    ];
    let check = |left: &[NewEvent]| {
        let left = left.to_vec();
        let cases = cases.clone();
        let app = &app;
        async move {
            for (what, query) in &cases {
                let rows = walk(
                    app,
                    &EventQuery {
                        per_page: 250,
                        ..query.clone()
                    },
                )
                .await;
                let count = store::count_matching(&app.db, query).await.unwrap();
                assert!(count.exact, "{what}: exact");
                assert_eq!(count.total, rows.len() as u64, "{what}: the rows");
                if *what == "a /24" {
                    let truth = left
                        .iter()
                        .filter(|e| e.ip.unwrap().to_string().starts_with("10.1.130."))
                        .count();
                    assert_eq!(count.total, truth as u64, "{what}: the events");
                    assert!(truth > COUNT_LIMIT as usize, "past the count limit");
                }
            }
        }
    };
    check(&events).await;
    // Delete every event of user u2 from 10.1.130.3 (a part of the range).
    let doomed = walk(
        &app,
        &EventQuery {
            per_page: 250,
            ip: Some("10.1.130.3".into()),
            user: Some(InitiatorKey::parse("user:u2").unwrap()),
            ..q()
        },
    )
    .await;
    assert!(!doomed.is_empty());
    let up_to = store::max_event_id(&app.db).await.unwrap();
    let mut record = sample_event(999, T0);
    record.action = "DELETE".into();
    record.ip = None;
    store::delete_selection(
        &app.db,
        &auditdeck::bulk::Selection::Ids(doomed.clone()),
        up_to,
        doomed.len() as u64,
        record,
    )
    .await
    .unwrap();
    assert_eq!(store::combo_differences(&app.db).await.unwrap(), 0);
    let left: Vec<NewEvent> = events
        .iter()
        .filter(|e| {
            !(e.ip.unwrap().to_string() == "10.1.130.3" && e.initiator.id.as_deref() == Some("u2"))
        })
        .cloned()
        .collect();
    assert_eq!(left.len() + doomed.len(), events.len());
    check(&left).await;
}

#[tokio::test]
async fn a_keyword_with_an_ip_range_finds_the_same_events_however_many_people_used_the_range() {
    // The search names the initiators who acted from the range to the
    // full-text index: three people, nobody, or more than it names (80).
    let app = TestApp::new().await;
    let events: Vec<NewEvent> = (0..4_000u32)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i) * 1_000);
            let (who, ip) = match i % 4 {
                0 | 1 => (i % 3, format!("10.1.130.{}", i % 3 + 1)),
                2 => (100 + i % 80, format!("10.3.{}.1", i % 80)),
                _ => (200 + i % 5, "192.168.1.1".to_string()),
            };
            e.initiator.id = Some(format!("p{who}"));
            e.initiator.name = Some(format!("Person {who}"));
            e.ip = Some(ip.parse().unwrap());
            e.action = ["UPDATE", "CREATE"][i as usize % 2].into();
            e.description = if i % 3 == 0 {
                format!("Paid invoice {i}")
            } else {
                format!("Opened order {i}")
            };
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    for (cidr, prefix) in [
        ("10.1.130.0/24", "10.1.130."),
        ("10.9.0.0/16", "10.9."),
        ("10.3.0.0/16", "10.3."),
    ] {
        for actions in [vec![], vec!["CREATE".to_string()]] {
            let keep = |e: &NewEvent| {
                e.ip.unwrap().to_string().starts_with(prefix)
                    && e.description.contains("invoice")
                    && (actions.is_empty() || actions.contains(&e.action))
            };
            let truth = events.iter().filter(|e| keep(e)).count();
            for sort in [SortColumn::Date, SortColumn::User, SortColumn::Action] {
                let query = EventQuery {
                    per_page: 100,
                    ip: Some(cidr.into()),
                    q: Some("invoice".into()),
                    actions: actions.clone(),
                    sort,
                    ..q()
                };
                let what = format!("{cidr} {actions:?} by {}", sort.as_str());
                assert_eq!(walk(&app, &query).await.len(), truth, "{what}: rows");
                let count = store::count_matching(&app.db, &query).await.unwrap();
                assert_eq!(count.total, truth as u64, "{what}: count");
            }
        }
    }
}

#[tokio::test]
async fn count_estimates_stay_within_their_stated_margin_on_skewed_data() {
    // 40,000 events. One user has 90% of them, in long runs (every tenth
    // block of 500 is other people's), so windows of neighbouring ids see
    // very different shares; one table has 0.1%; DELETE is 30%, spread.
    let app = TestApp::new().await;
    let events: Vec<NewEvent> = (0..40_000u32)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i) * 1_000);
            if (i / 500) % 10 != 3 {
                e.initiator.id = Some("heavy".into());
                e.initiator.name = Some("Heavy User".into());
            }
            if i % 1_000 == 7 {
                e.table_name = Some("rare".into());
            }
            if (i * 7) % 10 < 3 {
                e.action = "DELETE".into();
            }
            e
        })
        .collect();
    for chunk in events.chunks(5_000) {
        store::insert_events(&app.db, chunk, None).await.unwrap();
    }
    let heavy = Some(InitiatorKey {
        kind: "user".into(),
        id: Some("heavy".into()),
    });
    let truth = |f: &dyn Fn(&NewEvent) -> bool| events.iter().filter(|e| f(e)).count() as f64;
    let cases: Vec<(&str, EventQuery, f64)> = vec![
        (
            "the heavy user",
            EventQuery {
                user: heavy.clone(),
                ..q()
            },
            truth(&|e| e.initiator.id.as_deref() == Some("heavy")),
        ),
        (
            "the heavy user's deletions",
            EventQuery {
                user: heavy.clone(),
                actions: vec!["DELETE".into()],
                ..q()
            },
            truth(&|e| e.initiator.id.as_deref() == Some("heavy") && e.action == "DELETE"),
        ),
        (
            "updates",
            EventQuery {
                actions: vec!["UPDATE".into()],
                ..q()
            },
            truth(&|e| e.action == "UPDATE"),
        ),
    ];
    for (what, query, truth) in cases {
        // Without a time range, the filters' combinations count it exactly.
        let all_time = store::count_matching(&app.db, &query).await.unwrap();
        assert_eq!(
            (all_time.total as f64, all_time.exact),
            (truth, true),
            "{what}"
        );
        // With one, it is estimated from the log.
        let query = EventQuery {
            from: Some(T0),
            ..query
        };
        let count = store::count_matching(&app.db, &query).await.unwrap();
        assert!(!count.exact, "{what}: {truth} is beyond the exact limit");
        let error = (count.total as f64 - truth).abs() / truth * 100.0;
        assert!(
            error <= f64::from(count.margin),
            "{what}: ≈ {} (± {}%) for {truth}: off by {error:.1}%",
            count.total,
            count.margin
        );
        assert!(count.margin <= 25, "{what}: a margin of {}%", count.margin);
    }
    // A small share is counted exactly.
    let rare = store::count_matching(
        &app.db,
        &EventQuery {
            table: Some("rare".into()),
            ..q()
        },
    )
    .await
    .unwrap();
    assert_eq!((rare.total, rare.exact), (40, true));
}

#[tokio::test]
async fn a_rare_ip_range_with_other_filters_pages_in_time_order_and_counts_exactly() {
    // 3,000 events, 158 of them from addresses of 10.9.0.0/24 and the rest
    // from 10.8.x.x; times shuffled against ids, with many equal ones. A
    // range this rare is read through the IP index and sorted; its pages
    // must be the same as the whole log's rows that match, in both
    // directions, and its counts with a time range exact.
    let app = TestApp::new().await;
    let events: Vec<NewEvent> = (0..3_000u32)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from((i * 7_919) % 500) * MINUTE);
            e.action = ["UPDATE", "CREATE", "DELETE", "LOGIN"][i as usize % 4].into();
            e.table_name = (i % 3 != 0).then(|| ["orders", "invoices"][i as usize % 2].into());
            e.initiator.id = Some(format!("u{}", i % 5));
            e.initiator.name = Some(format!("Person {}", i % 5));
            let ip = if i % 19 == 7 {
                format!("10.9.0.{}", i % 9 + 1)
            } else {
                format!("10.8.{}.{}", i % 200, i % 7 + 1)
            };
            e.ip = Some(ip.parse().unwrap());
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let all = every_row(&app).await;
    let in_range = |r: &EventRow| r.ip.as_deref().is_some_and(|ip| ip.starts_with("10.9.0."));
    let from = T0 + 100 * MINUTE;
    let to = T0 + 300 * MINUTE;
    type Keeps = Box<dyn Fn(&EventRow) -> bool>;
    let cases: Vec<(&str, EventQuery, Keeps)> = vec![
        (
            "two actions",
            EventQuery {
                actions: vec!["UPDATE".into(), "LOGIN".into()],
                ..q()
            },
            Box::new(|r: &EventRow| r.action == "UPDATE" || r.action == "LOGIN"),
        ),
        (
            "one action",
            EventQuery {
                actions: vec!["CREATE".into()],
                ..q()
            },
            Box::new(|r: &EventRow| r.action == "CREATE"),
        ),
        (
            "a table and a time range",
            EventQuery {
                table: Some("orders".into()),
                from: Some(from),
                to: Some(to),
                ..q()
            },
            Box::new(move |r: &EventRow| {
                r.table_name.as_deref() == Some("orders") && (from..=to).contains(&r.occurred_at)
            }),
        ),
        (
            "a user and a time range",
            EventQuery {
                user: Some(InitiatorKey::parse("user:u2").unwrap()),
                from: Some(from),
                ..q()
            },
            Box::new(move |r: &EventRow| {
                r.initiator.id.as_deref() == Some("u2") && r.occurred_at >= from
            }),
        ),
        ("nothing else", q(), Box::new(|_: &EventRow| true)),
    ];
    for (what, query, keeps) in &cases {
        let query = EventQuery {
            ip: Some("10.9.0.0/24".into()),
            per_page: 10,
            ..query.clone()
        };
        let newest_first: Vec<i64> = all
            .iter()
            .filter(|r| in_range(r) && keeps(r))
            .map(|r| r.id)
            .collect();
        assert!(newest_first.len() > 20, "{what}: more than two pages");
        assert_pages_both_ways(&app, &query, &newest_first, what).await;
        let oldest_first: Vec<i64> = newest_first.iter().rev().copied().collect();
        let ascending = EventQuery {
            descending: false,
            ..query.clone()
        };
        assert_pages_both_ways(
            &app,
            &ascending,
            &oldest_first,
            &format!("{what}, oldest first"),
        )
        .await;
        // Pages by number (an offset) give the same rows.
        let third = store::list_events(&app.db, &query.clone().at(3, None))
            .await
            .unwrap();
        let third: Vec<i64> = third.rows.iter().map(|r| r.id).collect();
        let expected: Vec<i64> = newest_first.iter().skip(20).take(10).copied().collect();
        assert_eq!(third, expected, "{what}: page 3 by number");
        let count = store::count_matching(&app.db, &query).await.unwrap();
        assert!(count.exact, "{what}: exact");
        assert_eq!(count.total, newest_first.len() as u64, "{what}: the count");
    }
    // A range none of whose events match reads nothing.
    let none = EventQuery {
        ip: Some("10.9.0.0/24".into()),
        table: Some("no such table".into()),
        from: Some(from),
        ..q()
    };
    assert!(store::list_events(&app.db, &none)
        .await
        .unwrap()
        .rows
        .is_empty());
    assert_eq!(
        store::count_matching(&app.db, &none).await.unwrap().total,
        0
    );
}
