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
//! Stochastic accumulators are supported in `nn.bias_grad` only; the loss gradients accept a
//! stochastic `out` (the rounding into the gradient format).

use super::body::{nearest_value, Body, Rnd};
use super::{draw_counter, error, generate, operand_type, result_type};
use crate::ir::{Arith, Attr, Dim, Module, OpId, ValueId};
use crate::pass::PassError;
use qc_runtime::numerics::{Format, Rounding};

fn fp32() -> Format {
    Format::parse("fp32").expect("fp32 is a named format")
}

fn arith_of(module: &Module, op: OpId) -> Result<Arith, PassError> {
    match module.ops[op].attrs.get("arith") {
        Some(Attr::Arith(a)) => Ok(*a),
        _ => error(module, op, "`arith` is missing"),
    }
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
    let attrs = round_attrs(module, op);
    let o = &module.ops[op];
    let bound = |k: &str| o.attrs.get(k).and_then(Attr::as_f64).unwrap_or(f64::NAN);
    let (lo, hi) = (bound("min"), bound("max"));
    let (dy, x) = (o.operands[0], o.operands[1]);
    let upper = o.operands.get(2).copied();
    let upper_rank = if upper.is_some() {
        operand_type(module, op, 2).rank()
    } else {
        0
    };
    let rt = result_type(module, op);
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let exact32 = Rnd::new(fp32(), Rounding::Nearest);
        let g = body.load(dy, idx.clone());
        let xv = body.load(x, idx);
        let mut mask = None;
        if lo.is_finite() {
            let l = body.constant(fp32(), nearest_value(fp32(), lo));
            let d = body.rounded("kernel.sub", vec![xv, l], exact32);
            mask = Some(step(body, d));
        }
        if let Some(bound) = upper {
            let zero = body.index(0);
            let h = body.load(bound, vec![zero; upper_rank]);
            let d = body.rounded("kernel.sub", vec![h, xv], exact32);
            let s = step(body, d);
            mask = Some(match mask {
                Some(m) => body.rounded("kernel.mul", vec![m, s], exact32),
                None => s,
            });
        } else if hi.is_finite() {
            let h = body.constant(fp32(), nearest_value(fp32(), hi));
            let d = body.rounded("kernel.sub", vec![h, xv], exact32);
            let s = step(body, d);
            mask = Some(match mask {
                Some(m) => body.rounded("kernel.mul", vec![m, s], exact32),
                None => s,
            });
        }
        let out = elementwise_output(body, sizes, attrs, rt.format);
        Ok(match mask {
            Some(m) => body.rounded("kernel.mul", vec![g, m], out),
            None => body.round(g, out),
        })
    })
}

/// The rounding of a gradient op with `round` and `stream` attributes, drawing at `e`.
fn elementwise_output(body: &mut Body<'_>, sizes: &[ValueId], (rounding, stream): (Rounding, u32), format: Format) -> Rnd {
    let draw = rounding.is_stochastic().then(|| (stream, draw_counter(body, sizes, 1, 0)));
    Rnd { format, rounding, draw }
}

fn round_attrs(module: &Module, op: OpId) -> (Rounding, u32) {
    let o = &module.ops[op];
    let rounding = match o.attrs.get("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    };
    (rounding, o.attrs.get("stream").and_then(Attr::as_int).unwrap_or(0) as u32)
}

pub fn leaky_relu_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let o = &module.ops[op];
    let alpha = o.attrs.get("alpha").and_then(Attr::as_f64).unwrap_or(f64::NAN);
    let (dy, x) = (o.operands[0], o.operands[1]);
    let attrs = round_attrs(module, op);
    let rt = result_type(module, op);
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let exact32 = Rnd::new(fp32(), Rounding::Nearest);
        let g = body.load(dy, idx.clone());
        let xv = body.load(x, idx);
        let m = step(body, xv);
        let one = body.constant(fp32(), 1.0);
        let not_m = body.rounded("kernel.sub", vec![one, m], exact32);
        let a = body.constant(fp32(), alpha as f32 as f64);
        let slope = body.rounded("kernel.mul", vec![a, not_m], exact32);
        let passed = body.rounded("kernel.mul", vec![g, m], exact32);
        let out = elementwise_output(body, sizes, attrs, rt.format);
        Ok(body.rounded("kernel.fma", vec![passed, slope, g], out))
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
    if arith.is_stochastic() {
        return error(
            module,
            op,
            "stochastic rounding in the PACT bound's gradient is not supported by lower-kernel yet",
        );
    }
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
    generate(module, op, |body, _| {
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
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
        Ok(body.round(sum, Rnd::new(rt.format, arith.out)))
    })
}

