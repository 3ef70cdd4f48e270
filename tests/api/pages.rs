use crate::common::{sample_event, TestApp};
use auditdeck::models::Role;
use auditdeck::server::store;
use axum::http::{header, StatusCode};

/// Sample events an hour ahead, so they sort before the sign-in's own events.
fn t0() -> i64 {
    crate::common::test_now() + 3_600_000_000
}

/// An app with `n` events and a viewer's session cookie.
async fn app_with_events(n: u32) -> (TestApp, String) {
    let app = TestApp::new().await;
    let cookie = app.session_for(Role::Viewer).await;
    let events: Vec<_> = (0..n)
        .map(|i| sample_event(i, t0() + i64::from(i) * 1_000_000))
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    (app, cookie)
}

#[tokio::test]
async fn activity_log_is_rendered_on_the_server_with_rows() {
    let (app, cookie) = app_with_events(60).await;
    let r = app.get_with("/activity-log", &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains("Activity Log"));
    // Newest first: event 59 is on page 1, event 0 is not (25 per page).
    assert!(
        html.contains("Updated invoice number59"),
        "rows must be in the HTML"
    );
    assert!(!html.contains("Updated invoice number0<"));
    assert_eq!(html.matches("data-event-id=").count(), 25);
    // The count is the browser's to fetch: the page never waits for it.
    assert!(html.contains("Counting…"), "the count is not awaited");
    // (The activity chart above the table says it in its own words.)
    assert!(!html.contains("62 events<"));
    // 60 samples + the test user's creation and sign-in.
    let count = app
        .call("count_events", "query[page]=1", Some(&cookie))
        .await;
    assert_eq!(count.status, StatusCode::OK, "{}", count.text());
    assert_eq!(count.json()["total"], 62);
}

#[tokio::test]
async fn page_and_size_come_from_the_url() {
    let (app, cookie) = app_with_events(60).await;
    let html = app
        .get_with("/activity-log?page=3&size=10", &cookie)
        .await
        .text();
    assert_eq!(html.matches("data-event-id=").count(), 10);
    assert!(html.contains("Updated invoice number39<"));
    assert!(html.contains("Updated invoice number30<"));
    assert!(!html.contains("Updated invoice number40<"));
    assert!(
        html.contains("Page 3<"),
        "the page number shows before the count arrives"
    );
    assert!(!html.contains("Page 3 of"));
}

#[tokio::test]
async fn malformed_page_parameters_show_a_message() {
    let (app, cookie) = app_with_events(3).await;
    for (uri, field) in [
        ("/activity-log?page=abc", "page:"),
        ("/activity-log?size=13", "size:"),
    ] {
        let html = app.get_with(uri, &cookie).await.text();
        assert!(html.contains("This view cannot be shown"), "{uri}");
        assert!(html.contains(field), "{uri}");
        assert_eq!(html.matches("data-event-id=").count(), 0);
    }
}

#[tokio::test]
async fn logged_text_is_escaped_not_rendered() {
    let app = TestApp::new().await;
    let cookie = app.session_for(Role::Viewer).await;
    let mut event = sample_event(1, t0());
    event.description = "<script>alert('x')</script><b>bold</b>".into();
    store::insert_events(&app.db, &[event], None).await.unwrap();
    let html = app.get_with("/activity-log", &cookie).await.text();
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<b>bold</b>"));
    assert!(html.contains("&lt;script&gt;") || html.contains("&lt;script>"));
}

#[tokio::test]
async fn root_redirects_to_the_overview_and_unknown_pages_are_404() {
    let (app, cookie) = app_with_events(1).await;
    let r = app.get("/").await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/overview");
    let r = app.get_with("/no-such-page", &cookie).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("Page not found"));
}

#[tokio::test]
async fn list_events_server_function_answers_json_and_refuses_bad_queries() {
    let (app, cookie) = app_with_events(30).await;
    let r = app
        .call(
            "list_events",
            "query[page]=2&query[per_page]=10",
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.json();
    assert_eq!(page["has_prev"], true);
    assert_eq!(page["has_next"], true);
    assert_eq!(page["rows"].as_array().unwrap().len(), 10);
    assert_eq!(page["rows"][0]["description"], "Updated invoice number19");

    let r = app
        .call(
            "list_events",
            "query[page]=1&query[per_page]=7",
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("size"), "{}", r.text());
}

#[tokio::test]
async fn a_filtered_sorted_view_is_rendered_on_the_server_from_the_url() {
    let (app, cookie) = app_with_events(40).await;
    let html = app
        .get_with(
            "/activity-log?q=number17&action=UPDATE&sort=ip&dir=desc&size=10",
            &cookie,
        )
        .await
        .text();
    assert_eq!(html.matches("data-event-id=").count(), 1, "only the match");
    let at = html.find("<mark").expect("a mark");
    assert!(
        html[at..].starts_with("<mark>number17"),
        "{}",
        &html[at..at + 60]
    );
    assert!(html.contains(r#"aria-sort="descending""#));
    // The count of the same view, which the browser asks for.
    let count = app
        .call("count_events", "query[q]=number17", Some(&cookie))
        .await;
    assert_eq!(count.json()["total"], 1, "{}", count.text());
    // The filter bar shows the view it came from.
    assert!(html.contains(r#"value="number17""#));
    // A bad parameter is refused with a message naming it, and no rows.
    let bad = app
        .get_with("/activity-log?ip=10.0.0.0/99", &cookie)
        .await
        .text();
    assert!(bad.contains("ip: \"10.0.0.0/99\" is not an IP address or CIDR range"));
    assert_eq!(bad.matches("data-event-id=").count(), 0);
}
