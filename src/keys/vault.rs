//! The key store of personal data: every customer's data key, wrapped by the master key, in a
//! SQLite file of its own (never the log's), and the erasure journal that outlives restores.
//!
//! Three files, each created 0600:
//! - **the master key** (64 hex digits), unless the key is given in the environment;
//! - **the key store** (`data_keys`, `erasures`, `vault_meta`), in rollback-journal mode with
//!   `secure_delete`, so that a deleted key's bytes are overwritten in the file, not left in a
//!   free page or a WAL;
//! - **the erasure journal**, one JSON line per erasure, appended and synced before the key is
//!   deleted. Opening the key store re-applies it, so an erasure made after a backup survives a
//!   restore of that backup (keep the journal off the backup's medium).

use super::data_key::{DataKey, KEY_BYTES, MasterKey};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `PRAGMA application_id` of a key store ("PLKV").
pub const KEY_STORE_APPLICATION_ID: i32 = 0x504C_4B56;
/// How long a key store's reader may go on using a key after another process erased it: the
/// journal is looked at again when it is older than this.
pub const ERASURE_NOTICE_BOUND: Duration = Duration::from_secs(1);
/// How long a statement waits for another process's lock on the key store.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the key store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read the master key {path}: {source}")]
    ReadMasterKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the master key {path} can be read by others (mode {mode:04o}); make it 0600 (`chmod 600 \
         {path}`)"
    )]
    MasterKeyTooOpen { path: PathBuf, mode: u32 },
    #[error("the master key {source_name} is not 64 hex digits")]
    BadMasterKey { source_name: String },
    #[error("cannot create the master key {path}: {source}")]
    CreateMasterKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the key store {path} was made with another master key; point the ledger at the master \
         key it was made with (PIPELINE_LEDGER_MASTER_KEY_FILE or --master-key)"
    )]
    WrongMasterKey { path: PathBuf },
    #[error("{path} is not a pipeline-ledger key store")]
    NotAKeyStore { path: PathBuf },
    #[error("the key store {path} does not exist")]
    Missing { path: PathBuf },
    #[error("the key store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the erasure journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the erasure journal {path}, line {line}: {reason}")]
    BadJournal {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the key of customer {customer} in {path} does not open with the master key")]
    BadWrappedKey { path: PathBuf, customer: String },
    #[error("cannot read the system's random source: {0}")]
    Random(std::io::Error),
}

/// One erasure: whose personal data, when, why and by whom. No personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub customer_id: String,
    pub erased_at: DateTime<Utc>,
    pub erased_by: String,
    pub reason: String,
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// 64 hex digits given in the environment (`PIPELINE_LEDGER_MASTER_KEY`).
    Hex(String),
    /// A file of 64 hex digits, mode 0600; created when missing if the caller may create.
    File(PathBuf),
}

/// The three places of personal-data protection.
#[derive(Debug, Clone)]
pub struct VaultPaths {
    pub master_key: MasterKeySource,
    pub key_store: PathBuf,
    pub erasure_journal: PathBuf,
}

impl VaultPaths {
    /// The default places for the store file `store`: files beside it with the store's
    /// extension replaced (`ledger.db` → `ledger.master.key`, `ledger.keys.db`,
    /// `ledger.erasures.ndjson`). One rule, so that every command, the server and the benchmark
    /// find the same keys for the same store.
    pub fn beside(store: &Path) -> VaultPaths {
        let stem = store.file_stem().unwrap_or_default().to_string_lossy();
        let beside = |suffix: &str| store.with_file_name(format!("{stem}.{suffix}"));
        VaultPaths {
            master_key: MasterKeySource::File(beside("master.key")),
            key_store: beside("keys.db"),
            erasure_journal: beside("erasures.ndjson"),
        }
    }
}

