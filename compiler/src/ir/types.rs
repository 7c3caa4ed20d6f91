//! Value types: tensors with a shape and an element format, scalars of a format, loop
//! indices, and exact (unrounded) reals. Display prints the textual form the parser reads.

use qc_runtime::numerics::Format;
use std::fmt;

/// One dimension of a tensor shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(u64),
    /// Known only at run time (`?`), e.g. the batch dimension.
    Dynamic,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Dynamic => f.write_str("?"),
        }
    }
}

/// `tensor<32x64xe4m3>`: a row-major tensor whose every element is a value of `format`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dims: Vec<Dim>,
    pub format: Format,
}

impl TensorType {
    pub fn new(dims: Vec<Dim>, format: Format) -> Self {
        TensorType { dims, format }
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// The dimensions when every one is fixed.
    pub fn static_dims(&self) -> Option<Vec<u64>> {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Some(*n),
                Dim::Dynamic => None,
            })
            .collect()
    }

    /// The number of elements when every dimension is fixed.
    pub fn static_len(&self) -> Option<u64> {
        self.dims.iter().try_fold(1u64, |n, d| match d {
            Dim::Fixed(k) => n.checked_mul(*k),
            Dim::Dynamic => None,
        })
    }

    /// The same shape with another element format.
    pub fn with_format(&self, format: Format) -> TensorType {
        TensorType { dims: self.dims.clone(), format }
    }
}

/// The type of an SSA value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Tensor(TensorType),
    /// One value of a format (inside `kernel` regions).
    Scalar(Format),
    /// A loop index or a dimension size (`kernel` dialect), a non-negative integer.
    Index,
    /// An exact real number that has not been rounded (an exact product, `kernel.mul` without
    /// `round`). Only `kernel` arithmetic consumes it.
    Real,
}

impl Type {
    pub fn tensor(dims: Vec<Dim>, format: Format) -> Type {
        Type::Tensor(TensorType::new(dims, format))
    }

    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            Type::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The format of a scalar, or `None` for tensors, indices and reals.
    pub fn scalar_format(&self) -> Option<Format> {
        match self {
            Type::Scalar(f) => Some(*f),
            _ => None,
        }
    }

    /// A scalar number: a value of a format or an exact real.
    pub fn is_number(&self) -> bool {
        matches!(self, Type::Scalar(_) | Type::Real)
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor<")?;
        for d in &self.dims {
            write!(f, "{d}x")?;
        }
        write!(f, "{}>", self.format)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Tensor(t) => t.fmt(f),
            Type::Scalar(format) => format.fmt(f),
            Type::Index => f.write_str("index"),
            Type::Real => f.write_str("real"),
        }
    }
}
