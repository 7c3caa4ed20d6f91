//! Batches of a [`Dataset`] in a sequential or a seeded-shuffled order.
//!
//! Epoch `e` of `Order::Shuffled { seed, epoch: e }` visits the samples in the permutation
//! [`shuffled_indices`]`(N, RandomStream::new(seed, EPOCH_STREAM + e))`; the same seed and epoch
//! give the same batches on every machine. Every batch holds `batch_size` samples except
//! possibly the last, which holds the rest (no sample is dropped).

use super::shuffle::{shuffled_indices, EPOCH_STREAM};
use super::{DataError, Dataset};
use crate::numerics::RandomStream;
use crate::tensor::Tensor;

/// The order in which [`Batches`] visits the samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Sample 0, 1, 2, ... (evaluation).
    Sequential,
    /// A fresh permutation per epoch (training).
    Shuffled { seed: u64, epoch: u64 },
}

/// Consecutive samples of a data set: `x` of shape `[b, ...]` and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub x: Tensor,
    pub y: Vec<u32>,
    /// The samples' row numbers in the data set.
    pub indices: Vec<usize>,
}

/// An iterator over the batches of one epoch.
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    dataset: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

impl<'a> Batches<'a> {
    /// The batches of `dataset` of `batch_size` (at least 1) samples in `order`.
    pub fn new(dataset: &'a Dataset, batch_size: usize, order: Order) -> Result<Batches<'a>, DataError> {
        if batch_size == 0 {
            return Err(DataError::Invalid("the batch size must be at least 1".into()));
        }
        let order = match order {
            Order::Sequential => (0..dataset.len()).collect(),
            Order::Shuffled { seed, epoch } => {
                shuffled_indices(dataset.len(), &RandomStream::new(seed, EPOCH_STREAM.wrapping_add(epoch)))
            }
        };
        Ok(Batches { dataset, order, batch_size, next: 0 })
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let start = self.next;
        if start >= self.order.len() {
            return None;
        }
        let end = start.saturating_add(self.batch_size).min(self.order.len());
        self.next = end;
        let indices = self.order[start..end].to_vec();
        // `order` is a permutation of the data set's rows, so the gather cannot fail; a
        // failure would end the iteration rather than panic.
        let subset = self.dataset.subset(&indices).ok()?;
        let (x, y) = (subset.x().clone(), subset.y().to_vec());
        Some(Batch { x, y, indices })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next.min(self.order.len())).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting(n: usize) -> Dataset {
        let x = Tensor::new(vec![n, 1], (0..n).map(|i| i as f32).collect()).unwrap();
        Dataset::new(x, (0..n as u32).map(|i| i % 2).collect(), 2).unwrap()
    }

    #[test]
    fn sequential_batches_cover_the_data_with_a_short_last_batch() {
        let data = counting(10);
        let batches: Vec<Batch> = Batches::new(&data, 4, Order::Sequential).unwrap().collect();
        assert_eq!(batches.iter().map(|b| b.y.len()).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(batches[2].x.data(), &[8.0, 9.0]);
        assert_eq!(batches[2].x.shape(), &[2, 1]);
        assert_eq!(batches[1].y, [0, 1, 0, 1]);
        assert_eq!(Batches::new(&data, 4, Order::Sequential).unwrap().len(), 3);
        assert!(Batches::new(&data, 0, Order::Sequential).is_err());
    }

    #[test]
    fn shuffled_batches_depend_only_on_seed_and_epoch() {
        let data = counting(50);
        let run = |seed, epoch| -> Vec<usize> {
            Batches::new(&data, 8, Order::Shuffled { seed, epoch }).unwrap().flat_map(|b| b.indices).collect()
        };
        assert_eq!(run(1, 0), run(1, 0));
        assert_ne!(run(1, 0), run(1, 1));
        assert_ne!(run(1, 0), run(2, 0));
        let mut all = run(1, 3);
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        let first = Batches::new(&data, 8, Order::Shuffled { seed: 1, epoch: 0 }).unwrap().next().unwrap();
        assert_eq!(first.x.data(), first.indices.iter().map(|&i| i as f32).collect::<Vec<_>>());
    }
}
