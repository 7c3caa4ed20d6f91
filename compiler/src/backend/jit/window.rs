//! Affine windows: a contraction's row operand that loads one tensor at indices affine in the
//! row position and in values of `k` alone, under a `keep` that is a conjunction of affine
//! comparisons — a padded convolution's window, its transpose (the input gradient) and its
//! weight gradient.
//!
//! The general code ([`super::contract`]) evaluates the row operand's index arithmetic (the
//! divisions of `k` aside, which the k-table holds) per row and `k`: forty-odd instructions
//! beside a few vector steps. Where [`analyse`] finds a window, the element offset of the
//! load splits into a part of the row (evaluated once per row: the row's **base** address)
//! and a part of `k` (in the k-table), and `keep` into **ranges**: `L ≤ B(k) ≤ U` for a few
//! affine `B` of `k` alone and bounds `L`, `U` of the row. Where the box of the `B`s' values
//! has at most 64 points (a convolution's taps), the k-table holds each `k`'s point (its
//! **class**) and each row a mask of the classes it keeps, computed once: per row and `k` the
//! kernel tests one bit. Otherwise the k-table holds the `B`s and the kernel checks each range
//! with one subtraction and one unsigned comparison. Then it loads from `base + offset(k)`.
//!
//! Exactness: index arithmetic is on naturals (a subtraction saturates at 0, a `min` or `max`
//! picks), so the affine form equals the IR's value only where no subtraction saturates and
//! each `min`/`max` picks the operand the form follows. These **side conditions**, and the
//! load's indices being within their dimensions (the general code clamps them), must follow
//! from `keep` (a condition of `keep` with the same terms and a constant no larger) or hold
//! for every position and `k` (interval bounds of the terms): then wherever the term is kept,
//! the window's load is the general code's, and where it is not, neither adds it.
//! Every value involved is below 2^32 and every coefficient at most 2^20 in magnitude, so the
//! i64 arithmetic never wraps — but for a dynamic leading axis (a batch): its index must be a
//! generate argument that ranges over that very extent ([`same_extent`]), so it is in range
//! and its offset within the tensor.

use super::codegen::Gen;
use crate::ir::{Dim, Module, OpId, ValueDef, ValueId};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};

/// `Σ coefficient·leaf + constant`, the leaves index values (each a natural number).
#[derive(Clone, Debug, PartialEq)]
struct Affine {
    terms: Vec<(ValueId, i64)>,
    constant: i64,
}

/// Affine forms stay small: a value's bound below 2^32, coefficients at most 2^20, at most 16
/// terms, constants below 2^40 — every sum far inside i64.
const LEAF_BOUND: u64 = 1 << 32;
const COEFFICIENT_BOUND: i64 = 1 << 20;
const CONSTANT_BOUND: i64 = 1 << 40;
const MAX_TERMS: usize = 16;

impl Affine {
    fn constant(c: i64) -> Affine {
        Affine {
            terms: Vec::new(),
            constant: c,
        }
    }

    fn leaf(v: ValueId) -> Affine {
        Affine {
            terms: vec![(v, 1)],
            constant: 0,
        }
    }

    /// `self + f·other`, `None` if it leaves the bounds.
    fn plus(&self, f: i64, other: &Affine) -> Option<Affine> {
        let mut terms = self.terms.clone();
        for &(v, c) in &other.terms {
            let c = c.checked_mul(f)?;
            match terms.iter_mut().find(|(w, _)| *w == v) {
                Some((_, d)) => *d += c,
                None => terms.push((v, c)),
            }
        }
        terms.retain(|&(_, c)| c != 0);
        terms.sort_by_key(|&(v, _)| v.index());
        let constant = self.constant.checked_add(other.constant.checked_mul(f)?)?;
        let fits = terms.len() <= MAX_TERMS
            && terms.iter().all(|&(_, c)| c.abs() <= COEFFICIENT_BOUND)
            && constant.abs() < CONSTANT_BOUND;
        fits.then_some(Affine { terms, constant })
    }

