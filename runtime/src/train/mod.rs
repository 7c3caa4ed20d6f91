//! Host-side training arithmetic (spec in docs/training.md): the optimizers with their
//! state, learning-rate schedules, loss scaling with overflow detection, the loss values and
//! the rounding of the weight update and of the master copy into their formats. Knows
//! nothing of the IR: the compiler's trainer computes gradients with a backend and hands
//! them here.

mod loss;
mod optimizer;
mod scaling;
mod schedule;

pub use loss::{mean_squared_error, one_hot, softmax_cross_entropy, LossValue};
pub use optimizer::{Optimizer, OptimizerKind, UpdateFormats};
pub use scaling::{all_finite, LossScaling, ScaleDecision};
pub use schedule::Schedule;
