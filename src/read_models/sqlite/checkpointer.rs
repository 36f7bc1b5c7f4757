//! Folds a SQLite file's write-ahead log into the database on a thread of its own.
//!
//! SQLite's automatic checkpoint runs inside whichever commit pushes the WAL past its threshold:
//! that commit (an append, or a read-model batch) then also copies a thousand pages into the
//! database and syncs it, tens of milliseconds during which it holds the file's write lock and
//! every other writer waits. Connections that own a `Checkpointer` turn the automatic checkpoint
//! off and nudge this thread after their commits instead; its checkpoints are `PASSIVE`, so they
//! never take the write lock and never wait for readers.

use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Least time between two checkpoints: under a steady load one checkpoint then covers many
/// commits, and the database file is synced a few times a second rather than at every commit.
pub const CHECKPOINT_INTERVAL_MIN: Duration = Duration::from_secs(1);

/// The checkpointing thread of one file; dropping it runs a last checkpoint and joins it.
#[derive(Debug)]
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Turns the automatic checkpoint of `writer` off and starts the thread that replaces it,
    /// with a connection of its own to `path`.
    pub fn start(writer: &Connection, path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        // The database file is synced before the WAL is reused, so a checkpoint never loses a
        // commit the WAL held.
        conn.pragma_update(None, "synchronous", "FULL")?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Capacity one: nudges arriving while a checkpoint runs coalesce into the next one.
        let (nudge, nudged) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpointer".into())
            .spawn(move || checkpoint_loop(&conn, &nudged))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
        })
    }

    /// Says that a commit added to the WAL. Never blocks.
    pub fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            // Full: a checkpoint is already due. Disconnected: cannot happen before drop.
            let _: Result<(), TrySendError<()>> = nudge.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel ends the loop after one last checkpoint.
        self.nudge.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn checkpoint_loop(conn: &Connection, nudged: &Receiver<()>) {
    while nudged.recv().is_ok() {
        // Commits within the interval share one checkpoint; closing the channel cuts it short.
        let deadline = Instant::now() + CHECKPOINT_INTERVAL_MIN;
        loop {
            match nudged.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return checkpoint(conn),
            }
        }
        checkpoint(conn);
    }
    checkpoint(conn);
}

fn checkpoint(conn: &Connection) {
    // Best effort: a checkpoint that cannot finish now (a reader still needs old frames)
    // finishes at a later nudge; nothing is lost by skipping one.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    #[test]
    fn commits_reach_the_database_file_through_the_thread_not_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let writer = Connection::open(&path).unwrap();
        let _: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        let checkpointer = Checkpointer::start(&writer, &path).unwrap();
        let autocheckpoint: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            autocheckpoint, 0,
            "the writer no longer checkpoints in its commits"
        );
        writer
            .execute_batch("CREATE TABLE t (v BLOB); BEGIN;")
            .unwrap();
        for _ in 0..1024 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(4096))", [])
                .unwrap();
        }
        writer.execute_batch("COMMIT;").unwrap();
        // Four MiB committed, more than SQLite's automatic threshold, yet all still in the WAL.
        assert!(file_len(&path) < 1 << 20, "{}", file_len(&path));
        checkpointer.nudge();
        drop(checkpointer);
        assert!(file_len(&path) >= 4 << 20, "{}", file_len(&path));
    }
}
