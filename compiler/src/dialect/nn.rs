//! The `nn` dialect: network-level ops, what the language lowers to. Each op computes its
//! result exactly from its operands and rounds once to the result format (with `round`,
//! default `nearest`), except the contractions, whose rounding is fixed by `#arith`.
//! Shapes are row-major and follow the language's layout: images are NHWC, weights are
//! `[out, in]` (`nn.dense` `[N, K]`, `nn.conv2d` `[O, KH, KW, C/groups]`), per-channel
//! statistics index the last axis. [`result_dims`] gives each op's result shape from its
//! operands: the verifier checks it and the `infer` pass uses it to refine `?` dimensions.

use super::check::*;
use super::{opt, req, Arity, AttrDef, OpDef, OpView, ROUND_OPT};
use crate::ir::{AttrKind, Dim, TensorType};

const ARITH: [AttrDef; 1] = [req("arith", AttrKind::Arith)];
const CONV_ATTRS: [AttrDef; 5] = [
    req("arith", AttrKind::Arith),
    opt("stride", AttrKind::IntArray),
    opt("padding", AttrKind::IntArray),
    opt("dilation", AttrKind::IntArray),
    opt("groups", AttrKind::Int),
];
const REDUCE_ATTRS: [AttrDef; 2] = [req("epsilon", AttrKind::Float), req("arith", AttrKind::Arith)];
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
        summary: "A named parameter (weight) of the model: its master copy, started by the `init` recipe or loaded.",
        operands: Arity::Exactly(0),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("name", AttrKind::Str), opt("init", AttrKind::Dict)],
        terminator: false,
        verify: verify_param,
    },
    OpDef {
        name: "nn.constant",
        summary: "A constant tensor: `value` lists every element (or one for all), or `init` generates them (a folded parameter).",
        operands: Arity::Exactly(0),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[
            opt("value", AttrKind::FloatArray),
            opt("init", AttrKind::Dict),
            opt("name", AttrKind::Str),
            opt("digest", AttrKind::Str),
            opt("round", AttrKind::Rounding),
            opt("stream", AttrKind::Int),
        ],
        terminator: false,
        verify: verify_constant,
    },
    OpDef {
        name: "nn.dense",
        summary: "x[..., K] · w[N, K]ᵀ (+ b[N]) -> [..., N], rounded as `arith` says.",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_dense,
    },
    OpDef {
        name: "nn.matmul",
        summary: "a[A..., M, K] · b[B..., K, N] -> [broadcast(A, B)..., M, N], rounded as `arith` says.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_matmul,
    },
    OpDef {
        name: "nn.conv2d",
        summary: "2-D convolution x[N, H, W, C] * w[O, KH, KW, C/groups] (+ b[O]) -> [N, OH, OW, O].",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &CONV_ATTRS,
        terminator: false,
        verify: verify_conv2d,
    },
    OpDef {
        name: "nn.maxpool2d",
        summary: "Maximum over windows of x[N, H, W, C] (exact: no rounding).",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &POOL_ATTRS,
        terminator: false,
        verify: verify_maxpool,
    },
    OpDef {
        name: "nn.avgpool2d",
        summary: "Mean over windows of x[N, H, W, C]: a sum in the accumulator, then a division.",
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
        name: "nn.pact",
        summary: "min(max(x, 0), alpha) with a learnable bound alpha (a tensor of one element).",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_OPT,
        terminator: false,
        verify: verify_pact,
    },
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
        attrs: &[req("axis", AttrKind::Int), req("arith", AttrKind::Arith)],
        terminator: false,
        verify: verify_softmax,
    },
    OpDef {
        name: "nn.batchnorm",
        summary: "Inference batch norm of x[..., C]: (x − mean)/√(var + epsilon)·scale + shift, per channel (last axis).",
        operands: Arity::Exactly(5),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("epsilon", AttrKind::Float), req("arith", AttrKind::Arith), opt("momentum", AttrKind::Float)],
        terminator: false,
        verify: verify_batchnorm,
    },
    OpDef {
        name: "nn.layernorm",
        summary: "Normalisation over the last axis: (x − mean)/√(var + epsilon)·gamma + beta.",
        operands: Arity::Exactly(3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &REDUCE_ATTRS,
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
        summary: "nn.dense, optionally followed by a batch norm of its accumulator value (`batchnorm`, operands scale, shift, mean, var), whose result is then clamped to `clip` = [lo, hi] (made by the fusion pass).",
        operands: Arity::Between(2, 7),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("arith", AttrKind::Arith), req("clip", AttrKind::FloatArray), opt("batchnorm", AttrKind::Dict)],
        terminator: false,
        verify: verify_fused_dense,
    },
    OpDef {
        name: "nn.fused_conv2d",
        summary: "nn.conv2d, optionally followed by a batch norm of its accumulator value (`batchnorm`, operands scale, shift, mean, var), whose result is then clamped to `clip` = [lo, hi] (made by the fusion pass).",
        operands: Arity::Between(2, 7),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[
            req("arith", AttrKind::Arith),
            opt("stride", AttrKind::IntArray),
            opt("padding", AttrKind::IntArray),
            opt("dilation", AttrKind::IntArray),
            opt("groups", AttrKind::Int),
            req("clip", AttrKind::FloatArray),
            opt("batchnorm", AttrKind::Dict),
        ],
        terminator: false,
        verify: verify_fused_conv2d,
    },
    // Gradient ops, made by `autodiff` (spec/ir.md, "Gradients").
    OpDef {
        name: "nn.dense_grad_weight",
        summary: "The weight gradient of nn.dense: dy[..., N]ᵀ · x[..., K] -> [N, K], summed over the rows in order, rounded as `arith` says.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_dense,
    },
    OpDef {
        name: "nn.bias_grad",
        summary: "The gradient of an operand broadcast along leading axes: dy summed over every axis but the last `keep` (default 1) -> dy's last `keep` axes, in the accumulator (a reduction).",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("arith", AttrKind::Arith), opt("keep", AttrKind::Int)],
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.clip_grad",
        summary: "The gradient of nn.clip, relu and pact: dy where min < x < max (or < the one-element operand hi when given), else 0, rounded to the result.",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("min", AttrKind::Float), req("max", AttrKind::Float), opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_clip,
    },
    OpDef {
        name: "nn.leaky_relu_grad",
        summary: "The gradient of nn.leaky_relu: dy where x > 0, else alpha·dy, rounded once to the result.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("alpha", AttrKind::Float), opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_elementwise_unary,
    },
    OpDef {
        name: "nn.softmax_xent_grad",
        summary: "The gradient of the mean softmax cross-entropy: (softmax(x) − t)·scale / B for logits x[B, C], targets t[B, C], loss scale (one element).",
        operands: Arity::Exactly(3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.mse_grad",
        summary: "The gradient of the mean squared error: 2·(y − t)·scale / n for n elements, loss scale (one element).",
        operands: Arity::Exactly(3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.conv2d_grad_input",
        summary: "The input gradient of nn.conv2d: dy[N, OH, OW, O] and w[O, KH, KW, C/g] -> [N, H, W, C] for `input_size` = [H, W], rounded as `arith` says.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &CONV_GRAD_INPUT_ATTRS,
        terminator: false,
        verify: verify_dense,
    },
    OpDef {
        name: "nn.conv2d_grad_weight",
        summary: "The weight gradient of nn.conv2d: dy[N, OH, OW, O] and x[N, H, W, C] -> [O, KH, KW, C/g] for `kernel_size` = [KH, KW], rounded as `arith` says.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &CONV_GRAD_WEIGHT_ATTRS,
        terminator: false,
        verify: verify_dense,
    },
    OpDef {
        name: "nn.maxpool2d_grad",
        summary: "The input gradient of nn.maxpool2d: each window's dy goes to its first largest input (row-major), summed where windows overlap, in `acc`.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &AVGPOOL_ATTRS,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.pact_grad_alpha",
        summary: "The gradient of nn.pact's bound: Σ dy where x ≥ alpha, over every element in row-major order, in `acc` -> shape of alpha.",
        operands: Arity::Exactly(3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.avgpool2d_grad",
        summary: "The input gradient of nn.avgpool2d: each window's dy divided by its count goes to every non-padded position of the window, summed where windows overlap, in `acc` -> [N, H, W, C] for `input_size` = [H, W].",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[
            req("window", AttrKind::IntArray),
            opt("stride", AttrKind::IntArray),
            opt("padding", AttrKind::IntArray),
            req("input_size", AttrKind::IntArray),
            req("arith", AttrKind::Arith),
        ],
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.batch_mean",
        summary: "The batch mean of x[..., C] per channel: Σ over the rows (every axis but the last) in `acc`, divided by the row count (a reduction; batch norm in training).",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.batch_var",
        summary: "The (biased) batch variance of x[..., C] per channel about mean[C]: Σ over the rows of (x − mean)² in `acc`, divided by the row count.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.batchnorm_grad",
        summary: "The input gradient of a batch norm with batch statistics: dy, x, gamma, mean, var, Σ dy, Σ dy·n -> γ/r·(dy − Σdy/R − n·Σdy·n/R), r = √(var + epsilon), n the normalised x, R the row count.",
        operands: Arity::Exactly(7),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &REDUCE_ATTRS,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.slice",
        summary: "Positions start .. start + size of x along `axis` (moves values; the gradient of nn.concat).",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("axis", AttrKind::Int), req("start", AttrKind::Int), req("size", AttrKind::Int)],
        terminator: false,
        verify: verify_slice,
    },
    OpDef {
        name: "nn.softmax_grad",
        summary: "The input gradient of nn.softmax from its result y: y·(dy − Σ_axis dy·y), in `acc`.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("axis", AttrKind::Int), req("arith", AttrKind::Arith)],
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.layernorm_grad",
        summary: "The input gradient of nn.layernorm: dy, x, gamma -> (g − mean(g) − n·mean(g·n))/r with g = dy·gamma, n and r the normalised x and √(var + epsilon), in `acc`.",
        operands: Arity::Exactly(3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &REDUCE_ATTRS,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.sigmoid_grad",
        summary: "The input gradient of nn.sigmoid: dy·s·(1 − s) with s = sigmoid(x), in `acc`.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.tanh_grad",
        summary: "The input gradient of nn.tanh: dy·(1 − t²) with t = tanh(x), in `acc`.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_reduction_grad,
    },
    OpDef {
        name: "nn.gelu_grad",
        summary: "The input gradient of nn.gelu: dy·(Φ(x) + x·φ(x)), in `acc`.",
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ARITH,
        terminator: false,
        verify: verify_reduction_grad,
    },
];

const CONV_GRAD_INPUT_ATTRS: [AttrDef; 6] = [
    req("arith", AttrKind::Arith),
    opt("stride", AttrKind::IntArray),
    opt("padding", AttrKind::IntArray),
    opt("dilation", AttrKind::IntArray),
    opt("groups", AttrKind::Int),
    req("input_size", AttrKind::IntArray),
];
const CONV_GRAD_WEIGHT_ATTRS: [AttrDef; 6] = [
    req("arith", AttrKind::Arith),
    opt("stride", AttrKind::IntArray),
    opt("padding", AttrKind::IntArray),
    opt("dilation", AttrKind::IntArray),
    opt("groups", AttrKind::Int),
    req("kernel_size", AttrKind::IntArray),
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
    fused_batchnorm(v)?;
    fused_clip(v)
}

fn verify_fused_conv2d(v: &OpView<'_>) -> Result<(), Failure> {
    verify_conv2d(v)?;
    fused_batchnorm(v)?;
    fused_clip(v)
}

/// Where a contraction's optional operands are: the bias, and the first of a fused batch
/// norm's four per-channel operands (scale, shift, mean, var). A contraction without
/// `batchnorm` has `x, w[, bias]`; with it, `x, w[, bias], scale, shift, mean, var`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContractionOperands {
    pub bias: Option<usize>,
    pub batchnorm: Option<usize>,
}

impl ContractionOperands {
    pub fn of(operand_count: usize, has_batchnorm: bool) -> ContractionOperands {
        let extra = if has_batchnorm { 4 } else { 0 };
        let bias = (operand_count == 3 + extra).then_some(2);
        let batchnorm = has_batchnorm.then_some(2 + bias.map_or(0, |_| 1));
        ContractionOperands { bias, batchnorm }
    }

    fn of_view(v: &OpView<'_>) -> ContractionOperands {
        ContractionOperands::of(v.operand_count(), v.attr("batchnorm").is_some())
    }
}

/// The `batchnorm` of a fused contraction: `{arith, epsilon[, momentum]}` with a reduction
/// arith, and four per-channel operands after the optional bias.
fn fused_batchnorm(v: &OpView<'_>) -> Result<(), Failure> {
    let Some(attr) = v.attr("batchnorm") else {
        return match v.operand_count() {
            2 | 3 => Ok(()),
            n => fail_hint(format!("this contraction has {n} operands"), "x, w and an optional bias; a fused batch norm adds scale, shift, mean and var"),
        };
    };
    let crate::ir::Attr::Dict(d) = attr else { return fail("`batchnorm` must be a dictionary") };
    if !matches!(v.operand_count(), 6 | 7) {
        return fail_hint(format!("a contraction with a fused batch norm has 6 or 7 operands, not {}", v.operand_count()), "x, w, an optional bias, then scale, shift, mean, var");
    }
    let Some(crate::ir::Attr::Arith(a)) = d.get("arith") else { return fail("`batchnorm` needs `arith`") };
    if a.mul.is_some() || a.fma || a.chunk.is_some() || a.is_stochastic() {
        return fail_hint("a fused batch norm multiplies nothing, is not chunked and rounds deterministically", "write `arith = #arith<mul=exact, acc=F @ R>`");
    }
    if d.get("epsilon").and_then(|e| e.as_f64()).is_none() {
        return fail("`batchnorm` needs a number `epsilon`");
    }
    if let Some(key) = d.keys().find(|k| !["arith", "epsilon", "momentum"].contains(&k.as_str())) {
        return fail(format!("`batchnorm` has no field `{key}`"));
    }
    let channels = *v.result_tensor(0)?.dims.last().expect("a contraction result has an axis");
    let first = ContractionOperands::of_view(v).batchnorm.expect("checked above");
    for (i, what) in ["the scale", "the shift", "the mean", "the variance"].into_iter().enumerate() {
        per_channel(v, first + i, what, channels)?;
    }
    Ok(())
}

fn all_fixed(t: &TensorType, what: &str) -> Result<(), Failure> {
    if t.dims.contains(&Dim::Dynamic) {
        fail_hint(format!("{what} needs a static shape"), "only activations may have a dynamic (`?`) dimension")
    } else {
        Ok(())
    }
}

/// The result shape an `nn` op computes from its operands and attributes, or `None` for ops
/// whose result type is not determined by them (`nn.param`, `nn.constant`, `nn.reshape`).
/// The verifier checks results against it; the `infer` pass refines `?` dimensions with it.
pub fn result_dims(v: &OpView<'_>) -> Option<Result<Vec<Dim>, Failure>> {
    let dims = match v.name() {
        "nn.dense" | "nn.fused_dense" => dense_dims(v),
        "nn.matmul" => matmul_dims(v),
        "nn.conv2d" | "nn.fused_conv2d" => conv2d_dims(v),
        "nn.maxpool2d" | "nn.avgpool2d" => pool_dims(v),
        "nn.add" | "nn.mul" => broadcast_dims(v),
        "nn.flatten" => flatten_dims(v),
        "nn.transpose" => transpose_dims(v),
        "nn.concat" => concat_dims(v),
        "nn.batchnorm" => batchnorm_dims(v),
        "nn.layernorm" => layernorm_dims(v),
        "nn.softmax" => softmax_dims(v),
        "nn.pact" => pact_dims(v),
        "nn.dense_grad_weight" => dense_grad_weight_dims(v),
        "nn.bias_grad" => bias_grad_dims(v),
        "nn.clip_grad" => clip_grad_dims(v),
        "nn.softmax_xent_grad" => loss_grad_dims(v, true),
        "nn.mse_grad" => loss_grad_dims(v, false),
        "nn.conv2d_grad_input" => conv_grad_input_dims(v),
        "nn.conv2d_grad_weight" => conv_grad_weight_dims(v),
        "nn.maxpool2d_grad" => maxpool_grad_dims(v),
        "nn.pact_grad_alpha" => pact_grad_alpha_dims(v),
        "nn.avgpool2d_grad" => avgpool_grad_dims(v),
        "nn.slice" => slice_dims(v),
        "nn.batch_mean" => bias_grad_dims(v),
        "nn.batch_var" => batch_var_dims(v),
        "nn.batchnorm_grad" => batchnorm_grad_dims(v),
        "nn.softmax_grad" => softmax_grad_dims(v),
        "nn.layernorm_grad" => layernorm_grad_dims(v),
        "nn.sigmoid_grad" | "nn.tanh_grad" | "nn.gelu_grad" | "nn.leaky_relu_grad" => same_dims(v, 2),
        "nn.relu" | "nn.sigmoid" | "nn.tanh" | "nn.gelu" | "nn.leaky_relu" | "nn.cast" | "nn.clip" => {
            v.tensor(0, "the input").map(|x| x.dims.clone())
        }
        _ => return None,
    };
    Some(dims)
}

/// Checks the result shape against [`result_dims`].
fn shaped(v: &OpView<'_>) -> Result<(), Failure> {
    if let Some(dims) = result_dims(v) {
        expect_dims(v.result_tensor(0)?, &dims?)?;
    }
    Ok(())
}

/// The result of an op that computes new values: an element-wise format (a scaled result
/// is computed in an element-wise format and then quantized with `q.quantize`).
fn computed_format(v: &OpView<'_>) -> Result<(), Failure> {
    let f = v.result_tensor(0)?.format;
    if f.is_elementwise() {
        Ok(())
    } else {
        fail_hint(
            format!("the result format `{f}` is not element-wise"),
            "compute in an element-wise format (the accumulator's, or fp32) and round to a scaled format with `q.quantize`",
        )
    }
}

fn verify_param(v: &OpView<'_>) -> Result<(), Failure> {
    let t = v.result_tensor(0)?;
    all_fixed(t, "a parameter")?;
    if let Some(crate::ir::Attr::Dict(d)) = v.attr("init") {
        crate::init::Recipe::from_dict(d).map_err(|e| Failure { message: format!("`init`: {e}"), hint: None })?;
    }
    Ok(())
}

fn verify_constant(v: &OpView<'_>) -> Result<(), Failure> {
    let t = v.result_tensor(0)?;
    all_fixed(t, "a constant")?;
    match (v.attr("value"), v.attr("init")) {
        (Some(crate::ir::Attr::Array(items)), None) => {
            let n = t.static_len().unwrap_or(u64::MAX);
            let given = items.len() as u64;
            if given != 1 && given != n {
                return fail_hint(format!("`value` has {given} elements but the result holds {n}"), "give every element, or one for all");
            }
            if ["stream", "digest"].iter().any(|a| v.attr(a).is_some()) {
                return fail("`stream` and `digest` belong to a constant generated by `init`");
            }
            match v.rounding("round") {
                Some(r) if r.is_stochastic() => fail("listed values are rounded deterministically"),
                _ => Ok(()),
            }
        }
        (None, Some(crate::ir::Attr::Dict(d))) => {
            let recipe = crate::init::Recipe::from_dict(d).map_err(|e| Failure { message: format!("`init`: {e}"), hint: None })?;
            if !recipe.is_generated() {
                return fail_hint("a constant cannot be loaded from a file", "keep a loaded tensor as `nn.param`");
            }
            if !matches!(v.attr("digest"), Some(crate::ir::Attr::Str(s)) if crate::init::is_digest(s)) {
                return fail_hint("a generated constant needs its `digest`", "`digest = \"fnv1a64:<16 hex digits>\"` of its values");
            }
            check_round_attr(v)
        }
        _ => fail_hint("a constant has exactly one of `value` and `init`", "list the values, or give the recipe that generates them"),
    }
}

fn verify_elementwise_unary(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    computed_format(v)?;
    check_round_attr(v)
}

fn pact_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let alpha = v.tensor(1, "alpha")?;
    if alpha.static_len() != Some(1) {
        return fail(format!("alpha must hold one element, not shape {}", show_dims(&alpha.dims)));
    }
    Ok(v.tensor(0, "the input")?.dims.clone())
}

