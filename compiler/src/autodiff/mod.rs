//! Reverse-mode automatic differentiation as an IR transformation on the `nn` dialect
//! (spec/ir.md, "Gradients"): the backward graph is ordinary `nn` IR, so every later pass, the
//! kernel lowering and every backend apply to it unchanged.
//!
//! - [`parameters_as_arguments`] turns the `nn.param`s of a lowered model into trailing
//!   function arguments, so the caller owns the weights (the master copies) and can update
//!   them between steps.
//! - [`training_step`] appends the backward pass to such a function: its arguments become
//!   `(inputs..., params..., target, loss_scale)` and its results `(output, grad_param...)`.
//!   The gradient of the loss is the `nn.softmax_xent_grad`/`nn.mse_grad` of the output,
//!   multiplied by the loss scale; each op's gradient rule ([`rules`]) emits new `nn` ops with
//!   the training formats of [`GradSpec`]: activation gradients in `act_grad`, weight and bias
//!   gradients in `weight_grad`, backward contractions with the backward `#arith` (each per
//!   layer overridable: a layer's `bwd_acc`, `bwd_chunk`, `bwd_chunk_acc`). Roundings (`nn.cast`, `q.quantize`, `q.dequantize`) pass the gradient
//!   straight through (the straight-through estimator of quantization-aware training).
//! - [`trainer`] runs training steps on any [`crate::backend::Backend`].

mod rules;
pub mod trainer;

use crate::init::Recipe;
use crate::ir::{
    Arith, Attr, Chunk, Module, OpId, RoundTo, Span, Type, Value, ValueDef,
    ValueId,
};
use qc_lang::check::{self as lang, CheckedModule};
use qc_runtime::numerics::{Format, Rounding};
use std::collections::{HashMap, HashSet};

/// A model parameter turned into a function argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub dims: Vec<u64>,
    /// The format of the master copy (the argument's format).
    pub master: Format,
    /// How it starts.
    pub init: Recipe,
    /// A batch norm's running mean or variance: the training step returns its new value
    /// (not a gradient), which replaces it.
    pub running_statistic: bool,
}

/// The loss whose gradient starts the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Mean over the batch of the cross-entropy of softmax(output) against the target rows.
    SoftmaxCrossEntropy,
    /// Mean over every element of (output − target)².
    MeanSquaredError,
}

/// Training formats and backward arithmetic of one layer, overriding [`GradSpec`]'s for the
/// gradients its op makes.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGrads {
    /// The span of the layer's forward op (the source construct).
    pub span: Span,
    pub act_grad: Option<RoundTo>,
    pub weight_grad: Option<RoundTo>,
    /// The arithmetic of its backward contractions and of its bias gradient's sum.
    pub backward: Option<Arith>,
}

/// How the backward pass computes.
#[derive(Clone, Debug, PartialEq)]
pub struct GradSpec {
    pub loss: Loss,
    /// Gradients with respect to activations (errors).
    pub act_grad: RoundTo,
    /// Gradients with respect to weights and biases.
    pub weight_grad: RoundTo,
    /// Products, accumulator and chunks of the backward contractions (`out` and `stream` are
    /// set per op from the gradient's format).
    pub backward: Arith,
    pub layers: Vec<LayerGrads>,
}

fn round_to(r: lang::Rounded) -> RoundTo {
    RoundTo {
        format: r.format,
        rounding: r.rounding,
    }
}

/// The IR `#arith` of a language arithmetic (as the lowering from the language makes it: the
/// language's `acc` is the chunk-sum format when chunked).
fn ir_arith(a: &lang::Arith) -> Arith {
    let (acc, chunk) = match a.chunk {
        Some(size) => (
            a.chunk_acc.unwrap_or(a.acc),
            Some(Chunk {
                size: size as u64,
                format: a.acc.format,
                rounding: a.acc.rounding,
            }),
        ),
        None => (a.acc, None),
    };
    Arith {
        mul: a.mul.map(round_to),
        acc: round_to(acc),
        chunk,
        out: Rounding::Nearest,
        fma: a.fma,
        stream: None,
    }
}

