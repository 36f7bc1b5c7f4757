//! The embedded store's hash chain: one chain over log positions, kept in a table of its own
//! beside the events (`event_chain`), written in the same transaction as the events it covers.
//!
//! Event rows are never updated, not even to add their hashes: a store created before the chain
//! existed gets its chain computed over the events it holds, into `event_chain`, the first time
//! it is opened for writing; the upgrade is recorded in `chain_upgrades`.

use crate::store::chain::{self, ChainInfo, ChainUpgrade, ChainedRecord, Digest, GENESIS};
use crate::store::{NewRecord, ReadError, StorageError};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

/// Rows hashed per step of an upgrade: bounds the memory it holds.
const UPGRADE_PAGE_EVENTS: i64 = 16_384;

/// Whether the store has its chain table (stores of format 1 and older have none until they are
/// opened for writing).
pub(super) fn has_chain(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'event_chain'",
        [],
        |r| r.get(0),
    )
}

/// Creates the chain of a store that has none: computes it over every event the store holds,
/// in one transaction, and records the upgrade. A store that has its chain is left alone, even
/// when the chain falls short of the events: that is tampering for `verify` to report, never
/// something to paper over by hashing what is there now.
pub(super) fn ensure_chain(conn: &mut Connection) -> rusqlite::Result<()> {
    if has_chain(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Checked again under the write lock: another process may have upgraded it meanwhile.
    if has_chain(&tx)? {
        return Ok(());
    }
    create_tables(&tx)?;
    let mut previous = GENESIS;
    let mut after = 0i64;
    let mut events = 0i64;
    loop {
        let page = super::read_all_sync(&tx, Some(after as u64), UPGRADE_PAGE_EVENTS as usize)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.to_string().into()))?;
        let Some(last) = page.last() else { break };
        after = last.position as i64;
        for record in &page {
            let event = chain::record_hash(record);
            previous = chain::link(&previous, &event);
            insert_link(&tx, record.position, &event, &previous)?;
            events += 1;
        }
    }
    if events > 0 {
        tx.execute(
            "INSERT INTO chain_upgrades (upgraded_at, through_position, events) VALUES (?1, ?2, ?3)",
            params![Utc::now().timestamp_micros(), after, events],
        )?;
    }
    tx.commit()
}

/// Creates the chain tables of a new, empty store (no upgrade to record).
pub(super) fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS event_chain (
            position   INTEGER PRIMARY KEY,
            event_hash BLOB NOT NULL,
            chain_hash BLOB NOT NULL
         );
         CREATE TABLE IF NOT EXISTS chain_upgrades (
            upgraded_at      INTEGER NOT NULL,
            through_position INTEGER NOT NULL,
            events           INTEGER NOT NULL
         );",
    )
}

/// The chain hash at the log's head, the one the next event links to. Refuses to go on when
/// the chain does not end exactly at the head: appending would then extend a chain that no
/// longer describes the log.
pub(super) fn head_link(conn: &Connection, head_position: u64) -> Result<Digest, StorageError> {
    let last: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT position, chain_hash FROM event_chain ORDER BY position DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let broken = |why: String| {
        StorageError::Corrupt(format!(
            "{why}; the store refuses to write until this is explained: run `pipeline-ledger \
             verify`"
        ))
    };
    match last {
        None if head_position == 0 => Ok(GENESIS),
        None => Err(broken(format!(
            "the hash chain is empty but the log holds events up to position {head_position}"
        ))),
        Some((position, hash)) => {
            if position as u64 != head_position {
                return Err(broken(format!(
                    "the hash chain ends at position {position} but the log at {head_position}"
                )));
            }
            chain::from_slice(&hash).ok_or_else(|| {
                broken(format!(
                    "the chain hash at position {position} is not 32 bytes"
                ))
            })
        }
    }
}

/// The event hash of an event being written to `stream`, recorded at `recorded_at` (the store's
/// clock when the writer gave none).
pub(super) fn new_event_hash(
    stream: &str,
    event: &NewRecord,
    recorded_at: DateTime<Utc>,
) -> Digest {
    chain::event_hash(&chain::EventParts {
        event_id: event.event_id,
        stream,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        occurred_at: event.occurred_at,
        recorded_at,
        recorded_by: &event.recorded_by,
        correlation_id: event.correlation_id,
        causation_id: event.causation_id,
        data: &event.data,
    })
}

/// Writes the hashes of the event at `position`.
pub(super) fn insert_link(
    conn: &Connection,
    position: u64,
    event_hash: &Digest,
    chain_hash: &Digest,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO event_chain (position, event_hash, chain_hash) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        position as i64,
        event_hash.as_slice(),
        chain_hash.as_slice()
    ])?;
    Ok(())
}

