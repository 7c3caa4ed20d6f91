//! Dot products and pooling. A contraction's output element is, in this order (spec/ir.md):
//! `kernel.accumulate` over `k` of the products (exact `real`, or `kernel.mul` rounded to
//! `mul`), from +0 in the accumulator (chunked per `#arith`), then `+ bias` rounded to the
//! accumulator, then the rounding to the result format with `out`. Draw counters of a
//! stochastic contraction with K terms: span `P = 3K + 2`; products at `base + k`, the
//! accumulation from `base + K` (terms `+ k`, chunk sums `+ K + j`), bias `base + 3K`,
//! output `base + 3K + 1` — or, with a fused `batchnorm`, the batch-norm steps applied to the
//! accumulator value instead of that rounding. The fused contractions (`nn.fused_dense`, `nn.fused_conv2d`) then
//! clamp the rounded result to `clip = [lo, hi]`: `kernel.max` with lo, `kernel.min` with hi
//! (each exact, the bounds being values of the result format; infinite bounds are omitted).
//! `nn.dense_grad_weight` is a contraction over the rows (the leading axes, row-major).
//! `nn.conv2d_grad_weight` is computed in the layout `[KH, KW, C, O]` and then transposed
//! (`generate_permuted`): the same elements and draw counters, with the output gradient
//! varying along the last axis.

use super::body::{Body, Rnd};
use super::reduce::BatchNorm;
use crate::dialect::nn::ContractionOperands;
use super::draws::{arith_of, Draws};
use super::{draw_counter, error, generate, generate_permuted, operand_type, result_type};
use crate::dialect::nn::Window;
use crate::ir::{Attr, Chunk, Dim, Module, OpId, TensorType, ValueId};
use crate::pass::PassError;

fn fixed(module: &Module, op: OpId, d: Dim, what: &str) -> Result<u64, PassError> {
    match d {
        Dim::Fixed(n) => Ok(n),
        Dim::Dynamic => error(module, op, format!("{what} must be static")),
    }
}

fn pair(module: &Module, op: OpId, name: &str, default: [u64; 2]) -> [u64; 2] {
    match module.ops[op].attrs.get(name).and_then(Attr::as_int_array).as_deref() {
        Some(&[a, b]) => [a.max(0) as u64, b.max(0) as u64],
        _ => default,
    }
}

fn window(module: &Module, op: OpId, size: [u64; 2], pooling: bool) -> Window {
    Window {
        size,
        stride: pair(module, op, "stride", if pooling { size } else { [1, 1] }),
        padding: pair(module, op, "padding", [0, 0]),
        dilation: pair(module, op, "dilation", [1, 1]),
    }
}

/// Where term `k` reads its two factors: `(operand 0 indices, operand 1 indices, keep)`.
type Factors = (Vec<ValueId>, Vec<ValueId>, Option<ValueId>);