/// What opening the key store did that its user should hear about.
#[derive(Debug, Default)]
pub struct VaultOpened {
    /// The master key file created now (nothing was configured).
    pub created_master_key: Option<PathBuf>,
    /// The key store was created now.
    pub created_key_store: bool,
    /// Erasures from the journal that the key store had not applied (a restored backup).
    pub reapplied: Vec<String>,
}

/// A customer's key, as the key store knows it.
#[derive(Debug, Clone)]
pub enum KeyState {
    Live(DataKey),
    Erased(Erasure),
    /// No key was ever made (the customer has no sealed data here).
    Missing,
}

struct Journal {
    path: PathBuf,
    /// Bytes of the journal read so far, and when it was last looked at.
    read_bytes: u64,
    looked_at: Instant,
}

/// Opened keys kept in memory; past it the cache starts over (a key and its subkeys are about
/// 100 bytes, so this bounds it near 20 MB with the customer ids).
const KEYS_CACHED_MAX: usize = 100_000;

/// The key store, open.
pub struct Vault {
    path: PathBuf,
    master: MasterKey,
    writable: bool,
    conn: Mutex<Connection>,
    keys: Mutex<HashMap<String, DataKey>>,
    erased: Mutex<HashMap<String, Erasure>>,
    journal: Mutex<Journal>,
}

fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut buf = [0u8; N];
    super::getrandom(&mut buf).map_err(|e| VaultError::Random(std::io::Error::other(e)))?;
    Ok(buf)
}

/// Reads the master key; with `create`, makes a new one in a missing file (mode 0600). Returns
/// the key and whether it was created.
pub fn master_key(source: &MasterKeySource, create: bool) -> Result<(MasterKey, bool), VaultError> {
    match source {
        MasterKeySource::Hex(text) => {
            MasterKey::from_hex(text)
                .map(|k| (k, false))
                .ok_or_else(|| VaultError::BadMasterKey {
                    source_name: "in PIPELINE_LEDGER_MASTER_KEY".into(),
                })
        }
        MasterKeySource::File(path) => {
            let read = |source| VaultError::ReadMasterKey {
                path: path.clone(),
                source,
            };
            match std::fs::metadata(path) {
                Ok(meta) => {
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        return Err(VaultError::MasterKeyTooOpen {
                            path: path.clone(),
                            mode,
                        });
                    }
                    let text = std::fs::read_to_string(path).map_err(read)?;
                    let key =
                        MasterKey::from_hex(&text).ok_or_else(|| VaultError::BadMasterKey {
                            source_name: path.display().to_string(),
                        })?;
                    Ok((key, false))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                    let key = MasterKey::from_bytes(random::<KEY_BYTES>()?);
                    super::create_new(path, 0o600, format!("{}\n", key.to_hex()).as_bytes())
                        .map_err(|e| VaultError::CreateMasterKey {
                            path: path.clone(),
                            source: std::io::Error::other(e.to_string()),
                        })?;
                    Ok((key, true))
                }
                Err(e) => Err(read(e)),
            }
        }
    }
}

