//! `qc train model.qnn`: trains a model with its `train` section (loss, optimizer, schedule,
//! training formats) on a data set, on the reference interpreter or the JIT. Per epoch: a
//! progress bar on standard error with the running loss and throughput, then one line with
//! the epoch's mean training loss, the training accuracy (of the predictions made during the
//! epoch, before each update), the test loss and accuracy, skipped steps and the loss scale.
//! `--save` writes the weights (safetensors, by parameter name) after every epoch, so an
//! interrupted run keeps its last finished epoch; `--weights` starts from saved weights.

use super::CliError;
use indicatif::{ProgressBar, ProgressStyle};
use qc_compiler::autodiff::trainer::{Overrides, Trainer};
use qc_runtime::data::{Batches, DataSource, Dataset, Order};
use qc_runtime::io::WeightFile;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The .qnn model (with a `train` section).
    pub file: PathBuf,
    /// `digits` (built in), a .npz file or a directory (see `qc_runtime::data::source`).
    #[arg(long, default_value = "digits")]
    pub data: String,
    /// Epochs (default: the training section's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Batch size (default: the training section's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Base learning rate (default: the optimizer's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of initialisation, shuffling and stochastic rounding (default: the section's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The backend: `jit` (Cranelift) or `interp` (the reference interpreter; same bits).
    #[arg(long, default_value = "jit")]
    pub backend: String,
    /// Start from these weights (.safetensors, .npz) instead of the initialisers.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Write the weights here after every epoch (.safetensors).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write one CSV line of metrics per epoch here.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The checked model, or the rendered diagnostics as the error.
fn load_model(path: &Path) -> Result<qc_lang::check::CheckedModule, CliError> {
    let shown = path.display().to_string();
    let source = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(format!("cannot read {shown}: {e}")))?;
    let (model, diagnostics) = qc_lang::check_source(&source);
    model.ok_or_else(|| {
        let first = diagnostics
            .iter()
            .find(|d| d.is_error())
            .map_or_else(|| "invalid model".to_string(), |d| d.message.clone());
        CliError::new(format!(
            "{shown}: {first} (run `qc check {shown}` for details)"
        ))
    })
}

/// The data set with samples shaped as the model reads them.
fn fit(data: Dataset, sample: &[usize], what: &str) -> Result<Dataset, CliError> {
    if data.sample_shape() == sample {
        return Ok(data);
    }
    data.reshape_samples(sample).map_err(|e| {
        CliError::new(format!(
            "the {what} data does not fit the model's input: {e}"
        ))
    })
}

const CSV_HEADER: &str = "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,skipped_steps,loss_scale,seconds,samples_per_second\n";

pub fn run(args: Args) -> Result<(), CliError> {
    let model = load_model(&args.file)?;
    let overrides = Overrides {
        epochs: args.epochs.map(|n| n as usize),
        batch: args.batch.map(|n| n as usize),
        lr: args.lr,
        seed: args.seed,
    };
    if let Some(lr) = args.lr.filter(|lr| !(lr.is_finite() && *lr > 0.0)) {
        return Err(CliError::new(format!(
            "--lr must be a positive number, not {lr}"
        )));
    }
    let base_dir = args.file.parent().unwrap_or(Path::new("."));
    let backend = super::run::backend_named(&args.backend)?;
    let mut trainer = Trainer::new(&model, base_dir, &overrides).map_err(CliError::new)?;
    if let Some(path) = &args.weights {
        let file = WeightFile::open(path).map_err(CliError::new)?;
        trainer.load_weights(&file).map_err(CliError::new)?;
    }
    let source = DataSource::parse(&args.data).map_err(CliError::new)?;
    let split = source.load().map_err(CliError::new)?;
    let sample = trainer.sample_shape().to_vec();
    let (train, test) = (
        fit(split.train, &sample, "training")?,
        fit(split.test, &sample, "test")?,
    );
    let mut log = match &args.log {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
            f.write_all(CSV_HEADER.as_bytes())
                .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
            Some((f, path.clone()))
        }
        None => None,
    };
    super::print(&format!(
        "training `{}` on {} ({} train / {} test samples): {} epochs, batch {}, seed {}\n",
        model.name,
        args.data,
        train.len(),
        test.len(),
        trainer.epochs,
        trainer.batch,
        trainer.seed
    ))?;
    for epoch in 0..trainer.epochs {
        let lr = trainer.learning_rate(epoch);
        let batches = Batches::new(
            &train,
            trainer.batch,
            Order::Shuffled {
                seed: trainer.seed,
                epoch: epoch as u64,
            },
        )
        .map_err(CliError::new)?;
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(train.len() as u64)
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .map_err(CliError::new)?
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, trainer.epochs));
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut seen, mut skipped) = (0.0, 0usize, 0usize, 0usize);
        for batch in batches {
            let outcome = trainer
                .step(backend.as_ref(), &batch.x, &batch.y, lr)
                .map_err(CliError::new)?;
            loss_sum += outcome.value.loss * batch.y.len() as f64;
            correct += outcome.value.correct;
            seen += batch.y.len();
            skipped += usize::from(outcome.skipped);
            let rate = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(seen as u64);
            bar.set_message(format!(
                "loss {:.4}  {rate:.0} samples/s",
                loss_sum / seen as f64
            ));
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let evaluation = trainer
            .evaluate(backend.as_ref(), &test, 256)
            .map_err(CliError::new)?;
        let (train_loss, train_acc) = (
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
        );
        let test_acc = evaluation.correct as f64 / test.len().max(1) as f64;
        let rate = seen as f64 / seconds.max(1e-9);
        super::print(&format!(
            "epoch {:>3}/{}  lr {lr:.4}  loss {train_loss:.4}  train acc {:.2}%  test loss {:.4}  test acc {:.2}%  skipped {skipped}  scale {}  {rate:.0} samples/s\n",
            epoch + 1,
            trainer.epochs,
            100.0 * train_acc,
            evaluation.loss,
            100.0 * test_acc,
            trainer.loss_scale(),
        ))?;
        if let Some((f, path)) = &mut log {
            let line = format!(
                "{},{lr},{train_loss},{train_acc},{},{test_acc},{skipped},{},{seconds},{rate}\n",
                epoch + 1,
                evaluation.loss,
                trainer.loss_scale()
            );
            f.write_all(line.as_bytes())
                .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
        }
        if let Some(path) = &args.save {
            let named = trainer.named_weights().map_err(CliError::new)?;
            let refs: Vec<(&str, &qc_runtime::tensor::Tensor)> =
                named.iter().map(|(n, t)| (n.as_str(), t)).collect();
            qc_runtime::io::write_safetensors(path, &refs).map_err(CliError::new)?;
        }
    }
    Ok(())
}
