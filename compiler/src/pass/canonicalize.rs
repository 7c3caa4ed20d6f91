//! `canonicalize`: the cleanups every pipeline wants, to a fixed point of one sweep:
//!
//! 1. A rounding to the format its operand already has (`nn.cast`, `q.dequantize`, or
//!    `q.quantize` to an element-wise format) is the identity and disappears. (`q.quantize`
//!    to a scaled format is kept: requantizing may choose other scales.)
//! 2. Constant folding of quantization: a `nn.cast`/`q.quantize`/`q.dequantize` whose operand
//!    is a constant becomes a constant of the target format, its values computed now with
//!    `Format::quantize` (bit-exact: the same function the runtime uses).
//!    - `nn.constant {value}`: the new constant lists the rounded values (one value stays one).
//!    - `nn.param` whose `init` recipe the compiler can generate (not `load`), with an fp32
//!      master copy: the new `nn.constant {init, name, round, stream, digest}` is defined by
//!      the recipe, its digest names its values. Only with `fold-params=true` (the default):
//!      a pipeline that trains or loads weights at run time passes `fold-params=false`.
//!
//!    Not folded: stochastic rounding of a `value` constant, generated constants rounded a
//!    second time, loaded parameters, non-fp32 masters.
//! 3. `cse`, then `dce`.

use super::{Pass, PassArgs, PassError, PassInfo};
use crate::init::{self, Recipe};
use crate::ir::{Attr, Module, OpId, Type, ValueDef, ValueId};
use crate::lower::build::{attrs, At, Builder};
use qc_runtime::numerics::{Format, Rounding};

pub const INFO: PassInfo = PassInfo {
    name: "canonicalize",
    description: "Removes identity roundings, folds quantization of constants and initialised parameters, then cse and dce.",
    options: &[("fold-params", "fold the quantization of initialised parameters into constants (true/false, default true)")],
    create: |args: &PassArgs| {
        let fold_params = match args.get("fold-params").map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(v) => return Err(format!("`fold-params` must be true or false, not `{v}`")),
        };
        Ok(Box::new(Canonicalize { fold_params }))
    },
};

struct Canonicalize {
    fold_params: bool,
}

impl Pass for Canonicalize {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn description(&self) -> &'static str {
        INFO.description
    }
    fn run(&self, module: &mut Module) -> Result<(), PassError> {
        for op in module.all_ops() {
            if module.ops[op].parent.is_none() || !is_rounding(module, op) {
                continue;
            }
            let (x, y) = (module.ops[op].operands[0], module.ops[op].results[0]);
            let (from, to) = (tensor_format(module, x), tensor_format(module, y));
            if from == to && to.is_elementwise() {
                module.values[x].name = module.values[x].name.take().or(module.values[y].name.take());
                module.replace_all_uses(y, x);
                module.erase_op(op);
            } else if let Some(folded) = self.fold(module, op)? {
                module.values[folded].name = module.values[y].name.take();
                module.replace_all_uses(y, folded);
                module.erase_op(op);
            }
        }
        for pass in ["cse", "dce"] {
            let info = super::PASSES.iter().find(|p| p.name == pass).expect("cse and dce are registered");
            (info.create)(&PassArgs::new()).map_err(|message| PassError { message })?.run(module)?;
        }
        Ok(())
    }
}

fn is_rounding(module: &Module, op: OpId) -> bool {
    let o = &module.ops[op];
    matches!(o.name(), "nn.cast" | "q.dequantize") || (o.name() == "q.quantize" && o.operands.len() == 1)
}

fn tensor_format(module: &Module, v: ValueId) -> Format {
    module.ty(v).as_tensor().expect("roundings take tensors").format
}

