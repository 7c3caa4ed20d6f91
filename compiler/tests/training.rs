//! Training on the reference interpreter:
//! - gradient checks: every case of `tests/autodiff/` whose formats are all fp32 (a network
//!   computed in fp32 and trained with fp32 gradients) has its IR gradients compared with
//!   central finite differences of the loss (computed in f64 from the forward program);
//! - determinism: the same seed gives the same weights bit for bit, another seed others, with
//!   stochastic roundings in the forward pass, the gradients and the update;
//! - a short run on the digits reaches a reasonable test accuracy.

mod common;

use qc_compiler::autodiff::trainer::{compile_forward, compile_step, Overrides, Trainer};
use qc_compiler::autodiff::{GradSpec, Loss};
use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::jit::Jit;
use qc_compiler::backend::program::random_inputs;
use qc_compiler::backend::{Backend, Program};
use qc_runtime::data::{Batches, Dataset, Order};
use qc_runtime::numerics::RandomStream;
use qc_runtime::tensor::Tensor;
use qc_runtime::train;
use std::path::Path;

fn check(source: &str) -> qc_lang::check::CheckedModule {
    let (model, diagnostics) = qc_lang::check_source(source);
    model.unwrap_or_else(|| panic!("{diagnostics:?}"))
}

/// Uniform values in [-1, 1) from a seeded stream.
fn uniform(n: usize, stream: u64) -> Vec<f32> {
    let s = RandomStream::new(42, stream);
    (0..n)
        .map(|i| (s.word(i as u64, 0) as f64 / 2f64.powi(31) - 1.0) as f32)
        .collect()
}

/// Whether every format the model declares or trains with is fp32.
fn all_fp32(source: &str, model: &qc_lang::check::CheckedModule) -> bool {
    let fp32 = qc_runtime::numerics::Format::parse("fp32").unwrap();
    let t = model.training.as_ref().unwrap();
    let arith_fp32 =
        |a: &qc_lang::check::Arith| a.acc.format == fp32 && a.mul.is_none() && a.chunk.is_none();
    model.inputs.iter().all(|i| i.format == fp32)
        && model.params.iter().all(|p| p.tensor.format == fp32)
        && model.nodes.iter().all(|n| {
            n.format == fp32
                && n.arith.as_ref().is_none_or(arith_fp32)
                && n.grads == Default::default()
        })
        && [t.formats.act_grad, t.formats.weight_grad]
            .iter()
            .all(|r| r.format == fp32)
        && arith_fp32(&t.backward)
        && !source.contains("stochastic")
}

fn loss_of(spec: &GradSpec, output: &Tensor, target: &[f32], labels: &[u32]) -> f64 {
    let width = *output.shape().last().unwrap();
    match spec.loss {
        Loss::SoftmaxCrossEntropy => {
            train::softmax_cross_entropy(output.data(), width, labels).loss
        }
        Loss::MeanSquaredError => train::mean_squared_error(output.data(), target, width).loss,
    }
}

