//! Codebook formats: binary `{−α, +α}`, ternary TWN `{−α, 0, +α}`, ternary BitNet b1.58
//! `{−γ, 0, +γ}` (per tensor or per channel), and powers of two `log2<b>` anchored at the
//! tensor's largest magnitude. See `spec/scaled-formats.md`, "Codebooks" and "Powers of two".

use super::fixed::{round_to_grid, round_to_integer};
use super::float::{exponent_of, pow2};
use super::format::{Codebook, Granularity, LogFormat, QuantizeError};
use super::rng::{Draw, RandomStream};
use super::rounding::Rounding;
use super::scaled::{check_lengths, Groups};

/// The TWN threshold factor: Δ = 0.7·mean|w| (Li et al., "Ternary Weight Networks").
const TWN_THRESHOLD: f64 = 0.7;

/// Per-group sums for the means, accumulated in `f64` in index order.
#[derive(Clone, Copy, Debug, Default)]
struct Sum {
    total: f64,
    count: u64,
    /// The group holds a NaN or an infinity.
    invalid: bool,
}

impl Sum {
    /// `total / count` in f64, rounded once to f32 (0 for an empty sum, NaN if invalid).
    fn mean(&self) -> f32 {
        if self.invalid {
            f32::NAN
        } else if self.count == 0 {
            0.0
        } else {
            (self.total / self.count as f64) as f32
        }
    }
}

/// mean|w| of each group, or of the elements with |w| above the group's `threshold`.
fn abs_means(data: &[f32], groups: &Groups, threshold: Option<&[f32]>) -> Vec<f32> {
    let mut sums = vec![Sum::default(); groups.count];
    for (g, _, chunk) in groups.runs(data) {
        let s = &mut sums[g];
        let above = threshold.map_or(f32::NEG_INFINITY, |t| t[g]);
        // Branch-free: a skipped element adds +0.0, which leaves the (non-negative) total
        // unchanged, so the sum is the sequential one. A NaN or ±∞ spoils the total, but
        // its group's mean is NaN anyway.
        // The terms are prepared 64 at a time in a loop that vectorises; the sum itself is
        // one chain of additions.
        let (mut total, mut count, mut special) = (s.total, 0u64, false);
        let mut terms = [0f64; 64];
        for ws in chunk.chunks(64) {
            for (w, t) in ws.iter().zip(terms.iter_mut()) {
                let a = w.abs();
                special |= !w.is_finite();
                let take = a > above;
                *t = if take { a as f64 } else { 0.0 };
                count += take as u64;
            }
            for t in &terms[..ws.len()] {
                total += t;
            }
        }
        s.total = total;
        s.count += count;
        s.invalid |= special;
    }
    sums.iter().map(Sum::mean).collect()
}

/// The scale of each group (α or γ) and, for TWN, the threshold Δ of each group.
pub fn codebook_scales(c: &Codebook, data: &[f32], shape: &[usize]) -> Result<(Vec<f32>, Option<Vec<f32>>), QuantizeError> {
    let groups = Groups::new(granularity(c), shape)?;
    Ok(scales_of(c, data, &groups))
}

fn granularity(c: &Codebook) -> Granularity {
    match *c {
        Codebook::Binary(g) | Codebook::Ternary(g) | Codebook::TernaryAbsmean(g) => g,
    }
}

fn scales_of(c: &Codebook, data: &[f32], groups: &Groups) -> (Vec<f32>, Option<Vec<f32>>) {
    let means = abs_means(data, groups, None);
    match c {
        Codebook::Ternary(_) => {
            let thresholds: Vec<f32> = means.iter().map(|m| (TWN_THRESHOLD * *m as f64) as f32).collect();
            (abs_means(data, groups, Some(&thresholds)), Some(thresholds))
        }
        _ => (means, None),
    }
}

