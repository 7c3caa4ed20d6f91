//! `qc run model.qnn`: compile a model to the kernel dialect (with `--weights` bound before
//! the passes, so weights are quantized once) and execute it on a backend:
//! - `--data digits|PATH`: the test part of a labelled data set; prints accuracy, the confusion
//!   matrix and the time per sample;
//! - `--input X.npy` or `--random-input SEED`: writes the outputs to `--output Y.npy`;
//! - `--format-sweep` (with `--data`): the accuracy table of the same network with weights and
//!   activations in each of a list of formats (`format_sweep`).

use super::{format_sweep, CliError};
use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::jit::Jit;
use qc_compiler::backend::program::{compile_with_weights, input_shapes, random_inputs};
use qc_compiler::backend::{Backend, Program};
use qc_lang::check::CheckedModule;
use qc_runtime::data::{DataSource, Dataset};
use qc_runtime::io::{npy, WeightFile};
use qc_runtime::tensor::{shape_string, Tensor};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The .qnn model.
    pub file: PathBuf,
    /// The backend: `jit` (Cranelift) or `interp` (the reference interpreter; same bits).
    #[arg(long, default_value = "jit")]
    pub backend: String,
    /// Parameters by name from a .safetensors, .npz or .npy file.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Labelled data: `digits` (built in) or a path (.npz, a directory of .npy or IDX files).
    #[arg(long)]
    pub data: Option<String>,
    /// Run on this float32 .npy array (the model's single input).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Where to write the output (.npy).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Run on seeded uniform inputs in [-1, 1) of the model's input shapes.
    #[arg(long)]
    pub random_input: Option<u64>,
    /// The run's seed for stochastic rounding.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per backend call (data), or the batch size of random inputs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Chunk size for every accumulation longer than it that has no chunk of its own.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk: Option<u64>,
    /// With --data: print the accuracy table of the network under a list of formats.
    #[arg(long)]
    pub format_sweep: bool,
}

/// The backend named on the command line.
pub fn backend_named(name: &str) -> Result<Box<dyn Backend>, CliError> {
    match name {
        "interp" => Ok(Box::new(Interpreter)),
        "jit" => Ok(Box::new(Jit::default())),
        other => Err(CliError::new(format!(
            "unknown backend `{other}` (one of interp, jit)"
        ))),
    }
}

/// The nn-level pipeline: `optimize` with the chunk option on its `chunking`.
fn pipeline(chunk: Option<u64>) -> String {
    match chunk {
        Some(n) => format!("infer,canonicalize,fusion?,chunking{{chunk={n}}}"),
        None => "optimize".to_string(),
    }
}

/// A checked model, its diagnostics printed; a model with errors is a one-line error.
pub fn load_model(path: &std::path::Path) -> Result<CheckedModule, CliError> {
    let shown = path.display().to_string();
    let source = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(format!("cannot read {shown}: {e}")))?;
    let (checked, diagnostics) = qc_lang::check_source(&source);
    eprint!("{}", qc_lang::render(&diagnostics, &source, &shown, false));
    checked.ok_or_else(|| CliError::new(format!("{shown} has errors")))
}

/// The model compiled and prepared: weights bound, every parameter materialised.
pub fn prepare(
    model: &CheckedModule,
    weights: Option<&WeightFile>,
    chunk: Option<u64>,
    seed: u64,
) -> Result<Program, CliError> {
    let module = compile_with_weights(model, &pipeline(chunk), weights).map_err(CliError::new)?;
    Program::prepare(module, seed).map_err(CliError::new)
}

pub fn run(args: Args) -> Result<(), CliError> {
    let backend = backend_named(&args.backend)?;
    let model = load_model(&args.file)?;
    let weights = match &args.weights {
        Some(path) => Some(WeightFile::open(path).map_err(CliError::new)?),
        None => None,
    };
    let modes = [
        args.data.is_some(),
        args.input.is_some(),
        args.random_input.is_some(),
    ];
    if modes.iter().filter(|m| **m).count() != 1 {
        return Err(CliError::new(
            "give exactly one of --data, --input, --random-input",
        ));
    }
    if args.format_sweep {
        let Some(data) = &args.data else {
            return Err(CliError::new("--format-sweep needs --data"));
        };
        let test = load_test_data(data)?;
        let table =
            format_sweep::accuracy_table(&model, weights.as_ref(), &test, backend.as_ref(), &args)?;
        return super::print(&table);
    }
    let program = prepare(&model, weights.as_ref(), args.chunk, args.seed)?;
    if let Some(data) = &args.data {
        let test = load_test_data(data)?;
        let started = Instant::now();
        let predictions = predict(&program, backend.as_ref(), &test, args.batch)?;
        let elapsed = started.elapsed();
        return super::print(&report(&test, &predictions, elapsed.as_secs_f64()));
    }
    let inputs = match (&args.input, args.random_input) {
        (Some(path), _) => {
            let array = npy::read_f32_file(path)
                .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
            vec![Tensor::new(array.shape, array.data).map_err(CliError::new)?]
        }
        (None, Some(seed)) => random_inputs(&program.module, seed, args.batch.unwrap_or(1) as usize).map_err(CliError::new)?,
        (None, None) => unreachable!("one mode is given"),
    };
    let Some(output) = &args.output else {
        return Err(CliError::new(
            "--input and --random-input write to --output Y.npy",
        ));
    };
    let outputs = backend.run(&program, &inputs).map_err(CliError::new)?;
    let [result] = outputs.as_slice() else {
        return Err(CliError::new(format!(
            "the model has {} outputs; --output writes a single one",
            outputs.len()
        )));
    };
    npy::write_f32_file(output, result.shape(), result.data())
        .map_err(|e| CliError::new(format!("{}: {e}", output.display())))?;
    super::print(&format!(
        "wrote {} {} to {}\n",
        program.name(),
        shape_string(result.shape()),
        output.display()
    ))
}

