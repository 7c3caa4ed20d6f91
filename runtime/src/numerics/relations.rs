//! Relations between formats as sets of values: [`Format::contains`] (is `x` a value of the
//! format?) and [`represents_all_of`] (is every value of one format a value of another?).
//!
//! The compiler's rewrite rules rest on these: a quantization to `F` of a value that `F`
//! already holds returns it unchanged in every rounding mode, so `q_F(q_G(x)) = q_G(x)` when
//! `represents_all_of(F, G)`. The answer is decided from the format descriptors (exponent
//! range, mantissa width, subnormals, specials), never from a sample of values; the tests
//! enumerate every value of every small format to check that the two agree.
//!
//! Only element-wise formats (floats, E8M0, fixed point, unscaled integers) have a fixed set of
//! values. A scaled, block or codebook format's values depend on the tensor's data (its scales),
//! so questions about them have no data-independent answer, with one exception: every value
//! any format produces is a float32 value (spec/numerics.md §1), so `fp32` holds them all.

use super::fixed::fixed_range;
use super::float::{exponent_of, pow2, FloatFormat, Specials};
use super::format::{FixedFormat, Format};
use super::scaled::int_range;

/// The value set of an element-wise format as binades with a spacing each:
/// the non-zero magnitudes in the binade `[2^b, 2^(b+1))` are the multiples of
/// `2^spacing(b)` there, for every `b` from `lowest` up, below the largest magnitude of
/// the value's sign (`positive_max`, `negative_max`).
#[derive(Clone, Copy, Debug)]
struct ValueSet {
    nan: bool,
    infinities: bool,
    positive_zero: bool,
    negative_zero: bool,
    /// Largest finite positive value (0 when there is none).
    positive_max: f64,
    /// Magnitude of the most negative finite value (0 when there are no negative values).
    negative_max: f64,
    /// The lowest binade holding a non-zero value.
    lowest: i32,
    grid: Grid,
}

/// How the spacing of values depends on the binade.
#[derive(Clone, Copy, Debug)]
enum Grid {
    /// A float with `man_bits` and smallest normal exponent `emin`: spacing `b − M` in the
    /// normal range and `emin − M` below it (subnormals).
    Float { man_bits: i32, emin: i32 },
    /// A uniform grid of spacing `2^exp` (fixed point, integers).
    Uniform { exp: i32 },
    /// Powers of two only (E8M0): the binade `b` holds just `2^b`.
    PowersOfTwo,
}

impl Grid {
    fn spacing(self, binade: i32) -> i32 {
        match self {
            Grid::Float { man_bits, emin } => binade.max(emin) - man_bits,
            Grid::Uniform { exp } => exp,
            Grid::PowersOfTwo => binade,
        }
    }
}

impl ValueSet {
    fn of_float(f: &FloatFormat) -> ValueSet {
        let max = f.max();
        ValueSet {
            nan: f.has_nan(),
            infinities: f.has_inf(),
            positive_zero: true,
            negative_zero: f.has_negative_zero(),
            positive_max: max,
            negative_max: max,
            lowest: f.min_positive_exponent(),
            grid: Grid::Float { man_bits: f.man_bits as i32, emin: f.emin() },
        }
    }

    fn of_grid(lo: f64, hi: f64, frac_bits: i32) -> ValueSet {
        ValueSet {
            nan: false,
            infinities: false,
            positive_zero: true,
            negative_zero: false,
            positive_max: hi,
            negative_max: -lo,
            lowest: -frac_bits,
            grid: Grid::Uniform { exp: -frac_bits },
        }
    }

    fn of_fixed(f: &FixedFormat) -> ValueSet {
        let (lo, hi) = fixed_range(f);
        ValueSet::of_grid(lo, hi, f.frac_bits as i32)
    }

    /// The value set of an element-wise format; `None` for data-dependent ones.
    fn of(format: &Format) -> Option<ValueSet> {
        match format {
            Format::Float { format, .. } => Some(ValueSet::of_float(format)),
            Format::Fixed(f) => Some(ValueSet::of_fixed(f)),
            Format::Int(i) if i.unscaled => {
                let (lo, hi) = int_range(i);
                Some(ValueSet::of_grid(lo as f64, hi as f64, 0))
            }
            Format::E8m0 => Some(ValueSet {
                nan: true,
                infinities: false,
                positive_zero: false,
                negative_zero: false,
                positive_max: pow2(127),
                negative_max: 0.0,
                lowest: -127,
                grid: Grid::PowersOfTwo,
            }),
            _ => None,
        }
    }