#[test]
fn fp32_gradients_match_finite_differences() {
    let files = common::qnn_cases("autodiff");
    let mut checked = 0;
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        let model = check(&source);
        if !all_fp32(&source, &model) {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let spec = GradSpec::from_model(&model).unwrap();
        let rows = 3;
        let (forward, params) = compile_forward(&model, 0).unwrap();
        let step = compile_step(&model, &spec, rows, 0).unwrap();
        let sample: Vec<usize> = model.inputs[0].shape.0[1..]
            .iter()
            .map(|d| {
                if let qc_lang::check::Dim::Known(n) = d {
                    *n
                } else {
                    panic!()
                }
            })
            .collect();
        let mut x_shape = vec![rows];
        x_shape.extend(&sample);
        let x = Tensor::new(x_shape.clone(), uniform(x_shape.iter().product(), 1)).unwrap();
        let weights: Vec<Tensor> = params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let dims: Vec<usize> = p.dims.iter().map(|&d| d as usize).collect();
                let mut values = p.init.generate(&p.dims).unwrap();
                if values.iter().all(|&v| v == 0.0) {
                    values = uniform(values.len(), 100 + i as u64)
                        .iter()
                        .map(|v| v * 0.5)
                        .collect();
                }
                Tensor::new(dims, values).unwrap()
            })
            .collect();
        let forward_out = |w: &[Tensor]| {
            let mut args = vec![x.clone()];
            args.extend(w.iter().cloned());
            Interpreter.run(&forward, &args).unwrap().remove(0)
        };
        let out0 = forward_out(&weights);
        let width = *out0.shape().last().unwrap();
        let labels: Vec<u32> = (0..rows as u32)
            .map(|r| (r * 7 + 1) % width as u32)
            .collect();
        let target: Vec<f32> = match spec.loss {
            Loss::SoftmaxCrossEntropy => train::one_hot(&labels, width),
            Loss::MeanSquaredError => uniform(out0.len(), 7),
        };
        // The training step's results for weights `w` (its output is the training-mode
        // forward pass: with batch statistics in batch norms).
        let step_results = |w: &[Tensor]| {
            let mut args = vec![x.clone()];
            args.extend(w.iter().cloned());
            args.push(Tensor::new(out0.shape().to_vec(), target.clone()).unwrap());
            args.push(Tensor::scalar(1.0));
            Interpreter.run(&step, &args).unwrap()
        };
        let training_loss =
            |w: &[Tensor]| loss_of(&spec, &step_results(w).remove(0), &target, &labels);
        let results = step_results(&weights);
        if params.iter().all(|p| !p.running_statistic) {
            assert_eq!(
                results[0], out0,
                "{name}: the training step's output differs from the forward pass"
            );
        }
        for (p, param) in params.iter().enumerate() {
            let grad = &results[1 + p];
            if param.running_statistic {
                continue; // its slot is the new running value (`batch_statistics_update_the_running_ones`)
            }
            let n = weights[p].len();
            for i in (0..n).step_by(n.div_ceil(7).max(1)) {
                let h = 1e-3f32;
                let mut plus = weights.clone();
                plus[p].data_mut()[i] += h;
                let mut minus = weights.clone();
                minus[p].data_mut()[i] -= h;
                let actual_h = (plus[p].data()[i] as f64 - minus[p].data()[i] as f64) / 2.0;
                let fd = (training_loss(&plus) - training_loss(&minus)) / (2.0 * actual_h);
                let g = grad.data()[i] as f64;
                assert!(
                    (g - fd).abs() <= 1e-3 + 2e-2 * fd.abs(),
                    "{name}: d loss / d {}[{i}] = {g} from the IR, {fd} by finite differences",
                    param.name
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} fp32 cases were checked");
}

/// A batch norm in training normalises with the batch's statistics and returns the running
/// ones moved by `momentum` towards them (the biased variance), checked against f64.
#[test]
fn batch_statistics_update_the_running_ones() {
    let model = check(
        "model bn {
           input x: [B, 2, 3] fp32;
           param g: [3] fp32 = ones;
           param b: [3] fp32 = zeros;
           param w: [2, 3] fp32 = glorot_uniform;
           let y = flatten(dense(batchnorm(x, g, b, momentum = 0.25), w));
           output y;
           train { loss = mse; optimizer = sgd(lr = 0.1); }
         }",
    );
    let spec = GradSpec::from_model(&model).unwrap();
    let (_, params) = compile_forward(&model, 0).unwrap();
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let stats: Vec<bool> = params.iter().map(|p| p.running_statistic).collect();
    assert_eq!(names, ["g", "b", "w", "g.running_mean", "g.running_var"]);
    assert_eq!(stats, [false, false, false, true, true]);
    let rows = 5;
    let step = compile_step(&model, &spec, rows, 0).unwrap();
    let x = uniform(rows * 6, 1);
    let running = [
        uniform(3, 2),
        uniform(3, 3).iter().map(|v| v.abs() + 0.5).collect(),
    ];
    let mut args = vec![Tensor::new(vec![rows, 2, 3], x.clone()).unwrap()];
    args.push(Tensor::new(vec![3], vec![1.0; 3]).unwrap());
    args.push(Tensor::new(vec![3], vec![0.0; 3]).unwrap());
    args.push(Tensor::new(vec![2, 3], uniform(6, 4)).unwrap());
    args.push(Tensor::new(vec![3], running[0].clone()).unwrap());
    args.push(Tensor::new(vec![3], running[1].clone()).unwrap());
    args.push(Tensor::new(vec![rows, 4], uniform(rows * 4, 5)).unwrap());
    args.push(Tensor::scalar(1.0));
    let results = Interpreter.run(&step, &args).unwrap();
    for (c, (&old_mean, &old_var)) in running[0].iter().zip(&running[1]).enumerate() {
        let column: Vec<f64> = x.iter().skip(c).step_by(3).map(|&v| v as f64).collect();
        let mean = column.iter().sum::<f64>() / column.len() as f64;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64;
        let expected = [
            0.75 * old_mean as f64 + 0.25 * mean,
            0.75 * old_var as f64 + 0.25 * var,
        ];
        for (k, e) in expected.iter().enumerate() {
            let found = results[4 + k].data()[c] as f64;
            assert!(
                (found - e).abs() <= 1e-6 * e.abs().max(1.0),
                "statistic {k} of channel {c}: {found}, expected {e}"
            );
        }
    }
}

