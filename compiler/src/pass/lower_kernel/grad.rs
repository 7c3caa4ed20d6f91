//! The gradient ops that are not contractions (spec/ir.md, "Gradients"). Steps in the
//! accumulator format `A` (with its rounding); the last step rounds to the result `Y` with
//! `out` (or `round`), drawing at counter `e` (the element's row-major position) when
//! stochastic.
//!
//! - `nn.bias_grad` (R rows: the product of the axes summed over): `s = Σ_r dy[r, n…]` in A, sequential over the rows (draws at
//!   `e·(R+1) + r`), then `→ Y` (at `e·(R+1) + R`).
//! - `nn.clip_grad`: `dy·mask → Y` with `mask = step(x − lo)·step(hi − x)` (an infinite bound
//!   contributes no factor), `step(t) = max(min(t·2^100·2^100, 1), 0)`, every step in fp32.
//!   The mask is exactly 1 when lo < x < hi and 0 otherwise: a difference of two f32 values
//!   rounds to zero only when it is zero, and the two scalings lift the smallest positive
//!   difference (2^-149) above 1.
//! - `nn.leaky_relu_grad`: `fma(dy·m, α·(1 − m), dy) → Y` with `m = step(x)`, every other step
//!   in fp32 and exact (m is 0 or 1): `dy` where x > 0, else `α·dy`, rounded once; draws at `e`.
//! - `nn.softmax_xent_grad` (logits x, targets t, scale σ; B rows, C classes): `p` the
//!   softmax steps of `nn.softmax` ending in A; `d = p − t → A`; `g = d·σ → A`;
//!   `y = g / (B → A) → Y`.
//! - `nn.mse_grad` (n elements): `d = y − t → A`; `g = d·σ → A`; `h = g / (n → A) → A`;
//!   `y = h + h → Y`.
//!
//! - `nn.clip_grad` with a third operand (PACT's bound α) takes `hi = α`.
//! - `nn.pact_grad_alpha`: see [`pact_grad_alpha`].
//!
//! Every op but the loss gradients (whose accumulator autodiff makes fp32) accepts stochastic
//! roundings, drawing at the counters spec/ir.md lists ("Draw counters"): steps a row or
//! channel shares from its first element's counters, the element's own steps from its own.

use super::body::{nearest_value, Body, Rnd};
use super::draws::{arith_of, Draws};
use super::{draw_counter, error, generate, operand_type, result_type};
use crate::ir::{Arith, Attr, Dim, Module, OpId, ValueId};
use crate::pass::PassError;
use qc_runtime::numerics::{Format, Rounding};

fn fp32() -> Format {
    Format::parse("fp32").expect("fp32 is a named format")
}

/// The rounding to the result: `out`, drawing at the element's counter `e·span + offset`.
fn output(
    body: &mut Body<'_>,
    sizes: &[ValueId],
    format: Format,
    arith: &Arith,
    span: u64,
    offset: u64,
) -> Rnd {
    let draw = arith.out.is_stochastic().then(|| {
        (
            arith.stream.unwrap_or(0),
            draw_counter(body, sizes, span, offset),
        )
    });
    Rnd {
        format,
        rounding: arith.out,
        draw,
    }
}

