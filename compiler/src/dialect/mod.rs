//! The op registry: every op kind of every dialect is defined once, as an [`OpDef`] (name,
//! operand and result counts, regions, attributes, verifier). The parser looks ops up here,
//! the printer and verifier read the same definition, and `spec/ir.md` documents it.
//!
//! Dialects: `func` (function return), `nn` (network level), `q` (quantization), `kernel`
//! (explicit loops and rounding steps).

mod check;
pub mod func;
pub mod kernel;
pub mod nn;
pub mod q;

pub use check::{Failure, OpView};

use crate::ir::AttrKind;

/// How many operands or results an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    Between(usize, usize),
    AtLeast(usize),
}

impl Arity {
    pub fn allows(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::Between(lo, hi) => (lo..=hi).contains(&n),
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arity::Exactly(k) => write!(f, "{k}"),
            Arity::Between(lo, hi) => write!(f, "{lo} to {hi}"),
            Arity::AtLeast(k) => write!(f, "at least {k}"),
        }
    }
}

/// An attribute an op accepts.
#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub kind: AttrKind,
    pub required: bool,
}

/// Shorthands for the attribute tables.
pub(crate) const fn req(name: &'static str, kind: AttrKind) -> AttrDef {
    AttrDef { name, kind, required: true }
}
pub(crate) const fn opt(name: &'static str, kind: AttrKind) -> AttrDef {
    AttrDef { name, kind, required: false }
}

/// The optional `round` mode and the `stream` its stochastic modes draw from.
pub(crate) const ROUND_OPT: [AttrDef; 2] = [opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)];

/// The definition of one op kind.
#[derive(Debug)]
pub struct OpDef {
    /// `dialect.op`.
    pub name: &'static str,
    pub summary: &'static str,
    pub operands: Arity,
    pub results: Arity,
    /// The number of regions (each with one block).
    pub regions: usize,
    pub attrs: &'static [AttrDef],
    /// Ends a block and has effects on control flow (never erased as dead).
    pub terminator: bool,
    /// Op-specific rules, run after the generic checks (counts, attribute kinds) pass.
    pub verify: fn(&OpView<'_>) -> Result<(), Failure>,
}

impl OpDef {
    pub fn dialect(&self) -> &'static str {
        self.name.split('.').next().unwrap_or(self.name)
    }
}

/// Every dialect's table.
const DIALECTS: [&[OpDef]; 4] = [func::OPS, nn::OPS, q::OPS, kernel::OPS];

/// Every registered op, dialect by dialect.
pub fn all_ops() -> impl Iterator<Item = &'static OpDef> {
    DIALECTS.into_iter().flatten()
}

/// The op named `name` (`nn.dense`).
pub fn lookup(name: &str) -> Option<&'static OpDef> {
    all_ops().find(|d| d.name == name)
}

/// The registered op name closest to a misspelt one.
pub fn suggest(name: &str) -> Option<&'static str> {
    qc_runtime::numerics::suggest::closest(name, all_ops().map(|d| d.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_are_unique_and_namespaced() {
        let names: Vec<_> = all_ops().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for d in all_ops() {
            assert!(["func", "nn", "q", "kernel"].contains(&d.dialect()), "{}", d.name);
        }
        assert_eq!(suggest("nn.dens"), Some("nn.dense"));
    }
}
