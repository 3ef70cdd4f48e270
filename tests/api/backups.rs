//! Backups and restores against a real database: a copy taken while eight
//! clients ingest, a damaged or altered copy refused, the schedule's
//! rotation, a failed backup reported without touching anything.

use crate::common::{sample_event, ScratchDb, TestApp};
use auditdeck::models::Role;
use auditdeck::server::backup::{self, BackupReport};
use auditdeck::server::config::BackupSchedule;
use auditdeck::server::store::{self, Db, Exec};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const BATCH: u32 = 25;

/// Where a backup of this app goes: a file (SQLite) or a folder (PostgreSQL).
fn dest_in(app: &TestApp, dir: &Path, name: &str) -> PathBuf {
    dir.join(if app.on_postgres() {
        format!("{name}.pgdump")
    } else {
        format!("{name}.db")
    })
}

async fn seed(app: &TestApp, n: u32) {
    let events: Vec<_> = (0..n).map(|i| sample_event(i, app.now())).collect();
    store::insert_events(&app.db, &events, None).await.unwrap();
}

/// Restores `src` into a fresh database and opens it.
async fn restored(src: &Path) -> (Db, ScratchDb, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let target = ScratchDb::new(&dir).await;
    backup::restore(&target.url, src, false, Vec::new())
        .await
        .expect("restore into an empty database");
    let db = store::open(&target.url).await.unwrap();
    (db, target, dir)
}

/// The descriptions of the BACKUP events, oldest first.
async fn backup_events(db: &Db) -> Vec<String> {
    let sql = db.sql("SELECT description FROM events WHERE action = 'BACKUP' ORDER BY id");
    db.read().column(&sql).await.unwrap()
}

/// Events per batch tag in a database.
async fn batch_sizes(db: &Db) -> Vec<(String, i64)> {
    let sql = db.sql(
        "SELECT request_id, COUNT(*) FROM events WHERE request_id LIKE 'c%' GROUP BY request_id",
    );
    db.read()
        .all(&sql)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect()
}

#[tokio::test]
async fn a_backup_taken_while_eight_clients_ingest_is_consistent() {
    let app = TestApp::new().await;
    seed(&app, 3000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8u32 {
        let (db, stop, at) = (app.db.clone(), stop.clone(), app.now());
        clients.push(tokio::spawn(async move {
            let mut b = 0u32;
            // At least a few batches each, and on until the backup is done.
            while b < 5 || !stop.load(Ordering::Relaxed) {
                let events: Vec<_> = (0..BATCH)
                    .map(|i| {
                        let mut e = sample_event(c * 1000 + i, at);
                        e.request_id = Some(format!("c{c}-b{b}"));
                        e
                    })
                    .collect();
                store::insert_events(&db, &events, None).await.unwrap();
                b += 1;
            }
            b
        }));
    }
    // Let the clients get going first.
    while batch_sizes(&app.db).await.len() < 8 {
        tokio::task::yield_now().await;
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dest_in(&app, dir.path(), "during-ingest");
    let report: BackupReport = backup::run_backup(&app.db, &app.url, &dest, "command")
        .await
        .expect("backup");
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for c in clients {
        written += c.await.unwrap();
    }
    // The copy's chain walked to its own head, which the live chain passed.
    let (live_head, _) = store::chain_state(&app.db).await.unwrap();
    assert!(report.copy.head_id > 3000);
    assert!(
        live_head.id > report.copy.head_id,
        "ingest went on after the copy"
    );
    let (copy, _target, _dir) = restored(&dest).await;
    let (copy_head, _) = store::chain_state(&copy).await.unwrap();
    assert_eq!(copy_head.id, report.copy.head_id);
    assert_eq!(hex::encode(copy_head.hash), report.copy.chain_hash);
    // The live chain has the same hash at that entry: the copy is a prefix.
    let live_hash: Vec<u8> = app
        .db
        .read()
        .scalar(
            &app.db
                .sql("SELECT chain_hash FROM events WHERE id = ?")
                .bind(report.copy.head_id),
        )
        .await
        .unwrap();
    assert_eq!(hex::encode(live_hash), report.copy.chain_hash);
    // No half batch: every batch is in the copy whole, or not at all.
    let sizes = batch_sizes(&copy).await;
    assert!(!sizes.is_empty());
    assert!(
        (sizes.len() as u32) < written,
        "some batches came after the copy"
    );
    for (tag, n) in &sizes {
        assert_eq!(*n, i64::from(BATCH), "batch {tag} is cut in the copy");
    }
    copy.close().await;
    // The backup is an event of its own, after the head it covers.
    let events = backup_events(&app.db).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].starts_with("Backup verified"), "{}", events[0]);
    assert!(events[0].contains(&format!("#{}", report.copy.head_id)));
}