/// Quantizes `data` (row-major, `shape`) to a binary or ternary codebook into `out`; element
/// `i` draws from `rng` at index `i`.
pub fn quantize_codebook(
    c: &Codebook,
    data: &[f32],
    shape: &[usize],
    rounding: Rounding,
    rng: &RandomStream,
    out: &mut [f32],
) -> Result<(), QuantizeError> {
    check_lengths(data, shape, out)?;
    let groups = Groups::new(granularity(c), shape)?;
    let (scales, thresholds) = scales_of(c, data, &groups);
    for (g, start, chunk) in groups.runs(data) {
        let alpha = scales[g];
        let dst = &mut out[start..start + chunk.len()];
        if alpha.is_nan() || alpha == 0.0 {
            dst.fill(if alpha == 0.0 { 0.0 } else { f32::NAN });
            continue;
        }
        if let (Codebook::Ternary(_), Rounding::Nearest | Rounding::NearestAway, Some(t)) = (c, rounding, &thresholds) {
            // The TWN rule: sign(w)·α above the threshold (or at it, for nearest-away).
            let (delta, at) = (t[g], rounding == Rounding::NearestAway);
            for (w, y) in chunk.iter().zip(dst.iter_mut()) {
                let a = w.abs();
                let on = (a > delta || (at && a == delta)) && a != 0.0;
                *y = if on { alpha.copysign(*w) } else { 0.0 };
            }
            continue;
        }
        for (j, (w, y)) in chunk.iter().zip(dst.iter_mut()).enumerate() {
            let draw = rng.at((start + j) as u64);
            let q = match c {
                Codebook::Binary(_) => binary_level(*w, alpha, rounding, draw),
                Codebook::Ternary(_) => {
                    let delta = thresholds.as_ref().map_or(0.0, |t| t[g]);
                    twn_level(*w, alpha, delta, rounding, draw)
                }
                Codebook::TernaryAbsmean(_) => ternary_level(*w, alpha, rounding, draw),
            };
            *y = (q * alpha as f64 + 0.0) as f32;
        }
    }
    Ok(())
}

/// The binary level (±1) of `w` with scale `alpha` > 0.
fn binary_level(w: f32, alpha: f32, rounding: Rounding, draw: Draw<'_>) -> f64 {
    let sign = if w >= 0.0 { 1.0 } else { -1.0 }; // sign(±0) = +1
    match rounding {
        Rounding::Nearest | Rounding::NearestAway | Rounding::TowardZero => sign,
        Rounding::Up => if w <= -alpha { -1.0 } else { 1.0 },
        Rounding::Down => if w >= alpha { 1.0 } else { -1.0 },
        Rounding::Stochastic | Rounding::StochasticBits(_) | Rounding::StochasticUnbiased(_) => {
            let t = w as f64 / alpha as f64;
            if t.abs() >= 1.0 {
                return sign;
            }
            // BinaryConnect: P(+1) = (1 + t)/2, the position of t in the gap [−1, 1].
            let u = (1.0 + t) / 2.0;
            2.0 * round_to_grid(u, 0, rounding, draw) - 1.0
        }
    }
}

/// The TWN level (−1, 0, +1) of `w` with scale `alpha` > 0 and threshold `delta`.
fn twn_level(w: f32, alpha: f32, delta: f32, rounding: Rounding, draw: Draw<'_>) -> f64 {
    let sign = if w > 0.0 { 1.0 } else if w < 0.0 { -1.0 } else { 0.0 };
    match rounding {
        Rounding::Nearest => if w.abs() > delta { sign } else { 0.0 },
        Rounding::NearestAway => if w.abs() >= delta { sign } else { 0.0 },
        _ => ternary_level(w, alpha, rounding, draw),
    }
}

/// `clip(round(w/scale), −1, 1)` with the f64 quotient.
fn ternary_level(w: f32, scale: f32, rounding: Rounding, draw: Draw<'_>) -> f64 {
    round_to_integer(w as f64 / scale as f64, rounding, draw).clamp(-1.0, 1.0)
}

/// The exponents of `log2<b>` for a tensor with largest magnitude `amax` > 0 (finite):
/// `(lowest, top)`; `top` is the exponent amax rounds to in the log domain, at most 127.
pub fn log2_exponents(l: &LogFormat, amax: f32) -> (i32, i32) {
    let a = amax as f64;
    let e = exponent_of(a);
    // a ≥ √2·2^e ⇔ a² ≥ 2^(2e+1), exact: a² has at most 48 significant bits.
    let top = (e + (a * a >= pow2(2 * e + 1)) as i32).min(127);
    let codes = (1i32 << (l.bits - 1)) - 1;
    (top - codes + 1, top)
}

