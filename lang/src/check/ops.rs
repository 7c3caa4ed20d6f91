//! Operations: the table of ops (tensor arity, keyword arguments, which arithmetic attributes
//! apply), their shape rules, and parameter initialisers.

use super::arith::AttrScope;
use super::checked::*;
use super::{Checker, Val};
use crate::ast::{self, Arg, Attr, AttrBlock, Expr, Span, Value, ValueKind};
use crate::diagnostic::{Code, Diagnostic};
use qc_runtime::numerics::suggest;
use std::collections::HashMap;

struct OpSpec {
    name: &'static str,
    min_tensors: usize,
    max_tensors: usize,
    keywords: &'static [&'static str],
    scope: AttrScope,
}

const fn op(name: &'static str, min: usize, max: usize, keywords: &'static [&'static str], scope: AttrScope) -> OpSpec {
    OpSpec { name, min_tensors: min, max_tensors: max, keywords, scope }
}

const POOL: &[&str] = &["size", "stride", "padding"];

/// Every operation of the language (see `spec/lang.md`, "Operations").
const OPS: &[OpSpec] = &[
    op("dense", 2, 3, &[], AttrScope::Dot),
    op("matmul", 2, 2, &[], AttrScope::Dot),
    op("conv2d", 2, 3, &["stride", "padding", "dilation", "groups"], AttrScope::Dot),
    op("max_pool", 1, 1, POOL, AttrScope::Plain),
    op("avg_pool", 1, 1, POOL, AttrScope::Reduce),
    op("global_avg_pool", 1, 1, &[], AttrScope::Reduce),
    op("relu", 1, 1, &[], AttrScope::Plain),
    op("relu6", 1, 1, &[], AttrScope::Plain),
    op("leaky_relu", 1, 1, &["alpha"], AttrScope::Plain),
    op("clip", 1, 1, &["min", "max"], AttrScope::Plain),
    op("pact", 2, 2, &[], AttrScope::Plain),
    op("sigmoid", 1, 1, &[], AttrScope::Plain),
    op("tanh", 1, 1, &[], AttrScope::Plain),
    op("gelu", 1, 1, &[], AttrScope::Plain),
    op("softmax", 1, 1, &["axis"], AttrScope::Reduce),
    op("batchnorm", 3, 3, &["eps", "momentum"], AttrScope::Reduce),
    op("layernorm", 3, 3, &["eps"], AttrScope::Reduce),
    op("add", 2, 2, &[], AttrScope::Plain),
    op("mul", 2, 2, &[], AttrScope::Plain),
    op("flatten", 1, 1, &[], AttrScope::Plain),
    op("reshape", 1, 1, &["shape"], AttrScope::Plain),
    op("transpose", 1, 1, &["perm"], AttrScope::Plain),
    op("concat", 2, usize::MAX, &["axis"], AttrScope::Plain),
    op("quantize", 1, 1, &["to"], AttrScope::Plain),
    op("dequantize", 1, 1, &["to"], AttrScope::Plain),
];

/// The names of all operations, for listings and suggestions.
pub fn op_names() -> Vec<&'static str> {
    OPS.iter().map(|o| o.name).collect()
}

/// The keyword arguments of one call, by name.
type Keywords<'a> = HashMap<&'a str, &'a Attr>;

/// Operand shapes with the spans of the operands, for messages.
struct Operands<'a> {
    vals: &'a [Val],
    call: Span,
}

impl Operands<'_> {
    fn shape(&self, i: usize) -> &Shape {
        &self.vals[i].shape
    }
    fn span(&self, i: usize) -> Span {
        self.vals[i].span
    }
}

fn mismatch(at: Span, message: String, label: String) -> Diagnostic {
    Diagnostic::new(Code::ShapeMismatch, at, message, label)
}

fn known(d: &Dim) -> Option<usize> {
    match d {
        Dim::Known(n) => Some(*n),
        Dim::Symbol(_) => None,
    }
}

/// Numpy broadcasting of two shapes (aligned at the last axis; size 1 stretches).
fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
    let rank = a.rank().max(b.rank());
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = (i + a.rank()).checked_sub(rank).map(|j| &a.0[j]);
        let db = (i + b.rank()).checked_sub(rank).map(|j| &b.0[j]);
        dims.push(match (da, db) {
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (Some(x), Some(y)) if x == y => x.clone(),
            (Some(Dim::Known(1)), Some(y)) => y.clone(),
            (Some(x), Some(Dim::Known(1))) => x.clone(),
            _ => return None,
        });
    }
    Some(Shape(dims))
}

/// Output length of a window sliding over `n` (conv and pooling).
fn window_out(n: usize, kernel: usize, stride: usize, pad: usize, dilation: usize) -> Option<usize> {
    let span = dilation.saturating_mul(kernel.saturating_sub(1)).saturating_add(1);
    let padded = n.saturating_add(pad.saturating_mul(2));
    (padded >= span).then(|| (padded - span) / stride + 1)
}

