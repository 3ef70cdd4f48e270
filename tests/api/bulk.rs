//! Bulk export and deletion against a real database, through the server
//! functions and the download route as the browser calls them.

use crate::common::{sample_event, TestApp};
use auditdeck::bulk::TYPE_TO_CONFIRM_OVER;
use auditdeck::models::Role;
use auditdeck::server::store;
use serde_json::{json, Value};

const T0: i64 = 1_761_566_400_000_000;

/// 30 events (ids 1..=30): every third a DELETE (1, 4, 7, …), event 7 a formula.
async fn seeded() -> TestApp {
    let app = TestApp::new().await;
    let events: Vec<_> = (0..30u32)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i) * 1_000_000);
            if i % 3 == 0 {
                e.action = "DELETE".into();
            }
            if i == 6 {
                e.description = "=HYPERLINK(\"http://evil.example\")".into();
            }
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    app
}

fn by_filter(action: &str) -> Value {
    json!({"Filter": {"actions": [action]}})
}

/// Prepares and downloads an export; returns the status and body.
async fn export(app: &TestApp, cookie: &str, selection: Value, format: &str) -> (u16, Vec<u8>) {
    let r = app
        .call_json(
            "start_export",
            json!({"selection": selection, "format": format}),
            cookie,
        )
        .await;
    if r.status.as_u16() != 200 {
        return (r.status.as_u16(), r.body);
    }
    let url = format!("/api/exports/{}", r.json()["token"].as_str().unwrap());
    let d = app.get_with(&url, cookie).await;
    (d.status.as_u16(), d.body)
}

fn csv_rows(body: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a UTF-8 byte-order mark");
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn csv_export_by_filter_equals_export_by_the_same_ids_and_is_audited() {
    let app = seeded().await;
    let auditor = app.session_for(Role::Auditor).await;
    let (status, by_filter_body) = export(&app, &auditor, by_filter("DELETE"), "Csv").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&by_filter_body));
    let rows = csv_rows(&by_filter_body);
    assert_eq!(rows.len(), 10);
    // Newest first, every field present.
    let ids: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(ids, vec![28, 25, 22, 19, 16, 13, 10, 7, 4, 1]);
    assert!(rows.iter().all(|r| r[8] == "DELETE" && r.len() == 17));
    // The formula is neutralised; plain text is not touched.
    let evil = rows.iter().find(|r| r[0] == "7").unwrap();
    assert_eq!(evil[11], "'=HYPERLINK(\"http://evil.example\")");
    assert_eq!(
        rows.iter().find(|r| r[0] == "10").unwrap()[11],
        "Updated invoice number9"
    );

    let (_, by_ids_body) = export(&app, &auditor, json!({"Ids": ids}), "Csv").await;
    assert_eq!(by_ids_body, by_filter_body, "same rows, same bytes");

    // Each export is an event: who, format and what was selected.
    let exports = app.events_with_action("EXPORT").await;
    assert_eq!(exports.len(), 2);
    assert!(exports
        .iter()
        .any(|(d, _)| d == "Exported 10 events as CSV (filter action=DELETE)"));
    assert!(exports
        .iter()
        .any(|(d, _)| d.starts_with("Exported 10 events as CSV (ids 28, 25")));
}

#[tokio::test]
async fn json_lines_round_trip() {
    let app = seeded().await;
    let admin = app.session_for(Role::Admin).await;
    let (status, body) = export(&app, &admin, json!({"Ids": [3, 5, 8]}), "JsonLines").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let id = line["id"].as_i64().unwrap();
        let stored = store::event_detail(&app.db, id).await.unwrap();
        assert_eq!(line["description"], stored.row.description);
        assert_eq!(line["action"], stored.row.action);
        assert_eq!(
            line["initiator"]["email"],
            json!(stored.row.initiator.email)
        );
        assert_eq!(line["ip"], json!(stored.row.ip));
        assert_eq!(line["request_id"], json!(stored.request_id));
        let (before, after) = store::event_changes(&app.db, id).await.unwrap();
        // before/after are JSON values, not strings.
        assert_eq!(
            line["before"],
            serde_json::from_str::<Value>(&before.unwrap()).unwrap()
        );
        assert_eq!(
            line["after"],
            serde_json::from_str::<Value>(&after.unwrap()).unwrap()
        );
        assert!(line["occurred_at"].as_str().unwrap().ends_with('Z'));
    }
}

