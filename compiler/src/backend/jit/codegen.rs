//! Scalar code generation (and the scaffolding `contract`'s and `pointwise`'s vector code share): one `kernel.generate` becomes one native function
//! `fn(env: *const u64, lo: u64, hi: u64)` that computes the elements whose leading position
//! (the row-major position over the first `min(rank, 2)` axes) lies in `[lo, hi)`.
//!
//! `env` holds the output (`[ptr, dims...]`) and then every value the region uses from
//! outside it, in [`KernelFn::captures`] order: a tensor as `[ptr, dims...]`, an index as
//! its value. Static sizes are compiled in; dynamic ones are read from `env` once.
//!
//! Values inside the region: `index` → i64; a scalar of a format → its f32 value; `real` (an
//! exact product of two f32 values) → its exact f64 value, keeping the two factors so a sum
//! into binary32 with `nearest` becomes one hardware fma. `kernel.accumulate` and
//! `kernel.reduce_max` are loops over block parameters `(k, acc)`; every other op is
//! straight-line code. Loads clamp each index to its axis (memory safety; the lowering
//! never loads out of range).
//!
//! A rank-2 element whose ops include a loop that does not depend on the innermost index (a
//! softmax gradient's maximum and sum over its row) runs row by row: each row computes
//! those ops once, before the loop over the innermost axis ([`row_invariant_ops`]).

use super::exact_call::{encode_mode, encode_target, Inexact};
use super::round::{odd_rounding_is_exact, Emit, Target};
use crate::ir::{Attr, Dim, Module, OpId, Type, ValueDef, ValueId};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, FuncRef, InstBuilder, MemFlagsData, UserFuncName, Value};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module as _};
use qc_runtime::numerics::Rounding;
use std::collections::{HashMap, HashSet};

/// A value a kernel reads from outside its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Capture {
    Tensor(ValueId),
    Index(ValueId),
}

/// A compiled `kernel.generate`.
pub(super) struct KernelFn {
    pub id: FuncId,
    pub captures: Vec<Capture>,
    /// How many leading axes the `[lo, hi)` range runs over (0 for a rank-0 result).
    pub split: usize,
    /// Estimated work per element (ops executed), to decide whether threads pay off.
    pub cost_per_element: f64,
    /// The random streams the kernel draws from: their keys follow the captures in `env`
    /// (one word each, `k0 | k1 << 32`), so the run's seed is an input, not compiled in.
    pub streams: Vec<u64>,
    /// For vector contraction code: the function that packs an operand into a scratch
    /// buffer before the kernel runs (`contract`).
    pub pack: Option<super::contract::Pack>,
}

/// Every `stream` attribute inside the generate `op`, sorted.
fn streams_of(ir: &Module, op: OpId) -> Vec<u64> {
    let mut inner_ops = Vec::new();
    for &r in &ir.ops[op].regions {
        ir.collect_ops(r, &mut inner_ops);
    }
    let mut streams: Vec<u64> = inner_ops.iter().filter_map(|&o| ir.ops[o].attr("stream").and_then(crate::ir::Attr::as_int)).map(|s| s as u64).collect();
    streams.sort_unstable();
    streams.dedup();
    streams
}

/// The functions kernels call: the f64 → f64 libm reference values, and the runtime's exact
/// rounding for what inline code cannot round (`exact_call`).
#[derive(Clone, Copy)]
pub(super) struct Helpers {
    pub exp: FuncId,
    pub tanh: FuncId,
    pub sigmoid: FuncId,
    pub gelu: FuncId,
    pub exact: FuncId,
}

/// A value inside a region (for one output element).
#[derive(Clone, Copy)]
pub(super) enum Cv {
    Index(Value),
    F32(Value),
    /// An exact product, as f64, with its f32 factors.
    Real(Value, Value, Value),
}

/// A value for the elements computed together: one shared by all of them, or one per lane.
#[derive(Clone)]
pub(super) enum Lv {
    Shared(Cv),
    Lanes(Vec<Cv>),
}

/// Output elements computed together in one pass of the innermost loop: their
/// accumulations run in one loop with independent accumulators, so the processor overlaps
/// the (long) dependency chains of their additions. Each element's additions keep their order.
const LANES: usize = 4;

pub(super) struct TensorView {
    pub ptr: Value,
    pub dims: Vec<Value>,
    pub strides: Vec<Value>,
}

pub(super) struct Gen<'a, 'b> {
    pub e: Emit<'a, 'b>,
    pub ir: &'a Module,
    pub vals: HashMap<ValueId, Lv>,
    /// The lane whose values `get` reads.
    pub lane: usize,
    pub tensors: HashMap<ValueId, TensorView>,
    funcs: HashMap<&'static str, FuncRef>,
    /// Ops whose values are already computed (the vector contraction's accumulate, which
    /// its scalar epilogue reuses).
    pub precomputed: HashMap<OpId, Lv>,
}

