//! Money in one home currency: the dated exchange rates sales ops keep in the policy (`fx`),
//! and the exact conversion of an amount in minor units at the rate in force on a date.
//!
//! Rates are decimals written as text (`"0.0061"`), never floats: a rate is an integer mantissa
//! and a decimal scale, and a conversion is one integer multiplication and one division,
//! rounded half away from zero to the home currency's minor unit. The definitions are in
//! `projections/README.md`, "Money in a home currency".

use crate::domain::Currency;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Significant digits a rate may have, and digits after its point: enough for any published
/// rate, and small enough that `amount × mantissa × 10^digits` of the largest amount, and the
/// divisor `10^(scale + digits)`, fit in an `i128`.
pub const FX_RATE_DIGITS_MAX: usize = 18;

/// The exchange rates of the policy: the home currency, the rates' version (stated by every
/// report that converts), and per currency the rates in force from each date on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FxPolicy {
    /// The currency every converted figure is in (ISO 4217, such as EUR).
    pub home_currency: String,
    /// Which rates these are (a date, a source): reports state it beside converted figures.
    pub version: String,
    /// Per currency, the rates in force from each `from` date until the next entry's date.
    pub rates: BTreeMap<String, Vec<FxRateEntry>>,
}

/// One rate: from this date on (UTC calendar date of an amount's `occurred_at`), one major
/// unit of the currency is `home_per_unit` major units of the home currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FxRateEntry {
    pub from: NaiveDate,
    /// A positive decimal, such as "0.0061" (at most [`FX_RATE_DIGITS_MAX`] digits).
    pub home_per_unit: String,
}

/// Why the policy's rates cannot be used; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FxPolicyError {
    #[error("fx.home_currency {0:?} is not an active ISO 4217 currency with a minor unit")]
    HomeCurrency(String),
    #[error("fx.version is empty; say which rates these are (a date, a source)")]
    NoVersion,
    #[error("fx.rates key {0:?} is not an active ISO 4217 currency with a minor unit")]
    Currency(String),
    #[error("fx.rates.{0} has no entries; give at least one, or leave the currency out")]
    NoEntries(String),
    #[error(
        "fx.rates.{currency}: the dates must rise, each once; {date} follows a date at or after it"
    )]
    Dates { currency: String, date: NaiveDate },
    #[error(
        "fx.rates.{currency} from {date}: home_per_unit {rate:?} is not a positive decimal of at most {FX_RATE_DIGITS_MAX} digits (such as \"0.0061\")"
    )]
    Rate {
        currency: String,
        date: NaiveDate,
        rate: String,
    },
}

/// A positive decimal: `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub mantissa: u64,
    pub scale: u32,
}

impl Rate {
    /// Parses `"12.5"`, `"0.0061"`, `"3"`: digits with at most one point, above zero.
    pub fn parse(text: &str) -> Option<Rate> {
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) {
            return None;
        }
        let digits = format!("{whole}{frac}");
        let significant = digits.trim_start_matches('0');
        if significant.is_empty()
            || significant.len() > FX_RATE_DIGITS_MAX
            || frac.len() > FX_RATE_DIGITS_MAX
        {
            return None;
        }
        Some(Rate {
            mantissa: significant.parse().ok()?,
            scale: frac.len() as u32,
        })
    }
}

impl FxPolicy {
    /// Checks the rates; each error names the field.
    pub fn check(&self) -> Result<(), FxPolicyError> {
        self.converter().map(|_| ())
    }

