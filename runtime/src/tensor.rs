//! A dense float32 tensor: a shape and its elements in row-major order.
//!
//! Construction checks that the shape's element count (computed without overflow) equals the
//! number of elements given, so every [`Tensor`] is consistent and indexing it by its own shape
//! cannot go out of bounds. Shapes are printed as `[2, 3]` (`[]` for a scalar), as in `.qnn` files.

use std::fmt;

/// A row-major float32 tensor; `shape` `[]` is a scalar with one element.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Why a shape and a list of elements do not make a tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorError {
    /// The product of the dimensions does not fit in `usize`.
    TooLarge { shape: Vec<usize> },
    /// The shape holds `expected` elements but `found` were given.
    ElementCount { shape: Vec<usize>, expected: usize, found: usize },
    /// A row index passed to [`Tensor::rows`] is not below the number of rows.
    RowOutOfRange { index: usize, rows: usize },
    /// [`Tensor::rows`] needs at least one axis.
    Scalar,
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorError::TooLarge { shape } => write!(f, "the shape {} has too many elements", shape_string(shape)),
            TensorError::ElementCount { shape, expected, found } => {
                write!(f, "the shape {} holds {expected} elements but {found} were given", shape_string(shape))
            }
            TensorError::RowOutOfRange { index, rows } => write!(f, "row {index} is out of range for {rows} rows"),
            TensorError::Scalar => f.write_str("a scalar has no rows"),
        }
    }
}

impl std::error::Error for TensorError {}

/// A shape as `.qnn` files write it: `[128, 64]`, `[]`.
pub fn shape_string(shape: &[usize]) -> String {
    format!("[{}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// The number of elements of `shape`, or `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

impl Tensor {
    /// A tensor of `shape` holding `data` in row-major order.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, TensorError> {
        let expected = element_count(&shape).ok_or_else(|| TensorError::TooLarge { shape: shape.clone() })?;
        if expected != data.len() {
            return Err(TensorError::ElementCount { shape, expected, found: data.len() });
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor of `shape` filled with zeros.
    pub fn zeros(shape: Vec<usize>) -> Result<Tensor, TensorError> {
        let count = element_count(&shape).ok_or_else(|| TensorError::TooLarge { shape: shape.clone() })?;
        Ok(Tensor { shape, data: vec![0.0; count] })
    }

    /// A tensor of shape `[]` holding `value`.
    pub fn scalar(value: f32) -> Tensor {
        Tensor { shape: Vec::new(), data: vec![value] }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The elements in row-major order, for writing in place (the shape stays fixed).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The same elements viewed with another shape of the same element count.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, self.data)
    }

    /// The sub-tensors along axis 0 at `indices`, in that order (a gather of rows):
    /// shape `[indices.len(), rest...]`.
    pub fn rows(&self, indices: &[usize]) -> Result<Tensor, TensorError> {
        let (&rows, rest) = self.shape.split_first().ok_or(TensorError::Scalar)?;
        // The row length cannot overflow: rows · row_len elements already exist.
        let row_len = rest.iter().product::<usize>();
        let mut data = Vec::with_capacity(indices.len().saturating_mul(row_len));
        for &index in indices {
            if index >= rows {
                return Err(TensorError::RowOutOfRange { index, rows });
            }
            data.extend_from_slice(&self.data[index * row_len..(index + 1) * row_len]);
        }
        let mut shape = Vec::with_capacity(self.shape.len());
        shape.push(indices.len());
        shape.extend_from_slice(rest);
        Ok(Tensor { shape, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_check_the_element_count() {
        let t = Tensor::new(vec![2, 3], (0..6).map(|i| i as f32).collect()).unwrap();
        assert_eq!((t.shape(), t.rank(), t.len()), (&[2, 3][..], 2, 6));
        let e = Tensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert_eq!(e.to_string(), "the shape [2, 3] holds 6 elements but 5 were given");
        let e = Tensor::zeros(vec![usize::MAX, 2]).unwrap_err();
        assert!(e.to_string().contains("too many elements"), "{e}");
        assert_eq!(Tensor::scalar(1.5).shape(), &[] as &[usize]);
        assert_eq!(Tensor::zeros(vec![0, 4]).unwrap().len(), 0);
        assert_eq!(shape_string(&[]), "[]");
    }

    #[test]
    fn rows_gathers_along_the_first_axis() {
        let t = Tensor::new(vec![3, 2], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let g = t.rows(&[2, 0, 2]).unwrap();
        assert_eq!(g.shape(), &[3, 2]);
        assert_eq!(g.data(), &[4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
        assert_eq!(t.rows(&[3]).unwrap_err(), TensorError::RowOutOfRange { index: 3, rows: 3 });
        assert_eq!(Tensor::scalar(0.0).rows(&[0]).unwrap_err(), TensorError::Scalar);
        let r = t.reshape(vec![6]).unwrap();
        assert_eq!(r.shape(), &[6]);
        assert!(r.reshape(vec![4]).is_err());
    }
}
