//! The simulated accelerator (`ArraySimulator`, on the nn-level program) against the reference
//! interpreter (on the kernel dialect), bit for bit, on every example it executes, with seeded
//! inputs, in every dataflow on a 8x8 array. Examples with ops the accelerator does not execute
//! yet must say so (listed here, so the list cannot grow silently).

use qc_compiler::accel::exec::ArraySimulator;
use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::program::{compile_to_kernel, input_shapes};
use qc_compiler::backend::{Backend, Program};
use qc_runtime::accel::model::{Arch, Dataflow};
use qc_runtime::numerics::{RandomStream, Rounding};
use qc_runtime::tensor::Tensor;

/// Examples with ops the accelerator does not execute yet, and one of those ops.
const NOT_YET: &[(&str, &str)] = &[("transformer", "nn.")];

#[test]
fn every_example_runs_bit_exactly_or_names_the_missing_op() {
    let mut matched = 0;
    insta::glob!("../../examples", "*.qnn", |path| {
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
        for dataflow in Dataflow::ALL {
            let sim = ArraySimulator { arch: Arch { rows: 8, cols: 8, dataflow, ..Arch::default() } };
            match sim.run(&nn, &inputs) {
                Ok(outputs) => {
                    assert!(NOT_YET.iter().all(|(n, _)| *n != name), "{name} runs now: remove it from NOT_YET");
                    assert_eq!(outputs.len(), reference.len());
                    for (o, r) in outputs.iter().zip(&reference) {
                        assert_eq!(o.shape(), r.shape(), "{name}");
                        for (i, (a, b)) in o.data().iter().zip(r.data()).enumerate() {
                            assert_eq!(a.to_bits(), b.to_bits(), "{name} {dataflow}: element {i}: {a} against {b}");
                        }
                    }
                    matched += 1;
                }
                Err(e) => {
                    let (_, op) = NOT_YET.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} {dataflow}: {e}"));
                    assert!(e.0.contains("does not execute") && e.0.contains(op), "{name}: {e}");
                }
            }
        }
    });
    assert!(matched >= 12, "at least four examples in three dataflows: {matched}");
}
