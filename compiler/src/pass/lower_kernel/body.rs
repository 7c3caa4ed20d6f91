//! [`Body`]: builds the scalar computation inside one `kernel.generate` (or `kernel.accumulate`)
//! region: constants, loads, index arithmetic, rounded arithmetic with its draw counters, and
//! nested reductions.

use crate::ir::attr::Chunk;
use crate::ir::{Attr, Dim, Module, TensorType, Type, ValueId};
use crate::lower::build::{attrs, At, Attrs, Builder};
use qc_runtime::numerics::{Format, RandomStream, Rounding};

/// How one rounding is performed: format, mode, and (when stochastic) stream and draw counter.
#[derive(Clone, Copy, Debug)]
pub struct Rnd {
    pub format: Format,
    pub rounding: Rounding,
    /// `(stream, draw counter)` for stochastic modes.
    pub draw: Option<(u32, ValueId)>,
}

impl Rnd {
    pub fn new(format: Format, rounding: Rounding) -> Rnd {
        Rnd { format, rounding, draw: None }
    }
}

pub struct Body<'m> {
    pub b: Builder<'m>,
    /// The region's index arguments (one per result axis for a generate).
    pub idx: Vec<ValueId>,
}

/// The value of `x` in an element-wise format, rounded to nearest (constants such as ε).
pub fn nearest_value(format: Format, x: f64) -> f64 {
    let mut out = [0f32];
    match format.quantize(&[x as f32], &[1], Rounding::Nearest, &RandomStream::new(0, 0), &mut out) {
        Ok(()) => out[0] as f64,
        Err(_) => x as f32 as f64,
    }
}

impl<'m> Body<'m> {
    /// A new region with one block of `n_args` index arguments; returns its body builder.
    pub fn region(module: &'m mut Module, n_args: usize, span: Option<crate::ir::Span>) -> (crate::ir::RegionId, Body<'m>) {
        let region = module.new_region();
        let block = module.new_block(region, vec![Type::Index; n_args]);
        let idx = module.blocks[block].args.clone();
        (region, Body { b: Builder::new(module, At::End(block), span), idx })
    }

    pub fn index(&mut self, n: u64) -> ValueId {
        self.b.op("kernel.index", vec![], Type::Index, attrs([("value", Attr::Int(n as i64))]))
    }

    /// An index op on two indices (`kernel.index_add`, ...).
    pub fn ix(&mut self, name: &str, a: ValueId, b: ValueId) -> ValueId {
        self.b.op(name, vec![a, b], Type::Index, Attrs::new())
    }

    pub fn ix_const(&mut self, name: &str, a: ValueId, n: u64) -> ValueId {
        let c = self.index(n);
        self.ix(name, a, c)
    }

    /// The size of `axis` of `t`: a constant, or `kernel.dim` of the value `v` when dynamic.
    pub fn size(&mut self, v: ValueId, t: &TensorType, axis: usize) -> ValueId {
        match t.dims[axis] {
            Dim::Fixed(n) => self.index(n),
            Dim::Dynamic => self.b.op("kernel.dim", vec![v], Type::Index, attrs([("axis", Attr::Int(axis as i64))])),
        }
    }

    pub fn constant(&mut self, format: Format, value: f64) -> ValueId {
        self.b.op("kernel.constant", vec![], Type::Scalar(format), attrs([("value", Attr::Float(value))]))
    }

    pub fn load(&mut self, t: ValueId, indices: Vec<ValueId>) -> ValueId {
        let format = self.b.module.ty(t).as_tensor().expect("loads read tensors").format;
        let mut operands = vec![t];
        operands.extend(indices);
        self.b.op("kernel.load", operands, Type::Scalar(format), Attrs::new())
    }

