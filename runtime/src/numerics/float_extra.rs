//! E8M0, the unsigned power-of-two scale format of OCP MX: 2^(e−127) for e in 0..=254,
//! NaN at 0xFF, no zero and no sign.

use super::float::{exponent_of, pow2};
use super::rng::Draw;
use super::rounding::{Dyadic, Rounding};

/// Rounds `x` to E8M0. Zero, negative values and NaN have no E8M0 value and give NaN;
/// values below 2^-127 give 2^-127 and values above 2^127 saturate to 2^127 in every mode.
pub fn round_e8m0(x: f64, rounding: Rounding, draw: Draw<'_>) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return pow2(127);
    }
    let e = exponent_of(x);
    if e < -127 {
        return pow2(-127);
    }
    if e > 127 {
        return pow2(127);
    }
    // x = 2^e · (1 + frac): the gap is [2^e, 2^(e+1)] with k = 1 (odd: ties go up).
    let m = x / pow2(e) - 1.0; // exact
    let frac = Dyadic { rem: (m * pow2(52)) as u64, shift: 52 };
    let away = rounding.away_from_zero(&frac, false, true, draw);
    pow2((e + away as i32).min(127))
}

/// The E8M0 encoding of a value of the format (NaN → 0xFF).
pub fn encode_e8m0(v: f64) -> u8 {
    if v.is_nan() { 0xFF } else { (exponent_of(v) + 127) as u8 }
}

/// The value of an E8M0 encoding.
pub fn decode_e8m0(bits: u8) -> f64 {
    if bits == 0xFF { f64::NAN } else { pow2(bits as i32 - 127) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::rng::RandomStream;

    #[test]
    fn ties_go_up_as_in_ml_dtypes() {
        let d = RandomStream::new(0, 0);
        let r = |x: f64| round_e8m0(x, Rounding::Nearest, d.at(0));
        assert_eq!(r(1.5), 2.0);
        assert_eq!(r(3.0), 4.0);
        assert_eq!(r(1.4999), 1.0);
        assert_eq!(r(0.75), 1.0);
        assert!(r(0.0).is_nan() && r(-1.0).is_nan());
        assert_eq!(r(pow2(-128)), pow2(-127));
        assert_eq!(r(1e300), pow2(127));
        for b in 0..=255u8 {
            let v = decode_e8m0(b);
            assert_eq!(encode_e8m0(v), b);
        }
    }
}
