//! The exact scalar arithmetic of the `kernel` dialect: what every backend must reproduce to
//! the bit (spec/ir.md, "kernel"). Written for clarity: this is the oracle the reference
//! interpreter calls and the JIT is checked against.
//!
//! - [`exact`]: exact values as sums of two `f64`s (TwoSum, TwoProduct), stand-ins for
//!   quotients and square roots, and the exact position of a value inside a rounding gap.
//! - [`target`]: an element-wise result format and the single rounding of an exact value to
//!   it, in every mode, agreeing with `Format::quantize` on values that are `f32`s.
//! - [`ops`]: one function per kernel op (`add`, `sub`, `mul`, `fma`, `div`, `sqrt`, `max`,
//!   `min`, `exp`, `tanh`, `sigmoid`, `gelu`, `from_index`, `round`) on a [`Rounder`].

pub mod exact;
pub mod ops;
pub mod target;

pub use exact::Exact;
pub use ops::{maximum, minimum, Rounder};
pub use target::Target;

use crate::numerics::rng::{Draw, RandomStream};

static UNUSED_STREAM: RandomStream = RandomStream::new(0, 0);

/// A draw for deterministic roundings, which never read it.
pub fn no_draw() -> Draw<'static> {
    UNUSED_STREAM.at(0)
}
