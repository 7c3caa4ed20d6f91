//! Fixed point `fixed<I,F>` (two's complement) and `ufixed<I,F>` (unsigned): the uniform grid
//! of spacing 2^−F, saturating. See `spec/scaled-formats.md`, "Fixed point".
//!
//! Also owns the grid rounding every scaled family shares: [`round_to_grid`] (exact, every
//! mode, via [`Rounding::away_from_zero`]), [`round_to_integer`] (exact `f64` rounding
//! operations for the deterministic modes, `round_to_grid` for the stochastic ones) and
//! [`map_rounded`], the vectorised loop over a slice built on them.

use super::float::{pow2, round_magnitude_to_grid, significand};
use super::format::FixedFormat;
use super::rng::{Draw, RandomStream};
use super::rounding::Rounding;
use super::simd::{self, Level};

/// `v` rounded to an integer multiple of `2^s` by `rounding`, exactly, keeping its sign.
///
/// NaN and ±∞ come back unchanged. The magnitude lies in `[k·2^s, (k+1)·2^s)`; the exact
/// fraction of the gap is taken from the bits of `v`, so the result is `k·2^s` or `(k+1)·2^s`
/// as [`Rounding::away_from_zero`] decides (ties to the even `k`). Exact in `f64` for every
/// `s` ≥ −1074 + 53 (all grids of this crate are far coarser).
pub(crate) fn round_to_grid(v: f64, s: i32, rounding: Rounding, draw: Draw<'_>) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let negative = v.is_sign_negative();
    let (sig, q) = significand(v.abs());
    let magnitude = round_magnitude_to_grid(sig, q, s, negative, rounding, draw);
    if negative { -magnitude } else { magnitude }
}

/// `y` rounded to an integer by `rounding`. The deterministic modes use `f64`'s own exact
/// rounding operations; they agree with [`round_to_grid`]`(y, 0, ..)` (tested).
#[inline(always)]
pub(crate) fn round_to_integer(y: f64, rounding: Rounding, draw: Draw<'_>) -> f64 {
    match rounding {
        Rounding::Nearest => y.round_ties_even(),
        Rounding::NearestAway => y.round(),
        Rounding::TowardZero => y.trunc(),
        Rounding::Up => y.ceil(),
        Rounding::Down => y.floor(),
        Rounding::Stochastic | Rounding::StochasticBits(_) | Rounding::StochasticUnbiased(_) => {
            round_to_grid(y, 0, rounding, draw)
        }
    }
}


/// The range of a fixed-point format as `f64` bounds of the delivered `f32` values.
#[derive(Clone, Copy, Debug)]
struct Range {
    /// 2^F: the input is scaled by it before rounding to an integer.
    scale: f64,
    /// 2^−F.
    spacing: f64,
    lo: f64,
    /// The largest `f32` not above the format's maximum (the maximum itself when it has at
    /// most 24 significant bits, as it has whenever I−1+F ≤ 24).
    hi: f64,
}

impl Range {
    fn new(f: &FixedFormat) -> Range {
        let (lo, max) = fixed_range(f);
        let mut hi32 = max as f32;
        if hi32 as f64 > max {
            hi32 = f32::from_bits(hi32.to_bits() - 1);
        }
        Range { scale: pow2(f.frac_bits as i32), spacing: pow2(-(f.frac_bits as i32)), lo, hi: hi32 as f64 }
    }

    /// A grid value (or NaN/±∞) saturated into the range, as `f32` without negative zero.
    #[inline(always)]
    fn deliver(&self, v: f64) -> f32 {
        (v.clamp(self.lo, self.hi) + 0.0) as f32
    }
}

/// The extreme values of a fixed-point format, `(min, max)`, exactly.
pub fn fixed_range(f: &FixedFormat) -> (f64, f64) {
    let spacing = pow2(-(f.frac_bits as i32));
    if f.signed {
        (-pow2(f.int_bits as i32 - 1), pow2(f.int_bits as i32 - 1) - spacing)
    } else {
        (0.0, pow2(f.int_bits as i32) - spacing)
    }
}

/// `out[j] = finish(round(prepare(data[j])))` where `round` rounds to an integer by
/// `rounding`; element `j` draws from `rng` at index `base + j`. The deterministic modes run
/// a loop the compiler vectorises (compiled for each level of `simd`).
#[inline(always)]
pub(crate) fn map_rounded<P: Fn(f32) -> f64, G: Fn(f64) -> f32>(
    rounding: Rounding,
    rng: &RandomStream,
    base: u64,
    data: &[f32],
    out: &mut [f32],
    prepare: P,
    finish: G,
) {
    if rounding.is_stochastic() {
        for (j, (x, y)) in data.iter().zip(out.iter_mut()).enumerate() {
            *y = finish(round_to_grid(prepare(*x), 0, rounding, rng.at(base + j as u64)));
        }
        return;
    }
    match simd::level() {
        // SAFETY: `simd::level` returns only levels the CPU supports.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { deterministic_avx512(rounding, data, out, &prepare, &finish) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { deterministic_avx2(rounding, data, out, &prepare, &finish) },
        _ => deterministic(rounding, data, out, &prepare, &finish),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn deterministic_avx512<P: Fn(f32) -> f64, G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], prepare: &P, finish: &G) {
    deterministic(rounding, data, out, prepare, finish)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn deterministic_avx2<P: Fn(f32) -> f64, G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], prepare: &P, finish: &G) {
    deterministic(rounding, data, out, prepare, finish)
}

