//! The numerics of the array: what the PEs compute in an `array.step`, to the bit of the
//! kernel dialect's contraction (spec/ir.md, "Semantics of a contraction", and the draw
//! counters of "Lowering to kernel"), with the exact scalar arithmetic of [`crate::kernels`].
//!
//! Each output element keeps a [`PartialSum`] (the accumulator and the open chunk's sum) in
//! the ofmap buffer between folds, so a dataflow that splits the reduction over folds (ws,
//! is: PE rows hold a slice of K) adds the terms in the same increasing `k` order, with the
//! same draws, as one pass over K. Terms that do not exist (a convolution's padded
//! positions) are skipped: no addition, no draw.

use super::datapath::Datapath;
use super::isa::Instr;
use crate::kernels::{Exact, Rounder, Target};
use crate::numerics::rng::Draw;
use crate::numerics::{Format, RandomStream, Rounding};

/// The running state of one output element.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PartialSum {
    acc: f64,
    chunk_sum: f64,
}

/// Round-to-nearest-even to a float format, for an exact `f64` in the format's normal range
/// (else `None`: the caller rounds exactly).
#[derive(Clone, Copy, Debug, PartialEq)]
struct FastNearest {
    /// `(52 − m) << 52`: added to an `f64`'s exponent field, `2^(52 − m)` times its binade.
    c_shift: u64,
    min_normal: f64,
    max: f64,
    /// The format is IEEE binary32: `as f32` rounds to nearest-even.
    binary32: bool,
}

impl FastNearest {
    fn of(rounder: &Rounder) -> Option<FastNearest> {
        match (rounder.target, rounder.rounding) {
            (Target::Float(f), Rounding::Nearest) => Some(FastNearest {
                c_shift: u64::from(52 - f.man_bits.min(52)) << 52,
                min_normal: f.min_normal(),
                max: f.max(),
                binary32: f.exp_bits == 8 && f.man_bits == 23 && f.bias == 127,
            }),
            _ => None,
        }
    }

    /// `x` rounded to the format's significand, when `|x|` is in its normal range and the
    /// result does not exceed its largest value.
    #[inline]
    fn round(&self, x: f64) -> Option<f64> {
        let r = self.round_significand(x);
        self.in_range(x, r).then_some(r)
    }

    /// `x` (a normal `f64`) rounded to nearest-even at the format's significand width, the
    /// exponent unbounded: `as f32` for binary32; else `(x + c) − c` with `c = 1.5·2^52·u`,
    /// `u` the format's unit in the last place at `x`'s binade (both additions are exact but
    /// the first's rounding, which is to a multiple of `u`, ties to even).
    #[inline(always)]
    fn round_significand(&self, x: f64) -> f64 {
        if self.binary32 {
            return x as f32 as f64;
        }
        // c's exponent field is x's plus 52 − m (a huge x wraps it into garbage, but its
        // rounding then fails `in_range`'s bound anyway); its fraction is 0.5.
        let c = f64::from_bits(((x.to_bits() & EXPONENT_FIELD) + self.c_shift) | HALF_FRACTION);
        (x + c) - c
    }

    /// Whether `r`, the rounding of `x`, is the format's: `|x|` in its normal range (NaN is
    /// not) and `|r|` at most its largest value.
    #[inline(always)]
    fn in_range(&self, x: f64, r: f64) -> bool {
        (x.abs() >= self.min_normal) & (r.abs() <= self.max)
    }
}

/// The exponent field of an `f64`.
const EXPONENT_FIELD: u64 = 0x7ff << 52;
/// The top fraction bit of an `f64` (the significand 1.5).
const HALF_FRACTION: u64 = 1 << 51;

/// One rounded addition of the datapath: the exact rounder and, for nearest-even to a float
/// format, its fast path.
#[derive(Clone, Debug)]
struct Adder {
    rounder: Rounder,
    fast: Option<FastNearest>,
}

impl Adder {
    fn new(format: &Format, rounding: Rounding) -> Result<Adder, String> {
        let rounder = rounder(format, rounding)?;
        Ok(Adder { fast: FastNearest::of(&rounder), rounder })
    }

    /// `sum + term` rounded once; `draw` gives the draw when the exact path needs one.
    #[inline]
    fn add<'a>(&self, sum: f64, term: f64, draw: impl FnOnce() -> Draw<'a>) -> f64 {
        if let Some(fast) = &self.fast {
            let s = sum + term;
            // TwoSum: the rounding error of `s`; zero when `s` is the exact sum.
            let bb = s - sum;
            let err = (sum - (s - bb)) + (term - bb);
            if err == 0.0 {
                if let Some(r) = fast.round(s) {
                    return r;
                }
            }
        }
        self.rounder.exact(Exact::sum(sum, term), draw()) as f64
    }
}