impl Vault {
    /// Opens the key store at `paths`. With `create`, a missing master key file and key store are
    /// created (0600); without it, a missing key store is [`VaultError::Missing`]. `writable`
    /// false opens it read-only (erasures in the journal still count, in memory).
    pub fn open(
        paths: &VaultPaths,
        create: bool,
        writable: bool,
    ) -> Result<(Vault, VaultOpened), VaultError> {
        let mut opened = VaultOpened::default();
        let path = paths.key_store.clone();
        let sqlite = |source| VaultError::Sqlite {
            path: path.clone(),
            source,
        };
        let exists = path.exists();
        if !exists && !create {
            return Err(VaultError::Missing { path });
        }
        // A master key is made only with a new key store: one missing beside an existing key store is
        // an operator's mistake to report, never to paper over with a new key.
        let (master, created) = master_key(&paths.master_key, create && writable && !exists)?;
        if created && let MasterKeySource::File(p) = &paths.master_key {
            opened.created_master_key = Some(p.clone());
        }
        if !exists {
            // Created 0600 before SQLite opens it; its rollback journal takes the same mode.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)))
                .map_err(|source| VaultError::Journal {
                    path: path.clone(),
                    source,
                })?;
            opened.created_key_store = true;
        }
        let flags = if writable {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(&path, flags).map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        let app_id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(sqlite)?;
        if app_id == 0 && writable {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(sqlite)?;
            if tables != 0 {
                return Err(VaultError::NotAKeyStore { path });
            }
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = DELETE;
                 PRAGMA application_id = {KEY_STORE_APPLICATION_ID};
                 CREATE TABLE data_keys (customer TEXT PRIMARY KEY, wrapped BLOB NOT NULL,
                                         created_at TEXT NOT NULL);
                 CREATE TABLE erasures (customer TEXT PRIMARY KEY, erased_at TEXT NOT NULL,
                                        erased_by TEXT NOT NULL, reason TEXT NOT NULL);
                 CREATE TABLE vault_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            ))
            .map_err(sqlite)?;
            conn.execute(
                "INSERT INTO vault_meta (key, value) VALUES ('master_key_check', ?1)",
                [master.check_value()],
            )
            .map_err(sqlite)?;
        } else if app_id != KEY_STORE_APPLICATION_ID {
            return Err(VaultError::NotAKeyStore { path });
        }
        if writable {
            // Deleted keys are overwritten with zeros in the file, not left in a free page.
            conn.execute_batch("PRAGMA secure_delete = ON; PRAGMA synchronous = FULL;")
                .map_err(sqlite)?;
        }
        let check: Option<String> = conn
            .query_row(
                "SELECT value FROM vault_meta WHERE key = 'master_key_check'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite)?;
        if check.as_deref() != Some(master.check_value().as_str()) {
            return Err(VaultError::WrongMasterKey { path });
        }
        let mut erased = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT customer, erased_at, erased_by, reason FROM erasures")
                .map_err(sqlite)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(sqlite)?;
            for row in rows {
                let (customer_id, at, erased_by, reason) = row.map_err(sqlite)?;
                let erased_at = DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default();
                erased.insert(
                    customer_id.clone(),
                    Erasure {
                        customer_id,
                        erased_at,
                        erased_by,
                        reason,
                    },
                );
            }
        }
        let vault = Vault {
            path,
            master,
            writable,
            conn: Mutex::new(conn),
            keys: Mutex::new(HashMap::new()),
            erased: Mutex::new(erased),
            journal: Mutex::new(Journal {
                path: paths.erasure_journal.clone(),
                read_bytes: 0,
                looked_at: Instant::now(),
            }),
        };
        opened.reapplied = vault.catch_up_with_journal(true)?;
        Ok((vault, opened))
    }

    /// The key store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the journal's new lines (all of them when `force`, else at most once per
    /// [`ERASURE_NOTICE_BOUND`]) and applies each erasure not yet applied: in memory always, in
    /// the file when writable. Returns the customers newly erased here.
    fn catch_up_with_journal(&self, force: bool) -> Result<Vec<String>, VaultError> {
        let mut journal = lock(&self.journal);
        if !force && journal.looked_at.elapsed() < ERASURE_NOTICE_BOUND {
            return Ok(Vec::new());
        }
        journal.looked_at = Instant::now();
        let bytes = match std::fs::read(&journal.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(VaultError::Journal {
                    path: journal.path.clone(),
                    source,
                });
            }
        };
        if bytes.len() as u64 == journal.read_bytes {
            return Ok(Vec::new());
        }
        let mut newly = Vec::new();
        for (no, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let erasure: Erasure =
                serde_json::from_slice(line).map_err(|e| VaultError::BadJournal {
                    path: journal.path.clone(),
                    line: no + 1,
                    reason: e.to_string(),
                })?;
            if lock(&self.erased).contains_key(&erasure.customer_id) {
                continue;
            }
            newly.push(erasure.customer_id.clone());
            self.apply_erasure(&erasure)?;
        }
        journal.read_bytes = bytes.len() as u64;
        Ok(newly)
    }

    /// Deletes the key (when writable) and remembers the erasure.
    fn apply_erasure(&self, erasure: &Erasure) -> Result<(), VaultError> {
        lock(&self.keys).remove(&erasure.customer_id);
        if self.writable {
            let mut conn = lock(&self.conn);
            let tx = conn.transaction().map_err(|e| self.sqlite(e))?;
            tx.execute(
                "DELETE FROM data_keys WHERE customer = ?1",
                [&erasure.customer_id],
            )
            .map_err(|e| self.sqlite(e))?;
            tx.execute(
                "INSERT OR IGNORE INTO erasures (customer, erased_at, erased_by, reason)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    erasure.customer_id,
                    erasure.erased_at.to_rfc3339(),
                    erasure.erased_by,
                    erasure.reason
                ],
            )
            .map_err(|e| self.sqlite(e))?;
            tx.commit().map_err(|e| self.sqlite(e))?;
        }
        lock(&self.erased).insert(erasure.customer_id.clone(), erasure.clone());
        Ok(())
    }

    fn sqlite(&self, source: rusqlite::Error) -> VaultError {
        VaultError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The customer's key for reading sealed data.
    pub fn key(&self, customer: &str) -> Result<KeyState, VaultError> {
        self.catch_up_with_journal(false)?;
        if let Some(erasure) = lock(&self.erased).get(customer) {
            return Ok(KeyState::Erased(erasure.clone()));
        }
        if let Some(key) = lock(&self.keys).get(customer) {
            return Ok(KeyState::Live(key.clone()));
        }
        let wrapped: Option<Vec<u8>> = lock(&self.conn)
            .query_row(
                "SELECT wrapped FROM data_keys WHERE customer = ?1",
                [customer],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        let Some(wrapped) = wrapped else {
            return Ok(KeyState::Missing);
        };
        let key =
            self.master
                .unwrap(customer, &wrapped)
                .ok_or_else(|| VaultError::BadWrappedKey {
                    path: self.path.clone(),
                    customer: customer.to_string(),
                })?;
        let mut keys = lock(&self.keys);
        if keys.len() >= KEYS_CACHED_MAX {
            keys.clear(); // bounded memory; the next reads unwrap again
        }
        keys.insert(customer.to_string(), key.clone());
        Ok(KeyState::Live(key))
    }

    /// The keys of `customers` for sealing new data: made (in one durable transaction) for the
    /// customers that have none; an erased customer's answer is its erasure, never a new key.
    /// No answer is [`KeyState::Missing`].
    pub fn keys_for_writing<'a>(
        &self,
        customers: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, KeyState>, VaultError> {
        self.catch_up_with_journal(false)?;
        let mut out = HashMap::new();
        let mut unknown = Vec::new();
        {
            let (erased, keys) = (lock(&self.erased), lock(&self.keys));
            let mut seen = std::collections::HashSet::new();
            for customer in customers {
                if !seen.insert(customer) {
                    continue;
                }
                if let Some(erasure) = erased.get(customer) {
                    out.insert(customer.to_string(), KeyState::Erased(erasure.clone()));
                } else if let Some(key) = keys.get(customer) {
                    out.insert(customer.to_string(), KeyState::Live(key.clone()));
                } else {
                    unknown.push(customer);
                }
            }
        }
        if unknown.is_empty() {
            return Ok(out);
        }
        // One write transaction for every customer not in memory: inside it the file is the
        // truth (no other writer), so each key is read or made once, with one lock and one sync
        // for the chunk, and an erasure made by another process meanwhile is seen, not undone.
        let now = Utc::now().to_rfc3339();
        let mut opened = Vec::with_capacity(unknown.len());
        {
            let mut conn = lock(&self.conn);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.sqlite(e))?;
            {
                let mut select = tx
                    .prepare_cached("SELECT wrapped FROM data_keys WHERE customer = ?1")
                    .map_err(|e| self.sqlite(e))?;
                let mut erasure = tx
                    .prepare_cached(
                        "SELECT erased_at, erased_by, reason FROM erasures WHERE customer = ?1",
                    )
                    .map_err(|e| self.sqlite(e))?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO data_keys (customer, wrapped, created_at) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(|e| self.sqlite(e))?;
                for customer in unknown {
                    let wrapped: Option<Vec<u8>> = select
                        .query_row([customer], |r| r.get(0))
                        .optional()
                        .map_err(|e| self.sqlite(e))?;
                    if let Some(wrapped) = wrapped {
                        let key = self.master.unwrap(customer, &wrapped).ok_or_else(|| {
                            VaultError::BadWrappedKey {
                                path: self.path.clone(),
                                customer: customer.to_string(),
                            }
                        })?;
                        opened.push((customer, key));
                        continue;
                    }
                    let erased: Option<(String, String, String)> = erasure
                        .query_row([customer], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                        .map_err(|e| self.sqlite(e))?;
                    if let Some((at, erased_by, reason)) = erased {
                        let erased_at = DateTime::parse_from_rfc3339(&at)
                            .map(|t| t.with_timezone(&Utc))
                            .unwrap_or_default();
                        out.insert(
                            customer.to_string(),
                            KeyState::Erased(Erasure {
                                customer_id: customer.to_string(),
                                erased_at,
                                erased_by,
                                reason,
                            }),
                        );
                        continue;
                    }
                    let key = DataKey::from_bytes(random::<KEY_BYTES>()?);
                    let wrapped = self.master.wrap(customer, &key, random()?);
                    insert
                        .execute(params![customer, wrapped, now])
                        .map_err(|e| self.sqlite(e))?;
                    opened.push((customer, key));
                }
            }
            tx.commit().map_err(|e| self.sqlite(e))?;
        }
        let mut keys = lock(&self.keys);
        for (customer, key) in opened {
            if keys.len() >= KEYS_CACHED_MAX {
                keys.clear(); // bounded memory; later reads unwrap again
            }
            keys.insert(customer.to_string(), key.clone());
            out.insert(customer.to_string(), KeyState::Live(key));
        }
        Ok(out)
    }

    /// Erases `erasure.customer_id`'s key: the erasure goes to the journal (synced) first, then
    /// the key is deleted (overwritten in the file) and the file is vacuumed. Returns whether a
    /// key was there to destroy.
    pub fn forget(&self, erasure: &Erasure) -> Result<bool, VaultError> {
        let had_key = matches!(self.key(&erasure.customer_id)?, KeyState::Live(_));
        {
            let journal = lock(&self.journal);
            let jerr = |source| VaultError::Journal {
                path: journal.path.clone(),
                source,
            };
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&journal.path)
                .map_err(jerr)?;
            let mut line = serde_json::to_vec(erasure).expect("an erasure serializes");
            line.push(b'\n');
            file.write_all(&line).map_err(jerr)?;
            file.sync_all().map_err(jerr)?;
        }
        self.apply_erasure(erasure)?;
        lock(&self.conn)
            .execute_batch("VACUUM")
            .map_err(|e| self.sqlite(e))?;
        Ok(had_key)
    }

    /// The erasure of `customer`, if its personal data was erased.
    pub fn erasure(&self, customer: &str) -> Option<Erasure> {
        let _ = self.catch_up_with_journal(false);
        lock(&self.erased).get(customer).cloned()
    }
}

