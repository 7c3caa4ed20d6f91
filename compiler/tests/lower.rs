//! Lowering of every example (`examples/*.qnn`): the `nn` function verifies, its printed form
//! is snapshotted, and print → parse → print is the identity.

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

#[test]
fn every_example_lowers_to_valid_nn_that_round_trips() {
    insta::glob!(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"), "*.qnn", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.display().to_string();
        let text = print_module(&lower(&source, &name));
        let again = parse_module(&text).unwrap_or_else(|d| panic!("{}", d.render(&name, &text)));
        verify(&again).unwrap_or_else(|d| panic!("{}", qc_compiler::diag::render_all(&d, "printed", &text)));
        assert_eq!(print_module(&again), text, "{name}: the printed nn does not round-trip");
        insta::assert_snapshot!(text);
    });
}

#[test]
fn every_example_lowers_to_valid_kernel_ir() {
    use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples")).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let mut module = lower(&source, &name);
        let options = PassOptions { verify_each: true, ..PassOptions::default() };
        PassManager::new(parse_pipeline("lower-kernel,chunking,cse,dce").unwrap(), options).run(&mut module).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = print_module(&module);
        let again = parse_module(&text).unwrap_or_else(|d| panic!("{}", d.render(&name, &text)));
        assert_eq!(print_module(&again), text, "{name}");
        if name.ends_with("mlp.qnn") { println!("{text}"); }
    }
}
