//! Every fusion rewrite checked by execution: each case of `tests/passes/fusion/` and every
//! example runs through the reference interpreter with and without the `fusion` pass, on
//! seeded random parameters and inputs, and the results must be the same bits.

use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::program::{compile_to_kernel, input_shapes};
use qc_compiler::backend::{Backend, Program};
use qc_compiler::init::{Kind, Recipe};
use qc_compiler::ir::{Attr, Module};
use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use qc_runtime::tensor::Tensor;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_passes(module: &mut Module, pipeline: &str) {
    let passes = parse_pipeline(pipeline).unwrap();
    let options = PassOptions { verify_each: true, ..PassOptions::default() };
    PassManager::new(passes, options).run(module).unwrap_or_else(|e| panic!("{pipeline}: {e}"));
}

/// Gives every `nn.param` without a recipe a seeded uniform one; a batch norm's variance
/// gets positive values (its square root must exist for the test to mean anything).
fn seed_params(module: &mut Module) {
    let variances: Vec<_> = module.all_ops().into_iter().filter(|&op| module.ops[op].name() == "nn.batchnorm").map(|op| module.ops[op].operands[4]).collect();
    for (stream, op) in module.all_ops().into_iter().enumerate() {
        if module.ops[op].name() != "nn.param" || module.ops[op].attr("init").is_some() {
            continue;
        }
        let (low, high) = if variances.contains(&module.ops[op].results[0]) { (0.05, 3.0) } else { (-2.0, 2.0) };
        let recipe = Recipe { kind: Kind::Uniform { low, high }, seed: 7, stream: stream as u64 };
        module.ops[op].attrs.insert("init".into(), Attr::Dict(recipe.to_dict()));
    }
}

/// Seeded inputs of the function's argument shapes (batch 3), rounded to each argument's
/// format: normal-ish values over several binades, with zeros of both signs.
fn inputs(module: &Module, seed: u64) -> Vec<Tensor> {
    let rng = RandomStream::new(seed, 99);
    input_shapes(module, 3)
        .into_iter()
        .enumerate()
        .map(|(a, (shape, format))| {
            let n: usize = shape.iter().product();
            let raw: Vec<f32> = (0..n as u64)
                .map(|i| {
                    let w = rng.word(i + ((a as u64) << 32), 0);
                    match w % 16 {
                        0 => 0.0,
                        1 => -0.0,
                        _ => ((w >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2f32.powi((w % 7) as i32 - 2),
                    }
                })
                .collect();
            let mut values = vec![0.0; n];
            let element = if format.is_elementwise() { format } else { Format::parse("fp32").unwrap() };
            element.quantize(&raw, &shape, Rounding::Nearest, &rng, &mut values).unwrap();
            Tensor::new(shape, values).unwrap()
        })
        .collect()
}

fn same_bits(a: &[Tensor], b: &[Tensor]) -> Result<(), String> {
    for (r, (x, y)) in a.iter().zip(b).enumerate() {
        if x.shape() != y.shape() {
            return Err(format!("result {r}: shape {:?} vs {:?}", x.shape(), y.shape()));
        }
        for (i, (p, q)) in x.data().iter().zip(y.data()).enumerate() {
            if p.to_bits() != q.to_bits() && !(p.is_nan() && q.is_nan()) {
                return Err(format!("result {r} element {i}: {p:e} without fusion, {q:e} with"));
            }
        }
    }
    Ok(())
}

/// Runs `module` (nn level, one function) to kernel with and without `fusion` first.
fn check_function(module: Module, what: &str) -> bool {
    let mut plain = module;
    run_passes(&mut plain, "infer{batch=3}");
    let mut fused = plain.clone();
    run_passes(&mut fused, "fusion");
    let changed = qc_compiler::print_module(&fused) != qc_compiler::print_module(&plain);
    let args = inputs(&plain, 1);
    let mut results = Vec::new();
    for m in [&mut plain, &mut fused] {
        run_passes(m, "to-kernel");
        let program = Program::prepare(m.clone(), 5).unwrap_or_else(|e| panic!("{what}: {e}"));
        match Interpreter.run(&program, &args) {
            Ok(r) => results.push(r),
            // `q.quantize` with explicit scales has no executable semantics yet (spec/ir.md).
            Err(e) if e.to_string().contains("with given scales is not supported") => return false,
            Err(e) => panic!("{what}: {e}"),
        }
    }
    same_bits(&results[0], &results[1]).unwrap_or_else(|e| panic!("{what}: fusion changed a result: {e}"));
    changed
}

#[test]
fn every_fusion_case_computes_the_same_bits() {
    let dir = root().join("compiler/tests/passes/fusion");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "qir")).collect();
    files.sort();
    let mut fired = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut module = qc_compiler::parse_module(&std::fs::read_to_string(file).unwrap()).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        seed_params(&mut module);
        for f in 0..module.funcs.len() {
            let mut one = module.clone();
            one.funcs = vec![module.funcs[f].clone()];
            let what = format!("{name} @{}", module.funcs[f].name);
            if check_function(one, &what) {
                fired += 1;
            }
        }
    }
    // The firing cases must really have been rewritten, or the comparison proves nothing.
    assert!(fired >= 15, "only {fired} functions were changed by fusion");
}

#[test]
fn every_example_computes_the_same_bits_with_and_without_fusion() {
    for example in ["mlp", "lenet", "hybrid_fp8", "ternary", "binary", "transformer", "resnet20"] {
        let source = std::fs::read_to_string(root().join(format!("examples/{example}.qnn"))).unwrap();
        let model = qc_lang::check_source(&source).0.unwrap();
        let plain = compile_to_kernel(&model, "infer,canonicalize,chunking").unwrap();
        let fused = compile_to_kernel(&model, "optimize").unwrap();
        let args = inputs(&plain, 2);
        let run = |m: Module| Interpreter.run(&Program::prepare(m, 3).unwrap(), &args).unwrap();
        same_bits(&run(plain), &run(fused)).unwrap_or_else(|e| panic!("{example}: fusion changed a result: {e}"));
    }
}
