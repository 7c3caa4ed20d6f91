//! `qc train` end to end on the reference interpreter: a short run on the built-in digits
//! prints one line per epoch and learns; `--save` writes weights that `--weights` resumes
//! from (the resumed run starts where the saved one ended); `--log` writes one CSV line per
//! epoch; bad input is one line on stderr with exit status 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn qc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qc"))
        .args(args)
        .output()
        .expect("the qc binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("qc-train")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small MLP (so the test runs in seconds) with 8-bit hidden weights.
const MODEL: &str = "
model tiny {
  input x: [B, 64] fp32;
  param w1: [16, 64] e4m3 = he_normal;
  param b1: [16] fp32 = zeros;
  param w2: [10, 16] fp32 = glorot_uniform;
  param b2: [10] fp32 = zeros;
  let y = dense(relu(dense(x, w1, b1)), w2, b2);
  output y;
  train { loss = softmax_cross_entropy; optimizer = sgd(lr = 0.1, momentum = 0.9); epochs = 2; batch = 32; }
}";

fn accuracy(line: &str, label: &str) -> f64 {
    let rest = &line[line
        .find(label)
        .unwrap_or_else(|| panic!("no `{label}` in {line}"))
        + label.len()..];
    rest.trim_start()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn training_the_digits_prints_epochs_saves_logs_and_resumes() {
    let dir = scratch("resume");
    let model = dir.join("tiny.qnn");
    std::fs::write(&model, MODEL).unwrap();
    let (weights, log) = (dir.join("w.safetensors"), dir.join("metrics.csv"));
    let m = model.to_str().unwrap();
    let out = qc(&[
        "train",
        m,
        "--quiet",
        "--epochs",
        "3",
        "--save",
        weights.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let epochs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("epoch")).collect();
    assert_eq!(epochs.len(), 3, "{stdout}");
    assert!(epochs[2].contains("epoch   3/3"), "{stdout}");
    let last = accuracy(epochs[2], "test acc");
    assert!(last > 80.0, "{stdout}");
    let csv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("epoch,lr,train_loss"));
    // Resuming: one more epoch from the saved weights starts from their accuracy.
    let out = qc(&[
        "train",
        m,
        "--quiet",
        "--epochs",
        "1",
        "--lr",
        "0.01",
        "--weights",
        weights.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let resumed = stdout.lines().find(|l| l.starts_with("epoch")).unwrap();
    assert!(accuracy(resumed, "train acc") > 75.0, "{stdout}");
}

#[test]
fn the_same_seed_gives_the_same_weights_file() {
    let dir = scratch("seed");
    let model = dir.join("tiny.qnn");
    std::fs::write(&model, MODEL).unwrap();
    let run = |seed: &str, name: &str| {
        let w = dir.join(name);
        let out = qc(&[
            "train",
            model.to_str().unwrap(),
            "--quiet",
            "--epochs",
            "1",
            "--seed",
            seed,
            "--save",
            w.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read(w).unwrap()
    };
    let a = run("5", "a.safetensors");
    assert_eq!(a, run("5", "b.safetensors"));
    assert_ne!(a, run("6", "c.safetensors"));
}

#[test]
fn the_interpreter_and_the_jit_on_any_thread_count_train_to_the_same_bits() {
    let dir = scratch("backends");
    let model = dir.join("tiny.qnn");
    // Stochastic roundings in the forward pass, the gradients and the update.
    let stochastic = MODEL.replace("let y = dense(relu(dense(x, w1, b1)), w2, b2);", "let y = dense(relu(dense(x, w1, b1) with { acc = fp16 @ stochastic:9 }), w2, b2);").replace(
        "epochs = 2; batch = 32; }",
        "epochs = 2; batch = 32; formats { act_grad = e5m2 @ stochastic:9; weight_grad = e5m2 @ stochastic:9; update = fp16 @ stochastic:9; } }",
    );
    std::fs::write(&model, stochastic).unwrap();
    let run = |backend: &str, threads: &str| {
        let w = dir.join(format!("{backend}{threads}.safetensors"));
        let out = Command::new(env!("CARGO_BIN_EXE_qc"))
            .args([
                "train",
                model.to_str().unwrap(),
                "--quiet",
                "--epochs",
                "1",
                "--backend",
                backend,
                "--save",
                w.to_str().unwrap(),
            ])
            .env("QC_THREADS", threads)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read(w).unwrap()
    };
    let reference = run("interp", "1");
    assert_eq!(reference, run("jit", "1"));
    assert_eq!(reference, run("jit", "2"));
}

#[test]
fn bad_input_is_one_line_and_exit_status_two() {
    let dir = scratch("bad");
    let no_train = dir.join("plain.qnn");
    std::fs::write(&no_train, MODEL.replace("train { loss = softmax_cross_entropy; optimizer = sgd(lr = 0.1, momentum = 0.9); epochs = 2; batch = 32; }", "")).unwrap();
    let model = dir.join("tiny.qnn");
    std::fs::write(&model, MODEL).unwrap();
    let m = model.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["train", no_train.to_str().unwrap()],
            "has no `train` section",
        ),
        (vec!["train", "/no/such/model.qnn"], "cannot read"),
        (vec!["train", m, "--data", "/no/such/data"], "error"),
        (
            vec!["train", m, "--lr=-1"],
            "--lr must be a positive number",
        ),
        (
            vec!["train", m, "--weights", "/no/such/w.safetensors"],
            "error",
        ),
        (vec!["train", m, "--backend", "tpu"], "unknown backend"),
    ];
    for (args, expected) in cases {
        let out = qc(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
