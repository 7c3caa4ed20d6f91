//! Training throughput (samples per second) of the digits MLP (64-128-128-10, batch 32, SGD
//! with momentum), one epoch each: emulated in fp32 and in hybrid FP8 by
//! `autodiff::trainer::Trainer` on the reference interpreter and on the JIT, beside the same network trained
//! in native f32 (plain loops in this file) measured in the same run.
//!
//! `cargo bench -p qc-compiler --bench train`

use qc_compiler::autodiff::trainer::{Overrides, Trainer};
use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::jit::Jit;
use qc_compiler::backend::Backend;
use qc_runtime::data::{Batches, Dataset, Order};
use std::path::Path;
use std::time::Instant;

const FP32: &str = "
model mlp_fp32 {
  input x: [B, 64] fp32;
  param w1: [128, 64] fp32 = he_normal;
  param b1: [128] fp32 = zeros;
  param w2: [128, 128] fp32 = he_normal;
  param b2: [128] fp32 = zeros;
  param w3: [10, 128] fp32 = glorot_uniform;
  param b3: [10] fp32 = zeros;
  let logits = dense(relu(dense(relu(dense(x, w1, b1)), w2, b2)), w3, b3);
  output logits;
  train { loss = softmax_cross_entropy; optimizer = sgd(lr = 0.05, momentum = 0.9); epochs = 1; batch = 32; }
}";

const HYBRID_FP8: &str = "
model mlp_hfp8 {
  defaults { mul = exact; acc = fp16; chunk = 64; chunk_acc = fp16; }
  input x: [B, 64] fp16;
  param w1: [128, 64] fp16 = he_normal;
  param b1: [128] fp16 = zeros;
  param w2: [128, 128] hfp8_fwd = he_normal;
  param b2: [128] fp16 = zeros;
  param w3: [10, 128] fp16 = glorot_uniform;
  param b3: [10] fp16 = zeros;
  let h1 = relu(dense(x, w1, b1)) : hfp8_fwd;
  let h2 = relu(dense(h1, w2, b2)) : hfp8_fwd;
  let logits = dense(h2 : fp16, w3, b3) : fp32;
  output logits;
  train {
    loss = softmax_cross_entropy;
    optimizer = sgd(lr = 0.05, momentum = 0.9);
    epochs = 1;
    batch = 32;
    formats { weight_grad = e5m2; act_grad = e5m2; update = fp16 @ stochastic:9; master = fp32; }
    backward { acc = fp16; chunk = 64; chunk_acc = fp16; }
    loss_scale = dynamic(init = 1024, interval = 1000);
  }
}";

/// One epoch of `source` on the emulating trainer: samples per second.
fn emulated(source: &str, data: &Dataset, backend: &dyn Backend) -> f64 {
    let (model, diagnostics) = qc_lang::check_source(source);
    let model = model.unwrap_or_else(|| panic!("{diagnostics:?}"));
    let mut trainer =
        Trainer::new(&model, Path::new("."), &Overrides::default()).expect("the model trains");
    let batches: Vec<_> = Batches::new(data, 32, Order::Shuffled { seed: 0, epoch: 0 })
        .expect("batches")
        .collect();
    trainer
        .step(backend, &batches[0].x, &batches[0].y, 0.05)
        .expect("a step"); // compiles the step
    let start = Instant::now();
    for b in &batches {
        trainer
            .step(backend, &b.x, &b.y, 0.05)
            .expect("a step");
    }
    data.len() as f64 / start.elapsed().as_secs_f64()
}

