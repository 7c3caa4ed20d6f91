//! The `nn` dialect: network-level ops, what the language lowers to. Each op computes its
//! result exactly from its operands and rounds once to the result format (with `round`,
//! default `nearest`), except the contractions, whose rounding is fixed by `#arith`.
//! Shapes are row-major; images are NCHW; weights of `nn.dense` are `[K, N]`.

use super::check::*;
use super::{opt, req, Arity, AttrDef, OpDef, OpView, ROUND_OPT};
use crate::ir::{AttrKind, Dim, TensorType};

const ARITH: [AttrDef; 1] = [req("arith", AttrKind::Arith)];
const CONV_ATTRS: [AttrDef; 4] = [
    req("arith", AttrKind::Arith),
    opt("stride", AttrKind::IntArray),
    opt("padding", AttrKind::IntArray),
    opt("groups", AttrKind::Int),
];
const POOL_ATTRS: [AttrDef; 3] =
    [req("window", AttrKind::IntArray), opt("stride", AttrKind::IntArray), opt("padding", AttrKind::IntArray)];
const AVGPOOL_ATTRS: [AttrDef; 4] = [
    req("window", AttrKind::IntArray),
    opt("stride", AttrKind::IntArray),
    opt("padding", AttrKind::IntArray),
    req("arith", AttrKind::Arith),
];

const fn unary(name: &'static str, summary: &'static str) -> OpDef {
    OpDef {
        name,
        summary,
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_OPT,
        terminator: false,
        verify: verify_elementwise_unary,
    }
}

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "nn.param",
        summary: "A named parameter (weight) of the model, loaded at run time.",
        operands: Arity::Exactly(0),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("name", AttrKind::Str)],
        terminator: false,
        verify: verify_param,
    },
    OpDef {
        name: "nn.constant",
        summary: "A constant tensor: `value` lists every element row-major, or one element for all.",
        operands: Arity::Exactly(0),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("value", AttrKind::FloatArray)],
        terminator: false,
        verify: verify_constant,
    },
    OpDef {
        name: "nn.dense",
        summary: "x[..., K] · w[K, N] (+ b[N]) -> [..., N], rounded as `arith` says.",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_dense,
    },
    OpDef {
        name: "nn.matmul",
        summary: "a[B..., M, K] · b[B..., K, N] -> [B..., M, N], rounded as `arith` says.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_matmul,
    },
    OpDef {
        name: "nn.conv2d",
        summary: "2-D convolution x[N, C, H, W] * w[O, C/groups, KH, KW] (+ b[O]) -> [N, O, OH, OW].",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &CONV_ATTRS,
        terminator: false,
        verify: verify_conv2d,
    },
    OpDef {
        name: "nn.maxpool2d",
        summary: "Maximum over windows of x[N, C, H, W] (exact: no rounding).",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &POOL_ATTRS,
        terminator: false,
        verify: verify_maxpool,
    },
    OpDef {
        name: "nn.avgpool2d",
        summary: "Mean over windows of x[N, C, H, W]: a sum in the accumulator, then a division.",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &AVGPOOL_ATTRS,
        terminator: false,
        verify: verify_avgpool,
    },
    unary("nn.relu", "max(x, 0)."),
    unary("nn.sigmoid", "1 / (1 + e^-x)."),
    unary("nn.tanh", "tanh(x)."),
    unary("nn.gelu", "x·Φ(x) (the exact erf form)."),
    OpDef {
        name: "nn.leaky_relu",
        summary: "x if x ≥ 0, else alpha·x.",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("alpha", AttrKind::Float), opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_elementwise_unary,
    },
    OpDef {
        name: "nn.softmax",
        summary: "e^x / Σ e^x along `axis`.",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("axis", AttrKind::Int), opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_softmax,
    },
    OpDef {
        name: "nn.batchnorm",
        summary: "Inference batch norm of x[N, C, ...]: (x − mean)/√(var + epsilon)·scale + shift, per channel.",
        operands: Arity::Exactly(5),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("epsilon", AttrKind::Float), opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_batchnorm,
    },
    OpDef {
        name: "nn.layernorm",
        summary: "Normalisation over the last axis: (x − mean)/√(var + epsilon)·gamma + beta.",
        operands: Arity::Exactly(3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("epsilon", AttrKind::Float), opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_layernorm,
    },
    OpDef {
        name: "nn.add",
        summary: "a + b, broadcasting.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_OPT,
        terminator: false,
        verify: verify_broadcast_binary,
    },
    OpDef {
        name: "nn.mul",
        summary: "a · b, broadcasting.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_OPT,
        terminator: false,
        verify: verify_broadcast_binary,
    },
    OpDef {
        name: "nn.flatten",
        summary: "Collapses axes [0, axis) and [axis, rank) into two (axis defaults to 1).",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[opt("axis", AttrKind::Int)],
        terminator: false,
        verify: verify_flatten,
    },
    OpDef {
        name: "nn.reshape",
        summary: "The same elements in row-major order with the result's shape.",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[],
        terminator: false,
        verify: verify_reshape,
    },
    OpDef {
        name: "nn.transpose",
        summary: "Permutes axes: result axis i is operand axis perm[i].",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("perm", AttrKind::IntArray)],
        terminator: false,
        verify: verify_transpose,
    },
    OpDef {
        name: "nn.concat",
        summary: "Joins tensors along `axis`.",
        operands: Arity::AtLeast(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("axis", AttrKind::Int)],
        terminator: false,
        verify: verify_concat,
    },
    OpDef {
        name: "nn.cast",
        summary: "Rounds every element to the result's format.",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_OPT,
        terminator: false,
        verify: verify_elementwise_unary,
    },
    OpDef {
        name: "nn.clip",
        summary: "Clamps x to [min, max] (-0 counts as below +0; NaN stays NaN); relu is [0, inf], relu6 [0, 6].",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("min", AttrKind::Float), req("max", AttrKind::Float), opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_clip,
    },
    OpDef {
        name: "nn.fused_dense",
        summary: "nn.dense whose rounded result is then clamped to `clip` = [lo, hi] (made by the fusion pass).",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("arith", AttrKind::Arith), req("clip", AttrKind::FloatArray)],
        terminator: false,
        verify: verify_fused_dense,
    },
    OpDef {
        name: "nn.fused_conv2d",
        summary: "nn.conv2d whose rounded result is then clamped to `clip` = [lo, hi] (made by the fusion pass).",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[
            req("arith", AttrKind::Arith),
            opt("stride", AttrKind::IntArray),
            opt("padding", AttrKind::IntArray),
            opt("groups", AttrKind::Int),
            req("clip", AttrKind::FloatArray),
        ],
        terminator: false,
        verify: verify_fused_conv2d,
    },
];

