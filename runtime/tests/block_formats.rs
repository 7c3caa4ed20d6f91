//! Block formats (OCP MX, bfp, NVFP4) against blocks worked by hand from the OCP
//! Microscaling v1.0 definitions and `spec/scaled-formats.md`, plus the agreement of the
//! quantized values with the bit-level encoding.

use qc_runtime::numerics::block::{encode_blocks, EncodedBlocks};
use qc_runtime::numerics::float::FloatFormat;
use qc_runtime::numerics::{BlockFormat, Format, QuantizeError, RandomStream, Rounding};

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

fn block_format(text: &str) -> BlockFormat {
    match Format::parse(text).unwrap() {
        Format::Block(b) => b,
        other => panic!("{text} is not a block format: {other}"),
    }
}

fn quantize(format: &str, data: &[f32], shape: &[usize], mode: Rounding) -> Vec<f32> {
    let f = Format::parse(format).unwrap();
    let mut out = vec![0f32; data.len()];
    f.quantize(data, shape, mode, &RandomStream::new(4, 0), &mut out).unwrap();
    out
}

fn encode(format: &str, data: &[f32], shape: &[usize]) -> EncodedBlocks {
    encode_blocks(&block_format(format), data, shape, Rounding::Nearest, &RandomStream::new(4, 0)).unwrap()
}

fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan(), "{what}[{i}]: got {g:e}, want {w:e}");
    }
}

/// A row of `n` values: `head` followed by zeros.
fn row(head: &[f32], n: usize) -> Vec<f32> {
    let mut v = head.to_vec();
    v.resize(n, 0.0);
    v
}

#[test]
fn mxfp4_blocks_worked_by_hand() {
    // Block 0: amax 6 → ⌊log2 6⌋ = 2, emax(E2M1) = 2 → X = 2^0. Elements round to
    // {0, 0.5, 1, 1.5, 2, 3, 4, 6}: 5 → 4 (tie, even mantissa), 2.5 → 2 (tie), 0.25 → 0
    // (tie), 0.75 → 1 (tie: 0.5 has odd k), −3.2 → −3, 1.25 → 1 (tie), 0.1 → 0.
    // Block 1: amax 100 → ⌊log2 100⌋ = 6 → X = 2^4 = 16: 100/16 = 6.25 → 6 → 96;
    // 37/16 = 2.3125 → 2 → 32; 1/16 → 0; 5/16 = 0.3125 → 0.5 → 8; −100 → −96.
    let mut data = row(&[5.0, 2.5, 0.25, 0.75, -3.2, 1.25, 0.1, -6.0], 32);
    data.extend(row(&[100.0, 37.0, 1.0, 5.0, -100.0], 32));
    let got = quantize("mxfp4", &data, &[1, 64], Rounding::Nearest);
    let mut want = row(&[4.0, 2.0, 0.0, 1.0, -3.0, 1.0, 0.0, -6.0], 32);
    want.extend(row(&[96.0, 32.0, 0.0, 8.0, -96.0], 32));
    assert_bits(&got, &want, "mxfp4");
    let enc = encode("mxfp4", &data, &[1, 64]);
    assert_eq!(enc.scales, vec![127, 131]); // E8M0 bits of 2^0 and 2^4
    // E2M1 codes S.EE.M: 4 = 0.11.0, 2 = 0.10.0, 1 = 0.01.0, −3 = 1.10.1, −6 = 1.11.1.
    assert_eq!(&enc.elements[..8], &[0b0110, 0b0100, 0, 0b0010, 0b1101, 0b0010, 0, 0b1111]);
    assert_eq!(&enc.elements[32..37], &[0b0111, 0b0100, 0, 0b0001, 0b1111]);
    assert_bits(&enc.decode(), &got, "decode");
}

