use crate::common::{TestApp, PASSWORD};
use auditdeck::models::Role;
use auditdeck::server::store;
use axum::http::StatusCode;

/// Every admin-only server function, with valid arguments against `target`.
fn admin_calls(target: i64, key: i64) -> Vec<(&'static str, String)> {
    vec![
        ("list_users", String::new()),
        ("create_user", "username=newbie&name=New+Bie&email=newbie%40example.com&role=viewer&password=long+enough+pw".into()),
        ("set_user_role", format!("id={target}&role=auditor")),
        ("set_user_disabled", format!("id={target}&disabled=true")),
        ("reset_password", format!("id={target}&password=another+long+pw")),
        ("list_api_keys", String::new()),
        ("create_api_key", "label=crm&events_write=on".into()),
        ("revoke_api_key", format!("id={key}")),
    ]
}

#[tokio::test]
async fn viewers_and_auditors_are_refused_every_admin_function_and_change_nothing() {
    let app = TestApp::new().await;
    let target = app.user("target", Role::Viewer).await;
    let (key, _) = auditdeck::server::api_keys::create(&app.db, "existing")
        .await
        .unwrap();
    for role in [Role::Viewer, Role::Auditor] {
        let cookie = app.session_for(role).await;
        let events_before = app.count().await;
        for (endpoint, args) in admin_calls(target, key) {
            let r = app.call(endpoint, &args, Some(&cookie)).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{role:?} {endpoint}: {}",
                r.text()
            );
            assert!(r.text().contains("needs the admin role"), "{}", r.text());
        }
        assert_eq!(
            app.count().await,
            events_before,
            "refused calls write nothing"
        );
    }
    let user = store::get_user(&app.db, target).await.unwrap().unwrap();
    assert_eq!(user.info.role, Role::Viewer);
    assert!(!user.disabled);
    assert!(store::find_user_by_login(&app.db, "newbie")
        .await
        .unwrap()
        .is_none());
    let keys = store::list_api_keys(&app.db).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].revoked_at.is_none());
}

#[tokio::test]
async fn signed_out_callers_are_refused_every_admin_function() {
    let app = TestApp::new().await;
    for (endpoint, args) in admin_calls(1, 1) {
        assert_eq!(
            app.call(endpoint, &args, None).await.status,
            StatusCode::UNAUTHORIZED,
            "{endpoint}"
        );
    }
}

#[tokio::test]
async fn admins_may_do_everything_and_each_change_is_audited() {
    let app = TestApp::new().await;
    let target = app.user("target", Role::Viewer).await;
    let (key, _) = auditdeck::server::api_keys::create(&app.db, "existing")
        .await
        .unwrap();
    let cookie = app.session_for(Role::Admin).await;
    let mut expected_events = app.count().await;
    for (endpoint, args) in admin_calls(target, key) {
        let r = app.call(endpoint, &args, Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "{endpoint}: {}", r.text());
        if !endpoint.starts_with("list_") {
            expected_events += 1;
        }
        assert_eq!(
            app.count().await,
            expected_events,
            "{endpoint} writes exactly one event"
        );
    }
    let user = store::get_user(&app.db, target).await.unwrap().unwrap();
    assert_eq!(user.info.role, Role::Auditor);
    assert!(user.disabled);
    assert!(auditdeck::server::auth::verify_password(
        &user.password_hash,
        "another long pw"
    ));
    let descriptions: Vec<String> = app
        .page(1, 50)
        .await
        .rows
        .into_iter()
        .map(|r| r.description)
        .collect();
    for text in [
        "Created user newbie",
        "Changed the role of target from viewer to auditor",
        "Disabled user target",
        "Reset the password of target",
        "Created API key \"crm\"",
        "Revoked API key \"existing\"",
    ] {
        assert!(
            descriptions.iter().any(|d| d.starts_with(text)),
            "missing audit: {text}"
        );
    }
    assert!(descriptions
        .iter()
        .all(|d| !d.contains("another long pw") && !d.contains("long enough pw")));
}

