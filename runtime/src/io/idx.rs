//! The IDX format of MNIST-style data sets (`train-images-idx3-ubyte`, ...).
//!
//! Layout: two zero bytes, a type byte (`0x08` uint8, `0x09` int8, `0x0B` int16, `0x0C` int32,
//! `0x0D` float32, `0x0E` float64), the number of dimensions, each dimension as a big-endian
//! `u32`, then the elements big-endian in row-major order. Files compressed with gzip (as MNIST
//! is distributed, `*.gz`) are recognised by their magic bytes and decompressed. Memory grows
//! with the bytes present, not with what the header claims.

use super::array::{Array, Dtype};
use crate::tensor::{element_count, shape_string};
use flate2::read::GzDecoder;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

/// Why an IDX file cannot be read or written.
#[derive(Debug)]
pub enum IdxError {
    Io(io::Error),
    /// The first two bytes are not zero, or the file is shorter than the magic number.
    BadMagic([u8; 4]),
    /// A type byte that IDX does not define.
    BadType(u8),
    /// Zero dimensions, or sizes whose product overflows.
    BadDims(String),
    /// The data is shorter than the dimensions require.
    Truncated { expected: u64, found: u64 },
    /// Bytes after the data.
    TrailingBytes,
    /// An element type IDX cannot store (for writing).
    UnsupportedDtype(Dtype),
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdxError::Io(e) => write!(f, "{e}"),
            IdxError::BadMagic(m) => write!(
                f,
                "not an IDX file: it starts with {:02x} {:02x} {:02x} {:02x}, not 00 00 <type> <dims>",
                m[0], m[1], m[2], m[3]
            ),
            IdxError::BadType(t) => write!(f, "unknown IDX element type 0x{t:02x} (known: 08 09 0b 0c 0d 0e)"),
            IdxError::BadDims(why) => write!(f, "bad IDX dimensions: {why}"),
            IdxError::Truncated { expected, found } => {
                write!(f, "the file is truncated: the dimensions need {expected} data bytes but only {found} follow the header")
            }
            IdxError::TrailingBytes => f.write_str("the file has bytes after the data its dimensions describe"),
            IdxError::UnsupportedDtype(d) => write!(f, "IDX cannot store {d} elements"),
        }
    }
}

impl std::error::Error for IdxError {}

impl From<io::Error> for IdxError {
    fn from(e: io::Error) -> Self {
        IdxError::Io(e)
    }
}

fn type_code(dtype: Dtype) -> Option<u8> {
    Some(match dtype {
        Dtype::U8 => 0x08,
        Dtype::I8 => 0x09,
        Dtype::I16 => 0x0B,
        Dtype::I32 => 0x0C,
        Dtype::F32 => 0x0D,
        Dtype::F64 => 0x0E,
        _ => return None,
    })
}

fn dtype_of_code(code: u8) -> Option<Dtype> {
    [Dtype::U8, Dtype::I8, Dtype::I16, Dtype::I32, Dtype::F32, Dtype::F64].into_iter().find(|&d| type_code(d) == Some(code))
}

/// Reads the IDX file at `path`, decompressing it first if it is gzipped.
pub fn read_idx_file(path: &Path) -> Result<Array, IdxError> {
    let mut file = BufReader::new(File::open(path)?);
    let mut magic = [0u8; 2];
    let gzipped = file.read(&mut magic)? == 2 && magic == [0x1F, 0x8B];
    let reader = (&magic[..]).chain(file);
    if gzipped {
        read_idx(GzDecoder::new(reader))
    } else {
        read_idx(reader)
    }
}

/// Reads a complete IDX stream.
pub fn read_idx(mut reader: impl Read) -> Result<Array, IdxError> {
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic)?;
    if got < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(IdxError::BadMagic(magic));
    }
    let dtype = dtype_of_code(magic[2]).ok_or(IdxError::BadType(magic[2]))?;
    let rank = usize::from(magic[3]);
    if rank == 0 {
        return Err(IdxError::BadDims("zero dimensions".into()));
    }
    let mut dims = vec![0u8; rank * 4];
    if read_up_to(&mut reader, &mut dims)? < dims.len() {
        return Err(IdxError::BadDims(format!("the file ends inside the {rank} dimension sizes")));
    }
    let shape: Vec<usize> = dims.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let expected = element_count(&shape)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| IdxError::BadDims(format!("the shape {} is too large", shape_string(&shape))))? as u64;
    let mut bytes = Vec::new();
    reader.by_ref().take(expected).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < expected {
        return Err(IdxError::Truncated { expected, found: bytes.len() as u64 });
    }
    if reader.read(&mut [0u8; 1])? != 0 {
        return Err(IdxError::TrailingBytes);
    }
    bytes.chunks_exact_mut(dtype.size()).for_each(|c| c.reverse());
    Array::new(shape, dtype, bytes).map_err(|e| IdxError::BadDims(e.to_string()))
}

/// Reads into `buf` until it is full or the stream ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes `array` as an uncompressed IDX stream (uint8, int8, int16, int32, float32, float64;
/// at most 255 dimensions, each below 2^32).
pub fn write_idx(mut writer: impl Write, array: &Array) -> Result<(), IdxError> {
    let code = type_code(array.dtype()).ok_or(IdxError::UnsupportedDtype(array.dtype()))?;
    let shape = array.shape();
    let rank = u8::try_from(shape.len()).ok().filter(|&r| r > 0).ok_or_else(|| {
        IdxError::BadDims(format!("IDX holds 1 to 255 dimensions, not {}", shape.len()))
    })?;
    let mut header = vec![0, 0, code, rank];
    for &d in shape {
        let d = u32::try_from(d).map_err(|_| IdxError::BadDims(format!("the dimension {d} does not fit in 32 bits")))?;
        header.extend(d.to_be_bytes());
    }
    writer.write_all(&header)?;
    let mut data = array.bytes().to_vec();
    data.chunks_exact_mut(array.dtype().size()).for_each(|c| c.reverse());
    writer.write_all(&data)?;
    Ok(())
}
