//! Alerts against a real database: each kind of rule at its boundaries,
//! grouping, acknowledgement, and an evaluator that neither repeats nor
//! loses an alert across a restart or beside another server.

use crate::common::{sample_event, TestApp};
use auditdeck::alerts::{AlertInfo, RuleSettings};
use auditdeck::models::Role;
use auditdeck::server::alerts::{AlertRunner, AlertSettings};
use auditdeck::server::store;
use auditdeck::server::store::NewEvent;

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;
const WEEK: i64 = 7 * DAY;

fn settings(kind: &str, filter: &str) -> RuleSettings {
    RuleSettings {
        name: format!("{kind} rule"),
        severity: "warning".into(),
        kind: kind.into(),
        filter: filter.into(),
        threshold: 1,
        window_minutes: 60,
        group_by: String::new(),
        lookback_days: 30,
        network: "address".into(),
        work_days: 31,
        work_start: 9 * 60,
        work_end: 18 * 60,
        zone: "UTC".into(),
        stream_id: None,
    }
}

async fn add_rule(app: &TestApp, s: &RuleSettings) -> i64 {
    auditdeck::server::alerts::Rule::check(s).unwrap();
    let mut tx = store::begin(&app.db).await.unwrap();
    let id = store::create_alert_rule_in(&mut tx, s).await.unwrap();
    tx.commit().await.unwrap();
    id
}

/// An event by user `user` from `ip` at `at`.
fn event(action: &str, user: u32, ip: &str, at: i64) -> NewEvent {
    let mut e = sample_event(user, at);
    e.action = action.into();
    e.table_name = Some("users".into());
    e.ip = Some(ip.parse().unwrap());
    e
}

async fn store_events(app: &TestApp, events: Vec<NewEvent>) -> Vec<i64> {
    store::insert_events(&app.db, events, None).await.unwrap()
}

/// Evaluates until the evaluator has caught up.
async fn evaluate(app: &TestApp, runner: &mut AlertRunner) {
    while runner.turn(&app.db).await.unwrap() {}
    // The turn after a span that caught up (the evaluator's next, once new
    // events have had a moment to gather): it sends what that span made.
    runner.turn(&app.db).await.unwrap();
}

fn runner() -> AlertRunner {
    AlertRunner::new(AlertSettings {
        span: 3,
        ..AlertSettings::default()
    })
}

async fn alerts(app: &TestApp) -> Vec<AlertInfo> {
    let mut all = store::list_alerts(&app.db, None, 100).await.unwrap();
    all.reverse();
    all
}

#[tokio::test]
async fn a_threshold_fires_at_n_not_at_n_minus_one_and_its_window_ends_to_the_microsecond() {
    let app = TestApp::new().await;
    let mut s = settings("threshold", "action=LOGIN_FAILED");
    s.threshold = 3;
    s.window_minutes = 5;
    s.group_by = "ip".into();
    add_rule(&app, &s).await;
    let t = app.now() - DAY;
    let w = 5 * MINUTE;
    let ids = store_events(
        &app,
        vec![
            event("LOGIN_FAILED", 1, "10.0.0.1", t),
            event("LOGIN_FAILED", 1, "10.0.0.1", t + 10),
            // Exactly W after the first: the first is out of its window.
            event("LOGIN_FAILED", 1, "10.0.0.1", t + w),
            // Another address: two only (N − 1).
            event("LOGIN_FAILED", 2, "10.0.0.2", t + w),
            event("LOGIN_FAILED", 2, "10.0.0.2", t + w),
            // Not a failed sign-in.
            event("LOGIN", 1, "10.0.0.1", t + w),
        ],
    )
    .await;
    let mut r = runner();
    evaluate(&app, &mut r).await;
    assert!(alerts(&app).await.is_empty(), "N − 1 within the window");
    // 1 µs later: the 2nd, 3rd and this one are within W.
    let more = store_events(&app, vec![event("LOGIN_FAILED", 3, "10.0.0.1", t + w + 1)]).await;
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let a = &got[0];
    assert_eq!(a.group_key, "10.0.0.1");
    assert_eq!(
        (a.first_event_id, a.last_event_id, a.events),
        (ids[1], more[0], 3)
    );
    assert_eq!((a.first_at, a.last_at), (t + 10, t + w + 1));
    assert_eq!(a.state, "open");
    assert!(a.link.contains("action=LOGIN_FAILED") && a.link.contains("ip=10.0.0.1"));
    // While above, each event counts into the same alert.
    store_events(&app, vec![event("LOGIN_FAILED", 3, "10.0.0.1", t + w + 2)]).await;
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    assert_eq!((got.len(), got[0].events), (1, 4));
    assert_eq!(store::open_alerts(&app.db).await.unwrap(), 1);
}