/// Quantizes `data` to `log2<b>` into `out` (one anchor for the whole tensor); element `i`
/// draws from `rng` at index `i`.
pub fn quantize_log(l: &LogFormat, data: &[f32], rounding: Rounding, rng: &RandomStream, out: &mut [f32]) -> Result<(), QuantizeError> {
    if data.len() != out.len() {
        return Err(QuantizeError::ShapeMismatch { expected: data.len(), found: out.len() });
    }
    let mut amax = 0f32;
    for x in data {
        if !x.is_finite() {
            out.fill(f32::NAN);
            return Ok(());
        }
        amax = amax.max(x.abs());
    }
    if amax == 0.0 {
        out.copy_from_slice(data); // ±0
        return Ok(());
    }
    let (low, top) = log2_exponents(l, amax);
    for (i, (x, y)) in data.iter().zip(out.iter_mut()).enumerate() {
        *y = round_log2(*x, low, top, rounding, rng.at(i as u64)) as f32;
    }
    Ok(())
}

/// `x` rounded to `{0} ∪ {±2^e : low ≤ e ≤ top}`, saturating at `2^top`.
fn round_log2(x: f32, low: i32, top: i32, rounding: Rounding, draw: Draw<'_>) -> f64 {
    let v = x as f64;
    let a = v.abs();
    if a == 0.0 {
        return v;
    }
    if a >= pow2(top) {
        return pow2(top).copysign(v);
    }
    if a < pow2(low) {
        // The linear gap [0, 2^low]: ties (a = 2^(low−1)) go to 0, the even neighbour.
        return round_to_grid(v, low, rounding, draw);
    }
    let e = exponent_of(a);
    match rounding {
        // The log-domain midpoint √2·2^e is irrational: no ties.
        Rounding::Nearest | Rounding::NearestAway => {
            let up = a * a > pow2(2 * e + 1);
            pow2(e + up as i32).copysign(v)
        }
        // Directed modes pick 2^e or 2^(e+1) as on the grid of spacing 2^e; stochastic modes
        // round up with probability (a − 2^e)/2^e, so the expected value is a.
        _ => round_to_grid(v, e, rounding, draw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TWN loop for the nearest modes against the per-element rule (`twn_level`): ±0,
    /// elements exactly at the threshold and one ulp either side, a threshold that rounds
    /// to zero (a subnormal mean), groups with a NaN or ±∞, per tensor and per channel.
    #[test]
    fn twn_nearest_loop_agrees_with_the_element_rule() {
        let rng = RandomStream::new(2, 2);
        let tiny = f32::from_bits(1);
        let mut data: Vec<f32> = (0..64u64).map(|i| (rng.word(i, 0) as f32 / u32::MAX as f32 - 0.5) * 4.0).collect();
        data.extend([0.0, -0.0, tiny, -tiny, 0.0, tiny, 0.0, 0.0]); // a channel with Δ = 0
        data.extend([1.0, f32::NAN, 2.0, 3.0, -1.0, 0.5, 0.25, 0.0]);
        data.extend([1.0, f32::NEG_INFINITY, 2.0, 3.0, -1.0, 0.5, 0.25, 0.0]);
        for granularity in [Granularity::PerTensor, Granularity::PerChannel(0)] {
            let shape = [data.len() / 8, 8];
            let groups = Groups::new(granularity, &shape).unwrap();
            let c = Codebook::Ternary(granularity);
            // Put elements at the threshold of the first channel and one ulp either side.
            let (_, t) = scales_of(&c, &data, &groups);
            let delta = t.unwrap()[0];
            let mut data = data.clone();
            data[1..7].copy_from_slice(&[delta, -delta, delta.next_up(), -delta.next_down(), delta.next_down(), -delta.next_up()]);
            let (scales, thresholds) = scales_of(&c, &data, &groups);
            let thresholds = thresholds.unwrap();
            for mode in [Rounding::Nearest, Rounding::NearestAway] {
                let mut out = vec![0f32; data.len()];
                quantize_codebook(&c, &data, &shape, mode, &rng, &mut out).unwrap();
                for (g, start, chunk) in groups.runs(&data) {
                    let alpha = scales[g];
                    for (j, w) in chunk.iter().enumerate() {
                        let want = if alpha.is_nan() {
                            f32::NAN
                        } else if alpha == 0.0 {
                            0.0
                        } else {
                            (twn_level(*w, alpha, thresholds[g], mode, rng.at(0)) * alpha as f64 + 0.0) as f32
                        };
                        let got = out[start + j];
                        assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{granularity:?} {mode} [{}] {w:e}: {got:e}, rule {want:e}", start + j);
                    }
                }
            }
        }
    }
}
