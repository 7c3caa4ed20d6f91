//! [`Target`]: an element-wise format as the result of a kernel op, and the one rounding of an
//! exact value to it.
//!
//! For an exact value that is a single `f64` this is the runtime's own rounding of that
//! format (`FloatFormat::round`, the fixed-point and integer grid rounding, E8M0) — the same
//! results as `Format::quantize` of an `f32`. For a sum of two `f64`s it is the same
//! algorithm (the gap of the format containing the value, then [`Rounding::away_from_zero`]
//! on the exact position inside it) with the position taken from both parts.

use super::exact::{grid_position, Exact};
use crate::numerics::fixed::fixed_range;
use crate::numerics::float::{exponent_of, pow2};
use crate::numerics::float_extra::round_e8m0;
use crate::numerics::rng::Draw;
use crate::numerics::scaled::int_range;
use crate::numerics::{FloatFormat, Format, Rounding};

/// An element-wise format that kernel results are rounded to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    Float(FloatFormat),
    /// A uniform grid `2^step`, saturating to `[lo, hi]` (fixed point, unscaled integers);
    /// values are delivered as `f32` without negative zero, as `Format::quantize` does.
    Grid {
        step: i32,
        lo: f64,
        hi: f64,
    },
    E8m0,
}

impl Target {
    /// The target for an element-wise `format`; `None` for scaled, block and codebook formats
    /// (their values depend on the whole tensor).
    pub fn new(format: &Format) -> Option<Target> {
        Some(match format {
            Format::Float { format, .. } => Target::Float(*format),
            Format::Fixed(f) => {
                let (lo, max) = fixed_range(f);
                Target::Grid {
                    step: -(f.frac_bits as i32),
                    lo,
                    hi: largest_f32_not_above(max),
                }
            }
            Format::Int(f) if f.unscaled => {
                let (lo, hi) = int_range(f);
                Target::Grid {
                    step: 0,
                    lo: lo as f64,
                    hi: largest_f32_not_above(hi as f64),
                }
            }
            Format::E8m0 => Target::E8m0,
            _ => return None,
        })
    }

    /// The value of the format that `rounding` selects for the exact value `x` (drawing from
    /// `draw` when stochastic), as an `f32` (every value of an element-wise format is one).
    pub fn round(&self, x: Exact, rounding: Rounding, draw: Draw<'_>) -> f32 {
        match *self {
            Target::Float(f) => round_float(&f, x, rounding, draw) as f32,
            Target::Grid { step, lo, hi } => round_grid(step, lo, hi, x, rounding, draw),
            Target::E8m0 => round_to_e8m0(x, rounding, draw) as f32,
        }
    }
}

/// The largest `f32` not above `max` (fixed formats wider than 24 bits deliver `f32`s).
fn largest_f32_not_above(max: f64) -> f64 {
    let m = max as f32;
    (if m as f64 > max {
        f32::from_bits(m.to_bits() - 1)
    } else {
        m
    }) as f64
}

/// The magnitude `a + l` of `x` (`a = |hi|`, `l` the low part with the magnitude's sign) and
/// `⌊log2 (a + l)⌋`.
fn magnitude(x: Exact) -> (f64, f64, i32) {
    let a = x.hi.abs();
    let l = if x.hi < 0.0 { -x.lo } else { x.lo };
    let mut e = exponent_of(a);
    if l < 0.0 && a == pow2(e) {
        e -= 1; // just below a power of two
    }
    (a, l, e)
}

fn round_float(f: &FloatFormat, x: Exact, rounding: Rounding, draw: Draw<'_>) -> f64 {
    if x.lo == 0.0 {
        return f.round(x.hi, rounding, draw);
    }
    let negative = x.hi < 0.0;
    let (a, l, e) = magnitude(x);
    if e > f.emax() {
        // hi overflows too, and overflow depends only on the sign and the mode.
        return f.round(x.hi, rounding, draw);
    }
    let m = f.man_bits as i32;
    let s = if e >= f.emin() {
        e - m
    } else if f.subnormals {
        f.emin() - m
    } else {
        f.emin() // the gap [0, 2^emin]
    };
    let (k, frac) = grid_position(a, l, s);
    let away = rounding.away_from_zero(&frac, negative, k % 2.0 == 1.0, draw);
    let result = (k + away as u8 as f64) * pow2(s);
    // A grid value: the format's rounding of it gives it back, or its overflow or signed zero.
    f.round(if negative { -result } else { result }, rounding, draw)
}

fn round_grid(step: i32, lo: f64, hi: f64, x: Exact, rounding: Rounding, draw: Draw<'_>) -> f32 {
    let deliver = |v: f64| (v.clamp(lo, hi) + 0.0) as f32;
    if !x.hi.is_finite() || x.hi == 0.0 {
        return deliver(x.hi);
    }
    if x.hi.abs() >= 2.0 * hi.max(-lo) + 2.0 * pow2(step) {
        return deliver(x.hi); // saturates in every mode
    }
    let negative = x.hi < 0.0;
    let (a, l, _) = magnitude(x);
    let (k, frac) = grid_position(a, l, step);
    let away = rounding.away_from_zero(&frac, negative, k % 2.0 == 1.0, draw);
    let result = (k + away as u8 as f64) * pow2(step);
    deliver(if negative { -result } else { result })
}

fn round_to_e8m0(x: Exact, rounding: Rounding, draw: Draw<'_>) -> f64 {
    if x.lo == 0.0 || x.hi <= 0.0 {
        return round_e8m0(x.hi, rounding, draw);
    }
    let (a, l, e) = magnitude(x);
    if !(-127..=127).contains(&e) {
        return round_e8m0(x.hi, rounding, draw); // clamps the same way
    }
    // x = 2^e·(1 + frac): the gap [2^e, 2^(e+1)] with k = 1 (odd: ties go up).
    let (_, frac) = grid_position(a, l, e);
    let away = rounding.away_from_zero(&frac, false, true, draw);
    pow2((e + away as i32).min(127))
}