/// A per-address threshold rule rebuilt at a start reads its window in
/// steps (5,000 events a read): the oldest events of a 12,000-event window,
/// several of them at one instant across a step's edge, are still there.
#[tokio::test]
async fn a_window_rebuilt_in_steps_keeps_its_oldest_events() {
    let app = TestApp::new().await;
    let mut s = settings("threshold", "action=LOGIN_FAILED");
    s.threshold = 2;
    s.window_minutes = 60;
    s.group_by = "ip".into();
    add_rule(&app, &s).await;
    let t = app.now() - DAY;
    // Each address once, three at each instant.
    let addr = |i: i64| format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256);
    let all: Vec<NewEvent> = (0..12_000)
        .map(|i| event("LOGIN_FAILED", 1, &addr(i), t + (i / 3) * 1_000))
        .collect();
    for batch in all.chunks(1_000) {
        store_events(&app, batch.to_vec()).await;
    }
    let mut first = AlertRunner::new(AlertSettings {
        span: 20_000,
        ..AlertSettings::default()
    });
    evaluate(&app, &mut first).await;
    assert!(alerts(&app).await.is_empty(), "each address once");
    first.release(&app.db).await.unwrap();
    // Another server starts: its window holds all 12,000, so a second
    // event from any of them fires, the oldest and those at a step's edge
    // (the 5,000th newest and its neighbours share an instant) included.
    let mut second = runner();
    let again: Vec<i64> = vec![0, 1, 2, 6_998, 6_999, 7_000, 7_001, 11_999];
    store_events(
        &app,
        again
            .iter()
            .map(|&i| event("LOGIN_FAILED", 1, &addr(i), t + 4_000 * 1_000 + i))
            .collect(),
    )
    .await;
    evaluate(&app, &mut second).await;
    let mut fired: Vec<String> = alerts(&app)
        .await
        .into_iter()
        .map(|a| a.group_key)
        .collect();
    fired.sort();
    let mut want: Vec<String> = again.iter().map(|&i| addr(i)).collect();
    want.sort();
    assert_eq!(fired, want);
}

#[tokio::test]
async fn a_burst_makes_one_alert_per_group_and_a_resolved_alert_or_a_new_window_starts_anew() {
    let app = TestApp::new().await;
    let mut s = settings("match", "action=DELETE&table=users");
    s.group_by = "initiator".into();
    s.window_minutes = 60;
    add_rule(&app, &s).await;
    let t = app.now() - DAY;
    let mut burst: Vec<NewEvent> = (0..5)
        .map(|i| event("DELETE", 1, "10.0.0.1", t + i * MINUTE))
        .collect();
    burst.push(event("DELETE", 2, "10.0.0.2", t));
    burst.push(event("UPDATE", 1, "10.0.0.1", t));
    store_events(&app, burst).await;
    let mut r = runner();
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    assert_eq!(
        got.iter()
            .map(|a| (a.group_key.as_str(), a.events))
            .collect::<Vec<_>>(),
        [("user:1", 5), ("user:2", 1)]
    );
    // Acknowledged: still the same alert.
    let mut tx = store::begin(&app.db).await.unwrap();
    assert!(
        store::set_alert_state_in(&mut tx, got[0].id, "acknowledged", "ann")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    store_events(&app, vec![event("DELETE", 1, "10.0.0.1", t + 10 * MINUTE)]).await;
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    assert_eq!(
        (got.len(), got[0].events, got[0].state.as_str()),
        (2, 6, "acknowledged")
    );
    // Resolved: the next firing starts a new alert.
    let mut tx = store::begin(&app.db).await.unwrap();
    assert!(
        store::set_alert_state_in(&mut tx, got[0].id, "resolved", "ann")
            .await
            .unwrap()
    );
    // Resolving twice changes nothing.
    assert!(
        !store::set_alert_state_in(&mut tx, got[0].id, "resolved", "ann")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    store_events(&app, vec![event("DELETE", 1, "10.0.0.1", t + 11 * MINUTE)]).await;
    evaluate(&app, &mut r).await;
    // And one an hour after the group's first event starts another.
    store_events(&app, vec![event("DELETE", 2, "10.0.0.2", t + 60 * MINUTE)]).await;
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    assert_eq!(
        got.iter()
            .map(|a| (a.group_key.as_str(), a.events, a.state.as_str()))
            .collect::<Vec<_>>(),
        [
            ("user:1", 6, "resolved"),
            ("user:2", 1, "open"),
            ("user:1", 1, "open"),
            ("user:2", 1, "open"),
        ]
    );
}

#[tokio::test]
async fn a_new_ip_is_one_not_seen_for_d_days_to_the_microsecond() {
    let app = TestApp::new().await;
    let mut s = settings("new_ip", "");
    s.lookback_days = 30;
    add_rule(&app, &s).await;
    let mut s = settings("new_ip", "action=LOGIN");
    s.name = "new network".into();
    s.network = "network".into();
    add_rule(&app, &s).await;
    let t = app.now() - DAY;
    let d = 30 * DAY;
    // Before the rules look: what each user was seen from.
    store_events(
        &app,
        vec![
            event("LOGIN", 1, "10.1.2.3", t - d),
            event("LOGIN", 2, "10.1.2.3", t - d - 1),
        ],
    )
    .await;
    let head = store::max_event_id(&app.db).await.unwrap();
    store::set_alert_cursor(&app.db, head).await.unwrap();
    let ids = store_events(
        &app,
        vec![
            // Seen exactly D days ago: not new.
            event("LOGIN", 1, "10.1.2.3", t),
            // Seen D days and 1 µs ago: new.
            event("LOGIN", 2, "10.1.2.3", t),
            // Same /24 as user 1's: a new address, not a new network.
            event("LOGIN", 1, "10.1.2.99", t + 1),
            // Again from it: seen a microsecond ago.
            event("LOGIN", 1, "10.1.2.99", t + 2),
            // IPv6: a new /48 for user 1.
            event("LOGIN", 1, "2001:db8:1:2::5", t + 3),
        ],
    )
    .await;
    let mut r = runner();
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    let seen: Vec<(String, String, i64)> = got
        .iter()
        .map(|a| (a.rule_name.clone(), a.group_key.clone(), a.first_event_id))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "new_ip rule".to_string(),
                "user:2 10.1.2.3".to_string(),
                ids[1]
            ),
            (
                "new network".to_string(),
                "user:2 10.1.2.0/24".to_string(),
                ids[1]
            ),
            (
                "new_ip rule".to_string(),
                "user:1 10.1.2.99".to_string(),
                ids[2]
            ),
            (
                "new_ip rule".to_string(),
                "user:1 2001:db8:1:2::5".to_string(),
                ids[4]
            ),
            (
                "new network".to_string(),
                "user:1 2001:db8:1::/48".to_string(),
                ids[4]
            ),
        ]
    );
    assert!(got[2].link.contains("user=user:1") && got[2].link.contains("ip=10.1.2.99"));
}

