use crate::common::{session_cookie, TestApp, PASSWORD};
use auditdeck::models::Role;
use auditdeck::server::config::AppConfig;
use auditdeck::server::{auth, store};
use axum::http::{header, StatusCode};

#[tokio::test]
async fn correct_password_signs_in_and_goes_back_to_next() {
    let app = TestApp::new().await;
    app.user("ann", Role::Viewer).await;
    let r = app.login("ann", PASSWORD).await;
    assert!(r.status.is_redirection(), "{} {}", r.status, r.text());
    assert_eq!(
        r.headers.get(header::LOCATION).unwrap(),
        "/activity-log?page=2"
    );
    let cookie = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("auditdeck_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP by default: {cookie}"
    );
    // The session opens pages; the sign-in is on the log, with IP and agent.
    let page = app
        .get_with("/activity-log", &session_cookie(&r).unwrap())
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let logins = app.events_with_action("LOGIN").await;
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].0, "ann signed in");
    assert_eq!(logins[0].1.as_deref(), Some("192.0.2.1"));
    // Email works as the login too.
    assert!(app
        .login("ann@example.com", PASSWORD)
        .await
        .status
        .is_redirection());
}

#[tokio::test]
async fn secure_cookies_when_configured() {
    let app = TestApp::with_config(AppConfig {
        secure_cookies: true,
        ..AppConfig::default()
    })
    .await;
    app.user("ann", Role::Viewer).await;
    let r = app.login("ann", PASSWORD).await;
    let cookie = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn wrong_password_is_refused_and_audited_without_the_password() {
    let app = TestApp::new().await;
    app.user("ann", Role::Admin).await;
    for (login, password) in [("ann", "wrong password!"), ("nobody", "whatever123")] {
        let r = app.login(login, password).await;
        assert!(!r.status.is_redirection());
        assert!(
            session_cookie(&r).is_none(),
            "no session for a failed sign-in"
        );
        assert!(
            r.text().contains("Wrong username or password"),
            "{}",
            r.text()
        );
    }
    let failures = app.events_with_action("LOGIN_FAILED").await;
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().any(|(d, _)| d.contains("\"ann\"")));
    assert!(failures.iter().any(|(d, _)| d.contains("\"nobody\"")));
    assert!(failures
        .iter()
        .all(|(d, _)| !d.contains("wrong password!") && !d.contains("whatever123")));
    assert!(app.events_with_action("LOGIN").await.is_empty());
}

