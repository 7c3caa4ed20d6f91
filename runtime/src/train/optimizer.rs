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
//! Parameters of float formats are cut into slices that the process's worker threads update
//! (`crate::parallel`), each loop specialised to its optimizer and roundings.

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
    /// Threads that update slices of the parameters (results do not depend on it).
    threads: usize,
}

const STREAM_BASE: u64 = 1 << 63;

/// Rounds one f64 value at a time into an element-wise float format: element `i` draws at
/// index `i` of the stream.
#[derive(Clone, Copy)]
enum ElementRounding {
    /// Binary32 to nearest: the hardware conversion rounds exactly so.
    Binary32Nearest,
    /// `FloatFormat::round`, with the format's constants computed once.
    Float(FloatRounding),
}

impl ElementRounding {
    /// The rounding into `format`, if it is a float format (others round whole tensors).
    fn new(format: &Format, rounding: Rounding, stream: RandomStream) -> Option<Self> {
        let f = format.as_float()?;
        Some(
            if *f == FloatFormat::ieee(8, 23) && rounding == Rounding::Nearest {
                ElementRounding::Binary32Nearest
            } else {
                ElementRounding::Float(FloatRounding(PreparedRounding::new(*f, rounding), stream))
            },
        )
    }
}

impl ElementRounding {
    fn round(&self, i: usize, x: f64) -> f32 {
        match *self {
            ElementRounding::Binary32Nearest => Binary32Nearest.round(i, x),
            ElementRounding::Float(r) => r.round(i, x),
        }
    }
}

/// One element-wise rounding, its kind fixed at compile time so that the update loops
/// specialise to it ([`ElementRounding`] picks one per parameter).
trait RoundElement: Sync {
    fn round(&self, i: usize, x: f64) -> f32;
}

/// [`ElementRounding::Binary32Nearest`].
struct Binary32Nearest;

impl RoundElement for Binary32Nearest {
    #[inline(always)]
    fn round(&self, _: usize, x: f64) -> f32 {
        x as f32
    }
}

/// `FloatFormat::round` with the format's constants computed once, element `i` drawing at
/// index `i` of the stream.
#[derive(Clone, Copy)]
struct FloatRounding(PreparedRounding, RandomStream);

impl RoundElement for FloatRounding {
    #[inline(always)]
    fn round(&self, i: usize, x: f64) -> f32 {
        self.0.round(x, self.1.at(i as u64)) as f32
    }
}

/// Parameters shorter than this many elements are updated by one thread.
const PARALLEL_SLICE: usize = 4096;

/// A contiguous run of one parameter's elements, from element `offset`, with its gradient,
/// its optimizer state and the roundings of its update and master value.
struct Slice<'a> {
    offset: usize,
    w: &'a mut [f32],
    g: &'a [f32],
    first: &'a mut [f32],
    second: &'a mut [f32],
    update: ElementRounding,
    master: ElementRounding,
}

/// The scalars of one step.
#[derive(Clone, Copy)]
struct StepScalars {
    kind: OptimizerKind,
    loss_scale: f64,
    lr: f64,
    t: u64,
}

impl Slice<'_> {
    /// Applies the step to every element (module documentation), with the roundings
    /// specialised.
    fn update(self, step: StepScalars) {
        use ElementRounding::{Binary32Nearest as B, Float as F};
        match (self.update, self.master) {
            (B, B) => self.update_with(step, &Binary32Nearest, &Binary32Nearest),
            (B, F(master)) => self.update_with(step, &Binary32Nearest, &master),
            (F(update), B) => self.update_with(step, &update, &Binary32Nearest),
            (F(update), F(master)) => self.update_with(step, &update, &master),
        }
    }

    #[inline(always)]
    fn update_with(
        self,
        step: StepScalars,
        update: &impl RoundElement,
        master: &impl RoundElement,
    ) {
        let (offset, lr) = (self.offset, step.lr);
        self.directions(step, |i, w, d| {
            let u = update.round(offset + i, -lr * d);
            *w = master.round(offset + i, *w as f64 + u as f64);
        });
    }

    /// Calls `each(i, w, d)` with the direction `d` of every element `i` (master value `w`),
    /// updating the optimizer state (module documentation).
    #[inline(always)]
    fn directions(self, step: StepScalars, mut each: impl FnMut(usize, &mut f32, f64)) {
        let StepScalars {
            kind,
            loss_scale,
            t,
            ..
        } = step;
        let Slice {
            w,
            g,
            first,
            second,
            ..
        } = self;
        match kind {
            OptimizerKind::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                let scaled = |w: f32, g: f32| g as f64 / loss_scale + weight_decay * w as f64;
                if momentum == 0.0 {
                    for (i, (w, &g)) in w.iter_mut().zip(g).enumerate() {
                        each(i, w, scaled(*w, g));
                    }
                } else {
                    for (i, ((w, &g), v)) in w.iter_mut().zip(g).zip(first).enumerate() {
                        let g = scaled(*w, g);
                        *v = (momentum * *v as f64 + g) as f32;
                        each(
                            i,
                            w,
                            if nesterov {
                                g + momentum * *v as f64
                            } else {
                                *v as f64
                            },
                        );
                    }
                }
            }
            OptimizerKind::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let (c1, c2) = (1.0 - beta1.powi(t as i32), 1.0 - beta2.powi(t as i32));
                let state = first.iter_mut().zip(second);
                for (i, ((w, &g), (m, v))) in w.iter_mut().zip(g).zip(state).enumerate() {
                    let g = g as f64 / loss_scale + weight_decay * *w as f64;
                    *m = (beta1 * *m as f64 + (1.0 - beta1) * g) as f32;
                    *v = (beta2 * *v as f64 + (1.0 - beta2) * g * g) as f32;
                    each(i, w, (*m as f64 / c1) / ((*v as f64 / c2).sqrt() + eps));
                }
            }
        }
    }
}

