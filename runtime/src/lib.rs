//! qc's runtime: the numeric core (formats, rounding, block scaling, random streams), tensors,
//! weight files and data sets; the worker threads (`parallel`); the accelerator's ISA and cost model (`accel`).
//!
//! Knows nothing of syntax or IR; every other crate builds on it.

pub mod numerics;
pub mod io;
pub mod tensor;
pub mod data;
pub mod kernels;
pub mod accel;
pub mod train;
pub mod parallel;
