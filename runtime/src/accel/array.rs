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

/// The MAC datapath ready to compute: rounders for products, chunk sums and the accumulator,
/// the reduction length and the random stream of the op.
#[derive(Clone, Debug)]
pub struct ArrayNumerics {
    mul: Option<Rounder>,
    acc: Rounder,
    chunk: Option<(u64, Rounder)>,
    out: Rounder,
    k_total: u64,
    stream: RandomStream,
}

fn rounder(format: &Format, rounding: Rounding) -> Result<Rounder, String> {
    let target = Target::new(format).ok_or_else(|| format!("the array rounds to element-wise formats only, not `{format}`"))?;
    Ok(Rounder::new(target, rounding))
}

impl ArrayNumerics {
    /// The numerics of `datapath` for a reduction of `k_total` terms producing `out_format`,
    /// drawing from `RandomStream::new(seed, datapath.stream)`.
    pub fn new(datapath: &Datapath, out_format: &Format, k_total: u64, seed: u64) -> Result<ArrayNumerics, String> {
        Ok(ArrayNumerics {
            mul: datapath.mul.as_ref().map(|m| rounder(&m.format, m.rounding)).transpose()?,
            acc: rounder(&datapath.acc.format, datapath.acc.rounding)?,
            chunk: datapath.chunk.as_ref().map(|(size, c)| rounder(&c.format, c.rounding).map(|r| (*size, r))).transpose()?,
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
    /// `term(k)` is the pair of operands, `None` for a term that does not exist. A chunk that
    /// closes inside the range is added to the accumulator.
    pub fn accumulate(&self, e: u64, partial: &mut PartialSum, k0: u64, len: u64, term: impl Fn(u64) -> Option<(f32, f32)>) {
        let k_total = self.k_total;
        for k in k0..k0 + len {
            if let Some((size, chunk)) = &self.chunk {
                if k > 0 && k % size == 0 {
                    let start = k - size;
                    partial.acc = self.acc.exact(Exact::sum(partial.acc, partial.chunk_sum), self.draw(e, 2 * k_total + start)) as f64;
                    partial.chunk_sum = 0.0;
                }
                if let Some(p) = self.product(e, k, &term) {
                    partial.chunk_sum = chunk.exact(Exact::sum(partial.chunk_sum, p), self.draw(e, k_total + k)) as f64;
                }
            } else if let Some(p) = self.product(e, k, &term) {
                partial.acc = self.acc.exact(Exact::sum(partial.acc, p), self.draw(e, k_total + k)) as f64;
            }
        }
    }

    /// Term `k`: the exact product (two `f32`s multiply exactly in `f64`) or its rounding.
    fn product(&self, e: u64, k: u64, term: &impl Fn(u64) -> Option<(f32, f32)>) -> Option<f64> {
        let (a, b) = term(k)?;
        let exact = a as f64 * b as f64;
        Some(match &self.mul {
            None => exact,
            Some(m) => m.exact(Exact::product(a as f64, b as f64), self.draw(e, k)) as f64,
        })
    }

    /// The accumulator of output element `e` once all K terms are in: the last chunk added,
    /// then the bias (rounded to the accumulator).
    pub fn accumulator(&self, e: u64, partial: PartialSum, bias: Option<f32>) -> f64 {
        let k_total = self.k_total;
        let mut a = partial.acc;
        if let Some((size, _)) = &self.chunk {
            if k_total > 0 {
                let start = (k_total - 1) / size * size;
                a = self.acc.exact(Exact::sum(a, partial.chunk_sum), self.draw(e, 2 * k_total + start)) as f64;
            }
        }
        if let Some(b) = bias {
            a = self.acc.exact(Exact::sum(a, b as f64), self.draw(e, 3 * k_total)) as f64;
        }
        a
    }

    /// The accumulator value `a` of output element `e` rounded to the result with `out`.
    pub fn round_out(&self, e: u64, a: f64) -> f32 {
        self.out.exact(Exact::from_f64(a), self.draw(e, 3 * self.k_total + 1))
    }
}

/// A GEMM's operands as the array reads them: `ifmap(m, k)` (`None` for a term that does not
/// exist), `filter(k, n)`, and an optional bias per output column.
pub struct Operands<'a> {
    pub m: u64,
    pub n: u64,
    pub ifmap: &'a dyn Fn(u64, u64) -> Option<f32>,
    pub filter: &'a dyn Fn(u64, u64) -> f32,
    pub bias: Option<&'a [f32]>,
}

impl ArrayNumerics {
    /// Executes the `array.step`s of `instrs` (one layer's folds, in order) on `operands` and
    /// returns the `m × n` accumulator values (bias included, before the output rounding),
    /// row-major: output element `e = m·n_total + n`.
    pub fn execute(&self, instrs: &[Instr], operands: &Operands) -> Result<Vec<f64>, String> {
        let (m_total, n_total) = (operands.m, operands.n);
        let mut partials = vec![PartialSum::default(); (m_total * n_total) as usize];
        for instr in instrs {
            if let Instr::ArrayStep { m0, n0, k0, m, n, k } = *instr {
                if m0 + m > m_total || n0 + n > n_total || k0 + k > self.k_total {
                    return Err(format!("array.step {m0}+{m}, {n0}+{n}, {k0}+{k} outside the {m_total}x{n_total}x{} GEMM", self.k_total));
                }
                for i in m0..m0 + m {
                    for j in n0..n0 + n {
                        let e = i * n_total + j;
                        let term = |kk: u64| (operands.ifmap)(i, kk).map(|a| (a, (operands.filter)(kk, j)));
                        self.accumulate(e, &mut partials[e as usize], k0, k, term);
                    }
                }
            }
        }
        Ok(partials
            .iter()
            .enumerate()
            .map(|(e, p)| self.accumulator(e as u64, *p, operands.bias.map(|b| b[e % n_total as usize])))
            .collect())
    }
}
