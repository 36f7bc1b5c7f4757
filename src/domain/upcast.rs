//! Schema evolution: events are stored as they were written, with their schema version, and are
//! upcast to the current version when read. An upcaster turns version `n` data into version
//! `n + 1`; reading applies them in a chain up to [`EventType::current_version`].
//!
//! The one real upcast so far: `ContractSigned` version 1 carried the value as a major-unit
//! decimal string beside a `currency` field (`"value": "1250.50", "currency": "EUR"`); version 2
//! carries [`Money`] in integer minor units, so that no float or string arithmetic is ever needed.

use super::events::{EventPayload, EventType};
use super::ids::{DealId, RepId};
use super::money::{Currency, Money};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `ContractSigned` as written by schema version 1. Kept so that its schema stays published and
/// old events keep decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractSignedV1 {
    pub deal_id: DealId,
    pub rep_id: RepId,
    /// Decimal amount in major units, such as "1250.50".
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub value: String,
    pub currency: Currency,
    #[schemars(range(min = 1, max = 600))]
    #[serde(deserialize_with = "super::events::in_range::<_, u32, 1, 600>")]
    pub term_months: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_ref: Option<String>,
}

/// Why stored data could not be brought to the current version.
#[derive(Debug, thiserror::Error)]
pub enum UpcastError {
    #[error("{event_type} has no schema version {version} (known: 1 to {current})")]
    UnknownVersion {
        event_type: EventType,
        version: u32,
        current: u32,
    },
    #[error("{event_type} v{version} data does not match its schema: {source}")]
    BadData {
        event_type: EventType,
        version: u32,
        source: serde_json::Error,
    },
    #[error("{event_type} v{version}: {reason}")]
    Invalid {
        event_type: EventType,
        version: u32,
        reason: String,
    },
}

/// Decodes `data` written at `version` of `event_type` into the current typed payload.
pub fn decode(
    event_type: EventType,
    version: u32,
    data: serde_json::Value,
) -> Result<EventPayload, UpcastError> {
    let current = event_type.current_version();
    if version == 0 || version > current {
        return Err(UpcastError::UnknownVersion {
            event_type,
            version,
            current,
        });
    }
    let mut data = data;
    let mut at = version;
    while at < current {
        data = upcast_once(event_type, at, data)?;
        at += 1;
    }
    EventPayload::from_data(event_type, data).map_err(|source| UpcastError::BadData {
        event_type,
        version,
        source,
    })
}

/// Turns `data` of `version` into `version + 1`.
fn upcast_once(
    event_type: EventType,
    version: u32,
    data: serde_json::Value,
) -> Result<serde_json::Value, UpcastError> {
    match (event_type, version) {
        (EventType::ContractSigned, 1) => {
            let v1: ContractSignedV1 =
                serde_json::from_value(data).map_err(|source| UpcastError::BadData {
                    event_type,
                    version,
                    source,
                })?;
            let value =
                Money::from_decimal(&v1.value, v1.currency).map_err(|e| UpcastError::Invalid {
                    event_type,
                    version,
                    reason: e.to_string(),
                })?;
            let mut v2 = serde_json::json!({
                "deal_id": v1.deal_id,
                "rep_id": v1.rep_id,
                "value": value,
                "term_months": v1.term_months,
            });
            if let Some(r) = v1.contract_ref {
                v2["contract_ref"] = serde_json::Value::String(r);
            }
            Ok(v2)
        }
        // Every other type is at version 1, which `decode` has already ruled out here.
        _ => unreachable!("no upcaster for {event_type} v{version}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contract_v1_decimal_value_becomes_minor_units() {
        let v1 = json!({
            "deal_id": "d1", "rep_id": "r1", "value": "1250.50", "currency": "EUR",
            "term_months": 12, "contract_ref": "C-7"
        });
        let EventPayload::ContractSigned(c) = decode(EventType::ContractSigned, 1, v1).unwrap()
        else {
            panic!("wrong type")
        };
        assert_eq!(c.value.amount_minor, 125_050);
        assert_eq!(c.value.currency.as_str(), "EUR");
        assert_eq!(c.term_months, 12);
        assert_eq!(c.contract_ref.as_deref(), Some("C-7"));
    }

    #[test]
    fn current_version_decodes_without_upcast() {
        let v2 = json!({
            "deal_id": "d1", "rep_id": "r1",
            "value": {"amount_minor": 5, "currency": "JPY"}, "term_months": 1
        });
        assert!(decode(EventType::ContractSigned, 2, v2).is_ok());
    }

    #[test]
    fn unknown_versions_and_bad_v1_amounts_are_errors() {
        assert!(matches!(
            decode(EventType::ContractSigned, 3, json!({})),
            Err(UpcastError::UnknownVersion { current: 2, .. })
        ));
        assert!(matches!(
            decode(EventType::LeadSourced, 0, json!({})),
            Err(UpcastError::UnknownVersion { .. })
        ));
        let bad = json!({
            "deal_id": "d1", "rep_id": "r1", "value": "12.345", "currency": "EUR", "term_months": 1
        });
        assert!(matches!(
            decode(EventType::ContractSigned, 1, bad),
            Err(UpcastError::Invalid { .. })
        ));
    }
}