    /// The rates, parsed for converting.
    pub fn converter(&self) -> Result<Converter, FxPolicyError> {
        let home = Currency::active(&self.home_currency)
            .map_err(|_| FxPolicyError::HomeCurrency(self.home_currency.clone()))?;
        if self.version.trim().is_empty() {
            return Err(FxPolicyError::NoVersion);
        }
        let mut rates = HashMap::new();
        for (code, entries) in &self.rates {
            let currency =
                Currency::active(code).map_err(|_| FxPolicyError::Currency(code.clone()))?;
            if entries.is_empty() {
                return Err(FxPolicyError::NoEntries(code.clone()));
            }
            let mut parsed: Vec<(NaiveDate, Rate)> = Vec::with_capacity(entries.len());
            for e in entries {
                if parsed.last().is_some_and(|(d, _)| *d >= e.from) {
                    return Err(FxPolicyError::Dates {
                        currency: code.clone(),
                        date: e.from,
                    });
                }
                let rate = Rate::parse(&e.home_per_unit).ok_or_else(|| FxPolicyError::Rate {
                    currency: code.clone(),
                    date: e.from,
                    rate: e.home_per_unit.clone(),
                })?;
                parsed.push((e.from, rate));
            }
            rates.insert(currency, parsed);
        }
        Ok(Converter {
            home,
            version: self.version.clone(),
            rates,
        })
    }
}

/// Converts amounts into the home currency at the rate in force on a date.
#[derive(Debug, Clone)]
pub struct Converter {
    home: Currency,
    version: String,
    rates: HashMap<Currency, Vec<(NaiveDate, Rate)>>,
}

/// Why an amount has no value in the home currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unconvertible {
    /// The policy has no rate for the currency on or before the date.
    NoRate,
    /// The converted amount does not fit in an `i64` of minor units.
    Overflow,
}

impl Converter {
    /// The home currency.
    pub fn home(&self) -> Currency {
        self.home
    }

