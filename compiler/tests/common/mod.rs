//! Helpers shared by the file-driven test harnesses (each test crate uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Every `.qir` file under `tests/<dir>`, sorted, at any depth.
pub fn qir_files(dir: &str) -> Vec<PathBuf> {
    files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(dir), "qir")
}

/// Every `.qnn` file under `tests/<dir>`, sorted, at any depth.
pub fn qnn_cases(dir: &str) -> Vec<PathBuf> {
    files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(dir), "qnn")
}

/// The example networks, `examples/*.qnn`, sorted.
pub fn examples() -> Vec<PathBuf> {
    files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"), "qnn")
}

/// Every file with extension `ext` under `dir`, sorted, at any depth.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(dir, ext, &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}
