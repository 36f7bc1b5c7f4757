//! Personal data on its way into and out of the log: sealed with the customer's data key before
//! an event is appended (record and import alike), opened or withheld on the way out according
//! to what the reader may see.
//!
//! The store keeps only the sealed form, and the hash chain covers it, so `verify` needs no key
//! and still passes after `forget`. Sealing is deterministic (see `keys::data_key`): a retry of
//! an event seals to the same bytes, so the store's byte-for-byte retry check compares plaintext.

use crate::contract::line::ValidLine;
use crate::domain::{CustomerId, EventPayload, EventType, LedgerEvent, PersonalText, Withheld};
use crate::keys::data_key::OpenError;
use crate::keys::vault::{KeyState, Vault, VaultError};
use uuid::Uuid;

/// What a reader of the log gets of personal fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersonalView {
    /// As stored: sealed values stay sealed (the form `verify` checks and an import into a
    /// ledger holding the keys reproduces).
    AsStored,
    /// Opened with the customer's key, for readers allowed to see personal data; an erased
    /// customer's fields read `{"withheld": "erased"}`.
    Decrypted,
    /// Every personal field withheld, for sharing.
    Redacted,
}

impl PersonalView {
    /// The wire names, for the command line and the API.
    pub const NAMES: [&'static str; 3] = ["as-stored", "decrypted", "redacted"];

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<PersonalView> {
        match s {
            "as-stored" => Some(PersonalView::AsStored),
            "decrypted" => Some(PersonalView::Decrypted),
            "redacted" => Some(PersonalView::Redacted),
            _ => None,
        }
    }
}

/// Why an event's personal data could not be sealed. Nothing is written.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "field /data/{path}: customer {customer}'s personal data was erased at {erased_at} \
         ({reason}); an event carrying personal data for it cannot be recorded, nor can an \
         erased event be retried. Record it without the personal fields"
    )]
    Erased {
        customer: CustomerId,
        path: &'static str,
        erased_at: chrono::DateTime<chrono::Utc>,
        reason: String,
    },
    #[error(
        "field /data/{path}: the value is withheld ({kind}), as a redacted export writes it; \
         import the export as stored (`export --personal as-stored`) or decrypted instead"
    )]
    Withheld {
        path: &'static str,
        kind: &'static str,
    },
    #[error(
        "field /data/{path}: the sealed value does not open with this ledger's key for customer \
         {customer} ({reason}); import it into the ledger that holds its keys, or import a \
         decrypted export"
    )]
    Unopenable {
        customer: CustomerId,
        path: &'static str,
        reason: OpenError,
    },
    #[error(
        "field /data/{path}: this ledger has no key store, so it cannot seal personal data; \
         open it with its master key (PIPELINE_LEDGER_MASTER_KEY_FILE)"
    )]
    NoKeyStore { path: &'static str },
    #[error(
        "a PersonalDataErased event for customer {customer} is written by `pipeline-ledger \
         forget`, which destroys the customer's key first; recording one by hand would claim an \
         erasure that did not happen"
    )]
    ErasureNotByForget { customer: CustomerId },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The associated data of a sealed field: which customer, which event, which field. A sealed
/// value copied anywhere else does not open.
pub fn context(customer: &CustomerId, event_id: Uuid, path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + path.len());
    out.extend_from_slice(b"pipeline-ledger/personal-field/1\0");
    out.extend_from_slice(customer.as_str().as_bytes());
    out.push(0);
    out.extend_from_slice(event_id.as_bytes());
    out.extend_from_slice(path.as_bytes());
    out
}

/// Whether events of this type can carry personal fields.
pub fn has_personal_fields_type(event_type: EventType) -> bool {
    matches!(
        event_type,
        EventType::LeadSourced | EventType::EventCorrected
    )
}

/// Whether the payload carries personal fields at all.
pub fn has_personal_fields(payload: &EventPayload) -> bool {
    matches!(payload, EventPayload::LeadSourced(_))
        || matches!(payload, EventPayload::EventCorrected(c)
            if matches!(&c.correction, crate::domain::Correction::Amend { replacement }
                if matches!(**replacement, EventPayload::LeadSourced(_))))
}

/// Whether any personal field of `payload` is plaintext (sealing it needs the customer's key
/// for writing; a payload whose fields are all sealed needs only to know the key's state).
pub fn has_plaintext(payload: &mut EventPayload) -> bool {
    payload
        .personal_fields_mut()
        .iter()
        .any(|(_, f)| matches!(f, PersonalText::Plain(_)))
}