pub fn bias_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let dy = module.ops[op].operands[0];
    let dyt = operand_type(module, op, 0);
    let kept = result_type(module, op).rank();
    let leading = &dyt.dims[..dyt.rank() - kept];
    let Some(rows) = leading.iter().try_fold(1u64, |n, d| match d {
        Dim::Fixed(k) => n.checked_mul(*k),
        Dim::Dynamic => None,
    }) else {
        return error(module, op, "the number of rows must be static (specialise the batch with `infer{batch=N}`)");
    };
    let row_sizes: Vec<u64> = leading.iter().map(|d| if let Dim::Fixed(s) = d { *s } else { 1 }).collect();
    let rt = result_type(module, op);
    generate(module, op, |body, sizes| {
        let kept_idx = body.idx.clone();
        let span = rows + 1;
        let acc_draw = arith.acc.rounding.is_stochastic().then(|| (arith.stream.unwrap_or(0), draw_counter(body, sizes, span, 0)));
        let acc = Rnd { format: arith.acc.format, rounding: arith.acc.rounding, draw: acc_draw };
        let lo = body.index(0);
        let hi = body.index(rows);
        let sum = body.accumulate(lo, hi, acc, None, |inner, r| {
            let mut at = vec![r; row_sizes.len()];
            let mut rest = r;
            for a in (1..row_sizes.len()).rev() {
                at[a] = inner.ix_const("kernel.index_rem", rest, row_sizes[a]);
                rest = inner.ix_const("kernel.index_div", rest, row_sizes[a]);
            }
            if let Some(first) = at.first_mut() {
                *first = rest;
            }
            at.extend_from_slice(&kept_idx);
            (inner.load(dy, at), None)
        });
        let out = output(body, sizes, rt.format, &arith, span, rows);
        Ok(body.round(sum, out))
    })
}

/// `[t > 0]` as an exact fp32 0 or 1 (see the module documentation).
pub(super) fn step(body: &mut Body<'_>, t: ValueId) -> ValueId {
    let exact32 = Rnd::new(fp32(), Rounding::Nearest);
    let lift = body.constant(fp32(), 2f64.powi(100));
    let once = body.rounded("kernel.mul", vec![t, lift], exact32);
    let twice = body.rounded("kernel.mul", vec![once, lift], exact32);
    let one = body.constant(fp32(), 1.0);
    let zero = body.constant(fp32(), 0.0);
    let capped = body.rounded("kernel.min", vec![twice, one], exact32);
    body.rounded("kernel.max", vec![capped, zero], exact32)
}

pub fn clip_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let o = &module.ops[op];
    let bound = |k: &str| o.attrs.get(k).and_then(Attr::as_f64).unwrap_or(f64::NAN);
    let (lo, hi) = (bound("min"), bound("max"));
    let upper = o.operands.get(2).copied();
    let upper_rank = if upper.is_some() { operand_type(module, op, 2).rank() } else { 0 };
    gated_grad(module, op, |body, g, xv, out| {
        let exact32 = Rnd::new(fp32(), Rounding::Nearest);
        let mut mask = None;
        if lo.is_finite() {
            let l = body.constant(fp32(), nearest_value(fp32(), lo));
            let d = body.rounded("kernel.sub", vec![xv, l], exact32);
            mask = Some(step(body, d));
        }
        let h = match upper {
            Some(bound) => {
                let zero = body.index(0);
                Some(body.load(bound, vec![zero; upper_rank]))
            }
            None => hi.is_finite().then(|| body.constant(fp32(), nearest_value(fp32(), hi))),
        };
        if let Some(h) = h {
            let d = body.rounded("kernel.sub", vec![h, xv], exact32);
            let s = step(body, d);
            mask = Some(match mask {
                Some(m) => body.rounded("kernel.mul", vec![m, s], exact32),
                None => s,
            });
        }
        match mask {
            Some(m) => body.rounded("kernel.mul", vec![g, m], out),
            None => body.round(g, out),
        }
    })
}

pub fn leaky_relu_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let alpha = module.ops[op].attrs.get("alpha").and_then(Attr::as_f64).unwrap_or(f64::NAN);
    gated_grad(module, op, |body, g, xv, out| {
        let exact32 = Rnd::new(fp32(), Rounding::Nearest);
        let m = step(body, xv);
        let one = body.constant(fp32(), 1.0);
        let not_m = body.rounded("kernel.sub", vec![one, m], exact32);
        let a = body.constant(fp32(), alpha as f32 as f64);
        let slope = body.rounded("kernel.mul", vec![a, not_m], exact32);
        let passed = body.rounded("kernel.mul", vec![g, m], exact32);
        body.rounded("kernel.fma", vec![passed, slope, g], out)
    })
}