    fn scaled(&self, f: i64) -> Option<Affine> {
        Affine::constant(0).plus(f, self)
    }

    /// The terms whose leaves `is_k` picks, and the rest with the constant.
    fn split(&self, is_k: impl Fn(ValueId) -> bool) -> (Affine, Affine) {
        let (k, row): (Vec<_>, Vec<_>) = self.terms.iter().partition(|&&(v, _)| is_k(v));
        (
            Affine {
                terms: k,
                constant: 0,
            },
            Affine {
                terms: row,
                constant: self.constant,
            },
        )
    }

    /// The least value over leaves in `[0, bound(leaf)]`.
    fn least(&self, bound: &dyn Fn(ValueId) -> Option<u64>) -> Option<i64> {
        self.terms.iter().try_fold(self.constant, |s, &(v, c)| {
            Some(if c < 0 { s + c * bound(v)? as i64 } else { s })
        })
    }

    /// Emits the form's value (i64) from the leaves' values in `g`.
    fn emit(&self, g: &mut Gen) -> Result<Value, String> {
        let mut sum = g.e.i64c(self.constant);
        for &(v, c) in &self.terms {
            let x = g.index(v)?;
            let t = g.e.b.ins().imul_imm_s(x, c);
            sum = g.e.b.ins().iadd(sum, t);
        }
        Ok(sum)
    }
}

/// `k_part(k)` within `[max(lower(row)), min(upper(row))]`.
#[derive(Debug)]
struct Range {
    k_part: Affine,
    lower: Vec<Affine>,
    upper: Vec<Affine>,
    /// Bounds of `k_part` over every `k` (where no condition bounds it on that side).
    least: i64,
    greatest: i64,
}

#[derive(Debug)]
pub(super) struct Window {
    /// The tensor the row operand loads from.
    tensor: ValueId,
    /// The load's element offset: `offset_row` (row leaves and the constant) + `offset_k`.
    offset_row: Affine,
    offset_k: Affine,
    ranges: Vec<Range>,
}

/// What the kernel needs of one row: the address of its part of the load, and its checks
/// (see [`Window::row`]).
pub(super) struct WindowRow {
    base: Value,
    checks: Vec<Value>,
}

impl WindowRow {
    /// The row's values in order: the base, then its checks.
    pub(super) fn values(&self) -> Vec<Value> {
        std::iter::once(self.base)
            .chain(self.checks.iter().copied())
            .collect()
    }

    /// The row of `values` in the order of [`WindowRow::values`].
    pub(super) fn from_values(values: &[Value]) -> WindowRow {
        WindowRow {
            base: values[0],
            checks: values[1..].to_vec(),
        }
    }
}

/// A condition `form ≥ 0`.
type Condition = Affine;

struct Analysis<'a> {
    ir: &'a Module,
    is_row_leaf: &'a dyn Fn(ValueId) -> bool,
    is_k_leaf: &'a dyn Fn(ValueId) -> bool,
    /// Side conditions of the forms built so far.
    side: Vec<Condition>,
}

