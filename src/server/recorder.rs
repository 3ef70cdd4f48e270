//! Admin Sessions recording: every request a signed-in user makes is handed
//! to a bounded queue and stored by one background writer in batches (one
//! transaction each), off the request path. When the queue is full a request
//! waits for room rather than drop its record; on shutdown the writer drains
//! the queue before the process exits.

use super::auth::{session_user, ClientInfo, RequestUser};
use super::state::AppState;
use super::store::{self, Db, NewAdminSession};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tower_sessions::Session;

/// Records waiting to be stored, at most.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Records stored per transaction, at most.
const BATCH: usize = 1_000;
/// How long the writer lets records gather after the first of a batch
/// arrives, so that a busy server writes a few large transactions a second
/// rather than one per request (each commit costs a sync and CPU that the
/// requests would otherwise have).
const LINGER: Duration = Duration::from_millis(100);
const LINGER_STEP: Duration = Duration::from_millis(5);

/// The requests' end of the queue (cheap to clone).
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<NewAdminSession>,
}

/// The writer task.
#[derive(Debug)]
pub struct Writer {
    task: tokio::task::JoinHandle<u64>,
    stop: Arc<Notify>,
}

impl Writer {
    /// Shutting down: closes the queue to new records, stores every record
    /// already in it, and returns how many the writer stored in all.
    pub async fn drained(self) -> u64 {
        self.stop.notify_one();
        self.task.await.unwrap_or(0)
    }
}

/// Starts the background writer.
pub fn spawn(db: Db, capacity: usize) -> (Recorder, Writer) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let stop = Arc::new(Notify::new());
    let task = tokio::spawn(write_batches(db, rx, stop.clone()));
    (Recorder { tx }, Writer { task, stop })
}

impl Recorder {
    /// Hands a record to the writer, waiting for room when the queue is full.
    pub async fn record(&self, record: NewAdminSession) {
        if self.tx.send(record).await.is_err() {
            tracing::error!("admin-session writer has stopped; a record was not stored");
        }
    }
}

async fn write_batches(db: Db, mut rx: mpsc::Receiver<NewAdminSession>, stop: Arc<Notify>) -> u64 {
    let mut stored = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let mut stopping = false;
    loop {
        let received = if stopping {
            rx.recv_many(&mut batch, BATCH).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n,
                _ = stop.notified() => {
                    // No new records; the queued ones are still received.
                    rx.close();
                    stopping = true;
                    continue;
                }
            }
        };
        if received == 0 {
            break;
        }
        // Let a batch gather, unless enough is already waiting (a queue
        // filling up means requests may soon wait for room: write now).
        let enough = BATCH.min(rx.max_capacity() / 2).max(1);
        let deadline = Instant::now() + LINGER;
        while !stopping && batch.len() + rx.len() < enough && Instant::now() < deadline {
            tokio::time::sleep(LINGER_STEP).await;
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        // A failed write is retried (the database may be busy for a moment);
        // nothing accepted is dropped.
        let mut wait = Duration::from_millis(10);
        loop {
            match store::insert_admin_sessions(&db, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), "storing admin sessions failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        stored += batch.len() as u64;
        batch.clear();
    }
    stored
}

/// WEB for page loads and navigations, API for server-function and REST calls.
pub fn request_kind(path: &str) -> &'static str {
    if path.starts_with("/api/") {
        "API"
    } else {
        "WEB"
    }
}

/// Whether a request is recorded at all: the browser bundle and icons are not
/// requests a person makes.
fn is_recorded(path: &str) -> bool {
    !super::is_static_asset(path)
}

/// Parameter names whose values are never stored.
const SECRET_NAMES: [&str; 10] = [
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "key",
    "auth",
    "signature",
    "session",
    "credential",
];

/// The path and query with the values of secret-looking parameters masked:
/// `/x?token=abc&page=2` → `/x?token=***&page=2`.
pub fn masked_url(path: &str, query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return path.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let lower = name.to_ascii_lowercase();
            if !value.is_empty() && SECRET_NAMES.iter().any(|s| lower.contains(s)) {
                format!("{name}=***")
            } else {
                pair.to_string()
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// Middleware: records the request if a signed-in user made it.
pub async fn record_requests(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if !is_recorded(&path) {
        return next.run(request).await;
    }
    // Who is signed in when the request starts (a sign-in is not yet theirs,
    // a sign-out still is). The gate and the server functions reuse it; on a
    // lookup error they look again and report it.
    let Ok(user) = session_user(&state.db, &session).await else {
        return next.run(request).await;
    };
    let mut request = request;
    request.extensions_mut().insert(RequestUser(user.clone()));
    let Some(user) = user.filter(|_| state.config.record_admin_sessions) else {
        return next.run(request).await;
    };
    let started = Instant::now();
    let occurred_at = state.db.now();
    let url = masked_url(&path, request.uri().query());
    let method = request.method().to_string();
    let ip = request.extensions().get::<ClientInfo>().map(|c| c.ip);
    let response = next.run(request).await;
    let record = NewAdminSession {
        occurred_at,
        user_id: Some(user.id.to_string()),
        user_name: user.name,
        user_email: user.email,
        ip,
        url,
        kind: request_kind(&path),
        method,
        status: response.status().as_u16(),
        duration_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
    };
    state.recorder.record(record).await;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_web_and_calls_are_api() {
        assert_eq!(request_kind("/activity-log"), "WEB");
        assert_eq!(request_kind("/settings/users"), "WEB");
        assert_eq!(request_kind("/"), "WEB");
        assert_eq!(request_kind("/api/list_events"), "API");
        assert_eq!(request_kind("/api/v1/events"), "API");
        assert!(!is_recorded("/pkg/auditdeck.wasm"));
        assert!(is_recorded("/activity-log"));
    }

    #[test]
    fn secret_parameters_are_masked() {
        assert_eq!(masked_url("/a", None), "/a");
        assert_eq!(masked_url("/a", Some("")), "/a");
        assert_eq!(
            masked_url("/a", Some("page=2&token=abc&q=disk")),
            "/a?page=2&token=***&q=disk"
        );
        assert_eq!(
            masked_url(
                "/x",
                Some("api_key=adk_123&Password=hunter2&access_token=t&sort=ip")
            ),
            "/x?api_key=***&Password=***&access_token=***&sort=ip"
        );
        assert_eq!(masked_url("/x", Some("key=&flag")), "/x?key=&flag");
    }
}
