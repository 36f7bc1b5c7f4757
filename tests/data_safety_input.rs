//! Issue 10, input safety: input that is refused or shown correctly, and sums that never wrap.
//! Drives the real binary, as `tests/cli.rs` does; each test names the reproduction it comes from
//! (`shared/repros/data-safety/`).

mod bin_support;
use assert_cmd::Command;
use bin_support::Output;
use std::path::PathBuf;

struct Ledger {
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl Ledger {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("ledger.db");
        Self { dir, store }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::cargo_bin("pipeline-ledger")
            .unwrap()
            .env("PIPELINE_LEDGER_STORE", &self.store)
            .args(args)
            .output()
            .unwrap();
        Output::of(out)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(args)
    }

    /// Runs and expects a refusal whose message contains every one of `needles`.
    #[track_caller]
    fn refused(&self, args: &[&str], needles: &[&str]) -> Output {
        let out = self.run(args);
        assert_ne!(out.code, 0, "{args:?} succeeded\nstdout:\n{}", out.stdout);
        for needle in needles {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: {needle:?} not in the error:\n{}",
                out.stderr
            );
        }
        out
    }

    /// Imports `lines` from a file and returns the outcome.
    fn import(&self, lines: &str) -> Output {
        let path = self.dir.path().join("in.ndjson");
        std::fs::write(&path, lines).unwrap();
        self.run(&["import", path.to_str().unwrap()])
    }

    fn export(&self) -> String {
        self.ok(&["export"])
    }
}

/// A valid `LeadSourced` line for `customer`, with `extra` envelope fields appended.
fn lead_line(customer: &str, id: u32, extra: &str) -> String {
    format!(
        r#"{{"event_id":"0190a5d0-0000-7000-8000-{id:012x}","customer_id":"{customer}","type":"LeadSourced","schema_version":1,"occurred_at":"2025-06-08T16:08:29Z","recorded_by":"rep-02","data":{{"company":"F","contact":{{"name":"N"}},"deal_id":"d1","rep_id":"rep-02","source":"web"}}{extra}}}"#
    )
}

/// import-duplicate-keys-last-wins.sh: a repeated key is refused, naming the key, its JSON
/// pointer and the line; nothing is written.
#[test]
fn import_refuses_repeated_keys() {
    let ledger = Ledger::new();
    let good = lead_line("good", 1, "");
    let repeated = r#"{"event_id":"0190a5d0-0000-7000-8000-0000000000d1","customer_id":"good2","type":"LeadSourced","schema_version":1,"occurred_at":"2025-06-08T16:08:29Z","recorded_by":"rep-02","data":{"company":"Good Co","company":"Evil Co","contact":{"name":"N"},"deal_id":"d1","rep_id":"rep-02","source":"web"},"customer_id":"evil"}"#;
    let out = ledger.import(&format!("{good}\n{repeated}\n"));
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("line 2: field /data: key \"company\" appears more than once"),
        "{}",
        out.stderr
    );
    let envelope = lead_line("good3", 3, r#","customer_id":"evil""#);
    let out = ledger.import(&format!("{envelope}\n"));
    assert!(
        out.stderr
            .contains("line 1: field (line): key \"customer_id\" appears more than once"),
        "{}",
        out.stderr
    );
    assert_eq!(ledger.export(), "");
}

/// Records the lead of `customer` (deal `<customer>-d`) by rep-07.
fn record_lead(ledger: &Ledger, customer: &str, company: &str) -> String {
    let deal = format!("{customer}-d");
    ledger.ok(&[
        "record",
        "lead-sourced",
        "--customer",
        customer,
        "--rep",
        "rep-07",
        "--deal",
        &deal,
        "--source",
        "web",
        "--company",
        company,
        "--contact-name",
        "N",
    ])
}