#[test]
fn mxfp8_elements_saturate_even_for_e5m2() {
    // E4M3, amax 1.9: X = 2^(0−8); 1.9·256 = 486.4 saturates to 448 → 1.75.
    // 0.3·256 = 76.8 → 80 (spacing 8 in [64, 128)) → 0.3125.
    let got = quantize("mxfp8_e4m3", &row(&[1.9, 0.3, -1.9], 32), &[32], Rounding::Nearest);
    assert_bits(&got[..3], &[1.75, 0.3125, -1.75], "e4m3");
    // Up would go to 512 > 448: still 448.
    let got = quantize("mxfp8_e4m3", &row(&[1.9], 32), &[32], Rounding::Up);
    assert_eq!(got[0], 1.75);
    // E5M2, amax 1.99: X = 2^(0−15); 1.99·2^15 rounds to 2^16 > 57344: saturates, no ∞.
    let got = quantize("mxfp8_e5m2", &row(&[1.99, -1.99], 32), &[32], Rounding::Nearest);
    assert_bits(&got[..2], &[1.75, -1.75], "e5m2");
}

/// The E8M0 scale code of a one-block tensor whose largest magnitude is `amax`.
fn scale_code(format: &str, amax: f32) -> u8 {
    encode(format, &[amax, 0.0], &[2]).scales[0]
}

#[test]
fn scale_rules() {
    let e = |code: u8| code as i32 - 127;
    // floor: ⌊log2 amax⌋ − 2 for E2M1.
    assert_eq!(e(scale_code("mxfp4", 5.0)), 0);
    assert_eq!(e(scale_code("mxfp4", 4.0)), 0);
    assert_eq!(e(scale_code("mxfp4", 7.99)), 0);
    // ceil: ⌈log2 amax⌉ − 2.
    assert_eq!(e(scale_code("mxfp4<scale=ceil>", 5.0)), 1);
    assert_eq!(e(scale_code("mxfp4<scale=ceil>", 4.0)), 0);
    // even: 5 = 1.01b·2^2 → 1 mantissa bit half up → 1.1b: no carry → 0;
    // 7 = 1.11b·2^2 → 10.0b: carry → 1.
    assert_eq!(e(scale_code("mxfp4<scale=even>", 5.0)), 0);
    assert_eq!(e(scale_code("mxfp4<scale=even>", 7.0)), 1);
    assert_eq!(e(scale_code("mxfp4<scale=even>", 6.0)), 0); // 1.1b already has 1 fraction bit
    // E4M3 (3 mantissa bits): 1.1111b carries, 1.11101b does not.
    assert_eq!(e(scale_code("mxfp8_e4m3<scale=even>", 1.9375)), 1 - 8);
    assert_eq!(e(scale_code("mxfp8_e4m3<scale=even>", 1.90625)), -8);
    // rceil: ⌈log2(amax / 6)⌉.
    assert_eq!(e(scale_code("mxfp4<scale=rceil>", 5.0)), 0);
    assert_eq!(e(scale_code("mxfp4<scale=rceil>", 6.0)), 0);
    assert_eq!(e(scale_code("mxfp4<scale=rceil>", 7.0)), 1);
    assert_eq!(e(scale_code("mxfp4<scale=rceil>", 12.0)), 1);
    assert_eq!(e(scale_code("mxfp4<scale=rceil>", 12.000001)), 2);
    // rceil never saturates: with E4M3 (max 448), amax = 449 → 2^1 and 449/2 fits.
    assert_eq!(e(scale_code("mxfp8_e4m3<scale=rceil>", 449.0)), 1);
    assert_eq!(quantize("mxfp8_e4m3<scale=rceil>", &[448.0, 1.0], &[2], Rounding::Nearest), vec![448.0, 1.0]);
    // MXINT8 (emax 0, 6 fraction bits).
    assert_eq!(e(scale_code("mxint8", 1.0)), 0);
    assert_eq!(e(scale_code("mxint8", 1.99)), 0);
    // Clamping to [−127, 127].
    assert_eq!(scale_code("mxint8", f32::from_bits(1)), 0);
    assert_eq!(e(scale_code("mxint8<scale=ceil>", f32::MAX)), 127);
}

