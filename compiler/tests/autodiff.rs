//! Snapshot tests of the backward IR: every `tests/autodiff/*.qnn` (one gradient rule each)
//! is checked, lowered, differentiated (`autodiff::training_step`), specialised to a batch of
//! 4 and snapshotted in the `nn` dialect; the result must verify and lower to valid kernel IR.
//! Adding a test is adding a file.

use qc_compiler::autodiff::{parameters_as_arguments, training_step, GradSpec};
use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
use qc_compiler::print_module;

fn run(module: &mut qc_compiler::ir::Module, pipeline: &str) -> Result<(), String> {
    let passes = parse_pipeline(pipeline)?;
    let options = PassOptions {
        verify_each: true,
        ..PassOptions::default()
    };
    PassManager::new(passes, options)
        .run(module)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn backward_ir_cases() {
    insta::glob!("autodiff/*.qnn", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.display().to_string();
        let (model, diagnostics) = qc_lang::check_source(&source);
        let model = model.unwrap_or_else(|| panic!("{name}: {diagnostics:?}"));
        let spec = GradSpec::from_model(&model).unwrap();
        let mut module = qc_compiler::lower::lower_model(&model).unwrap();
        let params = parameters_as_arguments(&mut module).unwrap();
        training_step(&mut module, params.len(), &spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        run(&mut module, "infer{batch=4}").unwrap_or_else(|e| panic!("{name}: {e}"));
        let printed = print_module(&module);
        run(&mut module, "canonicalize,chunking,to-kernel")
            .unwrap_or_else(|e| panic!("{name}: to kernel: {e}"));
        insta::assert_snapshot!(printed);
    });
}