#[tokio::test]
async fn a_network_an_initiator_never_used_is_answered_as_the_log_would() {
    // The log's combinations answer a "never" at once; a network they may
    // hold (a neighbour in the same /16 or /32) is read from the log.
    let app = TestApp::new().await;
    let t = app.now() - DAY;
    store_events(
        &app,
        vec![
            event("LOGIN", 1, "10.1.2.3", t),
            event("LOGIN", 1, "::5", t),
            event("LOGIN", 1, "2001:db8::1", t),
            event("LOGIN", 2, "10.9.0.1", t),
        ],
    )
    .await;
    let user = auditdeck::query::InitiatorKey::parse("user:1").unwrap();
    for (network, seen) in [
        ("10.1.2.3", true),
        ("10.1.2.4", false),
        ("10.1.2.0/24", true),
        ("10.1.0.0/16", true),
        ("10.0.0.0/8", true),
        ("10.9.0.1", false),
        ("192.168.0.0/16", false),
        ("::5", true),
        ("::6", false),
        ("::/120", true),
        ("2001:db8::/32", true),
        ("2001:db8:1::/48", false),
        ("2001:db9::1", false),
    ] {
        let got = store::initiator_seen_from(&app.db, &user, network, t - DAY, t)
            .await
            .unwrap();
        assert_eq!(got, seen, "{network}");
    }
    // Outside the time asked about: not seen, whichever answers.
    assert!(
        !store::initiator_seen_from(&app.db, &user, "10.1.2.3", t + 1, t + DAY)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn off_hours_begin_at_the_first_minute_after_work_in_a_dst_changing_zone() {
    let app = TestApp::new().await;
    let mut s = settings("off_hours", "action=EXPORT");
    s.zone = "Europe/Berlin".into();
    s.group_by = "initiator".into();
    add_rule(&app, &s).await;
    let at = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_micros()
    };
    // Monday 30 March 2026, the day after Berlin moved to UTC+2: work ends
    // at 18:00 local, 16:00 UTC. The Friday before it was 17:00 UTC.
    let ids = store_events(
        &app,
        vec![
            event("EXPORT", 1, "10.0.0.1", at("2026-03-30T15:59:59.999999Z")),
            event("EXPORT", 2, "10.0.0.1", at("2026-03-30T16:00:00Z")),
            event("EXPORT", 3, "10.0.0.1", at("2026-03-27T16:59:59Z")),
            event("EXPORT", 4, "10.0.0.1", at("2026-03-27T17:00:00Z")),
            // Sunday, in the middle of the day.
            event("EXPORT", 5, "10.0.0.1", at("2026-03-29T11:00:00Z")),
            // Off hours, but not an export.
            event("DELETE", 6, "10.0.0.1", at("2026-03-30T20:00:00Z")),
        ],
    )
    .await;
    let mut r = runner();
    evaluate(&app, &mut r).await;
    let fired: Vec<(String, i64)> = alerts(&app)
        .await
        .into_iter()
        .map(|a| (a.group_key, a.first_event_id))
        .collect();
    assert_eq!(
        fired,
        [
            ("user:2".to_string(), ids[1]),
            ("user:4".to_string(), ids[3]),
            ("user:5".to_string(), ids[4]),
        ]
    );
}

/// The evaluator renews its lease once a third of it (30 s) has gone, not
/// on every turn (each renewal is a write beside ingest); a lease it has not
/// renewed for its whole length is another server's to take.
#[tokio::test]
async fn the_lease_is_renewed_when_a_third_has_gone_and_taken_over_when_it_ran_out() {
    const SECOND: i64 = 1_000_000;
    let app = TestApp::new().await;
    add_rule(&app, &settings("match", "action=DELETE")).await;
    let t = app.now() - DAY;
    let delete = |i: i64| event("DELETE", 1, "10.0.0.1", t + i * MINUTE);
    let (mut first, mut second) = (runner(), runner());
    // The events the alerts count, whichever alerts they grouped into.
    let fired = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            let all = store::list_alerts(&db, None, 100).await.unwrap();
            all.iter().map(|a| a.events).sum::<i64>()
        }
    };
    store_events(&app, vec![delete(0)]).await;
    evaluate(&app, &mut first).await;
    // 5 s on: the first turns again without renewing (its lease still ends
    // 30 s after it was taken) ...
    app.clock().advance(5 * SECOND);
    store_events(&app, vec![delete(1)]).await;
    evaluate(&app, &mut first).await;
    assert_eq!(fired(&app).await, 2);
    // ... so 31 s after it was taken the second server may take it, and
    // evaluates what came since; the first then writes nothing.
    app.clock().advance(26 * SECOND);
    store_events(&app, vec![delete(2)]).await;
    evaluate(&app, &mut second).await;
    assert_eq!(fired(&app).await, 3, "the second took the lease over");
    store_events(&app, vec![delete(3)]).await;
    assert!(!first.turn(&app.db).await.unwrap());
    assert_eq!(fired(&app).await, 3, "the first wrote nothing");
    // The second, turning 11 s on (a third gone), renews: 25 s later (36 s
    // after it took the lease, 25 s after the renewal) the first still
    // cannot take it.
    app.clock().advance(11 * SECOND);
    evaluate(&app, &mut second).await;
    assert_eq!(fired(&app).await, 4);
    app.clock().advance(25 * SECOND);
    store_events(&app, vec![delete(4)]).await;
    assert!(!first.turn(&app.db).await.unwrap());
    assert_eq!(fired(&app).await, 4, "the renewed lease held");
}