/// Seals every plaintext personal field of `payload` with the customer's key (`key`: its state
/// in the key store; a customer with plaintext fields has a live key or an erasure). A sealed
/// field must open with a live key; under an erasure, or where this ledger has no key for the
/// customer (an as-stored export of another ledger), it is kept as it came: opaque ciphertext,
/// covered by the chain, which no one here can read. A field withheld as erased is kept (it holds
/// nothing personal); one withheld as redacted is refused, so that a redacted export is never
/// mistaken for the data.
/// Returns whether anything changed.
pub fn seal_payload(
    payload: &mut EventPayload,
    customer: &CustomerId,
    event_id: Uuid,
    key: &KeyState,
) -> Result<bool, SealError> {
    let mut changed = false;
    for (path, field) in payload.personal_fields_mut() {
        let ctx = || context(customer, event_id, path);
        match (&*field, key) {
            // What a decrypted export of an erased customer carries: it states that the value
            // is gone, and holds nothing personal.
            (PersonalText::Withheld(Withheld::Erased), _) => {}
            (PersonalText::Withheld(w), _) => {
                return Err(SealError::Withheld {
                    path,
                    kind: w.as_str(),
                });
            }
            (PersonalText::Plain(_), KeyState::Erased(erasure)) => {
                return Err(SealError::Erased {
                    customer: customer.clone(),
                    path,
                    erased_at: erasure.erased_at,
                    reason: erasure.reason.clone(),
                });
            }
            (PersonalText::Plain(_), KeyState::Missing) => {
                unreachable!("a customer with plaintext fields is given a key for writing")
            }
            (PersonalText::Plain(text), KeyState::Live(key)) => {
                *field = PersonalText::Sealed(key.seal(&ctx(), text));
                changed = true;
            }
            (PersonalText::Sealed(sealed), KeyState::Live(key)) => {
                key.open(&ctx(), sealed)
                    .map_err(|reason| SealError::Unopenable {
                        customer: customer.clone(),
                        path,
                        reason,
                    })?;
            }
            (PersonalText::Sealed(_), KeyState::Erased(_) | KeyState::Missing) => {}
        }
    }
    Ok(changed)
}

/// Seals a validated line's personal fields with its customer's key (or refuses it), and writes
/// its data again when anything was sealed.
pub fn seal_line(valid: &mut ValidLine, key: &KeyState) -> Result<(), SealError> {
    let customer = valid.proposed.customer_id.clone();
    let event_id = valid.proposed.event_id;
    if seal_payload(&mut valid.proposed.payload, &customer, event_id, key)? {
        // The same canonical form the validator stores: keys in order, no white space.
        valid.data = valid.proposed.payload.data_json().to_string();
    }
    Ok(())
}

/// What a reveal found, for `forget`'s count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldCounts {
    pub sealed: u64,
    pub plaintext: u64,
}

/// Counts the sealed and plaintext personal fields of a payload.
pub fn count_fields(payload: &mut EventPayload) -> FieldCounts {
    let mut counts = FieldCounts::default();
    for (_, field) in payload.personal_fields_mut() {
        match field {
            PersonalText::Plain(_) => counts.plaintext += 1,
            PersonalText::Sealed(_) => counts.sealed += 1,
            PersonalText::Withheld(_) => {}
        }
    }
    counts
}

/// Turns the personal fields of `event` into what a reader with `view` may see. `vault` is
/// `None` when the ledger holds no key store (every sealed field is then withheld).
pub fn reveal(
    event: &mut LedgerEvent,
    view: PersonalView,
    vault: Option<&Vault>,
) -> Result<(), VaultError> {
    if view == PersonalView::AsStored || !has_personal_fields(&event.payload) {
        return Ok(());
    }
    let state = match (view, vault) {
        (PersonalView::Decrypted, Some(v)) => Some(v.key(event.customer_id.as_str())?),
        (PersonalView::Redacted, Some(v)) => {
            v.erasure(event.customer_id.as_str()).map(KeyState::Erased)
        }
        _ => None,
    };
    let (customer, event_id) = (event.customer_id.clone(), event.event_id);
    for (path, field) in event.payload.personal_fields_mut() {
        let erased = matches!(state, Some(KeyState::Erased(_)));
        *field = match (&*field, &state) {
            (PersonalText::Withheld(w), _) => PersonalText::Withheld(*w),
            (PersonalText::Sealed(_), _) if erased => PersonalText::Withheld(Withheld::Erased),
            (PersonalText::Plain(text), _) if view == PersonalView::Decrypted => {
                PersonalText::Plain(text.clone())
            }
            (PersonalText::Sealed(sealed), Some(KeyState::Live(key)))
                if view == PersonalView::Decrypted =>
            {
                match key.open(&context(&customer, event_id, path), sealed) {
                    Ok(text) => PersonalText::Plain(text),
                    // A value that does not open is shown as not readable, never guessed;
                    // `verify` is what tells whether the log was changed.
                    Err(_) => PersonalText::Withheld(Withheld::Redacted),
                }
            }
            _ => PersonalText::Withheld(Withheld::Redacted),
        };
    }
    Ok(())
}