impl Checker {
    /// Checks a call and adds its node. `attrs` and `cast` are a `with { }` block and a `: FORMAT`
    /// written directly on the call.
    pub(super) fn call(
        &mut self,
        e: &Expr,
        name: &ast::Ident,
        args: &[Arg],
        attrs: Option<&AttrBlock>,
        cast: Option<&Value>,
        binding: Option<&str>,
    ) -> Option<Val> {
        let Some(spec) = OPS.iter().find(|o| o.name == name.name) else {
            self.error(
                Diagnostic::new(Code::UnknownOp, name.span, format!("unknown operation `{}`", name.name), "not an operation")
                    .with_suggestion(suggest::closest(&name.name, op_names())),
            );
            for a in args {
                if let Arg::Positional(x) = a {
                    self.expr(x, None);
                }
            }
            return None;
        };
        // Operands and keywords.
        let mut vals = Vec::new();
        let mut ok = true;
        let mut keywords: Keywords<'_> = HashMap::new();
        for a in args {
            match a {
                Arg::Positional(x) => {
                    if let Some(first) = keywords.values().next() {
                        let first = first.span;
                        self.error(
                            Diagnostic::new(Code::PositionalAfterKeyword, x.span, "tensor argument after a keyword argument", "move it before the keywords")
                                .with_secondary(first, "keyword argument"),
                        );
                        ok = false;
                    }
                    match self.expr(x, None) {
                        Some(v) => vals.push(v),
                        None => ok = false,
                    }
                }
                Arg::Keyword(attr) => {
                    let key = attr.key.name.as_str();
                    if let Some(first) = keywords.get(key) {
                        let first = first.key.span;
                        self.duplicate(key, attr.key.span, first);
                        ok = false;
                    } else if !spec.keywords.contains(&key) {
                        let d = if super::arith::ARITH_ATTRS.contains(&key) {
                            Diagnostic::new(
                                Code::UnknownAttribute,
                                attr.key.span,
                                format!("`{key}` is an arithmetic attribute, not an argument of `{}`", spec.name),
                                "not an argument",
                            )
                            .with_hint(format!("write it after the call: `{}(...) with {{ {key} = ... }}`", spec.name))
                        } else if spec.keywords.is_empty() {
                            Diagnostic::new(
                                Code::UnknownAttribute,
                                attr.key.span,
                                format!("`{}` takes no keyword arguments", spec.name),
                                "unknown argument",
                            )
                        } else {
                            Diagnostic::new(
                                Code::UnknownAttribute,
                                attr.key.span,
                                format!("`{}` has no argument `{key}`", spec.name),
                                format!("arguments: {}", spec.keywords.join(", ")),
                            )
                            .with_suggestion(suggest::closest(key, spec.keywords.iter().copied()))
                        };
                        self.error(d);
                        ok = false;
                    } else {
                        keywords.insert(key, attr);
                    }
                }
            }
        }
        let given = args.iter().filter(|a| matches!(a, Arg::Positional(_))).count();
        if given < spec.min_tensors || given > spec.max_tensors {
            let expected = match (spec.min_tensors, spec.max_tensors) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} or {b}"),
            };
            self.error(Diagnostic::new(
                Code::ArgumentCount,
                name.span,
                format!("`{}` takes {expected} tensor argument{}, found {given}", spec.name, if expected == "1" { "" } else { "s" }),
                "wrong number of tensors",
            ));
            return None;
        }
        let op_attrs = attrs.map(|b| self.arith_attrs(b, spec.scope)).unwrap_or_default();
        if attrs.is_some() {
            let defaults = self.defaults.clone();
            self.validate_arith(&defaults, Some(&op_attrs));
        }
        if let (Some((_, span)), None) = (op_attrs.bwd_chunk_acc, op_attrs.bwd_chunk) {
            self.bwd_chunk_acc_unchunked.push(span);
        }
        let cast_spec = self.output_spec(cast);
        if !ok {
            return None;
        }
        let operands = Operands { vals: &vals, call: e.span };
        let (op, shape, reduction) = self.shape_rule(spec.name, &operands, &keywords)?;
        let cast_spec = cast_spec?;

        // The result's format: a cast, else `to =` of quantize/dequantize, else the accumulator of
        // a dot product or reduction, else the first operand's.
        let to = match keywords.get("to") {
            Some(attr) => Some((self.format_spec(&attr.value)?, attr.value.span)),
            None if spec.name == "quantize" => {
                self.error(
                    Diagnostic::new(Code::MissingAttribute, e.span, "`quantize` needs the format to quantize to", "`to` is missing")
                        .with_hint("write `quantize(x, to = int<8>)`"),
                );
                return None;
            }
            None => None,
        };
        if spec.name == "dequantize" {
            if let Some((f, span)) = &to {
                if f.format.as_float().is_none() {
                    self.error(Diagnostic::new(
                        Code::FormatNotAllowed,
                        *span,
                        format!("`dequantize` returns a float format, not `{}`", f.format),
                        "not a float format",
                    ));
                    return None;
                }
            }
        }
        let arith = match spec.scope {
            AttrScope::Dot | AttrScope::Reduce => {
                let mut arith = self.resolve_arith(&op_attrs);
                if spec.scope == AttrScope::Reduce {
                    arith = Arith { mul: None, chunk: None, chunk_acc: None, fma: false, ..arith };
                }
                if let (Some((chunk, span)), Some(k)) = (op_attrs.chunk, reduction) {
                    if chunk >= k {
                        self.error(
                            Diagnostic::new(
                                Code::IneffectiveChunk,
                                span,
                                format!("chunk size {chunk} is not shorter than the accumulation ({k} terms)"),
                                "chunking has no effect here",
                            )
                            .with_hint(format!("use a chunk size below {k}, or remove `chunk`")),
                        );
                    }
                }
                Some(arith)
            }
            _ => None,
        };
        let op_rounding = op_attrs.rounding.or(self.defaults.rounding).map(|(r, _)| r);
        let fallback = op_rounding.unwrap_or(qc_runtime::numerics::Rounding::Nearest);
        let (format, rounding, fits) = match (cast_spec, to) {
            (Some(c), _) => {
                let fits = self.check_fits(&c.format, &shape, cast.map_or(e.span, |v| v.span), None);
                (c.format, c.rounding.unwrap_or(fallback), fits)
            }
            (None, Some((t, span))) => (t.format, t.rounding.unwrap_or(fallback), self.check_fits(&t.format, &shape, span, None)),
            (None, None) if spec.name == "dequantize" => (super::fp32(), fallback, true),
            (None, None) if arith.is_some() => {
                // Dot products and reductions yield the accumulator's value.
                let sum = arith.and_then(|a| a.chunk.and(a.chunk_acc)).or(arith.map(|a| a.acc));
                let sum = sum.unwrap_or(Rounded { format: super::fp32(), rounding: fallback });
                (sum.format, sum.rounding, self.check_fits(&sum.format, &shape, e.span, None))
            }
            (None, None) => {
                let first = &vals[0];
                let fits = self.check_fits(&first.format, &shape, e.span, Some(first.span));
                (first.format, fallback, fits)
            }
        };
        if !fits {
            return None;
        }

        let grads = self.grad_formats(&op_attrs);
        let inputs = vals.iter().map(|v| v.r).collect();
        Some(self.push_node(Node {
            op,
            inputs,
            shape,
            format,
            rounding,
            arith,
            grads,
            binding: binding.map(str::to_string),
            span: e.span,
        }))
    }

    /// A `padding` value: `N`, `[h, w]`, `valid` (0) or `same` (half the dilated kernel, odd kernels).
    fn padding(&mut self, kw: &Keywords<'_>, kernel: [usize; 2], dilation: [usize; 2]) -> Option<[usize; 2]> {
        let Some(attr) = kw.get("padding") else { return Some([0, 0]) };
        match Self::plain_word(&attr.value) {
            Some("valid") => Some([0, 0]),
            Some("same") => {
                let mut pad = [0; 2];
                for i in 0..2 {
                    let extent = dilation[i].saturating_mul(kernel[i].saturating_sub(1));
                    if !extent.is_multiple_of(2) {
                        self.error(
                            Diagnostic::new(
                                Code::InvalidAttributeValue,
                                attr.value.span,
                                format!("`same` padding needs an odd kernel, found size {}", kernel[i]),
                                "cannot pad evenly",
                            )
                            .with_hint("give the padding as numbers: `padding = [top/bottom, left/right]`"),
                        );
                        return None;
                    }
                    pad[i] = extent / 2;
                }
                Some(pad)
            }
            _ => self.pair(&attr.value, 0),
        }
    }

    fn pair_kw(&mut self, kw: &Keywords<'_>, key: &str, default: [usize; 2]) -> Option<[usize; 2]> {
        match kw.get(key) {
            Some(attr) => self.pair(&attr.value, 1),
            None => Some(default),
        }
    }

    fn axis_kw(&mut self, kw: &Keywords<'_>, rank: usize, default: i64) -> Option<usize> {
        let (n, span) = match kw.get("axis") {
            Some(attr) => match attr.value.kind {
                ValueKind::Int(n) => (n, attr.value.span),
                _ => {
                    self.error(Diagnostic::new(
                        Code::InvalidAttributeValue,
                        attr.value.span,
                        format!("expected an axis, found {}", attr.value.describe()),
                        "expected an integer",
                    ));
                    return None;
                }
            },
            None => (default, Span::default()),
        };
        let r = rank as i64;
        if n < -r || n >= r {
            self.error(Diagnostic::new(
                Code::InvalidShape,
                span,
                format!("axis {n} is out of range for rank {rank}"),
                format!("axes are -{rank} to {}", r - 1),
            ));
            return None;
        }
        Some(if n < 0 { (n + r) as usize } else { n as usize })
    }

    fn need_known(&mut self, d: &Dim, at: Span, what: &str, shape: &Shape) -> Option<usize> {
        let n = known(d);
        if n.is_none() {
            self.error(Diagnostic::new(
                Code::InvalidShape,
                at,
                format!("{what} must have a known size, found `{d}` in {shape}"),
                "unknown size",
            ));
        }
        n
    }

    fn rank_at_least(&mut self, ops: &Operands<'_>, i: usize, rank: usize, op: &str, layout: &str) -> Option<()> {
        let s = ops.shape(i);
        if s.rank() < rank {
            self.error(mismatch(
                ops.span(i),
                format!("`{op}` expects {layout}, found {s}"),
                format!("rank {} (needs {rank})", s.rank()),
            ));
            return None;
        }
        Some(())
    }

    fn rank_exactly(&mut self, ops: &Operands<'_>, i: usize, rank: usize, op: &str, layout: &str) -> Option<()> {
        let s = ops.shape(i);
        if s.rank() != rank {
            self.error(mismatch(ops.span(i), format!("`{op}` expects {layout}, found {s}"), format!("rank {} (needs {rank})", s.rank())));
            return None;
        }
        Some(())
    }

    /// A per-channel vector `[C]` (bias, scale, shift) matching the channel dimension `c`.
    fn channel_vector(&mut self, ops: &Operands<'_>, i: usize, c: &Dim, op: &str, what: &str, against: Span) -> Option<()> {
        let s = ops.shape(i);
        if s.0.as_slice() != [c.clone()] {
            self.error(
                mismatch(ops.span(i), format!("`{op}` needs {what} of shape [{c}], found {s}"), format!("shape {s}"))
                    .with_secondary(against, format!("{c} channels here")),
            );
            return None;
        }
        Some(())
    }

    /// The op's structural attributes, result shape and reduction length (for chunk warnings).
    fn shape_rule(&mut self, name: &str, ops: &Operands<'_>, kw: &Keywords<'_>) -> Option<(Op, Shape, Option<usize>)> {
        let x = ops.shape(0).clone();
        Some(match name {
            "dense" => {
                self.rank_at_least(ops, 0, 1, "dense", "an input [..., K]")?;
                self.rank_exactly(ops, 1, 2, "dense", "a weight [N, K]")?;
                let w = ops.shape(1);
                let (k_x, n, k_w) = (&x.0[x.rank() - 1], w.0[0].clone(), &w.0[1]);
                if k_x != k_w {
                    self.error(
                        mismatch(
                            ops.span(1),
                            format!("`dense` of {x} with a weight {w}: the weight must be [N, {k_x}]"),
                            format!("weight {w} (K = {k_w})"),
                        )
                        .with_secondary(ops.span(0), format!("input {x} (K = {k_x})"))
                        .with_hint("weights are [out, in] (per output channel along axis 0)"),
                    );
                    return None;
                }
                if ops.vals.len() == 3 {
                    self.channel_vector(ops, 2, &n, "dense", "a bias", ops.span(1))?;
                }
                let mut dims = x.0.clone();
                *dims.last_mut()? = n;
                (Op::Dense, Shape(dims), known(k_x))
            }
            "matmul" => {
                self.rank_at_least(ops, 0, 2, "matmul", "[..., M, K]")?;
                self.rank_at_least(ops, 1, 2, "matmul", "[..., K, N]")?;
                let b = ops.shape(1).clone();
                let (ra, rb) = (x.rank(), b.rank());
                if x.0[ra - 1] != b.0[rb - 2] {
                    self.error(
                        mismatch(
                            ops.span(1),
                            format!("`matmul` of {x} and {b}: inner dimensions {} and {} differ", x.0[ra - 1], b.0[rb - 2]),
                            format!("{b}"),
                        )
                        .with_secondary(ops.span(0), format!("{x}")),
                    );
                    return None;
                }
                let Some(batch) = broadcast(&Shape(x.0[..ra - 2].to_vec()), &Shape(b.0[..rb - 2].to_vec())) else {
                    self.error(
                        mismatch(ops.call, format!("`matmul` of {x} and {b}: batch dimensions do not broadcast"), "here".into())
                            .with_secondary(ops.span(0), format!("{x}"))
                            .with_secondary(ops.span(1), format!("{b}")),
                    );
                    return None;
                };
                let mut dims = batch.0;
                dims.push(x.0[ra - 2].clone());
                dims.push(b.0[rb - 1].clone());
                (Op::Matmul, Shape(dims), known(&x.0[ra - 1]))
            }
            "conv2d" => {
                self.rank_exactly(ops, 0, 4, "conv2d", "an input [N, H, W, C] (NHWC)")?;
                self.rank_exactly(ops, 1, 4, "conv2d", "a weight [O, KH, KW, C/groups]")?;
                let w = ops.shape(1).clone();
                let h = self.need_known(&x.0[1], ops.span(0), "the height", &x)?;
                let wd = self.need_known(&x.0[2], ops.span(0), "the width", &x)?;
                let c = self.need_known(&x.0[3], ops.span(0), "the channel axis", &x)?;
                let (o, kh, kw_, ci) = (known(&w.0[0])?, known(&w.0[1])?, known(&w.0[2])?, known(&w.0[3])?);
                let groups = match kw.get("groups") {
                    Some(a) => self.int_at_least(&a.value, 1)? as usize,
                    None => 1,
                };
                if c % groups != 0 || o % groups != 0 {
                    let at = kw.get("groups").map_or(ops.call, |a| a.value.span);
                    self.error(mismatch(
                        at,
                        format!("{groups} groups must divide both the input channels ({c}) and the output channels ({o})"),
                        "groups do not divide the channels".into(),
                    ));
                    return None;
                }
                if ci != c / groups {
                    self.error(
                        mismatch(
                            ops.span(1),
                            format!("`conv2d` of {x} with a weight {w}: the weight's last axis must be C/groups = {}", c / groups),
                            format!("weight {w}"),
                        )
                        .with_secondary(ops.span(0), format!("input {x} with {c} channels"))
                        .with_hint("weights are [out channels, kernel height, kernel width, in channels / groups]"),
                    );
                    return None;
                }
                if ops.vals.len() == 3 {
                    self.channel_vector(ops, 2, &Dim::Known(o), "conv2d", "a bias", ops.span(1))?;
                }
                let stride = self.pair_kw(kw, "stride", [1, 1])?;
                let dilation = self.pair_kw(kw, "dilation", [1, 1])?;
                let padding = self.padding(kw, [kh, kw_], dilation)?;
                let (Some(oh), Some(ow)) =
                    (window_out(h, kh, stride[0], padding[0], dilation[0]), window_out(wd, kw_, stride[1], padding[1], dilation[1]))
                else {
                    self.error(
                        mismatch(ops.span(1), format!("the {kh}x{kw_} kernel is larger than the padded {h}x{wd} input"), format!("weight {w}"))
                            .with_secondary(ops.span(0), format!("input {x}")),
                    );
                    return None;
                };
                let shape = Shape(vec![x.0[0].clone(), Dim::Known(oh), Dim::Known(ow), Dim::Known(o)]);
                (Op::Conv2d { stride, padding, dilation, groups }, shape, Some(kh.saturating_mul(kw_).saturating_mul(ci)))
            }
            "max_pool" | "avg_pool" => {
                self.rank_exactly(ops, 0, 4, name, "an input [N, H, W, C] (NHWC)")?;
                let Some(size_attr) = kw.get("size") else {
                    self.error(
                        Diagnostic::new(Code::MissingAttribute, ops.call, format!("`{name}` needs a window size"), "`size` is missing")
                            .with_hint(format!("write `{name}(x, size = 2)`")),
                    );
                    return None;
                };
                let size = self.pair(&size_attr.value, 1)?;
                let stride = self.pair_kw(kw, "stride", size)?;
                let padding = self.padding(kw, size, [1, 1])?;
                let h = self.need_known(&x.0[1], ops.span(0), "the height", &x)?;
                let w = self.need_known(&x.0[2], ops.span(0), "the width", &x)?;
                let (Some(oh), Some(ow)) = (window_out(h, size[0], stride[0], padding[0], 1), window_out(w, size[1], stride[1], padding[1], 1))
                else {
                    self.error(mismatch(size_attr.value.span, format!("a {}x{} window is larger than the {h}x{w} input", size[0], size[1]), "window too large".into()));
                    return None;
                };
                let shape = Shape(vec![x.0[0].clone(), Dim::Known(oh), Dim::Known(ow), x.0[3].clone()]);
                let op = if name == "max_pool" { Op::MaxPool { size, stride, padding } } else { Op::AvgPool { size, stride, padding } };
                (op, shape, Some(size[0].saturating_mul(size[1])))
            }
            "global_avg_pool" => {
                self.rank_exactly(ops, 0, 4, name, "an input [N, H, W, C] (NHWC)")?;
                let hw = known(&x.0[1]).zip(known(&x.0[2])).map(|(a, b)| a.saturating_mul(b));
                (Op::GlobalAvgPool, Shape(vec![x.0[0].clone(), x.0[3].clone()]), hw)
            }
            "relu" | "relu6" | "sigmoid" | "tanh" | "gelu" => {
                let op = match name {
                    "relu" => Op::Relu,
                    "relu6" => Op::Relu6,
                    "sigmoid" => Op::Sigmoid,
                    "tanh" => Op::Tanh,
                    _ => Op::Gelu,
                };
                (op, x, None)
            }
            "leaky_relu" => {
                let alpha = match kw.get("alpha") {
                    Some(a) => self.number_in(&a.value, -(f32::MAX as f64), f32::MAX as f64, false, "a number within binary32's range (|alpha| ≤ 3.4e38)")?,
                    None => 0.01,
                };
                (Op::LeakyRelu { alpha }, x, None)
            }
            "clip" => {
                let bound = |c: &mut Self, key: &str| -> Option<(f64, Span)> {
                    match kw.get(key) {
                        Some(a) => c.number(&a.value).map(|v| (v, a.value.span)),
                        None => {
                            c.error(Diagnostic::new(Code::MissingAttribute, ops.call, format!("`clip` needs `{key}`"), format!("`{key}` is missing")));
                            None
                        }
                    }
                };
                let lo = bound(self, "min");
                let hi = bound(self, "max");
                let ((min, min_span), (max, max_span)) = (lo?, hi?);
                if min >= max {
                    self.error(
                        Diagnostic::new(Code::InvalidAttributeValue, max_span, format!("`max` ({max}) must exceed `min` ({min})"), "not above min")
                            .with_secondary(min_span, "min"),
                    );
                    return None;
                }
                (Op::Clip { min, max }, x, None)
            }
            "pact" => {
                let a = ops.shape(1);
                if !(a.rank() == 0 || a.0.as_slice() == [Dim::Known(1)]) {
                    self.error(mismatch(ops.span(1), format!("PACT's clipping bound must be a scalar [] or [1], found {a}"), "not a scalar".into()));
                    return None;
                }
                (Op::Pact, x, None)
            }
            "softmax" => {
                if x.rank() == 0 {
                    self.rank_at_least(ops, 0, 1, name, "a tensor with at least one axis")?;
                }
                let axis = self.axis_kw(kw, x.rank(), -1)?;
                let n = known(&x.0[axis]);
                (Op::Softmax { axis }, x, n)
            }
            "batchnorm" | "layernorm" => {
                self.rank_at_least(ops, 0, if name == "batchnorm" { 2 } else { 1 }, name, "an input [..., C]")?;
                let c = x.0[x.rank() - 1].clone();
                self.channel_vector(ops, 1, &c, name, "a scale (gamma)", ops.span(0))?;
                self.channel_vector(ops, 2, &c, name, "a shift (beta)", ops.span(0))?;
                let eps = match kw.get("eps") {
                    Some(a) => self.number_in(&a.value, 0.0, f64::INFINITY, true, "a positive number")?,
                    None => 1e-5,
                };
                if name == "layernorm" {
                    let n = known(&c);
                    (Op::LayerNorm { eps }, x, n)
                } else {
                    let momentum = match kw.get("momentum") {
                        Some(a) => self.number_in(&a.value, 0.0, 1.0, false, "a number from 0 to 1")?,
                        None => 0.1,
                    };
                    let per_channel = x.0[..x.rank() - 1].iter().map(known).try_fold(1usize, |acc, d| d.map(|d| acc.saturating_mul(d)));
                    (Op::BatchNorm { eps, momentum }, x, per_channel)
                }
            }
            "add" | "mul" => {
                let b = ops.shape(1).clone();
                let Some(shape) = broadcast(&x, &b) else {
                    self.error(
                        mismatch(ops.span(1), format!("`{name}` of {x} and {b}: the shapes do not broadcast"), format!("{b}"))
                            .with_secondary(ops.span(0), format!("{x}"))
                            .with_hint("shapes broadcast when, aligned at the last axis, each pair of sizes is equal or one is 1"),
                    );
                    return None;
                };
                (if name == "add" { Op::Add } else { Op::Mul }, shape, None)
            }
            "flatten" => {
                self.rank_at_least(ops, 0, 2, name, "an input [N, ...]")?;
                let mut n = 1usize;
                for d in &x.0[1..] {
                    n = n.saturating_mul(self.need_known(d, ops.span(0), "every axis after the first", &x)?);
                }
                (Op::Flatten, Shape(vec![x.0[0].clone(), Dim::Known(n)]), None)
            }
            "reshape" => (Op::Reshape, self.reshape(ops, kw)?, None),
            "transpose" => {
                let perm: Vec<usize> = match kw.get("perm") {
                    None => {
                        self.rank_at_least(ops, 0, 2, name, "a tensor of rank 2 or more (without `perm` it swaps the last two axes)")?;
                        let mut p: Vec<usize> = (0..x.rank()).collect();
                        p.swap(x.rank() - 2, x.rank() - 1);
                        p
                    }
                    Some(attr) => {
                        let items: Option<Vec<i64>> = match &attr.value.kind {
                            ValueKind::List(items) => items.iter().map(|v| if let ValueKind::Int(n) = v.kind { Some(n) } else { None }).collect(),
                            _ => None,
                        };
                        let perm: Option<Vec<usize>> = items.filter(|p| p.len() == x.rank()).and_then(|p| {
                            let mut seen = vec![false; x.rank()];
                            p.iter()
                                .map(|&a| {
                                    let a = usize::try_from(a).ok().filter(|&a| a < x.rank() && !seen[a])?;
                                    seen[a] = true;
                                    Some(a)
                                })
                                .collect()
                        });
                        let Some(perm) = perm else {
                            self.error(Diagnostic::new(
                                Code::InvalidShape,
                                attr.value.span,
                                format!("`perm` must be a permutation of 0..{} for {x}", x.rank()),
                                "not a permutation of the axes",
                            ));
                            return None;
                        };
                        perm
                    }
                };
                let shape = Shape(perm.iter().map(|&a| x.0[a].clone()).collect());
                (Op::Transpose { perm }, shape, None)
            }
            "concat" => {
                let axis = self.axis_kw(kw, x.rank(), -1)?;
                let mut total: Option<usize> = known(&x.0[axis]);
                for i in 1..ops.vals.len() {
                    let s = ops.shape(i);
                    let same = s.rank() == x.rank() && (0..x.rank()).all(|a| a == axis || s.0[a] == x.0[a]);
                    if !same {
                        self.error(
                            mismatch(ops.span(i), format!("`concat` along axis {axis}: {s} does not match {x} on the other axes"), format!("{s}"))
                                .with_secondary(ops.span(0), format!("{x}")),
                        );
                        return None;
                    }
                    total = total.zip(known(&s.0[axis])).map(|(a, b)| a.saturating_add(b));
                }
                let Some(total) = total else {
                    self.error(Diagnostic::new(Code::InvalidShape, ops.call, format!("`concat` along axis {axis} needs known sizes on that axis"), "unknown size"));
                    return None;
                };
                let mut dims = x.0.clone();
                dims[axis] = Dim::Known(total);
                (Op::Concat { axis }, Shape(dims), None)
            }
            "quantize" => (Op::Quantize, x, None),
            "dequantize" => (Op::Dequantize, x, None),
            _ => return None,
        })
    }

    /// `reshape(x, shape = [B, 4, -1])`: sizes, symbols and at most one `-1`; same element count.
    fn reshape(&mut self, ops: &Operands<'_>, kw: &Keywords<'_>) -> Option<Shape> {
        let x = ops.shape(0).clone();
        let Some(attr) = kw.get("shape") else {
            self.error(Diagnostic::new(Code::MissingAttribute, ops.call, "`reshape` needs the target shape", "`shape` is missing").with_hint("write `reshape(x, shape = [B, 16, 4])`"));
            return None;
        };
        let ValueKind::List(items) = &attr.value.kind else {
            self.error(Diagnostic::new(Code::InvalidAttributeValue, attr.value.span, "`shape` must be a list such as `[B, 16, 4]`", "not a list"));
            return None;
        };
        let mut dims: Vec<Option<Dim>> = Vec::new();
        for v in items {
            match &v.kind {
                ValueKind::Int(-1) if !dims.iter().any(Option::is_none) => dims.push(None),
                ValueKind::Int(n) if *n >= 1 => dims.push(Some(Dim::Known(*n as usize))),
                _ => match Self::plain_word(v) {
                    Some(s) => dims.push(Some(Dim::Symbol(s.to_string()))),
                    None => {
                        self.error(Diagnostic::new(
                            Code::InvalidShape,
                            v.span,
                            format!("a target size must be a positive integer, a symbol or one `-1`, not {}", v.describe()),
                            "invalid size",
                        ));
                        return None;
                    }
                },
            }
        }
        let split = |dims: &mut dyn Iterator<Item = &Dim>| {
            let mut symbols: Vec<String> = Vec::new();
            let mut product = 1usize;
            for d in dims {
                match d {
                    Dim::Known(n) => product = product.saturating_mul(*n),
                    Dim::Symbol(s) => symbols.push(s.clone()),
                }
            }
            symbols.sort();
            (symbols, product)
        };
        let (in_symbols, in_product) = split(&mut x.0.iter());
        let (out_symbols, out_product) = split(&mut dims.iter().flatten());
        let target = || {
            let shown: Vec<String> = dims.iter().map(|d| d.as_ref().map_or("-1".to_string(), |d| d.to_string())).collect();
            format!("[{}]", shown.join(", "))
        };
        let fits = in_symbols == out_symbols
            && match dims.iter().any(Option::is_none) {
                true => in_product % out_product == 0,
                false => in_product == out_product,
            };
        if !fits {
            self.error(
                mismatch(attr.value.span, format!("cannot reshape {x} into {}: the number of elements differs", target()), "target shape".into())
                    .with_secondary(ops.span(0), format!("{x}")),
            );
            return None;
        }
        let inferred = in_product / out_product;
        Some(Shape(dims.into_iter().map(|d| d.unwrap_or(Dim::Known(inferred))).collect()))
    }

    /// A parameter's initialiser.
    pub(super) fn init(&mut self, v: &Value) -> Option<Init> {
        const NAMES: [&str; 11] =
            ["zeros", "ones", "fill", "uniform", "normal", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "load", "xavier_uniform"];
        let (name, args) = match &v.kind {
            ValueKind::Word { name, args: None, bits: None } => (name, None),
            ValueKind::Call { name, args } => (name, Some(args.as_slice())),
            _ => {
                self.error(Diagnostic::new(
                    Code::UnknownInitializer,
                    v.span,
                    format!("expected an initialiser, found {}", v.describe()),
                    "not an initialiser",
                ).with_hint("initialisers: zeros, ones, fill(v), uniform(low, high), normal(mean, std), he_normal, he_uniform, glorot_normal, glorot_uniform, load(\"file\", \"tensor\")"));
                return None;
            }
        };
        let plain = |c: &mut Self, init: Init| -> Option<Init> {
            if args.is_some() {
                c.error(Diagnostic::new(Code::ArgumentCount, v.span, format!("`{}` takes no arguments", name.name), "remove the parentheses"));
                return None;
            }
            Some(init)
        };
        let call_args = args.unwrap_or(&[]);
        match name.name.as_str() {
            "zeros" => plain(self, Init::Zeros),
            "ones" => plain(self, Init::Ones),
            "he_normal" => plain(self, Init::HeNormal),
            "he_uniform" => plain(self, Init::HeUniform),
            "glorot_normal" => plain(self, Init::GlorotNormal),
            "glorot_uniform" | "xavier_uniform" => plain(self, Init::GlorotUniform),
            "fill" => {
                let a = self.bind_args("fill", v.span, call_args, &["value"], &["value"])?;
                Some(Init::Fill(self.number(a["value"])?))
            }
            "uniform" => {
                let a = self.bind_args("uniform", v.span, call_args, &["low", "high"], &["low", "high"])?;
                let low = self.number(a["low"]);
                let high = self.number(a["high"]);
                let (low, high) = (low?, high?);
                if low >= high {
                    self.error(Diagnostic::new(Code::InvalidAttributeValue, a["high"].span, format!("`high` ({high}) must exceed `low` ({low})"), "empty range"));
                    return None;
                }
                Some(Init::Uniform { low, high })
            }
            "normal" => {
                let a = self.bind_args("normal", v.span, call_args, &["mean", "std"], &["std"])?;
                let mean = match a.get("mean") {
                    Some(m) => self.number(m)?,
                    None => 0.0,
                };
                let std = self.number_in(a["std"], 0.0, f64::INFINITY, true, "a positive standard deviation")?;
                Some(Init::Normal { mean, std })
            }
            "load" => {
                let a = self.bind_args("load", v.span, call_args, &["file", "tensor"], &["file"])?;
                let ValueKind::Str(path) = &a["file"].kind else {
                    self.error(Diagnostic::new(Code::InvalidAttributeValue, a["file"].span, "the file must be a string", "expected \"path\""));
                    return None;
                };
                let tensor = match a.get("tensor") {
                    Some(Value { kind: ValueKind::Str(t), .. }) => Some(t.clone()),
                    Some(other) => {
                        self.error(Diagnostic::new(Code::InvalidAttributeValue, other.span, "the tensor name must be a string", "expected \"name\""));
                        return None;
                    }
                    None => None,
                };
                let needs_name = path.ends_with(".safetensors") || path.ends_with(".npz");
                if !(needs_name || path.ends_with(".npy")) {
                    self.error(Diagnostic::new(
                        Code::InvalidAttributeValue,
                        a["file"].span,
                        format!("cannot load weights from `{path}`"),
                        "expected a .safetensors, .npz or .npy file",
                    ));
                    return None;
                }
                if needs_name && tensor.is_none() {
                    self.error(
                        Diagnostic::new(Code::MissingAttribute, v.span, "which tensor of the file?", "the tensor name is missing")
                            .with_hint(format!("write `load(\"{path}\", \"layer.weight\")`")),
                    );
                    return None;
                }
                // The file itself is read when the model is compiled; its shape is checked then.
                Some(Init::Load { path: path.clone(), tensor })
            }
            other => {
                self.error(
                    Diagnostic::new(Code::UnknownInitializer, name.span, format!("unknown initialiser `{other}`"), "not an initialiser")
                        .with_suggestion(suggest::closest(other, NAMES)),
                );
                None
            }
        }
    }
}