/// A PDF's text as poppler's `pdftotext` reads it (layout kept).
fn pdf_text(body: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8", "-", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("pdftotext (Debian's poppler-utils) on PATH");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "pdftotext refused the PDF");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn pdf_export_is_a_pdf_report() {
    let app = seeded().await;
    let auditor = app.session_for(Role::Auditor).await;
    let (status, body) = export(&app, &auditor, json!({"Filter": {}}), "Pdf").await;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"%PDF-"));
    let raw = String::from_utf8_lossy(&body);
    assert!(raw.trim_end().ends_with("%%EOF"));
    // 30 events and the auditor's own sign-in fit one page.
    assert_eq!(
        raw.matches("/Type /Page\n").count() + raw.matches("/Type /Page ").count(),
        1
    );
    let text = pdf_text(&body);
    assert!(text.contains("Auditdeck – Activity Log export"), "{text}");
    assert!(text.contains("Page 1 of 1"));
    assert!(text.contains("Entries: 32"), "{text}");
}

/// Events in six scripts (and Latin with accents and symbols) come out of
/// the PDF as written: embedded fonts, not `?`.
#[tokio::test]
async fn pdf_export_prints_every_script() {
    let app = TestApp::new().await;
    let texts = [
        "Zürich – 5 € ✓",
        "Пароль изменён",
        "Ο κωδικός άλλαξε",
        "הסיסמה שונתה",
        "تم تغيير كلمة المرور",
        "密码已更改",
        "パスワード変更",
        "비밀번호 변경",
    ];
    let events: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut e = sample_event(i as u32, T0 + i as i64 * 1_000_000);
            e.description = (*text).into();
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let auditor = app.session_for(Role::Auditor).await;
    let (status, body) = export(&app, &auditor, json!({"Filter": {}}), "Pdf").await;
    assert_eq!(status, 200);
    let raw = String::from_utf8_lossy(&body);
    assert!(raw.contains("/FontFile2"), "a font is embedded");
    if let Ok(path) = std::env::var("AUDITDECK_TEST_PDF_OUT") {
        std::fs::write(path, &body).unwrap();
    }
    let text = pdf_text(&body);
    assert!(!text.contains('?'), "{text}");
    for written in texts {
        // Right-to-left words may come back in either order: each word must.
        for word in written.split(' ') {
            assert!(text.contains(word), "{word:?} is missing from\n{text}");
        }
    }
}

#[tokio::test]
async fn viewers_may_not_export_and_tickets_belong_to_their_owner() {
    let app = seeded().await;
    let viewer = app.session_for(Role::Viewer).await;
    let (status, _) = export(&app, &viewer, by_filter("DELETE"), "Csv").await;
    assert_eq!(status, 403);
    let auditor = app.session_for(Role::Auditor).await;
    let other = app.session_for(Role::Auditor).await;
    let r = app
        .call_json(
            "start_export",
            json!({"selection": by_filter("DELETE"), "format": "Csv"}),
            &auditor,
        )
        .await;
    let url = format!("/api/exports/{}", r.json()["token"].as_str().unwrap());
    assert_eq!(app.get_with(&url, &other).await.status.as_u16(), 404);
    assert_eq!(app.get_with(&url, &auditor).await.status.as_u16(), 200);
    // A ticket downloads once.
    assert_eq!(app.get_with(&url, &auditor).await.status.as_u16(), 409);
    // Bad input changes nothing and says what is wrong.
    let bad = app
        .call_json(
            "start_export",
            json!({"selection": {"Ids": []}, "format": "Csv"}),
            &auditor,
        )
        .await;
    assert_eq!(bad.status.as_u16(), 400);
    assert!(
        bad.text().contains("no events are selected"),
        "{}",
        bad.text()
    );
}

async fn export_ticket(app: &TestApp, cookie: &str) -> String {
    let r = app
        .call_json(
            "start_export",
            json!({"selection": by_filter("DELETE"), "format": "Csv"}),
            cookie,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    format!("/api/exports/{}", r.json()["token"].as_str().unwrap())
}

#[tokio::test]
async fn an_export_ticket_lasts_ten_minutes_of_the_apps_clock() {
    let app = seeded().await;
    let auditor = app.session_for(Role::Auditor).await;
    let minutes = |n: i64| n * 60 * 1_000_000;
    // Ten minutes to the microsecond: still good.
    let url = export_ticket(&app, &auditor).await;
    app.clock().advance(minutes(10));
    assert_eq!(app.get_with(&url, &auditor).await.status.as_u16(), 200);
    // A microsecond later: gone, and the page says so.
    let url = export_ticket(&app, &auditor).await;
    app.clock().advance(minutes(10) + 1);
    let r = app.get_with(&url, &auditor).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text());
}

async fn plan(app: &TestApp, cookie: &str, selection: &Value) -> (u16, Value) {
    let r = app
        .call_json("plan_deletion", json!({"selection": selection}), cookie)
        .await;
    (r.status.as_u16(), r.json())
}

