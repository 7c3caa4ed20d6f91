//! File I/O for tensors and data: `.npy` and `.npz` arrays, safetensors weight files, and the
//! IDX files of MNIST-style data sets. Every reader turns a malformed file into an error with a
//! one-line reason; none panics on any input.
//!
//! - [`array`](mod@array): [`Array`], an array of any element type as stored, and its conversions to
//!   float32 and to class labels.
//! - [`npy`]: NumPy's `.npy` format; [`npz`]: a zip of `.npy` files.
//! - [`idx`]: the IDX format (big-endian header, then the elements).
//! - [`weights`]: [`WeightFile`], named parameters from safetensors, `.npz` or `.npy`, checked
//!   against the shapes a model declares; and writing safetensors.

pub mod array;
pub mod idx;
pub mod npy;
pub mod npz;
pub mod weights;

pub use array::{Array, ArrayError, Dtype};
pub use weights::{write_safetensors, IoError, WeightFile};
