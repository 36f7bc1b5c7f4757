//! The benchmark still runs end to end (at a tiny size: CI measures nothing, it only proves the
//! program works and prints every figure).

use assert_cmd::Command;

#[test]
fn the_benchmark_runs_at_a_tiny_size_and_prints_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("pipeline-ledger")
        .unwrap()
        .args([
            "bench",
            "--sizes",
            "1500,3000",
            "--query-samples",
            "3",
            "--appends-per-writer",
            "2",
            "--single-appends",
            "5",
            "--lag-seconds",
            "1",
            "--lag-rate",
            "200",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for figure in [
        "bulk import",
        "64 concurrent writers",
        "one writer",
        "read all, decoded",
        "rebuild all projections",
        "projection lag p99",
        "funnel query p99",
        "customer query p99",
        "rep report p99",
        "rep scorecard p99",
        "retention p99",
        "customer ranking p99",
        "rebuild peak memory",
        "bytes/event",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.contains(figure))
            .unwrap_or_else(|| panic!("no row for {figure}:\n{stdout}"));
        assert!(
            row.split_whitespace()
                .any(|w| w.chars().any(|c| c.is_ascii_digit())),
            "{row}"
        );
    }
    // The datasets are kept for the next run, exactly the size asked for.
    let dataset = std::fs::read_to_string(dir.path().join("events-1500.ndjson")).unwrap();
    assert_eq!(dataset.lines().count(), 1500);
    // Figures that grow with the data show the ratio between the largest and smallest size.
    assert!(stdout.contains("3k/1500"), "{stdout}");
}
