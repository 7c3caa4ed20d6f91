//! Helpers shared by the file-driven test harnesses.

use std::path::{Path, PathBuf};

/// Every `.qir` file under `tests/<dir>`, sorted, at any depth.
pub fn qir_files(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(dir), &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "qir") {
            out.push(p);
        }
    }
}
