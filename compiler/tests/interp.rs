//! The reference interpreter: file-driven per-op cases (`tests/interp/*.qir`), every example
//! on seeded random inputs, and the shipped digits weights through the example networks.
//!
//! A case file is a kernel-dialect module with one function, preceded by comment lines:
//! `// SEED: n` (optional, the run's seed), `// INPUT: [shape] v0 v1 ...` (one per argument, in
//! order; a single value fills the tensor) and `// OUTPUT: [shape] v0 v1 ...` (one per result). Values are decimal or `nan`,
//! `inf`, `-inf`, `-0`; expected outputs compare bit for bit (any NaN matches any NaN).

mod common;

use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::program::{compile_to_kernel, compile_with_weights, random_inputs};
use qc_compiler::backend::{Backend, Program};
use qc_runtime::io::WeightFile;
use qc_runtime::tensor::Tensor;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parse_tensor(text: &str) -> Tensor {
    let (shape, values) = text.trim().split_once(']').expect("`[shape] values`");
    let shape: Vec<usize> = shape
        .trim_start_matches('[')
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let mut values: Vec<f32> = values
        .split_whitespace()
        .map(|v| {
            v.parse::<f32>()
                .unwrap_or_else(|_| panic!("bad value `{v}`"))
        })
        .collect();
    let n: usize = shape.iter().product();
    if values.len() == 1 {
        values = vec![values[0]; n]; // one value fills the tensor
    }
    Tensor::new(shape, values).unwrap()
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn op_cases() {
    let dir = root().join("compiler/tests/interp");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "qir"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the cases are in {}", dir.display());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let (mut seed, mut inputs, mut outputs) = (0, Vec::new(), Vec::new());
        for line in text.lines() {
            if let Some(s) = line.strip_prefix("// SEED:") {
                seed = s.trim().parse().unwrap();
            } else if let Some(t) = line.strip_prefix("// INPUT:") {
                inputs.push(parse_tensor(t));
            } else if let Some(t) = line.strip_prefix("// OUTPUT:") {
                outputs.push(parse_tensor(t));
            }
        }
        let module = qc_compiler::parse_module(&text).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        qc_compiler::verify(&module).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let program = Program::prepare(module, seed).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = Interpreter
            .run(&program, &inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), outputs.len(), "{name}: result count");
        for (g, want) in got.iter().zip(&outputs) {
            assert_eq!(g.shape(), want.shape(), "{name}: shape");
            for (i, (a, b)) in g.data().iter().zip(want.data()).enumerate() {
                assert!(
                    same(*a, *b),
                    "{name}: element {i} is {a:e}, expected {b:e} (all: {:?})",
                    g.data()
                );
            }
        }
    }
}

fn checked(path: &Path) -> qc_lang::check::CheckedModule {
    let source = std::fs::read_to_string(path).unwrap();
    let (model, diagnostics) = qc_lang::check_source(&source);
    model.unwrap_or_else(|| panic!("{}: {diagnostics:?}", path.display()))
}


#[test]
fn every_example_runs_on_random_inputs() {
    for file in common::examples() {
        let module = compile_to_kernel(&checked(&file), "optimize")
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let inputs = random_inputs(&module, 1, 2).unwrap();
        let program =
            Program::prepare(module, 3).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let first = Interpreter
            .run(&program, &inputs)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            !first.is_empty() && first.iter().all(|t| !t.is_empty()),
            "{}",
            file.display()
        );
        // Deterministic: the same seed gives the same bits.
        let again = Interpreter.run(&program, &inputs).unwrap();
        assert!(
            first.iter().zip(&again).all(|(a, b)| a
                .data()
                .iter()
                .zip(b.data())
                .all(|(x, y)| same(*x, *y))),
            "{}",
            file.display()
        );
    }
}

/// The accuracy of an example with its shipped weights on the digits test split.
fn digits_accuracy(model: &str, sample_shape: &[usize]) -> (usize, usize) {
    let weights =
        WeightFile::open(&root().join(format!("examples/weights/{model}.safetensors"))).unwrap();
    let module = compile_with_weights(
        &checked(&root().join(format!("examples/{model}.qnn"))),
        "optimize",
        Some(&weights),
    )
    .unwrap();
    let program = Program::prepare(module, 0).unwrap();
    let test = qc_runtime::data::digits::digits_split().unwrap().test;
    let mut shape = vec![test.len()];
    shape.extend_from_slice(sample_shape);
    let x = test.x().clone().reshape(shape).unwrap();
    let logits = &Interpreter.run(&program, &[x]).unwrap()[0];
    let correct = logits
        .data()
        .chunks(10)
        .zip(test.y())
        .filter(|(row, &label)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
            best == label as usize
        })
        .count();
    (correct, test.len())
}

#[test]
fn the_shipped_mlp_weights_classify_the_digits() {
    let (correct, total) = digits_accuracy("mlp", &[64]);
    assert_eq!(total, 360);
    // float32 reaches 354/360; the quantized network (bf16, e4m3, fp16 chunks) stays close.
    assert!(correct >= 345, "{correct}/{total}");
}

#[test]
fn the_shipped_lenet_weights_classify_the_digits() {
    let (correct, total) = digits_accuracy("lenet", &[8, 8, 1]);
    assert!(correct >= 335, "{correct}/{total}");
}
