//! The JIT's element-wise vector code (`backend/jit/pointwise.rs`) against the reference
//! interpreter, bit for bit (NaN equal to NaN): element-wise kernels of rank 1 to 4 whose
//! last axis leaves a remainder for the scalar code, over float result formats with and
//! without subnormals × min/max/round/mul/add/sub × inputs with the specials (±0, binary32's
//! and the target's subnormals, the target's largest value and the ties above it and
//! between its values, values past 2^101, ±∞, NaN), on 1, 2 and 3 threads. Each case
//! asserts whether the kernel was compiled to the vector code, so a recognition that
//! silently falls back to the scalar code (or vectorises what it must not) fails here.

use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::jit::Jit;
use qc_compiler::backend::{Backend, Program};
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use qc_runtime::tensor::Tensor;

/// Float result formats the vector code rounds to (with and without subnormals, saturating,
/// without −0, largest values past 2^101).
const FORMATS: [&str; 12] = [
    "fp32",
    "fp16",
    "bf16",
    "e4m3",
    "e5m2",
    "hfp8_fwd",
    "fp<6,5>",
    "fp<6,5,nosub>",
    "fp<4,3,fn,sat,bias=9>",
    "e4m3fnuz",
    "fp<8,4,nosub>",
    "fp<5,2,sat>",
];

/// Shapes: rank 1 to 4, last extents with and without a remainder of four.
const SHAPES: [&[usize]; 5] = [&[37], &[7, 10], &[3, 5, 12], &[2, 3, 4, 9], &[5, 4]];

/// Whether the JIT checks products with a vector fma on this host (x86-64 with FMA).
fn host_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn fmt(f: &str) -> Format {
    Format::parse(f).unwrap()
}

/// The format's largest finite value, if it is a float format.
fn largest(f: &str) -> Option<f64> {
    match fmt(f) {
        Format::Float { format, .. } => Some(format.max()),
        _ => None,
    }
}

/// Raw values for a tensor of `n` elements: mostly few-bit significands over a wide
/// exponent range (so many are ties of narrow formats), some with full binary32
/// significands, with the specials interleaved (among them a value in each binade from 2^100
/// up); `target` adds its largest value, the tie just above it and values beyond.
fn raw_values(n: usize, seed: u64, target: &str) -> Vec<f32> {
    let rng = RandomStream::new(seed, 3);
    let mut specials = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        1e-40,
        -1e-45,
        1.1754942e-38,
        2f32.powi(101),
        -3e38,
        2f32.powi(-100),
        2f32.powi(-127),
        1.5,
        -2.5,
        0.1,
    ];
    specials.extend((100..128).map(|k| 1.25 * 2f32.powi(k)));
    if let Some(max) = largest(target) {
        let max = max as f32;
        let above = max * (1.0 + 2f32.powi(-12));
        specials.extend([
            max,
            -max,
            above,
            -above,
            max * 1.0625,
            max * 2.0,
            2f32.powi(-14) * 1.25,
            2f32.powi(-16) * 0.75,
            2f32.powi(-10) * 0.375,
        ]);
    }
    (0..n)
        .map(|i| {
            let w = rng.word(i as u64, 0);
            if w.is_multiple_of(3) {
                return specials[(w as usize >> 2) % specials.len()];
            }
            let significand = if w % 4 == 1 {
                1.0 + (w >> 9) as f32 / 2f32.powi(23)
            } else {
                1.0 + ((w >> 8) % 32) as f32 / 32.0
            };
            let e = ((w >> 16) % 70) as i32 - 40;
            let e = if w.is_multiple_of(7) {
                ((w >> 16) % 250) as i32 - 125
            } else {
                e
            };
            let x = significand * 2f32.powi(e.clamp(-126, 127));
            if w & 1 << 31 != 0 {
                -x
            } else {
                x
            }
        })
        .collect()
}

/// `raw` rounded to `format` (nearest): a tensor of `format`'s values.
fn tensor(format: &str, shape: &[usize], raw: &[f32]) -> Tensor {
    let mut out = vec![0f32; raw.len()];
    fmt(format)
        .quantize(
            raw,
            shape,
            Rounding::Nearest,
            &RandomStream::new(1, 1),
            &mut out,
        )
        .unwrap();
    Tensor::new(shape.to_vec(), out).unwrap()
}

fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// An element-wise kernel of `shape`: `%x0..` loaded from the element-wise arguments of
/// `args`, `%b` (if `row_arg`) loaded with all but the last index from a tensor of the
/// leading shape, `body` the op lines yielding `%z` of `result`.
fn kernel(
    shape: &[usize],
    args: &[&str],
    row_arg: Option<&str>,
    result: &str,
    body: &str,
) -> String {
    let d = dims(shape);
    let rank = shape.len();
    let idx: Vec<String> = (0..rank).map(|k| format!("%i{k}")).collect();
    let index_types = vec!["index"; rank].join(", ");
    let mut params: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(j, f)| format!("%a{j}: tensor<{d}x{f}>"))
        .collect();
    let mut loads: String = args
        .iter()
        .enumerate()
        .map(|(j, f)| {
            format!(
                "    %x{j} = kernel.load %a{j}, {} : (tensor<{d}x{f}>, {index_types}) -> {f}\n",
                idx.join(", ")
            )
        })
        .collect();
    if let Some(f) = row_arg {
        let lead = &shape[..rank - 1];
        let (ld, li) = if lead.is_empty() {
            ("1".to_string(), "%zero".to_string())
        } else {
            (dims(lead), idx[..rank - 1].join(", "))
        };
        let lt = if lead.is_empty() {
            "index".to_string()
        } else {
            vec!["index"; rank - 1].join(", ")
        };
        params.push(format!("%row: tensor<{ld}x{f}>"));
        loads.push_str(&format!("    %zero = kernel.index {{value = 0}} : () -> index\n    %b = kernel.load %row, {li} : (tensor<{ld}x{f}>, {lt}) -> {f}\n"));
    }
    format!(
        "func @t({}) -> (tensor<{d}x{result}>) {{\n  %r = kernel.generate : () -> tensor<{d}x{result}> {{\n  ^bb0({}):\n{loads}{body}    kernel.yield %z : ({result}) -> ()\n  }}\n  func.return %r : (tensor<{d}x{result}>) -> ()\n}}\n",
        params.join(", "),
        idx.iter().map(|i| format!("{i}: index")).collect::<Vec<_>>().join(", ")
    )
}

/// Runs `text` on the interpreter and the JIT (1, 2, 3 threads): same bits, and the kernel
/// compiled to the vector code exactly when `vector`.
fn check(text: &str, inputs: &[Tensor], vector: bool) -> Result<(), String> {
    let module = qc_compiler::parse_module(text).map_err(|d| format!("{d:?}\n{text}"))?;
    qc_compiler::verify(&module).map_err(|e| format!("{e:?}\n{text}"))?;
    let program = Program::prepare(module, 5).map_err(|e| e.to_string())?;
    let expected = Interpreter
        .run(&program, inputs)
        .map_err(|e| e.to_string())?;
    for threads in [1, 2, 3] {
        let compiled = Jit::with_threads(threads)
            .compile(&program)
            .map_err(|e| e.to_string())?;
        if (compiled.pointwise_kernels() == 1) != vector {
            return Err(format!(
                "vector code expected: {vector}, compiled: {}\n{text}",
                compiled.pointwise_kernels()
            ));
        }
        let got = compiled.run(&program, inputs).map_err(|e| e.to_string())?;
        for (x, y) in expected.iter().zip(&got) {
            for (i, (p, q)) in x.data().iter().zip(y.data()).enumerate() {
                if p.to_bits() != q.to_bits() && !(p.is_nan() && q.is_nan()) {
                    let ins: Vec<f32> = inputs
                        .iter()
                        .filter(|t| t.data().len() == x.data().len())
                        .map(|t| t.data()[i])
                        .collect();
                    return Err(format!("{threads} thread(s), element {i} (inputs {ins:?}): interpreter {p:e} ({:#x}), JIT {q:e} ({:#x})\n{text}", p.to_bits(), q.to_bits()));
                }
            }
        }
    }
    Ok(())
}

