//! The REPL's experiments: `sum` (accumulating many values in a low-precision format,
//! sequentially or in chunks) and `sweep` (the error of formats over a range of values).
//!
//! Accumulation rounds the running sum to the format after every addition. The exact sum of
//! the running sum and the next value is first formed with round-to-odd at f64 precision
//! (TwoSum), which makes the format rounding of it correct for every deterministic mode (the
//! format has at most 24 significand bits, far fewer than f64's 53 − 2) and preserves the
//! fraction to at least 29 bits for the stochastic modes.
//!
//! Random bits: the data comes from `RandomStream::new(seed, 1)` (element i uses words 0 and
//! 1 at index i); the rounding of the addition of value i draws at index i of
//! `RandomStream::new(seed, 0)`, and the addition of chunk sum c (chunked accumulation) at
//! index N + c.

use super::command::MAX_POINTS;
use crate::cmd::CliError;
use crate::report::numbers::{self, NONE};
use crate::report::table::{Align, Table};
use crate::report::values::{has_element_encoding, quantize_values};
use qc_runtime::numerics::float::pow2;
use qc_runtime::numerics::{FloatFormat, Format, RandomStream, Rounding};
use std::fmt;

/// Where the values of `sum` come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, std_dev: f64 },
    Constant(f64),
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution::Uniform { low: 0.0, high: 1.0 }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = numbers::value;
        match *self {
            Distribution::Uniform { low, high } => write!(f, "uniform({}, {})", v(low), v(high)),
            Distribution::Normal { mean, std_dev } => write!(f, "normal({}, {})", v(mean), v(std_dev)),
            Distribution::Constant(c) => write!(f, "constant({})", v(c)),
        }
    }
}

/// A uniform draw in [0, 1) on a grid of 2^-24.
fn unit(word: u32) -> f64 {
    (word >> 8) as f64 * pow2(-24)
}

impl Distribution {
    /// Parses `uniform(a, b)`, `normal(mean, std)` or `constant(v)`.
    pub fn parse(text: &str) -> Result<Distribution, CliError> {
        let usage = || CliError::new(format!("unknown distribution `{text}` (one of uniform(a, b), normal(mean, std), constant(v))"));
        let (name, rest) = text.split_once('(').ok_or_else(usage)?;
        let args = rest.strip_suffix(')').ok_or_else(usage)?;
        let args = args.split(',').map(numbers::parse_value).collect::<Result<Vec<_>, _>>()?;
        if args.iter().any(|a| !a.is_finite() || a.abs() > f32::MAX as f64) {
            return Err(CliError::new(format!("the parameters of `{text}` must be finite float32 numbers")));
        }
        let d = match (name.trim(), args.as_slice()) {
            ("uniform", &[low, high]) if low <= high => Distribution::Uniform { low, high },
            ("uniform", &[_, _]) => return Err(CliError::new("uniform(a, b) needs a ≤ b")),
            ("normal", &[mean, std_dev]) if std_dev >= 0.0 => Distribution::Normal { mean, std_dev },
            ("normal", &[_, _]) => return Err(CliError::new("normal(mean, std) needs std ≥ 0")),
            ("constant", &[c]) => Distribution::Constant(c),
            _ => return Err(usage()),
        };
        Ok(d)
    }

    /// Value `i`, a float32.
    fn sample(&self, rng: &RandomStream, i: u64) -> f32 {
        let x = match *self {
            Distribution::Uniform { low, high } => low + (high - low) * unit(rng.word(i, 0)),
            Distribution::Normal { mean, std_dev } => {
                // Box–Muller with u1 in (0, 1].
                let u1 = unit(rng.word(i, 0)) + pow2(-24);
                let u2 = unit(rng.word(i, 1));
                mean + std_dev * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            }
            Distribution::Constant(c) => c,
        };
        // Parameters within float32's range keep the samples finite, up to rounding at the edge.
        (x as f32).clamp(f32::MIN, f32::MAX)
    }
}