impl Analysis<'_> {
    /// The affine form of index value `v`, recording its side conditions.
    fn form(&mut self, v: ValueId) -> Option<Affine> {
        let ir = self.ir;
        if (self.is_row_leaf)(v) || (self.is_k_leaf)(v) {
            return Some(Affine::leaf(v));
        }
        let ValueDef::Result { op, .. } = ir.values[v].def else {
            return None;
        };
        let o = &ir.ops[op];
        let constant = |v: ValueId| match ir.values[v].def {
            ValueDef::Result { op, .. } if ir.ops[op].name() == "kernel.index" => {
                ir.ops[op].attr("value").and_then(crate::ir::Attr::as_int)
            }
            _ => None,
        };
        if o.name() == "kernel.index" {
            return constant(v)
                .filter(|c| c.abs() < CONSTANT_BOUND)
                .map(Affine::constant);
        }
        let [a, b] = o.operands[..] else { return None };
        match o.name() {
            "kernel.index_add" => {
                let (a, b) = (self.form(a)?, self.form(b)?);
                a.plus(1, &b)
            }
            "kernel.index_sub" => {
                let (a, b) = (self.form(a)?, self.form(b)?);
                let difference = a.plus(-1, &b)?;
                self.side.push(difference.clone());
                Some(difference)
            }
            "kernel.index_mul" => match (constant(a), constant(b)) {
                (_, Some(c)) => self.form(a)?.scaled(c),
                (Some(c), _) => self.form(b)?.scaled(c),
                _ => None,
            },
            "kernel.index_div" if constant(b) == Some(1) => self.form(a),
            // The form follows the operand that is not a constant (the first if neither is):
            // it is the one picked where the side condition holds.
            "kernel.index_min" | "kernel.index_max" => {
                let (kept, other) = if constant(a).is_some() {
                    (b, a)
                } else {
                    (a, b)
                };
                let (kept, other) = (self.form(kept)?, self.form(other)?);
                let slack = if o.name() == "kernel.index_min" {
                    other.plus(-1, &kept)?
                } else {
                    kept.plus(-1, &other)?
                };
                self.side.push(slack);
                Some(kept)
            }
            _ => None,
        }
    }

    /// The conditions whose conjunction is `keep != 0` (products of `a < b` and
    /// `1 − (a < b)`), each with the side conditions of its forms.
    fn keep(&mut self, v: ValueId, out: &mut Vec<(Condition, Vec<Condition>)>) -> Option<()> {
        let ir = self.ir;
        let ValueDef::Result { op, .. } = ir.values[v].def else {
            return None;
        };
        let o = &ir.ops[op];
        let comparison = |v: ValueId| match ir.values[v].def {
            ValueDef::Result { op, .. } if ir.ops[op].name() == "kernel.index_lt" => {
                Some((ir.ops[op].operands[0], ir.ops[op].operands[1]))
            }
            _ => None,
        };
        let (a, b, negated) = match o.name() {
            "kernel.index_mul" => {
                self.keep(o.operands[0], out)?;
                return self.keep(o.operands[1], out);
            }
            "kernel.index_lt" => {
                let (a, b) = comparison(v)?;
                (a, b, false)
            }
            "kernel.index_sub" if self.form(o.operands[0]) == Some(Affine::constant(1)) => {
                let (a, b) = comparison(o.operands[1])?;
                (a, b, true)
            }
            _ => return None,
        };
        let before = self.side.len();
        let (a, b) = (self.form(a)?, self.form(b)?);
        // `a < b`: `b − a − 1 ≥ 0`; its negation `a − b ≥ 0`.
        let condition = if negated {
            a.plus(-1, &b)?
        } else {
            b.plus(-1, &a)?.plus(1, &Affine::constant(-1))?
        };
        out.push((condition, self.side.split_off(before)));
        Some(())
    }
}

