//! The `kernel` dialect: computation with every rounding explicit, as the interpreter, the
//! JIT and the ISA emitter consume it. Values are immutable (no stores):
//! `kernel.generate` defines each element of a tensor by a region evaluated independently
//! per index (so outputs may run in any order, in parallel, or vectorised), and
//! `kernel.accumulate` is a sequential sum whose order of additions is the semantics.
//! Scalars are values of a format, or `real` (an exact product not yet rounded).
//!
//! Every rounded op computes its exact result and rounds it once; the transcendental ops
//! (`kernel.exp`, `kernel.tanh`, `kernel.sigmoid`, `kernel.gelu`) round a reference f64 value
//! instead (spec/ir.md says which). `kernel.max`/`kernel.min`/`kernel.select`/`kernel.reduce_max`
//! choose values without arithmetic. Index ops compute sizes, positions and draw counters.
//!
//! Stochastic rounding is explicit too: an op with a stochastic mode carries `stream` and
//! takes a trailing `index` operand, the draw counter; it rounds with draw
//! `RandomStream(seed, stream).at(draw)` (`kernel.accumulate`: `draw + k` at index `k`).

use super::check::*;
use super::{opt, req, Arity, AttrDef, OpDef, OpView, ROUND_OPT};
use crate::ir::{Attr, AttrKind, Chunk, Dim, Type};
use qc_runtime::numerics::{Format, RandomStream, Rounding};

const ROUND_REQ: [AttrDef; 2] = [req("round", AttrKind::Rounding), opt("stream", AttrKind::Int)];

