//! Exports: a server function prepares one (checks the role, counts the
//! selection, fixes the newest id it may hold) and hands the browser a
//! ticket; `GET /api/exports/{token}` streams it as a download, reading one
//! row at a time and sending 64 KB chunks through a small queue, so memory
//! stays flat whatever the size. The page follows its progress and can
//! cancel it. Starting the download writes the EXPORT event.

use super::auth::{self_event, ClientInfo, RequestUser};
use super::pdf_text::{Line, Typesetter};
use super::state::AppState;
use super::store::{self, ExportRow, RowSink};
use crate::bulk::{ExportFormat, ExportSource, ExportStatus, ExportTicket, MAX_PDF_ROWS};
use crate::errors::{AppError, AppResult};
use crate::models::SessionRow;
use crate::models::{format_count, format_rfc3339, format_utc, Role, UserInfo};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use pdf_writer::{Content, Name, Pdf, Rect, Ref};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Bytes gathered before a chunk goes to the client.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the client, at most (the memory an export holds).
const QUEUE_CHUNKS: usize = 4;
/// An export not downloaded within this time is forgotten.
const TICKET_LIFETIME: Duration = Duration::from_secs(600);

/// How often a running export writes its progress to the database (where
/// any server answers the page's questions about it) and learns whether it
/// was cancelled.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A running export's progress, on the server streaming it.
#[derive(Debug, Default)]
struct Progress {
    rows: AtomicU64,
    cancelled: AtomicBool,
}

/// The exports this server is streaming; their tickets, progress and
/// cancellation are in the database, shared by every server.
#[derive(Debug, Default)]
pub struct Exports {
    running: Mutex<HashMap<String, Arc<Progress>>>,
}

fn micros_ago(db: &store::Db, d: Duration) -> i64 {
    db.now() - i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Exports {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Progress>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an export and returns its ticket.
    pub async fn prepare(
        &self,
        db: &store::Db,
        owner: i64,
        source: ExportSource,
        format: ExportFormat,
        total: u64,
        up_to: i64,
    ) -> AppResult<ExportTicket> {
        use rand::Rng;
        let token: String = {
            let bytes: [u8; 16] = rand::thread_rng().gen();
            hex::encode(bytes)
        };
        let job = store::ExportJob {
            source,
            format,
            total,
            up_to,
        };
        store::insert_export(db, &token, owner, &job, micros_ago(db, TICKET_LIFETIME)).await?;
        Ok(ExportTicket {
            token,
            total,
            format,
        })
    }

    /// How far the owner's export has come.
    pub async fn status(&self, db: &store::Db, token: &str, owner: i64) -> AppResult<ExportStatus> {
        let mut status = store::export_status(db, token, owner).await?;
        // Streamed here: the count is fresher than the last write.
        if let Some(p) = self.running().get(token) {
            status.rows = status.rows.max(p.rows.load(Ordering::Relaxed));
        }
        Ok(status)
    }

    /// Stops the owner's export; the download ends unfinished.
    pub async fn cancel(&self, db: &store::Db, token: &str, owner: i64) -> AppResult<ExportStatus> {
        let status = store::cancel_export(db, token, owner).await?;
        if status.cancelled {
            if let Some(p) = self.running().get(token) {
                p.cancelled.store(true, Ordering::Relaxed);
            }
        }
        Ok(status)
    }

    /// Marks the owner's export started; each ticket downloads once.
    async fn start(
        &self,
        db: &store::Db,
        token: &str,
        owner: i64,
    ) -> AppResult<(store::ExportJob, Arc<Progress>)> {
        let job = store::start_export(db, token, owner, micros_ago(db, TICKET_LIFETIME)).await?;
        let progress = Arc::<Progress>::default();
        self.running().insert(token.to_string(), progress.clone());
        Ok((job, progress))
    }

    fn finished(&self, token: &str) {
        self.running().remove(token);
    }
}

/// Writes a running export's progress every [`PROGRESS_EVERY`] until
/// `stop` fires, and passes on a cancellation made on any server.
fn spawn_progress_writer(
    db: store::Db,
    token: String,
    progress: Arc<Progress>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PROGRESS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = every.tick() => {}
            }
            let rows = progress.rows.load(Ordering::Relaxed);
            match store::write_export_progress(&db, &token, rows, None).await {
                Ok(true) => progress.cancelled.store(true, Ordering::Relaxed),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "export progress not written"),
            }
        }
    });
}

