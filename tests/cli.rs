//! Drives the real `pipeline-ledger` binary against a real store in a temporary directory.

mod bin_support;
use assert_cmd::Command;
use bin_support::Output;
use serde_json::Value;
use std::path::{Path, PathBuf};

struct Ledger {
    _dir: tempfile::TempDir,
    store: PathBuf,
}

impl Ledger {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("ledger.db");
        Self { _dir: dir, store }
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Vec<u8>) -> Output {
        let out = Command::cargo_bin("pipeline-ledger")
            .unwrap()
            .env("PIPELINE_LEDGER_STORE", &self.store)
            .args(args)
            .write_stdin(stdin)
            .output()
            .unwrap();
        Output::of(out)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, Vec::new())
    }

    /// Runs and expects success, printing the diagnostics when it fails.
    fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(args)
    }

    fn export(&self) -> String {
        self.ok(&["export"])
    }

    fn event_count(&self) -> usize {
        self.export().lines().count()
    }
}

fn lead(ledger: &Ledger, customer: &str, deal: &str) -> String {
    lead_at(ledger, customer, deal, "2026-01-05T09:00:00Z")
}

/// A lead for `deal` of `customer` that occurred at `occurred_at`.
fn lead_at(ledger: &Ledger, customer: &str, deal: &str, occurred_at: &str) -> String {
    ledger.ok(&[
        "record",
        "lead-sourced",
        "--customer",
        customer,
        "--rep",
        "rep-01",
        "--deal",
        deal,
        "--source",
        "referral",
        "--company",
        "Acme Foods",
        "--contact-name",
        "Li Wei",
        "--occurred-at",
        occurred_at,
    ])
}

const VISIT: [&str; 8] = [
    "--purpose",
    "find needs",
    "--plan",
    "present the product line",
    "--expected",
    "demo booked",
    "--outcome",
    "demo booked",
];

#[test]
fn record_prints_id_revision_and_position_and_history_shows_the_timeline() {
    let ledger = Ledger::new();
    let out = lead(&ledger, "acme", "acme-d1");
    assert!(out.starts_with("recorded "), "{out}");
    assert!(out.contains("revision 0, position 1"), "{out}");
    let mut args = vec![
        "record",
        "first-visit",
        "--customer",
        "acme",
        "--rep",
        "rep-01",
        "--deal",
        "acme-d1",
        "--intent",
        "4",
        "--occurred-at",
        "2026-01-07",
    ];
    args.extend(VISIT);
    let out = ledger.ok(&args);
    assert!(out.contains("revision 1, position 2"), "{out}");

    let table = ledger.ok(&["history", "acme"]);
    assert!(
        table.contains("LeadSourced") && table.contains("FirstVisitMade"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&ledger.ok(&["history", "acme", "--json"])).unwrap();
    let events = json.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["type"], "FirstVisitMade");
    assert_eq!(events[1]["occurred_at"], "2026-01-07T00:00:00Z");
    assert_eq!(events[1]["data"]["visit"]["purpose"], "find needs");
    assert!(events[1]["recorded_at"].as_str().unwrap() > "2026-11");
}

#[test]
fn a_retry_with_the_same_event_id_is_recorded_once() {
    let ledger = Ledger::new();
    let id = "01900000-0000-7000-8000-000000000001";
    let args = [
        "record",
        "lead-sourced",
        "--customer",
        "acme",
        "--rep",
        "rep-01",
        "--deal",
        "d1",
        "--source",
        "web",
        "--company",
        "Acme",
        "--contact-name",
        "Li",
        "--occurred-at",
        "2026-01-05T09:00:00Z",
        "--event-id",
        id,
    ];
    assert!(ledger.ok(&args).starts_with("recorded"));
    assert!(ledger.ok(&args).starts_with("already recorded"));
    assert_eq!(ledger.event_count(), 1);
    // The same id with other content is refused.
    let mut other = args.to_vec();
    other[11] = "Other Corp";
    let out = ledger.run(&other);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("different content"), "{}", out.stderr);
    assert_eq!(ledger.event_count(), 1);
}

