//! The hash chain, verification, checkpoints, retention and legal hold,
//! against a real database; tampering is done with SQL on the file itself.

use crate::common::{sample_event, test_now, TestApp};
use auditdeck::bulk::Selection;
use auditdeck::integrity::{
    ActionRetention, DeletedBy, ProblemKind, RetentionPolicy, VerificationReport, VerifyMode,
};
use auditdeck::models::Role;
use auditdeck::server::store::Exec;
use auditdeck::server::{maintenance, store};
use serde_json::json;

const DAY: i64 = 86_400_000_000;
/// "Now" for these tests: the instant the test apps' clocks stand at.
fn now() -> i64 {
    test_now()
}

/// `n` events, ids 1..=n, one second apart from `start`; odd ones carry
/// JSON with spaces and unicode, so hashing sees the stored text exactly.
async fn with_events(n: u32, start: i64) -> TestApp {
    let app = TestApp::new().await;
    let events: Vec<_> = (0..n)
        .map(|i| {
            let mut e = sample_event(i, start + i64::from(i) * 1_000_000);
            if i % 2 == 1 {
                e.before = Some("{ \"name\" :  \"Zoë\" , \"n\": [1, 2 ] }".into());
                e.ip = None;
                e.session_id = Some("s-1".into());
            }
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    app
}

async fn verify(app: &TestApp, mode: VerifyMode) -> VerificationReport {
    store::verify_chain(&app.db, mode, Vec::new(), |_, _| {})
        .await
        .unwrap()
}

fn assert_intact(report: &VerificationReport) {
    assert!(
        report.intact(),
        "expected intact, found {:?}",
        report
            .problems
            .iter()
            .map(|p| p.describe())
            .collect::<Vec<_>>()
    );
}

/// The filters' combinations and the quarter-hour volumes count what the
/// log holds (see `store::combo_differences`, `store::volume_differences`):
/// sorted pages, counts and the activity chart rely on them.
async fn assert_combos_exact(app: &TestApp) {
    assert_eq!(store::combo_differences(&app.db).await.unwrap(), 0);
    assert_eq!(store::volume_differences(&app.db).await.unwrap(), 0);
}

async fn delete_ids(app: &TestApp, ids: Vec<i64>) -> i64 {
    let selection = Selection::Ids(ids.clone());
    let up_to = store::max_event_id(&app.db).await.unwrap();
    let mut record = sample_event(999, now());
    record.action = "DELETE".into();
    let (deleted, event_id) =
        store::delete_selection(&app.db, &selection, up_to, ids.len() as u64, record)
            .await
            .unwrap();
    assert_eq!(deleted, ids.len() as u64);
    event_id
}

#[tokio::test]
async fn the_chain_verifies_after_inserts_bulk_deletes_and_retention() {
    let app = with_events(40, now() - 30 * DAY).await;
    let report = verify(&app, VerifyMode::Full).await;
    assert_intact(&report);
    assert_eq!((report.checked, report.end_id), (40, 40));

    // A bulk deletion leaves tombstones: the chain still verifies, and the
    // report lists the range with the event that explains it.
    let deletion = delete_ids(&app, vec![30, 31, 32, 35]).await;
    let report = verify(&app, VerifyMode::Full).await;
    assert_intact(&report);
    assert_eq!(report.tombstones, 4);
    assert_eq!(report.deleted.len(), 2);
    assert_eq!((report.deleted[0].first, report.deleted[0].last), (30, 32));
    assert_eq!(
        report.deleted[0].by,
        DeletedBy::Deletion { event_id: deletion }
    );
    assert_eq!(report.end_id, deletion);
    assert_combos_exact(&app).await;

    // Retention removes the oldest; the cut moves; still intact.
    let policy = RetentionPolicy {
        keep_days: Some(10),
        by_action: vec![],
    };
    let outcome = store::apply_retention(
        &app.db,
        &policy,
        now() - 30 * DAY + 20 * 1_000_000 + 10 * DAY,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        outcome.run.removed, 20,
        "events 1..=20 are older than 10 days then"
    );
    assert_eq!(outcome.run.status, "done");
    assert_eq!(outcome.cut_id, 20);
    let report = verify(&app, VerifyMode::Full).await;
    assert_intact(&report);
    assert_eq!(report.start.after_id, 20);
    assert!(report.start.from.contains("retention cut"));
    assert_combos_exact(&app).await;
    // The run's System event records the count.
    let event = store::event_detail(&app.db, outcome.run.event_id.unwrap())
        .await
        .unwrap();
    assert_eq!(event.row.action, "RETENTION");
    assert!(event
        .row
        .description
        .starts_with("Retention removed 20 events"));
    // A retention checkpoint marks the cut.
    let checkpoints = store::list_checkpoints(&app.db).await.unwrap();
    assert!(checkpoints
        .iter()
        .any(|c| c.kind == "retention" && c.last_id == 20));
}

#[tokio::test]
async fn retention_out_of_id_order_leaves_tombstones_above_the_cut() {
    // Ids 1..=10 are recent, 11..=20 are old (sent late): the old ones go,
    // but nothing below them does, so they become tombstones.
    let app = TestApp::new().await;
    let recent: Vec<_> = (0..10)
        .map(|i| sample_event(i, now() - DAY + i64::from(i)))
        .collect();
    let old: Vec<_> = (10..20)
        .map(|i| sample_event(i, now() - 90 * DAY + i64::from(i)))
        .collect();
    store::insert_events(&app.db, &recent, None).await.unwrap();
    store::insert_events(&app.db, &old, None).await.unwrap();
    let policy = RetentionPolicy {
        keep_days: Some(30),
        by_action: vec![],
    };
    let outcome = store::apply_retention(&app.db, &policy, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.run.removed, 10);
    assert_eq!(outcome.cut_id, 0, "event 1 is still there");
    assert_eq!(
        store::tombstone_ids(&app.db).await.unwrap(),
        (11..=20).collect::<Vec<_>>()
    );
    let report = verify(&app, VerifyMode::Full).await;
    assert_intact(&report);
    assert_eq!(
        report.deleted[0].by,
        DeletedBy::Retention {
            run_id: outcome.run.id,
            event_id: outcome.run.event_id
        }
    );
}

/// Five events on each of five days, in time order (ids 1..=25), and one
/// from 100 days ago sent late (id 26); then retention keeps 30 days.
/// Returns the months left, and the months expected to be: on PostgreSQL,
/// every month of the events but those wholly before the cut-off, which go
/// whole (or, when a reader holds the table, every month: the same events
/// go one transaction at a time).
async fn retention_over_months(
    app: &TestApp,
    reader_holds_the_table: bool,
) -> (Vec<String>, Vec<String>) {
    let days = [106, 75, 45, 25, 4];
    let mut rows: Vec<_> = days
        .iter()
        .flat_map(|ago| (0..5).map(move |i| now() - ago * DAY + i64::from(i)))
        .enumerate()
        .map(|(i, at)| sample_event(i as u32, at))
        .collect();
    store::insert_events(&app.db, &rows, None).await.unwrap();
    let mut times: Vec<i64> = rows.iter().map(|r| r.occurred_at).collect();
    rows.truncate(1);
    rows[0].occurred_at = now() - 100 * DAY;
    times.push(rows[0].occurred_at);
    store::insert_events(&app.db, &rows, None).await.unwrap();
    // A long read (an export, say) in a transaction of its own.
    let reader = if reader_holds_the_table {
        let mut tx = app.db.begin_snapshot().await.unwrap();
        let n: i64 = tx
            .scalar(&tx.sql("SELECT COUNT(*) FROM events"))
            .await
            .unwrap();
        assert_eq!(n, 26);
        Some(tx)
    } else {
        None
    };
    let policy = RetentionPolicy {
        keep_days: Some(30),
        by_action: vec![],
    };
    let outcome = store::apply_retention(&app.db, &policy, now())
        .await
        .unwrap()
        .unwrap();
    drop(reader);
    assert_eq!(outcome.run.removed, 16);
    assert_eq!(outcome.cut_id, 15, "everything up to 45 days ago is gone");
    assert_eq!(store::tombstone_ids(&app.db).await.unwrap(), vec![26]);
    assert_eq!(
        app.count().await,
        10 + 1,
        "the kept events and the RETENTION event"
    );
    let report = verify(app, VerifyMode::Full).await;
    assert_intact(&report);
    assert_eq!(report.start.after_id, 15);
    if !app.on_postgres() {
        return (Vec::new(), Vec::new());
    }
    let mut tx = app.db.begin_snapshot().await.unwrap();
    let months = store::list_partitions(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let cutoff = now() - 30 * DAY;
    let expected: std::collections::BTreeSet<String> = times
        .iter()
        .map(|t| store::partition_of(*t))
        .filter(|p| reader_holds_the_table || p.to > cutoff)
        .map(|p| p.name)
        .collect();
    (
        months.into_iter().map(|p| p.name).collect(),
        expected.into_iter().collect(),
    )
}

#[tokio::test]
async fn retention_drops_whole_months_and_the_chain_still_verifies() {
    // The months wholly before the cut-off go whole (on PostgreSQL, their
    // partitions are dropped), the rest of the old events one by one.
    let app = TestApp::new().await;
    let (months, expected) = retention_over_months(&app, false).await;
    assert_eq!(months, expected);
    assert_combos_exact(&app).await;
    if app.on_postgres() {
        assert!(
            months.len() < 5,
            "at least one month went whole: {months:?}"
        );
    }
}

#[tokio::test]
async fn maintenance_makes_the_coming_month_before_events_need_it() {
    let app = TestApp::new().await;
    let pass = store::prepare_partitions(&app.db, now()).await.unwrap();
    let again = store::prepare_partitions(&app.db, now()).await.unwrap();
    let this_month = store::partition_of(now());
    let next_month = store::partition_of(this_month.to);
    if app.on_postgres() {
        assert_eq!(
            pass.made,
            [this_month.name.clone(), next_month.name.clone()]
        );
        assert_eq!(again, store::PartitionPass::default(), "nothing left to do");
        let mut tx = app.db.begin_snapshot().await.unwrap();
        let months = store::list_partitions(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(months, [this_month.clone(), next_month.clone()]);
    }
    // Events of those months go in as before, into their own partitions.
    let rows = [sample_event(0, now()), sample_event(1, next_month.from)];
    store::insert_events(&app.db, &rows, None).await.unwrap();
    assert_eq!(app.count().await, 2);
    assert_eq!(store::default_partition_count(&app.db).await.unwrap(), 0);
}

#[tokio::test]
async fn a_month_a_reader_holds_goes_row_by_row() {
    // Dropping a partition would wait for the open read: it gives up, and
    // the same events go one transaction at a time.
    let app = TestApp::new().await;
    let (months, expected) = retention_over_months(&app, true).await;
    assert_eq!(months, expected);
}

#[tokio::test]
async fn retention_keeps_exactly_the_rows_inside_the_policy() {
    let app = TestApp::new().await;
    let cutoff = now() - 10 * DAY;
    let login_cutoff = now() - 2 * DAY;
    let mut events = vec![
        // Default rule (10 days): just outside, exactly at, just inside.
        (cutoff - 1, "UPDATE"),
        (cutoff, "UPDATE"),
        (cutoff + 1, "UPDATE"),
        // LOGIN: 2 days.
        (login_cutoff - 1, "LOGIN"),
        (login_cutoff, "LOGIN"),
        // DELETE: forever, however old.
        (now() - 900 * DAY, "DELETE"),
    ];
    events.push((now() - 20 * DAY, "LOGIN"));
    let rows: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, (at, action))| {
            let mut e = sample_event(i as u32, *at);
            e.action = (*action).into();
            e
        })
        .collect();
    store::insert_events(&app.db, &rows, None).await.unwrap();
    let policy = RetentionPolicy {
        keep_days: Some(10),
        by_action: vec![
            ActionRetention {
                action: "LOGIN".into(),
                keep_days: Some(2),
            },
            ActionRetention {
                action: "DELETE".into(),
                keep_days: None,
            },
        ],
    };
    let outcome = store::apply_retention(&app.db, &policy, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.run.removed, 3);
    let left: Vec<(i64, String)> = app
        .page(1, 100)
        .await
        .rows
        .into_iter()
        .filter(|r| r.action != "RETENTION")
        .map(|r| (r.occurred_at, r.action))
        .collect();
    let mut expected = vec![
        (cutoff, "UPDATE".to_string()),
        (cutoff + 1, "UPDATE".to_string()),
        (login_cutoff, "LOGIN".to_string()),
        (now() - 900 * DAY, "DELETE".to_string()),
    ];
    let mut got = left.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert_intact(&verify(&app, VerifyMode::Full).await);

    // A policy that keeps everything does not run at all.
    assert!(
        store::apply_retention(&app.db, &RetentionPolicy::default(), now())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_edited_field_is_detected_and_named() {
    let app = with_events(20, now()).await;
    app.raw_sql("UPDATE events SET description = 'nothing happened' WHERE id = 7")
        .await;
    let report = verify(&app, VerifyMode::Full).await;
    assert!(!report.intact());
    let first = &report.problems[0];
    assert_eq!(first.id, 7);
    match &first.kind {
        ProblemKind::Content {
            fields,
            stored,
            computed,
        } => {
            assert_eq!(fields, &["description"]);
            assert_ne!(stored, computed);
        }
        other => panic!("expected a content problem, got {other:?}"),
    }
    assert_eq!(report.problems.len(), 1, "only the edited row is wrong");
    assert!(first.describe().contains("changed: description"));

    // JSON edited in place (same meaning, other text) is an edit too.
    app.raw_sql("UPDATE events SET before_data = '{\"status\": \"open\"}' WHERE id = 12")
        .await;
    let report = verify(&app, VerifyMode::Full).await;
    assert!(report.problems.iter().any(|p| p.id == 12
        && matches!(&p.kind, ProblemKind::Content { fields, .. } if fields == &["before"])));
}

#[tokio::test]
async fn a_row_deleted_without_a_tombstone_is_detected() {
    let app = with_events(20, now()).await;
    app.raw_sql("DELETE FROM events WHERE id = 5").await;
    let report = verify(&app, VerifyMode::Full).await;
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].id, 6);
    assert_eq!(
        report.problems[0].kind,
        ProblemKind::Missing { first: 5, last: 5 }
    );
    assert!(report.problems[0].describe().contains("#5 is missing"));

    // The newest row removed: the recorded head gives it away.
    app.raw_sql("DELETE FROM events WHERE id = 20").await;
    let report = verify(&app, VerifyMode::Full).await;
    assert!(report.problems.iter().any(|p| matches!(
        p.kind,
        ProblemKind::Head {
            recorded_id: 20,
            found_id: 19,
            ..
        }
    )));
}

#[tokio::test]
async fn swapped_rows_are_detected_at_the_first_of_them() {
    let app = with_events(20, now()).await;
    app.raw_sql(
        "UPDATE events SET id = -3 WHERE id = 3; \
         UPDATE events SET id = 3 WHERE id = 8; \
         UPDATE events SET id = 8 WHERE id = -3;",
    )
    .await;
    let report = verify(&app, VerifyMode::Full).await;
    let first = &report.problems[0];
    assert_eq!(first.id, 3);
    assert!(
        matches!(&first.kind, ProblemKind::Content { fields, .. } if fields.contains(&"id".to_string())),
        "{first:?}"
    );
    assert!(first.describe().contains("moved or swapped"));
    // The two rows, and only them: the links a move breaks are its own.
    let ids: Vec<i64> = report.problems.iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![3, 8]);
}

#[tokio::test]
async fn a_row_inserted_around_the_app_is_unchained_and_the_chain_goes_on() {
    let app = with_events(5, now()).await;
    if app.on_postgres() {
        // No id of its own there: the forger picks the next one.
        app.raw_sql(&format!(
            "INSERT INTO events (id, occurred_at, received_at, initiator_kind, action, description) \
             SELECT MAX(id) + 1, {}, 1, 'system', 'CREATE', 'forged' FROM events",
            now()
        ))
        .await;
    } else {
        app.raw_sql(
            "INSERT INTO events (occurred_at, received_at, initiator_kind, action, description) \
             VALUES (1, 1, 'system', 'CREATE', 'forged')",
        )
        .await;
    }
    // The app's next event skips past the forged id and links to its head.
    store::insert_events(&app.db, &[sample_event(50, now())], None)
        .await
        .unwrap();
    let report = verify(&app, VerifyMode::Full).await;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].id, 6);
    assert_eq!(report.problems[0].kind, ProblemKind::Unchained);
}