fn verify_pact(v: &OpView<'_>) -> Result<(), Failure> {
    verify_elementwise_unary(v)
}

fn broadcast_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    broadcast(&v.tensor(0, "the left operand")?.dims, &v.tensor(1, "the right operand")?.dims)
}

fn verify_broadcast_binary(v: &OpView<'_>) -> Result<(), Failure> {
    verify_elementwise_unary(v)
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

/// `#arith` of a reduction (pooling, normalisation, softmax): sums only, in `acc`.
fn reduction_arith(v: &OpView<'_>) -> Result<(), Failure> {
    arith(v)?;
    match v.arith() {
        Some(a) if a.mul.is_some() || a.fma || a.chunk.is_some() => {
            fail_hint("this reduction multiplies nothing and is not chunked", "write `#arith<mul=exact, acc=F @ R>` (optionally `out=`)")
        }
        _ => Ok(()),
    }
}

fn bias(v: &OpView<'_>, channels: Dim) -> Result<(), Failure> {
    let Some(index) = ContractionOperands::of_view(v).bias else { return Ok(()) };
    let b = v.tensor(index, "the bias")?;
    if b.rank() != 1 || !dims_agree(b.dims[0], channels) {
        return fail(format!("the bias should have shape {channels}, not {}", show_dims(&b.dims)));
    }
    Ok(())
}

fn dense_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = v.tensor(0, "the input")?;
    let w = v.tensor(1, "the weight")?;
    let Some((&k, batch)) = x.dims.split_last() else {
        return fail("the input of `nn.dense` needs at least one axis");
    };
    let [n, wk] = w.dims[..] else {
        return fail_hint(format!("the weight must have rank 2, not {}", w.rank()), "the weight is [N, K] (out, in)");
    };
    contracted(k, wk)?;
    bias(v, n)?;
    let mut out = batch.to_vec();
    out.push(n);
    Ok(out)
}

