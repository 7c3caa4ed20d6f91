//! Reading and writing `.npy` files (NumPy format versions 1.0, 2.0 and 3.0): float32 arrays of
//! one or two dimensions ([`read_f32`], [`write_f32`]), and arrays of any rank and numeric dtype
//! ([`read_array`], [`write_array`], giving an [`Array`]).
//!
//! The reader parses the header's Python dict literal itself (`descr`, `fortran_order`,
//! `shape`), accepts little- and big-endian data in C or Fortran order and
//! returns it in row-major order. Every malformed input gives an [`NpyError`]: sizes in
//! the header are checked for overflow and memory grows with the bytes actually present, never
//! with what the header claims. The writer produces version 1.0, little-endian, C order.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::array::{Array, Dtype};
use crate::tensor::element_count;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A row-major float32 array of rank 1 or 2.
#[derive(Clone, Debug, PartialEq)]
pub struct F32Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Why a `.npy` file cannot be read (or written).
#[derive(Debug)]
pub enum NpyError {
    Io(io::Error),
    /// The file does not start with the `.npy` magic string.
    NotNpy,
    /// A format version this reader does not know.
    UnsupportedVersion(u8, u8),
    /// The header is not the dict literal the format prescribes.
    BadHeader(String),
    /// The array's element type is not float32 (the `descr` string as written).
    NotFloat32(String),
    /// An element type that [`read_array`] does not know (the `descr` string as written).
    UnsupportedDtype(String),
    /// The array's rank is not 1 or 2.
    UnsupportedRank(Vec<usize>),
    /// The data is shorter than the header's shape requires.
    Truncated { expected: u64, found: u64 },
    /// Bytes after the data.
    TrailingBytes,
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NpyError::Io(e) => write!(f, "{e}"),
            NpyError::NotNpy => f.write_str("not a .npy file (it does not start with the NumPy magic string)"),
            NpyError::UnsupportedVersion(major, minor) => {
                write!(f, "unsupported .npy format version {major}.{minor} (known: 1.0, 2.0, 3.0)")
            }
            NpyError::BadHeader(why) => write!(f, "malformed .npy header: {why}"),
            NpyError::NotFloat32(descr) => write!(f, "the array's dtype is `{descr}`, but only float32 (`<f4`) is supported"),
            NpyError::UnsupportedDtype(descr) => write!(
                f,
                "the array's dtype `{descr}` is not supported (supported: bool, int8..int64, uint8..uint64, float16, float32, float64)"
            ),
            NpyError::UnsupportedRank(shape) => {
                write!(f, "the array has shape {}, but only 1-D and 2-D arrays are supported", shape_text(shape))
            }
            NpyError::Truncated { expected, found } => {
                write!(f, "the file is truncated: the shape needs {expected} data bytes but only {found} follow the header")
            }
            NpyError::TrailingBytes => f.write_str("the file has bytes after the array data the header describes"),
        }
    }
}

impl std::error::Error for NpyError {}

impl From<io::Error> for NpyError {
    fn from(e: io::Error) -> Self {
        NpyError::Io(e)
    }
}

/// A shape as NumPy prints it: `(3,)`, `(2, 3)`, `()`.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// Reads a float32 array of rank 1 or 2 from the file at `path`.
pub fn read_f32_file(path: &Path) -> Result<F32Array, NpyError> {
    read_f32(BufReader::new(File::open(path)?))
}

/// Reads a float32 array of rank 1 or 2 from a complete `.npy` stream.
pub fn read_f32(mut reader: impl Read) -> Result<F32Array, NpyError> {
    let header = read_header(&mut reader)?;
    let little_endian = match header.descr.as_str() {
        "<f4" => true,
        ">f4" => false,
        _ => return Err(NpyError::NotFloat32(header.descr)),
    };
    if !(1..=2).contains(&header.shape.len()) {
        return Err(NpyError::UnsupportedRank(header.shape));
    }
    let array = read_body(reader, header, Dtype::F32, little_endian)?;
    let data = array.bytes().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(F32Array { shape: array.shape().to_vec(), data })
}

