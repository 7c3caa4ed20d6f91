//! The per-layer table of `qc compile`, read from an `nn`-level module (after `optimize`):
//! for each op its output, the formats of its weight, input and accumulator, its MACs and
//! BitOps per batch element (`?` counts as 1; BitOps = MACs × bits(a) × bits(b) of the two
//! operand formats), and the bytes of the parameters it is the first to use (elements in
//! their format plus their scales: per-tensor/per-channel fp32, per-block e8m0/e4m3).
//! Totals give the model size by format against fp32.

use qc_lang::check::with_thousands;
use crate::dialect::q::scale_type;
use crate::ir::{Attr, Dim, Module, OpId, TensorType, ValueDef, ValueId};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

/// One row of the table.
struct Row {
    layer: String,
    op: String,
    output: String,
    weight: String,
    input: String,
    acc: String,
    macs: u64,
    bitops: u64,
    param_bytes: f64,
}

fn dims_text(t: &TensorType) -> String {
    let d: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
    if d.is_empty() { "scalar".into() } else { d.join("x") }
}

fn elements(t: &TensorType) -> u64 {
    t.dims.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).product()
}

/// Storage of a parameter in bits: elements in the format, plus its scales.
fn storage_bits(t: &TensorType) -> f64 {
    let scales = match scale_type(t.format, &t.dims) {
        Ok(Some(s)) => elements(&s) as f64 * s.format.element_bits() as f64,
        _ => 0.0,
    };
    elements(t) as f64 * t.format.element_bits() as f64 + scales
}

fn bytes_text(bytes: f64) -> String {
    if bytes >= 1024.0 { format!("{:.1} KiB", bytes / 1024.0) } else { format!("{bytes:.0} B") }
}

/// The parameter (an `nn.param`, or a constant that was one) defining `v`, if any.
fn parameter(module: &Module, v: ValueId) -> Option<OpId> {
    let ValueDef::Result { op, .. } = module.values[v].def else { return None };
    let o = &module.ops[op];
    (o.name() == "nn.param" || (o.name() == "nn.constant" && o.attrs.contains_key("name"))).then_some(op)
}

/// The number of terms each output of a contraction sums.
fn terms(module: &Module, op: OpId) -> u64 {
    let o = &module.ops[op];
    let t = |i: usize| module.ty(o.operands[i]).as_tensor().cloned();
    let fixed = |d: &Dim| if let Dim::Fixed(n) = d { *n } else { 1 };
    match o.name() {
        "nn.dense" | "nn.fused_dense" | "nn.matmul" => t(0).and_then(|x| x.dims.last().map(fixed)).unwrap_or(0),
        "nn.conv2d" | "nn.fused_conv2d" => t(1).map(|w| w.dims[1..].iter().map(fixed).product()).unwrap_or(0),
        _ => 0,
    }
}

/// The table for the first function of `module`.
pub fn layer_table(module: &Module) -> String {
    let Some(f) = module.funcs.first() else { return String::new() };
    let Some(entry) = module.entry_block(f.body) else { return String::new() };
    let mut rows = Vec::new();
    let mut counted = HashSet::new();
    let mut by_format: BTreeMap<String, f64> = BTreeMap::new();
    let mut param_elements = 0u64;
    for &op in &module.blocks[entry].ops {
        let o = &module.ops[op];
        if matches!(o.name(), "nn.param" | "nn.constant" | "func.return") || o.results.is_empty() {
            continue;
        }
        let Some(out) = module.ty(o.results[0]).as_tensor() else { continue };
        let operand = |i: usize| o.operands.get(i).and_then(|v| module.ty(*v).as_tensor());
        let mut param_bytes = 0.0;
        for &v in &o.operands {
            if let Some(p) = parameter(module, v) {
                if counted.insert(p) {
                    let t = module.ty(v).as_tensor().expect("parameters are tensors");
                    let bits = storage_bits(t);
                    param_bytes += bits / 8.0;
                    *by_format.entry(t.format.to_string()).or_default() += bits / 8.0;
                    param_elements += elements(t);
                }
            }
        }
        let contraction = matches!(o.name(), "nn.dense" | "nn.matmul" | "nn.conv2d" | "nn.fused_dense" | "nn.fused_conv2d");
        let macs = if contraction { elements(out) * terms(module, op) } else { 0 };
        let bits = |i: usize| operand(i).map_or(0, |t| t.format.element_bits() as u64);
        let acc = match o.attrs.get("arith") {
            Some(Attr::Arith(a)) => match a.chunk {
                Some(c) => format!("{}/{} → {}", c.format, c.size, a.acc.format),
                None => a.acc.format.to_string(),
            },
            _ => "-".into(),
        };
        let weight = match operand(1) {
            Some(t) if contraction && parameter(module, o.operands[1]).is_some() => format!("{} {}", dims_text(t), t.format),
            Some(t) if contraction => format!("{} {} (act)", dims_text(t), t.format),
            _ => "-".into(),
        };
        rows.push(Row {
            layer: module.values[o.results[0]].name.clone().map_or_else(|| "-".into(), |n| format!("%{n}")),
            op: o.name().trim_start_matches("nn.").to_string(),
            output: format!("{} {}", dims_text(out), out.format),
            weight,
            input: operand(0).map_or("-".into(), |t| t.format.to_string()),
            acc,
            macs,
            bitops: macs * bits(0) * bits(1),
            param_bytes,
        });
    }
    render(&f.name, &rows, &by_format, param_elements)
}

fn render(name: &str, rows: &[Row], by_format: &BTreeMap<String, f64>, param_elements: u64) -> String {
    let header = ["layer", "op", "output", "weight", "input", "accumulator", "MACs", "BitOps", "params"];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let count = |n: u64| if n == 0 { "-".to_string() } else { with_thousands(n) };
            let bytes = if r.param_bytes == 0.0 { "-".to_string() } else { bytes_text(r.param_bytes) };
            [r.layer.clone(), r.op.clone(), r.output.clone(), r.weight.clone(), r.input.clone(), r.acc.clone(), count(r.macs), count(r.bitops), bytes]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!("model {name} (per batch element; `?` sizes count as 1)\n");
    let line = |out: &mut String, row: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w - c.chars().count());
            if i >= 6 { s.push_str(&pad); s.push_str(c) } else { s.push_str(c); s.push_str(&pad) }
            s.push_str("  ");
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(&mut out, &header.map(String::from));
    for row in &cells {
        line(&mut out, row);
    }
    let macs: u64 = rows.iter().map(|r| r.macs).sum();
    let bitops: u64 = rows.iter().map(|r| r.bitops).sum();
    let total: f64 = by_format.values().sum();
    let _ = writeln!(out, "\ntotal: {} MACs, {} BitOps", with_thousands(macs), with_thousands(bitops));
    let _ = writeln!(out, "parameters: {} elements", with_thousands(param_elements));
    for (format, bytes) in by_format {
        let _ = writeln!(out, "  {format:<24} {:>12}", bytes_text(*bytes));
    }
    let fp32 = param_elements as f64 * 4.0;
    let ratio = if total > 0.0 { fp32 / total } else { 0.0 };
    let _ = writeln!(out, "model size: {} against {} in fp32 ({ratio:.2}x smaller)", bytes_text(total), bytes_text(fp32));
    out
}