    /// The rates' version, as the policy states it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `amount_minor` of `currency`, on `date`, in minor units of the home currency: exact, then
    /// rounded half away from zero. The home currency converts to itself unchanged.
    pub fn convert(
        &self,
        amount_minor: i64,
        currency: Currency,
        date: NaiveDate,
    ) -> Result<i64, Unconvertible> {
        if currency == self.home {
            return Ok(amount_minor);
        }
        let entries = self.rates.get(&currency).ok_or(Unconvertible::NoRate)?;
        // The last entry in force on `date`: entries rise by date.
        let in_force = entries.partition_point(|(from, _)| *from <= date);
        let (_, rate) = entries
            .get(in_force.wrapping_sub(1))
            .filter(|_| in_force > 0)
            .ok_or(Unconvertible::NoRate)?;
        // amount × rate × 10^home_digits / 10^(scale + from_digits)
        let pow = |e: u32| 10i128.checked_pow(e).ok_or(Unconvertible::Overflow);
        let numerator = i128::from(amount_minor)
            .checked_mul(i128::from(rate.mantissa))
            .and_then(|n| n.checked_mul(pow(self.home.minor_unit_digits()).ok()?))
            .ok_or(Unconvertible::Overflow)?;
        let denominator = pow(rate.scale + currency.minor_unit_digits())?;
        let half = denominator / 2;
        let rounded = if numerator >= 0 {
            (numerator + half) / denominator
        } else {
            (numerator - half) / denominator
        };
        i64::try_from(rounded).map_err(|_| Unconvertible::Overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn policy() -> FxPolicy {
        FxPolicy {
            home_currency: "EUR".into(),
            version: "test rates".into(),
            rates: BTreeMap::from([
                (
                    "JPY".into(),
                    vec![
                        FxRateEntry {
                            from: day("2026-01-01"),
                            home_per_unit: "0.0062".into(),
                        },
                        FxRateEntry {
                            from: day("2026-07-01"),
                            home_per_unit: "0.0058".into(),
                        },
                    ],
                ),
                (
                    "USD".into(),
                    vec![FxRateEntry {
                        from: day("2026-01-01"),
                        home_per_unit: "0.92".into(),
                    }],
                ),
            ]),
        }
    }

    /// Given JPY at 0.0062 EUR from 1 January and 0.0058 from 1 July, when 1,000,000 JPY are
    /// converted on 30 June and on 1 July, then they are 6,200.00 and 5,800.00 EUR (in cents);
    /// 1.00 USD at 0.92 is 0.92 EUR; EUR stays as it is; a date before the first rate has none.
    #[test]
    fn amounts_convert_at_the_rate_in_force_on_their_date() {
        let c = policy().converter().unwrap();
        let jpy = Currency::active("JPY").unwrap();
        let usd = Currency::active("USD").unwrap();
        let eur = Currency::active("EUR").unwrap();
        assert_eq!(c.convert(1_000_000, jpy, day("2026-06-30")), Ok(620_000));
        assert_eq!(c.convert(1_000_000, jpy, day("2026-07-01")), Ok(580_000));
        assert_eq!(c.convert(100, usd, day("2026-03-01")), Ok(92));
        assert_eq!(c.convert(12_345, eur, day("2020-01-01")), Ok(12_345));
        assert_eq!(
            c.convert(100, jpy, day("2025-12-31")),
            Err(Unconvertible::NoRate)
        );
        let gbp = Currency::active("GBP").unwrap();
        assert_eq!(
            c.convert(100, gbp, day("2026-03-01")),
            Err(Unconvertible::NoRate)
        );
    }

    /// Half a home minor unit rounds away from zero: 1 JPY at 0.005 is half a cent → 1 cent;
    /// 1 JPY at 0.0049 → 0 cents.
    #[test]
    fn halves_round_away_from_zero() {
        let mut p = policy();
        p.rates.insert(
            "JPY".into(),
            vec![FxRateEntry {
                from: day("2026-01-01"),
                home_per_unit: "0.005".into(),
            }],
        );
        let jpy = Currency::active("JPY").unwrap();
        assert_eq!(
            p.converter().unwrap().convert(1, jpy, day("2026-02-01")),
            Ok(1)
        );
        p.rates.get_mut("JPY").unwrap()[0].home_per_unit = "0.0049".into();
        assert_eq!(
            p.converter().unwrap().convert(1, jpy, day("2026-02-01")),
            Ok(0)
        );
    }

    #[test]
    fn bad_rates_are_refused_naming_the_field() {
        let mut p = policy();
        p.home_currency = "XXX".into();
        assert_eq!(p.check(), Err(FxPolicyError::HomeCurrency("XXX".into())));
        for bad in [
            "0",
            "-1",
            "1e3",
            "",
            ".5",
            "1.2.3",
            "0.0000000000000000001",
            "1234567890.123456789",
        ] {
            let mut p = policy();
            p.rates.get_mut("USD").unwrap()[0].home_per_unit = bad.into();
            let err = p.check().unwrap_err();
            assert!(
                err.to_string().contains("fx.rates.USD from 2026-01-01"),
                "{bad}: {err}"
            );
        }
        let mut p = policy();
        p.rates.get_mut("JPY").unwrap()[1].from = day("2026-01-01");
        assert!(matches!(p.check(), Err(FxPolicyError::Dates { .. })));
        let mut p = policy();
        p.version = " ".into();
        assert_eq!(p.check(), Err(FxPolicyError::NoVersion));
    }

    proptest! {
        /// Converting is exact before rounding: the result differs from amount × rate by at
        /// most half a home minor unit, and a larger amount never converts to less.
        #[test]
        fn conversion_is_exact_up_to_half_a_minor_unit(
            amount in 0i64..1_000_000_000_000,
            mantissa in 1u64..10_000_000,
            scale in 0u32..9,
        ) {
            let rate = format!("{}", mantissa as f64 / 10f64.powi(scale as i32));
            prop_assume!(Rate::parse(&rate).is_some());
            let r = Rate::parse(&rate).unwrap();
            let mut p = policy();
            p.rates.insert("USD".into(), vec![FxRateEntry { from: day("2026-01-01"), home_per_unit: rate }]);
            let c = p.converter().unwrap();
            let usd = Currency::active("USD").unwrap();
            let got = c.convert(amount, usd, day("2026-02-01")).unwrap();
            // Exact: amount (cents) × mantissa / 10^scale, in cents of EUR.
            let exact_num = i128::from(amount) * i128::from(r.mantissa);
            let den = 10i128.pow(r.scale);
            let diff = (i128::from(got) * den - exact_num).abs();
            prop_assert!(diff * 2 <= den, "{} vs {}/{}", got, exact_num, den);
            let more = c.convert(amount + 1, usd, day("2026-02-01")).unwrap();
            prop_assert!(more >= got);
        }
    }
}