#[test]
fn subnormal_amax_is_handled_exactly() {
    // even, MXINT8: amax = 2^-127·s with s = 2 − 2^-7 rounds (6 fraction bits, half up) to 2:
    // e = −126. With s = 2 − 2^-6 it does not: e = −127. (A bit trick on the f32 pattern of a
    // subnormal would round at an absolute position and carry in both cases.)
    let a = f32::from_bits((1 << 23) - (1 << 15)); // (2^23 − 2^15)·2^-149 = 2^-126 − 2^-134
    let b = f32::from_bits((1 << 23) - (1 << 16)); // 2^-126 − 2^-133
    assert_eq!(scale_code("mxint8<scale=even>", a), 1);
    assert_eq!(scale_code("mxint8<scale=even>", b), 0);
    // floor on a subnormal: ⌊log2(2^-140)⌋ = −140, clamped to −127.
    assert_eq!(scale_code("mxint8", 2f32.powi(-140)), 0);
    // rceil on a subnormal: ⌈log2(2^-140·3 / (127/64))⌉ = −139 → clamped.
    assert_eq!(scale_code("mxint8<scale=rceil>", 3.0 * 2f32.powi(-140)), 0);
    // The elements of such a block: grid 2^(−127−6) = 2^-133; 2^-140 rounds to 0.
    let got = quantize("mxint8", &[2f32.powi(-140), 2f32.powi(-133) * 3.0], &[2], Rounding::Nearest);
    assert_bits(&got, &[0.0, 2f32.powi(-133) * 3.0], "subnormal block");
}

#[test]
fn zero_nan_and_infinite_blocks() {
    // Three blocks of 4 in one row: all zeros, one NaN, one +∞.
    let data = [0.0, -0.0, 0.0, 0.0, 1.0, f32::NAN, 2.0, 3.0, f32::INFINITY, 1.0, 1.0, 1.0];
    for format in ["mxfp4<block=4>", "mxfp8_e5m2<block=4>", "mxint8<block=4>", "bfp<4,4>"] {
        let got = quantize(format, &data, &[12], Rounding::Nearest);
        assert_eq!(&got[..4].iter().map(|v| v.abs()).collect::<Vec<_>>(), &[0.0; 4], "{format}");
        assert!(got[4..].iter().all(|v| v.is_nan()), "{format}: {got:?}");
        let enc = encode(format, &data, &[12]);
        assert_eq!(enc.scales, vec![0, 0xFF, 0xFF], "{format}"); // 2^-127, NaN, NaN
    }
    let got = quantize("nvfp4<block=4>", &data, &[12], Rounding::Nearest);
    assert!(got[..4].iter().all(|v| *v == 0.0) && got[4..].iter().all(|v| v.is_nan()));
    assert_eq!(encode("nvfp4<block=4>", &data, &[12]).scales, vec![0x00, 0x7F, 0x7F]);
}

#[test]
fn mxint8_elements() {
    // amax 1 → X = 1, grid 2^-6: 0.3·64 = 19.2 → 19; 1.99 → e = 0, 127.36 → saturates to 127.
    let got = quantize("mxint8", &[1.0, 0.3, -0.3, 0.0], &[4], Rounding::Nearest);
    assert_bits(&got, &[1.0, 19.0 / 64.0, -19.0 / 64.0, 0.0], "mxint8");
    assert_eq!(encode("mxint8", &[1.0, 0.3, -0.3, 0.0], &[4]).elements, vec![64, 19, 0xED, 0]);
    let got = quantize("mxint8", &[1.99, -1.99], &[2], Rounding::Nearest);
    assert_bits(&got, &[127.0 / 64.0, -127.0 / 64.0], "mxint8 saturation");
}

