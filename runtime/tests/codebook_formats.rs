//! Binary, ternary (TWN, BitNet b1.58) and power-of-two formats against hand-computed
//! values from the definitions in `spec/scaled-formats.md`.

use qc_runtime::numerics::codebook::{codebook_scales, log2_exponents};
use qc_runtime::numerics::{Codebook, Format, Granularity, LogFormat, QuantizeError, RandomStream, Rounding};

const MODES: [Rounding; 9] = [
    Rounding::Nearest,
    Rounding::NearestAway,
    Rounding::TowardZero,
    Rounding::Up,
    Rounding::Down,
    Rounding::Stochastic,
    Rounding::StochasticBits(2),
    Rounding::StochasticBits(32),
    Rounding::StochasticUnbiased(7),
];

fn quantize(format: &str, data: &[f32], shape: &[usize], mode: Rounding) -> Vec<f32> {
    let f = Format::parse(format).unwrap();
    let mut out = vec![0f32; data.len()];
    f.quantize(data, shape, mode, &RandomStream::new(8, 0), &mut out).unwrap();
    out
}

fn q1(format: &str, data: &[f32], mode: Rounding) -> Vec<f32> {
    quantize(format, data, &[data.len()], mode)
}

fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan(), "{what}[{i}]: got {g:e}, want {w:e}");
    }
}

/// The mean over positions `i % period == slot` of a stochastic quantization.
fn slot_mean(format: &str, pattern: &[f32], slot: usize, mode: Rounding, repeats: usize) -> f64 {
    let data: Vec<f32> = pattern.iter().copied().cycle().take(pattern.len() * repeats).collect();
    let got = q1(format, &data, mode);
    got.iter().skip(slot).step_by(pattern.len()).map(|v| *v as f64).sum::<f64>() / repeats as f64
}

#[test]
fn binary_in_every_deterministic_mode() {
    // α = mean|w| = (0.5 + 1.5 + 0 + 2)/4 = 1; w/α = 0.5, −1.5, 0, 2.
    let w = [0.5, -1.5, 0.0, 2.0];
    let cases: [(Rounding, [f32; 4]); 5] = [
        (Rounding::Nearest, [1.0, -1.0, 1.0, 1.0]), // sign(0) = +1
        (Rounding::NearestAway, [1.0, -1.0, 1.0, 1.0]),
        (Rounding::TowardZero, [1.0, -1.0, 1.0, 1.0]),
        (Rounding::Up, [1.0, -1.0, 1.0, 1.0]),    // −1.5 is clamped to −1
        (Rounding::Down, [-1.0, -1.0, -1.0, 1.0]), // 2 is clamped to +1
    ];
    for (mode, want) in cases {
        assert_bits(&q1("binary", &w, mode), &want, &format!("binary {mode}"));
    }
    assert_eq!(q1("binary", &[-0.0, 1.0], Rounding::Nearest), vec![0.5, 0.5]);
    // Per channel, axis 0 of [2, 2]: α = 2 and 0.5.
    assert_bits(&quantize("binary<axis=0>", &[1.0, -3.0, 0.5, 0.5], &[2, 2], Rounding::Nearest), &[2.0, -2.0, 0.5, 0.5], "axis 0");
    // Axis 1: columns [1, 0.5] (α 0.75) and [−3, 0.5] (α 1.75).
    assert_bits(&quantize("binary<axis=1>", &[1.0, -3.0, 0.5, 0.5], &[2, 2], Rounding::Nearest), &[0.75, -1.75, 0.75, 1.75], "axis 1");
}