/// Runs every case, collecting the failures.
fn run_cases(cases: Vec<(String, Vec<Tensor>, bool)>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, inputs, vector)| check(text, inputs, *vector).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed, first:\n{}",
        failures.len(),
        cases.len(),
        failures[0]
    );
}

#[test]
fn max_min_and_round_into_every_float_format() {
    let mut cases = Vec::new();
    for (s, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        for (f, result) in FORMATS.iter().enumerate() {
            let seed = (s * 100 + f) as u64;
            let x = tensor("fp32", shape, &raw_values(n, seed, result));
            let y = tensor("fp32", shape, &raw_values(n, seed + 50, result));
            let relu = format!("    %c = kernel.constant {{value = 0.0}} : () -> fp32\n    %z = kernel.max %x0, %c {{round = nearest}} : (fp32, fp32) -> {result}\n");
            cases.push((
                kernel(shape, &["fp32"], None, result, &relu),
                vec![x.clone()],
                true,
            ));
            let min = format!(
                "    %z = kernel.min %x0, %x1 {{round = nearest}} : (fp32, fp32) -> {result}\n"
            );
            cases.push((
                kernel(shape, &["fp32", "fp32"], None, result, &min),
                vec![x.clone(), y.clone()],
                true,
            ));
            let round =
                format!("    %z = kernel.round %x0 {{round = nearest}} : (fp32) -> {result}\n");
            cases.push((
                kernel(shape, &["fp32"], None, result, &round),
                vec![x.clone()],
                true,
            ));
            // A row operand (a bias): loaded once per row, broadcast over the last axis.
            let lead: Vec<usize> = if shape.len() > 1 {
                shape[..shape.len() - 1].to_vec()
            } else {
                vec![1]
            };
            let b = tensor(
                "fp32",
                &lead,
                &raw_values(lead.iter().product(), seed + 70, result),
            );
            let with_row = format!("    %m = kernel.max %x0, %b {{round = nearest}} : (fp32, fp32) -> fp32\n    %z = kernel.round %m {{round = nearest}} : (fp32) -> {result}\n");
            cases.push((
                kernel(shape, &["fp32"], Some("fp32"), result, &with_row),
                vec![x, b],
                true,
            ));
        }
    }
    run_cases(cases);
}

#[test]
fn products_exact_in_binary32_into_every_float_format() {
    // (operand formats): 4 + 3 and 11 + 8 significant bits fit binary32; 3 + 24 and 24 + 24
    // are checked per vector with an fma (on hosts without one, the scalar code runs).
    let fma = host_fma();
    let pairs: [(&str, &str, bool); 5] = [
        ("e4m3", "e5m2", true),
        ("fp16", "bf16", true),
        ("e5m2", "fp32", fma),
        ("fp32", "fp32", fma),
        ("hfp8_fwd", "fp16", true),
    ];
    let mut cases = Vec::new();
    for (s, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        for (f, result) in FORMATS.iter().enumerate() {
            for (p, &(fa, fb, narrow_vector)) in pairs.iter().enumerate() {
                let seed = (s * 1000 + f * 10 + p) as u64;
                let a = tensor(fa, shape, &raw_values(n, seed, result));
                let b = tensor(fb, shape, &raw_values(n, seed + 7, fb));
                let body = format!(
                    "    %z = kernel.mul %x0, %x1 {{round = nearest}} : ({fa}, {fb}) -> {result}\n"
                );
                let vector = *result == "fp32" || narrow_vector;
                cases.push((
                    kernel(shape, &[fa, fb], None, result, &body),
                    vec![a, b],
                    vector,
                ));
            }
        }
    }
    run_cases(cases);
}

