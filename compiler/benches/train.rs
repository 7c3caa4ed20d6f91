//! Training throughput (samples per second), one epoch of the digits each (native f32: 20, to be
//! long enough to time; batch 32, SGD with momentum; native and JIT figures are the fastest of
//! three measurements): the MLP 64-128-128-10 and the LeNet-style
//! CNN of docs/training.md's reproduction table (`docs/training/cnn/`), each emulated in fp32
//! and in hybrid FP8 (the MLP also in a stricter hybrid FP8 with FP16 ends) by
//! `autodiff::trainer::Trainer` on the reference interpreter and on the JIT, beside the same
//! network trained in native f32 in this file (matrixmultiply's sgemm, convolutions as im2col +
//! sgemm) measured in the same run.
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

/// Hybrid FP8 as issue 7 states it: every layer's weights and inputs E4M3 (extra bias)
/// forward, E5M2 gradients, FP16 accumulation in chunks of 64, fp32 master weights.
const HYBRID_FP8: &str = "
model mlp_hfp8 {
  defaults { mul = exact; acc = fp16; chunk = 64; chunk_acc = fp16; }
  input x: [B, 64] hfp8_fwd;
  param w1: [128, 64] hfp8_fwd = he_normal;
  param b1: [128] fp16 = zeros;
  param w2: [128, 128] hfp8_fwd = he_normal;
  param b2: [128] fp16 = zeros;
  param w3: [10, 128] hfp8_fwd = glorot_uniform;
  param b3: [10] fp16 = zeros;
  let h1 = relu(dense(x, w1, b1)) : hfp8_fwd;
  let h2 = relu(dense(h1, w2, b2)) : hfp8_fwd;
  let logits = dense(h2, w3, b3) : fp32;
  output logits;
  train {
    loss = softmax_cross_entropy;
    optimizer = sgd(lr = 0.05, momentum = 0.9);
    epochs = 1;
    batch = 32;
    formats { weight_grad = e5m2; act_grad = e5m2; master = fp32; }
    backward { acc = fp16; chunk = 64; chunk_acc = fp16; }
    loss_scale = dynamic(init = 1024, interval = 1000);
  }
}";

