//! Where parameter values come from: the initialisation recipes of the language (`he_normal`,
//! `uniform(-1, 1)`, `load("w.npz", "fc1")`, ...) as IR attributes (`init = {kind = ...}` on
//! `nn.param` and on generated `nn.constant`s), the deterministic generation of their values
//! from the counter-based [`RandomStream`], and the digest that names a generated tensor.
//!
//! Generation (spec/ir.md, "Parameter values"): element `i` (row-major) of a seeded recipe
//! uses the words of `RandomStream::new(seed, stream)` at index `i`; `u_j = (w_{2j}·2^21 +
//! ⌊w_{2j+1}/2^11⌋)·2^-53` is uniform in [0, 1) with 53 bits. Uniform values are `low + (high −
//! low)·u_0`; normal values `mean + std·√(−2 ln(1 − u_0))·cos(2π u_1)` (Box–Muller, in f64);
//! the f64 result is rounded to the nearest f32.

use crate::ir::Attr;
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use std::collections::BTreeMap;

/// How a tensor starts: the language's initialiser, carried unchanged into the IR.
pub use qc_lang::check::Init as Kind;

/// A recipe: the kind, and for random kinds the seed and stream its draws come from.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    pub kind: Kind,
    pub seed: u64,
    pub stream: u64,
}

impl Recipe {
    /// Whether the compiler can produce the values (everything but `load`).
    pub fn is_generated(&self) -> bool {
        !matches!(self.kind, Kind::Load { .. })
    }

    fn is_random(&self) -> bool {
        matches!(self.kind, Kind::Uniform { .. } | Kind::Normal { .. } | Kind::HeNormal | Kind::HeUniform | Kind::GlorotNormal | Kind::GlorotUniform)
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Zeros => "zeros",
            Kind::Ones => "ones",
            Kind::Fill(_) => "fill",
            Kind::Uniform { .. } => "uniform",
            Kind::Normal { .. } => "normal",
            Kind::HeNormal => "he_normal",
            Kind::HeUniform => "he_uniform",
            Kind::GlorotNormal => "glorot_normal",
            Kind::GlorotUniform => "glorot_uniform",
            Kind::Load { .. } => "load",
        }
    }

    /// The attribute dictionary: `{kind = "he_normal", seed = 0, stream = 2}`.
    pub fn to_dict(&self) -> BTreeMap<String, Attr> {
        let mut d = BTreeMap::new();
        d.insert("kind".to_string(), Attr::Str(self.name().to_string()));
        let mut put = |k: &str, v: Attr| {
            d.insert(k.to_string(), v);
        };
        match &self.kind {
            Kind::Fill(v) => put("value", Attr::Float(*v)),
            Kind::Uniform { low, high } => {
                put("low", Attr::Float(*low));
                put("high", Attr::Float(*high));
            }
            Kind::Normal { mean, std } => {
                put("mean", Attr::Float(*mean));
                put("std", Attr::Float(*std));
            }
            Kind::Load { path, tensor } => {
                put("path", Attr::Str(path.clone()));
                if let Some(t) = tensor {
                    put("tensor", Attr::Str(t.clone()));
                }
            }
            _ => {}
        }
        if self.is_random() {
            put("seed", Attr::Int(self.seed as i64));
            put("stream", Attr::Int(self.stream as i64));
        }
        d
    }

    /// Reads the dictionary form back; every key must be known and of the right kind.
    pub fn from_dict(d: &BTreeMap<String, Attr>) -> Result<Recipe, String> {
        let num = |k: &str| match d.get(k) {
            Some(a) => a.as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("`{k}` must be a finite number, not {a}")),
            None => Err(format!("`{k}` is missing")),
        };
        let string = |k: &str| match d.get(k) {
            Some(Attr::Str(s)) => Ok(Some(s.clone())),
            Some(a) => Err(format!("`{k}` must be a string, not {a}")),
            None => Ok(None),
        };
        let count = |k: &str| match d.get(k) {
            Some(Attr::Int(n)) if *n >= 0 => Ok(*n as u64),
            Some(a) => Err(format!("`{k}` must be a non-negative integer, not {a}")),
            None => Err(format!("`{k}` is missing")),
        };
        let kind_name = string("kind")?.ok_or("`kind` is missing")?;
        let (kind, keys): (Kind, &[&str]) = match kind_name.as_str() {
            "zeros" => (Kind::Zeros, &[]),
            "ones" => (Kind::Ones, &[]),
            "fill" => (Kind::Fill(num("value")?), &["value"]),
            "uniform" => (Kind::Uniform { low: num("low")?, high: num("high")? }, &["low", "high"]),
            "normal" => (Kind::Normal { mean: num("mean")?, std: num("std")? }, &["mean", "std"]),
            "he_normal" => (Kind::HeNormal, &[]),
            "he_uniform" => (Kind::HeUniform, &[]),
            "glorot_normal" => (Kind::GlorotNormal, &[]),
            "glorot_uniform" => (Kind::GlorotUniform, &[]),
            "load" => (Kind::Load { path: string("path")?.ok_or("`path` is missing")?, tensor: string("tensor")? }, &["path", "tensor"]),
            other => return Err(format!("unknown kind `{other}`")),
        };
        let mut recipe = Recipe { kind, seed: 0, stream: 0 };
        let random = recipe.is_random();
        if random {
            recipe.seed = count("seed")?;
            recipe.stream = count("stream")?;
        }
        for k in d.keys() {
            let allowed = k == "kind" || keys.contains(&k.as_str()) || (random && (k == "seed" || k == "stream"));
            if !allowed {
                return Err(format!("`{k}` does not belong to a `{kind_name}` recipe"));
            }
        }
        Ok(recipe)
    }

    /// The values (row-major, f32) for a tensor of shape `dims`; `None` for `load`.
    pub fn generate(&self, dims: &[u64]) -> Option<Vec<f32>> {
        let n = dims.iter().product::<u64>() as usize;
        let (fan_in, fan_out) = fans(dims);
        let rng = RandomStream::new(self.seed, self.stream);
        let uniform = |low: f64, high: f64| (0..n).map(|i| (low + (high - low) * unit(&rng, i as u64, 0)) as f32).collect();
        let normal = |mean: f64, std: f64| (0..n).map(|i| (mean + std * gaussian(&rng, i as u64)) as f32).collect();
        Some(match self.kind {
            Kind::Zeros => vec![0.0; n],
            Kind::Ones => vec![1.0; n],
            Kind::Fill(v) => vec![v as f32; n],
            Kind::Uniform { low, high } => uniform(low, high),
            Kind::Normal { mean, std } => normal(mean, std),
            Kind::HeNormal => normal(0.0, (2.0 / fan_in).sqrt()),
            Kind::HeUniform => {
                let limit = (6.0 / fan_in).sqrt();
                uniform(-limit, limit)
            }
            Kind::GlorotNormal => normal(0.0, (2.0 / (fan_in + fan_out)).sqrt()),
            Kind::GlorotUniform => {
                let limit = (6.0 / (fan_in + fan_out)).sqrt();
                uniform(-limit, limit)
            }
            Kind::Load { .. } => return None,
        })
    }
}