/// The window of a row operand `row_operand` (a load) of the contraction `generate` under
/// `keep`, if it is one. `is_row_leaf`: the generate's arguments but the last; `is_k_leaf`:
/// values of `k` alone that the k-table holds; `bound`: an upper bound of a leaf over every
/// position and `k`.
pub(super) fn analyse(
    ir: &Module,
    generate: OpId,
    row_operand: ValueId,
    keep: Option<ValueId>,
    is_row_leaf: &dyn Fn(ValueId) -> bool,
    is_k_leaf: &dyn Fn(ValueId) -> bool,
    bound: &dyn Fn(ValueId) -> Option<u64>,
) -> Option<Window> {
    let ValueDef::Result { op: load, .. } = ir.values[row_operand].def else {
        return None;
    };
    let l = &ir.ops[load];
    if l.name() != "kernel.load" {
        return None;
    }
    let tensor = l.operands[0];
    // A dynamic leading axis (a batch) is allowed: its stride is fixed, and its index is
    // shown in range by `same_extent`.
    let dims = &ir.ty(tensor).as_tensor()?.dims;
    let fixed: Vec<u64> = dims
        .iter()
        .enumerate()
        .map(|(axis, d)| match d {
            Dim::Fixed(n) => Some(*n),
            Dim::Dynamic if axis == 0 => Some(1),
            Dim::Dynamic => None,
        })
        .collect::<Option<_>>()?;
    if dims.len() + 1 != l.operands.len() || fixed.iter().product::<u64>() >= LEAF_BOUND {
        return None;
    }
    let mut a = Analysis {
        ir,
        is_row_leaf,
        is_k_leaf,
        side: Vec::new(),
    };
    let mut keeps = Vec::new();
    if let Some(k) = keep {
        a.keep(k, &mut keeps)?;
    }
    // The element offset, and the indices within their dimensions.
    let mut offset = Affine::constant(0);
    let mut stride = 1i64;
    for (axis, (&index, &d)) in l.operands[1..].iter().zip(&fixed).enumerate().rev() {
        let index = a.form(index)?;
        if dims[axis] == Dim::Dynamic {
            // The index must be a generate argument ranging over this very extent.
            let [(arg, 1)] = index.terms[..] else {
                return None;
            };
            if index.constant != 0 || !same_extent(ir, generate, arg, tensor, axis) {
                return None;
            }
        } else {
            a.side.push(index.clone());
            a.side
                .push(Affine::constant(d as i64 - 1).plus(-1, &index)?);
        }
        offset = offset.plus(stride, &index)?;
        stride *= d as i64;
    }
    // The keep conditions in an order where each one's side conditions follow from earlier
    // ones (or always hold), then the load's side conditions from them: where the first
    // condition that fails comes, the ones before hold, so its forms are the IR's values and
    // the IR's `keep` is 0 too; where all hold, every form is the IR's value.
    let leaf_bound = |v: ValueId| bound(v).filter(|&b| b < LEAF_BOUND);
    let mut established: Vec<Condition> = Vec::new();
    let holds = |established: &[Condition], c: &Condition| {
        c.least(&leaf_bound).is_some_and(|l| l >= 0)
            || established
                .iter()
                .any(|k| k.terms == c.terms && k.constant <= c.constant)
    };
    let mut pending = keeps;
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|(_, side)| side.iter().all(|s| holds(&established, s)))?;
        established.push(pending.remove(ready).0);
    }
    if !a.side.iter().all(|s| holds(&established, s)) {
        return None;
    }
    let is_k = |v: ValueId| is_k_leaf(v);
    let (offset_k, offset_row) = offset.split(is_k);
    // The ranges: conditions grouped by their `k` part, up to sign.
    let mut ranges: Vec<Range> = Vec::new();
    for c in &established {
        let (k_part, row_part) = c.split(is_k);
        let negative = k_part.terms.first().is_some_and(|&(_, c)| c < 0);
        let (k_part, row_part) = if negative {
            (k_part.scaled(-1)?, row_part)
        } else {
            (k_part, row_part.scaled(-1)?)
        };
        let at = match ranges.iter().position(|r| r.k_part == k_part) {
            Some(at) => at,
            None => {
                let least = k_part.least(&leaf_bound)?;
                let greatest = -k_part.scaled(-1)?.least(&leaf_bound)?;
                ranges.push(Range {
                    k_part,
                    lower: Vec::new(),
                    upper: Vec::new(),
                    least,
                    greatest,
                });
                ranges.len() - 1
            }
        };
        // `k_part + row ≥ 0` bounds below by `−row`; `−k_part + row ≥ 0` above by `row`.
        if negative {
            ranges[at].upper.push(row_part);
        } else {
            ranges[at].lower.push(row_part);
        }
    }
    Some(Window {
        tensor,
        offset_row,
        offset_k,
        ranges,
    })
}

