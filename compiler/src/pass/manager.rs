//! The pass manager: runs passes in order, verifies after each one when asked (always in
//! tests and debug builds by default), and records the IR after each pass
//! (`--print-after-all`) and each pass's wall time (`--time-passes`).

use super::Pass;
use crate::diag::Diagnostic;
use crate::ir::Module;
use crate::text::print_module;
use crate::verify::verify;
use std::time::{Duration, Instant};

/// Library options behind the command-line flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassOptions {
    /// Verify the module after every pass.
    pub verify_each: bool,
    /// Record the printed module after every pass.
    pub print_after_all: bool,
    /// Record each pass's wall time.
    pub time_passes: bool,
}

// Not derivable in debug builds, where the verifier runs after each pass by default.
#[allow(clippy::derivable_impls)]
impl Default for PassOptions {
    fn default() -> Self {
        PassOptions { verify_each: cfg!(debug_assertions), print_after_all: false, time_passes: false }
    }
}

/// What a run recorded.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// `(pass, module text after it)` with `print_after_all`.
    pub printed: Vec<(&'static str, String)>,
    /// `(pass, wall time)` with `time_passes`.
    pub timings: Vec<(&'static str, Duration)>,
}

impl RunReport {
    /// The `--print-after-all` text: each module under a `// ----- IR after <pass> -----` line.
    pub fn render_prints(&self) -> String {
        self.printed.iter().map(|(p, ir)| format!("// ----- IR after {p} -----\n{ir}")).collect()
    }

    /// The `--time-passes` table.
    pub fn render_timings(&self) -> String {
        let total: Duration = self.timings.iter().map(|t| t.1).sum();
        let mut out = String::from("pass                  time (ms)\n");
        for (p, d) in &self.timings {
            out.push_str(&format!("{p:<20} {:>10.3}\n", d.as_secs_f64() * 1e3));
        }
        out.push_str(&format!("{:<20} {:>10.3}\n", "total", total.as_secs_f64() * 1e3));
        out
    }
}

/// Why a pipeline stopped.
#[derive(Clone, Debug)]
pub enum PipelineError {
    /// The pass itself failed.
    Pass { pass: &'static str, message: String },
    /// The module was invalid after the pass (a bug in the pass).
    Verify { pass: &'static str, diagnostics: Vec<Diagnostic> },
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipelineError::Pass { pass, message } => write!(f, "pass `{pass}` failed: {message}"),
            PipelineError::Verify { pass, diagnostics } => {
                write!(f, "the IR is invalid after pass `{pass}`:")?;
                for d in diagnostics {
                    write!(f, "\n  {d}")?;
                }
                Ok(())
            }
        }
    }
}

/// A pipeline of passes and how to run it.
pub struct PassManager {
    pub passes: Vec<Box<dyn Pass>>,
    pub options: PassOptions,
}

impl PassManager {
    pub fn new(passes: Vec<Box<dyn Pass>>, options: PassOptions) -> Self {
        PassManager { passes, options }
    }

    pub fn run(&self, module: &mut Module) -> Result<RunReport, PipelineError> {
        let mut report = RunReport::default();
        for pass in &self.passes {
            let start = Instant::now();
            pass.run(module).map_err(|e| PipelineError::Pass { pass: pass.name(), message: e.message })?;
            if self.options.time_passes {
                report.timings.push((pass.name(), start.elapsed()));
            }
            if self.options.verify_each {
                verify(module).map_err(|diagnostics| PipelineError::Verify { pass: pass.name(), diagnostics })?;
            }
            if self.options.print_after_all {
                report.printed.push((pass.name(), print_module(module)));
            }
        }
        Ok(report)
    }
}
