//! `backup`: a consistent copy of a SQLite store, taken while it runs, WAL included.
//!
//! SQLite's online backup API copies every page of the store as one read transaction sees it,
//! so the copy holds exactly the events committed when it started (appends of other processes
//! go on meanwhile, into the WAL). The copy is written to a temporary file beside the
//! destination, switched out of WAL mode (one self-contained file), verified (`PRAGMA
//! integrity_check`, a store's `application_id`, the same number of events and the same last
//! position as the source had at the backup's snapshot), and only then renamed over the
//! destination. A failed backup leaves the destination as it was.

use super::files::{self, FileKind, FileMode};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a backup waits between tries when the source is locked.
const LOCKED_RETRY_INTERVAL: Duration = Duration::from_millis(50);
/// How many times a backup tries a locked source before it gives up.
const LOCKED_RETRIES_MAX: u32 = 600;

/// How to back up.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackupOptions {
    /// Replace an existing destination, if it is a pipeline-ledger store.
    pub force: bool,
    /// The mode of the backup file.
    pub file_mode: FileMode,
}

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Events in the backup (and in the source at the backup's snapshot).
    pub events: u64,
    /// The last position in the backup (0 when empty).
    pub head: u64,
    /// The backup file's size in bytes.
    pub bytes: u64,
}

/// Why a backup was refused or failed. The destination is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("there is no store at {0}; check --store (or PIPELINE_LEDGER_STORE)")]
    MissingSource(PathBuf),
    #[error("{0} is not a pipeline-ledger store; nothing was backed up")]
    SourceNotALedger(PathBuf),
    #[error("{dest} is the store itself (or its -wal or -shm file); name another destination")]
    DestIsSource { dest: PathBuf },
    #[error("{0} exists; give --force to replace it (only a pipeline-ledger store is replaced)")]
    DestExists(PathBuf),
    #[error("{0} exists and is not a pipeline-ledger store; it is never replaced")]
    DestNotALedger(PathBuf),
    #[error("backup {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("backup {path}: SQLite: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the source stayed locked; nothing was backed up, try again")]
    Locked,
    #[error("the backup failed its verification ({0}); the destination was not touched")]
    Verify(String),
}

/// Backs the store at `source` up into `dest` (see the module's documentation).
pub fn backup(
    source: &Path,
    dest: &Path,
    options: BackupOptions,
) -> Result<BackupReport, BackupError> {
    if !source.exists() {
        return Err(BackupError::MissingSource(source.to_path_buf()));
    }
    if files::is_part_of(dest, source) {
        return Err(BackupError::DestIsSource {
            dest: dest.to_path_buf(),
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    if dest.exists() {
        if !options.force {
            return Err(BackupError::DestExists(dest.to_path_buf()));
        }
        if files::kind_of_file(dest).map_err(io(dest))? != Some(FileKind::Store) {
            return Err(BackupError::DestNotALedger(dest.to_path_buf()));
        }
    }
    let temp = temp_beside(dest);
    let result = copy_and_verify(source, &temp, options.file_mode).and_then(|report| {
        std::fs::rename(&temp, dest).map_err(io(dest))?;
        sync_dir(dest);
        Ok(report)
    });
    if result.is_err() {
        // Only the files this backup created.
        for part in files::sqlite_files(&temp) {
            let _ = std::fs::remove_file(part);
        }
        let mut journal = temp.as_os_str().to_owned();
        journal.push("-journal");
        let _ = std::fs::remove_file(journal);
    }
    result
}

/// A temporary name in the destination's directory (so that the rename is atomic).
fn temp_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy());
    dest.with_file_name(format!(".{name}.backup-{}.tmp", std::process::id()))
}

fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn copy_and_verify(
    source: &Path,
    temp: &Path,
    mode: FileMode,
) -> Result<BackupReport, BackupError> {
    let sql = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Sqlite { path, source }
    };
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(source))?;
    match files::file_kind(&src) {
        Ok(FileKind::Store) => {}
        Ok(_) => return Err(BackupError::SourceNotALedger(source.to_path_buf())),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            return Err(BackupError::SourceNotALedger(source.to_path_buf()));
        }
        Err(e) => return Err(sql(source)(e)),
    }
    files::create_new_file(temp, mode).map_err(|source| BackupError::Io {
        path: temp.to_path_buf(),
        source,
    })?;
    let mut dst = Connection::open(temp).map_err(sql(temp))?;
    // One read transaction on the source: the count and the pages copied are the same snapshot.
    src.execute_batch("BEGIN").map_err(sql(source))?;
    let (head, events) = counts(&src).map_err(sql(source))?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(sql(temp))?;
        let mut tries = 0;
        loop {
            match backup.step(-1).map_err(sql(temp))? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ => {
                    tries += 1;
                    if tries > LOCKED_RETRIES_MAX {
                        return Err(BackupError::Locked);
                    }
                    std::thread::sleep(LOCKED_RETRY_INTERVAL);
                }
            }
        }
    }
    src.execute_batch("COMMIT").map_err(sql(source))?;
    drop(src);
    // One self-contained file: no -wal beside the backup.
    let _: String = dst
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .map_err(sql(temp))?;
    dst.close().map_err(|(_, e)| sql(temp)(e))?;
    std::fs::File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(|source| BackupError::Io {
            path: temp.to_path_buf(),
            source,
        })?;
    verify(temp, head, events)?;
    let bytes = std::fs::metadata(temp).map_or(0, |m| m.len());
    Ok(BackupReport {
        events,
        head,
        bytes,
    })
}

fn counts(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT coalesce(max(position), 0), count(*) FROM events",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

/// Opens the copy read-only and checks it: intact, a store, the same events.
fn verify(path: &Path, head: u64, events: u64) -> Result<(), BackupError> {
    let fail = |what: String| BackupError::Verify(what);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(e.to_string()))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| fail(e.to_string()))?;
    if check != "ok" {
        return Err(fail(format!("integrity_check: {check}")));
    }
    if files::file_kind(&conn).map_err(|e| fail(e.to_string()))? != FileKind::Store {
        return Err(fail("the copy is not stamped as a store".into()));
    }
    let found = counts(&conn).map_err(|e| fail(e.to_string()))?;
    if found != (head, events) {
        return Err(fail(format!(
            "the copy has {} events up to position {}, the source had {events} up to {head}",
            found.1, found.0
        )));
    }
    Ok(())
}
