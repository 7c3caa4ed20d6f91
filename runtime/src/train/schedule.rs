//! Learning-rate schedules: the factor applied to the base rate in each epoch.

/// How the learning rate changes over the epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// × `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f64,
    },
    /// `½(1 + cos(π·e/E))` in epoch `e` of `E` (from 1 in the first epoch towards 0).
    Cosine,
}

impl Schedule {
    /// The factor of epoch `epoch` (from 0) of `epochs`.
    pub fn factor(&self, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, gamma } => gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine => {
                0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_follow_each_schedule() {
        assert_eq!(Schedule::Constant.factor(7, 10), 1.0);
        let step = Schedule::Step {
            every: 3,
            gamma: 0.5,
        };
        let f: Vec<f64> = (0..7).map(|e| step.factor(e, 7)).collect();
        assert_eq!(f, vec![1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
        assert_eq!(Schedule::Cosine.factor(0, 4), 1.0);
        assert!((Schedule::Cosine.factor(2, 4) - 0.5).abs() < 1e-15);
        assert!(Schedule::Cosine.factor(3, 4) < Schedule::Cosine.factor(2, 4));
    }
}
