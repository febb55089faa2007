//! The topology-file form of [`Conditions`]: human units in, validated conditions out.
//!
//! Deserialisation goes through [`RawConditions`], whose fields accept the spellings people
//! write ("10ms", "1%", "10mbit"); the conversion to [`Conditions`] then validates, so a bad
//! value in a file is reported by the TOML parser with its line and column.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{ConditionError, Conditions, Distribution, GilbertElliott, Loss};

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConditions {
    /// A named preset whose values the other keys override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<RawJitter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss: Option<RawLoss>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    buffer: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reorder: Option<Fraction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duplicate: Option<Fraction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    corrupt: Option<Fraction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    impair_neighbour_discovery: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

/// `jitter = "2ms"` or `jitter = { amount = "2ms", distribution = "normal", correlation = "25%" }`.
#[derive(Serialize)]
#[serde(untagged)]
enum RawJitter {
    Amount(Span),
    Table(JitterTable),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JitterTable {
    amount: Span,
    #[serde(default)]
    distribution: Distribution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation: Option<Fraction>,
}

/// `loss = "1%"`, `loss = 0.01`, or a Gilbert–Elliott table.
#[derive(Serialize)]
#[serde(untagged)]
enum RawLoss {
    Random(Fraction),
    Model(LossModel),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
enum LossModel {
    GilbertElliott {
        p: Fraction,
        r: Fraction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss_bad: Option<Fraction>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss_good: Option<Fraction>,
    },
}

/// Conditions as a file writes them: a preset's name (`conditions = "mobile_3g"`) or a table
/// (which may name a preset too).
pub(super) enum FileConditions {
    Preset(String),
    Table(Box<RawConditions>),
}

impl<'de> Deserialize<'de> for FileConditions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> Visitor<'de> for Form {
            type Value = FileConditions;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a preset's name such as \"mobile_3g\", or a table of conditions")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<FileConditions, E> {
                Ok(FileConditions::Preset(value.to_string()))
            }

            fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<FileConditions, M::Error> {
                RawConditions::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|raw| FileConditions::Table(Box::new(raw)))
            }
        }
        deserializer.deserialize_any(Form)
    }
}

impl TryFrom<FileConditions> for Conditions {
    type Error = ConditionError;

    fn try_from(form: FileConditions) -> Result<Self, ConditionError> {
        match form {
            FileConditions::Preset(name) => Conditions::preset(&name),
            FileConditions::Table(raw) => Conditions::try_from(*raw),
        }
    }
}

impl TryFrom<RawConditions> for Conditions {
    type Error = ConditionError;

    /// The preset's values (a perfect link without one), with every key given in place of
    /// the preset's value.
    fn try_from(raw: RawConditions) -> Result<Self, ConditionError> {
        let mut conditions = match &raw.preset {
            Some(name) => Conditions::preset(name)?,
            None => Conditions::new(),
        };
        if let Some(Span(delay)) = raw.delay {
            conditions.delay = delay;
        }
        match raw.jitter {
            None => {}
            Some(RawJitter::Amount(Span(amount))) => conditions.jitter = amount,
            Some(RawJitter::Table(table)) => {
                conditions.jitter = table.amount.0;
                conditions.distribution = table.distribution;
                conditions.jitter_correlation = table.correlation.map_or(0.0, |c| c.0);
            }
        }
        match raw.loss {
            None => {}
            Some(RawLoss::Random(Fraction(p))) => conditions.loss = Loss::Random(p),
            Some(RawLoss::Model(LossModel::GilbertElliott { p, r, loss_bad, loss_good })) => {
                conditions.loss = Loss::GilbertElliott(GilbertElliott {
                    p: p.0,
                    r: r.0,
                    loss_bad: loss_bad.map_or(1.0, |f| f.0),
                    loss_good: loss_good.map_or(0.0, |f| f.0),
                });
            }
        }
        let or = |given: Option<Fraction>, preset: f64| given.map_or(preset, |f| f.0);
        conditions.rate = raw.rate.map(|r| r.0).or(conditions.rate);
        conditions.limit = raw.limit.or(conditions.limit);
        conditions.limit_bytes = raw.limit_bytes.or(conditions.limit_bytes);
        conditions.buffer = raw.buffer.map(|b| b.0).or(conditions.buffer);
        conditions.reorder = or(raw.reorder, conditions.reorder);
        conditions.duplicate = or(raw.duplicate, conditions.duplicate);
        conditions.corrupt = or(raw.corrupt, conditions.corrupt);
        conditions.impair_neighbour_discovery =
            raw.impair_neighbour_discovery.unwrap_or(conditions.impair_neighbour_discovery);
        conditions.seed = raw.seed.or(conditions.seed);
        conditions.validate()?;
        Ok(conditions)
    }
}

