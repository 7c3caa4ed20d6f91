//! Vector code for contractions: a `kernel.generate` whose element is an accumulation
//! (possibly chunked: an accumulation of inner accumulations) of products `u·v` of two
//! values of formats, one of which varies along the output's last axis `j` and the other not,
//! or of one value that varies along `j` (a bias gradient's sum over the batch), taken as
//! its product with one.
//!
//! - **Lanes**: four adjacent outputs of the last axis form one `f32x4` accumulator; each lane
//!   keeps its own order of additions over `k`, so every output's additions are the scalar
//!   code's. A block of rows × vectors (register blocking) shares each loaded value. A
//!   rounded step's latency (twenty-odd cycles through TwoSum and the rounding, four
//!   through an fma) needs many independent chains: where the layer has at least 64
//!   outputs, one row of 16 vectors (more chains than registers, but faster); else 1 × 4.
//!   Binary32 steps (a multiply and an add, or an fma) keep 2 × 4: eight chains hide the
//!   fma's latency.
//! - **Packing**: before the kernel runs, a generated function evaluates the `j`-varying
//!   operand for every `(k, j)` into a scratch buffer in `[k][j]` order (`j` padded to a
//!   multiple of 4 with zeros), so the kernel reads it as one vector load per `k` (with one
//!   row per block, a pure load placed at its use, which frees registers); it packs a range
//!   of columns `j`, so that large packs are shared by the threads. The same function (its
//!   first range) fills the **k-table** after it: the values of the row operand's computation that depend
//!   on `k` alone (a convolution's `k → (kh, kw, c)` divisions), 8 bytes each per `k`, which
//!   the kernel loads once per `k` for all its rows.
//! - **Windows** ([`window`]): where the other operand is a load at indices affine in the
//!   row and in `k`-only values, under a `keep` of affine comparisons (padded convolutions
//!   and their gradients), each row computes its base address and its mask of kept taps (or
//!   range bounds) once, the k-table holds the offset's `k` part and the tap (or the ranges'
//!   `k` parts), and each row and `k` costs a bit test (or a check per range) and a load.
//! - **Row operand** otherwise: the other operand (and the `keep` condition of padded
//!   convolutions) is evaluated as scalar code per row and `k` (from the k-table) and
//!   splat; its loads skip the clamping of indices that are provably within their
//!   dimensions. A term that `keep` skips is not added: the row's steps are branched around,
//!   one branch per factor of `keep` when it is a product of comparisons (one for a
//!   window's ranges). With several groups of outputs per block of rows and no window, the
//!   block first evaluates its row operands and `keep` flags for every `k` into a **row
//!   pack** on the stack (unless four rows' pack exceeds 64 KiB, or the row operand depends
//!   on the chunk), which each group's `k` loop loads.
//! - **Rounding** per addition, bit-exact to the scalar code: binary32 `nearest` is a
//!   multiply and an add when the product is exact in f32 (three-operand instructions; an fma
//!   would tie its destination to a multiplicand that the block reuses, costing a register
//!   copy per product), and one fma otherwise. A narrower float accumulator of products not
//!   exact in f32 takes only `nearest` (with subnormals, every midpoint a binary32 value:
//!   [`nearest_of_fma`]): the fma's binary32 sum rounded to the format, lanes on one of its
//!   midpoints or beyond its largest value by the scalar code's exact f64 sequence, per lane.
//!   Otherwise a narrower accumulator needs the product exact in f32; the sum is formed
//!   exactly as the f32 rounded to odd (TwoSum, then the last bit set toward the error),
//!   which rounds like the exact sum when the target keeps at most 22 bits (`stochastic:R`:
//!   `p + R ≤ 23`), then rounded to the format: `nearest` by the magic-constant addition,
//!   the other modes by scaling to the format's quantum, truncating and deciding from the
//!   exact fraction.
//!   `nearest` skips the odd rounding where double rounding through binary32 is innocuous
//!   (terms of at most the accumulator's `p ≤ 11` bits, subnormal sums exact in f32:
//!   [`nearest_through_binary32`], argued in spec/ir.md): one f32 addition (an fma of the
//!   exact product, which the general sequence then rounds too), then the format's
//!   rounding — fp16 with FP8 products, and fp16 chunks of fp16 sums.
//!   `stochastic:R` draws the same words as the scalar code (draw index `base + k` per lane),
//!   the counter-based hash computed in `i32x4` lanes, in a **word pass** of its own over a
//!   tile of 64 `k` that stores the words on the stack before the pass adding the tile's
//!   terms loads them (the hash's constants and the rounding's do not fit the registers
//!   together).
//! - **Fast lanes** (`vector_round`): `stochastic:R` rounds on the bits where the sum lies in
//!   the format's normal range and stays finite (the f32 sum stepped down where TwoSum says
//!   it was rounded away from zero truncates like the exact sum; the random bits are added
//!   below the last kept bit and the rest cleared), and `nearest` through binary32 skips the
//!   overflow and special-value handling. Each vector branches to the general sequence
//!   above when one of its lanes falls outside (rare), right after its own fast lane.
//! - **Range guard** ([`RangeGuard`]): where the term accumulation rounds to nearest through
//!   binary32 and the layer has at least 64 outputs, the packing function also stores the
//!   packed operand's largest magnitude `W`, and each block of rows first finds its row
//!   operands' `X`; when `X·W` bounds every sum of a chunk (or of the whole accumulation)
//!   below the format's largest value, the block runs a copy of its code whose steps skip
//!   the overflow check and its branch (NaN and infinities fail the comparison).
//! - **Draw counters** are induction variables of the `k` loop (loop-invariant index
//!   arithmetic would be rematerialised inside it), 32-bit where an interval bound of the
//!   counter expression shows they stay below 2^32, and shared by a block's vectors (plus
//!   constant offsets) where they grow by a constant per `j`.
//! - **Chunks**: the outer accumulators wait in a stack slot (addressed from one register)
//!   while a chunk's inner accumulators run, so the blocking's registers stay free for the
//!   inner loop; the ops
//!   before the inner accumulation are evaluated once per chunk and row, not per `k`.
//! - **Epilogue**: the accumulated value is handed to the scalar code generator for the rest
//!   of the element (output rounding, stores), lane by lane.
//!
//! Anything else (other shapes, formats or modes) is left to the scalar code (`codegen`).

use super::codegen::{build_function, counted_loop, Cv, Gen, Helpers, KernelFn, Lv, TensorView};
use super::round::Target;
use super::window::{self, Window, WindowRow};
use super::vector_round::{
    fma_sum_nearest, ivec, nearest_without_zero_sign, product_sum_nearest_per_lane, random_word, round,
    round_nearest_with_subnormals, sum_nearest, sum_nearest_exact, sum_stochastic_bits, sum_to_odd,
    Draw, DrawCounters,
};
use crate::ir::{Attr, BlockId, Dim, Module, OpId, Type, ValueDef, ValueId};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AtomicRmwOp, BlockArg, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value,
};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::JITModule;
use cranelift_module::FuncId;
use qc_runtime::numerics::{FloatFormat, Format, Rounding};
use std::collections::{HashMap, HashSet};

/// The function that fills a kernel's scratch buffer (`floats` f32 values, zeroed by the
/// caller; its address follows the stream keys in `env`) before the kernel runs.
pub(super) struct Pack {
    pub id: FuncId,
    pub floats: usize,
    /// The columns `j` it packs: `fn(env, lo, hi)` packs `[lo, hi)` (and the k-table when
    /// `lo` is 0), so that threads can share the columns.
    pub columns: u64,
    /// Where (in floats) it keeps the packed operand's largest magnitude for the range
    /// guard, which the caller zeroes before the columns are packed.
    pub lane_max: Option<usize>,
}

/// How one accumulation step adds and rounds.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// binary32 `nearest`: the hardware's rounding (fma for a product).
    Binary32,
    /// A float format of at most 22 significant bits with a supported mode.
    Narrow {
        format: FloatFormat,
        mode: Rounding,
        stream: u64,
    },
    /// `nearest` to a float format with subnormals where rounding the binary32 sum is the
    /// rounding of the exact sum ([`nearest_through_binary32`]): no TwoSum.
    NearestThroughBinary32 { format: FloatFormat },
    /// [`Step::NearestThroughBinary32`] where the kernel's range guard ([`RangeGuard`]) has
    /// shown that every binary32 sum stays within the format's range: the rounding alone,
    /// no check for overflow; without restoring the sign of a zero where no sum is −0 or
    /// rounds to it ([`RangeGuard::positive_zero`]).
    NearestWithinRange {
        format: FloatFormat,
        positive_zero: bool,
    },
    /// `nearest` to a float format of products not exact in binary32 ([`nearest_of_fma`]):
    /// the fma's binary32 sum rounded to the format, lanes on a midpoint or beyond the
    /// largest value by the scalar code's exact sequence.
    NearestOfFma { format: FloatFormat },
}

/// The significant bits a value of `f` has at most, and the exponent of its lowest bit.
fn precision_and_lowest(f: &FloatFormat) -> (u32, i32) {
    (f.man_bits + 1, f.emin() - f.man_bits as i32)
}

/// Whether `RN_acc(RN_binary32(a + b)) = RN_acc(a + b)` for every accumulator value `a` of
/// `acc` and every addend `b` of at most `addend_bits` significant bits whose lowest bit is at
/// or above `2^addend_lowest` (spec/ir.md, the JIT's narrow accumulation, for the argument): the addend fits the
/// accumulator's precision `p`, binary32 has `24 ≥ 2p + 1` bits (Figueroa), sums below the
/// accumulator's smallest normal are exact in binary32, and nothing reaches binary32's
/// subnormals or overflow.
fn nearest_through_binary32(acc: &FloatFormat, addend_bits: u32, addend_lowest: i32) -> bool {
    let (p, acc_lowest) = precision_and_lowest(acc);
    let lowest = acc_lowest.min(addend_lowest);
    acc.subnormals
        && addend_bits <= p
        && 24 > 2 * p
        && acc.emin() - lowest <= 24
        && lowest >= -149
        && acc.emin() >= -126
}

/// Whether `nearest` to `acc` may round the fma's binary32 sum `RN₂₄(a + x·y)` of a product
/// not exact in binary32 (spec/ir.md, the fast lanes, for the argument): every value and
/// midpoint of `acc` is a binary32 value (`p + 1 ≤ 24` bits, the lowest midpoint bit at or
/// above 2^-149), so binary32's monotone rounding keeps the sum on the exact sum's side of
/// each midpoint; the format has subnormals and a smallest normal exponent of at least −126
/// (the magic constant's exponent).
fn nearest_of_fma(acc: &FloatFormat) -> bool {
    let (p, lowest) = precision_and_lowest(acc);
    // A midpoint has one bit more than the format's values, one place lower.
    let (midpoint_bits, midpoint_lowest) = (p + 1, lowest - 1);
    acc.subnormals && midpoint_bits <= 24 && midpoint_lowest >= -149 && acc.emin() >= -126
}

/// Whether the step's vector sequences stay within binary32's range: the narrow ones add a
/// magic constant `1.5·2^(s+23)` or scale by `2^±s`, finite for formats below 2^100; the
/// fused `nearest` sends sums beyond its range to the exact sequence instead
/// ([`fma_sum_nearest`]).
fn within_binary32(step: Step) -> bool {
    match step {
        Step::Narrow { format, .. }
        | Step::NearestThroughBinary32 { format }
        | Step::NearestWithinRange { format, .. } => format.max() < 2f64.powi(100),
        Step::Binary32 | Step::NearestOfFma { .. } => true,
    }
}

/// `step` without the odd rounding where [`nearest_through_binary32`] allows it.
fn cheaper(step: Step, addend_bits: u32, addend_lowest: i32) -> Step {
    match step {
        Step::Narrow {
            format,
            mode: Rounding::Nearest,
            ..
        } if nearest_through_binary32(&format, addend_bits, addend_lowest) => {
            Step::NearestThroughBinary32 { format }
        }
        other => other,
    }
}