/// Reads an array of any rank and of any [`Dtype`] from a complete `.npy` stream, in row-major
/// order. NumPy's `descr` strings map to dtypes as `<f4` → float32, `|u1` → uint8, `|b1` → bool,
/// and so on, little- or big-endian; other element types give [`NpyError::UnsupportedDtype`].
pub fn read_array(mut reader: impl Read) -> Result<Array, NpyError> {
    let header = read_header(&mut reader)?;
    let (dtype, little_endian) = dtype_of_descr(&header.descr).ok_or_else(|| NpyError::UnsupportedDtype(header.descr.clone()))?;
    read_body(reader, header, dtype, little_endian)
}

/// Reads the file at `path` with [`read_array`].
pub fn read_array_file(path: &Path) -> Result<Array, NpyError> {
    read_array(BufReader::new(File::open(path)?))
}

/// The dtype and byte order a `descr` string names (bfloat16 has no NumPy descr).
fn dtype_of_descr(descr: &str) -> Option<(Dtype, bool)> {
    let (order, code) = descr.split_at_checked(1)?;
    let dtype = match code {
        "b1" => Dtype::Bool,
        "u1" => Dtype::U8,
        "u2" => Dtype::U16,
        "u4" => Dtype::U32,
        "u8" => Dtype::U64,
        "i1" => Dtype::I8,
        "i2" => Dtype::I16,
        "i4" => Dtype::I32,
        "i8" => Dtype::I64,
        "f2" => Dtype::F16,
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        _ => return None,
    };
    match (order, dtype.size()) {
        ("<", _) => Some((dtype, true)),
        (">", _) => Some((dtype, false)),
        ("|", 1) => Some((dtype, true)),
        _ => None,
    }
}

/// The `descr` NumPy writes for a dtype (little-endian).
fn descr_of_dtype(dtype: Dtype) -> Option<&'static str> {
    Some(match dtype {
        Dtype::Bool => "|b1",
        Dtype::U8 => "|u1",
        Dtype::U16 => "<u2",
        Dtype::U32 => "<u4",
        Dtype::U64 => "<u8",
        Dtype::I8 => "|i1",
        Dtype::I16 => "<i2",
        Dtype::I32 => "<i4",
        Dtype::I64 => "<i8",
        Dtype::F16 => "<f2",
        Dtype::F32 => "<f4",
        Dtype::F64 => "<f8",
        Dtype::BF16 => return None,
    })
}

/// Reads the magic string, version and header dict.
fn read_header(reader: &mut impl Read) -> Result<Header, NpyError> {
    let mut preamble = [0u8; 8];
    read_header_bytes(reader, &mut preamble)?;
    if &preamble[..6] != MAGIC {
        return Err(NpyError::NotNpy);
    }
    let (major, minor) = (preamble[6], preamble[7]);
    let header_len = match major {
        1 => {
            let mut len = [0u8; 2];
            read_header_bytes(reader, &mut len)?;
            u16::from_le_bytes(len) as usize
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            read_header_bytes(reader, &mut len)?;
            u32::from_le_bytes(len) as usize
        }
        _ => return Err(NpyError::UnsupportedVersion(major, minor)),
    };
    let mut header = Vec::new();
    reader.by_ref().take(header_len as u64).read_to_end(&mut header)?;
    if header.len() < header_len {
        return Err(NpyError::BadHeader(format!("the file ends inside the {header_len}-byte header")));
    }
    let header = std::str::from_utf8(&header).map_err(|_| NpyError::BadHeader("the header is not UTF-8 text".into()))?;
    Header::parse(header)
}