fn verify_dense(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    computed_format(v)?;
    arith(v)
}

fn matmul_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let a = v.tensor(0, "the left operand")?;
    let b = v.tensor(1, "the right operand")?;
    if a.rank() < 2 || b.rank() < 2 {
        return fail(format!("`nn.matmul` needs operands of rank ≥ 2, not {} and {}", a.rank(), b.rank()));
    }
    let (ra, rb) = (a.rank(), b.rank());
    contracted(a.dims[ra - 1], b.dims[rb - 2])?;
    let mut out = broadcast(&a.dims[..ra - 2], &b.dims[..rb - 2])?;
    out.extend([a.dims[ra - 2], b.dims[rb - 1]]);
    Ok(out)
}

fn verify_matmul(v: &OpView<'_>) -> Result<(), Failure> {
    verify_dense(v)
}

/// Output size of a sliding window along one axis (the window spans `dilation·(k−1)+1`).
pub(crate) fn window_out(input: Dim, window: u64, stride: u64, pad: u64, dilation: u64) -> Result<Dim, Failure> {
    let span = window.checked_sub(1).and_then(|k| k.checked_mul(dilation)).and_then(|k| k.checked_add(1));
    match (input, span) {
        (Dim::Dynamic, _) => Ok(Dim::Dynamic),
        (_, None) => fail(format!("the window {window} with dilation {dilation} is too large")),
        (Dim::Fixed(h), Some(span)) => match pad.checked_mul(2).and_then(|p| p.checked_add(h)) {
            Some(padded) if padded >= span => Ok(Dim::Fixed((padded - span) / stride + 1)),
            Some(padded) => fail(format!("the window {span} is larger than the padded input {padded}")),
            None => fail(format!("the padding {pad} is too large")),
        },
    }
}