/// An element-wise gradient op `(dy, x, ...)` with `round` and `stream` attributes:
/// `combine(body, dy, x, out)` yields the element, rounding once with `out` (drawing at `e`).
fn gated_grad(module: &mut Module, op: OpId, combine: impl FnOnce(&mut Body<'_>, ValueId, ValueId, Rnd) -> ValueId) -> Result<(), PassError> {
    let o = &module.ops[op];
    let rounding = match o.attrs.get("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    };
    let stream = o.attrs.get("stream").and_then(Attr::as_int).unwrap_or(0) as u32;
    let (dy, x) = (o.operands[0], o.operands[1]);
    let format = result_type(module, op).format;
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let g = body.load(dy, idx.clone());
        let xv = body.load(x, idx);
        let draw = rounding.is_stochastic().then(|| (stream, draw_counter(body, sizes, 1, 0)));
        Ok(combine(body, g, xv, Rnd { format, rounding, draw }))
    })
}

/// The loss gradients: `nn.softmax_xent_grad` and `nn.mse_grad`.
pub fn loss_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    if arith.acc.rounding.is_stochastic() {
        return error(
            module,
            op,
            "a stochastic accumulator here is not supported by lower-kernel yet",
        );
    }
    let softmax = module.ops[op].name() == "nn.softmax_xent_grad";
    let o = module.ops[op].operands.clone();
    let (y, t, scale) = (o[0], o[1], o[2]);
    let (yt, st) = (operand_type(module, op, 0), operand_type(module, op, 2));
    let rt = result_type(module, op);
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let zero = body.index(0);
        let predicted = if softmax {
            let (b, c) = (idx[0], idx[1]);
            let classes = body.size(y, &yt, 1);
            let first = body.load(y, vec![b, zero]);
            let m = body.reduce(
                "kernel.reduce_max",
                zero,
                classes,
                first,
                Default::default(),
                None,
                |inner, k| (inner.load(y, vec![b, k]), None),
            );
            let exp = |body: &mut Body<'_>, k: ValueId| {
                let xk = body.load(y, vec![b, k]);
                let d = body.rounded("kernel.sub", vec![xk, m], acc);
                body.rounded("kernel.exp", vec![d], acc)
            };
            let sum = body.accumulate(zero, classes, acc, None, |inner, k| (exp(inner, k), None));
            let own = exp(body, c);
            body.rounded("kernel.div", vec![own, sum], acc)
        } else {
            body.load(y, idx.clone())
        };
        let target = body.load(t, idx.clone());
        let d = body.rounded("kernel.sub", vec![predicted, target], acc);
        let sigma = body.load(scale, vec![zero; st.rank()]);
        let g = body.rounded("kernel.mul", vec![d, sigma], acc);
        let count = if softmax {
            sizes[0]
        } else {
            let mut n = body.index(1);
            for s in sizes {
                n = body.ix("kernel.index_mul", n, *s);
            }
            n
        };
        let count = body.rounded("kernel.from_index", vec![count], acc);
        let out = output(body, sizes, rt.format, &arith, 1, 0);
        Ok(if softmax {
            body.rounded("kernel.div", vec![g, count], out)
        } else {
            let h = body.rounded("kernel.div", vec![g, count], acc);
            body.rounded("kernel.add", vec![h, h], out)
        })
    })
}

