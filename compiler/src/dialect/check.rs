//! What an op's verifier sees ([`OpView`]) and the checks several dialects share: tensor
//! operands, shapes, axes, broadcasting, rounding/stream pairs and the `#arith` attribute.

use crate::ir::{Arith, Attr, BlockId, Dim, Module, OpId, TensorType, Type};
use qc_runtime::numerics::{Format, Rounding};

/// Why an op is invalid: a one-line message and an optional hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
}

pub(crate) fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure { message: message.into(), hint: None })
}

pub(crate) fn fail_hint<T>(message: impl Into<String>, hint: impl Into<String>) -> Result<T, Failure> {
    Err(Failure { message: message.into(), hint: Some(hint.into()) })
}

/// A read-only view of one op for its verifier.
pub struct OpView<'a> {
    pub module: &'a Module,
    pub op: OpId,
}

impl<'a> OpView<'a> {
    pub fn name(&self) -> &'static str {
        self.module.ops[self.op].name()
    }
    pub fn operand_count(&self) -> usize {
        self.module.ops[self.op].operands.len()
    }
    pub fn operand(&self, i: usize) -> &'a Type {
        self.module.ty(self.module.ops[self.op].operands[i])
    }
    pub fn result(&self, i: usize) -> &'a Type {
        self.module.ty(self.module.ops[self.op].results[i])
    }
    pub fn attr(&self, name: &str) -> Option<&'a Attr> {
        self.module.ops[self.op].attrs.get(name)
    }

    /// Operand `i` as a tensor, or a failure naming it `what`.
    pub fn tensor(&self, i: usize, what: &str) -> Result<&'a TensorType, Failure> {
        match self.operand(i) {
            Type::Tensor(t) => Ok(t),
            other => fail(format!("{what} (operand #{i}) must be a tensor, not `{other}`")),
        }
    }

    /// Result `i` as a tensor.
    pub fn result_tensor(&self, i: usize) -> Result<&'a TensorType, Failure> {
        match self.result(i) {
            Type::Tensor(t) => Ok(t),
            other => fail(format!("result #{i} must be a tensor, not `{other}`")),
        }
    }

    /// Result `i` as a scalar of a format.
    pub fn result_scalar(&self, i: usize) -> Result<Format, Failure> {
        match self.result(i) {
            Type::Scalar(f) => Ok(*f),
            other => fail(format!("result #{i} must be a scalar of a format, not `{other}`")),
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.attr(name).and_then(Attr::as_int)
    }

    pub fn rounding(&self, name: &str) -> Option<Rounding> {
        match self.attr(name) {
            Some(Attr::Rounding(r)) => Some(*r),
            _ => None,
        }
    }

    pub fn arith(&self) -> Option<&'a Arith> {
        match self.attr("arith") {
            Some(Attr::Arith(a)) => Some(a),
            _ => None,
        }
    }

    /// The single block of region `i` (the generic verifier has checked there is one).
    pub fn region_block(&self, i: usize) -> Result<BlockId, Failure> {
        let region = self.module.ops[self.op].regions[i];
        match self.module.regions[region].blocks.as_slice() {
            [b] => Ok(*b),
            _ => fail(format!("region #{i} must have exactly one block")),
        }
    }

    /// The operand types of the terminator ending `block`.
    pub fn yielded(&self, block: BlockId) -> Result<Vec<&'a Type>, Failure> {
        match self.module.blocks[block].ops.last() {
            Some(&t) if self.module.ops[t].def.terminator => {
                Ok(self.module.ops[t].operands.iter().map(|v| self.module.ty(*v)).collect())
            }
            _ => fail_hint("the region's block does not end with a terminator", "end it with `kernel.yield`"),
        }
    }

    pub fn block_arg_types(&self, block: BlockId) -> Vec<&'a Type> {
        self.module.blocks[block].args.iter().map(|v| self.module.ty(*v)).collect()
    }
}

/// A shape as text, `32x?x64`.
pub(crate) fn show_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    if parts.is_empty() { "a scalar shape".into() } else { parts.join("x") }
}

/// Checks that the result's shape is `expected`.
pub(crate) fn expect_dims(result: &TensorType, expected: &[Dim]) -> Result<(), Failure> {
    if result.dims == expected {
        Ok(())
    } else {
        fail(format!("the result shape should be {}, not {}", show_dims(expected), show_dims(&result.dims)))
    }
}