/// Every case of `tests/autodiff/`, its training step on seeded random inputs: the JIT (one
/// and two threads) computes the interpreter's bits, gradients included.
#[test]
fn backward_programs_give_the_same_bits_on_the_interpreter_and_the_jit() {
    let files = common::qnn_cases("autodiff");
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let model = check(&std::fs::read_to_string(path).unwrap());
        let spec = GradSpec::from_model(&model).unwrap();
        let step = compile_step(&model, &spec, 4, 5).unwrap();
        let inputs = random_inputs(&step.module, 11, 4).unwrap();
        let expected = Interpreter.run(&step, &inputs).unwrap();
        let informative = expected
            .iter()
            .skip(1)
            .any(|t| t.data().iter().any(|x| x.is_finite() && *x != 0.0));
        assert!(informative, "{name}: every gradient is zero or not finite");
        for threads in [1, 2] {
            let found = Jit::with_threads(threads).run(&step, &inputs).unwrap();
            for (r, (e, f)) in expected.iter().zip(&found).enumerate() {
                let same = e.shape() == f.shape()
                    && e.data()
                        .iter()
                        .zip(f.data())
                        .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                assert!(
                    same,
                    "{name}: result {r} differs on the JIT ({threads} threads)"
                );
            }
        }
    }
}

const SMALL_MLP: &str = "
model small {
  input x: [B, 64] fp32;
  param w1: [24, 64] e4m3 = he_normal;
  param b1: [24] fp32 = zeros;
  param w2: [10, 24] fp32 = glorot_uniform;
  param b2: [10] fp32 = zeros;
  let h = relu(dense(x, w1, b1) with { acc = fp16 @ stochastic:9, chunk = 16, chunk_acc = fp32 }) : e4m3;
  let y = dense(h, w2, b2);
  output y;
  train {
    loss = softmax_cross_entropy;
    optimizer = sgd(lr = 0.1, momentum = 0.9, weight_decay = 1e-4);
    schedule = cosine;
    epochs = 3;
    batch = 32;
    seed = 3;
    formats { act_grad = e5m2 @ stochastic:9; weight_grad = e5m2; update = fp16 @ stochastic:9; master = fp32; }
    loss_scale = dynamic(init = 1024, interval = 20);
  }
}";