fn rank4<'a>(v: &OpView<'a>, i: usize, what: &str) -> Result<&'a TensorType, Failure> {
    let t = v.tensor(i, what)?;
    if t.rank() != 4 {
        return fail_hint(format!("{what} must have rank 4, not {}", t.rank()), "images are [N, H, W, C]; conv weights [O, KH, KW, C/groups]");
    }
    Ok(t)
}

/// The window attributes of a convolution or pooling op.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub size: [u64; 2],
    pub stride: [u64; 2],
    pub padding: [u64; 2],
    pub dilation: [u64; 2],
}

/// Reads `stride`, `padding`, `dilation` around a kernel of `size`; pooling strides default to the size.
pub fn window(v: &OpView<'_>, size: [u64; 2], pooling: bool) -> Result<Window, Failure> {
    Ok(Window {
        size,
        stride: positive_pair(v, "stride", if pooling { size } else { [1, 1] }, 1)?,
        padding: positive_pair(v, "padding", [0, 0], 0)?,
        dilation: positive_pair(v, "dilation", [1, 1], 1)?,
    })
}

fn conv2d_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = rank4(v, 0, "the input")?;
    let w = rank4(v, 1, "the weight")?;
    let groups = v.int("groups").unwrap_or(1);
    if groups < 1 {
        return fail(format!("`groups` must be at least 1, not {groups}"));
    }
    let (Dim::Fixed(kh), Dim::Fixed(kw)) = (w.dims[1], w.dims[2]) else {
        return fail("the kernel size must be static");
    };
    let win = window(v, [kh, kw], false)?;
    if let (Dim::Fixed(c), Dim::Fixed(wc)) = (x.dims[3], w.dims[3]) {
        if c != wc.saturating_mul(groups as u64) {
            return fail(format!("the input has {c} channels but the weight expects {wc}·{groups} (channels per group · groups)"));
        }
    }
    if let Dim::Fixed(o) = w.dims[0] {
        if o % groups as u64 != 0 {
            return fail(format!("{o} output channels do not divide into {groups} groups"));
        }
    }
    bias(v, w.dims[0])?;
    Ok(vec![
        x.dims[0],
        window_out(x.dims[1], kh, win.stride[0], win.padding[0], win.dilation[0])?,
        window_out(x.dims[2], kw, win.stride[1], win.padding[1], win.dilation[1])?,
        w.dims[0],
    ])
}

