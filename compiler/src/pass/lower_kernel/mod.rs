//! `lower-kernel`: every `nn` op (and `q.quantize`/`q.dequantize` to element-wise formats)
//! becomes a `kernel.generate` whose region computes one output element with every
//! multiply, addition, chunk sum and rounding explicit, in the order spec/ir.md defines
//! ("Lowering to kernel"). `nn.param`, `nn.constant` and quantizations to scaled formats
//! (`q.quantize`, `q.scale`) stay: backends materialise and quantize whole tensors.
//!
//! Dynamic (`?`) result dimensions must be the same dynamic axis of the first operand (the
//! batch). Stochastic roundings are supported in contractions and in single-rounding ops;
//! the draw counter of element `e` (row-major) is `e·P + offset` (P and the offsets per op
//! in the spec). Multi-step ops (pooling by average, softmax, batch and layer norm) with a
//! stochastic rounding are rejected with an error.
//!
//! Modules: [`body`] builds regions; [`contract`] the dot products and pooling;
//! [`pointwise`] element-wise and layout ops; [`reduce`] softmax and normalisation; [`grad`]
//! the gradient ops that are not contractions.

mod body;
mod contract;
mod draws;
mod grad;
mod pointwise;
mod reduce;

use super::{Pass, PassArgs, PassError, PassInfo};
use crate::ir::{Dim, Module, OpId, TensorType, Type, ValueId};
use crate::lower::build::{At, Attrs, Builder};
use body::Body;
use draws::draw_counter;

pub const INFO: PassInfo = PassInfo {
    name: "lower-kernel",
    description: "Lowers nn ops (and element-wise q ops) to kernel.generate regions with every rounding explicit.",
    options: &[],
    create: |_: &PassArgs| Ok(Box::new(LowerKernel)),
};

struct LowerKernel;

