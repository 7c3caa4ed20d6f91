//! `infer`: shape inference. Every value's type is written in the IR (formats are never
//! left open: the lowering and every pass give each result its format), so what remains to
//! infer is sizes: with the option `batch=N`, every `?` in a function's argument types
//! becomes N; then, in order, each `nn`/`q` op whose result shape follows from its operands
//! (the shape rules the verifier checks, `dialect::nn::result_dims`) gets its `?` dimensions
//! replaced by the sizes they must have, a reshape's single `?` is solved from the element
//! count, and the function's result types follow its return values. A written size never
//! changes: a disagreement is left for the verifier to report.

use super::{Pass, PassArgs, PassError, PassInfo};
use crate::dialect::{nn, OpView};
use crate::ir::{Dim, Module, OpId, Type};

pub const INFO: PassInfo = PassInfo {
    name: "infer",
    description: "Refines `?` dimensions from the shape rules (and sets the batch size with `batch=N`).",
    options: &[("batch", "replace every `?` in the function arguments by this size")],
    create: |args: &PassArgs| {
        let batch = match args.get("batch") {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= 1 => Some(n),
                _ => return Err(format!("`batch` must be a positive integer, not `{v}`")),
            },
        };
        Ok(Box::new(Infer { batch }))
    },
};

struct Infer {
    batch: Option<u64>,
}

impl Pass for Infer {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn description(&self) -> &'static str {
        INFO.description
    }
    fn run(&self, module: &mut Module) -> Result<(), PassError> {
        for f in 0..module.funcs.len() {
            let body = module.funcs[f].body;
            let Some(entry) = module.entry_block(body) else { continue };
            if let Some(n) = self.batch {
                for a in module.blocks[entry].args.clone() {
                    if let Type::Tensor(t) = &mut module.values[a].ty {
                        for d in &mut t.dims {
                            if *d == Dim::Dynamic {
                                *d = Dim::Fixed(n);
                            }
                        }
                    }
                }
            }
            for op in module.blocks[entry].ops.clone() {
                refine(module, op)?;
            }
            if let Some(&ret) = module.blocks[entry].ops.last() {
                if module.ops[ret].name() == "func.return" {
                    module.funcs[f].results = module.ops[ret].operands.iter().map(|v| module.ty(*v).clone()).collect();
                }
            }
        }
        Ok(())
    }
}

/// The shape the op's rules give its result, when they give one.
fn inferred(module: &Module, op: OpId) -> Result<Option<Vec<Dim>>, PassError> {
    let o = &module.ops[op];
    let operand = |i: usize| o.operands.get(i).and_then(|v| module.ty(*v).as_tensor());
    let dims = match o.name() {
        "nn.cast" | "q.quantize" | "q.dequantize" => operand(0).map(|t| t.dims.clone()),
        "nn.reshape" => operand(0).and_then(|x| {
            let y = module.ty(o.results[0]).as_tensor()?;
            let known: Option<u64> = y.dims.iter().filter(|d| **d != Dim::Dynamic).map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).try_fold(1u64, |a, b| a.checked_mul(b));
            let missing = (x.static_len()?).checked_div(known.filter(|k| *k > 0)?)?;
            Some(y.dims.iter().map(|d| if *d == Dim::Dynamic { Dim::Fixed(missing) } else { *d }).collect())
        }),
        n if n.starts_with("nn.") => match nn::result_dims(&OpView { module, op }) {
            None => None,
            Some(Ok(dims)) => Some(dims),
            Some(Err(f)) => return Err(PassError { message: format!("`{n}`: {}", f.message) }),
        },
        _ => None,
    };
    Ok(dims)
}

fn refine(module: &mut Module, op: OpId) -> Result<(), PassError> {
    let Some(dims) = inferred(module, op)? else { return Ok(()) };
    let result = module.ops[op].results[0];
    if let Type::Tensor(t) = &mut module.values[result].ty {
        if t.dims.len() == dims.len() {
            for (d, new) in t.dims.iter_mut().zip(dims) {
                if *d == Dim::Dynamic {
                    *d = new;
                }
            }
        }
    }
    Ok(())
}
