//! Diagnostics snapshots: each `tests/verify/*.qir` parses but breaks a verifier rule; each
//! `tests/parse/*.qir` is malformed text. The rendered (ariadne) diagnostics are snapshotted.

use qc_compiler::diag::render_all;
use qc_compiler::{parse_module, verify};

#[test]
fn verifier_cases() {
    insta::glob!("verify/*.qir", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let module = parse_module(&source).unwrap_or_else(|d| panic!("{}", d.render(&name, &source)));
        let diags = verify(&module).expect_err("this IR should be invalid");
        insta::assert_snapshot!(render_all(&diags, &name, &source));
    });
}

#[test]
fn parse_error_cases() {
    insta::glob!("parse/*.qir", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let diag = parse_module(&source).expect_err("this text should not parse");
        assert!(diag.span.as_ref().is_some_and(|s| s.start <= s.end && s.end <= source.len()));
        insta::assert_snapshot!(diag.render(&name, &source));
    });
}