impl From<Conditions> for RawConditions {
    fn from(c: Conditions) -> Self {
        let some_fraction = |value: f64| (value > 0.0).then_some(Fraction(value));
        RawConditions {
            preset: None,
            delay: (!c.delay.is_zero()).then_some(Span(c.delay)),
            jitter: (!c.jitter.is_zero()).then(|| {
                if c.distribution == Distribution::Uniform && c.jitter_correlation == 0.0 {
                    RawJitter::Amount(Span(c.jitter))
                } else {
                    RawJitter::Table(JitterTable {
                        amount: Span(c.jitter),
                        distribution: c.distribution,
                        correlation: some_fraction(c.jitter_correlation),
                    })
                }
            }),
            loss: match c.loss {
                Loss::Random(p) => some_fraction(p).map(RawLoss::Random),
                Loss::GilbertElliott(ge) => Some(RawLoss::Model(LossModel::GilbertElliott {
                    p: Fraction(ge.p),
                    r: Fraction(ge.r),
                    loss_bad: Some(Fraction(ge.loss_bad)),
                    loss_good: Some(Fraction(ge.loss_good)),
                })),
            },
            rate: c.rate.map(Rate),
            limit: c.limit,
            limit_bytes: c.limit_bytes,
            buffer: c.buffer.map(Span),
            reorder: some_fraction(c.reorder),
            duplicate: some_fraction(c.duplicate),
            corrupt: some_fraction(c.corrupt),
            impair_neighbour_discovery: c.impair_neighbour_discovery.then_some(true),
            seed: c.seed,
        }
    }
}

/// A duration written with a unit: `"10ms"`, `"1.5ms"`, `"250us"`, `"2s"`, `"1s 500ms"`.
struct Span(Duration);

/// A probability: `"1%"`, `"0.5%"`, or a number from 0 to 1.
struct Fraction(f64);

/// A rate in bits per second: `"10mbit"`, `"10 Mbit/s"`, `"800kbit"`, or a plain number.
struct Rate(u64);

/// Durations are written as everywhere else: `"10ms"`, `"1.5ms"`, `"1s 500ms"`.
pub(super) use crate::time::parse_duration;

/// Parses `"1%"` or a fraction, and checks the range here, in the words the value was written
/// in: `loss = 5` (which almost certainly meant 5 %) and `loss = "150%"` are refused with the
/// value as written and the range.
pub(super) fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Some(number) = text.strip_suffix('%') {
        let percent: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a percentage"))?;
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!("\"{text}\" is out of range: a percentage is from \"0%\" to \"100%\""));
        }
        // Divided like iproute2 does, so that "0.1%" is the very same double as tc's.
        return Ok(percent / 100.0);
    }
    let value: f64 =
        text.parse().map_err(|_| format!("`{text}` is not a probability; write \"5%\" or 0.05"))?;
    fraction_from_number(value)
}

fn fraction_from_number(value: f64) -> Result<f64, String> {
    if !(0.0..=1.0).contains(&value) {
        return Err(format!(
            "{value} is out of range: a probability is a number from 0 to 1 (0.05), or a percentage \
             from \"0%\" to \"100%\" (\"5%\")"
        ));
    }
    Ok(value)
}

/// Parses a rate in bits per second. Units are decimal (1 kbit = 1000 bit), as in tc; tc's
/// `bps` (which means *bytes* per second there) is refused as ambiguous.
pub(super) fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix("/s").unwrap_or(&unit);
    let scale = match unit {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        _ => {
            return Err(format!(
                "`{text}` is not a rate; write bits per second with a unit: \"800kbit\", \"10mbit\", \"1.5gbit\""
            ));
        }
    };
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a rate"))?;
    let bits = (value * scale).round();
    if !(1.0..=u64::MAX as f64).contains(&bits) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bits as u64)
}

