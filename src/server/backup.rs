//! Backups that prove themselves: an online copy of the database (SQLite's
//! `VACUUM INTO`, PostgreSQL's `pg_dump`), written under a temporary name
//! and renamed only once its own hash chain has been walked to the head it
//! covers; a checksum beside it; the schedule that keeps the last N; and
//! the restore that refuses anything that does not verify, before and after.

use super::chain::Expected;
use super::config::{AppConfig, BackupSchedule};
use super::maintenance;
use super::store::{self, Db, NewEvent};
use crate::errors::{AppError, AppResult};
use crate::integrity::{BackupRow, VerifyMode};
use crate::models::{format_bytes, format_count, Initiator, InitiatorKind};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The checksum file of a PostgreSQL dump folder (`sha256sum -c` reads it).
pub const DUMP_SUMS: &str = "SHA256SUMS";
/// The lock a scheduled backup holds (one server at a time).
pub const BACKUP_LOCK: i64 = 0x4175_6469_7464_6b03;
/// What a backup's file names start with in the schedule's folder.
const SCHEDULED_PREFIX: &str = "auditdeck-";

/// A copy whose chain was walked to its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCopy {
    pub head_id: i64,
    /// Hex.
    pub chain_hash: String,
    /// Entries in the chain up to the head (those cut by retention included).
    pub entries: i64,
    pub events: u64,
    pub checkpoints_confirmed: u64,
    /// Checkpoints given from outside that lie beyond the copy's head (taken
    /// after it): a copy cannot be held to them.
    pub checkpoints_beyond: usize,
}

/// A backup written and verified.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub copy: VerifiedCopy,
    pub bytes: u64,
    pub sha256: String,
    pub seconds: f64,
}

fn failed(message: impl Into<String>) -> AppError {
    AppError::BadRequest(message.into())
}

fn io_failed(what: &str, path: &Path, e: std::io::Error) -> AppError {
    failed(format!("cannot {what} {}: {e}", path.display()))
}

/// Whether the database behind `url` is PostgreSQL.
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// The name a copy is written under until it has verified: hidden, beside
/// the final name, so the rename is atomic.
pub fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial"))
}

/// The checksum file beside a SQLite backup.
pub fn sums_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!("{name}.sha256"))
}

/// The SHA-256 of a file, as hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writes `text` to `path` by way of a temporary file, synced, then renamed.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = partial_path(path);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `sha256sum`'s line for a file: `<hex>  <name>`.
fn sums_line(hash: &str, name: &str) -> String {
    format!("{hash}  {name}\n")
}

/// The files and hashes a `sha256sum` text lists.
pub fn parse_sums(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (hash, name) = line
                .split_once(' ')
                .ok_or_else(|| format!("\"{line}\" is not a sha256sum line"))?;
            let name = name.trim_start_matches([' ', '*']).to_string();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
                return Err(format!("\"{line}\" is not a sha256sum line"));
            }
            Ok((hash.to_ascii_lowercase(), name))
        })
        .collect()
}

/// Checks every file a checksum list names, in `dir`.
fn check_sums(dir: &Path, sums: &Path) -> AppResult<()> {
    let text = std::fs::read_to_string(sums).map_err(|e| {
        failed(format!(
            "{} cannot be read ({e}): a backup written by `auditdeck backup` has it; without it the copy cannot be checked byte for byte",
            sums.display()
        ))
    })?;
    let listed = parse_sums(&text).map_err(|e| failed(format!("{}: {e}", sums.display())))?;
    if listed.is_empty() {
        return Err(failed(format!("{} lists no file", sums.display())));
    }
    for (hash, name) in listed {
        let file = dir.join(&name);
        let found = sha256_file(&file).map_err(|e| io_failed("read", &file, e))?;
        if found != hash {
            return Err(failed(format!(
                "{} does not match its checksum: it was changed or damaged after the backup was written",
                file.display()
            )));
        }
    }
    Ok(())
}