/// Whether the argument `arg` of `generate` ranges over the extent of `tensor`'s dynamic
/// `axis`: the generate's size for that argument is `kernel.dim` of that axis, or the size
/// the generate defining `tensor` has for it.
fn same_extent(ir: &Module, generate: OpId, arg: ValueId, tensor: ValueId, axis: usize) -> bool {
    // The size operand of a generate for its dynamic axis `at` (they come in order).
    let size = |op: OpId, at: usize| {
        let ty = ir.ty(*ir.ops[op].results.first()?).as_tensor()?;
        if ty.dims.get(at) != Some(&Dim::Dynamic) {
            return None;
        }
        let before = ty.dims[..at].iter().filter(|d| **d == Dim::Dynamic).count();
        ir.ops[op].operands.get(before).copied()
    };
    let g = &ir.ops[generate];
    let Some(body) = g.regions.first().and_then(|&r| ir.entry_block(r)) else {
        return false;
    };
    let Some(at) = ir.blocks[body].args.iter().position(|&a| a == arg) else {
        return false;
    };
    let Some(extent) = size(generate, at) else {
        return false;
    };
    let is_dim = match ir.values[extent].def {
        ValueDef::Result { op, .. } => {
            let o = &ir.ops[op];
            o.name() == "kernel.dim"
                && o.operands.first() == Some(&tensor)
                && o.attr("axis").and_then(crate::ir::Attr::as_int) == Some(axis as i64)
        }
        ValueDef::Arg { .. } => false,
    };
    let same_as_producer = match ir.values[tensor].def {
        ValueDef::Result { op, .. } if ir.ops[op].name() == "kernel.generate" => {
            size(op, axis) == Some(extent)
        }
        _ => false,
    };
    is_dim || same_as_producer
}

/// At most this many tap classes (points of the box of the ranges' `k` parts): a row's
/// ranges then become one 64-bit mask of the classes it keeps.
const MAX_CLASSES: i64 = 64;

impl Window {
    /// The classes' box: each range's least value and the class stride of one step in it,
    /// where it has at most [`MAX_CLASSES`] points.
    fn classes(&self) -> Option<Vec<(i64, i64)>> {
        let mut strides = vec![0; self.ranges.len()];
        let mut points = 1i64;
        for (i, r) in self.ranges.iter().enumerate().rev() {
            strides[i] = points;
            points = points.checked_mul(r.greatest - r.least + 1)?;
        }
        let fits = !self.ranges.is_empty() && points <= MAX_CLASSES;
        fits.then(|| self.ranges.iter().map(|r| r.least).zip(strides).collect())
    }

    /// The k-table entries the window adds (after the general ones): the offset's `k` part in
    /// bytes, then the class of `k` (a point of the ranges' box), or else each range's `k`
    /// part.
    pub(super) fn table_entries(&self) -> usize {
        1 + match self.classes() {
            Some(_) => 1,
            None => self.ranges.len(),
        }
    }

    /// Emits the entries at the `k` whose leaves `g` holds.
    pub(super) fn emit_entries(&self, g: &mut Gen) -> Result<Vec<Value>, String> {
        let offset = self.offset_k.emit(g)?;
        let mut out = vec![g.e.b.ins().ishl_imm_s(offset, 2)];
        match self.classes() {
            Some(classes) => {
                let mut class = g.e.i64c(0);
                for (r, &(least, stride)) in self.ranges.iter().zip(&classes) {
                    let x = r.k_part.emit(g)?;
                    let x = g.e.b.ins().iadd_imm_s(x, -least);
                    let x = g.e.b.ins().imul_imm_s(x, stride);
                    class = g.e.b.ins().iadd(class, x);
                }
                out.push(class);
            }
            None => {
                for r in &self.ranges {
                    out.push(r.k_part.emit(g)?);
                }
            }
        }
        Ok(out)
    }

