//! Issue 13, erasure by crypto-shredding: personal fields are sealed with the customer's data
//! key on the way in, shown only to key holders, and made unreadable for good by `forget`,
//! which destroys the key. Driven through the real binary on real stores, whose files are then
//! read byte by byte.

mod bin_support;
use assert_cmd::Command;
use bin_support::Output;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// What acme-foods' contact gave us: none of it may survive `forget` in any file the ledger
/// writes.
const PERSONAL: [&str; 5] = [
    "Li Wei",
    "+86 138 0013 8000",
    "li.wei@acme.example",
    "met Li at the trade fair",
    "Wei Li-Hua",
];
/// Another customer's contact, which must still open after acme-foods is erased.
const OTHER_CONTACT: &str = "Anna Schmidt";

/// A directory with a SQLite store `ledger.db` and its key files beside it.
struct Ledger {
    dir: tempfile::TempDir,
}

impl Ledger {
    /// A demo store of 40 customers, plus acme-foods (whose lead carries every personal field
    /// and was then amended to a new contact name) and bolt-tools.
    fn new() -> Self {
        let ledger = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        ledger.ok(&[
            "demo",
            "--customers",
            "40",
            "--seed",
            "5",
            "--until",
            "2026-06-30T00:00:00Z",
        ]);
        ledger.ok(&[
            "record",
            "lead-sourced",
            "--customer",
            "acme-foods",
            "--rep",
            "rep-01",
            "--deal",
            "d1",
            "--source",
            "referral",
            "--company",
            "Acme Foods",
            "--contact-name",
            PERSONAL[0],
            "--phone",
            PERSONAL[1],
            "--email",
            PERSONAL[2],
            "--notes",
            PERSONAL[3],
            "--occurred-at",
            "2026-03-02",
        ]);
        let lead = ledger.event_id_of("acme-foods", "LeadSourced");
        let amend = format!(
            r#"{{"type":"LeadSourced","data":{{"deal_id":"d1","rep_id":"rep-01","source":"referral","company":"Acme Foods","contact":{{"name":"{}"}}}}}}"#,
            PERSONAL[4]
        );
        ledger.ok(&[
            "record",
            "correct",
            "--customer",
            "acme-foods",
            "--rep",
            "rep-01",
            "--event",
            &lead,
            "--reason",
            "wrong contact",
            "--amend",
            &amend,
        ]);
        ledger.ok(&[
            "record",
            "lead-sourced",
            "--customer",
            "bolt-tools",
            "--rep",
            "rep-02",
            "--deal",
            "b1",
            "--source",
            "web",
            "--company",
            "Bolt Tools",
            "--contact-name",
            OTHER_CONTACT,
            "--occurred-at",
            "2026-04-01",
        ]);
        ledger
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run_with(&self, args: &[&str], stdin: &[u8]) -> Output {
        let out = Command::cargo_bin("pipeline-ledger")
            .unwrap()
            .current_dir(self.dir.path())
            .env_remove("PIPELINE_LEDGER_READ_MODELS")
            .env_remove("PIPELINE_LEDGER_MASTER_KEY")
            .env_remove("PIPELINE_LEDGER_MASTER_KEY_FILE")
            .env_remove("PIPELINE_LEDGER_KEY_STORE")
            .env_remove("PIPELINE_LEDGER_ERASURE_JOURNAL")
            .env("PIPELINE_LEDGER_STORE", "ledger.db")
            .args(args)
            .write_stdin(stdin)
            .output()
            .unwrap();
        Output::of(out)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, b"")
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(args)
    }

    fn fails(&self, args: &[&str]) -> Output {
        self.run(args).failed(args)
    }

    /// The id of the first event of `event_type` in the customer's history.
    fn event_id_of(&self, customer: &str, event_type: &str) -> String {
        let history: serde_json::Value =
            serde_json::from_str(&self.ok(&["history", customer, "--json"])).unwrap();
        history
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == event_type)
            .unwrap_or_else(|| panic!("{customer} has no {event_type}"))["event_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Every file in the ledger's directory, as bytes.
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        files.sort();
        files
    }
}

