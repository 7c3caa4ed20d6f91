//! Softmax and normalisation, as sequences of once-rounded steps in the accumulator format
//! `A` (with the accumulator's rounding), the last step rounding to the result with `out`.
//! ε is the nearest value of A to the f32 nearest to the attribute.
//!
//! - softmax over axis a (K terms): `m = max_k x_k` (exact); `e_k = exp(x_k − m → A) → A`;
//!   `s = Σ_k e_k` (sequential, in A); `y = e_i / s → result`.
//! - batchnorm (channel c, last axis): `t = var_c + ε → A`; `r = √t → A`; `d = x − mean_c → A`;
//!   `n = d / r → A`; `y = n·γ_c + β_c → result` (one `kernel.fma`).
//! - layernorm over the last axis (D terms): `μ = (Σ_k x_k → A) / (D → A) → A`;
//!   `v = (Σ_k (x_k − μ → A)², products exact → A) / (D → A) → A`; `t = v + ε → A`;
//!   `r = √t → A`; `n = (x − μ → A) / r → A`; `y = n·γ_i + β_i → result`.
//!
//! Stochastic roundings draw so that what hardware computes once is drawn once: the steps a
//! whole row (softmax, layernorm) or channel (batchnorm) shares draw from the counters of
//! the row's or channel's first element `e0` (the element with the reduced axis, or every
//! axis but the channel, at 0), so every element of the row recomputes the same bits; each
//! element's own steps draw from its own counters `e·P + ...` past them (spec/ir.md, "Draw
//! counters").

use super::body::{nearest_value, Body, Rnd};
use super::draws::{arith_of, Draws};
use super::{error, generate, operand_type, result_type};
use crate::ir::{Arith, Attr, Module, OpId, ValueId};
use crate::pass::PassError;

fn epsilon(body: &mut Body<'_>, module_eps: f64, acc: Rnd) -> ValueId {
    body.constant(acc.format, nearest_value(acc.format, module_eps))
}

/// Counters (span `P = 3K + 1`): from the row's first element, `x_k − m` at `+ k`, its
/// exponential at `+ K + k`, the sum's additions at `+ 2K + k`; the element's division at
/// `+ 3K`. The numerator `e_i` is the sum's term `i`, drawn at the same counters.
pub fn softmax(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let x = module.ops[op].operands[0];
    let xt = operand_type(module, op, 0);
    let raw = module.ops[op].attrs.get("axis").and_then(Attr::as_int).unwrap_or(0);
    let axis = if raw < 0 { raw + xt.rank() as i64 } else { raw } as usize;
    let rt = result_type(module, op);
    let terms = static_len(module, op, &xt, axis, arith)?;
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let zero = body.index(0);
        let draws = Draws::new(body, &arith, sizes, 3 * terms + 1, |_, idx| {
            let mut first = idx.to_vec();
            first[axis] = zero;
            first
        });
        let at = |k: ValueId| {
            let mut at = idx.clone();
            at[axis] = k;
            at
        };
        let len = body.size(x, &xt, axis);
        let first = body.load(x, at(zero));
        let m = body.reduce("kernel.reduce_max", zero, len, first, Default::default(), None, |inner, k| (inner.load(x, at(k)), None));
        let exp = |body: &mut Body<'_>, k: ValueId| {
            let xk = body.load(x, at(k));
            let sub = draws.shared_term(body, acc, 0, k);
            let d = body.rounded("kernel.sub", vec![xk, m], sub);
            let exp = draws.shared_term(body, acc, terms, k);
            body.rounded("kernel.exp", vec![d], exp)
        };
        let sum_draws = draws.shared(body, acc, 2 * terms);
        let sum = body.accumulate(zero, len, sum_draws, None, |inner, k| (exp(inner, k), None));
        let own = exp(body, idx[axis]);
        let out = draws.own(body, Rnd::new(rt.format, arith.out), 3 * terms);
        Ok(body.rounded("kernel.div", vec![own, sum], out))
    })
}

/// The length of the reduced axis, which must be static when some rounding is stochastic
/// (it sizes the draw counters' span); 1 otherwise (no counters are drawn).
fn static_len(module: &Module, op: OpId, t: &crate::ir::TensorType, axis: usize, arith: Arith) -> Result<u64, PassError> {
    match t.dims[axis] {
        crate::ir::Dim::Fixed(n) => Ok(n),
        _ if !arith.is_stochastic() => Ok(1),
        _ => error(module, op, "stochastic rounding over a dynamic axis needs static sizes; specialise them with `infer{batch=N}`"),
    }
}

pub fn batchnorm(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let eps = module.ops[op].attrs.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let o = module.ops[op].operands.clone();
    let norm = BatchNorm { scale: o[1], shift: o[2], mean: o[3], var: o[4], arith, epsilon: eps };
    let rt = result_type(module, op);
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let draws = Draws::new(body, &arith, sizes, BatchNorm::SPAN, |body, idx| {
            let zero = body.index(0);
            let mut first = vec![zero; idx.len()];
            *first.last_mut().expect("batch norm has a channel axis") = *idx.last().expect("batch norm has a channel axis");
            first
        });
        let xv = body.load(o[0], idx);
        Ok(norm.element(body, xv, rt.format, &draws))
    })
}