/// The MAC datapath ready to compute: rounders for products, chunk sums and the accumulator,
/// the reduction length and the random stream of the op.
#[derive(Clone, Debug)]
pub struct ArrayNumerics {
    mul: Option<Rounder>,
    acc: Adder,
    chunk: Option<(u64, Adder)>,
    out: Rounder,
    k_total: u64,
    stream: RandomStream,
}

fn rounder(format: &Format, rounding: Rounding) -> Result<Rounder, String> {
    let target = Target::new(format).ok_or_else(|| format!("the array rounds to element-wise formats only, not `{format}`"))?;
    Ok(Rounder::new(target, rounding))
}

/// Output elements whose dot products [`ArrayNumerics::accumulate_lanes`] interleaves.
const LANES: usize = 4;

/// Adds `a[t]·b[t]` to every lane's sum with `fast`'s nearest-even, for `t` from 0 while
/// every lane's `f64` sum is exact (TwoSum error zero) and `fast` answers for it (the one
/// correct rounding of an exact value in the normal range); returns the number of terms
/// added (absent terms skipped).
#[inline]
fn fast_lanes(fast: &FastNearest, sums: &mut [f64; LANES], a: &[f32], bs: [&[f32]; LANES], present: Option<&[bool]>) -> usize {
    let n = a.len();
    let bs = bs.map(|b| &b[..n]);
    match present {
        None => fast_lanes_over(fast, sums, a, bs, |_| true),
        Some(p) => {
            let p = &p[..n];
            fast_lanes_over(fast, sums, a, bs, |t| p[t])
        }
    }
}

#[inline(always)]
fn fast_lanes_over(fast: &FastNearest, sums: &mut [f64; LANES], a: &[f32], bs: [&[f32]; LANES], exists: impl Fn(usize) -> bool) -> usize {
    for (t, &x) in a.iter().enumerate() {
        if !exists(t) {
            continue;
        }
        let x = x as f64;
        let mut next = [0f64; LANES];
        let mut ok = true;
        for l in 0..LANES {
            let (sum, term) = (sums[l], x * bs[l][t] as f64);
            let s = sum + term;
            let bb = s - sum;
            let err = (sum - (s - bb)) + (term - bb);
            let r = fast.round_significand(s);
            ok &= (err == 0.0) & fast.in_range(s, r);
            next[l] = r;
        }
        if !ok {
            return t;
        }
        *sums = next;
    }
    a.len()
}

/// A GEMM's operands as the array reads them, row-major: the ifmap `m × k` (`present`, when
/// given, says which terms exist: a convolution's padded positions do not), the filter
/// `n × k` (column `j`'s terms contiguous), an optional bias per output column, and where
/// output `(i, j)` is in the op's result: element `first + i·row_stride + j` (its draw
/// counters follow from it).
pub struct Operands<'a> {
    pub m: u64,
    pub n: u64,
    pub ifmap: &'a [f32],
    pub present: Option<&'a [bool]>,
    pub filter: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub first: u64,
    pub row_stride: u64,
}

impl ArrayNumerics {
    /// The numerics of `datapath` for a reduction of `k_total` terms producing `out_format`,
    /// drawing from `RandomStream::new(seed, datapath.stream)`.
    pub fn new(datapath: &Datapath, out_format: &Format, k_total: u64, seed: u64) -> Result<ArrayNumerics, String> {
        Ok(ArrayNumerics {
            mul: datapath.mul.as_ref().map(|m| rounder(&m.format, m.rounding)).transpose()?,
            acc: Adder::new(&datapath.acc.format, datapath.acc.rounding)?,
            chunk: datapath.chunk.as_ref().map(|(size, c)| Adder::new(&c.format, c.rounding).map(|r| (*size, r))).transpose()?,
            out: rounder(out_format, datapath.out)?,
            k_total,
            stream: RandomStream::new(seed, datapath.stream as u64),
        })
    }

