use crate::common::{sample_event, TestApp};
use auditdeck::errors::AppError;
use auditdeck::models::{EventQuery, InitiatorKind};
use auditdeck::server::store;
use auditdeck::server::{api_keys, demo};

const T0: i64 = 1_761_566_400_000_000;

#[tokio::test]
async fn events_round_trip_and_list_newest_first() {
    let app = TestApp::new().await;
    // Stored out of time order: the listing orders by occurred_at, then id.
    let events: Vec<_> = [3, 1, 2, 2]
        .iter()
        .enumerate()
        .map(|(i, minutes)| sample_event(i as u32, T0 + minutes * 60_000_000 + 123))
        .collect();
    let ids = store::insert_events(&app.db, &events, None).await.unwrap();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));

    let page = app.page(1, 10).await;
    assert_eq!(page.rows.len(), 4);
    assert!(!page.has_next && !page.has_prev);
    let order: Vec<i64> = page.rows.iter().map(|r| r.id).collect();
    assert_eq!(order, vec![ids[0], ids[3], ids[2], ids[1]]);
    let first = &page.rows[0];
    assert_eq!(
        first.occurred_at,
        T0 + 3 * 60_000_000 + 123,
        "microseconds kept"
    );
    assert_eq!(first.ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(first.initiator.kind, InitiatorKind::User);
    assert_eq!(first.initiator.email.as_deref(), Some("user0@example.com"));
    assert_eq!(first.table_name.as_deref(), Some("invoices"));
    assert!(first.has_changes);
    let (before, after) = store::event_changes(&app.db, ids[0]).await.unwrap();
    assert_eq!(before.as_deref(), Some(r#"{"status":"open"}"#));
    assert_eq!(after.as_deref(), Some(r#"{"status":"paid"}"#));
}

#[tokio::test]
async fn pages_partition_the_log() {
    let app = TestApp::new().await;
    let events: Vec<_> = (0..57)
        .map(|i| sample_event(i, T0 + i64::from(i)))
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let mut seen = Vec::new();
    for page in 1..=3 {
        let p = app.page(page, 25).await;
        assert_eq!(p.has_next, page < 3);
        assert_eq!(p.has_prev, page > 1);
        seen.extend(p.rows.iter().map(|r| r.occurred_at));
    }
    let mut expected: Vec<i64> = (0..57).map(|i| T0 + i).collect();
    expected.reverse();
    assert_eq!(seen, expected);
    let beyond = app.page(4, 25).await;
    assert!(beyond.rows.is_empty());
}

#[tokio::test]
async fn invalid_queries_are_refused() {
    let app = TestApp::new().await;
    for q in [
        EventQuery {
            page: 0,
            ..EventQuery::default()
        },
        EventQuery {
            per_page: 7,
            ..EventQuery::default()
        },
        EventQuery {
            ip: Some("10.0.0.0/99".into()),
            ..EventQuery::default()
        },
    ] {
        assert!(matches!(
            store::list_events(&app.db, &q).await,
            Err(AppError::BadRequest(_))
        ));
    }
}

#[tokio::test]
async fn a_failing_batch_stores_nothing() {
    let app = TestApp::new().await;
    let mut events: Vec<_> = (0..10).map(|i| sample_event(i, T0)).collect();
    events[7].after = Some("{not json".into());
    let result = store::insert_events(&app.db, &events, None).await;
    assert_eq!(
        result,
        Err(AppError::Internal),
        "database text must not leak"
    );
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn keyword_index_follows_inserts() {
    let app = TestApp::new().await;
    let mut events: Vec<_> = (0..5).map(|i| sample_event(i, T0 + i64::from(i))).collect();
    events[2].description = "Refund approved for customer Zanzibar".into();
    events[4].ip = Some("2001:db8::42".parse().unwrap());
    let ids = store::insert_events(&app.db, &events, None).await.unwrap();
    assert_eq!(
        store::search_event_ids(&app.db, "zanzibar", 10)
            .await
            .unwrap(),
        vec![ids[2]]
    );
    assert_eq!(
        store::search_event_ids(&app.db, "user3", 10).await.unwrap(),
        vec![ids[3]]
    );
    assert_eq!(
        store::search_event_ids(&app.db, "\"2001 db8 42\"", 10)
            .await
            .unwrap(),
        vec![ids[4]]
    );
    assert_eq!(
        store::search_event_ids(&app.db, "invoices", 10)
            .await
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn ip_keys_sort_as_addresses() {
    let a = store::ip_key("10.0.0.1".parse().unwrap());
    let b = store::ip_key("10.0.0.2".parse().unwrap());
    let c = store::ip_key("192.168.0.1".parse().unwrap());
    assert!(a < b && b < c);
    assert_eq!(
        store::ip_key("10.0.0.1".parse().unwrap()),
        store::ip_key("::ffff:10.0.0.1".parse().unwrap())
    );
}

#[tokio::test]
async fn api_keys_are_stored_hashed_and_can_be_revoked() {
    let app = TestApp::new().await;
    let (id, key) = api_keys::create(&app.db, "crm").await.unwrap();
    let found = api_keys::authenticate(&app.db, Some(&format!("Bearer {key}")))
        .await
        .unwrap();
    assert_eq!((found.id, found.label.as_str()), (id, "crm"));
    assert!(
        store::find_active_api_key(&app.db, &key)
            .await
            .unwrap()
            .is_none(),
        "plain key is not stored"
    );
    store::revoke_api_key(&app.db, id).await.unwrap();
    assert!(matches!(
        api_keys::authenticate(&app.db, Some(&format!("Bearer {key}"))).await,
        Err(AppError::Unauthorized(_))
    ));
    assert!(matches!(
        api_keys::create(&app.db, "  ").await,
        Err(AppError::BadRequest(_))
    ));
}

#[tokio::test]
async fn admin_sessions_are_stored() {
    let app = TestApp::new().await;
    let spec = demo::DemoSpec {
        seed: 1,
        events: 0,
        sessions: 300,
        anchor: T0,
    };
    store::insert_admin_sessions(&app.db, &demo::sessions(&spec))
        .await
        .unwrap();
    assert_eq!(store::count_admin_sessions(&app.db).await.unwrap(), 300);
}

#[tokio::test]
async fn demo_load_fills_both_tables() {
    let app = TestApp::new().await;
    let spec = demo::DemoSpec {
        seed: 9,
        events: 12_000,
        sessions: 500,
        anchor: app.now(),
    };
    demo::load(&app.db, &spec).await.unwrap();
    assert_eq!(app.count().await, 12_000);
    assert_eq!(store::count_admin_sessions(&app.db).await.unwrap(), 500);
    let newest = store::list_events(&app.db, &EventQuery::default())
        .await
        .unwrap();
    assert!(newest.rows[0].occurred_at <= app.now());
    assert!(
        newest.rows[11_999.min(newest.rows.len() - 1)].occurred_at
            > app.now() - 90 * 86_400_000_000
    );
    assert!(newest
        .rows
        .windows(2)
        .all(|w| w[0].occurred_at >= w[1].occurred_at));
    if crate::common::test_on_postgres() {
        // The planner has statistics for every month the load filled, so
        // filtered pages are planned from them, not from guesses.
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&app.url).await.unwrap();
        let unanalysed: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_stat_user_tables \
             WHERE relname LIKE 'events_p%' AND n_live_tup > 0 \
             AND last_analyze IS NULL AND last_autoanalyze IS NULL",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(unanalysed.is_empty(), "never analysed: {unanalysed:?}");
        let analysed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_user_tables \
             WHERE relname LIKE 'events_p%' AND last_analyze IS NOT NULL",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(analysed > 0);
    }
}

#[tokio::test]
async fn demo_users_exist_for_every_role_and_sign_in_with_the_printed_password() {
    let app = TestApp::new().await;
    let users = demo::create_users(&app.db, &crate::common::cli())
        .await
        .unwrap();
    let roles: Vec<_> = users.iter().map(|(role, _, _)| *role).collect();
    assert_eq!(
        roles,
        auditdeck::models::Role::ALL
            .to_vec()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
    );
    for (role, username, password) in &users {
        assert!(password.len() >= 16);
        let r = app.login(username, password).await;
        assert!(r.status.is_redirection(), "{role:?} cannot sign in");
    }
}

/// Under flat-out ingest a checkpoint beside the writer never finds the
/// log fully copied, so SQLite's write-ahead log would never start over by
/// itself (it grew to gigabytes within a minute); the writer starts it over
/// when the checkpointer finds it long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_steady_ingest_the_write_ahead_log_stays_short() {
    let app = TestApp::new().await;
    if app.on_postgres() {
        return;
    }
    let wal = app.dir().join("test.db-wal");
    let events: Vec<_> = demo::events_iter(&demo::DemoSpec {
        seed: 3,
        events: 150_000,
        sessions: 0,
        anchor: T0,
    })
    .collect();
    let mut longest = 0;
    for batch in events.chunks(1_000) {
        store::insert_events(&app.db, batch, None).await.unwrap();
        longest = longest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(longest > 0, "the database is in WAL mode");
    assert!(
        longest < 256 << 20,
        "the write-ahead log grew to {} MB while 150,000 events were stored",
        longest >> 20
    );
    assert_eq!(store::count_events(&app.db).await.unwrap(), 150_000);
}
