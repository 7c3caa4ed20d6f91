//! Reading `.npz` files: a zip archive whose members are `.npy` files, as `numpy.savez` (stored)
//! and `numpy.savez_compressed` (deflated) write them. A member `name.npy` is the array `name`.

use super::array::Array;
use super::npy::{self, NpyError};
use std::fmt;
use std::io::Cursor;

/// Why an `.npz` file cannot be read.
#[derive(Debug)]
pub enum NpzError {
    /// The bytes are not a zip archive this reader can open (the zip library's reason).
    Zip(String),
    /// A member that is not a `.npy` file, or a malformed one.
    Member { name: String, error: NpyError },
    /// Two members give the same array name.
    Duplicate(String),
}

impl fmt::Display for NpzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NpzError::Zip(why) => write!(f, "not a readable .npz (zip) archive: {why}"),
            NpzError::Member { name, error } => write!(f, "member `{name}`: {error}"),
            NpzError::Duplicate(name) => write!(f, "the array `{name}` appears twice"),
        }
    }
}

impl std::error::Error for NpzError {}

/// The arrays of an `.npz` archive held in memory, in archive order, named without `.npy`.
pub fn read_npz(bytes: &[u8]) -> Result<Vec<(String, Array)>, NpzError> {
    let zip_error = |e: zip::result::ZipError| NpzError::Zip(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
    let mut arrays: Vec<(String, Array)> = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let member = archive.by_index(i).map_err(zip_error)?;
        if member.is_dir() {
            continue;
        }
        let file_name = member.name().to_string();
        let name = file_name.strip_suffix(".npy").unwrap_or(&file_name).to_string();
        let array = npy::read_array(member).map_err(|error| NpzError::Member { name: file_name.clone(), error })?;
        if arrays.iter().any(|(n, _)| *n == name) {
            return Err(NpzError::Duplicate(name));
        }
        arrays.push((name, array));
    }
    Ok(arrays)
}
