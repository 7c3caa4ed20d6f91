//! Every example network compiles through the JIT and runs on seeded random inputs, with the
//! same bits on one and on two threads.

mod common;

use qc_compiler::backend::jit::Jit;
use qc_compiler::backend::program::{compile_to_kernel, random_inputs};
use qc_compiler::backend::{Backend, Program};
use qc_runtime::tensor::Tensor;


#[test]
fn every_example_compiles_and_runs_with_identical_bits_on_one_and_two_threads() {
    let mut ran = Vec::new();
    for path in common::examples() {
        let source = std::fs::read_to_string(&path).unwrap();
        let (model, diagnostics) = qc_lang::check_source(&source);
        let model = model.unwrap_or_else(|| panic!("{}: {diagnostics:?}", path.display()));
        let module = compile_to_kernel(&model, "optimize").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let program = Program::prepare(module, 7).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let inputs = random_inputs(&program.module, 1, 3).unwrap();
        let one = Jit::with_threads(1).run(&program, &inputs).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let two = Jit::with_threads(2).run(&program, &inputs).unwrap();
        assert_eq!(one.len(), two.len());
        for (a, b) in one.iter().zip(&two) {
            assert_eq!(a.shape(), b.shape());
            let bits = |t: &Tensor| t.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b), "{}: thread counts disagree", path.display());
            assert!(a.data().iter().any(|x| *x != 0.0), "{}: an all-zero output", path.display());
        }
        ran.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(ran.len() >= 6, "{ran:?}");
}

/// One `Jit` runs a stochastic program under several seeds (compiled once, cached): each run
/// equals the interpreter's under that seed, and the seeds really change the result.
#[test]
fn a_cached_program_takes_the_seed_of_each_run() {
    use qc_compiler::backend::interp::Interpreter;
    let source = "model sr {
      defaults { mul = exact; acc = fp<6,5>; rounding = stochastic:9; }
      input x: [B, 16] fp32;
      param w: [8, 16] e4m3 = he_normal;
      let y = dense(x, w) : fp16;
      output y;
    }";
    let model = qc_lang::check_source(source).0.unwrap();
    let mut program = Program::prepare(compile_to_kernel(&model, "optimize").unwrap(), 0).unwrap();
    let inputs = random_inputs(&program.module, 2, 3).unwrap();
    let jit = Jit::with_threads(2);
    let bits = |ts: Vec<Tensor>| ts.iter().flat_map(|t| t.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>();
    let mut outputs = Vec::new();
    for seed in [1, 2, 1] {
        program.seed = seed;
        let got = bits(jit.run(&program, &inputs).unwrap());
        assert_eq!(got, bits(Interpreter.run(&program, &inputs).unwrap()), "seed {seed}");
        outputs.push(got);
    }
    assert_ne!(outputs[0], outputs[1], "the seed changes a stochastic program's result");
    assert_eq!(outputs[0], outputs[2]);
}
