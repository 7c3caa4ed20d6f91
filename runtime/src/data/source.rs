//! Where a data set comes from (`--data digits|PATH`) and how user files become a [`Split`].
//!
//! - `digits`: the built-in digits ([`super::digits`]).
//! - `FILE.npz`: arrays `x_train`, `y_train`, `x_test`, `y_test` (a split given by the user), or
//!   `x`, `y` (split by [`Split::seeded`] with seed [`USER_SPLIT_SEED`]).
//! - `DIR`: the same names as `.npy` files (`DIR/x_train.npy`, ... or `DIR/x.npy`,
//!   `DIR/y.npy`), or else MNIST's IDX files `train-images-idx3-ubyte`,
//!   `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (each
//!   optionally gzipped with a `.gz` suffix).
//!
//! Samples `x` have shape `[N, ...]` and keep their stored shape, except IDX images `[N, H, W]`,
//! which get a channel axis: `[N, H, W, 1]` (NHWC). uint8 samples are pixels and are scaled by
//! 1/255 to [0, 1]; every other numeric type is rounded to the nearest float32 as stored.
//! Labels `y` have shape `[N]` and hold whole numbers ≥ 0 (any integer type, or whole floats);
//! the classes are `0..=` the largest label in either part.

use super::digits::digits_split;
use super::{DataError, Dataset, Split};
use crate::io::array::{Array, Dtype};
use crate::io::{idx, npy, npz};
use crate::numerics::suggest::closest;
use crate::tensor::{shape_string, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The seed of the split of user data that comes without one.
pub const USER_SPLIT_SEED: u64 = 0;

/// The four IDX files of an MNIST-style data set: train images and labels, test images and labels.
const IDX_NAMES: [&str; 4] = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// A data set named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    Digits,
    Npz(PathBuf),
    Directory(PathBuf),
}

impl DataSource {
    /// `digits`, an existing `.npz` file or an existing directory (see the module docs).
    pub fn parse(text: &str) -> Result<DataSource, DataError> {
        if text == "digits" {
            return Ok(DataSource::Digits);
        }
        let path = Path::new(text);
        if path.is_dir() {
            Ok(DataSource::Directory(path.to_path_buf()))
        } else if path.is_file() {
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz")) {
                Ok(DataSource::Npz(path.to_path_buf()))
            } else {
                Err(DataError::File {
                    path: path.to_path_buf(),
                    reason: "data must be `digits`, a .npz file, or a directory of .npy or IDX files".into(),
                })
            }
        } else {
            Err(DataError::UnknownSource { text: text.to_string(), suggestion: closest(text, ["digits"]) })
        }
    }

    /// Reads the data and returns its train/test split.
    pub fn load(&self) -> Result<Split, DataError> {
        match self {
            DataSource::Digits => digits_split(),
            DataSource::Npz(path) => {
                let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
                let arrays: BTreeMap<String, Array> = npz::read_npz(&bytes)
                    .map_err(|e| DataError::File { path: path.clone(), reason: e.to_string() })?
                    .into_iter()
                    .collect();
                let found: Vec<&str> = arrays.keys().map(String::as_str).collect();
                let names = ArrayNames::choose(|name| arrays.contains_key(name))
                    .ok_or_else(|| missing_arrays(path, &found.join(", ")))?;
                names.assemble(path, |name| Ok(arrays.get(name).cloned()))
            }
            DataSource::Directory(dir) => load_directory(dir),
        }
    }
}

/// Which array names a source uses.
enum ArrayNames {
    Split,
    Whole,
}

impl ArrayNames {
    fn choose(has: impl Fn(&str) -> bool) -> Option<ArrayNames> {
        if ["x_train", "y_train", "x_test", "y_test"].into_iter().all(&has) {
            Some(ArrayNames::Split)
        } else if has("x") && has("y") {
            Some(ArrayNames::Whole)
        } else {
            None
        }
    }

