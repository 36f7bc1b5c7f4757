//! Issue 13, tamper evidence: the hash chain, `verify`, seals and export manifests, driven
//! through the real binary on real stores that are then tampered with by plain SQL, as someone
//! with write access to the file would.

mod bin_support;
use assert_cmd::Command;
use bin_support::Output;
use pipeline_ledger::store::chain::{self, Digest, GENESIS};
use pipeline_ledger::store::sqlite::SqliteStore;
use pipeline_ledger::store::{Access, EventStore, StoreOptions};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// A directory with a demo store `ledger.db`, a key pair and a seal of the whole store.
struct Audited {
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl Audited {
    /// A demo store of 60 customers, sealed.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("ledger.db");
        let a = Self { dir, store };
        a.ok(&[
            "demo",
            "--customers",
            "60",
            "--seed",
            "7",
            "--until",
            "2026-06-30T00:00:00Z",
        ]);
        a.ok(&["keygen", "--out", "auditor.key"]);
        a.ok(&["seal", "--key", "auditor.key", "-o", "first.seal"]);
        a
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::cargo_bin("pipeline-ledger")
            .unwrap()
            .current_dir(self.dir.path())
            .env_remove("PIPELINE_LEDGER_READ_MODELS")
            .env("PIPELINE_LEDGER_STORE", &self.store)
            .args(args)
            .output()
            .unwrap();
        Output::of(out)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(args)
    }

    fn fails(&self, args: &[&str]) -> Output {
        self.run(args).failed(args)
    }

    fn sql(&self, statements: &str) {
        let conn = Connection::open(&self.store).unwrap();
        conn.execute_batch(statements).unwrap();
    }

    fn head(&self) -> u64 {
        let conn = Connection::open(&self.store).unwrap();
        conn.query_row("SELECT max(position) FROM events", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
    }

    /// `verify --json`, which must fail, parsed: the first break's position and kind.
    fn first_break(&self, extra: &[&str]) -> (u64, String, String) {
        let mut args = vec!["verify", "--json"];
        args.extend_from_slice(extra);
        let out = self.fails(&args);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let b = &v["verify"]["first_break"];
        assert!(!b.is_null(), "no break reported: {}", out.stdout);
        (
            b["position"].as_u64().unwrap(),
            b["kind"].as_str().unwrap().to_string(),
            b["detail"].as_str().unwrap().to_string(),
        )
    }

    /// Recomputes the stored hashes from `from` on (all of them, or only those at `from` when
    /// `only_from`), as a forger who knows the scheme would after changing an event.
    fn forge_hashes(&self, from: u64, only_from: bool) {
        let records = read_all(&self.store);
        let conn = Connection::open(&self.store).unwrap();
        let mut previous: Digest = GENESIS;
        for r in &records {
            let event = chain::record_hash(r);
            let link = chain::link(&previous, &event);
            if r.position == from || (r.position > from && !only_from) {
                conn.execute(
                    "UPDATE event_chain SET event_hash = ?1, chain_hash = ?2 WHERE position = ?3",
                    rusqlite::params![event.as_slice(), link.as_slice(), r.position as i64],
                )
                .unwrap();
            }
            // The forger links from what is stored, as the next real append would.
            previous = conn
                .query_row(
                    "SELECT chain_hash FROM event_chain WHERE position = ?1",
                    [r.position as i64],
                    |row| row.get::<_, Vec<u8>>(0),
                )
                .map(|h| chain::from_slice(&h).unwrap())
                .unwrap();
        }
    }
}

fn read_all(store: &Path) -> Vec<pipeline_ledger::store::Record> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open_with(
            store,
            StoreOptions {
                access: Access::ReadOnly,
                ..Default::default()
            },
        )
        .unwrap();
        store.read_all(None, usize::MAX >> 1).await.unwrap()
    })
}