#[test]
fn bfp_elements() {
    // bfp<3,4>: amax 5 → e = 2, grid 2^(2−3+1) = 1, |k| ≤ 7.
    let got = quantize("bfp<3,4>", &[5.0, -2.5, 0.6, 1.5], &[4], Rounding::Nearest);
    assert_bits(&got, &[5.0, -2.0, 1.0, 2.0], "bfp");
    let enc = encode("bfp<3,4>", &[5.0, -2.5, 0.6, 1.5], &[4]);
    assert_eq!(enc.scales, vec![129]); // shared exponent 2, biased by 127
    assert_eq!(enc.elements, vec![5, 0b1010, 1, 2]); // sign bit 3, magnitude below
    // amax 7.9 → e = 2, 7.9 rounds to 8 and saturates at 7.
    assert_bits(&quantize("bfp<3,4>", &[7.9, 0.0, 0.0, 0.0], &[4], Rounding::Nearest), &[7.0, 0.0, 0.0, 0.0], "bfp sat");
}

#[test]
fn nvfp4_single_level_scale() {
    // amax 20: s = E4M3(20/6 = 3.33) = 3.25 (spacing 0.25 in [2, 4)).
    // 20/3.25 = 6.15 → 6 → 19.5; 10/3.25 = 3.08 → 3 → 9.75; 1/3.25 = 0.31 → 0.5 → 1.625.
    let data = row(&[20.0, 10.0, 1.0, -4.0], 16);
    let got = quantize("nvfp4", &data, &[16], Rounding::Nearest);
    assert_bits(&got[..4], &[19.5, 9.75, 1.625, -3.25], "nvfp4"); // −4/3.25 = −1.23 → −1
    let enc = encode("nvfp4", &data, &[16]);
    assert_eq!(enc.scales, vec![0x45]); // E4M3 0.1000.101 = 1.625·2
    // A scale below half the smallest E4M3 subnormal (2^-10) is zero: the block is zero.
    let got = quantize("nvfp4", &row(&[1e-4, -5e-5], 16), &[16], Rounding::Up);
    assert!(got.iter().all(|v| v.to_bits() == 0));
    // The scale saturates at 448: values beyond 6·448 saturate to 2688.
    let got = quantize("nvfp4", &row(&[1e4, -1e4, 448.0], 16), &[16], Rounding::Nearest);
    assert_bits(&got[..3], &[2688.0, -2688.0, 448.0], "nvfp4 saturation");
}

#[test]
fn partial_last_blocks_and_rows() {
    // Rows of 5 with block 4: blocks [0..4), [4..5) per row; each has its own scale.
    let data = [1.0, 0.3, 0.2, 0.1, 0.1, 8.0, 0.0, 0.0, 0.0, 0.3];
    let enc = encode("mxfp4<block=4>", &data, &[2, 5]);
    assert_eq!(enc.blocks_per_row(), 2);
    // amax 1 → e = 0−2; 0.1 → e = −4−2; 8 → 3−2; 0.3 → −2−2.
    assert_eq!(enc.scales, vec![125, 121, 128, 123]);
    let got = quantize("mxfp4<block=4>", &data, &[2, 5], Rounding::Nearest);
    assert_bits(&got, &enc.decode(), "partial");
    // 0.1 alone: X = 2^-6, 6.4 → 6 → 0.09375.
    assert_eq!(got[4], 0.09375);
}

#[test]
fn shapes() {
    let f = Format::parse("mxfp4").unwrap();
    let rng = RandomStream::new(0, 0);
    let mut out = [0f32; 1];
    assert_eq!(f.quantize(&[1.0], &[], Rounding::Nearest, &rng, &mut out), Err(QuantizeError::Scalar));
    let b = block_format("mxfp4");
    assert_eq!(encode_blocks(&b, &[1.0], &[], Rounding::Nearest, &rng), Err(QuantizeError::Scalar));
    assert!(matches!(encode_blocks(&b, &[1.0], &[2], Rounding::Nearest, &rng), Err(QuantizeError::ShapeMismatch { .. })));
    // Empty tensors are fine.
    assert_eq!(f.quantize(&[], &[3, 0], Rounding::Nearest, &rng, &mut []), Ok(()));
    assert_eq!(f.quantize(&[], &[0, 3], Rounding::Nearest, &rng, &mut []), Ok(()));
}

