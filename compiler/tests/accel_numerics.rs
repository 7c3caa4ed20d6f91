//! The array's numerics against the reference interpreter, bit for bit: one dense layer per
//! arithmetic (exact or rounded products, accumulators, chunks, stochastic roundings with their
//! draws, bias), tiled on a 4x4 array in every dataflow — ws and is split the reduction over
//! folds, so partial sums (accumulator and open chunk) cross fold boundaries — and executed by
//! `ArrayNumerics::execute` from the emitted `array.step`s.

use qc_compiler::accel::{emit_layer, layers_from_module};
use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::program::compile_to_kernel;
use qc_compiler::backend::{Backend, Program as KernelProgram};
use qc_runtime::accel::array::{ArrayNumerics, Operands};
use qc_runtime::accel::datapath::Datapath;
use qc_runtime::accel::isa::Program;
use qc_runtime::accel::model::{Arch, Dataflow};
use qc_runtime::numerics::{Format, RandomStream};
use qc_runtime::tensor::Tensor;

const M: usize = 3;
const K: usize = 37;
const N: usize = 6;

fn check(arith: &str, weight: &str, bias: bool, seed: u64) {
    let bias_param = if bias { format!("param b: [{N}] fp32 = uniform(-1, 1);") } else { String::new() };
    let bias_arg = if bias { ", b" } else { "" };
    let source = format!(
        "model t {{\n  defaults {{ mul = exact; acc = fp32; rounding = nearest; }}\n  input x: [B, {K}] fp32;\n  param w: [{N}, {K}] {weight} = he_normal;\n  {bias_param}\n  let y = dense(x, w{bias_arg}) with {{ {arith} }};\n  output y;\n}}\n"
    );
    let (model, diagnostics) = qc_lang::check_source(&source);
    let model = model.unwrap_or_else(|| panic!("{source}\n{diagnostics:?}"));
    let program = KernelProgram::prepare(compile_to_kernel(&model, "optimize").unwrap(), seed).unwrap();
    let stream = RandomStream::new(seed ^ 0x9e37, 1);
    let x: Vec<f32> = (0..M * K).map(|i| ((stream.word(i as u64, 0) as f64 / 2f64.powi(32)) * 4.0 - 2.0) as f32).collect();
    let reference = Interpreter.run(&program, &[Tensor::new(vec![M, K], x.clone()).unwrap()]).unwrap().remove(0);
    let find = |shape: &[usize]| program.constants.values().find(|t| t.shape() == shape).map(|t| t.data().to_vec());
    let w = find(&[N, K]).expect("the weight constant");
    let b = find(&[N]).filter(|_| bias);

    let mut nn = qc_compiler::lower::lower_model(&model).unwrap();
    let passes = qc_compiler::pass::parse_pipeline("optimize").unwrap();
    qc_compiler::pass::PassManager::new(passes, Default::default()).run(&mut nn).unwrap();
    let layer = layers_from_module(&nn, M as u64).unwrap().remove(0);
    let datapath = Datapath::parse(&layer.arith).unwrap();
    let out_format = Format::parse(&layer.formats[2]).unwrap();
    let numerics = ArrayNumerics::new(&datapath, &out_format, K as u64, seed).unwrap();
    for dataflow in Dataflow::ALL {
        let arch = Arch { rows: 4, cols: 4, dataflow, ..Arch::default() };
        let mut isa = Program::default();
        emit_layer(&mut isa, &layer, &arch, dataflow);
        let operands = Operands { m: M as u64, n: N as u64, ifmap: &x, present: None, filter: &w, bias: b.as_deref(), first: 0, row_stride: N as u64 };
        let accumulators = numerics.execute(&isa.instrs, &operands).unwrap();
        let ours: Vec<f32> = accumulators.iter().enumerate().map(|(e, a)| numerics.round_out(e as u64, *a)).collect();
        let theirs = reference.data();
        for (e, (o, t)) in ours.iter().zip(theirs).enumerate() {
            assert_eq!(o.to_bits(), t.to_bits(), "{arith}, {weight}, {dataflow}: element {e}: {o} against {t}");
        }
    }
}

#[test]
fn fp32_accumulation_of_exact_products() {
    check("acc = fp32", "bf16", true, 0);
}

#[test]
fn fp16_accumulation_with_rounded_products() {
    check("mul = e5m2, acc = fp16", "e4m3", false, 1);
}

#[test]
fn chunked_accumulation_across_folds() {
    check("acc = fp16, chunk = 8, chunk_acc = fp32", "e4m3", true, 2);
    check("acc = e5m2, chunk = 5, chunk_acc = fp16", "e4m3", false, 3);
}

#[test]
fn stochastic_rounding_draws_the_interpreters_words() {
    check("acc = fp16 @ stochastic:9", "e4m3", true, 4);
    check("mul = e4m3 @ stochastic:4, acc = fp<6,5> @ stochastic-unbiased:6, chunk = 4, chunk_acc = fp16 @ stochastic:13", "e4m3", true, 5);
}