/// Copies the key store at `source` into `dest` (one consistent snapshot, mode 0600, through a
/// temporary file renamed over `dest`). Needs no master key: the keys stay wrapped. `backup`
/// copies it after the log, so that every key the copied log needs is in the copy.
pub fn copy_key_store(source: &Path, dest: &Path) -> Result<(), VaultError> {
    let sqlite = |source| VaultError::Sqlite {
        path: dest.to_path_buf(),
        source,
    };
    let conn =
        Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite)?;
    if app_id != KEY_STORE_APPLICATION_ID {
        return Err(VaultError::NotAKeyStore {
            path: source.to_path_buf(),
        });
    }
    let mut temp = dest.as_os_str().to_owned();
    temp.push(".partial");
    let temp = PathBuf::from(temp);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VaultError::Journal { path, source }
    };
    let _ = std::fs::remove_file(&temp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)))
        .map_err(io(&temp))?;
    let escaped = temp.to_string_lossy().replace('\'', "''");
    conn.execute_batch(&format!("VACUUM INTO '{escaped}'"))
        .map_err(sqlite)?;
    std::fs::rename(&temp, dest).map_err(io(dest))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> VaultPaths {
        VaultPaths {
            master_key: MasterKeySource::File(dir.join("m.key")),
            key_store: dir.join("k.db"),
            erasure_journal: dir.join("erasures.ndjson"),
        }
    }

    fn erasure(customer: &str) -> Erasure {
        Erasure {
            customer_id: customer.into(),
            erased_at: Utc::now(),
            erased_by: "dpo".into(),
            reason: "art. 17 request".into(),
        }
    }

    #[test]
    fn keys_are_made_once_kept_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let (vault, opened) = Vault::open(&p, true, true).unwrap();
        assert!(opened.created_key_store);
        assert_eq!(
            opened.created_master_key.as_deref(),
            Some(&*dir.path().join("m.key"))
        );
        let KeyState::Live(first) = vault.keys_for_writing(["a"]).unwrap().remove("a").unwrap()
        else {
            panic!("a new customer gets a live key");
        };
        let sealed = first.seal(b"ctx", "Li Wei");
        drop(vault);
        let (vault, opened) = Vault::open(&p, true, true).unwrap();
        assert!(!opened.created_key_store && opened.created_master_key.is_none());
        let KeyState::Live(again) = vault.key("a").unwrap() else {
            panic!("the key is kept")
        };
        assert_eq!(again.open(b"ctx", &sealed).unwrap(), "Li Wei");
        for file in ["m.key", "k.db"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn another_master_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        Vault::open(&p, true, true).unwrap();
        let other = VaultPaths {
            master_key: MasterKeySource::Hex("11".repeat(32)),
            ..p
        };
        let e = Vault::open(&other, false, true).err().unwrap();
        assert!(matches!(e, VaultError::WrongMasterKey { .. }), "{e}");
    }

    #[test]
    fn an_erasure_in_the_journal_survives_restoring_an_older_key_store() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let (vault, _) = Vault::open(&p, true, true).unwrap();
        vault.keys_for_writing(["a", "b"]).unwrap();
        copy_key_store(&p.key_store, &dir.path().join("backup.db")).unwrap();
        assert!(vault.forget(&erasure("a")).unwrap());
        assert!(matches!(vault.key("a").unwrap(), KeyState::Erased(_)));
        let again = vault.keys_for_writing(["a"]).unwrap();
        assert!(
            matches!(again["a"], KeyState::Erased(_)),
            "no new key for an erased customer"
        );
        drop(vault);
        // The backup, from before the erasure, is restored over the key store.
        std::fs::rename(dir.path().join("backup.db"), &p.key_store).unwrap();
        let (vault, opened) = Vault::open(&p, false, true).unwrap();
        assert_eq!(opened.reapplied, vec!["a".to_string()]);
        assert!(matches!(vault.key("a").unwrap(), KeyState::Erased(_)));
        assert!(matches!(vault.key("b").unwrap(), KeyState::Live(_)));
        let wrapped: i64 = lock(&vault.conn)
            .query_row(
                "SELECT count(*) FROM data_keys WHERE customer = 'a'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            wrapped, 0,
            "the restored key is deleted from the file again"
        );
    }
}