/// `fan_in` = the product of all axes but the first; `fan_out` = the first axis times the
/// product of the axes between the first and the last (spec/lang.md §5).
pub fn fans(dims: &[u64]) -> (f64, f64) {
    match dims {
        [] => (1.0, 1.0),
        [n] => (1.0, *n as f64),
        [first, middle @ .., _] => {
            let fan_in = dims[1..].iter().product::<u64>() as f64;
            (fan_in, *first as f64 * middle.iter().product::<u64>() as f64)
        }
    }
}

/// Uniform in [0, 1) with 53 random bits from words `2j` and `2j+1` of element `i`.
fn unit(rng: &RandomStream, i: u64, j: u32) -> f64 {
    let hi = rng.word(i, 2 * j) as u64;
    let lo = (rng.word(i, 2 * j + 1) >> 11) as u64;
    ((hi << 21) | lo) as f64 * (-53f64).exp2()
}

/// A standard normal value by Box–Muller from `u_0` and `u_1` of element `i`.
fn gaussian(rng: &RandomStream, i: u64) -> f64 {
    let r = (-2.0 * (1.0 - unit(rng, i, 0)).ln()).sqrt();
    r * (std::f64::consts::TAU * unit(rng, i, 1)).cos()
}

/// Quantizes generated values to `format` (a constant's values): `Format::quantize` with
/// `rounding`, drawing from `RandomStream::new(seed, stream)`.
pub fn quantize(values: &[f32], dims: &[u64], format: Format, rounding: Rounding, seed: u64, stream: u64) -> Result<Vec<f32>, String> {
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let mut out = vec![0.0; values.len()];
    format.quantize(values, &shape, rounding, &RandomStream::new(seed, stream), &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The name of a tensor's values: FNV-1a (64-bit) over the little-endian bytes of each f32.
pub fn digest(values: &[f32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("fnv1a64:{h:016x}")
}

/// Whether `s` has the form [`digest`] produces.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("fnv1a64:").is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_round_trip_through_their_dictionary() {
        for kind in [Kind::Zeros, Kind::Fill(6.0), Kind::Uniform { low: -1.0, high: 1.0 }, Kind::HeNormal, Kind::Load { path: "w.npz".into(), tensor: Some("fc".into()) }] {
            let r = Recipe { kind, seed: 3, stream: 9 };
            let back = Recipe::from_dict(&r.to_dict()).unwrap();
            assert_eq!(back.kind, r.kind);
        }
        let mut d = Recipe { kind: Kind::Ones, seed: 0, stream: 0 }.to_dict();
        d.insert("seed".into(), Attr::Int(1));
        assert!(Recipe::from_dict(&d).unwrap_err().contains("does not belong"));
    }

    #[test]
    fn generation_is_deterministic_and_has_the_stated_spread() {
        let r = Recipe { kind: Kind::HeNormal, seed: 0, stream: 1 };
        let a = r.generate(&[64, 256]).unwrap();
        assert_eq!(a, r.generate(&[64, 256]).unwrap());
        let var = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / a.len() as f64;
        assert!((var - 2.0 / 256.0).abs() < 0.1 * 2.0 / 256.0, "{var}");
        let u = Recipe { kind: Kind::Uniform { low: -1.0, high: 1.0 }, seed: 0, stream: 2 }.generate(&[10000]).unwrap();
        assert!(u.iter().all(|x| (-1.0..1.0).contains(x)));
        assert_ne!(digest(&a), digest(&Recipe { kind: Kind::HeNormal, seed: 0, stream: 2 }.generate(&[64, 256]).unwrap()));
        assert!(is_digest(&digest(&a)));
    }

    #[test]
    fn fans_follow_the_language() {
        assert_eq!(fans(&[16, 3, 3, 8]), (72.0, 144.0));
        assert_eq!(fans(&[10, 128]), (128.0, 10.0));
    }
}
