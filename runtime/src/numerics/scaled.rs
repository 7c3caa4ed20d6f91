//! Scaled integers `int<b>` / `uint<b>`: symmetric or asymmetric (zero point), one scale
//! per tensor or per channel, or no scale at all. See `spec/scaled-formats.md`, "Scaled
//! integers".
//!
//! Also owns [`Groups`], the per-tensor / per-channel grouping of elements that the codebook
//! formats share.

use super::fixed::map_rounded;
use super::format::{Granularity, IntFormat, QuantizeError};
use super::rng::RandomStream;
use super::rounding::Rounding;
use super::simd::{self, Level};

/// Which scale group each element of a row-major tensor belongs to: the tensor splits into
/// runs of consecutive elements (the product of the dimensions after the channel axis), and
/// run `r` belongs to group `r mod count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Groups {
    /// The number of groups (the length of the channel axis; 1 per tensor).
    pub count: usize,
    /// Elements per run, at least 1.
    run: usize,
}

impl Groups {
    /// Groups for `granularity` over a tensor of `shape`.
    pub fn new(granularity: Granularity, shape: &[usize]) -> Result<Groups, QuantizeError> {
        match granularity {
            Granularity::PerTensor => Ok(Groups { count: 1, run: usize::MAX }),
            Granularity::PerChannel(axis) => {
                if axis >= shape.len() {
                    return Err(QuantizeError::AxisOutOfRange { axis, rank: shape.len() });
                }
                let run = shape[axis + 1..].iter().product::<usize>().max(1);
                Ok(Groups { count: shape[axis].max(1), run })
            }
        }
    }

    /// `(group, first index, elements)` of each run of `data`, in index order.
    pub fn runs<'a, T>(&self, data: &'a [T]) -> impl Iterator<Item = (usize, usize, &'a [T])> + 'a {
        let (run, count) = (self.run, self.count);
        data.chunks(run).enumerate().map(move |(r, chunk)| (r % count, r.saturating_mul(run), chunk))
    }
}

/// `ShapeMismatch` unless `data` and `out` both hold the `shape`'s element count.
pub(crate) fn check_lengths(data: &[f32], shape: &[usize], out: &[f32]) -> Result<(), QuantizeError> {
    let n: usize = shape.iter().product();
    if data.len() != n || out.len() != n {
        return Err(QuantizeError::ShapeMismatch { expected: n, found: if data.len() != n { data.len() } else { out.len() } });
    }
    Ok(())
}

/// Running statistics of one group.
#[derive(Clone, Copy, Debug)]
struct Stats {
    min: f32,
    max: f32,
    /// Whether the group holds a NaN or an infinity.
    invalid: bool,
}

fn group_stats(data: &[f32], groups: &Groups) -> Vec<Stats> {
    let mut stats = vec![Stats { min: 0.0, max: 0.0, invalid: false }; groups.count];
    for (g, _, chunk) in groups.runs(data) {
        let s = &mut stats[g];
        let (min, max, invalid) = min_max(chunk);
        s.min = s.min.min(min);
        s.max = s.max.max(max);
        s.invalid |= invalid;
    }
    stats
}

/// The order-preserving integer key of a float's bits (−0 and +0 adjacent, NaNs outside).
#[inline(always)]
fn order_key(x: f32) -> i32 {
    let i = x.to_bits() as i32;
    i ^ ((i >> 31) & 0x7FFF_FFFF)
}

#[inline(always)]
fn from_order_key(k: i32) -> f32 {
    f32::from_bits((k ^ ((k >> 31) & 0x7FFF_FFFF)) as u32)
}

