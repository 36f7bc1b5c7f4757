//! Who may use the HTTP server: bearer tokens with roles.
//!
//! The grants are an append-only log of their own (`TokenIssued`, `TokenRevoked`), kept in an
//! event store beside the ledger's and never in the ledger's log: on SQLite a store file of its
//! own beside the ledger's (`ledger.db` → `ledger.access.db`), on KurrentDB the stream
//! [`KURRENT_ACCESS_STREAM`] of the same cluster (outside the `customer-` streams the ledger
//! reads), so that every server of a cluster reads the same grants. Nothing is updated: a revoke
//! is a new event, and the log shows who could write when, and who said so.
//!
//! A token is 256 random bits, shown once when issued. Only its SHA-256 is stored: a random
//! token needs no slow password hash (nobody can guess it from its hash), and a fast one keeps
//! every request cheap. A presented token is compared against every grant in constant time.

use crate::store::{EventStore, ExpectedRevision, NewRecord, ReadError, Record, StreamName};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The stream of grants in a SQLite access store (a file of its own).
pub const SQLITE_ACCESS_STREAM: &str = "access-tokens";
/// The stream of grants on a KurrentDB cluster, beside the ledger's `customer-` streams.
pub const KURRENT_ACCESS_STREAM: &str = "pipeline-ledger-access";
/// Random bytes in a token (256 bits; the issue asks for at least 128).
pub const TOKEN_RANDOM_BYTES: usize = 32;
/// What every token starts with, so that a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "plt_";

/// The access store of a SQLite ledger at `store`: `ledger.db` → `ledger.access.db`.
pub fn access_store_beside(store: &Path) -> PathBuf {
    crate::store::files::beside(store, "access")
}

/// What a token may do. Each role is one job; a token has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Appends events (single and batch).
    Writer,
    /// Reads the reports (funnel, reps, pipeline, customer) and the dashboard.
    Reader,
    /// Reads the reports and the log itself: histories, the log, the live feed, exports, and
    /// personal data.
    Auditor,
    /// Manages tokens (and reads what the auditor reads, personal data withheld).
    Admin,
}

impl Role {
    /// Every role, in the order the help lists them.
    pub const ALL: [Role; 4] = [Role::Writer, Role::Reader, Role::Auditor, Role::Admin];

    /// The role's name as written on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do `action`.
    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::Append => self == Role::Writer,
            Action::Reports => matches!(self, Role::Reader | Role::Auditor | Role::Admin),
            Action::ReadLog => matches!(self, Role::Auditor | Role::Admin),
            // Managing tokens is not a reason to read people's data: the auditor alone.
            Action::ReadPersonalData => self == Role::Auditor,
            Action::ManageTokens => self == Role::Admin,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}; the roles are writer, reader, auditor, admin")
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request wants to do; each route needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Append,
    Reports,
    /// Histories, the log, the live feed, exports, personal data.
    ReadLog,
    /// Personal fields decrypted (contact names, phones, e-mails, lead notes); every other
    /// reader gets them withheld.
    ReadPersonalData,
    ManageTokens,
}

/// The data of a `TokenIssued` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenIssued {
    name: String,
    role: Role,
    /// SHA-256 of the token, lowercase hex.
    token_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

/// The data of a `TokenRevoked` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRevoked {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// One token as the grants log says it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The principal: recorded as `recorded_by` of everything the token appends.
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    token_sha256: [u8; 32],
    pub issued_at: DateTime<Utc>,
    pub issued_by: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
}

impl Grant {
    /// Whether the token can be used at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Who a request is: the token's name and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// The grants as of one read of their log.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    grants: Vec<Grant>,
    /// The grants log's revision this was read at (`None`: no grant was ever made).
    revision: Option<u64>,
}

impl Registry {
    /// Folds the grants log.
    fn fold(records: &[Record]) -> Result<Registry, AccessError> {
        let mut registry = Registry::default();
        for r in records {
            registry.revision = Some(r.revision);
            match r.event_type.as_str() {
                "TokenIssued" => {
                    let issued: TokenIssued = decode(r)?;
                    let mut hash = [0u8; 32];
                    let bytes =
                        hex_decode(&issued.token_sha256).ok_or_else(|| AccessError::Corrupt {
                            revision: r.revision,
                            reason: "token_sha256 is not 64 hex digits".into(),
                        })?;
                    hash.copy_from_slice(&bytes);
                    registry.grants.push(Grant {
                        name: issued.name,
                        role: issued.role,
                        token_sha256: hash,
                        issued_at: r.occurred_at,
                        issued_by: r.recorded_by.clone(),
                        expires_at: issued.expires_at,
                        revoked_at: None,
                        revoked_by: None,
                        revoke_reason: None,
                    });
                }
                "TokenRevoked" => {
                    let revoked: TokenRevoked = decode(r)?;
                    for g in registry
                        .grants
                        .iter_mut()
                        .filter(|g| g.name == revoked.name && g.revoked_at.is_none())
                    {
                        g.revoked_at = Some(r.occurred_at);
                        g.revoked_by = Some(r.recorded_by.clone());
                        g.revoke_reason.clone_from(&revoked.reason);
                    }
                }
                other => {
                    return Err(AccessError::Corrupt {
                        revision: r.revision,
                        reason: format!("unknown event type {other:?}"),
                    });
                }
            }
        }
        Ok(registry)
    }

