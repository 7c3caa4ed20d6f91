//! Weight files: safetensors written by `write_safetensors` and by hand, `.npz` and `.npy`;
//! the errors for missing files and names, wrong shapes and dtypes; malformed files never panic.

use half::{bf16, f16};
use qc_runtime::io::npy::write_array;
use qc_runtime::io::{write_safetensors, Array, Dtype, IoError, WeightFile};
use qc_runtime::numerics::RandomStream;
use qc_runtime::tensor::Tensor;
use std::io::Write;
use std::path::{Path, PathBuf};

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qc-io-weights").join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tensor(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(|i| i as f32 * 0.25 - 1.0).collect()).unwrap()
}

/// A safetensors file written by hand: `(name, dtype, shape, little-endian bytes)`.
fn safetensors_bytes(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut header = Vec::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            shape.join(","),
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend_from_slice(bytes);
    }
    let mut json = format!("{{{}}}", header.join(",")).into_bytes();
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(data);
    out
}

fn le<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

fn open_bytes(name: &str, bytes: &[u8]) -> Result<WeightFile, IoError> {
    WeightFile::from_bytes(Path::new(name), bytes)
}

#[test]
fn safetensors_round_trip_by_name() {
    let dir = scratch("round_trip");
    let path = dir.join("w.safetensors");
    let (w, b, s) = (tensor(&[3, 4]), tensor(&[3]), Tensor::scalar(6.0));
    write_safetensors(&path, &[("w1", &w), ("b1", &b), ("alpha", &s)]).unwrap();
    let file = WeightFile::open(&path).unwrap();
    assert_eq!(file.names().collect::<Vec<_>>(), ["alpha", "b1", "w1"]);
    assert_eq!(file.get("w1", &[3, 4]).unwrap(), w);
    assert_eq!(file.get("b1", &[3]).unwrap(), b);
    assert_eq!(file.get("alpha", &[]).unwrap(), s);
    assert_eq!(file.shape_of("w1"), Some(&[3, 4][..]));
    let e = write_safetensors(&path, &[("w", &w), ("w", &b)]).unwrap_err().to_string();
    assert!(e.ends_with("the tensor name `w` is given twice"), "{e}");
}

#[test]
fn missing_files_and_names_say_what_is_there() {
    let e = WeightFile::open(Path::new("/nonexistent/w.safetensors")).unwrap_err().to_string();
    assert_eq!(e, "`/nonexistent/w.safetensors` does not exist");

    let names = ["w1", "b1", "w2", "b2", "w3", "b3", "conv"];
    let bytes = safetensors_bytes(&names.map(|n| (n, "F32", &[1usize][..], 1.0f32.to_le_bytes().to_vec())));
    let file = open_bytes("m.safetensors", &bytes).unwrap();
    let e = file.get("w4", &[1]).unwrap_err();
    assert!(matches!(&e, IoError::MissingTensor { suggestion: Some(s), .. } if s == "w1"), "{e:?}");
    assert_eq!(e.to_string(), "`m.safetensors` has no tensor `w4`; did you mean `w1`? (closest names: w1, w2, w3, b1, b2)");
    let e = file.get("weights", &[1]).unwrap_err().to_string();
    assert!(!e.contains("did you mean"), "{e}");
    let e = file.get_single(&[1]).unwrap_err().to_string();
    assert!(e.starts_with("`m.safetensors` holds 7 tensors (b1, b2, b3, conv, w1, w2, w3); name the one"), "{e}");
    let empty = open_bytes("e.safetensors", &safetensors_bytes(&[])).unwrap();
    assert_eq!(empty.get("w", &[1]).unwrap_err().to_string(), "`e.safetensors` has no tensor `w` (the file holds no tensors)");
}

