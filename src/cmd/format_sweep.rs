//! The accuracy table of `qc run --format-sweep`: the same network and weights with every
//! weight and every activation set to one format, for a list of formats.
//!
//! Policy (what changes and what stays fp32):
//! - weights (parameters of rank ≥ 2) are in the weight format; biases and other vectors or
//!   scalars (e.g. PACT's bound) stay fp32;
//! - every operation's result (activations, casts, quantizations) is in the activation format,
//!   rounded to nearest, except the model's outputs (the logits) and dequantizations, which are
//!   fp32;
//! - every dot product multiplies exactly and accumulates in fp32 (nearest, no chunks);
//! - the input data stays fp32 as given;
//! - column "first/last fp32" also keeps the weights of the first and the last dense or
//!   convolution layer in fp32.

use super::run::{correct, predict, prepare, Args};
use super::CliError;
use qc_compiler::backend::Backend;
use qc_lang::check::{Arith, CheckedModule, Op, Rounded, ValueRef};
use qc_runtime::data::Dataset;
use qc_runtime::io::WeightFile;
use qc_runtime::numerics::{Format, Rounding};

/// The rows: a label, the weight format and the activation format.
pub const FORMATS: [(&str, &str, &str); 11] = [
    ("fp32", "fp32", "fp32"),
    ("bf16", "bf16", "bf16"),
    ("fp16", "fp16", "fp16"),
    ("e4m3", "e4m3", "e4m3"),
    ("e5m2", "e5m2", "e5m2"),
    ("mxfp8", "mxfp8_e4m3", "mxfp8_e4m3"),
    ("mxfp6", "mxfp6_e2m3", "mxfp6_e2m3"),
    ("mxfp4", "mxfp4", "mxfp4"),
    ("int8", "int<8,axis=0>", "int<8>"),
    ("int4", "int<4,axis=0>", "int<4>"),
    ("ternary", "ternary<axis=0>", "ternary"),
];

fn parse(text: &str) -> Format {
    Format::parse(text).expect("the sweep's formats are valid")
}

/// `model` with weights in `weights`, activations in `activations` and exact fp32 dot products;
/// with `keep_ends`, the first and last contraction's weights stay fp32.
pub fn with_formats(
    model: &CheckedModule,
    weights: Format,
    activations: Format,
    keep_ends: bool,
) -> CheckedModule {
    let mut m = model.clone();
    let fp32 = parse("fp32");
    let contractions: Vec<usize> = m
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Dense | Op::Matmul | Op::Conv2d { .. }))
        .filter_map(|n| match n.inputs.get(1) {
            Some(ValueRef::Param(p)) => Some(*p),
            _ => None,
        })
        .collect();
    let ends = [contractions.first().copied(), contractions.last().copied()];
    for (i, p) in m.params.iter_mut().enumerate() {
        let is_weight = p.tensor.shape.0.len() >= 2;
        let kept = keep_ends && ends.contains(&Some(i));
        p.tensor.format = if is_weight && !kept { weights } else { fp32 };
        p.tensor.rounding = Rounding::Nearest;
    }
    let outputs: Vec<usize> = m
        .outputs
        .iter()
        .filter_map(|(_, v)| {
            if let ValueRef::Node(n) = v {
                Some(*n)
            } else {
                None
            }
        })
        .collect();
    let exact = Arith {
        mul: None,
        acc: Rounded {
            format: fp32,
            rounding: Rounding::Nearest,
        },
        chunk: None,
        chunk_acc: None,
        fma: false,
    };
    for (i, node) in m.nodes.iter_mut().enumerate() {
        node.format = if outputs.contains(&i) || node.op == Op::Dequantize {
            fp32
        } else {
            activations
        };
        node.rounding = Rounding::Nearest;
        if node.arith.is_some() {
            node.arith = Some(exact);
        }
    }
    m
}

/// The table, one row per format: accuracy on `data` with all layers in the format, and with
/// the first and last layers' weights in fp32.
pub fn accuracy_table(
    model: &CheckedModule,
    weights: Option<&WeightFile>,
    data: &Dataset,
    backend: &dyn Backend,
    args: &Args,
) -> Result<String, CliError> {
    let mut out = format!(
        "{:<9} {:<16} {:<12} {:>11} {:>16}\n",
        "format", "weights", "activations", "all layers", "first/last fp32"
    );
    for (label, w, a) in FORMATS {
        let mut cells = Vec::new();
        for keep_ends in [false, true] {
            let variant = with_formats(model, parse(w), parse(a), keep_ends);
            let program = prepare(&variant, weights, args.chunk, args.seed)
                .map_err(|e| CliError::new(format!("{label}: {e}")))?;
            let predictions = predict(&program, backend, data, args.batch)
                .map_err(|e| CliError::new(format!("{label}: {e}")))?;
            cells.push(format!(
                "{:.2}%",
                100.0 * correct(data, &predictions) as f64 / data.len().max(1) as f64
            ));
        }
        out += &format!(
            "{label:<9} {w:<16} {a:<12} {:>11} {:>16}\n",
            cells[0], cells[1]
        );
    }
    Ok(out)
}