/// `nn.pact_grad_alpha`: `Σ_e dy_e·[x_e ≥ α]` over every element `e` (row-major, static) in
/// A, the indicator `1 − step(α − x)` exact in fp32 and each product exact; then `→ Y`.
pub fn pact_grad_alpha(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let o = module.ops[op].operands.clone();
    let (dy, x, alpha) = (o[0], o[1], o[2]);
    let (dyt, at) = (operand_type(module, op, 0), operand_type(module, op, 2));
    let Some(dims) = dyt.static_dims() else {
        return error(
            module,
            op,
            "the gradient's shape must be static (specialise the batch with `infer{batch=N}`)",
        );
    };
    let count: u64 = dims.iter().product();
    let rt = result_type(module, op);
    generate(module, op, |body, sizes| {
        let draws = Draws::per_element(body, &arith, sizes, count + 1);
        let acc = draws.own(body, Rnd::new(arith.acc.format, arith.acc.rounding), 0);
        let exact32 = Rnd::new(fp32(), Rounding::Nearest);
        let zero = body.index(0);
        let a = body.load(alpha, vec![zero; at.rank()]);
        let hi = body.index(count);
        let sum = body.accumulate(zero, hi, acc, None, |inner, e| {
            let mut at = vec![e; dims.len()];
            let mut rest = e;
            for axis in (1..dims.len()).rev() {
                at[axis] = inner.ix_const("kernel.index_rem", rest, dims[axis]);
                rest = inner.ix_const("kernel.index_div", rest, dims[axis]);
            }
            if let Some(first) = at.first_mut() {
                *first = rest;
            }
            let xv = inner.load(x, at.clone());
            let d = inner.rounded("kernel.sub", vec![a, xv], exact32);
            let below = step(inner, d);
            let one = inner.constant(fp32(), 1.0);
            let mask = inner.rounded("kernel.sub", vec![one, below], exact32);
            let g = inner.load(dy, at);
            (inner.exact_mul(g, mask), None)
        });
        let out = draws.own(body, Rnd::new(rt.format, arith.out), count);
        Ok(body.round(sum, out))
    })
}

/// The element's own draw counters `e·P + 0, 1, 2, ...`, taken in the order the steps round.
struct InOrder {
    draws: Draws,
    next: u64,
}

impl InOrder {
    fn new(body: &mut Body<'_>, arith: &Arith, sizes: &[ValueId], span: u64) -> InOrder {
        InOrder { draws: Draws::per_element(body, arith, sizes, span), next: 0 }
    }

    /// `r`, drawing at the next counter when stochastic.
    fn next(&mut self, body: &mut Body<'_>, r: Rnd) -> Rnd {
        let r = self.draws.own(body, r, self.next);
        self.next += 1;
        r
    }

    /// The op `name` on `operands`, rounded as `r` says at the next counter.
    fn step(&mut self, body: &mut Body<'_>, name: &str, operands: Vec<ValueId>, r: Rnd) -> ValueId {
        let r = self.next(body, r);
        body.rounded(name, operands, r)
    }
}

/// The static length of axis `axis` of `t` when some rounding is stochastic (it sizes the
/// draw counters' span); 1 otherwise.
fn counted_len(module: &Module, op: OpId, t: &crate::ir::TensorType, axis: usize, arith: &Arith) -> Result<u64, PassError> {
    match t.dims[axis] {
        Dim::Fixed(n) => Ok(n),
        Dim::Dynamic if !arith.is_stochastic() => Ok(1),
        Dim::Dynamic => error(module, op, "stochastic rounding here needs the reduced axis static (specialise the batch with `infer{batch=N}`)"),
    }
}

/// `nn.softmax_grad dy, y` (axis a, K terms): `s = Σ_k dy_k·y_k` (exact products) in A;
/// `d = dy_i − s → A`; `y_i·d → Y`.
pub fn softmax_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let o = module.ops[op].operands.clone();
    let (dy, y) = (o[0], o[1]);
    let yt = operand_type(module, op, 1);
    let raw = module.ops[op].attrs.get("axis").and_then(Attr::as_int).unwrap_or(0);
    let axis = if raw < 0 { raw + yt.rank() as i64 } else { raw } as usize;
    let rt = result_type(module, op);
    let terms = counted_len(module, op, &yt, axis, &arith)?;
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let zero = body.index(0);
        let draws = Draws::new(body, &arith, sizes, terms + 2, |_, idx| {
            let mut first = idx.to_vec();
            first[axis] = zero;
            first
        });
        let at = |k: ValueId| {
            let mut at = idx.clone();
            at[axis] = k;
            at
        };
        let len = body.size(y, &yt, axis);
        let sum = draws.shared(body, acc, 0);
        let s = body.accumulate(zero, len, sum, None, |inner, k| {
            let (g, p) = (inner.load(dy, at(k)), inner.load(y, at(k)));
            (inner.exact_mul(g, p), None)
        });
        let own = body.load(dy, idx.clone());
        let sub = draws.own(body, acc, terms);
        let d = body.rounded("kernel.sub", vec![own, s], sub);
        let p = body.load(y, idx.clone());
        let out = draws.own(body, Rnd::new(rt.format, arith.out), terms + 1);
        Ok(body.rounded("kernel.mul", vec![p, d], out))
    })
}

