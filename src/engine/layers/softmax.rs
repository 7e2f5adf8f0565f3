//! Softmax and categorical cross-entropy, fused: the loss and its gradient come straight from
//! the logits through log-sum-exp, which neither overflows nor takes the log of zero. GPU
//! twin: `cuda/layers/softmax.rs`.

/// Row-wise softmax of `logits[n × classes]`.
pub fn softmax_forward(logits: &[f32], probs: &mut [f32], classes: usize) {
    for (p, z) in probs
        .chunks_exact_mut(classes)
        .zip(logits.chunks_exact(classes))
    {
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0f32;
        for (p, z) in p.iter_mut().zip(z) {
            *p = (z - max).exp();
            total += *p;
        }
        for p in p.iter_mut() {
            *p /= total;
        }
    }
}

/// What one batch contributes to the epoch's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchMetrics {
    /// Sum over the batch of −log p(true class).
    pub loss_sum: f64,
    /// Samples whose highest logit is the true class.
    pub correct: usize,
    pub samples: usize,
}

impl std::ops::AddAssign for BatchMetrics {
    fn add_assign(&mut self, other: Self) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.samples += other.samples;
    }
}

impl BatchMetrics {
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }
}

/// Cross-entropy of `logits[n × classes]` against integer labels (the one-hot targets'
/// indices). With `grad`, writes d(mean loss)/d(logits) = (softmax − one-hot) / n.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    mut grad: Option<&mut [f32]>,
) -> BatchMetrics {
    let n = labels.len();
    let mut metrics = BatchMetrics {
        samples: n,
        ..Default::default()
    };
    for (i, (z, &label)) in logits.chunks_exact(classes).zip(labels).enumerate() {
        let label = label as usize;
        let (mut argmax, mut max) = (0, f32::NEG_INFINITY);
        for (j, &v) in z.iter().enumerate() {
            if v > max {
                (argmax, max) = (j, v);
            }
        }
        let sum_exp: f64 = z.iter().map(|&v| ((v - max) as f64).exp()).sum();
        let log_sum_exp = max as f64 + sum_exp.ln();
        metrics.loss_sum += log_sum_exp - z[label] as f64;
        metrics.correct += usize::from(argmax == label);
        if let Some(grad) = grad.as_deref_mut() {
            for (j, (g, &v)) in grad[i * classes..(i + 1) * classes]
                .iter_mut()
                .zip(z)
                .enumerate()
            {
                let p = (v as f64 - log_sum_exp).exp();
                *g = ((p - f64::from(u8::from(j == label))) / n as f64) as f32;
            }
        }
    }
    metrics
}
