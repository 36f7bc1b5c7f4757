//! The demo command's report over the generator's realistic history, through the binary.

use assert_cmd::Command;

#[test]
fn the_demo_report_prints_funnel_reps_and_stalled_deals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.db");
    let out = Command::cargo_bin("pipeline-ledger")
        .unwrap()
        .arg("--store")
        .arg(&path)
        .args(["demo", "--customers", "30", "--seed", "5", "--full"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for section in [
        "== Funnel by lead source ==",
        "Transitions",
        "== Reps per quarter ==",
        "Stalled deals",
        "computed at log position",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
}
