//! Vector code for element-wise `kernel.generate`s (no accumulate or reduce inside): the
//! output's last axis runs four elements at a time as `f32x4` values, the other axes as
//! scalar loops, and the elements the vectors do not cover (a row's last `n mod 4`) through
//! the scalar code of `codegen`. [`plan`] recognises a body whose every op the vector code
//! computes to the bit of the scalar code; [`compile`] emits it.
//!
//! What the vector code computes:
//! - loads with the output element's own indices (the last axis contiguous, the tensor's
//!   last extent the output's) as vector loads; loads whose indices do not involve the last
//!   axis once per row, splatted; constants splatted;
//! - binary32 `nearest` add, sub, mul (the hardware's IEEE rounding, as the scalar code),
//!   min and max (Cranelift's `fmin`/`fmax`: IEEE 754-2019 minimum/maximum, NaN if either
//!   operand is, −0 below +0, on every target), `round` to binary32 (the identity);
//! - `nearest` results in a narrower float format (subnormal range at or above binary32's)
//!   of min, max, round, of sums and differences of two of its own values where it keeps at
//!   most 11 bits and stays below 2^100 (the binary32 sum then rounds like the exact one:
//!   double rounding through 2p + 1 bits is innocuous), and of products exact in binary32: the f32 value is exact, and
//!   `vector_round` rounds it as `FloatFormat::round`. A product is exact when the operands'
//!   formats have at most 24 significant bits together, or (with a hardware fma) when
//!   `fma(a, b, −p)` is zero; either way only while `|p|` lies in `[2^-100, ∞)` (below, the
//!   product may be cut by binary32's subnormal range or its fma residue lost; above, it
//!   overflowed). Finite values from 2^101 up, where the rounding's magic constant would
//!   overflow, are replaced by ±2^101 when the format overflows below it anyway.
//!
//! Lanes outside these conditions (a product not exact, not finite or tiny; a large value
//! for a format reaching 2^101) make the whole vector of four elements take the scalar code
//! instead; the other vectors keep the vector result. Every op outside the set (other
//! rounding modes, integer, fixed and scaled formats, transcendentals, index arithmetic)
//! leaves the whole generate to the scalar code.
//!
//! Rows are the scalar code's: the `[lo, hi)` range of the native function runs over the
//! same leading axes (`codegen::build_function`), and each element gets the bits the scalar
//! code gives it, so any thread count gives the same output.

use super::codegen::{build_function, counted_loop, Cv, Gen, Helpers, KernelFn, Lv, TensorView};
use super::round::Target;
use super::vector_round::{as_float, as_int, fvec, ivec, round, round_nearest_with_subnormals};
use crate::ir::{Attr, BlockId, Dim, Module, OpId, Type, ValueDef, ValueId};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::JITModule;
use cranelift_module::Module as _;
use qc_runtime::numerics::{represents_all_of, FloatFormat, Format, Rounding};
use std::collections::{HashMap, HashSet};

/// Elements per vector.
const WIDTH: i64 = 4;

/// Finite values from here up are replaced or sent to the scalar code before a narrow
/// rounding (module doc): the magic constant of the rounding stays finite below it.
const LARGE: f32 = f32::from_bits((101 + 127) << 23); // 2^101

/// Products below this magnitude (of nonzero operands) take the scalar code (module doc).
const TINY_PRODUCT: f32 = f32::from_bits((127 - 100) << 23); // 2^-100

/// An element-wise generate the vector code computes: which ops depend on the last axis.
pub(super) struct Plan {
    body: BlockId,
    /// Ops whose value depends on the last axis: computed per vector; the rest once per row.
    varying: HashSet<OpId>,
    /// Multiplications into a narrow format checked with an fma (their operands' formats
    /// together have more than 24 significant bits).
    fma_checked: HashSet<OpId>,
    /// For a contraction's epilogue ([`epilogue`]): the accumulation, whose four lanes the
    /// caller computes.
    given: Option<OpId>,
}