/// The exact sum of `values`, rounded once to f64 (Shewchuk's algorithm, as Python's `fsum`).
fn exact_sum(values: &[f32]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &v in values {
        let mut x = v as f64;
        let mut kept = 0;
        for i in 0..partials.len() {
            let mut y = partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    // Add the partials from the largest down, correcting the last rounding for half-way cases.
    let Some(mut hi) = partials.pop() else {
        return 0.0;
    };
    let mut lo = 0.0;
    while let Some(y) = partials.pop() {
        let x = hi;
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    if let Some(&next) = partials.last() {
        if (lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
    }
    hi
}

/// `a + b` rounded to odd at f64 precision: exact when representable, otherwise the one of
/// the two neighbouring f64 values whose last significand bit is 1.
fn sum_to_odd(a: f64, b: f64) -> f64 {
    let s = a + b;
    if !s.is_finite() || s.to_bits() & 1 == 1 {
        return s;
    }
    let b_virtual = s - a;
    let err = (a - (s - b_virtual)) + (b - b_virtual);
    if err == 0.0 {
        return s;
    }
    // s ≠ 0 here (a sum that rounds to zero is exactly zero); step toward the exact sum.
    let away_from_zero = (err > 0.0) == (s > 0.0);
    f64::from_bits(if away_from_zero { s.to_bits() + 1 } else { s.to_bits() - 1 })
}

/// Adds `values` into a running sum rounded to `f` after every addition; addition `j` draws
/// its random bits at index `first_index + j`.
fn accumulate(f: &FloatFormat, values: impl Iterator<Item = f64>, rounding: Rounding, rng: &RandomStream, first_index: u64) -> f64 {
    let mut sum = 0.0;
    for (x, i) in values.zip(first_index..) {
        sum = f.round(sum_to_odd(sum, x), rounding, rng.at(i));
    }
    sum
}

/// What `sum` does.
pub struct SumExperiment {
    pub count: usize,
    pub distribution: Distribution,
    pub format: Format,
    pub rounding: Rounding,
    pub chunk: Option<usize>,
    pub seed: u64,
}

impl SumExperiment {
    /// The exact sum and the sums the experiment compares with it, with their labels.
    fn sums(&self) -> Result<(f64, Vec<(String, f64)>), CliError> {
        let Some(f) = self.format.as_float() else {
            return Err(CliError::new(format!(
                "`sum` accumulates in an element-wise float format (e.g. fp16, bf16, fp<6,5>), not `{}`",
                self.format
            )));
        };
        let data_rng = RandomStream::new(self.seed, 1);
        let values: Vec<f32> = (0..self.count as u64).map(|i| self.distribution.sample(&data_rng, i)).collect();
        let exact = exact_sum(&values);
        let fp32 = values.iter().fold(0f32, |s, &x| s + x) as f64;

        let rng = RandomStream::new(self.seed, 0);
        let sequential = accumulate(f, values.iter().map(|&x| x as f64), self.rounding, &rng, 0);
        let mut sums = vec![
            ("float32, sequential".to_string(), fp32),
            (format!("{}, sequential, {}", self.format, self.rounding), sequential),
        ];
        if let Some(c) = self.chunk {
            let chunk_sums: Vec<f64> = values
                .chunks(c)
                .zip((0u64..).step_by(c))
                .map(|(chunk, first)| accumulate(f, chunk.iter().map(|&x| x as f64), self.rounding, &rng, first))
                .collect();
            let chunked = accumulate(f, chunk_sums.into_iter(), self.rounding, &rng, self.count as u64);
            sums.push((format!("{}, chunks of {c}, {}", self.format, self.rounding), chunked));
        }
        Ok((exact, sums))
    }

    /// Runs the experiment: a table of the exact, float32 and format sums with their errors.
    pub fn run(&self) -> Result<String, CliError> {
        let (exact, sums) = self.sums()?;
        let mut table = Table::new(&[("sum", Align::Left), ("value", Align::Right), ("abs error", Align::Right), ("rel error", Align::Right)]);
        table.row(vec!["exact (rounded to f64)".into(), numbers::value(exact), NONE.into(), NONE.into()]);
        for (label, v) in sums {
            let (abs, rel) = numbers::errors(exact, v);
            table.row(vec![label, numbers::value(v), numbers::error(abs), numbers::error(rel)]);
        }
        let mut out = format!("sum of {} values from {}, seed {}\n", self.count, self.distribution, self.seed);
        out.push_str(&table.render());
        Ok(out)
    }
}

/// `n` evenly spaced values from `a` to `b` inclusive, as NumPy's `linspace`: `a + i·step`
/// with the last value exactly `b`.
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f64;
    (0..n).map(|i| if i == n - 1 { b } else { a + i as f64 * step }).collect()
}

/// What `sweep` does.
pub struct Sweep {
    pub formats: Vec<Format>,
    pub from: f64,
    pub to: f64,
    pub steps: usize,
    pub log: bool,
    pub rounding: Rounding,
    pub seed: u64,
}

impl Sweep {
    fn points(&self) -> Result<Vec<f64>, CliError> {
        let (a, b) = (self.from, self.to);
        if !a.is_finite() || !b.is_finite() {
            return Err(CliError::new("`sweep` needs finite bounds"));
        }
        if self.log && (a == 0.0 || b == 0.0 || (a < 0.0) != (b < 0.0)) {
            return Err(CliError::new("a `log` sweep needs bounds of the same sign, neither zero"));
        }
        debug_assert!(self.steps <= MAX_POINTS);
        if self.log {
            // Evenly spaced exponents, ends exact.
            let exponents = linspace(0.0, 1.0, self.steps);
            Ok(exponents.iter().map(|&t| if t == 1.0 { b } else { a * (b / a).powf(t) }).collect())
        } else {
            Ok(linspace(a, b, self.steps))
        }
    }

    /// A table with one row per format: the largest and mean relative errors over the points,
    /// how many points went to zero and how many lay beyond the largest value.
    pub fn run(&self) -> Result<String, CliError> {
        let points = self.points()?;
        let mut table = Table::new(&[
            ("format", Align::Left),
            ("bits", Align::Right),
            ("max rel error", Align::Right),
            ("at", Align::Right),
            ("mean rel error", Align::Right),
            ("to zero", Align::Right),
            ("beyond max", Align::Right),
        ]);
        for format in &self.formats {
            let results = quantize_values(format, &points, self.rounding, self.seed)?;
            let mut max = (0.0f64, points[0]);
            let (mut total, mut nonzero, mut to_zero) = (0.0, 0usize, 0usize);
            for (&x, &q) in points.iter().zip(&results) {
                if x == 0.0 {
                    continue;
                }
                let (_, rel) = numbers::errors(x, q);
                if rel > max.0 || rel.is_nan() && !max.0.is_nan() {
                    max = (rel, x);
                }
                total += rel;
                nonzero += 1;
                to_zero += (q == 0.0) as usize;
            }
            let mean = if nonzero == 0 { f64::NAN } else { total / nonzero as f64 };
            let beyond_max = match format.as_float() {
                Some(f) => points.iter().filter(|x| x.abs() > f.max()).count().to_string(),
                None => NONE.into(),
            };
            table.row(vec![
                format.to_string(),
                numbers::value(format.bits_per_element()),
                numbers::error(max.0),
                if nonzero == 0 { NONE.into() } else { numbers::value(max.1) },
                numbers::error(mean),
                to_zero.to_string(),
                beyond_max,
            ]);
        }
        let spacing = if self.log { "geometric" } else { "linear" };
        let mut out = format!(
            "sweep of {} points from {} to {} ({spacing}), rounding {}{}\n",
            points.len(),
            numbers::value(self.from),
            numbers::value(self.to),
            self.rounding,
            if self.rounding.is_stochastic() { format!(", seed {}", self.seed) } else { String::new() }
        );
        out.push_str(&table.render());
        if self.formats.iter().any(|f| !has_element_encoding(f)) {
            out.push_str("Formats with shared scales quantize the points as one 1-D tensor.\n");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sum_is_exact_where_naive_summation_is_not() {
        let values = [1e30f32, 1.0, -1e30, 1e-30];
        assert_eq!(exact_sum(&values), 1.0 + 1e-30f32 as f64);
        assert_eq!(exact_sum(&[]), 0.0);
        assert_eq!(exact_sum(&[0.1, 0.2, 0.3]), 0.1f32 as f64 + 0.2f32 as f64 + 0.3f32 as f64);
    }

    #[test]
    fn sum_to_odd_marks_inexact_sums() {
        assert_eq!(sum_to_odd(1.0, 2.0), 3.0);
        let tiny = pow2(-80);
        let s = sum_to_odd(1.0, tiny);
        assert!(s > 1.0 && s.to_bits() & 1 == 1);
        let s = sum_to_odd(1.0, -tiny);
        assert!(s < 1.0 && s.to_bits() & 1 == 1);
        // A tie of the target format is no longer a tie after round-to-odd: 1 + 2^-11 + 2^-80
        // rounds up in fp16 although 1 + 2^-11 alone would round to even (down).
        let fp16 = FloatFormat::ieee(5, 10);
        let rng = RandomStream::new(0, 0);
        let r = fp16.round(sum_to_odd(1.0 + pow2(-11), tiny), Rounding::Nearest, rng.at(0));
        assert_eq!(r, 1.0 + pow2(-10));
    }

    #[test]
    fn fp16_stagnates_where_chunking_and_stochastic_rounding_do_not() {
        let run = |chunk, rounding| {
            let experiment = SumExperiment {
                count: 16384,
                distribution: Distribution::default(),
                format: Format::parse("fp16").unwrap(),
                rounding,
                chunk,
                seed: 0,
            };
            let (exact, sums) = experiment.sums().unwrap();
            (exact, sums.iter().map(|(_, v)| *v).collect::<Vec<_>>())
        };
        // Uniform(0, 1) values sum to about 8192; from 2048 on, fp16's spacing is 2 and every
        // value below 1 is lost.
        let (exact, sums) = run(Some(32), Rounding::Nearest);
        assert!((exact - 8192.0).abs() < 100.0, "{exact}");
        assert!((sums[0] - exact).abs() < 1.0, "float32 {}", sums[0]);
        assert_eq!(sums[1], 2048.0);
        assert!((sums[2] - exact).abs() / exact < 1e-2, "chunked {}", sums[2]);
        let (_, sums) = run(None, Rounding::StochasticBits(9));
        assert!((sums[1] - exact).abs() / exact < 2e-2, "stochastic {}", sums[1]);
    }

    #[test]
    fn linspace_ends_exactly() {
        assert_eq!(linspace(0.1, 1.0, 10)[8], 0.9);
        assert_eq!(linspace(0.1, 1.0, 10)[9], 1.0);
        assert_eq!(linspace(2.0, 3.0, 1), [2.0]);
    }

    #[test]
    fn distributions_parse_and_stay_in_range() {
        let rng = RandomStream::new(5, 1);
        let d = Distribution::parse("uniform(-2, 3)").unwrap();
        assert!((0..1000).map(|i| d.sample(&rng, i)).all(|x| (-2.0..3.0).contains(&x)));
        let normal = Distribution::parse("normal(2, 3)").unwrap();
        let xs: Vec<f64> = (0..20000).map(|i| normal.sample(&rng, i) as f64).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let std_dev = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((mean - 2.0).abs() < 0.1 && (std_dev - 3.0).abs() < 0.1, "{mean} {std_dev}");
        assert!(Distribution::parse("normal(0, -1)").is_err());
        assert!(Distribution::parse("poisson(3)").is_err());
        assert!(Distribution::parse("uniform(0, 1e39)").is_err());
        assert_eq!(Distribution::parse("constant(0.1)").unwrap().to_string(), "constant(0.1)");
    }
}