pub fn contraction(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let name = module.ops[op].name();
    let operands = module.ops[op].operands.clone();
    let batchnorm_attr = match module.ops[op].attrs.get("batchnorm") {
        Some(Attr::Dict(d)) => Some(d.clone()),
        _ => None,
    };
    let parts = ContractionOperands::of(operands.len(), batchnorm_attr.is_some());
    let (x, w, bias) = (operands[0], operands[1], parts.bias.map(|i| operands[i]));
    let norm = match (batchnorm_attr, parts.batchnorm) {
        (Some(d), Some(i)) => {
            let Some(Attr::Arith(arith)) = d.get("arith") else { return error(module, op, "`batchnorm` needs `arith`") };
            let epsilon = d.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
            Some(BatchNorm { scale: operands[i], shift: operands[i + 1], mean: operands[i + 2], var: operands[i + 3], arith: *arith, epsilon })
        }
        _ => None,
    };
    let (xt, wt, rt) = (operand_type(module, op, 0), operand_type(module, op, 1), result_type(module, op));
    let clip: Option<Vec<f64>> = match module.ops[op].attrs.get("clip") {
        Some(Attr::Array(items)) => items.iter().map(Attr::as_f64).collect(),
        _ => None,
    };
    let name = name.trim_start_matches("nn.").trim_start_matches("fused_");
    let k_len = match name {
        "conv2d" => wt.dims[1..].iter().try_fold(1u64, |n, d| match d {
            Dim::Fixed(k) => n.checked_mul(*k),
            Dim::Dynamic => None,
        }),
        "conv2d_grad_input" => match (wt.dims[0], wt.dims[1], wt.dims[2]) {
            (Dim::Fixed(o), Dim::Fixed(kh), Dim::Fixed(kw)) => Some(kh * kw * (o / groups_of(module, op))),
            _ => None,
        },
        "conv2d_grad_weight" => xt.dims[..3].iter().try_fold(1u64, |n, d| match d {
            Dim::Fixed(k) => n.checked_mul(*k),
            Dim::Dynamic => None,
        }),
        "dense_grad_weight" => xt.dims[..xt.rank() - 1].iter().try_fold(1u64, |n, d| match d {
            Dim::Fixed(k) => n.checked_mul(*k),
            Dim::Dynamic => None,
        }),
        _ => match xt.dims.last() {
            Some(Dim::Fixed(k)) => Some(*k),
            _ => None,
        },
    };
    let Some(k_len) = k_len else {
        return error(module, op, "the contracted length must be static (specialise the batch with `infer{batch=N}`)");
    };
    let conv = if name == "conv2d" {
        let size = [fixed(module, op, wt.dims[1], "the kernel")?, fixed(module, op, wt.dims[2], "the kernel")?];
        let groups = module.ops[op].attrs.get("groups").and_then(Attr::as_int).unwrap_or(1).max(1) as u64;
        let o = fixed(module, op, wt.dims[0], "the output channels")?;
        Some((window(module, op, size, false), groups, o))
    } else {
        None
    };
    let conv_grad = match name {
        "conv2d_grad_input" | "conv2d_grad_weight" => {
            let size = |d: Dim| if let Dim::Fixed(n) = d { n } else { 1 };
            let (kernel, in_hw, cg) = if name == "conv2d_grad_input" {
                ([size(wt.dims[1]), size(wt.dims[2])], pair(module, op, "input_size", [1, 1]), size(wt.dims[3]))
            } else {
                (pair(module, op, "kernel_size", [1, 1]), [size(wt.dims[1]), size(wt.dims[2])], size(rt.dims[3]))
            };
            Some(ConvGrad {
                win: window(module, op, kernel, false),
                groups: groups_of(module, op),
                out_hw: [size(xt.dims[1]), size(xt.dims[2])],
                out_channels: size(xt.dims[3]),
                in_hw,
                cg,
            })
        }
        _ => None,
    };
    let stochastic = arith.is_stochastic();
    let stream = arith.stream.unwrap_or(0);
    let element = |body: &mut Body<'_>, sizes: &[ValueId]| {
        let span = 3 * k_len + 2;
        let base = stochastic.then(|| draw_counter(body, sizes, span, 0));
        let at = |body: &mut Body<'_>, offset: u64| base.map(|b| (stream, body.ix_const("kernel.index_add", b, offset)));
        let mul = arith.mul.map(|m| (m, m.rounding.is_stochastic()));
        let acc_draw = if arith.acc.rounding.is_stochastic() || arith.chunk.is_some_and(|c| c.rounding.is_stochastic()) { at(body, k_len) } else { None };
        let acc = Rnd { format: arith.acc.format, rounding: arith.acc.rounding, draw: acc_draw };
        let chunk = arith.chunk.map(|c| Chunk { size: c.size, format: c.format, rounding: c.rounding });
        let idx = body.idx.clone();
        let lo = body.index(0);
        let hi = body.index(k_len);
        let sum = body.accumulate(lo, hi, acc, chunk, |inner, k| {
            let (xi, wi, keep) = match name {
                "dense" => dense_factors(&idx, k),
                "matmul" => matmul_factors(inner, &idx, k, &xt, &wt, rt.rank()),
                "dense_grad_weight" => grad_weight_factors(inner, &idx, k, &xt),
                "conv2d_grad_input" => conv_grad_input_factors(inner, &idx, k, conv_grad.expect("set above")),
                "conv2d_grad_weight" => conv_grad_weight_factors(inner, &idx, k, conv_grad.expect("set above")),
                _ => conv_factors(inner, &idx, k, &xt, &wt, conv.expect("a convolution has a window")),
            };
            let a = inner.load(x, xi);
            let b = inner.load(w, wi);
            let term = match mul {
                None => inner.exact_mul(a, b),
                Some((m, stochastic_mul)) => {
                    let draw = base.filter(|_| stochastic_mul).map(|b| (stream, inner.ix("kernel.index_add", b, k)));
                    inner.rounded("kernel.mul", vec![a, b], Rnd { format: m.format, rounding: m.rounding, draw })
                }
            };
            (term, keep)
        });
        let mut value = sum;
        if let Some(bias) = bias {
            let n = *idx.last().expect("a contraction result has an axis");
            let bv = body.load(bias, vec![n]);
            let draw = if acc.rounding.is_stochastic() { at(body, 3 * k_len) } else { None };
            value = body.rounded("kernel.add", vec![value, bv], Rnd { draw, ..acc });
        }
        let mut y = match &norm {
            Some(norm) => norm.epilogue(body, value, rt.format),
            None => {
                let draw = if arith.out.is_stochastic() { at(body, 3 * k_len + 1) } else { None };
                body.round(value, Rnd { format: rt.format, rounding: arith.out, draw })
            }
        };
        for (bound, op) in clip.iter().flatten().zip(["kernel.max", "kernel.min"]) {
            if bound.is_finite() {
                let c = body.constant(rt.format, *bound);
                y = body.rounded(op, vec![y, c], Rnd::new(rt.format, qc_runtime::numerics::Rounding::Nearest));
            }
        }
        Ok(y)
    };
    if name == "conv2d_grad_weight" {
        // Computed as [KH, KW, C, O]: the output gradient, read along O, is what the rows
        // share, so backends can pack it (module doc).
        generate_permuted(module, op, &[1, 2, 3, 0], element)
    } else {
        generate(module, op, element)
    }
}

