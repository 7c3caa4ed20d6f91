//! Named parameter tensors from weight files, checked against the shapes a model declares.
//!
//! [`WeightFile::open`] reads a whole file and recognises its kind by content, not by name:
//! `.npy` (NumPy's magic string; its one tensor is named by the file stem), `.npz` (a zip
//! archive) or safetensors (anything else that parses as one). [`WeightFile::get`] returns a
//! float32 [`Tensor`] under the exactness rule of [`Array::to_f32_exact`]: float16 and bfloat16
//! are widened exactly, float64 and integer tensors load only if every value is exactly a
//! float32 (else the error says to convert them). [`write_safetensors`] writes float32 tensors.
//!
//! Every failure is an [`IoError`] whose message is one line naming the file and, where there
//! is one, the tensor.

use super::array::{Array, ArrayError, Dtype};
use super::{npy, npz};
use crate::numerics::suggest::{closest, edit_distance};
use crate::tensor::{shape_string, Tensor};
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// How many of the closest names a missing-tensor error lists.
const NAMES_LISTED: usize = 5;

/// Why a weight file cannot be read or written, or a tensor taken from it.
#[derive(Debug)]
pub enum IoError {
    /// The file does not exist.
    NotFound { path: PathBuf },
    /// The file exists but cannot be read (or written).
    Io { path: PathBuf, error: io::Error },
    /// The content is none of the known kinds, or a malformed one.
    Malformed { path: PathBuf, reason: String },
    /// No tensor of that name; `closest` lists the most similar names, best first.
    MissingTensor { path: PathBuf, name: String, suggestion: Option<String>, closest: Vec<String> },
    /// The tensor's shape is not the declared one.
    WrongShape { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    /// The tensor's element type cannot be loaded as float32 (the reason says why).
    WrongDtype { path: PathBuf, name: String, reason: String },
    /// A single tensor was asked for, but the file holds these (none or several).
    NotSingle { path: PathBuf, names: Vec<String> },
    /// Tensors given for writing that do not make a valid file (duplicate name, ...).
    Invalid { path: PathBuf, reason: String },
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::NotFound { path } => write!(f, "`{}` does not exist", path.display()),
            IoError::Io { path, error } => write!(f, "`{}`: {error}", path.display()),
            IoError::Malformed { path, reason } => write!(f, "`{}`: {reason}", path.display()),
            IoError::MissingTensor { path, name, suggestion, closest } => {
                write!(f, "`{}` has no tensor `{name}`", path.display())?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                if closest.is_empty() {
                    f.write_str(" (the file holds no tensors)")
                } else {
                    write!(f, " (closest names: {})", closest.join(", "))
                }
            }
            IoError::WrongShape { path, name, expected, found } => {
                write!(
                    f,
                    "tensor `{name}` in `{}` has shape {}, but the model declares {}",
                    path.display(),
                    shape_string(found),
                    shape_string(expected)
                )?;
                if found.len() >= 2 && found.iter().rev().eq(expected.iter()) {
                    f.write_str(" (transposed? dense weights are [out, in], conv2d weights [O, KH, KW, C])")?;
                }
                Ok(())
            }
            IoError::WrongDtype { path, name, reason } => write!(f, "tensor `{name}` in `{}`: {reason}", path.display()),
            IoError::NotSingle { path, names } if names.is_empty() => {
                write!(f, "`{}` holds no tensors", path.display())
            }
            IoError::NotSingle { path, names } => write!(
                f,
                "`{}` holds {} tensors ({}); name the one to load",
                path.display(),
                names.len(),
                names.join(", ")
            ),
            IoError::Invalid { path, reason } => write!(f, "cannot write `{}`: {reason}", path.display()),
        }
    }
}

impl std::error::Error for IoError {}

impl IoError {
    fn from_io(path: &Path, error: io::Error) -> IoError {
        if error.kind() == io::ErrorKind::NotFound {
            IoError::NotFound { path: path.to_path_buf() }
        } else {
            IoError::Io { path: path.to_path_buf(), error }
        }
    }
}

/// A stored tensor, or why its element type cannot be loaded.
#[derive(Debug)]
enum Entry {
    Array(Array),
    Unsupported { dtype: String, shape: Vec<usize> },
}

impl Entry {
    fn shape(&self) -> &[usize] {
        match self {
            Entry::Array(a) => a.shape(),
            Entry::Unsupported { shape, .. } => shape,
        }
    }
}

/// The tensors of one weight file, by name.
#[derive(Debug)]
pub struct WeightFile {
    path: PathBuf,
    tensors: BTreeMap<String, Entry>,
}

impl WeightFile {
    /// Reads the file at `path` (safetensors, `.npz` or `.npy`, recognised by content).
    pub fn open(path: &Path) -> Result<WeightFile, IoError> {
        let bytes = std::fs::read(path).map_err(|e| IoError::from_io(path, e))?;
        WeightFile::from_bytes(path, &bytes)
    }

