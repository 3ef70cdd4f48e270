//! Admin Sessions recording: what is recorded, how it is classified and
//! masked, and that the background writer loses nothing.

use crate::common::TestApp;
use auditdeck::errors::AppError;
use auditdeck::models::Role;
use auditdeck::models::SessionRow;
use auditdeck::query::Cursor;
use auditdeck::server::recorder;
use auditdeck::server::store::{self, NewAdminSession};
use auditdeck::session_query::{SessionQuery, SessionSort};
use std::time::Duration;

/// Waits until the writer has stored at least `n` records.
async fn stored_at_least(app: &TestApp, n: u64) -> Vec<SessionRow> {
    for _ in 0..200 {
        if store::count_admin_sessions(&app.db).await.unwrap() >= n {
            return store::latest_admin_sessions(&app.db, 100).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} admin-session records were stored");
}

#[tokio::test]
async fn signed_in_requests_are_recorded_classified_and_masked() {
    let app = TestApp::new().await;
    // Signed-out requests are not recorded (not even the sign-in itself).
    assert_eq!(app.get("/login").await.status.as_u16(), 200);
    let cookie = app.session_for(Role::Admin).await;
    let before = store::count_admin_sessions(&app.db).await.unwrap();
    assert_eq!(before, 0);

    let page = app
        .get_with("/activity-log?page=2&token=s3cret&api_key=adk_x", &cookie)
        .await;
    assert_eq!(page.status.as_u16(), 200);
    let call = app
        .call("list_events", "query[per_page]=10", Some(&cookie))
        .await;
    assert_eq!(call.status.as_u16(), 200);
    let refused = app
        .call("list_events", "query[per_page]=7", Some(&cookie))
        .await;
    assert_eq!(refused.status.as_u16(), 400);
    // Assets are not requests a person makes.
    app.get_with("/pkg/auditdeck.js", &cookie).await;

    let rows = stored_at_least(&app, 3).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let web = rows.iter().find(|r| r.kind == "WEB").expect("a page load");
    assert_eq!(web.url, "/activity-log?page=2&token=***&api_key=***");
    assert_eq!(web.method, "GET");
    assert_eq!(web.status, 200);
    assert!(web.user_email.starts_with("admin"));
    assert!(web.user_name.contains("admin"));
    // The client IP as the sign-in layer resolves it (no socket in tests).
    assert!(web.ip.is_some());
    let api: Vec<_> = rows.iter().filter(|r| r.kind == "API").collect();
    assert_eq!(api.len(), 2);
    assert!(api
        .iter()
        .all(|r| r.url == "/api/list_events" && r.method == "POST"));
    let mut statuses: Vec<u16> = api.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400]);
    assert!(rows.iter().all(|r| r.duration_us > 0));
}

fn record(i: u32) -> NewAdminSession {
    NewAdminSession {
        occurred_at: 1_761_566_400_000_000 + i64::from(i),
        user_id: Some("1".into()),
        user_name: "Ann".into(),
        user_email: "ann@example.com".into(),
        ip: None,
        url: format!("/activity-log?page={i}"),
        kind: "WEB",
        method: "GET".into(),
        status: 200,
        duration_us: 1_000,
    }
}

