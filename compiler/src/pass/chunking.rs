//! `chunking`: makes chunked accumulation explicit.
//!
//! 1. With the option `chunk=N`, every accumulation provably longer than N terms that has no
//!    chunk of its own gets one of N terms, whose chunk sums use the accumulator's format and
//!    rounding: `nn.dense`, `nn.matmul` and `nn.conv2d` (and their fused forms) in their `#arith` (the length is the
//!    contracted dimension, C/groups·KH·KW for a convolution), `kernel.accumulate` in its
//!    `chunk` attribute (when both bounds are `kernel.index` constants). An op's own chunk
//!    always wins over the module-wide option.
//! 2. Every `kernel.accumulate` with a `chunk` is rewritten into an accumulate over chunks
//!    whose term is an accumulate of one chunk in the chunk-sum format: the exact expansion
//!    that defines a chunked accumulate's semantics (spec/ir.md, `kernel.accumulate`).

use super::{Pass, PassArgs, PassError, PassInfo};
use crate::dialect::lookup;
use crate::ir::{Attr, Chunk, Dim, Module, OpId, Type, ValueDef, ValueId};
use std::collections::BTreeMap;

pub const INFO: PassInfo = PassInfo {
    name: "chunking",
    description: "Splits long accumulations into chunk sums and a sum of chunks (per #arith / `chunk`).",
    options: &[("chunk", "chunk size N for every accumulation longer than N that has no chunk of its own")],
    create: |args: &PassArgs| {
        let chunk = match args.get("chunk") {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= 1 => Some(n),
                _ => return Err(format!("`chunk` must be a positive integer, not `{v}`")),
            },
        };
        Ok(Box::new(Chunking { chunk }))
    },
};

struct Chunking {
    chunk: Option<u64>,
}

impl Pass for Chunking {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn description(&self) -> &'static str {
        INFO.description
    }
    fn run(&self, module: &mut Module) -> Result<(), PassError> {
        if let Some(n) = self.chunk {
            for op in module.all_ops() {
                set_module_chunk(module, op, n);
            }
        }
        for op in module.all_ops() {
            if module.ops[op].name() == "kernel.accumulate" {
                if let Some(Attr::Chunk(c)) = module.ops[op].attrs.get("chunk").cloned() {
                    expand(module, op, c)?;
                }
            }
        }
        Ok(())
    }
}

fn fixed(d: Dim) -> Option<u64> {
    match d {
        Dim::Fixed(n) => Some(n),
        Dim::Dynamic => None,
    }
}

/// The number of terms each output of a contraction sums, when static.
fn reduction_length(module: &Module, op: OpId) -> Option<u64> {
    let o = &module.ops[op];
    let tensor = |i: usize| o.operands.get(i).and_then(|v| module.ty(*v).as_tensor());
    match o.name() {
        "nn.dense" | "nn.fused_dense" | "nn.matmul" => tensor(0).and_then(|t| t.dims.last().copied()).and_then(fixed),
        "nn.conv2d" | "nn.fused_conv2d" => tensor(1).and_then(|w| w.dims.get(1..4).map(|d| d.to_vec())).and_then(|d| {
            d.into_iter().map(fixed).try_fold(1u64, |n, k| k.and_then(|k| n.checked_mul(k)))
        }),
        "kernel.accumulate" => {
            let lo = constant_index(module, o.operands[0])?;
            let hi = constant_index(module, o.operands[1])?;
            let step = o.attrs.get("step").and_then(Attr::as_int).unwrap_or(1).max(1) as u64;
            Some(hi.saturating_sub(lo).div_ceil(step))
        }
        _ => None,
    }
}

fn constant_index(module: &Module, v: ValueId) -> Option<u64> {
    let ValueDef::Result { op, .. } = module.values[v].def else { return None };
    let o = &module.ops[op];
    (o.name() == "kernel.index").then(|| o.attrs.get("value").and_then(Attr::as_int)).flatten().and_then(|n| u64::try_from(n).ok())
}

fn set_module_chunk(module: &mut Module, op: OpId, n: u64) {
    if reduction_length(module, op).is_none_or(|k| k <= n) {
        return;
    }
    let o = &mut module.ops[op];
    match o.name() {
        "nn.dense" | "nn.fused_dense" | "nn.matmul" | "nn.conv2d" | "nn.fused_conv2d" => {
            if let Some(Attr::Arith(a)) = o.attrs.get_mut("arith") {
                if a.chunk.is_none() {
                    a.chunk = Some(Chunk { size: n, format: a.acc.format, rounding: a.acc.rounding });
                }
            }
        }
        "kernel.accumulate" if !o.attrs.contains_key("chunk") => {
            let Some(Attr::Rounding(rounding)) = o.attrs.get("round").cloned() else { return };
            let Some(&result) = o.results.first() else { return };
            let Type::Scalar(format) = module.ty(result).clone() else { return };
            module.ops[op].attrs.insert("chunk".into(), Attr::Chunk(Chunk { size: n, format, rounding }));
        }
        _ => {}
    }
}