/// Reads the data the header describes (and checks that nothing follows it), returning it
/// little-endian in row-major order.
fn read_body(mut reader: impl Read, header: Header, dtype: Dtype, little_endian: bool) -> Result<Array, NpyError> {
    let size = dtype.size();
    let too_large = || NpyError::BadHeader(format!("the shape {} is too large", shape_text(&header.shape)));
    let count = element_count(&header.shape).ok_or_else(too_large)?;
    let expected = count.checked_mul(size).ok_or_else(too_large)? as u64;

    let mut bytes = Vec::new();
    reader.by_ref().take(expected).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < expected {
        return Err(NpyError::Truncated { expected, found: bytes.len() as u64 });
    }
    if reader.read(&mut [0u8; 1])? != 0 {
        return Err(NpyError::TrailingBytes);
    }
    if !little_endian {
        bytes.chunks_exact_mut(size).for_each(|c| c.reverse());
    }
    if header.fortran_order && header.shape.len() > 1 {
        bytes = fortran_to_row_major(&bytes, &header.shape, size);
    }
    Array::new(header.shape, dtype, bytes).map_err(|e| NpyError::BadHeader(e.to_string()))
}

/// Reorders column-major elements (the first axis varies fastest) into row-major order.
fn fortran_to_row_major(stored: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    // Column-major strides, in elements: stride[k] = shape[0] · ... · shape[k-1].
    let mut strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(stored.len());
    let mut index = vec![0usize; shape.len()];
    for _ in 0..stored.len() / size {
        let offset: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&stored[offset * size..(offset + 1) * size]);
        // Advance the row-major multi-index: the last axis fastest.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// Reads exactly `buf.len()` bytes of the preamble, reporting a short file as a format error.
fn read_header_bytes(reader: &mut impl Read, buf: &mut [u8]) -> Result<(), NpyError> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            NpyError::NotNpy
        } else {
            NpyError::Io(e)
        }
    })
}

/// Writes `data` of `shape` (rank 1 or 2, row-major) to the file at `path`.
pub fn write_f32_file(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let mut out = BufWriter::new(File::create(path)?);
    write_f32(&mut out, shape, data)?;
    out.flush()?;
    Ok(())
}

/// Writes `data` of `shape` (rank 1 or 2, row-major) as a version 1.0 `.npy` stream.
pub fn write_f32(writer: impl Write, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    if !(1..=2).contains(&shape.len()) {
        return Err(NpyError::UnsupportedRank(shape.to_vec()));
    }
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(NpyError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("shape {} holds {count} elements but {} were given", shape_text(shape), data.len()),
        )));
    }
    write_raw(writer, "<f4", shape, &data.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
}

/// Writes an array of any rank as a version 1.0 `.npy` stream (little-endian, C order).
/// bfloat16 has no NumPy `descr` and gives [`NpyError::UnsupportedDtype`].
pub fn write_array(writer: impl Write, array: &Array) -> Result<(), NpyError> {
    let descr = descr_of_dtype(array.dtype()).ok_or_else(|| NpyError::UnsupportedDtype(array.dtype().name().to_string()))?;
    write_raw(writer, descr, array.shape(), array.bytes())
}

fn write_raw(mut writer: impl Write, descr: &str, shape: &[usize], bytes: &[u8]) -> Result<(), NpyError> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}", shape_text(shape));
    // Pad with spaces so that the data starts at a multiple of 64 bytes; the header ends in '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', (64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| NpyError::BadHeader(format!("the header for shape {} is too long", shape_text(shape))))?;
    writer.write_all(MAGIC)?;
    writer.write_all(&[1, 0])?;
    writer.write_all(&header_len.to_le_bytes())?;
    writer.write_all(header.as_bytes())?;
    writer.write_all(bytes)?;
    Ok(())
}

/// The three entries of a `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of the Python literal subset that headers use.
#[derive(Debug)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(usize),
    /// A tuple or a list (structured dtypes write `descr` as a list).
    Sequence(Vec<Literal>),
}