#[test]
fn element_i_draws_at_index_i() {
    // mxfp4 with amax 6 has X = 1: each element is E2M1 rounding of itself, drawing at its
    // own index in the whole tensor — across rows and across the tiles the kernel works in
    // (4,096 elements), which rows of 130 blocks straddle.
    let fp4 = FloatFormat { saturate: true, ..FloatFormat::ieee(2, 1).with_specials(qc_runtime::numerics::Specials::None) };
    let (rows, row) = (3, 130 * 32);
    let mut data = vec![0f32; rows * row];
    for (i, v) in data.iter_mut().enumerate() {
        *v = if i % 32 == 0 { 6.0 } else { (i % 7) as f32 * 0.37 };
    }
    let rng = RandomStream::new(12, 3);
    let f = Format::parse("mxfp4").unwrap();
    let mut out = vec![0f32; rows * row];
    f.quantize(&data, &[rows, row], Rounding::Stochastic, &rng, &mut out).unwrap();
    for (i, (x, y)) in data.iter().zip(&out).enumerate() {
        assert_eq!(*y as f64, fp4.round(*x as f64, Rounding::Stochastic, rng.at(i as u64)), "element {i}");
    }
}

/// A varied test tensor: many binades, zeros, a few specials, huge and tiny blocks.
fn varied(n: usize, seed: u64) -> Vec<f32> {
    let rng = RandomStream::new(seed, 1);
    (0..n as u64)
        .map(|i| {
            let w = rng.word(i, 0);
            let block_kind = (i / 8) % 11;
            let mag = (rng.word(i, 1) as f32 / 4294967296.0) * match block_kind {
                0 => 1e-42,
                1 => 3e38,
                2 => 0.0,
                _ => 2f32.powi((rng.word(i / 8, 2) % 40) as i32 - 20),
            };
            let v = if w & 1 == 1 { -mag } else { mag };
            match w % 997 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                _ => v,
            }
        })
        .collect()
}

#[test]
fn decoding_the_encoding_gives_the_quantized_values() {
    let formats = [
        "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8", "nvfp4", "bfp<7,16>", "bfp<1,8>", "bfp<23,4>",
        "mxfp4<scale=ceil>", "mxfp8_e4m3<scale=even>", "mxfp8_e5m2<scale=rceil>", "mxint8<scale=ceil,block=8>",
        "mxfp6_e3m2<scale=even,block=5>", "mxfp8_e4m3<scale=ceil,block=8>",
    ];
    for format in formats {
        let b = block_format(format);
        for (shape, seed) in [(vec![8, 40], 1u64), (vec![2, 3, 37], 2), (vec![130], 3), (vec![4, 1], 4)] {
            let n: usize = shape.iter().product();
            let data = varied(n, seed);
            for mode in MODES {
                let rng = RandomStream::new(seed, 7);
                let mut out = vec![0f32; n];
                Format::Block(b).quantize(&data, &shape, mode, &rng, &mut out).unwrap();
                let enc = encode_blocks(&b, &data, &shape, mode, &rng).unwrap();
                assert_eq!(enc.scales.len(), shape[..shape.len() - 1].iter().product::<usize>() * enc.blocks_per_row());
                assert_bits(&out, &enc.decode(), &format!("{format} {shape:?} {mode}"));
            }
        }
    }
}

#[test]
fn scale_ceil_can_exceed_f32_range_and_gives_infinity() {
    // amax = f32::MAX: ceil gives 2^(128−8); MAX/2^120 = 255.99 rounds to 256 in E4M3 and
    // 256·2^120 = 2^128 is beyond f32: delivered as +∞ (spec: "Block formats", edge cases).
    let got = quantize("mxfp8_e4m3<scale=ceil>", &[f32::MAX, 1.0], &[2], Rounding::Nearest);
    assert_eq!(got[0], f32::INFINITY);
    let enc = encode("mxfp8_e4m3<scale=ceil>", &[f32::MAX, 1.0], &[2]);
    assert_eq!(enc.scales, vec![127 + 120]);
    assert_bits(&enc.decode(), &got, "decode");
    // floor never does: 2^(127−8), MAX/2^119 = 511.99 saturates to 448.
    assert_eq!(quantize("mxfp8_e4m3", &[f32::MAX], &[1], Rounding::Up)[0], 448.0 * 2f32.powi(119));
}

