//! Softmax and normalisation, as sequences of once-rounded steps in the accumulator format
//! `A` (with the accumulator's rounding), the last step rounding to the result with `out`.
//! ε is the nearest value of A to the f32 nearest to the attribute. Stochastic roundings
//! are not supported here yet (an error).
//!
//! - softmax over axis a (K terms): `m = max_k x_k` (exact); `e_k = exp(x_k − m → A) → A`;
//!   `s = Σ_k e_k` (sequential, in A); `y = e_i / s → result`.
//! - batchnorm (channel c, last axis): `t = var_c + ε → A`; `r = √t → A`; `d = x − mean_c → A`;
//!   `n = d / r → A`; `y = n·γ_c + β_c → result` (one `kernel.fma`).
//! - layernorm over the last axis (D terms): `μ = (Σ_k x_k → A) / D → A`;
//!   `v = (Σ_k (x_k − μ → A)², products exact → A) / D → A`; `t = v + ε → A`; `r = √t → A`;
//!   `n = (x − μ → A) / r → A`; `y = n·γ_i + β_i → result`.

use super::body::{nearest_value, Body, Rnd};
use super::{error, generate, operand_type, result_type};
use crate::ir::{Arith, Attr, Module, OpId, ValueId};
use crate::pass::PassError;

fn deterministic(module: &Module, op: OpId) -> Result<Arith, PassError> {
    let Some(Attr::Arith(a)) = module.ops[op].attrs.get("arith") else { return error(module, op, "`arith` is missing") };
    if a.is_stochastic() {
        return error(module, op, "stochastic rounding here is not supported by lower-kernel yet");
    }
    Ok(*a)
}

fn epsilon(body: &mut Body<'_>, module_eps: f64, acc: Rnd) -> ValueId {
    body.constant(acc.format, nearest_value(acc.format, module_eps))
}

pub fn softmax(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = deterministic(module, op)?;
    let x = module.ops[op].operands[0];
    let xt = operand_type(module, op, 0);
    let raw = module.ops[op].attrs.get("axis").and_then(Attr::as_int).unwrap_or(0);
    let axis = if raw < 0 { raw + xt.rank() as i64 } else { raw } as usize;
    let rt = result_type(module, op);
    generate(module, op, |body, _| {
        let idx = body.idx.clone();
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let at = |k: ValueId| {
            let mut at = idx.clone();
            at[axis] = k;
            at
        };
        let zero = body.index(0);
        let len = body.size(x, &xt, axis);
        let first = body.load(x, at(zero));
        let m = body.reduce("kernel.reduce_max", zero, len, first, Default::default(), None, |inner, k| (inner.load(x, at(k)), None));
        let exp = |body: &mut Body<'_>, k: ValueId| {
            let xk = body.load(x, at(k));
            let d = body.rounded("kernel.sub", vec![xk, m], acc);
            body.rounded("kernel.exp", vec![d], acc)
        };
        let sum = body.accumulate(zero, len, acc, None, |inner, k| (exp(inner, k), None));
        let own = exp(body, idx[axis]);
        Ok(body.rounded("kernel.div", vec![own, sum], Rnd::new(rt.format, arith.out)))
    })
}

pub fn batchnorm(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = deterministic(module, op)?;
    let eps = module.ops[op].attrs.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let o = module.ops[op].operands.clone();
    let norm = BatchNorm { scale: o[1], shift: o[2], mean: o[3], var: o[4], arith, epsilon: eps };
    let rt = result_type(module, op);
    generate(module, op, |body, _| {
        let idx = body.idx.clone();
        let xv = body.load(o[0], idx);
        Ok(norm.element(body, xv, rt.format))
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
    /// The normalised element for input value `x` at the body's indices (channel: the last),
    /// rounded to `result` with the arith's `out`.
    pub fn element(&self, body: &mut Body<'_>, x: ValueId, result: qc_runtime::numerics::Format) -> ValueId {
        let c = *body.idx.last().expect("batch norm has a channel axis");
        let acc = Rnd::new(self.arith.acc.format, self.arith.acc.rounding);
        let v = body.load(self.var, vec![c]);
        let e = epsilon(body, self.epsilon, acc);
        let t = body.rounded("kernel.add", vec![v, e], acc);
        let r = body.rounded("kernel.sqrt", vec![t], acc);
        let mu = body.load(self.mean, vec![c]);
        let d = body.rounded("kernel.sub", vec![x, mu], acc);
        let n = body.rounded("kernel.div", vec![d, r], acc);
        let (g, b) = (body.load(self.scale, vec![c]), body.load(self.shift, vec![c]));
        body.rounded("kernel.fma", vec![b, n, g], Rnd::new(result, self.arith.out))
    }
}

pub fn layernorm(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = deterministic(module, op)?;
    let eps = module.ops[op].attrs.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let o = module.ops[op].operands.clone();
    let (x, gamma, beta) = (o[0], o[1], o[2]);
    let xt = operand_type(module, op, 0);
    let rt = result_type(module, op);
    generate(module, op, |body, _| {
        let idx = body.idx.clone();
        let last = idx.len() - 1;
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let at = |k: ValueId| {
            let mut at = idx.clone();
            at[last] = k;
            at
        };
        let zero = body.index(0);
        let len = body.size(x, &xt, last);
        let count = body.rounded("kernel.from_index", vec![len], acc);
        let s1 = body.accumulate(zero, len, acc, None, |inner, k| (inner.load(x, at(k)), None));
        let mu = body.rounded("kernel.div", vec![s1, count], acc);
        let s2 = body.accumulate(zero, len, acc, None, |inner, k| {
            let xk = inner.load(x, at(k));
            let d = inner.rounded("kernel.sub", vec![xk, mu], acc);
            (inner.exact_mul(d, d), None)
        });
        let v = body.rounded("kernel.div", vec![s2, count], acc);
        let e = epsilon(body, eps, acc);
        let t = body.rounded("kernel.add", vec![v, e], acc);
        let r = body.rounded("kernel.sqrt", vec![t], acc);
        let xi = body.load(x, idx.clone());
        let d = body.rounded("kernel.sub", vec![xi, mu], acc);
        let n = body.rounded("kernel.div", vec![d, r], acc);
        let (g, b) = (body.load(gamma, vec![idx[last]]), body.load(beta, vec![idx[last]]));
        Ok(body.rounded("kernel.fma", vec![b, n, g], Rnd::new(rt.format, arith.out)))
    })
}
