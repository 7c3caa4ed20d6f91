//! `qc compile model.qnn`: check the model, lower it to the `nn` dialect, run the `optimize`
//! pipeline (or `--passes`) and then `to-kernel`, and print the per-layer cost table — or,
//! with `--emit`, one stage (`ast`: the checked model; `nn`: as lowered; `opt`: after the
//! nn-level passes; `kernel`: the kernel dialect). `-o FILE` writes it to a file instead.
//! Model errors print their diagnostics and exit 1; an unreadable file exits 2.

use super::CliError;
use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
use qc_compiler::{lower::lower_model, print_module, report::layer_table, Module};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// The checked model (one line per tensor and per operation).
    Ast,
    /// The `nn` dialect as lowered from the model.
    Nn,
    /// The `nn` dialect after the nn-level passes.
    Opt,
    /// The `kernel` dialect.
    Kernel,
    /// The accelerator program (32x32 array, os; see `qc sim` for other arrays).
    Isa,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The systolic-array accelerator (`--emit isa`).
    Accel,
}

#[derive(clap::Args)]
pub struct Args {
    /// The .qnn model.
    pub file: PathBuf,
    /// Print this stage instead of the cost table.
    #[arg(long, value_enum)]
    pub emit: Option<Stage>,
    /// Compile for a target: `accel` prints the accelerator program (as `--emit isa`).
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Write the output to this file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Chunk size for every accumulation longer than it that has no chunk of its own.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk: Option<u64>,
    /// The nn-level pipeline instead of `optimize` (comma-separated passes, e.g. `infer,cse`).
    #[arg(long)]
    pub passes: Option<String>,
    /// Print the IR after every pass (on stderr).
    #[arg(long)]
    pub print_after_all: bool,
    /// Print each pass's time (on stderr).
    #[arg(long)]
    pub time_passes: bool,
}

/// The exit status when the model has errors or a pass fails.
const EXIT_INVALID: i32 = 1;

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(EXIT_INVALID)
}

/// The nn-level pipeline: `optimize` with the chunk option on its `chunking`.
fn nn_pipeline(args: &Args) -> String {
    match (&args.passes, args.chunk) {
        (Some(p), _) => p.clone(),
        (None, Some(n)) => format!("infer,canonicalize,fusion?,chunking{{chunk={n}}}"),
        (None, None) => "optimize".to_string(),
    }
}

fn run_pipeline(module: &mut Module, pipeline: &str, args: &Args) -> Result<(), CliError> {
    let passes = parse_pipeline(pipeline).map_err(CliError::new)?;
    let options = PassOptions { verify_each: true, print_after_all: args.print_after_all, time_passes: args.time_passes };
    let report = PassManager::new(passes, options).run(module).unwrap_or_else(|e| fail(e));
    eprint!("{}", report.render_prints());
    if args.time_passes {
        eprint!("{}", report.render_timings());
    }
    Ok(())
}

fn emit(args: &Args, text: &str) -> Result<(), CliError> {
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display()))),
        None => super::print(text),
    }
}

pub fn run(args: Args) -> Result<(), CliError> {
    let shown = args.file.display().to_string();
    let source = std::fs::read_to_string(&args.file).map_err(|e| CliError::new(format!("cannot read {shown}: {e}")))?;
    let (checked, diagnostics) = qc_lang::check_source(&source);
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", qc_lang::render(&diagnostics, &source, &shown, color));
    let Some(model) = checked else { fail(format!("{shown} has errors")) };
    if args.emit == Some(Stage::Ast) {
        return emit(&args, &model.to_string());
    }
    let mut module = lower_model(&model).unwrap_or_else(|e| fail(format!("{shown}: {e}")));
    if let Err(d) = qc_compiler::verify(&module) {
        fail(format!("the lowered IR is invalid (a compiler bug):\n{}", qc_compiler::diag::render_all(&d, &shown, &source)));
    }
    if args.emit == Some(Stage::Nn) {
        return emit(&args, &print_module(&module));
    }
    run_pipeline(&mut module, &nn_pipeline(&args), &args)?;
    if args.emit == Some(Stage::Opt) {
        return emit(&args, &print_module(&module));
    }
    let accel_program = args.emit == Some(Stage::Isa) || (args.emit.is_none() && args.target == Some(Target::Accel));
    if accel_program {
        return emit(&args, &super::sim::model_isa(&module)?.to_string());
    }
    let table = layer_table(&module);
    run_pipeline(&mut module, "to-kernel", &args)?;
    match args.emit {
        Some(Stage::Kernel) => emit(&args, &print_module(&module)),
        _ => emit(&args, &table),
    }
}