impl Header {
    fn parse(text: &str) -> Result<Header, NpyError> {
        let mut p = LiteralParser { text, pos: 0, depth: 0 };
        let entries = p.dict()?;
        p.skip_space();
        if p.pos != text.len() {
            return Err(NpyError::BadHeader("unexpected text after the dict".into()));
        }
        let mut descr = None;
        let mut fortran_order = None;
        let mut shape = None;
        for (key, value) in entries {
            match (key.as_str(), value) {
                ("descr", Literal::Str(s)) => descr = Some(s),
                // A structured dtype: describe it by its kind.
                ("descr", Literal::Sequence(_)) => descr = Some("structured".to_string()),
                ("fortran_order", Literal::Bool(b)) => fortran_order = Some(b),
                ("shape", Literal::Sequence(dims)) => {
                    let dims = dims
                        .into_iter()
                        .map(|d| match d {
                            Literal::Int(n) => Ok(n),
                            _ => Err(NpyError::BadHeader("`shape` must be a tuple of integers".into())),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    shape = Some(dims);
                }
                (k @ ("descr" | "fortran_order" | "shape"), _) => {
                    return Err(NpyError::BadHeader(format!("`{k}` has a value of the wrong type")));
                }
                (other, _) => return Err(NpyError::BadHeader(format!("unexpected key `{other}`"))),
            }
        }
        let missing = |k: &str| NpyError::BadHeader(format!("the key `{k}` is missing"));
        Ok(Header {
            descr: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
        })
    }
}

/// A recursive-descent parser for the header's dict literal.
struct LiteralParser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

/// Nesting deeper than this is not a header NumPy writes.
const MAX_DEPTH: usize = 32;

impl LiteralParser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn error(&self, what: &str) -> NpyError {
        NpyError::BadHeader(format!("expected {what} at byte {}", self.pos))
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), NpyError> {
        if self.eat(c) { Ok(()) } else { Err(self.error(&format!("`{c}`"))) }
    }

    fn dict(&mut self) -> Result<Vec<(String, Literal)>, NpyError> {
        self.expect('{')?;
        let mut entries = Vec::new();
        while !self.eat('}') {
            self.skip_space();
            let key = self.string()?;
            self.expect(':')?;
            let value = self.value()?;
            entries.push((key, value));
            if !self.eat(',') {
                self.expect('}')?;
                break;
            }
        }
        Ok(entries)
    }

    fn string(&mut self) -> Result<String, NpyError> {
        let quote = match self.rest().chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(self.error("a quoted string")),
        };
        let body = &self.rest()[1..];
        let Some(end) = body.find(quote) else {
            return Err(self.error("a closing quote"));
        };
        let s = body[..end].to_string();
        self.pos += 1 + end + 1;
        Ok(s)
    }

