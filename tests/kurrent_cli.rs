//! The real binary with `--store` pointing at the wire-level KurrentDB double: the demo runs end
//! to end, and the other commands read what it wrote.

mod kurrent_double;
mod serve_support;

use assert_cmd::Command;
use kurrent_double::Double;
use serve_support::ServeProcess;
use std::path::Path;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary off the async threads (the double serves on them).
async fn run(dir: &Path, url: &str, args: &[&str]) -> Run {
    let dir = dir.to_path_buf();
    let url = url.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let out = Command::cargo_bin("pipeline-ledger")
            .unwrap()
            .current_dir(&dir)
            .env_remove("PIPELINE_LEDGER_STORE")
            .env_remove("PIPELINE_LEDGER_READ_MODELS")
            .arg("--store")
            .arg(&url)
            .args(&args)
            .output()
            .unwrap();
        // Reported, never asserted: how long each command took against the double.
        eprintln!("{args:?}: {:.2?}", started.elapsed());
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn ok(args: &[&str], out: &Run) {
    assert_eq!(
        out.code, 0,
        "{args:?} failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end_on_kurrentdb() {
    let double = Double::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = double.url();
    let demo = [
        "demo",
        "--customers",
        "40",
        "--seed",
        "3",
        "--until",
        "2026-10-01",
    ];
    let out = run(dir.path(), &url, &demo).await;
    ok(&demo, &out);
    assert!(
        out.stdout.contains("The pipeline at log position"),
        "{}",
        out.stdout
    );
    let recorded: u64 = out
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("Recorded ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no event count in {}", out.stdout));
    assert!(recorded > 40);
    assert!(double.appends_served() > 0);

    // Everything the demo wrote reads back from the server, in log order.
    let export = run(dir.path(), &url, &["export"]).await;
    ok(&["export"], &export);
    let lines: Vec<&str> = export.stdout.lines().collect();
    assert_eq!(lines.len() as u64, recorded);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let customer = first["customer_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no customer_id in {}", lines[0]))
        .to_string();
    let history = run(dir.path(), &url, &["history", &customer]).await;
    ok(&["history"], &history);
    assert!(history.stdout.contains("LeadSourced"), "{}", history.stdout);

    // The export imports into another server, counted in events (positions there are byte
    // offsets, not counts), and importing it again adds nothing.
    let other = Double::start().await;
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, &export.stdout).unwrap();
    let file = file.to_string_lossy().into_owned();
    let import = run(dir.path(), &other.url(), &["import", &file]).await;
    ok(&["import"], &import);
    assert!(
        import.stdout.contains(&format!(
            "imported {recorded} events: {recorded} written, 0 already"
        )),
        "{}",
        import.stdout
    );
    let again = run(dir.path(), &other.url(), &["import", &file]).await;
    ok(&["import again"], &again);
    assert!(
        again
            .stdout
            .contains(&format!("0 written, {recorded} already present")),
        "{}",
        again.stdout
    );

    // A server that holds ledger events is never overwritten by the demo.
    let again = run(dir.path(), &url, &demo).await;
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("already holds ledger events"),
        "{}",
        again.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_error() {
    let mut double = Double::start().await;
    double.pull_plug().await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &double.url(), &["init"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("cannot be reached"), "{}", out.stderr);
}

/// Issue 16: an operator hard-deletes one customer's stream. `export`, `project` and the
/// reports go on with the other customers and say, on standard error, which stream was deleted;
/// `record` for that customer fails with an error that says so and that nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_deleted_customer_stream_stops_no_reader() {
    let double = Double::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = double.url();
    let demo = [
        "demo",
        "--customers",
        "12",
        "--seed",
        "5",
        "--until",
        "2026-10-01",
    ];
    ok(&demo, &run(dir.path(), &url, &demo).await);
    let export = run(dir.path(), &url, &["export"]).await;
    ok(&["export"], &export);
    let before = export.stdout.lines().count();
    let first: serde_json::Value =
        serde_json::from_str(export.stdout.lines().next().unwrap()).unwrap();
    let customer = first["customer_id"].as_str().unwrap().to_string();
    double.tombstone(&format!("customer-{customer}"));

    // The customer's events stay in `$all` until a scavenge, but are left out of the export, as
    // a read of the stream leaves them out; the tombstone is not an event, and the warnings
    // name the stream.
    let own = export
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("\"customer_id\":\"{customer}\"")))
        .count();
    assert!(own > 0);
    let export = run(dir.path(), &url, &["export"]).await;
    ok(&["export after the tombstone"], &export);
    assert_eq!(export.stdout.lines().count(), before - own);
    assert!(
        !export
            .stdout
            .contains(&format!("\"customer_id\":\"{customer}\""))
    );
    assert!(
        export.stderr.contains(&format!(
            "warning: stream customer-{customer} was hard-deleted"
        )) && export
            .stderr
            .contains(&format!("{own} of its earlier events were left out")),
        "{}",
        export.stderr
    );
    // Rebuilt read models agree: the customer is not in them.
    ok(&["rebuild"], &run(dir.path(), &url, &["rebuild"]).await);
    let project = run(dir.path(), &url, &["project"]).await;
    ok(&["project"], &project);
    assert!(project.stdout.contains("lag 0"), "{}", project.stdout);
    let card = run(dir.path(), &url, &["customer", &customer]).await;
    assert_ne!(card.code, 0, "{}", card.stdout);
    let funnel = run(dir.path(), &url, &["funnel", "--json"]).await;
    ok(&["funnel"], &funnel);

    let record = [
        "record",
        "lead-sourced",
        "--customer",
        &customer,
        "--rep",
        "rep-01",
        "--deal",
        "d-new",
        "--source",
        "web",
        "--company",
        "Again",
        "--contact-name",
        "N",
    ];
    let refused = run(dir.path(), &url, &record).await;
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("hard-deleted") && refused.stderr.contains("nothing was written"),
        "{}",
        refused.stderr
    );
}

