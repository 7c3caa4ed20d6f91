//! Exhaustive tests of every small float format against an independent reference.
//!
//! The reference knows a format only by its descriptor fields (E, M, bias, subnormals,
//! specials layout, saturation). It enumerates the values from the definition in
//! spec/numerics.md §2 with exact big-integer arithmetic (every value as an integer multiple
//! of 2^-1074), and rounds an exact input by finding its two neighbours in the sorted value
//! set and applying each mode's definition (§3) to the exact position between them. It never
//! calls qc's decode, encode or rounding code.
//!
//! For every float format of at most 16 bits among `NAMED_FLOATS` and a set of custom ones:
//! - every bit pattern decodes to the reference value, and exactly the expected patterns are
//!   canonical (re-encode to themselves);
//! - for inputs at every value, every midpoint, the f32 values 1 and 2 ulps either side of
//!   those and the f64 values 1 ulp either side of the midpoints, every deterministic mode
//!   gives the reference result on the exact path (`FloatFormat::round`) and, for the f32
//!   inputs, on the fast path (`float_fast::quantize_slice`);
//! - the stochastic modes give the result the definition selects with the same random words
//!   (`RandomStream::word`), exactly, not statistically.
//!
//! E8M0 is checked the same way in every mode against its own small reference.

mod common;

use common::{exact, same, to_f64};
use num_bigint::BigInt;
use num_traits::{One, Zero};
use qc_runtime::numerics::float_extra::round_e8m0;
use qc_runtime::numerics::float_fast::quantize_slice;
use qc_runtime::numerics::format::NAMED_FLOATS;
use qc_runtime::numerics::{FloatFormat, Format, RandomStream, Rounding, Specials};

/// Custom formats tested besides the named ones: 1- and 2-bit exponents, no subnormals,
/// saturation, M = 0, no specials, odd biases (also ones whose values are f32 subnormals).
const CUSTOM_FORMATS: [&str; 15] = [
    "fp<1,2,fn>",
    "fp<1,3,nospecials>",
    "fp<1,2,fnuz>",
    "fp<6,5>",
    "fp<6,5,nosub>",
    "fp<5,2,sat>",
    "fp<3,0>",
    "fp<4,0,fnuz>",
    "fp<4,3,nospecials,nosub>",
    "fp<2,1,fn>",
    "fp<5,2,bias=3>",
    "fp<4,3,fn,bias=12>",
    "fp<3,2,nospecials,bias=-2>",
    "fp<8,4,nosub,sat>",
    "fp<5,3,bias=140>",
];

const DETERMINISTIC: [Rounding; 5] =
    [Rounding::Nearest, Rounding::NearestAway, Rounding::TowardZero, Rounding::Up, Rounding::Down];

const STOCHASTIC: [Rounding; 9] = [
    Rounding::Stochastic,
    Rounding::StochasticBits(1),
    Rounding::StochasticBits(4),
    Rounding::StochasticBits(9),
    Rounding::StochasticBits(32),
    Rounding::StochasticUnbiased(1),
    Rounding::StochasticUnbiased(4),
    Rounding::StochasticUnbiased(9),
    Rounding::StochasticUnbiased(32),
];

/// The element index of the first input (so indices beyond 32 bits are exercised too).
const BASE_INDEX: u64 = (1 << 32) - 1000;

fn formats_under_test() -> Vec<(String, FloatFormat)> {
    let mut list: Vec<(String, FloatFormat)> =
        NAMED_FLOATS.iter().filter(|(_, f)| f.bits() <= 16).map(|(n, f)| (n.to_string(), *f)).collect();
    for text in CUSTOM_FORMATS {
        let f = *Format::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).as_float().unwrap();
        list.push((text.to_string(), f));
    }
    list
}

/// What a bit pattern means, by the definition.
#[derive(Clone, Debug, PartialEq)]
enum Meaning {
    Nan,
    Infinity { negative: bool },
    Finite { negative: bool, magnitude: BigInt },
}

