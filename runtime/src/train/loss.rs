//! Loss values on the host, in f64, from the model's output (the gradient of the loss is
//! part of the IR). Also the one-hot targets the IR's loss gradients compare against.

/// The mean loss of a batch and how many of its rows were classified correctly (the largest
/// output, first on ties, equals the label).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossValue {
    pub loss: f64,
    pub correct: usize,
}

/// The index of the largest value (the first of equal ones; NaN never wins).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best
}

/// Mean over the rows of `log Σ_c e^{x_c} − x_label` for logits `[rows, classes]`.
pub fn softmax_cross_entropy(logits: &[f32], classes: usize, labels: &[u32]) -> LossValue {
    let mut total = 0.0;
    let mut correct = 0;
    for (row, &label) in logits.chunks(classes).zip(labels) {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let sum: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
        total += m + sum.ln() - row[label as usize] as f64;
        correct += usize::from(argmax(row) == label as usize);
    }
    LossValue {
        loss: total / labels.len().max(1) as f64,
        correct,
    }
}

/// Mean over every element of `(y − t)²`; rows are correct when the largest output is the
/// largest target.
pub fn mean_squared_error(outputs: &[f32], targets: &[f32], width: usize) -> LossValue {
    let total: f64 = outputs
        .iter()
        .zip(targets)
        .map(|(&y, &t)| (y as f64 - t as f64).powi(2))
        .sum();
    let correct = outputs
        .chunks(width)
        .zip(targets.chunks(width))
        .filter(|(y, t)| argmax(y) == argmax(t))
        .count();
    LossValue {
        loss: total / outputs.len().max(1) as f64,
        correct,
    }
}

/// Rows of `classes` values: 1 at the label, 0 elsewhere.
pub fn one_hot(labels: &[u32], classes: usize) -> Vec<f32> {
    let mut out = vec![0.0; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        out[row * classes + label as usize] = 1.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_of_the_classes() {
        let v = softmax_cross_entropy(&[0.0; 8], 4, &[2, 3]);
        assert!((v.loss - 4f64.ln()).abs() < 1e-12);
        assert_eq!(v.correct, 0); // ties go to class 0
        let v = softmax_cross_entropy(&[0.0, 5.0, 1.0, 9.0, 0.0, 0.0], 3, &[1, 0]);
        assert_eq!(v.correct, 2);
        assert_eq!(one_hot(&[1, 0], 2), vec![0.0, 1.0, 1.0, 0.0]);
        let m = mean_squared_error(&[1.0, 0.0, 0.0, 3.0], &[0.0, 1.0, 0.0, 1.0], 2);
        assert_eq!(m.loss, 1.5);
        assert_eq!(m.correct, 1);
    }
}