/// Walks a copy's chain from its beginning (or retention cut) and holds it to
/// the head the copy records, to its stored checkpoints and to those of
/// `external` up to its head.
pub async fn verify_copy(copy: &Db, mut external: Vec<Expected>) -> AppResult<VerifiedCopy> {
    if copy.backend() == store::Backend::Sqlite {
        let problems = store::sqlite_quick_check(copy).await?;
        if let Some(first) = problems.first() {
            return Err(failed(format!(
                "the copy is damaged ({} problems; first: {first})",
                problems.len()
            )));
        }
    }
    let (head, _) = store::chain_state(copy).await?;
    let given = external.len();
    external.retain(|e| e.last_id <= head.id);
    let checkpoints_beyond = given - external.len();
    let report = store::verify_chain(copy, VerifyMode::Full, external, |_, _| {}).await?;
    if !report.intact() {
        return Err(failed(format!(
            "the copy's chain does not verify: {}",
            maintenance::summary(&report)
        )));
    }
    let head_hash = hex::encode(head.hash);
    if report.end_id != head.id || report.end_hash != head_hash {
        return Err(failed(format!(
            "the copy's chain ends at #{}, not at the head it records (#{})",
            report.end_id, head.id
        )));
    }
    Ok(VerifiedCopy {
        head_id: head.id,
        chain_hash: head_hash,
        entries: head.count,
        events: report.events,
        checkpoints_confirmed: report.checkpoints_confirmed,
        checkpoints_beyond,
    })
}

