//! Custom floating-point formats `fp<E,M,options>`: the descriptor, exact rounding of any
//! `f64` to the format, and the bit encoding.
//!
//! This is the reference path: integer arithmetic on the `f64`'s significand, correct for
//! every input and every rounding mode. The vectorised `f32` path in `float_fast` must agree
//! with it to the bit (tested exhaustively and by property tests).

use super::rng::Draw;
use super::rounding::{low_bits, Dyadic, Rounding};
use std::fmt;

/// Where a format keeps its special values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Specials {
    /// IEEE 754: the all-ones exponent holds ±∞ (mantissa 0) and NaN (otherwise).
    Ieee,
    /// OCP "fn": no infinities; NaN only where exponent and mantissa are all ones.
    Fn,
    /// "fnuz": no infinities, no negative zero; NaN is the negative-zero pattern `1000…0`.
    Fnuz,
    /// No special values: every pattern is a finite number.
    None,
}

/// A sign–exponent–mantissa format.
///
/// Without subnormals, exponent field 0 encodes only zero (mantissa bits there are
/// non-canonical and decode as zero) and the smallest magnitude is `2^(1−bias)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FloatFormat {
    pub exp_bits: u32,
    pub man_bits: u32,
    pub bias: i32,
    pub subnormals: bool,
    pub specials: Specials,
    /// Overflow goes to ±max instead of ±∞ (always the case without infinities).
    pub saturate: bool,
}

/// Why a value has no encoding in a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The format has no NaN.
    NoNan,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NoNan => f.write_str("the format has no NaN encoding"),
        }
    }
}

impl FloatFormat {
    /// `fp<E,M>` with IEEE defaults: bias 2^(E−1)−1, subnormals, ±∞ and NaN.
    pub const fn ieee(exp_bits: u32, man_bits: u32) -> Self {
        FloatFormat {
            exp_bits,
            man_bits,
            bias: (1 << (exp_bits - 1)) - 1,
            subnormals: true,
            specials: Specials::Ieee,
            saturate: false,
        }
    }

    pub const fn with_specials(mut self, specials: Specials) -> Self {
        self.specials = specials;
        self
    }
    pub const fn with_bias(mut self, bias: i32) -> Self {
        self.bias = bias;
        self
    }
    pub const fn without_subnormals(mut self) -> Self {
        self.subnormals = false;
        self
    }

