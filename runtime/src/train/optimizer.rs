//! SGD (momentum, Nesterov, weight decay) and Adam, with the update and the master copy
//! rounded into their formats.
//!
//! Per element, in f64 in the order written (`w` the master value, `g` the gradient as the
//! backward pass produced it, `S` the loss scale, `η` the learning rate of the step):
//!
//! - `ĝ = g / S + λ·w` (λ the weight decay);
//! - SGD: `v = f32(μ·v + ĝ)`, `d = v` (Nesterov: `d = ĝ + μ·v`); without momentum `d = ĝ`;
//! - Adam (step t from 1): `m = f32(β1·m + (1 − β1)·ĝ)`, `v = f32(β2·v + (1 − β2)·ĝ²)`,
//!   `d = (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε)`;
//! - the update `u = round_U(−η·d)` and the new master value `w = round_M(w + u)`, each
//!   rounded once from its f64 value into the `update` and `master` formats with their
//!   roundings (a non-float element-wise format goes through the nearest f32 first).
//!
//! Optimizer state (`v`, `m`) is kept in f32 (round to nearest). Stochastic roundings of step
//! `s` draw, for element `i` of parameter `p`, from `RandomStream::new(seed, 2^63 + s·2^16 +
//! 2p)` (update) and `… + 2p + 1` (master) at index `i`: nothing depends on thread count.

use crate::numerics::{FloatFormat, Format, PreparedRounding, RandomStream, Rounding};

/// The optimizer and its hyper-parameters (the learning rate is given per step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Sgd {
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
    },
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

/// The formats the weight update and the master copy are rounded into.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateFormats {
    pub update: (Format, Rounding),
    pub master: (Format, Rounding),
}

/// An optimizer with its state for a list of parameters.
#[derive(Clone, Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    formats: UpdateFormats,
    seed: u64,
    /// Momentum (SGD) or first moment (Adam) per parameter.
    first: Vec<Vec<f32>>,
    /// Second moment (Adam).
    second: Vec<Vec<f32>>,
    steps: u64,
}

const STREAM_BASE: u64 = 1 << 63;

/// Rounds one f64 value at a time into an element-wise float format: element `i` draws at
/// index `i` of the stream.
enum ElementRounding {
    /// Binary32 to nearest: the hardware conversion rounds exactly so.
    Binary32Nearest,
    /// `FloatFormat::round`, with the format's constants computed once.
    Float {
        rounding: PreparedRounding,
        stream: RandomStream,
    },
}

impl ElementRounding {
    /// The rounding into `format`, if it is a float format (others round whole tensors).
    fn new(format: &Format, rounding: Rounding, stream: RandomStream) -> Option<Self> {
        let f = format.as_float()?;
        Some(if *f == FloatFormat::ieee(8, 23) && rounding == Rounding::Nearest {
            ElementRounding::Binary32Nearest
        } else {
            ElementRounding::Float {
                rounding: PreparedRounding::new(*f, rounding),
                stream,
            }
        })
    }

    #[inline]
    fn round(&self, i: usize, x: f64) -> f32 {
        match self {
            ElementRounding::Binary32Nearest => x as f32,
            ElementRounding::Float { rounding, stream } => {
                rounding.round(x, stream.at(i as u64)) as f32
            }
        }
    }
}

