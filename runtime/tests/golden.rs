//! Golden vectors: qc's float32 → low-precision conversions (round to nearest even) against
//! ml_dtypes and numpy, bit for bit.
//!
//! The vectors live in `tests/golden/` at the workspace root, written by
//! `tests/golden/gen_golden.py` (see the README there). For each vector both of qc's paths
//! run: the exact path (`FloatFormat::round` then `encode`, or `round_e8m0` then
//! `encode_e8m0`) and the fast slice path (`Format::quantize`), which must agree with each
//! other and with ml_dtypes' encoding. The cases where qc differs from ml_dtypes on purpose
//! (spec/numerics.md §3.6) are checked against qc's documented result and counted.

use flate2::read::GzDecoder;
use qc_runtime::numerics::float::EncodeError;
use qc_runtime::numerics::float_extra::{encode_e8m0, round_e8m0};
use qc_runtime::numerics::{FloatFormat, Format, RandomStream, Rounding, Specials};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;

/// Every format with golden vectors, by qc name (the file is `<name>.txt` or `<name>.txt.gz`).
const GOLDEN_FORMATS: [&str; 13] = [
    "bf16",
    "fp16",
    "e4m3",
    "e5m2",
    "e4m3_ieee",
    "e3m4",
    "e4m3fnuz",
    "e5m2fnuz",
    "e4m3b11fnuz",
    "e8m0",
    "fp6_e2m3",
    "fp6_e3m2",
    "fp4_e2m1",
];

/// One conversion: a float32 input and the encoding ml_dtypes gives it.
#[derive(Clone, Copy)]
struct Vector {
    input: u32,
    expected: u32,
}

impl Vector {
    fn x(&self) -> f32 {
        f32::from_bits(self.input)
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

/// Reads a golden file, checking that it holds as many vectors as its header announces.
fn load(name: &str) -> Vec<Vector> {
    let dir = golden_dir();
    let plain = dir.join(format!("{name}.txt"));
    let zipped = dir.join(format!("{name}.txt.gz"));
    let mut text = String::new();
    if plain.exists() {
        text = std::fs::read_to_string(&plain).unwrap_or_else(|e| panic!("{}: {e}", plain.display()));
    } else {
        let file = std::fs::File::open(&zipped).unwrap_or_else(|e| panic!("{}: {e}", zipped.display()));
        GzDecoder::new(file).read_to_string(&mut text).unwrap_or_else(|e| panic!("{}: {e}", zipped.display()));
    }
    let mut announced = None;
    let mut vectors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(count) = comment.trim().split_once(" lines:").and_then(|(c, _)| c.parse::<usize>().ok()) {
                announced = Some(count);
            }
            continue;
        }
        let parse = |field: Option<&str>| field.and_then(|f| u32::from_str_radix(f, 16).ok());
        let mut fields = line.split_whitespace();
        match (parse(fields.next()), parse(fields.next()), fields.next()) {
            (Some(input), Some(expected), None) => vectors.push(Vector { input, expected }),
            _ => panic!("{name}: line {} is not `<input hex> <output hex>`: {line:?}", n + 1),
        }
    }
    assert_eq!(Some(vectors.len()), announced, "{name}: the header's vector count does not match the file");
    vectors
}

/// Why qc's result differs from ml_dtypes' on purpose (spec/numerics.md §3.6), or a NaN sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Difference {
    /// fn/fnuz: ml_dtypes gives NaN for overflow and ±∞; qc saturates to ±max.
    OverflowSaturates,
    /// NaN into a format without NaN: ml_dtypes gives a zero; qc has no encoding.
    NanHasNoEncoding,
    /// E8M0: ml_dtypes gives NaN above 2^127 (and for +∞); qc gives 2^127.
    E8m0Saturates,
    /// numpy's float16 keeps a NaN's payload bits (0x7FFFFFFF → 0x7FFF); qc writes the
    /// canonical NaN of spec/numerics.md §2.1 (0x7E00). Counted only when the signs agree.
    NanPayload,
    /// ml_dtypes 0.6 rounds float32 subnormals in (2^-127, 1.5·2^-127) up to 2^-126 in E8M0;
    /// their nearest value, which qc gives, is 2^-127.
    E8m0SubnormalInput,
    /// A NaN input whose sign ml_dtypes keeps and qc's encoding drops (see `nan_sign_is_kept`).
    NanSignDropped,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Difference::OverflowSaturates => "overflow/inf saturates (ml_dtypes: NaN)",
            Difference::NanHasNoEncoding => "NaN has no encoding (ml_dtypes: zero)",
            Difference::E8m0Saturates => "E8M0 overflow gives 2^127 (ml_dtypes: NaN)",
            Difference::NanPayload => "NaN payload not kept (numpy keeps it)",
            Difference::E8m0SubnormalInput => "E8M0 of a float32 subnormal just above 2^-127 (ml_dtypes: 2^-126)",
            Difference::NanSignDropped => "NaN sign dropped (qc bug)",
        })
    }
}