/// A stricter hybrid FP8: FP16 first and last layers (their products with FP16 inputs and
/// E5M2 gradients are wider than FP16, the slowest accumulation) and the update rounded to
/// FP16 with `stochastic:9`.
const HYBRID_FP8_FP16_ENDS: &str = "
model mlp_hfp8_fp16_ends {
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

/// The CNN of the reproduction table, in fp32 and in hybrid FP8.
const CNN_FP32: &str = include_str!("../../docs/training/cnn/fp32.qnn");
const CNN_HYBRID_FP8: &str = include_str!("../../docs/training/cnn/hybrid_fp8.qnn");

/// One epoch of `source` on the emulating trainer, the fastest of `repeats`: samples per second.
fn emulated(source: &str, data: &Dataset, backend: &dyn Backend, repeats: usize) -> f64 {
    let (model, diagnostics) = qc_lang::check_source(source);
    let model = model.unwrap_or_else(|| panic!("{diagnostics:?}"));
    let mut trainer =
        Trainer::new(&model, Path::new("."), &Overrides::default()).expect("the model trains");
    let batches: Vec<_> = Batches::new(data, 32, Order::Shuffled { seed: 0, epoch: 0 })
        .expect("batches")
        .collect();
    // Compiles the step for the full batches and for the last, partial one.
    for b in [&batches[0], &batches[batches.len() - 1]] {
        trainer.step(backend, &b.x, &b.y, 0.05).expect("a step");
    }
    // The fastest of `repeats` epochs (each from where the last left off).
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let start = Instant::now();
        for b in &batches {
            trainer.step(backend, &b.x, &b.y, 0.05).expect("a step");
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    data.len() as f64 / best
}

/// Each figure but the interpreter's (one epoch, slow enough) is the fastest of this many
/// measurements, which shields it from other work on the machine.
const REPEATS: usize = 3;

/// `c = a·b + beta·c` for row-major `a` (m×k), `b` (k×n, or its transpose when `b_t`: the
/// n×k matrix read by columns) and `c` (m×n); `a_t` likewise reads `a` from a k×m matrix.
#[allow(clippy::too_many_arguments)]
fn gemm(m: usize, k: usize, n: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool, beta: f32, c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (rsa, csa) = if a_t { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if b_t { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: the three slices hold the matrices the strides describe (checked above).
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), n as isize, 1);
    }
}

/// A dense layer in native f32 (a convolution's after im2col): weights `[out, in]`, bias,
/// momentum buffers; SGD with momentum 0.9.
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
        Layer { w, b: vec![0.0; outputs], vw: vec![0.0; inputs * outputs], vb: vec![0.0; outputs], inputs, outputs }
    }

    /// `x·wᵀ + b` over `rows` rows, then relu if asked.
    fn forward(&self, x: &[f32], rows: usize, relu: bool) -> Vec<f32> {
        let mut y: Vec<f32> = (0..rows).flat_map(|_| self.b.iter().copied()).collect();
        gemm(rows, self.inputs, self.outputs, x, false, &self.w, true, 1.0, &mut y);
        if relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        y
    }

    /// Updates the layer from the output gradient `dy` and returns the input gradient.
    fn backward(&mut self, x: &[f32], dy: &[f32], rows: usize, lr: f32) -> Vec<f32> {
        let (i, o) = (self.inputs, self.outputs);
        let mut dx = vec![0.0; rows * i];
        gemm(rows, o, i, dy, false, &self.w, false, 0.0, &mut dx);
        let mut dw = vec![0.0; o * i];
        gemm(o, rows, i, dy, true, x, false, 0.0, &mut dw);
        for n in 0..o {
            let gb: f32 = (0..rows).map(|r| dy[r * o + n]).sum();
            self.vb[n] = 0.9 * self.vb[n] + gb;
            self.b[n] -= lr * self.vb[n];
        }
        for ((w, v), g) in self.w.iter_mut().zip(&mut self.vw).zip(&dw) {
            *v = 0.9 * *v + g;
            *w -= lr * *v;
        }
        dx
    }
}

/// Zeroes the gradient where the layer's relu output was not positive.
fn relu_mask(g: &mut [f32], y: &[f32]) {
    g.iter_mut().zip(y).for_each(|(g, y)| if *y <= 0.0 { *g = 0.0 });
}

/// The rows of 3×3 windows (padding 1, stride 1) of an NHWC batch `[n, s, s, c]`: one row of
/// `9·c` values (kh, kw, c) per output position.
fn im2col(x: &[f32], n: usize, s: usize, c: usize) -> Vec<f32> {
    let mut cols = vec![0.0; n * s * s * 9 * c];
    for (p, row) in cols.chunks_mut(9 * c).enumerate() {
        let (b, h, w) = (p / (s * s), p / s % s, p % s);
        for t in 0..9 {
            let (ih, iw) = ((h + t / 3).wrapping_sub(1), (w + t % 3).wrapping_sub(1));
            if ih < s && iw < s {
                let at = ((b * s + ih) * s + iw) * c;
                row[t * c..(t + 1) * c].copy_from_slice(&x[at..at + c]);
            }
        }
    }
    cols
}

/// The input gradient of [`im2col`]: each window row added back to its positions.
fn col2im(cols: &[f32], n: usize, s: usize, c: usize) -> Vec<f32> {
    let mut x = vec![0.0; n * s * s * c];
    for (p, row) in cols.chunks(9 * c).enumerate() {
        let (b, h, w) = (p / (s * s), p / s % s, p % s);
        for t in 0..9 {
            let (ih, iw) = ((h + t / 3).wrapping_sub(1), (w + t % 3).wrapping_sub(1));
            if ih < s && iw < s {
                let at = ((b * s + ih) * s + iw) * c;
                x[at..at + c].iter_mut().zip(&row[t * c..(t + 1) * c]).for_each(|(x, g)| *x += g);
            }
        }
    }
    x
}

