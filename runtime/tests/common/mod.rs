//! Exact arithmetic shared by the integration tests: every finite `f64` as an integer
//! multiple of 2^-1074 (the smallest f64 subnormal), held in a `BigInt`, and back.
//!
//! Each test binary that declares `mod common;` compiles its own copy and uses only part of it.
#![allow(dead_code)]

use num_bigint::{BigInt, Sign};
use num_traits::{ToPrimitive, Zero};

/// The scale: an `f64` `x` is represented by the integer `x · 2^SCALE`.
pub const SCALE: i32 = 1074;

/// `x · 2^1074` exactly, for a finite `x` (−0 gives 0).
pub fn exact(x: f64) -> BigInt {
    assert!(x.is_finite(), "exact({x}): not finite");
    let bits = x.to_bits();
    let field = ((bits >> 52) & 0x7FF) as i32;
    let man = bits & ((1u64 << 52) - 1);
    // x = sig · 2^(shift − 1074) with shift ≥ 0.
    let (sig, shift) = if field == 0 { (man, 0) } else { (man | (1 << 52), field - 1) };
    let magnitude = BigInt::from(sig) << shift as usize;
    if x < 0.0 { -magnitude } else { magnitude }
}

/// `2^e` for `e` in −1074 ..= 1023, built from its bits.
pub fn pow2(e: i32) -> f64 {
    assert!((-1074..=1023).contains(&e), "2^{e} is not an f64");
    if e >= -1022 { f64::from_bits(((e + 1023) as u64) << 52) } else { f64::from_bits(1u64 << (e + 1074)) }
}

/// The `f64` whose `exact` is `n`; panics if there is none (the tests only convert values
/// that are known to be f64s, so a panic here is a bug in the test).
pub fn to_f64(n: &BigInt) -> f64 {
    if n.is_zero() {
        return 0.0;
    }
    let magnitude = n.magnitude();
    let bits = magnitude.bits();
    let shift = bits.saturating_sub(53);
    assert!(magnitude.trailing_zeros().unwrap_or(0) >= shift, "{n} · 2^-1074 is not an f64");
    let sig = (magnitude >> shift as usize).to_u64().unwrap() as f64; // ≤ 53 bits: exact
    let value = sig * pow2(shift as i32 - SCALE); // exact: the product is an f64
    assert_eq!(exact(value), BigInt::from_biguint(Sign::Plus, magnitude.clone()), "{n} · 2^-1074 is not an f64");
    if n.sign() == Sign::Minus { -value } else { value }
}

/// Whether `x` and `y` are the same value: equal bits, or both NaN.
pub fn same(x: f64, y: f64) -> bool {
    x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
}
