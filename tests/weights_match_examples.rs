//! The pretrained weights in `examples/weights/` hold exactly the parameters that
//! `examples/mlp.qnn` and `examples/lenet.qnn` declare, with the declared shapes, and nothing else.

use qc_lang::check::checked::Dim;
use qc_runtime::io::WeightFile;
use std::path::Path;

fn check(model: &str, weights: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join(model)).unwrap();
    let (module, diagnostics) = qc_lang::check_source(&source);
    let module = module.unwrap_or_else(|| panic!("{model} does not check: {diagnostics:?}"));
    let file = WeightFile::open(&root.join(weights)).unwrap();
    let mut declared = Vec::new();
    for param in &module.params {
        let decl = &param.tensor;
        let shape: Vec<usize> = decl
            .shape
            .0
            .iter()
            .map(|d| match d {
                Dim::Known(n) => *n,
                Dim::Symbol(s) => panic!("parameter {} has a symbolic size {s}", decl.name),
            })
            .collect();
        let tensor = file.get(&decl.name, &shape).unwrap_or_else(|e| panic!("{e}"));
        assert!(tensor.data().iter().all(|x| x.is_finite()), "{}: non-finite weights", decl.name);
        declared.push(decl.name.as_str());
    }
    declared.sort_unstable();
    assert_eq!(file.names().collect::<Vec<_>>(), declared, "{weights} holds other tensors than {model} declares");
}

#[test]
fn mlp_weights_match_mlp_qnn() {
    check("examples/mlp.qnn", "examples/weights/mlp.safetensors");
}

#[test]
fn lenet_weights_match_lenet_qnn() {
    check("examples/lenet.qnn", "examples/weights/lenet.safetensors");
}