#[tokio::test]
async fn after_a_restart_nothing_fires_twice_and_only_the_lease_holder_evaluates() {
    let app = TestApp::new().await;
    let mut s = settings("threshold", "action=LOGIN_FAILED");
    s.threshold = 3;
    s.window_minutes = 10;
    add_rule(&app, &s).await;
    let t = app.now() - DAY;
    let fail = |i: i64| event("LOGIN_FAILED", 1, "10.0.0.1", t + i * MINUTE);
    store_events(&app, (0..4).map(fail).collect()).await;
    let mut first = runner();
    evaluate(&app, &mut first).await;
    let got = alerts(&app).await;
    assert_eq!((got.len(), got[0].events), (1, 4));
    // A second server waits while the first holds the lease.
    let mut second = runner();
    store_events(&app, vec![fail(4)]).await;
    assert!(!second.turn(&app.db).await.unwrap());
    assert_eq!(
        alerts(&app).await[0].events,
        4,
        "the second server wrote nothing"
    );
    // The first stops (lets its lease go); the second takes over and
    // rebuilds the window from the log: the event above the threshold
    // counts into the same alert, none is repeated.
    first.release(&app.db).await.unwrap();
    evaluate(&app, &mut second).await;
    let got = alerts(&app).await;
    assert_eq!((got.len(), got[0].events), (1, 5));
    // Evaluating again finds nothing new.
    evaluate(&app, &mut second).await;
    assert_eq!(alerts(&app).await[0].events, 5);
    let cursor = store::alert_cursor(&app.db).await.unwrap();
    assert_eq!(cursor, store::max_event_id(&app.db).await.unwrap());
}