#[test]
fn binary32_arithmetic_and_the_relu_gradient() {
    let mut cases = Vec::new();
    for (s, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let seed = s as u64 * 10;
        let x = tensor("fp32", shape, &raw_values(n, seed, "fp16"));
        let y = tensor("fp32", shape, &raw_values(n, seed + 1, "fp32"));
        for op in ["add", "sub", "mul", "min", "max"] {
            let body = format!("    %u = kernel.{op} %x0, %x1 {{round = nearest}} : (fp32, fp32) -> fp32\n    %z = kernel.{op} %u, %x0 {{round = nearest}} : (fp32, fp32) -> fp32\n");
            cases.push((
                kernel(shape, &["fp32", "fp32"], None, "fp32", &body),
                vec![x.clone(), y.clone()],
                true,
            ));
        }
        // The relu gradient of hybrid FP8 training: dy · step(x), rounded to e5m2.
        for grad in ["e5m2", "fp16", "e4m3"] {
            let dy = tensor(grad, shape, &raw_values(n, seed + 2, grad));
            let body = format!(
                "    %c0 = kernel.constant {{value = 0.0}} : () -> fp32\n    %s = kernel.sub %x1, %c0 {{round = nearest}} : (fp32, fp32) -> fp32\n    %big = kernel.constant {{value = 1.2676506002282294e30}} : () -> fp32\n    %m1 = kernel.mul %s, %big {{round = nearest}} : (fp32, fp32) -> fp32\n    %m2 = kernel.mul %m1, %big {{round = nearest}} : (fp32, fp32) -> fp32\n    %one = kernel.constant {{value = 1.0}} : () -> fp32\n    %lo = kernel.min %m2, %one {{round = nearest}} : (fp32, fp32) -> fp32\n    %st = kernel.max %lo, %c0 {{round = nearest}} : (fp32, fp32) -> fp32\n    %z = kernel.mul %x0, %st {{round = nearest}} : ({grad}, fp32) -> {grad}\n"
            );
            cases.push((
                kernel(shape, &[grad, "fp32"], None, grad, &body),
                vec![dy, y.clone()],
                host_fma(),
            ));
        }
    }
    run_cases(cases);
}

#[test]
fn other_roundings_and_formats_keep_the_scalar_code() {
    let shape: &[usize] = &[3, 8];
    let n = 24;
    let x = tensor("fp32", shape, &raw_values(n, 1, "fp16"));
    let y = tensor("fp32", shape, &raw_values(n, 2, "fp16"));
    let cases = vec![
        // Integer and fixed-point results, directed modes, a sum into a narrow format.
        (kernel(shape, &["fp32"], None, "int<8,noscale>", "    %z = kernel.round %x0 {round = nearest} : (fp32) -> int<8,noscale>\n"), vec![x.clone()], false),
        (kernel(shape, &["fp32"], None, "fixed<8,8>", "    %c = kernel.constant {value = 0.0} : () -> fp32\n    %z = kernel.max %x0, %c {round = nearest} : (fp32, fp32) -> fixed<8,8>\n"), vec![x.clone()], false),
        (kernel(shape, &["fp32"], None, "fp16", "    %z = kernel.round %x0 {round = toward-zero} : (fp32) -> fp16\n"), vec![x.clone()], false),
        (kernel(shape, &["fp32", "fp32"], None, "fp16", "    %z = kernel.add %x0, %x1 {round = nearest} : (fp32, fp32) -> fp16\n"), vec![x.clone(), y.clone()], false),
        (kernel(shape, &["fp32", "fp32"], None, "fp32", "    %z = kernel.div %x0, %x1 {round = nearest} : (fp32, fp32) -> fp32\n"), vec![x.clone(), y.clone()], false),
        // Shorter rows than a vector.
        (kernel(&[5, 3], &["fp32"], None, "fp16", "    %z = kernel.round %x0 {round = nearest} : (fp32) -> fp16\n"), vec![tensor("fp32", &[5, 3], &raw_values(15, 3, "fp16"))], false),
    ];
    run_cases(cases);
}