/// Prepares an export of a selection for `user` (auditors and admins;
/// Admin Sessions records for admins only, and not as PDF).
pub async fn prepare(
    state: &AppState,
    user: &UserInfo,
    selection: ExportSource,
    format: ExportFormat,
) -> AppResult<ExportTicket> {
    let needed = match selection {
        ExportSource::Events(_) => Role::Auditor,
        ExportSource::Sessions(_) => Role::Admin,
    };
    if !user.role.allows(needed) {
        return Err(AppError::Forbidden(format!(
            "Your role may not export this; it needs the {} role.",
            needed.as_str()
        )));
    }
    selection.validate()?;
    let (total, up_to) = match &selection {
        ExportSource::Events(s) => {
            let up_to = store::max_event_id(&state.db).await?;
            (
                store::count_selection(&state.db, s, Some(up_to)).await?,
                up_to,
            )
        }
        ExportSource::Sessions(s) => {
            if format == ExportFormat::Pdf {
                return Err(AppError::bad_request(
                    "format: Admin Sessions export as CSV or JSON Lines",
                ));
            }
            store::count_session_selection(&state.db, s, user.id).await?
        }
    };
    if format == ExportFormat::Pdf && total > MAX_PDF_ROWS {
        return Err(AppError::bad_request(format!(
            "format: a PDF report holds at most {} events and this selection has {}; export CSV or JSON Lines, or narrow the filter",
            format_count(MAX_PDF_ROWS),
            format_count(total)
        )));
    }
    state
        .exports
        .prepare(&state.db, user.id, selection, format, total, up_to)
        .await
}