/// Compiles the `kernel.generate` `op` of `ir` into `jit`: the vector contraction code when
/// `contract` recognises it, the element-wise vector code when `pointwise` does, else scalar code.
pub(super) fn compile_generate(jit: &mut JITModule, fctx: &mut FunctionBuilderContext, ir: &Module, op: OpId, helpers: Helpers, name: &str) -> Result<KernelFn, String> {
    let fma = super::pointwise::has_fma(jit);
    if let Some(plan) = super::contract::plan(ir, op, fma) {
        return super::contract::compile(jit, fctx, ir, op, helpers, name, &plan);
    }
    if let Some(plan) = super::pointwise::plan(ir, op, fma) {
        return super::pointwise::compile(jit, fctx, ir, op, helpers, name, &plan);
    }
    let o = &ir.ops[op];
    let out_ty = ir.ty(o.results[0]).as_tensor().ok_or("a generate makes a tensor")?.clone();
    let rank = out_ty.rank();
    let block = ir.entry_block(o.regions[0]).ok_or("a generate has a body")?;
    let cost = element_cost(ir, block);
    let hoisted = if rank == 2 { row_invariant_ops(ir, block) } else { Vec::new() };
    let split = if hoisted.is_empty() { rank.min(2) } else { 1 };
    let (id, captures, streams) = build_function(jit, fctx, ir, op, helpers, name, |g, out, _env, _slot, mut lo, hi| {
        if split == rank && rank > 0 {
            // LANES rows at a time while they fit, then one at a time.
            lo = g.row_lanes(out, block, lo, hi)?;
        }
        // for r in lo..hi: the leading indices, then loops over the remaining axes.
        let header = g.e.b.create_block();
        let body = g.e.b.create_block();
        let exit = g.e.b.create_block();
        g.e.b.append_block_param(header, types::I64);
        g.e.b.ins().jump(header, &[lo.into()]);
        g.e.b.switch_to_block(header);
        let r = g.e.b.block_params(header)[0];
        let more = g.e.b.ins().icmp(IntCC::UnsignedLessThan, r, hi);
        g.e.b.ins().brif(more, body, &[], exit, &[]);
        g.e.b.switch_to_block(body);
        let mut idx = g.leading(out, r, split);
        if let (Some(&row_arg), false) = (ir.blocks[block].args.first(), hoisted.is_empty()) {
            g.vals.insert(row_arg, Lv::Shared(Cv::Index(idx[0])));
            for &op in &hoisted {
                g.emit_in_block(op, 1)?;
                let result = ir.ops[op].results.first().ok_or("a hoisted op has a result")?;
                g.precomputed.insert(op, g.vals[result].clone());
            }
        }
        g.axis_loops(out, &mut idx, split, block)?;
        for op in &hoisted {
            g.precomputed.remove(op);
        }
        let next = g.e.b.ins().iadd_imm_s(r, 1);
        g.e.b.ins().jump(header, &[next.into()]);
        g.e.b.switch_to_block(exit);
        Ok(())
    })?;
    Ok(KernelFn { id, captures, split, cost_per_element: cost, streams, pack: None })
}

/// The ops of the element's block `body` that do not depend on its last argument (the
/// innermost index), directly or inside their regions, in order; empty unless one of them
/// is a loop (what hoisting them out of the innermost axis's loop saves).
fn row_invariant_ops(ir: &Module, body: crate::ir::BlockId) -> Vec<OpId> {
    let Some(&innermost) = ir.blocks[body].args.last() else {
        return Vec::new();
    };
    let mut varying: HashSet<ValueId> = HashSet::from([innermost]);
    let mut invariant = Vec::new();
    for &op in &ir.blocks[body].ops {
        let o = &ir.ops[op];
        if o.name() == "kernel.yield" || o.results.is_empty() {
            continue;
        }
        let mut inside = Vec::new();
        for &r in &o.regions {
            ir.collect_ops(r, &mut inside);
        }
        let uses = o.operands.iter().chain(inside.iter().flat_map(|&i| &ir.ops[i].operands));
        if uses.into_iter().any(|v| varying.contains(v)) {
            varying.extend(o.results.iter().copied());
        } else {
            invariant.push(op);
        }
    }
    if invariant.iter().any(|&op| !ir.ops[op].regions.is_empty()) {
        invariant
    } else {
        Vec::new()
    }
}

/// Declares and defines a native function `fn(env, lo, hi)` for the generate `op`: the entry
/// reads the output view, the captures and the stream keys from `env` (module doc), then
/// `body(gen, output view, env, next free env slot, lo, hi)` emits the rest; the function
/// returns where `body` leaves off. Returns the function, the captures and the streams.
#[allow(clippy::type_complexity)]
pub(super) fn build_function(
    jit: &mut JITModule,
    fctx: &mut FunctionBuilderContext,
    ir: &Module,
    op: OpId,
    helpers: Helpers,
    name: &str,
    body: impl FnOnce(&mut Gen, &TensorView, Value, i32, Value, Value) -> Result<(), String>,
) -> Result<(FuncId, Vec<Capture>, Vec<u64>), String> {
    let o = &ir.ops[op];
    let out_ty = ir.ty(o.results[0]).as_tensor().ok_or("a generate makes a tensor")?.clone();
    let captures = captures_of(ir, op);
    let streams = streams_of(ir, op);
    let mut sig = jit.make_signature();
    for _ in 0..3 {
        sig.params.push(AbiParam::new(types::I64));
    }
    let id = jit.declare_function(name, Linkage::Local, &sig).map_err(|e| e.to_string())?;
    let mut ctx = jit.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut funcs = HashMap::new();
    for (key, fid) in [("exp", helpers.exp), ("tanh", helpers.tanh), ("sigmoid", helpers.sigmoid), ("gelu", helpers.gelu), ("exact", helpers.exact)] {
        funcs.insert(key, jit.declare_func_in_func(fid, &mut ctx.func));
    }
    let frontend = jit.target_config();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (env, lo, hi) = (params[0], params[1], params[2]);
        let mut g = Gen { e: Emit { b: &mut b, keys: HashMap::new() }, ir, vals: HashMap::new(), lane: 0, tensors: HashMap::new(), funcs, precomputed: HashMap::new() };
        let mut slot = 0i32;
        let out = g.view(env, &mut slot, &out_ty.dims);
        for c in &captures {
            match *c {
                Capture::Tensor(v) => {
                    let t = ir.ty(v).as_tensor().ok_or("a captured tensor")?;
                    let view = g.view(env, &mut slot, &t.dims);
                    g.tensors.insert(v, view);
                }
                Capture::Index(v) => {
                    let x = g.e.b.ins().load(types::I64, MemFlagsData::trusted(), env, slot * 8);
                    slot += 1;
                    g.vals.insert(v, Lv::Shared(Cv::Index(x)));
                }
            }
        }
        for &stream in &streams {
            let key = g.e.b.ins().load(types::I64, MemFlagsData::trusted(), env, slot * 8);
            slot += 1;
            g.e.keys.insert(stream, key);
        }
        body(&mut g, &out, env, slot, lo, hi)?;
        g.e.b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(frontend);
    }
    // QC_JIT_DISASM=<part of a kernel name>: print that kernel's machine code to stderr
    // (a developer's view of register blocking and spills).
    let disasm = std::env::var("QC_JIT_DISASM").is_ok_and(|part| name.contains(&part));
    ctx.set_disasm(disasm);
    jit.define_function(id, &mut ctx).map_err(|e| format!("code generation failed: {e:?}"))?;
    if let Some(code) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()).filter(|_| disasm) {
        eprintln!("; kernel {name}\n{code}");
    }
    jit.clear_context(&mut ctx);
    Ok((id, captures, streams))
}