/// The test part of a data set named by `--data`.
pub fn load_test_data(text: &str) -> Result<Dataset, CliError> {
    let source = DataSource::parse(text).map_err(CliError::new)?;
    Ok(source.load().map_err(CliError::new)?.test)
}


/// The predicted class of every sample of `data` (the arg-max of the model's output row),
/// running `batch` samples per backend call.
pub fn predict(
    program: &Program,
    backend: &dyn Backend,
    data: &Dataset,
    batch: Option<u64>,
) -> Result<Vec<usize>, CliError> {
    let inputs = input_shapes(&program.module, 1);
    let [(sample_shape, _)] = inputs.as_slice() else {
        return Err(CliError::new(format!(
            "labelled data needs a model with one input, `{}` has {}",
            program.name(),
            inputs.len()
        )));
    };
    let per_sample: usize = sample_shape.iter().product();
    let x = data.x();
    if x.len() != per_sample * data.len() {
        return Err(CliError::new(format!(
            "the data's samples have shape {} but `{}` takes {}",
            shape_string(&x.shape()[1..]),
            program.name(),
            shape_string(&sample_shape[1..])
        )));
    }
    let batch = batch.map_or(data.len(), |b| b as usize).max(1);
    let mut predictions = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(batch) {
        let rows = batch.min(data.len() - start);
        let mut shape = sample_shape.clone();
        shape[0] = rows;
        let slice = x.data()[start * per_sample..(start + rows) * per_sample].to_vec();
        let input = Tensor::new(shape, slice).map_err(CliError::new)?;
        let outputs = backend.run(program, &[input]).map_err(CliError::new)?;
        let logits = outputs
            .first()
            .ok_or_else(|| CliError::new("the model has no output"))?;
        let classes = logits.len() / rows.max(1);
        if classes == 0 || logits.len() != classes * rows {
            return Err(CliError::new(format!(
                "the output {} does not have one row per sample",
                shape_string(logits.shape())
            )));
        }
        predictions.extend(logits.data().chunks(classes).map(arg_max));
    }
    Ok(predictions)
}

/// The index of the largest value (the first one on ties; NaN never wins).
fn arg_max(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, v)| {
        if *v > row[best] || row[best].is_nan() && !v.is_nan() {
            i
        } else {
            best
        }
    })
}

/// Correct predictions.
pub fn correct(data: &Dataset, predictions: &[usize]) -> usize {
    predictions
        .iter()
        .zip(data.y())
        .filter(|(p, y)| **p == **y as usize)
        .count()
}

fn report(data: &Dataset, predictions: &[usize], seconds: f64) -> String {
    let n = data.len();
    let right = correct(data, predictions);
    let classes = data
        .classes()
        .max(predictions.iter().max().map_or(0, |m| m + 1));
    let mut matrix = vec![vec![0usize; classes]; classes];
    for (p, y) in predictions.iter().zip(data.y()) {
        matrix[*y as usize][*p] += 1;
    }
    let mut out = format!(
        "accuracy: {:.2}% ({right}/{n})\n",
        100.0 * right as f64 / n.max(1) as f64
    );
    out += &format!(
        "time: {:.1} µs per sample ({n} samples, {:.3} s)\n",
        1e6 * seconds / n.max(1) as f64,
        seconds
    );
    out += "confusion matrix (rows: label, columns: prediction):\n      ";
    for c in 0..classes {
        out += &format!("{c:>5}");
    }
    out += "\n";
    for (label, row) in matrix.iter().enumerate() {
        out += &format!("{label:>5} ");
        for count in row {
            out += &format!("{count:>5}");
        }
        out += "\n";
    }
    out
}