/// Rounds f64 values into `format` (see the module documentation).
fn round_all(
    values: &[f64],
    format: Format,
    rounding: Rounding,
    stream: &RandomStream,
) -> Result<Vec<f32>, String> {
    if let Some(r) = ElementRounding::new(&format, rounding, *stream) {
        return Ok(values.iter().enumerate().map(|(i, &x)| r.round(i, x)).collect());
    }
    let nearest: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    let mut out = vec![0.0; values.len()];
    format
        .quantize(&nearest, &[values.len()], rounding, stream, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

impl Optimizer {
    /// An optimizer for parameters of `sizes` elements each; stochastic roundings use `seed`.
    pub fn new(
        kind: OptimizerKind,
        formats: UpdateFormats,
        seed: u64,
        sizes: &[usize],
    ) -> Optimizer {
        let zeros = || sizes.iter().map(|&n| vec![0.0; n]).collect::<Vec<_>>();
        let second = if matches!(kind, OptimizerKind::Adam { .. }) {
            zeros()
        } else {
            Vec::new()
        };
        let first = match kind {
            OptimizerKind::Sgd { momentum: 0.0, .. } => Vec::new(),
            _ => zeros(),
        };
        Optimizer {
            kind,
            formats,
            seed,
            first,
            second,
            steps: 0,
        }
    }

    /// How many steps have been applied.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The direction `d` of element `i` of parameter `p` (master value `wi`, gradient `gi`),
    /// updating the optimizer state (module documentation); `t` is the step from 1.
    #[inline]
    fn direction(&mut self, p: usize, i: usize, wi: f64, gi: f64, loss_scale: f64, t: u64) -> f64 {
        match self.kind {
            OptimizerKind::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                let gi = gi / loss_scale + weight_decay * wi;
                if momentum == 0.0 {
                    gi
                } else {
                    let v = &mut self.first[p][i];
                    *v = (momentum * *v as f64 + gi) as f32;
                    if nesterov {
                        gi + momentum * *v as f64
                    } else {
                        *v as f64
                    }
                }
            }
            OptimizerKind::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let gi = gi / loss_scale + weight_decay * wi;
                let m = &mut self.first[p][i];
                *m = (beta1 * *m as f64 + (1.0 - beta1) * gi) as f32;
                let v = &mut self.second[p][i];
                *v = (beta2 * *v as f64 + (1.0 - beta2) * gi * gi) as f32;
                let m_hat = self.first[p][i] as f64 / (1.0 - beta1.powi(t as i32));
                let v_hat = self.second[p][i] as f64 / (1.0 - beta2.powi(t as i32));
                m_hat / (v_hat.sqrt() + eps)
            }
        }
    }

    /// Applies one step: `weights[p]` (master values) from `grads[p]`, gradients of the loss
    /// multiplied by `loss_scale`, with learning rate `lr`.
    pub fn step(
        &mut self,
        weights: &mut [Vec<f32>],
        grads: &[&[f32]],
        loss_scale: f64,
        lr: f64,
    ) -> Result<(), String> {
        if weights.len() != grads.len() {
            return Err(format!(
                "{} parameters but {} gradients",
                weights.len(),
                grads.len()
            ));
        }
        let t = self.steps + 1;
        for (p, (w, g)) in weights.iter_mut().zip(grads).enumerate() {
            if w.len() != g.len() {
                return Err(format!(
                    "parameter {p} has {} values but its gradient {}",
                    w.len(),
                    g.len()
                ));
            }
            let base = STREAM_BASE + self.steps * (1 << 16) + 2 * p as u64;
            let UpdateFormats {
                update: (uf, ur),
                master: (mf, mr),
            } = self.formats;
            let update_stream = RandomStream::new(self.seed, base);
            let master_stream = RandomStream::new(self.seed, base + 1);
            let elementwise = ElementRounding::new(&uf, ur, update_stream)
                .zip(ElementRounding::new(&mf, mr, master_stream));
            if let Some((update, master)) = elementwise {
                // Float formats: one pass, each element rounded as it is computed.
                for i in 0..w.len() {
                    let d = self.direction(p, i, w[i] as f64, g[i] as f64, loss_scale, t);
                    let u = update.round(i, -lr * d);
                    w[i] = master.round(i, w[i] as f64 + u as f64);
                }
                continue;
            }
            let delta: Vec<f64> = (0..w.len())
                .map(|i| -lr * self.direction(p, i, w[i] as f64, g[i] as f64, loss_scale, t))
                .collect();
            let update = round_all(&delta, uf, ur, &update_stream)?;
            let sums: Vec<f64> = w
                .iter()
                .zip(&update)
                .map(|(&a, &b)| a as f64 + b as f64)
                .collect();
            *w = round_all(&sums, mf, mr, &master_stream)?;
        }
        self.steps = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats(update: &str, rounding: Rounding) -> UpdateFormats {
        let fp32 = Format::parse("fp32").unwrap();
        UpdateFormats {
            update: (Format::parse(update).unwrap(), rounding),
            master: (fp32, Rounding::Nearest),
        }
    }

    #[test]
    fn binary32_nearest_conversion_equals_the_exact_rounding() {
        // Ties at f32's last place (both parities), just off them, subnormals and their
        // ties, the overflow threshold and past it, zeros and NaN.
        let one_ulp = f64::from(f32::EPSILON);
        let tiny = f64::from(f32::from_bits(1));
        let max = f64::from(f32::MAX);
        let mut values = vec![0.0, -0.0, f64::NAN, f64::INFINITY, -f64::INFINITY, max, max * (1.0 + one_ulp / 4.0), max * (1.0 + one_ulp / 2.0), max * 2.0, 1e-50];
        for k in 0..64u32 {
            let x = 1.0 + f64::from(k) * one_ulp / 2.0;
            values.extend([x, -x, x + one_ulp / 1024.0, x - one_ulp / 1024.0, tiny * (f64::from(k) + 0.5), tiny * f64::from(k) / 3.0]);
        }
        let stream = RandomStream::new(1, 2);
        let fast = round_all(&values, Format::parse("fp32").unwrap(), Rounding::Nearest, &stream).unwrap();
        let f = FloatFormat::ieee(8, 23);
        for (i, (&x, y)) in values.iter().zip(&fast).enumerate() {
            let exact = f.round(x, Rounding::Nearest, stream.at(i as u64)) as f32;
            assert!(y.to_bits() == exact.to_bits() || (y.is_nan() && exact.is_nan()), "{x:e}: {y:e} against {exact:e}");
        }
    }

    #[test]
    fn sgd_with_momentum_and_decay_follows_the_formula() {
        let kind = OptimizerKind::Sgd {
            momentum: 0.5,
            weight_decay: 0.25,
            nesterov: false,
        };
        let mut opt = Optimizer::new(kind, formats("fp32", Rounding::Nearest), 0, &[2]);
        let mut w = vec![vec![1.0, -2.0]];
        opt.step(&mut w, &[&[4.0, 8.0]], 2.0, 0.5).unwrap();
        // ĝ = g/2 + w/4 = [2.25, 3.5]; v = ĝ; w − 0.5·v
        assert_eq!(w[0], vec![1.0 - 1.125, -2.0 - 1.75]);
        opt.step(&mut w, &[&[0.0, 0.0]], 1.0, 1.0).unwrap();
        // ĝ = w/4; v = 0.5·v + ĝ
        let v0 = 0.5 * 2.25 + (1.0f64 - 1.125) / 4.0;
        assert_eq!(w[0][0], ((1.0f64 - 1.125) - v0) as f32);
        assert_eq!(opt.steps(), 2);
    }

    #[test]
    fn adam_first_step_moves_each_weight_by_about_the_rate() {
        let kind = OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut opt = Optimizer::new(kind, formats("fp32", Rounding::Nearest), 0, &[3]);
        let mut w = vec![vec![0.0, 0.0, 0.0]];
        opt.step(&mut w, &[&[3.0, -0.001, 0.0]], 1.0, 0.01).unwrap();
        assert!(
            (w[0][0] + 0.01).abs() < 1e-6 && (w[0][1] - 0.01).abs() < 1e-5 && w[0][2] == 0.0,
            "{:?}",
            w
        );
    }

    #[test]
    fn a_low_precision_update_rounds_nearest_or_stochastically_and_reproducibly() {
        let kind = OptimizerKind::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        };
        // A step of 1/3 of an fp<5,2> gap near 1 (gaps of 0.25 there): to nearest it vanishes,
        // stochastically about a third of the elements move by a whole gap.
        let n = 3000;
        let g = vec![-0.25 / 3.0; n];
        let mut nearest = Optimizer::new(
            kind,
            UpdateFormats {
                update: (Format::parse("fp32").unwrap(), Rounding::Nearest),
                master: (Format::parse("fp<5,2>").unwrap(), Rounding::Nearest),
            },
            1,
            &[n],
        );
        let mut w = vec![vec![1.0; n]];
        nearest.step(&mut w, &[&g], 1.0, 1.0).unwrap();
        assert!(w[0].iter().all(|&x| x == 1.0));
        let sr = UpdateFormats {
            update: (Format::parse("fp32").unwrap(), Rounding::Nearest),
            master: (
                Format::parse("fp<5,2>").unwrap(),
                Rounding::parse("stochastic:9").unwrap(),
            ),
        };
        let run = || {
            let mut opt = Optimizer::new(kind, sr, 1, &[n]);
            let mut w = vec![vec![1.0; n]];
            opt.step(&mut w, &[&g], 1.0, 1.0).unwrap();
            w
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        let moved = a[0].iter().filter(|&&x| x == 1.25).count();
        assert!((800..1200).contains(&moved), "{moved} of {n} moved");
        assert!(a[0].iter().all(|&x| x == 1.0 || x == 1.25));
    }
}