/// A SQLite backup file with one byte flipped half way through.
fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// The largest file of a backup: the file itself, or a dump folder's biggest.
fn largest_file(dest: &Path) -> PathBuf {
    if dest.is_file() {
        return dest.to_path_buf();
    }
    std::fs::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

#[tokio::test]
async fn a_damaged_backup_is_refused_and_the_database_stays_as_it_was() {
    let app = TestApp::new().await;
    seed(&app, 500).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dest_in(&app, dir.path(), "damaged");
    backup::run_backup(&app.db, &app.url, &dest, "command")
        .await
        .unwrap();
    flip_a_byte(&largest_file(&dest));
    // The target holds events of its own: they must survive the refusal.
    let target_dir = tempfile::tempdir().unwrap();
    let target = ScratchDb::new(&target_dir).await;
    {
        let db = store::open(&target.url).await.unwrap();
        let events: Vec<_> = (0..7).map(|i| sample_event(i, app.now())).collect();
        store::insert_events(&db, &events, None).await.unwrap();
        db.close().await;
    }
    let error = backup::restore(&target.url, &dest, true, Vec::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not match its checksum"), "{error}");
    let db = store::open(&target.url).await.unwrap();
    assert_eq!(store::count_events(&db).await.unwrap(), 7);
    db.close().await;
}

#[tokio::test]
async fn an_altered_backup_with_a_forged_checksum_is_refused_by_its_chain() {
    let app = TestApp::new().await;
    if app.on_postgres() {
        // A dump's rows are compressed; the SQLite file is altered with SQL.
        return;
    }
    seed(&app, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dest_in(&app, dir.path(), "altered");
    backup::run_backup(&app.db, &app.url, &dest, "command")
        .await
        .unwrap();
    {
        let copy = store::open_sqlite_copy(&dest, true).await.unwrap();
        let mut tx = copy.begin().await.unwrap();
        let sql = tx.sql("UPDATE events SET description = 'nothing happened' WHERE id = 100");
        tx.execute(&sql).await.unwrap();
        tx.commit().await.unwrap();
        copy.close().await;
    }
    let sha = backup::sha256_file(&dest).unwrap();
    std::fs::write(
        backup::sums_path(&dest),
        format!("{sha}  {}\n", dest.file_name().unwrap().to_string_lossy()),
    )
    .unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let target = ScratchDb::new(&target_dir).await;
    let error = backup::restore(&target.url, &dest, false, Vec::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("chain does not verify"), "{error}");
}

#[tokio::test]
async fn restore_refuses_a_database_with_events_unless_forced_and_holds_checkpoints() {
    let app = TestApp::new().await;
    seed(&app, 300).await;
    let checkpoint = store::write_checkpoint(&app.db, "periodic")
        .await
        .unwrap()
        .unwrap();
    let line = auditdeck::server::maintenance::checkpoint_line(&checkpoint);
    let dir = tempfile::tempdir().unwrap();
    let dest = dest_in(&app, dir.path(), "full");
    let report = backup::run_backup(&app.db, &app.url, &dest, "command")
        .await
        .unwrap();
    assert_eq!(report.copy.head_id, 300);
    assert!(report.copy.checkpoints_confirmed >= 1);

    let target_dir = tempfile::tempdir().unwrap();
    let target = ScratchDb::new(&target_dir).await;
    {
        let db = store::open(&target.url).await.unwrap();
        let events: Vec<_> = (0..3).map(|i| sample_event(i, app.now())).collect();
        store::insert_events(&db, &events, None).await.unwrap();
        db.close().await;
    }
    let error = backup::restore(&target.url, &dest, false, Vec::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("--force"), "{error}");
    // A checkpoint file the chain does not pass through: refused.
    let mut forged = checkpoint.clone();
    forged.chain_hash = "00".repeat(32);
    let wrong = auditdeck::server::maintenance::parse_checkpoints(
        &auditdeck::server::maintenance::checkpoint_line(&forged),
    )
    .unwrap();
    let error = backup::restore(&target.url, &dest, true, wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not verify"), "{error}");
    let db = store::open(&target.url).await.unwrap();
    assert_eq!(store::count_events(&db).await.unwrap(), 3);
    db.close().await;
    // Forced, with the true checkpoint file and one taken after the backup
    // (which a backup cannot be held to): the backup replaces them.
    store::insert_events(&app.db, &[sample_event(9, app.now())], None)
        .await
        .unwrap();
    let later = store::write_checkpoint(&app.db, "periodic")
        .await
        .unwrap()
        .unwrap();
    assert!(later.last_id > 300);
    let file = format!(
        "{line}\n{}\n",
        auditdeck::server::maintenance::checkpoint_line(&later)
    );
    let kept = auditdeck::server::maintenance::parse_checkpoints(&file).unwrap();
    let restored = backup::restore(&target.url, &dest, true, kept)
        .await
        .expect("forced restore");
    assert!(restored.replaced_events);
    assert_eq!(restored.after.checkpoints_beyond, 1);
    assert!(restored.after.checkpoints_confirmed >= 1);
    assert_eq!(restored.after.head_id, 300);
    assert_eq!(restored.after.chain_hash, report.copy.chain_hash);
    let db = store::open(&target.url).await.unwrap();
    // 300 events and the BACKUP event is not among them (it came after).
    assert_eq!(store::count_events(&db).await.unwrap(), 300);
    db.close().await;
}

#[tokio::test]
async fn the_schedule_keeps_exactly_the_newest_n() {
    let app = TestApp::new().await;
    seed(&app, 50).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a backup").unwrap();
    let schedule = BackupSchedule {
        folder: dir.path().to_path_buf(),
        every_minutes: 60,
        keep: 3,
    };
    assert_eq!(
        backup::next_due(&app.db, &schedule).await.unwrap(),
        app.now(),
        "the first is due at once"
    );
    let mut made = Vec::new();
    for _ in 0..5 {
        let r = backup::scheduled_backup(&app.db, &app.url, &schedule)
            .await
            .unwrap();
        made.push(r.path.file_name().unwrap().to_string_lossy().into_owned());
        assert_eq!(
            backup::next_due(&app.db, &schedule).await.unwrap(),
            app.now() + 3_600_000_000
        );
        app.clock().advance(3_600_000_000);
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = made[2..].to_vec();
    if !app.on_postgres() {
        expected.extend(made[2..].iter().map(|n| format!("{n}.sha256")));
    }
    expected.push("notes.txt".into());
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(backup_events(&app.db).await.len(), 5);
}

#[tokio::test]
async fn a_failed_backup_is_reported_and_changes_nothing() {
    let app = TestApp::new().await;
    seed(&app, 20).await;
    let dir = tempfile::tempdir().unwrap();
    let good = BackupSchedule {
        folder: dir.path().join("good"),
        every_minutes: 60,
        keep: 2,
    };
    std::fs::create_dir(&good.folder).unwrap();
    let first = backup::scheduled_backup(&app.db, &app.url, &good)
        .await
        .unwrap();
    let before: Vec<_> = std::fs::read_dir(&good.folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    // A folder that cannot be written: here a file stands in its place
    // (permissions would not stop the root user the tests may run as).
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, "a file").unwrap();
    let bad = BackupSchedule {
        folder: blocked.clone(),
        ..good.clone()
    };
    app.clock().advance(3_600_000_000);
    let error = backup::scheduled_backup(&app.db, &app.url, &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not a folder"), "{error}");
    assert_eq!(std::fs::read_to_string(&blocked).unwrap(), "a file");
    // Tried again within the hour, not a whole interval later.
    let daily = BackupSchedule {
        every_minutes: 1440,
        ..bad.clone()
    };
    assert_eq!(
        backup::next_due(&app.db, &daily).await.unwrap(),
        app.now() + 3_600_000_000
    );
    let after: Vec<_> = std::fs::read_dir(&good.folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "earlier backups untouched");
    assert!(first.path.exists());
    // Reported: a failed row, a BACKUP event saying why, and the badge.
    let rows = store::recent_backups(&app.db, None, 5).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].status, "failed");
    assert!(rows[0]
        .error
        .as_deref()
        .unwrap()
        .contains("is not a folder"));
    assert!(rows[1].verified());
    let events = backup_events(&app.db).await;
    assert!(events[1].contains("failed") && events[1].contains("is not a folder"));
    let auditor = app.session_for(Role::Auditor).await;
    let status = app.call("integrity_status", "", Some(&auditor)).await;
    assert_eq!(status.json()["backup_failed"], true, "{}", status.text());
    let viewer = app.session_for(Role::Viewer).await;
    let status = app.call("integrity_status", "", Some(&viewer)).await;
    assert_eq!(status.json()["backup_failed"], false);
    let overview = app.call("integrity_overview", "", Some(&viewer)).await;
    assert_eq!(overview.json()["backups"][0]["status"], "failed");
    // A backup that verifies clears the badge.
    backup::scheduled_backup(&app.db, &app.url, &good)
        .await
        .unwrap();
    let status = app.call("integrity_status", "", Some(&auditor)).await;
    assert_eq!(status.json()["backup_failed"], false);
}

#[tokio::test]
async fn a_backup_never_overwrites_and_leaves_no_partial_file() {
    let app = TestApp::new().await;
    seed(&app, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dest_in(&app, dir.path(), "taken");
    std::fs::write(&dest, "precious").unwrap();
    let error = backup::run_backup(&app.db, &app.url, &dest, "command")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![dest.file_name().unwrap().to_string_lossy().into_owned()]
    );
}