/// The values used inside `op`'s region (at any depth) that are defined outside it.
fn captures_of(ir: &Module, op: OpId) -> Vec<Capture> {
    let mut inner_ops = Vec::new();
    for &r in &ir.ops[op].regions {
        ir.collect_ops(r, &mut inner_ops);
    }
    let inside: HashSet<OpId> = inner_ops.iter().copied().collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for &o in &inner_ops {
        for &v in &ir.ops[o].operands {
            let defined_inside = match ir.values[v].def {
                ValueDef::Result { op, .. } => inside.contains(&op),
                ValueDef::Arg { block, .. } => {
                    let region = ir.blocks[block].parent;
                    region.and_then(|r| ir.regions[r].parent).is_some_and(|p| p == op || inside.contains(&p))
                }
            };
            if !defined_inside && seen.insert(v) {
                out.push(match ir.ty(v) {
                    Type::Tensor(_) => Capture::Tensor(v),
                    _ => Capture::Index(v),
                });
            }
        }
    }
    out
}

/// Ops executed per element: each op once, loop bodies times their trip count (constant
/// bounds, else a guess of 64).
fn element_cost(ir: &Module, block: crate::ir::BlockId) -> f64 {
    let mut cost = 0.0;
    for &op in &ir.blocks[block].ops {
        let o = &ir.ops[op];
        cost += 1.0;
        if let Some(&region) = o.regions.first() {
            let Some(inner) = ir.entry_block(region) else { continue };
            let trip = match (constant_index(ir, o.operands[0]), o.operands.get(1).and_then(|&v| constant_index(ir, v))) {
                (Some(lo), Some(hi)) if o.name() != "kernel.generate" => (hi.saturating_sub(lo)) as f64,
                _ => 64.0,
            };
            cost += trip * element_cost(ir, inner);
        }
    }
    cost
}

fn constant_index(ir: &Module, v: ValueId) -> Option<u64> {
    match ir.values[v].def {
        ValueDef::Result { op, .. } if ir.ops[op].name() == "kernel.index" => ir.ops[op].attr("value").and_then(Attr::as_int).map(|n| n as u64),
        _ => None,
    }
}

fn attr_int(ir: &Module, op: OpId, name: &str) -> Option<i64> {
    ir.ops[op].attr(name).and_then(Attr::as_int)
}

impl Gen<'_, '_> {
    /// Reads a tensor's `[ptr, dims...]` from `env` at `slot` and computes its strides.
    fn view(&mut self, env: Value, slot: &mut i32, dims: &[Dim]) -> TensorView {
        let ptr = self.e.b.ins().load(types::I64, MemFlagsData::trusted(), env, *slot * 8);
        *slot += 1;
        let mut vals = Vec::new();
        for d in dims {
            let v = match d {
                Dim::Fixed(n) => self.e.i64c(*n as i64),
                Dim::Dynamic => self.e.b.ins().load(types::I64, MemFlagsData::trusted(), env, *slot * 8),
            };
            *slot += 1;
            vals.push(v);
        }
        let mut strides = vec![self.e.i64c(1); dims.len()];
        for a in (0..dims.len().saturating_sub(1)).rev() {
            strides[a] = self.e.b.ins().imul(strides[a + 1], vals[a + 1]);
        }
        TensorView { ptr, dims: vals, strides }
    }

    /// The leading indices of row position `r`.
    pub(super) fn leading(&mut self, out: &TensorView, r: Value, split: usize) -> Vec<Value> {
        match split {
            2 => {
                let d1 = out.dims[1];
                vec![self.e.b.ins().udiv(r, d1), self.e.b.ins().urem(r, d1)]
            }
            1 => vec![r],
            _ => vec![],
        }
    }

    /// `for r = lo; r + LANES ≤ hi; r += LANES`: LANES rows at once. Returns where it stopped.
    fn row_lanes(&mut self, out: &TensorView, body: crate::ir::BlockId, lo: Value, hi: Value) -> Result<Value, String> {
        counted_loop(self, lo, hi, LANES as i64, true, |g, r| {
            let split = out.dims.len();
            let idx: Vec<Vec<Value>> = (0..LANES)
                .map(|l| {
                    let rl = g.e.b.ins().iadd_imm_s(r, l as i64);
                    g.leading(out, rl, split)
                })
                .collect();
            g.element(out, &idx, body)
        })
    }

    /// Computes and stores the elements at `idx` (one index vector per lane).
    pub(super) fn element(&mut self, out: &TensorView, idx: &[Vec<Value>], body: crate::ir::BlockId) -> Result<(), String> {
        let lanes = idx.len();
        let args = self.ir.blocks[body].args.clone();
        for (axis, a) in args.iter().enumerate() {
            let per_lane: Vec<Cv> = idx.iter().map(|i| Cv::Index(i[axis])).collect();
            // An index every lane shares (all but the innermost axis) is one value, so the
            // code depending only on it runs once for the lanes.
            let shared = idx.iter().all(|i| i[axis] == idx[0][axis]);
            self.vals.insert(*a, if shared { per_lane[0].into() } else { Lv::Lanes(per_lane) });
        }
        let yielded = self.emit_block(body, lanes)?;
        for (l, i) in idx.iter().enumerate() {
            let value = match yielded.first().map(|y| lane_of(y, l)) {
                Some(Cv::F32(v)) => v,
                _ => return Err("a generate yields one scalar".into()),
            };
            let mut offset = self.e.i64c(0);
            for (i, s) in i.iter().zip(&out.strides) {
                let t = self.e.b.ins().imul(*i, *s);
                offset = self.e.b.ins().iadd(offset, t);
            }
            let bytes = self.e.b.ins().ishl_imm_s(offset, 2);
            let addr = self.e.b.ins().iadd(out.ptr, bytes);
            self.e.b.ins().store(MemFlagsData::trusted(), value, addr, 0);
        }
        Ok(())
    }

