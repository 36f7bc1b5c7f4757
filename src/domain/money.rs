//! Money: integer minor units and an ISO 4217 currency code. Never a float, so that sums are exact.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 alphabetic currency code (three upper-case letters).
///
/// Any three upper-case letters decode, so that every event already stored (and every store
/// written before the list below was checked) still reads; new input must name an active code
/// ([`Currency::active`], and the published schema's `enum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

/// The active ISO 4217 currency codes with their minor-unit exponents (decimal digits), sorted.
///
/// Source: ISO 4217 "List One" (current currency and funds code list) as published by its
/// maintenance agency, SIX, in its state of July 2025, cross-checked against Debian's iso-codes
/// 4.15.0 (`/usr/share/iso-codes/json/iso_4217.json`). Left out: the withdrawn HRK (2023),
/// SLL (replaced by SLE), ZWL (replaced by ZWG, 2024) and ANG (replaced by XCG, 2025); and the
/// entries whose minor unit is "N.A." (precious metals XAU, XAG, XPD, XPT; bond-market units
/// XBA–XBD; XDR, XSU, XUA; the testing code XTS and "no currency" XXX), because the ledger keeps
/// money in integer minor units and these have none. When ISO amends the list, amend this table
/// (a test checks it stays sorted and unique).
pub const ISO_4217_ACTIVE: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

impl JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<&str> = ISO_4217_ACTIVE.iter().map(|(code, _)| *code).collect();
        schemars::json_schema!({
            "description": "An active ISO 4217 alphabetic currency code (three upper-case letters, such as EUR) that has a minor unit.",
            "type": "string",
            "enum": codes,
        })
    }
}

/// Why a string is not a currency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("currency {0:?} is not an ISO 4217 code (three upper-case letters, such as EUR)")]
    NotACode(String),
    #[error(
        "currency {0:?} is not an active ISO 4217 currency with a minor unit (such as EUR, USD, CNY, JPY)"
    )]
    NotActive(String),
}

impl Currency {
    /// Parses a three-letter upper-case code, active or not: what stored events may hold.
    pub fn new(code: &str) -> Result<Self, CurrencyError> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(CurrencyError::NotACode(code.to_string()));
        }
        Ok(Self([bytes[0], bytes[1], bytes[2]]))
    }

    /// Parses an active ISO 4217 code ([`ISO_4217_ACTIVE`]): what new input must name.
    pub fn active(code: &str) -> Result<Self, CurrencyError> {
        let currency = Self::new(code)?;
        if !currency.is_active() {
            return Err(CurrencyError::NotActive(code.to_string()));
        }
        Ok(currency)
    }

    /// Whether the code is in [`ISO_4217_ACTIVE`].
    pub fn is_active(&self) -> bool {
        self.exponent().is_some()
    }

    fn exponent(&self) -> Option<u32> {
        ISO_4217_ACTIVE
            .binary_search_by(|(code, _)| code.as_bytes().cmp(&self.0[..]))
            .ok()
            .map(|i| ISO_4217_ACTIVE[i].1)
    }

    /// The code as a string.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored (checked in `new`).
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    /// How many decimal digits the currency's minor unit has (ISO 4217 exponent).
    /// Codes not in the list (only ever in events stored before it was checked) use two, the
    /// exponent of most currencies.
    pub fn minor_unit_digits(&self) -> u32 {
        self.exponent().unwrap_or(2)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Written by hand: a derived `Serialize` of `[u8; 3]` is an array of numbers, not the code.
impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::new(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Currency {
    type Err = CurrencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::new(s)
    }
}

/// An amount of money in minor units (cents for EUR, yen for JPY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// The amount in the currency's minor unit; never negative for contract values, and at most
    /// `limits::AMOUNT_MINOR_MAX` in new input.
    #[schemars(range(min = 0, max = crate::limits::AMOUNT_MINOR_MAX))]
    #[serde(deserialize_with = "non_negative")]
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: Currency,
}

/// Deserializes an amount and refuses a negative one, as the published schema does.
fn non_negative<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let amount = i64::deserialize(d)?;
    if amount < 0 {
        return Err(serde::de::Error::custom(format!(
            "amount_minor {amount} is negative; amounts are never negative"
        )));
    }
    Ok(amount)
}

/// Why a decimal string is not an amount of the given currency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount {0:?} is not a decimal number such as 1250.00")]
    NotDecimal(String),
    #[error("amount {amount:?} has more decimals than {currency} allows ({digits})")]
    TooPrecise {
        amount: String,
        currency: Currency,
        digits: u32,
    },
    #[error("amount {0:?} is too large")]
    Overflow(String),
}