/// Writes a verified backup of the database behind `db` (at `url`) to
/// `dest`, which must not exist: a file for SQLite (with `DEST.sha256`
/// beside it), a `pg_dump` folder for PostgreSQL (with `SHA256SUMS` in it).
/// Nothing is left at `dest` unless the copy verified.
pub async fn backup_to(db: &Db, url: &str, dest: &Path) -> AppResult<BackupReport> {
    let started = Instant::now();
    if dest.exists() {
        return Err(failed(format!(
            "{} already exists: a backup never overwrites one",
            dest.display()
        )));
    }
    let dir = parent_of(dest);
    if !dir.is_dir() {
        return Err(failed(format!("{} is not a folder", dir.display())));
    }
    let tmp = partial_path(dest);
    let outcome = if is_postgres(url) {
        pg_backup(db, url, &tmp, dest).await
    } else {
        sqlite_backup(db, &tmp, dest).await
    };
    match outcome {
        Ok((copy, bytes, sha256)) => Ok(BackupReport {
            path: dest.to_path_buf(),
            copy,
            bytes,
            sha256,
            seconds: started.elapsed().as_secs_f64(),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

async fn sqlite_backup(db: &Db, tmp: &Path, dest: &Path) -> AppResult<(VerifiedCopy, u64, String)> {
    // An empty file first: an unwritable folder says so in plain words.
    let _ = std::fs::remove_file(tmp);
    std::fs::File::create(tmp).map_err(|e| io_failed("write", tmp, e))?;
    store::sqlite_copy_into(db, tmp).await.map_err(|e| {
        tracing::error!(error = %e, path = %tmp.display(), "the database could not be copied");
        failed("the database could not be copied (the details are in the server log)")
    })?;
    let copy = store::open_sqlite_copy(tmp, true).await?;
    let verified = verify_copy(&copy, Vec::new()).await;
    copy.close().await;
    let verified = verified?;
    let (tmp, dest) = (tmp.to_path_buf(), dest.to_path_buf());
    let (bytes, sha256) = tokio::task::spawn_blocking(move || -> AppResult<(u64, String)> {
        let f = std::fs::File::open(&tmp).map_err(|e| io_failed("read", &tmp, e))?;
        f.sync_all().map_err(|e| io_failed("sync", &tmp, e))?;
        let bytes = f.metadata().map_err(|e| io_failed("read", &tmp, e))?.len();
        let sha256 = sha256_file(&tmp).map_err(|e| io_failed("read", &tmp, e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sums = sums_path(&dest);
        write_atomically(&sums, &sums_line(&sha256, &name))
            .map_err(|e| io_failed("write", &sums, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| io_failed("rename the copy to", &dest, e))?;
        sync_dir(&parent_of(&dest));
        Ok((bytes, sha256))
    })
    .await
    .map_err(|_| AppError::Internal)??;
    Ok((verified, bytes, sha256))
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> Result<String, String> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| "the database URL has no ://".to_string())?
        + 3;
    let rest = &url[scheme_end..];
    let query_at = rest.find('?').unwrap_or(rest.len());
    let path_at = rest[..query_at].find('/').unwrap_or(query_at);
    Ok(format!(
        "{}{}/{name}{}",
        &url[..scheme_end],
        &rest[..path_at],
        &rest[query_at..]
    ))
}

/// Runs a PostgreSQL client tool; its output goes to the log when it fails.
async fn run_tool(program: &str, args: &[&std::ffi::OsStr]) -> AppResult<()> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            failed(format!(
                "cannot run {program} ({e}); it comes with PostgreSQL's client tools (Debian: postgresql-client)"
            ))
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    tracing::error!(program, status = %output.status, output = %stderr.trim(), "a PostgreSQL tool failed");
    Err(failed(format!(
        "{program} failed ({}); its output is in the server log",
        output.status
    )))
}

static SCRATCH: AtomicU64 = AtomicU64::new(0);

/// Restores a dump folder into a scratch database beside the one `db` is
/// on, verifies it there, and drops it.
async fn verify_dump(
    db: &Db,
    url: &str,
    dump: &Path,
    external: Vec<Expected>,
) -> AppResult<VerifiedCopy> {
    let scratch = format!(
        "auditdeck_verify_{}_{}",
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::Relaxed)
    );
    let scratch_url = with_database(url, &scratch).map_err(failed)?;
    store::create_database(db, &scratch).await?;
    let outcome = async {
        run_tool(
            "pg_restore",
            &[
                "--no-owner".as_ref(),
                "--no-privileges".as_ref(),
                "--exit-on-error".as_ref(),
                "--dbname".as_ref(),
                scratch_url.as_ref(),
                dump.as_os_str(),
            ],
        )
        .await?;
        let copy = store::open(&scratch_url).await?;
        let verified = verify_copy(&copy, external).await;
        copy.close().await;
        verified
    }
    .await;
    if let Err(error) = store::drop_database(db, &scratch).await {
        tracing::error!(%error, database = scratch, "could not drop the scratch database");
    }
    outcome
}

/// Writes `SHA256SUMS` for every file of a dump folder (each synced first).
fn write_dump_sums(dir: &Path) -> std::io::Result<(u64, String)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != DUMP_SUMS)
        .collect();
    names.sort();
    let mut text = String::new();
    let mut bytes = 0;
    for name in &names {
        let path = dir.join(name);
        let f = std::fs::File::open(&path)?;
        f.sync_all()?;
        bytes += f.metadata()?.len();
        text.push_str(&sums_line(&sha256_file(&path)?, name));
    }
    write_atomically(&dir.join(DUMP_SUMS), &text)?;
    sync_dir(dir);
    let whole = hex::encode(Sha256::digest(text.as_bytes()));
    Ok((bytes, whole))
}

async fn pg_backup(
    db: &Db,
    url: &str,
    tmp: &Path,
    dest: &Path,
) -> AppResult<(VerifiedCopy, u64, String)> {
    let _ = std::fs::remove_dir_all(tmp);
    // pg_dump reads one snapshot, beside the writers.
    run_tool(
        "pg_dump",
        &[
            "--format=directory".as_ref(),
            "--no-owner".as_ref(),
            "--no-privileges".as_ref(),
            "--file".as_ref(),
            tmp.as_os_str(),
            "--dbname".as_ref(),
            url.as_ref(),
        ],
    )
    .await?;
    let dir = tmp.to_path_buf();
    let (bytes, sha256) = tokio::task::spawn_blocking(move || write_dump_sums(&dir))
        .await
        .map_err(|_| AppError::Internal)?
        .map_err(|e| io_failed("write the checksums of", tmp, e))?;
    let verified = verify_dump(db, url, tmp, Vec::new()).await?;
    std::fs::rename(tmp, dest).map_err(|e| io_failed("rename the copy to", dest, e))?;
    sync_dir(&parent_of(dest));
    Ok((verified, bytes, sha256))
}

/// The System initiator of backup events.
fn backup_initiator() -> Initiator {
    Initiator {
        kind: InitiatorKind::System,
        id: Some("backup".into()),
        name: Some("Backup".into()),
        email: None,
        role: None,
    }
}

/// Makes a backup and records it (a `backups` row and a BACKUP event, or
/// the failure and its reason). `kind`: "scheduled" or "command".
pub async fn run_backup(db: &Db, url: &str, dest: &Path, kind: &str) -> AppResult<BackupReport> {
    let started_at = db.now();
    let outcome = backup_to(db, url, dest).await;
    let path = dest.display().to_string();
    let (backup, description, after) = match &outcome {
        Ok(r) => (
            BackupRow {
                id: 0,
                started_at,
                finished_at: db.now(),
                kind: kind.into(),
                status: "verified".into(),
                path: path.clone(),
                head_id: Some(r.copy.head_id),
                chain_hash: Some(r.copy.chain_hash.clone()),
                bytes: i64::try_from(r.bytes).ok(),
                error: None,
            },
            format!(
                "Backup verified: {} entries up to #{} (chain {}…), {}, written to {path}",
                format_count(u64::try_from(r.copy.entries).unwrap_or(0)),
                r.copy.head_id,
                r.copy.chain_hash.get(..12).unwrap_or_default(),
                format_bytes(r.bytes),
            ),
            serde_json::json!({
                "path": path,
                "kind": kind,
                "status": "verified",
                "head_id": r.copy.head_id,
                "chain_hash": r.copy.chain_hash,
                "entries": r.copy.entries,
                "bytes": r.bytes,
                "sha256": r.sha256,
                "seconds": (r.seconds * 10.0).round() / 10.0,
            }),
        ),
        Err(e) => {
            let reason = e.to_string();
            (
                BackupRow {
                    id: 0,
                    started_at,
                    finished_at: db.now(),
                    kind: kind.into(),
                    status: "failed".into(),
                    path: path.clone(),
                    head_id: None,
                    chain_hash: None,
                    bytes: None,
                    error: Some(reason.clone()),
                },
                format!("Backup to {path} failed: {reason}"),
                serde_json::json!({"path": path, "kind": kind, "status": "failed", "error": reason}),
            )
        }
    };
    let event = NewEvent {
        occurred_at: db.now(),
        ip: None,
        initiator: backup_initiator(),
        action: "BACKUP".into(),
        table_name: Some("backups".into()),
        primary_key: None,
        description,
        before: None,
        after: Some(after.to_string()),
        user_agent: None,
        request_id: None,
        session_id: None,
    };
    store::record_backup(db, &backup, &event).await?;
    outcome
}

/// The name of a scheduled backup made at `at` (microseconds, UTC).
pub fn scheduled_name(at: i64, postgres: bool) -> String {
    let stamp = chrono::DateTime::from_timestamp_micros(at)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    let ext = if postgres { "pgdump" } else { "db" };
    format!("{SCHEDULED_PREFIX}{stamp}.{ext}")
}

/// Whether a file name is one the schedule writes.
fn is_scheduled_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(SCHEDULED_PREFIX) else {
        return false;
    };
    let Some((stamp, ext)) = rest.split_once('.') else {
        return false;
    };
    stamp.len() == 16
        && stamp.as_bytes()[8] == b'T'
        && stamp.ends_with('Z')
        && stamp[..8].bytes().all(|b| b.is_ascii_digit())
        && stamp[9..15].bytes().all(|b| b.is_ascii_digit())
        && matches!(ext, "db" | "pgdump")
}

/// Of the scheduled backups' names, those beyond the newest `keep` (oldest
/// first). Other files are never touched.
pub fn beyond_newest(names: &[String], keep: usize) -> Vec<String> {
    let mut ours: Vec<&String> = names.iter().filter(|n| is_scheduled_name(n)).collect();
    ours.sort();
    let extra = ours.len().saturating_sub(keep);
    ours.into_iter().take(extra).cloned().collect()
}

/// Removes the scheduled backups in `folder` beyond the newest `keep`, with
/// their checksum files; the names removed.
pub fn rotate(folder: &Path, keep: usize) -> std::io::Result<Vec<String>> {
    let names: Vec<String> = std::fs::read_dir(folder)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let old = beyond_newest(&names, keep);
    for name in &old {
        let path = folder.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
            let _ = std::fs::remove_file(sums_path(&path));
        }
    }
    Ok(old)
}