#[test]
fn binary_stochastic_is_binaryconnect() {
    // P(+1) = (1 + w/α)/2: 0.5 → 0.75, 0 → 0.5; beyond ±α clamps. E[value] = w inside [−α, α].
    let pattern = [0.5, -1.5, 0.0, 2.0];
    let n = 1 << 15;
    let sd = 1.0 / (n as f64).sqrt(); // values ±1: at most 1 standard deviation each
    assert!((slot_mean("binary", &pattern, 0, Rounding::Stochastic, n) - 0.5).abs() < 5.0 * sd);
    assert!(slot_mean("binary", &pattern, 2, Rounding::Stochastic, n).abs() < 5.0 * sd);
    assert_eq!(slot_mean("binary", &pattern, 1, Rounding::Stochastic, n), -1.0);
    assert_eq!(slot_mean("binary", &pattern, 3, Rounding::Stochastic, n), 1.0);
}

#[test]
fn twn_ternary() {
    // μ = RN32(mean|w|) = RN32(3.5000000075/5) = 0.7f32; Δ = RN32(0.7·μ) = 0.48999998
    // (one ulp below 0.49f32); above Δ: 1 and −2, α = 1.5.
    let w = [1.0f32, -0.2, 0.3, -2.0, 0.0];
    let c = Codebook::Ternary(Granularity::PerTensor);
    let (alpha, delta) = codebook_scales(&c, &w, &[5]).unwrap();
    let mu = (w.iter().map(|v| v.abs() as f64).sum::<f64>() / 5.0) as f32;
    assert_eq!(mu, 0.7f32);
    assert_eq!(alpha, vec![1.5]);
    assert_eq!(delta, Some(vec![(0.7 * mu as f64) as f32]));
    assert_eq!(delta, Some(vec![f32::from_bits(0.49f32.to_bits() - 1)]));
    // w/α = 0.667, −0.133, 0.2, −1.333, 0.
    let cases: [(Rounding, [f32; 5]); 5] = [
        (Rounding::Nearest, [1.5, 0.0, 0.0, -1.5, 0.0]),
        (Rounding::NearestAway, [1.5, 0.0, 0.0, -1.5, 0.0]),
        (Rounding::TowardZero, [0.0, 0.0, 0.0, -1.5, 0.0]),
        (Rounding::Up, [1.5, 0.0, 1.5, -1.5, 0.0]),
        (Rounding::Down, [0.0, -1.5, 0.0, -1.5, 0.0]),
    ];
    for (mode, want) in cases {
        assert_bits(&q1("ternary", &w, mode), &want, &format!("ternary {mode}"));
    }
}

#[test]
fn twn_tie_at_the_threshold() {
    // Find t with Δ(w) = t for w = [5, 0, 0, 0, t]: nearest keeps 0 at |w| = Δ,
    // nearest-away gives ±α.
    let c = Codebook::Ternary(Granularity::PerTensor);
    let start = 0.7f32 / 0.86;
    let t = (0..20_000)
        .flat_map(|d| [f32::from_bits(start.to_bits() + d), f32::from_bits(start.to_bits() - d)])
        .find(|&t| codebook_scales(&c, &[5.0, 0.0, 0.0, 0.0, t], &[5]).unwrap().1.unwrap()[0] == t)
        .expect("a value equal to its own threshold");
    let w = [5.0, 0.0, 0.0, 0.0, t];
    assert_eq!(q1("ternary", &w, Rounding::Nearest)[4], 0.0);
    assert_eq!(q1("ternary", &w, Rounding::NearestAway)[4], 5.0); // α = 5 (only 5 is above Δ)
}

#[test]
fn twn_stochastic_is_unbiased_inside_the_range() {
    // α = 1.5 as above; 0.3 → ±α with P = 0.3/1.5 = 0.2, else 0: E = 0.3.
    let pattern = [1.0, -0.2, 0.3, -2.0, 0.0];
    let n = 1 << 15;
    let sd = 1.5 * (0.2f64 * 0.8).sqrt() / (n as f64).sqrt();
    let m = slot_mean("ternary", &pattern, 2, Rounding::Stochastic, n);
    assert!((m - 0.3).abs() < 5.0 * sd, "{m}");
}

