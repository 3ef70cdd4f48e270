use crate::common::{session_cookie, TestApp, PASSWORD};
use auditdeck::models::Role;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};

fn forged(
    uri: &str,
    body: &str,
    cookie: Option<&str>,
    origin_headers: &[(&str, &str)],
) -> Request<Body> {
    let mut request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "auditdeck.example");
    for (k, v) in origin_headers {
        request = request.header(*k, *v);
    }
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn a_forged_cross_site_sign_in_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    app.user("ann", Role::Admin).await;
    let body = format!("username=ann&password={PASSWORD}");
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example")],
    ] {
        let r = app.send(forged("/api/login", &body, None, &headers)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(r.error().contains("Cross-site"));
        assert!(session_cookie(&r).is_none());
    }
    assert!(app.events_with_action("LOGIN").await.is_empty());
    assert!(app.events_with_action("LOGIN_FAILED").await.is_empty());
}

#[tokio::test]
async fn a_forged_cross_site_sign_out_keeps_the_session() {
    let app = TestApp::new().await;
    let cookie = app.session_for(Role::Viewer).await;
    let r = app
        .send(forged(
            "/api/logout",
            "",
            Some(&cookie),
            &[("origin", "https://evil.example")],
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(app.events_with_action("LOGOUT").await.is_empty());
    assert_eq!(
        app.call("current_user", "", Some(&cookie)).await.status,
        StatusCode::OK
    );
    // The same request from our own origin works.
    let ok = app
        .send(forged(
            "/api/logout",
            "",
            Some(&cookie),
            &[("origin", "http://auditdeck.example")],
        ))
        .await;
    assert!(
        ok.status.is_success() || ok.status.is_redirection(),
        "{}",
        ok.status
    );
    assert_eq!(app.events_with_action("LOGOUT").await.len(), 1);
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let app = TestApp::new().await;
    let cookie = app.session_for(Role::Viewer).await;
    let responses = [
        app.get_with("/activity-log", &cookie).await,
        app.get("/login").await,
        app.call("current_user", "", Some(&cookie)).await,
        app.ingest(None, "{}").await,
    ];
    for r in &responses {
        assert_eq!(
            r.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
            "nosniff"
        );
        assert_eq!(r.headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
        assert_eq!(
            r.headers.get(header::REFERRER_POLICY).unwrap(),
            "same-origin"
        );
        let csp = r
            .headers
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
}

#[tokio::test]
async fn a_page_csp_admits_exactly_its_own_inline_scripts() {
    let app = TestApp::new().await;
    let r = app.get("/login").await;
    let csp = r
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the page CSP")
        .to_string();
    assert!(nonce.len() >= 16, "{nonce}");
    let html = r.text();
    let scripts = html.matches("<script").count();
    assert!(scripts > 0);
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "{html}"
    );
    // A second page gets another nonce.
    let again = app.get("/login").await;
    assert!(!again
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap()
        .contains(&nonce));
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let app = TestApp::new().await;
    app.user("ann", Role::Admin).await;
    let ok = app.login("ann", PASSWORD).await;
    let session_id = session_cookie(&ok).unwrap();
    let session_id = session_id.split('=').nth(1).unwrap();
    app.login("ann", "secret-typo-pass").await;
    let key = app.api_key().await;
    app.ingest(Some(&key), r#"{"action":"PING"}"#).await;
    let all = app.page(1, 250).await;
    let text = format!("{:?}", all.rows);
    for secret in [PASSWORD, "secret-typo-pass", session_id, key.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked into the log");
    }
}