/// The range guard of a term accumulation that rounds to nearest through binary32 (module
/// doc): its sums cannot leave the format's range when `X·W ≤ limit`, for `X` the largest
/// magnitude of a block's row operands and `W` that of the packed operand (both computed as
/// the kernel runs; NaN and infinities fail the comparison).
#[derive(Clone, Copy, Debug)]
struct RangeGuard {
    limit: f32,
    /// Whether no sum is −0 or rounds to it: the initial value is +0 and every term a
    /// multiple of the format's smallest spacing `2^q`. A binary32 sum is then a multiple of
    /// `2^q` too (exact below 2^(q+24), a multiple of its own spacing above), so a nonzero one
    /// rounds to a nonzero value, and a zero one is +0 (`x + y = −0` needs both −0, and by
    /// induction no accumulator is).
    positive_zero: bool,
}

impl RangeGuard {
    /// The guard for sums of at most `terms` products from an initial value of magnitude
    /// `init`, each rounded to `format`, or `None` if no product bound keeps them in range.
    /// Each step forms `s = RN₂₄(acc + p)` (relative error ≤ 2^-24) and rounds it to the
    /// format (relative error ≤ `u` = 2^-(m+1), plus half the subnormal spacing `h`), so
    /// `|s| ≤ (|init| + terms·(X·W + h))·((1 + u)(1 + 2^-24))^(terms+1)`; the limit keeps
    /// that at most the format's largest value, less a margin that covers the binary32
    /// rounding of the limit and of `X·W`.
    fn new(format: &FloatFormat, init: f64, terms: u64) -> Option<RangeGuard> {
        let n = terms as f64;
        let u = 2f64.powi(-(format.man_bits as i32 + 1));
        let growth = ((1.0 + u) * (1.0 + 2f64.powi(-24))).powf(n + 1.0);
        let h = 2f64.powi(format.emin() - format.man_bits as i32 - 1);
        let limit = ((format.max() / growth - init) / n - h) * (1.0 - 2f64.powi(-20));
        (limit > 0.0).then_some(RangeGuard {
            limit: limit as f32,
            positive_zero: false,
        })
    }
}

/// A recognised contraction (module doc).
pub(super) struct Plan {
    body: BlockId,
    outer: OpId,
    inner: Option<OpId>,
    /// The block yielding the product (and `keep`) and its `k` argument.
    term_block: BlockId,
    /// The product's operands: the packed (`j`-varying) one and the row one (`None` where
    /// the term is one `j`-varying value, such as a bias gradient's: a product with one).
    lane_operand: ValueId,
    row_operand: Option<ValueId>,
    lane_first: bool,
    keep: Option<ValueId>,
    k_lo: u64,
    k_hi: u64,
    n: u64,
    /// The ops before the outer accumulate, before the inner one (in the outer body), the
    /// term block's ops computing the row operand and `keep` (but the tabled ones), and the
    /// packed operand.
    pre_ops: Vec<OpId>,
    chunk_ops: Vec<OpId>,
    row_ops: Vec<OpId>,
    lane_ops: Vec<OpId>,
    /// The values of the row operand's computation that depend on `k` alone (index
    /// arithmetic of the term block's argument, such as a convolution's `k → (kh, kw, c)`)
    /// and that the rest of it uses: evaluated once per `k` by the packing function into the
    /// k-table, loaded by the kernel once per `k`; `table_ops` computes them.
    table_values: Vec<ValueId>,
    table_ops: Vec<OpId>,
    /// The loads of `row_ops` and `lane_ops` whose indices are within the tensor's
    /// dimensions for every position and `k` ([`index_bound`]): emitted without the clamps.
    unclamped_loads: HashSet<OpId>,
    /// Whether each block of rows evaluates its row operand and `keep` for every `k` into a
    /// row pack before its groups of outputs run (module doc).
    pack_rows: bool,
    /// The row operand as an affine window ([`window`]): a base address per row, a range
    /// check and a load per `k`, instead of its index arithmetic.
    window: Option<Window>,
    outer_step: Step,
    inner_step: Option<Step>,
    /// The term accumulation's range guard, where it has one: the kernel then runs each
    /// block of rows without the overflow checks when the guard holds.
    range_guard: Option<RangeGuard>,
    /// Whether binary32 steps form each product inside an fma (it is not exact in f32).
    fma: bool,
    /// Whether every draw counter (`base + k`) stays below 2^32, so the counters' high
    /// halves are zero and no addition carries.
    draws_in_32_bits: bool,
    /// How much the outer and the inner accumulation's draw counters grow per step of `j`,
    /// where that is a constant and the counters stay in 32 bits: the vectors of a block then
    /// share one counter vector plus constant offsets.
    outer_draw_j: Option<u64>,
    inner_draw_j: Option<u64>,
    /// The rest of the element after the accumulation, where `pointwise` computes it as
    /// vectors (else it runs as scalar code, lane by lane).
    epilogue: Option<super::pointwise::Plan>,
}

impl Plan {
    /// Whether the rest of the element after the accumulation runs as vector code.
    pub(super) fn has_vector_epilogue(&self) -> bool {
        self.epilogue.is_some()
    }

    /// Whether the row operand is read through an affine window.
    pub(super) fn has_window(&self) -> bool {
        self.window.is_some()
    }
}

const ROW: u8 = 1;
const J: u8 = 2;
const KO: u8 = 4;
const KI: u8 = 8;

fn constant_index(ir: &Module, v: ValueId) -> Option<u64> {
    match ir.values[v].def {
        ValueDef::Result { op, .. } if ir.ops[op].name() == "kernel.index" => ir.ops[op]
            .attr("value")
            .and_then(Attr::as_int)
            .map(|n| n as u64),
        _ => None,
    }
}

fn constant_float(ir: &Module, v: ValueId) -> Option<f64> {
    match ir.values[v].def {
        ValueDef::Result { op, .. } if ir.ops[op].name() == "kernel.constant" => {
            ir.ops[op].attr("value").and_then(Attr::as_f64)
        }
        _ => None,
    }
}

fn def_op(ir: &Module, v: ValueId) -> Option<OpId> {
    match ir.values[v].def {
        ValueDef::Result { op, .. } => Some(op),
        _ => None,
    }
}

fn float_of(ir: &Module, v: ValueId) -> Option<FloatFormat> {
    match ir.ty(v).scalar_format()? {
        Format::Float { format, .. } => Some(format),
        _ => None,
    }
}

fn is_loop(ir: &Module, op: OpId) -> bool {
    matches!(ir.ops[op].name(), "kernel.accumulate" | "kernel.reduce_max")
}

/// The dependencies of every value defined by `ops` (operands outside have none).
fn propagate(ir: &Module, ops: &[OpId], deps: &mut HashMap<ValueId, u8>) {
    for &op in ops {
        let d = ir.ops[op]
            .operands
            .iter()
            .fold(0, |d, v| d | deps.get(v).copied().unwrap_or(0));
        for &r in &ir.ops[op].results {
            deps.insert(r, d);
        }
    }
}

/// The ops of `ops` that `wanted` needs, in order.
fn needed(ir: &Module, ops: &[OpId], wanted: &[ValueId]) -> Vec<OpId> {
    let mut need: HashSet<ValueId> = wanted.iter().copied().collect();
    let mut out = Vec::new();
    for &op in ops.iter().rev() {
        if ir.ops[op].results.iter().any(|r| need.contains(r)) {
            need.extend(ir.ops[op].operands.iter().copied());
            out.push(op);
        }
    }
    out.reverse();
    out
}

