//! The scalar arithmetic of the `kernel` dialect (spec/ir.md, "kernel"), one function per op:
//! the exact result, rounded once to the op's [`Target`] format.
//!
//! Operands are `f64`s holding values of element-wise formats (every one is an `f32`) or, for
//! `add`/`sub`/`round`/`mul`, exact products of two such values (`real`). Each function's
//! `draw` is used only by the stochastic modes.

use super::exact::Exact;
use super::target::Target;
use crate::numerics::rng::Draw;
use crate::numerics::Rounding;

/// One rounding: the result format and mode of a kernel op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rounder {
    pub target: Target,
    pub rounding: Rounding,
}

impl Rounder {
    pub fn new(target: Target, rounding: Rounding) -> Rounder {
        Rounder { target, rounding }
    }

    /// The exact value `x` rounded once.
    pub fn exact(&self, x: Exact, draw: Draw<'_>) -> f32 {
        self.target.round(x, self.rounding, draw)
    }

    /// `kernel.round`: `x` rounded once.
    pub fn round(&self, x: f64, draw: Draw<'_>) -> f32 {
        self.exact(Exact::from_f64(x), draw)
    }

    /// `kernel.add`: `a + b`.
    pub fn add(&self, a: f64, b: f64, draw: Draw<'_>) -> f32 {
        self.exact(Exact::sum(a, b), draw)
    }

    /// `kernel.sub`: `a − b`.
    pub fn sub(&self, a: f64, b: f64, draw: Draw<'_>) -> f32 {
        self.exact(Exact::sum(a, -b), draw)
    }

    /// `kernel.mul` with a rounding: `a · b`.
    pub fn mul(&self, a: f64, b: f64, draw: Draw<'_>) -> f32 {
        self.exact(Exact::product(a, b), draw)
    }

    /// `kernel.fma`: `acc + a·b` with one rounding; `None` when `a·b` is not exact in `f64`
    /// (an operand that is itself a product).
    pub fn fma(&self, acc: f64, a: f64, b: f64, draw: Draw<'_>) -> Option<f32> {
        Exact::sum_with_product(acc, a, b).map(|x| self.exact(x, draw))
    }

    /// `kernel.div`: `a / b`. Deterministic modes are exact (the `f64` quotient and the sign of
    /// its remainder decide them), as are `stochastic:R` and `stochastic-unbiased:R` for a
    /// format of `p` significant bits while `p + R ≤ 51`; exact `stochastic` compares the draw
    /// with the quotient's fraction to within `2^(p−53)` (see [`Exact::quotient`]).
    pub fn div(&self, a: f64, b: f64, draw: Draw<'_>) -> f32 {
        self.exact(Exact::quotient(a, b), draw)
    }

    /// `kernel.sqrt`: `√x` (NaN for `x < 0`, `−0` for `−0`), exact in the same sense as
    /// [`Rounder::div`].
    pub fn sqrt(&self, x: f64, draw: Draw<'_>) -> f32 {
        self.exact(Exact::square_root(x), draw)
    }

    /// `kernel.max`: the larger of `a` and `b`, rounded once.
    pub fn max(&self, a: f64, b: f64, draw: Draw<'_>) -> f32 {
        self.round(maximum(a, b), draw)
    }

    /// `kernel.min`: the smaller of `a` and `b`, rounded once.
    pub fn min(&self, a: f64, b: f64, draw: Draw<'_>) -> f32 {
        self.round(minimum(a, b), draw)
    }

    /// `kernel.exp`: `libm::exp(x)` rounded once.
    pub fn exp(&self, x: f64, draw: Draw<'_>) -> f32 {
        self.round(libm::exp(x), draw)
    }

    /// `kernel.tanh`: `libm::tanh(x)` rounded once.
    pub fn tanh(&self, x: f64, draw: Draw<'_>) -> f32 {
        self.round(libm::tanh(x), draw)
    }

    /// `kernel.sigmoid`: `1 / (1 + libm::exp(−x))` in `f64`, rounded once.
    pub fn sigmoid(&self, x: f64, draw: Draw<'_>) -> f32 {
        self.round(sigmoid_reference(x), draw)
    }

    /// `kernel.gelu`: `0.5·x·(1 + libm::erf(x/√2))` in `f64` left to right, rounded once.
    pub fn gelu(&self, x: f64, draw: Draw<'_>) -> f32 {
        self.round(gelu_reference(x), draw)
    }

    /// `kernel.from_index`: the integer `i` rounded once.
    pub fn from_index(&self, i: u64, draw: Draw<'_>) -> f32 {
        let hi = i as f64;
        let lo = (i as i128 - hi as i128) as f64; // exact: |lo| < 2^11
        self.exact(Exact::sum(hi, lo), draw)
    }
}

/// The larger value: NaN if either is NaN; `+0` over `−0`.
pub fn maximum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// The smaller value: NaN if either is NaN; `−0` under `+0`.
pub fn minimum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

/// The reference `f64` of `kernel.sigmoid`.
pub fn sigmoid_reference(x: f64) -> f64 {
    1.0 / (1.0 + libm::exp(-x))
}

/// The reference `f64` of `kernel.gelu`.
pub fn gelu_reference(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}
