//! Scaled integers (to be completed by the formats work).
use super::format::{IntFormat, QuantizeError};
use super::rng::RandomStream;
use super::rounding::Rounding;
pub fn quantize_int(_f: &IntFormat, _data: &[f32], _shape: &[usize], _rounding: Rounding, _rng: &RandomStream, _out: &mut [f32]) -> Result<(), QuantizeError> {
    unimplemented!("scaled integers")
}
