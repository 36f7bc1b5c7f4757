//! The files the ledger creates, and how it tells its own SQLite files from anyone else's.
//!
//! Every SQLite file the ledger creates is stamped with SQLite's `application_id`: one id for
//! event stores ([`STORE_APPLICATION_ID`]), another for read-model files
//! ([`READ_MODELS_APPLICATION_ID`]). A file is checked *before* any statement that could write
//! it (`PRAGMA journal_mode=WAL` is one), so a foreign file is refused untouched.
//!
//! Files are created with [`FileMode::Private`] (0600) unless the caller asks for
//! [`FileMode::GroupReadable`] (0640). SQLite gives a database's `-wal` and `-shm` files the
//! database file's own mode, so creating the database file first with the right mode covers
//! them too.

use rusqlite::Connection;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `PRAGMA application_id` of an event store: "PLDG".
pub const STORE_APPLICATION_ID: i32 = 0x504c_4447;
/// `PRAGMA application_id` of a read-models file: "PLRM".
pub const READ_MODELS_APPLICATION_ID: i32 = 0x504c_524d;

/// Who may read the files the ledger creates. Files that exist keep their mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileMode {
    /// 0600: the owner only. The store holds contact names, phones and e-mails.
    #[default]
    Private,
    /// 0640: the owner, and the group for reporting jobs that run as another user.
    GroupReadable,
}

impl FileMode {
    /// The Unix permission bits.
    pub fn bits(self) -> u32 {
        match self {
            FileMode::Private => 0o600,
            FileMode::GroupReadable => 0o640,
        }
    }
}

/// The file of the ledger's that lives beside the store at `store`, named by `role`:
/// `ledger.db` → `ledger.<role>.db` (a store not named `.db`: `<name>.<role>`).
pub fn beside(store: &Path, role: &str) -> PathBuf {
    let name = store
        .file_name()
        .map_or_else(|| "pipeline-ledger".into(), |s| s.to_string_lossy());
    let file = match name.strip_suffix(".db") {
        Some(stem) => format!("{stem}.{role}.db"),
        None => format!("{name}.{role}"),
    };
    store.with_file_name(file)
}

/// Creates the empty file `path` with `mode` (exactly, whatever the umask) if it does not
/// exist. Returns whether it created it.
pub fn create_file(path: &Path, mode: FileMode) -> io::Result<bool> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode.bits())
        .open(path)
    {
        Ok(file) => {
            file.set_permissions(std::fs::Permissions::from_mode(mode.bits()))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens `path` for writing as a new file with `mode` (exactly), failing if it exists.
pub fn create_new_file(path: &Path, mode: FileMode) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode.bits())
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode.bits()))?;
    Ok(file)
}

/// The `-wal` and `-shm` companions of a SQLite file, and the file itself.
pub fn sqlite_files(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

/// Whether `a` and `b` name the same file: the same inode when both exist, else the same
/// absolute path.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => ma.dev() == mb.dev() && ma.ino() == mb.ino(),
        _ => match (std::path::absolute(a), std::path::absolute(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        },
    }
}

/// Whether `file` is the SQLite file `db` or one of its `-wal` and `-shm` companions.
pub fn is_part_of(file: &Path, db: &Path) -> bool {
    sqlite_files(db).iter().any(|part| same_file(file, part))
}

/// What a SQLite file is, read without writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// No tables and no application id: a new file, free to stamp.
    Empty,
    /// An event store (its id, or an older store of this project: id 0 and the `events` table).
    Store,
    /// A read-models file (its id, or an older one: id 0 and only `rm_` tables).
    ReadModels,
    /// Anything else.
    Foreign,
}

/// What the database behind `conn` is. Only reads: call it before any statement that writes.
pub fn file_kind(conn: &Connection) -> rusqlite::Result<FileKind> {
    let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    match id {
        STORE_APPLICATION_ID => return Ok(FileKind::Store),
        READ_MODELS_APPLICATION_ID => return Ok(FileKind::ReadModels),
        0 => {}
        _ => return Ok(FileKind::Foreign),
    }
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let tables = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(if tables.is_empty() {
        FileKind::Empty
    } else if tables == ["events"] || tables == ["events", "store_identity"] {
        FileKind::Store
    } else if tables.iter().all(|t| t.starts_with("rm_")) {
        FileKind::ReadModels
    } else {
        FileKind::Foreign
    })
}

/// What the SQLite file at `path` is, opened read-only (nothing is created or written); `None`
/// if it does not exist. A file that is not a SQLite database at all is [`FileKind::Foreign`].
pub fn kind_of_file(path: &Path) -> io::Result<Option<FileKind>> {
    if !path.exists() {
        return Ok(None);
    }
    if std::fs::metadata(path)?.len() == 0 {
        return Ok(Some(FileKind::Empty));
    }
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let kind = Connection::open_with_flags(path, flags).and_then(|conn| file_kind(&conn));
    Ok(Some(match kind {
        Ok(kind) => kind,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            FileKind::Foreign
        }
        Err(e) => return Err(io::Error::other(e)),
    }))
}
