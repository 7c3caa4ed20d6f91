//! Arithmetic attributes (`mul`, `acc`, `chunk`, `chunk_acc`, `fma`, `rounding`, and the
//! per-layer training formats and backward arithmetic `bwd_acc`, `bwd_chunk`, `bwd_chunk_acc`):
//! reading them from `defaults`, `with` and `backward` blocks, validating them, and merging an
//! op's attributes over the model's defaults.

use super::checked::{Arith, BackwardOverride, GradFormats, Rounded};
use super::values::FormatSpec;
use super::Checker;
use crate::ast::{AttrBlock, Span};
use crate::diagnostic::{Code, Diagnostic};
use qc_runtime::numerics::{suggest, Format, Rounding};

/// Where an attribute block appears, which decides the attributes it may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrScope {
    /// `defaults { }` and `train { backward { } }`.
    Defaults,
    /// `with { }` on a dot product: dense, matmul, conv2d.
    Dot,
    /// `with { }` on a reduction: pooling averages, softmax, normalisations.
    Reduce,
    /// `with { }` on any other op.
    Plain,
}

pub(crate) const ARITH_ATTRS: [&str; 6] = ["mul", "acc", "chunk", "chunk_acc", "fma", "rounding"];
/// The per-layer training attributes (a dot product's `with { }` in a model with a `train`
/// section).
const TRAINING_ATTRS: [&str; 5] = ["weight_grad", "act_grad", "bwd_acc", "bwd_chunk", "bwd_chunk_acc"];
const ALL_ATTRS: [&str; 11] =
    ["mul", "acc", "chunk", "chunk_acc", "fma", "rounding", "weight_grad", "act_grad", "bwd_acc", "bwd_chunk", "bwd_chunk_acc"];

impl AttrScope {
    fn allowed(self) -> &'static [&'static str] {
        match self {
            AttrScope::Defaults => &ARITH_ATTRS,
            AttrScope::Dot => &ALL_ATTRS,
            AttrScope::Reduce => &["acc", "rounding"],
            AttrScope::Plain => &["rounding"],
        }
    }
}

/// The attributes as written in one block, each with the span of its key.
#[derive(Clone, Default)]
pub(crate) struct ArithAttrs {
    /// `None` inside: `exact`.
    pub mul: Option<(Option<FormatSpec>, Span)>,
    pub acc: Option<(FormatSpec, Span)>,
    pub chunk: Option<(usize, Span)>,
    pub chunk_acc: Option<(FormatSpec, Span)>,
    pub fma: Option<(bool, Span)>,
    pub rounding: Option<(Rounding, Span)>,
    pub weight_grad: Option<(FormatSpec, Span)>,
    pub act_grad: Option<(FormatSpec, Span)>,
    pub bwd_acc: Option<(FormatSpec, Span)>,
    pub bwd_chunk: Option<(usize, Span)>,
    pub bwd_chunk_acc: Option<(FormatSpec, Span)>,
}

impl Checker {
    /// A format usable for arithmetic: element-wise (no shared scale).
    fn arith_format(&mut self, v: &crate::ast::Value, what: &str) -> Option<FormatSpec> {
        let spec = self.format_spec(v)?;
        if !spec.format.is_elementwise() {
            self.error(
                Diagnostic::new(
                    Code::FormatNotAllowed,
                    v.span,
                    format!("`{}` cannot be {what}", spec.format),
                    "its values share a scale computed from other values",
                )
                .with_hint("arithmetic formats are element-wise: floats such as `fp16` or `fp<6,5>`, fixed point, `int<8,noscale>`"),
            );
            return None;
        }
        Some(spec)
    }