fn verify_conv2d(v: &OpView<'_>) -> Result<(), Failure> {
    verify_dense(v)
}

fn pool_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = rank4(v, 0, "the input")?;
    let size = positive_pair(v, "window", [1, 1], 1)?;
    let win = window(v, size, true)?;
    if v.attr("dilation").is_some() {
        return fail("pooling has no dilation");
    }
    Ok(vec![
        x.dims[0],
        window_out(x.dims[1], size[0], win.stride[0], win.padding[0], 1)?,
        window_out(x.dims[2], size[1], win.stride[1], win.padding[1], 1)?,
        x.dims[3],
    ])
}

fn verify_maxpool(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    same_format(v.tensor(0, "the input")?, v.result_tensor(0)?)
}

fn verify_avgpool(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    computed_format(v)?;
    reduction_arith(v)
}

fn softmax_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = v.tensor(0, "the input")?;
    axis(v.int("axis").unwrap_or(0), x.rank())?;
    Ok(x.dims.clone())
}

fn verify_softmax(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    computed_format(v)?;
    reduction_arith(v)
}

fn per_channel(v: &OpView<'_>, index: usize, what: &str, channels: Dim) -> Result<(), Failure> {
    let t = v.tensor(index, what)?;
    if t.rank() == 1 && dims_agree(t.dims[0], channels) {
        Ok(())
    } else {
        fail(format!("{what} should have shape {channels}, not {}", show_dims(&t.dims)))
    }
}

