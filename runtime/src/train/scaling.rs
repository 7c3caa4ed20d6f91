//! Loss scaling for narrow gradient formats: the loss (so every gradient) is multiplied by
//! a scale before the backward pass and the gradients divided by it before the update. A
//! step whose gradients hold an infinity or NaN overflowed: with dynamic scaling it is
//! skipped and the scale multiplied by `backoff`; after `interval` steps without overflow the
//! scale is multiplied by `growth`.

/// The loss-scaling policy and its state.
#[derive(Clone, Debug, PartialEq)]
pub enum LossScaling {
    None,
    Static(f64),
    Dynamic {
        scale: f64,
        growth: f64,
        backoff: f64,
        interval: usize,
        good_steps: usize,
    },
}

/// What to do with a step's gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleDecision {
    Apply,
    /// The gradients overflowed: leave the weights unchanged.
    Skip,
}

/// Whether every value is finite.
pub fn all_finite(values: &[f32]) -> bool {
    // Without the early exit, so that it runs as vector code (gradients are finite but for
    // the rare overflowing step).
    values.iter().fold(true, |finite, v| finite & v.is_finite())
}

impl LossScaling {
    pub fn dynamic(init: f64, growth: f64, backoff: f64, interval: usize) -> LossScaling {
        LossScaling::Dynamic {
            scale: init,
            growth,
            backoff,
            interval: interval.max(1),
            good_steps: 0,
        }
    }

    /// The scale of the next step.
    pub fn scale(&self) -> f64 {
        match self {
            LossScaling::None => 1.0,
            LossScaling::Static(s) => *s,
            LossScaling::Dynamic { scale, .. } => *scale,
        }
    }

    /// Records a step whose gradients did (not) overflow and says whether to apply it. Without
    /// dynamic scaling an overflowing step is applied (its non-finite values reach the weights,
    /// as they would in plain arithmetic).
    pub fn after_step(&mut self, overflow: bool) -> ScaleDecision {
        let LossScaling::Dynamic {
            scale,
            growth,
            backoff,
            interval,
            good_steps,
        } = self
        else {
            return ScaleDecision::Apply;
        };
        if overflow {
            *scale *= *backoff;
            *good_steps = 0;
            return ScaleDecision::Skip;
        }
        *good_steps += 1;
        if *good_steps >= *interval {
            *scale *= *growth;
            *good_steps = 0;
        }
        ScaleDecision::Apply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_scaling_backs_off_on_overflow_and_grows_after_the_interval() {
        let mut s = LossScaling::dynamic(1024.0, 2.0, 0.5, 2);
        assert_eq!(s.after_step(true), ScaleDecision::Skip);
        assert_eq!(s.scale(), 512.0);
        assert_eq!(s.after_step(false), ScaleDecision::Apply);
        assert_eq!(s.scale(), 512.0);
        assert_eq!(s.after_step(false), ScaleDecision::Apply);
        assert_eq!(s.scale(), 1024.0);
        let mut fixed = LossScaling::Static(8.0);
        assert_eq!(fixed.after_step(true), ScaleDecision::Apply);
        assert_eq!(fixed.scale(), 8.0);
        assert!(
            all_finite(&[1.0, -0.0])
                && !all_finite(&[1.0, f32::INFINITY])
                && !all_finite(&[f32::NAN])
        );
    }
}