#[tokio::test]
async fn rules_are_admin_only_checked_and_every_change_and_acknowledgement_is_audited() {
    let app = TestApp::new().await;
    let admin = app.session_for(Role::Admin).await;
    let auditor = app.session_for(Role::Auditor).await;
    let viewer = app.session_for(Role::Viewer).await;
    let form = "rule[name]=Deletes&rule[kind]=match&rule[severity]=critical&rule[filter]=action%3DDELETE&rule[window_minutes]=60";
    let r = app.call("create_alert_rule", form, Some(&auditor)).await;
    assert_eq!(r.status, axum::http::StatusCode::FORBIDDEN, "{}", r.text());
    for (bad, message) in [
        (
            "rule[name]=x&rule[kind]=threshold&rule[severity]=info&rule[threshold]=0",
            "threshold: from 1",
        ),
        (
            "rule[name]=x&rule[kind]=off_hours&rule[severity]=info&rule[zone]=Mars%2FBase",
            "zone: \"Mars/Base\"",
        ),
        (
            "rule[name]=x&rule[kind]=off_hours&rule[severity]=info&rule[work_start]=25:00",
            "work_start: \"25:00\"",
        ),
        (
            "rule[name]=x&rule[kind]=match&rule[severity]=info&rule[filter]=ip%3Dnope",
            "ip: \"nope\"",
        ),
        (
            "rule[name]=x&rule[kind]=match&rule[severity]=loud",
            "severity: \"loud\"",
        ),
    ] {
        let r = app.call("create_alert_rule", bad, Some(&admin)).await;
        assert_eq!(r.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        let said = r.json()["BadRequest"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(said.contains(message), "{bad}: {}", r.text());
    }
    assert!(
        store::list_alert_rules(&app.db).await.unwrap().is_empty(),
        "nothing made"
    );
    let r = app.call("create_alert_rule", form, Some(&admin)).await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    let id = r.json().as_i64().unwrap();
    let r = app
        .call(
            "set_alert_rule_paused",
            &format!("id={id}&paused=true"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    assert!(store::list_alert_rules(&app.db).await.unwrap()[0].paused);
    // A paused rule does not fire.
    let t = app.now() - DAY;
    store_events(&app, vec![event("DELETE", 1, "10.0.0.1", t)]).await;
    let mut r1 = runner();
    evaluate(&app, &mut r1).await;
    assert!(alerts(&app).await.is_empty());
    app.call(
        "set_alert_rule_paused",
        &format!("id={id}&paused=false"),
        Some(&admin),
    )
    .await;
    store_events(&app, vec![event("DELETE", 1, "10.0.0.1", t)]).await;
    evaluate(&app, &mut r1).await;
    let alert = alerts(&app).await.pop().expect("one alert");
    // Viewers see no alerts; auditors acknowledge.
    let r = app
        .call("list_alerts", "open_only=true", Some(&viewer))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::FORBIDDEN);
    let r = app
        .call("list_alerts", "open_only=true", Some(&auditor))
        .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let ack = format!("id={}&state=acknowledged", alert.id);
    let r = app.call("set_alert_state", &ack, Some(&auditor)).await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    let r = app.call("set_alert_state", &ack, Some(&auditor)).await;
    assert_eq!(r.status, axum::http::StatusCode::CONFLICT, "{}", r.text());
    let r = app
        .call(
            "set_alert_state",
            &format!("id={}&state=gone", alert.id),
            Some(&auditor),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::BAD_REQUEST);
    let r = app
        .call("delete_alert_rule", &format!("id={id}"), Some(&admin))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    // The alert stays, with the rule's name.
    let kept = alerts(&app).await.pop().unwrap();
    assert_eq!((kept.rule_id, kept.rule_name.as_str()), (None, "Deletes"));
    let audited: Vec<String> = app
        .page(1, 100)
        .await
        .rows
        .into_iter()
        .filter(|e| {
            e.table_name.as_deref() == Some("alert_rules")
                || e.table_name.as_deref() == Some("alerts")
        })
        .map(|e| e.description)
        .collect();
    assert_eq!(audited.len(), 5, "{audited:?}");
    assert!(audited.iter().any(|d| d
        .starts_with("Created alert rule \"Deletes\" (critical): events matching action=DELETE")));
    assert!(audited.iter().any(|d| d.starts_with("Acknowledged alert")));
    assert!(audited
        .iter()
        .any(|d| d.starts_with("Deleted alert rule \"Deletes\"")));
}

#[tokio::test]
async fn an_edited_rule_applies_from_the_next_span_and_its_audit_line_says_what_changed() {
    let app = TestApp::new().await;
    let admin = app.session_for(Role::Admin).await;
    let auditor = app.session_for(Role::Auditor).await;
    let form = |threshold: &str| {
        format!(
            "rule[name]=Fails&rule[kind]=threshold&rule[severity]=warning&rule[filter]=action%3DLOGIN_FAILED\
             &rule[threshold]={threshold}&rule[window_minutes]=5&rule[group_by]=ip"
        )
    };
    let r = app
        .call("create_alert_rule", &form("3"), Some(&admin))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    let id = r.json().as_i64().unwrap();
    let t = app.now() - DAY;
    let before_edit = store_events(
        &app,
        vec![
            event("LOGIN_FAILED", 1, "10.0.0.1", t),
            event("LOGIN_FAILED", 1, "10.0.0.1", t + 1),
        ],
    )
    .await;
    let mut r1 = runner();
    evaluate(&app, &mut r1).await;
    assert!(alerts(&app).await.is_empty(), "two of three");
    let stored = || async {
        store::list_alert_rules(&app.db).await.unwrap()[0]
            .settings
            .clone()
    };
    let before = stored().await;
    // Refused, and nothing changed: an auditor, bad values, no such rule,
    // no change at all.
    let update = |id: i64, threshold: &str| format!("id={id}&{}", form(threshold));
    let r = app
        .call("update_alert_rule", &update(id, "2"), Some(&auditor))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::FORBIDDEN, "{}", r.text());
    for (body, status, says) in [
        (
            update(id, "0"),
            axum::http::StatusCode::BAD_REQUEST,
            "threshold: from 1",
        ),
        (
            update(id, "x"),
            axum::http::StatusCode::BAD_REQUEST,
            "threshold: \"x\"",
        ),
        (update(id + 99, "2"), axum::http::StatusCode::NOT_FOUND, ""),
        (
            update(id, "3"),
            axum::http::StatusCode::BAD_REQUEST,
            "nothing was changed",
        ),
    ] {
        let r = app.call("update_alert_rule", &body, Some(&admin)).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        // The message, as JSON carries it.
        let said = r.text().replace("\\\"", "\"");
        assert!(said.contains(says), "{body}: {said}");
    }
    assert_eq!(stored().await, before);
    // Two within five minutes now fire: the evaluator rebuilds the rule's
    // window from the log (the two events before the edit, weighed by the
    // old threshold, are in no alert), so the third event crosses it with
    // the one before it.
    let r = app
        .call("update_alert_rule", &update(id, "2"), Some(&admin))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    assert_eq!(stored().await.threshold, 2);
    app.clock().advance(MINUTE);
    let after_edit = store_events(&app, vec![event("LOGIN_FAILED", 1, "10.0.0.1", t + 2)]).await;
    evaluate(&app, &mut r1).await;
    let got = alerts(&app).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].events, got[0].group_key.as_str()), (2, "10.0.0.1"));
    assert_eq!(
        (got[0].first_event_id, got[0].last_event_id),
        (before_edit[1], after_edit[0])
    );
    // A restart rebuilds the window again, now counting what fired: the
    // next event joins the alert rather than make another.
    r1.release(&app.db).await.unwrap();
    let mut r2 = runner();
    store_events(&app, vec![event("LOGIN_FAILED", 1, "10.0.0.1", t + 3)]).await;
    evaluate(&app, &mut r2).await;
    let got = alerts(&app).await;
    assert_eq!((got.len(), got[0].events), (1, 3), "{got:?}");
    let changed: Vec<String> = app
        .page(1, 100)
        .await
        .rows
        .into_iter()
        .filter(|e| e.action == "UPDATE" && e.table_name.as_deref() == Some("alert_rules"))
        .map(|e| e.description)
        .collect();
    assert_eq!(
        changed,
        vec!["Changed alert rule \"Fails\": fires on: at least 3 events matching action=LOGIN_FAILED \
              within 5 min per IP → at least 2 events matching action=LOGIN_FAILED within 5 min per IP"
            .to_string()]
    );
}

