//! `forget`: erasure of a customer's personal data by destroying its data key (crypto-shredding),
//! told in the log by an immutable `PersonalDataErased` event.
//!
//! The order makes an interrupted erasure safe to run again: the erasure journal first (synced),
//! then the key (deleted and overwritten in the key store), then the event. A `forget` that
//! finds the key already destroyed but no event in the log appends the event and is done.

use super::codec::decode;
use super::personal::{FieldCounts, count_fields};
use super::{Ledger, RecordError, Recorded};
use crate::domain::{ActorId, CustomerId, EventPayload, PersonalDataErased, ProposedEvent, RepId};
use crate::keys::vault::{Erasure, VaultError};
use crate::store::ReadError;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Why a customer's personal data was not erased.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("customer {0} is unknown (no events); nothing was erased")]
    UnknownCustomer(CustomerId),
    #[error(
        "customer {customer}'s personal data was already erased at {erased_at} (event \
         {event_id}); nothing was done"
    )]
    AlreadyErased {
        customer: CustomerId,
        erased_at: DateTime<Utc>,
        event_id: Uuid,
    },
    #[error("a reason is required: say which request the erasure honours")]
    NoReason,
    #[error(
        "this ledger has no key store, so there is no key to destroy; open it with its master \
         key (PIPELINE_LEDGER_MASTER_KEY_FILE)"
    )]
    NoKeyStore,
    #[error("{by:?} cannot be named as who erased (it must be an identifier such as a rep id)")]
    BadActor { by: String },
    #[error("reading the customer's history failed: {0}")]
    Read(#[from] ReadError),
    #[error("the customer's history cannot be decoded: {0}")]
    Decode(#[from] super::codec::DecodeError),
    #[error("the key store: {0}")]
    Keys(#[from] VaultError),
    #[error(
        "the key was destroyed, but recording the PersonalDataErased event failed: {0}. Run \
         forget again: it records the event"
    )]
    Record(#[from] RecordError),
}

/// What `forget` did.
#[derive(Debug, Clone)]
pub struct Forgotten {
    pub erasure: Erasure,
    /// Where the `PersonalDataErased` event landed.
    pub recorded: Recorded,
    /// Whether a key was destroyed now (false when an interrupted `forget` had destroyed it).
    pub key_destroyed: bool,
    /// Personal fields made unreadable, and those stored in plaintext before encryption began,
    /// which the erasure could not reach.
    pub fields: FieldCounts,
}

impl Ledger {
    /// Erases `customer`'s personal data: destroys its data key and records who (`by`), when and
    /// why (`reason`) in a `PersonalDataErased` event.
    pub async fn forget(
        &self,
        customer: &CustomerId,
        reason: &str,
        by: &ActorId,
    ) -> Result<Forgotten, ForgetError> {
        let vault = self.personal.clone().ok_or(ForgetError::NoKeyStore)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ForgetError::NoReason);
        }
        let rep_id =
            RepId::new(by.as_str()).map_err(|_| ForgetError::BadActor { by: by.to_string() })?;
        let records = self.read_customer(customer).await?;
        if records.is_empty() {
            return Err(ForgetError::UnknownCustomer(customer.clone()));
        }
        let mut fields = FieldCounts::default();
        for record in &records {
            let mut event = decode(record)?;
            if matches!(event.payload, EventPayload::PersonalDataErased(_)) {
                return Err(ForgetError::AlreadyErased {
                    customer: customer.clone(),
                    erased_at: event.recorded_at,
                    event_id: event.event_id,
                });
            }
            let counts = count_fields(&mut event.payload);
            fields.sealed += counts.sealed;
            fields.plaintext += counts.plaintext;
        }
        let (erasure, key_destroyed) = match vault.erasure(customer.as_str()) {
            Some(earlier) => (earlier, false),
            None => {
                let erasure = Erasure {
                    customer_id: customer.to_string(),
                    erased_at: Utc::now(),
                    erased_by: by.to_string(),
                    reason: reason.to_string(),
                };
                let destroyed = vault.forget(&erasure)?;
                (erasure, destroyed)
            }
        };
        let proposed = ProposedEvent {
            event_id: Uuid::now_v7(),
            customer_id: customer.clone(),
            occurred_at: erasure.erased_at,
            recorded_at: None,
            recorded_by: by.clone(),
            correlation_id: None,
            causation_id: None,
            payload: EventPayload::PersonalDataErased(PersonalDataErased {
                rep_id,
                reason: erasure.reason.clone(),
                sealed_fields: fields.sealed,
                plaintext_fields: fields.plaintext,
            }),
        };
        let recorded = self.record(proposed).await?;
        Ok(Forgotten {
            erasure,
            recorded,
            key_destroyed,
            fields,
        })
    }
}
