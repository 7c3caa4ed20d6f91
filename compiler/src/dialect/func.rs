//! The `func` dialect: `func.return`, the terminator of a function body. Its operand types
//! are checked against the function's result types by the verifier (it knows the function).

use super::{Arity, OpDef};

pub const OPS: &[OpDef] = &[OpDef {
    name: "func.return",
    summary: "Returns the function's results.",
    operands: Arity::AtLeast(0),
    results: Arity::Exactly(0),
    regions: 0,
    attrs: &[],
    terminator: true,
    verify: |_| Ok(()),
}];