#[tokio::test]
async fn a_new_alert_goes_to_its_rules_webhook_signed_once_and_waits_while_it_is_down() {
    use auditdeck::server::stream_format::{webhook_signature_valid, WebhookSecret};
    use std::sync::atomic::Ordering;
    let app = TestApp::new().await;
    let hook = crate::streams::receiver().await;
    let secret = WebhookSecret::generate();
    let stream = crate::streams::stream_with(
        &app,
        "webhook",
        &hook.url,
        "action=NONE",
        &secret.encode(),
        "",
    )
    .await;
    let chat = crate::streams::stream_with(&app, "slack", &hook.url, "action=NONE", "", "").await;
    let mut s = settings("match", "action=DELETE");
    s.group_by = "initiator".into();
    s.stream_id = Some(stream);
    add_rule(&app, &s).await;
    let mut s = settings("match", "action=EXPORT");
    s.name = "exports".into();
    s.stream_id = Some(chat);
    add_rule(&app, &s).await;
    // The destination is down: the alert waits, with the error.
    hook.failing.store(true, Ordering::SeqCst);
    let t = app.now() - DAY;
    store_events(&app, vec![event("DELETE", 1, "10.0.0.1", t)]).await;
    let mut r = runner();
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].delivery.as_deref(),
        Some("waiting: the destination answered HTTP 503")
    );
    // Back up, and the retry is due: it goes once, signed; more events of
    // the same alert send nothing more.
    hook.failing.store(false, Ordering::SeqCst);
    app.clock().advance(10 * 60 * 1_000_000);
    store_events(
        &app,
        vec![
            event("DELETE", 1, "10.0.0.1", t + 1),
            event("EXPORT", 2, "10.0.0.2", t + 2),
        ],
    )
    .await;
    evaluate(&app, &mut r).await;
    r.send_due(&app.db).await.unwrap();
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    assert_eq!(got[0].delivery.as_deref(), Some("sent"));
    assert_eq!(got[1].delivery.as_deref(), Some("sent"));
    let received = hook.got.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "one message an alert");
    let (_, headers, body) = &received[0];
    assert_eq!(headers["webhook-id"], format!("adk_alert_{}", got[0].id));
    let timestamp: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(webhook_signature_valid(
        &secret,
        headers["webhook-signature"].to_str().unwrap(),
        headers["webhook-id"].to_str().unwrap(),
        timestamp,
        body,
    ));
    let message: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(message["type"], "alert");
    assert_eq!(message["alert"]["group"], "user:1");
    assert_eq!(message["alert"]["rule"], "match rule");
    // The chat gets a line of text.
    let chat_message: serde_json::Value = serde_json::from_slice(&received[1].2).unwrap();
    let text = chat_message["text"].as_str().unwrap();
    assert!(text.starts_with("⚠ [warning] exports: 1 event, "), "{text}");
    assert!(text.contains("/activity-log?action=EXPORT"), "{text}");
}

#[tokio::test]
async fn a_rules_filter_passes_exactly_the_events_the_activity_log_shows_for_it() {
    let app = TestApp::new().await;
    let filters = [
        "ip=10.0.0.0/24",
        "ip=2001:db8::/32&action=LOGIN",
        "user=user:1&action=DELETE,UPDATE",
        "table=users&action=EXPORT",
        "q=invoice",
        "q=invoice&user=user:2",
    ];
    for f in filters {
        let mut s = settings("match", f);
        s.name = f.to_string();
        s.window_minutes = 7 * 24 * 60;
        add_rule(&app, &s).await;
    }
    let t = app.now() - DAY;
    let mut events = Vec::new();
    for i in 0..60u32 {
        let action = ["DELETE", "UPDATE", "LOGIN", "EXPORT"][i as usize % 4];
        let ip = match i % 3 {
            0 => format!("10.0.0.{}", i + 1),
            1 => format!("2001:db8::{:x}", i + 1),
            _ => format!("10.0.1.{}", i + 1),
        };
        let mut e = event(action, i % 3, &ip, t + i64::from(i));
        if i % 5 == 0 {
            e.table_name = Some("invoices".into());
        }
        events.push(e);
    }
    store_events(&app, events).await;
    let mut r = runner();
    evaluate(&app, &mut r).await;
    let got = alerts(&app).await;
    for f in filters {
        let q = auditdeck::server::streams::filter_query(f).unwrap();
        let shown = store::count_matching(&app.db, &q).await.unwrap().total as i64;
        let fired: i64 = got
            .iter()
            .filter(|a| a.rule_name == f)
            .map(|a| a.events)
            .sum();
        assert!(shown > 0, "{f} matches some events");
        assert_eq!(fired, shown, "{f}");
    }
}

