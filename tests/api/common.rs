use auditdeck::models::{EventPage, EventQuery, Initiator, InitiatorKind, Role};
use auditdeck::server::clock::{parse_instant, Clock};
use auditdeck::server::config::AppConfig;
use auditdeck::server::state::AppState;
use auditdeck::server::store::{self, Db, NewEvent};
use auditdeck::server::{api_keys, auth, router};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use tempfile::TempDir;
use tower::ServiceExt;

/// The instant the tests run at: `AUDITDECK_TEST_NOW` (RFC 3339, e.g.
/// `2024-02-29T12:00:00Z`) when set, else 24 November 2026, 00:00 UTC. Every
/// [`TestApp`]'s clock stands still there until a test moves it; no test
/// reads today's date.
pub fn test_now() -> i64 {
    const DEFAULT: &str = "2026-11-24T00:00:00Z";
    let text = std::env::var("AUDITDECK_TEST_NOW")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| DEFAULT.into());
    parse_instant(&text).unwrap_or_else(|e| panic!("AUDITDECK_TEST_NOW: {e}"))
}

/// A fresh database in a temporary folder and the app's router on top of it.
pub struct TestApp {
    pub db: Db,
    pub router: Router,
    /// The database's URL, for tests that reach around the app.
    pub url: String,
    scratch: ScratchDb,
    _dir: TempDir,
}

/// The database a test runs on: a SQLite file in its temporary folder, or,
/// when `AUDITDECK_TEST_BACKEND=postgres`, a PostgreSQL database of its own
/// made on the server of `TEST_DATABASE_URL` (default: the local one) and
/// dropped when the test ends.
pub struct ScratchDb {
    pub url: String,
    /// The server's URL and the database's name, on PostgreSQL.
    postgres: Option<(String, String)>,
}

/// The PostgreSQL server tests use when none is named.
pub const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn test_on_postgres() -> bool {
    std::env::var("AUDITDECK_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

impl ScratchDb {
    pub async fn new(dir: &TempDir) -> Self {
        if !test_on_postgres() {
            return Self {
                url: format!("sqlite://{}", dir.path().join("test.db").display()),
                postgres: None,
            };
        }
        use sqlx::Connection;
        let server = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| LOCAL_POSTGRES.into());
        let name = format!("auditdeck_test_{}_{}", std::process::id(), scratch_suffix());
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.ok();
        let base = server
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&server);
        Self {
            url: format!("{base}/{name}"),
            postgres: Some((server, name)),
        }
    }
}

