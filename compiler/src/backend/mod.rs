//! Execution of the `kernel` dialect. A [`Program`] is a kernel-dialect function with its
//! parameters materialised; a [`Backend`] runs it on input tensors. Every backend computes
//! the same bits (spec/ir.md, "kernel"): the reference interpreter is the oracle, the JIT
//! and the accelerator simulator are checked against it.

pub mod interp;
pub mod jit;
pub mod program;

pub use program::{ExecError, Program};
use qc_runtime::tensor::Tensor;

/// A way to execute a [`Program`].
pub trait Backend {
    /// Runs the program's function on `inputs` (one per function argument; dynamic axes are
    /// bound by the inputs' shapes) and returns its results, element values as f32 (every
    /// value of every format is an f32). Stochastic roundings draw from
    /// `RandomStream::new(program.seed, stream)`: the result depends on nothing else.
    fn run(&self, program: &Program, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError>;
}