    /// A rounded op: `name` applied to `operands`, rounded once as `r` says.
    pub fn rounded(&mut self, name: &str, mut operands: Vec<ValueId>, r: Rnd) -> ValueId {
        let mut a = attrs([("round", Attr::Rounding(r.rounding))]);
        if let Some((stream, d)) = r.draw {
            a.insert("stream".into(), Attr::Int(stream as i64));
            operands.push(d);
        }
        self.b.op(name, operands, Type::Scalar(r.format), a)
    }

    /// `x` rounded as `r` says, or `x` itself when it already has that format.
    pub fn round(&mut self, x: ValueId, r: Rnd) -> ValueId {
        if self.b.module.ty(x) == &Type::Scalar(r.format) {
            return x;
        }
        self.rounded("kernel.round", vec![x], r)
    }

    /// The exact product `a·b` (`real`).
    pub fn exact_mul(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.b.op("kernel.mul", vec![a, b], Type::Real, Attrs::new())
    }

    /// A reduction op (`kernel.accumulate` or `kernel.reduce_max`) over `k = lo .. hi−1`
    /// whose term (and optional keep flag) `term` builds in the nested region.
    #[allow(clippy::too_many_arguments)]
    pub fn reduce(
        &mut self,
        name: &str,
        lo: ValueId,
        hi: ValueId,
        init: ValueId,
        mut a: Attrs,
        draw: Option<(u32, ValueId)>,
        term: impl FnOnce(&mut Body<'_>, ValueId) -> (ValueId, Option<ValueId>),
    ) -> ValueId {
        let ty = self.b.module.ty(init).clone();
        let span = self.b.span.clone();
        let (region, mut inner) = Body::region(self.b.module, 1, span);
        let k = inner.idx[0];
        let (t, keep) = term(&mut inner, k);
        let mut yielded = vec![t];
        yielded.extend(keep);
        inner.b.terminator("kernel.yield", yielded);
        let mut operands = vec![lo, hi, init];
        if let Some((stream, d)) = draw {
            a.insert("stream".into(), Attr::Int(stream as i64));
            operands.push(d);
        }
        self.b.op_with_regions(name, operands, ty, a, vec![region])
    }

    /// `Σ term(k)` for `k = lo .. hi−1` from +0, each addition rounded as `acc` says, chunked
    /// when `chunk` is given (the `chunking` pass expands it).
    pub fn accumulate(
        &mut self,
        lo: ValueId,
        hi: ValueId,
        acc: Rnd,
        chunk: Option<Chunk>,
        term: impl FnOnce(&mut Body<'_>, ValueId) -> (ValueId, Option<ValueId>),
    ) -> ValueId {
        let zero = self.constant(acc.format, 0.0);
        let mut a = attrs([("round", Attr::Rounding(acc.rounding))]);
        if let Some(c) = chunk {
            a.insert("chunk".into(), Attr::Chunk(c));
        }
        self.reduce("kernel.accumulate", lo, hi, zero, a, acc.draw, term)
    }

    /// The row-major position of the element `(idx)` in a tensor of `dims` (sizes as values).
    pub fn linear(&mut self, idx: &[ValueId], sizes: &[ValueId]) -> ValueId {
        let mut lin = self.index(0);
        for (i, s) in idx.iter().zip(sizes) {
            let scaled = self.ix("kernel.index_mul", lin, *s);
            lin = self.ix("kernel.index_add", scaled, *i);
        }
        lin
    }

    /// `1` when `lo ≤ x < hi` (with `lo` a constant), else `0`.
    pub fn in_range(&mut self, x: ValueId, lo: u64, hi: ValueId) -> ValueId {
        let below_hi = self.ix("kernel.index_lt", x, hi);
        if lo == 0 {
            return below_hi;
        }
        let lo_minus_one = self.index(lo - 1);
        let above_lo = self.ix("kernel.index_lt", lo_minus_one, x);
        self.ix("kernel.index_mul", above_lo, below_hi)
    }

    pub fn finish(mut self, value: ValueId) {
        self.b.terminator("kernel.yield", vec![value]);
    }
}