impl Pass for LowerKernel {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn description(&self) -> &'static str {
        INFO.description
    }
    fn run(&self, module: &mut Module) -> Result<(), PassError> {
        for op in module.all_ops() {
            if module.ops[op].parent.is_some() {
                lower_op(module, op)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn error<T>(module: &Module, op: OpId, message: impl std::fmt::Display) -> Result<T, PassError> {
    Err(PassError { message: format!("`{}`: {message}", module.ops[op].name()) })
}

fn lower_op(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let name = module.ops[op].name();
    match name {
        "nn.dense" | "nn.matmul" | "nn.conv2d" | "nn.fused_dense" | "nn.fused_conv2d" | "nn.dense_grad_weight" | "nn.conv2d_grad_input" | "nn.conv2d_grad_weight" => {
            contract::contraction(module, op)
        }
        "nn.maxpool2d_grad" => contract::maxpool_grad(module, op),
        "nn.pact_grad_alpha" => grad::pact_grad_alpha(module, op),
        "nn.avgpool2d_grad" => contract::avgpool_grad(module, op),
        "nn.softmax_grad" => grad::softmax_grad(module, op),
        "nn.slice" => grad::slice(module, op),
        "nn.batch_mean" | "nn.batch_var" => grad::batch_statistic(module, op),
        "nn.batchnorm_grad" => grad::batchnorm_grad(module, op),
        "nn.layernorm_grad" => grad::layernorm_grad(module, op),
        "nn.sigmoid_grad" | "nn.tanh_grad" | "nn.gelu_grad" => grad::activation_grad(module, op),
        "nn.bias_grad" => grad::bias_grad(module, op),
        "nn.clip_grad" => grad::clip_grad(module, op),
        "nn.leaky_relu_grad" => grad::leaky_relu_grad(module, op),
        "nn.softmax_xent_grad" | "nn.mse_grad" => grad::loss_grad(module, op),
        "nn.avgpool2d" => contract::avgpool(module, op),
        "nn.maxpool2d" => contract::maxpool(module, op),
        "nn.softmax" => reduce::softmax(module, op),
        "nn.batchnorm" => reduce::batchnorm(module, op),
        "nn.layernorm" => reduce::layernorm(module, op),
        "nn.flatten" | "nn.reshape" => pointwise::reshape(module, op),
        "nn.transpose" => pointwise::transpose(module, op),
        "nn.concat" => pointwise::concat(module, op),
        "q.quantize" if module.ops[op].operands.len() == 1 && result_type(module, op).format.is_elementwise() => pointwise::unary(module, op),
        "q.dequantize" => pointwise::unary(module, op),
        n if n.starts_with("nn.") && !matches!(n, "nn.param" | "nn.constant") => pointwise::unary(module, op),
        _ => Ok(()),
    }
}

pub(crate) fn result_type(module: &Module, op: OpId) -> TensorType {
    module.ty(module.ops[op].results[0]).as_tensor().expect("nn results are tensors").clone()
}

pub(crate) fn operand_type(module: &Module, op: OpId, i: usize) -> TensorType {
    module.ty(module.ops[op].operands[i]).as_tensor().expect("nn operands are tensors").clone()
}

/// Replaces `op` by a `kernel.generate` of its result type whose region `element` builds
/// (given the region's indices and the result's sizes as index values).
pub(crate) fn generate(
    module: &mut Module,
    op: OpId,
    element: impl FnOnce(&mut Body<'_>, &[ValueId]) -> Result<ValueId, PassError>,
) -> Result<(), PassError> {
    let result = module.ops[op].results[0];
    let rt = result_type(module, op);
    let span = module.ops[op].span.clone();
    let mut sizes = Vec::new();
    for (axis, d) in rt.dims.iter().enumerate() {
        if *d == Dim::Dynamic {
            // The size is the first operand's same axis (ops that reshape keep the batch
            // axis first), else that of the first operand whose axis aligned with this one
            // under broadcasting (trailing axes align) is dynamic.
            let dynamic_axis = |x: ValueId, j: usize| module.ty(x).as_tensor().is_some_and(|t| t.dims.get(j) == Some(&Dim::Dynamic));
            let operands = &module.ops[op].operands;
            let same = operands.first().copied().filter(|&x| dynamic_axis(x, axis)).map(|x| (x, axis));
            let aligned = same.or_else(|| {
                operands.iter().find_map(|&x| {
                    let rank = module.ty(x).as_tensor()?.rank();
                    let j = (axis + rank).checked_sub(rt.rank())?;
                    dynamic_axis(x, j).then_some((x, j))
                })
            });
            let Some((x, j)) = aligned else {
                return error(module, op, format!("result axis {axis} is dynamic but no operand's matching axis is; specialise the sizes with `infer{{batch=N}}`"));
            };
            let mut b = Builder::new(module, At::Before(op), span.clone());
            sizes.push(b.op("kernel.dim", vec![x], Type::Index, crate::lower::build::attrs([("axis", crate::ir::Attr::Int(j as i64))])));
        }
    }
    let (region, mut body) = Body::region(module, rt.rank(), span.clone());
    let mut dynamic = sizes.iter();
    let size_values: Vec<ValueId> = rt
        .dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => body.index(*n),
            Dim::Dynamic => *dynamic.next().expect("one size per dynamic axis"),
        })
        .collect();
    let value = element(&mut body, &size_values)?;
    body.finish(value);
    let mut b = Builder::new(module, At::Before(op), span);
    let generated = b.op_with_regions("kernel.generate", sizes, Type::Tensor(rt), Attrs::new(), vec![region]);
    module.values[generated].name = module.values[result].name.take();
    module.replace_all_uses(result, generated);
    module.erase_op(op);
    Ok(())
}

/// [`generate`] computing the elements in another layout: a first `kernel.generate` runs over
/// the result's axes in the order `perm` (its axis `r` is the result's axis `perm[r]`), its
/// region seeing the indices and sizes in the result's own order (so draw counters are
/// unchanged), and a second one loads each result element back from it (exact). For a static
/// result only (else as [`generate`]). Backends vectorise along the last axis: this puts an
/// axis there whose operand they can pack.
pub(crate) fn generate_permuted(
    module: &mut Module,
    op: OpId,
    perm: &[usize],
    element: impl FnOnce(&mut Body<'_>, &[ValueId]) -> Result<ValueId, PassError>,
) -> Result<(), PassError> {
    let result = module.ops[op].results[0];
    let rt = result_type(module, op);
    if rt.static_dims().is_none() || perm.len() != rt.rank() {
        return generate(module, op, element);
    }
    let span = module.ops[op].span.clone();
    let permuted = TensorType { dims: perm.iter().map(|&a| rt.dims[a]).collect(), ..rt.clone() };
    let (region, mut body) = Body::region(module, rt.rank(), span.clone());
    let mut idx = body.idx.clone();
    for (r, &a) in perm.iter().enumerate() {
        idx[a] = body.idx[r];
    }
    body.idx = idx;
    let sizes: Vec<ValueId> = rt.dims.iter().map(|d| body.index(if let Dim::Fixed(n) = d { *n } else { 0 })).collect();
    let value = element(&mut body, &sizes)?;
    body.finish(value);
    let mut b = Builder::new(module, At::Before(op), span.clone());
    let computed = b.op_with_regions("kernel.generate", vec![], Type::Tensor(permuted), Attrs::new(), vec![region]);
    let (region, mut body) = Body::region(module, rt.rank(), span.clone());
    let at: Vec<ValueId> = perm.iter().map(|&a| body.idx[a]).collect();
    let value = body.load(computed, at);
    body.finish(value);
    let mut b = Builder::new(module, At::Before(op), span);
    let generated = b.op_with_regions("kernel.generate", vec![], Type::Tensor(rt), Attrs::new(), vec![region]);
    module.values[generated].name = module.values[result].name.take();
    module.replace_all_uses(result, generated);
    module.erase_op(op);
    Ok(())
}
