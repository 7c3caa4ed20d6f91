//! Rounding modes and the one decision every format shares: given a value's position inside
//! the gap between two neighbouring representable values, round toward zero or away from it.
//!
//! Every format reduces rounding to this: the magnitude lies in `[k·2^s, (k+1)·2^s)` for an
//! integer `k`; [`Fraction`] is the exact position `frac ∈ [0, 1)` inside that gap, and
//! [`Rounding::away_from_zero`] decides whether the result is `(k+1)·2^s`.

use super::rng::Draw;
use std::cmp::Ordering;
use std::fmt;

/// A rounding mode (see `spec/numerics.md`, "Rounding").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// To nearest, ties to even.
    Nearest,
    /// To nearest, ties away from zero.
    NearestAway,
    TowardZero,
    /// Toward +∞.
    Up,
    /// Toward −∞.
    Down,
    /// Exact stochastic rounding: P(away from zero) = frac.
    Stochastic,
    /// `R` random bits added below the kept bits, then truncation: P(away) = ⌊frac·2^R⌋/2^R.
    StochasticBits(u32),
    /// P(away) = RNE(frac·2^R)/2^R: `R` random bits without the drift toward zero.
    StochasticUnbiased(u32),
}

/// The largest `R` of `stochastic:R`: one random word.
pub const MAX_RANDOM_BITS: u32 = 32;

impl Rounding {
    pub const NAMES: [&'static str; 8] = [
        "nearest",
        "nearest-away",
        "toward-zero",
        "up",
        "down",
        "stochastic",
        "stochastic:R",
        "stochastic-unbiased:R",
    ];

    /// Parses `nearest`, `stochastic:9`, `stochastic-unbiased:4`, ...
    pub fn parse(text: &str) -> Result<Rounding, String> {
        let text = text.trim();
        let bits = |r: &str| -> Result<u32, String> {
            match r.parse::<u32>() {
                Ok(n) if (1..=MAX_RANDOM_BITS).contains(&n) => Ok(n),
                _ => Err(format!(
                    "the number of random bits must be an integer from 1 to {MAX_RANDOM_BITS}, not `{r}`"
                )),
            }
        };
        Ok(match text {
            "nearest" | "nearest-even" | "rne" => Rounding::Nearest,
            "nearest-away" => Rounding::NearestAway,
            "toward-zero" | "truncate" => Rounding::TowardZero,
            "up" => Rounding::Up,
            "down" => Rounding::Down,
            "stochastic" => Rounding::Stochastic,
            _ => {
                if let Some(r) = text.strip_prefix("stochastic-unbiased:") {
                    Rounding::StochasticUnbiased(bits(r)?)
                } else if let Some(r) = text.strip_prefix("stochastic:") {
                    Rounding::StochasticBits(bits(r)?)
                } else {
                    let hint = super::suggest::closest(text, Rounding::NAMES.iter().copied())
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown rounding mode `{text}` (one of {}){hint}",
                        Rounding::NAMES.join(", ")
                    ));
                }
            }
        })
    }

    pub fn is_stochastic(self) -> bool {
        matches!(
            self,
            Rounding::Stochastic | Rounding::StochasticBits(_) | Rounding::StochasticUnbiased(_)
        )
    }

    /// Whether a magnitude at `frac` inside the gap `[k, k+1]` rounds to `k+1`.
    ///
    /// `negative` is the sign of the value, `k_odd` the parity of the lower neighbour (ties
    /// to even keep an even `k`), `draw` the element's random words (used only by the
    /// stochastic modes; a deterministic mode may pass any draw).
    pub fn away_from_zero<F: Fraction>(self, frac: &F, negative: bool, k_odd: bool, draw: Draw<'_>) -> bool {
        if frac.is_zero() {
            return false;
        }
        match self {
            Rounding::Nearest => match frac.cmp_half() {
                Ordering::Less => false,
                Ordering::Greater => true,
                Ordering::Equal => k_odd,
            },
            Rounding::NearestAway => frac.cmp_half() != Ordering::Less,
            Rounding::TowardZero => false,
            Rounding::Up => !negative,
            Rounding::Down => negative,
            Rounding::Stochastic => {
                // u < frac, u = 0.w0 w1 w2 ... uniform: compare word by word.
                let mut j = 0;
                loop {
                    let f = frac.word(j);
                    let u = draw.word(j);
                    if u != f {
                        return u < f;
                    }
                    if !frac.nonzero_below(32 * (j + 1)) {
                        return false;
                    }
                    j += 1;
                }
            }
            Rounding::StochasticBits(r) => {
                let t = frac.top(r);
                let rnd = (draw.word(0) >> (32 - r)) as u64;
                (t + rnd) >> r != 0
            }
            Rounding::StochasticUnbiased(r) => {
                let mut t = frac.top(r);
                let rest_cmp = frac.cmp_half_below(r);
                if rest_cmp == Ordering::Greater || (rest_cmp == Ordering::Equal && t & 1 == 1) {
                    t += 1;
                }
                let rnd = (draw.word(0) >> (32 - r)) as u64;
                (t + rnd) >> r != 0
            }
        }
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rounding::Nearest => f.write_str("nearest"),
            Rounding::NearestAway => f.write_str("nearest-away"),
            Rounding::TowardZero => f.write_str("toward-zero"),
            Rounding::Up => f.write_str("up"),
            Rounding::Down => f.write_str("down"),
            Rounding::Stochastic => f.write_str("stochastic"),
            Rounding::StochasticBits(r) => write!(f, "stochastic:{r}"),
            Rounding::StochasticUnbiased(r) => write!(f, "stochastic-unbiased:{r}"),
        }
    }
}