    /// Loops over axes `axis..` of the output, then the element itself; the innermost axis
    /// (when it is not a leading one) runs LANES elements at a time while they fit.
    fn axis_loops(&mut self, out: &TensorView, idx: &mut Vec<Value>, axis: usize, body: crate::ir::BlockId) -> Result<(), String> {
        if axis == out.dims.len() {
            return self.element(out, std::slice::from_ref(idx), body);
        }
        let innermost = axis + 1 == out.dims.len();
        let mut start = self.e.i64c(0);
        if innermost {
            let header = self.e.b.create_block();
            let inner = self.e.b.create_block();
            let exit = self.e.b.create_block();
            self.e.b.append_block_param(header, types::I64);
            self.e.b.append_block_param(exit, types::I64);
            self.e.b.ins().jump(header, &[start.into()]);
            self.e.b.switch_to_block(header);
            let i = self.e.b.block_params(header)[0];
            let end = self.e.b.ins().iadd_imm_s(i, LANES as i64);
            let fits = self.e.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, out.dims[axis]);
            self.e.b.ins().brif(fits, inner, &[], exit, &[i.into()]);
            self.e.b.switch_to_block(inner);
            let lanes: Vec<Vec<Value>> = (0..LANES)
                .map(|l| {
                    let mut v = idx.clone();
                    v.push(self.e.b.ins().iadd_imm_s(i, l as i64));
                    v
                })
                .collect();
            self.element(out, &lanes, body)?;
            self.e.b.ins().jump(header, &[end.into()]);
            self.e.b.switch_to_block(exit);
            start = self.e.b.block_params(exit)[0];
        }
        let header = self.e.b.create_block();
        let inner = self.e.b.create_block();
        let exit = self.e.b.create_block();
        self.e.b.append_block_param(header, types::I64);
        self.e.b.ins().jump(header, &[start.into()]);
        self.e.b.switch_to_block(header);
        let i = self.e.b.block_params(header)[0];
        let more = self.e.b.ins().icmp(IntCC::UnsignedLessThan, i, out.dims[axis]);
        self.e.b.ins().brif(more, inner, &[], exit, &[]);
        self.e.b.switch_to_block(inner);
        idx.push(i);
        self.axis_loops(out, idx, axis + 1, body)?;
        idx.pop();
        let next = self.e.b.ins().iadd_imm_s(i, 1);
        self.e.b.ins().jump(header, &[next.into()]);
        self.e.b.switch_to_block(exit);
        Ok(())
    }

    /// Emits the ops of a region block; returns what its `kernel.yield` yields.
    /// `lanes` elements are computed together: an op whose operands are all shared is
    /// emitted once, others once per lane; loops keep one accumulator per lane.
    fn emit_block(&mut self, block: crate::ir::BlockId, lanes: usize) -> Result<Vec<Lv>, String> {
        for &op in &self.ir.blocks[block].ops {
            let o = &self.ir.ops[op];
            if o.name() == "kernel.yield" {
                return o.operands.iter().map(|v| self.vals.get(v).cloned().ok_or_else(|| "a yielded value".to_string())).collect();
            }
            self.emit_in_block(op, lanes)?;
        }
        Err("a region ends in kernel.yield".into())
    }

    /// [`Self::emit_block`] without the ops of `emitted` (already emitted).
    fn emit_block_except(&mut self, block: crate::ir::BlockId, lanes: usize, emitted: &HashSet<OpId>) -> Result<Vec<Lv>, String> {
        for &op in &self.ir.blocks[block].ops {
            let o = &self.ir.ops[op];
            if o.name() == "kernel.yield" {
                return o.operands.iter().map(|v| self.vals.get(v).cloned().ok_or_else(|| "a yielded value".to_string())).collect();
            }
            if !emitted.contains(&op) {
                self.emit_in_block(op, lanes)?;
            }
        }
        Err("a region ends in kernel.yield".into())
    }

    /// Emits one op of a region block for `lanes` elements and records its value.
    pub(super) fn emit_in_block(&mut self, op: OpId, lanes: usize) -> Result<(), String> {
        {
            let o = &self.ir.ops[op];
            let result = o.results.first().copied();
            let value = match o.name() {
                _ if self.precomputed.contains_key(&op) => self.precomputed[&op].clone(),
                "kernel.accumulate" | "kernel.reduce_max" => self.loop_op(op, lanes)?,
                _ => {
                    let varying = lanes > 1 && o.operands.iter().any(|v| matches!(self.vals.get(v), Some(Lv::Lanes(_))));
                    if varying {
                        let mut per_lane = Vec::with_capacity(lanes);
                        for l in 0..lanes {
                            self.lane = l;
                            per_lane.push(self.emit_op(op)?);
                        }
                        Lv::Lanes(per_lane)
                    } else {
                        // Shared operands (or one lane: `self.lane` picks it).
                        Lv::Shared(self.emit_op(op)?)
                    }
                }
            };
            if let Some(r) = result {
                self.vals.insert(r, value);
            }
        }
        Ok(())
    }

    /// The value of `v` in the current lane.
    fn get(&self, v: ValueId) -> Option<Cv> {
        self.vals.get(&v).map(|x| lane_of(x, self.lane))
    }

    /// An accumulate or reduce_max over `lanes` elements: one loop with an accumulator per
    /// lane when the bounds are shared, else one loop per lane.
    fn loop_op(&mut self, op: OpId, lanes: usize) -> Result<Lv, String> {
        let o = &self.ir.ops[op];
        let shared_bounds = o.operands[..2].iter().all(|v| matches!(self.vals.get(v), Some(Lv::Shared(_))));
        if lanes > 1 && !shared_bounds {
            let mut per_lane = Vec::with_capacity(lanes);
            for l in 0..lanes {
                self.lane = l;
                per_lane.push(lane_of(&self.loop_lanes(op, 1)?, 0));
            }
            return Ok(Lv::Lanes(per_lane));
        }
        self.loop_lanes(op, lanes)
    }

    pub(super) fn index(&self, v: ValueId) -> Result<Value, String> {
        match self.get(v) {
            Some(Cv::Index(x)) => Ok(x),
            _ => Err("an index operand".into()),
        }
    }

    /// A number as f64 (exact).
    fn as_f64(&mut self, c: Cv) -> Result<Value, String> {
        match c {
            Cv::F32(v) => Ok(self.e.b.ins().fpromote(types::F64, v)),
            Cv::Real(v, _, _) => Ok(v),
            Cv::Index(_) => Err("a number operand".into()),
        }
    }

    fn num(&self, v: ValueId) -> Result<Cv, String> {
        match self.get(v) {
            Some(c @ (Cv::F32(_) | Cv::Real(..))) => Ok(c),
            _ => Err("a number operand".into()),
        }
    }

    fn f32_of(&self, v: ValueId) -> Option<Value> {
        match self.get(v) {
            Some(Cv::F32(x)) => Some(x),
            _ => None,
        }
    }

    /// The result format, mode, stream and draw counter of a rounded op with `inputs`
    /// number operands.
    pub(super) fn rounding(&self, op: OpId, inputs: usize) -> Result<(Target, Rounding, u64, Option<Value>), String> {
        let o = &self.ir.ops[op];
        let format = self.ir.ty(o.results[0]).scalar_format().ok_or("a rounded result is a scalar")?;
        let target = Target::of(&format)?;
        let mode = match o.attr("round") {
            Some(Attr::Rounding(r)) => *r,
            _ => Rounding::Nearest,
        };
        let stream = attr_int(self.ir, op, "stream").unwrap_or(0) as u64;
        let draw = if mode.is_stochastic() { Some(self.index(o.operands[inputs])?) } else { None };
        Ok((target, mode, stream, draw))
    }

    fn round_exact(&mut self, x: Value, r: &(Target, Rounding, u64, Option<Value>)) -> Value {
        self.e.round(x, &r.0, r.1, r.2, r.3)
    }

    /// The result of `kind` on `x` (and `y`), f64 values, rounded once: inline from the
    /// odd-rounded f64 when that decides the rounding, else by the runtime (`exact_call`).
    fn round_inexact(&mut self, kind: Inexact, x: Value, y: Value, r: &(Target, Rounding, u64, Option<Value>)) -> Result<Value, String> {
        if odd_rounding_is_exact(&r.0, r.1) {
            let v = match kind {
                Inexact::Sum => self.e.sum_to_odd(x, y),
                Inexact::Quotient => self.e.div_to_odd(x, y),
                Inexact::Root => self.e.sqrt_to_odd(x),
            };
            return Ok(self.e.round(v, &r.0, r.1, r.2, r.3));
        }
        let (Some(mode), Some(index)) = (encode_mode(r.1), r.3) else {
            return Err(format!("`{}` of a sum needs more exact bits than the JIT keeps", r.1));
        };
        let key = *self.e.keys.get(&r.2).ok_or("a random stream's key is missing")?;
        let (tag, format, lo, hi) = encode_target(&r.0);
        let op = self.e.i64c(kind as i64);
        let tag = self.e.i64c(tag);
        let format = self.e.i64c(format);
        let lo = self.e.f64c(lo);
        let hi = self.e.f64c(hi);
        let mode = self.e.i64c(mode);
        let f = self.funcs["exact"];
        let call = self.e.b.ins().call(f, &[op, x, y, tag, format, lo, hi, mode, key, index]);
        Ok(self.e.b.inst_results(call)[0])
    }

    /// `a + b` rounded once (a, b numbers).
    fn add(&mut self, a: Cv, b: Cv, r: &(Target, Rounding, u64, Option<Value>)) -> Result<Value, String> {
        if r.0.is_binary32() && r.1 == Rounding::Nearest {
            // binary32 `nearest` is the hardware's rounding of the exact sum (IEEE 754).
            match (a, b) {
                (Cv::F32(x), Cv::F32(y)) => return Ok(self.e.b.ins().fadd(x, y)),
                (Cv::F32(acc), Cv::Real(_, x, y)) | (Cv::Real(_, x, y), Cv::F32(acc)) => return Ok(self.e.b.ins().fma(x, y, acc)),
                _ => {}
            }
        }
        let x = self.as_f64(a)?;
        let y = self.as_f64(b)?;
        self.round_inexact(Inexact::Sum, x, y, r)
    }

    /// Emits a region-free op for the current lane and returns its value.
    fn emit_op(&mut self, op: OpId) -> Result<Cv, String> {
        let o = &self.ir.ops[op];
        let name = o.name();
        let ops = o.operands.clone();
        let result = o.results.first().copied();
        let value = match name {
            "kernel.index" => Cv::Index(self.e.i64c(attr_int(self.ir, op, "value").unwrap_or(0))),
            "kernel.index_add" | "kernel.index_mul" | "kernel.index_min" | "kernel.index_max" | "kernel.index_sub" | "kernel.index_div" | "kernel.index_rem" | "kernel.index_lt" => {
                let a = self.index(ops[0])?;
                let b = self.index(ops[1])?;
                let ins = self.e.b.ins();
                Cv::Index(match name {
                    "kernel.index_add" => ins.iadd(a, b),
                    "kernel.index_mul" => ins.imul(a, b),
                    "kernel.index_min" => ins.umin(a, b),
                    "kernel.index_max" => ins.umax(a, b),
                    "kernel.index_sub" => {
                        let m = ins.umin(a, b);
                        self.e.b.ins().isub(a, m)
                    }
                    "kernel.index_lt" => {
                        let c = ins.icmp(IntCC::UnsignedLessThan, a, b);
                        self.e.b.ins().uextend(types::I64, c)
                    }
                    _ => {
                        // b ≥ 1 by the IR's contract; 1 guards against a trap.
                        let one = ins.iconst(types::I64, 1);
                        let d = self.e.b.ins().umax(b, one);
                        if name == "kernel.index_div" { self.e.b.ins().udiv(a, d) } else { self.e.b.ins().urem(a, d) }
                    }
                })
            }
            "kernel.dim" => {
                let axis = attr_int(self.ir, op, "axis").unwrap_or(0) as usize;
                let t = self.tensors.get(&ops[0]).ok_or("kernel.dim of a tensor")?;
                Cv::Index(t.dims[axis])
            }
            "kernel.constant" => {
                let v = self.ir.ops[op].attr("value").and_then(Attr::as_f64).unwrap_or(0.0);
                Cv::F32(self.e.b.ins().f32const(v as f32))
            }
            "kernel.load" => {
                let idx: Vec<Value> = ops[1..].iter().map(|&v| self.index(v)).collect::<Result<_, _>>()?;
                let t = self.tensors.get(&ops[0]).ok_or("a load from a tensor")?;
                let (ptr, dims, strides) = (t.ptr, t.dims.clone(), t.strides.clone());
                let mut offset = self.e.i64c(0);
                for ((i, d), s) in idx.iter().zip(&dims).zip(&strides) {
                    let last = self.e.b.ins().iadd_imm_s(*d, -1);
                    let i = self.e.b.ins().umin(*i, last);
                    let t = self.e.b.ins().imul(i, *s);
                    offset = self.e.b.ins().iadd(offset, t);
                }
                let bytes = self.e.b.ins().ishl_imm_s(offset, 2);
                let addr = self.e.b.ins().iadd(ptr, bytes);
                Cv::F32(self.e.b.ins().load(types::F32, MemFlagsData::trusted(), addr, 0))
            }
            "kernel.select" => {
                let c = self.index(ops[0])?;
                let c = self.e.b.ins().icmp_imm_s(IntCC::NotEqual, c, 0);
                match (self.get(ops[1]).ok_or("an operand")?, self.get(ops[2]).ok_or("an operand")?) {
                    (Cv::F32(a), Cv::F32(b)) => Cv::F32(self.e.b.ins().select(c, a, b)),
                    (Cv::Index(a), Cv::Index(b)) => Cv::Index(self.e.b.ins().select(c, a, b)),
                    (Cv::Real(a, a1, a2), Cv::Real(b, b1, b2)) => {
                        let v = self.e.b.ins().select(c, a, b);
                        let x = self.e.b.ins().select(c, a1, b1);
                        let y = self.e.b.ins().select(c, a2, b2);
                        Cv::Real(v, x, y)
                    }
                    _ => return Err("kernel.select of operands of different kinds".into()),
                }
            }
            "kernel.mul" => {
                let (a, b) = (self.f32_of(ops[0]), self.f32_of(ops[1]));
                let (Some(a), Some(b)) = (a, b) else {
                    return Err("the JIT multiplies values of formats, not exact products".into());
                };
                if self.ir.ty(result.unwrap()) == &Type::Real {
                    let x = self.e.b.ins().fpromote(types::F64, a);
                    let y = self.e.b.ins().fpromote(types::F64, b);
                    Cv::Real(self.e.b.ins().fmul(x, y), a, b)
                } else {
                    let r = self.rounding(op, 2)?;
                    if r.0.is_binary32() && r.1 == Rounding::Nearest {
                        Cv::F32(self.e.b.ins().fmul(a, b))
                    } else {
                        // The product of two f32 values is exact in f64.
                        let x = self.e.b.ins().fpromote(types::F64, a);
                        let y = self.e.b.ins().fpromote(types::F64, b);
                        let p = self.e.b.ins().fmul(x, y);
                        Cv::F32(self.round_exact(p, &r))
                    }
                }
            }
            "kernel.add" | "kernel.sub" => {
                let r = self.rounding(op, 2)?;
                let a = self.num(ops[0])?;
                let mut b = self.num(ops[1])?;
                if name == "kernel.sub" {
                    b = match b {
                        Cv::F32(v) => Cv::F32(self.e.b.ins().fneg(v)),
                        Cv::Real(v, x, y) => {
                            let nv = self.e.b.ins().fneg(v);
                            let nx = self.e.b.ins().fneg(x);
                            Cv::Real(nv, nx, y)
                        }
                        i => i,
                    };
                }
                Cv::F32(self.add(a, b, &r)?)
            }
            "kernel.fma" => {
                let r = self.rounding(op, 3)?;
                let acc = self.num(ops[0])?;
                let (Some(a), Some(b)) = (self.f32_of(ops[1]), self.f32_of(ops[2])) else {
                    return Err("the JIT multiplies values of formats, not exact products".into());
                };
                let x = self.e.b.ins().fpromote(types::F64, a);
                let y = self.e.b.ins().fpromote(types::F64, b);
                let p = self.e.b.ins().fmul(x, y);
                Cv::F32(self.add(acc, Cv::Real(p, a, b), &r)?)
            }
            "kernel.div" => {
                let r = self.rounding(op, 2)?;
                let a = self.num(ops[0])?;
                let b = self.num(ops[1])?;
                if let (true, Rounding::Nearest, Cv::F32(x), Cv::F32(y)) = (r.0.is_binary32(), r.1, a, b) {
                    Cv::F32(self.e.b.ins().fdiv(x, y))
                } else {
                    let x = self.as_f64(a)?;
                    let y = self.as_f64(b)?;
                    Cv::F32(self.round_inexact(Inexact::Quotient, x, y, &r)?)
                }
            }
            "kernel.sqrt" => {
                let r = self.rounding(op, 1)?;
                let a = self.num(ops[0])?;
                if let (true, Rounding::Nearest, Cv::F32(x)) = (r.0.is_binary32(), r.1, a) {
                    Cv::F32(self.e.b.ins().sqrt(x))
                } else {
                    let x = self.as_f64(a)?;
                    Cv::F32(self.round_inexact(Inexact::Root, x, x, &r)?)
                }
            }
            "kernel.max" | "kernel.min" => {
                let r = self.rounding(op, 2)?;
                let a = self.num(ops[0])?;
                let b = self.num(ops[1])?;
                // IEEE 754-2019 maximum/minimum: NaN if either is, −0 below +0 (Cranelift's
                // fmax/fmin). Of two f32 values it is one of them, which every mode of
                // binary32 keeps.
                if let (true, Cv::F32(x), Cv::F32(y)) = (r.0.is_binary32(), a, b) {
                    let m = if name == "kernel.max" { self.e.b.ins().fmax(x, y) } else { self.e.b.ins().fmin(x, y) };
                    return Ok(Cv::F32(m));
                }
                let x = self.as_f64(a)?;
                let y = self.as_f64(b)?;
                let m = if name == "kernel.max" { self.e.b.ins().fmax(x, y) } else { self.e.b.ins().fmin(x, y) };
                Cv::F32(self.round_exact(m, &r))
            }
            "kernel.round" => {
                let r = self.rounding(op, 1)?;
                let a = self.num(ops[0])?;
                match a {
                    // Every f32 is a binary32 value: no deterministic mode moves it.
                    Cv::F32(v) if r.0.is_binary32() && !r.1.is_stochastic() => Cv::F32(v),
                    _ => {
                        let x = self.as_f64(a)?;
                        Cv::F32(self.round_exact(x, &r))
                    }
                }
            }
            "kernel.from_index" => {
                let r = self.rounding(op, 1)?;
                let i = self.index(ops[0])?;
                let x = self.e.b.ins().fcvt_from_uint(types::F64, i);
                Cv::F32(self.round_exact(x, &r))
            }
            "kernel.exp" | "kernel.tanh" | "kernel.sigmoid" | "kernel.gelu" => {
                let r = self.rounding(op, 1)?;
                let a = self.num(ops[0])?;
                let x = self.as_f64(a)?;
                let f = self.funcs[&name["kernel.".len()..]];
                let call = self.e.b.ins().call(f, &[x]);
                let y = self.e.b.inst_results(call)[0];
                Cv::F32(self.round_exact(y, &r))
            }
            other => return Err(format!("the JIT does not compile `{other}` inside a kernel")),
        };
        Ok(value)
    }

    /// `kernel.accumulate` (`acc = round(acc + term(k))` for `k = lo, lo+step, .. < hi`,
    /// drawing at `draw + k`) or `kernel.reduce_max` (IEEE maximum: NaN wins, +0 above −0),
    /// for `n` lanes in one loop over shared bounds with an accumulator per lane; a yielded
    /// `keep` of 0 skips the term (no addition, no draw).
    fn loop_lanes(&mut self, op: OpId, n: usize) -> Result<Lv, String> {
        let o = &self.ir.ops[op];
        let is_max = o.name() == "kernel.reduce_max";
        if o.attr("chunk").is_some() {
            return Err("a chunked kernel.accumulate reaches the JIT unexpanded (run the `chunking` pass)".into());
        }
        let ops = o.operands.clone();
        let step = if is_max { 1 } else { attr_int(self.ir, op, "step").unwrap_or(1) };
        // With one lane the current lane is the one (loops inside a per-lane loop).
        let lane_at = |g: &Self, l: usize| if n == 1 { g.lane } else { l };
        let lo = self.index(ops[0])?;
        let hi = self.index(ops[1])?;
        let mut inits = Vec::with_capacity(n);
        let mut roundings = Vec::with_capacity(n);
        for l in 0..n {
            self.lane = lane_at(self, l);
            inits.push(self.f32_of(ops[2]).ok_or("the initial value is a scalar")?);
            if !is_max {
                roundings.push(self.rounding(op, 3)?);
            }
        }
        let outer_lane = self.lane;
        let body_block = self.ir.entry_block(o.regions[0]).ok_or("a loop has a body")?;
        let k_arg = self.ir.blocks[body_block].args[0];

        let header = self.e.b.create_block();
        let body = self.e.b.create_block();
        let exit = self.e.b.create_block();
        self.e.b.append_block_param(header, types::I64);
        for _ in 0..n {
            self.e.b.append_block_param(header, types::F32);
            self.e.b.append_block_param(exit, types::F32);
        }
        let mut args: Vec<cranelift_codegen::ir::BlockArg> = vec![lo.into()];
        args.extend(inits.iter().map(|&v| cranelift_codegen::ir::BlockArg::from(v)));
        self.e.b.ins().jump(header, &args);
        self.e.b.switch_to_block(header);
        let k = self.e.b.block_params(header)[0];
        let accs: Vec<Value> = self.e.b.block_params(header)[1..].to_vec();
        let more = self.e.b.ins().icmp(IntCC::UnsignedLessThan, k, hi);
        let acc_args: Vec<cranelift_codegen::ir::BlockArg> = accs.iter().map(|&v| v.into()).collect();
        self.e.b.ins().brif(more, body, &[], exit, &acc_args);
        self.e.b.switch_to_block(body);
        self.vals.insert(k_arg, Lv::Shared(Cv::Index(k)));
        self.lane = outer_lane;
        // With a `keep` computed by straight-line ops of the body, those run first and the
        // term only when some lane keeps it (a window's taps, padded positions): the skipped
        // lanes' accumulators go on unchanged either way.
        let keep_first = keep_slice(self.ir, body_block);
        let skip = keep_first.as_ref().map(|(slice, keep)| -> Result<_, String> {
            for &op in &self.ir.blocks[body_block].ops {
                if slice.contains(&op) {
                    self.emit_in_block(op, n)?;
                }
            }
            let mut any = None;
            for l in 0..n {
                let Some(Cv::Index(keep)) = self.vals.get(keep).map(|y| lane_of(y, if n == 1 { 0 } else { l })) else {
                    return Err("a loop body's keep is an index".into());
                };
                any = Some(match any {
                    None => keep,
                    Some(a) => self.e.b.ins().bor(a, keep),
                });
            }
            let any = any.ok_or("a loop has a lane")?;
            let term = self.e.b.create_block();
            let join = self.e.b.create_block();
            for _ in 0..n {
                self.e.b.append_block_param(join, types::F32);
            }
            self.e.b.ins().brif(any, term, &[], join, &acc_args);
            self.e.b.switch_to_block(term);
            Ok((join, slice))
        });
        let skip = skip.transpose()?;
        let yielded = match &skip {
            Some((_, slice)) => self.emit_block_except(body_block, n, slice)?,
            None => self.emit_block(body_block, n)?,
        };
        let mut next_args: Vec<cranelift_codegen::ir::BlockArg> = Vec::with_capacity(n + 1);
        for l in 0..n {
            let lane = if n == 1 { 0 } else { l };
            let term = lane_of(yielded.first().ok_or("a loop body yields a term")?, lane);
            let acc = accs[l];
            let mut next = if is_max {
                let Cv::F32(t) = term else { return Err("a reduce_max yields a scalar".into()) };
                self.e.b.ins().fmax(acc, t)
            } else {
                let (target, mode, stream, draw) = roundings[l];
                let draw = draw.map(|d| self.e.b.ins().iadd(d, k));
                self.add(Cv::F32(acc), term, &(target, mode, stream, draw))?
            };
            if let Some(Cv::Index(keep)) = yielded.get(1).map(|y| lane_of(y, lane)) {
                let c = self.e.b.ins().icmp_imm_s(IntCC::NotEqual, keep, 0);
                next = self.e.b.ins().select(c, next, acc);
            }
            next_args.push(next.into());
        }
        if let Some((join, _)) = skip {
            self.e.b.ins().jump(join, &next_args);
            self.e.b.switch_to_block(join);
            next_args = self.e.b.block_params(join).iter().map(|&v| v.into()).collect();
        }
        let k_next = self.e.b.ins().iadd_imm_s(k, step);
        next_args.insert(0, k_next.into());
        self.e.b.ins().jump(header, &next_args);
        self.e.b.switch_to_block(exit);
        let results: Vec<Cv> = self.e.b.block_params(exit).iter().map(|&v| Cv::F32(v)).collect();
        self.lane = outer_lane;
        Ok(if n == 1 { Lv::Shared(results[0]) } else { Lv::Lanes(results) })
    }
}