    /// Reads an attribute block; unknown, misplaced and repeated attributes are reported.
    pub(crate) fn arith_attrs(&mut self, block: &AttrBlock, scope: AttrScope) -> ArithAttrs {
        let mut out = ArithAttrs::default();
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for attr in &block.attrs {
            let key = attr.key.name.as_str();
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                self.duplicate(key, attr.key.span, *first);
                continue;
            }
            seen.push((key, attr.key.span));
            if !ALL_ATTRS.contains(&key) {
                self.error(
                    Diagnostic::new(Code::UnknownAttribute, attr.key.span, format!("unknown attribute `{key}`"), "not an attribute")
                        .with_suggestion(suggest::closest(key, scope.allowed().iter().copied())),
                );
                continue;
            }
            if !scope.allowed().contains(&key) {
                if let Some(own) = key.strip_prefix("bwd_") {
                    let d = match scope {
                        AttrScope::Defaults => Diagnostic::new(
                            Code::AttributeNotApplicable,
                            attr.key.span,
                            format!("`{key}` is a per-layer attribute"),
                            "not applicable here",
                        )
                        .with_hint(format!("write `{own}` in the train section's `backward {{ }}` for every layer, or `{key}` in a layer's `with {{ }}`")),
                        _ => Diagnostic::new(
                            Code::AttributeNotApplicable,
                            attr.key.span,
                            format!("`{key}` does not apply to this operation: its backward pass has no contraction"),
                            "not applicable",
                        )
                        .with_hint("the backward arithmetic is set per layer on `dense`, `matmul` and `conv2d`"),
                    };
                    self.error(d);
                    continue;
                }
                let place = match scope {
                    AttrScope::Defaults => "in `defaults` or `backward`; set it per layer with `with { }`",
                    AttrScope::Dot => "here",
                    AttrScope::Reduce => "to this operation: it has no products to round (only `acc` and `rounding` apply)",
                    AttrScope::Plain => "to this operation: it does not accumulate (only `rounding` applies)",
                };
                self.error(Diagnostic::new(
                    Code::AttributeNotApplicable,
                    attr.key.span,
                    format!("`{key}` does not apply {place}"),
                    "not applicable",
                ));
                continue;
            }
            let span = attr.key.span;
            let v = &attr.value;
            match key {
                "mul" => {
                    if Self::plain_word(v) == Some("exact") {
                        out.mul = Some((None, span));
                    } else if let Some(f) = self.arith_format(v, "a multiplier format") {
                        out.mul = Some((Some(f), span));
                    }
                }
                "acc" => out.acc = self.arith_format(v, "an accumulator format").map(|f| (f, span)),
                "chunk_acc" => out.chunk_acc = self.arith_format(v, "a chunk-sum format").map(|f| (f, span)),
                "chunk" => out.chunk = self.int_at_least(v, 1).map(|n| (n as usize, span)),
                "fma" => out.fma = self.boolean(v).map(|b| (b, span)),
                "rounding" => out.rounding = self.rounding(v).map(|r| (r, span)),
                "weight_grad" => out.weight_grad = self.format_spec(v).map(|f| (f, span)),
                "act_grad" => out.act_grad = self.format_spec(v).map(|f| (f, span)),
                "bwd_acc" => out.bwd_acc = self.arith_format(v, "a backward accumulator format").map(|f| (f, span)),
                "bwd_chunk_acc" => out.bwd_chunk_acc = self.arith_format(v, "a backward chunk-sum format").map(|f| (f, span)),
                "bwd_chunk" => out.bwd_chunk = self.int_at_least(v, 1).map(|n| (n as usize, span)),
                _ => {}
            }
            if TRAINING_ATTRS.contains(&key) && !self.has_training {
                self.error(Diagnostic::new(
                    Code::TrainingAttributeWithoutTraining,
                    span,
                    format!("`{key}` has no effect: the model has no `train` section"),
                    "ignored",
                ));
            }
        }
        out
    }

    /// Checks attributes that contradict each other, over the merge of `op` on the defaults.
    /// With `op = None` checks the defaults alone; otherwise reports only conflicts that involve
    /// an attribute of `op` (the defaults were reported once already).
    pub(crate) fn validate_arith(&mut self, defaults: &ArithAttrs, op: Option<&ArithAttrs>) {
        let empty = ArithAttrs::default();
        let own = op.unwrap_or(defaults);
        let base = if op.is_some() { defaults } else { &empty };
        let fma = own.fma.or(base.fma);
        let mul = own.mul.or(base.mul);
        if let (Some((true, fma_span)), Some((Some(f), mul_span))) = (fma, mul) {
            if op.is_none() || own.fma.is_some() || own.mul.is_some() {
                self.error(
                    Diagnostic::new(
                        Code::ConflictingAttributes,
                        mul_span,
                        format!("a multiplier format `{}` with `fma = true`", f.format),
                        "products are rounded here",
                    )
                    .with_secondary(fma_span, "but a fused multiply-add keeps products exact")
                    .with_hint("remove `mul`, or set `fma = false`"),
                );
            }
        }
        let chunk = own.chunk.or(base.chunk);
        if let (Some((_, span)), None) = (own.chunk_acc, chunk) {
            self.error(
                Diagnostic::new(Code::MissingAttribute, span, "`chunk_acc` without `chunk`", "there are no chunks to add")
                    .with_hint("set the chunk size too: `chunk = 64`"),
            );
        }
    }

    /// The arithmetic of an op: its own attributes over the model defaults. A rounding written
    /// on a format wins, then the op's `rounding`, then the defaults' `rounding`, then nearest.
    pub(crate) fn resolve_arith(&self, op: &ArithAttrs) -> Arith {
        self.resolve_arith_over(&self.defaults, op)
    }

    pub(crate) fn resolve_arith_over(&self, defaults: &ArithAttrs, op: &ArithAttrs) -> Arith {
        let fallback = op.rounding.or(defaults.rounding).map_or(Rounding::Nearest, |(r, _)| r);
        let rounded = |s: FormatSpec| Rounded { format: s.format, rounding: s.rounding.unwrap_or(fallback) };
        let mul = op.mul.or(defaults.mul).and_then(|(m, _)| m).map(rounded);
        let acc = op.acc.or(defaults.acc).map(|(f, _)| rounded(f)).unwrap_or(Rounded { format: fp32(), rounding: fallback });
        Arith {
            mul,
            acc,
            chunk: op.chunk.or(defaults.chunk).map(|(n, _)| n),
            chunk_acc: op.chunk_acc.or(defaults.chunk_acc).map(|(f, _)| rounded(f)),
            fma: op.fma.or(defaults.fma).is_some_and(|(b, _)| b),
        }
    }

    pub(crate) fn grad_formats(&self, op: &ArithAttrs) -> GradFormats {
        let fallback = op.rounding.or(self.defaults.rounding).map_or(Rounding::Nearest, |(r, _)| r);
        let rounded = |s: FormatSpec| Rounded { format: s.format, rounding: s.rounding.unwrap_or(fallback) };
        GradFormats {
            weight_grad: op.weight_grad.map(|(f, _)| rounded(f)),
            act_grad: op.act_grad.map(|(f, _)| rounded(f)),
            backward: BackwardOverride {
                acc: op.bwd_acc.map(|(f, _)| rounded(f)),
                chunk: op.bwd_chunk.map(|(n, _)| n),
                chunk_acc: op.bwd_chunk_acc.map(|(f, _)| rounded(f)),
            },
        }
    }
}

fn fp32() -> Format {
    super::fp32()
}