/// Trains `source` for `steps` batches of the digits and returns the weights' bits.
fn weights_after(source: &str, seed: Option<u64>, steps: usize) -> Vec<Vec<u32>> {
    let model = check(source);
    let overrides = Overrides {
        seed,
        ..Overrides::default()
    };
    let mut trainer = Trainer::new(&model, Path::new("."), &overrides).unwrap();
    let data = qc_runtime::data::digits::digits_split()
        .unwrap()
        .train
        .reshape_samples(&[64])
        .unwrap();
    let batches = Batches::new(
        &data,
        trainer.batch,
        Order::Shuffled {
            seed: trainer.seed,
            epoch: 0,
        },
    )
    .unwrap();
    for b in batches.take(steps) {
        trainer.step(&Interpreter, &b.x, &b.y, 0.05).unwrap();
    }
    trainer
        .weights
        .iter()
        .map(|w| w.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_weights_bit_for_bit() {
    let a = weights_after(SMALL_MLP, None, 3);
    assert_eq!(a, weights_after(SMALL_MLP, None, 3));
    assert_ne!(a, weights_after(SMALL_MLP, Some(4), 3));
}

#[test]
fn a_short_run_on_the_digits_learns() {
    let model = check(SMALL_MLP);
    let mut trainer = Trainer::new(&model, Path::new("."), &Overrides::default()).unwrap();
    let split = qc_runtime::data::digits::digits_split().unwrap();
    let (train_set, test_set) = (
        split.train.reshape_samples(&[64]).unwrap(),
        split.test.reshape_samples(&[64]).unwrap(),
    );
    let before = trainer.evaluate(&Interpreter, &test_set, 512).unwrap();
    for epoch in 0..trainer.epochs {
        let lr = trainer.learning_rate(epoch);
        for b in Batches::new(
            &train_set,
            trainer.batch,
            Order::Shuffled {
                seed: trainer.seed,
                epoch: epoch as u64,
            },
        )
        .unwrap()
        {
            trainer.step(&Interpreter, &b.x, &b.y, lr).unwrap();
        }
    }
    let after = trainer.evaluate(&Interpreter, &test_set, 512).unwrap();
    let accuracy = after.correct as f64 / test_set.len() as f64;
    assert!(
        after.loss < before.loss / 3.0,
        "loss {} -> {}",
        before.loss,
        after.loss
    );
    assert!(accuracy > 0.85, "test accuracy {accuracy}");
}

/// Attention (matmul of two activations, transpose, softmax), layer norm and GELU.
const ATTENTION: &str = "
model attention {
  input x: [B, 8, 8] fp32;
  param wq: [8, 8] fp32 = glorot_uniform;
  param wk: [8, 8] fp32 = glorot_uniform;
  param wv: [8, 8] fp32 = glorot_uniform;
  param g: [8] fp32 = ones;
  param b: [8] fp32 = zeros;
  param w1: [16, 8] fp32 = he_normal;
  param b1: [16] fp32 = zeros;
  param wo: [10, 128] fp32 = glorot_uniform;
  param bo: [10] fp32 = zeros;
  let q = transpose(reshape(dense(x, wq), shape = [B, 8, 2, 4]), perm = [0, 2, 1, 3]);
  let k = transpose(reshape(dense(x, wk), shape = [B, 8, 2, 4]), perm = [0, 2, 3, 1]);
  let v = transpose(reshape(dense(x, wv), shape = [B, 8, 2, 4]), perm = [0, 2, 1, 3]);
  let attn = softmax(mul(matmul(q, k), 0.5), axis = -1);
  let c = reshape(transpose(matmul(attn, v), perm = [0, 2, 1, 3]), shape = [B, 8, 8]);
  let h = layernorm(add(c, x), g, b);
  let logits = dense(flatten(gelu(dense(h, w1, b1))), wo, bo);
  output logits;
  train { loss = softmax_cross_entropy; optimizer = adam(lr = 5e-3); batch = 32; }
}";

/// Batch norm (batch statistics), average and global average pooling, sigmoid and tanh.
const CONV_BN: &str = "
model conv_bn {
  input x: [B, 8, 8, 1] fp32;
  param c1: [16, 3, 3, 1] fp32 = he_normal;
  param g1: [16] fp32 = ones;
  param s1: [16] fp32 = zeros;
  param c2: [16, 3, 3, 16] fp32 = he_normal;
  param g2: [16] fp32 = ones;
  param s2: [16] fp32 = zeros;
  param fc: [10, 16] fp32 = glorot_uniform;
  param fc_b: [10] fp32 = zeros;
  let a = relu(batchnorm(conv2d(x, c1, padding = same), g1, s1, momentum = 0.3));
  let p = avg_pool(a, size = 2);
  let r = tanh(add(p, batchnorm(conv2d(mul(sigmoid(p), p), c2, padding = same), g2, s2, momentum = 0.3)));
  let logits = dense(global_avg_pool(r), fc, fc_b);
  output logits;
  train { loss = softmax_cross_entropy; optimizer = adam(lr = 3e-2); batch = 32; }
}";

/// Trains `source` (samples shaped `sample`) for `steps` batches of the digits on the
/// interpreter; returns the test loss before and after.
fn test_loss_before_and_after(source: &str, sample: &[usize], steps: usize) -> (f64, f64) {
    let model = check(source);
    let mut trainer = Trainer::new(&model, Path::new("."), &Overrides::default()).unwrap();
    let split = qc_runtime::data::digits::digits_split().unwrap();
    let (train_set, test_set) = (
        split.train.reshape_samples(sample).unwrap(),
        split.test.reshape_samples(sample).unwrap(),
    );
    let before = trainer.evaluate(&Interpreter, &test_set, 360).unwrap();
    let order = Order::Shuffled {
        seed: trainer.seed,
        epoch: 0,
    };
    for b in Batches::new(&train_set, trainer.batch, order)
        .unwrap()
        .take(steps)
    {
        trainer
            .step(&Interpreter, &b.x, &b.y, trainer.learning_rate(0))
            .unwrap();
    }
    let after = trainer.evaluate(&Interpreter, &test_set, 360).unwrap();
    (before.loss, after.loss)
}

#[test]
fn small_models_with_every_new_gradient_learn() {
    for (name, source, sample) in [
        ("attention", ATTENTION, [8, 8].as_slice()),
        ("conv_bn", CONV_BN, [8, 8, 1].as_slice()),
    ] {
        let (before, after) = test_loss_before_and_after(source, sample, 20);
        assert!(
            after < 0.7 * before,
            "{name}: test loss {before} -> {after} after 20 steps"
        );
    }
}

/// A dataset of `n` random rows (for the error cases).
fn random_rows(n: usize, width: usize) -> Dataset {
    Dataset::new(
        Tensor::new(vec![n, width], uniform(n * width, 9)).unwrap(),
        (0..n as u32).map(|i| i % 10).collect(),
        10,
    )
    .unwrap()
}

#[test]
fn bad_data_and_unsupported_ops_are_one_line_errors() {
    let model = check(SMALL_MLP);
    let mut trainer = Trainer::new(&model, Path::new("."), &Overrides::default()).unwrap();
    let wrong = random_rows(4, 63);
    let e = trainer
        .step(&Interpreter, wrong.x(), wrong.y(), 0.1)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "the data's samples are [63] but the model reads [64]");
    let model = check(
        "model shifted {
           input x: [B, 64] fp32;
           param w: [6, 64] fp32 = he_normal;
           param c: [1, 3] fp32 = zeros;
           let h = add(reshape(dense(x, w), shape = [B, 2, 3]), c);
           let y = dense(flatten(h), w2);
           param w2: [10, 6] fp32 = he_normal;
           output y;
           train { loss = softmax_cross_entropy; optimizer = sgd(lr = 0.1); }
         }",
    );
    let mut trainer = Trainer::new(&model, Path::new("."), &Overrides::default()).unwrap();
    let data = random_rows(4, 64);
    let e = trainer
        .step(&Interpreter, data.x(), data.y(), 0.1)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "the gradient of `nn.add` broadcasting [1, 3] to [?, 2, 3] is not supported yet (only along leading axes)");
    assert!(!e.contains('\n'));
}

