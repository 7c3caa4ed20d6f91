//! The IR's data: typed-id arenas of values, ops, blocks and regions ([`module`]), value
//! types ([`types`]) and attributes ([`attr`]).

pub mod attr;
pub mod module;
pub mod types;

pub use attr::{Arith, Attr, AttrKind, Chunk, RoundTo};
pub use module::{Block, BlockId, Func, Module, Op, OpId, Region, RegionId, Span, Value, ValueDef, ValueId};
pub use types::{Dim, TensorType, Type};
