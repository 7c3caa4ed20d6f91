//! The JIT's vector contraction code (`backend/jit/contract.rs`) against the reference
//! interpreter, bit for bit: dense layers and convolutions whose shapes leave remainders in
//! every blocking dimension, every accumulator format and rounding the vector code handles,
//! chunked and not, on operands from a grid of signed powers of two (ties, subnormals and
//! overflow of the accumulator), on 1 and 2 threads. Each case asserts that its contraction
//! was compiled to vector code, so a recognition that silently falls back fails here.

use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::jit::Jit;
use qc_compiler::backend::program::compile_to_kernel;
use qc_compiler::backend::{Backend, Program};
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use qc_runtime::tensor::Tensor;

/// Accumulations: the `with { ... }` of the layer and its operand format.
const ARITHS: [(&str, &str); 21] = [
    ("e4m3", "acc = fp32"),
    ("fp32", "acc = fp32"),
    ("fp32", "acc = fp16"),
    ("fp32", "acc = fp<5,7>"),
    ("e4m3", "acc = fp16"),
    ("fp16", "acc = fp16"),
    ("fp16", "acc = fp<5,7>"),
    ("fp16", "acc = fp<6,5,nosub>"),
    ("e5m2", "acc = fp16"),
    ("e4m3", "acc = fp<5,7>"),
    ("e4m3", "acc = fp<6,5>"),
    ("e4m3", "acc = fp<6,5,nosub>"),
    ("e5m2", "acc = fp<5,4,nosub> @ toward-zero"),
    ("e4m3", "acc = fp16 @ up"),
    ("e5m2", "acc = fp16 @ down"),
    ("e4m3", "acc = fp16 @ nearest-away"),
    ("e4m3", "acc = fp<6,5> @ stochastic:9"),
    ("e4m3", "acc = fp<6,5,nosub> @ stochastic:9"),
    ("fp16", "acc = fp<4,3> @ stochastic:4"),
    ("e5m2", "acc = fp16 @ stochastic:8"),
    ("e4m3", "acc = fp<6,5> @ stochastic-unbiased:6"),
];

/// Values `±2^e` (and zeros) for e in a range wide enough to reach the operand format's
/// subnormals and its largest values, rounded to `format`.
fn grid(format: &str, shape: &[usize], stream: u64) -> Tensor {
    let rng = RandomStream::new(7, stream);
    let n: usize = shape.iter().product();
    let raw: Vec<f32> = (0..n)
        .map(|i| {
            let w = rng.word(i as u64, 0);
            if w.is_multiple_of(11) {
                return 0.0;
            }
            let e = (w >> 8) % 36;
            let sign = if w & 1 == 1 { -1.0 } else { 1.0 };
            // Mostly moderate magnitudes (ties and cancellations), some extreme.
            let e = if w.is_multiple_of(5) {
                e as i32 - 20
            } else {
                (e % 8) as i32 - 4
            };
            sign * 2f32.powi(e) * if w.is_multiple_of(3) { 1.5 } else { 1.0 }
        })
        .collect();
    rounded(format, shape, &raw, &rng)
}

/// `raw` rounded to `format` (nearest) as a tensor of `shape`.
fn rounded(format: &str, shape: &[usize], raw: &[f32], rng: &RandomStream) -> Tensor {
    let mut out = vec![0f32; raw.len()];
    Format::parse(format)
        .unwrap()
        .quantize(raw, shape, Rounding::Nearest, rng, &mut out)
        .unwrap();
    Tensor::new(shape.to_vec(), out).unwrap()
}

fn program(source: &str) -> Program {
    let (model, diagnostics) = qc_lang::check_source(source);
    let model = model.unwrap_or_else(|| panic!("{diagnostics:?}\n{source}"));
    Program::prepare(compile_to_kernel(&model, "optimize").unwrap(), 5).unwrap()
}

fn same_bits(a: &[Tensor], b: &[Tensor]) -> Result<(), String> {
    for (x, y) in a.iter().zip(b) {
        if x.shape() != y.shape() {
            return Err(format!("shapes {:?} and {:?}", x.shape(), y.shape()));
        }
        if let Some(i) = x
            .data()
            .iter()
            .zip(y.data())
            .position(|(p, q)| p.to_bits() != q.to_bits())
        {
            return Err(format!(
                "element {i}: interpreter {:e} ({:#x}), JIT {:e} ({:#x})",
                x.data()[i],
                x.data()[i].to_bits(),
                y.data()[i],
                y.data()[i].to_bits()
            ));
        }
    }
    Ok(())
}