impl Money {
    /// Parses a major-unit decimal string ("1250.50") into minor units of `currency`, exactly.
    pub fn from_decimal(amount: &str, currency: Currency) -> Result<Self, AmountError> {
        let digits = currency.minor_unit_digits();
        let not_decimal = || AmountError::NotDecimal(amount.to_string());
        let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_decimal());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) || (amount.contains('.') && frac.is_empty()) {
            return Err(not_decimal());
        }
        if frac.len() as u32 > digits {
            return Err(AmountError::TooPrecise {
                amount: amount.to_string(),
                currency,
                digits,
            });
        }
        let overflow = || AmountError::Overflow(amount.to_string());
        let whole: i64 = whole.parse().map_err(|_| overflow())?;
        let mut frac_minor: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| not_decimal())?
        };
        frac_minor *= 10i64.pow(digits - frac.len() as u32);
        let amount_minor = whole
            .checked_mul(10i64.pow(digits))
            .and_then(|m| m.checked_add(frac_minor))
            .ok_or_else(overflow)?;
        Ok(Money {
            amount_minor,
            currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_unit_digits();
        if digits == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let scale = 10i64.pow(digits);
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale as u64,
            abs % scale as u64,
            self.currency,
            width = digits as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(c: &str) -> Currency {
        Currency::new(c).unwrap()
    }

    #[test]
    fn decimal_amounts_convert_exactly_per_currency_exponent() {
        let check = |amount: &str, c: &str, minor: i64| {
            assert_eq!(
                Money::from_decimal(amount, cur(c)).unwrap().amount_minor,
                minor,
                "{amount} {c}"
            );
        };
        check("1250.50", "EUR", 125_050);
        check("1250.5", "EUR", 125_050);
        check("1250", "USD", 125_000);
        check("980000", "JPY", 980_000);
        check("1.234", "KWD", 1_234);
        check("0.01", "CNY", 1);
    }

    #[test]
    fn bad_amounts_are_refused_with_a_reason() {
        let eur = cur("EUR");
        assert!(matches!(
            Money::from_decimal("12.345", eur),
            Err(AmountError::TooPrecise { digits: 2, .. })
        ));
        for bad in ["", "-1", "1.", ".5", "1,5", "1e3", "abc"] {
            assert!(
                matches!(
                    Money::from_decimal(bad, eur),
                    Err(AmountError::NotDecimal(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Money::from_decimal("99999999999999999999", eur),
            Err(AmountError::Overflow(_))
        ));
    }

    #[test]
    fn only_active_codes_are_new_input_but_any_code_decodes() {
        for code in ["EUR", "USD", "CNY", "JPY", "KWD", "XCG", "ZWG", "CLF"] {
            assert!(Currency::active(code).is_ok(), "{code}");
        }
        for code in ["ZZZ", "HRK", "XAU", "XXX", "XTS", "AAA"] {
            assert_eq!(
                Currency::active(code),
                Err(CurrencyError::NotActive(code.to_string()))
            );
            // Stored events with such a code still decode.
            let v = serde_json::json!({"amount_minor": 1, "currency": code});
            assert_eq!(
                serde_json::from_value::<Money>(v)
                    .unwrap()
                    .currency
                    .as_str(),
                code
            );
        }
        assert!(matches!(
            Currency::active("eur"),
            Err(CurrencyError::NotACode(_))
        ));
    }

    #[test]
    fn the_iso_4217_table_is_sorted_unique_and_well_formed() {
        for pair in ISO_4217_ACTIVE.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{pair:?}");
        }
        for (code, digits) in ISO_4217_ACTIVE {
            assert!(Currency::new(code).is_ok(), "{code}");
            assert!(*digits <= 4, "{code}");
        }
        let digits = |c: &str| cur(c).minor_unit_digits();
        assert_eq!(
            [
                digits("EUR"),
                digits("JPY"),
                digits("KWD"),
                digits("CLF"),
                digits("XPF")
            ],
            [2, 0, 3, 4, 0]
        );
        assert_eq!(digits("ZZZ"), 2, "unknown stored codes keep two digits");
    }

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        assert!(Currency::new("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_serializes_with_the_currency_code_as_a_string() {
        let m = Money {
            amount_minor: 5,
            currency: cur("EUR"),
        };
        let v = serde_json::to_value(m).unwrap();
        assert_eq!(v, serde_json::json!({"amount_minor": 5, "currency": "EUR"}));
        assert_eq!(serde_json::from_value::<Money>(v).unwrap(), m);
    }

    #[test]
    fn a_negative_amount_is_refused_as_the_schema_does() {
        let v = serde_json::json!({"amount_minor": -1, "currency": "EUR"});
        let err = serde_json::from_value::<Money>(v).unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
    }

    #[test]
    fn money_displays_in_major_units() {
        let m = Money {
            amount_minor: 125_005,
            currency: cur("EUR"),
        };
        assert_eq!(m.to_string(), "1250.05 EUR");
        let y = Money {
            amount_minor: 980_000,
            currency: cur("JPY"),
        };
        assert_eq!(y.to_string(), "980000 JPY");
    }
}