    /// Every grant ever made, oldest first, revoked and expired ones included.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Who presents `token` at `now`, if it is a token of an active grant. Every grant's hash is
    /// compared, each in constant time, so the time taken says nothing about which matched.
    pub fn authenticate(&self, token: &str, now: DateTime<Utc>) -> Option<Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&Grant> = None;
        for g in &self.grants {
            if bool::from(g.token_sha256.ct_eq(&presented)) {
                found = Some(g);
            }
        }
        found.filter(|g| g.is_active(now)).map(|g| Principal {
            name: g.name.clone(),
            role: g.role,
        })
    }

    fn active(&self, name: &str, now: DateTime<Utc>) -> Option<&Grant> {
        self.grants
            .iter()
            .rev()
            .find(|g| g.name == name && g.is_active(now))
    }
}

/// Why the grants could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("reading the tokens failed: {0}")]
    Read(#[from] ReadError),
    #[error("writing the tokens failed: {0}")]
    Append(#[from] crate::store::AppendError),
    #[error(
        "the tokens' log is damaged at revision {revision}: {reason}; it is not used. Restore it from a backup"
    )]
    Corrupt { revision: u64, reason: String },
    #[error(
        "a token named {0:?} is active; revoke it first (`pipeline-ledger token revoke {0}`) or choose another name"
    )]
    NameInUse(String),
    #[error("no active token is named {0:?}; `pipeline-ledger token list` shows them")]
    NoSuchToken(String),
    #[error(
        "token name {0:?} is not usable: it becomes `recorded_by` of what the token appends, so it is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    BadName(String),
    #[error("the expiry {0} is in the past; give a time in the future")]
    ExpiryPast(DateTime<Utc>),
    #[error("another command changed the tokens at the same time; run the command again")]
    Concurrent,
}

/// A newly issued token: the secret, shown once, and its grant.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub grant: Grant,
}

/// The grants log in an event store.
#[derive(Clone)]
pub struct Access {
    store: Arc<dyn EventStore>,
    stream: StreamName,
}

impl Access {
    /// The grants kept in `stream` of `store`.
    pub fn new(store: Arc<dyn EventStore>, stream: impl Into<StreamName>) -> Self {
        Access {
            store,
            stream: stream.into(),
        }
    }

    /// Reads the grants as they are now.
    pub async fn load(&self) -> Result<Registry, AccessError> {
        let records = self.read().await?;
        Registry::fold(&records)
    }

    async fn read(&self) -> Result<Vec<Record>, ReadError> {
        let mut streams = self
            .store
            .read_streams(std::slice::from_ref(&self.stream))
            .await?;
        Ok(streams.remove(&self.stream).unwrap_or_default())
    }

    /// Issues a token for `name` with `role`, recorded as made by `issued_by`.
    pub async fn issue(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
        issued_by: &str,
    ) -> Result<Issued, AccessError> {
        if !is_actor_id(name) {
            return Err(AccessError::BadName(name.into()));
        }
        let now = Utc::now();
        if let Some(e) = expires_at
            && e <= now
        {
            return Err(AccessError::ExpiryPast(e));
        }
        let registry = self.load().await?;
        if registry.active(name, now).is_some() {
            return Err(AccessError::NameInUse(name.into()));
        }
        let mut random = [0u8; TOKEN_RANDOM_BYTES];
        rand::fill(&mut random);
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let data = TokenIssued {
            name: name.into(),
            role,
            token_sha256: hex_encode(&hash),
            expires_at,
        };
        self.append(&registry, "TokenIssued", &data, now, issued_by)
            .await?;
        let grant = Grant {
            name: name.into(),
            role,
            token_sha256: hash,
            issued_at: now,
            issued_by: issued_by.into(),
            expires_at,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
        };
        Ok(Issued { token, grant })
    }