/// 2×2 max pooling (stride 2) of an NHWC batch `[n, s, s, c]`: the result and, per output,
/// the index of its (first) largest input.
fn max_pool(x: &[f32], n: usize, s: usize, c: usize) -> (Vec<f32>, Vec<usize>) {
    let o = s / 2;
    let mut y = vec![0.0; n * o * o * c];
    let mut at = vec![0; y.len()];
    for (q, (y, at)) in y.iter_mut().zip(&mut at).enumerate() {
        let (b, h, w, ch) = (q / (o * o * c), q / (o * c) % o, q / c % o, q % c);
        let index = |t: usize| ((b * s + 2 * h + t / 2) * s + 2 * w + t % 2) * c + ch;
        *at = (1..4).map(index).fold(index(0), |best, i| if x[i] > x[best] { i } else { best });
        *y = x[*at];
    }
    (y, at)
}

/// Softmax cross-entropy gradient of `logits` (rows × 10) against `labels`, mean over rows;
/// counts the correct predictions into `correct`.
fn xent_grad(logits: &[f32], labels: &[u32], correct: &mut usize) -> Vec<f32> {
    let rows = labels.len();
    let mut d = vec![0.0; rows * 10];
    for r in 0..rows {
        let row = &logits[r * 10..(r + 1) * 10];
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        let best = (0..10).fold(0, |a, c| if row[c] > row[a] { c } else { a });
        *correct += usize::from(best == labels[r] as usize);
        for c in 0..10 {
            d[r * 10 + c] = (e[c] / s - f32::from(c == labels[r] as usize)) / rows as f32;
        }
    }
    d
}

/// Native f32 training runs this many epochs (one is too short to time): samples per second
/// over all of them.
const NATIVE_EPOCHS: u64 = 20;