/// `20000000` as `20mbit`.
pub(super) fn format_rate(bits: u64) -> String {
    for (scale, unit) in
        [(1_000_000_000_000, "tbit"), (1_000_000_000, "gbit"), (1_000_000, "mbit"), (1_000, "kbit")]
    {
        if bits >= scale && bits % scale == 0 {
            return format!("{}{unit}", bits / scale);
        }
    }
    format!("{bits}bit")
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(self.0))
    }
}

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The number, not a percentage string: it reads back as exactly the same value.
        serializer.serialize_f64(self.0)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_rate(self.0))
    }
}

/// A visitor that takes a string (or, where `numbers` allows, a number) and parses it.
struct Text<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
    number: Option<fn(f64) -> Result<T, String>>,
}

impl<T> Visitor<'_> for Text<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        (self.parse)(value).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        match self.number {
            Some(number) => number(value).map_err(E::custom),
            None => Err(E::invalid_type(de::Unexpected::Float(value), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        match self.number {
            Some(number) => number(value as f64).map_err(E::custom),
            None => Err(E::invalid_type(de::Unexpected::Signed(value), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        match self.number {
            Some(number) => number(value as f64).map_err(E::custom),
            None => Err(E::invalid_type(de::Unexpected::Unsigned(value), &self)),
        }
    }
}

/// A visitor for a value written either as a scalar (a string, or a number where the scalar
/// takes one) or as a table, as `loss` and `jitter` are. Unlike `#[serde(untagged)]`, which
/// can only say that no form matched, it reports the error of the form that was written.
struct ScalarOrTable<S, T> {
    scalar: Text<S>,
    table: &'static str,
    form: std::marker::PhantomData<T>,
}

impl<'de, S, T: Deserialize<'de>> Visitor<'de> for ScalarOrTable<S, T> {
    type Value = Result<S, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, or a table {}", self.scalar.expecting, self.table)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        self.scalar.visit_str(value).map(Ok)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        self.scalar.visit_f64(value).map(Ok)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        self.scalar.visit_i64(value).map(Ok)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        self.scalar.visit_u64(value).map(Ok)
    }

    fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Err)
    }
}

impl<'de> Deserialize<'de> for RawLoss {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let form = deserializer.deserialize_any(ScalarOrTable::<Fraction, LossModel> {
            scalar: fraction_text(),
            table: "{ model = \"gilbert-elliott\", p, r, loss_bad, loss_good }",
            form: std::marker::PhantomData,
        })?;
        Ok(match form {
            Ok(fraction) => RawLoss::Random(fraction),
            Err(model) => RawLoss::Model(model),
        })
    }
}

impl<'de> Deserialize<'de> for RawJitter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let form = deserializer.deserialize_any(ScalarOrTable::<Span, JitterTable> {
            scalar: span_text(),
            table: "{ amount, distribution, correlation }",
            form: std::marker::PhantomData,
        })?;
        Ok(match form {
            Ok(span) => RawJitter::Amount(span),
            Err(table) => RawJitter::Table(table),
        })
    }
}

fn span_text() -> Text<Span> {
    Text {
        expecting: "a duration with a unit, such as \"10ms\"",
        parse: |text| parse_duration(text).map(Span),
        number: None,
    }
}

fn fraction_text() -> Text<Fraction> {
    Text {
        expecting: "a probability such as \"5%\" or 0.05",
        parse: |text| parse_fraction(text).map(Fraction),
        number: Some(|value| fraction_from_number(value).map(Fraction)),
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(span_text())
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(fraction_text())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Text {
            expecting: "a rate such as \"10mbit\" or a number of bits per second",
            parse: |text| parse_rate(text).map(Rate),
            number: Some(|value| {
                if value >= 1.0 && value.fract() == 0.0 && value <= u64::MAX as f64 {
                    Ok(Rate(value as u64))
                } else {
                    Err(format!("{value} is not a whole, positive number of bits per second"))
                }
            }),
        })
    }
}
