//! One module per subcommand, each with its clap `Args` and a `run` function, and the error
//! type they share.

pub mod check;
pub mod compile;
pub mod demo;
pub mod format_sweep;
pub mod formats;
pub mod opt;
pub mod quantize;
pub mod repl;
pub mod run;
pub mod sim;
pub mod train;

use std::fmt;
use std::io::Write;

/// Writes `text` to stdout; a closed or failing stdout is an error, not a panic.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(format!("cannot write the output: {e}")))
}

/// A user-facing failure: one line, printed as `error: ...` with exit status 2.
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    pub fn new(message: impl fmt::Display) -> Self {
        CliError(message.to_string())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<qc_runtime::numerics::FormatError> for CliError {
    fn from(e: qc_runtime::numerics::FormatError) -> Self {
        CliError::new(e)
    }
}

impl From<qc_runtime::numerics::QuantizeError> for CliError {
    fn from(e: qc_runtime::numerics::QuantizeError) -> Self {
        CliError::new(e)
    }
}