/// An exact position inside a rounding gap, `0 ≤ frac < 1`.
pub trait Fraction {
    fn is_zero(&self) -> bool;
    /// `frac` against 1/2.
    fn cmp_half(&self) -> Ordering;
    /// `⌊frac·2^r⌋` for `r ≤ 32`.
    fn top(&self, r: u32) -> u64;
    /// `frac·2^r − ⌊frac·2^r⌋` against 1/2.
    fn cmp_half_below(&self, r: u32) -> Ordering;
    /// Bits `[32j, 32j+32)` after the binary point, as a word.
    fn word(&self, j: u32) -> u32;
    /// Whether any bit after the first `p` bits past the binary point is set.
    fn nonzero_below(&self, p: u32) -> bool;
}

/// A dyadic fraction `rem / 2^shift` with `rem < 2^shift` (and `rem < 2^64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dyadic {
    pub rem: u64,
    pub shift: u32,
}

impl Dyadic {
    pub const ZERO: Dyadic = Dyadic { rem: 0, shift: 0 };

    /// `⌊frac·2^p⌋ mod 2^64` — the first `p` bits as an integer (`p ≥ 64` keeps the low 64).
    fn prefix(&self, p: u32) -> u128 {
        if self.shift <= p {
            let left = p - self.shift;
            if left >= 128 { 0 } else { (self.rem as u128) << left }
        } else {
            let right = self.shift - p;
            if right >= 64 { 0 } else { (self.rem >> right) as u128 }
        }
    }
}

impl Fraction for Dyadic {
    fn is_zero(&self) -> bool {
        self.rem == 0
    }
    fn cmp_half(&self) -> Ordering {
        // With shift = 0 the fraction is zero; beyond 64 bits `rem < 2^64 ≤ 2^(shift−1)`.
        if self.shift == 0 || self.shift > 64 {
            return Ordering::Less;
        }
        self.rem.cmp(&(1u64 << (self.shift - 1)))
    }
    fn top(&self, r: u32) -> u64 {
        self.prefix(r) as u64
    }
    fn cmp_half_below(&self, r: u32) -> Ordering {
        if self.shift <= r {
            return Ordering::Less; // every bit of the fraction is within the first r
        }
        Dyadic { rem: low_bits(self.rem, self.shift - r), shift: self.shift - r }.cmp_half()
    }
    fn word(&self, j: u32) -> u32 {
        let p = 32 * (j + 1);
        (self.prefix(p) & 0xFFFF_FFFF) as u32
    }
    fn nonzero_below(&self, p: u32) -> bool {
        self.shift > p && low_bits(self.rem, self.shift - p) != 0
    }
}

/// The low `n` bits of `x`.
pub fn low_bits(x: u64, n: u32) -> u64 {
    if n >= 64 { x } else { x & ((1u64 << n) - 1) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::rng::RandomStream;

    #[test]
    fn parse_and_display_round_trip() {
        for text in ["nearest", "nearest-away", "toward-zero", "up", "down", "stochastic", "stochastic:9", "stochastic-unbiased:4"] {
            assert_eq!(Rounding::parse(text).unwrap().to_string(), text);
        }
        assert!(Rounding::parse("stochastic:0").is_err());
        assert!(Rounding::parse("stochastic:33").is_err());
        let e = Rounding::parse("neares").unwrap_err();
        assert!(e.contains("did you mean `nearest`"), "{e}");
    }

    #[test]
    fn stochastic_bits_probability_is_the_truncated_fraction() {
        // frac = 0.101101b; with R = 3 the hardware scheme rounds away with P = 5/8.
        let frac = Dyadic { rem: 0b101101, shift: 6 };
        let s = RandomStream::new(3, 0);
        let n = 1 << 16;
        let away = (0..n).filter(|&i| Rounding::StochasticBits(3).away_from_zero(&frac, false, false, s.at(i))).count();
        // Over all 8 values of the 3 random bits exactly 5 carry; the hash is close to uniform.
        let p = away as f64 / n as f64;
        assert!((p - 0.625).abs() < 0.01, "{p}");
        // The unbiased variant rounds frac·8 = 5.625 to 6: P = 6/8.
        let away = (0..n).filter(|&i| Rounding::StochasticUnbiased(3).away_from_zero(&frac, false, false, s.at(i))).count();
        assert!((away as f64 / n as f64 - 0.75).abs() < 0.01);
    }

    #[test]
    fn exact_stochastic_compares_beyond_the_first_word() {
        // frac = 2^-40: only a draw whose first word is zero can round away.
        let frac = Dyadic { rem: 1, shift: 40 };
        assert_eq!(frac.word(0), 0);
        assert_eq!(frac.word(1), 1 << 24);
        assert!(frac.nonzero_below(32));
        assert!(!frac.nonzero_below(40));
    }
}