/// A format's values, computed from its descriptor alone.
struct Reference {
    /// The meaning of every pattern, indexed by pattern.
    meanings: Vec<Meaning>,
    /// Whether each pattern is the one encoding gives for its meaning.
    canonical: Vec<bool>,
    /// The distinct finite magnitudes in increasing order (zero first), exact.
    magnitudes: Vec<BigInt>,
    /// For each magnitude v = k·2^s at its own spacing 2^s: whether k is even.
    k_even: Vec<bool>,
    /// The same magnitudes as f64.
    magnitudes_f64: Vec<f64>,
    /// The first value past the largest one with an unbounded exponent: max + spacing(max).
    beyond: BigInt,
    /// Overflow goes to ±∞ (IEEE specials, not saturating); otherwise to ±max.
    overflows_to_infinity: bool,
    has_infinity: bool,
    has_negative_zero: bool,
}

impl Reference {
    fn new(f: &FloatFormat) -> Reference {
        let (e_bits, m_bits) = (f.exp_bits, f.man_bits);
        let top = (1u32 << e_bits) - 1;
        let man_all_ones = (1u32 << m_bits) - 1;
        let mut meanings = Vec::new();
        let mut canonical = Vec::new();
        // (magnitude, k even, spacing exponent) of the canonical non-negative finite patterns.
        let mut positive: Vec<(BigInt, bool, i32)> = Vec::new();
        for pattern in 0..1u32 << (1 + e_bits + m_bits) {
            let negative = pattern >> (e_bits + m_bits) == 1;
            let field = (pattern >> m_bits) & top;
            let man = pattern & man_all_ones;
            let special = match f.specials {
                Specials::Ieee if field == top => {
                    Some(if man == 0 { Meaning::Infinity { negative } } else { Meaning::Nan })
                }
                Specials::Fn if field == top && man == man_all_ones => Some(Meaning::Nan),
                Specials::Fnuz if negative && field == 0 && man == 0 => Some(Meaning::Nan),
                _ => None,
            };
            if let Some(meaning) = special {
                // One NaN per sign is canonical: IEEE's quiet NaN with only the mantissa's top
                // bit set (§2.1), the all-ones pattern of `fn`, the single NaN of `fnuz`.
                let is_canonical = match (&meaning, f.specials) {
                    (Meaning::Nan, Specials::Ieee) => man == 1 << (m_bits - 1),
                    _ => true,
                };
                meanings.push(meaning);
                canonical.push(is_canonical);
                continue;
            }
            // value = k · 2^s
            let (k, s, is_canonical) = if field == 0 {
                if f.subnormals {
                    (man, 1 - f.bias - m_bits as i32, true)
                } else {
                    (0, 1 - f.bias, man == 0) // exponent field 0 holds only zero (§2.2)
                }
            } else {
                ((1 << m_bits) + man, field as i32 - f.bias - m_bits as i32, true)
            };
            let magnitude = BigInt::from(k) << (s + common::SCALE) as usize;
            if is_canonical && !negative {
                positive.push((magnitude.clone(), k % 2 == 0, s));
            }
            meanings.push(Meaning::Finite { negative, magnitude });
            canonical.push(is_canonical);
        }
        positive.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in positive.windows(2) {
            assert!(pair[0].0 < pair[1].0, "two canonical patterns with one value");
        }
        let (max, _, s_max) = positive.last().unwrap().clone();
        let beyond = max + (BigInt::one() << (s_max + common::SCALE) as usize);
        let has_infinity = f.specials == Specials::Ieee;
        Reference {
            meanings,
            canonical,
            magnitudes_f64: positive.iter().map(|(m, _, _)| to_f64(m)).collect(),
            k_even: positive.iter().map(|(_, even, _)| *even).collect(),
            magnitudes: positive.into_iter().map(|(m, _, _)| m).collect(),
            beyond,
            overflows_to_infinity: has_infinity && !f.saturate,
            has_infinity,
            has_negative_zero: f.specials != Specials::Fnuz,
        }
    }

