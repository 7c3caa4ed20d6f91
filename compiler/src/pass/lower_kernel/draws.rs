//! Where a lowered op's stochastic roundings draw: the counters of spec/ir.md ("Draw
//! counters"), as index arithmetic on the generated element's position, and the op's
//! arithmetic attribute they come with.

use super::body::{Body, Rnd};
use super::error;
use crate::ir::{Arith, Attr, Module, OpId, ValueId};
use crate::pass::PassError;

/// The op's `#arith` attribute.
pub(super) fn arith_of(module: &Module, op: OpId) -> Result<Arith, PassError> {
    match module.ops[op].attrs.get("arith") {
        Some(Attr::Arith(a)) => Ok(*a),
        _ => error(module, op, "`arith` is missing"),
    }
}

/// The draw counter `e·span + offset` of the element being generated (`e` row-major).
pub(crate) fn draw_counter(body: &mut Body<'_>, sizes: &[ValueId], span: u64, offset: u64) -> ValueId {
    let idx = body.idx.clone();
    let lin = body.linear(&idx, sizes);
    let scaled = body.ix_const("kernel.index_mul", lin, span);
    body.ix_const("kernel.index_add", scaled, offset)
}

/// Draw counters for one op's roundings: `first·span + offset` for the steps the row or
/// channel shares (`first`: its first element's row-major position), `own·span + offset`
/// for the element's own steps. Empty (every rounding deterministic) when the op has no
/// stochastic rounding.
pub(super) struct Draws {
    stream: u32,
    span: u64,
    bases: Option<(ValueId, ValueId)>,
}

impl Draws {
    /// `first_at` gives the indices of the row's or channel's first element.
    pub(super) fn new(body: &mut Body<'_>, arith: &Arith, sizes: &[ValueId], span: u64, first_at: impl FnOnce(&mut Body<'_>, &[ValueId]) -> Vec<ValueId>) -> Draws {
        let stream = arith.stream.unwrap_or(0);
        if !arith.is_stochastic() {
            return Draws { stream, span, bases: None };
        }
        let idx = body.idx.clone();
        let own = body.linear(&idx, sizes);
        let first_idx = first_at(body, &idx);
        let first = body.linear(&first_idx, sizes);
        let own = body.ix_const("kernel.index_mul", own, span);
        let first = body.ix_const("kernel.index_mul", first, span);
        Draws { stream, span, bases: Some((first, own)) }
    }

    /// No counters: every rounding is deterministic.
    pub(super) fn none(span: u64) -> Draws {
        Draws { stream: 0, span, bases: None }
    }

    /// Counters for an op whose every step is the element's own (nothing shared).
    pub(super) fn per_element(body: &mut Body<'_>, arith: &Arith, sizes: &[ValueId], span: u64) -> Draws {
        let stream = arith.stream.unwrap_or(0);
        let bases = arith.is_stochastic().then(|| {
            let own = draw_counter(body, sizes, span, 0);
            (own, own)
        });
        Draws { stream, span, bases }
    }

    /// The rounding `r` (format, mode) drawing, when stochastic, at the shared counter
    /// `first·span + offset`.
    pub(super) fn shared(&self, body: &mut Body<'_>, r: Rnd, offset: u64) -> Rnd {
        self.at(body, r, offset, |b| b.0)
    }

    /// The rounding `r` drawing, when stochastic, at the element's own `e·span + offset`.
    pub(super) fn own(&self, body: &mut Body<'_>, r: Rnd, offset: u64) -> Rnd {
        self.at(body, r, offset, |b| b.1)
    }

    fn at(&self, body: &mut Body<'_>, r: Rnd, offset: u64, base: impl Fn((ValueId, ValueId)) -> ValueId) -> Rnd {
        debug_assert!(offset < self.span, "draw offsets stay inside the element's span");
        match self.bases {
            Some(b) if r.rounding.is_stochastic() => Rnd { draw: Some((self.stream, body.ix_const("kernel.index_add", base(b), offset))), ..r },
            _ => r,
        }
    }

    /// [`Draws::shared`] for a term computed inside a reduction region at position `k`:
    /// the counter `first·span + offset + k`.
    pub(super) fn shared_term(&self, inner: &mut Body<'_>, r: Rnd, offset: u64, k: ValueId) -> Rnd {
        self.term(inner, r, offset, k, |b| b.0)
    }

    /// [`Draws::own`] for a term at position `k`: the counter `own·span + offset + k`.
    pub(super) fn own_term(&self, inner: &mut Body<'_>, r: Rnd, offset: u64, k: ValueId) -> Rnd {
        self.term(inner, r, offset, k, |b| b.1)
    }

    fn term(&self, inner: &mut Body<'_>, r: Rnd, offset: u64, k: ValueId, base: impl Fn((ValueId, ValueId)) -> ValueId) -> Rnd {
        match self.bases {
            Some(b) if r.rounding.is_stochastic() => {
                let first = inner.ix_const("kernel.index_add", base(b), offset);
                Rnd { draw: Some((self.stream, inner.ix("kernel.index_add", first, k))), ..r }
            }
            _ => r,
        }
    }
}