/// `nn.layernorm_grad dy, x, γ` (D terms along the last axis): `μ`, `r` as `nn.layernorm`
/// computes them (in A, the same steps and ε); `n_k = (x_k − μ → A) / r → A`;
/// `g_k = dy_k·γ_k → A`; `s_1 = Σ_k g_k` and `s_2 = Σ_k g_k·n_k` (exact products) in A;
/// `m_1 = s_1 / D → A`, `m_2 = s_2 / D → A`; `t = g_i − m_1 → A`; `u = n_i·m_2 → A`;
/// `v = t − u → A`; `v / r → Y`.
pub fn layernorm_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let eps = module.ops[op].attrs.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let o = module.ops[op].operands.clone();
    let (dy, x, gamma) = (o[0], o[1], o[2]);
    let xt = operand_type(module, op, 1);
    let rt = result_type(module, op);
    let last = xt.rank() - 1;
    let d = counted_len(module, op, &xt, last, &arith)?;
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let zero = body.index(0);
        let draws = Draws::new(body, &arith, sizes, 7 * d + 11, |_, idx| {
            let mut first = idx.to_vec();
            first[last] = zero;
            first
        });
        let shared = |body: &mut Body<'_>, offset: u64| draws.shared(body, acc, offset);
        let at = |k: ValueId| {
            let mut at = idx.clone();
            at[last] = k;
            at
        };
        let len = body.size(x, &xt, last);
        let rnd = shared(body, 0);
        let count = body.rounded("kernel.from_index", vec![len], rnd);
        let rnd = shared(body, 1);
        let s1 = body.accumulate(zero, len, rnd, None, |inner, k| (inner.load(x, at(k)), None));
        let rnd = shared(body, d + 1);
        let mu = body.rounded("kernel.div", vec![s1, count], rnd);
        let centred = |body: &mut Body<'_>, k: ValueId| {
            let xk = body.load(x, at(k));
            let rnd = draws.shared_term(body, acc, d + 2, k);
            body.rounded("kernel.sub", vec![xk, mu], rnd)
        };
        let rnd = shared(body, 2 * d + 2);
        let s2 = body.accumulate(zero, len, rnd, None, |inner, k| {
            let c = centred(inner, k);
            (inner.exact_mul(c, c), None)
        });
        let rnd = shared(body, 3 * d + 2);
        let v = body.rounded("kernel.div", vec![s2, count], rnd);
        let e = body.constant(acc.format, nearest_value(acc.format, eps));
        let rnd = shared(body, 3 * d + 3);
        let t = body.rounded("kernel.add", vec![v, e], rnd);
        let rnd = shared(body, 3 * d + 4);
        let r = body.rounded("kernel.sqrt", vec![t], rnd);
        // n_k and g_k, as every sum and the element itself compute them.
        let normalised = |body: &mut Body<'_>, k: ValueId| {
            let c = centred(body, k);
            let rnd = draws.shared_term(body, acc, 3 * d + 5, k);
            body.rounded("kernel.div", vec![c, r], rnd)
        };
        let scaled = |body: &mut Body<'_>, k: ValueId| {
            let (g, c) = (body.load(dy, at(k)), body.load(gamma, vec![k]));
            let rnd = draws.shared_term(body, acc, 4 * d + 5, k);
            body.rounded("kernel.mul", vec![g, c], rnd)
        };
        let rnd = shared(body, 5 * d + 5);
        let sum_g = body.accumulate(zero, len, rnd, None, |inner, k| (scaled(inner, k), None));
        let rnd = shared(body, 6 * d + 5);
        let sum_gn = body.accumulate(zero, len, rnd, None, |inner, k| {
            let g = scaled(inner, k);
            let n = normalised(inner, k);
            (inner.exact_mul(g, n), None)
        });
        let rnd = shared(body, 7 * d + 5);
        let m1 = body.rounded("kernel.div", vec![sum_g, count], rnd);
        let rnd = shared(body, 7 * d + 6);
        let m2 = body.rounded("kernel.div", vec![sum_gn, count], rnd);
        let own = idx[last];
        let g = scaled(body, own);
        let n = normalised(body, own);
        let rnd = draws.own(body, acc, 7 * d + 7);
        let t = body.rounded("kernel.sub", vec![g, m1], rnd);
        let rnd = draws.own(body, acc, 7 * d + 8);
        let u = body.rounded("kernel.mul", vec![n, m2], rnd);
        let rnd = draws.own(body, acc, 7 * d + 9);
        let v = body.rounded("kernel.sub", vec![t, u], rnd);
        let out = draws.own(body, Rnd::new(rt.format, arith.out), 7 * d + 10);
        Ok(body.rounded("kernel.div", vec![v, r], out))
    })
}

