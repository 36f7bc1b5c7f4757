//! The fast path of line validation: one pass of serde straight into typed structs, no
//! `serde_json::Value` and no JSON Schema walk, for the lines that make up nearly every import.
//!
//! It only ever *accepts*: whenever a line is anything but plainly valid, it answers `None` and
//! the caller runs the full path (`Value`, the published schema, typed decoding), which accepts or
//! refuses it exactly as before and names the field. So the fast path cannot change what is
//! refused or what an error says; what it must guarantee is that every line it accepts is one the
//! full path accepts, with the same result. It does so by taking only lines whose every schema
//! constraint is also checked by the types, plus the few checks here that the types leave to the
//! schema (formats of `uuid`, `date-time` and `date`, written to match the `jsonschema` crate):
//!
//! - the data's type is at its current version (upcasting stays on the full path);
//! - the type is not `EventCorrected`, whose tagged `correction` serde reads more leniently than
//!   the schema's `oneOf` (corrections are about one event in a hundred);
//! - `data` is already in canonical form ([`is_canonical`]: what the full path would store), so
//!   it is stored as given, without being re-serialized;
//! - every envelope string is free of escapes (borrowed from the line);
//! - it passes [`super::check_new_input`] (`recorded_at` not in the future, active currency).
//!
//! A repeated key is never accepted here: serde's derived `Envelope` refuses a repeated field, and
//! [`is_canonical`] refuses object keys that are not strictly ascending; the full path then names
//! the key (`unique.rs`).
//!
//! `tests/schemas/fast_path.rs` and `tests/schemas/fuzz_lines.rs` check that both paths agree on valid, invalid and mutated lines.

use super::{ValidLine, truncate_to_micros};
use crate::domain::{ActorId, CustomerId, EventPayload, EventType, ProposedEvent};
use crate::limits::PAYLOAD_BYTES_MAX;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

/// Deepest nesting the canonical check follows; deeper data takes the full path (serde_json's own
/// limit is 128, and no event type nests more than five levels).
const CANONICAL_DEPTH_MAX: usize = 32;

/// The envelope of a line, its strings borrowed from the line's text. Mirrors
/// [`super::InterchangeLine`], field for field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    event_id: &'a str,
    customer_id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema_version: u32,
    occurred_at: &'a str,
    #[serde(default, borrow)]
    recorded_at: Option<&'a str>,
    recorded_by: &'a str,
    #[serde(default, borrow)]
    correlation_id: Option<&'a str>,
    #[serde(default, borrow)]
    causation_id: Option<&'a str>,
    #[serde(borrow)]
    data: &'a RawValue,
    // Export only, ignored on import; read so that their types are still checked.
    #[serde(default)]
    #[allow(dead_code)]
    revision: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    position: Option<u64>,
}

/// The one format inside event data that the types do not check as strictly as the schema.
#[derive(Deserialize)]
struct DueOn<'a> {
    #[serde(default, borrow)]
    next_due_on: Option<&'a str>,
}

/// A valid line, or `None` when the full path has to decide.
pub(super) fn parse(text: &str) -> Option<ValidLine> {
    let line: Envelope<'_> = serde_json::from_str(text).ok()?;
    let event_type = EventType::parse(line.event_type)?;
    if line.schema_version != event_type.current_version()
        || event_type == EventType::EventCorrected
    {
        return None;
    }
    let data = line.data.get();
    if data.len() > PAYLOAD_BYTES_MAX || !is_canonical(data) {
        return None;
    }
    let payload = EventPayload::from_data_str(event_type, data).ok()?;
    if event_type == EventType::FollowUpLogged {
        let due: DueOn<'_> = serde_json::from_str(data).ok()?;
        if due.next_due_on.is_some_and(|d| !is_valid_date(d)) {
            return None;
        }
    }
    let proposed = ProposedEvent {
        event_id: uuid(line.event_id)?,
        customer_id: CustomerId::new(line.customer_id).ok()?,
        occurred_at: truncate_to_micros(date_time(line.occurred_at)?),
        recorded_at: match line.recorded_at {
            Some(t) => Some(truncate_to_micros(date_time(t)?)),
            None => None,
        },
        recorded_by: ActorId::new(line.recorded_by).ok()?,
        correlation_id: optional_uuid(line.correlation_id)?,
        causation_id: optional_uuid(line.causation_id)?,
        payload,
    };
    super::check_new_input(&proposed, Utc::now()).ok()?;
    Some(ValidLine {
        proposed,
        schema_version: line.schema_version,
        data: data.to_owned(),
    })
}

