//! The built-in digits: contents, the fixed split, its determinism, and the values that
//! `examples/train_reference.py` pins to train on exactly this split.

use qc_runtime::data::digits::{digits, digits_split, DIGITS_SPLIT_SEED};
use qc_runtime::data::shuffle::{shuffled_indices, SPLIT_STREAM};
use qc_runtime::data::{Batches, DataSource, Order};
use qc_runtime::numerics::RandomStream;

#[test]
fn digits_load_to_1797_scaled_images_with_the_known_label_histogram() {
    let all = digits().unwrap();
    assert_eq!(all.len(), 1797);
    assert_eq!(all.x().shape(), &[1797, 8, 8, 1]);
    assert_eq!(all.classes(), 10);
    assert_eq!(all.label_counts(), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    let x = all.x().data();
    assert!(x.iter().all(|&p| (0.0..=1.0).contains(&p) && (p * 16.0).fract() == 0.0));
    // The sum of all raw pixels (0..=16) in the file.
    assert_eq!(x.iter().map(|&p| (p * 16.0) as u64).sum::<u64>(), 561_718);
    // The first row of the file: 0,0,5,13,9,1,0,0, ... label 0.
    assert_eq!(&x[..8], &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0, 9.0 / 16.0, 1.0 / 16.0, 0.0, 0.0]);
    assert_eq!(all.y()[..3], [0, 1, 2]);
}

#[test]
fn the_split_is_1437_train_and_360_test_and_fixed() {
    let split = digits_split().unwrap();
    assert_eq!((split.train.len(), split.test.len()), (1437, 360));
    assert_eq!(split, digits_split().unwrap());
    assert_eq!((split.train.classes(), split.test.classes()), (10, 10));
    // Every class appears in the test part.
    assert!(split.test.label_counts().iter().all(|&c| c > 20), "{:?}", split.test.label_counts());
    assert_eq!(DataSource::parse("digits").unwrap().load().unwrap(), split);
}

#[test]
fn the_split_permutation_matches_the_values_train_reference_py_pins() {
    let order = shuffled_indices(1797, &RandomStream::new(DIGITS_SPLIT_SEED, SPLIT_STREAM));
    assert_eq!(order[..8], [1640, 1672, 436, 1760, 1476, 80, 1396, 712]);
    assert_eq!(order[1437..1445], [1118, 1740, 408, 428, 1008, 861, 750, 173]);
    let checksum: usize = order.iter().enumerate().map(|(i, &v)| i * v).sum();
    assert_eq!(checksum, 1_474_136_305);
    // The split's test part is that tail, in that order.
    let all = digits().unwrap();
    let split = digits_split().unwrap();
    assert_eq!(split.test.x().rows(&[0]).unwrap().data(), all.x().rows(&[1118]).unwrap().data());
    // The generator the script re-implements, at two points.
    assert_eq!(RandomStream::new(7, 3).word(5, 0), 3_937_722_136);
    assert_eq!(RandomStream::new(7, 3).word(1 << 32, 1), 2_961_209_484);
}

#[test]
fn epoch_batches_are_deterministic_and_differ_between_epochs() {
    let split = digits_split().unwrap();
    let order = |epoch| -> Vec<usize> {
        Batches::new(&split.train, 64, Order::Shuffled { seed: 7, epoch }).unwrap().flat_map(|b| b.indices).collect()
    };
    assert_eq!(order(0), order(0));
    assert_ne!(order(0), order(1));
    let batches: Vec<_> = Batches::new(&split.train, 64, Order::Shuffled { seed: 7, epoch: 0 }).unwrap().collect();
    assert_eq!(batches.len(), 23);
    assert_eq!(batches[22].y.len(), 1437 - 22 * 64);
    assert_eq!(batches[0].x.shape(), &[64, 8, 8, 1]);
    // The orders `examples/train_reference.py` computes (epoch_batches(1437, 64, 7, e)).
    assert_eq!(batches[0].indices[..6], [1006, 433, 931, 1312, 261, 159]);
    assert_eq!(order(3)[5 * 64..5 * 64 + 4], [822, 26, 41, 171]);
    let flat = split.train.clone().reshape_samples(&[64]).unwrap();
    assert_eq!(flat.x().shape(), &[1437, 64]);
}