/// The rounding step of the accumulate `op`, if the vector code supports it.
fn step_of(ir: &Module, op: OpId) -> Option<Step> {
    let o = &ir.ops[op];
    let format = float_of(ir, o.results[0])?;
    let mode = match o.attr("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    };
    if Target::Float(format).is_binary32() && mode == Rounding::Nearest {
        return Some(Step::Binary32);
    }
    let p = format.man_bits + 1;
    let lowest = if format.subnormals {
        format.emin() - format.man_bits as i32
    } else {
        format.emin()
    };
    let mode_ok = match mode {
        Rounding::Nearest
        | Rounding::NearestAway
        | Rounding::TowardZero
        | Rounding::Up
        | Rounding::Down => p + 2 <= 24,
        Rounding::StochasticBits(r) => p + r <= 23,
        Rounding::StochasticUnbiased(r) => p + r < 23,
        _ => false,
    };
    // `nearest` adds 1.5·2^(s+23) (normal for s ≥ −149); the other modes scale by 2^±s.
    let lowest_ok = if mode == Rounding::Nearest {
        lowest >= -149
    } else {
        lowest >= -126
    };
    (mode_ok && lowest_ok).then_some(Step::Narrow {
        format,
        mode,
        stream: o.attr("stream").and_then(Attr::as_int).unwrap_or(0) as u64,
    })
}

/// Recognises a contraction (module doc), or `None` for the scalar code. `fma`: the host has
/// a fused multiply-add.
pub(super) fn plan(ir: &Module, op: OpId, fma: bool) -> Option<Plan> {
    let o = &ir.ops[op];
    let out_ty = ir.ty(o.results[0]).as_tensor()?;
    let &Dim::Fixed(n) = out_ty.dims.last()? else {
        return None;
    };
    let body = ir.entry_block(*o.regions.first()?)?;
    let args = &ir.blocks[body].args;
    let ops = &ir.blocks[body].ops;
    let loops: Vec<usize> = (0..ops.len()).filter(|&i| is_loop(ir, ops[i])).collect();
    let [at] = loops[..] else { return None };
    let outer = ops[at];
    if ir.ops[outer].name() != "kernel.accumulate" || n == 0 {
        return None;
    }
    let mut deps: HashMap<ValueId, u8> = HashMap::new();
    for (i, &a) in args.iter().enumerate() {
        deps.insert(a, if i + 1 == args.len() { J } else { ROW });
    }
    let pre_ops = ops[..at].to_vec();
    propagate(ir, &pre_ops, &mut deps);
    let dep = |deps: &HashMap<ValueId, u8>, v: ValueId| deps.get(&v).copied().unwrap_or(0);
    let defined_before = |v: ValueId, ops: &[OpId]| match ir.values[v].def {
        ValueDef::Result { op, .. } => {
            ops.contains(&op) || !ir.blocks[body].ops.contains(&op) && !inside(ir, outer, op)
        }
        ValueDef::Arg { .. } => true,
    };
    let oo = &ir.ops[outer];
    let (k_lo, k_hi) = (
        constant_index(ir, oo.operands[0])?,
        constant_index(ir, oo.operands[1])?,
    );
    if k_hi <= k_lo || dep(&deps, oo.operands[2]) & !(ROW | J) != 0 {
        return None;
    }
    let outer_step = step_of(ir, outer)?;
    if let Some(&d) = oo.operands.get(3) {
        if !defined_before(d, &pre_ops) || dep(&deps, d) & !(ROW | J) != 0 {
            return None;
        }
    }
    let outer_block = ir.entry_block(*oo.regions.first()?)?;
    deps.insert(ir.blocks[outer_block].args[0], KO);
    let outer_ops = &ir.blocks[outer_block].ops;
    let inner_at: Vec<usize> = (0..outer_ops.len())
        .filter(|&i| is_loop(ir, outer_ops[i]))
        .collect();
    let (inner, term_block, chunk_ops) = match inner_at[..] {
        [] => (None, outer_block, Vec::new()),
        [i] => {
            let inner = outer_ops[i];
            let io = &ir.ops[inner];
            let chunk_ops = outer_ops[..i].to_vec();
            propagate(ir, &chunk_ops, &mut deps);
            // The inner range lies inside the outer one: [k, min(_, hi)).
            let hi_op = def_op(ir, io.operands[1])?;
            let contained = io.name() == "kernel.accumulate"
                && io.operands[0] == ir.blocks[outer_block].args[0]
                && ir.ops[hi_op].name() == "kernel.index_min"
                && ir.ops[hi_op].operands.contains(&oo.operands[1]);
            let yields = ir.ops[*outer_ops.last()?].operands.clone();
            if !contained
                || yields != [io.results[0]]
                || i + 2 != outer_ops.len()
                || dep(&deps, io.operands[2]) != 0
            {
                return None;
            }
            if dep(&deps, io.operands[0]) & !KO != 0 || dep(&deps, io.operands[1]) & !KO != 0 {
                return None;
            }
            if let Some(&d) = io.operands.get(3) {
                if !defined_before(d, &pre_ops) || dep(&deps, d) & !(ROW | J) != 0 {
                    return None;
                }
            }
            (
                Some(inner),
                ir.entry_block(*io.regions.first()?)?,
                chunk_ops,
            )
        }
        _ => return None,
    };
    let inner_step = match inner {
        Some(i) => Some(step_of(ir, i)?),
        None => None,
    };
    deps.insert(ir.blocks[term_block].args[0], KI);
    let term_ops = &ir.blocks[term_block].ops;
    if term_ops.iter().any(|&t| is_loop(ir, t)) {
        return None;
    }
    propagate(ir, term_ops, &mut deps);
    let yields = ir.ops[*term_ops.last()?].operands.clone();
    let term = *yields.first()?;
    let product = def_op(ir, term).filter(|&m| {
        let m = &ir.ops[m];
        m.name() == "kernel.mul" && ir.ty(m.results[0]) == &Type::Real
    });
    let (lane_operand, row_operand, lane_first) = match product {
        Some(mul) if term_ops.contains(&mul) => {
            let (u, v) = (ir.ops[mul].operands[0], ir.ops[mul].operands[1]);
            if dep(&deps, u) & J != 0 {
                (u, Some(v), true)
            } else {
                (v, Some(u), false)
            }
        }
        Some(_) => return None,
        // One value per term: the packed operand times one.
        None => (term, None, false),
    };
    let fl = float_of(ir, lane_operand)?;
    let fr = match row_operand {
        Some(r) => Some(float_of(ir, r)?),
        None => None,
    };
    let keep = yields.get(1).copied();
    if dep(&deps, lane_operand) & !(J | KI) != 0
        || row_operand.is_some_and(|r| dep(&deps, r) & J != 0)
        || keep.is_some_and(|k| dep(&deps, k) & J != 0)
        || yields.len() > 2
    {
        return None;
    }
    // The product is exact in f32: at most 24 significant bits, the lowest at or above
    // 2^-149, and far from overflow (a value times one is itself).
    let lowest = |f: &FloatFormat| f.emin() - f.man_bits as i32;
    let exact_product = fr.is_none_or(|fr| {
        fl.man_bits + fr.man_bits + 2 <= 24
            && lowest(&fl) + lowest(&fr) >= -149
            && fl.max() * fr.max() < 2f64.powi(100)
    });
    let term_step = inner_step.unwrap_or(outer_step);
    // A narrow accumulator of products not exact in f32: `nearest` through one fma.
    let fused = match term_step {
        Step::Binary32 if !fma && !exact_product => return None,
        Step::Narrow {
            format,
            mode: Rounding::Nearest,
            ..
        } if !exact_product => {
            if !fma || !nearest_of_fma(&format) {
                return None;
            }
            Some(Step::NearestOfFma { format })
        }
        Step::Narrow { .. } if !exact_product => return None,
        _ => None,
    };
    let term = |step: Step, bits: u32, lowest: i32| fused.unwrap_or(cheaper(step, bits, lowest));
    // The products have the operands' bits together, their lowest bits' exponents summed.
    let (product_bits, product_lowest) = match fr {
        Some(fr) => {
            let ((bits_l, lowest_l), (bits_r, lowest_r)) =
                (precision_and_lowest(&fl), precision_and_lowest(&fr));
            (bits_l + bits_r, lowest_l + lowest_r)
        }
        None => precision_and_lowest(&fl),
    };
    let (outer_step, inner_step) = match inner_step {
        None => (term(outer_step, product_bits, product_lowest), None),
        Some(inner_step) => {
            let outer_step = match inner_step {
                Step::Narrow { format, .. }
                | Step::NearestThroughBinary32 { format }
                | Step::NearestWithinRange { format, .. }
                | Step::NearestOfFma { format } => {
                    let (bits, lowest) = precision_and_lowest(&format);
                    cheaper(outer_step, bits, lowest)
                }
                Step::Binary32 => outer_step,
            };
            (
                outer_step,
                Some(term(inner_step, product_bits, product_lowest)),
            )
        }
    };
    if !within_binary32(outer_step) || inner_step.is_some_and(|s| !within_binary32(s)) {
        return None;
    }
    let mut row_wanted: Vec<ValueId> = row_operand.into_iter().collect();
    row_wanted.extend(keep);
    let row_ops = needed(ir, term_ops, &row_wanted);
    let (table_values, table_ops, row_ops) = k_table(ir, &deps, &row_ops, &row_wanted);
    let mut args_bound: HashMap<ValueId, u64> = HashMap::new();
    for (i, &a) in args.iter().enumerate() {
        let bound = match out_ty.dims.get(i) {
            Some(&Dim::Fixed(d)) if d > 0 => Some(d - 1),
            _ => None,
        };
        args_bound.extend(bound.map(|b| (a, b)));
    }
    args_bound.insert(ir.blocks[outer_block].args[0], k_hi - 1);
    args_bound.insert(ir.blocks[term_block].args[0], k_hi - 1);
    let draw_counters = [Some(outer), inner].into_iter().flatten();
    let draws_in_32_bits = draw_counters
        .filter_map(|a| ir.ops[a].operands.get(3))
        .all(|&d| {
            index_bound(ir, &args_bound, d, 32)
                .and_then(|b| b.checked_add(k_hi))
                .is_some_and(|b| b <= u64::from(u32::MAX))
        });
    let j_arg = *args.last()?;
    let draw_j = |a: OpId| {
        let d = *ir.ops[a].operands.get(3)?;
        j_coefficient(ir, &deps, d, j_arg).filter(|_| draws_in_32_bits)
    };
    let (outer_draw_j, inner_draw_j) = (draw_j(outer), inner.and_then(draw_j));
    let lane_ops = needed(ir, term_ops, &[lane_operand]);
    let unclamped_loads = row_ops
        .iter()
        .chain(&lane_ops)
        .copied()
        .filter(|&o| {
            let load = &ir.ops[o];
            let Some(t) = (load.name() == "kernel.load")
                .then(|| ir.ty(load.operands[0]).as_tensor())
                .flatten()
            else {
                return false;
            };
            t.dims.len() + 1 == load.operands.len()
                && t.dims
                    .iter()
                    .zip(&load.operands[1..])
                    .all(|(d, &i)| match d {
                        &Dim::Fixed(d) => {
                            index_bound(ir, &args_bound, i, 32).is_some_and(|b| b < d)
                        }
                        Dim::Dynamic => false,
                    })
        })
        .collect();
    // A row pack when the row operand costs more than a load (or has a `keep`), does not
    // depend on the chunk, and four rows' pack fits in 64 KiB of stack.
    let computed = row_ops
        .iter()
        .filter(|&&o| ir.ops[o].name() != "kernel.index")
        .count();
    let costly = (keep.is_some() || computed > 1)
        && row_wanted.iter().all(|&v| dep(&deps, v) & KO == 0);
    let row_args = &args[..args.len() - 1];
    let k_arg = ir.blocks[term_block].args[0];
    let is_k_leaf =
        |v: ValueId| v == k_arg || table_values.contains(&v) && ir.ty(v) == &Type::Index;
    let bound = |v: ValueId| index_bound(ir, &args_bound, v, 32);
    let window = match row_operand {
        Some(row_operand) if costly => window::analyse(
            ir,
            op,
            row_operand,
            keep,
            &|v| row_args.contains(&v),
            &is_k_leaf,
            &bound,
        ),
        _ => None,
    };
    let pack_rows = costly && window.is_none() && (k_hi - k_lo) * 4 * 8 <= 1 << 16;
    // The guard needs the row operand for every `k` once per block (not per chunk) and the
    // term accumulation's initial value as a constant. Its pass over the row operands pays
    // where a block has sixteen vectors (measured on the digits MLP's training step: 3–13%
    // faster kernels from 64 outputs, up to 27% slower at 10).
    let range_guard = match inner_step.unwrap_or(outer_step) {
        Step::NearestThroughBinary32 { format }
            if n >= 64
                && window.is_none()
                && row_wanted.iter().all(|&v| dep(&deps, v) & KO == 0) =>
        {
            let init = inner.map_or(oo.operands[2], |i| ir.ops[i].operands[2]);
            let terms = match inner {
                Some(_) => oo.attr("step").and_then(Attr::as_int).unwrap_or(1) as u64,
                None => k_hi - k_lo,
            };
            let init = constant_float(ir, init);
            let (_, spacing) = precision_and_lowest(&format);
            let positive_zero = init.is_some_and(|c| c.to_bits() == 0) && product_lowest >= spacing;
            init.and_then(|c| RangeGuard::new(&format, c.abs(), terms))
                .map(|guard| RangeGuard { positive_zero, ..guard })
        }
        _ => None,
    };
    Some(Plan {
        body,
        outer,
        inner,
        term_block,
        lane_operand,
        row_operand,
        lane_first,
        keep,
        k_lo,
        k_hi,
        n,
        pre_ops,
        chunk_ops,
        row_ops,
        lane_ops,
        table_values,
        table_ops,
        unclamped_loads,
        pack_rows,
        window,
        outer_step,
        inner_step,
        range_guard,
        fma: !exact_product,
        draws_in_32_bits,
        outer_draw_j,
        inner_draw_j,
        epilogue: super::pointwise::epilogue(ir, op, fma, outer),
    })
}

/// The constant `c` with `v = a + c·j` (mod 2^64) for the generate's last argument `j` and a
/// value `a` that does not depend on `j`, or `None` where `v` is not of that form.
fn j_coefficient(ir: &Module, deps: &HashMap<ValueId, u8>, v: ValueId, j: ValueId) -> Option<u64> {
    if v == j {
        return Some(1);
    }
    if deps.get(&v).copied().unwrap_or(0) & J == 0 {
        return Some(0);
    }
    let o = &ir.ops[def_op(ir, v)?];
    let coefficient = |i: usize| j_coefficient(ir, deps, *o.operands.get(i)?, j);
    match o.name() {
        "kernel.index_add" => Some(coefficient(0)?.wrapping_add(coefficient(1)?)),
        "kernel.index_mul" => {
            let (a, b) = (o.operands[0], o.operands[1]);
            match (constant_index(ir, a), constant_index(ir, b)) {
                (Some(c), _) => Some(c.wrapping_mul(coefficient(1)?)),
                (_, Some(c)) => Some(c.wrapping_mul(coefficient(0)?)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An upper bound of the index `v` from its ops (`args`: the block arguments' bounds), if
/// one is known within `depth` ops.
fn index_bound(ir: &Module, args: &HashMap<ValueId, u64>, v: ValueId, depth: u32) -> Option<u64> {
    if let Some(&b) = args.get(&v) {
        return Some(b);
    }
    let op = &ir.ops[def_op(ir, v)?];
    if op.name() == "kernel.index" {
        return constant_index(ir, v);
    }
    let depth = depth.checked_sub(1)?;
    let bound = |i: usize| index_bound(ir, args, op.operands[i], depth);
    match op.name() {
        "kernel.index_lt" => Some(1),
        "kernel.index_min" => match (bound(0), bound(1)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        "kernel.index_max" => Some(bound(0)?.max(bound(1)?)),
        "kernel.index_add" => bound(0)?.checked_add(bound(1)?),
        "kernel.index_mul" => bound(0)?.checked_mul(bound(1)?),
        "kernel.index_sub" => bound(0),
        "kernel.index_div" => match constant_index(ir, op.operands[1]) {
            Some(d) if d >= 1 => bound(0).map(|a| a / d),
            _ => bound(0),
        },
        "kernel.index_rem" => match (bound(0), constant_index(ir, op.operands[1])) {
            (a, Some(d)) if d >= 1 => Some(a.map_or(d - 1, |a| a.min(d - 1))),
            (a, _) => a,
        },
        _ => None,
    }
}

/// Emits the row operand's ops (`row_ops`), see [`emit_operand_ops`].
fn emit_row_ops(g: &mut Gen, plan: &Plan) -> Result<(), String> {
    emit_operand_ops(g, plan, &plan.row_ops)
}

/// Emits an operand's `ops`, the loads of `unclamped_loads` without clamping their indices
/// (the same values: each index is at most its dimension − 1).
fn emit_operand_ops(g: &mut Gen, plan: &Plan, ops: &[OpId]) -> Result<(), String> {
    for &op in ops {
        if !plan.unclamped_loads.contains(&op) {
            g.emit_in_block(op, 1)?;
            continue;
        }
        let o = &g.ir.ops[op];
        let idx: Vec<Value> = o.operands[1..]
            .iter()
            .map(|&v| g.index(v))
            .collect::<Result<_, _>>()?;
        let t = g
            .tensors
            .get(&o.operands[0])
            .ok_or("a load from a tensor")?;
        let (ptr, strides) = (t.ptr, t.strides.clone());
        let mut offset = g.e.i64c(0);
        for (&i, &s) in idx.iter().zip(&strides) {
            let t = g.e.b.ins().imul(i, s);
            offset = g.e.b.ins().iadd(offset, t);
        }
        let bytes = g.e.b.ins().ishl_imm_s(offset, 2);
        let addr = g.e.b.ins().iadd(ptr, bytes);
        let x =
            g.e.b
                .ins()
                .load(types::F32, MemFlagsData::trusted(), addr, 0);
        g.vals.insert(o.results[0], Lv::Shared(Cv::F32(x)));
    }
    Ok(())
}

/// The row operand's value after [`emit_row_ops`] (one where the term has none).
fn row_value(g: &mut Gen, plan: &Plan) -> Result<Value, String> {
    let Some(r) = plan.row_operand else {
        return Ok(g.e.b.ins().f32const(1.0));
    };
    match g.vals.get(&r).map(lane0) {
        Some(Cv::F32(x)) => Ok(x),
        _ => Err("the row operand is a scalar".into()),
    }
}

/// Splits `row_ops` (computing `wanted`) into the k-table's values (results of ops depending
/// on the term block's argument `k` alone, of index or float type, that an op depending on
/// more, or `wanted`, uses), the ops computing them, and the rest of `row_ops`.
fn k_table(
    ir: &Module,
    deps: &HashMap<ValueId, u8>,
    row_ops: &[OpId],
    wanted: &[ValueId],
) -> (Vec<ValueId>, Vec<OpId>, Vec<OpId>) {
    let k_only = |op: OpId| {
        ir.ops[op]
            .results
            .iter()
            .all(|r| deps.get(r) == Some(&KI) && matches!(ir.ty(*r), Type::Index | Type::Scalar(_)))
    };
    let (tabled, rest): (Vec<OpId>, Vec<OpId>) = row_ops.iter().partition(|&&op| k_only(op));
    let mut values: Vec<ValueId> = Vec::new();
    let used = rest
        .iter()
        .flat_map(|&op| ir.ops[op].operands.iter())
        .chain(wanted);
    for &v in used {
        let defined_here = def_op(ir, v).is_some_and(|op| tabled.contains(&op));
        if defined_here && !values.contains(&v) {
            values.push(v);
        }
    }
    let ops = needed(ir, row_ops, &values);
    let rest = needed(ir, &rest, wanted);
    (values, ops, rest)
}

/// Whether `op` lies inside the region of `parent` (at any depth).
fn inside(ir: &Module, parent: OpId, op: OpId) -> bool {
    let mut all = Vec::new();
    for &r in &ir.ops[parent].regions {
        ir.collect_ops(r, &mut all);
    }
    all.contains(&op)
}

/// The `k` positions whose random words a stochastic step draws in one pass (`k_loop`): a
/// block's (up to 16) accumulators' words fill up to 16 KiB of stack.
const WORD_TILE: i64 = 64;

fn padded(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

impl Plan {
    /// The bytes of the packed operand, where the k-table starts in the scratch buffer.
    fn table_offset(&self) -> i64 {
        ((self.k_hi - self.k_lo) * padded(self.n) * 4) as i64
    }

    /// The bytes of one `k`'s row of the k-table (8 per value, then the window's entries).
    fn table_row(&self) -> i64 {
        let window = self.window.as_ref().map_or(0, Window::table_entries);
        8 * (self.table_values.len() + window) as i64
    }

    /// Where the packed operand's largest magnitude (for the range guard) follows the
    /// k-table.
    fn lane_max_offset(&self) -> i64 {
        self.table_offset() + (self.k_hi - self.k_lo) as i64 * self.table_row()
    }
}

/// Compiles the contraction `op` (recognised as `plan`): its packing function and kernel.
pub(super) fn compile(
    jit: &mut JITModule,
    fctx: &mut FunctionBuilderContext,
    ir: &Module,
    op: OpId,
    helpers: Helpers,
    name: &str,
    plan: &Plan,
) -> Result<KernelFn, String> {
    let floats = plan.lane_max_offset() as usize / 4 + usize::from(plan.range_guard.is_some());
    let (pack_id, _, _) = build_function(
        jit,
        fctx,
        ir,
        op,
        helpers,
        &format!("{name}_pack"),
        |g, _out, env, slot, lo, hi| {
            let scratch =
                g.e.b
                    .ins()
                    .load(types::I64, MemFlagsData::trusted(), env, slot * 8);
            emit_pack(g, plan, scratch, lo, hi)
        },
    )?;
    let o = &ir.ops[op];
    let rank = ir
        .ty(o.results[0])
        .as_tensor()
        .ok_or("a generate makes a tensor")?
        .rank();
    let (id, captures, streams) = build_function(
        jit,
        fctx,
        ir,
        op,
        helpers,
        name,
        |g, out, env, slot, lo, hi| {
            let scratch =
                g.e.b
                    .ins()
                    .load(types::I64, MemFlagsData::trusted(), env, slot * 8);
            Kernel { plan, out, scratch }.emit(g, lo, hi)
        },
    )?;
    let k = (plan.k_hi - plan.k_lo) as f64;
    Ok(KernelFn {
        id,
        captures,
        split: rank - 1,
        cost_per_element: 2.0 * k,
        streams,
        pack: Some(Pack {
            id: pack_id,
            floats,
            columns: plan.n,
            lane_max: plan
                .range_guard
                .map(|_| plan.lane_max_offset() as usize / 4),
        }),
    })
}

fn emit_ops(g: &mut Gen, ops: &[OpId]) -> Result<(), String> {
    for &op in ops {
        g.emit_in_block(op, 1)?;
    }
    Ok(())
}

/// For a chunked plan, the chunk ops evaluated at the first chunk `k_lo`, for the packing
/// function (what it packs does not depend on the chunk: `plan` checks).
fn enter_first_chunk(g: &mut Gen, plan: &Plan, k_lo: Value) -> Result<(), String> {
    if plan.inner.is_none() {
        return Ok(());
    }
    let ir = g.ir;
    let outer_block = ir
        .entry_block(ir.ops[plan.outer].regions[0])
        .ok_or("a body")?;
    g.vals
        .insert(ir.blocks[outer_block].args[0], Lv::Shared(Cv::Index(k_lo)));
    emit_ops(g, &plan.chunk_ops)
}

/// The packing function: `scratch[(k − k_lo)·npad + j]` = the packed operand at `(j, k)`.
/// The packing function for the columns `[lo, hi)`: `scratch[(k − k_lo)·npad + j]` = the
/// packed operand at `(j, k)`; with a range guard, the largest magnitude of those values
/// (integer maximum of the sign-cleared bits: magnitudes order like their values, NaN above
/// ∞) merged into the guard's slot by an atomic maximum; the k-table when `lo` is 0.
fn emit_pack(g: &mut Gen, plan: &Plan, scratch: Value, lo: Value, hi: Value) -> Result<(), String> {
    let ir = g.ir;
    let npad = padded(plan.n) as i64;
    let (klo, khi) = (g.e.i64c(plan.k_lo as i64), g.e.i64c(plan.k_hi as i64));
    let none = g.e.b.ins().iconst(types::I32, 0);
    let column_max = loop_carrying(g, lo, hi, 1, &[none], |g, j, max| {
        let args = ir.blocks[plan.body].args.clone();
        for (i, &a) in args.iter().enumerate() {
            let v = if i + 1 == args.len() { j } else { g.e.i64c(0) };
            g.vals.insert(a, Lv::Shared(Cv::Index(v)));
        }
        emit_ops(g, &plan.pre_ops)?;
        loop_carrying(g, klo, khi, 1, max, |g, k, max| {
            enter_first_chunk(g, plan, klo)?;
            g.vals
                .insert(ir.blocks[plan.term_block].args[0], Lv::Shared(Cv::Index(k)));
            emit_operand_ops(g, plan, &plan.lane_ops)?;
            let Some(Cv::F32(x)) = g.vals.get(&plan.lane_operand).map(lane0) else {
                return Err("the packed operand is a scalar".into());
            };
            let kk = g.e.b.ins().iadd_imm_s(k, -(plan.k_lo as i64));
            let row = g.e.b.ins().imul_imm_s(kk, npad);
            let pos = g.e.b.ins().iadd(row, j);
            let bytes = g.e.b.ins().ishl_imm_s(pos, 2);
            let addr = g.e.b.ins().iadd(scratch, bytes);
            g.e.b.ins().store(MemFlagsData::trusted(), x, addr, 0);
            if plan.range_guard.is_none() {
                return Ok(max.to_vec());
            }
            Ok(vec![larger_magnitude_bits(g, max[0], x)])
        })
    })?;
    if plan.range_guard.is_some() {
        let max = *column_max.first().ok_or("the largest magnitude")?;
        let addr = g.e.b.ins().iadd_imm_s(scratch, plan.lane_max_offset());
        g.e.b
            .ins()
            .atomic_rmw(types::I32, MemFlagsData::trusted(), AtomicRmwOp::Smax, addr, max);
    }
    if plan.table_row() == 0 {
        return Ok(());
    }
    // Once, by the columns' first range.
    let (table, done) = (g.e.b.create_block(), g.e.b.create_block());
    let first = g.e.b.ins().icmp_imm_s(IntCC::Equal, lo, 0);
    g.e.b.ins().brif(first, table, &[], done, &[]);
    g.e.b.switch_to_block(table);
    emit_table(g, plan, scratch)?;
    g.e.b.ins().jump(done, &[]);
    g.e.b.switch_to_block(done);
    Ok(())
}

/// The k-table (module doc).
fn emit_table(g: &mut Gen, plan: &Plan, scratch: Value) -> Result<(), String> {
    let ir = g.ir;
    let zero = g.e.i64c(0);
    let (klo, khi) = (g.e.i64c(plan.k_lo as i64), g.e.i64c(plan.k_hi as i64));
    // The k-table: `table_values` at every `k`, 8 bytes each, after the packed operand, then
    // the window's entries.
    let args = ir.blocks[plan.body].args.clone();
    for &a in &args {
        g.vals.insert(a, Lv::Shared(Cv::Index(zero)));
    }
    emit_ops(g, &plan.pre_ops)?;
    enter_first_chunk(g, plan, klo)?;
    counted_loop(g, klo, khi, 1, false, |g, k| {
        g.vals
            .insert(ir.blocks[plan.term_block].args[0], Lv::Shared(Cv::Index(k)));
        emit_ops(g, &plan.table_ops)?;
        let addr = table_row_address(g, plan, scratch, k);
        for (f, v) in plan.table_values.iter().enumerate() {
            let x = match g.vals.get(v).map(lane0) {
                Some(Cv::Index(x) | Cv::F32(x)) => x,
                _ => return Err("a k-table value is an index or a float".into()),
            };
            g.e.b
                .ins()
                .store(MemFlagsData::trusted(), x, addr, 8 * f as i32);
        }
        if let Some(w) = &plan.window {
            let first = plan.table_values.len();
            for (f, x) in w.emit_entries(g)?.into_iter().enumerate() {
                let offset = 8 * (first + f) as i32;
                g.e.b.ins().store(MemFlagsData::trusted(), x, addr, offset);
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// The larger of `max` (a magnitude's bits, as i32) and `|x|` (f32) as those bits:
/// magnitudes order like their values as integers, NaN above ∞.
fn larger_magnitude_bits(g: &mut Gen, max: Value, x: Value) -> Value {
    let bits = g.e.b.ins().bitcast(types::I32, MemFlagsData::new(), x);
    let magnitude = g.e.b.ins().band_imm_s(bits, i64::from(i32::MAX));
    g.e.b.ins().smax(max, magnitude)
}

/// The larger of two magnitudes (NaN if one is NaN), as integers.
fn larger_magnitude(g: &mut Gen, a: Value, b: Value) -> Value {
    let (a, b) = (
        g.e.b.ins().bitcast(types::I32, MemFlagsData::new(), a),
        g.e.b.ins().bitcast(types::I32, MemFlagsData::new(), b),
    );
    let max = g.e.b.ins().smax(a, b);
    g.e.b.ins().bitcast(types::F32, MemFlagsData::new(), max)
}

/// The largest `|value(k)|` for `k in lo..hi by stride` (NaN if one is NaN; 0 for none): the
/// integer maximum of the bits with the sign cleared, as [`packed_max_magnitude`].
fn max_magnitude(
    g: &mut Gen,
    lo: Value,
    hi: Value,
    stride: i64,
    mut value: impl FnMut(&mut Gen, Value) -> Result<Value, String>,
) -> Result<Value, String> {
    let start = g.e.b.ins().iconst(types::I32, 0);
    let max = loop_carrying(g, lo, hi, stride, &[start], |g, k, max| {
        let x = value(g, k)?;
        Ok(vec![larger_magnitude_bits(g, max[0], x)])
    })?;
    let max = *max.first().ok_or("the largest magnitude")?;
    Ok(g.e.b.ins().bitcast(types::F32, MemFlagsData::new(), max))
}

/// The k-table's values at `k` (loaded once per `k`, shared by the rows).
fn load_table(g: &mut Gen, plan: &Plan, scratch: Value, k: Value) -> Vec<(ValueId, Lv)> {
    if plan.table_values.is_empty() {
        return Vec::new();
    }
    let addr = table_row_address(g, plan, scratch, k);
    let flags = MemFlagsData::trusted().with_readonly().with_can_move();
    plan.table_values
        .iter()
        .enumerate()
        .map(|(f, &v)| {
            let offset = 8 * f as i32;
            let x = if g.ir.ty(v) == &Type::Index {
                Cv::Index(g.e.b.ins().load(types::I64, flags, addr, offset))
            } else {
                Cv::F32(g.e.b.ins().load(types::F32, flags, addr, offset))
            };
            (v, Lv::Shared(x))
        })
        .collect()
}

/// The window's k-table entries at `k`: the offset's bytes, then each range's `k` part.
fn load_window_entries(g: &mut Gen, plan: &Plan, scratch: Value, k: Value) -> Vec<Value> {
    let Some(w) = &plan.window else {
        return Vec::new();
    };
    let addr = table_row_address(g, plan, scratch, k);
    let first = plan.table_values.len();
    let flags = MemFlagsData::trusted().with_readonly().with_can_move();
    (0..w.table_entries())
        .map(|f| {
            let offset = 8 * (first + f) as i32;
            g.e.b.ins().load(types::I64, flags, addr, offset)
        })
        .collect()
}

/// The address of the k-table's row for `k` in the scratch buffer at `scratch`.
fn table_row_address(g: &mut Gen, plan: &Plan, scratch: Value, k: Value) -> Value {
    let kk = g.e.b.ins().iadd_imm_s(k, -(plan.k_lo as i64));
    let row = g.e.b.ins().imul_imm_s(kk, plan.table_row());
    let row = g.e.b.ins().iadd_imm_s(row, plan.table_offset());
    g.e.b.ins().iadd(scratch, row)
}

/// `values` (i64) stored to the stack and read back by atomic loads, which Cranelift neither
/// forwards nor moves: their computation stays where it is rather than being repeated at
/// every use inside a loop.
fn through_memory(g: &mut Gen, values: &[Value]) -> Vec<Value> {
    let slot = g.e.b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        8 * values.len() as u32,
        3,
    ));
    values
        .iter()
        .enumerate()
        .map(|(at, &x)| {
            let offset = 8 * at as i32;
            g.e.b.ins().stack_store(types::I64, x, slot, offset);
            let addr = g.e.b.ins().stack_addr(types::I64, slot, offset);
            g.e.b
                .ins()
                .atomic_load(types::I64, MemFlagsData::trusted(), addr)
        })
        .collect()
}

/// Where a block's rows take their row operand (and `keep`) from at each `k`.
enum RowSource {
    /// Evaluated from the rows' positions and the k-table.
    Computed,
    /// Loaded from the row pack at this address.
    Packed(Value),
    /// Loaded from each row's window.
    Window(Vec<WindowRow>),
}

fn lane0(l: &Lv) -> Cv {
    match l {
        Lv::Shared(c) => *c,
        Lv::Lanes(v) => v[0],
    }
}

/// Per output vector: its initial value and the draw bases (low and high 32 bits per lane)
/// of the outer and inner accumulations.
struct VecInit {
    init: Value,
    outer_draw: Option<DrawCounters>,
    inner_draw: Option<DrawCounters>,
}

struct Kernel<'p> {
    plan: &'p Plan,
    out: &'p TensorView,
    scratch: Value,
}

impl Kernel<'_> {
    fn emit(&self, g: &mut Gen, lo: Value, hi: Value) -> Result<(), String> {
        // A block's accumulator chains (rows × vectors). A rounded step's latency (twenty-odd
        // cycles through TwoSum and the rounding) needs more independent chains than the
        // sixteen vector registers hold to keep the vector units busy: where the layer is that
        // wide, one row of sixteen vectors (measured on 256³ against two rows of four and one
        // row of four or eight: 12–80% faster). Binary32 steps (a multiply and an add, or an
        // fma of four cycles' latency) are busy with eight chains, and sixteen would spill:
        // two rows of four (measured on 256³ with an fma: as fast unchunked, 5% faster chunked).
        // Narrower layers: binary32 steps two rows of four vectors, the others one row of four
        // (two rows of `nearest` through binary32 spill its eight accumulators beside its
        // constants: measured 15-40% slower on the 32×32×16→16 convolution).
        let step = self.plan.inner_step.unwrap_or(self.plan.outer_step);
        let short_step = matches!(step, Step::Binary32 | Step::NearestThroughBinary32 { .. });
        let nvec = (self.plan.n / 4) as usize;
        let binary32 = matches!(step, Step::Binary32);
        let (rows, vecs) = match (short_step, nvec) {
            (_, v) if v >= 16 && !binary32 => (1, 16),
            (_, v) if v >= 4 && binary32 => (2, 4),
            (_, v) if v >= 4 => (1, 4),
            (true, _) => (4, 2),
            (false, _) => (2, 2),
        };
        let r = counted_loop(g, lo, hi, rows as i64, true, |g, r| {
            self.rows(g, r, rows, vecs)
        })?;
        if rows > 1 {
            counted_loop(g, r, hi, 1, false, |g, r| self.rows(g, r, 1, vecs))?;
        }
        Ok(())
    }

    /// Rows `r..r+count` (row-major positions over all axes but the last).
    fn rows(&self, g: &mut Gen, r: Value, count: usize, vecs: usize) -> Result<(), String> {
        let prefix = self.out.dims.len() - 1;
        let mut rows = Vec::with_capacity(count);
        for i in 0..count {
            let mut pos = g.e.b.ins().iadd_imm_s(r, i as i64);
            let mut idx = vec![pos; prefix];
            for a in (0..prefix).rev() {
                if a == 0 {
                    idx[a] = pos;
                } else {
                    idx[a] = g.e.b.ins().urem(pos, self.out.dims[a]);
                    pos = g.e.b.ins().udiv(pos, self.out.dims[a]);
                }
            }
            rows.push(idx);
        }
        // The row indices pass through memory: otherwise Cranelift folds their division by
        // constant dimensions into shifts and masks that it recomputes at every use inside
        // the `k` loop.
        let flat: Vec<Value> = rows.iter().flatten().copied().collect();
        let mut opaque = through_memory(g, &flat).into_iter();
        for x in rows.iter_mut().flatten() {
            *x = opaque.next().ok_or("a row index")?;
        }
        // The row pack pays when several groups of outputs share it (measured: from two; with
        // one, evaluating the row operand in the group's `k` loop is faster).
        let source = match (&self.plan.window, self.plan.n > 4 * vecs as u64) {
            (Some(w), _) => {
                let mut window_rows = Vec::with_capacity(rows.len());
                for row in &rows {
                    self.set_position(g, row, Lv::Shared(Cv::Index(row[0])));
                    // Through memory, or Cranelift recomputes the bounds at every `k`.
                    let computed = w.row(g)?.values();
                    let values = through_memory(g, &computed);
                    window_rows.push(WindowRow::from_values(&values));
                }
                RowSource::Window(window_rows)
            }
            (None, true) => match self.pack_rows(g, &rows)? {
                Some(buffer) => RowSource::Packed(buffer),
                None => RowSource::Computed,
            },
            (None, false) => RowSource::Computed,
        };
        let guard = match (self.plan.range_guard, &source) {
            (Some(guard), RowSource::Computed | RowSource::Packed(_)) => guard,
            _ => return self.groups(g, &rows, &source, vecs, false),
        };
        // The range guard: the block's outputs without overflow checks where it holds.
        let x = self.row_max(g, &rows, &source)?;
        let w = g.e.b.ins().load(
            types::F32,
            MemFlagsData::trusted().with_readonly(),
            self.scratch,
            self.plan.lane_max_offset() as i32,
        );
        let bound = g.e.b.ins().fmul(x, w);
        let limit = g.e.b.ins().f32const(guard.limit);
        let within = g.e.b.ins().fcmp(FloatCC::LessThanOrEqual, bound, limit);
        let (bounded, checked, join) = (
            g.e.b.create_block(),
            g.e.b.create_block(),
            g.e.b.create_block(),
        );
        g.e.b.ins().brif(within, bounded, &[], checked, &[]);
        for (block, within_range) in [(bounded, true), (checked, false)] {
            g.e.b.switch_to_block(block);
            self.groups(g, &rows, &source, vecs, within_range)?;
            g.e.b.ins().jump(join, &[]);
        }
        g.e.b.switch_to_block(join);
        Ok(())
    }

    /// Every group of outputs of the block `rows` (`within_range`: the range guard holds).
    fn groups(
        &self,
        g: &mut Gen,
        rows: &[Vec<Value>],
        source: &RowSource,
        vecs: usize,
        within_range: bool,
    ) -> Result<(), String> {
        let n = self.plan.n as i64;
        let zero = g.e.i64c(0);
        let end = g.e.i64c(n);
        let j = counted_loop(g, zero, end, 4 * vecs as i64, true, |g, j| {
            self.group(g, rows, source, j, vecs, 4, within_range)
        })?;
        // Single vectors for the whole vectors the blocks leave (none when they divide `n`).
        if n % (4 * vecs as i64) >= 4 {
            let whole = g.e.i64c(n - n % 4);
            counted_loop(g, j, whole, 4, true, |g, j| {
                self.group(g, rows, source, j, 1, 4, within_range)
            })?;
        }
        if n % 4 != 0 {
            let j = g.e.i64c(n - n % 4);
            self.group(g, rows, source, j, 1, (n % 4) as usize, within_range)?;
        }
        Ok(())
    }

    /// The largest magnitude of the row operand over the block's rows and every `k` (NaN if
    /// one is NaN), for the range guard: from the row pack, or evaluated.
    fn row_max(&self, g: &mut Gen, rows: &[Vec<Value>], source: &RowSource) -> Result<Value, String> {
        let plan = self.plan;
        let span = (plan.k_hi - plan.k_lo) as i64;
        if let RowSource::Packed(buffer) = *source {
            let zero = g.e.i64c(0);
            let end = g.e.i64c(4 * span * rows.len() as i64);
            return max_magnitude(g, zero, end, 4, |g, at| {
                let addr = g.e.b.ins().iadd(buffer, at);
                Ok(g.e.b.ins().load(types::F32, MemFlagsData::trusted(), addr, 0))
            });
        }
        let saved = g.vals.clone();
        let (klo, khi) = (g.e.i64c(plan.k_lo as i64), g.e.i64c(plan.k_hi as i64));
        let zero = g.e.i64c(0);
        let k_arg = g.ir.blocks[plan.term_block].args[0];
        let mut max = g.e.b.ins().f32const(0.0);
        for row in rows {
            self.set_position(g, row, Lv::Shared(Cv::Index(zero)));
            emit_ops(g, &plan.pre_ops)?;
            let before = g.vals.clone();
            let row_max = max_magnitude(g, klo, khi, 1, |g, k| {
                g.vals.clone_from(&before);
                let table = load_table(g, plan, self.scratch, k);
                g.vals.extend(table);
                g.vals.insert(k_arg, Lv::Shared(Cv::Index(k)));
                emit_row_ops(g, plan)?;
                row_value(g, plan)
            })?;
            max = larger_magnitude(g, max, row_max);
        }
        g.vals = saved;
        Ok(max)
    }

    fn set_position(&self, g: &mut Gen, row: &[Value], j: Lv) {
        let args = &g.ir.blocks[self.plan.body].args;
        for (a, &arg) in args.iter().enumerate() {
            let v = if a + 1 == args.len() {
                j.clone()
            } else {
                Lv::Shared(Cv::Index(row[a]))
            };
            g.vals.insert(arg, v);
        }
    }

    /// The row pack of `rows` (module doc) if the plan takes one: a stack buffer holding, for
    /// each row `i` and `k`, the row operand (f32) at byte `4·(i·K + k − k_lo)`, then `keep`
    /// (i32) at `4·(rows·K + i·K + k − k_lo)`. Returns its address.
    fn pack_rows(&self, g: &mut Gen, rows: &[Vec<Value>]) -> Result<Option<Value>, String> {
        let plan = self.plan;
        if !plan.pack_rows {
            return Ok(None);
        }
        let ir = g.ir;
        let span = (plan.k_hi - plan.k_lo) as i64;
        let slot = g.e.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (8 * span * rows.len() as i64) as u32,
            4,
        ));
        let buffer = g.e.b.ins().stack_addr(types::I64, slot, 0);
        let saved = g.vals.clone();
        let (klo, khi) = (g.e.i64c(plan.k_lo as i64), g.e.i64c(plan.k_hi as i64));
        let zero = g.e.i64c(0);
        let k_arg = ir.blocks[plan.term_block].args[0];
        for (i, row) in rows.iter().enumerate() {
            self.set_position(g, row, Lv::Shared(Cv::Index(zero)));
            emit_ops(g, &plan.pre_ops)?;
            let before = g.vals.clone();
            counted_loop(g, klo, khi, 1, false, |g, k| {
                g.vals.clone_from(&before);
                let table = load_table(g, plan, self.scratch, k);
                g.vals.extend(table);
                g.vals.insert(k_arg, Lv::Shared(Cv::Index(k)));
                emit_row_ops(g, plan)?;
                let x = row_value(g, plan)?;
                let kk = g.e.b.ins().iadd_imm_s(k, -(plan.k_lo as i64));
                let bytes = g.e.b.ins().ishl_imm_s(kk, 2);
                let addr = g.e.b.ins().iadd(buffer, bytes);
                let flags = MemFlagsData::trusted();
                g.e.b
                    .ins()
                    .store(flags, x, addr, (4 * span * i as i64) as i32);
                if let Some(kv) = plan.keep {
                    // The conjunction of the factors' truths (no products).
                    let mut keep = None;
                    for c in keep_conditions(g, kv)? {
                        let c = if g.e.b.func.dfg.value_type(c) == types::I8 {
                            c
                        } else {
                            g.e.b.ins().icmp_imm_s(IntCC::NotEqual, c, 0)
                        };
                        keep = Some(match keep {
                            Some(k) => g.e.b.ins().band(k, c),
                            None => c,
                        });
                    }
                    let keep = keep.ok_or("a keep condition")?;
                    let keep = g.e.b.ins().uextend(types::I32, keep);
                    let offset = 4 * span * (rows.len() + i) as i64;
                    g.e.b.ins().store(flags, keep, addr, offset as i32);
                }
                Ok(())
            })?;
        }
        g.vals = saved;
        Ok(Some(buffer))
    }

    /// The outputs `rows × [j0, j0 + 4·vecs)` (only `valid` lanes of a single vector stored);
    /// `source`: where the rows' operands come from.
    #[allow(clippy::too_many_arguments)]
    fn group(
        &self,
        g: &mut Gen,
        rows: &[Vec<Value>],
        source: &RowSource,
        j0: Value,
        vecs: usize,
        valid: usize,
        within_range: bool,
    ) -> Result<(), String> {
        let ir = g.ir;
        let plan = self.plan;
        let oo = &ir.ops[plan.outer];
        // The term accumulation's step, without the overflow check where the guard holds.
        let term_step = |step: Step| match step {
            Step::NearestThroughBinary32 { format } if within_range => Step::NearestWithinRange {
                format,
                positive_zero: plan.range_guard.is_some_and(|g| g.positive_zero),
            },
            other => other,
        };
        let mut snapshots = Vec::with_capacity(rows.len());
        let mut inits: Vec<Vec<VecInit>> = Vec::with_capacity(rows.len());
        for row in rows {
            let mut per_vec = Vec::with_capacity(vecs);
            for v in 0..vecs {
                let lanes: Vec<Cv> = (0..4)
                    .map(|l| Cv::Index(g.e.b.ins().iadd_imm_s(j0, (4 * v + l) as i64)))
                    .collect();
                self.set_position(g, row, Lv::Lanes(lanes));
                for &op in &plan.pre_ops {
                    g.emit_in_block(op, 4)?;
                }
                if v == 0 {
                    snapshots.push(g.vals.clone());
                }
                let init = vector_of(g, &g.vals[&oo.operands[2]].clone(), types::F32X4)?;
                let outer_draw = match oo.operands.get(3) {
                    Some(d) => Some(draw_base(g, &g.vals[d].clone(), plan.draws_in_32_bits)?),
                    None => None,
                };
                let inner_draw = match plan.inner.and_then(|i| ir.ops[i].operands.get(3)) {
                    Some(d) => Some(draw_base(g, &g.vals[d].clone(), plan.draws_in_32_bits)?),
                    None => None,
                };
                per_vec.push(VecInit {
                    init,
                    outer_draw,
                    inner_draw,
                });
            }
            inits.push(per_vec);
        }
        let accs: Vec<Value> = inits.iter().flatten().map(|v| v.init).collect();
        let klo = g.e.i64c(plan.k_lo as i64);
        let khi = g.e.i64c(plan.k_hi as i64);
        let outer_stride = ir.ops[plan.outer]
            .attr("step")
            .and_then(Attr::as_int)
            .unwrap_or(1);
        let outer_block = ir.entry_block(oo.regions[0]).ok_or("a body")?;
        let ko_arg = ir.blocks[outer_block].args[0];
        let results = match plan.inner {
            None => self.k_loop(
                g,
                source,
                &snapshots,
                &inits,
                j0,
                vecs,
                klo,
                khi,
                outer_stride,
                &accs,
                term_step(plan.outer_step),
                false,
            )?,
            Some(inner) => {
                let io = &ir.ops[inner];
                let inner_stride = io.attr("step").and_then(Attr::as_int).unwrap_or(1);
                let step = term_step(plan.inner_step.ok_or("an inner step")?);
                // The outer accumulators wait in a stack slot while a chunk runs: the
                // registers are the inner accumulators' and the loaded operands'.
                let slot = g.e.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    16 * accs.len() as u32,
                    4,
                ));
                // One address, the accumulators at immediate offsets from it: a
                // `stack_load` per accumulator would become one hoisted address register
                // each, which the inner loop cannot spare.
                let stash = g.e.b.ins().stack_addr(types::I64, slot, 0);
                let flags = MemFlagsData::trusted();
                for (a, &acc) in accs.iter().enumerate() {
                    g.e.b.ins().store(flags, acc, stash, 16 * a as i32);
                }
                loop_carrying(g, klo, khi, outer_stride, &[], |g, ko, _| {
                    // Each row's chunk values, once per chunk (row 0's last: the bounds).
                    let mut chunk_snapshots = Vec::with_capacity(snapshots.len());
                    for snapshot in snapshots.iter().rev() {
                        g.vals = snapshot.clone();
                        g.vals.insert(ko_arg, Lv::Shared(Cv::Index(ko)));
                        emit_ops(g, &plan.chunk_ops)?;
                        chunk_snapshots.push(g.vals.clone());
                    }
                    chunk_snapshots.reverse();
                    let ilo = g.index(io.operands[0])?;
                    let ihi = g.index(io.operands[1])?;
                    let Some(Cv::F32(init)) = g.vals.get(&io.operands[2]).map(lane0) else {
                        return Err("an initial value".into());
                    };
                    let init = g.e.b.ins().splat(types::F32X4, init);
                    let inner_init = vec![init; inits.len() * vecs];
                    let sums = self.k_loop(
                        g,
                        source,
                        &chunk_snapshots,
                        &inits,
                        j0,
                        vecs,
                        ilo,
                        ihi,
                        inner_stride,
                        &inner_init,
                        step,
                        true,
                    )?;
                    for (a, &sum) in sums.iter().enumerate() {
                        let vi = &inits[a / vecs][a % vecs];
                        let draw = vi.outer_draw.map(|d| Draw::Counters(draw_at(g, d, ko)));
                        let offset = 16 * a as i32;
                        let acc = g.e.b.ins().load(types::F32X4, flags, stash, offset);
                        let [acc] =
                            add_steps(g, plan.outer_step, &[(acc, Addend::Sum(sum), draw)])[..]
                        else {
                            unreachable!("one step gives one sum")
                        };
                        g.e.b.ins().store(flags, acc, stash, offset);
                    }
                    Ok(Vec::new())
                })?;
                (0..accs.len())
                    .map(|a| g.e.b.ins().load(types::F32X4, flags, stash, 16 * a as i32))
                    .collect()
            }
        };
        // The rest of each element: whole vectors by `pointwise` where it computes the
        // epilogue (lanes outside its conditions, and partial vectors, by the scalar code),
        // else scalar, lane by lane.
        let count = if vecs == 1 { valid } else { 4 };
        for (i, row) in rows.iter().enumerate() {
            let epilogue = match &plan.epilogue {
                Some(e) if count == 4 => Some((e, super::pointwise::row_values(g, e, self.out, row)?)),
                _ => None,
            };
            for v in 0..vecs {
                let acc = results[i * vecs + v];
                let scalar = |g: &mut Gen| {
                    let lanes: Vec<Cv> = (0..count)
                        .map(|l| Cv::F32(g.e.b.ins().extractlane(acc, l as u8)))
                        .collect();
                    let value = if count == 1 {
                        Lv::Shared(lanes[0])
                    } else {
                        Lv::Lanes(lanes)
                    };
                    g.precomputed.insert(plan.outer, value);
                    let idx: Vec<Vec<Value>> = (0..count)
                        .map(|l| {
                            let mut p = row.clone();
                            p.push(g.e.b.ins().iadd_imm_s(j0, (4 * v + l) as i64));
                            p
                        })
                        .collect();
                    g.element(self.out, &idx, plan.body)?;
                    g.precomputed.remove(&plan.outer);
                    Ok(())
                };
                match &epilogue {
                    Some((e, row_values)) => {
                        let j = g.e.b.ins().iadd_imm_s(j0, 4 * v as i64);
                        super::pointwise::vector(g, e, self.out, row_values, j, Some(acc), scalar)?
                    }
                    None => scalar(g)?,
                }
            }
        }
        Ok(())
    }

    /// The loop over the products: `acc = round(acc + u·v)` for `k in lo..hi by stride`, per
    /// row and vector; `snapshots`: each row's values (with its chunk's when `inner`: the
    /// products belong to the inner accumulation).
    ///
    /// A stochastic step draws its random words in a pass of its own over a tile of `k`
    /// (stored to the stack) before the pass that adds the tile's terms reads them: each
    /// pass then keeps its own constants in registers (the hash's and the rounding's did not
    /// fit together, and spilled).
    #[allow(clippy::too_many_arguments)]
    fn k_loop(
        &self,
        g: &mut Gen,
        source: &RowSource,
        snapshots: &[HashMap<ValueId, Lv>],
        inits: &[Vec<VecInit>],
        j0: Value,
        vecs: usize,
        lo: Value,
        hi: Value,
        stride: i64,
        accs: &[Value],
        step: Step,
        inner: bool,
    ) -> Result<Vec<Value>, String> {
        let plan = self.plan;
        // The draw counters are induction variables of the loop, advanced by `stride` per
        // iteration (a loop-invariant base plus `k` would have its index arithmetic
        // rematerialised inside the loop).
        // Where the counters grow by a constant per `j`, only each row's first vector
        // carries them; the others add a constant.
        let draw_j = if inner {
            plan.inner_draw_j
        } else {
            plan.outer_draw_j
        };
        let starts: Vec<Option<DrawCounters>> = inits
            .iter()
            .flatten()
            .enumerate()
            .map(|(a, vi)| {
                let base = if inner { vi.inner_draw } else { vi.outer_draw };
                base.filter(|_| draw_j.is_none() || a % vecs == 0)
                    .map(|b| draw_at(g, b, lo))
            })
            .collect();
        let mut carried = accs.to_vec();
        for c in starts.iter().flatten() {
            carried.push(c.low);
            carried.extend(c.high);
        }
        // The counters of every accumulator from the carried ones.
        let counters = |g: &mut Gen, rest: &[Value]| -> Vec<Option<DrawCounters>> {
            let mut rest = rest;
            let mut draws: Vec<Option<DrawCounters>> = starts
                .iter()
                .map(|c| {
                    c.map(|c| {
                        let low = rest[0];
                        let high = c.high.map(|_| rest[1]);
                        rest = &rest[1 + usize::from(high.is_some())..];
                        DrawCounters { low, high }
                    })
                })
                .collect();
            if let Some(per_j) = draw_j {
                // Each vector's counters are the previous vector's plus one constant.
                let offset = ivec(g, 4u64.wrapping_mul(per_j) as i32);
                for a in 0..draws.len() {
                    if let (Some(previous), true) = (draws[a.saturating_sub(1)], a % vecs > 0) {
                        let low = g.e.b.ins().iadd(previous.low, offset);
                        draws[a] = Some(DrawCounters { low, high: None });
                    }
                }
            }
            draws
        };
        let has_draw: Vec<bool> = (0..accs.len())
            .map(|a| starts[a].is_some() || (draw_j.is_some() && starts[a - a % vecs].is_some()))
            .collect();
        let advance = |g: &mut Gen, rest: &[Value], by: i64| -> Vec<Value> {
            let mut next = Vec::with_capacity(rest.len());
            let mut rest = rest;
            for c in starts.iter().flatten() {
                let carried = DrawCounters {
                    low: rest[0],
                    high: c.high.map(|_| rest[1]),
                };
                rest = &rest[1 + usize::from(c.high.is_some())..];
                let by = g.e.i64c(by);
                let c = draw_at(g, carried, by);
                next.push(c.low);
                next.extend(c.high);
            }
            next
        };
        let n = accs.len();
        let stream = match step {
            Step::Narrow { stream, .. } if stride == 1 && starts.iter().any(Option::is_some) => {
                Some(stream)
            }
            _ => None,
        };
        let Some(stream) = stream else {
            let sums = loop_carrying(g, lo, hi, stride, &carried, |g, k, carried| {
                let (accs, rest) = carried.split_at(n);
                let draws: Vec<Option<Draw>> = counters(g, rest)
                    .into_iter()
                    .map(|d| d.map(Draw::Counters))
                    .collect();
                let mut next =
                    self.terms(g, source, snapshots, j0, vecs, k, accs, &draws, step)?;
                next.extend(advance(g, rest, stride));
                Ok(next)
            })?;
            return Ok(sums[..n].to_vec());
        };
        let slot = g.e.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (16 * n as i64 * WORD_TILE) as u32,
            4,
        ));
        let words = g.e.b.ins().stack_addr(types::I64, slot, 0);
        let flags = MemFlagsData::trusted();
        let sums = loop_carrying(g, lo, hi, WORD_TILE, &carried, |g, t, carried| {
            let (accs, rest) = carried.split_at(n);
            let end = g.e.b.ins().iadd_imm_s(t, WORD_TILE);
            let end = g.e.b.ins().umin(end, hi);
            let tile_address = |g: &mut Gen, k: Value| {
                let kk = g.e.b.ins().isub(k, t);
                let bytes = g.e.b.ins().imul_imm_s(kk, 16 * n as i64);
                g.e.b.ins().iadd(words, bytes)
            };
            let rest = loop_carrying(g, t, end, 1, rest, |g, k, rest| {
                let at = tile_address(g, k);
                for (a, d) in counters(g, rest).into_iter().enumerate() {
                    if let Some(d) = d {
                        let w = random_word(g, stream, d);
                        g.e.b.ins().store(flags, w, at, 16 * a as i32);
                    }
                }
                Ok(advance(g, rest, 1))
            })?;
            let mut sums = loop_carrying(g, t, end, 1, accs, |g, k, accs| {
                let at = tile_address(g, k);
                let draws: Vec<Option<Draw>> = has_draw
                    .iter()
                    .enumerate()
                    .map(|(a, &has)| {
                        has.then_some(Draw::Stored {
                            address: at,
                            offset: 16 * a as i32,
                        })
                    })
                    .collect();
                self.terms(g, source, snapshots, j0, vecs, k, accs, &draws, step)
            })?;
            sums.extend(rest);
            Ok(sums)
        })?;
        Ok(sums[..n].to_vec())
    }

    /// The terms at `k` added to the block's accumulators `accs` (each row's vectors in
    /// turn), with each accumulator's draw.
    #[allow(clippy::too_many_arguments)]
    fn terms(
        &self,
        g: &mut Gen,
        source: &RowSource,
        snapshots: &[HashMap<ValueId, Lv>],
        j0: Value,
        vecs: usize,
        k: Value,
        accs: &[Value],
        draws: &[Option<Draw>],
        step: Step,
    ) -> Result<Vec<Value>, String> {
        let ir = g.ir;
        let plan = self.plan;
        let k_arg = ir.blocks[plan.term_block].args[0];
        let npad = padded(plan.n) as i64;
        let kk = g.e.b.ins().iadd_imm_s(k, -(plan.k_lo as i64));
        let pos = g.e.b.ins().imul_imm_s(kk, npad);
        let pos = g.e.b.ins().iadd(pos, j0);
        let bytes = g.e.b.ins().ishl_imm_s(pos, 2);
        let base = g.e.b.ins().iadd(self.scratch, bytes);
        // With one row, each packed vector is loaded where it is used, as a pure load
        // (the scratch buffer is filled before the kernel runs), which keeps registers
        // free for the rounding; with more rows, the loads come first and are shared.
        let one_row = snapshots.len() == 1;
        let mut lane_vals: Vec<Option<Value>> = (0..vecs)
            .map(|v| {
                (!one_row).then(|| {
                    g.e.b
                        .ins()
                        .load(types::F32X4, MemFlagsData::trusted(), base, 16 * v as i32)
                })
            })
            .collect();
        let table = match source {
            RowSource::Computed => load_table(g, plan, self.scratch, k),
            _ => Vec::new(),
        };
        let entries = match source {
            RowSource::Window(_) => load_window_entries(g, plan, self.scratch, k),
            _ => Vec::new(),
        };
        let mut next = Vec::with_capacity(accs.len());
        for (i, snapshot) in snapshots.iter().enumerate() {
            // The row operand (a window's after its range check) and the conditions of `keep`.
            let (x, keep) = match source {
                RowSource::Packed(buffer) => {
                    let span = (plan.k_hi - plan.k_lo) as i64;
                    let kk = g.e.b.ins().iadd_imm_s(k, -(plan.k_lo as i64));
                    let bytes = g.e.b.ins().ishl_imm_s(kk, 2);
                    let addr = g.e.b.ins().iadd(*buffer, bytes);
                    let flags = MemFlagsData::trusted();
                    let offset = (4 * span * i as i64) as i32;
                    let x = g.e.b.ins().load(types::F32, flags, addr, offset);
                    let keep = plan.keep.map(|_| {
                        let offset = 4 * span * (snapshots.len() + i) as i64;
                        vec![g.e.b.ins().load(types::I32, flags, addr, offset as i32)]
                    });
                    (Some(x), keep)
                }
                RowSource::Window(rows) => {
                    let w = plan.window.as_ref().ok_or("a window")?;
                    let kept = w.kept(g, &rows[i], &entries[1..]);
                    (None, kept.map(|c| vec![c]))
                }
                RowSource::Computed => {
                    g.vals = snapshot.clone();
                    g.vals.extend(table.iter().cloned());
                    g.vals.insert(k_arg, Lv::Shared(Cv::Index(k)));
                    emit_row_ops(g, plan)?;
                    let x = row_value(g, plan)?;
                    let keep = match plan.keep {
                        Some(kv) => Some(keep_conditions(g, kv)?),
                        None => None,
                    };
                    (Some(x), keep)
                }
            };
            // A term that `keep` skips leaves the row's accumulators as they are: one
            // branch per row around its steps.
            let old = &accs[i * vecs..(i + 1) * vecs];
            let join = match keep {
                Some(conditions) => {
                    let join = g.e.b.create_block();
                    for _ in old {
                        g.e.b.append_block_param(join, types::F32X4);
                    }
                    let unchanged: Vec<BlockArg> = old.iter().map(|&a| a.into()).collect();
                    for c in conditions {
                        let next = g.e.b.create_block();
                        g.e.b.ins().brif(c, next, &[], join, &unchanged);
                        g.e.b.switch_to_block(next);
                    }
                    Some(join)
                }
                None => None,
            };
            let x = match (x, source) {
                (Some(x), _) => x,
                (None, RowSource::Window(rows)) => window::load(g, &rows[i], entries[0]),
                (None, _) => return Err("a row operand".into()),
            };
            let xs = g.e.b.ins().splat(types::F32X4, x);
            let mut steps = Vec::with_capacity(vecs);
            for (v, slot) in lane_vals.iter_mut().enumerate() {
                let w = *slot.get_or_insert_with(|| {
                    let flags = MemFlagsData::trusted().with_readonly().with_can_move();
                    g.e.b.ins().load(types::F32X4, flags, base, 16 * v as i32)
                });
                let acc = accs[i * vecs + v];
                let draw = draws[i * vecs + v];
                let (a, b) = if plan.lane_first { (w, xs) } else { (xs, w) };
                steps.push((acc, Addend::Product(a, b, plan.fma), draw));
            }
            let stepped = add_steps(g, step, &steps);
            match join {
                Some(join) => {
                    let args: Vec<BlockArg> = stepped.iter().map(|&a| a.into()).collect();
                    g.e.b.ins().jump(join, &args);
                    g.e.b.switch_to_block(join);
                    next.extend_from_slice(g.e.b.block_params(join));
                }
                None => next.extend(stepped),
            }
        }
        Ok(next)
    }
}

/// Conditions whose conjunction is `keep != 0` (each an integer, true when nonzero): the
/// factors of a product of comparisons (`index_mul` of `index_lt`s, as padded convolutions
/// build it), each a comparison, so that the kernel branches on each rather than forming
/// the product; any other factor as its value.
fn keep_conditions(g: &mut Gen, keep: ValueId) -> Result<Vec<Value>, String> {
    let ir = g.ir;
    // Whether `v` is 0 or 1: a comparison or a product of such.
    fn boolean(ir: &Module, v: ValueId) -> bool {
        def_op(ir, v).is_some_and(|op| match ir.ops[op].name() {
            "kernel.index_lt" => true,
            "kernel.index_mul" => ir.ops[op].operands.iter().all(|&x| boolean(ir, x)),
            _ => false,
        })
    }
    let mut factors = vec![keep];
    let mut out = Vec::new();
    while let Some(v) = factors.pop() {
        let op = def_op(ir, v).filter(|_| boolean(ir, v));
        match op.map(|op| (ir.ops[op].name(), &ir.ops[op].operands)) {
            Some(("kernel.index_mul", x)) => factors.extend(x.iter().rev()),
            Some(("kernel.index_lt", x)) => {
                let (a, b) = (g.index(x[0])?, g.index(x[1])?);
                out.push(g.e.b.ins().icmp(IntCC::UnsignedLessThan, a, b));
            }
            _ => out.push(g.index(v)?),
        }
    }
    Ok(out)
}

/// `for k in lo..hi by stride` carrying `init` (vector values) through the iterations;
/// returns the final values.
fn loop_carrying(
    g: &mut Gen,
    lo: Value,
    hi: Value,
    stride: i64,
    init: &[Value],
    mut body: impl FnMut(&mut Gen, Value, &[Value]) -> Result<Vec<Value>, String>,
) -> Result<Vec<Value>, String> {
    let header = g.e.b.create_block();
    let inner = g.e.b.create_block();
    let exit = g.e.b.create_block();
    g.e.b.append_block_param(header, types::I64);
    for &v in init {
        let ty = g.e.b.func.dfg.value_type(v);
        g.e.b.append_block_param(header, ty);
        g.e.b.append_block_param(exit, ty);
    }
    let mut args: Vec<BlockArg> = vec![lo.into()];
    args.extend(init.iter().map(|&v| BlockArg::from(v)));
    g.e.b.ins().jump(header, &args);
    g.e.b.switch_to_block(header);
    let k = g.e.b.block_params(header)[0];
    let accs: Vec<Value> = g.e.b.block_params(header)[1..].to_vec();
    let more = g.e.b.ins().icmp(IntCC::UnsignedLessThan, k, hi);
    let acc_args: Vec<BlockArg> = accs.iter().map(|&v| v.into()).collect();
    g.e.b.ins().brif(more, inner, &[], exit, &acc_args);
    g.e.b.switch_to_block(inner);
    let next = body(g, k, &accs)?;
    let k_next = g.e.b.ins().iadd_imm_s(k, stride);
    let mut args: Vec<BlockArg> = vec![k_next.into()];
    args.extend(next.iter().map(|&v| BlockArg::from(v)));
    g.e.b.ins().jump(header, &args);
    g.e.b.switch_to_block(exit);
    Ok(g.e.b.block_params(exit).to_vec())
}

/// A vector of `ty` from a value per lane (or one shared value).
fn vector_of(g: &mut Gen, x: &Lv, ty: types::Type) -> Result<Value, String> {
    let scalar = |c: Cv| match c {
        Cv::F32(v) | Cv::Index(v) => Ok(v),
        Cv::Real(..) => Err("an exact product where a value was expected".to_string()),
    };
    match x {
        Lv::Shared(c) => Ok(g.e.b.ins().splat(ty, scalar(*c)?)),
        Lv::Lanes(lanes) => {
            let mut v = g.e.b.ins().splat(ty, scalar(lanes[0])?);
            for (l, c) in lanes.iter().enumerate().skip(1) {
                v = g.e.b.ins().insertlane(v, scalar(*c)?, l as u8);
            }
            Ok(v)
        }
    }
}

/// The draw counters of four lanes (i64 each) as `i32x4` low and high halves (no high
/// halves when `in_32_bits`: [`Plan::draws_in_32_bits`]).
fn draw_base(g: &mut Gen, x: &Lv, in_32_bits: bool) -> Result<DrawCounters, String> {
    let lanes: Vec<Value> = (0..4)
        .map(|l| match x {
            Lv::Shared(Cv::Index(v)) => Ok(*v),
            Lv::Lanes(v) => match v[l] {
                Cv::Index(v) => Ok(v),
                _ => Err("a draw counter".to_string()),
            },
            _ => Err("a draw counter".to_string()),
        })
        .collect::<Result<_, _>>()?;
    let low: Vec<Cv> = lanes
        .iter()
        .map(|&v| Cv::Index(g.e.b.ins().ireduce(types::I32, v)))
        .collect();
    let low = vector_of(g, &Lv::Lanes(low), types::I32X4)?;
    if in_32_bits {
        return Ok(DrawCounters { low, high: None });
    }
    let high: Vec<Cv> = lanes
        .iter()
        .map(|&v| {
            let h = g.e.b.ins().ushr_imm_s(v, 32);
            Cv::Index(g.e.b.ins().ireduce(types::I32, h))
        })
        .collect();
    let high = vector_of(g, &Lv::Lanes(high), types::I32X4)?;
    Ok(DrawCounters {
        low,
        high: Some(high),
    })
}

/// The draw counters `base + k` (a 64-bit addition in 32-bit halves, or a 32-bit one).
fn draw_at(g: &mut Gen, base: DrawCounters, k: Value) -> DrawCounters {
    let b = &mut *g.e.b;
    let k_lo = b.ins().ireduce(types::I32, k);
    let k_lo = b.ins().splat(types::I32X4, k_lo);
    let low = b.ins().iadd(base.low, k_lo);
    let Some(hi) = base.high else {
        return DrawCounters { low, high: None };
    };
    let k_hi = b.ins().ushr_imm_s(k, 32);
    let k_hi = b.ins().ireduce(types::I32, k_hi);
    let k_hi = b.ins().splat(types::I32X4, k_hi);
    let carry = b.ins().icmp(IntCC::UnsignedLessThan, low, base.low);
    let high = b.ins().iadd(hi, k_hi);
    let high = b.ins().isub(high, carry);
    DrawCounters {
        low,
        high: Some(high),
    }
}

/// What is added to an accumulator: a product `a·b` (`fused`: form it with one fma when
/// binary32) or a value.
#[derive(Clone, Copy)]
enum Addend {
    Product(Value, Value, bool),
    Sum(Value),
}

/// [`add_step`] for several accumulators (a block's vectors). Where the step has a fast path
/// (`stochastic:R` on the bits: [`sum_stochastic_bits`]; `nearest` through binary32 without
/// the specials: [`sum_nearest`], or with wider terms [`sum_nearest_exact`], or of products
/// not exact in f32 [`fma_sum_nearest`]), each vector takes it and branches to the general
/// sequence only when a lane falls outside it (rare). The branch follows each vector's fast
/// path, so the values the general sequence shares with it die there instead of waiting in
/// registers (or the stack) for the block's other vectors.
fn add_steps(g: &mut Gen, step: Step, steps: &[(Value, Addend, Option<Draw>)]) -> Vec<Value> {
    let fast = |g: &mut Gen, acc: Value, addend: Addend, draw: Option<Draw>| match step {
        Step::Narrow {
            format,
            mode: Rounding::StochasticBits(bits),
            stream,
        } => {
            let x = addend_value(g, addend);
            let d = draw.expect("a stochastic rounding has a draw counter (verified)");
            let random = d.word(g, stream);
            Some((sum_stochastic_bits(g, acc, x, &format, bits, random), None))
        }
        Step::Narrow {
            format,
            mode: Rounding::Nearest,
            ..
        } if format.emin() >= -126 => {
            let x = addend_value(g, addend);
            Some((sum_nearest_exact(g, acc, x, &format), None))
        }
        Step::NearestThroughBinary32 { format } => {
            // The general sequence rounds this same sum.
            let v = binary32_sum(g, acc, addend);
            Some((sum_nearest(g, v, &format), Some(v)))
        }
        Step::NearestOfFma { format } => {
            let (a, b) = product_operands(addend);
            let s = g.e.b.ins().fma(a, b, acc);
            Some((fma_sum_nearest(g, s, &format), None))
        }
        _ => None,
    };
    steps
        .iter()
        .map(|&(acc, addend, draw)| {
            let Some((lane, binary32_sum)) = fast(g, acc, addend, draw) else {
                return add_step(g, step, acc, addend, draw);
            };
            let general = g.e.b.create_block();
            let join = g.e.b.create_block();
            g.e.b.append_block_param(join, types::F32X4);
            let any = g.e.b.ins().vany_true(lane.outside);
            g.e.b
                .ins()
                .brif(any, general, &[], join, &[lane.value.into()]);
            g.e.b.switch_to_block(general);
            let exact = match (step, binary32_sum) {
                (Step::NearestThroughBinary32 { format }, Some(s)) => {
                    round_nearest_with_subnormals(g, s, &format)
                }
                _ => add_step(g, step, acc, addend, draw),
            };
            g.e.b.ins().jump(join, &[exact.into()]);
            g.e.b.switch_to_block(join);
            g.e.b.block_params(join)[0]
        })
        .collect()
}

/// `RN₂₄(acc + addend)` of an addend exact in f32: one fma for a product, its first operand
/// the one-use `b` (the packed operand with one row per block), to which Cranelift ties
/// the destination: no copy.
fn binary32_sum(g: &mut Gen, acc: Value, addend: Addend) -> Value {
    match addend {
        Addend::Product(a, b, _) => g.e.b.ins().fma(b, a, acc),
        Addend::Sum(x) => g.e.b.ins().fadd(acc, x),
    }
}

/// The addend's value: a product formed by one multiplication (exact in f32, verified by
/// `plan`) or the value itself.
fn addend_value(g: &mut Gen, addend: Addend) -> Value {
    match addend {
        Addend::Product(a, b, _) => g.e.b.ins().fmul(a, b),
        Addend::Sum(x) => x,
    }
}

/// The operands of a product addend: a [`Step::NearestOfFma`] is only the term step
/// (`plan`), whose addends are products.
fn product_operands(addend: Addend) -> (Value, Value) {
    match addend {
        Addend::Product(a, b, _) => (a, b),
        Addend::Sum(_) => unreachable!("a fused step adds products (`plan`)"),
    }
}

/// `round(acc + addend)` per lane (module doc), mirroring the scalar code's operand order.
fn add_step(g: &mut Gen, step: Step, acc: Value, addend: Addend, draw: Option<Draw>) -> Value {
    match (step, addend) {
        (Step::Binary32, Addend::Product(a, b, true)) => g.e.b.ins().fma(a, b, acc),
        (Step::Binary32, Addend::Product(a, b, false)) => {
            let p = g.e.b.ins().fmul(a, b);
            g.e.b.ins().fadd(acc, p)
        }
        (Step::Binary32, Addend::Sum(x)) => g.e.b.ins().fadd(acc, x),
        (Step::NearestThroughBinary32 { format }, addend) => {
            let x = addend_value(g, addend);
            let s = g.e.b.ins().fadd(acc, x);
            round_nearest_with_subnormals(g, s, &format)
        }
        (Step::NearestWithinRange { format, positive_zero }, addend) => {
            let s = binary32_sum(g, acc, addend);
            if positive_zero {
                nearest_without_zero_sign(g, s, &format)
            } else {
                sum_nearest(g, s, &format).value
            }
        }
        (Step::NearestOfFma { format }, addend) => {
            let (a, b) = product_operands(addend);
            product_sum_nearest_per_lane(g, acc, a, b, &format)
        }
        (
            Step::Narrow {
                format,
                mode,
                stream,
            },
            addend,
        ) => {
            let x = addend_value(g, addend);
            let s = sum_to_odd(g, acc, x);
            let random = draw.map(|d| d.word(g, stream));
            round(g, s, &format, mode, random)
        }
    }
}