    fn max(&self) -> f64 {
        *self.magnitudes_f64.last().unwrap()
    }

    fn value(&self, pattern: usize) -> f64 {
        match &self.meanings[pattern] {
            Meaning::Nan => f64::NAN,
            Meaning::Infinity { negative } => signed(*negative, f64::INFINITY),
            Meaning::Finite { negative, magnitude } => signed(*negative, to_f64(magnitude)),
        }
    }

    /// Where an exact input lies relative to the value set.
    fn locate(&self, x: f64) -> Position {
        if x.is_nan() {
            return Position::Nan;
        }
        let negative = x.is_sign_negative();
        if x.is_infinite() {
            return Position::Infinite { negative };
        }
        let a = exact(x.abs());
        let max = self.magnitudes.last().unwrap();
        if a >= self.beyond {
            return Position::Overflow { negative };
        }
        if &a > max {
            let gap = &self.beyond - max;
            return Position::Gap(Gap { negative, lower: self.magnitudes.len() - 1, beyond: true, offset: a - max, gap });
        }
        let i = self.magnitudes.partition_point(|m| *m <= a) - 1;
        if self.magnitudes[i] == a {
            return Position::Value { negative, index: i };
        }
        let gap = &self.magnitudes[i + 1] - &self.magnitudes[i];
        Position::Gap(Gap { negative, lower: i, beyond: false, offset: a - &self.magnitudes[i], gap })
    }

    /// The reference result of rounding the input at `position` with `mode`, drawing the
    /// random words `word(j)`.
    fn round(&self, position: &Position, mode: Rounding, word: impl Fn(u32) -> u32) -> f64 {
        match position {
            Position::Nan => f64::NAN,
            Position::Infinite { negative } => {
                signed(*negative, if self.has_infinity { f64::INFINITY } else { self.max() })
            }
            Position::Overflow { negative } => self.overflow(*negative, mode),
            Position::Value { negative, index } => self.signed_value(*negative, self.magnitudes_f64[*index]),
            Position::Gap(g) => {
                if g.rounds_away(mode, self.k_even[g.lower], word) {
                    if g.beyond {
                        self.overflow(g.negative, mode)
                    } else {
                        self.signed_value(g.negative, self.magnitudes_f64[g.lower + 1])
                    }
                } else {
                    self.signed_value(g.negative, self.magnitudes_f64[g.lower])
                }
            }
        }
    }

    /// A magnitude with the input's sign; a zero result keeps it unless there is no −0.
    fn signed_value(&self, negative: bool, magnitude: f64) -> f64 {
        signed(negative && (magnitude != 0.0 || self.has_negative_zero), magnitude)
    }

    /// §3.4: the result when the rounding with unbounded exponent exceeds max.
    fn overflow(&self, negative: bool, mode: Rounding) -> f64 {
        if !self.overflows_to_infinity {
            return signed(negative, self.max());
        }
        let to_infinity = match mode {
            Rounding::TowardZero => false,
            Rounding::Up => !negative,
            Rounding::Down => negative,
            Rounding::Nearest | Rounding::NearestAway => true,
            Rounding::Stochastic | Rounding::StochasticBits(_) | Rounding::StochasticUnbiased(_) => true,
        };
        signed(negative, if to_infinity { f64::INFINITY } else { self.max() })
    }
}

fn signed(negative: bool, magnitude: f64) -> f64 {
    if negative { -magnitude } else { magnitude }
}

enum Position {
    Nan,
    Infinite { negative: bool },
    /// At or past `beyond`: every mode's unbounded-exponent result exceeds max.
    Overflow { negative: bool },
    /// Exactly a value of the format.
    Value { negative: bool, index: usize },
    Gap(Gap),
}

