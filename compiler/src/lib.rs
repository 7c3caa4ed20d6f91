//! qc's compiler: the IR (arenas of typed ids, dialects `nn`, `q`, `kernel`), its verifier,
//! its textual form, and the passes with their manager. See `spec/ir.md`.
//!
//! - [`arena`]: typed-id arenas; [`ir`]: values, ops, blocks, regions, types, attributes.
//! - [`dialect`]: the registry of op definitions, each with its verifier.
//! - [`verify`]: generic and per-op verification with [`diag::Diagnostic`]s.
//! - [`text`]: printer and parser.
//! - [`pass`]: the `Pass` trait, the registry, pipelines, and the passes.
//! - [`egraph`]: the e-graph encoding, fusion rules and cost model behind the `fusion` pass.
//! - [`lower`]: the checked `.qnn` model to the `nn` dialect.
//! - [`init`]: parameter initialisation recipes, their deterministic values and digests.
//! - [`report`]: the per-layer cost table of `qc compile`.
//! - [`backend`]: execution of the kernel dialect: prepared programs and the backends.
//! - [`accel`]: the accelerator backend's emitter (layers, tiling, dataflow search).

pub mod arena;
pub mod accel;
pub mod autodiff;
pub mod backend;
pub mod diag;
pub mod dialect;
pub mod egraph;
pub mod init;
pub mod ir;
pub mod lower;
pub mod pass;
pub mod report;
pub mod text;
pub mod verify;

pub use diag::Diagnostic;
pub use ir::Module;
pub use text::{parse_module, print_module};
pub use verify::verify;