#[tokio::test]
async fn disabled_users_cannot_sign_in_and_lose_their_session() {
    let app = TestApp::new().await;
    let id = app.user("dora", Role::Viewer).await;
    let cookie = session_cookie(&app.login("dora", PASSWORD).await).unwrap();
    let mut tx = store::begin(&app.db).await.unwrap();
    store::set_user_disabled_in(&mut tx, id, true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = app.login("dora", PASSWORD).await;
    assert!(r.text().contains("disabled"), "{}", r.text());
    assert!(session_cookie(&r).is_none());
    // The session they had no longer opens pages or data.
    let page = app.get_with("/activity-log", &cookie).await;
    assert!(page.status.is_redirection());
    let data = app
        .call(
            "list_events",
            "query[page]=1&query[per_page]=10",
            Some(&cookie),
        )
        .await;
    assert_eq!(data.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signed_out_visits_go_to_the_login_page_and_data_is_refused() {
    let app = TestApp::new().await;
    let r = app.get("/activity-log?page=3").await;
    assert!(r.status.is_redirection());
    assert_eq!(
        r.headers.get(header::LOCATION).unwrap(),
        "/login?next=/activity-log%3Fpage%3D3"
    );
    assert_eq!(app.get("/login").await.status, StatusCode::OK);
    for endpoint in ["list_events", "current_user", "logout"] {
        let r = app
            .call(endpoint, "query[page]=1&query[per_page]=10", None)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{endpoint}");
        assert!(r.text().contains("Sign in"), "{endpoint}: {}", r.text());
    }
}

#[tokio::test]
async fn every_role_may_read_and_see_itself() {
    let app = TestApp::new().await;
    for role in Role::ALL {
        let cookie = app.session_for(role).await;
        let r = app
            .call(
                "list_events",
                "query[page]=1&query[per_page]=10",
                Some(&cookie),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{role:?} list_events");
        let me = app.call("current_user", "", Some(&cookie)).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.json()["role"], role.as_str());
    }
}

#[tokio::test]
async fn sign_out_ends_the_session_and_is_audited() {
    let app = TestApp::new().await;
    let cookie = app.session_for(Role::Auditor).await;
    let r = app.call("logout", "", Some(&cookie)).await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{}",
        r.status
    );
    assert_eq!(app.events_with_action("LOGOUT").await.len(), 1);
    let after = app.call("current_user", "", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited_per_account_and_per_ip() {
    let app = TestApp::with_config(AppConfig {
        login_max_failures_per_account: 3,
        login_max_failures_per_ip: 5,
        ..AppConfig::default()
    })
    .await;
    app.user("ann", Role::Viewer).await;
    app.user("bob", Role::Viewer).await;
    for _ in 0..3 {
        app.login_from("198.51.100.1", "ann", "wrong password")
            .await;
    }
    // Even the right password is refused now, with a clear message.
    let r = app.login_from("198.51.100.2", "ann", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.text().contains("Too many failed sign-ins"),
        "{}",
        r.text()
    );
    // Another account from another address is unaffected.
    assert!(app
        .login_from("198.51.100.2", "bob", PASSWORD)
        .await
        .status
        .is_redirection());
    // Per IP: failures across accounts from one address add up.
    for name in ["x1", "x2", "x3", "x4", "x5"] {
        app.login_from("198.51.100.9", name, "nope nope").await;
    }
    let r = app.login_from("198.51.100.9", "bob", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // A successful sign-in resets the account's count.
    assert!(app
        .login_from("198.51.100.3", "bob", PASSWORD)
        .await
        .status
        .is_redirection());
}

#[tokio::test]
async fn the_failure_window_ends_on_the_apps_clock() {
    // Failures count for `login-window-minutes` of the app's own clock: a
    // failure exactly 15 minutes old still counts, one a microsecond older
    // no longer does (whatever the date the test runs at).
    let app = TestApp::with_config(AppConfig {
        login_max_failures_per_account: 2,
        login_window_minutes: 15,
        ..AppConfig::default()
    })
    .await;
    app.user("cid", Role::Viewer).await;
    for _ in 0..2 {
        app.login_from("198.51.100.20", "cid", "wrong password")
            .await;
    }
    let window = 15 * 60 * 1_000_000;
    app.clock().advance(window);
    let r = app.login_from("198.51.100.21", "cid", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock().advance(1);
    let r = app.login_from("198.51.100.21", "cid", PASSWORD).await;
    assert!(r.status.is_redirection(), "{} {}", r.status, r.text());
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_change_nothing() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::Request;
    use std::net::SocketAddr;
    let spoof = |app: &TestApp, peer: &str| {
        let _ = app;
        let mut request = Request::post("/api/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-real-ip", "7.7.7.7")
            .body(Body::from("username=ghost&password=nothing-here"))
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 1)));
        request
    };
    let app = TestApp::new().await;
    app.send(spoof(&app, "203.0.113.50")).await;
    let failures = app.events_with_action("LOGIN_FAILED").await;
    assert_eq!(failures[0].1.as_deref(), Some("203.0.113.50"));

    let trusting = TestApp::with_config(AppConfig {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..AppConfig::default()
    })
    .await;
    trusting.send(spoof(&trusting, "10.1.1.1")).await;
    let failures = trusting.events_with_action("LOGIN_FAILED").await;
    assert_eq!(failures[0].1.as_deref(), Some("6.6.6.6"));
}

#[tokio::test]
async fn a_failed_change_writes_no_audit_row() {
    let app = TestApp::new().await;
    app.user("ann", Role::Admin).await;
    let before = app.events_with_action("CREATE").await.len();
    let duplicate = auth::UserForm {
        username: "ANN",
        email: "other@example.com",
        name: "Another Ann",
        role: Role::Viewer,
        password: PASSWORD,
    };
    let err = auth::create_user(&app.db, None, &crate::common::cli(), duplicate)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("username"), "{err}");
    assert_eq!(app.events_with_action("CREATE").await.len(), before);
    assert_eq!(store::count_users(&app.db).await.unwrap(), 1);
    // And a successful one writes exactly one.
    let form = auth::UserForm {
        username: "bea",
        email: "bea@example.com",
        name: "Bea",
        role: Role::Viewer,
        password: PASSWORD,
    };
    auth::create_user(&app.db, None, &crate::common::cli(), form)
        .await
        .unwrap();
    assert_eq!(app.events_with_action("CREATE").await.len(), before + 1);
}

#[tokio::test]
async fn short_passwords_and_bad_usernames_are_refused() {
    let app = TestApp::new().await;
    for (username, email, password, field) in [
        ("ok", "ok@example.com", "short", "password"),
        ("bad name", "x@example.com", PASSWORD, "username"),
        ("ok2", "not-an-email", PASSWORD, "email"),
    ] {
        let form = auth::UserForm {
            username,
            email,
            name: "N",
            role: Role::Viewer,
            password,
        };
        let err = auth::create_user(&app.db, None, &crate::common::cli(), form)
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with(field), "{err}");
    }
    assert_eq!(store::count_users(&app.db).await.unwrap(), 0);
}