/// `nn.sigmoid_grad`, `nn.tanh_grad`, `nn.gelu_grad` (dy, x), every step in A, the last
/// product rounded to Y:
/// - sigmoid: `s = sigmoid(x) → A`; `c = 1 − s → A`; `d = s·c → A`; `dy·d → Y`;
/// - tanh: `t = tanh(x) → A`; `q = t·t → A`; `d = 1 − q → A`; `dy·d → Y`;
/// - gelu: `d = Φ(x) + x·φ(x)` as [`gelu_slope`] computes it; `dy·d → Y`.
pub fn activation_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let name = module.ops[op].name();
    let (dy, x) = (module.ops[op].operands[0], module.ops[op].operands[1]);
    let rt = result_type(module, op);
    let span = if name == "nn.gelu_grad" { 11 } else { 4 };
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let mut order = InOrder::new(body, &arith, sizes, span);
        let xv = body.load(x, idx.clone());
        let one = body.constant(acc.format, 1.0);
        let slope = match name {
            "nn.sigmoid_grad" => {
                let s = order.step(body, "kernel.sigmoid", vec![xv], acc);
                let c = order.step(body, "kernel.sub", vec![one, s], acc);
                order.step(body, "kernel.mul", vec![s, c], acc)
            }
            "nn.tanh_grad" => {
                let t = order.step(body, "kernel.tanh", vec![xv], acc);
                let q = order.step(body, "kernel.mul", vec![t, t], acc);
                order.step(body, "kernel.sub", vec![one, q], acc)
            }
            _ => gelu_slope(body, xv, acc, &mut order),
        };
        let g = body.load(dy, idx);
        Ok(order.step(body, "kernel.mul", vec![g, slope], Rnd::new(rt.format, arith.out)))
    })
}

