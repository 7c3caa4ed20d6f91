//! The roundings inline code cannot decide from an odd-rounded `f64`: a stochastic rounding of
//! a sum, quotient or square root that needs more bits of the exact value than the 53 an
//! odd-rounded `f64` carries (exact `stochastic`, which compares random words with every bit
//! of the fraction, and `stochastic:R` / `stochastic-unbiased:R` when `p + R` exceeds 52).
//! Those call [`qc_round_exact`], which forms the exact value as the runtime does
//! (`kernels::Exact`: the TwoSum pair, or the quotient's and root's stand-ins) and rounds it
//! with the runtime's own `kernels::Target::round` — the interpreter's code, so the bits agree
//! by construction. Deterministic modes never need it (`p + 1 ≤ 33` for every format).
//!
//! The call passes everything as plain numbers: the operation, its two operands, the target
//! ([`encode_target`]), the mode ([`encode_mode`]), the stream's key and the draw index.

use super::round::Target;
use qc_runtime::kernels::{self, Exact};
use qc_runtime::numerics::rng::RandomStream;
use qc_runtime::numerics::{FloatFormat, Rounding, Specials};

/// The operation whose exact result is rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Inexact {
    Sum = 0,
    Quotient = 1,
    Root = 2,
}

/// `target` as `(tag, format, lo, hi)`: tag 0 a float format packed by [`pack_float`], 1 a
/// grid of step `2^format` clamped to `[lo, hi]`, 2 E8M0.
pub(super) fn encode_target(target: &Target) -> (i64, i64, f64, f64) {
    match target {
        Target::Float(f) => (0, pack_float(f), 0.0, 0.0),
        Target::Grid { s, lo, hi, .. } => (1, *s as i64, *lo, *hi),
        Target::E8m0 => (2, 0, 0.0, 0.0),
    }
}

fn decode_target(tag: i64, format: i64, lo: f64, hi: f64) -> kernels::Target {
    match tag {
        0 => kernels::Target::Float(unpack_float(format)),
        1 => kernels::Target::Grid { step: format as i32, lo, hi },
        _ => kernels::Target::E8m0,
    }
}

/// A stochastic mode as a number: 0 exact `stochastic`, `1·256 + R` `stochastic:R`,
/// `2·256 + R` `stochastic-unbiased:R`; `None` for the deterministic modes.
pub(super) fn encode_mode(mode: Rounding) -> Option<i64> {
    match mode {
        Rounding::Stochastic => Some(0),
        Rounding::StochasticBits(r) => Some(256 + r as i64),
        Rounding::StochasticUnbiased(r) => Some(512 + r as i64),
        _ => None,
    }
}

fn decode_mode(code: i64) -> Rounding {
    let r = (code & 255) as u32;
    match code >> 8 {
        1 => Rounding::StochasticBits(r),
        2 => Rounding::StochasticUnbiased(r),
        _ => Rounding::Stochastic,
    }
}

fn pack_float(f: &FloatFormat) -> i64 {
    let specials = match f.specials {
        Specials::Ieee => 0,
        Specials::Fn => 1,
        Specials::Fnuz => 2,
        Specials::None => 3,
    };
    f.exp_bits as i64 | (f.man_bits as i64) << 8 | (f.bias as u32 as i64) << 16 | (f.subnormals as i64) << 48 | specials << 49 | (f.saturate as i64) << 51
}

fn unpack_float(v: i64) -> FloatFormat {
    FloatFormat {
        exp_bits: (v & 255) as u32,
        man_bits: (v >> 8 & 255) as u32,
        bias: (v >> 16) as u32 as i32,
        subnormals: v >> 48 & 1 == 1,
        specials: match v >> 49 & 3 {
            0 => Specials::Ieee,
            1 => Specials::Fn,
            2 => Specials::Fnuz,
            _ => Specials::None,
        },
        saturate: v >> 51 & 1 == 1,
    }
}

/// Rounds the exact result of `op` on `a` (and `b`) to the target, drawing the words of
/// element `index` of the stream whose key is `key` (`k0 | k1 << 32`).
#[allow(clippy::too_many_arguments)]
pub(super) extern "C" fn qc_round_exact(op: i64, a: f64, b: f64, tag: i64, format: i64, lo: f64, hi: f64, mode: i64, key: i64, index: i64) -> f32 {
    let exact = match op {
        0 => Exact::sum(a, b),
        1 => Exact::quotient(a, b),
        _ => Exact::square_root(a),
    };
    let stream = RandomStream::from_key(key as u32, (key as u64 >> 32) as u32);
    decode_target(tag, format, lo, hi).round(exact, decode_mode(mode), stream.at(index as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_modes_survive_their_encoding() {
        for f in [FloatFormat::ieee(5, 10), FloatFormat::ieee(8, 23), FloatFormat::ieee(4, 3).with_specials(Specials::Fn)] {
            assert_eq!(unpack_float(pack_float(&f)), f);
        }
        let odd = FloatFormat { exp_bits: 4, man_bits: 3, bias: -11, subnormals: false, specials: Specials::None, saturate: true };
        assert_eq!(unpack_float(pack_float(&odd)), odd);
        for mode in [Rounding::Stochastic, Rounding::StochasticBits(1), Rounding::StochasticBits(32), Rounding::StochasticUnbiased(13)] {
            assert_eq!(decode_mode(encode_mode(mode).unwrap()), mode);
        }
        assert_eq!(encode_mode(Rounding::Nearest), None);
    }
}