fn dense_factors(idx: &[ValueId], k: ValueId) -> Factors {
    let (n, batch) = idx.split_last().expect("dense results have an axis");
    let mut xi = batch.to_vec();
    xi.push(k);
    (xi, vec![*n, k], None)
}

/// Term `k` of the weight gradient `[n, c]`: row `k` (row-major over the leading axes, which
/// are static) of the output gradient at `n` and of the input at `c`.
fn grad_weight_factors(body: &mut Body<'_>, idx: &[ValueId], k: ValueId, xt: &TensorType) -> Factors {
    let rows = &xt.dims[..xt.rank() - 1];
    let mut at = vec![k; rows.len()];
    let mut rest = k;
    for (a, d) in rows.iter().enumerate().rev() {
        let size = match d {
            Dim::Fixed(s) => *s,
            Dim::Dynamic => 1,
        };
        if a == 0 {
            at[0] = rest;
        } else {
            at[a] = body.ix_const("kernel.index_rem", rest, size);
            rest = body.ix_const("kernel.index_div", rest, size);
        }
    }
    let (mut dy_at, mut x_at) = (at.clone(), at);
    dy_at.push(idx[0]);
    x_at.push(idx[1]);
    (dy_at, x_at, None)
}

fn groups_of(module: &Module, op: OpId) -> u64 {
    module.ops[op].attrs.get("groups").and_then(Attr::as_int).unwrap_or(1).max(1) as u64
}

/// The static sizes the convolution gradients index with.
#[derive(Clone, Copy)]
struct ConvGrad {
    win: Window,
    groups: u64,
    /// The forward output's height and width and its channels.
    out_hw: [u64; 2],
    out_channels: u64,
    /// The forward input's height and width.
    in_hw: [u64; 2],
    /// Input channels per group.
    cg: u64,
}