/// `GET /api/exports/{token}`: the download.
pub async fn download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    user: Option<Extension<RequestUser>>,
    client: Option<Extension<ClientInfo>>,
) -> Response {
    match start_download(&state, &token, user, client).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn start_download(
    state: &AppState,
    token: &str,
    user: Option<Extension<RequestUser>>,
    client: Option<Extension<ClientInfo>>,
) -> AppResult<Response> {
    let user = user
        .and_then(|Extension(RequestUser(u))| u)
        .ok_or_else(|| AppError::Unauthorized("Sign in to continue.".into()))?;
    if !user.role.allows(Role::Auditor) {
        return Err(AppError::Forbidden(
            "Your role may not export; it needs the auditor role.".into(),
        ));
    }
    let Extension(client) = client.ok_or(AppError::Internal)?;
    let owner = user.id;
    let (job, progress) = state.exports.start(&state.db, token, user.id).await?;
    let store::ExportJob {
        source: selection,
        format,
        total,
        up_to,
    } = job;
    let stem = match selection {
        ExportSource::Events(_) => "events",
        ExportSource::Sessions(_) => "admin-sessions",
    };
    // The export is an event of its own, written before any row leaves.
    let mut record = self_event(
        state.db.now(),
        Some(&user),
        &client,
        "EXPORT",
        None,
        format!(
            "Exported {} {} as {} ({})",
            format_count(total),
            if total == 1 {
                selection.nouns().0
            } else {
                selection.nouns().1
            },
            format.label(),
            selection.describe()
        ),
    );
    record.after = Some(
        serde_json::json!({
            "format": format.extension(),
            "count": total,
            "selection": selection.describe(),
            "up_to_id": up_to,
        })
        .to_string(),
    );
    store::insert_events(&state.db, &[record], None).await?;

    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE_CHUNKS);
    let generated_at = state.db.now();
    let header = ReportHeader {
        selection: selection.describe(),
        generated_at,
        user: format!("{} ({})", user.name, user.email),
        total,
    };
    let db = state.db.clone();
    let state = state.clone();
    let token = token.to_string();
    let (stop_progress, stop) = tokio::sync::oneshot::channel();
    spawn_progress_writer(db.clone(), token.clone(), progress.clone(), stop);
    tokio::spawn(async move {
        let sessions = matches!(selection, ExportSource::Sessions(_));
        let mut sink = StreamSink {
            encoder: Encoder::new(format, header, sessions),
            tx,
            progress: progress.clone(),
        };
        let limit = (format == ExportFormat::Pdf).then_some(MAX_PDF_ROWS);
        let result = match &selection {
            ExportSource::Events(s) => store::export_rows(&db, s, up_to, limit, &mut sink).await,
            ExportSource::Sessions(s) => {
                store::export_session_rows(&db, s, owner, up_to, &mut sink).await
            }
        };
        let result = match result {
            Ok(_) => sink.finish().await,
            Err(e) => Err(e),
        };
        let end = match result {
            Ok(()) => store::ExportEnd::Done,
            Err(e) => {
                let end = if progress.cancelled.load(Ordering::Relaxed) {
                    store::ExportEnd::Cancelled
                } else {
                    tracing::warn!(error = %e, "export stopped");
                    store::ExportEnd::Failed
                };
                // An error ends the body: the download is not mistaken for complete.
                let _ = sink
                    .tx
                    .send(Err(std::io::Error::other("export stopped")))
                    .await;
                end
            }
        };
        let _ = stop_progress.send(());
        let rows = progress.rows.load(Ordering::Relaxed);
        if let Err(e) = store::write_export_progress(&db, &token, rows, Some(end)).await {
            tracing::warn!(error = %e, "export end not written");
        }
        state.exports.finished(&token);
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let filename = format!(
        "auditdeck-{}-{}.{}",
        stem,
        format_rfc3339(generated_at)
            .get(..19)
            .unwrap_or_default()
            .replace(':', ""),
        format.extension()
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What the PDF report says about itself.
#[derive(Debug, Clone)]
pub struct ReportHeader {
    pub selection: String,
    pub generated_at: i64,
    pub user: String,
    pub total: u64,
}

struct StreamSink {
    encoder: Encoder,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    progress: Arc<Progress>,
}

impl StreamSink {
    async fn send(&mut self, bytes: Vec<u8>) -> AppResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Ok(Bytes::from(bytes)))
            .await
            .map_err(|_| AppError::Transport("the client went away".into()))
    }

    async fn finish(&mut self) -> AppResult<()> {
        let rest = self.encoder.finish()?;
        for chunk in rest.chunks(CHUNK_BYTES) {
            self.send(chunk.to_vec()).await?;
        }
        Ok(())
    }
}

impl RowSink for StreamSink {
    async fn row(&mut self, row: ExportRow<'_>) -> AppResult<()> {
        if self.progress.cancelled.load(Ordering::Relaxed) {
            return Err(AppError::Conflict("cancelled".into()));
        }
        self.encoder.row(&row)?;
        self.after_row().await
    }

    async fn session(&mut self, row: SessionRow) -> AppResult<()> {
        if self.progress.cancelled.load(Ordering::Relaxed) {
            return Err(AppError::Conflict("cancelled".into()));
        }
        self.encoder.session(&row)?;
        self.after_row().await
    }
}

impl StreamSink {
    async fn after_row(&mut self) -> AppResult<()> {
        self.progress.rows.fetch_add(1, Ordering::Relaxed);
        if let Some(chunk) = self.encoder.take_if_over(CHUNK_BYTES) {
            self.send(chunk).await?;
        }
        Ok(())
    }
}

/// Turns rows into the bytes of one format.
pub enum Encoder {
    Csv(Box<csv::Writer<Vec<u8>>>),
    JsonLines(Vec<u8>),
    Pdf(Box<PdfReport>),
}

/// The CSV header row.
pub const CSV_HEADER: [&str; 17] = [
    "id",
    "occurred_at",
    "ip",
    "initiator_kind",
    "initiator_id",
    "initiator_name",
    "initiator_email",
    "initiator_role",
    "action",
    "table",
    "primary_key",
    "description",
    "before",
    "after",
    "user_agent",
    "request_id",
    "session_id",
];

/// The CSV header row of an Admin Sessions export.
pub const SESSION_CSV_HEADER: [&str; 11] = [
    "id",
    "occurred_at",
    "user_id",
    "user_name",
    "user_email",
    "ip",
    "url",
    "type",
    "method",
    "status",
    "duration_us",
];

impl Encoder {
    pub fn new(format: ExportFormat, header: ReportHeader, sessions: bool) -> Self {
        match format {
            ExportFormat::Csv => {
                // A byte-order mark, so spreadsheets read the file as UTF-8.
                let mut csv = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
                let _ = if sessions {
                    csv.write_record(SESSION_CSV_HEADER)
                } else {
                    csv.write_record(CSV_HEADER)
                };
                Self::Csv(Box::new(csv))
            }
            ExportFormat::JsonLines => Self::JsonLines(Vec::with_capacity(CHUNK_BYTES * 2)),
            ExportFormat::Pdf => Self::Pdf(Box::new(PdfReport::new(header))),
        }
    }

    pub fn row(&mut self, row: &ExportRow<'_>) -> AppResult<()> {
        match self {
            Self::Csv(w) => {
                let id = row.id.to_string();
                let at = format_rfc3339(row.occurred_at);
                let before = row.before.map(store::json_text);
                let after = row.after.map(store::json_text);
                fn opt<'b>(v: &'b Option<Cow<'_, str>>) -> &'b str {
                    v.as_deref().unwrap_or("")
                }
                let cells = [
                    id.as_str(),
                    at.as_str(),
                    opt(&row.ip),
                    &row.initiator_kind,
                    opt(&row.initiator_id),
                    opt(&row.initiator_name),
                    opt(&row.initiator_email),
                    opt(&row.initiator_role),
                    &row.action,
                    opt(&row.table_name),
                    opt(&row.primary_key),
                    &row.description,
                    opt(&before),
                    opt(&after),
                    opt(&row.user_agent),
                    opt(&row.request_id),
                    opt(&row.session_id),
                ];
                let fail = |e: csv::Error| {
                    tracing::error!(error = %e, "csv");
                    AppError::Internal
                };
                for cell in cells {
                    w.write_field(neutralise(cell).as_bytes()).map_err(fail)?;
                }
                w.write_record(std::iter::empty::<&[u8]>()).map_err(fail)
            }
            Self::JsonLines(buf) => {
                serde_json::to_writer(&mut *buf, &json_line(row)).map_err(|e| {
                    tracing::error!(error = %e, "json lines");
                    AppError::Internal
                })?;
                // before and after go in as the JSON they are stored as
                // (checked valid when stored), not re-parsed.
                buf.pop();
                for (key, value) in [
                    (&b",\"before\":"[..], row.before),
                    (&b",\"after\":"[..], row.after),
                ] {
                    buf.extend_from_slice(key);
                    let text = value.map(store::json_text);
                    buf.extend_from_slice(text.as_deref().unwrap_or("null").as_bytes());
                }
                buf.extend_from_slice(b"}\n");
                Ok(())
            }
            Self::Pdf(report) => {
                report.row(row);
                Ok(())
            }
        }
    }

    /// One Admin Sessions record (CSV or JSON Lines).
    pub fn session(&mut self, row: &SessionRow) -> AppResult<()> {
        let fail = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "session export");
            AppError::Internal
        };
        match self {
            Self::Csv(w) => {
                let cells = [
                    row.id.to_string(),
                    format_rfc3339(row.occurred_at),
                    row.user_id.clone().unwrap_or_default(),
                    row.user_name.clone(),
                    row.user_email.clone(),
                    row.ip.clone().unwrap_or_default(),
                    row.url.clone(),
                    row.kind.clone(),
                    row.method.clone(),
                    row.status.to_string(),
                    row.duration_us.to_string(),
                ];
                for cell in &cells {
                    w.write_field(neutralise(cell).as_bytes())
                        .map_err(|e| fail(&e))?;
                }
                w.write_record(std::iter::empty::<&[u8]>())
                    .map_err(|e| fail(&e))
            }
            Self::JsonLines(buf) => {
                let line = serde_json::json!({
                    "id": row.id,
                    "occurred_at": format_rfc3339(row.occurred_at),
                    "user": {"id": row.user_id, "name": row.user_name, "email": row.user_email},
                    "ip": row.ip,
                    "url": row.url,
                    "type": row.kind,
                    "method": row.method,
                    "status": row.status,
                    "duration_us": row.duration_us,
                });
                serde_json::to_writer(&mut *buf, &line).map_err(|e| fail(&e))?;
                buf.push(b'\n');
                Ok(())
            }
            Self::Pdf(_) => Err(AppError::bad_request(
                "format: Admin Sessions export as CSV or JSON Lines",
            )),
        }
    }

    /// The bytes written so far, once there are at least `n`.
    pub fn take_if_over(&mut self, n: usize) -> Option<Vec<u8>> {
        match self {
            Self::Csv(w) if w.get_ref().len() >= n => {
                let full = std::mem::replace(w.as_mut(), csv::Writer::from_writer(Vec::new()));
                full.into_inner().ok()
            }
            Self::JsonLines(buf) if buf.len() >= n => Some(std::mem::take(buf)),
            _ => None,
        }
    }

    /// Everything not yet taken.
    pub fn finish(&mut self) -> AppResult<Vec<u8>> {
        match self {
            Self::Csv(w) => {
                let full = std::mem::replace(w.as_mut(), csv::Writer::from_writer(Vec::new()));
                full.into_inner().map_err(|_| AppError::Internal)
            }
            Self::JsonLines(buf) => Ok(std::mem::take(buf)),
            Self::Pdf(report) => Ok(report.finish()),
        }
    }
}