/// The result format of a rounded op when the vector code rounds it: `Some(None)` for
/// binary32, `Some(Some(f))` for a narrower float format; `None` otherwise.
fn vector_rounding(ir: &Module, op: OpId) -> Option<Option<FloatFormat>> {
    let o = &ir.ops[op];
    let mode = match o.attr("round") {
        Some(Attr::Rounding(r)) => *r,
        None => Rounding::Nearest,
        Some(_) => return None,
    };
    if mode != Rounding::Nearest {
        return None;
    }
    let target = Target::of(&ir.ty(o.results[0]).scalar_format()?).ok()?;
    if target.is_binary32() {
        return Some(None);
    }
    match target {
        Target::Float(f) if f.emin() >= -126 && f.man_bits < 23 => Some(Some(f)),
        _ => None,
    }
}

/// Significant bits of a value of `v`'s format, if it is a float format.
fn precision(ir: &Module, v: ValueId) -> Option<u32> {
    match ir.ty(v).scalar_format()? {
        Format::Float { format, .. } => Some(format.man_bits + 1),
        _ => None,
    }
}

/// Recognises an element-wise generate (module doc), or `None` for the scalar code. `fma`:
/// the host has a vector fused multiply-add.
pub(super) fn plan(ir: &Module, op: OpId, fma: bool) -> Option<Plan> {
    plan_given(ir, op, fma, None)
}

/// Recognises the rest of a contraction's element after its accumulation `outer` (an op of
/// the generate's body), with the accumulation's value given per vector by `contract`: the
/// same ops as [`plan`] accepts.
pub(super) fn epilogue(ir: &Module, op: OpId, fma: bool, outer: OpId) -> Option<Plan> {
    plan_given(ir, op, fma, Some(outer))
}