/// GELU's derivative `Φ(x) + x·φ(x)` at `x`, in A. `Φ(x) = gelu(x)/x` away from 0 and ½ at
/// 0, selected with the exact fp32 indicator `z = step(x) + step(−x)` (1 when x ≠ 0):
/// `w = x + (1 − z) → fp32` (x, or 1 at 0: no division by zero), `Φ = z·(gelu(x) → A) / w
/// → A` plus `(1 − z)·½` (exact: one of the two is 0); `φ = e^(x·x·(−½)) · c` with every
/// product and the exponential → A and `c` the A value nearest to 1/√(2π); then
/// `Φ + x·φ → A`.
fn gelu_slope(body: &mut Body<'_>, x: ValueId, acc: Rnd, order: &mut InOrder) -> ValueId {
    let exact32 = Rnd::new(fp32(), Rounding::Nearest);
    let one32 = body.constant(fp32(), 1.0);
    let zero32 = body.constant(fp32(), 0.0);
    let negated = body.rounded("kernel.sub", vec![zero32, x], exact32);
    let (above, below) = (step(body, x), step(body, negated));
    let z = body.rounded("kernel.add", vec![above, below], exact32);
    let not_z = body.rounded("kernel.sub", vec![one32, z], exact32);
    let w = body.rounded("kernel.add", vec![x, not_z], exact32);
    let gelu = order.step(body, "kernel.gelu", vec![x], acc);
    let ratio = order.step(body, "kernel.div", vec![gelu, w], acc);
    let kept = order.step(body, "kernel.mul", vec![ratio, z], acc);
    let half = body.constant(fp32(), 0.5);
    let at_zero = body.rounded("kernel.mul", vec![not_z, half], exact32);
    let cdf = order.step(body, "kernel.add", vec![kept, at_zero], acc);
    let square = order.step(body, "kernel.mul", vec![x, x], acc);
    let minus_half = body.constant(acc.format, nearest_value(acc.format, -0.5));
    let exponent = order.step(body, "kernel.mul", vec![square, minus_half], acc);
    let e = order.step(body, "kernel.exp", vec![exponent], acc);
    let c = body.constant(acc.format, nearest_value(acc.format, 1.0 / (2.0 * std::f64::consts::PI).sqrt()));
    let pdf = order.step(body, "kernel.mul", vec![e, c], acc);
    let tail = order.step(body, "kernel.mul", vec![x, pdf], acc);
    order.step(body, "kernel.add", vec![cdf, tail], acc)
}

/// The static row count of `t` (every axis but the last) and the sizes of those axes.
fn rows_of(module: &Module, op: OpId, t: &crate::ir::TensorType) -> Result<(u64, Vec<u64>), PassError> {
    let Some(dims) = t.static_dims() else {
        return error(module, op, "the number of rows must be static (specialise the batch with `infer{batch=N}`)");
    };
    let leading = dims[..dims.len() - 1].to_vec();
    Ok((leading.iter().product(), leading))
}

/// The indices of row `r` (row-major over `row_sizes`) at channel `c`.
fn row_at(body: &mut Body<'_>, r: ValueId, row_sizes: &[u64], c: ValueId) -> Vec<ValueId> {
    let mut at = vec![r; row_sizes.len()];
    let mut rest = r;
    for a in (1..row_sizes.len()).rev() {
        at[a] = body.ix_const("kernel.index_rem", rest, row_sizes[a]);
        rest = body.ix_const("kernel.index_div", rest, row_sizes[a]);
    }
    if let Some(first) = at.first_mut() {
        *first = rest;
    }
    at.push(c);
    at
}

/// `nn.batch_mean x` (R rows): `s = Σ_r x[r, c]` in A (rows in order); `s / (R → A) → Y`.
/// `nn.batch_var x, μ`: `s = Σ_r (x[r, c] − μ_c → A)²` (exact squares) in A; `s / (R → A) → Y`.
pub fn batch_statistic(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let o = module.ops[op].operands.clone();
    let x = o[0];
    let mean = o.get(1).copied();
    let xt = operand_type(module, op, 0);
    let (rows, row_sizes) = rows_of(module, op, &xt)?;
    let rt = result_type(module, op);
    // The variance's differences take the first R counters, then come the sum's additions.
    let first_sum = if mean.is_some() { rows } else { 0 };
    generate(module, op, |body, sizes| {
        let c = body.idx[0];
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let draws = Draws::per_element(body, &arith, sizes, first_sum + rows + 2);
        let mu = mean.map(|m| body.load(m, vec![c]));
        let (lo, hi) = (body.index(0), body.index(rows));
        let sum_rounding = draws.own(body, acc, first_sum);
        let sum = body.accumulate(lo, hi, sum_rounding, None, |inner, r| {
            let at = row_at(inner, r, &row_sizes, c);
            let xv = inner.load(x, at);
            match mu {
                None => (xv, None),
                Some(mu) => {
                    let sub = draws.own_term(inner, acc, 0, r);
                    let d = inner.rounded("kernel.sub", vec![xv, mu], sub);
                    (inner.exact_mul(d, d), None)
                }
            }
        });
        let count = body.index(rows);
        let converted = draws.own(body, acc, first_sum + rows);
        let count = body.rounded("kernel.from_index", vec![count], converted);
        let out = draws.own(body, Rnd::new(rt.format, arith.out), first_sum + rows + 1);
        Ok(body.rounded("kernel.div", vec![sum, count], out))
    })
}