/// The output position `q` whose window places tap `t` on input position `i`:
/// `q·stride + t·dilation − pad = i`; returns `q` clamped into `[0, out)` and whether it exists.
fn source_position(body: &mut Body<'_>, i: ValueId, t: ValueId, stride: u64, dilation: u64, pad: u64, out: u64) -> (ValueId, ValueId) {
    let shifted = body.ix_const("kernel.index_add", i, pad);
    let tap = body.ix_const("kernel.index_mul", t, dilation);
    let before = body.ix("kernel.index_lt", shifted, tap);
    let one = body.index(1);
    let mut keep = body.ix("kernel.index_sub", one, before);
    let diff = body.ix("kernel.index_sub", shifted, tap);
    if stride > 1 {
        let rem = body.ix_const("kernel.index_rem", diff, stride);
        let divisible = body.ix_const("kernel.index_lt", rem, 1);
        keep = body.ix("kernel.index_mul", keep, divisible);
    }
    let q = body.ix_const("kernel.index_div", diff, stride);
    let inside = body.ix_const("kernel.index_lt", q, out);
    keep = body.ix("kernel.index_mul", keep, inside);
    let clamped = body.ix_const("kernel.index_min", q, out.saturating_sub(1));
    (clamped, keep)
}

/// Term `k = (kh, kw, o')` (row-major; o' over the output channels of the input channel's
/// group) of the input gradient `[n, h, w, c]`: `dy[n, oh, ow, o]·w[o, kh, kw, c mod C/g]`
/// where the window of `(oh, ow)` puts tap `(kh, kw)` on `(h, w)`; skipped when no output does.
fn conv_grad_input_factors(body: &mut Body<'_>, idx: &[ValueId], k: ValueId, g: ConvGrad) -> Factors {
    let ([out_h, out_w], cg) = (g.out_hw, g.cg);
    let per_group = g.out_channels / g.groups;
    let (n, h, w, c) = (idx[0], idx[1], idx[2], idx[3]);
    let ol = body.ix_const("kernel.index_rem", k, per_group);
    let t = body.ix_const("kernel.index_div", k, per_group);
    let kw = body.ix_const("kernel.index_rem", t, g.win.size[1]);
    let kh = body.ix_const("kernel.index_div", t, g.win.size[1]);
    let (oh, keep_h) = source_position(body, h, kh, g.win.stride[0], g.win.dilation[0], g.win.padding[0], out_h);
    let (ow, keep_w) = source_position(body, w, kw, g.win.stride[1], g.win.dilation[1], g.win.padding[1], out_w);
    let keep = body.ix("kernel.index_mul", keep_h, keep_w);
    let cl = body.ix_const("kernel.index_rem", c, cg);
    let o = if g.groups == 1 {
        ol
    } else {
        let group = body.ix_const("kernel.index_div", c, cg);
        let first = body.ix_const("kernel.index_mul", group, per_group);
        body.ix("kernel.index_add", first, ol)
    };
    (vec![n, oh, ow, o], vec![o, kh, kw, cl], Some(keep))
}

/// Term `k = (n, oh, ow)` (row-major) of the weight gradient `[o, kh, kw, c]`:
/// `dy[n, oh, ow, o]·x[n, ih, iw, group(o)·C/g + c]`, skipped at padded positions.
fn conv_grad_weight_factors(body: &mut Body<'_>, idx: &[ValueId], k: ValueId, g: ConvGrad) -> Factors {
    let ([out_h, out_w], cg) = (g.out_hw, g.cg);
    let (o, kh, kw, c) = (idx[0], idx[1], idx[2], idx[3]);
    let ow = body.ix_const("kernel.index_rem", k, out_w);
    let t = body.ix_const("kernel.index_div", k, out_w);
    let oh = body.ix_const("kernel.index_rem", t, out_h);
    let n = body.ix_const("kernel.index_div", t, out_h);
    let (ih, keep_h) = spatial(body, oh, kh, g.win.stride[0], g.win.dilation[0], g.win.padding[0], g.in_hw[0]);
    let (iw, keep_w) = spatial(body, ow, kw, g.win.stride[1], g.win.dilation[1], g.win.padding[1], g.in_hw[1]);
    let ci = if g.groups == 1 {
        c
    } else {
        let per_group = g.out_channels / g.groups;
        let group = body.ix_const("kernel.index_div", o, per_group);
        let first = body.ix_const("kernel.index_mul", group, cg);
        body.ix("kernel.index_add", first, c)
    };
    let keep = both(body, keep_h, keep_w);
    (vec![n, oh, ow, o], vec![n, ih, iw, ci], keep)
}

