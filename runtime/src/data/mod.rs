//! Labelled data sets for running and training models: the built-in digits, and user data from
//! `.npy`/`.npz` arrays or IDX files ([`DataSource`]); seeded train/test splits; batching in a
//! sequential or seeded-shuffled order.
//!
//! A [`Dataset`] is a float32 tensor `x` of shape `[N, ...]` (one sample per row, images NHWC)
//! with one class label per row. Its invariants — `x` has at least one axis, `x.shape[0] ==
//! y.len()`, every label is below `classes` — are checked when it is built, so every later
//! operation on it is infallible.

pub mod batches;
pub mod digits;
pub mod shuffle;
pub mod source;

pub use batches::{Batch, Batches, Order};
pub use source::DataSource;

use crate::numerics::RandomStream;
use crate::tensor::Tensor;
use std::fmt;
use std::path::PathBuf;

/// Why data cannot be loaded, or a data set built.
#[derive(Debug)]
pub enum DataError {
    /// A file or directory that does not exist.
    NotFound { path: PathBuf },
    /// A file that cannot be read or is malformed (the reason names what is wrong).
    File { path: PathBuf, reason: String },
    /// Arrays that do not make a data set (row counts, ranks, labels), or bad arguments.
    Invalid(String),
    /// A `--data` value that is neither `digits` nor an existing path.
    UnknownSource { text: String, suggestion: Option<&'static str> },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::NotFound { path } => write!(f, "`{}` does not exist", path.display()),
            DataError::File { path, reason } => write!(f, "`{}`: {reason}", path.display()),
            DataError::Invalid(reason) => f.write_str(reason),
            DataError::UnknownSource { text, suggestion } => {
                write!(f, "unknown data `{text}`: not `digits` and no such file or directory")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for DataError {}

/// Samples `x` (`[N, ...]`) with class labels `y` (`N` of them, each below `classes`).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    x: Tensor,
    y: Vec<u32>,
    classes: usize,
}

/// A data set divided into a training and a test part.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
}

impl Dataset {
    /// Checks the invariants in the module docs.
    pub fn new(x: Tensor, y: Vec<u32>, classes: usize) -> Result<Dataset, DataError> {
        let Some(&rows) = x.shape().first() else {
            return Err(DataError::Invalid("the samples `x` must have at least one axis (one row per sample)".into()));
        };
        if rows != y.len() {
            return Err(DataError::Invalid(format!("`x` has {rows} rows but `y` has {} labels", y.len())));
        }
        if let Some((i, &label)) = y.iter().enumerate().find(|&(_, &l)| l as usize >= classes) {
            return Err(DataError::Invalid(format!("label {label} of sample {i} is not below the number of classes, {classes}")));
        }
        Ok(Dataset { x, y, classes })
    }

    /// Builds a data set whose classes are `0..=max(y)` (at least one class).
    pub fn with_inferred_classes(x: Tensor, y: Vec<u32>) -> Result<Dataset, DataError> {
        let classes = y.iter().max().map_or(1, |&m| m as usize + 1);
        Dataset::new(x, y, classes)
    }

    pub fn x(&self) -> &Tensor {
        &self.x
    }

    pub fn y(&self) -> &[u32] {
        &self.y
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The shape of one sample (`x`'s shape without its first axis).
    pub fn sample_shape(&self) -> &[usize] {
        &self.x.shape()[1..]
    }

    /// The same samples with each reshaped to `sample_shape` (same element count), e.g.
    /// `[8, 8, 1]` images as `[64]` vectors for a dense model.
    pub fn reshape_samples(self, sample_shape: &[usize]) -> Result<Dataset, DataError> {
        let mut shape = vec![self.len()];
        shape.extend_from_slice(sample_shape);
        let x = self.x.reshape(shape).map_err(|e| DataError::Invalid(format!("cannot reshape the samples: {e}")))?;
        Ok(Dataset { x, ..self })
    }

    /// The samples at `indices`, in that order (the classes are kept).
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        let x = self.x.rows(indices).map_err(|e| DataError::Invalid(e.to_string()))?;
        let y = indices.iter().map(|&i| self.y[i]).collect();
        Ok(Dataset { x, y, classes: self.classes })
    }

    /// How many samples have each label, indexed by label.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &label in &self.y {
            counts[label as usize] += 1;
        }
        counts
    }
}

impl Split {
    /// The seeded split every source without its own uses: shuffle the indices with
    /// [`shuffle::shuffled_indices`] and stream `RandomStream::new(seed, shuffle::SPLIT_STREAM)`,
    /// put the last `ceil(N / 5)` of the permutation in `test` and the first `N - ceil(N / 5)`
    /// in `train`, each in permutation order.
    pub fn seeded(all: &Dataset, seed: u64) -> Result<Split, DataError> {
        let order = shuffle::shuffled_indices(all.len(), &RandomStream::new(seed, shuffle::SPLIT_STREAM));
        let test_len = all.len().div_ceil(5);
        let (train, test) = order.split_at(all.len() - test_len);
        Ok(Split { train: all.subset(train)?, test: all.subset(test)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(n: usize) -> Dataset {
        let x = Tensor::new(vec![n, 2], (0..2 * n).map(|i| i as f32).collect()).unwrap();
        Dataset::with_inferred_classes(x, (0..n as u32).map(|i| i % 3).collect()).unwrap()
    }

    #[test]
    fn invariants_are_checked() {
        let x = Tensor::zeros(vec![3, 2]).unwrap();
        let e = Dataset::new(x.clone(), vec![0, 1], 2).unwrap_err().to_string();
        assert_eq!(e, "`x` has 3 rows but `y` has 2 labels");
        let e = Dataset::new(x, vec![0, 1, 2], 2).unwrap_err().to_string();
        assert_eq!(e, "label 2 of sample 2 is not below the number of classes, 2");
        assert!(Dataset::new(Tensor::scalar(0.0), vec![], 1).is_err());
        assert_eq!(tiny(7).classes(), 3);
        assert_eq!(tiny(7).label_counts(), [3, 2, 2]);
    }

    #[test]
    fn a_seeded_split_partitions_the_rows() {
        let all = tiny(11);
        let split = Split::seeded(&all, 5).unwrap();
        assert_eq!((split.train.len(), split.test.len()), (8, 3));
        let mut rows: Vec<f32> = split.train.x().data().iter().chain(split.test.x().data()).step_by(2).copied().collect();
        rows.sort_by(f32::total_cmp);
        assert_eq!(rows, (0..11).map(|i| 2.0 * i as f32).collect::<Vec<_>>());
        assert_eq!(split, Split::seeded(&all, 5).unwrap());
        assert_ne!(split, Split::seeded(&all, 6).unwrap());
        let reshaped = split.test.reshape_samples(&[1, 2]).unwrap();
        assert_eq!(reshaped.sample_shape(), &[1, 2]);
        assert!(reshaped.reshape_samples(&[3]).is_err());
    }
}