/// The tally of one format.
#[derive(Default)]
struct Tally {
    identical: usize,
    differences: BTreeMap<Difference, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }
}

fn same_value(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Runs both qc paths over a float format's vectors and classifies every result.
fn check_float(name: &str, f: &FloatFormat, vectors: &[Vector]) -> Tally {
    let inputs: Vec<f32> = vectors.iter().map(Vector::x).collect();
    let fast = quantize_fast(name, &inputs);
    let rng = RandomStream::new(0, 0);
    let sign_bit = 1u32 << (f.exp_bits + f.man_bits);
    let mut tally = Tally::default();
    for (v, fast) in vectors.iter().zip(fast) {
        let x = v.x();
        let exact = f.round(x as f64, Rounding::Nearest, rng.at(0));
        if !same_value(exact as f32, fast) {
            tally.fail(format!("{name}: {:#010x}: fast path {fast:e}, exact path {exact:e}", v.input));
        }
        let ml_value = f.decode(v.expected);
        let case = match f.encode(exact) {
            Ok(bits) if bits == v.expected => None,
            // ml_dtypes' NaN for a finite input or ±∞ where qc saturates.
            Ok(_) if !x.is_nan() && ml_value.is_nan() && !f.has_inf() => {
                if exact != f.max().copysign(x as f64) || (x.abs() as f64) <= f.max() {
                    tally.fail(format!("{name}: {:#010x} ({x:e}) overflows: qc gives {exact:e}, not ±max", v.input));
                }
                Some(Difference::OverflowSaturates)
            }
            // A NaN both ways: qc writes the canonical NaN (spec/numerics.md §2.1); ml_dtypes
            // keeps the input's sign and numpy's float16 also the payload's top bits.
            Ok(bits) if x.is_nan() && ml_value.is_nan() => {
                if bits & !sign_bit != f.encode(f64::NAN).unwrap() & !sign_bit {
                    tally.fail(format!("{name}: {:#010x}: qc's NaN {bits:#x} is not the canonical one", v.input));
                }
                if (bits ^ v.expected) & sign_bit != 0 {
                    Some(Difference::NanSignDropped)
                } else {
                    Some(Difference::NanPayload)
                }
            }
            Err(EncodeError::NoNan) if x.is_nan() && ml_value == 0.0 && !f.has_nan() => Some(Difference::NanHasNoEncoding),
            other => {
                tally.fail(format!(
                    "{name}: {:#010x} ({x:e}): ml_dtypes {:#x} ({ml_value:e}), qc {other:x?} ({exact:e})",
                    v.input, v.expected
                ));
                continue;
            }
        };
        match case {
            None => tally.identical += 1,
            Some(d) => *tally.differences.entry(d).or_default() += 1,
        }
    }
    tally
}

/// The same for E8M0, whose exact path is `round_e8m0` and `encode_e8m0`.
fn check_e8m0(vectors: &[Vector]) -> Tally {
    let inputs: Vec<f32> = vectors.iter().map(Vector::x).collect();
    let fast = quantize_fast("e8m0", &inputs);
    let rng = RandomStream::new(0, 0);
    let mut tally = Tally::default();
    for (v, fast) in vectors.iter().zip(fast) {
        let x = v.x();
        let exact = round_e8m0(x as f64, Rounding::Nearest, rng.at(0));
        if !same_value(exact as f32, fast) {
            tally.fail(format!("e8m0: {:#010x}: fast path {fast:e}, exact path {exact:e}", v.input));
        }
        let bits = encode_e8m0(exact) as u32;
        if bits == v.expected {
            tally.identical += 1;
        } else if v.expected == 0xFF && bits == 0xFE && x >= 1.5 * 2f32.powi(127) {
            // x ≥ 1.5·2^127 rounds to 2^128 with an unbounded exponent: NaN there, 2^127 here.
            *tally.differences.entry(Difference::E8m0Saturates).or_default() += 1;
        } else if v.expected == 0x01 && bits == 0x00 && x > 2f32.powi(-127) && x < 1.5 * 2f32.powi(-127) {
            // Closer to 2^-127 (0x00) than to 2^-126 (0x01): ml_dtypes rounds these up.
            *tally.differences.entry(Difference::E8m0SubnormalInput).or_default() += 1;
        } else {
            tally.fail(format!("e8m0: {:#010x} ({x:e}): ml_dtypes {:#04x}, qc {bits:#04x} ({exact:e})", v.input, v.expected));
        }
    }
    tally
}

/// `Format::quantize` (the fast slice path) with round to nearest even.
fn quantize_fast(name: &str, inputs: &[f32]) -> Vec<f32> {
    let format = Format::parse(name).unwrap();
    let mut out = vec![0f32; inputs.len()];
    format.quantize(inputs, &[inputs.len()], Rounding::Nearest, &RandomStream::new(0, 0), &mut out).unwrap();
    out
}

fn check(name: &str) -> (usize, Tally) {
    let vectors = load(name);
    let format = Format::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let tally = match format.as_float() {
        Some(f) => check_float(name, f, &vectors),
        None => {
            assert_eq!(format, Format::E8m0, "{name} is neither a float nor e8m0");
            check_e8m0(&vectors)
        }
    };
    (vectors.len(), tally)
}

#[test]
fn qc_converts_like_ml_dtypes_except_the_documented_differences() {
    let mut failures = Vec::new();
    let mut total = 0;
    for name in GOLDEN_FORMATS {
        let (count, tally) = check(name);
        total += count;
        let differences: usize = tally.differences.values().sum();
        let detail: Vec<String> = tally.differences.iter().map(|(d, n)| format!("{n} {d}")).collect();
        println!(
            "{name:12} {count:7} vectors: {:7} bit-identical, {differences:5} documented differences{}{}",
            tally.identical,
            if detail.is_empty() { String::new() } else { format!(" ({})", detail.join(", ")) },
            if tally.failures.is_empty() { String::new() } else { format!(", {} FAILURES", tally.failures.len()) },
        );
        assert_eq!(tally.identical + differences + tally.failures.len(), count, "{name}: a vector was not classified");
        assert!(tally.identical > count / 2, "{name}: suspiciously few identical results");
        failures.extend(tally.failures.into_iter().take(20));
    }
    println!("{total} golden vectors in {} formats", GOLDEN_FORMATS.len());
    assert!(failures.is_empty(), "{} mismatches, the first ones:\n{}", failures.len(), failures.join("\n"));
}

/// Each documented difference occurs where expected: the vectors do exercise them.
#[test]
fn the_documented_differences_are_exercised() {
    for (name, difference) in [
        ("e4m3", Difference::OverflowSaturates),
        ("e4m3fnuz", Difference::OverflowSaturates),
        ("e5m2fnuz", Difference::OverflowSaturates),
        ("e4m3b11fnuz", Difference::OverflowSaturates),
        ("fp6_e2m3", Difference::NanHasNoEncoding),
        ("fp6_e3m2", Difference::NanHasNoEncoding),
        ("fp4_e2m1", Difference::NanHasNoEncoding),
        ("e8m0", Difference::E8m0Saturates),
        ("e8m0", Difference::E8m0SubnormalInput),
        ("fp16", Difference::NanPayload),
    ] {
        let (_, tally) = check(name);
        assert!(tally.differences.get(&difference).copied().unwrap_or(0) > 0, "{name}: no `{difference}` case");
    }
    // IEEE formats overflow to ±∞ exactly as ml_dtypes does: their only differences are in
    // how a NaN is encoded.
    for name in ["bf16", "fp16", "e5m2", "e4m3_ieee", "e3m4"] {
        let (_, tally) = check(name);
        let other: usize = tally
            .differences
            .iter()
            .filter(|(d, _)| !matches!(d, Difference::NanSignDropped | Difference::NanPayload))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(other, 0, "{name}");
    }
}

/// spec/numerics.md §2.1: the canonical NaN keeps the input's sign, as ml_dtypes does
/// (−NaN → 0xFE in e5m2, 0xFF in e4m3). qc's `round` returns a positive NaN and `encode`
/// writes no sign for NaN, so −NaN encodes as +NaN.
#[test]
fn nan_sign_is_kept() {
    for name in GOLDEN_FORMATS {
        let (_, tally) = check(name);
        assert_eq!(tally.differences.get(&Difference::NanSignDropped), None, "{name}");
    }
}

#[test]
fn every_named_format_with_an_ml_dtypes_twin_has_golden_vectors() {
    let dir = golden_dir();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".txt.gz").or_else(|| name.strip_suffix(".txt")).map(str::to_string)
        })
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = GOLDEN_FORMATS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected);
    // The specials layouts the vectors cover: all four kinds of float plus E8M0.
    let layouts: Vec<Specials> =
        GOLDEN_FORMATS.iter().filter_map(|n| Format::parse(n).unwrap().as_float().map(|f| f.specials)).collect();
    for s in [Specials::Ieee, Specials::Fn, Specials::Fnuz, Specials::None] {
        assert!(layouts.contains(&s), "{s:?}");
    }
}