/// `nn.batchnorm_grad dy, x, γ, μ, v, S, T` (R rows, channel c): `r = √(v_c + ε → A) → A`;
/// `n = (x − μ_c → A) / r → A`; `a = S_c / (R → A) → A`; `b = T_c / (R → A) → A`;
/// `t = dy − a → A`; `u = n·b → A`; `w = t − u → A`; `q = w / r → A`; `q·γ_c → Y`.
pub fn batchnorm_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let eps = module.ops[op].attrs.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let o = module.ops[op].operands.clone();
    let xt = operand_type(module, op, 1);
    let (rows, _) = rows_of(module, op, &xt)?;
    let rt = result_type(module, op);
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let c = *idx.last().expect("batch norm has a channel axis");
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let draws = Draws::new(body, &arith, sizes, 12, |body, idx| {
            let zero = body.index(0);
            let mut first = vec![zero; idx.len()];
            *first.last_mut().expect("batch norm has a channel axis") = c;
            first
        });
        let shared = |body: &mut Body<'_>, offset: u64| draws.shared(body, acc, offset);
        let own = |body: &mut Body<'_>, offset: u64| draws.own(body, acc, offset);
        let per_channel = |body: &mut Body<'_>, i: usize| body.load(o[i], vec![c]);
        let v = per_channel(body, 4);
        let e = body.constant(acc.format, nearest_value(acc.format, eps));
        let rnd = shared(body, 0);
        let t = body.rounded("kernel.add", vec![v, e], rnd);
        let rnd = shared(body, 1);
        let r = body.rounded("kernel.sqrt", vec![t], rnd);
        let count = body.index(rows);
        let rnd = shared(body, 2);
        let count = body.rounded("kernel.from_index", vec![count], rnd);
        let (s, tn) = (per_channel(body, 5), per_channel(body, 6));
        let rnd = shared(body, 3);
        let a = body.rounded("kernel.div", vec![s, count], rnd);
        let rnd = shared(body, 4);
        let b = body.rounded("kernel.div", vec![tn, count], rnd);
        let xv = body.load(o[1], idx.clone());
        let mu = per_channel(body, 3);
        let rnd = own(body, 5);
        let d = body.rounded("kernel.sub", vec![xv, mu], rnd);
        let rnd = own(body, 6);
        let n = body.rounded("kernel.div", vec![d, r], rnd);
        let g = body.load(o[0], idx);
        let rnd = own(body, 7);
        let t = body.rounded("kernel.sub", vec![g, a], rnd);
        let rnd = own(body, 8);
        let u = body.rounded("kernel.mul", vec![n, b], rnd);
        let rnd = own(body, 9);
        let w = body.rounded("kernel.sub", vec![t, u], rnd);
        let rnd = own(body, 10);
        let q = body.rounded("kernel.div", vec![w, r], rnd);
        let gamma = per_channel(body, 2);
        let out = draws.own(body, Rnd::new(rt.format, arith.out), 11);
        Ok(body.rounded("kernel.mul", vec![q, gamma], out))
    })
}

/// `nn.slice` (the gradient of `nn.concat`): element `i` loads x at `i` with `start` added
/// along the axis; no rounding.
pub fn slice(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let x = module.ops[op].operands[0];
    let xt = operand_type(module, op, 0);
    let attr = |k: &str| module.ops[op].attrs.get(k).and_then(Attr::as_int).unwrap_or(0);
    let (raw, start) = (attr("axis"), attr("start").max(0) as u64);
    let axis = if raw < 0 { raw + xt.rank() as i64 } else { raw } as usize;
    generate(module, op, |body, _| {
        let mut at = body.idx.clone();
        at[axis] = body.ix_const("kernel.index_add", at[axis], start);
        Ok(body.load(x, at))
    })
}
