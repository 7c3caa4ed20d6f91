//! [`Trainer`]: trains a checked model on any [`Backend`]. The training step (forward and
//! backward, [`super::training_step`]) is compiled once per batch size to a kernel-dialect
//! [`Program`] whose arguments are the batch, the master weights, the targets and the loss
//! scale, and whose results are the output and the weight gradients; the optimizer, the
//! schedule and loss scaling run on the host (`qc_runtime::train`). The evaluation function is
//! the forward pass with the weights as arguments.
//!
//! Determinism: initial weights come from the parameters' recipes with the training seed;
//! step `s` runs its program with seed `mix64(seed ⊕ mix64(s))` (the random streams of the
//! IR's stochastic roundings) and the optimizer draws as `qc_runtime::train` documents, so the
//! same seed gives the same weights bit for bit on any backend that meets the kernel
//! contract.

use super::{parameters_as_arguments, training_step, GradSpec, Loss, Param};
use crate::backend::{Backend, ExecError, Program};
use crate::init::Kind;
use qc_lang::check::{self as lang, CheckedModule};
use qc_runtime::data::Dataset;
use qc_runtime::io::WeightFile;
use qc_runtime::numerics::rng::mix64;
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use qc_runtime::tensor::Tensor;
use qc_runtime::train::{
    self as host, LossScaling, LossValue, Optimizer, OptimizerKind, ScaleDecision, Schedule,
    UpdateFormats,
};
use std::collections::HashMap;
use std::path::Path;

/// Settings of a run: the training section's, unless overridden (from the command line).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub batch: Option<usize>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
}

/// What one training step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// The batch's mean loss and correct predictions (before the update).
    pub value: LossValue,
    /// The gradients overflowed and dynamic loss scaling skipped the update.
    pub skipped: bool,
}

pub struct Trainer {
    model: CheckedModule,
    spec: GradSpec,
    /// Training-step programs by batch size.
    steps: HashMap<usize, Program>,
    eval: Program,
    pub params: Vec<Param>,
    /// The master copy of every parameter (values of its master format), row-major.
    pub weights: Vec<Vec<f32>>,
    optimizer: Optimizer,
    scaling: LossScaling,
    schedule: Schedule,
    base_lr: f64,
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    /// The input's format and rounding and its shape after the batch axis.
    input: (Format, Rounding, Vec<usize>),
    steps_done: u64,
}

fn err(e: impl std::fmt::Display) -> ExecError {
    ExecError::new(e.to_string())
}

fn compile(module: &mut crate::ir::Module, pipeline: &str) -> Result<(), ExecError> {
    use crate::pass::{parse_pipeline, PassManager, PassOptions};
    for stage in [pipeline, "to-kernel"] {
        let passes = parse_pipeline(stage).map_err(err)?;
        let options = PassOptions {
            verify_each: true,
            ..PassOptions::default()
        };
        PassManager::new(passes, options).run(module).map_err(err)?;
    }
    Ok(())
}

/// The forward pass of `model` with its parameters as trailing arguments (any batch size),
/// as a program, and the parameters.
pub fn compile_forward(
    model: &CheckedModule,
    seed: u64,
) -> Result<(Program, Vec<Param>), ExecError> {
    let mut module = crate::lower::lower_model(model).map_err(err)?;
    let params = parameters_as_arguments(&mut module).map_err(err)?;
    compile(&mut module, "infer,canonicalize,chunking")?;
    Ok((Program::prepare(module, seed)?, params))
}

/// The training step of `model` for batches of `rows` samples: arguments `(input,
/// params..., target, loss_scale)`, results `(output, gradient per parameter...)`.
pub fn compile_step(
    model: &CheckedModule,
    spec: &GradSpec,
    rows: usize,
    seed: u64,
) -> Result<Program, ExecError> {
    let mut module = crate::lower::lower_model(model).map_err(err)?;
    let params = parameters_as_arguments(&mut module).map_err(err)?;
    training_step(&mut module, params.len(), spec).map_err(err)?;
    compile(
        &mut module,
        &format!("infer{{batch={rows}}},canonicalize,chunking"),
    )?;
    Program::prepare(module, seed)
}

