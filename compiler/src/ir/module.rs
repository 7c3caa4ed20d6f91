//! The IR's structure: a [`Module`] of functions whose bodies are regions of blocks of ops,
//! all stored in arenas and linked by typed ids; plus the builder methods passes use to
//! create, insert, erase and rewire ops.
//!
//! Invariants (checked by `verify`): every op is registered (it holds its `&'static OpDef`),
//! every value is defined once, and a use is dominated by its definition.

use super::attr::Attr;
use super::types::Type;
use crate::arena::{Arena, Id};
use crate::dialect::OpDef;
use std::collections::BTreeMap;
use std::ops::Range;

/// A byte range in the source text an entity was parsed from.
pub type Span = Range<usize>;

pub type ValueId = Id<Value>;
pub type OpId = Id<Op>;
pub type BlockId = Id<Block>;
pub type RegionId = Id<Region>;

/// Where an SSA value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    Result { op: OpId, index: usize },
    Arg { block: BlockId, index: usize },
}

/// An SSA value.
#[derive(Clone, Debug)]
pub struct Value {
    pub ty: Type,
    pub def: ValueDef,
    /// The name it was written with (`%x`); the printer numbers unnamed values.
    pub name: Option<String>,
}

/// An operation: a registered op kind applied to operands, producing results.
#[derive(Clone, Debug)]
pub struct Op {
    pub def: &'static OpDef,
    pub operands: Vec<ValueId>,
    pub results: Vec<ValueId>,
    /// Sorted by name: the canonical order the printer uses.
    pub attrs: BTreeMap<String, Attr>,
    pub regions: Vec<RegionId>,
    /// The block holding the op; `None` once erased or before insertion.
    pub parent: Option<BlockId>,
    pub span: Option<Span>,
}

impl Op {
    pub fn name(&self) -> &'static str {
        self.def.name
    }
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.get(name)
    }
}

/// A straight-line list of ops with arguments.
#[derive(Clone, Debug, Default)]
pub struct Block {
    pub args: Vec<ValueId>,
    pub ops: Vec<OpId>,
    pub parent: Option<RegionId>,
}

/// A list of blocks owned by an op (or by a function, as its body).
#[derive(Clone, Debug, Default)]
pub struct Region {
    pub blocks: Vec<BlockId>,
    pub parent: Option<OpId>,
}

/// A function: its body's entry block arguments are the parameters.
#[derive(Clone, Debug)]
pub struct Func {
    pub name: String,
    pub body: RegionId,
    pub results: Vec<Type>,
    pub span: Option<Span>,
}

/// A translation unit: functions plus the arenas that store their contents.
#[derive(Clone, Debug, Default)]
pub struct Module {
    pub values: Arena<Value>,
    pub ops: Arena<Op>,
    pub blocks: Arena<Block>,
    pub regions: Arena<Region>,
    pub funcs: Vec<Func>,
}

impl Module {
    pub fn new() -> Self {
        Module::default()
    }

    /// A new empty region, not yet owned by an op or function.
    pub fn new_region(&mut self) -> RegionId {
        self.regions.alloc(Region::default())
    }

    /// Appends a block with arguments of `arg_types` to `region`.
    pub fn new_block(&mut self, region: RegionId, arg_types: Vec<Type>) -> BlockId {
        let block = self.blocks.alloc(Block { args: Vec::new(), ops: Vec::new(), parent: Some(region) });
        for (index, ty) in arg_types.into_iter().enumerate() {
            let v = self.values.alloc(Value { ty, def: ValueDef::Arg { block, index }, name: None });
            self.blocks[block].args.push(v);
        }
        self.regions[region].blocks.push(block);
        block
    }

    /// Creates an op (not yet in any block) with fresh result values of `result_types`.
    /// The regions become owned by the op.
    pub fn new_op(
        &mut self,
        def: &'static OpDef,
        operands: Vec<ValueId>,
        result_types: Vec<Type>,
        attrs: BTreeMap<String, Attr>,
        regions: Vec<RegionId>,
        span: Option<Span>,
    ) -> OpId {
        let op = self.ops.alloc(Op { def, operands, results: Vec::new(), attrs, regions, parent: None, span });
        for (index, ty) in result_types.into_iter().enumerate() {
            let v = self.values.alloc(Value { ty, def: ValueDef::Result { op, index }, name: None });
            self.ops[op].results.push(v);
        }
        for r in self.ops[op].regions.clone() {
            self.regions[r].parent = Some(op);
        }
        op
    }

    /// Appends `op` at the end of `block`.
    pub fn append_op(&mut self, block: BlockId, op: OpId) {
        self.blocks[block].ops.push(op);
        self.ops[op].parent = Some(block);
    }

    /// Inserts `op` just before `anchor` in `anchor`'s block.
    pub fn insert_before(&mut self, anchor: OpId, op: OpId) {
        let block = self.ops[anchor].parent.expect("the anchor op is in a block");
        let pos = self.position(anchor);
        self.blocks[block].ops.insert(pos, op);
        self.ops[op].parent = Some(block);
    }

    /// Unlinks `op` from its block; its results must have no remaining uses.
    pub fn erase_op(&mut self, op: OpId) {
        if let Some(block) = self.ops[op].parent.take() {
            self.blocks[block].ops.retain(|o| *o != op);
        }
    }

    fn position(&self, op: OpId) -> usize {
        let block = self.ops[op].parent.expect("the op is in a block");
        self.blocks[block].ops.iter().position(|o| *o == op).expect("an op is listed in its parent block")
    }

    /// Rewrites every use of `old` (in ops reachable from the functions) to `new`.
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        for op in self.all_ops() {
            for v in &mut self.ops[op].operands {
                if *v == old {
                    *v = new;
                }
            }
        }
    }

    pub fn ty(&self, v: ValueId) -> &Type {
        &self.values[v].ty
    }

    /// The `index`-th result of `op`.
    pub fn result(&self, op: OpId, index: usize) -> ValueId {
        self.ops[op].results[index]
    }

    /// The only block of a single-block region.
    pub fn entry_block(&self, region: RegionId) -> Option<BlockId> {
        self.regions[region].blocks.first().copied()
    }

    /// Every op reachable from the functions, in pre-order (an op before the ops of its regions).
    pub fn all_ops(&self) -> Vec<OpId> {
        let mut out = Vec::new();
        for f in &self.funcs {
            self.collect_ops(f.body, &mut out);
        }
        out
    }

    /// The ops of `region` and of all regions nested in it, in pre-order.
    pub fn collect_ops(&self, region: RegionId, out: &mut Vec<OpId>) {
        for &b in &self.regions[region].blocks {
            for &op in &self.blocks[b].ops {
                out.push(op);
                for &r in &self.ops[op].regions {
                    self.collect_ops(r, out);
                }
            }
        }
    }

    /// How many operands of reachable ops refer to each value, indexed by `ValueId::index`.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.values.len()];
        for op in self.all_ops() {
            for v in &self.ops[op].operands {
                counts[v.index()] += 1;
            }
        }
        counts
    }
}