#[tokio::test]
async fn a_new_user_can_sign_in_and_a_disabled_one_cannot() {
    let app = TestApp::new().await;
    let cookie = app.session_for(Role::Admin).await;
    let r = app
        .call(
            "create_user",
            "username=nora&name=Nora&email=nora%40example.com&role=auditor&password=nora+password",
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json().as_i64().unwrap();
    assert!(app
        .login("nora", "nora password")
        .await
        .status
        .is_redirection());
    app.call(
        "set_user_disabled",
        &format!("id={id}&disabled=true"),
        Some(&cookie),
    )
    .await;
    assert!(!app
        .login("nora", "nora password")
        .await
        .status
        .is_redirection());
}

#[tokio::test]
async fn admin_input_errors_are_clear_and_change_nothing() {
    let app = TestApp::new().await;
    let cookie = app.session_for(Role::Admin).await;
    let me = app.call("current_user", "", Some(&cookie)).await.json()["id"]
        .as_i64()
        .unwrap();
    let before = app.count().await;
    for (endpoint, args, expected) in [
        (
            "create_user",
            "username=x&name=X&email=x%40example.com&role=viewer&password=short".to_string(),
            "password",
        ),
        (
            "create_user",
            "username=x&name=X&email=x%40example.com&role=root&password=long+enough+pw".to_string(),
            "",
        ),
        ("set_user_role", format!("id={me}&role=viewer"), "your own"),
        (
            "set_user_disabled",
            format!("id={me}&disabled=true"),
            "your own",
        ),
        ("set_user_role", "id=9999&role=viewer".to_string(), "9999"),
        ("revoke_api_key", "id=9999".to_string(), "API key 9999"),
        ("create_api_key", "label=+".to_string(), "label"),
    ] {
        let r = app.call(endpoint, &args, Some(&cookie)).await;
        assert!(
            r.status.is_client_error(),
            "{endpoint} {args}: {}",
            r.status
        );
        assert!(r.text().contains(expected), "{endpoint}: {}", r.text());
    }
    assert_eq!(app.count().await, before);
    // The admin's own password still works: nothing was changed.
    let me_user = store::get_user(&app.db, me).await.unwrap().unwrap();
    assert!(auditdeck::server::auth::verify_password(
        &me_user.password_hash,
        PASSWORD
    ));
}

#[tokio::test]
async fn an_admin_creates_keys_with_scopes_and_a_key_is_refused_outside_them() {
    let app = TestApp::new().await;
    let cookie = app.session_for(Role::Admin).await;
    // No scope ticked: refused, nothing made.
    let r = app
        .call("create_api_key", "label=none", Some(&cookie))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("choose at least one"), "{}", r.text());
    assert!(store::list_api_keys(&app.db).await.unwrap().is_empty());

    // A reading key and a sending key.
    let r = app
        .call(
            "create_api_key",
            "label=reader&events_read=on&sessions_read=on",
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let reader: String = serde_json::from_slice(&r.body).unwrap();
    let r = app
        .call(
            "create_api_key",
            "label=sender&events_write=on",
            Some(&cookie),
        )
        .await;
    let sender: String = serde_json::from_slice(&r.body).unwrap();
    let keys = store::list_api_keys(&app.db).await.unwrap();
    let scopes = |label: &str| {
        keys.iter()
            .find(|k| k.label == label)
            .map(|k| k.scopes.clone())
            .unwrap()
    };
    assert_eq!(scopes("reader"), ["events:read", "sessions:read"]);
    assert_eq!(scopes("sender"), ["events:write"]);
    let created = app.events_with_action("CREATE").await;
    assert!(
        created
            .iter()
            .any(|(d, _)| d == "Created API key \"reader\" (events:read, sessions:read)"),
        "{created:?}"
    );

    // The reading key may not send: 403 naming the scope; nothing stored.
    let before = app.count().await;
    let r = app.ingest(Some(&reader), r#"{"action":"LOGIN"}"#).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(
        r.error().contains("lacks the events:write scope"),
        "{}",
        r.error()
    );
    assert_eq!(app.count().await, before);
    let r = app.ingest(Some(&sender), r#"{"action":"LOGIN"}"#).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // An unknown scope is refused by name.
    let mut tx = store::begin(&app.db).await.unwrap();
    let err = auditdeck::server::api_keys::create_in(&mut tx, "x", &["events:delete"])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("\"events:delete\" is not one of"),
        "{err}"
    );
}
