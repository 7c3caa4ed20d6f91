//! The simulated accelerator (`ArraySimulator`, on the nn-level program) against the reference
//! interpreter (on the kernel dialect), bit for bit, with seeded inputs, in every dataflow on
//! a 8x8 array (and with a bit-serial MAC unit): every example (`examples/*.qnn`, the transformer's matrix products, softmax
//! and layer norms included) and every model of `tests/accel/models/` (grouped and depthwise
//! convolutions, stochastic chunked accumulation, a standalone batch norm, average pooling, a
//! broadcast matrix product, more vector operations). Adding a test is adding a model file.

use qc_compiler::accel::exec::ArraySimulator;
use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::program::{compile_to_kernel, input_shapes};
use qc_compiler::backend::{Backend, Program};
use qc_runtime::accel::model::{Arch, Dataflow, Mac};
use qc_runtime::numerics::{RandomStream, Rounding};
use qc_runtime::tensor::Tensor;

#[test]
fn every_example_and_test_model_runs_bit_exactly() {
    let mut matched = 0;
    let mut check = |path: &std::path::Path| {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let source = std::fs::read_to_string(path).unwrap();
        let (model, _) = qc_lang::check_source(&source);
        let model = model.unwrap();
        let seed = 7;
        let kernel = Program::prepare(compile_to_kernel(&model, "optimize").unwrap(), seed).unwrap();
        let mut nn = qc_compiler::lower::lower_model(&model).unwrap();
        let passes = qc_compiler::pass::parse_pipeline("optimize").unwrap();
        qc_compiler::pass::PassManager::new(passes, Default::default()).run(&mut nn).unwrap();
        let nn = Program::prepare(nn, seed).unwrap();
        let inputs: Vec<Tensor> = input_shapes(&kernel.module, 2)
            .into_iter()
            .enumerate()
            .map(|(a, (shape, format))| {
                let stream = RandomStream::new(11, a as u64);
                let n: usize = shape.iter().product();
                let raw: Vec<f32> = (0..n).map(|i| (stream.word(i as u64, 0) as f64 / 2f64.powi(31) - 1.0) as f32).collect();
                let mut values = vec![0f32; n];
                format.quantize(&raw, &shape, Rounding::Nearest, &stream, &mut values).unwrap();
                Tensor::new(shape, values).unwrap()
            })
            .collect();
        let reference = Interpreter.run(&kernel, &inputs).unwrap();
        // The MAC unit changes the cost, never the numbers: bit-serial once, os.
        let runs = Dataflow::ALL.map(|d| (d, Mac::Fixed)).into_iter().chain([(Dataflow::Os, Mac::BitSerial)]);
        for (dataflow, mac) in runs {
            let sim = ArraySimulator { arch: Arch { rows: 8, cols: 8, dataflow, mac, ..Arch::default() } };
            let outputs = sim.run(&nn, &inputs).unwrap_or_else(|e| panic!("{name} {dataflow} {mac}: {e}"));
            assert_eq!(outputs.len(), reference.len());
            for (o, r) in outputs.iter().zip(&reference) {
                assert_eq!(o.shape(), r.shape(), "{name}");
                for (i, (a, b)) in o.data().iter().zip(r.data()).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{name} {dataflow} {mac}: element {i}: {a} against {b}");
                }
            }
            matched += 1;
        }
    };
    insta::glob!("../../examples", "*.qnn", |path| check(path));
    insta::glob!("../../tests/accel/models", "*.qnn", |path| check(path));
    assert!(matched >= 36, "seven examples and two test models, in three dataflows and a MAC unit: {matched}");
}