/// The least and greatest values of `chunk` and whether it holds a NaN or ±∞, by integer
/// reductions that vectorise (a NaN or ∞ makes the extremes meaningless, and the caller
/// ignores them then). Compiled for each level of [`simd`]: the baseline x86-64 target has
/// no 32-bit integer min/max instructions.
fn min_max(chunk: &[f32]) -> (f32, f32, bool) {
    match simd::level() {
        // SAFETY: `simd::level` returns only levels the CPU supports.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { min_max_avx512(chunk) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { min_max_avx2(chunk) },
        _ => min_max_inline(chunk),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn min_max_avx512(chunk: &[f32]) -> (f32, f32, bool) {
    min_max_inline(chunk)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn min_max_avx2(chunk: &[f32]) -> (f32, f32, bool) {
    min_max_inline(chunk)
}

#[inline(always)]
fn min_max_inline(chunk: &[f32]) -> (f32, f32, bool) {
    let (mut lo, mut hi, mut special) = (i32::MAX, i32::MIN, 0u32);
    for &x in chunk {
        let k = order_key(x);
        lo = lo.min(k);
        hi = hi.max(k);
        special |= ((x.to_bits() & 0x7F80_0000) == 0x7F80_0000) as u32;
    }
    if chunk.is_empty() {
        return (0.0, 0.0, false);
    }
    (from_order_key(lo), from_order_key(hi), special != 0)
}

/// The integer range `[qmin, qmax]` of the format.
pub fn int_range(f: &IntFormat) -> (i64, i64) {
    let b = f.bits;
    match (f.signed, f.asymmetric || f.unscaled) {
        (true, false) => (-((1 << (b - 1)) - 1), (1 << (b - 1)) - 1),
        (true, true) => (-(1 << (b - 1)), (1 << (b - 1)) - 1),
        (false, _) => (0, (1 << b) - 1),
    }
}

/// The quantization parameters of one group: `value = (q − zero_point)·scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntParams {
    /// NaN when the group holds a NaN or an infinity; 0 when it is all zeros.
    pub scale: f32,
    pub zero_point: i64,
}

/// `a / b` rounded once to `f32`, never zero for a positive `a`: a quotient below half the
/// smallest subnormal gives `2^−149` instead (so no non-zero group gets a zero scale).
fn positive_scale(a: f32, b: f32) -> f32 {
    let s = a / b;
    if s == 0.0 && a > 0.0 { f32::from_bits(1) } else { s }
}

/// The scale and zero point of a group with statistics `s`.
fn params(f: &IntFormat, s: &Stats) -> IntParams {
    if f.unscaled {
        return IntParams { scale: 1.0, zero_point: 0 };
    }
    if s.invalid {
        return IntParams { scale: f32::NAN, zero_point: 0 };
    }
    let (qmin, qmax) = int_range(f);
    if f.asymmetric {
        let levels = ((1u32 << f.bits) - 1) as f32;
        // min ≤ 0 ≤ max by construction of the statistics.
        let spread = s.max - s.min;
        let scale = if spread.is_finite() {
            positive_scale(spread, levels)
        } else {
            // Only when the group spans more than f32's range: halves are exact there.
            2.0 * positive_scale(s.max / 2.0 - s.min / 2.0, levels)
        };
        if scale == 0.0 {
            return IntParams { scale, zero_point: 0 };
        }
        let z = (-(s.min as f64) / scale as f64).round_ties_even() as i64 + qmin;
        IntParams { scale, zero_point: z.clamp(qmin, qmax) }
    } else {
        let amax = s.max.max(-s.min);
        IntParams { scale: positive_scale(amax, qmax as f32), zero_point: 0 }
    }
}

/// The scale and zero point of every group (one per tensor, or one per index of the channel
/// axis), as `quantize_int` uses them.
pub fn int_params(f: &IntFormat, data: &[f32], shape: &[usize]) -> Result<Vec<IntParams>, QuantizeError> {
    Ok(params_of(f, data, &Groups::new(f.granularity, shape)?))
}

fn params_of(f: &IntFormat, data: &[f32], groups: &Groups) -> Vec<IntParams> {
    group_stats(data, groups).iter().map(|s| params(f, s)).collect()
}

/// Quantizes `data` (row-major, `shape`) to the scaled integer format into `out`; element `i`
/// draws from `rng` at index `i`.
pub fn quantize_int(
    f: &IntFormat,
    data: &[f32],
    shape: &[usize],
    rounding: Rounding,
    rng: &RandomStream,
    out: &mut [f32],
) -> Result<(), QuantizeError> {
    check_lengths(data, shape, out)?;
    let groups = Groups::new(f.granularity, shape)?;
    let params = params_of(f, data, &groups);
    let (qmin, qmax) = int_range(f);
    let (qmin, qmax) = (qmin as f64, qmax as f64);
    if f.unscaled {
        map_rounded(rounding, rng, 0, data, out, |x| x as f64, |q| (q.clamp(qmin, qmax) + 0.0) as f32);
        return Ok(());
    }
    for (g, start, chunk) in groups.runs(data) {
        let p = params[g];
        let dst = &mut out[start..start + chunk.len()];
        if p.scale.is_nan() || p.scale == 0.0 {
            dst.fill(if p.scale == 0.0 { 0.0 } else { f32::NAN });
            continue;
        }
        let scale = p.scale as f64;
        let z = p.zero_point as f64;
        // (q + z − z)·scale is exact in f64 (at most 17 + 24 bits): one rounding to f32.
        let finish = |q: f64| (((q + z).clamp(qmin, qmax) - z) * scale + 0.0) as f32;
        if rounding.is_stochastic() {
            map_rounded(rounding, rng, start as u64, chunk, dst, |x| x as f64 / scale, finish);
        } else if f.bits > SINGLE_BITS || !(1.0 / p.scale).is_normal() {
            divide_and_round(rounding, chunk, dst, scale, &finish);
        } else {
            let single = Single { inv: 1.0 / p.scale, scale: p.scale, exact: scale, z: z as f32, lo: qmin as f32, hi: qmax as f32 };
            divide_and_round_single(rounding, chunk, dst, &single, &finish);
        }
    }
    Ok(())
}

/// Elements per unit of [`divide_and_round`]'s check (a few vectors' worth).
const LANES: usize = 16;

/// Deterministic rounding of `x / scale` for every `x` of `data`, then `finish`, into `out`.
/// The exact quotient q rounds like its f64 value `x / scale` (spec/scaled-formats.md), but
/// division is slow; multiplying by the reciprocal is fast and gives `p = RN(x·RN(1/s))`,
/// within `|q|·2^−51` of q. Here `|q| ≤ 2^17` (`|x| ≤ amax` and `s = amax/qmax`, or with a
/// zero point `|x| ≤ spread`), so `|p − q| < 2^−34`: p rounds like q unless a rounding
/// boundary — a half-integer for the nearest modes, an integer for the directed ones — lies
/// within 2^−30 of p (p is finite: x is, and `1/s ≤ 2^149`). A unit of [`LANES`] elements
/// with such a p is redone with the exact quotient.
fn divide_and_round<G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], scale: f64, finish: &G) {
    match simd::level() {
        // SAFETY: `simd::level` returns only levels the CPU supports.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { divide_and_round_avx512(rounding, data, out, scale, finish) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { divide_and_round_avx2(rounding, data, out, scale, finish) },
        _ => divide_and_round_portable(rounding, data, out, scale, finish),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn divide_and_round_avx512<G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], scale: f64, finish: &G) {
    divide_and_round_portable(rounding, data, out, scale, finish)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn divide_and_round_avx2<G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], scale: f64, finish: &G) {
    divide_and_round_portable(rounding, data, out, scale, finish)
}

