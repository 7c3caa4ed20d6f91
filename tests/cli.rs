//! End-to-end tests of the `qc` binary: scripted REPL sessions (one `.repl` file per session
//! in `tests/cli/repl/`, stdout snapshotted), `qc quantize` on `.npy` files and on values,
//! `qc formats`, and bad input (one line on stderr, exit status 2, never a panic).

use qc_runtime::io::npy;
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use npyz::WriterBuilder;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn qc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qc")).args(args).output().expect("the qc binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qc-cli").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("cli/snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

#[test]
fn repl_sessions() {
    snapshot_settings().bind(|| {
        insta::glob!("cli/repl/*.repl", |path| {
            let script = std::fs::read(path).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_qc"))
                .arg("repl")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&script).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
            assert_eq!(stderr(&out), "", "{}", path.display());
            insta::assert_snapshot!(stdout(&out));
        });
    });
}

/// Quantizes an array written by the runtime's writer with `qc quantize --in/--out` and
/// compares the result bit for bit with `Format::quantize`.
fn check_npy_round_trip(test: &str, format: &str, rounding: &str, seed: u64, shape: &[usize]) {
    let dir = scratch(test);
    let n: usize = shape.iter().product();
    // Values over many binades, both signs, a zero, and some beyond fp16's and e4m3's range.
    let data: Vec<f32> = (0..n)
        .map(|i| {
            let k = i as f32;
            let x = (k * 0.37).sin() * 2f32.powf((k % 23.0) - 12.0);
            if i % 17 == 5 { 0.0 } else if i % 29 == 7 { x * 1e6 } else { x }
        })
        .collect();
    let (input, output) = (dir.join("x.npy"), dir.join("y.npy"));
    npy::write_f32_file(&input, shape, &data).unwrap();
    let seed_text = seed.to_string();
    let o = qc(&["quantize", "--format", format, "--rounding", rounding, "--seed", &seed_text, "--in",
        input.to_str().unwrap(), "--out", output.to_str().unwrap()]);
    assert!(o.status.success(), "{format}: {}", stderr(&o));
    let got = npy::read_f32_file(&output).unwrap();
    assert_eq!(got.shape, shape);
    let mut want = vec![0f32; n];
    Format::parse(format)
        .unwrap()
        .quantize(&data, shape, Rounding::parse(rounding).unwrap(), &RandomStream::new(seed, 0), &mut want)
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got.data), bits(&want), "{format} {rounding}");
    // An independent reader agrees on the file.
    let bytes = std::fs::read(&output).unwrap();
    let file = npyz::NpyFile::new(bytes.as_slice()).unwrap();
    assert_eq!(file.shape(), shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
    assert_eq!(bits(&file.into_vec::<f32>().unwrap()), bits(&want));
}

#[test]
fn quantize_npy_float_formats() {
    check_npy_round_trip("fp16", "fp16", "nearest", 0, &[1000]);
    check_npy_round_trip("e4m3", "e4m3", "stochastic:9", 7, &[20, 50]);
    check_npy_round_trip("custom", "fp<6,5,nosub>", "toward-zero", 0, &[3, 7]);
    check_npy_round_trip("e8m0", "e8m0", "up", 0, &[64]);
    check_npy_round_trip("empty", "bf16", "nearest", 0, &[0]);
}

#[test]
fn quantize_npy_scaled_block_and_codebook_formats() {
    check_npy_round_trip("mxfp4", "mxfp4", "nearest", 0, &[8, 64]);
    check_npy_round_trip("mxfp8", "mxfp8_e4m3<block=16,scale=ceil>", "stochastic:4", 3, &[5, 48]);
    check_npy_round_trip("nvfp4", "nvfp4", "nearest", 0, &[4, 40]);
    check_npy_round_trip("int8", "int<8,axis=0>", "nearest", 0, &[6, 10]);
    check_npy_round_trip("int4", "int<4,asym>", "stochastic", 1, &[100]);
    check_npy_round_trip("fixed", "fixed<4,4>", "nearest-away", 0, &[3, 3]);
    check_npy_round_trip("ternary", "ternary<axis=1>", "nearest", 0, &[4, 8]);
    check_npy_round_trip("log2", "log2<4>", "nearest", 0, &[50]);
}

#[test]
fn quantize_reads_fortran_order_as_written_by_another_writer() {
    let dir = scratch("fortran");
    let input = dir.join("f.npy");
    // [[0.1, 300], [1000, -2]] stored column by column, written by npyz.
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[2, 2])
        .order(npyz::Order::Fortran)
        .writer(std::fs::File::create(&input).unwrap())
        .begin_nd()
        .unwrap();
    writer.extend([0.1f32, 1000.0, 300.0, -2.0]).unwrap();
    writer.finish().unwrap();
    let output = dir.join("y.npy");
    let o = qc(&["quantize", "--format", "e4m3", "--in", input.to_str().unwrap(), "--out", output.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end(), format!("4 values of shape (2, 2) quantized to e4m3 (rounding nearest) into {}", output.display()));
    assert_eq!(npy::read_f32_file(&output).unwrap().data, [0.1015625, 288.0, 448.0, -2.0]);
}