/// What the store holds of its chain: `None` for a store without one.
pub(super) fn info(conn: &Connection) -> Result<Option<ChainInfo>, ReadError> {
    if !has_chain(conn).map_err(StorageError::from)? {
        return Ok(None);
    }
    let last_position: Option<i64> = conn
        .query_row("SELECT max(position) FROM event_chain", [], |r| r.get(0))
        .map_err(StorageError::from)?;
    let mut stmt = conn
        .prepare("SELECT upgraded_at, through_position, events FROM chain_upgrades ORDER BY rowid")
        .map_err(StorageError::from)?;
    let upgrades = stmt
        .query_map([], |r| {
            Ok(ChainUpgrade {
                upgraded_at: DateTime::from_timestamp_micros(r.get(0)?).unwrap_or_default(),
                through_position: r.get::<_, i64>(1)? as u64,
                events: r.get::<_, i64>(2)? as u64,
            })
        })
        .map_err(StorageError::from)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StorageError::from)?;
    Ok(Some(ChainInfo {
        per_stream: false,
        last_position: last_position.map(|p| p as u64),
        upgrades,
    }))
}

/// Up to `max_count` events after position `after`, each with the hashes stored for it.
pub(super) fn read_chained(
    conn: &Connection,
    after: Option<u64>,
    max_count: usize,
) -> Result<Vec<ChainedRecord>, ReadError> {
    let after = after.unwrap_or(0);
    let max_count = i64::try_from(max_count).unwrap_or(i64::MAX);
    read_chained_where(conn, after, i64::MAX as u64, max_count)
}

/// The events at positions `after + 1 ..= upto`, each with the hashes stored for it.
pub(super) fn read_chained_between(
    conn: &Connection,
    after: u64,
    upto: u64,
) -> Result<Vec<ChainedRecord>, ReadError> {
    read_chained_where(conn, after, upto, i64::MAX)
}

fn read_chained_where(
    conn: &Connection,
    after: u64,
    upto: u64,
    max_count: i64,
) -> Result<Vec<ChainedRecord>, ReadError> {
    let upto = i64::try_from(upto).unwrap_or(i64::MAX);
    let max_count = max_count.min(upto.saturating_sub(after as i64).max(0));
    let with_chain = has_chain(conn).map_err(StorageError::from)?;
    if !with_chain {
        let records = super::read_all_sync(conn, Some(after), max_count as usize)?;
        return Ok(records
            .into_iter()
            .filter(|r| r.position as i64 <= upto)
            .map(|record| ChainedRecord {
                record,
                event_hash: None,
                chain_hash: None,
            })
            .collect());
    }
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {}, c.event_hash, c.chain_hash FROM events e \
             LEFT JOIN event_chain c ON c.position = e.position \
             WHERE e.position > ?1 AND e.position <= ?2 ORDER BY e.position LIMIT ?3",
            super::SELECT_COLUMNS_OF_E
        ))
        .map_err(StorageError::from)?;
    let rows = stmt
        .query_map(params![after as i64, upto, max_count], |row| {
            let record = super::row_to_record(row)?;
            let event_hash: Option<Vec<u8>> = row.get(12)?;
            let chain_hash: Option<Vec<u8>> = row.get(13)?;
            Ok((record, event_hash, chain_hash))
        })
        .map_err(StorageError::from)?;
    let mut out = Vec::new();
    for row in rows {
        let (record, event_hash, chain_hash) = row.map_err(StorageError::from)?;
        // A hash of the wrong length is reported by `verify` as a replaced hash: keep it as
        // one that can never match.
        let digest = |b: Option<Vec<u8>>| b.map(|b| chain::from_slice(&b).unwrap_or([0xff; 32]));
        out.push(ChainedRecord {
            record,
            event_hash: digest(event_hash),
            chain_hash: digest(chain_hash),
        });
    }
    Ok(out)
}

/// The stored chain hash at `position`, if the chain has one there.
pub(super) fn link_at(conn: &Connection, position: u64) -> Result<Option<Digest>, ReadError> {
    if !has_chain(conn).map_err(StorageError::from)? {
        return Ok(None);
    }
    let hash: Option<Vec<u8>> = conn
        .prepare_cached("SELECT chain_hash FROM event_chain WHERE position = ?1")
        .map_err(StorageError::from)?
        .query_row([position as i64], |r| r.get(0))
        .optional()
        .map_err(StorageError::from)?;
    Ok(hash.map(|h| chain::from_slice(&h).unwrap_or([0xff; 32])))
}

/// The position of the event whose stored event hash is `hash`, if any (finds where a moved
/// event was recorded).
pub(super) fn position_of_event_hash(
    conn: &Connection,
    hash: &Digest,
) -> Result<Option<u64>, ReadError> {
    if !has_chain(conn).map_err(StorageError::from)? {
        return Ok(None);
    }
    let position: Option<i64> = conn
        .query_row(
            "SELECT position FROM event_chain WHERE event_hash = ?1 LIMIT 1",
            [hash.as_slice()],
            |r| r.get(0),
        )
        .optional()
        .map_err(StorageError::from)?;
    Ok(position.map(|p| p as u64))
}