/// The `[lo, hi]` bounds of a clamp: `lo ≤ hi`, neither NaN, each a value of the result
/// format or an infinity (so clamping a value of the format gives a value of the format).
fn check_bounds(lo: f64, hi: f64, result: &TensorType) -> Result<(), Failure> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return fail(format!("the clamp bounds must satisfy min ≤ max, not [{lo}, {hi}]"));
    }
    for bound in [lo, hi] {
        if !bound.is_infinite() && !result.format.contains(bound) {
            return fail_hint(
                format!("the clamp bound {bound} is not a value of the result format `{}`", result.format),
                "clamp bounds must be values of the result format (or ±inf)",
            );
        }
    }
    Ok(())
}

fn verify_clip(v: &OpView<'_>) -> Result<(), Failure> {
    verify_elementwise_unary(v)?;
    let lo = v.attr("min").and_then(|a| a.as_f64()).unwrap_or(f64::NAN);
    let hi = v.attr("max").and_then(|a| a.as_f64()).unwrap_or(f64::NAN);
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return fail(format!("`min` must not exceed `max` (and neither may be NaN): [{lo}, {hi}]"));
    }
    Ok(())
}

/// The `clip` attribute of a fused contraction: two numbers, checked by [`check_bounds`].
fn fused_clip(v: &OpView<'_>) -> Result<(), Failure> {
    let bounds: Option<Vec<f64>> = match v.attr("clip") {
        Some(crate::ir::Attr::Array(items)) => items.iter().map(|a| a.as_f64()).collect(),
        _ => None,
    };
    match bounds.as_deref() {
        Some(&[lo, hi]) => check_bounds(lo, hi, v.result_tensor(0)?),
        _ => fail_hint("`clip` must be two numbers [lo, hi]", "write `clip = [0.0, inf]` for relu"),
    }
}

