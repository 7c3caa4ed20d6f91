//! The counter-based random generator behind stochastic rounding.
//!
//! A [`RandomStream`] is keyed by `(seed, stream)`; the random 32-bit word number `j` for
//! element `index` is a pure function of `(key, index, j)`. No state advances, so every
//! backend, thread split and evaluation order draws the same bits for the same element.
//!
//! Construction (normative, see `spec/numerics.md`):
//! - `mix64` is the SplitMix64 finaliser; `key = mix64(seed·φ64 ⊕ mix64(stream ⊕ C))`.
//! - `hash32` is the two-multiply `lowbias32` integer hash (bijective on 32 bits).
//! - `word(index, j) = hash32(hash32(lo32(index) ⊕ k0 ⊕ j·φ32) ⊕ hi32(index) ⊕ k1)` where
//!   `k0, k1` are the low and high halves of `key`.
//!
//! All arithmetic is on 32-bit lanes so the word generator vectorises.

const PHI64: u64 = 0x9E37_79B9_7F4A_7C15;
const PHI32: u32 = 0x9E37_79B9;

/// SplitMix64's output function: a strong 64-bit mixer.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Chris Wellons' `lowbias32` hash: a bijection on 32 bits with low avalanche bias.
#[inline(always)]
pub const fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

/// A keyed source of random words, addressed by element index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomStream {
    k0: u32,
    k1: u32,
}

impl RandomStream {
    pub const fn new(seed: u64, stream: u64) -> Self {
        let key = mix64(seed.wrapping_mul(PHI64) ^ mix64(stream ^ 0xD1B5_4A32_D192_ED03));
        RandomStream { k0: key as u32, k1: (key >> 32) as u32 }
    }

    /// The stream whose key halves are `(k0, k1)` (as [`RandomStream::key`] gives them).
    pub const fn from_key(k0: u32, k1: u32) -> Self {
        RandomStream { k0, k1 }
    }

    /// Random word number `j` (0, 1, 2, ...) for element `index`.
    #[inline(always)]
    pub fn word(&self, index: u64, j: u32) -> u32 {
        self.word_split(index as u32, (index >> 32) as u32, j)
    }

    /// [`RandomStream::word`] with the index given as its low and high 32-bit halves (lets
    /// vectorised callers keep indices in 32-bit lanes).
    #[inline(always)]
    pub fn word_split(&self, lo: u32, hi: u32, j: u32) -> u32 {
        hash32(hash32(lo ^ self.k0 ^ j.wrapping_mul(PHI32)) ^ hi ^ self.k1)
    }

    /// The key halves `(k0, k1)` of [`RandomStream::word_split`], for code generators that
    /// emit the word function inline.
    pub const fn key(&self) -> (u32, u32) {
        (self.k0, self.k1)
    }

    /// The element-`index` view of this stream.
    pub fn at(&self, index: u64) -> Draw<'_> {
        Draw { stream: self, index }
    }
}

/// The random words available to one rounding: those of one element index.
#[derive(Clone, Copy, Debug)]
pub struct Draw<'a> {
    stream: &'a RandomStream,
    index: u64,
}

impl Draw<'_> {
    pub fn word(&self, j: u32) -> u32 {
        self.stream.word(self.index, j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_a_pure_function_of_key_index_and_word_number() {
        let a = RandomStream::new(7, 3);
        let b = RandomStream::new(7, 3);
        for i in 0..1000u64 {
            assert_eq!(a.word(i, 0), b.word(i, 0));
        }
        assert_ne!(RandomStream::new(7, 4).word(0, 0), a.word(0, 0));
        assert_ne!(RandomStream::new(8, 3).word(0, 0), a.word(0, 0));
        assert_ne!(a.word(0, 1), a.word(0, 0));
        assert_ne!(a.word(1 << 32, 0), a.word(0, 0));
    }

    #[test]
    fn word_bits_are_balanced() {
        // Each of the 32 bit positions is set in about half of 2^16 consecutive indices.
        let s = RandomStream::new(1, 0);
        let n = 1u64 << 16;
        let mut counts = [0u32; 32];
        for i in 0..n {
            let w = s.word(i, 0);
            for (b, c) in counts.iter_mut().enumerate() {
                *c += (w >> b) & 1;
            }
        }
        // 5 standard deviations of a binomial(n, 1/2) is 5·128 = 640.
        for c in counts {
            assert!((c as i64 - (n / 2) as i64).abs() < 640, "bit count {c}");
        }
    }
}