#[inline(always)]
fn divide_and_round_portable<G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], scale: f64, finish: &G) {
    #[inline(always)]
    fn each<G: Fn(f64) -> f32>(data: &[f32], out: &mut [f32], scale: f64, finish: &G, round: impl Fn(f64) -> f64, offset: f64) {
        const NEAR: f64 = 1.0 / (1u64 << 30) as f64;
        let inv = 1.0 / scale;
        let mut units_in = data.chunks_exact(LANES);
        let mut units_out = out.chunks_exact_mut(LANES);
        for (src, dst) in (&mut units_in).zip(&mut units_out) {
            let mut near = false;
            for (x, y) in src.iter().zip(dst.iter_mut()) {
                let p = *x as f64 * inv;
                // Distance to the nearest boundary: boundaries sit at integers + `offset`.
                let shifted = p + offset;
                near |= (shifted - shifted.round_ties_even()).abs() < NEAR;
                *y = finish(round(p));
            }
            if near {
                for (x, y) in src.iter().zip(dst.iter_mut()) {
                    *y = finish(round(*x as f64 / scale));
                }
            }
        }
        for (x, y) in units_in.remainder().iter().zip(units_out.into_remainder()) {
            *y = finish(round(*x as f64 / scale));
        }
    }
    match rounding {
        Rounding::NearestAway => each(data, out, scale, finish, f64::round, 0.5),
        Rounding::TowardZero => each(data, out, scale, finish, f64::trunc, 0.0),
        Rounding::Up => each(data, out, scale, finish, f64::ceil, 0.0),
        Rounding::Down => each(data, out, scale, finish, f64::floor, 0.0),
        // Nearest (the stochastic modes never come here).
        _ => each(data, out, scale, finish, f64::round_ties_even, 0.5),
    }
}

/// Formats of at most this many bits round by [`divide_and_round_single`].
const SINGLE_BITS: u32 = 8;

/// The constants of [`divide_and_round_single`]: `inv` = RN32(1/s), a normal f32; the zero
/// point; the clamp bounds of q + z (the integer range).
#[derive(Clone, Copy, Debug)]
struct Single {
    inv: f32,
    scale: f32,
    /// The scale in f64, for the exact quotient.
    exact: f64,
    z: f32,
    lo: f32,
    hi: f32,
}

