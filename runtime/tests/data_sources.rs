//! User data sources: `.npz` with a split or with `x`/`y`, directories of `.npy` or IDX files,
//! and the errors for everything else.

use qc_runtime::data::source::USER_SPLIT_SEED;
use qc_runtime::data::{DataError, DataSource, Dataset, Split};
use qc_runtime::io::idx::write_idx;
use qc_runtime::io::npy::write_array;
use qc_runtime::io::{Array, Dtype};
use qc_runtime::tensor::Tensor;
use std::io::Write;
use std::path::{Path, PathBuf};

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qc-data-sources").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn npy(array: &Array) -> Vec<u8> {
    let mut v = Vec::new();
    write_array(&mut v, array).unwrap();
    v
}

fn f32s(shape: &[usize], first: f32) -> Array {
    let n: usize = shape.iter().product();
    Array::from_f32(shape.to_vec(), &(0..n).map(|i| first + i as f32).collect::<Vec<_>>()).unwrap()
}

fn i64s(values: &[i64]) -> Array {
    Array::new(vec![values.len()], Dtype::I64, values.iter().flat_map(|v| v.to_le_bytes()).collect()).unwrap()
}

fn write_npz(path: &Path, arrays: &[(&str, Array)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, array) in arrays {
        zip.start_file(format!("{name}.npy"), zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(&npy(array)).unwrap();
    }
    zip.finish().unwrap();
}

fn load(path: &Path) -> Result<Split, DataError> {
    DataSource::parse(path.to_str().unwrap())?.load()
}

#[test]
fn npz_with_a_split_keeps_it() {
    let dir = scratch("npz_split");
    let path = dir.join("d.npz");
    write_npz(
        &path,
        &[("x_train", f32s(&[3, 2], 0.0)), ("y_train", i64s(&[0, 1, 1])), ("x_test", f32s(&[2, 2], 100.0)), ("y_test", i64s(&[4, 0]))],
    );
    assert_eq!(DataSource::parse(path.to_str().unwrap()).unwrap(), DataSource::Npz(path.clone()));
    let split = load(&path).unwrap();
    assert_eq!(split.train.x().data(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(split.train.y(), [0, 1, 1]);
    assert_eq!(split.test.x().shape(), &[2, 2]);
    assert_eq!(split.test.y(), [4, 0]);
    assert_eq!((split.train.classes(), split.test.classes()), (5, 5));
}

#[test]
fn npz_with_x_and_y_gets_the_seeded_split() {
    let dir = scratch("npz_xy");
    let path = dir.join("d.npz");
    let labels: Vec<i64> = (0..23).map(|i| i % 4).collect();
    // uint8 samples are pixels: scaled by 1/255.
    let x = Array::new(vec![23, 2, 2], Dtype::U8, (0..92).map(|i| (i * 2) as u8).collect()).unwrap();
    write_npz(&path, &[("x", x), ("y", i64s(&labels))]);
    let split = load(&path).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (18, 5));
    let all = Dataset::new(
        Tensor::new(vec![23, 2, 2], (0..92).map(|i| (i * 2) as f32 / 255.0).collect()).unwrap(),
        labels.iter().map(|&l| l as u32).collect(),
        4,
    )
    .unwrap();
    assert_eq!(split, Split::seeded(&all, USER_SPLIT_SEED).unwrap());
}

#[test]
fn a_directory_of_npy_files() {
    let dir = scratch("npy_dir");
    std::fs::write(dir.join("x.npy"), npy(&f32s(&[10, 3], 0.0))).unwrap();
    std::fs::write(dir.join("y.npy"), npy(&Array::new(vec![10], Dtype::U8, vec![1, 0, 2, 1, 0, 2, 1, 0, 2, 1]).unwrap())).unwrap();
    let split = load(&dir).unwrap();
    assert_eq!((split.train.len(), split.test.len(), split.train.classes()), (8, 2, 3));
    // Raw float samples are not scaled.
    let mut values: Vec<f32> = split.train.x().data().iter().chain(split.test.x().data()).copied().collect();
    values.sort_by(f32::total_cmp);
    assert_eq!(values, (0..30).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn a_directory_of_mnist_idx_files_some_gzipped() {
    let dir = scratch("idx_dir");
    let idx = |array: &Array| {
        let mut v = Vec::new();
        write_idx(&mut v, array).unwrap();
        v
    };
    let images = |n: usize, first: u8| Array::new(vec![n, 2, 3], Dtype::U8, (0..n * 6).map(|i| first.wrapping_add(i as u8)).collect()).unwrap();
    let labels = |values: &[u8]| Array::new(vec![values.len()], Dtype::U8, values.to_vec()).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx(&images(4, 0))).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&labels(&[5, 0, 4, 1]))).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&idx(&images(2, 200))).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&labels(&[7, 2]))).unwrap();

    let split = load(&dir).unwrap();
    assert_eq!(split.train.x().shape(), &[4, 2, 3, 1]);
    assert_eq!(split.test.x().shape(), &[2, 2, 3, 1]);
    assert_eq!(split.train.x().data()[..3], [0.0, 1.0 / 255.0, 2.0 / 255.0]);
    assert_eq!(split.test.x().data()[0], 200.0 / 255.0);
    assert_eq!(split.train.y(), [5, 0, 4, 1]);
    assert_eq!(split.test.classes(), 8);

    // A label file with one label too few.
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&labels(&[7]))).unwrap();
    assert_eq!(load(&dir).unwrap_err().to_string(), "the test part: `x` has 2 rows but `y` has 1 labels");
    // A corrupt image file names itself.
    std::fs::write(dir.join("train-images-idx3-ubyte"), [0u8, 0, 8, 3, 0, 0]).unwrap();
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte`: bad IDX dimensions"), "{e}");
}

#[test]
fn bad_sources_and_bad_arrays_are_errors() {
    let e = DataSource::parse("digit").unwrap_err().to_string();
    assert_eq!(e, "unknown data `digit`: not `digits` and no such file or directory; did you mean `digits`?");
    let e = DataSource::parse("/nonexistent/mnist").unwrap_err().to_string();
    assert_eq!(e, "unknown data `/nonexistent/mnist`: not `digits` and no such file or directory");

    let dir = scratch("bad");
    let text = dir.join("data.csv");
    std::fs::write(&text, "1,2,3").unwrap();
    assert!(DataSource::parse(text.to_str().unwrap()).unwrap_err().to_string().contains("a .npz file, or a directory"));
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains("holds neither x_train/y_train/x_test/y_test.npy, x/y.npy, nor the IDX files"), "{e}");

    // (file, its arrays, a part of the error message)
    type Case<'a> = (&'a str, &'a [(&'a str, Array)], &'a str);
    let cases: &[Case] = &[
        ("names.npz", &[("x", f32s(&[2, 1], 0.0)), ("labels", i64s(&[0, 1]))], "expected arrays x_train, y_train, x_test, y_test or x, y; found: labels, x"),
        ("rows.npz", &[("x", f32s(&[3, 1], 0.0)), ("y", i64s(&[0, 1]))], "`x` has 3 rows but `y` has 2 labels"),
        ("negative.npz", &[("x", f32s(&[2, 1], 0.0)), ("y", i64s(&[0, -1]))], "`y`: element 1 is -1, not a class label"),
        ("rank.npz", &[("x", f32s(&[2, 1], 0.0)), ("y", f32s(&[2, 1], 0.0))], "`y` has shape [2, 1], but labels are one per sample, [N]"),
        ("scalar.npz", &[("x", f32s(&[], 0.0)), ("y", i64s(&[0]))], "`x` is a scalar, not one row per sample"),
    ];
    for (file, arrays, needle) in cases {
        let path = dir.join(file);
        write_npz(&path, arrays);
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains(needle), "{file}: {e}");
    }
    let broken = dir.join("broken.npz");
    std::fs::write(&broken, b"PK\x03\x04not really").unwrap();
    assert!(load(&broken).unwrap_err().to_string().contains("not a readable .npz (zip) archive"));
}