fn def(name: &str) -> Result<&'static crate::dialect::OpDef, PassError> {
    lookup(name).ok_or_else(|| PassError { message: format!("`{name}` is not registered") })
}

/// Inserts a new op before `anchor` and returns its only result.
fn before(module: &mut Module, anchor: OpId, name: &str, operands: Vec<ValueId>, ty: Type, attrs: BTreeMap<String, Attr>) -> Result<ValueId, PassError> {
    let op = module.new_op(def(name)?, operands, vec![ty], attrs, Vec::new(), None);
    module.insert_before(anchor, op);
    Ok(module.result(op, 0))
}

/// Appends a new op to `block` and returns its only result.
fn append(module: &mut Module, block: crate::ir::BlockId, name: &str, operands: Vec<ValueId>, ty: Type, attrs: BTreeMap<String, Attr>) -> Result<ValueId, PassError> {
    let op = module.new_op(def(name)?, operands, vec![ty], attrs, Vec::new(), None);
    module.append_op(block, op);
    Ok(module.result(op, 0))
}

/// `%r = accumulate(lo, hi, init[, draw]) {round = R, step = s, chunk = C @ F @ Rc}` becomes
///
/// ```text
/// %w = kernel.index {value = C·s}
/// [%d = kernel.index_add %draw, %hi]            // when R is stochastic
/// %r = kernel.accumulate %lo, %hi, %init[, %d] {round = R, step = C·s} {
/// ^bb0(%j: index):
///   %z = kernel.constant {value = 0.0} : () -> F
///   %e = kernel.index_min (kernel.index_add %j, %w), %hi
///   %c = kernel.accumulate %j, %e, %z[, %draw] {round = Rc, step = s} { the original term }
///   kernel.yield %c
/// }
/// ```
fn expand(module: &mut Module, op: OpId, chunk: Chunk) -> Result<(), PassError> {
    let o = module.ops[op].clone();
    let (lo, hi, init) = (o.operands[0], o.operands[1], o.operands[2]);
    let draw = o.operands.get(3).copied();
    let step = o.attrs.get("step").and_then(Attr::as_int).unwrap_or(1);
    let Some(Attr::Rounding(acc_rounding)) = o.attrs.get("round").cloned() else {
        return Err(PassError { message: "a kernel.accumulate without `round`".into() });
    };
    let stream = o.attrs.get("stream").cloned();
    let width = (chunk.size as i64).checked_mul(step).ok_or_else(|| PassError { message: "chunk size × step overflows".into() })?;
    let attrs = |pairs: Vec<(&str, Attr)>| pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>();
    let index = |n: i64| attrs(vec![("value", Attr::Int(n))]);

    let w = before(module, op, "kernel.index", vec![], Type::Index, index(width))?;
    let mut outer_operands = vec![lo, hi, init];
    let mut outer_attrs = vec![("round", Attr::Rounding(acc_rounding)), ("step", Attr::Int(width))];
    if acc_rounding.is_stochastic() {
        let d = draw.ok_or_else(|| PassError { message: "a stochastic kernel.accumulate without a draw counter".into() })?;
        outer_operands.push(before(module, op, "kernel.index_add", vec![d, hi], Type::Index, BTreeMap::new())?);
        outer_attrs.extend(stream.clone().map(|s| ("stream", s)));
    }

    let body = module.new_region();
    let block = module.new_block(body, vec![Type::Index]);
    let j = module.blocks[block].args[0];
    let zero = append(module, block, "kernel.constant", vec![], Type::Scalar(chunk.format), attrs(vec![("value", Attr::Float(0.0))]))?;
    let end = append(module, block, "kernel.index_add", vec![j, w], Type::Index, BTreeMap::new())?;
    let end = append(module, block, "kernel.index_min", vec![end, hi], Type::Index, BTreeMap::new())?;
    let mut inner_operands = vec![j, end, zero];
    let mut inner_attrs = vec![("round", Attr::Rounding(chunk.rounding))];
    if step != 1 {
        inner_attrs.push(("step", Attr::Int(step)));
    }
    if chunk.rounding.is_stochastic() {
        inner_operands.push(draw.ok_or_else(|| PassError { message: "a stochastic chunk without a draw counter".into() })?);
        inner_attrs.extend(stream.map(|s| ("stream", s)));
    }
    let inner = module.new_op(def("kernel.accumulate")?, inner_operands, vec![Type::Scalar(chunk.format)], attrs(inner_attrs), o.regions.clone(), None);
    module.append_op(block, inner);
    let chunk_sum = module.result(inner, 0);
    let ret = module.new_op(def("kernel.yield")?, vec![chunk_sum], vec![], BTreeMap::new(), vec![], None);
    module.append_op(block, ret);

    let result_ty = module.ty(o.results[0]).clone();
    let outer = module.new_op(def("kernel.accumulate")?, outer_operands, vec![result_ty], attrs(outer_attrs), vec![body], o.span.clone());
    module.insert_before(op, outer);
    let result = module.result(outer, 0);
    module.values[result].name = module.values[o.results[0]].name.take();
    module.replace_all_uses(o.results[0], result);
    module.ops[op].regions.clear();
    module.erase_op(op);
    Ok(())
}