/// Indices of a broadcast batch operand of type `t` for result indices `batch`.
fn batch_indices(body: &mut Body<'_>, batch: &[ValueId], t: &TensorType) -> Vec<ValueId> {
    let own = t.rank() - 2;
    let skip = batch.len() - own;
    (0..own).map(|j| if t.dims[j] == Dim::Fixed(1) { body.index(0) } else { batch[skip + j] }).collect()
}

fn matmul_factors(body: &mut Body<'_>, idx: &[ValueId], k: ValueId, at: &TensorType, bt: &TensorType, rank: usize) -> Factors {
    let (m, n) = (idx[rank - 2], idx[rank - 1]);
    let mut ai = batch_indices(body, &idx[..rank - 2], at);
    ai.extend([m, k]);
    let mut bi = batch_indices(body, &idx[..rank - 2], bt);
    bi.extend([k, n]);
    (ai, bi, None)
}

/// An input position along one spatial axis: `p = o·stride + t·dilation` in padded
/// coordinates; returns the clamped index into the input and, with padding, whether `p`
/// falls inside the input.
fn spatial(body: &mut Body<'_>, o: ValueId, t: ValueId, stride: u64, dilation: u64, pad: u64, size: u64) -> (ValueId, Option<ValueId>) {
    let os = body.ix_const("kernel.index_mul", o, stride);
    let td = body.ix_const("kernel.index_mul", t, dilation);
    let p = body.ix("kernel.index_add", os, td);
    if pad == 0 {
        return (p, None);
    }
    let end = body.index(size + pad);
    let keep = body.in_range(p, pad, end);
    let shifted = body.ix_const("kernel.index_sub", p, pad);
    let clamped = body.ix_const("kernel.index_min", shifted, size - 1);
    (clamped, Some(keep))
}

fn both(body: &mut Body<'_>, a: Option<ValueId>, b: Option<ValueId>) -> Option<ValueId> {
    match (a, b) {
        (Some(a), Some(b)) => Some(body.ix("kernel.index_mul", a, b)),
        (a, b) => a.or(b),
    }
}

fn conv_factors(body: &mut Body<'_>, idx: &[ValueId], k: ValueId, xt: &TensorType, wt: &TensorType, conv: (Window, u64, u64)) -> Factors {
    let (win, groups, o_total) = conv;
    let (n, oh, ow, o) = (idx[0], idx[1], idx[2], idx[3]);
    let cg = match wt.dims[3] {
        Dim::Fixed(c) => c,
        Dim::Dynamic => 1,
    };
    let c = body.ix_const("kernel.index_rem", k, cg);
    let t = body.ix_const("kernel.index_div", k, cg);
    let kw = body.ix_const("kernel.index_rem", t, win.size[1]);
    let kh = body.ix_const("kernel.index_div", t, win.size[1]);
    let dim = |i: usize| match xt.dims[i] {
        Dim::Fixed(s) => s,
        Dim::Dynamic => 1,
    };
    let (ih, keep_h) = spatial(body, oh, kh, win.stride[0], win.dilation[0], win.padding[0], dim(1));
    let (iw, keep_w) = spatial(body, ow, kw, win.stride[1], win.dilation[1], win.padding[1], dim(2));
    let ci = if groups == 1 {
        c
    } else {
        let g = body.ix_const("kernel.index_div", o, o_total / groups);
        let first = body.ix_const("kernel.index_mul", g, cg);
        body.ix("kernel.index_add", first, c)
    };
    let keep = both(body, keep_h, keep_w);
    (vec![n, ih, iw, ci], vec![o, kh, kw, c], keep)
}

