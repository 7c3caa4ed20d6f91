//! Diagnostics snapshots: every `.qnn` file in `tests/errors/` is checked and the rendered
//! diagnostics (plain text, as `qc check` prints them without colour) are snapshotted as
//! `snapshots/errors__<file>.snap`. A file's name starts with the code it demonstrates
//! (`E0022_block_does_not_divide.qnn`), and the harness checks that code is reported. Adding
//! a case is adding a file.

use qc_lang::{Code, Severity};
use std::path::Path;

fn cases() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let mut cases: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("tests/errors exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "qnn"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    cases.sort();
    cases
}

#[test]
fn each_error_case_reports_its_code_and_matches_the_snapshot() {
    for (name, source) in cases() {
        let (checked, diagnostics) = qc_lang::check_source(&source);
        let code = name.split('_').next().unwrap();
        assert!(
            diagnostics.iter().any(|d| d.code.as_str() == code),
            "{name}: expected {code}, got:\n{}",
            qc_lang::render(&diagnostics, &source, &name, false)
        );
        let has_error = diagnostics.iter().any(|d| d.severity() == Severity::Error);
        assert_eq!(checked.is_some(), !has_error, "{name}: a checked model exactly when there is no error");
        let path = format!("{name}.qnn");
        let rendered = qc_lang::render(&diagnostics, &source, &path, false);
        let json = qc_lang::render_json(&diagnostics, &source, &path);
        insta::assert_snapshot!(name.clone(), format!("{rendered}\n--- json ---\n{json}"));
    }
}

#[test]
fn every_diagnostic_code_has_a_case() {
    let names: Vec<String> = cases().into_iter().map(|(n, _)| n).collect();
    for code in Code::ALL {
        assert!(names.iter().any(|n| n.starts_with(code.as_str())), "no case in tests/errors/ for {}", code.as_str());
    }
}
