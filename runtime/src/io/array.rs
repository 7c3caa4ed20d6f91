//! An array as a file stores it: a shape, an element type and the raw elements, before any
//! conversion to float32. The `.npy`, `.npz`, safetensors and IDX readers all produce an
//! [`Array`]; the conversions below are the one place that decides what is exact.
//!
//! Conversion rules:
//! - [`Array::to_f32_exact`] (weights): accepts float32 as is and every other type whose values
//!   are all exactly representable in float32 — always true for float16 and bfloat16, checked
//!   value by value for float64 and integers (the first value that would round is reported).
//! - [`Array::to_f32_nearest`] (data fed to a model's fp32 inputs): every numeric type, rounding
//!   to the nearest float32.
//! - [`Array::to_labels`] (class labels): integers, booleans or whole-valued floats in
//!   `0..=u32::MAX`.

use crate::tensor::{element_count, shape_string};
use half::{bf16, f16};
use std::fmt;

/// An element type, named as NumPy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    BF16,
    F32,
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// NumPy's name: `float32`, `uint8`, `bfloat16` (ml_dtypes' name), ...
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "bool",
            Dtype::U8 => "uint8",
            Dtype::U16 => "uint16",
            Dtype::U32 => "uint32",
            Dtype::U64 => "uint64",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One element, widened without loss.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scalar {
    Float(f64),
    Int(i128),
}

/// A row-major array of any [`Dtype`]; `data` holds the elements little-endian.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    shape: Vec<usize>,
    dtype: Dtype,
    data: Vec<u8>,
}

/// Why an array cannot be built or converted.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayError {
    /// The shape's size does not match the bytes given (or overflows).
    Size { shape: Vec<usize>, dtype: Dtype, bytes: usize },
    /// A value that float32 cannot hold exactly (index in row-major order, value as text).
    Inexact { dtype: Dtype, index: usize, value: String },
    /// A value that is not a class label.
    NotALabel { index: usize, value: String },
}

impl fmt::Display for ArrayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArrayError::Size { shape, dtype, bytes } => {
                write!(f, "a {dtype} array of shape {} does not fit in {bytes} bytes", shape_string(shape))
            }
            ArrayError::Inexact { dtype, index, value } => write!(
                f,
                "the {dtype} value {value} (element {index}) is not exactly representable in float32; \
                 convert the array to float32 before saving it (numpy: `a.astype(np.float32)`)"
            ),
            ArrayError::NotALabel { index, value } => {
                write!(f, "element {index} is {value}, not a class label (a whole number from 0 to 4294967295)")
            }
        }
    }
}

impl std::error::Error for ArrayError {}

impl Array {
    /// An array from little-endian element bytes in row-major order.
    pub fn new(shape: Vec<usize>, dtype: Dtype, data: Vec<u8>) -> Result<Array, ArrayError> {
        match element_count(&shape).and_then(|n| n.checked_mul(dtype.size())) {
            Some(bytes) if bytes == data.len() => Ok(Array { shape, dtype, data }),
            _ => Err(ArrayError::Size { shape, dtype, bytes: data.len() }),
        }
    }

