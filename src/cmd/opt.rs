//! `qc opt FILE.qir --passes a,b,c`: parse textual IR, verify it, run the named passes (or
//! pipelines) and print the result, as mlir-opt does. Malformed or invalid IR prints
//! diagnostics with source excerpts and exits 1, as does a failing pass; an unreadable file
//! or a bad pipeline exits 2.

use super::CliError;
use qc_compiler::diag::render_all;
use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
use qc_compiler::{parse_module, print_module, verify};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The .qir file.
    pub file: PathBuf,
    /// Comma-separated passes or pipelines, with options in braces: `infer{batch=1},cse`.
    #[arg(long, default_value = "")]
    pub passes: String,
    /// Write the output to this file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print the IR after every pass (on stderr).
    #[arg(long)]
    pub print_after_all: bool,
    /// Print each pass's time (on stderr).
    #[arg(long)]
    pub time_passes: bool,
}

/// The exit status for invalid IR or a failing pass.
const EXIT_INVALID: i32 = 1;

pub fn run(args: Args) -> Result<(), CliError> {
    let shown = args.file.display().to_string();
    let source = std::fs::read_to_string(&args.file).map_err(|e| CliError::new(format!("cannot read {shown}: {e}")))?;
    let passes = if args.passes.trim().is_empty() { Vec::new() } else { parse_pipeline(&args.passes).map_err(CliError::new)? };
    let mut module = match parse_module(&source) {
        Ok(m) => m,
        Err(d) => {
            eprint!("{}", d.render(&shown, &source));
            std::process::exit(EXIT_INVALID)
        }
    };
    if let Err(diags) = verify(&module) {
        eprint!("{}", render_all(&diags, &shown, &source));
        std::process::exit(EXIT_INVALID)
    }
    let options = PassOptions { verify_each: true, print_after_all: args.print_after_all, time_passes: args.time_passes };
    match PassManager::new(passes, options).run(&mut module) {
        Ok(report) => {
            eprint!("{}", report.render_prints());
            if args.time_passes {
                eprint!("{}", report.render_timings());
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(EXIT_INVALID)
        }
    }
    let text = print_module(&module);
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display()))),
        None => super::print(&text),
    }
}