/// import-future-recorded-at.sh: a `recorded_at` past now plus the clock-skew tolerance is
/// refused, naming the field; one within the tolerance is kept.
#[test]
fn import_refuses_a_recorded_at_in_the_future() {
    let ledger = Ledger::new();
    let future = lead_line("fut", 0xf1, r#","recorded_at":"9999-12-31T23:59:59Z""#);
    let out = ledger.import(&format!("{future}\n"));
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("line 1: field /recorded_at: 9999-12-31 23:59:59 UTC is in the future"),
        "{}",
        out.stderr
    );
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let past = lead_line("ok", 0xf2, &format!(r#","recorded_at":"{soon}""#));
    let out = ledger.import(&format!("{past}\n"));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// record-unknown-currency-and-terminal-escapes.sh: `ZZZ` is not an ISO 4217 currency, on
/// `record` and on import (both paths).
#[test]
fn unknown_currencies_are_refused_naming_the_field() {
    let ledger = Ledger::new();
    record_lead(&ledger, "acme", "Acme");
    let contract = |value: &str| {
        ledger.run(&[
            "record",
            "contract",
            "--customer",
            "acme",
            "--rep",
            "rep-07",
            "--deal",
            "acme-d",
            "--value",
            value,
            "--term-months",
            "12",
        ])
    };
    let out = contract("12.50 ZZZ");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("currency \"ZZZ\" is not an active ISO 4217 currency"),
        "{}",
        out.stderr
    );
    let line = |currency: &str, layout: &str| {
        format!(
            r#"{{"event_id":"0190a5d0-0000-7000-8000-0000000000c1","customer_id":"acme","type":"ContractSigned","schema_version":2,"occurred_at":"2025-06-08T16:08:29Z","recorded_by":"rep-07","data":{{"deal_id":"acme-d","rep_id":"rep-07","term_months":12,{layout}"value":{{"amount_minor":1250,"currency":"{currency}"}}}}}}"#
        )
    };
    // The canonical line would take the fast path; the spaced one takes the full path.
    for layout in ["", " "] {
        let out = ledger.import(&format!("{}\n", line("ZZZ", layout)));
        assert_ne!(out.code, 0, "{}", out.stdout);
        assert!(
            out.stderr.contains("line 1: field /data/value/currency"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(ledger.import(&format!("{}\n", line("EUR", ""))).code, 0);
}

/// `record correct --amend`: every error names the field it is about.
#[test]
fn amend_errors_name_the_field() {
    let ledger = Ledger::new();
    let out = record_lead(&ledger, "acme", "Acme");
    let event_id = out
        .split_whitespace()
        .find(|w| w.len() == 36 && w.chars().filter(|c| *c == '-').count() == 4)
        .unwrap_or_else(|| panic!("no event id in {out:?}"))
        .to_string();
    let amend = |json: &str| {
        ledger.run(&[
            "record",
            "correct",
            "--customer",
            "acme",
            "--rep",
            "rep-07",
            "--event",
            &event_id,
            "--amend",
            json,
            "--reason",
            "typo",
        ])
    };
    let cases = [
        ("[]", "--amend: field (amend): expected an object"),
        (r#"{"data":{}}"#, "--amend: field /type: is missing"),
        (
            r#"{"type":"Nope","data":{}}"#,
            "--amend: field /type: \"Nope\" is not an event type",
        ),
        (
            r#"{"type":"LeadSourced"}"#,
            "--amend: field /data: is missing",
        ),
        (
            r#"{"type":"LeadSourced","data":{},"x":1}"#,
            "--amend: field /x: is not a field",
        ),
        (
            r#"{"type":"LeadSourced","data":{"company":"A","company":"B"}}"#,
            "--amend: field /data: key \"company\" appears more than once",
        ),
        (
            r#"{"type":"LeadSourced","data":{"company":1,"contact":{"name":"N"},"deal_id":"acme-d","rep_id":"rep-07","source":"web"}}"#,
            "--amend: field /data/company:",
        ),
        (
            r#"{"type":"LeadSourced","data":{"contact":{"name":"N"},"deal_id":"acme-d","rep_id":"rep-07","source":"web"}}"#,
            "--amend: field /data: \"company\" is a required property",
        ),
        (
            r#"{"type":"CustomerReassigned","data":{"rep_id":"rep-07","from_rep_id":"rep-07","to_rep_id":"rep-08","reason":"r"}}"#,
            "field /data/correction/replacement/type",
        ),
    ];
    for (json, expected) in cases {
        let out = amend(json);
        assert_ne!(out.code, 0, "{json} accepted");
        assert!(out.stderr.contains(expected), "{json}:\n{}", out.stderr);
    }
}

/// The rep-07 won value per currency of `reps --json`, with extra arguments.
fn won_value(ledger: &Ledger, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["reps", "--rep", "rep-07", "--json"];
    args.extend_from_slice(extra);
    let report: serde_json::Value = serde_json::from_str(&ledger.ok(&args)).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    rows[0]["won_value_minor"].clone()
}

/// won-value-overflow.sh: the repro's contracts (i64::MAX minor units each) are refused at input
/// naming the field; two contracts at the per-event limit sum exactly, live and replayed alike.
#[test]
fn money_sums_never_wrap() {
    let ledger = Ledger::new();
    let contract = |customer: &str, value: &str| {
        let deal = format!("{customer}-d");
        ledger.run(&[
            "record",
            "contract",
            "--customer",
            customer,
            "--rep",
            "rep-07",
            "--deal",
            &deal,
            "--value",
            value,
            "--term-months",
            "1",
        ])
    };
    record_lead(&ledger, "o1", "X");
    let out = contract("o1", "92233720368547758.07 EUR");
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("/data/value/amount_minor"),
        "{}",
        out.stderr
    );
    // At the limit (limits::AMOUNT_MINOR_MAX = 10^16 minor units).
    let at_limit = "100000000000000.00 EUR";
    ledger.ok_contract(contract("o1", at_limit));
    record_lead(&ledger, "o2", "X");
    ledger.ok_contract(contract("o2", at_limit));
    let expected = serde_json::json!({"EUR": 20_000_000_000_000_000i64});
    ledger.ok(&["project"]);
    assert_eq!(won_value(&ledger, &[]), expected, "live");
    assert_eq!(
        won_value(&ledger, &["--at-position", "4"]),
        expected,
        "replay"
    );
}

impl Ledger {
    #[track_caller]
    fn ok_contract(&self, out: Output) {
        assert_eq!(
            out.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
    }
}

/// `--from` later than `--to` is refused, naming both values.
#[test]
fn a_funnel_window_from_after_to_is_refused() {
    let ledger = Ledger::new();
    record_lead(&ledger, "acme", "Acme");
    ledger.refused(
        &["funnel", "--from", "2025-07-01", "--to", "2025-06-01"],
        &[
            "--from 2025-07-01 00:00:00 UTC is later than --to 2025-06-01 23:59:59",
            "the window would be empty",
        ],
    );
    ledger.ok(&["funnel", "--from", "2025-06-01", "--to", "2025-06-01"]);
}

/// record-unknown-currency-and-terminal-escapes.sh: `history` shows control characters escaped
/// in its table; JSON and export carry the text unchanged.
#[test]
fn terminal_escapes_are_shown_escaped_only_in_tables() {
    let ledger = Ledger::new();
    let company = "Acme\x1b[2J\x1b[31mRED";
    record_lead(&ledger, "acme", company);
    let table = ledger.ok(&["history", "acme"]);
    assert!(!table.contains('\x1b'), "{table:?}");
    assert!(table.contains("Acme\\u{1b}[2J\\u{1b}[31mRED"), "{table}");
    let json = ledger.ok(&["history", "acme", "--json"]);
    assert!(json.contains("Acme\\u001b[2J\\u001b[31mRED"), "{json}");
    let exported: serde_json::Value =
        serde_json::from_str(ledger.export().lines().next().unwrap()).unwrap();
    assert_eq!(exported["data"]["company"], company);
}
