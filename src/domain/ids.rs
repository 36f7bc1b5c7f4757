//! Identifiers of the domain: customers, reps, deals and the actors who record events.
//!
//! Identifiers are caller-chosen strings (CRM keys, employee numbers), so they are validated once,
//! where they enter, and are plain strings afterwards. The character set is deliberately narrow:
//! an identifier becomes part of a stream name (`customer-<id>`) in every backend.

use crate::limits::IDENT_BYTES_MAX;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier is {len} bytes long; the limit is {IDENT_BYTES_MAX}")]
    TooLong { len: usize },
    #[error(
        "identifier {value:?} contains {bad:?}; use letters, digits, '_', '-' or '.', starting with a letter or digit"
    )]
    BadCharacter { value: String, bad: char },
}

/// Checks that `value` is a valid identifier.
pub fn validate_ident(value: &str) -> Result<(), IdentError> {
    if value.is_empty() {
        return Err(IdentError::Empty);
    }
    if value.len() > IDENT_BYTES_MAX {
        return Err(IdentError::TooLong { len: value.len() });
    }
    for (i, c) in value.chars().enumerate() {
        let ok = c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(IdentError::BadCharacter {
                value: value.to_string(),
                bad: c,
            });
        }
    }
    Ok(())
}

/// The regular expression published in the schemas for every identifier.
pub const IDENT_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";

macro_rules! ident_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(
            #[schemars(regex(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"))] String,
        );

        impl $name {
            /// Validates and wraps an identifier.
            pub fn new(value: impl Into<String>) -> Result<Self, IdentError> {
                let value = value.into();
                validate_ident(&value)?;
                Ok(Self(value))
            }

            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdentError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

ident_type!(
    /// A customer: the company the ledger tracks; one event stream each.
    CustomerId
);
ident_type!(
    /// A sales rep (an employee who performs interactions).
    RepId
);
ident_type!(
    /// One round of the pipeline for a customer: a customer may have several deals over time.
    DealId
);
ident_type!(
    /// The user or system that recorded an event (a rep, an importer, an integration).
    ActorId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_pattern_spells_the_length_limit() {
        let rest = format!("{{0,{}}}$", IDENT_BYTES_MAX - 1);
        assert!(IDENT_PATTERN.ends_with(&rest), "{IDENT_PATTERN} vs {rest}");
    }

    #[test]
    fn accepts_typical_keys_and_rejects_the_rest() {
        for ok in ["c1", "cust-0001", "A.b_c-9", &"x".repeat(64)] {
            assert!(CustomerId::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(CustomerId::new(""), Err(IdentError::Empty));
        assert_eq!(
            CustomerId::new("x".repeat(65)),
            Err(IdentError::TooLong { len: 65 })
        );
        assert!(matches!(
            CustomerId::new("-lead"),
            Err(IdentError::BadCharacter { bad: '-', .. })
        ));
        assert!(matches!(
            CustomerId::new("a b"),
            Err(IdentError::BadCharacter { bad: ' ', .. })
        ));
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<RepId>("\"rep-1\"").is_ok());
        let err = serde_json::from_str::<RepId>("\"rep 1\"").unwrap_err();
        assert!(err.to_string().contains("' '"), "{err}");
    }
}