#[test]
fn the_training_step_program_has_the_documented_signature() {
    let model = check(SMALL_MLP);
    let spec = GradSpec::from_model(&model).unwrap();
    let step: Program = compile_step(&model, &spec, 5, 0).unwrap();
    let f = &step.module.funcs[0];
    assert_eq!(f.name, "small_train");
    let shown: Vec<String> = f.results.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        shown,
        [
            "tensor<5x10xfp32>",
            "tensor<24x64xe5m2>",
            "tensor<24xe5m2>",
            "tensor<10x24xe5m2>",
            "tensor<10xe5m2>"
        ]
    );
}

/// A 64-24-10 fp32 MLP whose layers carry `first` and `second` in their `with { }` and whose
/// train section has `backward`.
fn mlp_with_backward(first: &str, second: &str, backward: &str) -> String {
    format!(
        "model bwd {{
  input x: [B, 64] fp32;
  param w1: [24, 64] fp32 = he_normal;
  param b1: [24] fp32 = zeros;
  param w2: [10, 24] fp32 = glorot_uniform;
  param b2: [10] fp32 = zeros;
  let h = relu(dense(x, w1, b1) with {{ {first} }});
  let y = dense(h, w2, b2) with {{ {second} }};
  output y;
  train {{
    loss = softmax_cross_entropy;
    optimizer = sgd(lr = 0.1, momentum = 0.9);
    batch = 32;
    backward {{ {backward} }}
  }}
}}"
    )
}

