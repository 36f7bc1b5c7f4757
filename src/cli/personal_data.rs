//! Personal data on the command line: where the master key, the key store and the erasure
//! journal are, opening them beside the store, and `forget`.

use anyhow::Context;
use pipeline_ledger::domain::{ActorId, CustomerId};
use pipeline_ledger::keys::vault::{MasterKeySource, Vault, VaultPaths};
use pipeline_ledger::ledger::Ledger;
use pipeline_ledger::store::{Access, Backend};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The environment variable that may hold the master key itself (64 hex digits).
pub const MASTER_KEY_ENV: &str = "PIPELINE_LEDGER_MASTER_KEY";

/// Where personal data's keys are (global options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PersonalFlags {
    /// The master key file (64 hex digits, mode 0600) that wraps every customer's data key.
    /// Default: beside a SQLite store (`ledger.db` → `ledger.master.key`), created by the first
    /// command that writes when there is neither key nor key store. PIPELINE_LEDGER_MASTER_KEY
    /// may hold the key itself instead.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PIPELINE_LEDGER_MASTER_KEY_FILE"
    )]
    pub master_key: Option<PathBuf>,
    /// The key store: each customer's data key, wrapped by the master key (a SQLite file, mode
    /// 0600). Default: beside a SQLite store (`ledger.keys.db`).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PIPELINE_LEDGER_KEY_STORE"
    )]
    pub key_store: Option<PathBuf>,
    /// The erasure journal: one line per `forget`, re-applied whenever the key store is opened,
    /// so that an erasure survives restoring an older backup. Keep it apart from the backups.
    /// Default: beside a SQLite store (`ledger.erasures.ndjson`).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PIPELINE_LEDGER_ERASURE_JOURNAL"
    )]
    pub erasure_journal: Option<PathBuf>,
}

static FLAGS: OnceLock<PersonalFlags> = OnceLock::new();

/// Remembers the global options for [`open_vault`].
pub fn set_flags(flags: PersonalFlags) {
    let _ = FLAGS.set(flags);
}

/// The default places for `store`: beside a SQLite store; for KurrentDB, files in the current
/// directory named after the cluster, as the read models are.
fn default_paths(store: &Path) -> VaultPaths {
    let location = store.to_string_lossy();
    if Backend::of(&location) == Backend::Kurrent {
        let read_models = super::kurrent_read_models(&location);
        let base = read_models
            .to_string_lossy()
            .replace("read-models", "personal");
        return VaultPaths::beside(Path::new(&base));
    }
    VaultPaths::beside(store)
}

/// The three places of the store at `store`, from the options or beside the store.
pub fn vault_paths(store: &Path) -> VaultPaths {
    let flags = FLAGS.get().cloned().unwrap_or_default();
    let defaults = default_paths(store);
    let master_key = match std::env::var(MASTER_KEY_ENV) {
        Ok(hex) if !hex.trim().is_empty() => MasterKeySource::Hex(hex),
        _ => match flags.master_key {
            Some(file) => MasterKeySource::File(file),
            None => defaults.master_key,
        },
    };
    VaultPaths {
        master_key,
        key_store: flags.key_store.unwrap_or(defaults.key_store),
        erasure_journal: flags.erasure_journal.unwrap_or(defaults.erasure_journal),
    }
}

/// Opens the key store of the store at `store` for a command with `access`. A command that
/// writes creates what is missing (and says so) and fails when the key store cannot be opened;
/// a reader without the keys goes on with personal fields withheld, and says why.
pub fn open_vault(store: &Path, access: Access) -> anyhow::Result<Option<Arc<Vault>>> {
    let paths = vault_paths(store);
    let writes = access != Access::ReadOnly;
    match Vault::open(&paths, writes, writes) {
        Ok((vault, opened)) => {
            if let Some(path) = opened.created_master_key {
                eprintln!(
                    "created the master key {} (mode 0600): it opens every customer's personal \
                     data. Keep it apart from the store and its backups; in production, point \
                     PIPELINE_LEDGER_MASTER_KEY_FILE at a key you manage",
                    path.display()
                );
            }
            if opened.created_key_store {
                eprintln!("created the key store {}", paths.key_store.display());
            }
            for customer in &opened.reapplied {
                eprintln!(
                    "re-applied the erasure of customer {customer} from {} (the key store was \
                     restored from before it)",
                    paths.erasure_journal.display()
                );
            }
            Ok(Some(Arc::new(vault)))
        }
        Err(pipeline_ledger::keys::vault::VaultError::Missing { .. }) if !writes => Ok(None),
        Err(e) if !writes => {
            eprintln!("warning: personal data is withheld: {e}");
            Ok(None)
        }
        Err(e) => Err(e).context("opening the key store of personal data"),
    }
}

/// The ledger with its key store attached, when there is one.
pub fn attach(ledger: Ledger, store: &Path, access: Access) -> anyhow::Result<Ledger> {
    Ok(match open_vault(store, access)? {
        Some(vault) => ledger.with_personal_data(vault),
        None => ledger,
    })
}

/// Removes the key store and erasure journal that the demo's own store had (the demo writes a
/// fresh ledger, and an old erasure must not refuse its new customers).
pub fn remove_demo_files(store: &Path) {
    let paths = vault_paths(store);
    for path in [&paths.key_store, &paths.erasure_journal] {
        let _ = std::fs::remove_file(path);
    }
}

/// After `migrate-personal-data`: gives the new store the key store, erasure journal and
/// master key file of the old one where the new one's would be elsewhere (the defaults beside
/// each store) and has none yet. Returns the files written.
pub fn carry_over(old_store: &Path, new_store: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let (old, new) = (vault_paths(old_store), vault_paths(new_store));
    let mut written = Vec::new();
    if new.key_store != old.key_store && !new.key_store.exists() {
        pipeline_ledger::keys::vault::copy_key_store(&old.key_store, &new.key_store)?;
        written.push(new.key_store.clone());
    }
    let mut files = vec![(old.erasure_journal, new.erasure_journal)];
    if let (MasterKeySource::File(o), MasterKeySource::File(n)) = (old.master_key, new.master_key) {
        files.push((o, n));
    }
    for (from, to) in files {
        if from == to || to.exists() || !from.exists() {
            continue;
        }
        let bytes = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&to)
            .with_context(|| format!("creating {}", to.display()))?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        written.push(to);
    }
    Ok(written)
}

/// `forget`: erases a customer's personal data.
pub async fn forget(
    ledger: &Ledger,
    customer: &CustomerId,
    reason: &str,
    by: &ActorId,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let done = ledger.forget(customer, reason, by).await?;
    writeln!(
        out,
        "erased the personal data of customer {customer}: {} sealed field(s) unreadable from \
         now on; PersonalDataErased {} at position {}",
        done.fields.sealed, done.recorded.event_id, done.recorded.position
    )?;
    if !done.key_destroyed {
        writeln!(
            out,
            "(its key had already been destroyed at {}; the event is recorded now)",
            done.erasure.erased_at
        )?;
    }
    if done.fields.plaintext > 0 {
        writeln!(
            out,
            "not erased: {} personal field(s) stored in plaintext before encryption began. An \
             append-only log cannot erase them in place: run `migrate-personal-data` to copy \
             the log into a store where they are sealed, then destroy the old file",
            done.fields.plaintext
        )?;
    }
    Ok(())
}
