//! `qc run`: the shipped MLP weights reproduce their digits accuracy, outputs written as .npy
//! read back with the model's shape and are deterministic, and bad input (a missing weight, a
//! wrong shape, an unknown backend, unreadable data) exits 2 with one line and no panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn qc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the qc binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("qc-run")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_shipped_mlp_weights_reach_their_accuracy_on_the_digits() {
    let o = qc(&[
        "run",
        "examples/mlp.qnn",
        "--weights",
        "examples/weights/mlp.safetensors",
        "--data",
        "digits",
        "--batch",
        "100",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // examples/weights/README.md: 354/360 in float32; the quantized MLP measures the same.
    assert!(out.starts_with("accuracy: 98.33% (354/360)\n"), "{out}");
    assert!(
        out.contains("µs per sample") && out.contains("confusion matrix"),
        "{out}"
    );
    // The confusion matrix counts every sample once.
    let cells: usize = out
        .lines()
        .skip(4)
        .flat_map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|c| c.parse::<usize>().unwrap())
        })
        .sum();
    assert_eq!(cells, 360);
}

#[test]
fn random_inputs_write_a_readable_deterministic_npy() {
    let dir = scratch("random");
    let (a, b) = (dir.join("a.npy"), dir.join("b.npy"));
    // The two files come from the two backends: the same bytes, file to file.
    for (path, backend) in [(&a, "jit"), (&b, "interp")] {
        let o = qc(&[
            "run",
            "examples/lenet.qnn",
            "--random-input",
            "4",
            "--batch",
            "3",
            "--backend",
            backend,
            "--output",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let y = qc_runtime::io::npy::read_f32_file(&a).unwrap();
    assert_eq!(y.shape, vec![3, 10]);
    assert!(y.data.iter().all(|v| v.is_finite()));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // The output of an --input file equals the run on the same values.
    let x = dir.join("x.npy");
    let samples: Vec<f32> = (0..2 * 64).map(|i| (i % 17) as f32 / 16.0).collect();
    qc_runtime::io::npy::write_f32_file(&x, &[2, 64], &samples).unwrap();
    let out = dir.join("y.npy");
    let o = qc(&[
        "run",
        "examples/mlp.qnn",
        "--input",
        x.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        qc_runtime::io::npy::read_f32_file(&out).unwrap().shape,
        vec![2, 10]
    );
}

fn fails_with(args: &[&str], needle: &str) {
    let o = qc(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "{args:?}: {err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = scratch("bad");
    fails_with(
        &[
            "run",
            "examples/mlp.qnn",
            "--weights",
            "examples/weights/lenet.safetensors",
            "--data",
            "digits",
        ],
        "has no tensor `w1`; did you mean",
    );
    fails_with(
        &[
            "run",
            "examples/mlp.qnn",
            "--backend",
            "gpu",
            "--data",
            "digits",
        ],
        "unknown backend `gpu`",
    );
    fails_with(&["run", "examples/mlp.qnn", "--data", "digitz"], "digits");
    let garbage = dir.join("garbage.npz");
    std::fs::write(&garbage, b"not a zip").unwrap();
    fails_with(
        &[
            "run",
            "examples/mlp.qnn",
            "--data",
            garbage.to_str().unwrap(),
        ],
        "garbage.npz",
    );
    // A weight of the wrong shape: w1 saved as [64, 128].
    let w = dir.join("w.safetensors");
    let tensors: Vec<(String, qc_runtime::tensor::Tensor)> = [
        ("w1", vec![64, 128]),
        ("b1", vec![128]),
        ("w2", vec![128, 128]),
        ("b2", vec![128]),
        ("w3", vec![10, 128]),
        ("b3", vec![10]),
    ]
    .into_iter()
    .map(|(n, s): (&str, Vec<usize>)| {
        (n.to_string(), qc_runtime::tensor::Tensor::zeros(s).unwrap())
    })
    .collect();
    let named: Vec<(&str, &qc_runtime::tensor::Tensor)> =
        tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    qc_runtime::io::write_safetensors(&w, &named).unwrap();
    fails_with(
        &[
            "run",
            "examples/mlp.qnn",
            "--weights",
            w.to_str().unwrap(),
            "--data",
            "digits",
        ],
        "w1",
    );
    let x = dir.join("x.npy");
    qc_runtime::io::npy::write_f32_file(&x, &[2, 63], &[0.0; 126]).unwrap();
    fails_with(
        &[
            "run",
            "examples/mlp.qnn",
            "--input",
            x.to_str().unwrap(),
            "--output",
            dir.join("y.npy").to_str().unwrap(),
        ],
        "input 0 has shape [2, 63]",
    );
    fails_with(&["run", "examples/mlp.qnn"], "exactly one of");
}

#[test]
fn the_format_sweep_prints_one_row_per_format() {
    let o = qc(&[
        "run",
        "examples/mlp.qnn",
        "--weights",
        "examples/weights/mlp.safetensors",
        "--data",
        "digits",
        "--format-sweep",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 12, "{out}");
    // fp32 everywhere is the float32 reference network.
    assert!(out.lines().nth(1).unwrap().contains("98.33%"), "{out}");
}
