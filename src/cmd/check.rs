//! `qc check model.qnn`: parse and check a model. Prints a one-line summary (exit 0) when it
//! is fine, the diagnostics on stderr (exit 1) when it is not; an unreadable file is exit 2.
//! Warnings are printed but do not fail the check. `--message-format json` prints one JSON
//! object per diagnostic on stdout instead, for editors and scripts.

use super::CliError;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum MessageFormat {
    /// Source excerpts with labels (coloured on a terminal unless NO_COLOR is set).
    Human,
    /// One JSON object per line: code, severity, message, spans with line/column, hint.
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// The .qnn file to check.
    pub file: PathBuf,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub message_format: MessageFormat,
}

/// The exit status when the model has errors.
const EXIT_INVALID_MODEL: i32 = 1;

pub fn run(args: Args) -> Result<(), CliError> {
    let shown = args.file.display().to_string();
    let source = std::fs::read_to_string(&args.file).map_err(|e| CliError::new(format!("cannot read {shown}: {e}")))?;
    let (checked, diagnostics) = qc_lang::check_source(&source);
    match args.message_format {
        MessageFormat::Json => super::print(&qc_lang::render_json(&diagnostics, &source, &shown))?,
        MessageFormat::Human => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            eprint!("{}", qc_lang::render(&diagnostics, &source, &shown, color));
        }
    }
    match checked {
        Some(model) => {
            if let MessageFormat::Human = args.message_format {
                let warnings = diagnostics.len();
                let note = match warnings {
                    0 => String::new(),
                    1 => " (1 warning)".to_string(),
                    n => format!(" ({n} warnings)"),
                };
                super::print(&format!("ok: {}{note}\n", model.summary()))?;
            }
            Ok(())
        }
        None => {
            if let MessageFormat::Human = args.message_format {
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                eprintln!("error: {shown} has {errors} error{}", if errors == 1 { "" } else { "s" });
            }
            std::process::exit(EXIT_INVALID_MODEL)
        }
    }
}
