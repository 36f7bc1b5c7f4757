//! JSON text to a `serde_json::Value`, refusing an object that repeats a key.
//!
//! RFC 8259 leaves a repeated key undefined: serde_json keeps the last value, other readers keep
//! the first, so one line would mean two different events to two readers. `serde_json` has no
//! option to refuse them, so the full path parses through this visitor instead, which builds the
//! same `Value` and stops at the first repeated key, naming it and its JSON pointer. (The fast
//! path never accepts a repeated key: serde's derived envelope refuses a repeated field and the
//! canonical check of `data` refuses keys that are not strictly ascending.)

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// The first repeated key found: the key and the JSON pointer of its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepeatedKey {
    pub key: String,
    pub pointer: String,
}

/// Why text is not JSON with unique keys.
pub(crate) enum ParseError {
    Malformed(serde_json::Error),
    Repeated(RepeatedKey),
}

/// Parses `text` (one JSON value, nothing after it but whitespace) with unique keys.
pub(crate) fn parse(text: &str) -> Result<Value, ParseError> {
    let repeated = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Seed {
        pointer: String::new(),
        repeated: &repeated,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (result, repeated.into_inner()) {
        (_, Some(r)) => Err(ParseError::Repeated(r)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(ParseError::Malformed(e)),
    }
}

/// Escapes a key for a JSON pointer (RFC 6901): `~` as `~0`, `/` as `~1`.
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

struct Seed<'r> {
    /// The pointer of the value about to be read.
    pointer: String,
    repeated: &'r RefCell<Option<RepeatedKey>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = Seed {
                pointer: format!("{}/{}", self.pointer, items.len()),
                repeated: self.repeated,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let pointer = self.pointer.clone();
                let message = format!("key {key:?} repeated at {pointer:?}");
                *self.repeated.borrow_mut() = Some(RepeatedKey { key, pointer });
                return Err(de::Error::custom(message));
            }
            let seed = Seed {
                pointer: format!("{}/{}", self.pointer, pointer_token(&key)),
                repeated: self.repeated,
            };
            let value = map.next_value_seed(seed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_repeated(text: &str, key: &str, pointer: &str) {
        match parse(text) {
            Err(ParseError::Repeated(r)) => {
                assert_eq!(r.key, key, "{text}");
                assert_eq!(r.pointer, pointer, "{text}");
            }
            Err(ParseError::Malformed(e)) => panic!("{text}: malformed: {e}"),
            Ok(v) => panic!("{text}: accepted as {v}"),
        }
    }

    #[test]
    fn a_repeated_key_is_named_with_its_pointer() {
        check_repeated(r#"{"a":1,"a":2}"#, "a", "");
        check_repeated(r#"{"a":1,"b":{"c":1,"c":1}}"#, "c", "/b");
        check_repeated(r#"{"x":[{},{"k/~":1,"k/~":2}]}"#, "k/~", "/x/1");
        // The same key in different objects is fine.
        assert!(parse(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#).is_ok());
    }

    #[test]
    fn values_are_what_serde_json_builds() {
        for text in [
            r#"{"a":[1,-2,3.5,1e300,null,true,"s\u00e9"],"b":{},"c":18446744073709551615}"#,
            "  [ ]  ",
            "\"x\"",
            "-0",
            "0.1",
        ] {
            let ours = parse(text).unwrap_or_else(|_| panic!("{text}"));
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn malformed_text_is_refused_as_serde_json_refuses_it() {
        for text in ["", "{", "{} x", "[1,]", "{\"a\":}", "nul"] {
            let ours = match parse(text) {
                Err(ParseError::Malformed(e)) => e.to_string(),
                _ => panic!("{text:?} not refused as malformed"),
            };
            let theirs = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            assert_eq!(ours, theirs, "{text:?}");
        }
    }
}