/// A magnitude strictly between `magnitudes[lower]` and the next value (or `beyond`).
struct Gap {
    negative: bool,
    lower: usize,
    /// The upper neighbour is `beyond` (choosing it overflows).
    beyond: bool,
    /// Magnitude − lower neighbour, exact (> 0).
    offset: BigInt,
    /// Upper − lower neighbour, exact: a power of two.
    gap: BigInt,
}

impl Gap {
    /// log2 of the gap (in units of 2^-1074).
    fn gap_bits(&self) -> usize {
        let bits = self.gap.bits() as usize - 1;
        assert_eq!(BigInt::one() << bits, self.gap, "a gap between neighbours is not a power of two");
        bits
    }

    /// ⌊frac·2^r⌋ for frac = offset / gap.
    fn frac_top(&self, r: usize) -> BigInt {
        (&self.offset << r) >> self.gap_bits()
    }

    /// Whether the mode picks the neighbour farther from zero (§3.2), from the definitions.
    fn rounds_away(&self, mode: Rounding, lower_k_even: bool, word: impl Fn(u32) -> u32) -> bool {
        let twice = &self.offset * 2u32;
        match mode {
            // The closer neighbour; at a tie, the one whose k is even at the gap's spacing
            // (the lower one's parity decides: k and k + 1).
            Rounding::Nearest => twice > self.gap || (twice == self.gap && !lower_k_even),
            Rounding::NearestAway => twice >= self.gap,
            Rounding::TowardZero => false,
            // Up: the smallest value ≥ x, which is the one away from zero for x > 0.
            Rounding::Up => !self.negative,
            // Down: the largest value ≤ x, away from zero for x < 0.
            Rounding::Down => self.negative,
            Rounding::Stochastic => {
                // u < frac with u = 0.w0 w1 ...: compare the first n words, n enough to hold
                // every bit of frac; if they are equal, u ≥ frac.
                let tz = self.offset.trailing_zeros().unwrap() as usize;
                let frac_bits = self.gap_bits() - tz; // frac = (offset >> tz) / 2^frac_bits
                let n = frac_bits.div_ceil(32);
                let frac_words = (&self.offset >> tz) << (32 * n - frac_bits);
                let mut u = BigInt::zero();
                for j in 0..n {
                    u = (u << 32) + word(j as u32);
                }
                u < frac_words
            }
            Rounding::StochasticBits(r) => {
                let t = self.frac_top(r as usize);
                let random = BigInt::from(word(0) >> (32 - r));
                t + random >= BigInt::one() << r as usize
            }
            Rounding::StochasticUnbiased(r) => {
                // t = frac·2^r rounded to nearest, ties to even t.
                let scaled = &self.offset << r as usize;
                let mut t = &scaled >> self.gap_bits();
                let rest2 = (scaled - (&t << self.gap_bits())) * 2u32;
                if rest2 > self.gap || (rest2 == self.gap && (&t % 2u32).is_one()) {
                    t += 1u32;
                }
                let random = BigInt::from(word(0) >> (32 - r));
                t + random >= BigInt::one() << r as usize
            }
        }
    }
}

/// The f32 `d` steps away from `x` in value order (−0 and +0 are adjacent), if finite or ±∞.
fn f32_step(x: f32, d: i64) -> Option<f32> {
    let bits = x.to_bits();
    let key = if bits >> 31 == 1 { -((bits & 0x7FFF_FFFF) as i64) - 1 } else { bits as i64 };
    let key = key + d;
    let bits = if key < 0 { ((-(key + 1)) as u32) | 0x8000_0000 } else { u32::try_from(key).ok()? };
    let y = f32::from_bits(bits);
    (!y.is_nan()).then_some(y)
}