    /// A float32 array (for writing).
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Array, ArrayError> {
        Array::new(shape, Dtype::F32, values.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The elements' little-endian bytes, row-major.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The same elements with another shape of the same element count.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Array, ArrayError> {
        Array::new(shape, self.dtype, self.data)
    }

    fn scalars(&self) -> impl Iterator<Item = Scalar> + '_ {
        let dtype = self.dtype;
        self.data.chunks_exact(dtype.size()).map(move |c| {
            let b2 = || [c[0], c[1]];
            let b4 = || [c[0], c[1], c[2], c[3]];
            let b8 = || [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
            match dtype {
                Dtype::Bool => Scalar::Int(i128::from(c[0] != 0)),
                Dtype::U8 => Scalar::Int(i128::from(c[0])),
                Dtype::I8 => Scalar::Int(i128::from(c[0] as i8)),
                Dtype::U16 => Scalar::Int(i128::from(u16::from_le_bytes(b2()))),
                Dtype::I16 => Scalar::Int(i128::from(i16::from_le_bytes(b2()))),
                Dtype::U32 => Scalar::Int(i128::from(u32::from_le_bytes(b4()))),
                Dtype::I32 => Scalar::Int(i128::from(i32::from_le_bytes(b4()))),
                Dtype::U64 => Scalar::Int(i128::from(u64::from_le_bytes(b8()))),
                Dtype::I64 => Scalar::Int(i128::from(i64::from_le_bytes(b8()))),
                Dtype::F16 => Scalar::Float(f16::from_le_bytes(b2()).to_f64()),
                Dtype::BF16 => Scalar::Float(bf16::from_le_bytes(b2()).to_f64()),
                Dtype::F32 => Scalar::Float(f64::from(f32::from_le_bytes(b4()))),
                Dtype::F64 => Scalar::Float(f64::from_le_bytes(b8())),
            }
        })
    }

    /// The elements as float32 when every one is exactly representable (see the module docs).
    pub fn to_f32_exact(&self) -> Result<Vec<f32>, ArrayError> {
        self.scalars()
            .enumerate()
            .map(|(index, s)| {
                let (x, exact) = match s {
                    Scalar::Float(v) => (v as f32, v.is_nan() || f64::from(v as f32) == v),
                    // `as f32` rounds to nearest; converting back exactly tells whether it did.
                    Scalar::Int(n) => (n as f32, (n as f32) as i128 == n),
                };
                if exact {
                    Ok(x)
                } else {
                    let value = match s {
                        Scalar::Float(v) => format!("{v:e}"),
                        Scalar::Int(n) => n.to_string(),
                    };
                    Err(ArrayError::Inexact { dtype: self.dtype, index, value })
                }
            })
            .collect()
    }

    /// The elements rounded to the nearest float32.
    pub fn to_f32_nearest(&self) -> Vec<f32> {
        self.scalars()
            .map(|s| match s {
                Scalar::Float(v) => v as f32,
                Scalar::Int(n) => n as f32,
            })
            .collect()
    }

    /// The elements as class labels (see the module docs).
    pub fn to_labels(&self) -> Result<Vec<u32>, ArrayError> {
        self.scalars()
            .enumerate()
            .map(|(index, s)| {
                let label = match s {
                    Scalar::Int(n) => u32::try_from(n).ok(),
                    Scalar::Float(v) if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) => Some(v as u32),
                    Scalar::Float(_) => None,
                };
                label.ok_or_else(|| ArrayError::NotALabel {
                    index,
                    value: match s {
                        Scalar::Float(v) => v.to_string(),
                        Scalar::Int(n) => n.to_string(),
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(dtype: Dtype, bytes: Vec<u8>) -> Array {
        let n = bytes.len() / dtype.size();
        Array::new(vec![n], dtype, bytes).unwrap()
    }

    #[test]
    fn half_precision_converts_exactly() {
        let halves = [f16::from_f32(1.5), f16::MIN_POSITIVE_SUBNORMAL, f16::INFINITY, f16::MAX];
        let a = array(Dtype::F16, halves.iter().flat_map(|h| h.to_le_bytes()).collect());
        let got = a.to_f32_exact().unwrap();
        assert_eq!(got, halves.iter().map(|h| h.to_f32()).collect::<Vec<_>>());
        let b = array(Dtype::BF16, bf16::from_f32(-3.0e38).to_le_bytes().to_vec());
        assert_eq!(b.to_f32_exact().unwrap(), [bf16::from_f32(-3.0e38).to_f32()]);
    }

    #[test]
    fn float64_and_integers_convert_only_when_exact() {
        let a = array(Dtype::F64, [0.5f64, -2.0, f64::NAN, f64::INFINITY].iter().flat_map(|x| x.to_le_bytes()).collect());
        assert_eq!(a.to_f32_exact().unwrap()[..2], [0.5, -2.0]);
        let b = array(Dtype::F64, [0.5f64, 0.1].iter().flat_map(|x| x.to_le_bytes()).collect());
        let e = b.to_f32_exact().unwrap_err().to_string();
        assert!(e.starts_with("the float64 value 1e-1 (element 1) is not exactly representable"), "{e}");
        assert!(e.contains("astype(np.float32)"), "{e}");
        assert_eq!(b.to_f32_nearest(), [0.5, 0.1]);
        let c = array(Dtype::I64, [16_777_216i64, 16_777_217].iter().flat_map(|x| x.to_le_bytes()).collect());
        assert!(c.to_f32_exact().unwrap_err().to_string().contains("value 16777217 (element 1)"));
    }

    #[test]
    fn labels_are_whole_non_negative_numbers() {
        let a = array(Dtype::I64, [0i64, 9, 3].iter().flat_map(|x| x.to_le_bytes()).collect());
        assert_eq!(a.to_labels().unwrap(), [0, 9, 3]);
        let b = array(Dtype::I8, vec![1, 0xFF]);
        assert!(b.to_labels().unwrap_err().to_string().starts_with("element 1 is -1, not a class label"));
        let c = array(Dtype::F32, [2.0f32, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect());
        assert!(c.to_labels().unwrap_err().to_string().contains("element 1 is 2.5"));
        assert_eq!(array(Dtype::Bool, vec![1, 0]).to_labels().unwrap(), [1, 0]);
    }

    #[test]
    fn sizes_are_checked() {
        let e = Array::new(vec![2, 2], Dtype::F32, vec![0; 15]).unwrap_err();
        assert_eq!(e.to_string(), "a float32 array of shape [2, 2] does not fit in 15 bytes");
        assert!(Array::new(vec![usize::MAX, 2], Dtype::U8, vec![]).is_err());
        assert_eq!(Array::new(vec![], Dtype::F64, vec![0; 8]).unwrap().len(), 1);
    }
}