/// Issue 16: one customer's 2,000 events in one import, under a server that refuses appends
/// over 1 MiB: the backend sends them in parts on the stream's revision chain; every event is
/// there, in order, once; importing again adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_one_long_history_fits_the_servers_append_size() {
    let double = Double::start().await;
    double.limit_append_size(Some(1024 * 1024));
    let dir = tempfile::tempdir().unwrap();
    let url = double.url();
    let notes = "n".repeat(400);
    let lines: Vec<String> = (0..2000)
        .map(|n| {
            format!(
                r#"{{"event_id":"00000000-0000-4000-8000-{n:012}","customer_id":"long-history","type":"LeadSourced","schema_version":1,"occurred_at":"2026-01-01T00:00:00Z","recorded_at":"2026-01-01T01:00:00Z","recorded_by":"importer","data":{{"deal_id":"d{n}","rep_id":"rep-a","source":"web","company":"Long","contact":{{"name":"N"}},"notes":"{notes}"}}}}"#
            )
        })
        .collect();
    let file = dir.path().join("long.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let file = file.to_string_lossy().into_owned();
    let before = double.appends_served();
    let import = run(dir.path(), &url, &["import", &file]).await;
    ok(&["import"], &import);
    assert!(
        import.stdout.contains("imported 2000 events: 2000 written"),
        "{}",
        import.stdout
    );
    assert!(
        double.appends_served() - before >= 2,
        "about 1.3 MB went in more than one append"
    );
    let export = run(dir.path(), &url, &["export"]).await;
    ok(&["export"], &export);
    let ids: Vec<String> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"].to_string())
        .collect();
    let expected: Vec<String> = (0..2000)
        .map(|n| format!("\"00000000-0000-4000-8000-{n:012}\""))
        .collect();
    assert_eq!(ids, expected);
    let again = run(dir.path(), &url, &["import", &file]).await;
    ok(&["import again"], &again);
    assert!(
        again.stdout.contains("0 written, 2000 already present"),
        "{}",
        again.stdout
    );
}

/// Issue 16: `record --event-id` whose commit timed out (written, unconfirmed) says the outcome
/// is unknown and to retry with the same id; the retry reports the original, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_retried_after_an_unknown_outcome_reports_the_original_once() {
    let double = Double::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = double.url();
    let id = "0197dfdd-0000-7000-8000-000000000042";
    let record = [
        "record",
        "lead-sourced",
        "--customer",
        "unsure",
        "--rep",
        "rep-01",
        "--deal",
        "d1",
        "--source",
        "web",
        "--company",
        "Unsure",
        "--contact-name",
        "N",
        "--event-id",
        id,
    ];
    // The store's identity is written on first use; the timeout is for the record's append.
    ok(&["init"], &run(dir.path(), &url, &["init"]).await);
    double.time_out_commits(1);
    let first = run(dir.path(), &url, &record).await;
    assert_ne!(first.code, 0, "{}", first.stdout);
    assert!(
        first.stderr.contains("may or may not have been written")
            && first.stderr.contains("same event ids"),
        "{}",
        first.stderr
    );
    let retry = run(dir.path(), &url, &record).await;
    ok(&record, &retry);
    assert!(
        retry.stdout.starts_with(&format!("already recorded {id}")),
        "{}",
        retry.stdout
    );
    let export = run(dir.path(), &url, &["export"]).await;
    ok(&["export"], &export);
    assert_eq!(export.stdout.lines().count(), 1);
}

/// A `serve` process against the double.
fn serve(dir: &Path, store: &str) -> ServeProcess {
    serve_with_stderr(dir, store, std::process::Stdio::null())
}

/// A `serve` process against the double, its standard error to `stderr`.
fn serve_with_stderr(dir: &Path, store: &str, stderr: std::process::Stdio) -> ServeProcess {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pipeline-ledger"));
    command
        .current_dir(dir)
        .env_remove("PIPELINE_LEDGER_STORE")
        .env_remove("PIPELINE_LEDGER_READ_MODELS")
        .args(["--store", store, "serve", "--listen", "127.0.0.1:0"])
        .stderr(stderr);
    ServeProcess::spawn(command)
}