    /// Builds the split from the arrays `get` returns by name.
    fn assemble(&self, path: &Path, mut get: impl FnMut(&str) -> Result<Option<Array>, DataError>) -> Result<Split, DataError> {
        let mut take = |name: &str| {
            get(name)?.ok_or_else(|| DataError::File { path: path.to_path_buf(), reason: format!("the array `{name}` is missing") })
        };
        match self {
            ArrayNames::Split => {
                let train = (samples(path, "x_train", take("x_train")?)?, labels(path, "y_train", take("y_train")?)?);
                let test = (samples(path, "x_test", take("x_test")?)?, labels(path, "y_test", take("y_test")?)?);
                split_of_parts(train, test)
            }
            ArrayNames::Whole => {
                let all = Dataset::with_inferred_classes(samples(path, "x", take("x")?)?, labels(path, "y", take("y")?)?)?;
                Split::seeded(&all, USER_SPLIT_SEED)
            }
        }
    }
}

fn load_directory(dir: &Path) -> Result<Split, DataError> {
    let npy_path = |name: &str| dir.join(format!("{name}.npy"));
    if let Some(names) = ArrayNames::choose(|name| npy_path(name).is_file()) {
        return names.assemble(dir, |name| {
            let path = npy_path(name);
            npy::read_array_file(&path).map(Some).map_err(|e| DataError::File { path, reason: e.to_string() })
        });
    }
    let idx_paths: Vec<Option<PathBuf>> = IDX_NAMES
        .iter()
        .map(|name| [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file()))
        .collect();
    let [Some(train_x), Some(train_y), Some(test_x), Some(test_y)] = idx_paths.as_slice() else {
        return Err(DataError::File {
            path: dir.to_path_buf(),
            reason: format!(
                "the directory holds neither x_train/y_train/x_test/y_test.npy, x/y.npy, nor the IDX files {}",
                IDX_NAMES.join(", ")
            ),
        });
    };
    let read = |path: &PathBuf| idx::read_idx_file(path).map_err(|e| DataError::File { path: path.clone(), reason: e.to_string() });
    let images = |path: &PathBuf| -> Result<Tensor, DataError> {
        let array = read(path)?;
        let mut shape = array.shape().to_vec();
        if shape.len() == 3 {
            shape.push(1);
        }
        let array = array.reshape(shape).map_err(|e| DataError::File { path: path.clone(), reason: e.to_string() })?;
        samples(path, "images", array)
    };
    let train = (images(train_x)?, labels(train_y, "labels", read(train_y)?)?);
    let test = (images(test_x)?, labels(test_y, "labels", read(test_y)?)?);
    split_of_parts(train, test)
}

/// A split given as two parts; the classes cover the labels of both.
fn split_of_parts(train: (Tensor, Vec<u32>), test: (Tensor, Vec<u32>)) -> Result<Split, DataError> {
    let classes = train.1.iter().chain(&test.1).max().map_or(1, |&m| m as usize + 1);
    let part = |name: &str, (x, y): (Tensor, Vec<u32>)| {
        Dataset::new(x, y, classes).map_err(|e| DataError::Invalid(format!("the {name} part: {e}")))
    };
    Ok(Split { train: part("training", train)?, test: part("test", test)? })
}

/// Samples as float32 (uint8 pixels scaled by 1/255).
fn samples(path: &Path, name: &str, array: Array) -> Result<Tensor, DataError> {
    if array.shape().is_empty() {
        return Err(DataError::File { path: path.to_path_buf(), reason: format!("`{name}` is a scalar, not one row per sample") });
    }
    let mut values = array.to_f32_nearest();
    if array.dtype() == Dtype::U8 {
        values.iter_mut().for_each(|v| *v /= 255.0);
    }
    Tensor::new(array.shape().to_vec(), values).map_err(|e| DataError::File { path: path.to_path_buf(), reason: e.to_string() })
}

/// Class labels of shape `[N]`.
fn labels(path: &Path, name: &str, array: Array) -> Result<Vec<u32>, DataError> {
    let file_error = |reason: String| DataError::File { path: path.to_path_buf(), reason };
    if array.shape().len() != 1 {
        return Err(file_error(format!("`{name}` has shape {}, but labels are one per sample, [N]", shape_string(array.shape()))));
    }
    array.to_labels().map_err(|e| file_error(format!("`{name}`: {e}")))
}

fn missing_arrays(path: &Path, found: &str) -> DataError {
    DataError::File {
        path: path.to_path_buf(),
        reason: format!("expected arrays x_train, y_train, x_test, y_test or x, y; found: {found}"),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> DataError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataError::NotFound { path: path.to_path_buf() }
    } else {
        DataError::File { path: path.to_path_buf(), reason: e.to_string() }
    }
}