/// A batch norm's per-channel operands and arithmetic: what `nn.batchnorm` computes, and
/// what a contraction with a fused `batchnorm` applies to its accumulator value.
pub struct BatchNorm {
    pub scale: ValueId,
    pub shift: ValueId,
    pub mean: ValueId,
    pub var: ValueId,
    pub arith: Arith,
    pub epsilon: f64,
}

impl BatchNorm {
    /// Draw counters per element: from the channel's first element, `var + ε` at `+ 0` and
    /// its square root at `+ 1`; the element's own steps at `+ 2, 3, 4`.
    const SPAN: u64 = 5;

    /// The normalised element for input value `x` at the body's indices (channel: the last),
    /// rounded to `result` with the arith's `out`.
    fn element(&self, body: &mut Body<'_>, x: ValueId, result: qc_runtime::numerics::Format, draws: &Draws) -> ValueId {
        let c = *body.idx.last().expect("batch norm has a channel axis");
        let acc = Rnd::new(self.arith.acc.format, self.arith.acc.rounding);
        let v = body.load(self.var, vec![c]);
        let e = epsilon(body, self.epsilon, acc);
        let r = draws.shared(body, acc, 0);
        let t = body.rounded("kernel.add", vec![v, e], r);
        let r = draws.shared(body, acc, 1);
        let r = body.rounded("kernel.sqrt", vec![t], r);
        let mu = body.load(self.mean, vec![c]);
        let rd = draws.own(body, acc, 2);
        let d = body.rounded("kernel.sub", vec![x, mu], rd);
        let rn = draws.own(body, acc, 3);
        let n = body.rounded("kernel.div", vec![d, r], rn);
        let (g, b) = (body.load(self.scale, vec![c]), body.load(self.shift, vec![c]));
        let out = draws.own(body, Rnd::new(result, self.arith.out), 4);
        body.rounded("kernel.fma", vec![b, n, g], out)
    }

    /// [`BatchNorm::element`] as the epilogue of a contraction (fusion requires the batch
    /// norm's arith to be deterministic, so it draws nothing).
    pub fn epilogue(&self, body: &mut Body<'_>, x: ValueId, result: qc_runtime::numerics::Format) -> ValueId {
        let none = Draws::none(Self::SPAN);
        self.element(body, x, result, &none)
    }
}

/// Counters (span `P = 3D + 7`): from the row's first element, the first sum's additions at
/// `+ k`, `D → A` at `+ D`, `μ` at `+ D + 1`, `x_k − μ` at `+ D + 2 + k`, the second sum's
/// additions at `+ 2D + 2 + k`, `v` at `+ 3D + 2`, `t` at `+ 3D + 3`, `r` at `+ 3D + 4`; the
/// element's `n` at `+ 3D + 5` and result at `+ 3D + 6`. The element's `x − μ` is the second
/// sum's term `i`, drawn at the same counter.
pub fn layernorm(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let eps = module.ops[op].attrs.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let o = module.ops[op].operands.clone();
    let (x, gamma, beta) = (o[0], o[1], o[2]);
    let xt = operand_type(module, op, 0);
    let rt = result_type(module, op);
    let last = xt.rank() - 1;
    let d_len = static_len(module, op, &xt, last, arith)?;
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let zero = body.index(0);
        let draws = Draws::new(body, &arith, sizes, 3 * d_len + 7, |_, idx| {
            let mut first = idx.to_vec();
            first[last] = zero;
            first
        });
        let at = |k: ValueId| {
            let mut at = idx.clone();
            at[last] = k;
            at
        };
        let len = body.size(x, &xt, last);
        let r = draws.shared(body, acc, d_len);
        let count = body.rounded("kernel.from_index", vec![len], r);
        let r = draws.shared(body, acc, 0);
        let s1 = body.accumulate(zero, len, r, None, |inner, k| (inner.load(x, at(k)), None));
        let r = draws.shared(body, acc, d_len + 1);
        let mu = body.rounded("kernel.div", vec![s1, count], r);
        let centred = |body: &mut Body<'_>, k: ValueId| {
            let xk = body.load(x, at(k));
            let r = draws.shared_term(body, acc, d_len + 2, k);
            body.rounded("kernel.sub", vec![xk, mu], r)
        };
        let r = draws.shared(body, acc, 2 * d_len + 2);
        let s2 = body.accumulate(zero, len, r, None, |inner, k| {
            let d = centred(inner, k);
            (inner.exact_mul(d, d), None)
        });
        let r = draws.shared(body, acc, 3 * d_len + 2);
        let v = body.rounded("kernel.div", vec![s2, count], r);
        let e = epsilon(body, eps, acc);
        let r = draws.shared(body, acc, 3 * d_len + 3);
        let t = body.rounded("kernel.add", vec![v, e], r);
        let r = draws.shared(body, acc, 3 * d_len + 4);
        let r = body.rounded("kernel.sqrt", vec![t], r);
        let d = centred(body, idx[last]);
        let rn = draws.own(body, acc, 3 * d_len + 5);
        let n = body.rounded("kernel.div", vec![d, r], rn);
        let (g, b) = (body.load(gamma, vec![idx[last]]), body.load(beta, vec![idx[last]]));
        let out = draws.own(body, Rnd::new(rt.format, arith.out), 3 * d_len + 6);
        Ok(body.rounded("kernel.fma", vec![b, n, g], out))
    })
}