#[test]
fn value_table() {
    let o = qc(&["quantize", "--format", "fp16", "0.1", "-0.1", "1e-3", "-1e-7", "65519", "65520", "inf", "-inf", "nan", "0", "-0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e4m3 = qc(&["quantize", "--format", "e4m3", "--rounding", "stochastic:3", "--seed", "4", "0.1", "300", "500", "-1e9"]);
    let fp4 = qc(&["quantize", "--format", "fp4_e2m1", "nan", "7", "0.25"]);
    let e8m0 = qc(&["quantize", "--format", "e8m0", "0.1", "3", "0", "-1"]);
    let fp32 = qc(&["quantize", "--format", "fp32", "0.1", "1e-45", "3.4028236e38"]);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("value_table", [&o, &e4m3, &fp4, &e8m0, &fp32].map(stdout).join("\n"));
    });
}

#[test]
fn formats_listing() {
    let o = qc(&["formats"]);
    assert!(o.status.success());
    snapshot_settings().bind(|| insta::assert_snapshot!("formats", stdout(&o)));
}

/// Runs `qc` and checks the bad-input contract: exit status 2, nothing on stdout, one line
/// `error: ...` on stderr containing `needle`.
fn assert_bad_input(args: &[&str], needle: &str) {
    let o = qc(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(stdout(&o), "", "{args:?}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err}");
}

#[test]
fn bad_formats_modes_and_values() {
    assert_bad_input(&["quantize", "--format", "e4m2", "1"], "unknown format `e4m2`; did you mean `e4m3`?");
    assert_bad_input(&["quantize", "--format", "fp<0,3>", "1"], "exponent bits must be 1 to 8, not 0");
    assert_bad_input(&["quantize", "--format", "mxfp4<block=0>", "1"], "`block` must be an integer from 1 to 4096");
    assert_bad_input(&["quantize", "--format", "fp<5,2,nosubs>", "1"], "did you mean `nosub`?");
    assert_bad_input(&["quantize", "--format", "e4m3", "--rounding", "stochastic:0", "1"], "random bits must be an integer from 1 to 32");
    assert_bad_input(&["quantize", "--format", "e4m3", "--rounding", "neares", "1"], "did you mean `nearest`?");
    assert_bad_input(&["quantize", "--format", "e4m3", "0.1", "zero"], "`zero` is not a number");
    assert_bad_input(&["quantize", "0.1", "--format", "e4m3"], "options go before the values: move `--format`");
    assert_bad_input(&["quantize", "--rounding", "up", "1"], "`--format FMT` is required");
}

#[test]
fn bad_files() {
    let dir = scratch("bad_files");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let out = path("out.npy");
    let run = |input: &str, needle: &str| assert_bad_input(&["quantize", "--format", "e4m3", "--in", input, "--out", &out], needle);

    let mut good = Vec::new();
    npy::write_f32(&mut good, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    std::fs::write(path("truncated.npy"), &good[..good.len() - 3]).unwrap();
    run(&path("truncated.npy"), "truncated: the shape needs 16 data bytes but only 13");
    std::fs::write(path("header_cut.npy"), &good[..40]).unwrap();
    run(&path("header_cut.npy"), "the file ends inside the");

    npyz::to_file_1d(path("int64.npy"), [1i64, 2, 3]).unwrap();
    run(&path("int64.npy"), "dtype is `<i8`, but only float32");
    npyz::to_file_1d(path("float64.npy"), [1f64, 2.0]).unwrap();
    run(&path("float64.npy"), "dtype is `<f8`");

    let mut three_d = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[2, 1, 2])
        .writer(std::fs::File::create(path("3d.npy")).unwrap())
        .begin_nd()
        .unwrap();
    three_d.extend([1f32, 2.0, 3.0, 4.0]).unwrap();
    three_d.finish().unwrap();
    run(&path("3d.npy"), "shape (2, 1, 2), but only 1-D and 2-D");

    std::fs::write(path("text.npy"), "a,b\n1,2\n").unwrap();
    run(&path("text.npy"), "not a .npy file");
    run(&path("missing.npy"), "cannot read");
    assert!(!Path::new(&out).exists(), "no output is written for bad input");

    std::fs::write(path("good.npy"), &good).unwrap();
    let unwritable = dir.join("no such dir").join("out.npy");
    assert_bad_input(
        &["quantize", "--format", "e4m3", "--in", &path("good.npy"), "--out", unwritable.to_str().unwrap()],
        "cannot write",
    );
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &["quantize", "--format", "e4m3"][..],
        &["quantize", "--format", "e4m3", "--in", "x.npy"],
        &["quantize", "--format", "e4m3", "--in", "x.npy", "--out", "y.npy", "1.0"],
        &["frobnicate"],
        &[],
    ] {
        let o = qc(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
}

/// The README's main command: the tour runs to the end and shows each of its parts, and the
/// MLP trains to a useful accuracy on the digits.
#[test]
fn demo_runs_the_tour_compiles_and_trains_the_mlp() {
    let out = qc(&["demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for part in ["compare 0.1 in fp32", "q block in mxfp4", "fp16, chunks of 32, nearest", "stochastic:13", "model mlp", "model size:", "epoch  20/20"] {
        assert!(text.contains(part), "`qc demo` lacks {part:?}");
    }
    assert!(!text.contains("error:"), "{text}");
    let last = text.lines().rfind(|l| l.starts_with("epoch  20/20")).unwrap();
    let accuracy: f64 = last.split("test acc ").nth(1).and_then(|r| r.split('%').next()).and_then(|a| a.trim().parse().ok()).unwrap();
    assert!(accuracy > 90.0, "{last}");
}
