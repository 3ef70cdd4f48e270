//! Admin Sessions recording: what is recorded, how it is classified and
//! masked, and that the background writer loses nothing.

use crate::common::TestApp;
use auditdeck::models::Role;
use auditdeck::server::recorder;
use auditdeck::server::store::{self, NewAdminSession};
use std::time::Duration;

/// Waits until the writer has stored at least `n` records.
async fn stored_at_least(app: &TestApp, n: u64) -> Vec<NewAdminSession> {
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