#[test]
fn a_layers_backward_arithmetic_overrides_the_models() {
    let fp32 = weights_after(&mlp_with_backward("", "", "acc = fp32;"), None, 3);
    let model_wide = weights_after(&mlp_with_backward("", "", "acc = fp16; chunk = 8; chunk_acc = fp32;"), None, 3);
    let one_layer = weights_after(&mlp_with_backward("bwd_acc = fp16, bwd_chunk = 8, bwd_chunk_acc = fp32", "", "acc = fp32;"), None, 3);
    let every_layer = "bwd_acc = fp16, bwd_chunk = 8, bwd_chunk_acc = fp32";
    let per_layer = weights_after(&mlp_with_backward(every_layer, every_layer, "acc = fp32;"), None, 3);
    assert_ne!(fp32, model_wide, "fp16 chunked backward accumulation changes the weights");
    assert_eq!(per_layer, model_wide, "the same arithmetic on every layer is the model-wide one");
    assert_ne!(one_layer, fp32, "the first layer's fp16 weight gradient changes its weights");
    assert_ne!(one_layer, model_wide, "the second layer keeps the model's fp32 backward");
    let first_step = |first: &str| weights_after(&mlp_with_backward(first, "", "acc = fp32;"), None, 1);
    let (fp32, one_layer) = (first_step(""), first_step(every_layer));
    assert_ne!(one_layer[..2], fp32[..2], "one step changes the first layer's weights");
    assert_eq!(one_layer[2..], fp32[2..], "and not the second layer's (its own gradients are fp32)");
}

/// `nn.maxpool2d_grad` of `dy` (`[1, oh, ow, c]`) for `x` (`[1, h, w, c]`) as the definition
/// says: each window's `dy` goes to its first largest element inside the input (row-major
/// taps; a later element only when strictly larger, so `−0` and `+0` tie).
fn first_largest_gradient(x: &[f32], dy: &[f32], (h, w, c): (usize, usize, usize), (size, stride, pad): (usize, usize, usize)) -> Vec<f32> {
    let (oh, ow) = ((h + 2 * pad - size) / stride + 1, (w + 2 * pad - size) / stride + 1);
    let mut grad = vec![0f32; x.len()];
    for (i, o) in (0..oh).flat_map(|i| (0..ow).map(move |o| (i, o))) {
        for ch in 0..c {
            let mut best: Option<usize> = None;
            for (th, tw) in (0..size).flat_map(|th| (0..size).map(move |tw| (th, tw))) {
                let (r, s) = ((i * stride + th) as isize - pad as isize, (o * stride + tw) as isize - pad as isize);
                if r < 0 || s < 0 || r >= h as isize || s >= w as isize {
                    continue;
                }
                let at = (r as usize * w + s as usize) * c + ch;
                if best.is_none_or(|b| x[at] > x[b]) {
                    best = Some(at);
                }
            }
            grad[best.expect("every window has an input")] += dy[(i * ow + o) * c + ch];
        }
    }
    grad
}

