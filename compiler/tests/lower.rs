//! Lowering of every example (`examples/*.qnn`) in the library: the `nn` function verifies
//! and round-trips, and lower-kernel with chunk expansion gives valid kernel IR that
//! round-trips (snapshots of both stages are taken through the CLI, `tests/compile_cli.rs`).

mod common;

use qc_compiler::{lower::lower_model, parse_module, print_module, verify};

fn lower(source: &str, name: &str) -> qc_compiler::Module {
    let (checked, diags) = qc_lang::check_source(source);
    let model = checked.unwrap_or_else(|| panic!("{name}: {}", qc_lang::render(&diags, source, name, false)));
    let module = lower_model(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Err(d) = verify(&module) {
        panic!("{name}: {}", qc_compiler::diag::render_all(&d, name, source));
    }
    module
}

fn examples() -> Vec<std::path::PathBuf> {
    let paths = common::examples();
    assert!(paths.len() >= 7, "{paths:?}");
    paths
}

#[test]
fn every_example_lowers_to_valid_nn_that_round_trips() {
    for path in examples() {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let text = print_module(&lower(&source, &name));
        let again = parse_module(&text).unwrap_or_else(|d| panic!("{}", d.render(&name, &text)));
        verify(&again).unwrap_or_else(|d| panic!("{}", qc_compiler::diag::render_all(&d, "printed", &text)));
        assert_eq!(print_module(&again), text, "{name}: the printed nn does not round-trip");
    }
}

#[test]
fn every_example_lowers_to_valid_kernel_ir() {
    use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
    for path in examples() {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let mut module = lower(&source, &name);
        let options = PassOptions { verify_each: true, ..PassOptions::default() };
        PassManager::new(parse_pipeline("lower-kernel,chunking,cse,dce").unwrap(), options).run(&mut module).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = print_module(&module);
        let again = parse_module(&text).unwrap_or_else(|d| panic!("{}", d.render(&name, &text)));
        assert_eq!(print_module(&again), text, "{name}");
    }
}

#[test]
fn folded_parameters_regenerate_to_their_digest() {
    use qc_compiler::ir::Attr;
    use qc_compiler::pass::{constant_values, parse_pipeline, PassManager, PassOptions};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/lenet.qnn");
    let mut module = lower(&std::fs::read_to_string(path).unwrap(), path);
    PassManager::new(parse_pipeline("optimize").unwrap(), PassOptions::default()).run(&mut module).unwrap();
    let mut checked = 0;
    for op in module.all_ops() {
        let o = &module.ops[op];
        if let (Some(Attr::Str(digest)), Some(Attr::Str(name))) = (o.attrs.get("digest"), o.attrs.get("name")) {
            let values = constant_values(&module, op).unwrap();
            assert_eq!(&qc_compiler::init::digest(&values), digest, "{name}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "lenet's two int8 weights are folded");
}
