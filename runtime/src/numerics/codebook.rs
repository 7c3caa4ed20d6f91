//! Binary, ternary and power-of-two formats (to be completed by the formats work).
use super::format::{Codebook, LogFormat, QuantizeError};
use super::rng::RandomStream;
use super::rounding::Rounding;
pub fn quantize_codebook(_c: &Codebook, _data: &[f32], _shape: &[usize], _rounding: Rounding, _rng: &RandomStream, _out: &mut [f32]) -> Result<(), QuantizeError> {
    unimplemented!("codebooks")
}
pub fn quantize_log(_l: &LogFormat, _data: &[f32], _rounding: Rounding, _rng: &RandomStream, _out: &mut [f32]) -> Result<(), QuantizeError> {
    unimplemented!("log2")
}