/// Issue 16: a customer's stream hard-deleted while `serve` follows the log. The runner goes
/// on, and the server says on standard error that its read models keep the deleted events
/// until a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tells_of_a_stream_deleted_while_it_followed_the_log() {
    let double = Double::start().await;
    let url = double.url();
    let dir = tempfile::tempdir().unwrap();
    let args = ["token", "create", "--role", "writer", "--name", "crm-sync"];
    let out = run(dir.path(), &url, &args).await;
    ok(&args, &out);
    let writer = out.stdout.trim().to_string();
    let args = ["token", "create", "--role", "reader", "--name", "ops"];
    let out = run(dir.path(), &url, &args).await;
    ok(&args, &out);
    let reader = out.stdout.trim().to_string();
    let log = dir.path().join("serve.stderr");
    let stderr = std::fs::File::create(&log).unwrap();
    let (serve_dir, store) = (dir.path().to_path_buf(), url.clone());
    let server =
        tokio::task::spawn_blocking(move || serve_with_stderr(&serve_dir, &store, stderr.into()))
            .await
            .unwrap();
    let http = reqwest::Client::new();
    let lead = |company: &str| {
        serde_json::json!({"type": "LeadSourced", "data": {"company": company,
            "contact": {"name": "N"}, "deal_id": "d1", "rep_id": "rep-01", "source": "referral"}})
    };
    let append = |customer: String| {
        let (http, url, writer, body) = (
            http.clone(),
            server.url.clone(),
            writer.clone(),
            lead(&customer),
        );
        async move {
            let response = http
                .post(format!("{url}/v1/customers/{customer}/events"))
                .bearer_auth(&writer)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201, "{:?}", response.text().await);
        }
    };
    append("acme".to_string()).await;
    // The runner has projected the customer before its stream is deleted.
    let started = std::time::Instant::now();
    while http
        .get(format!("{}/v1/customers/acme/report", server.url))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(started.elapsed().as_secs() < 30, "acme was never projected");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    double.tombstone("customer-acme");
    let started = std::time::Instant::now();
    let mut others = 0;
    let told = loop {
        others += 1;
        append(format!("beta-{others}")).await;
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("keep them until `rebuild`") || started.elapsed().as_secs() > 30 {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(
        told.contains("warning: stream customer-acme was deleted")
            && told.contains("keep them until `rebuild`"),
        "{told}"
    );
}

/// Two servers on one cluster share the grants (kept in the cluster, not on a host) and the log:
/// what a writer appends through one, an auditor reads through the other, and a token revoked
/// on the command line is refused by both within the refresh bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_cluster_share_tokens_and_the_log() {
    let double = Double::start().await;
    let url = double.url();
    let (dir_one, dir_two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let create = |role: &'static str, name: &'static str| {
        let (dir, url) = (dir_one.path().to_path_buf(), url.clone());
        async move {
            let args = ["token", "create", "--role", role, "--name", name];
            let out = run(&dir, &url, &args).await;
            ok(&args, &out);
            out.stdout.trim().to_string()
        }
    };
    let writer = create("writer", "crm-sync").await;
    let auditor = create("auditor", "audit").await;
    let (one_dir, two_dir, store) = (
        dir_one.path().to_path_buf(),
        dir_two.path().to_path_buf(),
        url.clone(),
    );
    let (one, two) =
        tokio::task::spawn_blocking(move || (serve(&one_dir, &store), serve(&two_dir, &store)))
            .await
            .unwrap();
    let http = reqwest::Client::new();
    let lead = serde_json::json!({"type": "LeadSourced", "data": {"company": "Acme", "contact": {"name": "Li Wei"},
        "deal_id": "acme-d1", "rep_id": "rep-01", "source": "referral"}});
    let appended = http
        .post(format!("{}/v1/customers/acme/events", one.url))
        .bearer_auth(&writer)
        .json(&lead)
        .send()
        .await
        .unwrap();
    assert_eq!(appended.status(), 201, "{:?}", appended.text().await);
    let history: serde_json::Value = http
        .get(format!("{}/v1/customers/acme/history", two.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history[0]["recorded_by"], "crm-sync", "{history}");
    let args = ["token", "revoke", "crm-sync"];
    ok(&args, &run(dir_one.path(), &url, &args).await);
    let bound = std::time::Duration::from_secs(pipeline_ledger::limits::ACCESS_REFRESH_SECONDS + 5);
    for server in [&one, &two] {
        let started = std::time::Instant::now();
        loop {
            let status = http
                .get(format!("{}/v1/session", server.url))
                .bearer_auth(&writer)
                .send()
                .await
                .unwrap()
                .status();
            if status == 401 {
                break;
            }
            assert!(
                started.elapsed() < bound,
                "{} still accepts a revoked token",
                server.url
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