/// The inputs for a format: f64s for the exact path and the f32s among them for both paths.
fn inputs(r: &Reference) -> Vec<f64> {
    let mut signed_values: Vec<f64> = r.magnitudes_f64.iter().flat_map(|&m| [m, -m]).collect();
    signed_values.push(-0.0);
    let mut centres: Vec<f64> = signed_values.clone();
    let mut midpoints = Vec::new();
    for pair in r.magnitudes.windows(2) {
        midpoints.push(to_f64(&((&pair[0] + &pair[1]) >> 1usize)));
    }
    let max = r.magnitudes.last().unwrap();
    midpoints.push(to_f64(&((max + &r.beyond) >> 1usize)));
    let beyond = to_f64(&r.beyond);
    centres.extend([beyond, -beyond]);
    centres.extend(midpoints.iter().flat_map(|&m| [m, -m]));
    let mut all = Vec::new();
    for &c in &centres {
        all.push(c);
        let c32 = c as f32;
        if c32 as f64 == c {
            all.extend([-2, -1, 1, 2].iter().filter_map(|&d| f32_step(c32, d)).map(f64::from));
        }
    }
    // f64 neighbours of the midpoints: a sticky bit beyond any f32.
    for &m in &midpoints {
        for y in [m, -m] {
            all.extend([f64::from_bits(y.to_bits() + 1), f64::from_bits(y.to_bits() - 1)]);
        }
    }
    all.extend([f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f32::MAX as f64, f32::MIN as f64]);
    all.extend([1e-45f32, 1.5e-45, f32::MIN_POSITIVE, 1e-40].iter().flat_map(|&t| [t as f64, -t as f64]));
    all
}

fn pattern_check(name: &str, f: &FloatFormat, r: &Reference) -> Vec<String> {
    let mut failures = Vec::new();
    assert_eq!(r.meanings.len(), 1 << f.bits());
    for (pattern, got) in f.all_encodings().unwrap() {
        let p = pattern as usize;
        let want = r.value(p);
        if !same(got, want) {
            failures.push(format!("{name}: decode({pattern:#x}) = {got:e}, reference {want:e}"));
        }
        if f.is_canonical(pattern) != r.canonical[p] {
            failures.push(format!("{name}: is_canonical({pattern:#x}) = {}, expected {}", !r.canonical[p], r.canonical[p]));
        }
        if r.canonical[p] && !want.is_nan() {
            match f.encode(want) {
                Ok(bits) if bits == pattern => {}
                other => failures.push(format!("{name}: encode({want:e}) = {other:x?}, expected {pattern:#x}")),
            }
        }
    }
    let finite = r.meanings.iter().zip(&r.canonical).filter(|(m, c)| **c && matches!(m, Meaning::Finite { .. })).count();
    let finite_values = if r.has_negative_zero { finite - 1 } else { finite }; // ±0 counted once
    if f.finite_count() != finite_values as u64 {
        failures.push(format!("{name}: finite_count {} expected {finite_values}", f.finite_count()));
    }
    if f.max() != r.max() {
        failures.push(format!("{name}: max {} expected {}", f.max(), r.max()));
    }
    if f.min_positive() != r.magnitudes_f64[1] {
        failures.push(format!("{name}: min_positive {} expected {}", f.min_positive(), r.magnitudes_f64[1]));
    }
    failures
}