/// How soon a scheduled backup that failed is tried again (at most).
const RETRY_FAILED_MICROS: i64 = 3_600_000_000;

/// When the next scheduled backup is due: an interval after the last one,
/// at most an hour after one that failed, or now when none was ever made.
pub async fn next_due(db: &Db, schedule: &BackupSchedule) -> AppResult<i64> {
    let last = store::recent_backups(db, Some("scheduled"), 1).await?.pop();
    Ok(match last {
        Some(b) if b.verified() => b.started_at + schedule.every_micros(),
        Some(b) => b.started_at + schedule.every_micros().min(RETRY_FAILED_MICROS),
        None => db.now(),
    })
}

/// One scheduled backup into the schedule's folder, then the rotation.
pub async fn scheduled_backup(
    db: &Db,
    url: &str,
    schedule: &BackupSchedule,
) -> AppResult<BackupReport> {
    let dest = schedule
        .folder
        .join(scheduled_name(db.now(), is_postgres(url)));
    let report = run_backup(db, url, &dest, "scheduled").await?;
    match rotate(&schedule.folder, schedule.keep as usize) {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(?removed, "older scheduled backups removed")
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not remove older scheduled backups"),
    }
    Ok(report)
}

/// How often the schedule looks at the clock.
const SCHEDULE_TICK: Duration = Duration::from_secs(30);

