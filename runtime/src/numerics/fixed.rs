//! Fixed point `fixed<I,F>` / `ufixed<I,F>` (to be completed by the formats work).
use super::format::FixedFormat;
use super::rng::RandomStream;
use super::rounding::Rounding;
pub fn quantize_fixed(_f: &FixedFormat, _data: &[f32], _rounding: Rounding, _rng: &RandomStream, _out: &mut [f32]) {
    unimplemented!("fixed point")
}