#[test]
fn bitnet_absmean_ternary() {
    // γ = mean|w| = (1 + 3)/4 = 1 for [1, 3, 0, 0]... use [1, 3]: γ = 2; w/γ = 0.5, 1.5.
    let cases: [(Rounding, [f32; 2]); 5] = [
        (Rounding::Nearest, [0.0, 2.0]), // 0.5 → 0 (even); 1.5 → 2 → clipped to 1
        (Rounding::NearestAway, [2.0, 2.0]),
        (Rounding::TowardZero, [0.0, 2.0]),
        (Rounding::Up, [2.0, 2.0]),
        (Rounding::Down, [0.0, 2.0]),
    ];
    for (mode, want) in cases {
        assert_bits(&q1("ternary_absmean", &[1.0, 3.0], mode), &want, &format!("absmean {mode}"));
    }
    // γ = RN32((0.1 + 0.6 + 1.2 + 0.5 + 0)/5 in f64, summed in order).
    let w = [0.1f32, -0.6, 1.2, 0.5, 0.0];
    let gamma = (w.iter().map(|v| v.abs() as f64).sum::<f64>() / 5.0) as f32;
    assert_eq!(codebook_scales(&Codebook::TernaryAbsmean(Granularity::PerTensor), &w, &[5]).unwrap().0, vec![gamma]);
    // w/γ = 0.21, −1.25, 2.5, 1.04, 0 → 0, −1, 1 (clipped), 1, 0.
    assert_bits(&q1("ternary_absmean", &w, Rounding::Nearest), &[0.0, -gamma, gamma, gamma, 0.0], "absmean");
}

#[test]
fn codebook_zero_nan_and_axis_errors() {
    for format in ["binary<axis=0>", "ternary<axis=0>", "ternary_absmean<axis=0>"] {
        let data = [0.0, -0.0, 1.0, f32::NAN, 2.0, f32::NEG_INFINITY];
        let got = quantize(format, &data, &[3, 2], Rounding::Nearest);
        assert_eq!(got[0].to_bits(), 0, "{format}");
        assert_eq!(got[1].to_bits(), 0, "{format}");
        assert!(got[2..].iter().all(|v| v.is_nan()), "{format}: {got:?}");
        let f = Format::parse(format).unwrap();
        let e = f.quantize(&[1.0], &[], Rounding::Nearest, &RandomStream::new(0, 0), &mut [0.0]).unwrap_err();
        assert_eq!(e, QuantizeError::AxisOutOfRange { axis: 0, rank: 0 });
    }
}