/// For a loop body `block` that yields a `keep` and computes a term with a loop of its own:
/// the ops of the block `keep` depends on (none with a region) and `keep`, so that they can
/// run before, and decide whether to run, the rest.
fn keep_slice(ir: &Module, block: crate::ir::BlockId) -> Option<(HashSet<OpId>, ValueId)> {
    let ops = &ir.blocks[block].ops;
    let last = &ir.ops[*ops.last()?];
    let &[_, keep] = last.operands.as_slice() else { return None };
    // Branching pays off only when the term is costly.
    if !ops.iter().any(|&op| !ir.ops[op].regions.is_empty()) {
        return None;
    }
    let mut slice = HashSet::new();
    let mut needed = vec![keep];
    while let Some(v) = needed.pop() {
        let ValueDef::Result { op, .. } = ir.values[v].def else { continue };
        if ir.ops[op].parent != Some(block) || !slice.insert(op) {
            continue;
        }
        if !ir.ops[op].regions.is_empty() {
            return None;
        }
        needed.extend(ir.ops[op].operands.iter().copied());
    }
    Some((slice, keep))
}

/// The value of `x` in lane `l`.
fn lane_of(x: &Lv, l: usize) -> Cv {
    match x {
        Lv::Shared(c) => *c,
        Lv::Lanes(v) => v[l],
    }
}

