//! IDX files: round trips of every element type, gzip, and errors for bad magic, dimensions
//! and truncation.

use qc_runtime::io::idx::{read_idx, read_idx_file, write_idx, IdxError};
use qc_runtime::io::{Array, Dtype};
use std::io::Write;
use std::path::Path;

fn idx_bytes(array: &Array) -> Vec<u8> {
    let mut v = Vec::new();
    write_idx(&mut v, array).unwrap();
    v
}

#[test]
fn round_trips_every_element_type() {
    let cases = [
        Array::new(vec![2, 3, 2], Dtype::U8, (0..12).map(|i| i * 20).collect()).unwrap(),
        Array::new(vec![3], Dtype::I8, vec![0x80, 0, 0x7F]).unwrap(),
        Array::new(vec![2], Dtype::I16, [-300i16, 300].iter().flat_map(|v| v.to_le_bytes()).collect()).unwrap(),
        Array::new(vec![1, 2], Dtype::I32, [i32::MIN, 7].iter().flat_map(|v| v.to_le_bytes()).collect()).unwrap(),
        Array::from_f32(vec![2, 2], &[1.5, -0.0, f32::INFINITY, 1e-40]).unwrap(),
        Array::new(vec![1], Dtype::F64, 0.1f64.to_le_bytes().to_vec()).unwrap(),
    ];
    for array in cases {
        assert_eq!(read_idx(idx_bytes(&array).as_slice()).unwrap(), array);
    }
}

#[test]
fn the_header_is_big_endian_as_mnist_writes_it() {
    let labels = Array::new(vec![3], Dtype::U8, vec![7, 2, 1]).unwrap();
    assert_eq!(idx_bytes(&labels), [0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]);
    let shorts = Array::new(vec![1], Dtype::I16, 0x0102i16.to_le_bytes().to_vec()).unwrap();
    assert_eq!(idx_bytes(&shorts), [0, 0, 0x0B, 1, 0, 0, 0, 1, 1, 2]);
}

#[test]
fn reads_plain_and_gzipped_files() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qc-io-idx");
    std::fs::create_dir_all(&dir).unwrap();
    let images = Array::new(vec![2, 2, 2], Dtype::U8, vec![0, 1, 2, 3, 4, 5, 6, 255]).unwrap();
    let bytes = idx_bytes(&images);
    std::fs::write(dir.join("plain-idx3-ubyte"), &bytes).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    std::fs::write(dir.join("zipped-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    assert_eq!(read_idx_file(&dir.join("plain-idx3-ubyte")).unwrap(), images);
    assert_eq!(read_idx_file(&dir.join("zipped-idx3-ubyte.gz")).unwrap(), images);
    std::fs::write(dir.join("short"), [0u8]).unwrap();
    assert!(matches!(read_idx_file(&dir.join("short")), Err(IdxError::BadMagic(_))));
    assert!(matches!(read_idx_file(&dir.join("missing")), Err(IdxError::Io(_))));
}

#[test]
fn malformed_files_are_errors_with_reasons() {
    let good = idx_bytes(&Array::new(vec![2, 3], Dtype::U8, vec![1; 6]).unwrap());
    let message = |bytes: &[u8]| read_idx(bytes).unwrap_err().to_string();
    assert_eq!(message(b"\x93NUMPY.."), "not an IDX file: it starts with 93 4e 55 4d, not 00 00 <type> <dims>");
    assert_eq!(message(&[0, 0, 0x0A, 1, 0, 0, 0, 0]), "unknown IDX element type 0x0a (known: 08 09 0b 0c 0d 0e)");
    assert_eq!(message(&[0, 0, 0x08, 0]), "bad IDX dimensions: zero dimensions");
    assert_eq!(message(&[0, 0, 0x08, 2, 0, 0, 0, 1]), "bad IDX dimensions: the file ends inside the 2 dimension sizes");
    let huge = [0, 0, 0x0E, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    assert!(message(&huge).contains("is too large") || message(&huge).contains("truncated"), "{}", message(&huge));
    assert_eq!(
        message(&good[..good.len() - 1]),
        "the file is truncated: the dimensions need 6 data bytes but only 5 follow the header"
    );
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(read_idx(longer.as_slice()), Err(IdxError::TrailingBytes)));
    for len in 0..good.len() {
        assert!(read_idx(&good[..len]).is_err(), "{len} bytes");
    }
    let bf = Array::new(vec![1], Dtype::BF16, vec![0, 0]).unwrap();
    assert_eq!(write_idx(Vec::new(), &bf).unwrap_err().to_string(), "IDX cannot store bfloat16 elements");
    let scalar = Array::new(vec![], Dtype::U8, vec![1]).unwrap();
    assert!(write_idx(Vec::new(), &scalar).unwrap_err().to_string().contains("1 to 255 dimensions"));
}
