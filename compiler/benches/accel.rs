//! Simulated MACs per second of wall time on examples/resnet20.qnn (one image, 32x32 array,
//! os), each figure beside the reference interpreter's on the same input, measured in the same
//! run: the cost model alone (tiling + cycle/traffic/energy accounting) and the bit-exact
//! execution on the array. SCALE-Sim's own time for one ResNet-20 3x3 layer is recorded in
//! tests/accel/refs-public.json (`wall_s`), measured once on another machine.
//!
//! `cargo bench -p qc-compiler --bench accel`

use qc_compiler::accel::exec::ArraySimulator;
use qc_compiler::accel::{compile, layers_from_module, MapMode};
use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::program::{compile_to_kernel, input_shapes};
use qc_compiler::backend::{Backend, Program};
use qc_runtime::accel::energy::EnergyTable;
use qc_runtime::accel::model::Arch;
use qc_runtime::accel::sim::simulate;
use qc_runtime::numerics::RandomStream;
use qc_runtime::tensor::Tensor;
use std::time::Instant;

/// The fastest of `runs` timings of `f`, in seconds.
fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/resnet20.qnn")).unwrap();
    let (model, _) = qc_lang::check_source(&source);
    let model = model.unwrap();
    let kernel = Program::prepare(compile_to_kernel(&model, "optimize").unwrap(), 0).unwrap();
    let mut nn = qc_compiler::lower::lower_model(&model).unwrap();
    let passes = qc_compiler::pass::parse_pipeline("optimize").unwrap();
    qc_compiler::pass::PassManager::new(passes, Default::default()).run(&mut nn).unwrap();
    let layers = layers_from_module(&nn, 1).unwrap();
    let nn = Program::prepare(nn, 0).unwrap();
    let inputs: Vec<Tensor> = input_shapes(&kernel.module, 1)
        .into_iter()
        .map(|(shape, _)| {
            let stream = RandomStream::new(1, 0);
            let n: usize = shape.iter().product();
            Tensor::new(shape, (0..n).map(|i| (stream.word(i as u64, 0) as f64 / 2f64.powi(31) - 1.0) as f32).collect()).unwrap()
        })
        .collect();
    let arch = Arch::default();
    let table = EnergyTable::default();
    let macs: u64 = layers.iter().map(|l| l.gemm.macs() * l.repeat).sum();

    let cost = best_of(20, || {
        let program = compile(&layers, &arch, MapMode::Fixed, &table).unwrap();
        std::hint::black_box(simulate(&program, &arch, &table).unwrap());
    });
    let simulator = ArraySimulator { arch: arch.clone() };
    let mut sim_out = Vec::new();
    let exact = best_of(3, || sim_out = simulator.run(&nn, &inputs).unwrap());
    let mut ref_out = Vec::new();
    let interp = best_of(3, || ref_out = Interpreter.run(&kernel, &inputs).unwrap());
    assert!(sim_out[0].data().iter().zip(ref_out[0].data()).all(|(a, b)| a.to_bits() == b.to_bits()), "the simulator differs from the interpreter");

    let rate = |s: f64| macs as f64 / s / 1e6;
    println!("resnet20, one image, {} MACs, 32x32 array, os", macs);
    println!("  {:<44} {:>10.3} ms  {:>10.1} M MAC/s", "cost model (tiling + accounting)", cost * 1e3, rate(cost));
    println!("  {:<44} {:>10.3} ms  {:>10.1} M MAC/s", "bit-exact execution on the array", exact * 1e3, rate(exact));
    println!("  {:<44} {:>10.3} ms  {:>10.1} M MAC/s", "baseline: reference interpreter (same input)", interp * 1e3, rate(interp));
    println!("  bit-exact simulation / interpreter: {:.2}x", interp / exact);
}