#[tokio::test]
async fn a_burst_larger_than_the_queue_is_stored_whole_and_drained_on_shutdown() {
    let app = TestApp::new().await;
    // A tiny queue: senders must wait for room, and none may be dropped.
    let (recorder, writer) = recorder::spawn(app.db.clone(), 8);
    let tasks: Vec<_> = (0..20u32)
        .map(|t| {
            let recorder = recorder.clone();
            tokio::spawn(async move {
                for i in 0..150u32 {
                    recorder.record(record(t * 1_000 + i)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Shutting down: the last sender goes, the writer stores what is queued.
    drop(recorder);
    assert_eq!(writer.drained().await, 3_000);
    assert_eq!(store::count_admin_sessions(&app.db).await.unwrap(), 3_000);
}

#[tokio::test]
async fn drain_on_shutdown_stores_what_is_still_queued() {
    let app = TestApp::new().await;
    let (recorder, writer) = recorder::spawn(app.db.clone(), 5_000);
    for i in 0..2_000u32 {
        recorder.record(record(i)).await;
    }
    // Shutdown while requests still hold the queue's sending end: the writer
    // stops taking records and stores every one already queued.
    let stored = writer.drained().await;
    assert_eq!(stored, 2_000);
    assert_eq!(store::count_admin_sessions(&app.db).await.unwrap(), 2_000);
    drop(recorder);
}

fn timed(i: u32, email: &str, kind: &'static str, method: &str, url: &str) -> NewAdminSession {
    NewAdminSession {
        occurred_at: 1_761_566_400_000_000 + i64::from(i) * 1_000_000,
        user_id: Some(if email.starts_with("ann") { "1" } else { "2" }.into()),
        user_name: email.split('@').next().unwrap().to_string(),
        user_email: email.to_string(),
        ip: Some(format!("192.0.2.{}", i % 200 + 1).parse().unwrap()),
        url: url.to_string(),
        kind,
        method: method.to_string(),
        status: 200,
        duration_us: 1_500,
    }
}

#[tokio::test]
async fn the_page_filters_searches_hides_me_and_pages_by_keyset() {
    let app = TestApp::new().await;
    let mut records = Vec::new();
    for i in 0..60u32 {
        let (email, kind, method, url) = match i % 3 {
            0 => (
                "ann@example.com",
                "WEB",
                "GET",
                format!("/activity-log?page={i}"),
            ),
            1 => (
                "bob@example.com",
                "API",
                "POST",
                "/api/list_events".to_string(),
            ),
            _ => (
                "bob@example.com",
                "WEB",
                "GET",
                "/settings/users".to_string(),
            ),
        };
        records.push(timed(i, email, kind, method, &url));
    }
    store::insert_admin_sessions(&app.db, &records)
        .await
        .unwrap();
    let list = |q: SessionQuery, me: i64| {
        let db = app.db.clone();
        async move { store::list_admin_sessions(&db, &q, me).await.unwrap() }
    };
    let count = |q: SessionQuery, me: i64| {
        let db = app.db.clone();
        async move {
            store::count_admin_sessions_matching(&db, &q, me)
                .await
                .unwrap()
                .total
        }
    };

    // Newest first.
    let first = list(SessionQuery::default(), 1).await;
    assert_eq!(first.rows.len(), 25);
    assert!(first.has_next && !first.has_prev);
    assert!(first
        .rows
        .windows(2)
        .all(|w| w[0].occurred_at > w[1].occurred_at));
    assert_eq!(first.rows[0].url, "/settings/users");

    // Hide Me leaves out the signed-in user's own requests (user 1 is Ann).
    let hide = SessionQuery {
        hide_me: true,
        per_page: 100,
        ..SessionQuery::default()
    };
    let others = list(hide.clone(), 1).await;
    assert_eq!(others.rows.len(), 40);
    assert!(others
        .rows
        .iter()
        .all(|r| r.user_email == "bob@example.com"));
    assert_eq!(count(hide.clone(), 1).await, 40);
    assert_eq!(list(hide, 2).await.rows.len(), 20, "Bob hides his own");

    // Type, method and search (name, email, URL, IP; every word must match).
    let api = SessionQuery {
        kind: Some("API".into()),
        per_page: 100,
        ..SessionQuery::default()
    };
    assert!(list(api.clone(), 1)
        .await
        .rows
        .iter()
        .all(|r| r.kind == "API" && r.method == "POST"));
    assert_eq!(count(api, 1).await, 20);
    let get = SessionQuery {
        method: Some("GET".into()),
        ..SessionQuery::default()
    };
    assert_eq!(count(get, 1).await, 40);
    let search = |q: &str| SessionQuery {
        q: Some(q.into()),
        per_page: 100,
        ..SessionQuery::default()
    };
    assert_eq!(count(search("settings bob"), 1).await, 20);
    assert_eq!(count(search("ANN"), 1).await, 20);
    // 192.0.2.1 and 192.0.2.10 … 192.0.2.19 are the IPs of records 0, 9 … 18.
    assert_eq!(count(search("192.0.2.1"), 1).await, 11);
    assert_eq!(count(search("100%"), 1).await, 0, "wildcards are literal");

    // A time range, inclusive at both ends.
    let ranged = SessionQuery {
        from: Some(records[10].occurred_at),
        to: Some(records[19].occurred_at),
        ..SessionQuery::default()
    };
    assert_eq!(count(ranged, 1).await, 10);

    // Keyset pages: forward, back and to the end, without overlap.
    let second = list(
        SessionQuery::default().at(2, Some(Cursor::After(first.rows[24].id))),
        1,
    )
    .await;
    assert_eq!(second.rows.len(), 25);
    assert!(second.has_prev && second.has_next);
    assert!(second.rows[0].occurred_at < first.rows[24].occurred_at);
    let back = list(
        SessionQuery::default().at(1, Some(Cursor::Before(second.rows[0].id))),
        1,
    )
    .await;
    assert_eq!(back.ids(), first.ids());
    let last = list(SessionQuery::default().at(3, Some(Cursor::End)), 1).await;
    assert_eq!(last.rows.len(), 25);
    assert!(!last.has_next && last.has_prev);
    assert_eq!(
        last.rows.last().unwrap().occurred_at,
        records[0].occurred_at
    );
}

#[tokio::test]
async fn admin_sessions_are_for_admins_and_refuse_bad_filters() {
    let app = TestApp::new().await;
    let admin = app.session_for(Role::Admin).await;
    let viewer = app.session_for(Role::Viewer).await;
    let auditor = app.session_for(Role::Auditor).await;
    for cookie in [&viewer, &auditor] {
        let r = app
            .call("list_admin_sessions", "query[per_page]=25", Some(cookie))
            .await;
        assert_eq!(r.status.as_u16(), 403, "{}", r.text());
        let r = app
            .call("count_admin_sessions", "query[per_page]=25", Some(cookie))
            .await;
        assert_eq!(r.status.as_u16(), 403);
    }
    let r = app
        .call("list_admin_sessions", "query[kind]=CLI", Some(&admin))
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(
        r.text().contains("type: \\\"CLI\\\" is not a request type"),
        "{}",
        r.text()
    );
    // The admin's own page load is listed; with Hide Me it is not.
    assert_eq!(
        app.get_with("/admin-sessions", &admin)
            .await
            .status
            .as_u16(),
        200
    );
    // 4 refused calls, 1 bad filter, 1 page load: all recorded.
    stored_at_least(&app, 6).await;
    let r = app
        .call("list_admin_sessions", "query[per_page]=25", Some(&admin))
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let rows = r.json()["rows"].as_array().unwrap().clone();
    assert!(
        rows.iter().any(|row| row["url"] == "/admin-sessions"),
        "{rows:?}"
    );
    let hidden = app
        .call(
            "list_admin_sessions",
            "query[per_page]=25&query[hide_me]=true",
            Some(&admin),
        )
        .await
        .json();
    assert!(hidden["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row["url"] != "/admin-sessions"));
}

/// The order Admin Sessions sorts by: the column's value (an IP as its
/// 16-byte key, none below every address), then time, then id.
fn session_key(row: &SessionRow, sort: SessionSort) -> (Vec<u8>, i64, i64, i64) {
    let (bytes, number) = match sort {
        SessionSort::Date => (Vec::new(), 0),
        SessionSort::Admin => (row.user_name.clone().into_bytes(), 0),
        SessionSort::Ip => (
            row.ip
                .as_deref()
                .map(|ip| store::ip_key(ip.parse().unwrap()).to_vec())
                .unwrap_or_default(),
            0,
        ),
        SessionSort::Url => (row.url.clone().into_bytes(), 0),
        SessionSort::Type => (row.kind.clone().into_bytes(), 0),
        SessionSort::Method => (row.method.clone().into_bytes(), 0),
        SessionSort::Status => (Vec::new(), i64::from(row.status)),
        SessionSort::Duration => (Vec::new(), row.duration_us),
    };
    (bytes, number, row.occurred_at, row.id)
}

async fn session_ids(app: &TestApp, q: &SessionQuery) -> (Vec<i64>, bool, bool) {
    let page = store::list_admin_sessions(&app.db, q, 1).await.unwrap();
    (page.ids(), page.has_prev, page.has_next)
}

/// Pages forwards with `after` cursors to the end; the ids in order.
async fn walk_sessions(app: &TestApp, base: &SessionQuery) -> Vec<i64> {
    let (mut seen, mut query) = (Vec::new(), base.clone());
    loop {
        let (ids, _, more) = session_ids(app, &query).await;
        seen.extend(ids.iter().copied());
        if !more {
            return seen;
        }
        query = query
            .clone()
            .at(query.page + 1, Some(Cursor::After(*ids.last().unwrap())));
    }
}

#[tokio::test]
async fn every_session_column_sorts_both_ways_and_pages_across_equal_values() {
    let app = TestApp::new().await;
    // 47 records with few distinct values per column (long runs of equal
    // values), many equal times, and some without an IP.
    let records: Vec<NewAdminSession> = (0..47u32)
        .map(|i| NewAdminSession {
            occurred_at: 1_761_566_400_000_000 + i64::from(i % 4) * 60_000_000,
            user_id: Some((i % 3).to_string()),
            user_name: ["Ann", "Bob", "ann"][i as usize % 3].into(),
            user_email: format!("u{}@example.com", i % 3),
            ip: match i % 5 {
                0 => None,
                1 | 2 => Some("10.0.0.9".parse().unwrap()),
                3 => Some("2001:db8::1".parse().unwrap()),
                _ => Some("9.255.0.1".parse().unwrap()),
            },
            url: ["/activity-log", "/api/list_events", "/integrity"][i as usize % 3].into(),
            kind: ["WEB", "API"][i as usize % 2],
            method: ["GET", "POST", "DELETE"][(i / 2) as usize % 3].into(),
            status: [200, 404, 500, 200][i as usize % 4],
            duration_us: i64::from(i % 6) * 1_000,
        })
        .collect();
    store::insert_admin_sessions(&app.db, &records)
        .await
        .unwrap();
    let all = store::list_admin_sessions(
        &app.db,
        &SessionQuery {
            per_page: 100,
            ..SessionQuery::default()
        },
        1,
    )
    .await
    .unwrap()
    .rows;
    assert_eq!(all.len(), 47);
    for sort in SessionSort::ALL {
        for descending in [false, true] {
            let mut expected = all.clone();
            expected.sort_by_key(|r| session_key(r, sort));
            if descending {
                expected.reverse();
            }
            let expected: Vec<i64> = expected.iter().map(|r| r.id).collect();
            let what = format!(
                "{} {}",
                sort.as_str(),
                if descending { "desc" } else { "asc" }
            );
            let base = SessionQuery {
                per_page: 10,
                sort,
                descending,
                ..SessionQuery::default()
            };
            // Forwards with `after` cursors, to the end.
            assert_eq!(
                walk_sessions(&app, &base).await,
                expected,
                "forwards, {what}"
            );
            // Backwards from the last page with `before` cursors.
            let (mut ids, mut prev, _) =
                session_ids(&app, &base.clone().at(5, Some(Cursor::End))).await;
            let mut back = ids.clone();
            while prev {
                (ids, prev, _) =
                    session_ids(&app, &base.clone().at(2, Some(Cursor::Before(ids[0])))).await;
                back.splice(0..0, ids.iter().copied());
            }
            assert_eq!(back, expected, "backwards, {what}");
            // A page reached by number is the same slice.
            let (third, _, _) = session_ids(&app, &base.clone().at(3, None)).await;
            assert_eq!(third, expected[20..30], "page 3 by number, {what}");
            // With a filter: the same order, restricted to its matches.
            let posts = SessionQuery {
                method: Some("POST".into()),
                ..base.clone()
            };
            let seen = walk_sessions(&app, &posts).await;
            let want: Vec<i64> = expected
                .iter()
                .copied()
                .filter(|id| all.iter().any(|r| r.id == *id && r.method == "POST"))
                .collect();
            assert_eq!(seen, want, "filtered, {what}");
        }
    }
}

#[tokio::test]
async fn search_finds_words_anywhere_many_or_few_and_refuses_short_ones() {
    let app = TestApp::new().await;
    // 6,000 records: "/integrity" in every one of them but 3 in 4 (so a
    // search for it is a large set), "needle" in 7.
    let records: Vec<NewAdminSession> = (0..6_000u32)
        .map(|i| {
            let mut r = record(i);
            r.url = match i {
                _ if i % 857 == 3 => format!("/settings/users?q=haystack-NeEdLe-{i}"),
                _ if i % 4 == 0 => "/activity-log".into(),
                _ => format!("/integrity?page={i}"),
            };
            r.ip = Some(format!("10.1.{}.{}", i / 250, i % 250).parse().unwrap());
            r
        })
        .collect();
    store::insert_admin_sessions(&app.db, &records)
        .await
        .unwrap();
    let search = |text: &str| SessionQuery {
        q: Some(text.into()),
        per_page: 100,
        ..SessionQuery::default()
    };
    let count = |q: SessionQuery| {
        let db = app.db.clone();
        async move {
            store::count_admin_sessions_matching(&db, &q, 1)
                .await
                .unwrap()
        }
    };
    let needles = count(search("needle")).await;
    assert_eq!(
        (needles.total, needles.exact),
        (7, true),
        "mid-word, any case"
    );
    let page = store::list_admin_sessions(&app.db, &search("needle"), 1)
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 7);
    assert!(page
        .rows
        .windows(2)
        .all(|w| w[0].occurred_at >= w[1].occurred_at));
    let integrity = store::list_admin_sessions(&app.db, &search("integrity"), 1)
        .await
        .unwrap();
    assert_eq!(integrity.rows.len(), 100);
    assert!(integrity.has_next);
    assert!(integrity.rows.iter().all(|r| r.url.contains("/integrity")));
    assert_eq!(count(search("integrity")).await.total, 4_495);
    // Punctuation is text: "?q=" is in the 7 only; with another word too.
    assert_eq!(count(search("?q=")).await.total, 7);
    assert_eq!(count(search("?q= haystack")).await.total, 7);
    // A word the trigram index cannot answer is refused, by the page and
    // by the count, naming it.
    for short in ["q=", "q= haystack", "integrity 7"] {
        let page = store::list_admin_sessions(&app.db, &search(short), 1).await;
        let counted = store::count_admin_sessions_matching(&app.db, &search(short), 1).await;
        for err in [
            page.map(|_| ()).unwrap_err(),
            counted.map(|_| ()).unwrap_err(),
        ] {
            assert!(
                matches!(&err, AppError::BadRequest(m) if m.contains("at least 3 characters")),
                "{short}: {err:?}"
            );
        }
    }
    // 10.1.2.*, 10.1.20.* … 10.1.23.*
    assert_eq!(count(search("10.1.2")).await.total, 1_250);
    assert_eq!(count(search("needle-860")).await.total, 1);
    // Quotes and FTS syntax in a word are text, not query syntax.
    assert_eq!(count(search("NEAR(x")).await.total, 0);
}

#[tokio::test]
async fn ips_recorded_before_their_sort_key_get_one_at_start() {
    let app = TestApp::new().await;
    let mut records: Vec<NewAdminSession> = (0..5u32).map(record).collect();
    for (r, ip) in records
        .iter_mut()
        .zip(["10.0.0.10", "9.0.0.1", "2001:db8::1", "10.0.0.9"])
    {
        r.ip = Some(ip.parse().unwrap());
    }
    store::insert_admin_sessions(&app.db, &records)
        .await
        .unwrap();
    // As a database migrated from before the key would hold them.
    let empty = if app.on_postgres() {
        "'\\x'::bytea"
    } else {
        "x''"
    };
    app.raw_sql(&format!("UPDATE admin_sessions SET ip_bin = {empty}"))
        .await;
    let reopened = store::open(&app.url).await.unwrap();
    let by_ip = store::list_admin_sessions(
        &reopened,
        &SessionQuery {
            sort: SessionSort::Ip,
            descending: false,
            ..SessionQuery::default()
        },
        1,
    )
    .await
    .unwrap();
    let ips: Vec<Option<String>> = by_ip.rows.iter().map(|r| r.ip.clone()).collect();
    assert_eq!(
        ips,
        [
            None,
            Some("9.0.0.1"),
            Some("10.0.0.9"),
            Some("10.0.0.10"),
            Some("2001:db8::1")
        ]
        .map(|ip| ip.map(String::from))
    );
}

#[tokio::test]
async fn a_search_whose_many_matches_lie_far_along_the_sort_order_pages_in_order() {
    let app = TestApp::new().await;
    // 14,000 records: 6,000 of Kowalski's (more than a search reads as a
    // set at once), every one at an address after all of the others', so
    // an IP-ordered walk from the start meets 8,000 others first.
    let records: Vec<NewAdminSession> = (0..14_000u32)
        .map(|i| {
            let mut r = record(i);
            let kowalski = i % 7 < 3;
            if kowalski {
                r.user_name = "Jan Kowalski".into();
                r.user_email = "jan@example.com".into();
            }
            let net = if kowalski { 9 } else { 1 };
            r.ip = Some(format!("10.{net}.{}.{}", i / 250, i % 250).parse().unwrap());
            r.method = if i % 2 == 0 { "GET" } else { "POST" }.into();
            r
        })
        .collect();
    store::insert_admin_sessions(&app.db, &records)
        .await
        .unwrap();
    let key = |r: &NewAdminSession| {
        let ip = r.ip.unwrap();
        let v4 = match ip {
            std::net::IpAddr::V4(v4) => v4.octets(),
            std::net::IpAddr::V6(_) => unreachable!(),
        };
        (v4, r.occurred_at)
    };
    for (method, sort, descending) in [
        (None, SessionSort::Ip, false),
        (Some("POST"), SessionSort::Ip, false),
        (None, SessionSort::Ip, true),
        (None, SessionSort::Admin, false),
    ] {
        let q = SessionQuery {
            q: Some("kowalski".into()),
            method: method.map(str::to_string),
            sort,
            descending,
            per_page: 250,
            ..SessionQuery::default()
        };
        let mut want: Vec<&NewAdminSession> = records
            .iter()
            .filter(|r| r.user_name == "Jan Kowalski")
            .filter(|r| method.is_none_or(|m| r.method == m))
            .collect();
        match sort {
            SessionSort::Ip => want.sort_by_key(|r| key(r)),
            _ => want.sort_by_key(|r| r.occurred_at),
        }
        if descending {
            want.reverse();
        }
        let first = store::list_admin_sessions(&app.db, &q, 1).await.unwrap();
        let urls: Vec<&str> = first.rows.iter().map(|r| r.url.as_str()).collect();
        let expected: Vec<&str> = want.iter().take(250).map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls, expected,
            "first page, {method:?} {sort:?} desc={descending}"
        );
        assert!(first.has_next);
        let seen = walk_sessions(&app, &q).await;
        assert_eq!(seen.len(), want.len(), "to the end, {method:?} {sort:?}");
    }
}
