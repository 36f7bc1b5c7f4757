//! `/metrics` in the Prometheus text format: appends and their latency, the projection
//! checkpoint and lag, and requests by route and status. Counted here, printed at each scrape.

use super::Shared;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the append latency histogram's buckets.
const APPEND_SECONDS_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    appends_ok: AtomicU64,
    appends_failed: AtomicU64,
    /// Cumulative counts per bucket of [`APPEND_SECONDS_BUCKETS`], then +Inf.
    append_buckets: [AtomicU64; APPEND_SECONDS_BUCKETS.len() + 1],
    append_micros_sum: AtomicU64,
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl Metrics {
    /// Counts one append request (single or batch) and how long it took.
    pub fn observe_append(&self, took: Duration, ok: bool) {
        if ok {
            self.appends_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.appends_failed.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = took.as_secs_f64();
        let bucket = APPEND_SECONDS_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(APPEND_SECONDS_BUCKETS.len());
        self.append_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.append_micros_sum.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn request(&self, route: String, method: String, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((route, method, status)).or_insert(0) += 1;
    }

    /// The text exposition, with the projection figures given.
    fn render(&self, checkpoint: u64, head: Option<u64>) -> String {
        let mut out = String::new();
        let ok = self.appends_ok.load(Ordering::Relaxed);
        let failed = self.appends_failed.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP pipeline_ledger_append_requests_total Append requests (single events and batches) by outcome.\n# TYPE pipeline_ledger_append_requests_total counter\npipeline_ledger_append_requests_total{{outcome=\"ok\"}} {ok}\npipeline_ledger_append_requests_total{{outcome=\"failed\"}} {failed}"
        );
        let _ = writeln!(
            out,
            "# HELP pipeline_ledger_append_seconds Time from a decoded append request to its acknowledgement.\n# TYPE pipeline_ledger_append_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in APPEND_SECONDS_BUCKETS.iter().enumerate() {
            cumulative += self.append_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "pipeline_ledger_append_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.append_buckets[APPEND_SECONDS_BUCKETS.len()].load(Ordering::Relaxed);
        let sum = self.append_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "pipeline_ledger_append_seconds_bucket{{le=\"+Inf\"}} {cumulative}\npipeline_ledger_append_seconds_sum {sum}\npipeline_ledger_append_seconds_count {cumulative}"
        );
        let _ = writeln!(
            out,
            "# HELP pipeline_ledger_projection_checkpoint_position The log position the read models reflect.\n# TYPE pipeline_ledger_projection_checkpoint_position gauge\npipeline_ledger_projection_checkpoint_position {checkpoint}"
        );
        if let Some(head) = head {
            let _ = writeln!(
                out,
                "# HELP pipeline_ledger_log_head_position The log's last position.\n# TYPE pipeline_ledger_log_head_position gauge\npipeline_ledger_log_head_position {head}\n# HELP pipeline_ledger_projection_lag_events Events the read models are behind the log.\n# TYPE pipeline_ledger_projection_lag_events gauge\npipeline_ledger_projection_lag_events {}",
                head.saturating_sub(checkpoint)
            );
        }
        let _ = writeln!(
            out,
            "# HELP pipeline_ledger_http_requests_total HTTP requests by route, method and status.\n# TYPE pipeline_ledger_http_requests_total counter"
        );
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, method, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "pipeline_ledger_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out
    }
}

/// Counts every request by its route template (never the raw path: ids would make the label
/// set grow without bound) and status.
pub async fn count(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |m| m.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    state
        .metrics
        .request(route, method, response.status().as_u16());
    response
}

/// `GET /metrics`.
pub async fn serve(State(state): State<Shared>) -> Response {
    let head = state.store.head_position().await.ok().flatten();
    let checkpoint = state.checkpoint.load(Ordering::Relaxed);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(checkpoint, head),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_every_append() {
        let m = Metrics::default();
        m.observe_append(Duration::from_micros(300), true);
        m.observe_append(Duration::from_millis(3), true);
        m.observe_append(Duration::from_secs(9), false);
        m.request("/v1/log".into(), "GET".into(), 200);
        let text = m.render(10, Some(12));
        assert!(text.contains("pipeline_ledger_append_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("pipeline_ledger_append_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("pipeline_ledger_append_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("pipeline_ledger_append_requests_total{outcome=\"failed\"} 1"));
        assert!(text.contains("pipeline_ledger_projection_lag_events 2"));
        assert!(text.contains(
            "pipeline_ledger_http_requests_total{route=\"/v1/log\",method=\"GET\",status=\"200\"} 1"
        ));
    }
}