#[test]
fn wrong_shapes_show_both_shapes() {
    let bytes = safetensors_bytes(&[("w1", "F32", &[64, 128], vec![0; 64 * 128 * 4])]);
    let file = open_bytes("m.safetensors", &bytes).unwrap();
    let e = file.get("w1", &[128, 64]).unwrap_err().to_string();
    assert_eq!(
        e,
        "tensor `w1` in `m.safetensors` has shape [64, 128], but the model declares [128, 64] \
         (transposed? dense weights are [out, in], conv2d weights [O, KH, KW, C])"
    );
    let e = file.get("w1", &[64, 128, 1]).unwrap_err().to_string();
    assert!(e.ends_with("has shape [64, 128], but the model declares [64, 128, 1]"), "{e}");
}

#[test]
fn dtypes_load_exactly_or_say_why_not() {
    let halves = [1.5f32, -0.000061035156, 65504.0];
    let bytes = safetensors_bytes(&[
        ("h", "F16", &[3], le(&halves.map(f16::from_f32), f16::to_le_bytes)),
        ("b", "BF16", &[3], le(&halves.map(bf16::from_f32), bf16::to_le_bytes)),
        ("d_exact", "F64", &[2], le(&[0.5f64, 3.0], f64::to_le_bytes)),
        ("d_inexact", "F64", &[2], le(&[0.5f64, 0.1], f64::to_le_bytes)),
        ("i", "I64", &[2], le(&[-7i64, 1 << 24], i64::to_le_bytes)),
        ("f8", "F8_E4M3", &[2], vec![0x38, 0x40]),
    ]);
    let file = open_bytes("d.safetensors", &bytes).unwrap();
    assert_eq!(file.get("h", &[3]).unwrap().data(), halves.map(|x| f16::from_f32(x).to_f32()));
    assert_eq!(file.get("b", &[3]).unwrap().data(), halves.map(|x| bf16::from_f32(x).to_f32()));
    assert_eq!(file.get("d_exact", &[2]).unwrap().data(), [0.5, 3.0]);
    assert_eq!(file.get("i", &[2]).unwrap().data(), [-7.0, 16_777_216.0]);
    let e = file.get("d_inexact", &[2]).unwrap_err();
    assert!(matches!(e, IoError::WrongDtype { .. }));
    assert_eq!(
        e.to_string(),
        "tensor `d_inexact` in `d.safetensors`: the float64 value 1e-1 (element 1) is not exactly representable \
         in float32; convert the array to float32 before saving it (numpy: `a.astype(np.float32)`)"
    );
    let e = file.get("f8", &[2]).unwrap_err().to_string();
    assert!(e.starts_with("tensor `f8` in `d.safetensors`: the dtype F8_E4M3 cannot be loaded"), "{e}");
}

#[test]
fn npz_members_load_by_name_stored_and_deflated() {
    let dir = scratch("npz");
    for method in [zip::CompressionMethod::Stored, zip::CompressionMethod::Deflated] {
        let path = dir.join(format!("w-{method:?}.npz"));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default().compression_method(method).large_file(true);
        let members = [
            ("w1.npy", Array::from_f32(vec![2, 3], tensor(&[2, 3]).data()).unwrap()),
            ("layer/b1.npy", Array::new(vec![2], Dtype::F16, le(&[f16::ONE, f16::NEG_ONE], f16::to_le_bytes)).unwrap()),
        ];
        for (name, array) in &members {
            zip.start_file(*name, options).unwrap();
            let mut npy = Vec::new();
            write_array(&mut npy, array).unwrap();
            zip.write_all(&npy).unwrap();
        }
        zip.finish().unwrap();
        let file = WeightFile::open(&path).unwrap();
        assert_eq!(file.names().collect::<Vec<_>>(), ["layer/b1", "w1"]);
        assert_eq!(file.get("w1", &[2, 3]).unwrap(), tensor(&[2, 3]));
        assert_eq!(file.get("layer/b1", &[2]).unwrap().data(), [1.0, -1.0]);
        let e = file.get("w2", &[2, 3]).unwrap_err().to_string();
        assert!(e.contains("did you mean `w1`?"), "{e}");
    }
}