impl Trainer {
    /// Compiles the evaluation function and sets up the weights (from the recipes, `load`
    /// paths relative to `base_dir`) and the optimizer.
    pub fn new(
        model: &CheckedModule,
        base_dir: &Path,
        overrides: &Overrides,
    ) -> Result<Trainer, ExecError> {
        let training = model.training.as_ref().ok_or_else(|| {
            ExecError::new(format!("model `{}` has no `train` section", model.name))
        })?;
        let spec = GradSpec::from_model(model).map_err(err)?;
        let [input] = model.inputs.as_slice() else {
            return Err(ExecError::new(format!(
                "training feeds one input, model `{}` has {}",
                model.name,
                model.inputs.len()
            )));
        };
        let sample: Vec<usize> = input.shape.0[1..]
            .iter()
            .map(|d| match d {
                lang::Dim::Known(n) => Ok(*n),
                lang::Dim::Symbol(s) => Err(ExecError::new(format!(
                    "the input's axes after the batch must be sizes, not `{s}`"
                ))),
            })
            .collect::<Result<_, _>>()?;
        let seed = overrides.seed.unwrap_or(training.seed);
        let (eval, params) = compile_forward(model, seed)?;
        let weights = params
            .iter()
            .map(|p| initial_values(p, seed, base_dir))
            .collect::<Result<Vec<_>, _>>()?;
        let f = &training.formats;
        let formats = UpdateFormats {
            update: (f.update.format, f.update.rounding),
            master: (f.master.format, f.master.rounding),
        };
        let kind = match training.optimizer {
            lang::Optimizer::Sgd {
                momentum,
                weight_decay,
                nesterov,
                ..
            } => OptimizerKind::Sgd {
                momentum,
                weight_decay,
                nesterov,
            },
            lang::Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => OptimizerKind::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            },
        };
        let base_lr = overrides.lr.unwrap_or(match training.optimizer {
            lang::Optimizer::Sgd { lr, .. } | lang::Optimizer::Adam { lr, .. } => lr,
        });
        let sizes: Vec<usize> = weights.iter().map(Vec::len).collect();
        let scaling = match training.loss_scale {
            lang::LossScale::None => LossScaling::None,
            lang::LossScale::Static(s) => LossScaling::Static(s),
            lang::LossScale::Dynamic {
                init,
                growth,
                backoff,
                interval,
            } => LossScaling::dynamic(init, growth, backoff, interval),
        };
        let schedule = match training.schedule {
            lang::Schedule::Constant => Schedule::Constant,
            lang::Schedule::Step { every, gamma } => Schedule::Step { every, gamma },
            lang::Schedule::Cosine => Schedule::Cosine,
        };
        Ok(Trainer {
            model: model.clone(),
            spec,
            steps: HashMap::new(),
            eval,
            params,
            weights,
            optimizer: Optimizer::new(kind, formats, seed, &sizes),
            scaling,
            schedule,
            base_lr,
            epochs: overrides.epochs.unwrap_or(training.epochs),
            batch: overrides.batch.unwrap_or(training.batch),
            seed,
            input: (input.format, input.rounding, sample),
            steps_done: 0,
        })
    }

    /// The shape of one sample the model reads (after the batch axis).
    pub fn sample_shape(&self) -> &[usize] {
        &self.input.2
    }

    /// The learning rate of epoch `epoch` (from 0).
    pub fn learning_rate(&self, epoch: usize) -> f64 {
        self.base_lr * self.schedule.factor(epoch, self.epochs)
    }

    /// The current loss scale.
    pub fn loss_scale(&self) -> f64 {
        self.scaling.scale()
    }

    /// Replaces the weights by those of `file` (by parameter name), rounded to nearest into
    /// each master format: resuming from saved weights.
    pub fn load_weights(&mut self, file: &WeightFile) -> Result<(), ExecError> {
        for (p, w) in self.params.iter().zip(&mut self.weights) {
            let shape: Vec<usize> = p.dims.iter().map(|&d| d as usize).collect();
            let t = file.get(&p.name, &shape).map_err(err)?;
            *w = round_into(t.data(), p.master, Rounding::Nearest, 0, 0)?;
        }
        Ok(())
    }

    /// The weights as named tensors (for saving).
    pub fn named_weights(&self) -> Result<Vec<(String, Tensor)>, ExecError> {
        self.params
            .iter()
            .zip(&self.weights)
            .map(|(p, w)| {
                Ok((
                    p.name.clone(),
                    Tensor::new(p.dims.iter().map(|&d| d as usize).collect(), w.clone())
                        .map_err(err)?,
                ))
            })
            .collect()
    }

    fn step_program(&mut self, rows: usize) -> Result<&Program, ExecError> {
        if !self.steps.contains_key(&rows) {
            let program = compile_step(&self.model, &self.spec, rows, self.seed)?;
            self.steps.insert(rows, program);
        }
        Ok(&self.steps[&rows])
    }

    /// The batch `x` (`[rows, sample...]`, any f32 values) rounded into the input's format.
    fn input_tensor(&self, x: &Tensor, stream: u64) -> Result<Tensor, ExecError> {
        let (format, rounding, sample) = &self.input;
        if x.shape()[1..] != sample[..] {
            return Err(ExecError::new(format!(
                "the data's samples are {:?} but the model reads {:?}",
                &x.shape()[1..],
                sample
            )));
        }
        let values = round_into(x.data(), *format, *rounding, self.seed, stream)?;
        Tensor::new(x.shape().to_vec(), values).map_err(err)
    }

    fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.params
            .iter()
            .map(|p| p.dims.iter().map(|&d| d as usize).collect())
            .collect()
    }

    fn arguments(&self, x: Tensor) -> Result<Vec<Tensor>, ExecError> {
        let mut args = vec![x];
        for (w, shape) in self.weights.iter().zip(self.param_shapes()) {
            args.push(Tensor::new(shape, w.clone()).map_err(err)?);
        }
        Ok(args)
    }

    /// The step's arguments with the weights moved in rather than copied; [`Self::restore`]
    /// moves them back.
    fn lend_arguments(&mut self, x: Tensor) -> Result<Vec<Tensor>, ExecError> {
        let shapes = self.param_shapes();
        // Every shape is checked before any weights move, so an error loses none.
        for ((p, w), shape) in self.params.iter().zip(&self.weights).zip(&shapes) {
            if qc_runtime::tensor::element_count(shape) != Some(w.len()) {
                return Err(ExecError::new(format!(
                    "the weights of `{}` do not fill {shape:?}",
                    p.name
                )));
            }
        }
        let mut args = vec![x];
        for (w, shape) in self.weights.iter_mut().zip(shapes) {
            args.push(Tensor::new(shape, std::mem::take(w)).map_err(err)?);
        }
        Ok(args)
    }

    /// Moves the weights lent by [`Self::lend_arguments`] back from `args`.
    fn restore(&mut self, args: Vec<Tensor>) {
        for (w, t) in self.weights.iter_mut().zip(args.into_iter().skip(1)) {
            *w = t.into_data();
        }
    }

    fn loss_value(&self, output: &Tensor, labels: &[u32]) -> Result<LossValue, ExecError> {
        let width = *output
            .shape()
            .last()
            .ok_or_else(|| ExecError::new("the output has no axis"))?;
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= width) {
            return Err(ExecError::new(format!(
                "label {bad} is not below the output width {width}"
            )));
        }
        Ok(match self.spec.loss {
            Loss::SoftmaxCrossEntropy => host::softmax_cross_entropy(output.data(), width, labels),
            Loss::MeanSquaredError => {
                host::mean_squared_error(output.data(), &host::one_hot(labels, width), width)
            }
        })
    }

    /// One step on the batch `x` with `labels` at learning rate `lr`.
    pub fn step(
        &mut self,
        backend: &dyn Backend,
        x: &Tensor,
        labels: &[u32],
        lr: f64,
    ) -> Result<StepOutcome, ExecError> {
        let rows = labels.len();
        let step = self.steps_done;
        let input = self.input_tensor(x, (1 << 62) + step)?;
        let scale = self.scaling.scale();
        let seed = mix64(self.seed ^ mix64(step));
        let program = self.step_program(rows)?;
        let width = match program.module.funcs[0]
            .results
            .first()
            .and_then(|t| t.as_tensor())
            .and_then(|t| t.dims.last())
        {
            Some(crate::ir::Dim::Fixed(n)) => *n as usize,
            _ => {
                return Err(ExecError::new(
                    "the model's output needs a static last axis",
                ))
            }
        };
        let target = Tensor::new(vec![rows, width], host::one_hot(labels, width)).map_err(err)?;
        let mut args = self.lend_arguments(input)?;
        args.push(target);
        args.push(Tensor::scalar(scale as f32));
        let program = self.steps.get_mut(&rows).expect("compiled above");
        program.seed = seed;
        let results = backend.run(program, &args);
        self.restore(args);
        let results = results?;
        let (output, grads) = results
            .split_first()
            .ok_or_else(|| ExecError::new("the training step returned nothing"))?;
        let value = self.loss_value(output, labels)?;
        let overflow = !grads.iter().all(|g| host::all_finite(g.data()));
        let skipped = self.scaling.after_step(overflow) == ScaleDecision::Skip;
        if !skipped {
            // A running statistic's slot holds its new value: it takes no optimizer step.
            let zeros: Vec<Vec<f32>> = self
                .params
                .iter()
                .zip(grads)
                .map(|(p, g)| if p.running_statistic { vec![0.0; g.len()] } else { Vec::new() })
                .collect();
            let g: Vec<&[f32]> = grads
                .iter()
                .zip(&self.params)
                .zip(&zeros)
                .map(|((g, p), z)| if p.running_statistic { z.as_slice() } else { g.data() })
                .collect();
            self.optimizer
                .step(&mut self.weights, &g, scale, lr)
                .map_err(err)?;
            for ((w, p), new) in self.weights.iter_mut().zip(&self.params).zip(grads) {
                if p.running_statistic {
                    w.copy_from_slice(new.data());
                }
            }
        }
        self.steps_done += 1;
        Ok(StepOutcome { value, skipped })
    }

    /// The summed loss (mean per sample over the data set) and correct predictions of the
    /// current weights on `data`, in batches of `batch`.
    pub fn evaluate(
        &self,
        backend: &dyn Backend,
        data: &Dataset,
        batch: usize,
    ) -> Result<LossValue, ExecError> {
        let mut total = 0.0;
        let mut correct = 0;
        let order = qc_runtime::data::Order::Sequential;
        for b in qc_runtime::data::Batches::new(data, batch, order).map_err(err)? {
            let input = self.input_tensor(&b.x, 0)?;
            let results = backend.run(&self.eval, &self.arguments(input)?)?;
            let output = results
                .first()
                .ok_or_else(|| ExecError::new("the model returned nothing"))?;
            let v = self.loss_value(output, &b.y)?;
            total += v.loss * b.y.len() as f64;
            correct += v.correct;
        }
        Ok(LossValue {
            loss: total / data.len().max(1) as f64,
            correct,
        })
    }
}