fn batchnorm_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = v.tensor(0, "the input")?;
    let Some(&c) = x.dims.last() else { return fail("batch norm needs an input [..., C] with at least one axis") };
    for (i, what) in [(1, "the scale"), (2, "the shift"), (3, "the mean"), (4, "the variance")] {
        per_channel(v, i, what, c)?;
    }
    Ok(x.dims.clone())
}

fn verify_batchnorm(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    computed_format(v)?;
    reduction_arith(v)
}

fn layernorm_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = v.tensor(0, "the input")?;
    let Some(&last) = x.dims.last() else { return fail("layer norm needs an input with at least one axis") };
    per_channel(v, 1, "gamma", last)?;
    per_channel(v, 2, "beta", last)?;
    Ok(x.dims.clone())
}

fn verify_layernorm(v: &OpView<'_>) -> Result<(), Failure> {
    verify_batchnorm(v)
}

fn product(dims: &[Dim]) -> Dim {
    dims.iter()
        .try_fold(1u64, |n, d| match d {
            Dim::Fixed(k) => n.checked_mul(*k),
            Dim::Dynamic => None,
        })
        .map_or(Dim::Dynamic, Dim::Fixed)
}

fn flatten_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = v.tensor(0, "the input")?;
    let raw = v.int("axis").unwrap_or(1);
    if raw < 0 || raw as usize > x.rank() {
        return fail(format!("`axis` must be 0 to {}, not {raw}", x.rank()));
    }
    let a = raw as usize;
    Ok(vec![product(&x.dims[..a]), product(&x.dims[a..])])
}

fn verify_flatten(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    same_format(v.tensor(0, "the input")?, v.result_tensor(0)?)
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

fn transpose_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
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
    Ok(perm.iter().map(|&p| x.dims[p as usize]).collect())
}