fn verify_fused_dense(v: &OpView<'_>) -> Result<(), Failure> {
    verify_dense(v)?;
    fused_clip(v)
}

fn verify_fused_conv2d(v: &OpView<'_>) -> Result<(), Failure> {
    verify_conv2d(v)?;
    fused_clip(v)
}

fn all_fixed(t: &TensorType, what: &str) -> Result<(), Failure> {
    if t.dims.contains(&Dim::Dynamic) {
        fail_hint(format!("{what} needs a static shape"), "only activations may have a dynamic (`?`) dimension")
    } else {
        Ok(())
    }
}

fn verify_param(v: &OpView<'_>) -> Result<(), Failure> {
    all_fixed(v.result_tensor(0)?, "a parameter")
}

fn verify_constant(v: &OpView<'_>) -> Result<(), Failure> {
    let t = v.result_tensor(0)?;
    all_fixed(t, "a constant")?;
    let n = t.static_len().unwrap_or(u64::MAX);
    let given = match v.attr("value") {
        Some(crate::ir::Attr::Array(items)) => items.len() as u64,
        _ => 0,
    };
    if given == 1 || given == n {
        Ok(())
    } else {
        fail_hint(format!("`value` has {given} elements but the result holds {n}"), "give every element, or one for all")
    }
}

fn verify_elementwise_unary(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let y = v.result_tensor(0)?;
    expect_dims(y, &x.dims)?;
    check_round_attr(v)
}

fn verify_broadcast_binary(v: &OpView<'_>) -> Result<(), Failure> {
    let a = v.tensor(0, "the left operand")?;
    let b = v.tensor(1, "the right operand")?;
    expect_dims(v.result_tensor(0)?, &broadcast(&a.dims, &b.dims)?)?;
    check_round_attr(v)
}

/// Shared by the contractions: the contracted length of both sides must agree.
fn contracted(k_left: Dim, k_right: Dim) -> Result<(), Failure> {
    if dims_agree(k_left, k_right) {
        Ok(())
    } else {
        fail(format!("the contracted dimensions differ: {k_left} against {k_right}"))
    }
}

fn arith(v: &OpView<'_>) -> Result<(), Failure> {
    match v.arith() {
        Some(a) => check_arith(a),
        None => fail("`arith` is missing"),
    }
}

fn bias(v: &OpView<'_>, index: usize, channels: Dim) -> Result<(), Failure> {
    if v.operand_count() <= index {
        return Ok(());
    }
    let b = v.tensor(index, "the bias")?;
    if b.dims != [channels] {
        return fail(format!("the bias should have shape {channels}, not {}", show_dims(&b.dims)));
    }
    Ok(())
}

fn verify_dense(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let w = v.tensor(1, "the weight")?;
    let Some((&k, batch)) = x.dims.split_last() else {
        return fail("the input of `nn.dense` needs at least one axis");
    };
    let [wk, n] = w.dims[..] else {
        return fail_hint(format!("the weight must have rank 2, not {}", w.rank()), "the weight is [K, N]");
    };
    contracted(k, wk)?;
    bias(v, 2, n)?;
    let mut out = batch.to_vec();
    out.push(n);
    expect_dims(v.result_tensor(0)?, &out)?;
    arith(v)
}

fn verify_matmul(v: &OpView<'_>) -> Result<(), Failure> {
    let a = v.tensor(0, "the left operand")?;
    let b = v.tensor(1, "the right operand")?;
    if a.rank() < 2 || a.rank() != b.rank() {
        return fail(format!("`nn.matmul` needs operands of the same rank ≥ 2, not {} and {}", a.rank(), b.rank()));
    }
    let r = a.rank();
    if a.dims[..r - 2] != b.dims[..r - 2] {
        return fail(format!(
            "the batch dimensions differ: {} against {}",
            show_dims(&a.dims[..r - 2]),
            show_dims(&b.dims[..r - 2])
        ));
    }
    contracted(a.dims[r - 1], b.dims[r - 2])?;
    let mut out = a.dims[..r - 1].to_vec();
    out.push(b.dims[r - 1]);
    expect_dims(v.result_tensor(0)?, &out)?;
    arith(v)
}