#[tokio::test]
async fn checkpoints_let_a_quick_walk_start_late_and_catch_a_rewritten_chain() {
    let app = with_events(30, now()).await;
    let checkpoint = store::write_checkpoint(&app.db, "periodic")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((checkpoint.last_id, checkpoint.entry_count), (30, 30));
    // Not confirmed yet: a quick walk starts from the beginning.
    let report = verify(&app, VerifyMode::Quick).await;
    assert_eq!(report.start.after_id, 0);
    assert_eq!(report.checkpoints_confirmed, 1);
    // Record it as a verification would; then the quick walk starts there.
    let id = store::begin_verification(&app.db, "test", VerifyMode::Full)
        .await
        .unwrap();
    let record = sample_event(77, now());
    store::finish_verification(&app.db, id, Some(&report), record)
        .await
        .unwrap();
    store::insert_events(&app.db, &[sample_event(31, now())], None)
        .await
        .unwrap();
    let quick = verify(&app, VerifyMode::Quick).await;
    assert_intact(&quick);
    assert_eq!(quick.start.after_id, 30);
    assert_eq!(quick.checked, 2, "the VERIFY event and one more");

    // A file kept elsewhere still holds the true hash; rewrite history
    // (hashes included, as a thorough forger would) and the file disagrees.
    let line = maintenance::checkpoint_line(&checkpoint);
    let mut forged = store::list_checkpoints(&app.db).await.unwrap()[0].clone();
    forged.chain_hash = "00".repeat(32);
    let external = maintenance::parse_checkpoints(&format!(
        "{line}\n{}\n",
        maintenance::checkpoint_line(&forged)
    ))
    .unwrap();
    let report = store::verify_chain(&app.db, VerifyMode::Full, external, |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(matches!(
        report.problems[0].kind,
        ProblemKind::Checkpoint { .. }
    ));
    assert!(maintenance::parse_checkpoints("{\"checkpoint\": 1}").is_err());
}

#[tokio::test]
async fn an_old_database_is_hashed_when_opened() {
    let app = with_events(25, now()).await;
    if app.on_postgres() {
        // A PostgreSQL database starts with the chain: nothing to hash.
        return;
    }
    delete_ids(&app, vec![4]).await;
    // As a database from before the chain: no hashes, no chain state.
    app.raw_sql(
        "UPDATE events SET content_hash = NULL, chain_hash = NULL, field_sums = NULL; \
         UPDATE event_tombstones SET content_hash = NULL, chain_hash = NULL; \
         DELETE FROM chain_state;",
    )
    .await;
    let reopened = store::open(&app.url).await.unwrap();
    let report = store::verify_chain(&reopened, VerifyMode::Full, Vec::new(), |_, _| {})
        .await
        .unwrap();
    assert_intact(&report);
    assert_eq!((report.events, report.tombstones), (25, 1));
    reopened.close().await;
}

#[tokio::test]
async fn legal_hold_blocks_deletion_and_retention() {
    let app = with_events(10, now() - 100 * DAY).await;
    let admin = app.session_for(Role::Admin).await;
    let viewer = app.session_for(Role::Viewer).await;
    let hold = json!({"policy": null, "legal_hold": true});
    let r = app.call_json("save_retention", hold.clone(), &viewer).await;
    assert_eq!(r.status.as_u16(), 403);
    let r = app.call_json("save_retention", hold, &admin).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.json()["legal_hold"], true);
    // The change is an audited event.
    assert!(app
        .events_with_action("UPDATE")
        .await
        .iter()
        .any(|(d, _)| d.contains("legal hold")));

    let selection = json!({"Ids": [2, 3]});
    let r = app
        .call_json("plan_deletion", json!({"selection": selection}), &admin)
        .await;
    assert_eq!(r.status.as_u16(), 409);
    assert!(r.text().contains("legal hold"), "{}", r.text());
    let r = app
        .call_json(
            "delete_events",
            json!({"selection": selection, "plan": {"count": 2, "up_to_id": 10}}),
            &admin,
        )
        .await;
    assert_eq!(r.status.as_u16(), 409, "{}", r.text());
    let policy = RetentionPolicy {
        keep_days: Some(1),
        by_action: vec![],
    };
    let outcome = store::apply_retention(&app.db, &policy, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (outcome.run.status.as_str(), outcome.run.removed),
        ("held", 0)
    );
    assert!(store::event_detail(&app.db, 2).await.is_ok());

    // Lifted: both work again.
    let r = app
        .call_json(
            "save_retention",
            json!({"policy": null, "legal_hold": false}),
            &admin,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let r = app
        .call_json("plan_deletion", json!({"selection": selection}), &admin)
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let outcome = store::apply_retention(&app.db, &policy, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.run.removed, 10);
}

#[tokio::test]
async fn a_policy_set_in_settings_is_validated_and_overrides_the_file() {
    let app = TestApp::new().await;
    let admin = app.session_for(Role::Admin).await;
    let bad = json!({"policy": {"keep_days": 0, "by_action": []}, "legal_hold": false});
    let r = app.call_json("save_retention", bad, &admin).await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.text().contains("at least 1 day"), "{}", r.text());
    let good = json!({"policy": {"keep_days": 90, "by_action": [{"action": " LOGIN ", "keep_days": 30}]}, "legal_hold": false});
    let r = app.call_json("save_retention", good, &admin).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let r = app.call("retention_settings", "", Some(&admin)).await;
    let s = r.json();
    assert_eq!(s["from_settings"], true);
    assert_eq!(s["policy"]["keep_days"], 90);
    assert_eq!(s["policy"]["by_action"][0]["action"], "LOGIN");
}

