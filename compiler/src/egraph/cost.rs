//! The hardware cost model extraction minimises (spec/ir.md, "Fusion", "Cost model").
//!
//! Each op costs the bytes it moves — every operand read once and its result written once,
//! `elements × bits per element / 8`, block scales included (`mxfp4` is 4.25 bits) — plus its
//! BitOps (`bits(a) × bits(b)` per multiply-accumulate of a contraction), its rounded
//! elements, and a fixed charge per op (a kernel launch, a pass over memory). The four add up
//! with the weights below into one score; a dynamic dimension (`?`) counts as 1, which is
//! the same for every alternative of one value, so comparisons stay meaningful.

use super::lang::{FusionGraph, Head, Node};
use crate::ir::{Dim, TensorType, Type};
use egg::{CostFunction, Id};
use qc_runtime::numerics::represents_all_of;

/// Score units per BitOp: a byte moved costs as much as 64 BitOps (one 8×8-bit MAC).
pub const BITOP_WEIGHT: f64 = 1.0 / 64.0;
/// Score units per op: a pass over memory costs as much as moving 64 bytes.
pub const OP_WEIGHT: f64 = 64.0;
/// Score units per rounded element (the rounding logic after the arithmetic).
pub const ROUNDING_WEIGHT: f64 = 0.25;

/// What one op, or a whole extracted expression, costs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub bytes: f64,
    pub bitops: f64,
    pub ops: f64,
    pub roundings: f64,
}

impl Cost {
    /// The weighted sum that extraction minimises.
    pub fn score(&self) -> f64 {
        self.bytes + self.bitops * BITOP_WEIGHT + self.ops * OP_WEIGHT + self.roundings * ROUNDING_WEIGHT
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost { bytes: self.bytes + o.bytes, bitops: self.bitops + o.bitops, ops: self.ops + o.ops, roundings: self.roundings + o.roundings }
    }
}

impl PartialOrd for Cost {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.score().partial_cmp(&other.score())
    }
}

fn elements(t: &TensorType) -> f64 {
    t.dims.iter().map(|d| match d { Dim::Fixed(n) => *n as f64, Dim::Dynamic => 1.0 }).product()
}

fn bytes(ty: &Type) -> f64 {
    match ty {
        Type::Tensor(t) => elements(t) * t.format.bits_per_element() / 8.0,
        _ => 0.0,
    }
}

fn dim(d: Option<&Dim>) -> f64 {
    match d {
        Some(Dim::Fixed(n)) => *n as f64,
        _ => 1.0,
    }
}

/// The cost of one op `name` with operand types `operands` and result type `result`.
pub fn op_cost(name: &str, operands: &[&Type], result: &Type) -> Cost {
    let moved = operands.iter().map(|t| bytes(t)).sum::<f64>() + bytes(result);
    let out_elements = result.as_tensor().map_or(0.0, elements);
    let (x, w) = (operands.first().and_then(|t| t.as_tensor()), operands.get(1).and_then(|t| t.as_tensor()));
    let macs_per_output = match (name, x, w) {
        ("nn.dense" | "nn.fused_dense" | "nn.matmul", Some(x), _) => dim(x.dims.last()),
        ("nn.conv2d" | "nn.fused_conv2d", _, Some(w)) => w.dims[1..].iter().map(|d| dim(Some(d))).product(),
        _ => 0.0,
    };
    let bitops = match (x, w) {
        (Some(x), Some(w)) => out_elements * macs_per_output * (x.format.element_bits() * w.format.element_bits()) as f64,
        _ => 0.0,
    };
    let moves_only = matches!(name, "nn.param" | "nn.constant" | "nn.reshape" | "nn.flatten" | "nn.transpose" | "nn.concat" | "nn.maxpool2d");
    let exact_conversion = name == "q.dequantize"
        && matches!((x, result.as_tensor()), (Some(x), Some(r)) if represents_all_of(&r.format, &x.format) == Some(true));
    let roundings = if moves_only || exact_conversion { 0.0 } else { out_elements };
    Cost { bytes: moved, bitops, ops: 1.0, roundings }
}

/// The cost function extraction uses: an op's own cost plus its operands' (a leaf is free).
///
/// Classes in `computed` are free as operands: they are roots, written out anyway for their
/// other users, so reusing one costs nothing more (tree extraction would otherwise count a
/// shared value once per use and prefer recomputing a contraction).
pub struct HardwareCost<'a> {
    pub egraph: &'a FusionGraph,
    pub computed: std::collections::HashSet<Id>,
}

impl CostFunction<Node> for HardwareCost<'_> {
    type Cost = Cost;

    fn cost<C>(&mut self, enode: &Node, mut costs: C) -> Cost
    where
        C: FnMut(Id) -> Cost,
    {
        let Head::Op { name, sig } = enode.head else { return Cost::default() };
        let operands: Vec<&Type> = enode.children.iter().map(|c| &self.egraph[*c].data).collect();
        let own = op_cost(name, &operands, &self.egraph.analysis.sig(sig).ty);
        enode.children.iter().fold(own, |acc, c| {
            if self.computed.contains(&self.egraph.find(*c)) { acc } else { acc + costs(*c) }
        })
    }
}