fn scratch_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async: a thread of its own drops the database.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    /// Reads a whole response, from the router or over HTTP.
    pub async fn read<B>(response: axum::http::Response<B>) -> Self
    where
        B: axum::body::HttpBody,
        B::Error: std::fmt::Debug,
    {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(AppConfig::default()).await
    }

    pub async fn with_config(mut config: AppConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let scratch = ScratchDb::new(&dir).await;
        config.database_url = scratch.url.clone();
        let db = store::open(&config.database_url)
            .await
            .expect("open database")
            .with_clock(Clock::fixed(test_now()));
        let config_url = config.database_url.clone();
        let (recorder, _writer) = auditdeck::server::recorder::spawn(
            db.clone(),
            auditdeck::server::recorder::QUEUE_CAPACITY,
        );
        let state = AppState {
            leptos_options: LeptosOptions::builder().output_name("auditdeck").build(),
            db: db.clone(),
            config: Arc::new(config),
            recorder,
            exports: Default::default(),
            api: Default::default(),
        };
        Self {
            db,
            router: router(state),
            url: config_url,
            scratch,
            _dir: dir,
        }
    }

    /// The app's clock (stopped at [`test_now`] until a test moves it).
    pub fn clock(&self) -> &Clock {
        self.db.clock()
    }

    /// The app's time now.
    pub fn now(&self) -> i64 {
        self.db.now()
    }

    /// The test's temporary folder.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Whether the tests run on PostgreSQL (see [`ScratchDb`]).
    pub fn on_postgres(&self) -> bool {
        self.scratch.postgres.is_some()
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        TestResponse::read(response).await
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    /// Creates a user with this role and the password [`PASSWORD`].
    pub async fn user(&self, username: &str, role: Role) -> i64 {
        let form = auth::UserForm {
            username,
            email: &format!("{username}@example.com"),
            name: &format!("{username} person"),
            role,
            password: PASSWORD,
        };
        auth::create_user(&self.db, None, &cli(), form)
            .await
            .expect("create user")
    }

    /// POSTs the sign-in form from `peer` (the socket address).
    pub async fn login_from(&self, peer: &str, username: &str, password: &str) -> TestResponse {
        let body =
            format!("username={username}&password={password}&next=%2Factivity-log%3Fpage%3D2");
        let mut request = Request::post("/api/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(body))
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40000)));
        self.send(request).await
    }

    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.login_from("192.0.2.1", username, password).await
    }

    /// A session cookie (`name=value`) for a new user with this role.
    pub async fn session_for(&self, role: Role) -> String {
        let username = format!("{}{}", role.as_str(), rand_suffix());
        self.user(&username, role).await;
        let r = self.login(&username, PASSWORD).await;
        assert!(
            r.status.is_redirection() || r.status.is_success(),
            "sign-in failed: {} {}",
            r.status,
            r.text()
        );
        session_cookie(&r).expect("a session cookie")
    }

    pub async fn get_with(&self, uri: &str, cookie: &str) -> TestResponse {
        self.send(
            Request::get(uri)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Calls a server function (form-encoded arguments) with a session cookie.
    pub async fn call(&self, endpoint: &str, args: &str, cookie: Option<&str>) -> TestResponse {
        let mut request = Request::post(format!("/api/{endpoint}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header("sec-fetch-site", "same-origin");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::from(args.to_string())).unwrap())
            .await
    }

    /// Calls a server function that takes JSON arguments.
    pub async fn call_json(
        &self,
        endpoint: &str,
        args: serde_json::Value,
        cookie: &str,
    ) -> TestResponse {
        let request = Request::post(format!("/api/{endpoint}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header("sec-fetch-site", "same-origin")
            .header(header::COOKIE, cookie);
        self.send(request.body(Body::from(args.to_string())).unwrap())
            .await
    }

    /// Runs SQL on the database file directly, around the app (as someone
    /// tampering with it would).
    pub async fn raw_sql(&self, sql: &str) {
        if self.on_postgres() {
            raw_sql_on::<sqlx::PgConnection>(&self.url, sql).await;
        } else {
            raw_sql_on::<sqlx::SqliteConnection>(&self.url, sql).await;
        }
    }

    /// The stored events with this action, newest first (description, ip).
    pub async fn events_with_action(&self, action: &str) -> Vec<(String, Option<String>)> {
        self.page(1, 250)
            .await
            .rows
            .into_iter()
            .filter(|r| r.action == action)
            .map(|r| (r.description, r.ip))
            .collect()
    }

    pub async fn api_key(&self) -> String {
        api_keys::create(&self.db, "test client")
            .await
            .expect("api key")
            .1
    }

    /// POSTs a JSON body to the ingest API with an optional bearer key.
    pub async fn ingest(&self, key: Option<&str>, body: impl Into<String>) -> TestResponse {
        let mut request =
            Request::post("/api/v1/events").header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        self.send(request.body(Body::from(body.into())).unwrap())
            .await
    }

    /// One page of the Activity Log, newest first.
    pub async fn page(&self, page: u32, per_page: u32) -> EventPage {
        store::list_events(
            &self.db,
            &EventQuery {
                page,
                per_page,
                ..EventQuery::default()
            },
        )
        .await
        .expect("list events")
    }

    pub async fn count(&self) -> u64 {
        store::count_events(&self.db).await.expect("count")
    }
}

pub const PASSWORD: &str = "correct horse battery";

pub fn cli() -> auth::ClientInfo {
    auth::ClientInfo {
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: Some("test".into()),
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The `name=value` of the session cookie a response sets.
pub fn session_cookie(r: &TestResponse) -> Option<String> {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("auditdeck_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// A plausible event, distinguishable by `i`.
pub fn sample_event(i: u32, occurred_at: i64) -> NewEvent {
    NewEvent {
        occurred_at,
        ip: Some(format!("10.0.{}.{}", i / 250, i % 250 + 1).parse().unwrap()),
        initiator: Initiator {
            kind: InitiatorKind::User,
            id: Some(i.to_string()),
            name: Some(format!("User {i}")),
            email: Some(format!("user{i}@example.com")),
            role: Some("editor".into()),
        },
        action: "UPDATE".into(),
        table_name: Some("invoices".into()),
        primary_key: Some(i.to_string()),
        description: format!("Updated invoice number{i}"),
        before: Some(r#"{"status":"open"}"#.into()),
        after: Some(r#"{"status":"paid"}"#.into()),
        user_agent: Some("test-agent".into()),
        request_id: Some(format!("req-{i}")),
        session_id: None,
    }
}

/// A JSON batch of `n` valid events for the ingest API.
pub fn json_batch(n: usize, tag: &str) -> String {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "action": "CREATE",
                "initiator": {"kind": "user", "id": i, "name": "Batch User", "email": "batch@example.com"},
                "ip": "192.0.2.10",
                "table": "orders",
                "primary_key": i,
                "description": format!("{tag} order {i}"),
                "after": {"total": i, "lines": [{"sku": "A-1", "qty": 2}]}
            })
        })
        .collect();
    serde_json::Value::Array(events).to_string()
}

/// Runs SQL straight on a database of either kind, on a connection of its own.
async fn raw_sql_on<C>(url: &str, sql: &str)
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    let mut conn = C::connect(url).await.expect("raw connection");
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .expect("raw SQL");
    conn.close().await.expect("close");
}