/// Runs `source` on the interpreter and the JIT (1 and 2 threads), asserting vector code.
fn check(source: &str, inputs: &[Tensor]) {
    check_program(&program(source), source, inputs);
}

/// Runs `p` (`label` names it in failures) on the interpreter and the JIT (1 and 2 threads),
/// asserting vector code; returns how many of its contractions read an affine window.
fn check_program(p: &Program, label: &str, inputs: &[Tensor]) -> usize {
    let expected = Interpreter.run(p, inputs).unwrap();
    let mut windows = 0;
    for threads in [1, 2] {
        let compiled = Jit::with_threads(threads)
            .compile(p)
            .unwrap_or_else(|e| panic!("{e}\n{label}"));
        assert!(
            compiled.vectorised_kernels() >= 1,
            "no vector contraction in\n{label}"
        );
        windows = compiled.window_kernels();
        let got = compiled.run(p, inputs).unwrap();
        if let Err(e) = same_bits(&expected, &got) {
            panic!("{threads} thread(s): {e}\n{label}");
        }
    }
    windows
}

#[test]
fn dense_contractions_match_the_interpreter() {
    let shapes: [(usize, usize, usize); 7] = [
        (3, 1, 1),
        (5, 3, 31),
        (7, 5, 65),
        (1, 7, 9),
        (9, 9, 33),
        (4, 33, 31),
        (6, 16, 65),
    ];
    let mut case = 0u64;
    for (input, with) in ARITHS {
        for chunk in [
            "",
            ", chunk = 1",
            ", chunk = 7",
            ", chunk = 32",
            ", chunk = 100",
        ] {
            // Every arithmetic with every chunk size, on a rotating subset of the shapes.
            for &(m, n, k) in shapes.iter().skip((case % 3) as usize).step_by(3) {
                case += 1;
                let source = format!(
                    "model dense {{\n  input x: [{m}, {k}] {input};\n  input w: [{n}, {k}] {input};\n  let y = dense(x, w) with {{ {with}{chunk} }} : fp32;\n  output y;\n}}\n"
                );
                let x = grid(input, &[m, k], case);
                let w = grid(input, &[n, k], case + 1000);
                check(&source, &[x, w]);
            }
        }
    }
}

#[test]
fn convolutions_with_padding_and_stride_match_the_interpreter() {
    // (batch, height, width, channels, outputs, kernel height, kernel width, window): odd
    // sizes, rows that leave a remainder in the row blocking, outputs over several groups of
    // 16 (which share a row pack), non-square kernels, one with more terms (2160) than a
    // row pack takes, and one with more taps (81) than a window's class mask holds.
    let layers = [
        (2, 5, 5, 3, 5, 3, 3, "padding = same"),
        (1, 6, 7, 2, 9, 3, 3, "padding = 1, stride = 2"),
        (3, 4, 4, 4, 3, 3, 3, "padding = 2, stride = [1, 2]"),
        (1, 5, 5, 1, 16, 3, 3, "padding = same, dilation = 2"),
        (2, 7, 5, 3, 37, 5, 3, "padding = [2, 1], stride = [2, 1], dilation = [1, 2]"),
        (3, 5, 3, 2, 6, 1, 1, "stride = 2"),
        (1, 3, 4, 240, 5, 3, 3, "padding = same"),
        (1, 9, 10, 2, 3, 9, 9, "padding = same"),
    ];
    let mut case = 0u64;
    for (input, with) in ARITHS {
        for chunk in ["", ", chunk = 7"] {
            for &(b, h, w, c, o, kh, kw, window) in &layers {
                case += 1;
                let source = format!(
                    "model conv {{\n  input x: [{b}, {h}, {w}, {c}] {input};\n  input k: [{o}, {kh}, {kw}, {c}] {input};\n  let y = conv2d(x, k, {window}) with {{ {with}{chunk} }} : fp32;\n  output y;\n}}\n"
                );
                let x = grid(input, &[b, h, w, c], case);
                let kw = grid(input, &[o, kh, kw, c], case + 1000);
                let windows = check_program(&program(&source), &source, &[x, kw]);
                assert_eq!(windows, 1, "the window is not read as one in\n{source}");
            }
        }
    }
}

