//! Every error the API returns: an RFC 9457 problem document (`application/problem+json`) that
//! names the field it is about, mapped here from the library's typed errors in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pipeline_ledger::ledger::RecordError;
use pipeline_ledger::ledger::import::ImportError;
use pipeline_ledger::ledger::personal::SealError;
use pipeline_ledger::query::QueryError;
use serde::Serialize;

/// The media type of every error.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document (boxed: handlers return it in every `Err`).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<ProblemDoc>);

impl std::ops::Deref for Problem {
    type Target = ProblemDoc;
    fn deref(&self) -> &ProblemDoc {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDoc {
        &mut self.0
    }
}

/// The fields of a problem document.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemDoc {
    /// A URI naming the kind of problem (relative: the kinds are listed in the OpenAPI document).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field the problem is about (a JSON pointer into the body, a query parameter
    /// or a header name), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The bad lines of a batch, each with its line number.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<LineProblem>,
    /// Seconds after which the same request may succeed (also sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// One bad line of a batch.
#[derive(Debug, Clone, Serialize)]
pub struct LineProblem {
    pub line: u64,
    pub detail: String,
}

impl Problem {
    /// A problem of kind `kind` (a short slug, e.g. `rule-violation`) with `status`.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem(Box::new(ProblemDoc {
            kind: format!("/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            errors: Vec::new(),
            retry_after: None,
        }))
    }

    /// Names the field the problem is about.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Says when to try again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail).field(field)
    }

    pub fn unprocessable(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-event", detail).field(field)
    }

    pub fn unauthorized() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no valid token: send `Authorization: Bearer <token>` (tokens come from `pipeline-ledger token create`), or log in on the dashboard",
        )
        .field("Authorization")
    }

    pub fn forbidden(needs: &str) -> Self {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token's role may not do this; it needs the {needs} role"),
        )
    }

    /// Not found. The same text whether or not the thing exists for another caller, so that
    /// nobody learns which customers exist from it.
    pub fn not_found(what: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", what)
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the server failed: {detail}"),
        )
    }

    pub fn unavailable(kind: &str, detail: impl Into<String>, retry_after: u64) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, kind, detail).retry_after(retry_after)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("problems serialize");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The field a line error names (`field data/value: …` → `/data/value`).
fn field_of(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("field ")?;
    let name = rest.split([':', ' ']).next()?;
    if name == "(line)" {
        return None;
    }
    Some(if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{}", name.replace('.', "/"))
    })
}

impl From<RecordError> for Problem {
    fn from(e: RecordError) -> Self {
        let detail = e.to_string();
        match &e {
            RecordError::Invalid(line) => {
                let line = line.to_string();
                let mut p = Problem::unprocessable("", detail);
                p.field = field_of(&line);
                p
            }
            RecordError::Refused(_) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "rule-violation", detail)
            }
            RecordError::IdUsed { .. } => {
                Problem::new(StatusCode::CONFLICT, "event-id-used", detail).field("/event_id")
            }
            RecordError::Conflict { .. } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "wrong-expected-revision",
                detail,
            )
            .field("expected_revision"),
            RecordError::Contended { .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "contended", detail).retry_after(1)
            }
            RecordError::Personal(SealError::Erased { path, .. }) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "personal-data-erased",
                detail,
            )
            .field(format!("/data/{path}")),
            RecordError::Personal(
                SealError::Withheld { path, .. } | SealError::Unopenable { path, .. },
            ) => Problem::unprocessable(&format!("/data/{path}"), detail),
            RecordError::Personal(SealError::ErasureNotByForget { .. }) => {
                Problem::unprocessable("/type", detail)
            }
            RecordError::Personal(SealError::NoKeyStore { .. } | SealError::Vault(_))
            | RecordError::Append(_)
            | RecordError::Read(_)
            | RecordError::Decode(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", detail)
                    .retry_after(1)
            }
        }
    }
}

impl From<QueryError> for Problem {
    fn from(e: QueryError) -> Self {
        let detail = e.to_string();
        match e {
            QueryError::UnknownCustomer(_) => Problem::not_found(
                "no such customer in the read models at this position (or it is not projected yet)",
            ),
            QueryError::BeyondHead { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "beyond-head", detail)
                    .field("at_position")
            }
            QueryError::NotAQuarter(_) => Problem::bad_request("quarter", detail),
            QueryError::EmptyWindow { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "empty-window", detail).field("from")
            }
            QueryError::DeadlineExceeded => Problem::unavailable("query-deadline", detail, 10),
            QueryError::Stale(_) => Problem::unavailable("read-models-stale", detail, 5),
            QueryError::Kept(_) | QueryError::ReadModels(_) | QueryError::Store(_) => {
                Problem::unavailable("store-unavailable", detail, 1)
            }
            QueryError::Replay(_) | QueryError::History(_) | QueryError::Panicked(_) => {
                Problem::internal(detail)
            }
        }
    }
}

impl From<ImportError> for Problem {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::BadLines { bad, total } => {
                let mut p = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-batch",
                    format!("{total} bad line(s) in the batch; nothing was written"),
                );
                p.errors = bad
                    .iter()
                    .map(|b| LineProblem {
                        line: b.line,
                        detail: b.reason.clone(),
                    })
                    .collect();
                p
            }
            other => Problem::unavailable("store-unavailable", other.to_string(), 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_error_names_its_field_as_a_pointer() {
        assert_eq!(
            field_of("field data.value.currency: not a currency").as_deref(),
            Some("/data/value/currency")
        );
        assert_eq!(
            field_of("field /data/stage: bad").as_deref(),
            Some("/data/stage")
        );
        assert_eq!(field_of("field (line): bad"), None);
        assert_eq!(field_of("malformed JSON at column 3"), None);
    }
}
