//! Block formats (to be completed by the formats work).
use super::format::{BlockFormat, QuantizeError};
use super::rng::RandomStream;
use super::rounding::Rounding;
pub fn quantize_blocks(_f: &BlockFormat, _data: &[f32], _shape: &[usize], _rounding: Rounding, _rng: &RandomStream, _out: &mut [f32]) -> Result<(), QuantizeError> {
    unimplemented!("block formats")
}