/// A CSV cell that no spreadsheet runs as a formula: a cell starting with
/// `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`, unless it
/// is a plain number (`-5`, `+3.25`), which stays readable as it is.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    let dangerous = cell
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    if dangerous && !is_plain_number(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix(['-', '+']).unwrap_or(cell);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// An event's initiator as the ingest and read APIs write it, borrowed
/// (JSON Lines exports and streamed events).
#[derive(serde::Serialize)]
pub(crate) struct JsonInitiator<'a> {
    pub kind: &'a str,
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub role: Option<&'a str>,
}

impl<'a> JsonInitiator<'a> {
    pub fn of(initiator: &'a crate::models::Initiator) -> Self {
        Self {
            kind: initiator.kind.as_str(),
            id: initiator.id.as_deref(),
            name: initiator.name.as_deref(),
            email: initiator.email.as_deref(),
            role: initiator.role.as_deref(),
        }
    }
}

/// One JSON Lines record: the ingest API's event shape, with the id
/// (`before` and `after` are appended as stored).
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    id: i64,
    occurred_at: String,
    action: &'a str,
    initiator: JsonInitiator<'a>,
    ip: Option<&'a str>,
    table: Option<&'a str>,
    primary_key: Option<&'a str>,
    description: &'a str,
    user_agent: Option<&'a str>,
    request_id: Option<&'a str>,
    session_id: Option<&'a str>,
}