    /// The draw at counter `offset` of output element `e` (`P = 3K + 2` counters each).
    fn draw(&self, e: u64, offset: u64) -> Draw<'_> {
        self.stream.at(e * (3 * self.k_total + 2) + offset)
    }

    /// Adds the terms `k0..k0+len` of output element `e` to `partial`, in increasing `k`:
    /// `a[k]·b[k]` for the terms that exist (`present[k]`, all without it). A chunk that
    /// closes inside the range is added to the accumulator.
    fn accumulate(&self, e: u64, partial: &mut PartialSum, k0: u64, a: &[f32], b: &[f32], present: Option<&[bool]>) {
        let k_total = self.k_total;
        let end = k0 + a.len() as u64;
        let exists = |k: u64| present.is_none_or(|p| p[(k - k0) as usize]);
        match &self.chunk {
            None => {
                if self.mul.is_none() && present.is_none() {
                    let mut acc = partial.acc;
                    for (i, (&x, &w)) in a.iter().zip(b).enumerate() {
                        acc = self.acc.add(acc, x as f64 * w as f64, || self.draw(e, k_total + k0 + i as u64));
                    }
                    partial.acc = acc;
                    return;
                }
                for k in k0..end {
                    if exists(k) {
                        let p = self.product(e, k, a[(k - k0) as usize], b[(k - k0) as usize]);
                        partial.acc = self.acc.add(partial.acc, p, || self.draw(e, k_total + k));
                    }
                }
            }
            Some((size, chunk)) => {
                let mut k = k0;
                while k < end {
                    if k > 0 && k.is_multiple_of(*size) {
                        let start = k - size;
                        partial.acc = self.acc.add(partial.acc, partial.chunk_sum, || self.draw(e, 2 * k_total + start));
                        partial.chunk_sum = 0.0;
                    }
                    let stop = ((k / size + 1) * size).min(end);
                    let mut sum = partial.chunk_sum;
                    for kk in k..stop {
                        if exists(kk) {
                            let p = self.product(e, kk, a[(kk - k0) as usize], b[(kk - k0) as usize]);
                            sum = chunk.add(sum, p, || self.draw(e, k_total + kk));
                        }
                    }
                    partial.chunk_sum = sum;
                    k = stop;
                }
            }
        }
    }

    /// Whether a group of [`LANES`] output elements can take the fast path together: exact
    /// products, the running sum (the chunk's when chunked) nearest-even to a float format.
    fn lanes_apply(&self) -> bool {
        let running = self.chunk.as_ref().map_or(&self.acc, |(_, c)| c);
        self.mul.is_none() && running.fast.is_some()
    }

    /// [`ArrayNumerics::accumulate`] for [`LANES`] output elements `e0, e0 + 1, ...` sharing
    /// the ifmap row `a` (filter columns `bs`), their chains interleaved: each term goes
    /// through the fast path for every lane, and a term where any lane's sum is not exact or
    /// leaves the normal range is added by the exact path for every lane.
    fn accumulate_lanes(&self, e0: u64, parts: &mut [PartialSum], k0: u64, a: &[f32], bs: [&[f32]; LANES], present: Option<&[bool]>) {
        let k_total = self.k_total;
        let end = k0 + a.len() as u64;
        let running = self.chunk.as_ref().map_or(&self.acc, |(_, c)| c);
        let Some(fast) = running.fast else {
            for (l, (p, b)) in parts.iter_mut().zip(bs).enumerate() {
                self.accumulate(e0 + l as u64, p, k0, a, b, present);
            }
            return;
        };
        let chunk = self.chunk.as_ref().map(|(size, _)| *size);
        let mut sums: [f64; LANES] = std::array::from_fn(|l| if chunk.is_some() { parts[l].chunk_sum } else { parts[l].acc });
        let mut k = k0;
        while k < end {
            if let Some(size) = chunk {
                if k > 0 && k.is_multiple_of(size) {
                    for (l, p) in parts.iter_mut().enumerate() {
                        p.acc = self.acc.add(p.acc, sums[l], || self.draw(e0 + l as u64, 2 * k_total + k - size));
                        sums[l] = 0.0;
                    }
                }
            }
            let stop = chunk.map_or(end, |size| ((k / size + 1) * size).min(end));
            let (lo, hi) = ((k - k0) as usize, (stop - k0) as usize);
            let mut t = lo;
            while t < hi {
                t += fast_lanes(&fast, &mut sums, &a[t..hi], bs.map(|b| &b[t..hi]), present.map(|p| &p[t..hi]));
                if t < hi {
                    if present.is_none_or(|p| p[t]) {
                        let kk = k0 + t as u64;
                        for (l, s) in sums.iter_mut().enumerate() {
                            *s = running.add(*s, a[t] as f64 * bs[l][t] as f64, || self.draw(e0 + l as u64, k_total + kk));
                        }
                    }
                    t += 1;
                }
            }
            k = stop;
        }
        for (l, p) in parts.iter_mut().enumerate() {
            if chunk.is_some() {
                p.chunk_sum = sums[l];
            } else {
                p.acc = sums[l];
            }
        }
    }

    /// Term `k`: the exact product (two `f32`s multiply exactly in `f64`) or its rounding.
    #[inline]
    fn product(&self, e: u64, k: u64, a: f32, b: f32) -> f64 {
        match &self.mul {
            None => a as f64 * b as f64,
            Some(m) => m.exact(Exact::product(a as f64, b as f64), self.draw(e, k)) as f64,
        }
    }

    /// The accumulator of output element `e` once all K terms are in: the last chunk added,
    /// then the bias (rounded to the accumulator).
    pub fn accumulator(&self, e: u64, partial: PartialSum, bias: Option<f32>) -> f64 {
        let k_total = self.k_total;
        let mut a = partial.acc;
        if let Some((size, _)) = &self.chunk {
            if k_total > 0 {
                let start = (k_total - 1) / size * size;
                a = self.acc.add(a, partial.chunk_sum, || self.draw(e, 2 * k_total + start));
            }
        }
        if let Some(b) = bias {
            a = self.acc.add(a, b as f64, || self.draw(e, 3 * k_total));
        }
        a
    }

    /// The accumulator value `a` of output element `e` rounded to the result with `out`.
    pub fn round_out(&self, e: u64, a: f64) -> f32 {
        self.out.exact(Exact::from_f64(a), self.draw(e, 3 * self.k_total + 1))
    }

    /// Executes the `array.step`s of `instrs` (one GEMM's folds, in order) on `operands` and
    /// returns the `m × n` accumulator values (bias included, before the output rounding),
    /// row-major.
    pub fn execute(&self, instrs: &[Instr], operands: &Operands) -> Result<Vec<f64>, String> {
        let (m_total, n_total, k_total) = (operands.m, operands.n, self.k_total);
        let (mk, nk) = ((m_total * k_total) as usize, (n_total * k_total) as usize);
        if operands.ifmap.len() != mk || operands.filter.len() != nk || operands.present.is_some_and(|p| p.len() != mk) {
            return Err(format!("the operands of a {m_total}x{n_total}x{k_total} GEMM have the wrong sizes"));
        }
        let element = |i: u64, j: u64| operands.first + i * operands.row_stride + j;
        let mut partials = vec![PartialSum::default(); (m_total * n_total) as usize];
        for instr in instrs {
            if let Instr::ArrayStep { m0, n0, k0, m, n, k } = *instr {
                if m0 + m > m_total || n0 + n > n_total || k0 + k > k_total {
                    return Err(format!("array.step {m0}+{m}, {n0}+{n}, {k0}+{k} outside the {m_total}x{n_total}x{k_total} GEMM"));
                }
                let (ks, ke) = (k0 as usize, (k0 + k) as usize);
                for i in m0..m0 + m {
                    let row = i as usize * k_total as usize;
                    let a = &operands.ifmap[row + ks..row + ke];
                    let present = operands.present.map(|p| &p[row + ks..row + ke]);
                    let column = |j: u64| {
                        let col = j as usize * k_total as usize;
                        &operands.filter[col + ks..col + ke]
                    };
                    let mut j = n0;
                    if self.lanes_apply() {
                        while j + LANES as u64 <= n0 + n {
                            let at = (i * n_total + j) as usize;
                            let bs = std::array::from_fn(|l| column(j + l as u64));
                            self.accumulate_lanes(element(i, j), &mut partials[at..at + LANES], k0, a, bs, present);
                            j += LANES as u64;
                        }
                    }
                    for j in j..n0 + n {
                        let p = &mut partials[(i * n_total + j) as usize];
                        self.accumulate(element(i, j), p, k0, a, column(j), present);
                    }
                }
            }
        }
        Ok(partials
            .iter()
            .enumerate()
            .map(|(at, p)| {
                let (i, j) = (at as u64 / n_total, at as u64 % n_total);
                self.accumulator(element(i, j), *p, operands.bias.map(|b| b[j as usize]))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::no_draw;

    /// The fast path gives the exact rounding's value wherever it answers, for sums of
    /// products of narrow operands and of arbitrary `f64`s, into fp32, fp16, bf16 and E5M2.
    #[test]
    fn the_fast_nearest_path_agrees_with_the_exact_rounding() {
        let stream = RandomStream::new(3, 0);
        for name in ["fp32", "fp16", "bf16", "e5m2", "fp<6,5>"] {
            let format = Format::parse(name).unwrap();
            let adder = Adder::new(&format, Rounding::Nearest).unwrap();
            let mut answered = 0;
            for i in 0..20000u64 {
                let u = |j: u32| stream.word(i, j) as f64 / 2f64.powi(32) - 0.5;
                let sum = adder.rounder.round(u(0) * 2f64.powi((stream.word(i, 1) % 40) as i32 - 20), no_draw()) as f64;
                let term = (u(2) as f32 as f64) * (u(3) as f32 as f64) * 2f64.powi((stream.word(i, 4) % 30) as i32 - 15);
                let exact = adder.rounder.exact(Exact::sum(sum, term), no_draw()) as f64;
                let fast = adder.add(sum, term, no_draw);
                assert_eq!(fast.to_bits(), exact.to_bits(), "{name}: {sum} + {term}");
                answered += adder.fast.unwrap().round(sum + term).is_some() as u32;
            }
            assert!(answered > 1000, "{name}: the fast path answered {answered} times");
        }
    }
}
