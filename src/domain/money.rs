//! Money: integer minor units and an ISO 4217 currency code. Never a float, so that sums are exact.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 alphabetic currency code (three upper-case letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub struct Currency(#[schemars(with = "CurrencySchema")] [u8; 3]);

/// Schema stand-in for [`Currency`]: a string of three upper-case letters.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct CurrencySchema(#[schemars(regex(pattern = "^[A-Z]{3}$"))] String);

/// Why a string is not a currency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency {0:?} is not an ISO 4217 code (three upper-case letters, such as EUR)")]
pub struct CurrencyError(pub String);

impl Currency {
    /// Parses a three-letter upper-case code.
    pub fn new(code: &str) -> Result<Self, CurrencyError> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(CurrencyError(code.to_string()));
        }
        Ok(Self([bytes[0], bytes[1], bytes[2]]))
    }

    /// The code as a string.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored (checked in `new`).
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    /// How many decimal digits the currency's minor unit has (ISO 4217 exponent).
    /// Codes not listed use two, the exponent of most currencies.
    pub fn minor_unit_digits(&self) -> u32 {
        match self.as_str() {
            "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
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
    /// The amount in the currency's minor unit; never negative for contract values.
    #[schemars(range(min = 0))]
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