fn json_line<'a>(row: &'a ExportRow<'_>) -> JsonLine<'a> {
    JsonLine {
        id: row.id,
        occurred_at: format_rfc3339(row.occurred_at),
        action: &row.action,
        initiator: JsonInitiator {
            kind: &row.initiator_kind,
            id: row.initiator_id.as_deref(),
            name: row.initiator_name.as_deref(),
            email: row.initiator_email.as_deref(),
            role: row.initiator_role.as_deref(),
        },
        ip: row.ip.as_deref(),
        table: row.table_name.as_deref(),
        primary_key: row.primary_key.as_deref(),
        description: &row.description,
        user_agent: row.user_agent.as_deref(),
        request_id: row.request_id.as_deref(),
        session_id: row.session_id.as_deref(),
    }
}

/// A PDF report: title, the filter, when and by whom it was made, a table of
/// the entries, page numbers. Built with `pdf-writer`; text in every script
/// through `pdf_text` (system fonts, shaped, embedded as subsets).
pub struct PdfReport {
    header: ReportHeader,
    type_setter: Typesetter,
    rows: Vec<[Line; 7]>,
}

/// A4 landscape, in points.
const PAGE_W: f32 = 842.0;
const PAGE_H: f32 = 595.0;
const MARGIN: f32 = 36.0;
const ROW_H: f32 = 13.0;
const FONT_SIZE: f32 = 7.5;
/// Column titles, left edges and widths (points).
const COLUMNS: [(&str, f32, f32); 7] = [
    ("ID", 36.0, 48.0),
    ("Date (UTC)", 84.0, 102.0),
    ("Initiator", 186.0, 150.0),
    ("Action", 336.0, 70.0),
    ("Table / key", 406.0, 110.0),
    ("IP", 516.0, 80.0),
    ("Description", 596.0, 210.0),
];

impl PdfReport {
    pub fn new(header: ReportHeader) -> Self {
        Self::with_type_setter(header, Typesetter::new())
    }

    pub fn with_type_setter(header: ReportHeader, type_setter: Typesetter) -> Self {
        Self {
            header,
            type_setter,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, row: &ExportRow<'_>) {
        let initiator = match (&row.initiator_name, &row.initiator_email) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (Some(n), None) => n.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => row.initiator_kind.to_string(),
        };
        let target = match (&row.table_name, &row.primary_key) {
            (Some(t), Some(k)) => format!("{t} #{k}"),
            (Some(t), None) => t.to_string(),
            (None, Some(k)) => k.to_string(),
            (None, None) => String::new(),
        };
        let cells = [
            row.id.to_string(),
            format_utc(row.occurred_at),
            initiator,
            row.action.to_string(),
            target,
            row.ip.as_deref().unwrap_or_default().to_string(),
            row.description.replace(['\n', '\r', '\t'], " "),
        ];
        let t = &mut self.type_setter;
        self.rows.push(std::array::from_fn(|i| {
            t.line(&cells[i], false, FONT_SIZE, COLUMNS[i].2 - 4.0)
        }));
    }