/// A dense layer in native f32: weights `[out, in]`, bias, momentum buffers.
struct Layer {
    w: Vec<f32>,
    b: Vec<f32>,
    vw: Vec<f32>,
    vb: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Layer {
    fn new(inputs: usize, outputs: usize, seed: u64) -> Layer {
        let s = qc_runtime::numerics::RandomStream::new(seed, 0);
        let scale = (2.0 / inputs as f32).sqrt();
        let w = (0..inputs * outputs)
            .map(|i| (s.word(i as u64, 0) as f32 / 4294967296.0 - 0.5) * 2.0 * scale)
            .collect();
        Layer {
            w,
            b: vec![0.0; outputs],
            vw: vec![0.0; inputs * outputs],
            vb: vec![0.0; outputs],
            inputs,
            outputs,
        }
    }

    fn forward(&self, x: &[f32], rows: usize, relu: bool) -> Vec<f32> {
        let mut y = vec![0.0; rows * self.outputs];
        for r in 0..rows {
            let xr = &x[r * self.inputs..(r + 1) * self.inputs];
            for n in 0..self.outputs {
                let wn = &self.w[n * self.inputs..(n + 1) * self.inputs];
                let s: f32 = xr.iter().zip(wn).map(|(a, b)| a * b).sum::<f32>() + self.b[n];
                y[r * self.outputs + n] = if relu { s.max(0.0) } else { s };
            }
        }
        y
    }

    /// Updates the layer from the output gradient `dy` and returns the input gradient.
    fn backward(&mut self, x: &[f32], dy: &[f32], rows: usize, lr: f32) -> Vec<f32> {
        let mut dx = vec![0.0; rows * self.inputs];
        for r in 0..rows {
            for n in 0..self.outputs {
                let g = dy[r * self.outputs + n];
                for k in 0..self.inputs {
                    dx[r * self.inputs + k] += g * self.w[n * self.inputs + k];
                }
            }
        }
        for n in 0..self.outputs {
            let mut gb = 0.0;
            for r in 0..rows {
                gb += dy[r * self.outputs + n];
            }
            self.vb[n] = 0.9 * self.vb[n] + gb;
            self.b[n] -= lr * self.vb[n];
            for k in 0..self.inputs {
                let mut g = 0.0;
                for r in 0..rows {
                    g += dy[r * self.outputs + n] * x[r * self.inputs + k];
                }
                let i = n * self.inputs + k;
                self.vw[i] = 0.9 * self.vw[i] + g;
                self.w[i] -= lr * self.vw[i];
            }
        }
        dx
    }
}

/// One epoch of the same MLP in native f32: samples per second (and the final accuracy on
/// the epoch, to show it learns).
fn native(data: &Dataset) -> (f64, f64) {
    let mut layers = [
        Layer::new(64, 128, 1),
        Layer::new(128, 128, 2),
        Layer::new(128, 10, 3),
    ];
    let batches: Vec<_> = Batches::new(data, 32, Order::Shuffled { seed: 0, epoch: 0 })
        .expect("batches")
        .collect();
    let mut correct = 0;
    let start = Instant::now();
    for b in &batches {
        let rows = b.y.len();
        let x0 = b.x.data();
        let h1 = layers[0].forward(x0, rows, true);
        let h2 = layers[1].forward(&h1, rows, true);
        let logits = layers[2].forward(&h2, rows, false);
        let mut d3 = vec![0.0; rows * 10];
        for r in 0..rows {
            let row = &logits[r * 10..(r + 1) * 10];
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            let best = (0..10).fold(0, |a, c| if row[c] > row[a] { c } else { a });
            correct += usize::from(best == b.y[r] as usize);
            for c in 0..10 {
                d3[r * 10 + c] = (e[c] / s - f32::from(c == b.y[r] as usize)) / rows as f32;
            }
        }
        let mut d2 = layers[2].backward(&h2, &d3, rows, 0.05);
        d2.iter_mut()
            .zip(&h2)
            .for_each(|(g, h)| *g = if *h > 0.0 { *g } else { 0.0 });
        let mut d1 = layers[1].backward(&h1, &d2, rows, 0.05);
        d1.iter_mut()
            .zip(&h1)
            .for_each(|(g, h)| *g = if *h > 0.0 { *g } else { 0.0 });
        layers[0].backward(x0, &d1, rows, 0.05);
    }
    (
        data.len() as f64 / start.elapsed().as_secs_f64(),
        correct as f64 / data.len() as f64,
    )
}

fn main() {
    let data = qc_runtime::data::digits::digits_split()
        .expect("the digits")
        .train
        .reshape_samples(&[64])
        .expect("64 pixels");
    let (baseline, accuracy) = native(&data);
    println!(
        "digits MLP 64-128-128-10, batch 32, one epoch ({} samples); the JIT uses its default threads (QC_THREADS)",
        data.len()
    );
    println!("{:<34} {:>12} {:>12}", "training", "samples/s", "vs native");
    println!(
        "{:<34} {:>12.0} {:>12}",
        format!("native f32 (epoch accuracy {:.0}%)", 100.0 * accuracy),
        baseline,
        "1.0x"
    );
    let jit = Jit::default();
    let backends: [(&str, &dyn Backend); 2] = [("interp", &Interpreter), ("jit", &jit)];
    for (name, source) in [("fp32", FP32), ("hybrid FP8", HYBRID_FP8)] {
        for (backend_name, backend) in backends {
            let rate = emulated(source, &data, backend);
            println!(
                "{:<34} {rate:>12.0} {:>11.0}x slower",
                format!("emulated {name} ({backend_name})"),
                baseline / rate
            );
        }
    }
}