/// Writes the scheduled backups in the background, when Leptos.toml sets a
/// backup folder: the first a little after start when none was made, then
/// every interval. With several servers one at a time takes a backup.
pub fn spawn_backups(db: Db, config: &AppConfig) -> Option<tokio::task::JoinHandle<()>> {
    let schedule = config.backup.clone()?;
    let url = config.database_url.clone();
    Some(tokio::spawn(async move {
        // Give the server a moment to start serving first.
        tokio::time::sleep(SCHEDULE_TICK).await;
        loop {
            match next_due(&db, &schedule).await {
                Ok(due) if due <= db.now() => match db.try_exclusive(BACKUP_LOCK).await {
                    Ok(Some(_guard)) => {
                        // Another server may have made it meanwhile.
                        if next_due(&db, &schedule).await.is_ok_and(|d| d <= db.now()) {
                            match scheduled_backup(&db, &url, &schedule).await {
                                Ok(r) => tracing::info!(
                                    path = %r.path.display(),
                                    head = r.copy.head_id,
                                    bytes = r.bytes,
                                    seconds = r.seconds,
                                    "scheduled backup verified"
                                ),
                                Err(error) => tracing::error!(%error, "scheduled backup failed"),
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "could not take the backup lock"),
                },
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not read the last backup"),
            }
            tokio::time::sleep(SCHEDULE_TICK).await;
        }
    }))
}

/// What a restore found and did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub before: VerifiedCopy,
    pub after: VerifiedCopy,
    /// Whether the database held events that the restore replaced.
    pub replaced_events: bool,
}

/// Restores the backup at `src` into the database at `url`. The backup's
/// checksums and chain are checked first (with `external` checkpoints);
/// a database that holds events is refused unless `force`; the restored
/// database is verified again. The server must not be running on it.
pub async fn restore(
    url: &str,
    src: &Path,
    force: bool,
    external: Vec<Expected>,
) -> AppResult<RestoreReport> {
    if !src.exists() {
        return Err(failed(format!("{} does not exist", src.display())));
    }
    let (before, replaced_events) = if is_postgres(url) {
        pg_replace(url, src, force, &external).await?
    } else {
        sqlite_replace(url, src, force, &external).await?
    };
    let restored = store::open(url).await?;
    let after = verify_copy(&restored, external).await;
    restored.close().await;
    Ok(RestoreReport {
        before,
        after: after?,
        replaced_events,
    })
}

/// The backup's verified head, and whether the database held events.
type Replaced = (VerifiedCopy, bool);

fn refuse_events(force: bool, url: &str) -> AppResult<()> {
    if force {
        return Ok(());
    }
    Err(failed(format!(
        "{url} already holds events: restoring would replace them; pass --force to do it anyway"
    )))
}

/// Checks a SQLite backup and puts it in the database file's place.
async fn sqlite_replace(
    url: &str,
    src: &Path,
    force: bool,
    external: &[Expected],
) -> AppResult<Replaced> {
    use std::str::FromStr;
    if !src.is_file() {
        return Err(failed(format!(
            "{} is not a SQLite backup file",
            src.display()
        )));
    }
    check_sums(&parent_of(src), &sums_path(src))?;
    let source = store::open_sqlite_copy(src, false).await?;
    let before = verify_copy(&source, external.to_vec()).await;
    source.close().await;
    let before = before?;
    let target = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| failed(format!("database-url: {e}")))?
        .get_filename()
        .to_path_buf();
    let mut replaced_events = false;
    let folder = parent_of(&target);
    std::fs::create_dir_all(&folder).map_err(|e| io_failed("create", &folder, e))?;
    if target.exists() {
        let existing = store::open(url).await?;
        let any = store::any_events(&existing).await;
        existing.close().await;
        if any? {
            refuse_events(force, url)?;
            replaced_events = true;
        }
    }
    let (src_path, target_path) = (src.to_path_buf(), target.clone());
    tokio::task::spawn_blocking(move || -> AppResult<()> {
        let tmp = partial_path(&target_path);
        std::fs::copy(&src_path, &tmp).map_err(|e| io_failed("write", &tmp, e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_failed("sync", &tmp, e))?;
        for suffix in ["-wal", "-shm"] {
            let mut side = target_path.clone().into_os_string();
            side.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(side));
        }
        std::fs::rename(&tmp, &target_path)
            .map_err(|e| io_failed("rename the restored copy to", &target_path, e))?;
        sync_dir(&parent_of(&target_path));
        Ok(())
    })
    .await
    .map_err(|_| AppError::Internal)??;
    Ok((before, replaced_events))
}