/// A rounded op of `inputs` scalar operands (plus the draw counter when stochastic).
const fn rounded(name: &'static str, summary: &'static str, inputs: usize, verify: fn(&OpView<'_>) -> Result<(), Failure>) -> OpDef {
    OpDef {
        name,
        summary,
        operands: Arity::Between(inputs, inputs + 1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_REQ,
        terminator: false,
        verify,
    }
}

const fn index_binary(name: &'static str, summary: &'static str) -> OpDef {
    OpDef {
        name,
        summary,
        operands: Arity::Exactly(2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[],
        terminator: false,
        verify: verify_index_binary,
    }
}

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "kernel.generate",
        summary: "A tensor whose element at (i0, ..) is what the region yields for block arguments (i0, ..); operands give the dynamic sizes.",
        operands: Arity::AtLeast(0),
        results: Arity::Exactly(1),
        regions: 1,
        attrs: &[],
        terminator: false,
        verify: verify_generate,
    },
    OpDef {
        name: "kernel.yield",
        summary: "Ends a kernel region, giving its value(s) to the enclosing op.",
        operands: Arity::AtLeast(0),
        results: Arity::Exactly(0),
        regions: 0,
        attrs: &[],
        terminator: true,
        verify: |_| Ok(()),
    },
    OpDef {
        name: "kernel.accumulate",
        summary: "acc = init; for k = lo, lo+step, .. < hi: acc = round(acc + term(k)); chunked per `chunk` (spec/ir.md).",
        operands: Arity::Between(3, 4),
        results: Arity::Exactly(1),
        regions: 1,
        attrs: &[req("round", AttrKind::Rounding), opt("step", AttrKind::Int), opt("chunk", AttrKind::Chunk), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_accumulate,
    },
    OpDef {
        name: "kernel.dim",
        summary: "The size of axis `axis` of a tensor.",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("axis", AttrKind::Int)],
        terminator: false,
        verify: verify_dim,
    },
    OpDef {
        name: "kernel.index",
        summary: "A constant index.",
        operands: Arity::Exactly(0),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("value", AttrKind::Int)],
        terminator: false,
        verify: verify_index,
    },
    index_binary("kernel.index_add", "a + b on indices."),
    index_binary("kernel.index_mul", "a · b on indices."),
    index_binary("kernel.index_min", "min(a, b) on indices."),
    index_binary("kernel.index_max", "max(a, b) on indices."),
    index_binary("kernel.index_sub", "a − b on indices, 0 when b > a (saturating)."),
    index_binary("kernel.index_div", "⌊a / b⌋ on indices (b ≥ 1)."),
    index_binary("kernel.index_rem", "a mod b on indices (b ≥ 1)."),
    index_binary("kernel.index_lt", "1 if a < b, else 0."),
    OpDef {
        name: "kernel.select",
        summary: "b if the index c is 0, else a: `select c, a, b` (both operands are computed).",
        operands: Arity::Exactly(3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[],
        terminator: false,
        verify: verify_select,
    },
    OpDef {
        name: "kernel.reduce_max",
        summary: "The largest of init and the (kept) terms for k = lo .. hi−1; exact, NaN if any is NaN.",
        operands: Arity::Exactly(3),
        results: Arity::Exactly(1),
        regions: 1,
        attrs: &[],
        terminator: false,
        verify: verify_reduce_max,
    },
    rounded("kernel.from_index", "An index as a number, rounded once to the result format.", 1, verify_from_index),
    OpDef {
        name: "kernel.load",
        summary: "The element of a tensor at the given indices (one per axis).",
        operands: Arity::AtLeast(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[],
        terminator: false,
        verify: verify_load,
    },
    OpDef {
        name: "kernel.constant",
        summary: "A scalar constant, exactly representable in its format.",
        operands: Arity::Exactly(0),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[req("value", AttrKind::Float)],
        terminator: false,
        verify: verify_constant,
    },
    OpDef {
        name: "kernel.mul",
        summary: "a · b: exact (`real`) without `round`, else rounded once to the result format.",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_OPT,
        terminator: false,
        verify: verify_mul,
    },
    OpDef {
        name: "kernel.add",
        summary: "a + b computed exactly, rounded once to the result format.",
        operands: Arity::Between(2, 3),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_REQ,
        terminator: false,
        verify: |v| verify_rounded(v, 2),
    },
    OpDef {
        name: "kernel.fma",
        summary: "acc + a · b computed exactly, rounded once to the result format.",
        operands: Arity::Between(3, 4),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_REQ,
        terminator: false,
        verify: |v| verify_rounded(v, 3),
    },
    OpDef {
        name: "kernel.round",
        summary: "x rounded to the result format.",
        operands: Arity::Between(1, 2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_REQ,
        terminator: false,
        verify: |v| verify_rounded(v, 1),
    },
    rounded("kernel.sub", "a − b computed exactly, rounded once to the result format.", 2, |v| verify_rounded(v, 2)),
    rounded("kernel.div", "a / b computed exactly, rounded once to the result format.", 2, |v| verify_rounded(v, 2)),
    rounded("kernel.sqrt", "√x computed exactly, rounded once to the result format.", 1, |v| verify_rounded(v, 1)),
    rounded("kernel.max", "The larger of a and b (NaN if either is), rounded once to the result format.", 2, |v| verify_rounded(v, 2)),
    rounded("kernel.min", "The smaller of a and b (NaN if either is), rounded once to the result format.", 2, |v| verify_rounded(v, 2)),
    rounded("kernel.exp", "e^x: the reference f64 value (libm crate), rounded once to the result format.", 1, |v| verify_rounded(v, 1)),
    rounded("kernel.tanh", "tanh x: the reference f64 value (libm crate), rounded once to the result format.", 1, |v| verify_rounded(v, 1)),
    rounded("kernel.sigmoid", "1/(1+e^−x): the reference f64 value, rounded once to the result format.", 1, |v| verify_rounded(v, 1)),
    rounded("kernel.gelu", "x·Φ(x): the reference f64 value (erf form), rounded once to the result format.", 1, |v| verify_rounded(v, 1)),
];

fn index_operand(v: &OpView<'_>, i: usize, what: &str) -> Result<(), Failure> {
    match v.operand(i) {
        Type::Index => Ok(()),
        other => fail(format!("{what} (operand #{i}) must be an index, not `{other}`")),
    }
}

fn index_result(v: &OpView<'_>) -> Result<(), Failure> {
    match v.result(0) {
        Type::Index => Ok(()),
        other => fail(format!("the result must be an index, not `{other}`")),
    }
}

fn verify_index_binary(v: &OpView<'_>) -> Result<(), Failure> {
    index_operand(v, 0, "the left operand")?;
    index_operand(v, 1, "the right operand")?;
    index_result(v)
}

fn verify_index(v: &OpView<'_>) -> Result<(), Failure> {
    if v.int("value").is_some_and(|n| n < 0) {
        return fail("an index is non-negative");
    }
    index_result(v)
}

fn verify_dim(v: &OpView<'_>) -> Result<(), Failure> {
    let t = v.tensor(0, "the tensor")?;
    let raw = v.int("axis").unwrap_or(0);
    if raw < 0 || raw as usize >= t.rank() {
        return fail(format!("`axis` must be 0 to {}, not {raw}", t.rank().saturating_sub(1)));
    }
    index_result(v)
}

fn verify_generate(v: &OpView<'_>) -> Result<(), Failure> {
    let t = v.result_tensor(0)?;
    let dynamic = t.dims.iter().filter(|d| **d == Dim::Dynamic).count();
    if v.operand_count() != dynamic {
        return fail_hint(
            format!("the result has {dynamic} dynamic dimension(s) but {} size operand(s) are given", v.operand_count()),
            "give one index operand per `?` in the result type, in order",
        );
    }
    for i in 0..v.operand_count() {
        index_operand(v, i, "a size")?;
    }
    let block = v.region_block(0)?;
    let args = v.block_arg_types(block);
    if args.len() != t.rank() || args.iter().any(|a| **a != Type::Index) {
        return fail(format!("the region takes one index per axis ({} indices)", t.rank()));
    }
    match v.yielded(block)?.as_slice() {
        [Type::Scalar(f)] if *f == t.format => Ok(()),
        other => fail(format!("the region must yield one `{}` (the element format), not {}", t.format, show_types(other))),
    }
}

pub(crate) fn show_types(types: &[&Type]) -> String {
    let parts: Vec<String> = types.iter().map(|t| format!("`{t}`")).collect();
    if parts.is_empty() { "nothing".into() } else { parts.join(", ") }
}

fn verify_load(v: &OpView<'_>) -> Result<(), Failure> {
    let t = v.tensor(0, "the tensor")?;
    if v.operand_count() != 1 + t.rank() {
        return fail(format!("loading from a rank-{} tensor takes {} indices, not {}", t.rank(), t.rank(), v.operand_count() - 1));
    }
    for i in 1..v.operand_count() {
        index_operand(v, i, "an index")?;
    }
    if v.result(0) != &Type::Scalar(t.format) {
        return fail(format!("the result must be `{}` (the tensor's element format), not `{}`", t.format, v.result(0)));
    }
    Ok(())
}

/// Whether `x` is a value of `f` (for the element-wise formats a scalar can hold).
fn representable(f: Format, x: f64) -> bool {
    match f {
        Format::Float { format, .. } => {
            let stream = RandomStream::new(0, 0);
            let y = format.round(x, Rounding::Nearest, stream.at(0));
            y == x || (x.is_nan() && y.is_nan())
        }
        Format::Fixed(fx) => {
            let scaled = x * 2f64.powi(fx.frac_bits as i32);
            let bits = fx.int_bits + fx.frac_bits;
            let (lo, hi) = if fx.signed { (-(2f64.powi(bits as i32 - 1)), 2f64.powi(bits as i32 - 1) - 1.0) } else { (0.0, 2f64.powi(bits as i32) - 1.0) };
            scaled.fract() == 0.0 && (lo..=hi).contains(&scaled)
        }
        Format::Int(i) if i.unscaled => {
            let (lo, hi) = if i.signed { (-(2f64.powi(i.bits as i32 - 1)), 2f64.powi(i.bits as i32 - 1) - 1.0) } else { (0.0, 2f64.powi(i.bits as i32) - 1.0) };
            x.fract() == 0.0 && (lo..=hi).contains(&x)
        }
        Format::E8m0 => x > 0.0 && x.log2().fract() == 0.0 && x.log2().abs() <= 127.0,
        _ => false,
    }
}

fn verify_constant(v: &OpView<'_>) -> Result<(), Failure> {
    let f = v.result_scalar(0)?;
    let x = v.attr("value").and_then(Attr::as_f64).unwrap_or(0.0);
    if representable(f, x) {
        Ok(())
    } else {
        fail_hint(format!("{} is not a value of `{f}`", Attr::Float(x)), "a constant must be exactly representable in its format")
    }
}

fn numbers(v: &OpView<'_>, count: usize) -> Result<(), Failure> {
    for i in 0..count {
        if !v.operand(i).is_number() {
            return fail(format!("operand #{i} must be a scalar number, not `{}`", v.operand(i)));
        }
    }
    Ok(())
}

/// The trailing draw counter is present exactly when a rounding is stochastic.
fn draw(v: &OpView<'_>, fixed: usize, stochastic: bool) -> Result<(), Failure> {
    check_stream(v, stochastic)?;
    match (stochastic, v.operand_count() > fixed) {
        (true, true) => index_operand(v, fixed, "the draw counter"),
        (true, false) => fail_hint("a stochastic rounding needs a draw counter", "add a trailing index operand: the draw index"),
        (false, true) => fail("the trailing draw counter is given but no rounding is stochastic"),
        (false, false) => Ok(()),
    }
}

/// A rounded result: a scalar of an element-wise format.
fn rounded_result(v: &OpView<'_>) -> Result<Format, Failure> {
    let f = v.result_scalar(0)?;
    if f.is_elementwise() {
        Ok(f)
    } else {
        fail_hint(format!("`{f}` is not element-wise, so a scalar cannot be rounded to it"), "round to a float, fixed or unscaled int format")
    }
}

fn verify_mul(v: &OpView<'_>) -> Result<(), Failure> {
    numbers(v, 2)?;
    let round = v.rounding("round");
    draw(v, 2, round.is_some_and(Rounding::is_stochastic))?;
    match (round, v.result(0)) {
        (None, Type::Real) => Ok(()),
        (None, other) => fail_hint(format!("an exact product has type `real`, not `{other}`"), "add `round = ...` to round it to a format"),
        (Some(_), _) => rounded_result(v).map(drop),
    }
}

fn verify_rounded(v: &OpView<'_>, inputs: usize) -> Result<(), Failure> {
    numbers(v, inputs)?;
    draw(v, inputs, v.rounding("round").is_some_and(Rounding::is_stochastic))?;
    rounded_result(v).map(drop)
}

fn verify_accumulate(v: &OpView<'_>) -> Result<(), Failure> {
    index_operand(v, 0, "the lower bound")?;
    index_operand(v, 1, "the upper bound")?;
    let acc = rounded_result(v)?;
    if v.operand(2) != v.result(0) {
        return fail(format!("the initial value has type `{}` but the accumulator is `{acc}`", v.operand(2)));
    }
    if v.int("step").is_some_and(|s| s < 1) {
        return fail("`step` must be at least 1");
    }
    let chunk = match v.attr("chunk") {
        Some(Attr::Chunk(c)) => Some(*c),
        _ => None,
    };
    if let Some(Chunk { size, format, .. }) = chunk {
        if size == 0 {
            return fail("the chunk size must be at least 1");
        }
        if !format.is_elementwise() {
            return fail(format!("the chunk-sum format `{format}` is not element-wise"));
        }
    }
    let stochastic = v.rounding("round").is_some_and(Rounding::is_stochastic) || chunk.is_some_and(|c| c.rounding.is_stochastic());
    draw(v, 3, stochastic)?;
    term_region(v, |t| t.is_number(), "scalar term")
}

/// The region of a reduction: one index argument `k`; yields the term, optionally followed
/// by an index `keep` (0 skips the term: no addition, no draw).
fn term_region(v: &OpView<'_>, term_ok: impl Fn(&Type) -> bool, what: &str) -> Result<(), Failure> {
    let block = v.region_block(0)?;
    if v.block_arg_types(block) != [&Type::Index] {
        return fail("the region takes one index argument, the term's position k");
    }
    match v.yielded(block)?.as_slice() {
        [t] | [t, Type::Index] if term_ok(t) => Ok(()),
        other => fail_hint(format!("the region must yield one {what}, not {}", show_types(other)), "yield the term, optionally followed by an index: 0 skips it"),
    }
}

fn verify_reduce_max(v: &OpView<'_>) -> Result<(), Failure> {
    index_operand(v, 0, "the lower bound")?;
    index_operand(v, 1, "the upper bound")?;
    let f = v.result_scalar(0)?;
    if v.operand(2) != v.result(0) {
        return fail(format!("the initial value has type `{}` but the result is `{f}`", v.operand(2)));
    }
    term_region(v, |t| *t == Type::Scalar(f), &format!("`{f}` term"))
}

fn verify_select(v: &OpView<'_>) -> Result<(), Failure> {
    index_operand(v, 0, "the condition")?;
    if v.operand(1) != v.operand(2) || v.operand(1) != v.result(0) {
        return fail(format!("both choices and the result must have one type, not `{}`, `{}` -> `{}`", v.operand(1), v.operand(2), v.result(0)));
    }
    Ok(())
}

fn verify_from_index(v: &OpView<'_>) -> Result<(), Failure> {
    index_operand(v, 0, "the index")?;
    draw(v, 1, v.rounding("round").is_some_and(Rounding::is_stochastic))?;
    rounded_result(v).map(drop)
}
