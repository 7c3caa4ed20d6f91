//! `qc quantize`: rounds a float32 `.npy` array (`--in`/`--out`) or values given on the
//! command line (a table of results, encodings and errors) to a format.

use super::CliError;
use crate::report::{numbers, values};
use qc_runtime::io::npy;
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// The format, e.g. `e4m3`, `fp<6,5,nosub>`, `int<8,axis=0>`, `mxfp4` (see `qc formats`).
    /// Required; checked after parsing so that an option misplaced after the values gets a
    /// clear error.
    #[arg(long)]
    format: Option<String>,
    /// The rounding mode: nearest, nearest-away, toward-zero, up, down, stochastic,
    /// stochastic:R, stochastic-unbiased:R.
    #[arg(long, default_value = "nearest")]
    rounding: String,
    /// The seed of the random bits of stochastic rounding (stream 0).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A float32 .npy file (1-D or 2-D) to quantize; block formats block along the last axis.
    #[arg(long = "in", value_name = "X.npy", requires = "output", conflicts_with = "values")]
    input: Option<PathBuf>,
    /// Where to write the rounded values (float32 .npy of the same shape).
    #[arg(long = "out", value_name = "Y.npy", requires = "input")]
    output: Option<PathBuf>,
    /// Values to quantize, e.g. `0.1 -3e-5 -inf nan`, after all options.
    #[arg(required_unless_present = "input", allow_hyphen_values = true, value_name = "VALUE")]
    values: Vec<String>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    // Values may start with `-`, so everything after the first value is taken as a value.
    if let Some(option) = args.values.iter().find(|v| v.starts_with("--")) {
        return Err(CliError::new(format!("options go before the values: move `{option}` before them")));
    }
    let Some(format) = &args.format else {
        return Err(CliError::new("`--format FMT` is required (e.g. `--format e4m3`; `qc formats` lists them)"));
    };
    let format = Format::parse(format)?;
    let rounding = Rounding::parse(&args.rounding).map_err(CliError::new)?;
    match (&args.input, &args.output) {
        (Some(input), Some(output)) => quantize_file(&format, rounding, args.seed, input, output),
        _ => {
            let values = args.values.iter().map(|v| numbers::parse_value(v)).collect::<Result<Vec<_>, _>>()?;
            super::print(&values::value_table(&format, &values, rounding, args.seed)?)
        }
    }
}

fn quantize_file(format: &Format, rounding: Rounding, seed: u64, input: &Path, output: &Path) -> Result<(), CliError> {
    let array = npy::read_f32_file(input).map_err(|e| CliError::new(format!("cannot read `{}`: {e}", input.display())))?;
    let mut out = vec![0f32; array.data.len()];
    format.quantize(&array.data, &array.shape, rounding, &RandomStream::new(seed, 0), &mut out)?;
    npy::write_f32_file(output, &array.shape, &out)
        .map_err(|e| CliError::new(format!("cannot write `{}`: {e}", output.display())))?;
    super::print(&format!(
        "{} values of shape {} quantized to {format} (rounding {rounding}) into {}\n",
        out.len(),
        npy::shape_text(&array.shape),
        output.display()
    ))
}
