//! Personal data: the fields that name or reach a person (a contact's name, phone and e-mail, a
//! lead's free-text notes). The published schemas mark them `"x-personal-data": true`.
//!
//! On the wire and in the store such a field is one of three forms:
//! - plaintext, a JSON string (what producers send);
//! - sealed, `{"sealed": "<base64url>"}`: encrypted with the customer's data key (what the store
//!   keeps);
//! - withheld, `{"withheld": "erased" | "redacted"}`: what a reader gets when the key was
//!   destroyed (`forget`) or the reader may not see personal data.
//!
//! No projection reads these fields: reports never depend on personal data, so erasing it changes
//! no number (an Architecture Invariant).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// Why a personal field's value is not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Withheld {
    /// The customer's key was destroyed by `forget`: the value is gone for good.
    Erased,
    /// The reader may not see personal data, or has no key to open it.
    Redacted,
}

impl Withheld {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::Erased => "erased",
            Withheld::Redacted => "redacted",
        }
    }
}

/// A personal field's value: plaintext, sealed or withheld.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PersonalText {
    Plain(String),
    /// The base64url text of a sealed value (see `keys::data_key`).
    Sealed(String),
    Withheld(Withheld),
}

impl PersonalText {
    /// The plaintext, when it is plaintext.
    pub fn plain(&self) -> Option<&str> {
        match self {
            PersonalText::Plain(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for PersonalText {
    fn from(s: &str) -> Self {
        PersonalText::Plain(s.to_string())
    }
}

impl From<String> for PersonalText {
    fn from(s: String) -> Self {
        PersonalText::Plain(s)
    }
}

impl Serialize for PersonalText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            PersonalText::Plain(s) => serializer.serialize_str(s),
            PersonalText::Sealed(s) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("sealed", s)?;
                map.end()
            }
            PersonalText::Withheld(w) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("withheld", w.as_str())?;
                map.end()
            }
        }
    }
}

struct PersonalVisitor;

impl<'de> Visitor<'de> for PersonalVisitor {
    type Value = PersonalText;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(r#"a string, {"sealed": "…"} or {"withheld": "erased"|"redacted"}"#)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PersonalText, E> {
        Ok(PersonalText::Plain(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<PersonalText, E> {
        Ok(PersonalText::Plain(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PersonalText, A::Error> {
        let Some(key) = map.next_key::<Cow<'de, str>>()? else {
            return Err(de::Error::custom("an empty object is not a personal field"));
        };
        let value = match &*key {
            "sealed" => {
                let sealed = map.next_value::<String>()?;
                // What the published schema allows: base64url, never empty.
                let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
                if sealed.is_empty() || !sealed.bytes().all(base64url) {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Str(&sealed),
                        &"base64url text (A-Z, a-z, 0-9, - and _)",
                    ));
                }
                PersonalText::Sealed(sealed)
            }
            "withheld" => match &*map.next_value::<Cow<'de, str>>()? {
                "erased" => PersonalText::Withheld(Withheld::Erased),
                "redacted" => PersonalText::Withheld(Withheld::Redacted),
                other => {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Str(other),
                        &"erased or redacted",
                    ));
                }
            },
            other => return Err(de::Error::unknown_field(other, &["sealed", "withheld"])),
        };
        if map.next_key::<Cow<'de, str>>()?.is_some() {
            return Err(de::Error::custom("a personal field's object has one key"));
        }
        Ok(value)
    }
}

impl<'de> Deserialize<'de> for PersonalText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PersonalVisitor)
    }
}

impl JsonSchema for PersonalText {
    fn schema_name() -> Cow<'static, str> {
        "PersonalText".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Personal data. Plaintext as sent; sealed (encrypted with the \
                customer's data key) as stored; withheld when erased or not shown to the reader.",
            "x-personal-data": true,
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "sealed": { "type": "string", "pattern": "^[A-Za-z0-9_-]+$" }
                    },
                    "required": ["sealed"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "withheld": { "enum": ["erased", "redacted"] } },
                    "required": ["withheld"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_reads_back_as_written() {
        for (json, value) in [
            (r#""Li Wei""#, PersonalText::Plain("Li Wei".into())),
            (r#"{"sealed":"AQID"}"#, PersonalText::Sealed("AQID".into())),
            (
                r#"{"withheld":"erased"}"#,
                PersonalText::Withheld(Withheld::Erased),
            ),
            (
                r#"{"withheld":"redacted"}"#,
                PersonalText::Withheld(Withheld::Redacted),
            ),
        ] {
            assert_eq!(serde_json::from_str::<PersonalText>(json).unwrap(), value);
            assert_eq!(serde_json::to_string(&value).unwrap(), json);
        }
        for bad in [
            "{}",
            r#"{"sealed":"a","withheld":"erased"}"#,
            r#"{"withheld":"gone"}"#,
            r#"{"name":"x"}"#,
            r#"{"sealed":""}"#,
            r#"{"sealed":"a b"}"#,
            "3",
        ] {
            assert!(serde_json::from_str::<PersonalText>(bad).is_err(), "{bad}");
        }
    }
}
