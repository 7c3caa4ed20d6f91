//! Text output shared by the subcommands and the REPL: aligned tables, number text, and the
//! per-value quantization table of `qc quantize VALUE...` and the REPL's `q`.

pub mod numbers;
pub mod table;
pub mod values;