fn uuid(text: &str) -> Option<Uuid> {
    if !is_valid_uuid(text) {
        return None;
    }
    Uuid::parse_str(text).ok()
}

/// `Some(None)` for an absent id, `None` for an invalid one.
fn optional_uuid(text: Option<&str>) -> Option<Option<Uuid>> {
    match text {
        None => Some(None),
        Some(t) => uuid(t).map(Some),
    }
}

/// Parsed as serde parses the `DateTime<Utc>` of the full path, after the schema's format check.
fn date_time(text: &str) -> Option<DateTime<Utc>> {
    if !is_valid_date_time(text) {
        return None;
    }
    text.parse::<DateTime<Utc>>().ok()
}

/// The schema's `uuid` format as the `jsonschema` crate checks it: the hyphenated form, 36
/// characters, hex digits of either case. (The `uuid` crate also reads the simple, braced and URN
/// forms, which the schema refuses.)
pub(crate) fn is_valid_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The schema's `date` format as the `jsonschema` crate checks it: `YYYY-MM-DD`, a real day.
pub(crate) fn is_valid_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) =
        (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10]))
    else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// The schema's `date-time` format as the `jsonschema` crate checks it: a `date`, `T` or `t`,
/// then `HH:MM:SS`, optional fraction, and `Z`, `z` or a `±HH:MM` offset; a leap second only at
/// 23:59:60 UTC.
pub(crate) fn is_valid_date_time(text: &str) -> bool {
    let Some(t) = text.bytes().position(|b| b == b'T' || b == b't') else {
        return false;
    };
    is_valid_date(&text[..t]) && is_valid_time(&text.as_bytes()[t + 1..])
}

fn is_valid_time(b: &[u8]) -> bool {
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(hour), Some(minute), Some(second)) =
        (digits(&b[0..2]), digits(&b[3..5]), digits(&b[6..8]))
    else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut i = 8;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    let (sign, offset) = match b.get(i) {
        Some(b'Z' | b'z') => {
            return i == b.len() - 1 && (second != 60 || (hour == 23 && minute == 59));
        }
        Some(b'+') => (-1, &b[i + 1..]),
        Some(b'-') => (1, &b[i + 1..]),
        _ => return false,
    };
    if offset.len() != 5 || offset[2] != b':' {
        return false;
    }
    let (Some(off_h), Some(off_m)) = (digits(&offset[0..2]), digits(&offset[3..5])) else {
        return false;
    };
    if off_h > 23 || off_m > 59 {
        return false;
    }
    if second != 60 {
        return true;
    }
    // A leap second must fall at 23:59:60 UTC.
    let minutes = (hour as i32 * 60 + minute as i32 + sign * (off_h as i32 * 60 + off_m as i32))
        .rem_euclid(24 * 60);
    minutes == 23 * 60 + 59
}

/// The decimal value of a run of ASCII digits, `None` if any byte is not a digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// Whether `text` is exactly what the full path stores for the JSON value it denotes, that is,
/// what `serde_json::to_string(&serde_json::Value)` writes: no whitespace, object keys in
/// ascending byte order and never repeated, strings with only the escapes serde_json writes,
/// numbers as plain integers that fit `u64` (or `i64` when negative). Conservative: `false` for
/// anything it is unsure of (escaped keys, `\u` escapes, fractions), which then goes the full way.
pub(crate) fn is_canonical(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    canonical_value(b, &mut i, 0) && i == b.len()
}

