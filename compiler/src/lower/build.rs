//! A builder that creates registered ops with one result (or none) at an insertion point:
//! the end of a block, or just before an anchor op. Op names are looked up in the dialect
//! registry; using an unregistered name is a bug in the compiler, not a user error.

use crate::dialect::{lookup, OpDef};
use crate::ir::{Attr, BlockId, Module, OpId, RegionId, Span, Type, ValueId};
use std::collections::BTreeMap;

/// Attributes by name.
pub type Attrs = BTreeMap<String, Attr>;

/// `attrs([("round", Attr::Rounding(r))])`.
pub fn attrs<'a>(pairs: impl IntoIterator<Item = (&'a str, Attr)>) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Where new ops go.
#[derive(Clone, Copy, Debug)]
pub enum At {
    End(BlockId),
    Before(OpId),
}

pub struct Builder<'m> {
    pub module: &'m mut Module,
    pub at: At,
    /// The span given to every new op (the source construct it implements).
    pub span: Option<Span>,
}

pub(crate) fn def(name: &str) -> &'static OpDef {
    lookup(name).unwrap_or_else(|| panic!("`{name}` is not a registered op"))
}

impl<'m> Builder<'m> {
    pub fn new(module: &'m mut Module, at: At, span: Option<Span>) -> Self {
        Builder { module, at, span }
    }

    fn place(&mut self, op: OpId) {
        match self.at {
            At::End(b) => self.module.append_op(b, op),
            At::Before(anchor) => self.module.insert_before(anchor, op),
        }
    }

    /// A new op with one result of type `ty`; returns the result.
    pub fn op(&mut self, name: &str, operands: Vec<ValueId>, ty: Type, attrs: Attrs) -> ValueId {
        self.op_with_regions(name, operands, ty, attrs, Vec::new())
    }

    pub fn op_with_regions(&mut self, name: &str, operands: Vec<ValueId>, ty: Type, attrs: Attrs, regions: Vec<RegionId>) -> ValueId {
        let op = self.module.new_op(def(name), operands, vec![ty], attrs, regions, self.span.clone());
        self.place(op);
        self.module.result(op, 0)
    }

    /// A new op without results (a terminator).
    pub fn terminator(&mut self, name: &str, operands: Vec<ValueId>) {
        let op = self.module.new_op(def(name), operands, Vec::new(), Attrs::new(), Vec::new(), self.span.clone());
        self.place(op);
    }

    /// Names a value (the printer keeps it unless it is taken).
    pub fn name(&mut self, v: ValueId, name: &str) {
        self.module.values[v].name = Some(name.to_string());
    }
}