impl From<Cv> for Lv {
    fn from(c: Cv) -> Lv {
        Lv::Shared(c)
    }
}

/// `for i in start..end step by step { body(i) }` over i64 indices; with `fits`, only while a
/// whole step fits (`i + step ≤ end`). Returns where it stopped.
pub(super) fn counted_loop(
    g: &mut Gen,
    start: Value,
    end: Value,
    step: i64,
    fits: bool,
    mut body: impl FnMut(&mut Gen, Value) -> Result<(), String>,
) -> Result<Value, String> {
    let header = g.e.b.create_block();
    let inner = g.e.b.create_block();
    let exit = g.e.b.create_block();
    g.e.b.append_block_param(header, types::I64);
    g.e.b.append_block_param(exit, types::I64);
    g.e.b.ins().jump(header, &[start.into()]);
    g.e.b.switch_to_block(header);
    let i = g.e.b.block_params(header)[0];
    let next = g.e.b.ins().iadd_imm_s(i, step);
    // `fits`: while i + step ≤ end (whole blocks); else while i < end.
    let more = if fits {
        g.e.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, next, end)
    } else {
        g.e.b.ins().icmp(IntCC::UnsignedLessThan, i, end)
    };
    g.e.b.ins().brif(more, inner, &[], exit, &[i.into()]);
    g.e.b.switch_to_block(inner);
    body(g, i)?;
    g.e.b.ins().jump(header, &[next.into()]);
    g.e.b.switch_to_block(exit);
    Ok(g.e.b.block_params(exit)[0])
}