fn plan_given(ir: &Module, op: OpId, fma: bool, given: Option<OpId>) -> Option<Plan> {
    let o = &ir.ops[op];
    let out_ty = ir.ty(o.results[0]).as_tensor()?;
    let &Dim::Fixed(n) = out_ty.dims.last()? else {
        return None;
    };
    if n < WIDTH as u64 {
        return None;
    }
    let body = ir.entry_block(*o.regions.first()?)?;
    let args = &ir.blocks[body].args;
    let in_body = |v: ValueId| match ir.values[v].def {
        ValueDef::Result { op, .. } => ir.ops[op].parent == Some(body),
        ValueDef::Arg { block, .. } => block == body,
    };
    // Index values a load may use: the leading axes, constants, captured indices.
    let (_, leading) = args.split_last()?;
    let mut indices: HashSet<ValueId> = leading.iter().copied().collect();
    let mut floats: HashSet<ValueId> = HashSet::new();
    let mut varying_values: HashSet<ValueId> = HashSet::new();
    let mut varying = HashSet::new();
    let mut fma_checked = HashSet::new();
    let ops = &ir.blocks[body].ops;
    let (&yield_op, ops) = ops.split_last()?;
    let y = &ir.ops[yield_op];
    if y.name() != "kernel.yield" || y.operands.len() != 1 {
        return None;
    }
    let (&last_axis, _) = args.split_last()?;
    let row_invariant = |v: ValueId, indices: &HashSet<ValueId>| {
        indices.contains(&v) || (!in_body(v) && matches!(ir.ty(v), Type::Index))
    };
    for &op in ops {
        let o = &ir.ops[op];
        if Some(op) == given && o.results.len() == 1 {
            varying.insert(op);
            varying_values.insert(o.results[0]);
            floats.insert(o.results[0]);
            continue;
        }
        if !o.regions.is_empty() || o.results.len() != 1 {
            return None;
        }
        let result = o.results[0];
        let float_operands =
            |k: usize| o.operands.len() == k && o.operands.iter().all(|v| floats.contains(v));
        match o.name() {
            "kernel.index" => {
                indices.insert(result);
                continue;
            }
            "kernel.constant" => {}
            "kernel.load" => {
                let tensor = ir.ty(*o.operands.first()?).as_tensor()?;
                let idx = &o.operands[1..];
                let (&last, leading) = idx.split_last()?;
                if last == last_axis {
                    // Lane-contiguous: the tensor's last axis is the output's, indexed by it.
                    if tensor.dims.last() != Some(&Dim::Fixed(n))
                        || !leading.iter().all(|&v| row_invariant(v, &indices))
                    {
                        return None;
                    }
                    varying.insert(op);
                } else if !idx.iter().all(|&v| row_invariant(v, &indices)) {
                    return None;
                }
            }
            "kernel.add" | "kernel.sub" => {
                if !float_operands(2) {
                    return None;
                }
                if let Some(f) = vector_rounding(ir, op)? {
                    // The binary32 sum rounded to f is the exact sum's rounding when both
                    // operands are values of f and f keeps at most 11 bits (double rounding
                    // through 2p + 1 ≤ 24 bits is innocuous, Figueroa), the sum finite
                    // (f's values below 2^100).
                    let target = ir.ty(result).scalar_format()?;
                    let within = |v: &ValueId| {
                        ir.ty(*v)
                            .scalar_format()
                            .is_some_and(|of| represents_all_of(&target, &of) == Some(true))
                    };
                    if f.man_bits > 10
                        || f.max() >= (LARGE / 2.0) as f64
                        || !o.operands.iter().all(within)
                    {
                        return None;
                    }
                }
            }
            "kernel.mul" => {
                if !float_operands(2) {
                    return None;
                }
                if vector_rounding(ir, op)?.is_some() {
                    let bits = precision(ir, o.operands[0])? + precision(ir, o.operands[1])?;
                    if bits > 24 {
                        if !fma {
                            return None;
                        }
                        fma_checked.insert(op);
                    }
                }
            }
            "kernel.min" | "kernel.max" => {
                if !float_operands(2) {
                    return None;
                }
                vector_rounding(ir, op)?;
            }
            "kernel.round" => {
                if !float_operands(1) {
                    return None;
                }
                vector_rounding(ir, op)?;
            }
            _ => return None,
        }
        if o.operands.iter().any(|v| varying_values.contains(v)) {
            varying.insert(op);
        }
        if varying.contains(&op) {
            varying_values.insert(result);
        }
        floats.insert(result);
    }
    if !floats.contains(&y.operands[0]) {
        return None;
    }
    if given.is_some_and(|g| !varying.contains(&g)) {
        return None;
    }
    Some(Plan {
        body,
        varying,
        fma_checked,
        given,
    })
}

/// Whether `jit`'s host has a fused multiply-add.
pub(super) fn has_fma(jit: &JITModule) -> bool {
    jit.isa()
        .isa_flags()
        .iter()
        .any(|f| f.name == "has_fma" && f.as_bool() == Some(true))
}