/// Rounds `values` into `format` (stochastic modes draw from `RandomStream(seed, stream)`).
fn round_into(
    values: &[f32],
    format: Format,
    rounding: Rounding,
    seed: u64,
    stream: u64,
) -> Result<Vec<f32>, ExecError> {
    let mut out = vec![0.0; values.len()];
    format
        .quantize(
            values,
            &[values.len()],
            rounding,
            &RandomStream::new(seed, stream),
            &mut out,
        )
        .map_err(err)?;
    Ok(out)
}

/// A parameter's starting master values: its recipe with the run's seed, or its file.
fn initial_values(p: &Param, seed: u64, base_dir: &Path) -> Result<Vec<f32>, ExecError> {
    let values = match &p.init.kind {
        Kind::Load { path, tensor } => {
            let file = WeightFile::open(&base_dir.join(path)).map_err(err)?;
            let shape: Vec<usize> = p.dims.iter().map(|&d| d as usize).collect();
            let t = match tensor {
                Some(name) => file.get(name, &shape),
                None => file.get_single(&shape),
            };
            t.map_err(err)?.into_data()
        }
        _ => {
            let recipe = crate::init::Recipe {
                seed,
                ..p.init.clone()
            };
            recipe
                .generate(&p.dims)
                .ok_or_else(|| ExecError::new(format!("parameter `{}` has no values", p.name)))?
        }
    };
    round_into(&values, p.master, Rounding::Nearest, 0, 0)
}