    /// The highest binade holding a value of either sign (`None` when only zeros).
    fn highest(&self) -> Option<i32> {
        let m = self.positive_max.max(self.negative_max);
        (m > 0.0).then(|| exponent_of(m))
    }

    /// Whether every value of `coarser` is a value of `self`: flags imply flags, the extremes
    /// nest, and in every binade where `coarser` has values `self` has that binade with a
    /// spacing at most as wide (then each multiple of the coarser spacing is a multiple of
    /// the finer one, and below the finer format's extreme it is one of its values).
    fn includes(&self, coarser: &ValueSet) -> bool {
        let implies = |a: bool, b: bool| !a || b;
        if !(implies(coarser.nan, self.nan)
            && implies(coarser.infinities, self.infinities)
            && implies(coarser.positive_zero, self.positive_zero)
            && implies(coarser.negative_zero, self.negative_zero)
            && coarser.positive_max <= self.positive_max
            && coarser.negative_max <= self.negative_max)
        {
            return false;
        }
        let Some(top) = coarser.highest() else { return true };
        if coarser.lowest < self.lowest {
            return false;
        }
        (coarser.lowest..=top).all(|b| self.grid.spacing(b) <= coarser.needed_spacing(b))
    }

    /// The spacing a format must have in binade `b` to hold this format's values there:
    /// this format's own spacing, or `b` when the binade holds only `2^b` (the bottom of a
    /// top binade cut short, as `-2^(I-1)` of `fixed<I,F>` or the top of `fp<E,1,fn>`).
    fn needed_spacing(&self, b: i32) -> i32 {
        let own = self.grid.spacing(b);
        let largest = (pow2(b + 1) - pow2(own)).min(self.positive_max.max(self.negative_max));
        if largest == pow2(b) { b } else { own }
    }
}

impl Format {
    /// Whether `x` is exactly a value of this format, specials included: `-0.0` only where
    /// the format has a negative zero, `±∞` only where it has infinities, NaN only where it
    /// has a NaN encoding.
    ///
    /// Decided for element-wise formats (floats, E8M0, fixed point, unscaled integers). A
    /// scaled, block or codebook format's values depend on the data it quantizes, so for those
    /// this returns `false` for every `x` (no value is a value for every possible tensor).
    pub fn contains(&self, x: f64) -> bool {
        match self {
            Format::Float { format, .. } => float_contains(format, x),
            Format::E8m0 => x.is_nan() || (x > 0.0 && x.is_finite() && is_power_of_two(x) && (-127..=127).contains(&exponent_of(x))),
            Format::Fixed(f) => {
                let (lo, hi) = fixed_range(f);
                grid_contains(x, lo, hi, f.frac_bits as i32)
            }
            Format::Int(i) if i.unscaled => {
                let (lo, hi) = int_range(i);
                grid_contains(x, lo as f64, hi as f64, 0)
            }
            _ => false,
        }
    }
}

/// `x` is `+0` or a multiple of `2^-frac_bits` in `[lo, hi]` (grids have no `-0`).
fn grid_contains(x: f64, lo: f64, hi: f64, frac_bits: i32) -> bool {
    if x.is_nan() || !(lo..=hi).contains(&x) || (x == 0.0 && x.is_sign_negative()) {
        return false;
    }
    (x * pow2(frac_bits)).fract() == 0.0
}

fn is_power_of_two(x: f64) -> bool {
    x == pow2(exponent_of(x))
}

/// Membership in a float format, computed from its fields: the binade of `x`, the spacing
/// there, and the extremes.
fn float_contains(f: &FloatFormat, x: f64) -> bool {
    if x.is_nan() {
        return f.has_nan();
    }
    if x.is_infinite() {
        return f.has_inf();
    }
    if x == 0.0 {
        return !x.is_sign_negative() || f.has_negative_zero();
    }
    let a = x.abs();
    if a > f.max() {
        return false;
    }
    let e = exponent_of(a);
    let spacing = if e >= f.emin() {
        e - f.man_bits as i32
    } else if f.subnormals {
        f.emin() - f.man_bits as i32
    } else {
        return false;
    };
    // a / 2^spacing is exact (a power-of-two scaling of a value far inside f64's range).
    (a * pow2(-spacing)).fract() == 0.0
}

