//! `qc demo`: the main job on built-in material — a scripted tour of formats and rounding
//! (`examples/demo.repl`, run through the REPL), then the MLP example for the built-in digits
//! checked, lowered, optimised (fusion, chunking) and costed per layer, and finally trained on
//! the digits with its training section's numerics on the JIT (`qc train examples/mlp.qnn`),
//! reporting its test accuracy per epoch.

use super::repl::run_script;
use super::CliError;
use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
use qc_compiler::{lower::lower_model, report::layer_table};

#[derive(clap::Args)]
pub struct Args {}

const SCRIPT: &str = include_str!("../../examples/demo.repl");
const MLP: &str = include_str!("../../examples/mlp.qnn");

pub fn run(_args: Args) -> Result<(), CliError> {
    run_script(SCRIPT.as_bytes())?;
    super::print("\n# The MLP for the built-in 8x8 digits (examples/mlp.qnn), checked:\n")?;
    let (checked, diagnostics) = qc_lang::check_source(MLP);
    let Some(model) = checked else {
        return Err(CliError::new(format!(
            "the built-in MLP example does not check: {}",
            qc_lang::render(&diagnostics, MLP, "examples/mlp.qnn", false)
        )));
    };
    super::print(&format!("{}\n", model.summary()))?;
    super::print("\n# ... and compiled (`qc compile examples/mlp.qnn`): the cost of each layer in its formats\n")?;
    let bug = |e: String| CliError::new(format!("compiling the built-in MLP failed (a bug): {e}"));
    let mut module = lower_model(&model).map_err(|e| bug(e.to_string()))?;
    let passes = parse_pipeline("optimize").map_err(bug)?;
    PassManager::new(passes, PassOptions::default()).run(&mut module).map_err(|e| bug(e.to_string()))?;
    super::print(&layer_table(&module))?;
    super::print("\n# ... and trained on the built-in digits with its `train` section (`qc train examples/mlp.qnn --backend jit`)\n")?;
    let directory = tempfile_dir()?;
    let file = directory.join("mlp.qnn");
    std::fs::write(&file, MLP).map_err(|e| CliError::new(format!("cannot write {}: {e}", file.display())))?;
    let result = super::train::run(super::train::Args {
        file,
        data: "digits".to_string(),
        epochs: None,
        batch: None,
        lr: None,
        seed: None,
        backend: "jit".to_string(),
        weights: None,
        save: None,
        log: None,
        quiet: false,
    });
    let _ = std::fs::remove_dir_all(&directory);
    result
}

/// A fresh directory for the demo's copy of the model (the binary carries the example, so the
/// demo runs from any working directory).
fn tempfile_dir() -> Result<std::path::PathBuf, CliError> {
    let dir = std::env::temp_dir().join(format!("qc-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}