/// The first `len` elements of `rest` (all of them if fewer), leaving the others in `rest`.
fn take_front<'a>(rest: &mut &'a mut [f32], len: usize) -> &'a mut [f32] {
    let len = len.min(rest.len());
    let (front, back) = std::mem::take(rest).split_at_mut(len);
    *rest = back;
    front
}

/// A parameter's optimizer state (empty where the optimizer keeps none).
fn state(s: Option<&mut Vec<f32>>) -> &mut [f32] {
    s.map_or(&mut [], |v| v.as_mut_slice())
}

/// Rounds f64 values into `format` (see the module documentation).
fn round_all(
    values: &[f64],
    format: Format,
    rounding: Rounding,
    stream: &RandomStream,
) -> Result<Vec<f32>, String> {
    if let Some(r) = ElementRounding::new(&format, rounding, *stream) {
        return Ok(values
            .iter()
            .enumerate()
            .map(|(i, &x)| r.round(i, x))
            .collect());
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
            threads: crate::parallel::threads(),
        }
    }

    /// The same optimizer updating with `threads` threads (at least one).
    pub fn with_threads(self, threads: usize) -> Optimizer {
        Optimizer {
            threads: threads.max(1),
            ..self
        }
    }

    /// How many steps have been applied.
    pub fn steps(&self) -> u64 {
        self.steps
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
        if let Some(p) = weights
            .iter()
            .zip(grads)
            .position(|(w, g)| w.len() != g.len())
        {
            return Err(format!(
                "parameter {p} has {} values but its gradient {}",
                weights[p].len(),
                grads[p].len()
            ));
        }
        let t = self.steps + 1;
        let step = StepScalars {
            kind: self.kind,
            loss_scale,
            lr,
            t,
        };
        let mut slices = Vec::new();
        let (mut first, mut second) = (self.first.iter_mut(), self.second.iter_mut());
        for (p, (w, g)) in weights.iter_mut().zip(grads).enumerate() {
            let base = STREAM_BASE + self.steps * (1 << 16) + 2 * p as u64;
            let UpdateFormats {
                update: (uf, ur),
                master: (mf, mr),
            } = self.formats;
            let update_stream = RandomStream::new(self.seed, base);
            let master_stream = RandomStream::new(self.seed, base + 1);
            let (first, second) = (first.next(), second.next());
            let elementwise = ElementRounding::new(&uf, ur, update_stream)
                .zip(ElementRounding::new(&mf, mr, master_stream));
            if let Some((update, master)) = elementwise {
                // Float formats: each element rounded as it is computed, in slices.
                let n = w.len();
                let pieces = self.threads.min(n / PARALLEL_SLICE).max(1);
                let (mut w, mut g) = (&mut w[..], &g[..]);
                let (mut first, mut second) = (state(first), state(second));
                for piece in 0..pieces {
                    let len = n * (piece + 1) / pieces - n * piece / pieces;
                    let gp;
                    (gp, g) = g.split_at(len);
                    slices.push(Slice {
                        offset: n * piece / pieces,
                        w: take_front(&mut w, len),
                        g: gp,
                        first: take_front(&mut first, len),
                        second: take_front(&mut second, len),
                        update,
                        master,
                    });
                }
                continue;
            }
            // Other formats round whole tensors: the directions first, then the roundings.
            let mut delta = vec![0.0; w.len()];
            let unrounded = ElementRounding::Binary32Nearest;
            let all = Slice {
                offset: 0,
                w,
                g,
                first: state(first),
                second: state(second),
                update: unrounded,
                master: unrounded,
            };
            all.directions(step, |i, _, d| delta[i] = -lr * d);
            let update = round_all(&delta, uf, ur, &update_stream)?;
            let sums: Vec<f64> = w
                .iter()
                .zip(&update)
                .map(|(&a, &b)| a as f64 + b as f64)
                .collect();
            *w = round_all(&sums, mf, mr, &master_stream)?;
        }
        crate::parallel::for_each(self.threads, slices, |s| s.update(step));
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
        let mut values = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            max,
            max * (1.0 + one_ulp / 4.0),
            max * (1.0 + one_ulp / 2.0),
            max * 2.0,
            1e-50,
        ];
        for k in 0..64u32 {
            let x = 1.0 + f64::from(k) * one_ulp / 2.0;
            values.extend([
                x,
                -x,
                x + one_ulp / 1024.0,
                x - one_ulp / 1024.0,
                tiny * (f64::from(k) + 0.5),
                tiny * f64::from(k) / 3.0,
            ]);
        }
        let stream = RandomStream::new(1, 2);
        let fast = round_all(
            &values,
            Format::parse("fp32").unwrap(),
            Rounding::Nearest,
            &stream,
        )
        .unwrap();
        let f = FloatFormat::ieee(8, 23);
        for (i, (&x, y)) in values.iter().zip(&fast).enumerate() {
            let exact = f.round(x, Rounding::Nearest, stream.at(i as u64)) as f32;
            assert!(
                y.to_bits() == exact.to_bits() || (y.is_nan() && exact.is_nan()),
                "{x:e}: {y:e} against {exact:e}"
            );
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

    #[test]
    fn every_thread_count_gives_the_same_bits() {
        // Parameters long enough to be cut into slices (and one that is not), stochastic
        // roundings whose draws are addressed by element, several steps.
        let sizes = [3 * PARALLEL_SLICE + 17, 100, 2 * PARALLEL_SLICE];
        let kinds = [
            OptimizerKind::Sgd {
                momentum: 0.9,
                weight_decay: 1e-4,
                nesterov: true,
            },
            OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
        ];
        let update_formats = UpdateFormats {
            update: (
                Format::parse("fp16").unwrap(),
                Rounding::parse("stochastic:9").unwrap(),
            ),
            master: (
                Format::parse("bf16").unwrap(),
                Rounding::parse("stochastic:13").unwrap(),
            ),
        };
        let stream = RandomStream::new(5, 0);
        let value = |i: usize| stream.at(i as u64).word(0) as f32 / 4e9 - 0.5;
        for kind in kinds {
            let run = |threads: usize| {
                let mut opt = Optimizer::new(kind, update_formats, 3, &sizes).with_threads(threads);
                let mut w: Vec<Vec<f32>> =
                    sizes.iter().map(|&n| (0..n).map(value).collect()).collect();
                for step in 0..3 {
                    let g: Vec<Vec<f32>> = sizes
                        .iter()
                        .map(|&n| (0..n).map(|i| value(i + 7 * step)).collect())
                        .collect();
                    let g: Vec<&[f32]> = g.iter().map(|g| g.as_slice()).collect();
                    opt.step(&mut w, &g, 2.0, 0.01).unwrap();
                }
                w
            };
            let one = run(1);
            for threads in [2, 3, 8] {
                assert!(run(threads) == one, "{kind:?} on {threads} threads");
            }
        }
    }

    #[test]
    fn a_scaled_update_format_rounds_the_whole_update_at_once() {
        // int8 with a per-tensor scale: the update is quantized as one tensor.
        let kind = OptimizerKind::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        };
        let int8 = Format::parse("int8").unwrap();
        let update_formats = UpdateFormats {
            update: (int8, Rounding::Nearest),
            master: (Format::parse("fp32").unwrap(), Rounding::Nearest),
        };
        let g = [1.0f32, -0.5, 0.25, 0.003];
        let mut opt = Optimizer::new(kind, update_formats, 0, &[4]);
        let mut w = vec![vec![1.0f32; 4]];
        opt.step(&mut w, &[&g], 1.0, 0.5).unwrap();
        let delta: Vec<f32> = g.iter().map(|&g| -0.5 * g).collect();
        let mut u = vec![0.0; 4];
        int8.quantize(
            &delta,
            &[4],
            Rounding::Nearest,
            &RandomStream::new(0, 0),
            &mut u,
        )
        .unwrap();
        let expected: Vec<f32> = u.iter().map(|&u| 1.0 + u).collect();
        assert_eq!(w[0], expected);
        assert_ne!(
            u[3], delta[3],
            "the smallest step is not representable on the int8 grid"
        );
    }
}
