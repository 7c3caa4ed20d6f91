//! Passes: the [`Pass`] trait, the registry of passes by name (with their options), named
//! pipelines, and the textual pipeline syntax `dce,cse,chunking{chunk=64}`. The
//! [`manager`] runs a pipeline with verification, printing and timing.

mod canonicalize;
mod chunking;
mod cse;
mod dce;
mod fusion;
mod infer;
mod lower_kernel;
pub mod manager;

pub use canonicalize::constant_values;
pub use manager::{PassManager, PassOptions, PipelineError, RunReport};

use crate::ir::Module;
use std::collections::BTreeMap;

/// Why a pass could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassError {
    pub message: String,
}

/// A transformation of a module.
pub trait Pass {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn run(&self, module: &mut Module) -> Result<(), PassError>;
}

/// The `key=value` options a pass was created with.
pub type PassArgs = BTreeMap<String, String>;

/// A registered pass: how to create it from its options.
pub struct PassInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// `(option, meaning)`.
    pub options: &'static [(&'static str, &'static str)],
    pub create: fn(&PassArgs) -> Result<Box<dyn Pass>, String>,
}

/// Every pass, by name.
pub const PASSES: &[PassInfo] = &[dce::INFO, cse::INFO, chunking::INFO, fusion::INFO, infer::INFO, canonicalize::INFO, lower_kernel::INFO];

/// Named pipelines: `(name, pipeline text, description)`. A pass name ending in `?` is
/// optional: skipped when no pass of that name is registered (`fusion?` keeps `optimize`
/// valid in a build without the e-graph fusion pass).
pub const PIPELINES: &[(&str, &str, &str)] = &[
    ("cleanup", "cse,dce", "Common subexpressions, then dead code: the canonical cleanup after any rewrite."),
    ("optimize", "infer,canonicalize,fusion?,chunking", "The nn-level optimisations: the `opt` stage of `qc compile`."),
    ("to-kernel", "lower-kernel,chunking,canonicalize", "Lowering to the kernel dialect with chunks expanded."),
    ("default", "optimize,to-kernel", "The whole pipeline of `qc compile`, nn to kernel."),
];

/// Creates the passes of a pipeline: comma-separated pass or pipeline names, each pass
/// optionally with options in braces (`chunking{chunk=32}`).
pub fn parse_pipeline(text: &str) -> Result<Vec<Box<dyn Pass>>, String> {
    let mut passes = Vec::new();
    for item in split_top_level(text)? {
        let (name, args) = match item.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').ok_or_else(|| format!("`{item}` is missing its closing `}}`"))?;
                let mut args = PassArgs::new();
                for kv in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once('=').ok_or_else(|| format!("pass option `{kv}` is not `key=value`"))?;
                    args.insert(k.trim().to_string(), v.trim().to_string());
                }
                (name.trim(), args)
            }
            None => (item, PassArgs::new()),
        };
        let (name, optional) = match name.strip_suffix('?') {
            Some(n) => (n.trim(), true),
            None => (name, false),
        };
        if let Some((_, expansion, _)) = PIPELINES.iter().find(|p| p.0 == name) {
            if !args.is_empty() {
                return Err(format!("the pipeline `{name}` takes no options"));
            }
            passes.extend(parse_pipeline(expansion)?);
            continue;
        }
        let Some(info) = PASSES.iter().find(|p| p.name == name) else {
            if optional {
                continue;
            }
            let names = PASSES.iter().map(|p| p.name).chain(PIPELINES.iter().map(|p| p.0));
            let hint = qc_runtime::numerics::suggest::closest(name, names).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
            return Err(format!("unknown pass `{name}`{hint}"));
        };
        for key in args.keys() {
            if !info.options.iter().any(|(o, _)| o == key) {
                let known: Vec<&str> = info.options.iter().map(|o| o.0).collect();
                return Err(format!("`{name}` has no option `{key}` (options: {})", if known.is_empty() { "none".into() } else { known.join(", ") }));
            }
        }
        passes.push((info.create)(&args).map_err(|e| format!("`{name}`: {e}"))?);
    }
    Ok(passes)
}

/// Splits on commas outside braces; rejects empty items.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(text[start..].trim());
    if items.iter().any(|s| s.is_empty()) {
        return Err(format!("empty pass name in `{text}`"));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_parse_with_options_and_names() {
        let names: Vec<_> = parse_pipeline("cleanup, chunking{chunk=8}").unwrap().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["cse", "dce", "chunking"]);
        assert!(parse_pipeline("dcee").err().unwrap().contains("did you mean `dce`"));
        assert!(parse_pipeline("chunking{size=8}").err().unwrap().contains("no option `size`"));
        assert!(parse_pipeline("chunking{chunk=0}").is_err());
        assert!(parse_pipeline("dce,,cse").is_err());
        let default: Vec<_> = parse_pipeline("default").unwrap().iter().map(|p| p.name()).collect();
        assert_eq!(default, ["infer", "canonicalize", "fusion", "chunking", "lower-kernel", "chunking", "canonicalize"]);
        assert!(parse_pipeline("nosuch?").unwrap().is_empty());
        assert!(parse_pipeline("nosuch").is_err());
    }
}