/// Both paths against the reference for every mode; returns the failures and the count of
/// (input, mode, path) results checked.
fn rounding_check(name: &str, f: &FloatFormat, r: &Reference, xs: &[f64]) -> (Vec<String>, usize) {
    let rng = RandomStream::new(0x5EED, 7);
    let positions: Vec<Position> = xs.iter().map(|&x| r.locate(x)).collect();
    let xs32: Vec<(usize, f32)> =
        xs.iter().enumerate().filter(|(_, &x)| x as f32 as f64 == x || x.is_nan()).map(|(i, &x)| (i, x as f32)).collect();
    let src: Vec<f32> = xs32.iter().map(|&(_, x)| x).collect();
    let mut dst = vec![0f32; src.len()];
    let mut failures = Vec::new();
    let mut checked = 0;
    for mode in DETERMINISTIC.iter().chain(&STOCHASTIC).copied() {
        let mut report = |path: &str, x: f64, got: f64, want: f64| {
            if failures.len() < 30 {
                failures.push(format!("{name} {mode} {path}: {x:e} ({:#018x}) -> {got:e}, reference {want:e}", x.to_bits()));
            }
        };
        // The exact path: input i draws at BASE_INDEX + i.
        for (i, (&x, position)) in xs.iter().zip(&positions).enumerate() {
            let index = BASE_INDEX + i as u64;
            let want = r.round(position, mode, |j| rng.word(index, j));
            let got = f.round(x, mode, rng.at(index));
            if !same(got, want) {
                report("exact", x, got, want);
            }
        }
        // The fast path over the f32 inputs: element j draws at BASE_INDEX + j.
        quantize_slice(f, mode, &rng, BASE_INDEX, &src, &mut dst);
        for (j, (&(i, x), &got)) in xs32.iter().zip(&dst).enumerate() {
            let index = BASE_INDEX + j as u64;
            let want = r.round(&positions[i], mode, |w| rng.word(index, w));
            if !same(got as f64, want) {
                report("fast", x as f64, got as f64, want);
            }
        }
        checked += xs.len() + xs32.len();
    }
    (failures, checked)
}