/// Whether every value of `coarser` (specials, signed zeros and overflow results included)
/// is a value of `finer`, decided from the two descriptors.
///
/// - `Some(true)`: provably every value is representable, so quantizing any value of
///   `coarser` to `finer` returns it unchanged in every rounding mode.
/// - `Some(false)`: some value of `coarser` is not a value of `finer`.
/// - `None`: `coarser` or `finer` is a scaled, block or codebook format whose values depend
///   on the data — except that `finer = fp32` (IEEE binary32 exactly) holds every value of
///   every format, since all formats produce float32 values.
///
/// Saturation (`sat`) changes how a format rounds, not its values: a saturating IEEE format
/// still holds ±∞ (an infinite input stays infinite), so it is treated like the plain one.
pub fn represents_all_of(finer: &Format, coarser: &Format) -> Option<bool> {
    if finer.as_float().is_some_and(is_binary32) {
        return Some(true);
    }
    let fine = ValueSet::of(finer)?;
    let coarse = ValueSet::of(coarser)?;
    Some(fine.includes(&coarse))
}

/// IEEE binary32 as a value set: 8 exponent bits, 23 mantissa bits, bias 127, subnormals,
/// infinities and NaN (saturation does not matter for values).
fn is_binary32(f: &FloatFormat) -> bool {
    f.exp_bits == 8 && f.man_bits == 23 && f.bias == 127 && f.subnormals && f.specials == Specials::Ieee
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(text: &str) -> Format {
        Format::parse(text).unwrap()
    }

    #[test]
    fn membership_of_named_formats() {
        let e4m3 = fmt("e4m3");
        assert!(e4m3.contains(448.0) && !e4m3.contains(464.0) && !e4m3.contains(f64::INFINITY));
        assert!(e4m3.contains(-0.0) && e4m3.contains(f64::NAN) && e4m3.contains(2f64.powi(-9)));
        assert!(!e4m3.contains(2f64.powi(-10)) && !e4m3.contains(1.0625));
        let fnuz = fmt("e4m3fnuz");
        assert!(!fnuz.contains(-0.0) && fnuz.contains(0.0) && fnuz.contains(240.0));
        let fixed = fmt("fixed<4,2>");
        assert!(fixed.contains(-8.0) && fixed.contains(7.75) && !fixed.contains(8.0) && !fixed.contains(-0.0));
        assert!(!fixed.contains(0.125) && !fixed.contains(f64::NAN));
        assert!(fmt("uint<4,noscale>").contains(15.0) && !fmt("uint<4,noscale>").contains(-1.0));
        assert!(fmt("e8m0").contains(2f64.powi(-127)) && !fmt("e8m0").contains(0.0) && !fmt("e8m0").contains(3.0));
        assert!(!fmt("int<8>").contains(0.0) && !fmt("mxfp4").contains(1.0));
    }

    #[test]
    fn descriptor_answers_for_named_formats() {
        let yes = [("fp32", "bf16"), ("fp32", "fp16"), ("fp16", "e5m2"), ("bf16", "e4m3"), ("fp16", "e4m3"), ("e4m3", "fp4_e2m1"), ("fp32", "mxfp4"), ("fp32", "int<8>"), ("fp16", "fixed<4,4>")];
        for (fine, coarse) in yes {
            assert_eq!(represents_all_of(&fmt(fine), &fmt(coarse)), Some(true), "{fine} ⊇ {coarse}");
        }
        // bf16 lacks fp16's precision, fp16 lacks bf16's range, e4m3 has no infinity for
        // e5m2's, a fixed-point grid has no -0, e4m3fnuz no -0.
        let no = [("bf16", "fp16"), ("fp16", "bf16"), ("e4m3", "e5m2"), ("fixed<8,8>", "fp4_e2m1"), ("e4m3fnuz", "fp4_e2m1"), ("fp16", "e8m0")];
        for (fine, coarse) in no {
            assert_eq!(represents_all_of(&fmt(fine), &fmt(coarse)), Some(false), "{fine} ⊉ {coarse}");
        }
        assert_eq!(represents_all_of(&fmt("fp16"), &fmt("int<8>")), None);
        assert_eq!(represents_all_of(&fmt("mxfp8_e4m3"), &fmt("fp4_e2m1")), None);
    }
}