/// Output size of a sliding window along one axis.
fn window_out(input: Dim, window: u64, stride: u64, pad: u64) -> Result<Dim, Failure> {
    match input {
        Dim::Dynamic => Ok(Dim::Dynamic),
        Dim::Fixed(h) => match pad.checked_mul(2).and_then(|p| p.checked_add(h)) {
            Some(padded) if padded >= window => Ok(Dim::Fixed((padded - window) / stride + 1)),
            Some(padded) => fail(format!("the window {window} is larger than the padded input {padded}")),
            None => fail(format!("the padding {pad} is too large")),
        },
    }
}

fn rank4<'a>(v: &OpView<'a>, i: usize, what: &str) -> Result<&'a TensorType, Failure> {
    let t = v.tensor(i, what)?;
    if t.rank() != 4 {
        return fail_hint(format!("{what} must have rank 4, not {}", t.rank()), "images are [N, C, H, W]");
    }
    Ok(t)
}

fn verify_conv2d(v: &OpView<'_>) -> Result<(), Failure> {
    let x = rank4(v, 0, "the input")?;
    let w = rank4(v, 1, "the weight")?;
    let stride = positive_pair(v, "stride", [1, 1], 1)?;
    let pad = positive_pair(v, "padding", [0, 0], 0)?;
    let groups = v.int("groups").unwrap_or(1);
    if groups < 1 {
        return fail(format!("`groups` must be at least 1, not {groups}"));
    }
    let (Dim::Fixed(kh), Dim::Fixed(kw)) = (w.dims[2], w.dims[3]) else {
        return fail("the kernel size must be static");
    };
    if let (Dim::Fixed(c), Dim::Fixed(wc)) = (x.dims[1], w.dims[1]) {
        if c != wc * groups as u64 {
            return fail(format!("the input has {c} channels but the weight expects {wc}·{groups} (channels per group · groups)"));
        }
    }
    if let Dim::Fixed(o) = w.dims[0] {
        if o % groups as u64 != 0 {
            return fail(format!("{o} output channels do not divide into {groups} groups"));
        }
    }
    bias(v, 2, w.dims[0])?;
    let out = [x.dims[0], w.dims[0], window_out(x.dims[2], kh, stride[0], pad[0])?, window_out(x.dims[3], kw, stride[1], pad[1])?];
    expect_dims(v.result_tensor(0)?, &out)?;
    arith(v)
}

fn pool_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = rank4(v, 0, "the input")?;
    let window = positive_pair(v, "window", [1, 1], 1)?;
    let stride = positive_pair(v, "stride", window, 1)?;
    let pad = positive_pair(v, "padding", [0, 0], 0)?;
    Ok(vec![
        x.dims[0],
        x.dims[1],
        window_out(x.dims[2], window[0], stride[0], pad[0])?,
        window_out(x.dims[3], window[1], stride[1], pad[1])?,
    ])
}

fn verify_maxpool(v: &OpView<'_>) -> Result<(), Failure> {
    let y = v.result_tensor(0)?;
    expect_dims(y, &pool_dims(v)?)?;
    same_format(v.tensor(0, "the input")?, y)
}

fn verify_avgpool(v: &OpView<'_>) -> Result<(), Failure> {
    expect_dims(v.result_tensor(0)?, &pool_dims(v)?)?;
    arith(v)?;
    if v.arith().is_some_and(|a| a.mul.is_some() || a.fma) {
        return fail_hint("average pooling multiplies nothing", "write `mul=exact` without `fma`");
    }
    Ok(())
}

fn verify_softmax(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    axis(v.int("axis").unwrap_or(0), x.rank())?;
    verify_elementwise_unary(v)
}