/// [`divide_and_round`] in f32, for formats of at most [`SINGLE_BITS`] bits: |q| ≤ 2^8 + 1
/// (q = x/s as there), and p = RN32(x·inv) lies within |q|·2^−22.9 < 2^−14 of q (two
/// relative errors of 2^−24; an underflowing product errs by 2^−150 at most). p rounds like
/// q unless a boundary lies within 2^−13 of p: the distance d = |p − RNE(p)| is exact in f32
/// (Sterbenz), boundaries are at d = 1/2 for the nearest modes and d = 0 for the directed
/// ones, and `d − 1/2` is exact for d ≥ 1/4. A unit with such a p is redone by the exact
/// quotient in f64 (`finish` there). The result (clamp(RNE(p) + z) − z)·s is an integer of
/// at most 9 bits times s: exact before its one rounding in f32 as in f64, so it equals
/// `finish`'s.
fn divide_and_round_single<G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], single: &Single, finish: &G) {
    match simd::level() {
        // SAFETY: `simd::level` returns only levels the CPU supports.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { divide_and_round_single_avx512(rounding, data, out, single, finish) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { divide_and_round_single_avx2(rounding, data, out, single, finish) },
        _ => divide_and_round_single_portable(rounding, data, out, single, finish),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn divide_and_round_single_avx512<G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], single: &Single, finish: &G) {
    divide_and_round_single_portable(rounding, data, out, single, finish)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn divide_and_round_single_avx2<G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], single: &Single, finish: &G) {
    divide_and_round_single_portable(rounding, data, out, single, finish)
}

