//! What every report says about itself ([`ReportMeta`]) and which state of the pipeline it is
//! asked for ([`ReportAt`]). Plain data: the views build reports with it, the query layer fills it.

use crate::domain::LedgerEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which state of the pipeline a report describes. All filters combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportAt {
    /// Only events at or before this log position.
    pub at_position: Option<u64>,
    /// Only events that occurred at or before this time (the pipeline as it happened).
    pub as_of: Option<DateTime<Utc>>,
    /// Only events recorded at or before this time (the pipeline as the ledger knew it).
    pub known_at: Option<DateTime<Utc>>,
    /// The clock for time-dependent figures (stalled, dormant, overdue, time in stage);
    /// default: `as_of`/`known_at` if given, else the latest `occurred_at` in the log.
    pub now: Option<DateTime<Utc>>,
}

impl ReportAt {
    /// Whether the report needs a replay (any filter given).
    pub fn is_replay(&self) -> bool {
        self.at_position.is_some() || self.as_of.is_some() || self.known_at.is_some()
    }

    /// Whether an event passes the filters.
    pub fn includes(&self, e: &LedgerEvent) -> bool {
        self.at_position.is_none_or(|p| e.position <= p)
            && self.as_of.is_none_or(|t| e.occurred_at <= t)
            && self.known_at.is_none_or(|t| e.recorded_at <= t)
    }

    /// The earlier of `as_of` and `known_at`: the default report clock of a filtered replay.
    pub fn time_bound(&self) -> Option<DateTime<Utc>> {
        match (self.as_of, self.known_at) {
            (Some(a), Some(k)) => Some(a.min(k)),
            (a, k) => a.or(k),
        }
    }
}

/// Where a report's numbers were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    /// The read models (`rm_` tables), live or a report the runner keeps computed.
    ReadModels,
    /// The log replayed in memory.
    Replay,
}

impl ReportSource {
    /// The name printed in reports (`read_models`, `replay`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ReportSource::ReadModels => "read_models",
            ReportSource::Replay => "replay",
        }
    }
}

impl std::fmt::Display for ReportSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every report says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMeta {
    /// The log position the report was computed at: `--at-position` with it reproduces it.
    pub position: Option<u64>,
    /// The log's head when the report was made.
    pub head_position: Option<u64>,
    /// head − position: events recorded but not in this report.
    pub lag: u64,
    /// The clock used for time-dependent figures.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// Where the numbers were read from.
    pub source: ReportSource,
    pub as_of: Option<DateTime<Utc>>,
    pub known_at: Option<DateTime<Utc>>,
}

/// Lag between a head and a checkpoint, in positions.
pub fn lag(head: Option<u64>, position: Option<u64>) -> u64 {
    head.unwrap_or(0).saturating_sub(position.unwrap_or(0))
}

impl ReportMeta {
    /// The metadata of a report over a replayed or in-memory model at `position` (with the
    /// latest `occurred_at` it holds, `log_time`), for the state `at` asks for.
    pub fn replayed(
        position: Option<u64>,
        head_position: Option<u64>,
        log_time: Option<DateTime<Utc>>,
        at: &ReportAt,
    ) -> Self {
        ReportMeta {
            position,
            head_position,
            lag: lag(head_position, position),
            evaluated_at: at.now.or(at.time_bound()).or(log_time),
            source: ReportSource::Replay,
            as_of: at.as_of,
            known_at: at.known_at,
        }
    }

    /// The metadata of a report over the live read models at `position` (with the latest
    /// `occurred_at` applied, `log_time`); `at` may only set the clock.
    pub fn live(
        position: Option<u64>,
        head_position: Option<u64>,
        log_time: Option<DateTime<Utc>>,
        at: &ReportAt,
    ) -> Self {
        ReportMeta {
            position,
            head_position,
            lag: lag(head_position, position),
            evaluated_at: at.now.or(log_time),
            source: ReportSource::ReadModels,
            as_of: None,
            known_at: None,
        }
    }
}

/// The metadata of a report over an in-memory model (tests, embedding programs): computed at
/// the model's own position, as a replay.
pub fn meta_for(model: &crate::projections::model::ReadModel, at: &ReportAt) -> ReportMeta {
    ReportMeta::replayed(model.position, model.position, model.log_time, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_serializes_as_before() {
        assert_eq!(
            serde_json::to_string(&ReportSource::ReadModels).unwrap(),
            "\"read_models\""
        );
        assert_eq!(
            serde_json::to_string(&ReportSource::Replay).unwrap(),
            "\"replay\""
        );
    }

    #[test]
    fn lag_never_goes_negative() {
        assert_eq!(lag(Some(10), Some(4)), 6);
        assert_eq!(lag(Some(3), Some(4)), 0);
        assert_eq!(lag(None, None), 0);
    }
}
