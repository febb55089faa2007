//! Validation: every value of [`Conditions`] in range, checked once, before anything carries
//! the conditions; [`ValidConditions`] is what passed.

use std::time::Duration;

use super::{ConditionError, Conditions, Loss, MAX_DELAY, percent};

impl Conditions {
    /// Checks every value, returning the first invalid one.
    ///
    /// # Errors
    /// A [`ConditionError`] naming the field, the value and the allowed range.
    pub fn validate(&self) -> Result<(), ConditionError> {
        let duration = |field: &'static str, value: Duration| {
            if value > MAX_DELAY {
                return Err(ConditionError::new(
                    field,
                    humantime::format_duration(value),
                    "must be at most 1h",
                ));
            }
            Ok(())
        };
        duration("delay", self.delay)?;
        duration("jitter", self.jitter)?;
        let fraction = |field: &'static str, value: f64| check_fraction(field, value);
        fraction("jitter.correlation", self.jitter_correlation)?;
        if self.jitter_correlation >= 1.0 {
            return Err(ConditionError::new(
                "jitter.correlation",
                self.jitter_correlation,
                "must be below 1 (at 1 the jitter never changes)",
            ));
        }
        match self.loss {
            Loss::Random(p) => fraction("loss", p)?,
            Loss::GilbertElliott(ge) => {
                fraction("loss.p", ge.p)?;
                fraction("loss.r", ge.r)?;
                fraction("loss.loss_bad", ge.loss_bad)?;
                fraction("loss.loss_good", ge.loss_good)?;
            }
        }
        if self.rate == Some(0) {
            return Err(ConditionError::new(
                "rate",
                0,
                "must be positive; leave it out for an unlimited link",
            ));
        }
        if self.limit == Some(0) {
            return Err(ConditionError::new("limit", 0, "must be at least 1 packet"));
        }
        if self.limit_bytes == Some(0) {
            return Err(ConditionError::new("limit_bytes", 0, "must be at least 1 byte"));
        }
        if let Some(buffer) = self.buffer {
            if buffer.is_zero() {
                return Err(ConditionError::new("buffer", "0s", "must be longer than zero"));
            }
            duration("buffer", buffer)?;
            if self.rate.is_none() {
                return Err(ConditionError::new(
                    "buffer",
                    humantime::format_duration(buffer),
                    "needs a rate: the buffer is the time the rate limiter's queue may hold",
                ));
            }
        }
        fraction("reorder", self.reorder)?;
        if self.reorder > 0.0 && self.delay.is_zero() {
            return Err(ConditionError::new(
                "reorder",
                percent(self.reorder),
                "needs a delay: reordered packets are the ones that skip it",
            ));
        }
        fraction("duplicate", self.duplicate)?;
        fraction("corrupt", self.corrupt)?;
        Ok(())
    }
}

/// Checks a schedule of periodic outages: `length` of every `every`, both longer than zero,
/// each outage shorter than its period. The one check of the builder, the file and runtime.
pub(crate) fn validate_outages(every: Duration, length: Duration) -> Result<(), ConditionError> {
    let text = |d: Duration| humantime::format_duration(d).to_string();
    let value = format!("every {} for {}", text(every), text(length));
    if every.is_zero() || length.is_zero() {
        return Err(ConditionError::new(
            "outages",
            value,
            "the period and the length must be longer than zero",
        ));
    }
    if length >= every {
        return Err(ConditionError::new(
            "outages",
            value,
            "each outage must be shorter than the period, or the link never comes back (use a cut for that)",
        ));
    }
    Ok(())
}

/// Conditions that passed [`Conditions::validate`]: what the backends that apply conditions
/// take, so that none of them is ever handed conditions that were not checked (netem's
/// encoding would clamp an out-of-range value silently). A perfect link is valid.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ValidConditions(Conditions);

impl ValidConditions {
    /// Validates `conditions`.
    ///
    /// # Errors
    /// The [`ConditionError`] of [`Conditions::validate`].
    pub(crate) fn new(conditions: Conditions) -> Result<Self, ConditionError> {
        conditions.validate()?;
        Ok(ValidConditions(conditions))
    }

    /// The conditions themselves.
    pub(crate) fn into_inner(self) -> Conditions {
        self.0
    }
}

impl std::ops::Deref for ValidConditions {
    type Target = Conditions;

    fn deref(&self) -> &Conditions {
        &self.0
    }
}

fn check_fraction(field: &'static str, value: f64) -> Result<(), ConditionError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConditionError::new(field, value, "must be a probability from 0 to 1 (0.05 is 5 %)"))
    }
}
