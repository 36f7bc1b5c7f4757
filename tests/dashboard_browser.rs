//! The dashboard in a real browser. The real binary serves a demo store; a real headless
//! Chromium, driven through chromedriver with fantoccini, signs in through the page's form and
//! opens every page. The test checks what a person would see against the API:
//!
//! - every figure on a page (`data-field`) shows the value at that path of the API's JSON for
//!   the same query (`data-value`), and each page has some;
//! - the as-of date picker changes the figures, to the API's `?as_of=` answer;
//! - the browser's console has no error (a Content-Security-Policy violation is one), but the
//!   refusals the dashboard expects (401 before signing in, 403 on a reader's history);
//! - nothing is wider than the viewport at 1280 px (desktop) and 768 px (tablet), but inside the
//!   tables' own scrolling wrappers (`.table-wrap`);
//! - a producer's free text that is markup (a company named `<img … onerror=…>`) is shown as
//!   text.
//!
//! With `SCREENSHOTS_DIR=dir` it saves a full-page PNG of every page at both widths
//! (`scripts/screenshots.sh`). Chromium and chromedriver come from Debian's packages
//! (`scripts/install-test-deps.sh`); without them the test fails and says so.

use base64::Engine as _;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pipeline-ledger");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a process may take to start, and a page to render.
const WAIT_SECONDS_MAX: u64 = 30;
/// How often a wait looks again.
const POLL_MILLIS: u64 = 50;
/// How long a stopped process may take to exit before it is killed.
const STOP_SECONDS_MAX: u64 = 5;
/// Customers in the demo store: enough for every table and chart to have rows, small enough to
/// generate in a second.
const DEMO_CUSTOMERS: &str = "120";
/// How far before the store's latest event the as-of check looks.
const AS_OF_DAYS_BACK: i64 = 180;
/// The viewport widths every page must fit: a desktop screen and a tablet.
const WIDTHS_PX: [u32; 2] = [1280, 768];
const HEIGHT_PX: u32 = 900;
/// Screenshots taller than this are cut (a page that long is a finding of its own).
const SCREENSHOT_HEIGHT_PX_MAX: u64 = 12_000;
/// Mismatches listed in a failure message.
const LISTED_MAX: usize = 25;

/// The company name of the escaping check: markup that would run a script if parsed as HTML.
const MARKUP_COMPANY: &str = "<img src=x onerror=alert(1)>";
/// The customer the escaping check creates.
const MARKUP_CUSTOMER: &str = "zz-markup-check";

// ---------- Processes ----------