#[tokio::test]
async fn admins_verify_from_the_dashboard_and_everyone_sees_the_result() {
    let app = with_events(15, now()).await;
    let viewer = app.session_for(Role::Viewer).await;
    let admin = app.session_for(Role::Admin).await;
    let r = app
        .call("start_verification", "mode=full", Some(&viewer))
        .await;
    assert_eq!(r.status.as_u16(), 403);
    let r = app
        .call("start_verification", "mode=sideways", Some(&admin))
        .await;
    assert_eq!(r.status.as_u16(), 400);
    let r = app
        .call("start_verification", "mode=full", Some(&admin))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = app.call("integrity_status", "", Some(&viewer)).await.json();
        if status["last"]["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["last"]["status"], "intact", "{status}");
    assert!(status["last"]["checked"].as_u64().unwrap() >= 15);
    // The verification is an event of its own.
    assert!(app
        .events_with_action("VERIFY")
        .await
        .iter()
        .any(|(d, _)| d.contains("intact")));
    // Checkpoints download for auditors, not viewers.
    let r = app.get_with("/api/integrity/checkpoints", &viewer).await;
    assert_eq!(r.status.as_u16(), 403);
    let auditor = app.session_for(Role::Auditor).await;
    let r = app.get_with("/api/integrity/checkpoints", &auditor).await;
    assert_eq!(r.status.as_u16(), 200);
    let parsed = maintenance::parse_checkpoints(&r.text()).unwrap();
    assert!(!parsed.is_empty(), "the verification left a checkpoint");
}

#[tokio::test]
async fn the_cut_moves_over_many_tombstones_in_short_steps() {
    // Event 1 is recent; 2..=6001 are old: the first run tombstones them all
    // (event 1 holds the cut at 0). Once event 1 goes too, the cut moves
    // over 6,000 tombstones, at most 5,000 per transaction.
    let app = TestApp::new().await;
    let mut first = sample_event(0, now() - DAY);
    first.action = "LOGIN".into();
    store::insert_events(&app.db, &[first], None).await.unwrap();
    let old: Vec<_> = (1..=6000)
        .map(|i| sample_event(i, now() - 90 * DAY + i64::from(i)))
        .collect();
    store::insert_events(&app.db, &old, None).await.unwrap();
    let keep_30 = RetentionPolicy {
        keep_days: Some(30),
        by_action: vec![],
    };
    let run = store::apply_retention(&app.db, &keep_30, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((run.run.removed, run.cut_id), (6000, 0));
    assert_eq!(store::tombstone_ids(&app.db).await.unwrap().len(), 6000);
    assert_intact(&verify(&app, VerifyMode::Full).await);

    let login_gone = RetentionPolicy {
        keep_days: Some(30),
        by_action: vec![ActionRetention {
            action: "LOGIN".into(),
            keep_days: Some(1),
        }],
    };
    let run = store::apply_retention(&app.db, &login_gone, now() + DAY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.run.removed, 1);
    assert!(
        run.chunks >= 2,
        "the removal moves over 5,000 tombstones, one more step the rest: {}",
        run.chunks
    );
    // Everything below the first run's RETENTION event (#6002) is behind the cut.
    assert_eq!(run.cut_id, 6001);
    assert!(store::tombstone_ids(&app.db).await.unwrap().is_empty());
    let report = verify(&app, VerifyMode::Full).await;
    assert_intact(&report);
    assert_eq!(report.start.after_id, 6001);
}

#[tokio::test]
async fn the_verify_command_reports_and_exits_by_the_result() {
    let app = with_events(12, now()).await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_auditdeck"))
            .args(args)
            .env("AUDITDECK_DATABASE_URL", &app.url)
            .env("AUDITDECK_LOG", "warn")
            .output()
            .expect("run auditdeck")
    };
    let out = run(&["verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("intact, 12 entries checked"), "{text}");

    // Checkpoints print as JSON Lines, which verify reads back.
    let out = run(&["checkpoints", "--new"]);
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(maintenance::parse_checkpoints(&lines).unwrap().len() >= 2);
    let file = app.dir().join("kept.jsonl");
    std::fs::write(&file, &lines).unwrap();

    app.raw_sql("UPDATE events SET initiator_name = 'Mallory' WHERE id = 7")
        .await;
    let out = run(&["verify", "--checkpoints", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("BROKEN"), "{text}");
    assert!(
        text.contains(
            "problem: Event #7: its content does not match its hash; changed: initiator_name"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_verification_whose_progress_stopped_for_a_minute_is_given_up() {
    let app = with_events(3, now()).await;
    let first = store::begin_verification(&app.db, "a@example.com", VerifyMode::Quick)
        .await
        .unwrap();
    // A minute without progress, to the microsecond: still running.
    app.clock().advance(60_000_000);
    let refused = store::begin_verification(&app.db, "b@example.com", VerifyMode::Quick).await;
    assert!(
        matches!(refused, Err(auditdeck::errors::AppError::Conflict(_))),
        "{refused:?}"
    );
    // Longer: its server is taken to have stopped, and a new one may start.
    app.clock().advance(1);
    let second = store::begin_verification(&app.db, "b@example.com", VerifyMode::Quick)
        .await
        .unwrap();
    assert_ne!(first, second);
    let rows = store::recent_verifications(&app.db, 5).await.unwrap();
    let status = |id| rows.iter().find(|r| r.id == id).map(|r| r.status.clone());
    assert_eq!(status(first).as_deref(), Some("failed"));
    assert_eq!(status(second).as_deref(), Some("running"));
    assert_eq!(
        rows.iter().find(|r| r.id == first).unwrap().finished_at,
        Some(now() + 60_000_001)
    );
}
