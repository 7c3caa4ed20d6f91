//! The textual IR: [`print_module`] and [`parse_module`]; print → parse → print is the
//! identity on text. The grammar is in spec/ir.md.

mod parse;
mod print;

pub use parse::parse_module;
pub use print::print_module;