/// The arith of a multi-step gradient op, which must be deterministic.
fn deterministic(module: &Module, op: OpId) -> Result<Arith, PassError> {
    let arith = arith_of(module, op)?;
    if arith.is_stochastic() {
        return error(module, op, "stochastic rounding here is not supported by lower-kernel yet");
    }
    Ok(arith)
}

/// `nn.softmax_grad dy, y` (axis a, K terms): `s = Σ_k dy_k·y_k` (exact products) in A;
/// `d = dy_i − s → A`; `y_i·d → Y`.
pub fn softmax_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = deterministic(module, op)?;
    let o = module.ops[op].operands.clone();
    let (dy, y) = (o[0], o[1]);
    let yt = operand_type(module, op, 1);
    let raw = module.ops[op].attrs.get("axis").and_then(Attr::as_int).unwrap_or(0);
    let axis = if raw < 0 { raw + yt.rank() as i64 } else { raw } as usize;
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
        let len = body.size(y, &yt, axis);
        let s = body.accumulate(zero, len, acc, None, |inner, k| {
            let (g, p) = (inner.load(dy, at(k)), inner.load(y, at(k)));
            (inner.exact_mul(g, p), None)
        });
        let own = body.load(dy, idx.clone());
        let d = body.rounded("kernel.sub", vec![own, s], acc);
        let p = body.load(y, idx.clone());
        Ok(body.rounded("kernel.mul", vec![p, d], Rnd::new(rt.format, arith.out)))
    })
}

/// `nn.layernorm_grad dy, x, γ` (D terms along the last axis): `μ`, `r` as `nn.layernorm`
/// computes them (in A, the same steps and ε); `n_k = (x_k − μ → A) / r → A`;
/// `g_k = dy_k·γ_k → A`; `s_1 = Σ_k g_k` and `s_2 = Σ_k g_k·n_k` (exact products) in A;
/// `m_1 = s_1 / D → A`, `m_2 = s_2 / D → A`; `t = g_i − m_1 → A`; `u = n_i·m_2 → A`;
/// `v = t − u → A`; `v / r → Y`.
pub fn layernorm_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = deterministic(module, op)?;
    let eps = module.ops[op].attrs.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let o = module.ops[op].operands.clone();
    let (dy, x, gamma) = (o[0], o[1], o[2]);
    let xt = operand_type(module, op, 1);
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
        let e = body.constant(acc.format, nearest_value(acc.format, eps));
        let t = body.rounded("kernel.add", vec![v, e], acc);
        let r = body.rounded("kernel.sqrt", vec![t], acc);
        // n_k and g_k, as every sum and the element itself compute them.
        let normalised = |body: &mut Body<'_>, k: ValueId| {
            let xk = body.load(x, at(k));
            let d = body.rounded("kernel.sub", vec![xk, mu], acc);
            body.rounded("kernel.div", vec![d, r], acc)
        };
        let scaled = |body: &mut Body<'_>, k: ValueId| {
            let (g, c) = (body.load(dy, at(k)), body.load(gamma, vec![k]));
            body.rounded("kernel.mul", vec![g, c], acc)
        };
        let sum_g = body.accumulate(zero, len, acc, None, |inner, k| (scaled(inner, k), None));
        let sum_gn = body.accumulate(zero, len, acc, None, |inner, k| {
            let g = scaled(inner, k);
            let n = normalised(inner, k);
            (inner.exact_mul(g, n), None)
        });
        let m1 = body.rounded("kernel.div", vec![sum_g, count], acc);
        let m2 = body.rounded("kernel.div", vec![sum_gn, count], acc);
        let own = idx[last];
        let g = scaled(body, own);
        let n = normalised(body, own);
        let t = body.rounded("kernel.sub", vec![g, m1], acc);
        let u = body.rounded("kernel.mul", vec![n, m2], acc);
        let v = body.rounded("kernel.sub", vec![t, u], acc);
        Ok(body.rounded("kernel.div", vec![v, r], Rnd::new(rt.format, arith.out)))
    })
}

