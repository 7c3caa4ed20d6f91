//! Element-wise ops (one rounding per element, drawing at counter `e` when stochastic) and
//! ops that move values (reshape, flatten, transpose, concat: loads only, no rounding).
//!
//! Element-wise definitions (x, y loaded with numpy broadcasting; constants are f32 values):
//! relu `max(x, 0)`; clip `min(max(x, lo) → fp32, hi)`; pact `min(max(x, 0) → fp32, alpha)`;
//! leaky_relu `max(x, α·x)` (α ≤ 1) or `min(x, α·x)` with `α·x` exact; sigmoid, tanh, gelu
//! their kernel ops; add, mul `kernel.add`/`kernel.mul`; cast, quantize, dequantize
//! `kernel.round`. The last op rounds to the result with the op's `round`.

use super::body::{nearest_value, Body, Rnd};
use super::{draw_counter, error, generate, operand_type, result_type};
use crate::ir::{Attr, Dim, Module, OpId, TensorType, ValueId};
use crate::pass::PassError;
use qc_runtime::numerics::{Format, Rounding};

fn fp32() -> Format {
    Format::parse("fp32").expect("fp32 is a named format")
}

/// Indices into an operand of type `t` broadcast to result indices `idx`.
fn broadcast(body: &mut Body<'_>, idx: &[ValueId], t: &TensorType) -> Vec<ValueId> {
    let skip = idx.len() - t.rank();
    (0..t.rank()).map(|j| if t.dims[j] == Dim::Fixed(1) { body.index(0) } else { idx[skip + j] }).collect()
}

pub fn unary(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let o = &module.ops[op];
    let name = o.name();
    let rounding = match o.attrs.get("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    };
    let stream = o.attrs.get("stream").and_then(Attr::as_int).unwrap_or(0) as u32;
    let float = |k: &str| o.attrs.get(k).and_then(Attr::as_f64).unwrap_or(0.0);
    let (alpha, lo, hi) = (float("alpha"), float("min"), float("max"));
    let operands = o.operands.clone();
    let types: Vec<TensorType> = (0..operands.len()).map(|i| operand_type(module, op, i)).collect();
    let rt = result_type(module, op);
    if !matches!(
        name,
        "nn.relu" | "nn.sigmoid" | "nn.tanh" | "nn.gelu" | "nn.leaky_relu" | "nn.clip" | "nn.pact" | "nn.add" | "nn.mul" | "nn.cast" | "q.quantize" | "q.dequantize"
    ) {
        return error(module, op, "has no kernel lowering");
    }
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let draw = rounding.is_stochastic().then(|| (stream, draw_counter(body, sizes, 1, 0)));
        let out = Rnd { format: rt.format, rounding, draw };
        let exact32 = Rnd::new(fp32(), Rounding::Nearest);
        let load = |body: &mut Body<'_>, i: usize| {
            let at = broadcast(body, &idx, &types[i]);
            body.load(operands[i], at)
        };
        let x = load(body, 0);
        Ok(match name {
            "nn.relu" => {
                let zero = body.constant(fp32(), 0.0);
                body.rounded("kernel.max", vec![x, zero], out)
            }
            "nn.sigmoid" => body.rounded("kernel.sigmoid", vec![x], out),
            "nn.tanh" => body.rounded("kernel.tanh", vec![x], out),
            "nn.gelu" => body.rounded("kernel.gelu", vec![x], out),
            "nn.leaky_relu" => {
                let a = body.constant(fp32(), alpha as f32 as f64);
                let ax = body.exact_mul(a, x);
                body.rounded(if alpha <= 1.0 { "kernel.max" } else { "kernel.min" }, vec![x, ax], out)
            }
            "nn.clip" => {
                let (l, h) = (body.constant(fp32(), nearest_value(fp32(), lo)), body.constant(fp32(), nearest_value(fp32(), hi)));
                let t = body.rounded("kernel.max", vec![x, l], exact32);
                body.rounded("kernel.min", vec![t, h], out)
            }
            "nn.pact" => {
                let zero = body.constant(fp32(), 0.0);
                let t = body.rounded("kernel.max", vec![x, zero], exact32);
                let a = load(body, 1);
                body.rounded("kernel.min", vec![t, a], out)
            }
            "nn.add" | "nn.mul" => {
                let y = load(body, 1);
                body.rounded(if name == "nn.add" { "kernel.add" } else { "kernel.mul" }, vec![x, y], out)
            }
            _ => body.rounded("kernel.round", vec![x], out),
        })
    })
}

/// Reshape and flatten: the element at row-major position `e` of the result is the input's
/// element at position `e`.
pub fn reshape(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let x = module.ops[op].operands[0];
    let xt = operand_type(module, op, 0);
    generate(module, op, |body, sizes| {
        let idx = body.idx.clone();
        let lin = body.linear(&idx, sizes);
        let in_sizes: Vec<ValueId> = (0..xt.rank()).map(|a| body.size(x, &xt, a)).collect();
        let mut at = vec![lin; xt.rank()];
        let mut rest = lin;
        for a in (0..xt.rank()).rev() {
            if a == 0 {
                at[0] = rest;
            } else {
                at[a] = body.ix("kernel.index_rem", rest, in_sizes[a]);
                rest = body.ix("kernel.index_div", rest, in_sizes[a]);
            }
        }
        Ok(body.load(x, at))
    })
}

pub fn transpose(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let x = module.ops[op].operands[0];
    let perm: Vec<usize> = module.ops[op].attrs.get("perm").and_then(Attr::as_int_array).unwrap_or_default().iter().map(|&p| p as usize).collect();
    generate(module, op, |body, _| {
        let idx = body.idx.clone();
        let mut at = idx.clone();
        for (j, &p) in perm.iter().enumerate() {
            at[p] = idx[j];
        }
        Ok(body.load(x, at))
    })
}

/// Concat along `axis`: the element comes from the input whose range holds the index,
/// chosen by `kernel.select` (every input is loaded at a clamped index).
pub fn concat(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let operands = module.ops[op].operands.clone();
    let types: Vec<TensorType> = (0..operands.len()).map(|i| operand_type(module, op, i)).collect();
    let raw = module.ops[op].attrs.get("axis").and_then(Attr::as_int).unwrap_or(0);
    let axis = if raw < 0 { raw + types[0].rank() as i64 } else { raw } as usize;
    generate(module, op, |body, _| {
        let idx = body.idx.clone();
        let mut offset = body.index(0);
        let mut pieces = Vec::new();
        for (v, t) in operands.iter().zip(&types) {
            let n = body.size(*v, t, axis);
            let local = body.ix("kernel.index_sub", idx[axis], offset);
            let last = body.ix_const("kernel.index_sub", n, 1);
            let clamped = body.ix("kernel.index_min", local, last);
            let mut at = idx.clone();
            at[axis] = clamped;
            let value = body.load(*v, at);
            offset = body.ix("kernel.index_add", offset, n);
            pieces.push((offset, value));
        }
        let (_, mut value) = pieces.pop().expect("concat has an input");
        while let Some((end, earlier)) = pieces.pop() {
            let before = body.ix("kernel.index_lt", idx[axis], end);
            let ty = body.b.module.ty(earlier).clone();
            value = body.b.op("kernel.select", vec![before, earlier, value], ty, Default::default());
        }
        Ok(value)
    })
}