fn rounding_of(module: &Module, op: OpId) -> (Rounding, u64) {
    let o = &module.ops[op];
    let r = match o.attrs.get("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    };
    (r, o.attrs.get("stream").and_then(Attr::as_int).unwrap_or(0) as u64)
}

fn static_dims(t: &Type) -> Option<Vec<u64>> {
    t.as_tensor()?.static_dims()
}

impl Canonicalize {
    /// The constant replacing the rounding `op`, when its operand is a foldable constant.
    fn fold(&self, module: &mut Module, op: OpId) -> Result<Option<ValueId>, PassError> {
        let x = module.ops[op].operands[0];
        let ValueDef::Result { op: def, .. } = module.values[x].def else { return Ok(None) };
        let result_ty = module.ty(module.ops[op].results[0]).clone();
        let Some(dims) = static_dims(&result_ty) else { return Ok(None) };
        let to = tensor_format(module, module.ops[op].results[0]);
        let (rounding, stream) = rounding_of(module, op);
        let source = module.ops[def].clone();
        let fail = |e: String| PassError { message: format!("folding `{}`: {e}", module.ops[op].name()) };
        let new_attrs = match source.name() {
            "nn.constant" => {
                let Some(Attr::Array(items)) = source.attrs.get("value") else { return Ok(None) };
                if rounding.is_stochastic() {
                    return Ok(None);
                }
                let from = tensor_format(module, x);
                let n: u64 = dims.iter().product();
                let listed: Vec<f32> = items.iter().map(|a| a.as_f64().unwrap_or(0.0) as f32).collect();
                let full: Vec<f32> = if listed.len() == 1 { vec![listed[0]; n as usize] } else { listed };
                let held = init::quantize(&full, &dims, from, Rounding::Nearest, 0, 0).map_err(fail)?;
                // An element-wise result lists its final values (rounding them again changes
                // nothing: L1). A scaled one lists the values it is quantized from, with the
                // mode: its scales come from those values, which requantizing would not keep.
                let (values, mode) = if to.is_elementwise() {
                    (init::quantize(&held, &dims, to, rounding, 0, 0).map_err(fail)?, Rounding::Nearest)
                } else {
                    init::quantize(&held, &dims, to, rounding, 0, 0).map_err(fail)?;
                    (held, rounding)
                };
                let one = values.iter().all(|v| v.to_bits() == values[0].to_bits());
                let shown = if one { &values[..1] } else { &values[..] };
                let mut a = attrs([("value", Attr::Array(shown.iter().map(|v| Attr::Float(*v as f64)).collect()))]);
                if mode != Rounding::Nearest {
                    a.insert("round".into(), Attr::Rounding(mode));
                }
                if let Some(name) = source.attrs.get("name") {
                    a.insert("name".into(), name.clone());
                }
                a
            }
            "nn.param" if self.fold_params => {
                let Some(Attr::Dict(d)) = source.attrs.get("init") else { return Ok(None) };
                let recipe = Recipe::from_dict(d).map_err(fail)?;
                let fp32 = Format::parse("fp32").expect("fp32 is a named format");
                if tensor_format(module, x) != fp32 {
                    return Ok(None);
                }
                let Some(generated) = recipe.generate(&dims) else { return Ok(None) };
                let values = init::quantize(&generated, &dims, to, rounding, recipe.seed, stream).map_err(fail)?;
                let mut a = attrs([("init", Attr::Dict(recipe.to_dict())), ("digest", Attr::Str(init::digest(&values)))]);
                if let Some(name) = source.attrs.get("name") {
                    a.insert("name".into(), name.clone());
                }
                if rounding != Rounding::Nearest {
                    a.insert("round".into(), Attr::Rounding(rounding));
                }
                if rounding.is_stochastic() {
                    a.insert("stream".into(), Attr::Int(stream as i64));
                }
                a
            }
            _ => return Ok(None),
        };
        let span = module.ops[op].span.clone();
        Ok(Some(Builder::new(module, At::Before(op), span).op("nn.constant", vec![], result_ty, new_attrs)))
    }
}

/// The values of an `nn.constant` (either form), row-major, for backends and tests.
pub fn constant_values(module: &Module, op: OpId) -> Result<Vec<f32>, String> {
    let o = &module.ops[op];
    let ty = module.ty(o.results[0]);
    let dims = static_dims(ty).ok_or("a constant has a static shape")?;
    let format = ty.as_tensor().ok_or("a constant is a tensor")?.format;
    let n: u64 = dims.iter().product();
    match (o.attrs.get("value"), o.attrs.get("init")) {
        (Some(Attr::Array(items)), _) => {
            let listed: Vec<f32> = items.iter().map(|a| a.as_f64().unwrap_or(0.0) as f32).collect();
            let full = if listed.len() == 1 { vec![listed[0]; n as usize] } else { listed };
            init::quantize(&full, &dims, format, rounding_of(module, op).0, 0, 0)
        }
        (_, Some(Attr::Dict(d))) => {
            let recipe = Recipe::from_dict(d)?;
            let generated = recipe.generate(&dims).ok_or("a loaded tensor is not a constant")?;
            let (rounding, stream) = rounding_of(module, op);
            init::quantize(&generated, &dims, format, rounding, recipe.seed, stream)
        }
        _ => Err("a constant needs `value` or `init`".into()),
    }
}