    /// Checks the parameters: E in 1..=8, M in 0..=23, and every value a float32.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=8).contains(&self.exp_bits) {
            return Err(format!("exponent bits must be 1 to 8, not {}", self.exp_bits));
        }
        if self.man_bits > 23 {
            return Err(format!("mantissa bits must be 0 to 23, not {}", self.man_bits));
        }
        if self.specials == Specials::Ieee && self.exp_bits == 1 {
            return Err("with IEEE specials a 1-bit exponent leaves no finite normal numbers; use `fn`, `fnuz` or `nospecials`".into());
        }
        if self.specials == Specials::Fn && self.man_bits == 0 && self.exp_bits == 1 {
            return Err("fp<1,0,fn> has no finite non-zero value".into());
        }
        let (lo, hi) = (self.min_positive_exponent(), self.emax());
        if hi > 127 || lo < -149 {
            return Err(format!(
                "with bias {} the magnitudes span 2^{lo}..2^{} which leaves float32's range 2^-149..2^127",
                self.bias,
                hi + 1
            ));
        }
        Ok(())
    }

    pub const fn bits(&self) -> u32 {
        1 + self.exp_bits + self.man_bits
    }

    fn top_field(&self) -> u32 {
        (1 << self.exp_bits) - 1
    }

    fn man_mask(&self) -> u32 {
        (1u32 << self.man_bits) - 1
    }

    /// The exponent of the smallest normal binade, `1 − bias`.
    pub fn emin(&self) -> i32 {
        1 - self.bias
    }

    /// The largest encoding of a finite positive number, and its exponent field.
    fn max_finite_pattern(&self) -> u32 {
        let top = self.top_field();
        let m = self.man_mask();
        match self.specials {
            Specials::Ieee => ((top - 1) << self.man_bits) | m,
            Specials::Fnuz | Specials::None => (top << self.man_bits) | m,
            Specials::Fn => {
                if self.man_bits == 0 {
                    (top - 1) << self.man_bits
                } else {
                    (top << self.man_bits) | (m - 1)
                }
            }
        }
    }

    /// The exponent of the largest finite binade.
    pub fn emax(&self) -> i32 {
        (self.max_finite_pattern() >> self.man_bits) as i32 - self.bias
    }

    /// log2 of the smallest positive value.
    pub fn min_positive_exponent(&self) -> i32 {
        if self.subnormals { self.emin() - self.man_bits as i32 } else { self.emin() }
    }

    pub fn max(&self) -> f64 {
        self.decode(self.max_finite_pattern())
    }
    pub fn min_normal(&self) -> f64 {
        pow2(self.emin())
    }
    /// The smallest positive value (a subnormal when the format has them).
    pub fn min_positive(&self) -> f64 {
        pow2(self.min_positive_exponent())
    }
    /// The gap between 1 and the next larger value.
    pub fn epsilon(&self) -> f64 {
        pow2(-(self.man_bits as i32))
    }
    pub fn has_inf(&self) -> bool {
        self.specials == Specials::Ieee
    }
    pub fn has_nan(&self) -> bool {
        match self.specials {
            Specials::Ieee => self.man_bits > 0,
            Specials::Fn | Specials::Fnuz => true,
            Specials::None => false,
        }
    }
    pub fn has_negative_zero(&self) -> bool {
        self.specials != Specials::Fnuz
    }
    /// The number of finite values (+0 and −0 counted once).
    pub fn finite_count(&self) -> u64 {
        let per_sign = self.max_finite_pattern() as u64 + 1; // 0 ..= max pattern
        let per_sign = if self.subnormals { per_sign } else { per_sign - self.man_mask() as u64 };
        2 * per_sign - 1
    }

    /// Whether `bits` is the encoding `encode(decode(bits))` gives back: false for the
    /// mantissa bits of exponent field 0 without subnormals and for non-canonical NaNs.
    pub fn is_canonical(&self, bits: u32) -> bool {
        let v = self.decode(bits);
        match self.encode(v) {
            Ok(b) => b == bits,
            Err(_) => false,
        }
    }

    /// The value of an encoding (exact: every value of a valid format is a float32).
    pub fn decode(&self, bits: u32) -> f64 {
        let m_bits = self.man_bits;
        let sign_bit = 1u32 << (self.exp_bits + m_bits);
        let negative = bits & sign_bit != 0;
        let field = (bits >> m_bits) & self.top_field();
        let man = bits & self.man_mask();
        let sign = if negative { -1.0 } else { 1.0 };
        match self.specials {
            Specials::Ieee if field == self.top_field() => {
                return if man == 0 { sign * f64::INFINITY } else { f64::NAN.copysign(sign) };
            }
            Specials::Fn if field == self.top_field() && man == self.man_mask() => return f64::NAN.copysign(sign),
            Specials::Fnuz if negative && field == 0 && man == 0 => return -f64::NAN,
            _ => {}
        }
        let magnitude = if field == 0 {
            if self.subnormals { man as f64 * pow2(self.emin() - m_bits as i32) } else { 0.0 }
        } else {
            ((1u64 << m_bits) + man as u64) as f64 * pow2(field as i32 - self.bias - m_bits as i32)
        };
        sign * magnitude
    }

    /// The canonical encoding of `x` after rounding it to nearest-even.
    pub fn encode(&self, x: f64) -> Result<u32, EncodeError> {
        let v = self.round(x, Rounding::Nearest, super::rng::RandomStream::new(0, 0).at(0));
        self.encode_value(v)
    }

    /// Rounds `src` by `rounding` (element `i` drawing at index `base + i`) and returns the
    /// encodings of the results: the bit-pattern form of `float_fast::quantize_slice`.
    pub fn encode_slice(&self, src: &[f32], rounding: Rounding, rng: &super::rng::RandomStream, base: u64) -> Result<Vec<u32>, EncodeError> {
        let mut values = vec![0f32; src.len()];
        super::float_fast::quantize_slice(self, rounding, rng, base, src, &mut values);
        values.iter().map(|&v| self.encode_value(v as f64)).collect()
    }

    /// The encoding of a value of the format (or of ±∞/NaN where the format has them),
    /// without rounding: `v` must be one of the format's values.
    pub fn encode_value(&self, v: f64) -> Result<u32, EncodeError> {
        let m_bits = self.man_bits;
        let sign = if v.is_sign_negative() && self.has_negative_zero() || v < 0.0 {
            1u32 << (self.exp_bits + m_bits)
        } else {
            0
        };
        if v.is_nan() {
            return match self.specials {
                Specials::Ieee if m_bits > 0 => Ok(sign | (self.top_field() << m_bits) | (1 << (m_bits - 1))),
                Specials::Fn => Ok(sign | (self.top_field() << m_bits) | self.man_mask()),
                Specials::Fnuz => Ok(1u32 << (self.exp_bits + m_bits)),
                _ => Err(EncodeError::NoNan),
            };
        }
        let a = v.abs();
        if a.is_infinite() {
            return Ok(sign | (self.top_field() << m_bits));
        }
        if a == 0.0 {
            return Ok(sign);
        }
        let e = exponent_of(a);
        let (field, man) = if e < self.emin() {
            (0, (a / pow2(self.emin() - m_bits as i32)) as u32)
        } else {
            ((e + self.bias) as u32, ((a / pow2(e - m_bits as i32)) as u64 - (1u64 << m_bits)) as u32)
        };
        Ok(sign | (field << m_bits) | man)
    }

    /// Rounds `x` to the format: the value of the format that `rounding` selects from the
    /// exact value of `x` (±∞ on IEEE overflow; NaN stays NaN).
    pub fn round(&self, x: f64, rounding: Rounding, draw: Draw<'_>) -> f64 {
        if x.is_nan() {
            return f64::NAN.copysign(x); // NaN stays NaN, with its sign
        }
        let negative = x.is_sign_negative();
        let a = x.abs();
        let signed = |m: f64| if negative && (m != 0.0 || self.has_negative_zero()) { -m } else { m };
        if a.is_infinite() {
            return signed(if self.has_inf() { f64::INFINITY } else { self.max() });
        }
        if a == 0.0 {
            return signed(0.0);
        }
        let (sig, q) = significand(a);
        let e = q + 63 - sig.leading_zeros() as i32;
        if e > self.emax() {
            return signed(self.overflow(negative, rounding));
        }
        let m = self.man_bits as i32;
        let s = if e >= self.emin() {
            e - m
        } else if self.subnormals {
            self.emin() - m
        } else {
            self.emin() // the gap [0, 2^emin]
        };
        let result = round_magnitude_to_grid(sig, q, s, negative, rounding, draw);
        if result > self.max() {
            return signed(self.overflow(negative, rounding));
        }
        signed(result)
    }

    /// The magnitude an overflowing value rounds to.
    fn overflow(&self, negative: bool, rounding: Rounding) -> f64 {
        let to_inf = match rounding {
            Rounding::TowardZero => false,
            Rounding::Up => !negative,
            Rounding::Down => negative,
            _ => true,
        };
        if to_inf && self.has_inf() && !self.saturate { f64::INFINITY } else { self.max() }
    }

    /// Every finite value and the specials, in encoding order, for formats up to 16 bits.
    pub fn all_encodings(&self) -> Option<impl Iterator<Item = (u32, f64)> + '_> {
        (self.bits() <= 16).then(|| (0..1u32 << self.bits()).map(move |b| (b, self.decode(b))))
    }
}