impl GradSpec {
    /// The training formats and backward arithmetic of a checked model's `train` section.
    pub fn from_model(model: &CheckedModule) -> Result<GradSpec, String> {
        let t = model
            .training
            .as_ref()
            .ok_or_else(|| format!("model `{}` has no `train` section", model.name))?;
        let layers = model
            .nodes
            .iter()
            .filter(|n| n.grads != lang::GradFormats::default())
            .map(|n| LayerGrads {
                span: n.span.start..n.span.end,
                act_grad: n.grads.act_grad.map(round_to),
                weight_grad: n.grads.weight_grad.map(round_to),
                backward: (!n.grads.backward.is_empty()).then(|| ir_arith(&n.grads.backward.over(&t.backward))),
            })
            .collect();
        Ok(GradSpec {
            loss: match t.loss {
                lang::Loss::SoftmaxCrossEntropy => Loss::SoftmaxCrossEntropy,
                lang::Loss::Mse => Loss::MeanSquaredError,
            },
            act_grad: round_to(t.formats.act_grad),
            weight_grad: round_to(t.formats.weight_grad),
            backward: ir_arith(&t.backward),
            layers,
        })
    }

    fn layer(&self, span: &Option<Span>) -> Option<&LayerGrads> {
        span.as_ref()
            .and_then(|s| self.layers.iter().find(|l| &l.span == s))
    }

    /// The activation-gradient format for the gradients made by an op at `span`.
    pub(crate) fn act_grad_at(&self, span: &Option<Span>) -> RoundTo {
        self.layer(span)
            .and_then(|l| l.act_grad)
            .unwrap_or(self.act_grad)
    }

    /// The arithmetic of the backward contractions (and bias-gradient sums) of an op at `span`.
    pub(crate) fn backward_at(&self, span: &Option<Span>) -> Arith {
        self.layer(span)
            .and_then(|l| l.backward)
            .unwrap_or(self.backward)
    }

    /// The weight-gradient format for the gradients made by an op at `span`.
    pub(crate) fn weight_grad_at(&self, span: &Option<Span>) -> RoundTo {
        self.layer(span)
            .and_then(|l| l.weight_grad)
            .unwrap_or(self.weight_grad)
    }
}

/// The only function's entry block and its `func.return`.
fn body(module: &Module) -> Result<(crate::ir::BlockId, OpId), String> {
    let [func] = module.funcs.as_slice() else {
        return Err(format!(
            "differentiation needs a module with one function, not {}",
            module.funcs.len()
        ));
    };
    let block = module
        .entry_block(func.body)
        .ok_or("the function has no body")?;
    let ret = *module.blocks[block]
        .ops
        .last()
        .ok_or("the function body is empty")?;
    if module.ops[ret].name() != "func.return" {
        return Err("the function body does not end in `func.return`".into());
    }
    Ok((block, ret))
}

/// Appends an argument of type `ty` named `name` to `block`.
fn add_argument(module: &mut Module, block: crate::ir::BlockId, ty: Type, name: &str) -> ValueId {
    let index = module.blocks[block].args.len();
    let v = module.values.alloc(Value {
        ty,
        def: ValueDef::Arg { block, index },
        name: Some(name.to_string()),
    });
    module.blocks[block].args.push(v);
    v
}


/// Replaces every `nn.param` of the module's function by a new trailing argument of the same
/// type (in the order the parameters appear) and returns them.
pub fn parameters_as_arguments(module: &mut Module) -> Result<Vec<Param>, String> {
    let (block, _) = body(module)?;
    let mut params = Vec::new();
    for op in module.blocks[block].ops.clone() {
        if module.ops[op].name() != "nn.param" {
            continue;
        }
        let o = &module.ops[op];
        let name = match o.attr("name") {
            Some(Attr::Str(s)) => s.clone(),
            _ => return Err("a parameter has no name".into()),
        };
        let init = match o.attr("init") {
            Some(Attr::Dict(d)) => {
                Recipe::from_dict(d).map_err(|e| format!("parameter `{name}`: {e}"))?
            }
            _ => return Err(format!("parameter `{name}` has no initialiser")),
        };
        let result = o.results[0];
        let running_statistic = module.blocks[block].ops.iter().any(|&u| {
            module.ops[u].name() == "nn.batchnorm" && module.ops[u].operands[3..].contains(&result)
        });
        let ty = module.ty(result).clone();
        let t = ty.as_tensor().ok_or("a parameter is a tensor")?;
        let dims =
            t.static_dims().ok_or_else(|| format!("parameter `{name}` has no static shape"))?;
        params.push(Param {
            name: name.clone(),
            dims,
            master: t.format,
            init,
            running_statistic,
        });
        let arg_name = module.values[result].name.clone().unwrap_or(name);
        let arg = add_argument(module, block, ty, &arg_name);
        module.replace_all_uses(result, arg);
        module.erase_op(op);
    }
    Ok(params)
}