/// 00:00 UTC of a day, in µs.
fn midnight(y: i32, m: u32, d: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

#[tokio::test]
async fn a_weekly_digest_counts_its_week_to_the_microsecond_and_goes_once_to_each_subscriber() {
    use auditdeck::server::charts::week_start_in;
    use std::sync::atomic::Ordering;
    let week_start = |at: i64| week_start_in(at, chrono_tz::UTC);
    let app = TestApp::new().await;
    // The week over the year's end: Monday 28 December to Sunday 3 January.
    let week = midnight(2026, 12, 28);
    assert_eq!(week_start(midnight(2027, 1, 3) + DAY - 1), week);
    assert_eq!(week_start(midnight(2027, 1, 4)), midnight(2027, 1, 4));
    assert_eq!(week_start(midnight(2028, 2, 29)), midnight(2028, 2, 28));
    app.clock().set(week - 1);
    let mut new_ip = settings("new_ip", "");
    new_ip.name = "new ips".into();
    add_rule(&app, &new_ip).await;
    add_rule(&app, &settings("match", "action=DELETE")).await;
    store_events(
        &app,
        vec![
            // The last microsecond of the week before: not counted.
            event("DELETE", 1, "10.0.0.1", week - 1),
            event("LOGIN", 1, "10.0.0.1", week),
            event("LOGIN", 2, "10.0.0.2", week + DAY),
            event("DELETE", 1, "10.0.0.9", week + 2 * DAY),
            event("DELETE", 2, "10.0.0.2", week + 3 * DAY),
            event("DELETE", 1, "10.0.0.1", week + 4 * DAY),
            // Its last microsecond: counted.
            event("EXPORT", 1, "10.0.0.1", week + WEEK - 1),
        ],
    )
    .await;
    app.clock().set(week + WEEK - 1);
    let mut evaluator = runner();
    evaluate(&app, &mut evaluator).await;

    let d = store::digest(&app.db, week, week + WEEK, "UTC")
        .await
        .unwrap();
    assert_eq!(d.events, 6);
    assert_eq!(
        d.by_action,
        vec![
            ("DELETE".to_string(), 3),
            ("LOGIN".to_string(), 2),
            ("EXPORT".to_string(), 1)
        ]
    );
    assert_eq!((d.deletions, d.exports), (3, 1));
    assert_eq!(d.deleted_by.iter().map(|(_, n)| n).sum::<i64>(), 3);
    assert_eq!(d.deleted_by[0].1, 2, "user 1 deleted most");
    // The rules' alerts that began in the week: the new-IP rule's (user 1
    // was seen from 10.0.0.1 the microsecond before the week) and the
    // deletions' (three alerts: a day apart, beyond its hour's window).
    let rules: Vec<(&str, i64, i64)> = d
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.alerts, r.events))
        .collect();
    assert_eq!(rules, vec![("match rule", 3, 3), ("new ips", 2, 2)]);
    assert_eq!(d.new_ip_count, 2);
    assert!(
        d.new_ips.iter().any(|k| k.ends_with("10.0.0.9")),
        "{:?}",
        d.new_ips
    );

    // The server functions: auditors read it, viewers do not, a week must
    // be a Monday's midnight that has begun.
    let admin = app.session_for(Role::Admin).await;
    let auditor = app.session_for(Role::Auditor).await;
    let viewer = app.session_for(Role::Viewer).await;
    let r = app
        .call("weekly_digest", &format!("week={week}"), Some(&auditor))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    let page: auditdeck::alerts::DigestPage = serde_json::from_slice(&r.body).unwrap();
    // The same week, with the sign-ins above (events too).
    let now = store::digest(&app.db, week, week + WEEK, "UTC")
        .await
        .unwrap();
    assert_eq!(page.digest, now);
    assert_eq!(now.events, 6 + 6, "three users made and signed in");
    assert!(!page.can_subscribe);
    let r = app.call("weekly_digest", "", Some(&auditor)).await;
    let page: auditdeck::alerts::DigestPage = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(page.digest.from, week - WEEK, "the week just ended");
    assert_eq!((page.previous, page.next), (week - 2 * WEEK, Some(week)));
    assert_eq!(page.title, "Week of 2026-12-21 to 2026-12-27 (UTC)");
    let r = app
        .call("weekly_digest", &format!("week={week}"), Some(&viewer))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::FORBIDDEN);
    for (bad, said) in [
        (week + 1, "is not the start of a week"),
        (week + WEEK, "has not begun"),
    ] {
        let r = app
            .call("weekly_digest", &format!("week={bad}"), Some(&admin))
            .await;
        assert_eq!(r.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(r.text().contains(said), "{}", r.text());
    }

    // An admin subscribes through a webhook; a Splunk stream is refused.
    let hook = crate::streams::receiver().await;
    let stream =
        crate::streams::stream_with(&app, "webhook", &hook.url, "action=NONE", "", "").await;
    let splunk =
        crate::streams::stream_with(&app, "splunk_hec", &hook.url, "action=NONE", "", "").await;
    let r = app
        .call(
            "set_digest_subscription",
            &format!("stream={splunk}"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        r.status,
        axum::http::StatusCode::BAD_REQUEST,
        "{}",
        r.text()
    );
    let r = app
        .call(
            "set_digest_subscription",
            &format!("stream={stream}"),
            Some(&auditor),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::FORBIDDEN);
    let r = app
        .call(
            "set_digest_subscription",
            &format!("stream={stream}"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    let r = app.call("weekly_digest", "", Some(&admin)).await;
    let page: auditdeck::alerts::DigestPage = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(page.subscription.map(|s| s.stream_id), Some(stream));

    // Its first digest is this week's, due once the week has ended.
    assert_eq!(send_digests(&app, &mut runner()).await, 0);
    hook.failing.store(true, Ordering::SeqCst);
    app.clock().set(week + WEEK);
    assert_eq!(
        send_digests(&app, &mut evaluator).await,
        0,
        "the stream is down"
    );
    let r2 = app.call("weekly_digest", "", Some(&admin)).await;
    let page: auditdeck::alerts::DigestPage = serde_json::from_slice(&r2.body).unwrap();
    let d = store::digest(&app.db, week, week + WEEK, "UTC")
        .await
        .unwrap();
    assert_eq!(page.digest, d, "the week just ended");
    let error = page.subscription.unwrap().error.unwrap_or_default();
    assert!(error.contains("503"), "{error}");
    hook.failing.store(false, Ordering::SeqCst);
    assert_eq!(
        send_digests(&app, &mut evaluator).await,
        0,
        "not before its retry is due"
    );
    app.clock().advance(10 * 60 * 1_000_000);
    assert_eq!(send_digests(&app, &mut evaluator).await, 1);
    // Once: neither this evaluator nor another (a restart) sends it again.
    assert_eq!(send_digests(&app, &mut evaluator).await, 0);
    assert_eq!(send_digests(&app, &mut runner()).await, 0);
    let received = hook.got.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (_, headers, body) = &received[0];
    let id = headers["webhook-id"].to_str().unwrap();
    assert!(
        id.starts_with("adk_digest_") && id.ends_with(&format!("_{}", week / 1_000_000)),
        "{id}"
    );
    let message: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(message["type"], "digest");
    assert_eq!(message["digest"]["events"], d.events);
    assert_eq!(message["digest"]["deletions"], 3);
    assert_eq!(message["digest"]["from"], "2026-12-28T00:00:00.000000Z");
    assert_eq!(
        message["digest"]["by_action"][0]["name"],
        d.by_action[0].0.as_str()
    );

    // Unsubscribing is audited like subscribing; a second one is refused.
    let r = app
        .call("set_digest_subscription", "stream=", Some(&admin))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    let r = app
        .call("set_digest_subscription", "stream=", Some(&admin))
        .await;
    assert_eq!(r.status, axum::http::StatusCode::CONFLICT);
    let audited: Vec<String> = app
        .page(1, 100)
        .await
        .rows
        .into_iter()
        .filter(|e| e.table_name.as_deref() == Some("alert_digests"))
        .map(|e| e.description)
        .collect();
    assert_eq!(
        audited,
        vec![
            "Unsubscribed from the weekly digest".to_string(),
            "Subscribed to the weekly digest through stream \"siem\" (weeks from Monday 00:00 UTC)"
                .to_string(),
        ]
    );

    // An initiator with neither name nor id reads as its kind.
    let mut system = event("DELETE", 1, "10.0.0.1", week + WEEK + 1);
    system.initiator.kind = auditdeck::models::InitiatorKind::System;
    system.initiator.id = None;
    system.initiator.name = None;
    store_events(&app, vec![system]).await;
    let next = store::digest(&app.db, week + WEEK, week + 2 * WEEK, "UTC")
        .await
        .unwrap();
    assert_eq!(next.deleted_by, vec![("system".to_string(), 1)]);
}

#[tokio::test]
async fn a_digest_week_runs_from_monday_midnight_in_the_subscribers_zone_across_a_clock_change() {
    use chrono::TimeZone;
    const HOUR: i64 = 60 * MINUTE;
    let berlin = chrono_tz::Europe::Berlin;
    let local = |y: i32, m: u32, d: u32| {
        berlin
            .with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .unwrap()
            .timestamp_micros()
    };
    // Monday 22 March 2027 to Monday 29 March, Berlin time: the clocks go
    // forward on the Sunday, so the week is 167 hours.
    let (week, end) = (local(2027, 3, 22), local(2027, 3, 29));
    assert_eq!(end - week, 167 * HOUR);
    let app = TestApp::new().await;
    app.clock().set(week + 3 * DAY);
    let admin = app.session_for(Role::Admin).await;
    let hook = crate::streams::receiver().await;
    let stream =
        crate::streams::stream_with(&app, "webhook", &hook.url, "action=NONE", "", "").await;
    for bad in ["Mars/Base", "<b>"] {
        let r = app
            .call(
                "set_digest_subscription",
                &format!(
                    "stream={stream}&zone={}",
                    auditdeck::query::encode_component(bad)
                ),
                Some(&admin),
            )
            .await;
        assert_eq!(r.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = app
        .call(
            "set_digest_subscription",
            &format!("stream={stream}&zone=Europe%2FBerlin"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    store_events(
        &app,
        vec![
            event("DELETE", 1, "10.0.0.1", week - 1),
            event("DELETE", 1, "10.0.0.1", week),
            event("DELETE", 1, "10.0.0.1", end - 1),
            event("DELETE", 1, "10.0.0.1", end),
        ],
    )
    .await;
    let d = store::digest(&app.db, week, end, "Europe/Berlin")
        .await
        .unwrap();
    assert_eq!(
        d.deletions, 2,
        "Monday 00:00 to the last µs of Sunday, local"
    );
    // The page in Berlin: that week, titled in local days; the same
    // instant is no week's start in Berlin, and a made-up zone is refused.
    let r = app
        .call(
            "weekly_digest",
            &format!("week={week}&zone=Europe%2FBerlin"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    let page: auditdeck::alerts::DigestPage = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        page.title,
        "Week of 2027-03-22 to 2027-03-28 (Europe/Berlin)"
    );
    assert_eq!((page.digest.from, page.digest.to), (week, end));
    assert_eq!((page.previous, page.next), (local(2027, 3, 15), None));
    assert_eq!(
        page.subscription.map(|s| s.zone).as_deref(),
        Some("Europe/Berlin")
    );
    for (args, said) in [
        (
            format!("week={}&zone=Europe%2FBerlin", week + HOUR),
            "Monday 00:00 in Europe/Berlin",
        ),
        (
            format!("week={week}&zone=Mars%2FBase"),
            "is not a time zone",
        ),
    ] {
        let r = app.call("weekly_digest", &args, Some(&admin)).await;
        assert_eq!(r.status, axum::http::StatusCode::BAD_REQUEST, "{args}");
        assert!(r.text().contains(said), "{args}: {}", r.text());
    }
    // Sent when Monday begins in Berlin (Sunday 22:00 UTC), not before.
    let mut evaluator = runner();
    app.clock().set(end - 1);
    assert_eq!(send_digests(&app, &mut evaluator).await, 0);
    app.clock().set(end);
    assert_eq!(send_digests(&app, &mut evaluator).await, 1);
    assert_eq!(send_digests(&app, &mut evaluator).await, 0);
    let received = hook.got.lock().unwrap().clone();
    let message: serde_json::Value = serde_json::from_slice(&received[0].2).unwrap();
    assert_eq!(message["digest"]["from"], "2027-03-21T23:00:00.000000Z");
    assert_eq!(message["digest"]["to"], "2027-03-28T22:00:00.000000Z");
    assert_eq!(message["digest"]["zone"], "Europe/Berlin");
    assert_eq!(message["digest"]["deletions"], 2);
    assert_eq!(
        message["digest"]["link"],
        format!("/alerts?digest={week}&zone=Europe/Berlin")
    );
}

async fn send_digests(app: &TestApp, r: &mut AlertRunner) -> usize {
    r.send_digests(&app.db).await.unwrap()
}