/// A report's figures: its JSON without `meta` (the log position, which the erasure event
/// moved on, and the time it was evaluated).
fn figures(report: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(report).unwrap();
    v.as_object_mut().unwrap().remove("meta");
    v
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checkpoints the WAL into the database and rewrites the file without its free pages.
fn checkpoint_and_vacuum(db: &Path) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

/// The wrapped data key of `customer`, as the key store holds it.
fn wrapped_key(key_store: &Path, customer: &str) -> Option<Vec<u8>> {
    let conn = Connection::open(key_store).unwrap();
    conn.query_row(
        "SELECT wrapped FROM data_keys WHERE customer = ?1",
        [customer],
        |row| row.get(0),
    )
    .ok()
}

#[test]
fn personal_fields_are_stored_sealed_and_shown_only_to_key_holders() {
    let ledger = Ledger::new();
    for (path, bytes) in ledger.files() {
        for text in PERSONAL {
            assert!(
                !contains(&bytes, text.as_bytes()),
                "{} holds {text:?} in plaintext",
                path.display()
            );
        }
    }
    // Holding the master key: the history shows the values (the amended name among them).
    let history = ledger.ok(&["history", "acme-foods", "--json"]);
    for text in PERSONAL {
        assert!(history.contains(text), "history lacks {text:?}:\n{history}");
    }
    let redacted = ledger.ok(&["history", "acme-foods", "--json", "--redacted"]);
    assert!(!PERSONAL.iter().any(|t| redacted.contains(t)), "{redacted}");
    assert!(redacted.contains(r#""withheld": "redacted""#), "{redacted}");

    // The three export modes.
    let as_stored = ledger.ok(&["export"]);
    assert!(as_stored.contains(r#""sealed":"#));
    assert!(!PERSONAL.iter().any(|t| as_stored.contains(t)));
    let decrypted = ledger.ok(&["export", "--personal", "decrypted"]);
    for text in PERSONAL {
        assert!(decrypted.contains(text), "decrypted export lacks {text:?}");
    }
    assert!(!decrypted.contains(r#""sealed":"#));
    let redacted = ledger.ok(&["export", "--personal", "redacted"]);
    assert!(!PERSONAL.iter().any(|t| redacted.contains(t)));
    assert!(redacted.contains(r#"{"withheld":"redacted"}"#));
    assert_eq!(as_stored.lines().count(), decrypted.lines().count());
    assert_eq!(as_stored.lines().count(), redacted.lines().count());

    // Without the master key a reader gets the events, personal fields withheld, and is told.
    std::fs::rename(
        ledger.path("ledger.master.key"),
        ledger.path("elsewhere.key"),
    )
    .unwrap();
    let out = ledger.run(&["history", "acme-foods", "--json"]);
    let history = out.ok(&["history"]);
    assert!(!PERSONAL.iter().any(|t| history.contains(t)));
    assert!(history.contains(r#""withheld": "redacted""#), "{history}");
    // A writer without the key that made the key store is refused, not handed a new key.
    let out = ledger.run(&[
        "--master-key",
        "missing.key",
        "record",
        "lead-sourced",
        "--customer",
        "new-co",
        "--rep",
        "rep-01",
        "--deal",
        "n1",
        "--source",
        "web",
        "--company",
        "New Co",
        "--contact-name",
        "Someone",
    ]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("master key"), "{}", out.stderr);
}

#[test]
fn forget_leaves_no_plaintext_in_any_file_and_changes_no_number() {
    let ledger = Ledger::new();
    ledger.ok(&["project"]);
    let funnel_before = figures(&ledger.ok(&["funnel", "--json"]));
    let reps_before = figures(&ledger.ok(&["reps", "--json"]));
    // A decrypted copy kept elsewhere before the erasure: the retry below comes from it (and
    // `forget` cannot reach it, as ARCHITECTURE.md says).
    let outside = tempfile::tempdir().unwrap();
    let kept = outside.path().join("decrypted.ndjson");
    ledger.ok(&[
        "export",
        "--personal",
        "decrypted",
        "-o",
        kept.to_str().unwrap(),
    ]);
    let key_before = wrapped_key(&ledger.path("ledger.keys.db"), "acme-foods").unwrap();

    let said = ledger.ok(&[
        "forget",
        "acme-foods",
        "--reason",
        "GDPR art. 17 request 2026-114",
        "--by",
        "dpo-office",
    ]);
    assert!(
        said.contains("erased the personal data of customer acme-foods"),
        "{said}"
    );
    assert!(said.contains("5 sealed field(s)"), "{said}");

    // The history says the fields are erased, and why.
    let history = ledger.ok(&["history", "acme-foods", "--json"]);
    assert!(!PERSONAL.iter().any(|t| history.contains(t)), "{history}");
    assert!(history.contains(r#""withheld": "erased""#), "{history}");
    assert!(history.contains("PersonalDataErased"));
    assert!(history.contains("GDPR art. 17 request 2026-114"));
    // The chain covers the ciphertext, which is still there: the log verifies.
    ledger.ok(&["verify"]);
    // No report reads personal data: rebuilt from scratch, every number is what it was.
    ledger.ok(&["rebuild"]);
    assert_eq!(figures(&ledger.ok(&["funnel", "--json"])), funnel_before);
    assert_eq!(figures(&ledger.ok(&["reps", "--json"])), reps_before);
    // The other customers' data still opens.
    assert!(
        ledger
            .ok(&["history", "bolt-tools", "--json"])
            .contains(OTHER_CONTACT)
    );

    // A retry of the erased lead, plaintext and all, is refused and says why.
    let lead_line = std::fs::read_to_string(&kept)
        .unwrap()
        .lines()
        .find(|l| l.contains(r#""customer_id":"acme-foods""#) && l.contains("LeadSourced"))
        .unwrap()
        .to_string();
    let out = ledger.run_with(&["import", "-"], format!("{lead_line}\n").as_bytes());
    let out = out.failed(&["import"]);
    assert!(out.stderr.contains("line 1"), "{}", out.stderr);
    assert!(out.stderr.contains("was erased"), "{}", out.stderr);
    // Erasing twice is refused; so is erasing a customer the ledger does not know.
    let out = ledger.fails(&["forget", "acme-foods", "--reason", "again"]);
    assert!(out.stderr.contains("already"), "{}", out.stderr);
    let out = ledger.fails(&["forget", "nobody-co", "--reason", "r"]);
    assert!(out.stderr.contains("nobody-co"), "{}", out.stderr);
    let out = ledger.fails(&["forget", "bolt-tools", "--reason", "  "]);
    assert!(out.stderr.contains("reason"), "{}", out.stderr);

    // After a checkpoint and VACUUM, no file the ledger wrote holds the plaintext or the key.
    ledger.ok(&["export", "-o", "after.ndjson"]);
    ledger.ok(&[
        "export",
        "--personal",
        "decrypted",
        "-o",
        "after-decrypted.ndjson",
    ]);
    checkpoint_and_vacuum(&ledger.path("ledger.db"));
    checkpoint_and_vacuum(&ledger.path("ledger.read-models.db"));
    checkpoint_and_vacuum(&ledger.path("ledger.keys.db"));
    let files = ledger.files();
    assert!(
        files.len() >= 6,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (path, bytes) in &files {
        for text in PERSONAL {
            assert!(
                !contains(bytes, text.as_bytes()),
                "{} still holds {text:?}",
                path.display()
            );
        }
        assert!(
            !contains(bytes, &key_before),
            "{} still holds acme-foods' wrapped key",
            path.display()
        );
    }
    let after = std::fs::read_to_string(ledger.path("after-decrypted.ndjson")).unwrap();
    assert!(after.contains(OTHER_CONTACT));
    assert!(after.contains(r#"{"withheld":"erased"}"#));
}

#[test]
fn an_erasure_survives_restoring_a_backup_made_before_it() {
    let ledger = Ledger::new();
    ledger.ok(&["backup", "before.db"]);
    assert!(
        ledger.path("before.keys.db").exists(),
        "backup copies the key store"
    );
    ledger.ok(&["forget", "acme-foods", "--reason", "request 7"]);
    // Restore: the log and the key store from the backup; the journal stays where it was.
    for (from, to) in [
        ("before.db", "ledger.db"),
        ("before.keys.db", "ledger.keys.db"),
    ] {
        std::fs::copy(ledger.path(from), ledger.path(to)).unwrap();
    }
    for wal in ["ledger.db-wal", "ledger.db-shm"] {
        let _ = std::fs::remove_file(ledger.path(wal));
    }
    let out = ledger.run(&["history", "acme-foods", "--json"]);
    assert!(
        out.stderr
            .contains("re-applied the erasure of customer acme-foods"),
        "{}",
        out.stderr
    );
    let history = out.ok(&["history"]);
    assert!(!PERSONAL.iter().any(|t| history.contains(t)), "{history}");
    assert!(history.contains(r#""withheld": "erased""#));
    // The restored log lacks the erasure event: `forget` records it without a second erasure.
    let said = ledger.ok(&["forget", "acme-foods", "--reason", "request 7"]);
    assert!(said.contains("already been destroyed"), "{said}");
    assert!(
        ledger
            .ok(&["history", "acme-foods"])
            .contains("PersonalDataErased")
    );
    checkpoint_and_vacuum(&ledger.path("ledger.keys.db"));
    assert_eq!(
        wrapped_key(&ledger.path("ledger.keys.db"), "acme-foods"),
        None
    );
    assert!(
        ledger
            .ok(&["history", "bolt-tools", "--json"])
            .contains(OTHER_CONTACT)
    );
}

#[test]
fn exports_import_again_as_their_mode_allows() {
    let ledger = Ledger::new();
    // A copy of the key store taken before the erasure: the ledger importing the export
    // below holds acme-foods' key, and the erasure in the export must destroy it there too.
    std::fs::copy(ledger.path("ledger.keys.db"), ledger.path("copy.keys.db")).unwrap();
    ledger.ok(&["forget", "acme-foods", "--reason", "request 9"]);
    ledger.ok(&["export", "-o", "stored.ndjson"]);
    ledger.ok(&[
        "export",
        "--personal",
        "decrypted",
        "-o",
        "decrypted.ndjson",
    ]);
    ledger.ok(&["export", "--personal", "redacted", "-o", "redacted.ndjson"]);
    let stored = std::fs::read_to_string(ledger.path("stored.ndjson")).unwrap();

    // As stored, into a ledger that holds the same keys (a second store sharing the key store):
    // the same events, byte for byte, and the erasure is carried out there too.
    let same_keys = [
        "--store",
        "copy.db",
        "--key-store",
        "copy.keys.db",
        "--master-key",
        "ledger.master.key",
        "--erasure-journal",
        "copy.erasures.ndjson",
    ];
    assert!(wrapped_key(&ledger.path("copy.keys.db"), "acme-foods").is_some());
    ledger.ok(&[&same_keys[..], &["import", "stored.ndjson"]].concat());
    ledger.ok(&[&same_keys[..], &["export", "-o", "copy.ndjson"]].concat());
    let copy = std::fs::read_to_string(ledger.path("copy.ndjson")).unwrap();
    assert_eq!(strip_recorded(&copy), strip_recorded(&stored));
    let history = ledger.ok(&[&same_keys[..], &["history", "bolt-tools", "--json"]].concat());
    assert!(history.contains(OTHER_CONTACT));
    let journal = std::fs::read_to_string(ledger.path("copy.erasures.ndjson")).unwrap();
    assert!(journal.contains("acme-foods"), "{journal}");
    assert_eq!(
        wrapped_key(&ledger.path("copy.keys.db"), "acme-foods"),
        None
    );
    let history = ledger.ok(&[&same_keys[..], &["history", "acme-foods", "--json"]].concat());
    assert!(history.contains(r#""withheld": "erased""#), "{history}");

    // As stored, into a ledger without these customers' keys: the events arrive as they were,
    // ciphertext and all (reports need no personal data), and nothing there can read them.
    ledger.ok(&["--store", "other.db", "import", "stored.ndjson"]);
    let other = ledger.ok(&["--store", "other.db", "export"]);
    assert_eq!(strip_recorded(&other), strip_recorded(&stored));
    let history = ledger.ok(&["--store", "other.db", "history", "bolt-tools", "--json"]);
    assert!(!history.contains(OTHER_CONTACT));
    assert!(history.contains(r#""withheld": "redacted""#), "{history}");
    assert_eq!(
        wrapped_key(&ledger.path("other.keys.db"), "bolt-tools"),
        None
    );

    // A sealed value changed on the way, into the ledger that holds the key: refused, naming
    // the line and the field, and nothing written.
    let bolt_line = stored
        .lines()
        .position(|l| l.contains(r#""customer_id":"bolt-tools""#))
        .unwrap();
    let changed: String = stored
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == bolt_line {
                let at = l.find(r#""name":{"sealed":""#).unwrap() + 20;
                let flipped = if &l[at..at + 1] == "A" { "B" } else { "A" };
                format!("{}{flipped}{}", &l[..at], &l[at + 1..])
            } else {
                l.to_string()
            };
            l + "\n"
        })
        .collect();
    std::fs::write(ledger.path("changed.ndjson"), changed).unwrap();
    std::fs::copy(ledger.path("ledger.keys.db"), ledger.path("third.keys.db")).unwrap();
    let out = ledger
        .run(&[
            "--store",
            "third.db",
            "--key-store",
            "third.keys.db",
            "--master-key",
            "ledger.master.key",
            "import",
            "changed.ndjson",
        ])
        .failed(&["import"]);
    let at_line = format!("line {}: field /data/contact/name", bolt_line + 1);
    assert!(out.stderr.contains(&at_line), "{}", out.stderr);
    assert!(out.stderr.contains("does not open"), "{}", out.stderr);
    assert!(!ledger.path("third.db").exists() || count_events(&ledger.path("third.db")) == 0);

    // Redacted: refused, naming the field; nothing written.
    let out = ledger
        .run(&["--store", "shared.db", "import", "redacted.ndjson"])
        .failed(&["import"]);
    assert!(out.stderr.contains("/data/contact/name"), "{}", out.stderr);
    assert!(out.stderr.contains("withheld"), "{}", out.stderr);
    assert!(!ledger.path("shared.db").exists() || count_events(&ledger.path("shared.db")) == 0);

    // Decrypted, into a fresh ledger: sealed there with its own keys; a key holder reads the
    // same plaintext. (The erased customer's fields stay erased.)
    ledger.ok(&["--store", "fresh.db", "import", "decrypted.ndjson"]);
    let fresh = ledger.ok(&["--store", "fresh.db", "export", "--personal", "decrypted"]);
    let decrypted = std::fs::read_to_string(ledger.path("decrypted.ndjson")).unwrap();
    assert_eq!(strip_recorded(&fresh), strip_recorded(&decrypted));
    let fresh_stored = ledger.ok(&["--store", "fresh.db", "export"]);
    assert!(!fresh_stored.contains(OTHER_CONTACT));
}

/// Each line without its position in the log (`recorded_at` is kept by import; positions of
/// another store are its own).
fn strip_recorded(ndjson: &str) -> Vec<serde_json::Value> {
    ndjson
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("position");
            v
        })
        .collect()
}

fn count_events(store: &Path) -> i64 {
    let conn = Connection::open(store).unwrap();
    conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap_or(0)
}

#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let ledger = Ledger::new();
    ledger.ok(&["forget", "acme-foods", "--reason", "r"]);
    ledger.ok(&["project"]);
    for name in [
        "ledger.db",
        "ledger.master.key",
        "ledger.keys.db",
        "ledger.erasures.ndjson",
        "ledger.read-models.db",
    ] {
        let mode = std::fs::metadata(ledger.path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
}

/// A store as ledgers before sealing wrote it: every event of `ndjson`, personal fields in
/// plaintext (a library ledger without a key store).
fn plaintext_store(path: &Path, ndjson: &[u8]) {
    use pipeline_ledger::store::sqlite::SqliteStore;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(path).unwrap();
        let ledger = pipeline_ledger::ledger::Ledger::new(std::sync::Arc::new(store));
        ledger
            .import(&mut std::io::BufReader::new(ndjson), &|_| {})
            .await
            .unwrap();
    });
}

#[test]
fn a_log_from_before_sealing_is_migrated_and_linked_by_a_signed_statement() {
    let ledger = Ledger::new();
    let decrypted = ledger.ok(&["export", "--personal", "decrypted"]);
    plaintext_store(&ledger.path("old.db"), decrypted.as_bytes());
    let old = ["--store", "old.db"];
    let raw = std::fs::read(ledger.path("old.db")).unwrap();
    assert!(
        contains(&raw, PERSONAL[0].as_bytes()),
        "the old store holds plaintext"
    );

    // `forget` cannot reach plaintext in place, and says so.
    let said = ledger.ok(&[&old[..], &["forget", "bolt-tools", "--reason", "request 3"]].concat());
    assert!(
        said.contains("not erased: 1 personal field(s) stored in plaintext"),
        "{said}"
    );
    assert!(said.contains("migrate-personal-data"), "{said}");
    ledger.ok(&[&old[..], &["rebuild"]].concat());
    let funnel_old = figures(&ledger.ok(&[&old[..], &["funnel", "--json"]].concat()));

    ledger.ok(&["keygen", "--out", "auditor.key"]);
    let migrate = [
        "migrate-personal-data",
        "--to",
        "new.db",
        "--key",
        "auditor.key",
    ];
    let said = ledger.ok(&[&old[..], &migrate[..]].concat());
    assert!(said.contains("1 of erased customers withheld"), "{said}");
    // Every personal field of the demo's leads, acme-foods' five, bolt-tools' one withheld.
    let sealed: u64 = said
        .split("; ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(sealed >= 45, "{said}");

    // The new store: no plaintext in any of its files; the key holder reads acme-foods; the
    // erased customer stays erased; every number is the old one.
    let new = ["--store", "new.db"];
    ledger.ok(&[&new[..], &["rebuild"]].concat());
    assert_eq!(
        figures(&ledger.ok(&[&new[..], &["funnel", "--json"]].concat())),
        funnel_old
    );
    let history = ledger.ok(&[&new[..], &["history", "acme-foods", "--json"]].concat());
    assert!(
        history.contains(PERSONAL[0]) && history.contains(PERSONAL[4]),
        "{history}"
    );
    let history = ledger.ok(&[&new[..], &["history", "bolt-tools", "--json"]].concat());
    assert!(!history.contains(OTHER_CONTACT));
    assert!(history.contains(r#""withheld": "erased""#), "{history}");
    checkpoint_and_vacuum(&ledger.path("new.db"));
    checkpoint_and_vacuum(&ledger.path("new.read-models.db"));
    for (path, bytes) in ledger.files() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("new.") {
            continue;
        }
        for text in PERSONAL.iter().chain([&OTHER_CONTACT]) {
            assert!(!contains(&bytes, text.as_bytes()), "{name} holds {text:?}");
        }
    }

    // The statement links the two heads; each seal holds against its own store.
    let statement = std::fs::read_to_string(ledger.path("new.migration.json")).unwrap();
    let migration: pipeline_ledger::audit::migration::Migration =
        serde_json::from_str(&statement).unwrap();
    assert!(migration.signature_holds());
    assert_eq!(
        migration.statement.from.statement.events,
        migration.statement.to.statement.events
    );
    let mut forged = migration.clone();
    forged.statement.withheld_fields = 0;
    assert!(
        !forged.signature_holds(),
        "a changed statement must not verify"
    );
    let out = ledger.ok(&[&old[..], &["verify", "--seal", "new.from.seal"]].concat());
    assert!(out.contains("holds"), "{out}");
    let out = ledger.ok(&[&new[..], &["verify", "--seal", "new.to.seal"]].concat());
    assert!(out.contains("holds"), "{out}");
    let out = ledger
        .run(&[&new[..], &["verify", "--seal", "new.from.seal"]].concat())
        .failed(&["verify"]);
    assert!(
        out.stdout.contains("does not hold") || out.stdout.contains("identity"),
        "{}",
        out.stdout
    );

    // Into a store that holds events: refused, nothing written.
    let out = ledger
        .run(&[&old[..], &migrate[..]].concat())
        .failed(&["migrate-personal-data"]);
    assert!(out.stderr.contains("already holds"), "{}", out.stderr);
}
