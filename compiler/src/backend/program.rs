//! [`Program`]: a kernel-dialect module with one function, whose parameters and constants
//! (`nn.param`, `nn.constant` in the function body) are materialised as tensors, once, before
//! any backend runs it.

use crate::init::Recipe;
use crate::ir::{Attr, Dim, Module, ValueId};
use crate::pass::constant_values;
use qc_runtime::io::WeightFile;
use qc_runtime::tensor::Tensor;
use std::collections::HashMap;
use std::fmt;

/// Why a program cannot be prepared or run: one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError(pub String);

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExecError {}

impl ExecError {
    pub fn new(message: impl Into<String>) -> Self {
        ExecError(message.into())
    }
}

/// A kernel-dialect function ready to run.
pub struct Program {
    /// The kernel-dialect module (after the `to-kernel` pipeline), verified, with exactly one
    /// function.
    pub module: Module,
    /// The value of every `nn.param` and `nn.constant` result in the function body.
    pub constants: HashMap<ValueId, Tensor>,
    /// The run's seed: stochastic roundings with `stream = S` draw from
    /// `RandomStream::new(seed, S)`.
    pub seed: u64,
    /// A hash of the printed module, taken by [`Program::prepare`]: backends that compile a
    /// program key their compiled code by it, so running the program again costs no
    /// printing. The module is not to be changed after preparation (prepare a new program).
    fingerprint: u64,
}

impl Program {
    /// Materialises the parameters and constants of `module`'s only function: `nn.constant`
    /// from its values or recipe (`pass::constant_values`), `nn.param` from its generated
    /// recipe.
    pub fn prepare(module: Module, seed: u64) -> Result<Program, ExecError> {
        let [func] = module.funcs.as_slice() else {
            return Err(ExecError::new(format!(
                "a program has one function, this module has {}",
                module.funcs.len()
            )));
        };
        let mut constants = HashMap::new();
        let body = module
            .entry_block(func.body)
            .ok_or_else(|| ExecError::new("the function has no body"))?;
        for &op in &module.blocks[body].ops {
            let o = &module.ops[op];
            let values = match o.name() {
                "nn.constant" => constant_values(&module, op).map_err(ExecError::new)?,
                "nn.param" => param_values(&module, op)?,
                _ => continue,
            };
            let result = o.results[0];
            let shape = static_shape(&module, result)?;
            let tensor = Tensor::new(shape, values).map_err(|e| ExecError::new(e.to_string()))?;
            constants.insert(result, tensor);
        }
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            crate::print_module(&module).hash(&mut h);
            h.finish()
        };
        Ok(Program {
            module,
            constants,
            seed,
            fingerprint,
        })
    }

    /// The hash of the printed module at preparation (the field's doc).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.module.funcs[0].name
    }
}

fn param_name(module: &Module, op: crate::ir::OpId) -> String {
    match module.ops[op].attr("name") {
        Some(Attr::Str(s)) => s.clone(),
        _ => "?".to_string(),
    }
}

/// The starting values of a parameter, from its generated recipe.
fn param_values(module: &Module, op: crate::ir::OpId) -> Result<Vec<f32>, ExecError> {
    let name = param_name(module, op);
    let Some(Attr::Dict(d)) = module.ops[op].attr("init") else {
        return Err(ExecError::new(format!(
            "parameter `{name}` has no initialiser and no weights were given"
        )));
    };
    let recipe =
        Recipe::from_dict(d).map_err(|e| ExecError::new(format!("parameter `{name}`: {e}")))?;
    let dims: Vec<u64> = static_shape(module, module.ops[op].results[0])?
        .iter()
        .map(|&d| d as u64)
        .collect();
    recipe.generate(&dims).ok_or_else(|| {
        ExecError::new(format!(
            "parameter `{name}` is loaded from a file: give its weights"
        ))
    })
}

fn static_shape(module: &Module, v: ValueId) -> Result<Vec<usize>, ExecError> {
    let t = module
        .ty(v)
        .as_tensor()
        .ok_or_else(|| ExecError::new("a parameter is a tensor"))?;
    let dims = t.static_dims().ok_or_else(|| ExecError::new("a parameter has a static shape"))?;
    Ok(dims.into_iter().map(|n| n as usize).collect())
}

/// Lowers a checked model to the kernel dialect: `lower_model`, the nn-level `pipeline`
/// (`"optimize"` normally), then `to-kernel`, verifying after every pass.
pub fn compile_to_kernel(
    model: &qc_lang::check::CheckedModule,
    pipeline: &str,
) -> Result<Module, ExecError> {
    compile_with_weights(model, pipeline, None)
}