#[test]
fn log2_by_hand() {
    // log2<3>: 3 exponent codes. amax 8 = 2^3 (64 < 2^7: stays 3) → {0, ±2, ±4, ±8}.
    let l = LogFormat { bits: 3 };
    assert_eq!(log2_exponents(&l, 8.0), (1, 3));
    let w = [8.0, 3.0, 2.9, 1.4, 1.0, 0.9, -5.0, -5.7, 0.0, -0.0];
    // 3: 9 > 2^3 → 4; 2.9: 8.41 > 8 → 4; 1.4 in [0, 2]: > 1 → 2; 1.0: tie → 0 (even);
    // 0.9 → 0; −5: 25 < 32 → −4; −5.7: 32.49 > 32 → −8.
    assert_bits(&q1("log2<3>", &w, Rounding::Nearest), &[8.0, 4.0, 4.0, 2.0, 0.0, 0.0, -4.0, -8.0, 0.0, -0.0], "nearest");
    assert_bits(&q1("log2<3>", &w, Rounding::NearestAway), &[8.0, 4.0, 4.0, 2.0, 2.0, 0.0, -4.0, -8.0, 0.0, -0.0], "away");
    assert_bits(&q1("log2<3>", &w, Rounding::TowardZero), &[8.0, 2.0, 2.0, 0.0, 0.0, 0.0, -4.0, -4.0, 0.0, -0.0], "toward zero");
    assert_bits(&q1("log2<3>", &w, Rounding::Up), &[8.0, 4.0, 4.0, 2.0, 2.0, 2.0, -4.0, -4.0, 0.0, -0.0], "up");
    assert_bits(&q1("log2<3>", &w, Rounding::Down), &[8.0, 2.0, 2.0, 0.0, 0.0, 0.0, -8.0, -8.0, 0.0, -0.0], "down");
    // amax 12: 144 ≥ 2^7 → top 4 → {4, 8, 16}; 12 → 16.
    assert_eq!(log2_exponents(&l, 12.0), (2, 4));
    assert_eq!(q1("log2<3>", &[12.0, 3.0], Rounding::Nearest), vec![16.0, 4.0]);
    // amax 11: 121 < 128 → top 3: 11 saturates to 8 in every mode.
    for mode in MODES {
        assert_eq!(q1("log2<3>", &[11.0, -11.0], mode), vec![8.0, -8.0], "{mode}");
    }
    // log2<2>: one exponent: {0, ±2^top}.
    assert_eq!(q1("log2<2>", &[4.0, 2.5, 1.5], Rounding::Nearest), vec![4.0, 4.0, 0.0]);
    // The anchor is clamped to 2^127; log2<8> has 127 exponents, 2^1..2^127, so 1 is the
    // tie between 0 and 2 (to 0) and 1.5 rounds to 2.
    assert_eq!(q1("log2<8>", &[3.0e38, 1.0, 1.5], Rounding::Nearest), vec![2f32.powi(127), 0.0, 2.0]);
    // With amax 1 the exponents are 2^-126..2^0: 1e-38 = 0.87·2^-126 rounds up to 2^-126,
    // 3e-39 = 0.26·2^-126 to 0.
    assert_eq!(q1("log2<8>", &[1.0, 1e-38, 3e-39], Rounding::Nearest), vec![1.0, 2f32.powi(-126), 0.0]);
}

#[test]
fn log2_specials_and_stochastic() {
    assert!(q1("log2<4>", &[1.0, f32::NAN], Rounding::Nearest).iter().all(|v| v.is_nan()));
    assert!(q1("log2<4>", &[1.0, f32::INFINITY], Rounding::Nearest).iter().all(|v| v.is_nan()));
    assert_bits(&q1("log2<4>", &[0.0, -0.0], Rounding::Up), &[0.0, -0.0], "zeros");
    // Stochastic is linear inside a binade: 3 → 4 with P = 0.5, mean 3; below the smallest
    // power (2, with amax 8 in log2<3>) 0.5 → 2 with P = 0.25, mean 0.5.
    let n = 1 << 15;
    let sd = 1.0 / (n as f64).sqrt();
    let pattern = [8.0, 3.0, 0.5];
    assert!((slot_mean("log2<3>", &pattern, 1, Rounding::Stochastic, n) - 3.0).abs() < 5.0 * sd);
    assert!((slot_mean("log2<3>", &pattern, 2, Rounding::Stochastic, n) - 0.5).abs() < 5.0 * 2.0 * 0.433 * sd);
}

#[test]
fn every_mode_picks_the_down_or_the_up_neighbour() {
    let rng = RandomStream::new(3, 3);
    let data: Vec<f32> = (0..512u64)
        .map(|i| (rng.word(i, 0) as f32 / 4294967296.0 - 0.5) * 2f32.powi((rng.word(i, 1) % 12) as i32 - 6))
        .collect();
    for format in ["binary", "ternary", "ternary_absmean", "log2<4>", "binary<axis=1>", "ternary<axis=0>"] {
        let down = quantize(format, &data, &[8, 64], Rounding::Down);
        let up = quantize(format, &data, &[8, 64], Rounding::Up);
        for mode in MODES {
            let got = quantize(format, &data, &[8, 64], mode);
            for i in 0..data.len() {
                assert!(down[i] <= up[i], "{format}: down above up at {i}");
                assert!(got[i] == down[i] || got[i] == up[i], "{format} {mode} [{i}] {}: {} not in {{{}, {}}}", data[i], got[i], down[i], up[i]);
            }
        }
    }
}