/// The schemas Auditdeck's database holds (its tables; the sessions').
const PG_SCHEMAS: &str = "DROP SCHEMA IF EXISTS tower_sessions CASCADE; \
     DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;";

/// Replaces the database at `url` by the dump in `dump`, in one
/// transaction: the dump's SQL is written out whole first (`pg_restore`),
/// then the database's schemas are dropped and that SQL runs in their
/// place (`psql --single-transaction`); any error rolls the whole back, and
/// the database is as it was.
async fn replace_from_dump(url: &str, dump: &Path) -> AppResult<()> {
    let script = std::env::temp_dir().join(format!("auditdeck-restore-{}.sql", std::process::id()));
    let outcome = async {
        run_tool(
            "pg_restore",
            &[
                "--no-owner".as_ref(),
                "--no-privileges".as_ref(),
                "--file".as_ref(),
                script.as_os_str(),
                dump.as_os_str(),
            ],
        )
        .await?;
        run_tool(
            "psql",
            &[
                "--no-psqlrc".as_ref(),
                "--quiet".as_ref(),
                "--single-transaction".as_ref(),
                "--set".as_ref(),
                "ON_ERROR_STOP=1".as_ref(),
                "--dbname".as_ref(),
                url.as_ref(),
                "--command".as_ref(),
                PG_SCHEMAS.as_ref(),
                "--file".as_ref(),
                script.as_os_str(),
            ],
        )
        .await
    }
    .await;
    let _ = std::fs::remove_file(&script);
    outcome
}

/// Checks a dump folder (restored into a scratch database) and replaces
/// the database by it.
async fn pg_replace(
    url: &str,
    src: &Path,
    force: bool,
    external: &[Expected],
) -> AppResult<Replaced> {
    if !src.is_dir() {
        return Err(failed(format!(
            "{} is not a PostgreSQL backup folder",
            src.display()
        )));
    }
    check_sums(src, &src.join(DUMP_SUMS))?;
    let target = store::open(url).await?;
    let outcome = async {
        let before = verify_dump(&target, url, src, external.to_vec()).await?;
        let replaced_events = store::any_events(&target).await?;
        if replaced_events {
            refuse_events(force, url)?;
        }
        Ok::<_, AppError>((before, replaced_events))
    }
    .await;
    target.close().await;
    let replaced = outcome?;
    replace_from_dump(url, src).await?;
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_names_sort_by_time_and_rotation_keeps_the_newest() {
        let at = 1_798_675_200_000_000; // 2026-12-31T00:00:00Z
        assert_eq!(scheduled_name(at, false), "auditdeck-20261231T000000Z.db");
        assert_eq!(
            scheduled_name(at + 1_000_000, true),
            "auditdeck-20261231T000001Z.pgdump"
        );
        let names: Vec<String> = [
            "auditdeck-20261231T000002Z.db",
            "notes.txt",
            "auditdeck-20261231T000000Z.db",
            "auditdeck-20261231T000000Z.db.sha256",
            "auditdeck-20261231T000001Z.db",
            "auditdeck-latest.db",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            beyond_newest(&names, 2),
            vec!["auditdeck-20261231T000000Z.db".to_string()]
        );
        assert!(beyond_newest(&names, 3).is_empty());
        assert_eq!(beyond_newest(&names, 0).len(), 3);
    }

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5433", "x").unwrap(),
            "postgres://h:5433/x"
        );
        assert!(with_database("nothing", "x").is_err());
    }

    #[test]
    fn sums_lines_round_trip_and_bad_ones_are_refused() {
        let hash = "ab".repeat(32);
        let line = sums_line(&hash, "a.db");
        assert_eq!(parse_sums(&line).unwrap(), vec![(hash, "a.db".into())]);
        assert!(parse_sums("xyz  a.db").is_err());
        assert!(parse_sums("nospace").is_err());
    }
}
