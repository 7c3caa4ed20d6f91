//! Pass snapshot tests: every `tests/passes/<pass>/*.qir` names its pipeline in `// RUN:`
//! lines; the harness parses and verifies it, runs the pipeline (verifying after each pass)
//! and snapshots the printed result. Adding a test is adding a file.

mod common;

use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions, PASSES};
use qc_compiler::{parse_module, print_module, verify};

#[test]
fn pass_cases() {
    insta::glob!("passes/*/*.qir", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.display().to_string();
        let pipeline = run_line(&source).unwrap_or_else(|| panic!("{name}: no `// RUN:` line"));
        let dir = path.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str()).unwrap();
        assert!(pipeline.split(',').any(|p| p.trim().split('{').next() == Some(dir)), "{name}: the RUN line does not run `{dir}`");
        let mut module = parse_module(&source).unwrap_or_else(|d| panic!("{}", d.render(&name, &source)));
        if let Err(diags) = verify(&module) {
            panic!("{}", qc_compiler::diag::render_all(&diags, &name, &source));
        }
        let passes = parse_pipeline(&pipeline).unwrap_or_else(|e| panic!("{name}: {e}"));
        let options = PassOptions { verify_each: true, ..PassOptions::default() };
        PassManager::new(passes, options).run(&mut module).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = print_module(&module);
        let reparsed = parse_module(&out).unwrap_or_else(|d| panic!("{}", d.render("output", &out)));
        assert_eq!(print_module(&reparsed), out, "{name}: the output does not round-trip");
        insta::assert_snapshot!(format!("// RUN: {pipeline}\n{out}"));
    });
}

#[test]
fn every_pass_has_at_least_five_cases() {
    for p in PASSES {
        let n = common::qir_files(&format!("passes/{}", p.name)).len();
        assert!(n >= 5, "pass `{}` has {n} test files; it needs at least 5", p.name);
    }
}

#[test]
fn print_after_all_and_time_passes_record_each_pass() {
    let files = common::qir_files("passes/cse");
    let source = std::fs::read_to_string(&files[0]).unwrap();
    let mut module = parse_module(&source).unwrap();
    let options = PassOptions { verify_each: true, print_after_all: true, time_passes: true };
    let report = PassManager::new(parse_pipeline("cse,dce").unwrap(), options).run(&mut module).unwrap();
    assert_eq!(report.printed.iter().map(|p| p.0).collect::<Vec<_>>(), ["cse", "dce"]);
    assert_eq!(report.printed[1].1, print_module(&module));
    assert!(report.render_prints().contains("// ----- IR after cse -----"));
    assert_eq!(report.timings.len(), 2);
    assert!(report.render_timings().contains("total"));
}

/// The pipeline named by `// RUN: a,b,c` lines at the top of a test file (joined by commas).
pub fn run_line(source: &str) -> Option<String> {
    let runs: Vec<&str> = source
        .lines()
        .take_while(|l| l.trim_start().starts_with("//"))
        .filter_map(|l| l.trim_start().strip_prefix("// RUN:"))
        .map(str::trim)
        .collect();
    (!runs.is_empty()).then(|| runs.join(","))
}