fn canonical_value(b: &[u8], i: &mut usize, depth: usize) -> bool {
    if depth > CANONICAL_DEPTH_MAX {
        return false;
    }
    match b.get(*i) {
        Some(b'{') => canonical_object(b, i, depth),
        Some(b'[') => canonical_array(b, i, depth),
        Some(b'"') => canonical_string(b, i).is_some(),
        Some(b't') => literal(b, i, b"true"),
        Some(b'f') => literal(b, i, b"false"),
        Some(b'n') => literal(b, i, b"null"),
        Some(b'-' | b'0'..=b'9') => canonical_integer(b, i),
        _ => false,
    }
}

fn canonical_object(b: &[u8], i: &mut usize, depth: usize) -> bool {
    *i += 1;
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        return true;
    }
    let mut previous: Option<&[u8]> = None;
    loop {
        let Some(key) = canonical_string(b, i) else {
            return false;
        };
        // serde_json's map is a BTreeMap<String, _>: keys come out in byte order, and a repeated
        // key keeps only its last value. Escaped keys would need unescaping to compare.
        if key.contains(&b'\\') || previous.is_some_and(|p| p >= key) {
            return false;
        }
        previous = Some(key);
        if b.get(*i) != Some(&b':') {
            return false;
        }
        *i += 1;
        if !canonical_value(b, i, depth + 1) {
            return false;
        }
        match b.get(*i) {
            Some(b',') => *i += 1,
            Some(b'}') => {
                *i += 1;
                return true;
            }
            _ => return false,
        }
    }
}

fn canonical_array(b: &[u8], i: &mut usize, depth: usize) -> bool {
    *i += 1;
    if b.get(*i) == Some(&b']') {
        *i += 1;
        return true;
    }
    loop {
        if !canonical_value(b, i, depth + 1) {
            return false;
        }
        match b.get(*i) {
            Some(b',') => *i += 1,
            Some(b']') => {
                *i += 1;
                return true;
            }
            _ => return false,
        }
    }
}

/// The raw contents of a string whose escapes are those serde_json writes (other than `\u`).
/// The text is already known to be UTF-8.
fn canonical_string<'b>(b: &'b [u8], i: &mut usize) -> Option<&'b [u8]> {
    if b.get(*i) != Some(&b'"') {
        return None;
    }
    *i += 1;
    let start = *i;
    loop {
        match *b.get(*i)? {
            b'"' => {
                let contents = &b[start..*i];
                *i += 1;
                return Some(contents);
            }
            b'\\' => match b.get(*i + 1)? {
                b'"' | b'\\' | b'n' | b'r' | b't' | b'b' | b'f' => *i += 2,
                _ => return None,
            },
            0x00..=0x1f => return None,
            _ => *i += 1,
        }
    }
}

fn literal(b: &[u8], i: &mut usize, word: &[u8]) -> bool {
    if b[*i..].starts_with(word) {
        *i += word.len();
        true
    } else {
        false
    }
}