/// Compiles the element-wise generate `op` by `plan` (module doc).
pub(super) fn compile(
    jit: &mut JITModule,
    fctx: &mut FunctionBuilderContext,
    ir: &Module,
    op: OpId,
    helpers: Helpers,
    name: &str,
    plan: &Plan,
) -> Result<KernelFn, String> {
    let o = &ir.ops[op];
    let rank = ir
        .ty(o.results[0])
        .as_tensor()
        .ok_or("a generate makes a tensor")?
        .rank();
    let split = rank.min(2);
    let cost = ir.blocks[plan.body].ops.len() as f64;
    let (id, captures, streams) = build_function(
        jit,
        fctx,
        ir,
        op,
        helpers,
        name,
        |g, out, _env, _slot, lo, hi| {
            match rank {
                1 => row(g, plan, out, &[], lo, hi),
                2 => {
                    // Rows i0 meeting [lo, hi), each over its part of the range.
                    let d1 = out.dims[1];
                    let first = g.e.b.ins().udiv(lo, d1);
                    let last = g.e.b.ins().iadd_imm_s(hi, -1);
                    let last = g.e.b.ins().udiv(last, d1);
                    let end = g.e.b.ins().iadd_imm_s(last, 1);
                    let empty = g.e.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, lo, hi);
                    let end = g.e.b.ins().select(empty, first, end);
                    counted_loop(g, first, end, 1, false, |g, i0| {
                        let start = g.e.b.ins().imul(i0, d1);
                        let stop = g.e.b.ins().iadd(start, d1);
                        let from = g.e.b.ins().umax(lo, start);
                        let to = g.e.b.ins().umin(hi, stop);
                        let js = g.e.b.ins().isub(from, start);
                        let je = g.e.b.ins().isub(to, start);
                        row(g, plan, out, &[i0], js, je)
                    })?;
                    Ok(())
                }
                _ => {
                    counted_loop(g, lo, hi, 1, false, |g, r| {
                        let mut prefix = g.leading(out, r, split);
                        middle_axes(g, plan, out, &mut prefix)
                    })?;
                    Ok(())
                }
            }
        },
    )?;
    Ok(KernelFn {
        id,
        captures,
        split,
        cost_per_element: cost,
        streams,
        pack: None,
    })
}

/// Loops over the axes between the leading ones and the last, then the row.
fn middle_axes(
    g: &mut Gen,
    plan: &Plan,
    out: &TensorView,
    prefix: &mut Vec<Value>,
) -> Result<(), String> {
    let axis = prefix.len();
    if axis + 1 == out.dims.len() {
        let zero = g.e.i64c(0);
        return row(g, plan, out, prefix, zero, out.dims[axis]);
    }
    let zero = g.e.i64c(0);
    counted_loop(g, zero, out.dims[axis], 1, false, |g, i| {
        prefix.push(i);
        let done = middle_axes(g, plan, out, prefix);
        prefix.pop();
        done
    })?;
    Ok(())
}

/// The offset of `prefix` (the indices of all but the last axis, each clamped to its axis
/// when `clamp`, as the scalar loads do) in a tensor of `view`'s shape.
fn row_offset(
    g: &mut Gen,
    view_dims: &[Value],
    strides: &[Value],
    prefix: &[Value],
    clamp: bool,
) -> Value {
    let mut offset = g.e.i64c(0);
    for ((&i, &d), &s) in prefix.iter().zip(view_dims).zip(strides) {
        let i = if clamp {
            let last = g.e.b.ins().iadd_imm_s(d, -1);
            g.e.b.ins().umin(i, last)
        } else {
            i
        };
        let t = g.e.b.ins().imul(i, s);
        offset = g.e.b.ins().iadd(offset, t);
    }
    offset
}

/// The elements `js..je` of the last axis at leading indices `prefix`: vectors while four
/// fit, then the scalar code.
fn row(
    g: &mut Gen,
    plan: &Plan,
    out: &TensorView,
    prefix: &[Value],
    js: Value,
    je: Value,
) -> Result<(), String> {
    let body = plan.body;
    let values = row_values(g, plan, out, prefix)?;
    let stop = counted_loop(g, js, je, WIDTH, true, |g, j| {
        vector(g, plan, out, &values, j, None, |g| {
            let lanes: Vec<Vec<Value>> = (0..WIDTH)
                .map(|l| {
                    let mut idx = prefix.to_vec();
                    idx.push(g.e.b.ins().iadd_imm_s(j, l));
                    idx
                })
                .collect();
            g.element(out, &lanes, body)
        })
    })?;
    counted_loop(g, stop, je, 1, false, |g, j| {
        let mut idx = prefix.to_vec();
        idx.push(j);
        g.element(out, &[idx], body)
    })?;
    Ok(())
}

/// What the vectors of one row share: index values, the lane-contiguous loads' row offsets,
/// the values that do not depend on the last axis, and the lanes they already send to the
/// scalar code.
pub(super) struct RowValues {
    index: HashMap<ValueId, Value>,
    rows: HashMap<OpId, Value>,
    vals: HashMap<ValueId, Value>,
    outside: Option<Value>,
    out_row: Value,
}