/// The processes the test started. Each runs in a process group of its own, killed whole when
/// the guard is dropped, so that chromedriver's Chromium and its helpers go too, whether the
/// test passed or panicked. On a panic their logs are printed.
#[derive(Default)]
struct Processes {
    started: Vec<(&'static str, Child, PathBuf)>,
}

impl Processes {
    /// Starts `command` (its standard output as the caller set it) with its standard error
    /// into `log`.
    fn spawn(&mut self, name: &'static str, mut command: Command, log: PathBuf) -> &mut Child {
        let file = std::fs::File::create(&log).unwrap();
        command.process_group(0).stdin(Stdio::null()).stderr(file);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.started.push((name, child, log));
        &mut self.started.last_mut().unwrap().1
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (name, child, log) in self.started.iter_mut().rev() {
            let group = -(child.id() as i32);
            // SAFETY: kill(2) with a negative pid signals the process group this test created
            // for the child (process_group(0) above); it touches no memory.
            unsafe { libc::kill(group, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(STOP_SECONDS_MAX);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(POLL_MILLIS));
            }
            // Whatever is left of the group (a Chromium helper that outlived its parent).
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
            let _ = child.wait();
            if std::thread::panicking() {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- the last lines of {name}'s log, newest first:");
                for line in tail {
                    eprintln!("    {line}");
                }
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the binary to completion; its standard output, or a panic with both outputs.
fn ledger(store: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn token(store: &Path, role: &str) -> String {
    let name = format!("browser-test-{role}");
    let out = ledger(store, &["token", "create", "--role", role, "--name", &name]);
    out.split_whitespace()
        .find(|w| w.starts_with("plt_"))
        .unwrap_or_else(|| out.trim())
        .to_string()
}

/// Starts `serve` on a free port; its URL once it says it listens.
fn serve(processes: &mut Processes, store: &Path, log: PathBuf) -> String {
    let mut command = Command::new(BIN);
    command
        .arg("--store")
        .arg(store)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    let child = processes.spawn("pipeline-ledger serve", command, log);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Reads every line, so that the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(WAIT_SECONDS_MAX))
        .expect("serve did not say `listening on <url>`")
}

/// Polls `url` until it answers 200; its JSON.
async fn wait_for_ok(http: &reqwest::Client, url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(WAIT_SECONDS_MAX);
    loop {
        if let Ok(res) = http.get(url).send().await
            && res.status().is_success()
        {
            return res.json().await.unwrap_or(Value::Null);
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer 200 in time"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MILLIS)).await;
    }
}

/// Fails, saying how to install them, when Chromium or chromedriver is missing.
fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard's browser test needs {} (Debian's chromium and chromium-driver): \
         run scripts/install-test-deps.sh",
        missing.join(" and ")
    );
}

// ---------- WebDriver ----------

/// A command of chromedriver's own under the session (`se/log`, `goog/cdp/execute`).
#[derive(Debug)]
struct SessionCommand {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or(""), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// A Chromium session through chromedriver, headless, with an empty profile of its own.
async fn browser(chromedriver: &str, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--lang=en-US",
        &format!("--window-size={},{HEIGHT_PX}", WIDTHS_PX[0]),
        &format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = Capabilities::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(chromedriver)
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"))
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

/// Marks the page as stale, so that [`wait_ready`] waits for the render an action starts
/// rather than seeing the previous page's "1".
async fn before_action(c: &Client) {
    js(c, "document.body.dataset.ready = 'stale'").await;
}

/// Waits until the page whose root is `#page-<page>` has rendered (`body[data-ready="1"]`).
async fn wait_ready(c: &Client, page: &str) {
    let deadline = Instant::now() + Duration::from_secs(WAIT_SECONDS_MAX);
    let probe = format!(
        "const e = document.querySelector('#main .error:not([hidden])'); \
         return [document.body.dataset.ready, !!document.getElementById('page-{page}'), \
         e ? e.textContent : null, location.hash]"
    );
    loop {
        let state = js(c, &probe).await;
        let ready = state[0].as_str().unwrap_or("");
        assert_ne!(ready, "error", "#page-{page} shows an error: {state}");
        if ready == "1" && state[1] == json!(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "#page-{page} was not ready within {WAIT_SECONDS_MAX} s: [data-ready, root, error, hash] = {state}"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MILLIS)).await;
    }
}

// ---------- The browser's console ----------

/// What the browser logged, taken out of chromedriver's buffer; each call returns the new
/// entries only.
async fn console(c: &Client) -> Vec<Value> {
    let log = c
        .issue_cmd(SessionCommand {
            path: "se/log",
            body: json!({ "type": "browser" }),
        })
        .await
        .unwrap_or_else(|e| panic!("chromedriver gave no browser log: {e}"));
    log.as_array().cloned().unwrap_or_default()
}

/// Asserts that the console has no error since the last look, but the refusals `expected`
/// (a path and its status) that the dashboard answers by design.
async fn assert_console_clean(c: &Client, step: &str, expected: &[(&str, u16)]) {
    let errors: Vec<String> = console(c)
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .filter(|m| {
            !expected.iter().any(|(path, status)| {
                m.contains(path) && m.contains(&format!("status of {status} "))
            })
        })
        .collect();
    assert!(
        errors.is_empty(),
        "{step}: the browser's console has errors:\n{}",
        errors.join("\n")
    );
}

// ---------- Figures ----------

/// A figure as the page shows it: `data-field`, `data-value`, the document it is from.
#[derive(Debug, Deserialize)]
struct Figure {
    field: String,
    value: Option<String>,
    doc: Option<String>,
    text: String,
}

async fn figures(c: &Client) -> Vec<Figure> {
    let found = js(
        c,
        "return Array.from(document.querySelectorAll('[data-field]')).map((e) => { \
           const d = e.closest('[data-doc]'); \
           return { field: e.dataset.field, value: e.getAttribute('data-value'), \
                    doc: d ? d.dataset.doc : null, text: e.textContent }; })",
    )
    .await;
    serde_json::from_value(found).unwrap()
}

/// The value at a dot-separated path (array indexes as numbers).
fn at_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// Whether `shown` (a `data-value`) is `json`: numbers as numbers, null as "".
fn shows(json: &Value, shown: &str) -> bool {
    match json {
        Value::Null => shown.is_empty(),
        Value::Number(n) => shown.parse::<f64>().ok() == n.as_f64(),
        Value::String(s) => s == shown,
        Value::Bool(b) => shown == b.to_string(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// Compares every figure on the page with the API's documents (`docs`: by the figure's
/// `data-doc`; `None` for pages of one document). Returns how many were compared, after
/// asserting that all match and that there was at least one.
async fn assert_figures(c: &Client, what: &str, docs: &[(Option<&str>, &Value)]) -> usize {
    let shown = figures(c).await;
    let mut wrong = Vec::new();
    for f in &shown {
        let Some((_, doc)) = docs.iter().find(|(d, _)| *d == f.doc.as_deref()) else {
            wrong.push(format!("{} is in no known document ({:?})", f.field, f.doc));
            continue;
        };
        match (at_path(doc, &f.field), &f.value) {
            (None, _) => wrong.push(format!("{}: not in the API's JSON", f.field)),
            (Some(_), None) => wrong.push(format!("{}: has no data-value", f.field)),
            (Some(json), Some(value)) if !shows(json, value) => wrong.push(format!(
                "{}: the page says {value:?} (shown as {:?}), the API {json}",
                f.field, f.text
            )),
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: {} of {} figures differ from the API:\n{}",
        wrong.len(),
        shown.len(),
        wrong[..wrong.len().min(LISTED_MAX)].join("\n")
    );
    assert!(!shown.is_empty(), "{what}: the page shows no figure");
    shown.len()
}

/// The figures as `field → data-value`, to tell two renders apart.
async fn values(c: &Client) -> std::collections::BTreeMap<String, String> {
    figures(c)
        .await
        .into_iter()
        .map(|f| (f.field, f.value.unwrap_or_default()))
        .collect()
}

// ---------- Layout and screenshots ----------

/// Sets the viewport (not the window) to `width` × [`HEIGHT_PX`].
async fn set_viewport(c: &Client, width: u32) {
    c.set_window_size(width, HEIGHT_PX).await.unwrap();
    let inner = js(c, "return [window.innerWidth, window.innerHeight]").await;
    let (w, h) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
    if (w, h) != (i64::from(width), i64::from(HEIGHT_PX)) {
        let (dw, dh) = (i64::from(width) - w, i64::from(HEIGHT_PX) - h);
        let size = |base: u32, d: i64| u32::try_from(i64::from(base) + d).unwrap();
        c.set_window_size(size(width, dw), size(HEIGHT_PX, dh))
            .await
            .unwrap();
    }
    let w = js(c, "return window.innerWidth").await;
    assert_eq!(
        w,
        json!(width),
        "the viewport could not be set to {width} px"
    );
}

/// The elements whose right edge is past the viewport, outside a scrolling table wrapper.
const OVERFLOW_JS: &str = "
const vw = document.documentElement.clientWidth;
const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
  + (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
const wide = Array.from(document.querySelectorAll('body *'))
  .filter((e) => e.getBoundingClientRect().right > vw + 1 && !e.closest('.table-wrap'))
  .map((e) => `${name(e)} right=${Math.round(e.getBoundingClientRect().right)} \"${(e.textContent || '').trim().slice(0, 40)}\"`);
if (document.documentElement.scrollWidth > vw + 1) wide.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${vw}`);
return wide;";

/// How far each table that scrolls sideways is wider than its wrapper (px), by its section's
/// title: told, not asserted (a wide table may scroll; the page may not).
const SCROLLING_JS: &str = "
return Array.from(document.querySelectorAll('.table-wrap'))
  .filter((w) => w.scrollWidth > w.clientWidth + 1)
  .map((w) => { const s = w.closest('section'); const h = s && s.querySelector('h2');
    return `${h ? h.textContent.replace(/\\s+i$/, '') : '?'}: +${w.scrollWidth - w.clientWidth}`; });";

/// At each width: nothing wider than the viewport, and a screenshot when asked for.
async fn check_layout(c: &Client, page: &str, shots: Option<&Path>) {
    for width in WIDTHS_PX {
        set_viewport(c, width).await;
        let wide = js(c, OVERFLOW_JS).await;
        let wide = wide.as_array().unwrap();
        assert!(
            wide.is_empty(),
            "{page} at {width} px: {} elements are wider than the viewport:\n{}",
            wide.len(),
            wide.iter()
                .take(LISTED_MAX)
                .map(|w| w.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let scrolling = js(c, SCROLLING_JS).await;
        if scrolling.as_array().is_some_and(|s| !s.is_empty()) {
            eprintln!("{page} at {width} px: tables that scroll sideways: {scrolling}");
        }
        if let Some(dir) = shots {
            screenshot(c, &dir.join(format!("{page}-{width}.png"))).await;
        }
    }
    set_viewport(c, WIDTHS_PX[0]).await;
}

/// A PNG of the whole page, not only the viewport (through the DevTools protocol).
async fn screenshot(c: &Client, file: &Path) {
    let size = js(
        c,
        "const d = document.documentElement; return [d.scrollWidth, d.scrollHeight, window.innerWidth]",
    )
    .await;
    // The capture lays the page out as tall as its clip, without a vertical scrollbar: the
    // whole viewport's width, not only the scrolled element's.
    let width = size[0].as_u64().unwrap().max(size[2].as_u64().unwrap());
    let height = size[1].as_u64().unwrap().min(SCREENSHOT_HEIGHT_PX_MAX);
    let shot = c
        .issue_cmd(SessionCommand {
            path: "goog/cdp/execute",
            body: json!({ "cmd": "Page.captureScreenshot", "params": {
                "format": "png", "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
            }}),
        })
        .await
        .unwrap_or_else(|e| panic!("no screenshot of {}: {e}", file.display()));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    std::fs::write(file, png).unwrap();
}

// ---------- The API, as the test's own client ----------

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, token: &str, path: &str) -> Value {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status}\n{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// `YYYY-MM-DD`, `days` before the RFC 3339 time `t`.
fn days_before(t: &str, days: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(t).unwrap();
    (t - chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

// ---------- The test ----------

/// What every step shares.
struct Run<'a> {
    c: &'a Client,
    api: &'a Api,
    reader: &'a str,
    shots: Option<&'a Path>,
    /// Figures compared per page, in the order visited.
    compared: Vec<(String, usize)>,
}

impl Run<'_> {
    /// Compares the page with the API, checks its layout and the console.
    async fn check_page(&mut self, name: &str, docs: &[(Option<&str>, &Value)]) {
        let n = assert_figures(self.c, name, docs).await;
        self.compared.push((name.to_string(), n));
        let file: String = name
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' {
                    ch
                } else {
                    '-'
                }
            })
            .collect();
        check_layout(self.c, &file, self.shots).await;
        assert_console_clean(self.c, name, &[]).await;
    }

    /// The API's answer to the query the page's address holds (`#/page?query`).
    async fn api_for_view(&self, path: &str) -> Value {
        let hash = js(self.c, "return location.hash").await;
        let query = hash
            .as_str()
            .unwrap()
            .split_once('?')
            .map_or("", |(_, q)| q);
        let sep = if query.is_empty() { "" } else { "?" };
        self.api
            .get(self.reader, &format!("{path}{sep}{query}"))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_apis_figures_fits_the_screen_and_escapes_free_text() {
    require_browser();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("ledger.db");
    ledger(&store, &["demo", "--customers", DEMO_CUSTOMERS]);
    let reader = token(&store, "reader");
    let auditor = token(&store, "auditor");
    let writer = token(&store, "writer");

    // Declared before the processes, so that it is removed after Chromium has stopped.
    let profile = tempfile::tempdir().unwrap();
    let mut processes = Processes::default();
    let base = serve(&mut processes, &store, dir.path().join("serve.log"));
    let port = free_port();
    let mut driver = Command::new(CHROMEDRIVER);
    driver.arg(format!("--port={port}")).stdout(Stdio::null());
    processes.spawn("chromedriver", driver, dir.path().join("chromedriver.log"));
    let http = reqwest::Client::new();
    wait_for_ok(&http, &format!("{base}/readyz")).await;
    let driver_url = format!("http://127.0.0.1:{port}");
    wait_for_ok(&http, &format!("{driver_url}/status")).await;

    let shots = std::env::var_os("SCREENSHOTS_DIR").map(PathBuf::from);
    if let Some(d) = &shots {
        std::fs::create_dir_all(d).unwrap();
    }
    let c = browser(&driver_url, profile.path()).await;
    let api = Api { http, base };
    let mut run = Run {
        c: &c,
        api: &api,
        reader: &reader,
        shots: shots.as_deref(),
        compared: Vec::new(),
    };

    sign_in(&run, &reader, "reader").await;
    let (funnel, pipeline, customer) = reports_pages(&mut run).await;
    as_of_changes_the_figures(&mut run, &funnel, &pipeline).await;
    sign_out(&run).await;
    sign_in(&run, &auditor, "auditor").await;
    customer_with_history(&mut run, &customer, &auditor).await;
    free_text_is_shown_as_text(&mut run, &store, &writer, &auditor).await;

    let compared = std::mem::take(&mut run.compared);
    c.close().await.unwrap();
    drop(processes);
    let mut summary = String::new();
    for (page, n) in &compared {
        let _ = write!(summary, "{page}: {n}; ");
    }
    eprintln!(
        "dashboard_browser: figures compared with the API per page: {summary}in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Signs in through the page's form; the page then names the token's role.
async fn sign_in(run: &Run<'_>, token: &str, role_name: &str) {
    let c = run.c;
    c.goto(&format!("{}/", run.api.base)).await.unwrap();
    wait_ready(c, "login").await;
    // Before signing in, the page asks who is signed in and is told 401: by design.
    assert_console_clean(c, "the login page", &[("/v1/session", 401)]).await;
    check_layout(c, "login", run.shots).await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    before_action(c).await;
    click(c, "form.login button[type=submit]").await;
    wait_ready(c, "funnel").await;
    let role = js(
        c,
        "return document.querySelector('#session .role').textContent",
    )
    .await;
    assert_eq!(role, json!(role_name), "the role shown after signing in");
}

async fn sign_out(run: &Run<'_>) {
    before_action(run.c).await;
    click(run.c, "#session button.link").await;
    wait_ready(run.c, "login").await;
}

/// The funnel (all deals, by source, one group's detail), the reps and the pipeline, reached
/// through the page's own controls and navigation, then a customer the pipeline links to.
/// Returns the funnel's and the pipeline's JSON and the customer's id.
async fn reports_pages(run: &mut Run<'_>) -> (Value, Value, String) {
    let c = run.c;
    let funnel = run.api_for_view("/v1/reports/funnel").await;
    run.check_page("funnel", &[(None, &funnel)]).await;

    click(c, "#f-by option[value=source]").await;
    before_action(c).await;
    click(c, "#page-funnel form.controls button[type=submit]").await;
    wait_ready(c, "funnel").await;
    let by_source = run.api_for_view("/v1/reports/funnel").await;
    assert_eq!(
        by_source["params"]["by"], "source",
        "the funnel's form asked by source"
    );
    assert!(!by_source["groups"].as_array().unwrap().is_empty());
    run.check_page("funnel by source", &[(None, &by_source)])
        .await;
    // The stages, times and moves of the first group, picked in the page.
    click(c, "#group-pick option[value='0']").await;
    let detail = js(
        c,
        "return document.querySelectorAll('#funnel-detail [data-field^=\"groups.0.\"]').length",
    )
    .await;
    assert!(
        detail.as_u64().unwrap() > 0,
        "picking a group shows none of its figures"
    );
    run.check_page("funnel by source, first group", &[(None, &by_source)])
        .await;

    for page in ["reps", "retention", "ranking", "qualification", "pipeline"] {
        before_action(c).await;
        click(c, &format!("#nav a[data-page={page}]")).await;
        wait_ready(c, page).await;
        let report = run.api_for_view(&format!("/v1/reports/{page}")).await;
        if page == "reps" {
            // The reps page opens with the quarter's scorecard, a document of its own.
            let card = run.api.get(run.reader, "/v1/reports/scorecard").await;
            assert!(!card["rows"].as_array().unwrap().is_empty());
            run.check_page(page, &[(None, &report), (Some("scorecard"), &card)])
                .await;
            let ranks = js(
                c,
                "return document.querySelectorAll('#scorecard [data-field$=\".rank\"]').length",
            )
            .await;
            assert_eq!(
                ranks.as_u64().unwrap() as usize,
                card["rows"].as_array().unwrap().len()
            );
        } else {
            run.check_page(page, &[(None, &report)]).await;
        }
    }
    let pipeline = run.api_for_view("/v1/reports/pipeline").await;

    // A customer, through the pipeline's worklist.
    let href = js(
        c,
        "const a = document.querySelector('#page-pipeline a[href^=\"#/customer/\"]'); \
         return a ? a.getAttribute('href') : null",
    )
    .await;
    let href = href
        .as_str()
        .expect("the pipeline links to no customer")
        .to_string();
    let customer = href.trim_start_matches("#/customer/").to_string();
    before_action(c).await;
    click(c, &format!("#page-pipeline a[href=\"{href}\"]")).await;
    wait_ready(c, "customer").await;
    let report = customer_report(run, &customer).await;
    let n = assert_figures(c, "customer (reader)", &[(Some("report"), &report)]).await;
    run.compared.push(("customer (reader)".into(), n));
    let forbidden = js(c, "return !!document.getElementById('history-forbidden')").await;
    assert_eq!(
        forbidden,
        json!(true),
        "a reader is told why the history is not shown"
    );
    check_layout(c, "customer-reader", run.shots).await;
    // The history is refused to a reader (403), and the page says so: by design.
    assert_console_clean(c, "customer (reader)", &[("/history", 403)]).await;
    (funnel, pipeline, customer)
}

async fn customer_report(run: &Run<'_>, customer: &str) -> Value {
    run.api
        .get(run.reader, &format!("/v1/customers/{customer}/report"))
        .await
}

/// Sets the as-of date in `page`'s form (`#f-as_of`) and shows it.
async fn show_as_of(c: &Client, page: &str, date: &str) {
    let input = c.find(Locator::Css("#f-as_of")).await.unwrap();
    let kind = input.attr("type").await.unwrap();
    assert_eq!(
        kind.as_deref(),
        Some("date"),
        "the as-of field is a date picker"
    );
    // A date input is typed into segment by segment in the locale's order, and its popup is
    // outside the page; the test sets its value as the picker would.
    let script = format!(
        "const i = document.getElementById('f-as_of'); i.value = '{date}'; \
         i.dispatchEvent(new Event('input', {{ bubbles: true }})); \
         i.dispatchEvent(new Event('change', {{ bubbles: true }}))"
    );
    js(c, &script).await;
    before_action(c).await;
    click(
        c,
        &format!("#page-{page} form.controls button[type=submit]"),
    )
    .await;
    wait_ready(c, page).await;
    let hash = js(c, "return location.hash").await;
    assert!(
        hash.as_str().unwrap().contains(&format!("as_of={date}")),
        "the as-of date is not in the view's address: {hash}"
    );
}

/// The funnel and the pipeline as they were ~180 days before the latest event: the figures
/// become the API's `?as_of=` answer, and some that are not the report's metadata differ from
/// today's.
async fn as_of_changes_the_figures(run: &mut Run<'_>, funnel: &Value, pipeline: &Value) {
    let c = run.c;
    let latest = pipeline["meta"]["evaluated_at"].as_str().unwrap();
    let date = days_before(latest, AS_OF_DAYS_BACK);
    for (page, today) in [("funnel", funnel), ("pipeline", pipeline)] {
        before_action(c).await;
        c.goto(&format!("{}/#/{page}", run.api.base)).await.unwrap();
        wait_ready(c, page).await;
        assert_figures(c, page, &[(None, today)]).await;
        let before = values(c).await;
        show_as_of(c, page, &date).await;
        let then = run.api_for_view(&format!("/v1/reports/{page}")).await;
        assert_eq!(then["meta"]["source"], "replay", "{page} as of {date}");
        assert_eq!(
            then["meta"]["as_of"].as_str().map(|t| &t[..10]),
            Some(date.as_str())
        );
        let name = format!("{page} as of {date}");
        run.check_page(&name, &[(None, &then)]).await;
        let after = values(c).await;
        let changed: Vec<&String> = after
            .iter()
            .filter(|(k, v)| !k.starts_with("meta.") && before.get(*k).is_some_and(|b| b != *v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            !changed.is_empty(),
            "{name}: no figure but the metadata differs from today's ({} figures before, {} after)",
            before.len(),
            after.len()
        );
    }
}

/// An auditor sees the customer's event history too: its figures are the history's JSON.
async fn customer_with_history(run: &mut Run<'_>, customer: &str, auditor: &str) {
    let c = run.c;
    before_action(c).await;
    c.goto(&format!("{}/#/customer/{customer}", run.api.base))
        .await
        .unwrap();
    wait_ready(c, "customer").await;
    let report = customer_report(run, customer).await;
    let history = run
        .api
        .get(auditor, &format!("/v1/customers/{customer}/history"))
        .await;
    let docs = [(Some("report"), &report), (Some("history"), &history)];
    let n = assert_figures(c, "customer (auditor)", &docs).await;
    let in_history = js(
        c,
        "return document.querySelectorAll('[data-doc=history] [data-field]').length",
    )
    .await;
    assert!(
        in_history.as_u64().unwrap() > 0,
        "the auditor's page shows no history figure"
    );
    run.compared.push(("customer (auditor)".into(), n));
    check_layout(c, "customer-auditor", run.shots).await;
    assert_console_clean(c, "customer (auditor)", &[]).await;
}

/// A producer's company name that is markup: appended by a writer, shown by the customer page
/// (its title, and the history's summary line) as the text it is.
async fn free_text_is_shown_as_text(run: &mut Run<'_>, store: &Path, writer: &str, auditor: &str) {
    let c = run.c;
    let event = markup_lead(store);
    let res = run
        .api
        .http
        .post(format!(
            "{}/v1/customers/{MARKUP_CUSTOMER}/events",
            run.api.base
        ))
        .bearer_auth(writer)
        .json(&event)
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert!(
        status.is_success(),
        "the append was refused: {status} {}",
        res.text().await.unwrap()
    );
    // The report is there once the server's runner has projected the event.
    let url = format!("{}/v1/customers/{MARKUP_CUSTOMER}/report", run.api.base);
    let deadline = Instant::now() + Duration::from_secs(WAIT_SECONDS_MAX);
    while !run
        .api
        .http
        .get(&url)
        .bearer_auth(run.reader)
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
    {
        assert!(
            Instant::now() < deadline,
            "the appended customer has no report"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MILLIS)).await;
    }

    before_action(c).await;
    c.goto(&format!("{}/#/customer/{MARKUP_CUSTOMER}", run.api.base))
        .await
        .unwrap();
    wait_ready(c, "customer").await;
    let seen = js(
        c,
        "return { title: document.querySelector('#page-customer [data-doc=report] h2').textContent, \
                  imgs: document.querySelectorAll('img').length, \
                  what: Array.from(document.querySelectorAll('[data-doc=history] .what')).map((e) => e.textContent) }",
    )
    .await;
    assert_eq!(
        seen["title"],
        json!(MARKUP_COMPANY),
        "the company is the card's title, as text"
    );
    assert_eq!(
        seen["imgs"],
        json!(0),
        "the company's markup made an element"
    );
    let what = seen["what"].as_array().unwrap();
    assert!(
        what.iter()
            .any(|w| w.as_str().unwrap_or("").contains(MARKUP_COMPANY)),
        "the history's summary does not show the company as text: {what:?}"
    );
    assert!(
        c.get_alert_text().await.is_err(),
        "an alert is open: the markup ran"
    );
    let report = customer_report(run, MARKUP_CUSTOMER).await;
    let history = run
        .api
        .get(auditor, &format!("/v1/customers/{MARKUP_CUSTOMER}/history"))
        .await;
    let docs = [(Some("report"), &report), (Some("history"), &history)];
    let n = assert_figures(c, "customer with markup", &docs).await;
    run.compared.push(("customer with markup".into(), n));
    check_layout(c, "customer-markup", run.shots).await;
    assert_console_clean(c, "customer with markup", &[]).await;
}

/// A LeadSourced event for [`MARKUP_CUSTOMER`] whose company is [`MARKUP_COMPANY`], shaped
/// after the first LeadSourced of the demo's export (the fields a producer sends).
fn markup_lead(store: &Path) -> Value {
    let export = ledger(store, &["export"]);
    let mut lead: Value = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["type"] == "LeadSourced")
        .expect("the demo has a LeadSourced event");
    let data = lead["data"].as_object_mut().unwrap();
    data.insert("company".into(), json!(MARKUP_COMPANY));
    data.insert("deal_id".into(), json!(format!("{MARKUP_CUSTOMER}-d1")));
    json!({
        "type": "LeadSourced",
        "schema_version": lead["schema_version"],
        "occurred_at": lead["occurred_at"],
        "data": lead["data"],
    })
}