/// `nn.sigmoid_grad`, `nn.tanh_grad`, `nn.gelu_grad` (dy, x), every step in A, the last
/// product rounded to Y:
/// - sigmoid: `s = sigmoid(x) → A`; `c = 1 − s → A`; `d = s·c → A`; `dy·d → Y`;
/// - tanh: `t = tanh(x) → A`; `q = t·t → A`; `d = 1 − q → A`; `dy·d → Y`;
/// - gelu: `d = Φ(x) + x·φ(x)` as [`gelu_slope`] computes it; `dy·d → Y`.
pub fn activation_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = deterministic(module, op)?;
    let name = module.ops[op].name();
    let (dy, x) = (module.ops[op].operands[0], module.ops[op].operands[1]);
    let rt = result_type(module, op);
    generate(module, op, |body, _| {
        let idx = body.idx.clone();
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let xv = body.load(x, idx.clone());
        let one = body.constant(acc.format, 1.0);
        let slope = match name {
            "nn.sigmoid_grad" => {
                let s = body.rounded("kernel.sigmoid", vec![xv], acc);
                let c = body.rounded("kernel.sub", vec![one, s], acc);
                body.rounded("kernel.mul", vec![s, c], acc)
            }
            "nn.tanh_grad" => {
                let t = body.rounded("kernel.tanh", vec![xv], acc);
                let q = body.rounded("kernel.mul", vec![t, t], acc);
                body.rounded("kernel.sub", vec![one, q], acc)
            }
            _ => gelu_slope(body, xv, acc),
        };
        let g = body.load(dy, idx);
        Ok(body.rounded("kernel.mul", vec![g, slope], Rnd::new(rt.format, arith.out)))
    })
}