/// Values of `format` spread over its whole range: random significands at mostly moderate
/// exponents, some in the subnormals, some near the largest values (so sums overflow).
fn spread(format: &str, shape: &[usize], stream: u64) -> Tensor {
    let rng = RandomStream::new(11, stream);
    let n: usize = shape.iter().product();
    let raw: Vec<f32> = (0..n)
        .map(|i| {
            let w = rng.word(i as u64, 0);
            let significand = 1.0 + (w >> 12) as f32 / 2f32.powi(20);
            let e = match w % 10 {
                0 => -(((w >> 4) % 14) as i32) - 6,
                1 => 5 + ((w >> 4) % 4) as i32,
                _ => ((w >> 4) % 7) as i32 - 3,
            };
            let sign = if w & 2 == 2 { -1.0 } else { 1.0 };
            sign * significand * 2f32.powi(e)
        })
        .collect();
    rounded(format, shape, &raw, &rng)
}

/// `nearest` accumulators whose vector code rounds the binary32 sum directly (products of
/// at most the accumulator's precision, double rounding innocuous), and one whose products
/// are too wide for that (fp<6,5>, so it takes the odd rounding): mixed operand formats,
/// long sums with cancellation, overflow and subnormals, chunked and not; then the same
/// terms after a large first product, so that the terms are near the accumulator's spacing
/// and sums land on and next to its midpoints; then sums next to a midpoint of fp<6,5>.
#[test]
fn nearest_accumulators_rounding_the_binary32_sum_match_the_interpreter() {
    let cases = [
        ("e4m3", "e4m3", "fp16"),
        ("e4m3", "e5m2", "fp16"),
        ("e5m2", "e5m2", "fp16"),
        ("e5m2", "e4m3", "fp<5,7>"),
        ("e4m3", "e4m3", "fp<4,8>"),
        ("e4m3", "e4m3", "fp<6,5>"),
    ];
    let mut case = 0u64;
    for (fx, fw, acc) in cases {
        for chunk in ["", ", chunk = 5", ", chunk = 64"] {
            case += 1;
            let (m, n, k) = (5, 12, 300);
            let source = format!(
                "model dense {{\n  input x: [{m}, {k}] {fx};\n  input w: [{n}, {k}] {fw};\n  let y = dense(x, w) with {{ acc = {acc}{chunk} }} : fp32;\n  output y;\n}}\n"
            );
            let x = spread(fx, &[m, k], case);
            let w = spread(fw, &[n, k], case + 1000);
            check(&source, &[x, w]);
            // The same terms after a large first product (2^7 to 2^12): the accumulator's
            // spacing is then near the terms' size, so sums land on and next to midpoints.
            let mut xv = spread(fx, &[m, k], case + 2000).data().to_vec();
            let mut wv = spread(fw, &[n, k], case + 3000).data().to_vec();
            for i in 0..m {
                xv[i * k] = 2f32.powi(5 + (i % 3) as i32);
            }
            for j in 0..n {
                wv[j * k] = 2f32.powi(2 + (j % 5) as i32);
            }
            let x = Tensor::new(vec![m, k], xv).unwrap();
            let w = Tensor::new(vec![n, k], wv).unwrap();
            check(&source, &[x, w]);
            // A tiny first product (±2^-18), then one of (1 + i/8)·2^4 · (1 + j/8)·2^3: a sum
            // more than 24 bits wide next to the product, which is a midpoint of a 6-bit
            // accumulator for i = j = 1 (binary32 would round it onto the midpoint).
            let hazard = |format: &str, rows: usize, scale: f32, stream: u64| {
                let mut v = vec![0f32; rows * k];
                for r in 0..rows {
                    let sign = if r % 2 == 0 { 1.0 } else { -1.0 };
                    v[r * k] = sign * 2f32.powi(-9);
                    v[r * k + 1] = (1.0 + (r % 8) as f32 / 8.0) * scale;
                }
                let mut out = vec![0f32; v.len()];
                let rng = RandomStream::new(1, stream);
                Format::parse(format)
                    .unwrap()
                    .quantize(&v, &[rows, k], Rounding::Nearest, &rng, &mut out)
                    .unwrap();
                Tensor::new(vec![rows, k], out).unwrap()
            };
            let x = hazard(fx, m, 16.0, case);
            let w = hazard(fw, n, 8.0, case + 1);
            check(&source, &[x, w]);
        }
    }
}

