//! Exact values as unevaluated sums of two `f64`s, and the exact position of such a value
//! inside a rounding gap.
//!
//! Every operand of a kernel op is a value of an element-wise format (an `f32`) or the exact
//! product of two of them (an `f64`: 48 significant bits at most). Their sums, differences and
//! products are exactly `hi + lo` for two `f64`s (TwoSum, TwoProduct with a fused
//! multiply-add), which [`Exact`] holds; rounding it once to a format is then exact in every
//! mode, the stochastic ones included, because [`PairFraction`] gives every bit of the
//! position inside the gap.
//!
//! Quotients and square roots are not finite sums: for them [`Exact::quotient`] and
//! [`Exact::square_root`] build a stand-in with the same rounding behaviour (see there).

use crate::numerics::rounding::Fraction;
use std::cmp::Ordering;

/// The exact real number `hi + lo`, normalised so that `hi` is `lo + hi` rounded to nearest
/// (`|lo| ≤ ulp(hi)/2`). A non-finite `hi` (±∞, NaN) has `lo = 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exact {
    pub hi: f64,
    pub lo: f64,
}

/// `(s, e)` with `s = RN(a + b)` and `s + e = a + b` exactly (Knuth's TwoSum; exact for any
/// finite `a`, `b` whose sum does not overflow).
pub fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let b_virtual = s - a;
    let a_virtual = s - b_virtual;
    (s, (a - a_virtual) + (b - b_virtual))
}

impl Exact {
    /// An `f64` that is itself the exact value.
    pub fn from_f64(x: f64) -> Exact {
        Exact { hi: x, lo: 0.0 }
    }

    /// `a + b` exactly.
    pub fn sum(a: f64, b: f64) -> Exact {
        let (hi, lo) = two_sum(a, b);
        if hi.is_finite() {
            Exact { hi, lo }
        } else {
            Exact::from_f64(hi)
        }
    }

    /// `a · b` exactly, when the low part of the product does not underflow (true for every
    /// product of kernel operands: their magnitudes are at least 2^-298).
    pub fn product(a: f64, b: f64) -> Exact {
        let hi = a * b;
        if !hi.is_finite() || hi == 0.0 {
            return Exact::from_f64(hi);
        }
        Exact {
            hi,
            lo: a.mul_add(b, -hi),
        }
    }

    /// `acc + a·b` exactly, for `a·b` exact in `f64` (a product of two `f32` values).
    /// Returns `None` when `a·b` is not an `f64`.
    pub fn sum_with_product(acc: f64, a: f64, b: f64) -> Option<Exact> {
        let p = Exact::product(a, b);
        (p.lo == 0.0).then(|| Exact::sum(acc, p.hi))
    }

    /// A stand-in for `a / b` that every rounding to a format of at most `53 − 2 − R`
    /// significant bits treats like the exact quotient, for `R` random bits.
    ///
    /// `q = RN(a/b)` and the sign of the exact remainder `a − q·b` (an `f64`, computed with
    /// one fused multiply-add) locate the quotient strictly between `q` and its neighbour on
    /// that side, and strictly nearer to `q` (a quotient of two `f64`s on a midpoint would be
    /// representable). The stand-in is `q` plus a quarter of the gap to that neighbour: the
    /// same open interval between consecutive `f64`s, so every decision that looks only at
    /// the first 52 bits after the leading one — the deterministic modes with any format of
    /// `f32` precision, `stochastic:R` and `stochastic-unbiased:R` while `p + R + 1 ≤ 52` —
    /// is the exact quotient's. Exact `stochastic` compares the draw with the stand-in's
    /// fraction, which differs from the quotient's by less than `2^(p−53)`.
    pub fn quotient(a: f64, b: f64) -> Exact {
        let q = a / b;
        if !q.is_finite() || q == 0.0 {
            return Exact::from_f64(q);
        }
        let remainder = (-q).mul_add(b, a);
        Exact::beside(q, if b < 0.0 { -remainder } else { remainder })
    }

    /// A stand-in for `√x` with the same rounding behaviour (as [`Exact::quotient`]):
    /// `q = RN(√x)` and the sign of `x − q²` (exact by a fused multiply-add).
    pub fn square_root(x: f64) -> Exact {
        let q = x.sqrt();
        if !q.is_finite() || q == 0.0 {
            return Exact::from_f64(q);
        }
        Exact::beside(q, (-q).mul_add(q, x))
    }

    /// `q` moved a quarter of the way toward its neighbour on the side `direction` points to
    /// (`q` itself when `direction` is zero).
    fn beside(q: f64, direction: f64) -> Exact {
        let neighbour = match direction.partial_cmp(&0.0) {
            Some(Ordering::Greater) => q.next_up(),
            Some(Ordering::Less) => q.next_down(),
            _ => return Exact::from_f64(q),
        };
        // The gap between adjacent f64s is a power of two: a quarter of it is exact.
        Exact {
            hi: q,
            lo: (neighbour - q) * 0.25,
        }
    }

    pub fn is_nan(&self) -> bool {
        self.hi.is_nan()
    }
}

/// `⌊x⌋` of the exact value `hi + lo` (normalised), and the rest `hi + lo − ⌊x⌋ ∈ [0, 1)`.
///
/// `hi` and `lo` must be small enough that the integer part is exact in `f64` (below 2^53).
fn split_integer(hi: f64, lo: f64) -> (f64, PairFraction) {
    let mut whole = hi.floor();
    if whole == hi && lo < 0.0 {
        whole -= 1.0;
    }
    // hi − whole is exact (hi and whole share the binade or whole is smaller); the sum with
    // lo is renormalised so that the fraction's invariant holds again.
    let (f1, f2) = two_sum(hi - whole, lo);
    (whole, PairFraction { f1, f2 })
}

