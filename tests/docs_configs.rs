//! Every model configuration the documentation ships (`docs/**/*.qnn`: the reproduction
//! table's configs, the adapted examples) checks without errors and compiles to kernel IR,
//! so the commands the documents give keep working.

use std::path::{Path, PathBuf};

fn qnn_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            qnn_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "qnn") {
            out.push(path);
        }
    }
}

#[test]
fn every_documented_configuration_checks_and_compiles() {
    let mut files = Vec::new();
    qnn_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs"), &mut files);
    files.sort();
    assert!(files.len() >= 30, "expected the reproduction configs, found {files:?}");
    for path in &files {
        let name = path.display().to_string();
        let source = std::fs::read_to_string(path).unwrap();
        let (model, diagnostics) = qc_lang::check_source(&source);
        let model = model.unwrap_or_else(|| panic!("{}", qc_lang::render(&diagnostics, &source, &name, false)));
        assert!(!qc_lang::has_errors(&diagnostics), "{}", qc_lang::render(&diagnostics, &source, &name, false));
        qc_compiler::backend::program::compile_to_kernel(&model, "optimize").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