/// Layers of at least 64 outputs whose fp16 sums of FP8 products run under the range guard:
/// without overflow checks when the operands' largest magnitudes bound every sum (small
/// values, also with a subnormal or zero sum), with them when not (values near the formats'
/// largest, whose sums overflow to ±∞ or come back from near it; a NaN or infinite
/// operand): chunked and not, a layer
/// width with a vector left over and a partial one, one and two rows per block of
/// outputs.
#[test]
fn range_guarded_accumulations_match_the_interpreter() {
    let mut case = 0u64;
    for (fx, fw) in [("e4m3", "e4m3"), ("e5m2", "e4m3")] {
        for chunk in ["", ", chunk = 64"] {
            for (m, n) in [(3, 64), (2, 70)] {
                case += 1;
                let k = 200;
                let source = format!(
                    "model dense {{\n  input x: [{m}, {k}] {fx};\n  input w: [{n}, {k}] {fw};\n  let y = dense(x, w) with {{ acc = fp16{chunk} }} : fp32;\n  output y;\n}}\n"
                );
                // Within the guard: |x| ≤ 4, |w| ≤ 1 bound 200-term sums far below 65504;
                // the first row's terms are subnormal-sized, the second's cancel to zero.
                let mut x = uniform(fx, &[m, k], 4.0, case).data().to_vec();
                let w = uniform(fw, &[n, k], 1.0, case + 100);
                for kk in 0..k {
                    x[kk] = if kk % 3 == 0 { 2f32.powi(-9) } else { 0.0 };
                    x[k + kk] = if kk % 2 == 0 { 1.0 } else { -1.0 };
                }
                let mut wv = w.data().to_vec();
                for j in 0..n {
                    for kk in 0..k {
                        if kk % 2 == 1 {
                            wv[j * k + kk] = wv[j * k + kk - 1];
                        }
                    }
                }
                let x = Tensor::new(vec![m, k], x).unwrap();
                let w = Tensor::new(vec![n, k], wv).unwrap();
                check(&source, &[x, w]);
                // Beyond it: magnitudes up to 448 (E4M3) and 57344 (E5M2).
                let x = uniform(fx, &[m, k], 448.0, case + 200);
                let w = uniform(fw, &[n, k], 448.0, case + 300);
                check(&source, &[x, w]);
                // Beyond it by one large value: sums that rise past 65504 and fall back.
                let mut x = uniform(fx, &[m, k], 2.0, case + 400).data().to_vec();
                x[k / 2] = 448.0;
                let mut w = uniform(fw, &[n, k], 1.0, case + 500).data().to_vec();
                for j in 0..n {
                    w[j * k + k / 2] = if j % 2 == 0 { 240.0 } else { -240.0 };
                    w[j * k + k / 2 + 1] = if j % 2 == 0 { -240.0 } else { 240.0 };
                }
                x[k / 2 + 1] = 448.0;
                let x = Tensor::new(vec![m, k], x).unwrap();
                let w = Tensor::new(vec![n, k], w).unwrap();
                check(&source, &[x, w]);
                // A first product of −2^-25 with E5M2 rows (−0 in fp16, ties to even), then
                // −0 products: the outputs keep −0 only if every step restores a zero's sign.
                let smallest = if fx == "e5m2" { 2f32.powi(-16) } else { 2f32.powi(-9) };
                let mut x = vec![-0.0; m * k];
                x[0] = smallest;
                let mut w = uniform(fw, &[n, k], 1.0, case + 900).data().to_vec();
                for j in 0..n {
                    for kk in 0..k {
                        w[j * k + kk] = w[j * k + kk].abs();
                    }
                    w[j * k] = if j % 2 == 0 { -(2f32.powi(-9)) } else { 2f32.powi(-9) };
                }
                let x = Tensor::new(vec![m, k], x).unwrap();
                let w = Tensor::new(vec![n, k], w).unwrap();
                check(&source, &[x, w]);
                // Small row operands, packed ones near E4M3's largest: the packed side alone
                // breaks the bound, and the first row's all-positive sums overflow.
                let mut x = uniform(fx, &[m, k], 4.0, case + 800).data().to_vec();
                x[..k].fill(4.0);
                let w = vec![448.0; n * k];
                let x = Tensor::new(vec![m, k], x).unwrap();
                let w = Tensor::new(vec![n, k], w).unwrap();
                check(&source, &[x, w]);
                // Small values but for one NaN (or ∞) operand: no bound, the checked steps.
                let mut x = uniform(fx, &[m, k], 4.0, case + 600).data().to_vec();
                x[k + 7] = if fx == "e5m2" { f32::INFINITY } else { f32::NAN };
                let w = uniform(fw, &[n, k], 1.0, case + 700);
                let x = Tensor::new(vec![m, k], x).unwrap();
                check(&source, &[x, w]);
            }
        }
    }
}