/// `(k, frac)` with `|x| = (k + frac)·2^s` for the exact magnitude `a + l` (`a > 0`,
/// `|l| ≤ ulp(a)/2`), when `k < 2^53`.
pub(crate) fn grid_position(a: f64, l: f64, s: i32) -> (f64, PairFraction) {
    let scale = crate::numerics::float::pow2(-s);
    split_integer(a * scale, l * scale)
}

/// An exact fraction `f1 + f2 ∈ [0, 1)`, with `f1` its nearest `f64` (it may be 1 when the
/// fraction is just below 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairFraction {
    f1: f64,
    f2: f64,
}

impl PairFraction {
    /// `⌊frac·2^r⌋` and the fraction left below those `r` bits, for `r ≤ 32`.
    fn shifted(&self, r: u32) -> (u64, PairFraction) {
        let scale = (1u64 << r) as f64;
        let (whole, rest) = split_integer(self.f1 * scale, self.f2 * scale);
        (whole as u64, rest)
    }

    /// The fraction left below the first `p` bits.
    fn below(&self, mut p: u32) -> PairFraction {
        let mut rest = *self;
        while p > 0 {
            let step = p.min(32);
            rest = rest.shifted(step).1;
            p -= step;
        }
        rest
    }
}

impl Fraction for PairFraction {
    fn is_zero(&self) -> bool {
        self.f1 == 0.0 && self.f2 == 0.0
    }
    fn cmp_half(&self) -> Ordering {
        // f1 is the nearest f64 to the fraction, so the fraction is on f1's side of 1/2
        // unless f1 is exactly 1/2.
        match self.f1.partial_cmp(&0.5).unwrap_or(Ordering::Less) {
            Ordering::Equal => self.f2.partial_cmp(&0.0).unwrap_or(Ordering::Equal),
            other => other,
        }
    }
    fn top(&self, r: u32) -> u64 {
        self.shifted(r).0
    }
    fn cmp_half_below(&self, r: u32) -> Ordering {
        self.below(r).cmp_half()
    }
    fn word(&self, j: u32) -> u32 {
        self.below(32 * j).shifted(32).0 as u32
    }
    fn nonzero_below(&self, p: u32) -> bool {
        !self.below(p).is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::rounding::Dyadic;

    #[test]
    fn sums_and_products_are_exact() {
        let e = Exact::sum(1.0, 2f64.powi(-80));
        assert_eq!((e.hi, e.lo), (1.0, 2f64.powi(-80)));
        let p = Exact::product(1.0 + 2f64.powi(-30), 1.0 + 2f64.powi(-30));
        assert_eq!((p.hi, p.lo), (1.0 + 2f64.powi(-29), 2f64.powi(-60)));
    }

    #[test]
    fn the_quotient_stand_in_lies_on_the_remainders_side() {
        let q = Exact::quotient(1.0, 3.0);
        assert!(q.lo > 0.0 && (-q.hi).mul_add(3.0, 1.0) > 0.0); // RN(1/3) is below 1/3
        assert_eq!(Exact::quotient(1.0, 4.0), Exact::from_f64(0.25));
        assert_eq!(Exact::square_root(4.0), Exact::from_f64(2.0));
        let r = Exact::square_root(2.0);
        assert!(r.lo != 0.0 && r.lo.abs() < r.hi * 2f64.powi(-53));
    }

    /// The pair fraction against the runtime's `Dyadic` on fractions both can hold.
    #[test]
    fn pair_fractions_answer_like_dyadic_fractions() {
        let cases: [(u64, u32); 8] = [
            (0b101101, 6),
            (1, 40),
            ((1 << 40) - 1, 40),
            (u64::MAX, 64),
            (0x8000_0000_0000_0001, 64),
            (0x7FFF_FFFF_FFFF_FFFF, 64),
            (0x1234_5678_9ABC_DEF1, 70),
            (0x8000_0000_0000_0000, 64),
        ];
        for (rem, shift) in cases {
            let dyadic = Dyadic { rem, shift };
            // The fraction as an exact sum of two f64s (up to 64 significant bits).
            let scale = 2f64.powi(-(shift as i32));
            let (f1, f2) = two_sum(
                (rem >> 20 << 20) as f64 * scale,
                (rem & 0xF_FFFF) as f64 * scale,
            );
            let pair = PairFraction { f1, f2 };
            assert_eq!(pair.cmp_half(), dyadic.cmp_half());
            for r in [1, 3, 8, 31, 32] {
                assert_eq!(pair.top(r), dyadic.top(r), "{rem:#x}/2^{shift} top {r}");
                assert_eq!(pair.cmp_half_below(r), dyadic.cmp_half_below(r));
            }
            for j in 0..3 {
                assert_eq!(pair.word(j), dyadic.word(j));
            }
            for p in [0, 5, 32, 40, 47, 48, 64] {
                assert_eq!(
                    pair.nonzero_below(p),
                    dyadic.nonzero_below(p),
                    "{rem:#x}/2^{shift} below {p}"
                );
            }
        }
    }

    #[test]
    fn a_fraction_just_below_one_has_every_bit_set() {
        let (f1, f2) = two_sum(1.0, -2f64.powi(-70));
        let pair = PairFraction { f1, f2 };
        assert_eq!(pair.word(0), u32::MAX);
        assert_eq!(pair.word(1), u32::MAX);
        assert_eq!(pair.word(2), 0xFC00_0000);
        assert!(!pair.nonzero_below(70));
        assert_eq!(pair.cmp_half(), Ordering::Greater);
    }
}
