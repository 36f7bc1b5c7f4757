//! The server's limits in force: the named defaults of `limits`, each overridable from the
//! environment (`PIPELINE_LEDGER_<NAME>`, e.g. `PIPELINE_LEDGER_HTTP_REQUEST_SECONDS_MAX=60`),
//! so that an operator can fit them to a deployment and the tests can reach them quickly.

use pipeline_ledger::limits::{
    HTTP_CONNECTIONS_MAX, HTTP_EXPENSIVE_QUERIES_MAX, HTTP_EXPENSIVE_QUERY_SECONDS_MAX,
    HTTP_HEADER_SECONDS_MAX, HTTP_REQUEST_SECONDS_MAX,
};

/// Limits read from the environment when the server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub request_seconds: u64,
    pub header_seconds: u64,
    pub connections: usize,
    pub expensive_queries: usize,
    pub expensive_query_seconds: u64,
}

/// Why a limit in the environment cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{name} is {value:?}; give a whole number (the default is {default})")]
pub struct LimitError {
    name: String,
    value: String,
    default: u64,
}

fn read(name: &str, default: u64) -> Result<u64, LimitError> {
    let var = format!("PIPELINE_LEDGER_{name}");
    match std::env::var(&var) {
        Err(_) => Ok(default),
        Ok(value) => value.trim().parse().map_err(|_| LimitError {
            name: var,
            value,
            default,
        }),
    }
}

impl ServerLimits {
    /// The defaults, with the environment's overrides.
    pub fn from_env() -> Result<ServerLimits, LimitError> {
        Ok(ServerLimits {
            request_seconds: read("HTTP_REQUEST_SECONDS_MAX", HTTP_REQUEST_SECONDS_MAX)?,
            header_seconds: read("HTTP_HEADER_SECONDS_MAX", HTTP_HEADER_SECONDS_MAX)?,
            connections: read("HTTP_CONNECTIONS_MAX", HTTP_CONNECTIONS_MAX as u64)? as usize,
            expensive_queries: read(
                "HTTP_EXPENSIVE_QUERIES_MAX",
                HTTP_EXPENSIVE_QUERIES_MAX as u64,
            )? as usize,
            expensive_query_seconds: read(
                "HTTP_EXPENSIVE_QUERY_SECONDS_MAX",
                HTTP_EXPENSIVE_QUERY_SECONDS_MAX,
            )?,
        })
    }
}