/// [`FloatFormat::round`] with one rounding mode and the format's constants computed once, for
/// rounding many values one at a time. A finite `x` whose exponent lies in the format's normal
/// range rounds on its f64 bits: the grid there is the f64 values whose low `52 − M`
/// significand bits are zero, so those bits are the whole fraction of the gap; adding the
/// rounding's carry to the truncated bits steps into the next binade when it overflows the
/// significand, and a result above the largest value is an overflow. A normal f64 below the
/// format's normal range rounds onto the fixed grid there (the subnormal spacing, or `2^emin`
/// without subnormals) as the reference does, with the spacing precomputed. Every other `x`
/// (zero, an f64 subnormal, above the normal range, ±∞, NaN) takes [`FloatFormat::round`].
/// The same decision ([`Rounding::away_from_zero`] on the same fraction) makes the bits agree.
#[derive(Clone, Copy, Debug)]
pub struct PreparedRounding {
    format: FloatFormat,
    rounding: Rounding,
    /// The biased f64 exponent fields of the format's normal binades: `emin + 1023 ..= emax + 1023`.
    normal_fields: (u64, u64),
    /// Bits of the f64 significand below the format's last bit: `52 − M`.
    drop: u32,
    /// The f64 bits of the largest finite value.
    max_bits: u64,
    /// The exponent `g` of the grid below the normal range (`emin − M`, or `emin` without
    /// subnormals) plus 1075: an f64 of exponent field `E` drops `g + 1075 − E` bits there.
    low_grid: u32,
    /// `2^g`.
    low_spacing: f64,
}