#[test]
fn a_npy_file_is_one_tensor_named_by_its_stem() {
    let dir = scratch("npy");
    let path = dir.join("c1.npy");
    let mut bytes = Vec::new();
    write_array(&mut bytes, &Array::from_f32(vec![2, 1, 1, 3], tensor(&[2, 1, 1, 3]).data()).unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let file = WeightFile::open(&path).unwrap();
    assert_eq!(file.get_single(&[2, 1, 1, 3]).unwrap(), tensor(&[2, 1, 1, 3]));
    assert_eq!(file.get("c1", &[2, 1, 1, 3]).unwrap(), tensor(&[2, 1, 1, 3]));
    assert!(file.get_single(&[6]).unwrap_err().to_string().contains("has shape [2, 1, 1, 3], but the model declares [6]"));
}

#[test]
fn other_files_are_not_weight_files() {
    for bytes in [&b""[..], b"hello world, this is text", b"\x08\x00\x00\x00\x00\x00\x00\x00[1,2,3] "] {
        let e = open_bytes("x.bin", bytes).unwrap_err();
        assert!(matches!(e, IoError::Malformed { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.starts_with("`x.bin`: not a safetensors, .npz or .npy file (as safetensors: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let e = open_bytes("x.npz", b"PK\x03\x04 broken zip").unwrap_err().to_string();
    assert!(e.starts_with("`x.npz`: not a valid .npz file: "), "{e}");
    let e = open_bytes("x.npy", b"\x93NUMPY\x01\x00").unwrap_err().to_string();
    assert!(e.starts_with("`x.npy`: not a valid .npy file: "), "{e}");
}

#[test]
fn every_truncation_of_a_safetensors_file_is_an_error() {
    let bytes = safetensors_bytes(&[("a", "F32", &[2, 2], vec![0; 16]), ("b", "F16", &[3], vec![0; 6])]);
    assert!(open_bytes("t.safetensors", &bytes).is_ok());
    for len in 0..bytes.len() {
        assert!(open_bytes("t.safetensors", &bytes[..len]).is_err(), "{len} bytes");
    }
}

/// Flips bytes at seeded random positions (most in the header) and opens the result: any
/// outcome but a panic is fine, and what loads must be self-consistent.
fn mutations_never_panic(bytes: &[u8], header_end: usize, trials: u64) {
    let rng = RandomStream::new(99, 1);
    for trial in 0..trials {
        let mut m = bytes.to_vec();
        for k in 0..1 + rng.word(trial, 0) % 3 {
            let limit = if rng.word(trial, 1 + k).is_multiple_of(4) { m.len() } else { header_end };
            let at = rng.word(trial, 10 + k) as usize % limit;
            m[at] = rng.word(trial, 20 + k) as u8;
        }
        if let Ok(file) = open_bytes("m", &m) {
            for name in file.names() {
                let shape = file.shape_of(name).unwrap_or_default().to_vec();
                if let Ok(t) = file.get(name, &shape) {
                    assert_eq!(t.len(), shape.iter().product::<usize>());
                }
            }
        }
    }
}

#[test]
fn mutated_safetensors_headers_never_panic() {
    let bytes = safetensors_bytes(&[("weight", "F32", &[2, 3], vec![0; 24]), ("bias", "BF16", &[3], vec![0; 6])]);
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    mutations_never_panic(&bytes, header_end, 4000);
}

#[test]
fn mutated_and_truncated_npz_files_never_panic() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("w.npy", options).unwrap();
    let mut npy = Vec::new();
    write_array(&mut npy, &Array::from_f32(vec![4, 4], &[0.5; 16]).unwrap()).unwrap();
    zip.write_all(&npy).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    assert_eq!(open_bytes("w.npz", &bytes).unwrap().get("w", &[4, 4]).unwrap().data(), [0.5; 16]);
    for len in 0..bytes.len() {
        assert!(open_bytes("w.npz", &bytes[..len]).is_err(), "{len} bytes");
    }
    mutations_never_panic(&bytes, bytes.len(), 3000);
}
