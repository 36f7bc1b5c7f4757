//! Who is calling: a bearer token (`Authorization: Bearer …`) or, for the dashboard's reads, the
//! same token in an HttpOnly, SameSite=Strict cookie. Writes never accept the cookie, so no
//! other site can make a logged-in browser append (CSRF): a cross-site page cannot set the
//! `Authorization` header.

use super::{Shared, problem::Problem};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use pipeline_ledger::access::{self, Access, Action, Principal, Role};
use serde::Deserialize;
use std::sync::{Arc, RwLock};

/// The dashboard's login cookie.
pub const SESSION_COOKIE: &str = "pl_session";

/// The grants as last read, and where to read them again.
pub struct Registry {
    access: Access,
    current: RwLock<Arc<access::Registry>>,
}

impl Registry {
    /// Reads the grants once; fails when they cannot be read (the server does not start
    /// without knowing who may call it).
    pub async fn load(access: Access) -> Result<Registry, access::AccessError> {
        let current = access.load().await?;
        Ok(Registry {
            access,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the grants again. On failure the last grants stay in force and the failure is
    /// said on standard error.
    pub async fn refresh(&self) {
        match self.access.load().await {
            Ok(fresh) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
            }
            Err(e) => eprintln!("tokens: {e}; the last grants read stay in force"),
        }
    }

    fn authenticate(&self, token: &str) -> Option<Principal> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        current.authenticate(token, Utc::now())
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// The caller, if its role may do `action`; 403 otherwise.
    pub fn may(&self, action: Action) -> Result<&Principal, Problem> {
        if self.0.role.allows(action) {
            return Ok(&self.0);
        }
        let needs = Role::ALL
            .into_iter()
            .filter(|r| r.allows(action))
            .map(Role::as_str)
            .collect::<Vec<_>>()
            .join(" or ");
        Err(Problem::forbidden(&needs))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Problem> {
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        let token = match bearer(&parts.headers) {
            Some(t) => Some(t),
            // The cookie only for reads: see the module's comment.
            None if safe => cookie(&parts.headers, SESSION_COOKIE),
            None => None,
        };
        token
            .and_then(|t| state.registry.authenticate(t))
            .map(Caller)
            .ok_or_else(Problem::unauthorized)
    }
}

/// `GET /v1/session`: who the caller is.
pub async fn session_get(caller: Caller) -> Json<Principal> {
    Json(caller.0)
}

/// The body of `POST /v1/session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub token: String,
}

/// `POST /v1/session`: logs the dashboard in; the token goes into an HttpOnly cookie, never to
/// the page's scripts, a URL or local storage. JSON only, so a cross-site form cannot post it.
pub async fn session_post(
    State(state): State<Shared>,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(login)) = body else {
        return Problem::bad_request("token", "send {\"token\": \"…\"} as application/json")
            .into_response();
    };
    let Some(who) = state.registry.authenticate(login.token.trim()) else {
        return Problem::unauthorized().field("token").into_response();
    };
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
        login.token.trim()
    );
    let mut response = (StatusCode::OK, Json(who)).into_response();
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `DELETE /v1/session`: logs the dashboard out (clears the cookie).
pub async fn session_delete(State(state): State<Shared>) -> Response {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_and_the_cookie_are_found() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer plt_abc".parse().unwrap());
        h.insert(
            header::COOKIE,
            "a=1; pl_session=plt_xyz; b=2".parse().unwrap(),
        );
        assert_eq!(bearer(&h), Some("plt_abc"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("plt_xyz"));
        h.insert(header::AUTHORIZATION, "Basic Zm9v".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