fn verify_transpose(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    same_format(v.tensor(0, "the input")?, v.result_tensor(0)?)
}

fn concat_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let first = v.tensor(0, "the first input")?;
    let a = axis(v.int("axis").unwrap_or(0), first.rank())?;
    let mut total = Some(0u64);
    for i in 0..v.operand_count() {
        let t = v.tensor(i, "an input")?;
        if t.rank() != first.rank() || t.dims.iter().zip(&first.dims).enumerate().any(|(j, (p, q))| j != a && !dims_agree(*p, *q)) {
            return fail(format!("input #{i} has shape {} which does not match {} outside axis {a}", show_dims(&t.dims), show_dims(&first.dims)));
        }
        total = match (total, t.dims[a]) {
            (Some(n), Dim::Fixed(k)) => n.checked_add(k),
            _ => None,
        };
    }
    let mut dims = first.dims.clone();
    dims[a] = total.map_or(Dim::Dynamic, Dim::Fixed);
    Ok(dims)
}

fn verify_concat(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    let y = v.result_tensor(0)?;
    for i in 0..v.operand_count() {
        same_format(v.tensor(i, "an input")?, y)?;
    }
    Ok(())
}

// Gradient ops (spec/ir.md, "Gradients").

fn dense_grad_weight_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dy = v.tensor(0, "the output gradient")?;
    let x = v.tensor(1, "the input")?;
    let (Some((&n, dy_rows)), Some((&k, x_rows))) = (dy.dims.split_last(), x.dims.split_last()) else {
        return fail("the output gradient and the input need at least one axis");
    };
    if dy_rows.len() != x_rows.len() || dy_rows.iter().zip(x_rows).any(|(a, b)| !dims_agree(*a, *b)) {
        return fail(format!("the rows of the output gradient {} and of the input {} differ", show_dims(&dy.dims), show_dims(&x.dims)));
    }
    Ok(vec![n, k])
}

/// The last `keep` axes of the first operand (`keep` defaults to 1).
fn bias_grad_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dy = v.tensor(0, "the output gradient")?;
    let keep = v.attr("keep").and_then(|a| a.as_int()).unwrap_or(1);
    if keep < 1 || keep as usize > dy.rank() {
        return fail(format!("`keep` must be between 1 and the rank of the output gradient ({}), not {keep}", dy.rank()));
    }
    Ok(dy.dims[dy.rank() - keep as usize..].to_vec())
}

/// Operands `0..count` have equal shapes; the result has that shape.
fn same_dims(v: &OpView<'_>, count: usize) -> Result<Vec<Dim>, Failure> {
    let first = v.tensor(0, "the output gradient")?;
    for i in 1..count {
        let t = v.tensor(i, "an operand")?;
        if t.rank() != first.rank() || t.dims.iter().zip(&first.dims).any(|(a, b)| !dims_agree(*a, *b)) {
            return fail(format!("operand #{i} has shape {}, not {}", show_dims(&t.dims), show_dims(&first.dims)));
        }
    }
    Ok(first.dims.clone())
}

/// A loss gradient: prediction and target of equal shape (`[B, C]` for cross-entropy) and a
/// loss scale of one element.
fn loss_grad_dims(v: &OpView<'_>, classes: bool) -> Result<Vec<Dim>, Failure> {
    let dims = same_dims(v, 2)?;
    if classes && dims.len() != 2 {
        return fail_hint(format!("the logits must be [B, C], not {}", show_dims(&dims)), "flatten the logits to two axes");
    }
    let scale = v.tensor(2, "the loss scale")?;
    if scale.static_len() != Some(1) {
        return fail(format!("the loss scale must hold one element, not shape {}", show_dims(&scale.dims)));
    }
    Ok(dims)
}

fn verify_reduction_grad(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    computed_format(v)?;
    reduction_arith(v)
}

/// The `[a, b]` attribute `name` (each ≥ 1).
fn size_pair(v: &OpView<'_>, name: &str) -> Result<[u64; 2], Failure> {
    match v.attr(name).and_then(|a| a.as_int_array()).as_deref() {
        Some(&[a, b]) if a >= 1 && b >= 1 => Ok([a as u64, b as u64]),
        _ => fail(format!("`{name}` must be two sizes ≥ 1")),
    }
}

/// The output gradient's shape must be what the forward op makes from an input of `[H, W]`.
fn check_forward_out(v: &OpView<'_>, dy: &TensorType, hw: [u64; 2], size: [u64; 2], pooling: bool) -> Result<(), Failure> {
    let win = window(v, size, pooling)?;
    for axis in 0..2 {
        let expected = window_out(Dim::Fixed(hw[axis]), size[axis], win.stride[axis], win.padding[axis], win.dilation[axis])?;
        if !dims_agree(dy.dims[1 + axis], expected) {
            return fail(format!("the output gradient {} does not come from an input of {}x{}", show_dims(&dy.dims), hw[0], hw[1]));
        }
    }
    Ok(())
}