#[test]
fn every_mode_picks_the_down_or_the_up_neighbour() {
    for format in ["mxfp4", "mxfp8_e4m3<block=8>", "mxint8", "nvfp4", "bfp<5,8>", "mxfp6_e2m3<scale=rceil>"] {
        let data: Vec<f32> = varied(256, 9).into_iter().map(|v| if v.is_finite() { v } else { 0.5 }).collect();
        let down = quantize(format, &data, &[4, 64], Rounding::Down);
        let up = quantize(format, &data, &[4, 64], Rounding::Up);
        for mode in MODES {
            let got = quantize(format, &data, &[4, 64], mode);
            for i in 0..data.len() {
                assert!(down[i] <= up[i], "{format}: down above up at {i}");
                assert!(got[i] == down[i] || got[i] == up[i], "{format} {mode} [{i}] {}: {} not in {{{}, {}}}", data[i], got[i], down[i], up[i]);
            }
        }
    }
}

#[test]
fn stochastic_mxfp4_is_unbiased_inside_the_range() {
    // amax 6 → X = 1; 2.3 lies 0.15 of the way from 2 to 3.
    let n = 1 << 16;
    let mut data = vec![2.3f32; n];
    for i in (0..n).step_by(32) {
        data[i] = 6.0;
    }
    let got = quantize("mxfp4", &data, &[n / 32, 32], Rounding::Stochastic);
    let vals: Vec<f64> = got.iter().enumerate().filter(|(i, _)| i % 32 != 0).map(|(_, v)| *v as f64).collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let sd = (0.3f64 * 0.7).sqrt() / (vals.len() as f64).sqrt();
    assert!((mean - 2.3f32 as f64).abs() < 5.0 * sd, "{mean}");
}

/// The vectorised path for whole 32-element blocks moves each element's exponent by the
/// block's; elements far below the block maximum (down to float32 subnormals), zeros, NaN
/// blocks and blocks at the top of float32's range must still round exactly as the
/// bit-level encoding (computed on the exact path) says, in every mode.
#[test]
fn whole_blocks_agree_with_the_encoding_on_extreme_data() {
    let rng = RandomStream::new(77, 1);
    let rows = 16;
    let mut data = Vec::with_capacity(rows * 64);
    for i in 0..(rows * 64) as u64 {
        let row = i / 64;
        let u = rng.word(i, 0);
        let x = match row {
            // A huge dynamic range: one large element per block, the rest spread down to 2^-149.
            0..=5 => {
                if i % 32 == 0 {
                    f32::from_bits(0x7E00_0000 | (u & 0x7F_FFFF))
                } else {
                    f32::from_bits(u & 0x7FFF_FFFF).min(1e30)
                }
            }
            6 => f32::from_bits(u & 0x00FF_FFFF), // subnormals and the smallest normals
            7 => if i % 64 == 5 { f32::NAN } else { 1.0 },
            8 => 0.0,
            9 => f32::MAX * if u & 1 == 0 { 1.0 } else { -0.999 },
            _ => f32::from_bits(0x3000_0000 + (u >> 4)),
        };
        data.push(if u & (1 << 31) != 0 { -x } else { x });
    }
    let shape = [rows, 64];
    for format in ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp4<scale=ceil>", "mxfp8_e4m3<scale=rceil>"] {
        for mode in MODES {
            let got = quantize(format, &data, &shape, mode);
            let want = encode_blocks(&block_format(format), &data, &shape, mode, &RandomStream::new(4, 0)).unwrap().decode();
            assert_bits(&got, &want, &format!("{format} {mode}"));
        }
    }
}