/// Computes the row values at leading indices `prefix` (all axes but the last).
pub(super) fn row_values(
    g: &mut Gen,
    plan: &Plan,
    out: &TensorView,
    prefix: &[Value],
) -> Result<RowValues, String> {
    let ir = g.ir;
    let body = plan.body;
    let args = ir.blocks[body].args.clone();
    let mut index: HashMap<ValueId, Value> =
        args.iter().zip(prefix).map(|(&a, &i)| (a, i)).collect();
    let out_row = row_offset(g, &out.dims, &out.strides, prefix, false);
    let mut rows = HashMap::new();
    let mut vals = HashMap::new();
    let mut outside = None;
    let ops = ir.blocks[body].ops.clone();
    let (_, ops) = ops.split_last().ok_or("a region ends in kernel.yield")?;
    for &op in ops {
        let o = &ir.ops[op];
        if o.name() == "kernel.index" {
            let v = o.attr("value").and_then(Attr::as_int).unwrap_or(0);
            index.insert(o.results[0], g.e.i64c(v));
        } else if o.name() == "kernel.load" && plan.varying.contains(&op) {
            let t = &g.tensors[&o.operands[0]];
            let (dims, strides) = (t.dims.clone(), t.strides.clone());
            let (_, leading) = o.operands[1..].split_last().ok_or("a load has indices")?;
            let leading = index_values(g, &index, leading)?;
            rows.insert(op, row_offset(g, &dims, &strides, &leading, true));
        } else if !plan.varying.contains(&op) {
            let v = vector_op(g, plan, op, &vals, &index, None, &rows, &mut outside)?;
            vals.insert(o.results[0], v);
        }
    }
    Ok(RowValues {
        index,
        rows,
        vals,
        outside,
        out_row,
    })
}

/// The elements `j..j+4` of the row of `row`: stored from the vector code, or computed by
/// `scalar` where a lane is outside the vector code's conditions (module doc). `given`: the
/// four lanes of the plan's given accumulation.
pub(super) fn vector(
    g: &mut Gen,
    plan: &Plan,
    out: &TensorView,
    row: &RowValues,
    j: Value,
    given: Option<Value>,
    scalar: impl FnOnce(&mut Gen) -> Result<(), String>,
) -> Result<(), String> {
    let ir = g.ir;
    let ops = &ir.blocks[plan.body].ops;
    let (&yield_op, ops) = ops.split_last().ok_or("a region ends in kernel.yield")?;
    let mut vals = row.vals.clone();
    let mut outside = row.outside;
    for &op in ops {
        if Some(op) == plan.given {
            vals.insert(
                ir.ops[op].results[0],
                given.ok_or("the accumulation's lanes")?,
            );
        } else if plan.varying.contains(&op) {
            let v = vector_op(
                g,
                plan,
                op,
                &vals,
                &row.index,
                Some(j),
                &row.rows,
                &mut outside,
            )?;
            vals.insert(ir.ops[op].results[0], v);
        }
    }
    let result = *vals
        .get(&ir.ops[yield_op].operands[0])
        .ok_or("a yielded value")?;
    let at = g.e.b.ins().iadd(row.out_row, j);
    let bytes = g.e.b.ins().ishl_imm_s(at, 2);
    let addr = g.e.b.ins().iadd(out.ptr, bytes);
    let flags = MemFlagsData::new().with_notrap();
    match outside {
        None => {
            g.e.b.ins().store(flags, result, addr, 0);
        }
        Some(outside) => {
            let vector = g.e.b.create_block();
            let lanes = g.e.b.create_block();
            let join = g.e.b.create_block();
            let any = g.e.b.ins().vany_true(outside);
            g.e.b.ins().brif(any, lanes, &[], vector, &[]);
            g.e.b.switch_to_block(vector);
            g.e.b.ins().store(flags, result, addr, 0);
            g.e.b.ins().jump(join, &[]);
            g.e.b.switch_to_block(lanes);
            scalar(g)?;
            g.e.b.ins().jump(join, &[]);
            g.e.b.switch_to_block(join);
        }
    }
    Ok(())
}