#[test]
fn every_pattern_decodes_to_the_reference_value() {
    let mut failures = Vec::new();
    for (name, f) in formats_under_test() {
        failures.extend(pattern_check(&name, &f, &Reference::new(&f)).into_iter().take(10));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_mode_rounds_like_the_reference_around_every_value() {
    let formats = formats_under_test();
    // Two threads: the formats split by alternate index (fp16, bf16 and dlfloat16 dominate).
    let results: Vec<(Vec<String>, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let formats = &formats;
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    let (mut checked, mut inputs_total) = (0, 0);
                    for (name, f) in formats.iter().skip(t).step_by(2) {
                        let r = Reference::new(f);
                        let xs = inputs(&r);
                        let (fails, n) = rounding_check(name, f, &r, &xs);
                        println!("{name:28} {:7} inputs, {n:9} results checked", xs.len());
                        failures.extend(fails);
                        checked += n;
                        inputs_total += xs.len();
                    }
                    (failures, checked, inputs_total)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failures: Vec<String> = results.iter().flat_map(|(f, _, _)| f.clone()).collect();
    let checked: usize = results.iter().map(|(_, n, _)| n).sum();
    println!("{checked} results checked in {} formats", formats.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Stochastic rounding whose decision lies past the first random word: inputs built so that
/// the first 32 bits of their fraction equal the element's first random word, so the second
/// word decides (both paths; the fast path must hand these to the exact one).
#[test]
fn exact_stochastic_rounding_reads_further_words_when_the_first_ties() {
    let rng = RandomStream::new(99, 1);
    let mut checked = 0;
    for (name, f) in formats_under_test() {
        let r = Reference::new(&f);
        let min_positive = r.magnitudes_f64[1];
        let exponent = min_positive.log2() as i32; // exact: a power of two
        // f32 inputs in the gap [0, min positive]: x = (4w + 1)·2^(e−34), frac = (4w + 1)/2^34,
        // whose first word is w and whose further bits are non-zero. Needs w < 2^22 (24 bits).
        let mut src = Vec::new();
        let mut fast_indices = Vec::new();
        for index in 0..1_000_000u64 {
            let w = rng.word(index, 0);
            if w < 1 << 22 && exponent - 34 >= -149 {
                let x = (4 * w as u64 + 1) as f64 * common::pow2(exponent - 34);
                assert_eq!(x as f32 as f64, x);
                src.resize(index as usize + 1, 0.0);
                src[index as usize] = x as f32;
                fast_indices.push(index as usize);
            }
        }
        let mut dst = vec![0f32; src.len()];
        quantize_slice(&f, Rounding::Stochastic, &rng, 0, &src, &mut dst);
        for &i in &fast_indices {
            let x = src[i] as f64;
            let want = r.round(&r.locate(x), Rounding::Stochastic, |j| rng.word(i as u64, j));
            let exact_path = f.round(x, Rounding::Stochastic, rng.at(i as u64));
            assert!(same(exact_path, want), "{name}: exact path {x:e} -> {exact_path:e}, reference {want:e}");
            assert!(same(dst[i] as f64, want), "{name}: fast path {x:e} -> {}, reference {want:e}", dst[i]);
            checked += 1;
        }
        // f64 inputs just above a value: frac = (2^10·w + 1)/2^42 with the first word w.
        for index in 0..64u64 {
            let w = rng.word(index, 0) as u64;
            let g = 1 + (index as usize % (r.magnitudes.len() - 2));
            let lower = &r.magnitudes[g];
            let gap = &r.magnitudes[g + 1] - lower;
            let x = to_f64(&(lower + ((&gap * ((w << 10) + 1)) >> 42usize)));
            let want = r.round(&r.locate(x), Rounding::Stochastic, |j| rng.word(index, j));
            let got = f.round(x, Rounding::Stochastic, rng.at(index));
            assert!(same(got, want), "{name}: exact path {x:e} -> {got:e}, reference {want:e}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

/// The reference agrees with itself on what the spec states outright (guards the reference).
#[test]
fn reference_sanity() {
    let e4m3 = Reference::new(Format::parse("e4m3").unwrap().as_float().unwrap());
    assert_eq!(e4m3.max(), 448.0);
    assert_eq!(e4m3.magnitudes.len(), 127); // 0 and 126 positive values
    let fp16 = Reference::new(Format::parse("fp16").unwrap().as_float().unwrap());
    assert_eq!(fp16.max(), 65504.0);
    let nearest = |r: &Reference, x: f64| r.round(&r.locate(x), Rounding::Nearest, |_| 0);
    assert_eq!(nearest(&fp16, 65519.0), 65504.0);
    assert_eq!(nearest(&fp16, 65520.0), f64::INFINITY);
    assert_eq!(nearest(&e4m3, 464.0), 448.0); // a tie, to the even 448
    assert_eq!(nearest(&e4m3, 1e9), 448.0);
    let m0 = Reference::new(Format::parse("fp<3,0>").unwrap().as_float().unwrap());
    assert_eq!(nearest(&m0, 1.5), 2.0); // M = 0: ties go up
    let nosub = Reference::new(Format::parse("fp<6,5,nosub>").unwrap().as_float().unwrap());
    let min = nosub.magnitudes_f64[1];
    assert_eq!(nearest(&nosub, min / 2.0), 0.0);
    assert_eq!(nearest(&nosub, -min / 2.0).to_bits(), (-0.0f64).to_bits());
    let fnuz = Reference::new(Format::parse("e4m3fnuz").unwrap().as_float().unwrap());
    assert_eq!(nearest(&fnuz, -1e-9).to_bits(), 0);
    let words = |w0: u32| move |j: u32| if j == 0 { w0 } else { 0 };
    // frac = 1/4 of fp16's spacing at 1 (2^-10): stochastic:2 rounds away iff w0 ≥ 3·2^30.
    let x = 1.0 + 0.25 * 2f64.powi(-10);
    let p = fp16.locate(x);
    assert_eq!(fp16.round(&p, Rounding::StochasticBits(2), words(3 << 30)), 1.0 + 2f64.powi(-10));
    assert_eq!(fp16.round(&p, Rounding::StochasticBits(2), words((3 << 30) - 1)), 1.0);
    assert_eq!(fp16.round(&p, Rounding::Stochastic, words((1 << 30) - 1)), 1.0 + 2f64.powi(-10));
    assert_eq!(fp16.round(&p, Rounding::Stochastic, words(1 << 30)), 1.0);
}

/// The E8M0 reference (spec/numerics.md §3.5): powers of two 2^-127 ..= 2^127; the gap
/// [2^e, 2^(e+1)] has k = 1, odd, so ties go up; zero, negative inputs and NaN give NaN;
/// magnitudes below 2^-127 give 2^-127 and above 2^127 give 2^127, in every mode.
fn e8m0_reference(x: f64, mode: Rounding, word: impl Fn(u32) -> u32) -> f64 {
    let (min, max) = (common::pow2(-127), common::pow2(127));
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() || x >= max {
        return max; // in [2^127, 2^128] either neighbour saturates to 2^127
    }
    if x <= min {
        return min;
    }
    let e = x.log2().floor() as i32;
    let e = if common::pow2(e) > x { e - 1 } else if common::pow2(e + 1) <= x { e + 1 } else { e };
    let lower = common::pow2(e);
    let gap = Gap { negative: false, lower: 0, beyond: false, offset: exact(x) - exact(lower), gap: exact(lower) };
    if gap.offset.is_zero() {
        return lower;
    }
    if gap.rounds_away(mode, false, word) { 2.0 * lower } else { lower }
}

#[test]
fn e8m0_rounds_like_the_reference_in_every_mode() {
    let mut xs: Vec<f32> = Vec::new();
    for e in -127..=127 {
        for centre in [common::pow2(e), 1.5 * common::pow2(e)] {
            let c = centre as f32;
            xs.push(c);
            xs.extend([-2, -1, 1, 2].iter().filter_map(|&d| f32_step(c, d)));
        }
    }
    xs.extend([0.0, -0.0, -1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, 1e-45, 1e-40, f32::MIN_POSITIVE]);
    let rng = RandomStream::new(8, 0);
    let format = Format::parse("e8m0").unwrap();
    let mut out = vec![0f32; xs.len()];
    let mut failures = Vec::new();
    for mode in DETERMINISTIC.iter().chain(&STOCHASTIC).copied() {
        format.quantize(&xs, &[xs.len()], mode, &rng, &mut out).unwrap();
        for (i, (&x, &fast)) in xs.iter().zip(&out).enumerate() {
            let want = e8m0_reference(x as f64, mode, |j| rng.word(i as u64, j));
            let got = round_e8m0(x as f64, mode, rng.at(i as u64));
            if !same(got, want) || !same(fast as f64, want) {
                failures.push(format!("e8m0 {mode}: {x:e} -> exact {got:e}, fast {fast:e}, reference {want:e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures[..failures.len().min(30)].join("\n"));
}

/// spec/numerics.md §2.1: the canonical NaN keeps its sign, so the negative quiet NaN pattern
/// is canonical and decodes to a negative NaN.
#[test]
fn negative_nan_patterns_keep_their_sign() {
    for (name, f) in formats_under_test() {
        let r = Reference::new(&f);
        for p in 0..r.meanings.len() {
            if r.meanings[p] == Meaning::Nan && r.canonical[p] && p >> (f.bits() - 1) == 1 {
                assert!(f.decode(p as u32).is_sign_negative(), "{name}: decode({p:#x}) lost its sign");
                assert!(f.is_canonical(p as u32), "{name}: {p:#x} is not canonical");
            }
        }
    }
}

#[test]
fn the_formats_cover_every_layout() {
    let formats = formats_under_test();
    for s in [Specials::Ieee, Specials::Fn, Specials::Fnuz, Specials::None] {
        assert!(formats.iter().any(|(_, f)| f.specials == s), "{s:?}");
    }
    assert!(formats.iter().any(|(_, f)| !f.subnormals));
    assert!(formats.iter().any(|(_, f)| f.saturate));
    assert!(formats.iter().any(|(_, f)| f.man_bits == 0));
    assert!(formats.iter().any(|(n, _)| n == "fp16") && formats.iter().any(|(n, _)| n == "bf16"));
}