    fn value(&mut self) -> Result<Literal, NpyError> {
        self.skip_space();
        let rest = self.rest();
        if rest.starts_with('\'') || rest.starts_with('"') {
            return self.string().map(Literal::Str);
        }
        for (word, b) in [("True", true), ("False", false)] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return Ok(Literal::Bool(b));
            }
        }
        if let Some(close) = match rest.chars().next() {
            Some('(') => Some(')'),
            Some('[') => Some(']'),
            _ => None,
        } {
            return self.sequence(close);
        }
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(self.error("a value"));
        }
        let n = rest[..digits].parse::<usize>().map_err(|_| NpyError::BadHeader("a dimension is too large".into()))?;
        self.pos += digits;
        // Python 2 wrote long integers with an `L` suffix.
        if self.rest().starts_with('L') {
            self.pos += 1;
        }
        Ok(Literal::Int(n))
    }

    fn sequence(&mut self, close: char) -> Result<Literal, NpyError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(NpyError::BadHeader("nesting too deep".into()));
        }
        self.pos += 1; // the opening bracket
        let mut items = Vec::new();
        while !self.eat(close) {
            items.push(self.value()?);
            if !self.eat(',') {
                self.expect(close)?;
                break;
            }
        }
        self.depth -= 1;
        Ok(Literal::Sequence(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(shape: &[usize], data: &[f32]) -> Vec<u8> {
        let mut v = Vec::new();
        write_f32(&mut v, shape, data).unwrap();
        v
    }

    /// A `.npy` stream with a hand-written header (padding and lengths as NumPy writes them).
    fn with_header(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut header = dict.to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut v = MAGIC.to_vec();
        v.extend([1, 0]);
        v.extend((header.len() as u16).to_le_bytes());
        v.extend(header.as_bytes());
        v.extend(data);
        v
    }

    #[test]
    fn writes_what_numpy_writes_and_reads_it_back() {
        let data = [1.0f32, -2.5, f32::NAN, f32::INFINITY, 1e-40, -0.0];
        let v = bytes_of(&[2, 3], &data);
        assert_eq!(&v[..10], b"\x93NUMPY\x01\x00v\x00");
        assert!(v[10..].starts_with(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert_eq!((v.len() - 24) % 64, 0);
        let a = read_f32(v.as_slice()).unwrap();
        assert_eq!(a.shape, [2, 3]);
        let bits = |d: &[f32]| d.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.data), bits(&data));
        assert_eq!(read_f32(bytes_of(&[0], &[]).as_slice()).unwrap().shape, [0]);
    }

    #[test]
    fn reads_fortran_order_big_endian_and_version_2() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let col_major: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = read_f32(with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", &col_major).as_slice()).unwrap();
        assert_eq!(a.data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

        let be: Vec<u8> = [1.5f32, -3.0].iter().flat_map(|x| x.to_be_bytes()).collect();
        let a = read_f32(with_header("{\"descr\": \">f4\", \"shape\": (2L,), \"fortran_order\": False}", &be).as_slice()).unwrap();
        assert_eq!(a.data, [1.5, -3.0]);

        let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n";
        let mut v = MAGIC.to_vec();
        v.extend([2, 0]);
        v.extend((dict.len() as u32).to_le_bytes());
        v.extend(dict);
        v.extend(7.0f32.to_le_bytes());
        assert_eq!(read_f32(v.as_slice()).unwrap().data, [7.0]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let v = bytes_of(&[3], &[1.0, 2.0, 3.0]);
        for len in 0..v.len() {
            assert!(read_f32(&v[..len]).is_err(), "{len} bytes");
        }
        let e = read_f32(&v[..v.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("truncated: the shape needs 12 data bytes but only 11"), "{e}");
        let mut longer = v.clone();
        longer.push(0);
        assert!(matches!(read_f32(longer.as_slice()), Err(NpyError::TrailingBytes)));
    }

    #[test]
    fn rejects_other_dtypes_ranks_and_malformed_headers() {
        let cases: &[(&str, &str)] = &[
            ("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", "dtype is `<i8`"),
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", "dtype is `<f8`"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", "dtype is `structured`"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", "shape (1, 2, 3)"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", "shape ()"),
            ("{'descr': '<f4', 'fortran_order': False, }", "`shape` is missing"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }", "`fortran_order` has a value of the wrong type"),
            ("{'descr': '<f4', 'fortran_order': None, 'shape': (3,), }", "expected a value"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': ('a',), }", "tuple of integers"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "too large"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", "too large"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", "unexpected key `x`"),
            ("{'descr': '<f4' 'fortran_order': False}", "expected `}`"),
            ("{'descr: '<f4'}", "expected `:`"),
            ("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "expected `{`"),
        ];
        for (dict, needle) in cases {
            let e = read_f32(with_header(dict, &[0; 12]).as_slice()).unwrap_err().to_string();
            assert!(e.contains(needle), "{dict}: {e}");
        }
        let deep = format!("{{'descr': {}", "(".repeat(100));
        assert!(read_f32(with_header(&deep, &[]).as_slice()).unwrap_err().to_string().contains("too deep"));
        assert!(matches!(read_f32(&b"PK\x03\x04 not npy"[..]), Err(NpyError::NotNpy)));
        let mut v = bytes_of(&[1], &[0.0]);
        v[6] = 9;
        assert!(read_f32(v.as_slice()).unwrap_err().to_string().contains("version 9.0"));
    }
}