/// The window position `k` (row-major over the window) of output `(n, oh, ow, c)`: the
/// input indices (clamped into the input) and whether the position is inside it.
fn pool_position(body: &mut Body<'_>, idx: &[ValueId], k: ValueId, win: Window, xt: &TensorType) -> (Vec<ValueId>, Option<ValueId>) {
    let kw = body.ix_const("kernel.index_rem", k, win.size[1]);
    let kh = body.ix_const("kernel.index_div", k, win.size[1]);
    let dim = |i: usize| match xt.dims[i] {
        Dim::Fixed(s) => s,
        Dim::Dynamic => 1,
    };
    let (ih, keep_h) = spatial(body, idx[1], kh, win.stride[0], 1, win.padding[0], dim(1));
    let (iw, keep_w) = spatial(body, idx[2], kw, win.stride[1], 1, win.padding[1], dim(2));
    let keep = both(body, keep_h, keep_w);
    (vec![idx[0], ih, iw, idx[3]], keep)
}

fn pool_window(module: &Module, op: OpId) -> Result<(Window, TensorType), PassError> {
    let size = pair(module, op, "window", [1, 1]);
    let xt = operand_type(module, op, 0);
    fixed(module, op, xt.dims[1], "the input height")?;
    fixed(module, op, xt.dims[2], "the input width")?;
    Ok((window(module, op, size, true), xt))
}

/// The largest element of each window, exactly (`kernel.reduce_max` from the window's first
/// position inside the input; padded positions are skipped).
pub fn maxpool(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let (win, xt) = pool_window(module, op)?;
    let x = module.ops[op].operands[0];
    generate(module, op, |body, _| {
        let idx = body.idx.clone();
        let zero = body.index(0);
        let (first, _) = pool_position(body, &idx, zero, win, &xt);
        let init = body.load(x, first);
        let hi = body.index(win.size[0] * win.size[1]);
        Ok(body.reduce("kernel.reduce_max", zero, hi, init, Default::default(), None, |inner, k| {
            let (at, keep) = pool_position(inner, &idx, k, win, &xt);
            (inner.load(x, at), keep)
        }))
    })
}

/// The sum of the window's elements inside the input (row-major, in the accumulator), divided
/// by their count (`kernel.from_index`, rounded to the accumulator) with the accumulator's
/// rounding, then rounded to the result with `out`. Draw counters (span `P = K + 3` for a
/// window of K taps, from `e·P`): the additions at `+ k`, the count at `+ K`, the division at
/// `+ K + 1`, the result at `+ K + 2`.
pub fn avgpool(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let (win, xt) = pool_window(module, op)?;
    let rt = result_type(module, op);
    let x = module.ops[op].operands[0];
    let (h, w) = (fixed(module, op, xt.dims[1], "")?, fixed(module, op, xt.dims[2], "")?);
    let taps = win.size[0] * win.size[1];
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let counters = Draws::per_element(body, &arith, sizes, taps + 3);
        let draw = |body: &mut Body<'_>, r: Rnd, offset: u64| counters.own(body, r, offset);
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let lo = body.index(0);
        let hi = body.index(taps);
        let sum_rounding = draw(body, acc, 0);
        let sum = body.accumulate(lo, hi, sum_rounding, None, |inner, k| {
            let (at, keep) = pool_position(inner, &idx, k, win, &xt);
            (inner.load(x, at), keep)
        });
        let count = if win.padding == [0, 0] {
            body.index(taps)
        } else {
            let rows = valid_count(body, idx[1], win.stride[0], win.size[0], win.padding[0], h);
            let cols = valid_count(body, idx[2], win.stride[1], win.size[1], win.padding[1], w);
            body.ix("kernel.index_mul", rows, cols)
        };
        let r = draw(body, acc, taps);
        let count = body.rounded("kernel.from_index", vec![count], r);
        let r = draw(body, acc, taps + 1);
        let mean = body.rounded("kernel.div", vec![sum, count], r);
        let out = draw(body, Rnd::new(rt.format, arith.out), taps + 2);
        Ok(body.round(mean, out))
    })
}