/// An integer as serde_json writes it: no leading zero, no `-0`, no fraction or exponent, and in
/// range (beyond `u64`/`i64` serde_json keeps a float and writes it differently).
fn canonical_integer(b: &[u8], i: &mut usize) -> bool {
    let start = *i;
    let negative = b[*i] == b'-';
    if negative {
        *i += 1;
    }
    match b.get(*i) {
        Some(b'0') if !negative => *i += 1,
        Some(b'1'..=b'9') => {
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
        }
        _ => return false,
    }
    if matches!(b.get(*i), Some(b'.' | b'e' | b'E')) {
        return false;
    }
    // Only ASCII digits and '-' were consumed.
    let text = std::str::from_utf8(&b[start..*i]).expect("ASCII");
    if negative {
        text.parse::<i64>().is_ok()
    } else {
        text.parse::<u64>().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn format_validator(format: &str) -> jsonschema::Validator {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&json!({"type": "string", "format": format}))
            .unwrap()
    }

    #[test]
    fn formats_agree_with_the_jsonschema_crate() {
        let cases = [
            "2025-04-09T08:07:16Z",
            "2025-04-09t08:07:16z",
            "2025-04-09T08:07:16.123456Z",
            "2025-04-09T08:07:16.Z",
            "2025-04-09T08:07:16+08:00",
            "2025-04-09T08:07:16-00:30",
            "2025-04-09T08:07:16+8:00",
            "2025-04-09T08:07:16+24:00",
            "2025-04-09 08:07:16Z",
            "2025-04-09T08:07:16",
            "2025-4-09T08:07:16Z",
            "+2025-04-09T08:07:16Z",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-00-01T00:00:00Z",
            "2025-01-00T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T22:59:60Z",
            "2016-12-31T15:59:60-08:00",
            "2016-12-31T23:59:60+01:00",
            "2025-04-09T24:00:00Z",
            "2025-04-09T08:60:00Z",
            "2025-04-09T08:07:16ZZ",
            "2025-04-09",
            "2025-04-09T",
            "２025-04-09",
            "0000-01-01",
            "1900-02-29",
            "2000-02-29",
            "",
            "T",
            "01961996-cf20-78d9-9202-8e3f163a22c6",
            "01961996-CF20-78D9-9202-8E3F163A22C6",
            "01961996cf2078d992028e3f163a22c6",
            "{01961996-cf20-78d9-9202-8e3f163a22c6}",
            "urn:uuid:01961996-cf20-78d9-9202-8e3f163a22c6",
            "01961996-cf20-78d9-9202-8e3f163a22cg",
            "01961996-cf20-78d9-9202_8e3f163a22c6",
        ];
        let date_time = format_validator("date-time");
        let date = format_validator("date");
        let uuid = format_validator("uuid");
        for case in cases {
            let v = json!(case);
            assert_eq!(
                is_valid_date_time(case),
                date_time.is_valid(&v),
                "date-time {case:?}"
            );
            assert_eq!(is_valid_date(case), date.is_valid(&v), "date {case:?}");
            assert_eq!(is_valid_uuid(case), uuid.is_valid(&v), "uuid {case:?}");
        }
    }

    #[test]
    fn what_serde_json_writes_is_canonical() {
        let values = [
            json!({}),
            json!([]),
            json!({"a": 1, "b": [true, false, null], "c": {"d": "e"}}),
            json!({"text": "quote \" back \\ nl \n tab \t cr \r bs \u{8} ff \u{c} ctl \u{1} del \u{7f} 寻找 😀"}),
            json!({"n": [0, 1, -1, u64::MAX, i64::MIN]}),
            json!({"B": 1, "a": 2, "aa": 3, "é": 4}),
        ];
        for v in values {
            let text = serde_json::to_string(&v).unwrap();
            // `\u0001` is written by serde_json but left to the full path here.
            assert_eq!(is_canonical(&text), !text.contains("\\u"), "{text}");
        }
    }

    #[test]
    fn anything_else_is_not_canonical() {
        for text in [
            "{\"b\":1,\"a\":2}",
            "{\"a\":1,\"a\":2}",
            "{\"a\": 1}",
            " {}",
            "{}\n",
            "{\"a\":1.0}",
            "{\"a\":1e3}",
            "{\"a\":-0}",
            "{\"a\":01}",
            "{\"a\":18446744073709551616}",
            "{\"a\":-9223372036854775809}",
            "{\"a\":\"\\/\"}",
            "{\"a\":\"\\u00e9\"}",
            "{\"a\\n\":1}",
            "{\"a\":\"\t\"}",
            "{\"a\":tru}",
            "{\"a\":[1,]}",
            "{\"a\":1,}",
            "{\"a\"}",
            "[",
            "",
        ] {
            assert!(!is_canonical(text), "{text:?}");
        }
    }

    #[test]
    fn canonical_text_is_what_the_full_path_stores() {
        for text in [
            "{\"a\":[1,-2,{\"b\":\"c\\\"d\"}],\"b\":null,\"c\":true}",
            "{\"company\":\"寻找 \\\\ 😀\",\"x\":18446744073709551615}",
        ] {
            assert!(is_canonical(text));
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&value).unwrap(), text);
        }
    }
}
