//! File I/O for tensors: the `.npy` format (NumPy's array files) for float32 data.

pub mod npy;