fn per_channel(v: &OpView<'_>, index: usize, what: &str, channels: Dim) -> Result<(), Failure> {
    let t = v.tensor(index, what)?;
    if t.rank() == 1 && dims_agree(t.dims[0], channels) {
        Ok(())
    } else {
        fail(format!("{what} should have shape {channels}, not {}", show_dims(&t.dims)))
    }
}

fn verify_batchnorm(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    if x.rank() < 2 {
        return fail("batch norm needs an input [N, C, ...] of rank ≥ 2");
    }
    for (i, what) in [(1, "the scale"), (2, "the shift"), (3, "the mean"), (4, "the variance")] {
        per_channel(v, i, what, x.dims[1])?;
    }
    expect_dims(v.result_tensor(0)?, &x.dims)?;
    check_round_attr(v)
}

fn verify_layernorm(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let Some(&last) = x.dims.last() else { return fail("layer norm needs an input with at least one axis") };
    per_channel(v, 1, "gamma", last)?;
    per_channel(v, 2, "beta", last)?;
    expect_dims(v.result_tensor(0)?, &x.dims)?;
    check_round_attr(v)
}

fn product(dims: &[Dim]) -> Dim {
    dims.iter().try_fold(1u64, |n, d| match d {
        Dim::Fixed(k) => n.checked_mul(*k),
        Dim::Dynamic => None,
    })
    .map_or(Dim::Dynamic, Dim::Fixed)
}

fn verify_flatten(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let raw = v.int("axis").unwrap_or(1);
    if raw < 0 || raw as usize > x.rank() {
        return fail(format!("`axis` must be 0 to {}, not {raw}", x.rank()));
    }
    let a = raw as usize;
    let y = v.result_tensor(0)?;
    expect_dims(y, &[product(&x.dims[..a]), product(&x.dims[a..])])?;
    same_format(x, y)
}

fn verify_reshape(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let y = v.result_tensor(0)?;
    if let (Some(a), Some(b)) = (x.static_len(), y.static_len()) {
        if a != b {
            return fail(format!("a reshape keeps the element count: {a} elements cannot become {b}"));
        }
    }
    if y.dims.iter().filter(|d| **d == Dim::Dynamic).count() > 1 {
        return fail("a reshape result may have at most one dynamic dimension");
    }
    same_format(x, y)
}

fn verify_transpose(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let perm = v.attr("perm").and_then(|a| a.as_int_array()).unwrap_or_default();
    let mut seen = vec![false; x.rank()];
    for &p in &perm {
        match usize::try_from(p).ok().filter(|&p| p < x.rank()) {
            Some(p) if !seen[p] => seen[p] = true,
            _ => return fail(format!("`perm` must be a permutation of 0..{}, not {:?}", x.rank(), perm)),
        }
    }
    if perm.len() != x.rank() {
        return fail(format!("`perm` must be a permutation of 0..{}, not {:?}", x.rank(), perm));
    }
    let y = v.result_tensor(0)?;
    let dims: Vec<Dim> = perm.iter().map(|&p| x.dims[p as usize]).collect();
    expect_dims(y, &dims)?;
    same_format(x, y)
}

fn verify_concat(v: &OpView<'_>) -> Result<(), Failure> {
    let first = v.tensor(0, "the first input")?;
    let a = axis(v.int("axis").unwrap_or(0), first.rank())?;
    let y = v.result_tensor(0)?;
    let mut total = Some(0u64);
    for i in 0..v.operand_count() {
        let t = v.tensor(i, "an input")?;
        if t.rank() != first.rank() || t.dims.iter().zip(&first.dims).enumerate().any(|(j, (p, q))| j != a && !dims_agree(*p, *q)) {
            return fail(format!("input #{i} has shape {} which does not match {} outside axis {a}", show_dims(&t.dims), show_dims(&first.dims)));
        }
        same_format(t, y)?;
        total = match (total, t.dims[a]) {
            (Some(n), Dim::Fixed(k)) => Some(n + k),
            _ => None,
        };
    }
    let mut dims = first.dims.clone();
    dims[a] = total.map_or(Dim::Dynamic, Dim::Fixed);
    expect_dims(y, &dims)
}