/// The window `(oh, ow)` that places tap `k` (row-major over the window of `size`) on input
/// position `(h, w)`, and whether that window exists (1) or not (0).
fn window_of_tap(inner: &mut Body<'_>, k: ValueId, (h, w): (ValueId, ValueId), win: Window, size: [u64; 2], out_hw: [u64; 2]) -> (ValueId, ValueId, ValueId) {
    let tw = inner.ix_const("kernel.index_rem", k, size[1]);
    let th = inner.ix_const("kernel.index_div", k, size[1]);
    let (oh, keep_h) = source_position(inner, h, th, win.stride[0], 1, win.padding[0], out_hw[0]);
    let (ow, keep_w) = source_position(inner, w, tw, win.stride[1], 1, win.padding[1], out_hw[1]);
    (oh, ow, inner.ix("kernel.index_mul", keep_h, keep_w))
}

/// How many of the positions `o·stride + t`, `t < size`, fall inside `[pad, pad + n)`.
fn valid_count(body: &mut Body<'_>, o: ValueId, stride: u64, size: u64, pad: u64, n: u64) -> ValueId {
    let start = body.ix_const("kernel.index_mul", o, stride);
    let end = body.ix_const("kernel.index_add", start, size);
    let lo = body.ix_const("kernel.index_max", start, pad);
    let hi = body.ix_const("kernel.index_min", end, pad + n);
    body.ix("kernel.index_sub", hi, lo)
}

/// The input gradient of max pooling at `(n, h, w, c)`: the sum over the taps `k = (th, tw)`
/// (row-major) of the windows `(oh, ow)` that place tap `k` on `(h, w)` of
/// `dy[n, oh, ow, c]·[x[n, h, w, c] is the window's first largest element]`, in `acc`.
/// With `x = x[n, h, w, c]`, `e` the largest of the window's earlier taps `j < k` and `l` of
/// its later ones (each a `kernel.reduce_max` in fp32 from −∞ over the taps inside the input,
/// converted to fp32 exactly), the indicator is `step(x − e)·(1 − step(l − x))`: `x` above
/// every earlier tap and not below any later one. For finite inputs it is an exact 0 or 1
/// (every step is exact in fp32) and marks the first largest as `nn.maxpool2d` compares
/// (`−0 = +0`). A NaN in the window makes every indicator of it NaN; an input ±∞ has a NaN
/// indicator when the same infinity is its `e` or `l` (another +∞ in the window; for −∞ also
/// no earlier or no later tap above −∞).
pub fn maxpool_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let size = pair(module, op, "window", [1, 1]);
    let win = window(module, op, size, true);
    let (dy, x) = (module.ops[op].operands[0], module.ops[op].operands[1]);
    let (dyt, xt, rt) = (operand_type(module, op, 0), operand_type(module, op, 1), result_type(module, op));
    let out_hw = [fixed(module, op, dyt.dims[1], "the output height")?, fixed(module, op, dyt.dims[2], "the output width")?];
    fixed(module, op, xt.dims[1], "the input height")?;
    fixed(module, op, xt.dims[2], "the input width")?;
    let taps = size[0] * size[1];
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let (n, h, w, c) = (idx[0], idx[1], idx[2], idx[3]);
        let fp32 = Rnd::new(qc_runtime::numerics::Format::parse("fp32").expect("named"), qc_runtime::numerics::Rounding::Nearest);
        let counters = Draws::per_element(body, &arith, sizes, taps + 1);
        let acc = counters.own(body, Rnd::new(arith.acc.format, arith.acc.rounding), 0);
        let own = body.load(x, idx.clone());
        let (lo, hi) = if win.stride == size && win.dilation == [1, 1] {
            // Windows that tile the input: only tap ((h + pad) mod size) of each axis can
            // place a window on (h, w), every other tap is a skipped term, so the sum runs
            // over that one tap.
            let th = body.ix_const("kernel.index_add", h, win.padding[0]);
            let th = body.ix_const("kernel.index_rem", th, size[0]);
            let tw = body.ix_const("kernel.index_add", w, win.padding[1]);
            let tw = body.ix_const("kernel.index_rem", tw, size[1]);
            let row = body.ix_const("kernel.index_mul", th, size[1]);
            let k = body.ix("kernel.index_add", row, tw);
            (k, body.ix_const("kernel.index_add", k, 1))
        } else {
            (body.index(0), body.index(taps))
        };
        let sum = body.accumulate(lo, hi, acc, None, |inner, k| {
            let (oh, ow, keep) = window_of_tap(inner, k, (h, w), win, size, out_hw);
            let out = [n, oh, ow, c];
            let largest = |inner: &mut Body<'_>, from: ValueId, to: ValueId| {
                let below_all = inner.constant(fp32.format, f64::NEG_INFINITY);
                inner.reduce("kernel.reduce_max", from, to, below_all, Default::default(), None, |r, j| {
                    let (at, keep) = pool_position(r, &out, j, win, &xt);
                    let xj = r.load(x, at);
                    (r.round(xj, fp32), keep)
                })
            };
            let zero = inner.index(0);
            let earlier = largest(inner, zero, k);
            let next = inner.ix_const("kernel.index_add", k, 1);
            let all = inner.index(taps);
            let later = largest(inner, next, all);
            let above_earlier = inner.rounded("kernel.sub", vec![own, earlier], fp32);
            let first = super::grad::step(inner, above_earlier);
            let later_above = inner.rounded("kernel.sub", vec![later, own], fp32);
            let below_later = super::grad::step(inner, later_above);
            let one = inner.constant(fp32.format, 1.0);
            let not_below = inner.rounded("kernel.sub", vec![one, below_later], fp32);
            let indicator = inner.rounded("kernel.mul", vec![first, not_below], fp32);
            let g = inner.load(dy, out.to_vec());
            (inner.exact_mul(g, indicator), Some(keep))
        });
        let out = counters.own(body, Rnd::new(rt.format, arith.out), taps);
        Ok(body.round(sum, out))
    })
}