    /// Emits a row's base address and its checks from the row leaves in `g`: the mask of the
    /// classes it keeps, or each range's lower bound `L` and width `U − L` (`L` beyond every
    /// value and width 0 when `U < L`).
    pub(super) fn row(&self, g: &mut Gen) -> Result<WindowRow, String> {
        let ptr = g
            .tensors
            .get(&self.tensor)
            .ok_or("a load from a tensor")?
            .ptr;
        let offset = self.offset_row.emit(g)?;
        let bytes = g.e.b.ins().ishl_imm_s(offset, 2);
        let base = g.e.b.ins().iadd(ptr, bytes);
        let mut bounds = Vec::with_capacity(self.ranges.len());
        for r in &self.ranges {
            let fold = |g: &mut Gen, forms: &[Affine], start: i64, cc: IntCC| {
                let mut at = g.e.i64c(start);
                for f in forms {
                    let x = f.emit(g)?;
                    let c = g.e.b.ins().icmp(cc, x, at);
                    at = g.e.b.ins().select(c, x, at);
                }
                Ok::<Value, String>(at)
            };
            let low = fold(g, &r.lower, r.least, IntCC::SignedGreaterThan)?;
            let high = fold(g, &r.upper, r.greatest, IntCC::SignedLessThan)?;
            bounds.push((low, high));
        }
        let checks = match self.classes() {
            Some(classes) => vec![self.class_mask(g, &classes, &bounds)],
            None => bounds
                .into_iter()
                .flat_map(|(low, high)| {
                    let width = g.e.b.ins().isub(high, low);
                    let empty = g.e.b.ins().icmp_imm_s(IntCC::SignedLessThan, width, 0);
                    let beyond = g.e.i64c(1 << 62);
                    let zero = g.e.i64c(0);
                    let low = g.e.b.ins().select(empty, beyond, low);
                    let width = g.e.b.ins().select(empty, zero, width);
                    [low, width]
                })
                .collect(),
        };
        Ok(WindowRow { base, checks })
    }

    /// The mask of the classes whose every coordinate lies within its range's `[L, U]`.
    fn class_mask(&self, g: &mut Gen, classes: &[(i64, i64)], bounds: &[(Value, Value)]) -> Value {
        // Per range and value: whether the value is within the row's bounds.
        let inside: Vec<Vec<Value>> = self
            .ranges
            .iter()
            .zip(bounds)
            .map(|(r, &(low, high))| {
                (r.least..=r.greatest)
                    .map(|v| {
                        let above = g.e.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, low, v);
                        let below =
                            g.e.b
                                .ins()
                                .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, high, v);
                        g.e.b.ins().band(above, below)
                    })
                    .collect()
            })
            .collect();
        let points: i64 = self
            .ranges
            .iter()
            .map(|r| r.greatest - r.least + 1)
            .product();
        let mut mask = g.e.i64c(0);
        for class in 0..points {
            let mut kept: Option<Value> = None;
            for (flags, &(_, stride)) in inside.iter().zip(classes) {
                let flag = flags[((class / stride) % flags.len() as i64) as usize];
                kept = Some(match kept {
                    Some(k) => g.e.b.ins().band(k, flag),
                    None => flag,
                });
            }
            let Some(kept) = kept else { continue };
            let bit = g.e.b.ins().uextend(types::I64, kept);
            let bit = g.e.b.ins().ishl_imm_s(bit, class);
            mask = g.e.b.ins().bor(mask, bit);
        }
        mask
    }

    /// Whether the term at `k` is kept for `row`, from the entries after the offset at `k`:
    /// the row's mask at the class of `k`, or `k_part − L ≤ width` unsigned for every range.
    pub(super) fn kept(&self, g: &mut Gen, row: &WindowRow, entries: &[Value]) -> Option<Value> {
        if self.classes().is_some() {
            let shifted = g.e.b.ins().ushr(row.checks[0], entries[0]);
            return Some(g.e.b.ins().band_imm_s(shifted, 1));
        }
        let mut all = None;
        for (pair, &x) in row.checks.chunks(2).zip(entries) {
            let t = g.e.b.ins().isub(x, pair[0]);
            let ok = g.e.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, t, pair[1]);
            all = Some(match all {
                Some(a) => g.e.b.ins().band(a, ok),
                None => ok,
            });
        }
        all
    }
}

/// The row operand at `offset` bytes (the table's entry at `k`) from the row's base.
pub(super) fn load(g: &mut Gen, row: &WindowRow, offset: Value) -> Value {
    let addr = g.e.b.ins().iadd(row.base, offset);
    let flags = MemFlagsData::trusted().with_readonly();
    g.e.b.ins().load(types::F32, flags, addr, 0)
}