impl PreparedRounding {
    pub fn new(format: FloatFormat, rounding: Rounding) -> Self {
        let low = if format.subnormals { format.emin() - format.man_bits as i32 } else { format.emin() };
        PreparedRounding {
            format,
            rounding,
            normal_fields: ((format.emin() + 1023) as u64, (format.emax() + 1023) as u64),
            drop: 52 - format.man_bits,
            max_bits: format.max().to_bits(),
            low_grid: (low + 1075) as u32,
            low_spacing: pow2(low),
        }
    }

    /// `format.round(x, rounding, draw)`, bit for bit.
    #[inline]
    pub fn round(&self, x: f64, draw: Draw<'_>) -> f64 {
        const SIGN: u64 = 1 << 63;
        let bits = x.to_bits();
        let magnitude = bits & !SIGN;
        let field = magnitude >> 52;
        if field == 0 || field > self.normal_fields.1 {
            return self.format.round(x, self.rounding, draw);
        }
        let negative = bits & SIGN != 0;
        let significand = (magnitude & ((1 << 52) - 1)) | (1 << 52);
        if field < self.normal_fields.0 {
            let drop = self.low_grid - field as u32;
            let (k, frac) = if drop >= 64 {
                (0, Dyadic { rem: significand, shift: drop })
            } else {
                (significand >> drop, Dyadic { rem: low_bits(significand, drop), shift: drop })
            };
            let away = self.rounding.away_from_zero(&frac, negative, k & 1 == 1, draw);
            let m = (k + away as u64) as f64 * self.low_spacing;
            return if negative && (m != 0.0 || self.format.has_negative_zero()) { -m } else { m };
        }
        let below = (1u64 << self.drop) - 1;
        let frac = Dyadic { rem: significand & below, shift: self.drop };
        let k_odd = (significand >> self.drop) & 1 == 1;
        let away = self.rounding.away_from_zero(&frac, negative, k_odd, draw);
        let rounded = (magnitude & !below) + ((away as u64) << self.drop);
        if rounded > self.max_bits {
            let m = self.format.overflow(negative, self.rounding);
            return if negative { -m } else { m };
        }
        f64::from_bits(rounded | (bits & SIGN))
    }
}

/// `2^e` for any `e` in f64's range, subnormals included.
pub fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// The magnitude `sig·2^q` (of a value of sign `negative`) rounded by `rounding` to a multiple
/// of `2^s`: `k·2^s` or `(k+1)·2^s`, where `k = ⌊sig·2^q / 2^s⌋`, as
/// [`Rounding::away_from_zero`] decides from the exact fraction of the gap (ties to even `k`).
pub(crate) fn round_magnitude_to_grid(sig: u64, q: i32, s: i32, negative: bool, rounding: Rounding, draw: Draw<'_>) -> f64 {
    let drop = s - q; // bits of `sig` below the rounding position
    if drop <= 0 {
        return sig as f64 * pow2(q); // already a multiple of 2^s
    }
    let drop = drop as u32;
    let (k, frac) = if drop >= 64 {
        (0, Dyadic { rem: sig, shift: drop })
    } else {
        (sig >> drop, Dyadic { rem: low_bits(sig, drop), shift: drop })
    };
    let away = rounding.away_from_zero(&frac, negative, k & 1 == 1, draw);
    (k + away as u64) as f64 * pow2(s)
}

/// `(sig, q)` with `a = sig·2^q`, for a finite positive `a`.
pub(crate) fn significand(a: f64) -> (u64, i32) {
    let bits = a.to_bits();
    let field = (bits >> 52) as i32;
    let man = bits & ((1 << 52) - 1);
    if field == 0 { (man, -1074) } else { (man | (1 << 52), field - 1075) }
}