/// The input gradient of average pooling at `(n, h, w, c)`: the sum over the taps
/// `k = (th, tw)` (row-major) of the windows `(oh, ow)` that place tap `k` on `(h, w)` of
/// `dy[n, oh, ow, c] / count(oh, ow) → A` (the count of the window's non-padded positions,
/// converted to A first, as `nn.avgpool2d` divides), in A; then `→ Y`.
pub fn avgpool_grad(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let arith = arith_of(module, op)?;
    let size = pair(module, op, "window", [1, 1]);
    let win = window(module, op, size, true);
    let in_hw = pair(module, op, "input_size", [1, 1]);
    let dy = module.ops[op].operands[0];
    let (dyt, rt) = (operand_type(module, op, 0), result_type(module, op));
    let out_hw = [fixed(module, op, dyt.dims[1], "the output height")?, fixed(module, op, dyt.dims[2], "the output width")?];
    let taps = size[0] * size[1];
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let (n, h, w, c) = (idx[0], idx[1], idx[2], idx[3]);
        let counters = Draws::per_element(body, &arith, sizes, 3 * taps + 1);
        let acc = Rnd::new(arith.acc.format, arith.acc.rounding);
        let lo = body.index(0);
        let hi = body.index(taps);
        let sum_rounding = counters.own(body, acc, 0);
        let sum = body.accumulate(lo, hi, sum_rounding, None, |inner, k| {
            let (oh, ow, keep) = window_of_tap(inner, k, (h, w), win, size, out_hw);
            let count = if win.padding == [0, 0] {
                inner.index(taps)
            } else {
                let rows = valid_count(inner, oh, win.stride[0], size[0], win.padding[0], in_hw[0]);
                let cols = valid_count(inner, ow, win.stride[1], size[1], win.padding[1], in_hw[1]);
                inner.ix("kernel.index_mul", rows, cols)
            };
            let converted = counters.own_term(inner, acc, taps, k);
            let count = inner.rounded("kernel.from_index", vec![count], converted);
            let g = inner.load(dy, vec![n, oh, ow, c]);
            let divided = counters.own_term(inner, acc, 2 * taps, k);
            (inner.rounded("kernel.div", vec![g, count], divided), Some(keep))
        });
        let out = counters.own(body, Rnd::new(rt.format, arith.out), 3 * taps);
        Ok(body.round(sum, out))
    })
}