#[test]
fn max_pooling_gradients_go_to_the_first_largest_element_on_both_backends() {
    use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
    // Values from a small set, so most windows hold ties (−0 with +0 among them); `dy` small
    // integers, so every sum is exact in fp32.
    let choices = [-1.0f32, -0.0, 0.0, 0.5, 1.0, 2.0];
    let rng = RandomStream::new(5, 0);
    for (h, c, size, stride, pad) in [(4, 2, 2, 2, 0), (4, 2, 3, 1, 0), (5, 2, 3, 2, 1), (6, 1, 2, 2, 1)] {
        let o = (h + 2 * pad - size) / stride + 1;
        let source = format!(
            "func @f(%dy: tensor<1x{o}x{o}x{c}xfp32>, %x: tensor<1x{h}x{h}x{c}xbf16>) -> (tensor<1x{h}x{h}x{c}xfp32>) {{\n  \
             %g = nn.maxpool2d_grad %dy, %x {{arith = #arith<mul=exact, acc=fp32 @ nearest>, padding = [{pad}, {pad}], stride = [{stride}, {stride}], window = [{size}, {size}]}} : \
             (tensor<1x{o}x{o}x{c}xfp32>, tensor<1x{h}x{h}x{c}xbf16>) -> tensor<1x{h}x{h}x{c}xfp32>\n  \
             func.return %g : (tensor<1x{h}x{h}x{c}xfp32>) -> ()\n}}\n"
        );
        let mut module = qc_compiler::parse_module(&source).unwrap_or_else(|d| panic!("{}", d.render("case", &source)));
        let options = PassOptions { verify_each: true, ..PassOptions::default() };
        PassManager::new(parse_pipeline("lower-kernel").unwrap(), options).run(&mut module).unwrap();
        let program = Program::prepare(module, 0).unwrap();
        for trial in 0..20u64 {
            let pick = |i: usize, j: u32| rng.word(trial << 20 | i as u64, j);
            let x: Vec<f32> = (0..h * h * c).map(|i| choices[pick(i, 0) as usize % choices.len()]).collect();
            let dy: Vec<f32> = (0..o * o * c).map(|i| (1 + pick(i, 1) % 8) as f32).collect();
            let expected = first_largest_gradient(&x, &dy, (h, h, c), (size, stride, pad));
            let inputs = [Tensor::new(vec![1, o, o, c], dy).unwrap(), Tensor::new(vec![1, h, h, c], x).unwrap()];
            let case = format!("window {size} stride {stride} padding {pad}, trial {trial}");
            let found = Interpreter.run(&program, &inputs).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(found[0].data()), bits(&expected), "interpreter, {case}");
            for threads in [1, 2] {
                let found = Jit::with_threads(threads).run(&program, &inputs).unwrap();
                assert_eq!(bits(found[0].data()), bits(&expected), "JIT on {threads} threads, {case}");
            }
        }
    }
}

/// Padded convolutions' forward products, input gradients (the transposed window) and weight
/// gradients (positions as the summed axis) read their row operand through affine windows, so
/// the backward pass gets the forward pass's fast code.
#[test]
fn convolution_gradients_read_affine_windows() {
    let path = common::qnn_cases("autodiff")
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "conv2d.qnn"))
        .expect("tests/autodiff/conv2d.qnn");
    let model = check(&std::fs::read_to_string(&path).unwrap());
    let spec = GradSpec::from_model(&model).unwrap();
    let step = compile_step(&model, &spec, 4, 5).unwrap();
    let compiled = Jit::with_threads(1).compile(&step).unwrap();
    // Two forward convolutions, the second's input gradient, both weight gradients.
    assert_eq!(compiled.window_kernels(), 5);
}