/// The values of the index operands `operands` (row indices, constants, captured indices).
fn index_values(
    g: &Gen,
    index: &HashMap<ValueId, Value>,
    operands: &[ValueId],
) -> Result<Vec<Value>, String> {
    operands
        .iter()
        .map(|v| match index.get(v) {
            Some(&x) => Ok(x),
            None => match g.vals.get(v) {
                Some(Lv::Shared(Cv::Index(x))) => Ok(*x),
                _ => Err("an index operand".to_string()),
            },
        })
        .collect()
}

/// Adds the lanes `flags` (all ones where set) to the lanes that take the scalar code.
fn flag(g: &mut Gen, outside: &mut Option<Value>, flags: Value) {
    *outside = Some(match *outside {
        Some(o) => g.e.b.ins().bor(o, flags),
        None => flags,
    });
}

/// The four lanes' values of the region op `op`; `j`: the vector's first position on the
/// last axis (`None` for ops computed once per row); `rows`: the contiguous loads' row offsets.
#[allow(clippy::too_many_arguments)]
fn vector_op(
    g: &mut Gen,
    plan: &Plan,
    op: OpId,
    vals: &HashMap<ValueId, Value>,
    index: &HashMap<ValueId, Value>,
    j: Option<Value>,
    rows: &HashMap<OpId, Value>,
    outside: &mut Option<Value>,
) -> Result<Value, String> {
    let ir = g.ir;
    let o = &ir.ops[op];
    let operand = |k: usize| {
        vals.get(&o.operands[k])
            .copied()
            .ok_or_else(|| "an operand".to_string())
    };
    let value = match o.name() {
        "kernel.constant" => {
            let v = o.attr("value").and_then(Attr::as_f64).unwrap_or(0.0);
            fvec(g, v as f32)
        }
        "kernel.load" => {
            let t = g
                .tensors
                .get(&o.operands[0])
                .ok_or("a load from a tensor")?;
            let ptr = t.ptr;
            if let Some(j) = j.filter(|_| plan.varying.contains(&op)) {
                let at = g.e.b.ins().iadd(rows[&op], j);
                let bytes = g.e.b.ins().ishl_imm_s(at, 2);
                let addr = g.e.b.ins().iadd(ptr, bytes);
                g.e.b
                    .ins()
                    .load(types::F32X4, MemFlagsData::new().with_notrap(), addr, 0)
            } else {
                let (dims, strides) = (t.dims.clone(), t.strides.clone());
                let idx = index_values(g, index, &o.operands[1..])?;
                let offset = row_offset(g, &dims, &strides, &idx, true);
                let bytes = g.e.b.ins().ishl_imm_s(offset, 2);
                let addr = g.e.b.ins().iadd(ptr, bytes);
                let x =
                    g.e.b
                        .ins()
                        .load(types::F32, MemFlagsData::trusted(), addr, 0);
                g.e.b.ins().splat(types::F32X4, x)
            }
        }
        name => {
            let format =
                vector_rounding(ir, op).ok_or("a rounding the vector code was planned for")?;
            let exact = match name {
                "kernel.add" => {
                    let (a, b) = (operand(0)?, operand(1)?);
                    g.e.b.ins().fadd(a, b)
                }
                "kernel.sub" => {
                    let (a, b) = (operand(0)?, operand(1)?);
                    g.e.b.ins().fsub(a, b)
                }
                "kernel.min" => {
                    let (a, b) = (operand(0)?, operand(1)?);
                    g.e.b.ins().fmin(a, b)
                }
                "kernel.max" => {
                    let (a, b) = (operand(0)?, operand(1)?);
                    g.e.b.ins().fmax(a, b)
                }
                "kernel.round" => operand(0)?,
                "kernel.mul" => {
                    let (a, b) = (operand(0)?, operand(1)?);
                    let p = g.e.b.ins().fmul(a, b);
                    if format.is_some() {
                        exact_product_lanes(g, plan.fma_checked.contains(&op), a, b, p, outside);
                    }
                    p
                }
                other => return Err(format!("`{other}` in vector code")),
            };
            match format {
                None => exact,
                Some(f) => round_narrow(g, exact, &f, outside),
            }
        }
    };
    Ok(value)
}

