//! The numeric core: number formats, rounding modes, random streams.
//!
//! `format` is the entry point (`Format::parse`, `Format::quantize`); each family of formats
//! has its own module; `rounding` holds the one rounding decision they all share.

pub mod block;
pub mod codebook;
pub mod fixed;
pub mod float;
pub mod float_extra;
pub mod float_fast;
pub mod format;
pub mod relations;
pub mod rng;
pub mod rounding;
pub mod scaled;
pub(crate) mod simd;
pub mod suggest;

pub use float::{FloatFormat, PreparedRounding, Specials};
pub use relations::represents_all_of;
pub use format::{BlockElement, BlockFormat, BlockScale, Codebook, FixedFormat, Format, FormatError, Granularity, IntFormat, LogFormat, QuantizeError, ScaleRule};
pub use rng::RandomStream;
pub use rounding::Rounding;
