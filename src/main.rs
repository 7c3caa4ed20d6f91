//! The `qc` command line: parses arguments with clap and hands each subcommand to its module
//! in `cmd`. Adding a subcommand is adding a variant to [`Command`] (its clap arguments) and a
//! module in `cmd` with `run`.

mod cmd;
mod report;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// qc: a compiler and runtime for quantized neural networks.
#[derive(Parser)]
#[command(name = "qc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job on built-in material: a tour of formats, rounding and accumulation.
    Demo(cmd::demo::Args),
    /// Round values or a float32 .npy array to a number format.
    Quantize(cmd::quantize::Args),
    /// List the named number formats and the parametric families.
    Formats(cmd::formats::Args),
    /// Experiment with formats interactively (or run a script from stdin).
    Repl(cmd::repl::Args),
    /// Check a .qnn model: exit 0 with a summary, 1 with diagnostics, 2 if unreadable.
    Check(cmd::check::Args),
    /// Compile a .qnn model: per-layer cost table, or one IR stage with --emit.
    Compile(cmd::compile::Args),
    /// Run passes on a textual IR (.qir) file, as mlir-opt does.
    Opt(cmd::opt::Args),
    /// Run a .qnn model on data, an .npy input or random inputs (backend: interp or jit).
    Run(cmd::run::Args),
    /// Simulate a model (or SCALE-Sim layers) on the accelerator: cycles, traffic, energy.
    Sim(cmd::sim::Args),
    /// Train a .qnn model with its `train` section (loss, optimizer, training formats).
    Train(cmd::train::Args),
}

impl Command {
    fn run(self) -> Result<(), cmd::CliError> {
        match self {
            Command::Demo(args) => cmd::demo::run(args),
            Command::Quantize(args) => cmd::quantize::run(args),
            Command::Formats(args) => cmd::formats::run(args),
            Command::Repl(args) => cmd::repl::run(args),
            Command::Check(args) => cmd::check::run(args),
            Command::Compile(args) => cmd::compile::run(args),
            Command::Opt(args) => cmd::opt::run(args),
            Command::Run(args) => cmd::run::run(args),
            Command::Sim(args) => cmd::sim::run(args),
            Command::Train(args) => cmd::train::run(args),
        }
    }
}

/// The exit status for bad input (as clap's usage errors).
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