/// Flags the lanes where `p = fmul(a, b)` may not be the exact product (module doc).
fn exact_product_lanes(
    g: &mut Gen,
    fma_checked: bool,
    a: Value,
    b: Value,
    p: Value,
    outside: &mut Option<Value>,
) {
    let abs_mask = ivec(g, i32::MAX);
    let pb = as_int(g, p);
    let pm = g.e.b.ins().band(pb, abs_mask);
    let inf_bits = ivec(g, 0x7f80_0000);
    let not_finite =
        g.e.b
            .ins()
            .icmp(IntCC::SignedGreaterThanOrEqual, pm, inf_bits);
    flag(g, outside, not_finite);
    let tiny_bits = ivec(g, TINY_PRODUCT.to_bits() as i32);
    let tiny = g.e.b.ins().icmp(IntCC::SignedLessThan, pm, tiny_bits);
    let zero = ivec(g, 0);
    let ab = as_int(g, a);
    let am = g.e.b.ins().band(ab, abs_mask);
    let a_nonzero = g.e.b.ins().icmp(IntCC::NotEqual, am, zero);
    let bb = as_int(g, b);
    let bm = g.e.b.ins().band(bb, abs_mask);
    let b_nonzero = g.e.b.ins().icmp(IntCC::NotEqual, bm, zero);
    let tiny = g.e.b.ins().band(tiny, a_nonzero);
    let tiny = g.e.b.ins().band(tiny, b_nonzero);
    flag(g, outside, tiny);
    if fma_checked {
        let minus_p = g.e.b.ins().fneg(p);
        let residue = g.e.b.ins().fma(a, b, minus_p);
        let fzero = fvec(g, 0.0);
        let inexact = g.e.b.ins().fcmp(FloatCC::NotEqual, residue, fzero);
        flag(g, outside, inexact);
    }
}

/// Rounds `v` (exact f32 lanes) to `f` by `nearest`; finite lanes from 2^101 up become ±2^101
/// when `f` overflows below it, else they are flagged `outside`.
fn round_narrow(g: &mut Gen, v: Value, f: &FloatFormat, outside: &mut Option<Value>) -> Value {
    let bits = as_int(g, v);
    let abs_mask = ivec(g, i32::MAX);
    let magnitude = g.e.b.ins().band(bits, abs_mask);
    let large_bits = ivec(g, LARGE.to_bits() as i32);
    let inf_bits = ivec(g, 0x7f80_0000);
    let from_large =
        g.e.b
            .ins()
            .icmp(IntCC::SignedGreaterThanOrEqual, magnitude, large_bits);
    let finite = g.e.b.ins().icmp(IntCC::SignedLessThan, magnitude, inf_bits);
    let large = g.e.b.ins().band(from_large, finite);
    let v = if f.max() < (LARGE / 2.0) as f64 {
        let sign_mask = ivec(g, i32::MIN);
        let sign = g.e.b.ins().band(bits, sign_mask);
        let clamped = g.e.b.ins().bor(sign, large_bits);
        let bits = g.e.b.ins().bitselect(large, clamped, bits);
        as_float(g, bits)
    } else {
        flag(g, outside, large);
        v
    };
    if f.subnormals {
        round_nearest_with_subnormals(g, v, f)
    } else {
        round(g, v, f, Rounding::Nearest, None)
    }
}
