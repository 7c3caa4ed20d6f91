//! The general `.npy` reader and writer: every dtype, any rank, both byte orders, Fortran order.

use qc_runtime::io::npy::{read_array, read_f32, write_array, NpyError};
use qc_runtime::io::{Array, Dtype};

/// A `.npy` stream with a hand-written header (padded as NumPy pads it).
fn with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend((header.len() as u16).to_le_bytes());
    v.extend(header.as_bytes());
    v.extend(data);
    v
}

#[test]
fn every_dtype_round_trips_through_write_array() {
    let dtypes = [
        Dtype::Bool, Dtype::U8, Dtype::U16, Dtype::U32, Dtype::U64, Dtype::I8, Dtype::I16, Dtype::I32, Dtype::I64,
        Dtype::F16, Dtype::F32, Dtype::F64,
    ];
    for dtype in dtypes {
        let bytes: Vec<u8> = (0..6 * dtype.size()).map(|i| if dtype == Dtype::Bool { (i % 2) as u8 } else { i as u8 }).collect();
        let array = Array::new(vec![1, 2, 3], dtype, bytes).unwrap();
        let mut file = Vec::new();
        write_array(&mut file, &array).unwrap();
        assert_eq!(read_array(file.as_slice()).unwrap(), array, "{dtype}");
    }
    // float32 arrays of rank 1 or 2 also read with the float32 reader.
    let mut file = Vec::new();
    write_array(&mut file, &Array::from_f32(vec![2], &[1.0, 2.0]).unwrap()).unwrap();
    assert_eq!(read_f32(file.as_slice()).unwrap().data, [1.0, 2.0]);
    let bf = Array::new(vec![1], Dtype::BF16, vec![0, 0]).unwrap();
    assert!(matches!(write_array(Vec::new(), &bf), Err(NpyError::UnsupportedDtype(_))));
}

#[test]
fn big_endian_and_fortran_order_come_back_row_major_little_endian() {
    // A [2, 3, 2] int16 array stored column-major and big-endian: element (i, j, k) = 100i + 10j + k.
    let mut stored = Vec::new();
    for k in 0..2 {
        for j in 0..3 {
            for i in 0..2 {
                stored.extend((100 * i + 10 * j + k as i16).to_be_bytes());
            }
        }
    }
    let file = with_header("{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3, 2), }", &stored);
    let array = read_array(file.as_slice()).unwrap();
    assert_eq!(array.shape(), &[2, 3, 2]);
    let values: Vec<f32> = array.to_f32_exact().unwrap();
    let expected: Vec<f32> = (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..2).map(move |k| (100 * i + 10 * j + k) as f32))).collect();
    assert_eq!(values, expected);
    let scalar = with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", &2.5f64.to_le_bytes());
    assert_eq!(read_array(scalar.as_slice()).unwrap().shape(), &[] as &[usize]);
}

#[test]
fn unknown_dtypes_and_truncation_are_errors() {
    for descr in ["<c8", "<U3", "|O", "=f4", ">b1x", ""] {
        let e = read_array(with_header(&format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"), &[0; 16]).as_slice())
            .unwrap_err();
        assert!(matches!(&e, NpyError::UnsupportedDtype(d) if d == descr), "{descr}: {e}");
        assert!(e.to_string().contains("is not supported (supported: bool, int8..int64"), "{e}");
    }
    let file = with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", &[0; 32]);
    for len in 0..file.len() {
        assert!(read_array(&file[..len]).is_err(), "{len} bytes");
    }
    assert!(read_array(file.as_slice()).is_ok());
}