    /// Revokes the active token named `name`.
    pub async fn revoke(
        &self,
        name: &str,
        reason: Option<String>,
        revoked_by: &str,
    ) -> Result<(), AccessError> {
        let now = Utc::now();
        let registry = self.load().await?;
        if registry.active(name, now).is_none() {
            return Err(AccessError::NoSuchToken(name.into()));
        }
        let data = TokenRevoked {
            name: name.into(),
            reason,
        };
        self.append(&registry, "TokenRevoked", &data, now, revoked_by)
            .await
    }

    /// Appends one grant event, expecting the log at the revision `registry` was read at, so two
    /// commands changing the tokens at once cannot both act on what they read.
    async fn append(
        &self,
        registry: &Registry,
        event_type: &str,
        data: &impl Serialize,
        now: DateTime<Utc>,
        by: &str,
    ) -> Result<(), AccessError> {
        let expected = match registry.revision {
            None => ExpectedRevision::NoStream,
            Some(r) => ExpectedRevision::Exact(r),
        };
        let record = NewRecord {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            data: serde_json::to_string(data).expect("grant events serialize"),
            occurred_at: now,
            recorded_at: None,
            recorded_by: by.into(),
            correlation_id: None,
            causation_id: None,
        };
        match self
            .store
            .append(&self.stream, expected, vec![record])
            .await
        {
            Ok(_) => Ok(()),
            Err(crate::store::AppendError::WrongExpectedRevision { .. }) => {
                Err(AccessError::Concurrent)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(r: &Record) -> Result<T, AccessError> {
    serde_json::from_str(&r.data).map_err(|e| AccessError::Corrupt {
        revision: r.revision,
        reason: e.to_string(),
    })
}

/// Whether `s` is a valid actor id (the pattern of `recorded_by` in the published schema).
pub fn is_actor_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_encode(&Sha256::digest(bytes))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn access() -> (tempfile::TempDir, Access) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("a.db")).unwrap();
        (dir, Access::new(Arc::new(store), SQLITE_ACCESS_STREAM))
    }

    #[tokio::test]
    async fn an_issued_token_authenticates_as_its_name_and_role_until_revoked() {
        let (_dir, access) = access();
        let issued = access
            .issue("bi-nightly", Role::Reader, None, "ops")
            .await
            .unwrap();
        assert!(issued.token.starts_with(TOKEN_PREFIX));
        assert_eq!(issued.token.len(), TOKEN_PREFIX.len() + 43);
        let registry = access.load().await.unwrap();
        let who = registry.authenticate(&issued.token, Utc::now()).unwrap();
        assert_eq!(who.name, "bi-nightly");
        assert_eq!(who.role, Role::Reader);
        assert!(registry.authenticate("plt_wrong", Utc::now()).is_none());
        access
            .revoke("bi-nightly", Some("rotated".into()), "ops")
            .await
            .unwrap();
        let registry = access.load().await.unwrap();
        assert!(registry.authenticate(&issued.token, Utc::now()).is_none());
        let g = &registry.grants()[0];
        assert_eq!(g.revoked_by.as_deref(), Some("ops"));
        assert_eq!(g.revoke_reason.as_deref(), Some("rotated"));
    }

    #[tokio::test]
    async fn an_expired_token_is_refused_and_names_are_unique_among_active_tokens() {
        let (_dir, access) = access();
        let expires = Utc::now() + chrono::Duration::hours(1);
        let issued = access
            .issue("job", Role::Writer, Some(expires), "ops")
            .await
            .unwrap();
        let registry = access.load().await.unwrap();
        assert!(registry.authenticate(&issued.token, Utc::now()).is_some());
        assert!(
            registry
                .authenticate(&issued.token, expires + chrono::Duration::seconds(1))
                .is_none()
        );
        assert!(matches!(
            access.issue("job", Role::Reader, None, "ops").await,
            Err(AccessError::NameInUse(_))
        ));
        assert!(matches!(
            access.revoke("nobody", None, "ops").await,
            Err(AccessError::NoSuchToken(_))
        ));
        assert!(matches!(
            access.issue("no spaces", Role::Reader, None, "ops").await,
            Err(AccessError::BadName(_))
        ));
    }

    #[test]
    fn roles_allow_only_their_own_job() {
        assert!(Role::Writer.allows(Action::Append));
        assert!(!Role::Writer.allows(Action::Reports));
        assert!(!Role::Reader.allows(Action::Append));
        assert!(!Role::Reader.allows(Action::ReadLog));
        assert!(Role::Auditor.allows(Action::ReadLog));
        assert!(!Role::Auditor.allows(Action::ManageTokens));
        assert!(Role::Admin.allows(Action::ManageTokens));
    }
}