#[test]
fn products_in_binary32_subnormal_range_round_like_the_exact_product() {
    // 2^-67 · 2^-67·(1 + 2^-20) = 2^-134 + 2^-154: binary32 rounds it to 2^-134, a tie of
    // bf16's subnormal grid (to 0 by even), while the exact product rounds up to 2^-133; the
    // fma residue 2^-154 is lost below binary32's subnormals too.
    let shape: &[usize] = &[2, 8];
    let a: Vec<f32> = (0..16)
        .map(|i| {
            if i % 3 == 0 {
                -(2f32.powi(-67))
            } else {
                2f32.powi(-67)
            }
        })
        .collect();
    let b: Vec<f32> = (0..16)
        .map(|i| 2f32.powi(-67) * (1.0 + 2f32.powi(-20 + (i % 4))))
        .collect();
    let mut cases = Vec::new();
    for result in ["bf16", "fp<8,4,nosub>", "fp32"] {
        let body = format!(
            "    %z = kernel.mul %x0, %x1 {{round = nearest}} : (fp32, fp32) -> {result}\n"
        );
        cases.push((
            kernel(shape, &["fp32", "fp32"], None, result, &body),
            vec![tensor("fp32", shape, &a), tensor("fp32", shape, &b)],
            result == "fp32" || host_fma(),
        ));
    }
    run_cases(cases);
}

#[test]
fn products_inexact_in_binary32_near_ties_round_like_the_exact_product() {
    // a · b within binary32's rounding of a midpoint of the target's values: the binary32
    // product is the midpoint (a false tie) while the exact product lies to one side.
    let shape: &[usize] = &[4, 12];
    let mut cases = Vec::new();
    for (result, man) in [
        ("fp16", 10),
        ("e5m2", 2),
        ("e4m3", 3),
        ("bf16", 7),
        ("hfp8_fwd", 3),
        ("fp<6,5>", 5),
    ] {
        let midpoint = 1.0 + 2f64.powi(-(man + 1));
        let a: Vec<f32> = (0..48).map(|i| [1.25f32, 1.5, 1.75, -3.0][i % 4]).collect();
        let b: Vec<f32> = (0..48)
            .map(|i| {
                let q = (midpoint * 2f64.powi((i / 12) as i32 - 1) / a[i] as f64) as f32;
                f32::from_bits((q.to_bits() as i64 + (i % 3) as i64 - 1) as u32)
            })
            .collect();
        let body = format!(
            "    %z = kernel.mul %x0, %x1 {{round = nearest}} : (e5m2, fp32) -> {result}\n"
        );
        cases.push((
            kernel(shape, &["e5m2", "fp32"], None, result, &body),
            vec![tensor("e5m2", shape, &a), tensor("fp32", shape, &b)],
            host_fma(),
        ));
    }
    run_cases(cases);
}

#[test]
fn kernels_large_enough_for_threads_split_rows_the_same_way() {
    // Over 200 000 estimated operations each, so 2 and 3 threads split them, at positions in
    // the middle of rows (odd last extents) for ranks 1 to 3.
    let shapes: [&[usize]; 3] = [&[60_001], &[13, 4_099], &[5, 7, 1_601]];
    let mut cases = Vec::new();
    for (s, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let x = tensor("fp32", shape, &raw_values(n, 900 + s as u64, "hfp8_fwd"));
        let relu = "    %c = kernel.constant {value = 0.0} : () -> fp32\n    %z = kernel.max %x0, %c {round = nearest} : (fp32, fp32) -> hfp8_fwd\n";
        cases.push((
            kernel(shape, &["fp32"], None, "hfp8_fwd", relu),
            vec![x.clone()],
            true,
        ));
        let dy = tensor("e5m2", shape, &raw_values(n, 950 + s as u64, "e5m2"));
        let grad = "    %c = kernel.constant {value = 0.0} : () -> fp32\n    %st = kernel.max %x1, %c {round = nearest} : (fp32, fp32) -> fp32\n    %one = kernel.constant {value = 1.0} : () -> fp32\n    %s = kernel.min %st, %one {round = nearest} : (fp32, fp32) -> fp32\n    %z = kernel.mul %x0, %s {round = nearest} : (e5m2, fp32) -> e5m2\n";
        cases.push((
            kernel(shape, &["e5m2", "fp32"], None, "e5m2", grad),
            vec![dy, x],
            host_fma(),
        ));
    }
    run_cases(cases);
}
