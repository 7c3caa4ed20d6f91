//! How numbers are read from and shown to the user.
//!
//! Values are shown exactly enough to read back to the same `f64` (the shortest such text),
//! in positional notation between 10^-4 and 10^9 and in scientific notation outside; errors
//! with three significant digits; `—` where a quantity is undefined.

use crate::cmd::CliError;

/// The mark for an undefined or absent quantity.
pub const NONE: &str = "—";

/// Parses a value: a decimal or scientific number, `inf`, `-inf` or `nan`.
pub fn parse_value(text: &str) -> Result<f64, CliError> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| CliError::new(format!("`{text}` is not a number (write e.g. `0.1`, `-3e-5`, `inf` or `nan`)")))
}

/// A value, exactly enough to read back to the same `f64`.
pub fn value(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else if x == 0.0 || (1e-4..1e9).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// A (non-negative) error with three significant digits; `—` for NaN (undefined).
pub fn error(x: f64) -> String {
    if x.is_nan() {
        NONE.into()
    } else if x.is_infinite() || x == 0.0 {
        value(x)
    } else {
        format!("{x:.2e}")
    }
}

/// An error in units in the last place: two decimals, which shows the position in the gap.
pub fn ulps(x: f64) -> String {
    if x.is_finite() { format!("{x:.2}") } else { error(x) }
}

/// A positive power of two as `2^k`; other values as [`value`].
pub fn power_of_two(x: f64) -> String {
    if x > 0.0 && x.is_finite() {
        let k = qc_runtime::numerics::float::exponent_of(x);
        if qc_runtime::numerics::float::pow2(k) == x {
            return format!("2^{k}");
        }
    }
    value(x)
}

/// Absolute and relative error of `q` as an approximation of `x` (NaN where undefined: a NaN
/// on either side; the relative error of a non-zero result for a zero input is infinite).
pub fn errors(x: f64, q: f64) -> (f64, f64) {
    if x.is_nan() || q.is_nan() {
        return (f64::NAN, f64::NAN);
    }
    if x == q {
        return (0.0, 0.0);
    }
    let abs = (q - x).abs();
    let rel = if x == 0.0 || x.is_infinite() { f64::INFINITY } else { abs / x.abs() };
    (abs, rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_exactly() {
        for x in [0.1, 1.0 / 3.0, 65504.0, 5.960464477539063e-8, 3.4028234663852886e38, -0.0, 1e-4, 1e9] {
            assert_eq!(value(x).parse::<f64>().unwrap().to_bits(), x.to_bits(), "{}", value(x));
        }
        assert_eq!(value(0.0999755859375), "0.0999755859375");
        assert_eq!(value(1e-5), "1e-5");
        assert_eq!(value(f64::NEG_INFINITY), "-inf");
        assert_eq!(error(2.44140625e-5), "2.44e-5");
        assert_eq!(power_of_two(2f64.powi(-24)), "2^-24");
        assert_eq!(power_of_two(448.0), "448");
    }

    #[test]
    fn errors_are_defined_where_they_make_sense() {
        assert_eq!(errors(0.1, 0.1), (0.0, 0.0));
        assert_eq!(errors(f64::INFINITY, f64::INFINITY), (0.0, 0.0));
        assert_eq!(errors(f64::INFINITY, 448.0), (f64::INFINITY, f64::INFINITY));
        assert_eq!(errors(0.0, 1.0), (1.0, f64::INFINITY));
        assert_eq!(errors(2.0, 1.5), (0.5, 0.25));
        assert!(errors(f64::NAN, f64::NAN).0.is_nan());
        assert!(parse_value("1e-3").is_ok() && parse_value("-inf").is_ok() && parse_value("abc").is_err());
    }
}