/// [`NATIVE_EPOCHS`] epochs of a network in native f32 (the fastest of [`REPEATS`] such runs,
/// training on): samples per second and the accuracy of the predictions made during the last
/// epoch (to show it learns). `step` trains on one batch
/// and counts its correct predictions.
fn native_epochs(data: &Dataset, mut step: impl FnMut(&[f32], &[u32], &mut usize)) -> (f64, f64) {
    let mut correct = 0;
    let mut best = f64::INFINITY;
    for _ in 0..REPEATS {
        let start = Instant::now();
        for epoch in 0..NATIVE_EPOCHS {
            correct = 0;
            for b in Batches::new(data, 32, Order::Shuffled { seed: 0, epoch }).expect("batches") {
                step(b.x.data(), &b.y, &mut correct);
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let samples = (data.len() as u64 * NATIVE_EPOCHS) as f64;
    (samples / best, correct as f64 / data.len() as f64)
}

/// The MLP 64-128-128-10 in native f32.
fn native_mlp(data: &Dataset) -> (f64, f64) {
    let mut l = [Layer::new(64, 128, 1), Layer::new(128, 128, 2), Layer::new(128, 10, 3)];
    native_epochs(data, |x0, labels, correct| {
        let rows = labels.len();
        let h1 = l[0].forward(x0, rows, true);
        let h2 = l[1].forward(&h1, rows, true);
        let logits = l[2].forward(&h2, rows, false);
        let d3 = xent_grad(&logits, labels, correct);
        let mut d2 = l[2].backward(&h2, &d3, rows, 0.05);
        relu_mask(&mut d2, &h2);
        let mut d1 = l[1].backward(&h1, &d2, rows, 0.05);
        relu_mask(&mut d1, &h1);
        l[0].backward(x0, &d1, rows, 0.05);
    })
}

/// The CNN of `docs/training/cnn/fp32.qnn` in native f32: conv 3×3 1→8, relu, max-pool, conv
/// 3×3 8→16, relu, max-pool, dense 64→32, relu, dense 32→10 (NHWC).
fn native_cnn(data: &Dataset) -> (f64, f64) {
    let mut l = [Layer::new(9, 8, 1), Layer::new(72, 16, 2), Layer::new(64, 32, 3), Layer::new(32, 10, 4)];
    native_epochs(data, |x0, labels, correct| {
        let n = labels.len();
        let cols1 = im2col(x0, n, 8, 1);
        let a1 = l[0].forward(&cols1, n * 64, true);
        let (p1, at1) = max_pool(&a1, n, 8, 8);
        let cols2 = im2col(&p1, n, 4, 8);
        let a2 = l[1].forward(&cols2, n * 16, true);
        let (p2, at2) = max_pool(&a2, n, 4, 16);
        let h = l[2].forward(&p2, n, true);
        let logits = l[3].forward(&h, n, false);
        let d_logits = xent_grad(&logits, labels, correct);
        let mut dh = l[3].backward(&h, &d_logits, n, 0.05);
        relu_mask(&mut dh, &h);
        let dp2 = l[2].backward(&p2, &dh, n, 0.05);
        let mut da2 = vec![0.0; a2.len()];
        at2.iter().zip(&dp2).for_each(|(&i, g)| da2[i] += g);
        relu_mask(&mut da2, &a2);
        let dcols2 = l[1].backward(&cols2, &da2, n * 16, 0.05);
        let dp1 = col2im(&dcols2, n, 4, 8);
        let mut da1 = vec![0.0; a1.len()];
        at1.iter().zip(&dp1).for_each(|(&i, g)| da1[i] += g);
        relu_mask(&mut da1, &a1);
        l[0].backward(&cols1, &da1, n * 64, 0.05);
    })
}

/// A network: its name, the shape of a sample, its native f32 training and its emulated
/// schemes (name, source).
type Benchmarked = (&'static str, &'static [usize], fn(&Dataset) -> (f64, f64), &'static [(&'static str, &'static str)]);

fn main() {
    let split = qc_runtime::data::digits::digits_split().expect("the digits");
    let jit = Jit::default();
    let backends: [(&str, &dyn Backend); 2] = [("interp", &Interpreter), ("jit", &jit)];
    println!(
        "digits, batch 32, one epoch ({} samples) each (native: {NATIVE_EPOCHS}), native and JIT the fastest of {REPEATS}; the JIT uses its default threads (QC_THREADS)",
        split.train.len()
    );
    println!("{:<72} {:>12} {:>16}", "training", "samples/s", "vs native f32");
    let models: [Benchmarked; 2] = [
        ("MLP 64-128-128-10", &[64], native_mlp, &[("fp32", FP32), ("hybrid FP8", HYBRID_FP8), ("hybrid FP8, FP16 ends and update", HYBRID_FP8_FP16_ENDS)]),
        ("CNN (docs/training/cnn)", &[8, 8, 1], native_cnn, &[("fp32", CNN_FP32), ("hybrid FP8", CNN_HYBRID_FP8)]),
    ];
    for (model, sample, native, schemes) in models {
        let data = split.train.clone().reshape_samples(sample).expect("the sample shape");
        let (baseline, accuracy) = native(&data);
        println!(
            "{:<72} {baseline:>12.0} {:>16}",
            format!("{model}: native f32 ({NATIVE_EPOCHS} epochs: {:.0}%)", 100.0 * accuracy),
            "1.0x"
        );
        for &(name, source) in schemes {
            for (backend_name, backend) in backends {
                let repeats = if backend_name == "jit" { REPEATS } else { 1 };
                let rate = emulated(source, &data, backend, repeats);
                println!(
                    "{:<72} {rate:>12.0} {:>14.1}x slower",
                    format!("{model}: emulated {name} ({backend_name})"),
                    baseline / rate
                );
            }
        }
    }
}
