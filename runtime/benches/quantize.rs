//! Quantization throughput: 2^24 float32 values to each format, single thread, beside a
//! plain memory copy of the same array measured in the same run.
//!
//! `cargo bench -p qc-runtime --bench quantize` (add `-- --quick` for 2^20 values, or
//! `-- TEXT` to run only the formats whose name contains TEXT).

use qc_runtime::numerics::{Format, RandomStream, Rounding};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The best of `reps` timings of `f` (the least disturbed by the rest of the machine).
fn best_of(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("at least one repetition")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let quick = args.iter().any(|a| a == "--quick");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let n: usize = if quick { 1 << 20 } else { 1 << 24 };
    let reps = if quick { 3 } else { 5 };
    // Two data sets: magnitudes log-uniform over 24 binades (2^-16..2^8, both signs; many
    // values below the normal range of the 8-bit formats — the hard case), and normal(0, 1)
    // (Box–Muller), typical of weights and activations.
    let rng = RandomStream::new(42, 0);
    let uniform = |i: u64, j: u32| (rng.word(i, j) as f64 + 0.5) / 4294967296.0;
    let spread: Vec<f32> = (0..n as u64)
        .map(|i| {
            let e = (rng.word(i, 1) % 24) as i32 - 16;
            let s = if rng.word(i, 2) & 1 == 1 { -1.0 } else { 1.0 };
            (s * (1.0 + uniform(i, 0)) * 2f64.powi(e)) as f32
        })
        .collect();
    let normal: Vec<f32> = (0..n as u64)
        .map(|i| ((-2.0 * uniform(i, 3).ln()).sqrt() * (std::f64::consts::TAU * uniform(i, 4)).cos()) as f32)
        .collect();
    let src = &spread;
    let mut dst = vec![0f32; n];

    // The baseline gets more repetitions: its best time is the machine's copy bandwidth, so
    // every ratio below is against the fastest copy seen (conservative).
    let copy = best_of(3 * reps, || {
        dst.copy_from_slice(black_box(src));
        black_box(&dst);
    });
    let copy_rate = n as f64 / copy.as_secs_f64() / 1e6;
    println!("quantize {n} float32 values, single thread, best of {reps}");
    println!("{:<34} {:>21} {:>21}", "", "log-uniform 2^-16..2^8", "normal(0, 1)");
    println!("{:<34} {:>12} {:>8} {:>12} {:>8}", "format / rounding", "M values/s", "vs copy", "M values/s", "vs copy");
    println!("{:<34} {:>12.0} {:>7.0}%", "memory copy (baseline)", copy_rate, 100.0);

    let cases: &[(&str, &str)] = &[
        ("fp16", "nearest"),
        ("bf16", "nearest"),
        ("e4m3", "nearest"),
        ("e5m2", "nearest"),
        ("fp<6,5>", "nearest"),
        ("fp<6,5,nosub>", "nearest"),
        ("tf32", "nearest"),
        ("e4m3", "toward-zero"),
        ("int8", "nearest"),
        ("fixed<8,8>", "nearest"),
        ("fp16", "stochastic"),
        ("fp<6,5,nosub>", "stochastic:9"),
        ("e5m2", "stochastic:4"),
        ("bf16", "stochastic-unbiased:13"),
        ("mxfp8_e4m3", "nearest"),
        ("mxfp6_e2m3", "nearest"),
        ("mxfp4", "nearest"),
        ("mxint8", "nearest"),
        ("nvfp4", "nearest"),
        ("int<8,axis=0>", "nearest"),
        ("ternary", "nearest"),
    ];
    let shape = [n / 1024, 1024];
    for (fmt, mode) in cases.iter().filter(|(f, _)| filter.is_empty() || filter.iter().any(|t| f.contains(t.as_str()))) {
        let format = Format::parse(fmt).expect("benchmark formats parse");
        let rounding = Rounding::parse(mode).expect("benchmark modes parse");
        let stream = RandomStream::new(1, 0);
        let mut rate = |data: &[f32]| {
            let t = best_of(reps, || {
                format.quantize(black_box(data), &shape, rounding, &stream, &mut dst).expect("benchmark shapes fit");
                black_box(&dst);
            });
            n as f64 / t.as_secs_f64() / 1e6
        };
        let (a, b) = (rate(&spread), rate(&normal));
        println!(
            "{:<34} {:>12.0} {:>7.0}% {:>12.0} {:>7.0}%",
            format!("{fmt} {mode}"),
            a,
            100.0 * a / copy_rate,
            b,
            100.0 * b / copy_rate
        );
    }
}