/// [`compile_to_kernel`] with the parameters taken from a weight file: every `nn.param` is
/// bound to the file's tensor of its name ([`bind_weights`]) before the passes run, so the
/// `canonicalize` pass quantizes each weight once, at compile time.
pub fn compile_with_weights(
    model: &qc_lang::check::CheckedModule,
    pipeline: &str,
    weights: Option<&WeightFile>,
) -> Result<Module, ExecError> {
    use crate::pass::{parse_pipeline, PassManager, PassOptions};
    let mut module = crate::lower::lower_model(model).map_err(ExecError::new)?;
    if let Some(weights) = weights {
        bind_weights(&mut module, weights)?;
    }
    for stage in [pipeline, "to-kernel"] {
        let passes = parse_pipeline(stage).map_err(ExecError::new)?;
        let options = PassOptions {
            verify_each: true,
            ..PassOptions::default()
        };
        PassManager::new(passes, options)
            .run(&mut module)
            .map_err(|e| ExecError::new(e.to_string()))?;
    }
    Ok(module)
}

/// Replaces every `nn.param` of `module` by an `nn.constant {value, name}` of the same type
/// holding the weight file's tensor of that name (checked: present, same shape, a dtype that
/// converts to float32 exactly). The values are in the parameter's master format (fp32 for
/// every parameter the language declares), so listing them is exact; the roundings of the
/// constant to the parameter's declared format are then folded by `canonicalize`.
pub fn bind_weights(module: &mut Module, weights: &WeightFile) -> Result<(), ExecError> {
    use crate::lower::build::{attrs, At, Builder};
    for op in module.all_ops() {
        if module.ops[op].name() != "nn.param" || module.ops[op].parent.is_none() {
            continue;
        }
        let name = param_name(module, op);
        let result = module.ops[op].results[0];
        let shape = static_shape(module, result)?;
        let tensor = weights
            .get(&name, &shape)
            .map_err(|e| ExecError::new(e.to_string()))?;
        let values = Attr::Array(
            tensor
                .data()
                .iter()
                .map(|&x| Attr::Float(x as f64))
                .collect(),
        );
        let ty = module.ty(result).clone();
        let span = module.ops[op].span.clone();
        let constant = Builder::new(module, At::Before(op), span).op(
            "nn.constant",
            vec![],
            ty,
            attrs([("value", values), ("name", Attr::Str(name))]),
        );
        module.values[constant].name = module.values[result].name.take();
        module.replace_all_uses(result, constant);
        module.erase_op(op);
    }
    Ok(())
}

/// The shapes of the function's arguments, with `batch` for every dynamic axis, and their
/// element formats: what [`super::Backend::run`] takes.
pub fn input_shapes(
    module: &Module,
    batch: usize,
) -> Vec<(Vec<usize>, qc_runtime::numerics::Format)> {
    let Some(body) = module
        .funcs
        .first()
        .and_then(|f| module.entry_block(f.body))
    else {
        return Vec::new();
    };
    module.blocks[body]
        .args
        .iter()
        .filter_map(|&a| module.ty(a).as_tensor())
        .map(|t| {
            let dims = t
                .dims
                .iter()
                .map(|d| {
                    if let Dim::Fixed(n) = d {
                        *n as usize
                    } else {
                        batch
                    }
                })
                .collect();
            (dims, t.format)
        })
        .collect()
}

/// Seeded inputs for the function's arguments (`batch` for every dynamic axis): argument `a`'s
/// element `i` is uniform in [−1, 1) from word 0 of `RandomStream::new(seed, a)` at index `i`,
/// rounded to nearest in the argument's format. What `qc run --random-input` feeds, and what
/// the tests of the backends use.
pub fn random_inputs(module: &Module, seed: u64, batch: usize) -> Result<Vec<Tensor>, ExecError> {
    use qc_runtime::numerics::{RandomStream, Rounding};
    input_shapes(module, batch)
        .into_iter()
        .enumerate()
        .map(|(a, (shape, format))| {
            let stream = RandomStream::new(seed, a as u64);
            let n: usize = shape.iter().product();
            let raw: Vec<f32> = (0..n).map(|i| (stream.word(i as u64, 0) as f64 / 2f64.powi(31) - 1.0) as f32).collect();
            let mut values = vec![0f32; n];
            format.quantize(&raw, &shape, Rounding::Nearest, &stream, &mut values).map_err(|e| ExecError::new(e.to_string()))?;
            Tensor::new(shape, values).map_err(|e| ExecError::new(e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mlp_example_prepares_with_every_parameter_materialised() {
        let source =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/mlp.qnn"))
                .unwrap();
        let (model, diagnostics) = qc_lang::check_source(&source);
        let model = model.unwrap_or_else(|| panic!("{diagnostics:?}"));
        let program = Program::prepare(compile_to_kernel(&model, "optimize").unwrap(), 0).unwrap();
        assert_eq!(program.name(), "mlp");
        let shapes: Vec<Vec<usize>> = {
            let mut s: Vec<_> = program
                .constants
                .values()
                .map(|t| t.shape().to_vec())
                .collect();
            s.sort();
            s
        };
        assert_eq!(
            shapes,
            vec![
                vec![10],
                vec![10, 128],
                vec![128],
                vec![128],
                vec![128, 64],
                vec![128, 128]
            ]
        );
    }
}