/// `⌊log2 a⌋` for a finite positive `a`.
pub fn exponent_of(a: f64) -> i32 {
    let (sig, q) = significand(a);
    q + 63 - sig.leading_zeros() as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::rng::RandomStream;

    fn rne(f: &FloatFormat, x: f64) -> f64 {
        f.round(x, Rounding::Nearest, RandomStream::new(0, 0).at(0))
    }

    #[test]
    fn ieee_half_matches_the_half_crate_on_every_pattern() {
        let f = FloatFormat::ieee(5, 10);
        for b in 0..=u16::MAX {
            let h = half::f16::from_bits(b);
            let v = f.decode(b as u32);
            if h.is_nan() {
                assert!(v.is_nan());
            } else {
                assert_eq!(v, f64::from(h), "{b:#06x}");
                assert_eq!(f.encode(v).unwrap(), b as u32);
            }
        }
    }

    #[test]
    fn e4m3fn_properties() {
        let f = FloatFormat::ieee(4, 3).with_specials(Specials::Fn);
        assert_eq!(f.max(), 448.0);
        assert_eq!(f.min_positive(), 2f64.powi(-9));
        assert_eq!(f.finite_count(), 253);
        assert_eq!(rne(&f, 464.0), 448.0);
        assert_eq!(rne(&f, 1e9), 448.0);
        assert_eq!(rne(&f, f64::INFINITY), 448.0);
    }

    #[test]
    fn ieee_overflow_follows_the_rounding_direction() {
        let f = FloatFormat::ieee(5, 10);
        let d = RandomStream::new(0, 0);
        assert_eq!(f.round(65520.0, Rounding::Nearest, d.at(0)), f64::INFINITY);
        assert_eq!(f.round(65519.0, Rounding::Nearest, d.at(0)), 65504.0);
        assert_eq!(f.round(1e6, Rounding::TowardZero, d.at(0)), 65504.0);
        assert_eq!(f.round(-1e6, Rounding::Up, d.at(0)), -65504.0);
        assert_eq!(f.round(-1e6, Rounding::Down, d.at(0)), f64::NEG_INFINITY);
        let sat = FloatFormat { saturate: true, ..f };
        assert_eq!(sat.round(1e6, Rounding::Nearest, d.at(0)), 65504.0);
    }

    #[test]
    fn without_subnormals_the_gap_below_the_smallest_normal_rounds_to_zero_or_it() {
        let f = FloatFormat::ieee(6, 5).without_subnormals();
        let min = f.min_normal();
        assert_eq!(f.min_positive(), min);
        assert_eq!(rne(&f, min * 0.5), 0.0); // tie: 0 is the even neighbour
        assert_eq!(rne(&f, min * 0.51), min);
        let d = RandomStream::new(0, 0);
        assert_eq!(f.round(min * 1e-3, Rounding::Up, d.at(0)), min);
        assert!(!f.is_canonical(1)); // exponent field 0 with mantissa bits
        assert_eq!(f.decode(1), 0.0);
    }

    #[test]
    fn encoded_slices_decode_to_the_quantized_values() {
        let f = FloatFormat::ieee(5, 2);
        let rng = RandomStream::new(5, 0);
        let src: Vec<f32> = (0..2000).map(|i| (i as f32 - 1000.0) * 37.1).chain([f32::NAN, -f32::INFINITY, -0.0]).collect();
        let mut values = vec![0f32; src.len()];
        for mode in [Rounding::Nearest, Rounding::StochasticBits(5)] {
            let codes = f.encode_slice(&src, mode, &rng, 9).unwrap();
            crate::numerics::float_fast::quantize_slice(&f, mode, &rng, 9, &src, &mut values);
            for (c, v) in codes.iter().zip(&values) {
                let d = f.decode(*c) as f32;
                assert!(d.to_bits() == v.to_bits() || d.is_nan() && v.is_nan(), "{c:#x}: {d} vs {v}");
            }
        }
        assert_eq!(FloatFormat::ieee(2, 1).with_specials(Specials::None).encode_slice(&[f32::NAN], Rounding::Nearest, &rng, 0), Err(EncodeError::NoNan));
    }

    #[test]
    fn fnuz_has_no_negative_zero() {
        let f = FloatFormat::ieee(4, 3).with_specials(Specials::Fnuz).with_bias(8);
        assert_eq!(rne(&f, -1e-9).to_bits(), 0.0f64.to_bits());
        assert!(f.decode(0x80).is_nan());
        assert_eq!(f.max(), 240.0);
    }

    /// Values around every binade and rounding boundary of `f`: each f64 exponent from below
    /// the subnormals to above the largest binade, significands with random low bits and
    /// those at, just below and just above the grid points and midpoints of `f`; the
    /// extremes and specials.
    fn values_around(f: &FloatFormat, rng: &RandomStream) -> Vec<f64> {
        let mut xs = vec![0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN, f64::MAX, f64::MIN_POSITIVE, f64::from_bits(1), 5e-324];
        for m in [f.max(), f.min_normal(), f.min_positive()] {
            for ulps in -3i64..=3 {
                xs.push(f64::from_bits((m.to_bits() as i64 + ulps) as u64));
            }
            xs.push(m * (1.0 + f.epsilon() / 2.0)); // the midpoint above (or a tie at max)
            xs.push(m * (1.0 - f.epsilon() / 4.0));
        }
        let drop = 52 - f.man_bits;
        let mut i = 0u64;
        for e in (f.min_positive_exponent() - 70)..=(f.emax() + 2) {
            for shape in 0..8 {
                for _ in 0..12 {
                    let random = ((rng.word(i, 0) as u64) << 32 | rng.word(i, 1) as u64) & ((1 << 52) - 1);
                    i += 1;
                    let grid = random & !((1u64 << drop) - 1);
                    let half = 1u64 << (drop - 1);
                    let man = match shape {
                        0 => random,
                        1 => grid,
                        2 => grid | half,
                        3 => (grid | half) + 1,
                        4 => (grid | half) - 1,
                        5 => grid | 1,
                        6 => grid.wrapping_sub(1) & ((1 << 52) - 1),
                        _ => grid | (random & ((1u64 << drop.min(20)) - 1)),
                    };
                    let x = f64::from_bits((((e + 1023) as u64) << 52) | man);
                    xs.extend([x, -x]);
                }
            }
        }
        xs
    }

    #[test]
    fn prepared_rounding_agrees_with_round_bit_for_bit() {
        let formats = [
            FloatFormat::ieee(5, 10),
            FloatFormat::ieee(8, 7),
            FloatFormat::ieee(8, 23),
            FloatFormat::ieee(4, 3).with_specials(Specials::Fn),
            FloatFormat::ieee(4, 3).with_specials(Specials::Fnuz).with_bias(8),
            FloatFormat::ieee(5, 2),
            FloatFormat { saturate: true, ..FloatFormat::ieee(5, 2) },
            FloatFormat::ieee(5, 2).without_subnormals(),
            FloatFormat::ieee(6, 5),
            FloatFormat::ieee(5, 0),
            FloatFormat::ieee(3, 1).with_specials(Specials::None),
        ];
        let roundings = [
            Rounding::Nearest,
            Rounding::NearestAway,
            Rounding::TowardZero,
            Rounding::Up,
            Rounding::Down,
            Rounding::Stochastic,
            Rounding::StochasticBits(1),
            Rounding::StochasticBits(9),
            Rounding::StochasticBits(32),
            Rounding::StochasticUnbiased(4),
            Rounding::StochasticUnbiased(13),
        ];
        let rng = RandomStream::new(11, 0);
        let draws = RandomStream::new(12, 0);
        let mut checked = 0;
        for f in &formats {
            let xs = values_around(f, &rng);
            for &rounding in &roundings {
                let prepared = PreparedRounding::new(*f, rounding);
                for (i, &x) in xs.iter().enumerate() {
                    // Stochastic draws at several indices, so each value meets several words.
                    for d in 0..if rounding.is_stochastic() { 3 } else { 1 } {
                        let at = (i * 3 + d) as u64;
                        let exact = f.round(x, rounding, draws.at(at));
                        let fast = prepared.round(x, draws.at(at));
                        assert_eq!(fast.to_bits(), exact.to_bits(), "{f} {rounding} x = {x:e} ({:#x}): {fast:e} vs {exact:e}", x.to_bits());
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1_000_000, "{checked}");
    }
}