    /// Rows on the first page (below the title block) and on the others.
    fn rows_per_page(first: bool) -> usize {
        let top = if first { 120.0 } else { 50.0 };
        ((PAGE_H - top - MARGIN - 20.0) / ROW_H) as usize
    }

    pub fn page_count(&self) -> usize {
        let first = Self::rows_per_page(true);
        if self.rows.len() <= first {
            1
        } else {
            1 + (self.rows.len() - first).div_ceil(Self::rows_per_page(false))
        }
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let pages = self.page_count();
        let t = &mut self.type_setter;
        let h = &self.header;
        let wide = PAGE_W - 2.0 * MARGIN;
        let title = t.line("Auditdeck \u{2013} Activity Log export", true, 16.0, wide);
        let lines = [
            format!("Selection: {}", h.selection),
            format!(
                "Generated: {} UTC by {}",
                format_utc(h.generated_at),
                h.user
            ),
            format!("Entries: {}", format_count(h.total)),
        ]
        .map(|line| t.line(&line, false, 9.0, wide));
        let titles = COLUMNS.map(|(title, _, w)| t.line(title, true, FONT_SIZE, w - 4.0));
        let footers: Vec<Line> = (0..pages)
            .map(|i| t.line(&format!("Page {} of {}", i + 1, pages), false, 8.0, 80.0))
            .collect();

        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let page_ref = |i: usize| Ref::new(3 + 2 * i as i32);
        let content_ref = |i: usize| Ref::new(4 + 2 * i as i32);
        let fonts = Ref::new(3 + 2 * pages as i32);
        let t = &self.type_setter;
        let resources = t.resources(fonts);
        let mut pdf = Pdf::new();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids((0..pages).map(page_ref))
            .count(pages as i32);
        let mut rows = self.rows.iter();
        for (i, footer) in footers.iter().enumerate() {
            let mut c = Content::new();
            let mut y = PAGE_H - MARGIN;
            if i == 0 {
                t.show(&mut c, &title, true, 16.0, MARGIN, y - 14.0);
                for (k, line) in lines.iter().enumerate() {
                    t.show(&mut c, line, false, 9.0, MARGIN, y - 34.0 - 13.0 * k as f32);
                }
                y -= 84.0;
            }
            // Column titles on a grey band.
            c.set_fill_gray(0.92);
            c.rect(MARGIN, y - ROW_H, PAGE_W - 2.0 * MARGIN, ROW_H);
            c.fill_nonzero();
            c.set_fill_gray(0.0);
            for (line, (_, x, _)) in titles.iter().zip(COLUMNS) {
                t.show(&mut c, line, true, FONT_SIZE, x + 2.0, y - 9.5);
            }
            y -= ROW_H;
            for _ in 0..Self::rows_per_page(i == 0) {
                let Some(row) = rows.next() else { break };
                for (cell, (_, x, _)) in row.iter().zip(COLUMNS) {
                    t.show(&mut c, cell, false, FONT_SIZE, x + 2.0, y - 9.5);
                }
                c.set_stroke_gray(0.85);
                c.move_to(MARGIN, y - ROW_H);
                c.line_to(PAGE_W - MARGIN, y - ROW_H);
                c.stroke();
                y -= ROW_H;
            }
            t.show(
                &mut c,
                footer,
                false,
                8.0,
                PAGE_W - MARGIN - 60.0,
                MARGIN - 14.0,
            );
            let mut page = pdf.page(page_ref(i));
            page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
                .parent(tree)
                .contents(content_ref(i));
            let mut res = page.resources();
            let mut names = res.fonts();
            for (name, id) in &resources {
                names.pair(Name(name.as_bytes()), *id);
            }
            drop(names);
            drop(res);
            drop(page);
            let packed = miniz_oxide::deflate::compress_to_vec_zlib(&c.finish(), 6);
            pdf.stream(content_ref(i), &packed)
                .filter(pdf_writer::Filter::FlateDecode);
        }
        t.write_fonts(&mut pdf, fonts);
        pdf.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_numbers_stay_readable() {
        for cell in [
            "=1+1",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\r=x",
            "-",
            "=",
            "+1e5",
        ] {
            assert_eq!(neutralise(cell), format!("'{cell}"), "{cell:?}");
        }
        for cell in ["-5", "+3.25", "-0.5", "42", "a=b", "", "hello @you", "5-3"] {
            assert_eq!(neutralise(cell), cell, "{cell:?}");
        }
    }
}
