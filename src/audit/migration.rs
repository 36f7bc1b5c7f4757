//! `migrate-personal-data`: the audited way out for events written before personal data was
//! sealed. An append-only log cannot erase their plaintext in place, so the migration copies the
//! log into a new store with every personal field sealed (and an erased customer's plaintext
//! withheld as erased), then signs a statement that links the old chain's head to the new
//! one's. The old file is left for the operator to destroy; until then, `forget` says what it
//! could not reach.
//!
//! The copy keeps every event's id, type, times, `recorded_by`, correlation and order; only the
//! personal fields' form changes, so the new chain differs from the old from the first such
//! event on. The statement is what ties them: both heads, both counts, what was sealed and
//! withheld, signed with the auditor's Ed25519 key.

use super::seal::{self, Seal, SealError};
use crate::domain::{PersonalText, Withheld};
use crate::keys::{KeyError, SecretKey};
use crate::ledger::codec::decode;
use crate::ledger::import::ImportError;
use crate::ledger::personal::{self, FieldCounts};
use crate::ledger::{ExportError, Ledger, PersonalView};
use crate::store::ReadError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, Seek, Write};

/// The `kind` every migration statement carries.
pub const MIGRATION_KIND: &str = "pipeline-ledger personal-data migration";
/// The statement format's version.
pub const MIGRATION_VERSION: u32 = 1;
/// Events read from the old log per page.
const MIGRATION_PAGE_EVENTS: usize = 4096;

/// What a migration statement says. The signed bytes are this struct as compact JSON, its
/// fields in the order below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationStatement {
    pub kind: String,
    pub version: u32,
    /// The seal of the old log's head, as it was when the copy began.
    pub from: Seal,
    /// The seal of the new log's head, after the copy.
    pub to: Seal,
    /// Personal fields that were plaintext in the old log and are sealed in the new one.
    pub sealed_fields: u64,
    /// Plaintext personal fields of erased customers, withheld as erased in the new log.
    pub withheld_fields: u64,
    pub migrated_at: DateTime<Utc>,
    /// The signer's Ed25519 public key, hex.
    pub public_key: String,
}

/// A statement and its signature, as written to the statement file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    #[serde(flatten)]
    pub statement: MigrationStatement,
    /// Ed25519 signature of the statement's bytes, hex.
    pub signature: String,
}

impl Migration {
    /// Whether the signature holds for the statement (and both seals' own signatures).
    pub fn signature_holds(&self) -> bool {
        let Ok(key) = crate::keys::PublicKey::from_hex(&self.statement.public_key) else {
            return false;
        };
        let bytes = serde_json::to_vec(&self.statement).expect("a statement serializes");
        key.verifies_hex(&bytes, &self.signature)
            && seal::signature_holds(&self.statement.from)
            && seal::signature_holds(&self.statement.to)
    }
}

/// Why a migration stopped. Nothing is ever written to the old store.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("the old log: {0}")]
    Old(SealError),
    #[error(
        "the new store already holds {events} events: a migration writes into an empty store \
         only"
    )]
    NewNotEmpty { events: u64 },
    #[error("the new store has no key store attached: it could not seal the personal fields")]
    NoKeyStore,
    #[error("reading the old log failed: {0}")]
    Read(#[from] ReadError),
    #[error("writing the copy failed: {0}")]
    Export(#[from] ExportError),
    #[error("the copy was refused, nothing was written to the new store: {0}")]
    Import(#[from] ImportError),
    #[error("the new log: {0}")]
    New(SealError),
    #[error("the spool file: {0}")]
    Spool(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Copies `old`'s log into the empty `new` ledger with every personal field sealed, and signs
/// the statement that links the two chains with `key`. `new` must carry the key store that
/// `old`'s customers' keys are in (so the already sealed fields open there).
pub async fn migrate_personal_data(
    old: &Ledger,
    new: &Ledger,
    key: &SecretKey,
) -> Result<Migration, MigrationError> {
    let vault = new.vault().ok_or(MigrationError::NoKeyStore)?.clone();
    let events_in_new = new.store().head_position().await?.unwrap_or(0);
    if events_in_new > 0 {
        return Err(MigrationError::NewNotEmpty {
            events: events_in_new,
        });
    }
    // The old chain must verify before it is vouched for.
    let from = seal::seal(&**old.store(), key)
        .await
        .map_err(MigrationError::Old)?;

    let mut spool = tempfile::tempfile()?;
    let mut counts = FieldCounts::default();
    let mut withheld_fields = 0;
    let mut after = None;
    'pages: loop {
        let page = old.store().read_all(after, MIGRATION_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for record in &page {
            if record.position > from.statement.position {
                break 'pages; // appended while the copy ran: not vouched for by `from`
            }
            let mut line = old.line_of(record, PersonalView::AsStored)?;
            if personal::has_personal_fields_type(line.event_type) {
                let mut event = decode(record).map_err(ExportError::from)?;
                let found = personal::count_fields(&mut event.payload);
                counts.plaintext += found.plaintext;
                if found.plaintext > 0 && vault.erasure(event.customer_id.as_str()).is_some() {
                    for (_, field) in event.payload.personal_fields_mut() {
                        if matches!(field, PersonalText::Plain(_)) {
                            *field = PersonalText::Withheld(Withheld::Erased);
                            withheld_fields += 1;
                        }
                    }
                    line.data = event.payload.data_json();
                    line.schema_version = event.payload.event_type().current_version();
                }
            }
            serde_json::to_writer(&mut spool, &line).map_err(std::io::Error::from)?;
            spool.write_all(b"\n")?;
        }
    }
    spool.flush()?;
    spool.rewind()?;
    new.import(&mut BufReader::new(spool), &|_| {}).await?;

    let to = seal::seal(&**new.store(), key)
        .await
        .map_err(MigrationError::New)?;
    let statement = MigrationStatement {
        kind: MIGRATION_KIND.into(),
        version: MIGRATION_VERSION,
        from,
        to,
        sealed_fields: counts.plaintext - withheld_fields,
        withheld_fields,
        migrated_at: DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default(),
        public_key: key.public().to_hex(),
    };
    let bytes = serde_json::to_vec(&statement).expect("a statement serializes");
    let signature = hex::encode(key.sign(&bytes));
    Ok(Migration {
        statement,
        signature,
    })
}