#[tokio::test]
async fn deletion_is_for_admins_leaves_tombstones_and_is_an_event() {
    let app = seeded().await;
    let selection = json!({"Ids": [4, 9]});
    for role in [Role::Viewer, Role::Auditor] {
        let cookie = app.session_for(role).await;
        let (status, _) = plan(&app, &cookie, &selection).await;
        assert_eq!(status, 403, "{role:?} may not plan a deletion");
        let r = app
            .call_json(
                "delete_events",
                json!({"selection": selection, "plan": {"count": 2, "up_to_id": 30}}),
                &cookie,
            )
            .await;
        assert_eq!(r.status.as_u16(), 403, "{role:?} may not delete");
    }
    assert!(
        store::event_detail(&app.db, 4).await.is_ok(),
        "nothing deleted"
    );

    let admin = app.session_for(Role::Admin).await;
    let (status, planned) = plan(&app, &admin, &selection).await;
    assert_eq!(status, 200);
    assert_eq!(planned["count"], 2);
    let r = app
        .call_json(
            "delete_events",
            json!({"selection": selection, "plan": planned}),
            &admin,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.json()["deleted"], 2);
    let event_id = r.json()["event_id"].as_i64().unwrap();

    // Gone from pages, details and exports; tombstones remain.
    let page = app.page(1, 250).await;
    assert!(page.rows.iter().all(|r| r.id != 4 && r.id != 9));
    assert!(store::event_detail(&app.db, 9).await.is_err());
    for id in [4, 9] {
        let (tid, occurred_at, deletion) = store::tombstone(&app.db, id).await.unwrap().unwrap();
        assert_eq!((tid, deletion), (id, event_id));
        assert_eq!(occurred_at, T0 + (id - 1) * 1_000_000);
    }
    let (_, csv) = export(&app, &admin, json!({"Filter": {}}), "Csv").await;
    let ids: Vec<String> = csv_rows(&csv).into_iter().map(|r| r[0].clone()).collect();
    assert!(!ids.contains(&"4".to_string()) && !ids.contains(&"9".to_string()));
    let (_, ids_export) = export(&app, &admin, json!({"Ids": [4, 5]}), "Csv").await;
    assert_eq!(csv_rows(&ids_export).len(), 1, "only event 5 is left");

    // The deletion is an event: who, how many, which ids.
    let detail = store::event_detail(&app.db, event_id).await.unwrap();
    assert_eq!(detail.row.action, "DELETE");
    assert_eq!(
        detail.row.description,
        "Deleted 2 events from the log (ids 4, 9)"
    );
    assert!(detail.row.initiator.email.unwrap().starts_with("admin"));
}

#[tokio::test]
async fn deletion_by_filter_in_chunks_deletes_exactly_what_was_confirmed() {
    let app = TestApp::new().await;
    let n = 2_500u32;
    let events: Vec<_> = (0..n)
        .map(|i| {
            let mut e = sample_event(i, T0 + i64::from(i));
            e.action = if i % 2 == 0 { "LOGIN" } else { "UPDATE" }.into();
            e
        })
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let admin = app.session_for(Role::Admin).await;
    let selection = json!({"Filter": {"actions": ["LOGIN"]}});
    let (_, planned) = plan(&app, &admin, &selection).await;
    // The admin's own sign-in is a LOGIN too.
    assert_eq!(planned["count"], 1_251);
    assert!(planned["count"].as_u64().unwrap() > TYPE_TO_CONFIRM_OVER);

    // A confirmation that no longer matches deletes nothing.
    let stale = json!({"count": 1_000, "up_to_id": planned["up_to_id"]});
    let r = app
        .call_json(
            "delete_events",
            json!({"selection": selection, "plan": stale}),
            &admin,
        )
        .await;
    assert_eq!(r.status.as_u16(), 409);
    assert!(r.text().contains("now holds 1251 events"), "{}", r.text());
    let before = app.count().await;

    // Events arriving after the plan are not part of it.
    let late = sample_event(9_999, T0);
    let mut late = late;
    late.action = "LOGIN".into();
    store::insert_events(&app.db, &[late], None).await.unwrap();
    let r = app
        .call_json(
            "delete_events",
            json!({"selection": selection, "plan": planned}),
            &admin,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.json()["deleted"], 1_251);
    // before + the late one - the deleted + the deletion event
    assert_eq!(app.count().await, before + 1 - 1_251 + 1);
    let logins = store::count_selection(
        &app.db,
        &auditdeck::bulk::Selection::Filter(Box::new(auditdeck::models::EventQuery {
            actions: vec!["LOGIN".into()],
            ..Default::default()
        })),
        None,
    )
    .await
    .unwrap();
    assert_eq!(logins, 1, "only the late LOGIN is left");
}