/// The deterministic modes with `f64`'s exact rounding operations.
#[inline(always)]
fn deterministic<P: Fn(f32) -> f64, G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], prepare: &P, finish: &G) {
    #[inline(always)]
    fn each<P: Fn(f32) -> f64, G: Fn(f64) -> f32>(data: &[f32], out: &mut [f32], prepare: &P, finish: &G, round: impl Fn(f64) -> f64) {
        for (x, y) in data.iter().zip(out.iter_mut()) {
            *y = finish(round(prepare(*x)));
        }
    }
    match rounding {
        Rounding::NearestAway => each(data, out, prepare, finish, f64::round),
        Rounding::TowardZero => each(data, out, prepare, finish, f64::trunc),
        Rounding::Up => each(data, out, prepare, finish, f64::ceil),
        Rounding::Down => each(data, out, prepare, finish, f64::floor),
        // Nearest (the stochastic modes never come here).
        _ => each(data, out, prepare, finish, f64::round_ties_even),
    }
}

/// Rounds `data` to the fixed-point format into `out` (same length); element `i` draws from
/// `rng` at index `i`. NaN stays NaN, ±∞ and out-of-range values saturate, zero is `+0`.
pub fn quantize_fixed(f: &FixedFormat, data: &[f32], rounding: Rounding, rng: &RandomStream, out: &mut [f32]) {
    let range = Range::new(f);
    map_rounded(rounding, rng, 0, data, out, |x| x as f64 * range.scale, |t| range.deliver(t * range.spacing));
}

#[cfg(test)]
mod tests {
    use super::*;

    const DETERMINISTIC: [Rounding; 5] =
        [Rounding::Nearest, Rounding::NearestAway, Rounding::TowardZero, Rounding::Up, Rounding::Down];

    /// The `f64` rounding operations against the exact grid rounding, on quarter points,
    /// near-integers and values far outside any integer grid.
    #[test]
    fn integer_rounding_operations_agree_with_the_exact_grid_rounding() {
        let d = RandomStream::new(0, 0);
        let mut inputs = Vec::new();
        for k in -40..=40 {
            let v = k as f64 / 4.0;
            inputs.extend([v, v + 1e-9, v - 1e-9, f64::from_bits(v.to_bits() + 1)]);
        }
        inputs.extend([1e-300, -1e-300, 3.0e15 + 0.5, -4503599627370495.5, 1e300, -0.0, 2f64.powi(52) + 1.0]);
        for mode in DETERMINISTIC {
            for &v in &inputs {
                let exact = round_to_grid(v, 0, mode, d.at(0));
                let fast = round_to_integer(v, mode, d.at(0));
                assert_eq!(exact, fast, "{mode} {v:e}");
            }
        }
    }

    /// The vectorised deterministic path against the exact grid rounding on every f32 with
    /// a few fraction bits around the ranges of several formats.
    #[test]
    fn fast_path_agrees_with_the_exact_path() {
        let rng = RandomStream::new(5, 1);
        let mut inputs: Vec<f32> = Vec::new();
        for k in -(1 << 12)..=(1 << 12) {
            inputs.push(k as f32 / 64.0);
            inputs.push(k as f32 * 1.37e-3);
            inputs.push(k as f32 * 2.9e5);
        }
        inputs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, -f32::MAX, 1e-45, -1e-45]);
        for f in [(4, 4, true), (1, 7, true), (8, 0, true), (32, 0, true), (8, 24, true), (4, 4, false), (32, 0, false), (0, 3, false)] {
            let f = FixedFormat { int_bits: f.0, frac_bits: f.1, signed: f.2 };
            let range = Range::new(&f);
            let mut out = vec![0f32; inputs.len()];
            for mode in DETERMINISTIC {
                quantize_fixed(&f, &inputs, mode, &rng, &mut out);
                for (x, y) in inputs.iter().zip(&out) {
                    let want = range.deliver(round_to_grid(*x as f64, -(f.frac_bits as i32), mode, rng.at(0)));
                    assert!(want.to_bits() == y.to_bits() || want.is_nan() && y.is_nan(), "{f:?} {mode} {x:e}: {y:e} vs {want:e}");
                }
            }
        }
    }
}
