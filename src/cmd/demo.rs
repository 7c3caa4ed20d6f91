//! `qc demo`: the main job on built-in material — a scripted tour of formats and rounding
//! (`examples/demo.repl`, run through the REPL) and a check of the MLP example.

use super::repl::run_script;
use super::CliError;

#[derive(clap::Args)]
pub struct Args {}

const SCRIPT: &str = include_str!("../../examples/demo.repl");
const MLP: &str = include_str!("../../examples/mlp.qnn");

pub fn run(_args: Args) -> Result<(), CliError> {
    run_script(SCRIPT.as_bytes())?;
    super::print("\n# The MLP for the built-in 8x8 digits (examples/mlp.qnn), checked:\n")?;
    let (checked, diagnostics) = qc_lang::check_source(MLP);
    match checked {
        Some(model) => super::print(&format!("{}\n", model.summary())),
        None => Err(CliError::new(format!(
            "the built-in MLP example does not check: {}",
            qc_lang::render(&diagnostics, MLP, "examples/mlp.qnn", false)
        ))),
    }
}