/// Checks that two tensors share a format (ops that move values without rounding).
pub(crate) fn same_format(from: &TensorType, to: &TensorType) -> Result<(), Failure> {
    if from.format == to.format {
        Ok(())
    } else {
        fail_hint(
            format!("the result format `{}` differs from the operand's `{}`", to.format, from.format),
            "this op moves values without rounding; use `nn.cast` to change the format",
        )
    }
}

/// Two dimensions that must agree (a dynamic one agrees with anything).
pub(crate) fn dims_agree(a: Dim, b: Dim) -> bool {
    matches!((a, b), (Dim::Dynamic, _) | (_, Dim::Dynamic)) || a == b
}

/// Numpy-style broadcasting of two shapes (trailing axes aligned; 1 stretches).
pub(crate) fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, Failure> {
    let rank = a.len().max(b.len());
    let at = |s: &[Dim], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { Dim::Fixed(1) };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (Dim::Fixed(1), y) => Ok(y),
            (x, Dim::Fixed(1)) => Ok(x),
            (Dim::Dynamic, y) | (y, Dim::Dynamic) => Ok(y),
            (x, y) => fail(format!("shapes {} and {} do not broadcast (axis {i}: {x} vs {y})", show_dims(a), show_dims(b))),
        })
        .collect()
}

/// An axis attribute, negative counting from the end, checked against `rank`.
pub(crate) fn axis(value: i64, rank: usize) -> Result<usize, Failure> {
    let r = rank as i64;
    let a = if value < 0 { value + r } else { value };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        fail(format!("axis {value} is out of range for a tensor of rank {rank}"))
    }
}

/// An integer array attribute of exactly `len` positive entries (default `default`).
pub(crate) fn positive_pair(v: &OpView<'_>, name: &str, default: [u64; 2], min: i64) -> Result<[u64; 2], Failure> {
    let Some(attr) = v.attr(name) else { return Ok(default) };
    match attr.as_int_array().as_deref() {
        Some(&[a, b]) if a >= min && b >= min => Ok([a as u64, b as u64]),
        _ => fail(format!("`{name}` must be two integers of at least {min}, not {attr}")),
    }
}

/// `stream` must be present exactly when some rounding of the op is stochastic.
pub(crate) fn check_stream(v: &OpView<'_>, stochastic: bool) -> Result<(), Failure> {
    match (stochastic, v.attr("stream")) {
        (true, None) => fail_hint(
            "a stochastic rounding needs a random stream",
            "add `stream = N` (the random stream, with the run's seed, that the draws come from)",
        ),
        (false, Some(_)) => fail("`stream` is set but no rounding of this op is stochastic"),
        (_, Some(Attr::Int(s))) if u32::try_from(*s).is_err() => fail(format!("`stream` must be 0 to 2^32-1, not {s}")),
        _ => Ok(()),
    }
}

/// The optional `round` attribute (default `nearest`) with its `stream`.
pub(crate) fn check_round_attr(v: &OpView<'_>) -> Result<(), Failure> {
    check_stream(v, v.rounding("round").is_some_and(Rounding::is_stochastic))
}

/// A format that rounds each value on its own, as accumulators and multipliers must.
fn elementwise(what: &str, f: Format) -> Result<(), Failure> {
    if f.is_elementwise() {
        Ok(())
    } else {
        fail_hint(
            format!("the {what} format `{f}` is not element-wise"),
            "accumulators and products need a float, fixed-point or unscaled integer format",
        )
    }
}

/// Rules of the `#arith` attribute that do not depend on the op.
pub(crate) fn check_arith(a: &Arith) -> Result<(), Failure> {
    if let Some(m) = &a.mul {
        elementwise("multiplier", m.format)?;
        if a.fma {
            return fail_hint(
                "`fma` fuses an exact product into the addition, but `mul` rounds the product",
                "write `mul=exact` with `fma`",
            );
        }
    }
    elementwise("accumulator", a.acc.format)?;
    if let Some(c) = &a.chunk {
        elementwise("chunk-sum", c.format)?;
        if c.size == 0 {
            return fail("the chunk size must be at least 1");
        }
    }
    match (a.is_stochastic(), a.stream) {
        (true, None) => fail_hint("a stochastic rounding needs a random stream", "add `stream=N` inside #arith<...>"),
        (false, Some(_)) => fail("`stream` is set but no rounding in #arith is stochastic"),
        _ => Ok(()),
    }
}