fn conv_grad_input_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dy = rank4(v, 0, "the output gradient")?;
    let w = rank4(v, 1, "the weight")?;
    let groups = v.int("groups").unwrap_or(1).max(1) as u64;
    let hw = size_pair(v, "input_size")?;
    let (Dim::Fixed(kh), Dim::Fixed(kw), Dim::Fixed(cg)) = (w.dims[1], w.dims[2], w.dims[3]) else {
        return fail("the weight's kernel and channels must be static");
    };
    if !dims_agree(dy.dims[3], w.dims[0]) {
        return fail(format!("the output gradient has {} channels but the weight {}", dy.dims[3], w.dims[0]));
    }
    check_forward_out(v, dy, hw, [kh, kw], false)?;
    Ok(vec![dy.dims[0], Dim::Fixed(hw[0]), Dim::Fixed(hw[1]), Dim::Fixed(cg * groups)])
}

fn conv_grad_weight_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dy = rank4(v, 0, "the output gradient")?;
    let x = rank4(v, 1, "the input")?;
    let groups = v.int("groups").unwrap_or(1).max(1) as u64;
    let size = size_pair(v, "kernel_size")?;
    let (Dim::Fixed(h), Dim::Fixed(w), Dim::Fixed(c)) = (x.dims[1], x.dims[2], x.dims[3]) else {
        return fail("the input's height, width and channels must be static");
    };
    if c % groups != 0 {
        return fail(format!("{c} input channels do not divide into {groups} groups"));
    }
    check_forward_out(v, dy, [h, w], size, false)?;
    Ok(vec![dy.dims[3], Dim::Fixed(size[0]), Dim::Fixed(size[1]), Dim::Fixed(c / groups)])
}

fn maxpool_grad_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dy = rank4(v, 0, "the output gradient")?;
    let x = rank4(v, 1, "the input")?;
    let (Dim::Fixed(h), Dim::Fixed(w)) = (x.dims[1], x.dims[2]) else { return fail("the input's height and width must be static") };
    let size = positive_pair(v, "window", [1, 1], 1)?;
    check_forward_out(v, dy, [h, w], size, true)?;
    Ok(x.dims.clone())
}

fn avgpool_grad_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dy = rank4(v, 0, "the output gradient")?;
    let hw = size_pair(v, "input_size")?;
    let size = positive_pair(v, "window", [1, 1], 1)?;
    check_forward_out(v, dy, hw, size, true)?;
    Ok(vec![dy.dims[0], Dim::Fixed(hw[0]), Dim::Fixed(hw[1]), dy.dims[3]])
}

fn batch_var_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dims = bias_grad_dims(v)?;
    per_channel(v, 1, "the mean", dims[0])?;
    Ok(dims)
}

fn batchnorm_grad_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dims = same_dims(v, 2)?;
    let Some(&c) = dims.last() else { return fail("batch norm needs an input [..., C] with at least one axis") };
    for (i, what) in [(2, "the scale"), (3, "the mean"), (4, "the variance"), (5, "the sum of dy"), (6, "the sum of dy·n")] {
        per_channel(v, i, what, c)?;
    }
    Ok(dims)
}

fn slice_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let x = v.tensor(0, "the input")?;
    let a = axis(v.int("axis").unwrap_or(0), x.rank())?;
    let (start, size) = (v.int("start").unwrap_or(-1), v.int("size").unwrap_or(-1));
    if start < 0 || size < 1 {
        return fail(format!("`start` must be ≥ 0 and `size` ≥ 1, not {start} and {size}"));
    }
    if let Dim::Fixed(n) = x.dims[a] {
        if (start + size) as u64 > n {
            return fail(format!("positions {start} .. {} are outside axis {a} of size {n}", start + size));
        }
    }
    let mut dims = x.dims.clone();
    dims[a] = Dim::Fixed(size as u64);
    Ok(dims)
}

fn verify_slice(v: &OpView<'_>) -> Result<(), Failure> {
    shaped(v)?;
    same_format(v.tensor(0, "the input")?, v.result_tensor(0)?)
}

fn softmax_grad_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dims = same_dims(v, 2)?;
    axis(v.int("axis").unwrap_or(0), dims.len())?;
    Ok(dims)
}

fn layernorm_grad_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    let dims = same_dims(v, 2)?;
    let Some(&last) = dims.last() else { return fail("layer norm needs an input with at least one axis") };
    per_channel(v, 2, "gamma", last)?;
    Ok(dims)
}

fn pact_grad_alpha_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    same_dims(v, 2)?;
    let alpha = v.tensor(2, "alpha")?;
    if alpha.static_len() != Some(1) {
        return fail(format!("alpha must hold one element, not shape {}", show_dims(&alpha.dims)));
    }
    Ok(alpha.dims.clone())
}

fn clip_grad_dims(v: &OpView<'_>) -> Result<Vec<Dim>, Failure> {
    if v.operand_count() == 3 && v.tensor(2, "the upper bound")?.static_len() != Some(1) {
        return fail("the upper bound operand must hold one element");
    }
    same_dims(v, 2)
}