/// The position of the first event of `event_type`.
fn first_of(a: &Audited, event_type: &str) -> u64 {
    let conn = Connection::open(&a.store).unwrap();
    conn.query_row(
        "SELECT min(position) FROM events WHERE event_type = ?1",
        [event_type],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

#[test]
fn an_untouched_store_verifies_with_its_schemas_and_its_seal() {
    let a = Audited::new();
    let out = a.ok(&[
        "verify",
        "--schemas",
        "--seal",
        "first.seal",
        "--public-key",
        "auditor.key.pub",
    ]);
    assert!(out.contains("chain: holds"), "{out}");
    assert!(out.contains("every event checked"), "{out}");
    assert!(out.contains("the pinned key): holds"), "{out}");
    // Appends after the seal extend the chain; the sealed prefix still holds.
    a.ok(&[
        "record",
        "lead-sourced",
        "--customer",
        "late-1",
        "--rep",
        "rep-01",
        "--deal",
        "d1",
        "--source",
        "web",
        "--company",
        "Acme",
        "--contact-name",
        "N",
    ]);
    let out = a.ok(&["verify", "--seal", "first.seal"]);
    assert!(out.contains("holds"), "{out}");
}

#[test]
fn a_contract_value_multiplied_by_ten_is_found_at_its_position() {
    let a = Audited::new();
    let p = first_of(&a, "ContractSigned");
    a.sql(&format!(
        "UPDATE events SET data = json_set(data, '$.value.amount_minor', \
         json_extract(data, '$.value.amount_minor') * 10) WHERE position = {p}"
    ));
    let (at, kind, _) = a.first_break(&[]);
    assert_eq!((at, kind.as_str()), (p, "content_changed"));
    // The commands that read the log notice nothing of it; verify is what does.
    a.ok(&["export"]);
}

#[test]
fn a_rewritten_recorded_by_is_found_at_its_position() {
    let a = Audited::new();
    a.sql("UPDATE events SET recorded_by = 'sales-director' WHERE position = 17");
    let (at, kind, detail) = a.first_break(&[]);
    assert_eq!((at, kind.as_str()), (17, "content_changed"), "{detail}");
}

#[test]
fn a_deleted_event_is_found_where_the_gap_is() {
    let a = Audited::new();
    a.sql("DELETE FROM events WHERE position = 40; DELETE FROM event_chain WHERE position = 40");
    let (at, kind, detail) = a.first_break(&[]);
    assert_eq!((at, kind.as_str()), (40, "event_missing"), "{detail}");
}

#[test]
fn a_deleted_event_with_positions_renumbered_is_found_by_its_stream_or_its_hash() {
    let a = Audited::new();
    // Close the gap: every later event moves down by one, as a careful forger would.
    let head = a.head();
    a.sql(&format!(
        "DELETE FROM events WHERE position = 40; DELETE FROM event_chain WHERE position = {head};
         UPDATE events SET position = -position WHERE position > 40;
         UPDATE events SET position = -position - 1 WHERE position < 0;"
    ));
    let (at, kind, detail) = a.first_break(&[]);
    assert_eq!(at, 40, "{kind}: {detail}");
    assert!(
        ["event_missing", "order_changed"].contains(&kind.as_str()),
        "{kind}: {detail}"
    );
}

#[test]
fn two_swapped_events_are_found_as_moved() {
    let a = Audited::new();
    a.sql(
        "UPDATE events SET position = -1 WHERE position = 30;
         UPDATE events SET position = 30 WHERE position = 50;
         UPDATE events SET position = 50 WHERE position = -1;",
    );
    let (at, kind, detail) = a.first_break(&[]);
    assert_eq!((at, kind.as_str()), (30, "order_changed"), "{detail}");
    assert!(detail.contains("position 50"), "{detail}");
}

#[test]
fn an_event_replaced_with_its_hashes_is_found_at_its_position() {
    let a = Audited::new();
    a.sql("UPDATE events SET recorded_by = 'sales-director' WHERE position = 25");
    a.forge_hashes(25, true);
    let (at, kind, detail) = a.first_break(&[]);
    assert_eq!((at, kind.as_str()), (25, "hash_replaced"), "{detail}");
}

#[test]
fn a_chain_recomputed_after_a_change_is_caught_by_the_seal_only() {
    let a = Audited::new();
    a.sql("UPDATE events SET recorded_by = 'sales-director' WHERE position = 25");
    a.forge_hashes(25, false);
    // The chain is consistent again: verify alone cannot tell.
    a.ok(&["verify"]);
    let out = a.fails(&["verify", "--seal", "first.seal"]);
    assert!(
        out.stdout
            .contains("the sealed prefix was changed and its chain recomputed"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_tail_cut_behind_a_seal_is_caught_by_the_seal() {
    let a = Audited::new();
    let head = a.head();
    a.sql(&format!(
        "DELETE FROM events WHERE position > {}; DELETE FROM event_chain WHERE position > {}",
        head - 5,
        head - 5
    ));
    a.ok(&["verify"]);
    let out = a.fails(&["verify", "--seal", "first.seal"]);
    assert!(
        out.stdout.contains(&format!(
            "the log ends at position {}, but the seal covers it up to position {head}",
            head - 5
        )),
        "{}",
        out.stdout
    );
    // Cutting the events but not their hashes is found without a seal.
    let b = Audited::new();
    b.sql(&format!("DELETE FROM events WHERE position > {}", head - 5));
    let (at, kind, _) = b.first_break(&[]);
    assert_eq!((at, kind.as_str()), (head - 4, "event_missing"));
}

#[test]
fn a_seal_that_was_altered_or_is_of_another_store_or_key_does_not_hold() {
    let a = Audited::new();
    let seal = std::fs::read_to_string(a.path("first.seal")).unwrap();
    // Altered: the statement no longer matches its signature.
    let mut v: serde_json::Value = serde_json::from_str(&seal).unwrap();
    v["sealed_at"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(a.path("altered.seal"), v.to_string()).unwrap();
    let out = a.fails(&["verify", "--seal", "altered.seal"]);
    assert!(
        out.stdout.contains("the signature does not match"),
        "{}",
        out.stdout
    );
    // Another key than the pinned one.
    a.ok(&["keygen", "--out", "other.key"]);
    let out = a.fails(&[
        "verify",
        "--seal",
        "first.seal",
        "--public-key",
        "other.key.pub",
    ]);
    assert!(
        out.stdout.contains("not by the key given"),
        "{}",
        out.stdout
    );
    // Another store: the same events would not even help, its identity differs.
    let b = Audited::new();
    let out = b.fails(&["verify", "--seal", a.path("first.seal").to_str().unwrap()]);
    assert!(
        out.stdout.contains("the seal is of another store"),
        "{}",
        out.stdout
    );
}

#[test]
fn keys_are_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let a = Audited::new();
    let mode = std::fs::metadata(a.path("auditor.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = a.fails(&["keygen", "--out", "auditor.key"]);
    assert!(out.stderr.contains("never overwrites"), "{}", out.stderr);
    std::fs::set_permissions(
        a.path("auditor.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = a.fails(&["seal", "--key", "auditor.key"]);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
}

#[test]
fn an_exported_slice_proves_itself_with_its_manifest() {
    let a = Audited::new();
    a.ok(&[
        "export",
        "--from",
        "21",
        "--to",
        "80",
        "-o",
        "slice.ndjson",
        "--manifest",
        "slice.manifest.json",
        "--key",
        "auditor.key",
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.path("slice.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["events"], 60);
    assert_eq!(manifest["first_position"], 21);
    assert_eq!(manifest["last_position"], 80);
    let slice = std::fs::read_to_string(a.path("slice.ndjson")).unwrap();
    assert_eq!(slice.lines().count(), 60);
    assert!(!slice.contains("pipeline-ledger export manifest"));
    let check = [
        "verify",
        "--export",
        "slice.ndjson",
        "--manifest",
        "slice.manifest.json",
        "--public-key",
        "auditor.key.pub",
    ];
    let out = a.ok(&check);
    assert!(out.contains("slice: holds"), "{out}");
    // The manifest's last hash is the store's own chain hash at position 80.
    let conn = Connection::open(&a.store).unwrap();
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT chain_hash FROM event_chain WHERE position = 80",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(manifest["last_hash"], hex_of(&stored));

    // One changed value in the file: found at its line.
    let tampered: String = slice
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == 9 {
                l.replacen("\"recorded_by\":\"", "\"recorded_by\":\"x", 1)
            } else {
                l.to_string()
            };
            l + "\n"
        })
        .collect();
    std::fs::write(a.path("slice.ndjson"), &tampered).unwrap();
    let out = a.fails(&check);
    assert!(out.stdout.contains("BROKEN"), "{}", out.stdout);
    // And an import that checks the manifest writes nothing of it.
    let fresh = a.path("fresh.db");
    let out = a.fails(&[
        "--store",
        fresh.to_str().unwrap(),
        "import",
        "slice.ndjson",
        "--manifest",
        "slice.manifest.json",
    ]);
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    assert!(!fresh.exists() || read_all(&fresh).is_empty());

    // The untouched slice imports, checked, into a ledger that holds what came before it (a
    // slice continues a history: its customers' earlier events are in the prefix) and the
    // customers' keys (its personal fields are sealed: a copy of the key store, same master key).
    a.ok(&["export", "--to", "20", "-o", "prefix.ndjson"]);
    std::fs::copy(a.path("ledger.keys.db"), a.path("fresh-copy.keys.db")).unwrap();
    let same_keys = [
        "--store",
        fresh.to_str().unwrap(),
        "--master-key",
        "ledger.master.key",
        "--key-store",
        "fresh-copy.keys.db",
    ];
    a.ok(&[&same_keys[..], &["import", "prefix.ndjson"]].concat());
    std::fs::write(a.path("slice.ndjson"), &slice).unwrap();
    a.ok(&[
        &same_keys[..],
        &[
            "import",
            "slice.ndjson",
            "--manifest",
            "slice.manifest.json",
            "--public-key",
            "auditor.key.pub",
        ],
    ]
    .concat());
    assert_eq!(read_all(&fresh).len(), 80);
}

#[test]
fn a_store_of_the_previous_format_gets_its_chain_without_a_row_of_it_changing() {
    let a = Audited::new();
    // Make it a store of format 1: no chain tables.
    a.sql("DROP TABLE event_chain; DROP TABLE chain_upgrades; PRAGMA user_version = 1;");
    let before = dump_events(&a.store);
    let out = a.fails(&["verify"]);
    assert!(
        out.stderr.contains("has no hash chain yet"),
        "{}",
        out.stderr
    );
    a.ok(&["init"]);
    assert_eq!(dump_events(&a.store), before, "an event row changed");
    let out = a.ok(&["verify"]);
    assert!(out.contains("chain: holds"), "{out}");
    assert!(
        out.contains("computed when the store was upgraded"),
        "{out}"
    );
    // The chain computed over the old events is the one they had: the seal still holds.
    let out = a.ok(&["verify", "--seal", "first.seal"]);
    assert!(out.contains("holds"), "{out}");
}

fn dump_events(store: &Path) -> Vec<String> {
    let conn = Connection::open(store).unwrap();
    let mut stmt = conn
        .prepare("SELECT quote(event_id), position, stream, revision, data, recorded_by, recorded_at FROM events ORDER BY position")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(format!(
            "{}|{}|{}|{}|{}|{}|{}",
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn verify_from_a_position_trusts_the_hash_before_it() {
    let a = Audited::new();
    a.sql("UPDATE events SET recorded_by = 'x' WHERE position = 10");
    // The change lies before --from: not looked at.
    a.ok(&["verify", "--from", "20"]);
    let (at, _, _) = a.first_break(&["--from", "5"]);
    assert_eq!(at, 10);
}