    /// Reads a weight file's content held in memory; `path` names it in messages (and, for
    /// `.npy`, gives the tensor its name).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<WeightFile, IoError> {
        let malformed = |reason: String| IoError::Malformed { path: path.to_path_buf(), reason };
        let mut tensors = BTreeMap::new();
        if bytes.starts_with(b"\x93NUMPY") {
            let array = npy::read_array(bytes).map_err(|e| malformed(format!("not a valid .npy file: {e}")))?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            tensors.insert(stem, Entry::Array(array));
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            let arrays = npz::read_npz(bytes).map_err(|e| malformed(format!("not a valid .npz file: {e}")))?;
            tensors.extend(arrays.into_iter().map(|(name, a)| (name, Entry::Array(a))));
        } else {
            let file = SafeTensors::deserialize(bytes).map_err(|e| {
                malformed(format!("not a safetensors, .npz or .npy file (as safetensors: {})", one_line(&e.to_string())))
            })?;
            for (name, view) in file.iter() {
                tensors.insert(name.to_string(), entry_of_view(&view).map_err(&malformed)?);
            }
        }
        Ok(WeightFile { path: path.to_path_buf(), tensors })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The stored shape of tensor `name`, if there is one.
    pub fn shape_of(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(Entry::shape)
    }

    /// Tensor `name` as float32, checked to have `expected_shape`.
    pub fn get(&self, name: &str, expected_shape: &[usize]) -> Result<Tensor, IoError> {
        match self.tensors.get(name) {
            Some(entry) => self.convert(name, entry, expected_shape),
            None => Err(self.missing(name)),
        }
    }

    /// The file's only tensor (how `load("w.npy")` names none), checked to have `expected_shape`.
    pub fn get_single(&self, expected_shape: &[usize]) -> Result<Tensor, IoError> {
        match self.tensors.iter().next() {
            Some((name, entry)) if self.tensors.len() == 1 => self.convert(name, entry, expected_shape),
            _ => Err(IoError::NotSingle { path: self.path.clone(), names: self.tensors.keys().cloned().collect() }),
        }
    }

    fn convert(&self, name: &str, entry: &Entry, expected_shape: &[usize]) -> Result<Tensor, IoError> {
        let wrong_dtype = |reason: String| IoError::WrongDtype { path: self.path.clone(), name: name.to_string(), reason };
        let array = match entry {
            Entry::Array(array) => array,
            Entry::Unsupported { dtype, .. } => {
                return Err(wrong_dtype(format!(
                    "the dtype {dtype} cannot be loaded (supported: float32, float16, bfloat16, and float64 or integers holding float32 values)"
                )))
            }
        };
        if array.shape() != expected_shape {
            return Err(IoError::WrongShape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected_shape.to_vec(),
                found: array.shape().to_vec(),
            });
        }
        let data = array.to_f32_exact().map_err(|e: ArrayError| wrong_dtype(e.to_string()))?;
        Tensor::new(expected_shape.to_vec(), data).map_err(|e| wrong_dtype(e.to_string()))
    }

    fn missing(&self, name: &str) -> IoError {
        let mut by_distance: Vec<&str> = self.names().collect();
        by_distance.sort_by_key(|n| edit_distance(name, n));
        IoError::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
            suggestion: closest(name, self.names()).map(str::to_string),
            closest: by_distance.into_iter().take(NAMES_LISTED).map(str::to_string).collect(),
        }
    }
}

/// Copies a safetensors tensor out of the file's buffer.
fn entry_of_view(view: &TensorView<'_>) -> Result<Entry, String> {
    let dtype = match view.dtype() {
        StDtype::BOOL => Dtype::Bool,
        StDtype::U8 => Dtype::U8,
        StDtype::U16 => Dtype::U16,
        StDtype::U32 => Dtype::U32,
        StDtype::U64 => Dtype::U64,
        StDtype::I8 => Dtype::I8,
        StDtype::I16 => Dtype::I16,
        StDtype::I32 => Dtype::I32,
        StDtype::I64 => Dtype::I64,
        StDtype::F16 => Dtype::F16,
        StDtype::BF16 => Dtype::BF16,
        StDtype::F32 => Dtype::F32,
        StDtype::F64 => Dtype::F64,
        other => return Ok(Entry::Unsupported { dtype: format!("{other:?}"), shape: view.shape().to_vec() }),
    };
    Array::new(view.shape().to_vec(), dtype, view.data().to_vec()).map(Entry::Array).map_err(|e| e.to_string())
}

/// Writes float32 tensors to a safetensors file at `path` (tensor names must be distinct).
pub fn write_safetensors(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<(), IoError> {
    let invalid = |reason: String| IoError::Invalid { path: path.to_path_buf(), reason };
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
        return Err(invalid(format!("the tensor name `{}` is given twice", pair[0])));
    }
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| t.data().iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| TensorView::new(StDtype::F32, t.shape().to_vec(), b).map(|v| (*name, v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    let file = safetensors::serialize(views, None).map_err(|e| invalid(e.to_string()))?;
    std::fs::write(path, file).map_err(|e| IoError::from_io(path, e))
}

/// The first line of a library's error message.
fn one_line(message: &str) -> &str {
    message.lines().next().unwrap_or("")
}