/// Values of `format` drawn uniformly from `[-scale, scale]` and rounded to it.
fn uniform(format: &str, shape: &[usize], scale: f32, stream: u64) -> Tensor {
    let rng = RandomStream::new(13, stream);
    let n: usize = shape.iter().product();
    let raw: Vec<f32> = (0..n)
        .map(|i| {
            let w = rng.word(i as u64, 0);
            (w as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    rounded(format, shape, &raw, &rng)
}

/// Sums whose binary32 rounding lands exactly on a midpoint of the accumulator's values
/// while the exact sum lies to one side (a false tie): a tiny first product, then one that is
/// a midpoint of fp16 (1536 · (1 + 2^-10) = 1537.5). The exact sums round to 1537 (tiny
/// negative) and 1538 (tiny positive); ties-to-even on the binary32 sum would give 1538 for
/// both.
#[test]
fn false_ties_of_the_binary32_sum_round_like_the_exact_sum() {
    let source = "model dense {\n  input x: [2, 2] fp16;\n  input w: [8, 2] fp16;\n  let y = dense(x, w) with { acc = fp16 } : fp32;\n  output y;\n}\n";
    let tiny = 2f32.powi(-24);
    let x = Tensor::new(vec![2, 2], vec![-tiny, 1536.0, tiny, 1536.0]).unwrap();
    let w = Tensor::new(vec![8, 2], [1.0, 1.0 + 2f32.powi(-10)].repeat(8)).unwrap();
    check(source, &[x.clone(), w.clone()]);
    let p = program(source);
    let got = Jit::with_threads(1)
        .compile(&p)
        .unwrap()
        .run(&p, &[x, w])
        .unwrap();
    assert_eq!(got[0].data(), [[1537.0; 8], [1538.0; 8]].concat());
}

/// `nearest` accumulators of products that binary32 cannot hold (an fp32 operand): the
/// vector code rounds the fma's binary32 sum and sends lanes on a midpoint or beyond the
/// largest value to the exact sequence. Mixed operand formats (either one the packed
/// operand), long sums with cancellation, overflow and the accumulator's subnormals, chunked
/// into the accumulator's format, into fp32, and not.
#[test]
fn nearest_accumulators_of_products_inexact_in_binary32_match_the_interpreter() {
    let cases = [
        ("e5m2", "fp32", "fp16"),
        ("fp32", "e5m2", "fp16"),
        ("fp16", "fp32", "fp16"),
        ("bf16", "fp32", "fp16"),
        ("bf16", "fp32", "bf16"),
        ("bf16", "fp32", "fp<5,7>"),
        ("e5m2", "fp32", "fp<5,7>"),
    ];
    let mut case = 0u64;
    for (fx, fw, acc) in cases {
        for chunk in ["", ", chunk = 5", ", chunk = 64, chunk_acc = fp32"] {
            if acc == "bf16" && chunk == ", chunk = 5" {
                // Chunk sums added in bf16 stay scalar (no vector step for them).
                continue;
            }
            case += 1;
            let (m, n, k) = (5, 12, 300);
            let source = format!(
                "model dense {{\n  input x: [{m}, {k}] {fx};\n  input w: [{n}, {k}] {fw};\n  let y = dense(x, w) with {{ acc = {acc}{chunk} }} : fp32;\n  output y;\n}}\n"
            );
            let x = spread(fx, &[m, k], case);
            let w = spread(fw, &[n, k], case + 1000);
            check(&source, &[x, w]);
        }
    }
}

/// Fp32 values `a` with `RN₂₄(base + a·b)` exactly `target` while `base + a·b` is not (the
/// fma's binary32 sum on a point the exact sum is not on): `a` near `(target − base)/b`.
fn fma_false_ties(base: f64, target: f64, b: f64) -> Vec<f32> {
    let a0 = ((target - base) / b) as f32;
    (-6i32..=6)
        .map(|d| f32::from_bits((a0.to_bits() as i32 + d) as u32))
        .filter(|&a| {
            // Exact in f64: a base on the accumulator's grid and a product of 24 + 3 bits.
            let exact = base + a as f64 * b;
            exact as f32 as f64 == target && exact != target
        })
        .collect()
}

/// Sums whose fma result lands exactly on a midpoint of the accumulator's values while the
/// exact sum lies to one side (possible false ties, which take the exact sequence): in the
/// normal range (around 1536 for fp16, where binary32 holds 13 bits below the accumulator's
/// last), in the subnormal range (fp16: odd multiples of 2^-25) and next to fp16's largest
/// value (65488, the midpoint below it, and 65520, the one above it, where the exact sum
/// does not overflow); for bf16 also in its subnormal range (binary32's) and on both sides
/// of 2^112, above which the vector code sends every sum to the exact sequence. Each row
/// `m` has a base `x[m, 0]·1` and a second product `x[m, 1]·w[n, 1]`: the crafted `b`s in
/// three columns of four, one of which is the row's (a false tie), another e5m2 value in
/// the fourth.
#[test]
fn false_ties_of_the_fma_sum_round_like_the_exact_sum() {
    let sub = 2f64.powi(-25);
    // (accumulator, base, midpoint, b)
    let crafted: [(&str, f64, f64, f64); 17] = [
        ("fp16", 1536.0, 1537.5, 1.5),
        ("fp16", 1536.0, 1536.5, 1.25),
        ("fp16", -1536.0, -1537.5, 1.75),
        ("fp16", -1536.0, -1536.5, 1.5),
        ("fp16", 0.0, 3.0 * sub, 1.25),
        ("fp16", 0.0, -5.0 * sub, 1.5),
        ("fp16", 2f64.powi(-24), 7.0 * sub, 1.5),
        ("fp16", 65472.0, 65488.0, 1.25),
        ("fp16", 65504.0, 65520.0, 1.5),
        ("fp16", -65472.0, -65488.0, 1.75),
        ("fp<5,7>", 384.0, 385.0, 1.5),
        ("fp<5,7>", 0.0, 3.0 * 2f64.powi(-22), 1.25),
        ("bf16", 1.0, 1.0 + 2f64.powi(-8), 1.5),
        ("bf16", -3.0, -3.0 - 2f64.powi(-7), 1.75),
        ("bf16", 0.0, 3.0 * 2f64.powi(-134), 1.25),
        ("bf16", 1.5 * 2f64.powi(111), 1.5 * 2f64.powi(111) + 2f64.powi(103), 1.5),
        ("bf16", 2f64.powi(112), 2f64.powi(112) + 2f64.powi(104), 1.25),
    ];
    for acc in ["fp16", "fp<5,7>", "bf16"] {
        let mut rows: Vec<(f64, f32)> = Vec::new();
        for &(_, base, target, b) in crafted.iter().filter(|c| c.0 == acc) {
            let ties = fma_false_ties(base, target, b);
            assert!(!ties.is_empty(), "no false tie at {target} in {acc}");
            rows.extend(ties.into_iter().map(|a| (base, a)));
        }
        // Columns j = 0, 1, 2 (mod 4) multiply by the crafted b values: each vector has one
        // lane with the row's false tie and three without.
        let (m, n) = (rows.len(), 12);
        let bs = [1.25f32, 1.5, 1.75];
        let others = [1.0f32, -0.75, 2.0];
        let x: Vec<f32> = rows.iter().flat_map(|&(base, a)| [base as f32, a]).collect();
        let w: Vec<f32> = (0..n)
            .flat_map(|j| [1.0, if j % 4 < 3 { bs[j % 4] } else { others[j / 4] }])
            .collect();
        let x = Tensor::new(vec![m, 2], x).unwrap();
        let w = Tensor::new(vec![n, 2], w).unwrap();
        for chunk in ["", ", chunk = 2, chunk_acc = fp32", ", chunk = 2"] {
            if acc == "bf16" && chunk == ", chunk = 2" {
                continue;
            }
            let source = format!(
                "model dense {{\n  input x: [{m}, 2] fp32;\n  input w: [{n}, 2] e5m2;\n  let y = dense(x, w) with {{ acc = {acc}{chunk} }} : fp32;\n  output y;\n}}\n"
            );
            check(&source, &[x.clone(), w.clone()]);
        }
    }
}

/// The rest of a layer's element after its accumulation (bias, relu, the result's rounding),
/// which the element-wise vector code computes where it can: into every float result format
/// it rounds to and into ones it leaves to the scalar code, from accumulators that overflow,
/// on dense layers and convolutions whose outputs leave a remainder of the vectors.
#[test]
fn epilogues_after_the_accumulation_match_the_interpreter() {
    let results = ["fp32", "fp16", "bf16", "e4m3", "e5m2", "hfp8_fwd", "fp<6,5,nosub>", "fp<4,3,fn,sat,bias=9>", "int<8,noscale>"];
    let mut case = 0u64;
    for result in results {
        for (input, with) in [("e4m3", "acc = fp32"), ("fp16", "acc = fp16"), ("e5m2", "acc = fp<6,5> @ stochastic:9"), ("fp32", "acc = fp32, chunk = 5")] {
            for (m, n, k) in [(5, 12, 9), (3, 7, 33)] {
                case += 1;
                let source = format!(
                    "model dense {{\n  input x: [{m}, {k}] {input};\n  input w: [{n}, {k}] {input};\n  input b: [{n}] {input};\n  let y = relu(dense(x, w, b) with {{ {with} }}) : {result};\n  output y;\n}}\n"
                );
                let inputs = [spread(input, &[m, k], case), spread(input, &[n, k], case + 1000), spread(input, &[n], case + 2000)];
                check(&source, &inputs);
                let p = program(&source);
                let vector = Jit::with_threads(1).compile(&p).unwrap().vector_epilogues();
                // Integer results and stochastic bias additions stay on the scalar code.
                if result != "int<8,noscale>" && !with.contains("stochastic") {
                    assert_eq!(vector, 1, "vector code for the epilogue\n{source}");
                }
            }
            case += 1;
            let source = format!(
                "model conv {{\n  input x: [2, 5, 5, 3] {input};\n  input k: [8, 3, 3, 3] {input};\n  input b: [8] {input};\n  let y = conv2d(x, k, b, padding = same) with {{ {with} }} : {result};\n  output y;\n}}\n"
            );
            let inputs = [spread(input, &[2, 5, 5, 3], case), spread(input, &[8, 3, 3, 3], case + 1000), spread(input, &[8], case + 2000)];
            check(&source, &inputs);
        }
    }
}

/// A bias addition rounded to the accumulator's format where the binary32 sum would round
/// twice wrongly: a bias not of that format (fp32 into fp16), or a format of 12 bits (2p + 1 >
/// 24). Both stay on the scalar code, which rounds the exact sum.
#[test]
fn bias_additions_where_double_rounding_errs_round_the_exact_sum() {
    let cases = [
        // 1 + (2^-11 + 2^-30): the binary32 sum is fp16's midpoint 1 + 2^-11 (ties to 1).
        ("fp32", "fp16", 1.0, 2f32.powi(-11) + 2f32.powi(-30)),
        // (1 + 2^-11) + (2^-12 − 2^-24): binary32 ties up to the 12-bit midpoint.
        ("fp<5,11>", "fp<5,11>", 1.0 + 2f32.powi(-11), 2f32.powi(-12) - 2f32.powi(-24)),
    ];
    for (input, acc, x, b) in cases {
        let source = format!(
            "model dense {{\n  input x: [1, 1] {input};\n  input w: [8, 1] {input};\n  input b: [8] {input};\n  let y = dense(x, w, b) with {{ acc = {acc} }} : {acc};\n  output y;\n}}\n"
        );
        let inputs = [
            Tensor::new(vec![1, 1], vec![x]).unwrap(),
            Tensor::new(vec![8, 1], vec![1.0; 8]).unwrap(),
            Tensor::new(vec![8], vec![b, -b, b, 0.0, b, b, -b, b]).unwrap(),
        ];
        check(&source, &inputs);
    }
}

/// A contraction over `k < 4` for rows `r < 6` of `x[INDEX]·w[k, j]`, kept where `KEEP` is
/// nonzero (`%d`: `r ∸ k`, the saturating subtraction).
const SATURATED_WINDOW: &str = "func @f(%x: tensor<8xfp32>, %w: tensor<4x8xfp32>) -> (tensor<6x8xfp32>) {
  %y = kernel.generate : () -> tensor<6x8xfp32> {
  ^bb0(%r: index, %j: index):
    %lo = kernel.index {value = 0} : () -> index
    %hi = kernel.index {value = 4} : () -> index
    %one = kernel.index {value = 1} : () -> index
    %two = kernel.index {value = 2} : () -> index
    %three = kernel.index {value = 3} : () -> index
    %z = kernel.constant {value = 0.0} : () -> fp32
    %s = kernel.accumulate %lo, %hi, %z {round = nearest} : (index, index, fp32) -> fp32 {
    ^bb1(%k: index):
      %d = kernel.index_sub %r, %k : (index, index) -> index
      KEEP
      INDEX
      %a = kernel.load %x, %i : (tensor<8xfp32>, index) -> fp32
      %b = kernel.load %w, %k, %j : (tensor<4x8xfp32>, index, index) -> fp32
      %p = kernel.mul %a, %b : (fp32, fp32) -> real
      kernel.yield %p, %keep : (real, index) -> ()
    }
    kernel.yield %s : (fp32) -> ()
  }
  func.return %y : (tensor<6x8xfp32>) -> ()
}";

#[test]
fn windows_take_only_conditions_that_keep_establishes_in_order() {
    let x = grid("fp32", &[8], 1);
    let w = grid("fp32", &[4, 8], 2);
    let run = |keep: &str, index: &str| {
        let text = SATURATED_WINDOW.replace("KEEP", keep).replace("INDEX", index);
        let module = qc_compiler::parse_module(&text).unwrap_or_else(|d| panic!("{d:?}"));
        let p = Program::prepare(module, 5).unwrap();
        check_program(&p, &text, &[x.clone(), w.clone()])
    };
    // `k ≤ r`, then `r ∸ k < 3` (whose subtraction does not saturate where the first holds),
    // which makes the `min` pick `r ∸ k`: a window of the ranges `r − 2 ≤ k ≤ r`.
    let ordered = "%after = kernel.index_lt %r, %k : (index, index) -> index
      %not_after = kernel.index_sub %one, %after : (index, index) -> index
      %near = kernel.index_lt %d, %three : (index, index) -> index
      %keep = kernel.index_mul %not_after, %near : (index, index) -> index";
    let clamped = "%i = kernel.index_min %d, %two : (index, index) -> index";
    assert_eq!(run(ordered, clamped), 1, "the ordered conditions make a window");
    // `0 < (r ∸ k) + 1` always holds, but its affine form `r − k ≥ 0` would skip the terms
    // with `k > r`: its own subtraction's condition cannot come from it.
    let circular = "%d1 = kernel.index_add %d, %one : (index, index) -> index
      %keep = kernel.index_lt %lo, %d1 : (index, index) -> index";
    let direct = "%i = kernel.index_add %d, %lo : (index, index) -> index";
    assert_eq!(run(circular, direct), 0, "a condition cannot establish its own forms");
}

#[test]
fn convolutions_over_a_dynamic_batch_read_windows() {
    // The second convolution reads the first's output, whose batch is the generate's own.
    let source = "model conv {
  input x: [B, 5, 6, 3] e4m3;
  input k: [4, 3, 3, 3] e4m3;
  input k2: [5, 3, 3, 4] e4m3;
  let y = conv2d(relu(conv2d(x, k, padding = same) with { acc = fp16 }) : e4m3, k2, padding = 1, stride = 2) : fp32;
  output y;
}
";
    for batch in [1, 3] {
        let inputs = [
            grid("e4m3", &[batch, 5, 6, 3], 1),
            grid("e4m3", &[4, 3, 3, 3], 2),
            grid("e4m3", &[5, 3, 3, 4], 3),
        ];
        let windows = check_program(&program(source), source, &inputs);
        assert_eq!(windows, 2, "both convolutions read windows");
    }
}

#[test]
fn a_dynamic_axis_takes_a_window_only_over_its_own_extent() {
    // Rows over the length of `s`, loading row `r` of `x`: nothing shows that `s` is not
    // longer (the interpreter reports such a load as an error; the general code clamps its
    // index), so a window, which would read past `x`, is not taken.
    let text = "func @f(%x: tensor<?x4xfp32>, %s: tensor<?xfp32>, %w: tensor<4x8xfp32>) -> (tensor<?x8xfp32>) {
  %n = kernel.dim %s {axis = 0} : (tensor<?xfp32>) -> index
  %y = kernel.generate %n : (index) -> tensor<?x8xfp32> {
  ^bb0(%r: index, %j: index):
    %lo = kernel.index {value = 0} : () -> index
    %hi = kernel.index {value = 4} : () -> index
    %z = kernel.constant {value = 0.0} : () -> fp32
    %acc = kernel.accumulate %lo, %hi, %z {round = nearest} : (index, index, fp32) -> fp32 {
    ^bb1(%k: index):
      %keep = kernel.index_lt %k, %hi : (index, index) -> index
      %a = kernel.load %x, %r, %k : (tensor<?x4xfp32>, index, index) -> fp32
      %b = kernel.load %w, %k, %j : (tensor<4x8xfp32>, index, index) -> fp32
      %p = kernel.mul %a, %b : (fp32, fp32) -> real
      kernel.yield %p, %keep : (real, index) -> ()
    }
    kernel.yield %acc : (fp32) -> ()
  }
  func.return %y : (tensor<?x8xfp32>) -> ()
}";
    let module = qc_compiler::parse_module(text).unwrap_or_else(|d| panic!("{d:?}"));
    let p = Program::prepare(module, 5).unwrap();
    let compiled = Jit::with_threads(1).compile(&p).unwrap();
    assert_eq!(compiled.vectorised_kernels(), 1);
    assert_eq!(compiled.window_kernels(), 0);
    let inputs = [grid("fp32", &[3, 4], 1), grid("fp32", &[3], 2), grid("fp32", &[4, 8], 3)];
    check_program(&p, text, &inputs);
}