#[inline(always)]
fn divide_and_round_single_portable<G: Fn(f64) -> f32>(rounding: Rounding, data: &[f32], out: &mut [f32], single: &Single, finish: &G) {
    #[inline(always)]
    fn each<G: Fn(f64) -> f32>(data: &[f32], out: &mut [f32], c: &Single, finish: &G, round: impl Fn(f32) -> f32, round64: impl Fn(f64) -> f64, boundary: f32) {
        const NEAR: f32 = 1.0 / (1u32 << 13) as f32;
        let mut units_in = data.chunks_exact(LANES);
        let mut units_out = out.chunks_exact_mut(LANES);
        for (src, dst) in (&mut units_in).zip(&mut units_out) {
            let src: &[f32; LANES] = src.try_into().expect("chunks_exact yields whole units");
            let dst: &mut [f32; LANES] = dst.try_into().expect("chunks_exact yields whole units");
            let mut near = false;
            for j in 0..LANES {
                let p = src[j] * c.inv;
                near |= ((p - p.round_ties_even()).abs() - boundary).abs() < NEAR;
                dst[j] = ((round(p) + c.z).clamp(c.lo, c.hi) - c.z) * c.scale + 0.0;
            }
            if near {
                for (x, y) in src.iter().zip(dst.iter_mut()) {
                    *y = finish(round64(*x as f64 / c.exact));
                }
            }
        }
        for (x, y) in units_in.remainder().iter().zip(units_out.into_remainder()) {
            *y = finish(round64(*x as f64 / c.exact));
        }
    }
    match rounding {
        Rounding::NearestAway => each(data, out, single, finish, f32::round, f64::round, 0.5),
        Rounding::TowardZero => each(data, out, single, finish, f32::trunc, f64::trunc, 0.0),
        Rounding::Up => each(data, out, single, finish, f32::ceil, f64::ceil, 0.0),
        Rounding::Down => each(data, out, single, finish, f32::floor, f64::floor, 0.0),
        // Nearest (the stochastic modes never come here).
        _ => each(data, out, single, finish, f32::round_ties_even, f64::round_ties_even, 0.5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 path for 8-bit formats agrees with the exact quotient in f64 and the f64
    /// finish: at, and a few ulps around, every integer and half-integer quotient up to
    /// ±260 of many scales (extremes whose reciprocal is still normal included), at tiny and
    /// zero inputs, with zero points, in every deterministic mode and at every vector level.
    #[test]
    fn single_precision_rounding_agrees_with_the_exact_quotient() {
        let rng = RandomStream::new(4, 0);
        let modes = [Rounding::Nearest, Rounding::NearestAway, Rounding::TowardZero, Rounding::Up, Rounding::Down];
        let mut scales: Vec<f32> = (0..120u64).map(|i| f32::from_bits(0x0100_0000 + rng.word(i, 0) % 0x7D00_0000)).collect();
        scales.extend([1.0, 0.1, 1.0 / 127.0, 3.0 / 255.0, f32::from_bits(0x0080_0001), 2f32.powi(-126) * 4.0, 2f32.powi(125)]);
        for &scale in scales.iter().filter(|s| (1.0 / **s).is_normal()) {
            let mut data = vec![0.0, -0.0, f32::from_bits(1), -f32::from_bits(1), scale * 1e-30];
            for k in -520..=520 {
                let center = (k as f64 * 0.5 * scale as f64) as f32;
                let (mut below, mut above) = (center, center);
                data.push(center);
                for _ in 0..3 {
                    below = below.next_down();
                    above = above.next_up();
                    data.extend([below, above]);
                }
            }
            data.extend((0..200u64).map(|i| (rng.word(i, 1) as f32 / u32::MAX as f32 - 0.5) * 500.0 * scale));
            for (z, qmin, qmax) in [(0.0, -127.0, 127.0), (-3.0, -128.0, 127.0), (128.0, 0.0, 255.0)] {
                let finish = |q: f64| (((q + z).clamp(qmin, qmax) - z) * scale as f64 + 0.0) as f32;
                let single = Single { inv: 1.0 / scale, scale, exact: scale as f64, z: z as f32, lo: qmin as f32, hi: qmax as f32 };
                for (level, mode) in simd::supported().into_iter().flat_map(|l| modes.map(|m| (l, m))) {
                    let mut fast = vec![0.0; data.len()];
                    simd::with_level(level, || divide_and_round_single(mode, &data, &mut fast, &single, &finish));
                    let round = |v: f64| match mode {
                        Rounding::NearestAway => v.round(),
                        Rounding::TowardZero => v.trunc(),
                        Rounding::Up => v.ceil(),
                        Rounding::Down => v.floor(),
                        _ => v.round_ties_even(),
                    };
                    for (x, got) in data.iter().zip(&fast) {
                        let want = finish(round(*x as f64 / scale as f64));
                        assert_eq!(got.to_bits(), want.to_bits(), "{x:e} / {scale:e}, z {z}, in {mode} ({level:?})");
                    }
                }
            }
        }
    }

    /// The reciprocal path agrees with the exact quotient on values at, and a few ulps
    /// around, every integer and half-integer multiple of many scales (where it must take its
    /// exact fallback), and on seeded random values, in every deterministic mode.
    #[test]
    fn reciprocal_rounding_agrees_with_the_exact_quotient_at_every_boundary() {
        let rng = RandomStream::new(3, 0);
        let modes = [Rounding::Nearest, Rounding::NearestAway, Rounding::TowardZero, Rounding::Up, Rounding::Down];
        let mut scales: Vec<f32> = (0..200u64).map(|i| f32::from_bits(0x3000_0000 + (rng.word(i, 0) >> 4))).collect();
        scales.extend([1.0, 0.1, 1.0 / 127.0, 3.0 / 127.0, f32::from_bits(1), f32::from_bits(0x0080_0000), 1e30]);
        for &scale in &scales {
            let mut data = Vec::new();
            for k in -260..=260 {
                let center = (k as f64 * 0.5 * scale as f64) as f32;
                let mut below = center;
                let mut above = center;
                data.push(center);
                for _ in 0..3 {
                    below = below.next_down();
                    above = above.next_up();
                    data.extend([below, above]);
                }
            }
            data.extend((0..64u64).map(|i| (rng.word(i, 1) as f32 / u32::MAX as f32 - 0.5) * 300.0 * scale));
            let finish = |q: f64| q as f32;
            for (level, mode) in simd::supported().into_iter().flat_map(|l| modes.map(|m| (l, m))) {
                let mut fast = vec![0.0; data.len()];
                simd::with_level(level, || divide_and_round(mode, &data, &mut fast, scale as f64, &finish));
                let round = |v: f64| match mode {
                    Rounding::NearestAway => v.round(),
                    Rounding::TowardZero => v.trunc(),
                    Rounding::Up => v.ceil(),
                    Rounding::Down => v.floor(),
                    _ => v.round_ties_even(),
                };
                for (x, got) in data.iter().zip(&fast) {
                    let want = round(*x as f64 / scale as f64) as f32;
                    assert_eq!(got.to_bits(), want.to_bits(), "{x:e} / {scale:e} in {mode} ({level:?})");
                }
            }
        }
    }
}