#[tokio::test]
async fn a_large_export_crosses_batches_without_losing_or_repeating_a_row() {
    let app = TestApp::new().await;
    // 4,500 events on three timestamps: batch edges fall inside runs of equal times.
    let events: Vec<_> = (0..4_500u32)
        .map(|i| sample_event(i, T0 + i64::from(i % 3) * 1_000_000))
        .collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
    let auditor = app.session_for(Role::Auditor).await;
    let (status, body) = export(
        &app,
        &auditor,
        json!({"Filter": {"actions": ["UPDATE"]}}),
        "JsonLines",
    )
    .await;
    assert_eq!(status, 200);
    let keys: Vec<(String, i64)> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["occurred_at"].as_str().unwrap().to_string(),
                v["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys.len(), 4_500);
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "newest first, ties by id");
    sorted.dedup();
    assert_eq!(sorted.len(), 4_500, "no row twice");
}

#[tokio::test]
async fn admin_sessions_export_for_admins_with_hide_me_applied() {
    let app = TestApp::new().await;
    let admin = app.session_for(Role::Admin).await;
    let auditor = app.session_for(Role::Auditor).await;
    // Some recorded requests by both.
    for cookie in [&admin, &auditor, &admin] {
        app.get_with("/activity-log", cookie).await;
    }
    for _ in 0..200 {
        if store::count_admin_sessions(&app.db).await.unwrap() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let start = |selection: Value, format: &str, cookie: &str| {
        let args = json!({"selection": selection, "format": format});
        let cookie = cookie.to_string();
        let app = &app;
        async move { app.call_json("start_session_export", args, &cookie).await }
    };
    // Auditors export events, not what admins did.
    let refused = start(json!({"Filter": {}}), "Csv", &auditor).await;
    assert_eq!(refused.status.as_u16(), 403);
    assert_eq!(
        start(json!({"Filter": {}}), "Pdf", &admin)
            .await
            .status
            .as_u16(),
        400
    );

    let r = start(json!({"Filter": {"hide_me": true}}), "JsonLines", &admin).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let url = format!("/api/exports/{}", r.json()["token"].as_str().unwrap());
    let body = app.get_with(&url, &admin).await.text();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    assert!(lines
        .iter()
        .all(|l| l["user"]["email"].as_str().unwrap().starts_with("auditor")));
    assert!(lines
        .iter()
        .all(|l| l["type"] == "WEB" || l["type"] == "API"));

    let r = start(json!({"Filter": {}}), "Csv", &admin).await;
    let url = format!("/api/exports/{}", r.json()["token"].as_str().unwrap());
    let rows = csv_rows(&app.get_with(&url, &admin).await.body);
    assert!(rows.len() >= 3);
    assert_eq!(rows[0].len(), 11);
    let exports = app.events_with_action("EXPORT").await;
    assert!(
        exports
            .iter()
            .any(|(d, _)| d.contains(" as JSON Lines (Admin Sessions, filter hide_me=1)")),
        "{exports:?}"
    );
}

#[tokio::test]
async fn a_cancelled_export_is_not_downloaded_and_says_so() {
    let app = seeded().await;
    let auditor = app.session_for(Role::Auditor).await;
    let r = app
        .call_json(
            "start_export",
            json!({"selection": {"Filter": {}}, "format": "JsonLines"}),
            &auditor,
        )
        .await;
    let token = r.json()["token"].as_str().unwrap().to_string();
    let status = app
        .call("export_status", &format!("token={token}"), Some(&auditor))
        .await
        .json();
    assert_eq!(status["started"], false);
    assert_eq!(
        status["total"], 32,
        "30 events, the auditor's creation and sign-in"
    );
    let cancelled = app
        .call("cancel_export", &format!("token={token}"), Some(&auditor))
        .await
        .json();
    assert_eq!(cancelled["cancelled"], true);
    let d = app
        .get_with(&format!("/api/exports/{token}"), &auditor)
        .await;
    assert_eq!(d.status.as_u16(), 409);
    assert!(d.error().contains("cancelled"), "{}", d.error());
    // Nothing left the server, so nothing is recorded as exported.
    assert!(app.events_with_action("EXPORT").await.is_empty());
    // Someone else's export cannot be followed or cancelled.
    let other = app.session_for(Role::Admin).await;
    let r = app
        .call("cancel_export", &format!("token={token}"), Some(&other))
        .await;
    assert_eq!(r.status.as_u16(), 404);
}
