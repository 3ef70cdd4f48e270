//! Streams' cursors and leases against a real database: one holder at a
//! time, taken over when it runs out, a cursor that only its holder moves
//! and only from where it read it.

use crate::common::TestApp;
use auditdeck::server::store;

const SECOND: i64 = 1_000_000;

#[tokio::test]
async fn one_server_holds_a_streams_lease_until_it_runs_out_or_is_let_go() {
    let app = TestApp::new().await;
    let id = store::create_stream(&app.db, "siem", "webhook", "https://siem.example/in", "", 0)
        .await
        .unwrap();
    assert!(
        store::take_stream_lease(&app.db, id, "server-a", 30 * SECOND)
            .await
            .unwrap()
    );
    assert!(
        !store::take_stream_lease(&app.db, id, "server-b", 30 * SECOND)
            .await
            .unwrap()
    );
    // The holder renews it.
    app.clock().advance(20 * SECOND);
    assert!(
        store::take_stream_lease(&app.db, id, "server-a", 30 * SECOND)
            .await
            .unwrap()
    );
    app.clock().advance(20 * SECOND);
    assert!(
        !store::take_stream_lease(&app.db, id, "server-b", 30 * SECOND)
            .await
            .unwrap(),
        "the renewal runs 30 s from its own time"
    );
    // Server A stops renewing: B takes over once it has run out.
    app.clock().advance(10 * SECOND);
    assert!(
        store::take_stream_lease(&app.db, id, "server-b", 30 * SECOND)
            .await
            .unwrap()
    );
    assert!(
        !store::take_stream_lease(&app.db, id, "server-a", 30 * SECOND)
            .await
            .unwrap()
    );
    // Let go, it is free at once.
    store::release_stream_lease(&app.db, id, "server-a")
        .await
        .unwrap();
    assert!(
        !store::take_stream_lease(&app.db, id, "server-a", 30 * SECOND)
            .await
            .unwrap(),
        "A does not hold it"
    );
    store::release_stream_lease(&app.db, id, "server-b")
        .await
        .unwrap();
    assert!(
        store::take_stream_lease(&app.db, id, "server-a", 30 * SECOND)
            .await
            .unwrap()
    );
    // A paused stream is nobody's.
    assert!(store::set_stream_state(&app.db, id, false).await.unwrap());
    assert!(
        !store::take_stream_lease(&app.db, id, "server-a", 30 * SECOND)
            .await
            .unwrap()
    );
    assert!(store::set_stream_state(&app.db, id, true).await.unwrap());
    assert!(
        store::take_stream_lease(&app.db, id, "server-b", 30 * SECOND)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn only_the_holder_moves_the_cursor_and_only_from_where_it_read_it() {
    let app = TestApp::new().await;
    let id = store::create_stream(
        &app.db,
        "siem",
        "webhook",
        "https://siem.example/in",
        "action=DELETE",
        40,
    )
    .await
    .unwrap();
    assert!(store::take_stream_lease(&app.db, id, "a", 30 * SECOND)
        .await
        .unwrap());
    assert!(store::acknowledge_stream(&app.db, id, "a", 40, 90, 12)
        .await
        .unwrap());
    // From a cursor it no longer has, or without the lease: nothing moves.
    assert!(!store::acknowledge_stream(&app.db, id, "a", 40, 140, 5)
        .await
        .unwrap());
    assert!(!store::acknowledge_stream(&app.db, id, "b", 90, 140, 5)
        .await
        .unwrap());
    // A failure keeps the cursor and says why.
    let retry_at = app.now() + 4 * SECOND;
    assert!(
        store::record_stream_failure(&app.db, id, "a", "connection refused", None, retry_at)
            .await
            .unwrap()
    );
    assert!(
        store::record_stream_failure(&app.db, id, "a", "HTTP 503", Some(503), retry_at)
            .await
            .unwrap()
    );
    let s = &store::list_streams(&app.db).await.unwrap()[0];
    assert_eq!((s.cursor_id, s.delivered, s.failures), (90, 12, 2));
    assert_eq!(
        (s.last_error.as_deref(), s.last_status),
        (Some("HTTP 503"), Some(503))
    );
    assert_eq!(s.next_attempt_at, retry_at);
    assert_eq!(s.filter, "action=DELETE");
    // After the lease ran out the old holder cannot acknowledge.
    app.clock().advance(31 * SECOND);
    assert!(!store::acknowledge_stream(&app.db, id, "a", 90, 140, 5)
        .await
        .unwrap());
    assert!(store::take_stream_lease(&app.db, id, "b", 30 * SECOND)
        .await
        .unwrap());
    assert!(store::acknowledge_stream(&app.db, id, "b", 90, 140, 5)
        .await
        .unwrap());
    let s = &store::list_streams(&app.db).await.unwrap()[0];
    assert_eq!(
        (s.cursor_id, s.delivered, s.failures, s.next_attempt_at),
        (140, 17, 0, 0)
    );
}
