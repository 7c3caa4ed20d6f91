//! The `.qnn` language: tokens (`lexer`), grammar (`grammar.lalrpop`, driven by `parser`),
//! the syntax tree with spans (`ast`), the checks that give a model its meaning (`check`), and
//! diagnostics (`diagnostic`). See `spec/lang.md`.
//!
//! Entry points: [`parse`], [`check`], [`check_source`], [`render`], [`render_json`].

pub mod ast;
pub mod check;
pub mod diagnostic;
pub mod lexer;
pub mod parser;

pub use diagnostic::{has_errors, render, render_json, Code, Diagnostic, SecondaryLabel, Severity};
pub use check::{check, check_source, CheckedModule};
pub use parser::parse;