/// GELU's derivative `Φ(x) + x·φ(x)` at `x`, in A. `Φ(x) = gelu(x)/x` away from 0 and ½ at
/// 0, selected with the exact fp32 indicator `z = step(x) + step(−x)` (1 when x ≠ 0):
/// `w = x + (1 − z) → fp32` (x, or 1 at 0: no division by zero), `Φ = z·(gelu(x) → A) / w
/// → A` plus `(1 − z)·½` (exact: one of the two is 0); `φ = e^(x·x·(−½)) · c` with every
/// product and the exponential → A and `c` the A value nearest to 1/√(2π); then
/// `Φ + x·φ → A`.
fn gelu_slope(body: &mut Body<'_>, x: ValueId, acc: Rnd) -> ValueId {
    let exact32 = Rnd::new(fp32(), Rounding::Nearest);
    let one32 = body.constant(fp32(), 1.0);
    let zero32 = body.constant(fp32(), 0.0);
    let negated = body.rounded("kernel.sub", vec![zero32, x], exact32);
    let (above, below) = (step(body, x), step(body, negated));
    let z = body.rounded("kernel.add", vec![above, below], exact32);
    let not_z = body.rounded("kernel.sub", vec![one32, z], exact32);
    let w = body.rounded("kernel.add", vec![x, not_z], exact32);
    let gelu = body.rounded("kernel.gelu", vec![x], acc);
    let ratio = body.rounded("kernel.div", vec![gelu, w], acc);
    let kept = body.rounded("kernel.mul", vec![ratio, z], acc);
    let half = body.constant(fp32(), 0.5);
    let at_zero = body.rounded("kernel.mul", vec![not_z, half], exact32);
    let cdf = body.rounded("kernel.add", vec![kept, at_zero], acc);
    let square = body.rounded("kernel.mul", vec![x, x], acc);
    let minus_half = body.constant(acc.format, nearest_value(acc.format, -0.5));
    let exponent = body.rounded("kernel.mul", vec![square, minus_half], acc);
    let e = body.rounded("kernel.exp", vec![exponent], acc);
    let c = body.constant(acc.format, nearest_value(acc.format, 1.0 / (2.0 * std::f64::consts::PI).sqrt()));
    let pdf = body.rounded("kernel.mul", vec![e, c], acc);
    let tail = body.rounded("kernel.mul", vec![x, pdf], acc);
    body.rounded("kernel.add", vec![cdf, tail], acc)
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
    let arith = deterministic(module, op)?;
    let o = module.ops[op].operands.clone();
    let x = o[0];
    let mean = o.get(1).copied();
    let xt = operand_type(module, op, 0);
    let (rows, row_sizes) = rows_of(module, op, &xt)?;
    let rt = result_type(module, op);
    generate(module, op, |body, _| {
        let c = body.idx[0];
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let mu = mean.map(|m| body.load(m, vec![c]));
        let (lo, hi) = (body.index(0), body.index(rows));
        let sum = body.accumulate(lo, hi, acc, None, |inner, r| {
            let at = row_at(inner, r, &row_sizes, c);
            let xv = inner.load(x, at);
            match mu {
                None => (xv, None),
                Some(mu) => {
                    let d = inner.rounded("kernel.sub", vec![xv, mu], acc);
                    (inner.exact_mul(d, d), None)
                }
            }
        });
        let count = body.index(rows);
        let count = body.rounded("kernel.from_index", vec![count], acc);
        Ok(body.rounded("kernel.div", vec![sum, count], Rnd::new(rt.format, arith.out)))
    })
}

/// `nn.batchnorm_grad dy, x, γ, μ, v, S, T` (R rows, channel c): `r = √(v_c + ε → A) → A`;
/// `n = (x − μ_c → A) / r → A`; `a = S_c / (R → A) → A`; `b = T_c / (R → A) → A`;
/// `t = dy − a → A`; `u = n·b → A`; `w = t − u → A`; `q = w / r → A`; `q·γ_c → Y`.
pub fn batchnorm_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = deterministic(module, op)?;
    let eps = module.ops[op].attrs.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let o = module.ops[op].operands.clone();
    let xt = operand_type(module, op, 1);
    let (rows, _) = rows_of(module, op, &xt)?;
    let rt = result_type(module, op);
    generate(module, op, |body, _| {
        let idx = body.idx.clone();
        let c = *idx.last().expect("batch norm has a channel axis");
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let per_channel = |body: &mut Body<'_>, i: usize| body.load(o[i], vec![c]);
        let v = per_channel(body, 4);
        let e = body.constant(acc.format, nearest_value(acc.format, eps));
        let t = body.rounded("kernel.add", vec![v, e], acc);
        let r = body.rounded("kernel.sqrt", vec![t], acc);
        let xv = body.load(o[1], idx.clone());
        let mu = per_channel(body, 3);
        let d = body.rounded("kernel.sub", vec![xv, mu], acc);
        let n = body.rounded("kernel.div", vec![d, r], acc);
        let count = body.index(rows);
        let count = body.rounded("kernel.from_index", vec![count], acc);
        let (s, tn) = (per_channel(body, 5), per_channel(body, 6));
        let a = body.rounded("kernel.div", vec![s, count], acc);
        let b = body.rounded("kernel.div", vec![tn, count], acc);
        let g = body.load(o[0], idx);
        let t = body.rounded("kernel.sub", vec![g, a], acc);
        let u = body.rounded("kernel.mul", vec![n, b], acc);
        let w = body.rounded("kernel.sub", vec![t, u], acc);
        let q = body.rounded("kernel.div", vec![w, r], acc);
        let gamma = per_channel(body, 2);
        Ok(body.rounded("kernel.mul", vec![q, gamma], Rnd::new(rt.format, arith.out)))
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
