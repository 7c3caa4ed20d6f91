//! The gradient ops that are not contractions (spec/ir.md, "Gradients"). Steps in the
//! accumulator format `A` (with its rounding); the last step rounds to the result `Y` with
//! `out` (or `round`), drawing at counter `e` (the element's row-major position) when
//! stochastic.
//!
//! - `nn.bias_grad` (R rows): `s = Σ_r dy[r, n]` in A, sequential over the rows (draws at
//!   `e·(R+1) + r`), then `→ Y` (at `e·(R+1) + R`).
//! - `nn.clip_grad`: `dy·mask → Y` with `mask = step(x − lo)·step(hi − x)` (an infinite bound
//!   contributes no factor), `step(t) = max(min(t·2^100·2^100, 1), 0)`, every step in fp32.
//!   The mask is exactly 1 when lo < x < hi and 0 otherwise: a difference of two f32 values
//!   rounds to zero only when it is zero, and the two scalings lift the smallest positive
//!   difference (2^-149) above 1.
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
    let rows = dyt.dims[..dyt.rank() - 1]
        .iter()
        .try_fold(1u64, |n, d| match d {
            Dim::Fixed(k) => n.checked_mul(*k),
            Dim::Dynamic => None,
        });
    let Some(rows) = rows else {
        return error(
            module,
            op,
            "the number of rows must be static (specialise the batch with `infer{batch=N}`)",
        );
    };
    let rt = result_type(module, op);
    let row_sizes: Vec<u64> = dyt.dims[..dyt.rank() - 1]
        .iter()
        .map(|d| if let Dim::Fixed(s) = d { *s } else { 1 })
        .collect();
    generate(module, op, |body, sizes| {
        let n = body.idx[0];
        let span = rows + 1;
        let acc_draw = arith.acc.rounding.is_stochastic().then(|| {
            (
                arith.stream.unwrap_or(0),
                draw_counter(body, sizes, span, 0),
            )
        });
        let acc = Rnd {
            format: arith.acc.format,
            rounding: arith.acc.rounding,
            draw: acc_draw,
        };
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
            at.push(n);
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
    let rounding = match o.attrs.get("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    };
    let stream = o.attrs.get("stream").and_then(Attr::as_int).unwrap_or(0) as u32;
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
        let draw = rounding
            .is_stochastic()
            .then(|| (stream, draw_counter(body, sizes, 1, 0)));
        let out = Rnd {
            format: rt.format,
            rounding,
            draw,
        };
        Ok(match mask {
            Some(m) => body.rounded("kernel.mul", vec![g, m], out),
            None => body.round(g, out),
        })
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