#[test]
fn refused_commands_exit_non_zero_say_why_and_write_nothing() {
    let ledger = Ledger::new();
    lead(&ledger, "acme", "acme-d1");
    // Refusals by the ledger exit 1; values the flags cannot parse are usage errors (2).
    let cases: Vec<(Vec<&str>, &str, i32)> = vec![
        (
            vec![
                "record",
                "reopened",
                "--customer",
                "ghost",
                "--rep",
                "rep-01",
                "--deal",
                "x",
                "--reason",
                "r",
            ],
            "customer ghost is unknown",
            1,
        ),
        (
            vec![
                "record",
                "contract",
                "--customer",
                "acme",
                "--rep",
                "rep-01",
                "--deal",
                "acme-d9",
                "--value",
                "10.00 EUR",
                "--term-months",
                "12",
            ],
            "deal acme-d9 is unknown",
            1,
        ),
        (
            vec![
                "record",
                "reassign",
                "--customer",
                "acme",
                "--rep",
                "rep-09",
                "--from",
                "rep-01",
                "--to",
                "rep-01",
                "--reason",
                "r",
            ],
            "different rep",
            1,
        ),
        (
            vec![
                "record",
                "reopened",
                "--customer",
                "acme",
                "--rep",
                "rep-01",
                "--deal",
                "acme-d1",
                "--reason",
                "r",
                "--occurred-at",
                "2999-01-01",
            ],
            "in the future",
            1,
        ),
        (
            vec![
                "record",
                "contract",
                "--customer",
                "acme",
                "--rep",
                "rep-01",
                "--deal",
                "acme-d1",
                "--value",
                "10.001 EUR",
                "--term-months",
                "12",
            ],
            "more decimals",
            2,
        ),
    ];
    for (args, expected, code) in cases {
        let out = ledger.run(&args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    assert_eq!(ledger.event_count(), 1);
}

#[test]
fn contract_on_a_lost_deal_needs_a_reopen_first() {
    let ledger = Ledger::new();
    lead(&ledger, "acme", "d1");
    let contract = [
        "record",
        "contract",
        "--customer",
        "acme",
        "--rep",
        "rep-01",
        "--deal",
        "d1",
        "--value",
        "12500.00 EUR",
        "--term-months",
        "12",
    ];
    ledger.ok(&[
        "record",
        "lost",
        "--customer",
        "acme",
        "--rep",
        "rep-01",
        "--deal",
        "d1",
        "--reason",
        "price",
        "--stage",
        "lead",
    ]);
    let out = ledger.run(&contract);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("record DealReopened"), "{}", out.stderr);
    ledger.ok(&[
        "record",
        "reopened",
        "--customer",
        "acme",
        "--rep",
        "rep-01",
        "--deal",
        "d1",
        "--reason",
        "budget found",
    ]);
    ledger.ok(&contract);
    let json: Value = serde_json::from_str(&ledger.ok(&["history", "acme", "--json"])).unwrap();
    let contract = &json.as_array().unwrap()[3]["data"]["value"];
    assert_eq!(contract["amount_minor"], 1_250_000);
    assert_eq!(contract["currency"], "EUR");
}

fn demo_store(ledger: &Ledger) {
    let out = ledger.ok(&[
        "demo",
        "--customers",
        "60",
        "--seed",
        "3",
        "--until",
        "2026-10-01",
    ]);
    assert!(out.contains("Recorded "), "{out}");
}

#[test]
fn export_then_import_reproduces_the_same_events_in_the_same_order_and_is_idempotent() {
    let source = Ledger::new();
    demo_store(&source);
    let exported = source.export();
    assert!(exported.lines().count() > 200);
    let file = source.dir().join("events.ndjson");
    std::fs::write(&file, &exported).unwrap();

    let target = Ledger::new();
    let out = target.ok(&["import", file.to_str().unwrap()]);
    assert!(out.contains("written"), "{out}");
    assert_eq!(
        target.export(),
        exported,
        "ids, times, revisions and positions survive"
    );
    let again = target.ok(&["import", file.to_str().unwrap()]);
    assert!(again.contains(" 0 written"), "{again}");
    assert_eq!(target.export(), exported);

    // Standard input works too.
    let third = Ledger::new();
    let out = third.run_with_stdin(&["import", "-"], exported.clone().into_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(third.export(), exported);
}

#[test]
fn a_file_with_bad_lines_reports_each_by_number_and_writes_nothing() {
    let source = Ledger::new();
    demo_store(&source);
    let good: Vec<String> = source.export().lines().map(String::from).collect();
    let mut bad = good[..3].join("\n").into_bytes();
    bad.extend(b"\n{\"event_id\": 1\n"); // line 4: malformed
    bad.extend(b"\xff\xfe{}\n"); // line 5: not UTF-8
    bad.extend(
        good[3]
            .replace("\"schema_version\":1", "\"schema_version\":7")
            .as_bytes(),
    ); // 6
    bad.push(b'\n');
    let oversized = good[4].replace(
        "\"rep_id\"",
        &format!("\"notes\":\"{}\",\"rep_id\"", "x".repeat(70_000)),
    );
    bad.extend(oversized.as_bytes()); // line 7
    bad.push(b'\n');
    bad.extend(
        good[5]
            .replace("\"type\":\"", "\"type\":\"Bogus")
            .as_bytes(),
    ); // line 8
    bad.push(b'\n');
    bad.extend(
        good[6]
            .replace("\"customer_id\":\"", "\"customer_id\":\"no ")
            .as_bytes(),
    ); // 9
    bad.push(b'\n');
    let file = source.dir().join("bad.ndjson");
    std::fs::write(&file, &bad).unwrap();

    let target = Ledger::new();
    let out = target.run(&["import", file.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    for (line, says) in [
        (4, "malformed JSON"),
        (5, "not UTF-8"),
        (6, "schema_version"),
        (7, "bytes"),
        (8, "/type"),
        (9, "/customer_id"),
    ] {
        let found = out
            .stderr
            .lines()
            .any(|l| l.contains(&format!("line {line}:")) && l.contains(says));
        assert!(found, "line {line} should say {says:?}:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("line 1:"),
        "good lines are not reported"
    );
    assert_eq!(target.event_count(), 0, "nothing partially written");
}

#[test]
fn an_old_schema_version_is_upcast_when_read() {
    let ledger = Ledger::new();
    lead(&ledger, "acme", "d1");
    let v1 = serde_json::json!({
        "event_id": "01900000-0000-7000-8000-0000000000c1",
        "customer_id": "acme",
        "type": "ContractSigned",
        "schema_version": 1,
        "occurred_at": "2026-02-01T10:00:00Z",
        "recorded_at": "2026-02-01T10:05:00Z",
        "recorded_by": "legacy-crm",
        "data": {"deal_id": "d1", "rep_id": "rep-01", "value": "980000", "currency": "JPY", "term_months": 12}
    });
    let file = ledger.dir().join("v1.ndjson");
    std::fs::write(&file, format!("{v1}\n")).unwrap();
    ledger.ok(&["import", file.to_str().unwrap()]);
    let json: Value = serde_json::from_str(&ledger.ok(&["history", "acme", "--json"])).unwrap();
    let contract = &json.as_array().unwrap()[1];
    assert_eq!(contract["stored_schema_version"], 1);
    assert_eq!(contract["schema_version"], 2);
    assert_eq!(contract["data"]["value"]["amount_minor"], 980_000);
    assert_eq!(contract["data"]["value"]["currency"], "JPY");
    assert_eq!(
        contract["recorded_at"], "2026-02-01T10:05:00Z",
        "kept from the file"
    );
    // The export keeps the event as it was written.
    let exported = ledger.export();
    assert!(exported.contains("\"value\":\"980000\""), "{exported}");
}

#[test]
fn usage_errors_exit_2_and_unknown_customers_in_history_exit_1() {
    let ledger = Ledger::new();
    assert_eq!(ledger.run(&["record", "lead-sourced"]).code, 2);
    assert_eq!(ledger.run(&["no-such-command"]).code, 2);
    ledger.ok(&["init"]);
    let out = ledger.run(&["history", "ghost"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("ghost"), "{}", out.stderr);
}

/// Issue 15: a mistyped id gets the ids it was probably meant to be (the command line only), and
/// a customer in the log but not yet in the read models gets "run `project`".
#[test]
fn an_unknown_customer_gets_a_near_match_or_the_command_that_makes_it_known() {
    let ledger = Ledger::new();
    lead(&ledger, "acme-foods", "d1");
    lead(&ledger, "acme-fools", "d2");
    ledger.ok(&["project"]);
    // One edit from acme-foods, two from acme-fools: only the closest is offered.
    let out = ledger.run(&["customer", "acme-food"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("no customer acme-food was ever recorded; did you mean acme-foods?"),
        "{}",
        out.stderr
    );
    // One edit from each: both, in order.
    let out = ledger.run(&["history", "acme-foo_s"]);
    assert!(
        out.stderr
            .contains("did you mean one of acme-foods, acme-fools?"),
        "{}",
        out.stderr
    );
    let out = ledger.run(&["customer", "nothing-like-it"]);
    assert!(
        out.stderr
            .contains("no customer nothing-like-it was ever recorded")
            && !out.stderr.contains("did you mean"),
        "{}",
        out.stderr
    );
    // Recorded after the read models were brought up to date.
    lead(&ledger, "late-co", "d3");
    let out = ledger.run(&["customer", "late-co"]);
    assert!(
        out.stderr
            .contains("in the log but not in the read models yet")
            && out.stderr.contains("pipeline-ledger project"),
        "{}",
        out.stderr
    );
    // Before its first event, a customer that exists is not "never recorded".
    let out = ledger.run(&["customer", "acme-foods", "--as-of", "2025-12"]);
    assert!(
        out.stderr.contains("had no events by then"),
        "{}",
        out.stderr
    );
}

/// Issue 15: periods as people write them mean the same instants as the dates they stand for.
#[test]
fn periods_are_accepted_wherever_a_time_is() {
    let ledger = Ledger::new();
    lead(&ledger, "acme-foods", "d1");
    let same = |a: &[&str], b: &[&str]| {
        let (x, y) = (ledger.ok(a), ledger.ok(b));
        assert_eq!(x, y, "{a:?} and {b:?} differ");
    };
    same(
        &[
            "funnel", "--json", "--fresh", "--from", "2026-Q1", "--to", "2026-Q1",
        ],
        &[
            "funnel",
            "--json",
            "--fresh",
            "--from",
            "2026-01-01",
            "--to",
            "2026-03-31",
        ],
    );
    same(
        &["pipeline", "--json", "--as-of", "2026-01"],
        &[
            "pipeline",
            "--json",
            "--as-of",
            "2026-01-31T23:59:59.999999Z",
        ],
    );
    same(
        &["pipeline", "--json", "--known-at", "2026"],
        &["pipeline", "--json", "--known-at", "2026-12-31"],
    );
    same(
        &["pipeline", "--json", "--as-of", "2026-W02"],
        &["pipeline", "--json", "--as-of", "2026-01-11"],
    );
    let out = ledger.run(&["funnel", "--from", "2026-Q5"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("a quarter (2024-Q1)"), "{}", out.stderr);
}

#[test]
fn the_demo_refuses_to_overwrite_a_store_that_holds_events() {
    let ledger = Ledger::new();
    lead(&ledger, "acme", "d1");
    let out = ledger.run(&["demo", "--customers", "5"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("already holds events"),
        "{}",
        out.stderr
    );
    assert_eq!(ledger.event_count(), 1);
}

#[test]
fn a_bad_line_after_several_chunks_still_leaves_nothing_written() {
    // More lines than one import chunk, so earlier chunks reach the store's open transaction
    // before the bad line is seen: the transaction must be abandoned, not committed.
    let source = Ledger::new();
    source.ok(&[
        "demo",
        "--customers",
        "2200",
        "--seed",
        "9",
        "--until",
        "2026-10-01",
    ]);
    let mut lines: Vec<String> = source.export().lines().map(String::from).collect();
    assert!(
        lines.len() > pipeline_ledger::ledger::import::IMPORT_CHUNK_LINES + 100,
        "{} lines",
        lines.len()
    );
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("\"recorded_by\":\"", "\"recorded_by\":\" ");
    let file = source.dir().join("late-bad.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();

    let target = Ledger::new();
    let out = target.run(&["import", file.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("line {}:", last + 1)),
        "{}",
        out.stderr
    );
    assert_eq!(
        target.event_count(),
        0,
        "nothing of the earlier chunks is visible"
    );
}

#[test]
fn the_demo_summarises_the_funnel_the_reps_and_the_stalled_deals_on_one_screen() {
    let ledger = Ledger::new();
    let out = ledger.ok(&[
        "demo",
        "--customers",
        "80",
        "--seed",
        "5",
        "--until",
        "2026-10-01",
    ]);
    let events = ledger.event_count();
    assert!(
        out.contains(&format!("The pipeline at log position {events}")),
        "{out}"
    );
    for line in [
        "Win rate",
        "Top reps",
        "Stalled",
        "Lost mostly",
        "pipeline-ledger funnel",
    ] {
        assert!(out.contains(line), "missing {line}:\n{out}");
    }
    // The projection commands read the same store afterwards.
    let funnel = ledger.ok(&["funnel", "--json"]);
    let v: Value = serde_json::from_str(&funnel).unwrap();
    assert_eq!(v["meta"]["position"], serde_json::json!(events));
}

#[test]
fn read_models_live_in_their_own_file_beside_the_store_unless_named() {
    let ledger = Ledger::new();
    lead(&ledger, "c-1", "d-1");
    let out = ledger.ok(&["project"]);
    assert!(out.contains("position 1"), "{out}");
    let beside = ledger.dir().join("ledger.read-models.db");
    let tables = |file: &Path| -> Vec<String> {
        let conn = rusqlite::Connection::open(file).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm_%'")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(
        !tables(&beside).is_empty(),
        "no rm_ tables beside the store"
    );
    assert!(
        tables(&ledger.store).is_empty(),
        "rm_ tables in the log's file"
    );
    // The customer report reads them from there.
    let out = ledger.ok(&["customer", "c-1"]);
    assert!(out.contains("rep-01"), "{out}");
    // `--read-models` puts them anywhere else.
    let elsewhere = ledger.dir().join("reports.db");
    let out = ledger.ok(&["--read-models", elsewhere.to_str().unwrap(), "project"]);
    assert!(out.contains("position 1"), "{out}");
    assert!(!tables(&elsewhere).is_empty());
}

/// Issue 15: the examples every `--help` shows, run in a scratch directory on a store made by
/// the demo, in the order of the story they tell. Examples that never exit or need what is not
/// there are shown but not run; the test prints which it skipped.
#[test]
fn the_examples_in_the_help_run() {
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("pipeline-ledger");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shell = |line: &str| {
        std::process::Command::new("bash")
            .args(["-c", line])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("PIPELINE_LEDGER_STORE", "ledger.db")
            .env_remove("PIPELINE_LEDGER_READ_MODELS")
            .output()
            .unwrap()
    };
    let run = |line: &str| {
        let out = shell(line);
        assert!(
            out.status.success(),
            "{line}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let examples = |command: &str| -> Vec<String> {
        let out = shell(&format!("pipeline-ledger {command} --help"));
        let help = String::from_utf8(out.stdout).unwrap();
        let section = help.split("Examples:").nth(1).unwrap_or_else(|| {
            panic!("pipeline-ledger {command} --help shows no example");
        });
        // Lines ending in a backslash go on below.
        section
            .replace("\\\n", " ")
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("pipeline-ledger") || l.contains("| pipeline-ledger"))
            .map(str::to_string)
            .collect()
    };
    // (why an example is not run, what marks it)
    let not_run = [
        ("runs until stopped", "--follow"),
        ("runs until stopped", " serve "),
        ("reads another program's output", "some-crm-export"),
        ("names an event id of another ledger", "record correct"),
        ("takes minutes", "pipeline-ledger bench"),
        (
            "makes a store of its own, as this test's was made",
            "pipeline-ledger demo",
        ),
    ];
    // The demo writes the store PIPELINE_LEDGER_STORE names.
    run("pipeline-ledger demo --customers 500 --seed 11 --until 2026-02-28T00:00:00Z");
    let mut skipped = Vec::new();
    let mut ran = 0;
    let mut run_examples = |command: &str| {
        for line in examples(command) {
            match not_run.iter().find(|(_, mark)| line.contains(mark)) {
                Some((why, _)) => skipped.push(format!("{line}  ({why})")),
                None => {
                    run(&line);
                    ran += 1;
                }
            }
        }
    };
    for command in [
        "init",
        "record lead-sourced",
        "record first-visit",
        "record demo",
        "record negotiation",
        "record contract",
        "record follow-up",
    ] {
        run_examples(command);
    }
    // The second deal reaches the demo before it is lost.
    run(
        "pipeline-ledger record lead-sourced --customer acme-foods --rep rep-01 --deal d2 \
         --source web --company 'Acme Foods' --contact-name 'Li Wei' --occurred-at 2026-05-12 \
         && pipeline-ledger record first-visit --customer acme-foods --rep rep-01 --deal d2 \
         --purpose p --plan p --expected e --outcome o --intent 3 --occurred-at 2026-05-13 \
         && pipeline-ledger record demo --customer acme-foods --rep rep-01 --deal d2 \
         --purpose p --plan p --expected e --outcome o --occurred-at 2026-05-14",
    );
    for command in [
        "record lost",
        "record reopened",
        "record reassign",
        "record correct",
        "history",
        "project",
        "rebuild",
        "funnel",
        "reps",
        "scorecard",
        "retention",
        "ranking",
        "qualification",
        "customer",
        "pipeline",
        "keygen",
        "seal",
        "export",
        "verify",
        "backup",
        "token create",
        "token list",
        "token revoke",
        "serve",
        "openapi",
        "bench",
        "demo",
    ] {
        run_examples(command);
    }
    // Import last: its examples read what export wrote.
    run("pipeline-ledger export -o events.ndjson");
    run_examples("import");
    // Forget last of all: afterwards acme-foods takes no more personal data.
    run_examples("forget");
    run_examples("migrate-personal-data");
    eprintln!("ran {ran} examples; not run:\n  {}", skipped.join("\n  "));
    assert!(ran >= 30, "only {ran} examples ran");
}

/// Issue 15: `history` shows each event's id, says what an amendment changed (before and after),
/// and takes the time-travel flags, filters and CSV.
#[test]
fn history_shows_ids_filters_and_what_an_amendment_changed() {
    let ledger = Ledger::new();
    let out = lead(&ledger, "acme-foods", "d1");
    let lead_id = out.split_whitespace().nth(1).unwrap().to_string();
    let amend = r#"{"type": "LeadSourced", "data": {"deal_id": "d1", "rep_id": "rep-01",
        "source": "referral", "company": "Acme Foods GmbH", "contact": {"name": "Li Wei"}}}"#;
    ledger.ok(&[
        "record",
        "correct",
        "--customer",
        "acme-foods",
        "--rep",
        "rep-02",
        "--event",
        &lead_id,
        "--reason",
        "company name",
        "--amend",
        amend,
        "--occurred-at",
        "2026-02-01",
    ]);
    let table = ledger.ok(&["history", "acme-foods"]);
    assert!(table.contains(&lead_id), "{table}");
    assert!(
        table.contains(&format!(
            "amends {lead_id} (company: \"Acme Foods\" → \"Acme Foods GmbH\"): company name"
        )),
        "{table}"
    );
    // As it happened on 31 January: the lead, not yet its correction.
    let csv = ledger.ok(&["history", "acme-foods", "--as-of", "2026-01", "--csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with("event,rev,position,occurred_at"),
        "{csv}"
    );
    assert!(
        lines[1].starts_with(&format!("{lead_id},0,1,2026-01-05T09:00:00+00:00")),
        "{csv}"
    );
    // By type and by rep.
    let only = ledger.ok(&["history", "acme-foods", "--type", "EventCorrected", "--csv"]);
    assert_eq!(only.lines().count(), 2, "{only}");
    let by_rep = ledger.ok(&["history", "acme-foods", "--rep", "rep-02", "--csv"]);
    assert!(
        by_rep.lines().count() == 2 && by_rep.contains("EventCorrected"),
        "{by_rep}"
    );
    // As the ledger knew it before anything was recorded: nothing.
    let known = ledger.ok(&["history", "acme-foods", "--known-at", "2026-01-31", "--csv"]);
    assert_eq!(known.lines().count(), 1, "{known}");
    let out = ledger.run(&["history", "acme-foods", "--type", "Nope"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("LeadSourced"), "{}", out.stderr);
}

/// Issue 15: a rate with nothing to divide by has no meaning and is shown as "–", never as 0%
/// (JSON: null); a cohort whose deals are mostly still open is flagged immature.
#[test]
fn rates_without_meaning_show_a_dash_and_young_cohorts_are_immature() {
    let ledger = Ledger::new();
    lead(&ledger, "c-1", "d-1");
    let out = ledger.ok(&["funnel"]);
    let summary = out
        .lines()
        .find(|l| l.starts_with("all "))
        .expect("the cohort row");
    // One open deal: no win rate (0 decided), open share 100%, immature.
    assert!(summary.contains(" – "), "{summary}");
    assert!(!summary.contains(" 0.0%"), "{summary}");
    assert!(summary.ends_with("immature"), "{summary}");
    let json: Value = serde_json::from_str(&ledger.ok(&["funnel", "--json"])).unwrap();
    assert_eq!(json["total"]["cohort"]["win_rate"]["rate"], Value::Null);
    assert_eq!(json["total"]["cohort"]["immature"], Value::Bool(true));
}

/// Issue 15: the customer card agrees with itself: a dormant customer with an open deal says
/// why (dormancy follows the customer's interactions after a win), and an overdue follow-up is
/// flagged with how late it is.
#[test]
fn the_customer_card_explains_dormancy_beside_an_open_deal_and_flags_an_overdue_follow_up() {
    let ledger = Ledger::new();
    lead(&ledger, "c-1", "d-1");
    ledger.ok(&[
        "record",
        "contract",
        "--customer",
        "c-1",
        "--rep",
        "rep-01",
        "--deal",
        "d-1",
        "--value",
        "100.00 EUR",
        "--term-months",
        "12",
        "--contract-ref",
        "C-1",
        "--occurred-at",
        "2026-01-20T09:00:00Z",
    ]);
    ledger.ok(&[
        "record",
        "follow-up",
        "--customer",
        "c-1",
        "--rep",
        "rep-01",
        "--deal",
        "d-1",
        "--kind",
        "care_call",
        "--outcome",
        "running well",
        "--next-due",
        "2026-03-01",
        "--occurred-at",
        "2026-02-01T09:00:00Z",
    ]);
    lead_at(&ledger, "c-1", "d-2", "2026-02-10T09:00:00Z");
    let card = ledger.ok(&["customer", "c-1", "--now", "2026-12-01"]);
    let line = |field: &str| {
        card.lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} on the card:\n{card}"))
            .to_string()
    };
    let state = line("state ");
    assert!(state.contains("dormant: won before"), "{state}");
    assert!(state.contains("no interaction since 2026-02-10"), "{state}");
    assert!(state.contains("open deal d-2 at lead"), "{state}");
    let due = line("next follow-up due");
    assert!(due.contains("2026-03-01 (OVERDUE by 275 days)"), "{due}");
    // Before the due date nothing is flagged, and the customer is not dormant yet.
    let card = ledger.ok(&["customer", "c-1", "--now", "2026-02-20"]);
    assert!(!card.contains("OVERDUE"), "{card}");
    assert!(!card.contains("dormant"), "{card}");
}