/// The largest random stream any op of the module uses, plus one.
fn next_stream(module: &Module) -> u32 {
    module
        .all_ops()
        .iter()
        .filter_map(|&op| {
            let o = &module.ops[op];
            let own = o.attr("stream").and_then(Attr::as_int).map(|s| s as u32);
            let arith = match o.attr("arith") {
                Some(Attr::Arith(a)) => a.stream,
                _ => None,
            };
            own.max(arith).map(|s| s + 1)
        })
        .max()
        .unwrap_or(0)
}

/// Appends the backward pass to a function whose parameters are its trailing `params`
/// arguments ([`parameters_as_arguments`]). The function gains two arguments, the target
/// (the output's shape, fp32) and the loss scale (`tensor<fp32>`), and returns the output
/// followed by the gradient of the scaled loss with respect to each parameter — except that
/// batch norms normalise with batch statistics and a running statistic's slot holds its new
/// value ([`rules::use_batch_statistics`]).
pub fn training_step(module: &mut Module, params: usize, spec: &GradSpec) -> Result<(), String> {
    let (block, ret) = body(module)?;
    let outputs = module.ops[ret].operands.clone();
    let [output] = outputs[..] else {
        return Err(format!(
            "the loss needs exactly one output, the function has {}",
            outputs.len()
        ));
    };
    let args = module.blocks[block].args.clone();
    let param_args = args
        .get(args.len().saturating_sub(params)..)
        .unwrap_or_default()
        .to_vec();
    let out_t = module
        .ty(output)
        .as_tensor()
        .ok_or("the output is a tensor")?
        .clone();
    let fp32 = Format::parse("fp32").expect("fp32 is a named format");
    let target = add_argument(
        module,
        block,
        Type::Tensor(out_t.with_format(fp32)),
        "target",
    );
    let scale = add_argument(module, block, Type::tensor(vec![], fp32), "loss_scale");

    let running = rules::use_batch_statistics(module, block, ret)?;
    // The values whose gradient is needed: the parameters and everything computed from them.
    let mut needs: HashSet<ValueId> = param_args.iter().copied().collect();
    let forward: Vec<OpId> = module.blocks[block]
        .ops
        .iter()
        .copied()
        .filter(|&op| op != ret)
        .collect();
    for &op in &forward {
        if module.ops[op].operands.iter().any(|v| needs.contains(v)) {
            needs.extend(module.ops[op].results.iter().copied());
        }
    }
    let mut b = rules::Backward {
        module,
        anchor: ret,
        spec,
        next_stream: 0,
        cotangents: HashMap::new(),
        needs,
    };
    b.next_stream = next_stream(b.module);
    b.seed(output, target, scale)?;
    for &op in forward.iter().rev() {
        let result = b.module.ops[op].results.first().copied();
        if let Some(dy) = result.and_then(|r| b.cotangents.get(&r).copied()) {
            b.op_gradient(op, dy)?;
        }
    }
    let mut results = vec![output];
    for (&arg, name) in param_args.iter().zip(0..) {
        let (g, prefix) = match (running.get(&arg), b.cotangents.get(&arg)) {
            (Some(&new), _) => (new, "new"),
            (None, Some(&g)) => (g, "grad"),
            (None, None) => (b.zeros(arg)?, "grad"),
        };
        let label = format!(
            "{prefix}_{}",
            b.module.values[arg]
                .name
                .clone()
                .unwrap_or_else(|| format!("p{name}"))
        );
        if b.module.values[g].name.is_none() {
            b.module.values[g].name = Some(label);
        }
        results.push(g);
    }
    let types = results.iter().map(|v| module.ty(*v).clone()).collect();
    module.ops[ret].operands = results;
    module.funcs[0].results = types;
    module.funcs[0].name = format!("{}_train", module.funcs[0].name);
    Ok(())
}
