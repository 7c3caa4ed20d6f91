//! The built-in 8x8 handwritten digits (`runtime/data/digits.csv.gz`, attribution in
//! `runtime/data/README.md`), compiled into the binary so the main job needs no download.
//!
//! Each of the 1,797 CSV rows holds 64 pixels (integers 0..=16, row-major 8x8) and the label
//! 0..=9. Samples are `[8, 8, 1]` images (NHWC, one channel) with pixels scaled by 1/16 to
//! [0, 1] — exact in float32. The split is [`Split::seeded`] with seed [`DIGITS_SPLIT_SEED`]:
//! 1,437 training and 360 test samples.

use super::{DataError, Dataset, Split};
use crate::tensor::Tensor;
use flate2::read::GzDecoder;
use std::io::Read;

/// The seed of the digits' train/test split.
pub const DIGITS_SPLIT_SEED: u64 = 1797;

const CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");
const PIXELS: usize = 64;
const CLASSES: usize = 10;
const MAX_PIXEL: u32 = 16;

/// All 1,797 digits in file order.
pub fn digits() -> Result<Dataset, DataError> {
    let bad = |reason: String| DataError::Invalid(format!("the built-in digits data is corrupt: {reason}"));
    let mut text = String::new();
    GzDecoder::new(CSV_GZ).read_to_string(&mut text).map_err(|e| bad(e.to_string()))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let fields: Vec<u32> = line
            .split(',')
            .map(|f| f.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("line {}: {e}", line_no + 1)))?;
        let [image @ .., label] = fields.as_slice() else {
            return Err(bad(format!("line {} is empty", line_no + 1)));
        };
        if image.len() != PIXELS || image.iter().any(|&p| p > MAX_PIXEL) {
            return Err(bad(format!("line {} is not {PIXELS} pixels in 0..={MAX_PIXEL} and a label", line_no + 1)));
        }
        pixels.extend(image.iter().map(|&p| p as f32 / MAX_PIXEL as f32));
        labels.push(*label);
    }
    let x = Tensor::new(vec![labels.len(), 8, 8, 1], pixels).map_err(|e| bad(e.to_string()))?;
    Dataset::new(x, labels, CLASSES)
}

/// qc's fixed split of the digits: 1,437 training and 360 test samples.
pub fn digits_split() -> Result<Split, DataError> {
    Split::seeded(&digits()?, DIGITS_SPLIT_SEED)
}
