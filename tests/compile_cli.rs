//! `qc compile` and `qc opt` end to end. File-driven over `examples/*.qnn`: the cost table,
//! `--emit nn` and `--emit kernel` are snapshotted, and every emitted stage (nn, opt, kernel)
//! parses back and prints identically. Error cases: model errors, malformed and invalid IR,
//! failing passes, unreadable files, bad options.

use qc_compiler::{parse_module, print_module};
use std::process::Command;

fn qc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qc")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn compile(path: &std::path::Path, extra: &[&str]) -> String {
    let file = path.to_str().unwrap();
    let mut args = vec!["compile", file];
    args.extend(extra);
    let (code, stdout, stderr) = qc(&args);
    assert_eq!(code, 0, "{file} {extra:?}: {stderr}");
    stdout
}

fn assert_round_trips(text: &str, what: &str) {
    let module = parse_module(text).unwrap_or_else(|d| panic!("{what}: {}", d.render(what, text)));
    assert_eq!(print_module(&module), text, "{what} does not round-trip");
}

#[test]
fn every_example_compiles_table_and_stages() {
    insta::glob!("../examples", "*.qnn", |path| {
        insta::assert_snapshot!("table", compile(path, &[]));
        let nn = compile(path, &["--emit", "nn"]);
        assert_round_trips(&nn, "nn");
        insta::assert_snapshot!("nn", nn);
        assert_round_trips(&compile(path, &["--emit", "opt"]), "opt");
        let kernel = compile(path, &["--emit", "kernel"]);
        assert_round_trips(&kernel, "kernel");
        insta::assert_snapshot!("kernel", kernel);
    });
}

#[test]
fn emit_ast_prints_the_checked_model() {
    let (code, stdout, _) = qc(&["compile", "examples/mlp.qnn", "--emit", "ast"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("model mlp\n  in0 x: [B, 64] fp32 @ nearest"), "{stdout}");
}

#[test]
fn chunk_option_chunks_every_long_accumulation() {
    let (code, stdout, _) = qc(&["compile", "examples/mlp.qnn", "--emit", "opt", "--chunk", "32"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.matches("chunk=32 @ fp32").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("chunk=16 @ fp16").count(), 1, "the layer's own chunk wins: {stdout}");
    let (code, _, stderr) = qc(&["compile", "examples/mlp.qnn", "--chunk", "0"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn output_file_passes_print_after_all_and_time_passes() {
    let out = std::env::temp_dir().join(format!("qc-compile-{}.qir", std::process::id()));
    let o = out.to_str().unwrap();
    let (code, stdout, stderr) =
        qc(&["compile", "examples/mlp.qnn", "--emit", "opt", "-o", o, "--passes", "infer{batch=8},canonicalize", "--print-after-all", "--time-passes"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let written = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert!(written.contains("func @mlp(%x: tensor<8x64xfp32>)"), "{written}");
    assert!(stderr.contains("// ----- IR after infer -----") && stderr.contains("// ----- IR after canonicalize -----"), "{stderr}");
    assert!(stderr.contains("pass                  time (ms)") && stderr.contains("total"), "{stderr}");
}

#[test]
fn compile_errors_exit_1_and_unreadable_files_exit_2() {
    let (code, _, stderr) = qc(&["compile", "lang/tests/errors/E0030_several_errors_in_one_run.qnn"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("[E0021]"), "{stderr}");
    let (code, _, stderr) = qc(&["compile", "no/such/model.qnn"]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: cannot read no/such/model.qnn"), "{stderr}");
    let (code, _, stderr) = qc(&["compile", "examples/mlp.qnn", "--passes", "infer,cannonicalize"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("did you mean `canonicalize`?"), "{stderr}");
}

#[test]
fn opt_runs_passes_on_textual_ir() {
    let (code, stdout, stderr) = qc(&["opt", "compiler/tests/passes/lower-kernel/softmax_and_norms.qir", "--passes", "lower-kernel,chunking,cleanup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("kernel.reduce_max") && !stdout.contains("nn.softmax"), "{stdout}");
    assert_round_trips(&stdout, "opt output");
    let (code, stdout, _) = qc(&["opt", "compiler/tests/roundtrip/nn_cnn.qir"]);
    assert_eq!(code, 0);
    assert_round_trips(&stdout, "opt without passes");
}

#[test]
fn opt_reports_malformed_and_invalid_ir_with_source_excerpts() {
    let (code, stdout, stderr) = qc(&["opt", "tests/compile/bad_ir.qir", "--passes", "cse"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("[P002]") && stderr.contains("did you mean") && stderr.contains("nn.rellu"), "{stderr}");
    let (code, _, stderr) = qc(&["opt", "tests/compile/invalid_ir.qir"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("[V007]") && stderr.contains("the contracted dimensions differ: 8 against 16"), "{stderr}");
    assert!(stderr.contains("invalid_ir.qir:2:3"), "{stderr}");
}

#[test]
fn opt_failing_pass_exits_1_and_bad_input_exits_2() {
    let (code, _, stderr) = qc(&["opt", "tests/compile/softmax_stochastic_dynamic_axis.qir", "--passes", "lower-kernel"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("pass `lower-kernel` failed") && stderr.contains("stochastic"), "{stderr}");
    let (code, _, stderr) = qc(&["opt", "no/such.qir"]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: cannot read no/such.qir"), "{stderr}");
    let (code, _, stderr) = qc(&["opt", "tests/compile/invalid_ir.qir", "--passes", "chunking{chunk=x}"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("`chunk` must be a positive integer"), "{stderr}");
}
