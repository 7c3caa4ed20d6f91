//! Deterministic shuffles from the counter-based [`RandomStream`].
//!
//! The procedure (normative: `examples/train_reference.py` re-implements it to train on qc's
//! exact split): start from the identity permutation `p = [0, 1, ..., n-1]`; for `i` from `n-1`
//! down to 1, draw `w = stream.word(i, 0)` (a `u32`), let `j = (w · (i + 1)) >> 32` (computed in
//! 64 bits, so `0 ≤ j ≤ i`) and swap `p[i]` and `p[j]`. This is the Fisher–Yates shuffle with
//! Lemire's multiply-shift reduction; its bias is below `n / 2^32` per draw, immaterial for
//! ordering data.

use crate::numerics::RandomStream;

/// The stream of [`RandomStream::new`] used for train/test splits.
pub const SPLIT_STREAM: u64 = 0xDA7A_0000_0000_0000;
/// Epoch `e`'s batch order uses stream `EPOCH_STREAM + e`.
pub const EPOCH_STREAM: u64 = 0xDA7A_0001_0000_0000;

/// A permutation of `0..n` drawn from `stream` by the procedure in the module docs.
pub fn shuffled_indices(n: usize, stream: &RandomStream) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let w = u64::from(stream.word(i as u64, 0));
        let j = ((w * (i as u64 + 1)) >> 32) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_deterministic_permutation() {
        let s = RandomStream::new(3, SPLIT_STREAM);
        let p = shuffled_indices(1000, &s);
        assert_eq!(p, shuffled_indices(1000, &s));
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        assert_ne!(p, shuffled_indices(1000, &RandomStream::new(4, SPLIT_STREAM)));
        assert!(shuffled_indices(0, &s).is_empty());
        assert_eq!(shuffled_indices(1, &s), [0]);
    }

    #[test]
    fn every_position_is_reached_about_equally() {
        // Where element 0 ends up, over 4000 seeds, for n = 8: each position ~500 times.
        let mut counts = [0u32; 8];
        for seed in 0..4000 {
            let p = shuffled_indices(8, &RandomStream::new(seed, SPLIT_STREAM));
            counts[p.iter().position(|&v| v == 0).unwrap_or(0)] += 1;
        }
        // 5 standard deviations of binomial(4000, 1/8) is about 105.
        assert!(counts.iter().all(|&c| (c as i64 - 500).abs() < 105), "{counts:?}");
    }
}
