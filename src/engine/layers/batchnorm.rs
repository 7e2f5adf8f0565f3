//! Batch normalization over the last axis of `[rows × channels]`: per channel after a
//! convolution (rows = N·H·W), per feature after a dense layer (rows = N). Keras semantics:
//! batch statistics in training, moving averages in evaluation.

use super::{Backward, Forward, Mode};
use crate::engine::cpu::reduce::{partials_len, reduce_rows, ROWS_PER_CHUNK};
use rayon::prelude::*;

pub const MOMENTUM: f64 = 0.99;
pub const EPSILON: f64 = 1e-3;

pub struct BatchNorm {
    channels: usize,
    per_sample: usize,
    /// Backward differs: batch statistics depend on the input, moving ones do not.
    last_mode: Mode,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// Per-channel scratch, kept so a step allocates nothing.
    batch_mean: Vec<f64>,
    mean_dy: Vec<f32>,
    mean_dy_xhat: Vec<f32>,
    partials: Vec<f64>,
    sums: Vec<f64>,
}

impl BatchNorm {
    pub fn new(per_sample: usize, channels: usize, capacity: usize) -> Self {
        let rows = capacity * per_sample / channels;
        BatchNorm {
            channels,
            per_sample,
            last_mode: Mode::Train,
            mean: vec![0.0; channels],
            inv_std: vec![0.0; channels],
            batch_mean: vec![0.0; channels],
            mean_dy: vec![0.0; channels],
            mean_dy_xhat: vec![0.0; channels],
            partials: vec![0.0; partials_len(rows, 2 * channels)],
            sums: vec![0.0; 2 * channels],
        }
    }

    pub fn forward(&mut self, io: Forward) {
        let c = self.channels;
        let rows = io.n * self.per_sample / c;
        let x = &io.x[..rows * c];
        self.last_mode = io.mode;
        let (gamma, beta) = io.weights.split_at(c);
        let (moving_mean, moving_var) = io.moving.split_at_mut(c);
        match io.mode {
            Mode::Train => {
                let sums = &mut self.sums[..c];
                reduce_rows(rows, &mut self.partials, sums, |range, s| {
                    for row in x[range.start * c..range.end * c].chunks_exact(c) {
                        for (s, v) in s.iter_mut().zip(row) {
                            *s += *v as f64;
                        }
                    }
                });
                for (m, s) in self.batch_mean.iter_mut().zip(sums.iter()) {
                    *m = s / rows as f64;
                }
                let mean = &self.batch_mean;
                // Two passes: the variance of centred values loses no precision to cancellation.
                reduce_rows(rows, &mut self.partials, sums, |range, s| {
                    for row in x[range.start * c..range.end * c].chunks_exact(c) {
                        for ((s, v), m) in s.iter_mut().zip(row).zip(mean.iter()) {
                            let d = *v as f64 - m;
                            *s += d * d;
                        }
                    }
                });
                for j in 0..c {
                    let var = sums[j] / rows as f64;
                    self.mean[j] = mean[j] as f32;
                    self.inv_std[j] = (1.0 / (var + EPSILON).sqrt()) as f32;
                    // The moving variance takes the unbiased estimate, as Keras and PyTorch do.
                    let unbiased = if rows > 1 {
                        var * rows as f64 / (rows - 1) as f64
                    } else {
                        var
                    };
                    moving_mean[j] =
                        (moving_mean[j] as f64 * MOMENTUM + mean[j] * (1.0 - MOMENTUM)) as f32;
                    moving_var[j] =
                        (moving_var[j] as f64 * MOMENTUM + unbiased * (1.0 - MOMENTUM)) as f32;
                }
            }
            Mode::Eval => {
                for j in 0..c {
                    self.mean[j] = moving_mean[j];
                    self.inv_std[j] = (1.0 / (moving_var[j] as f64 + EPSILON).sqrt()) as f32;
                }
            }
        }
        let (mean, inv_std) = (&self.mean, &self.inv_std);
        let chunk = ROWS_PER_CHUNK * c;
        io.y[..rows * c]
            .par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    for j in 0..c {
                        y[j] = gamma[j] * (x[j] - mean[j]) * inv_std[j] + beta[j];
                    }
                }
            });
    }

    pub fn backward(&mut self, io: Backward) {
        let c = self.channels;
        let rows = io.n * self.per_sample / c;
        let (x, dy) = (&io.x[..rows * c], &io.dy[..rows * c]);
        let (mean, inv_std) = (&self.mean, &self.inv_std);
        // sums[..c] = Σ dy (beta's gradient), sums[c..] = Σ dy·x̂ (gamma's gradient).
        reduce_rows(rows, &mut self.partials, &mut self.sums, |range, s| {
            let (sum_dy, sum_dy_xhat) = s.split_at_mut(c);
            let rows_x = x[range.start * c..range.end * c].chunks_exact(c);
            for (x, dy) in rows_x.zip(dy[range.start * c..range.end * c].chunks_exact(c)) {
                for j in 0..c {
                    let xhat = (x[j] - mean[j]) * inv_std[j];
                    sum_dy[j] += dy[j] as f64;
                    sum_dy_xhat[j] += (dy[j] * xhat) as f64;
                }
            }
        });
        let (gamma_grad, beta_grad) = io.grads.split_at_mut(c);
        for j in 0..c {
            beta_grad[j] = self.sums[j] as f32;
            gamma_grad[j] = self.sums[c + j] as f32;
        }
        let Some(dx) = io.dx else { return };
        let gamma = &io.weights[..c];
        for j in 0..c {
            (self.mean_dy[j], self.mean_dy_xhat[j]) = match self.last_mode {
                Mode::Train => (
                    (self.sums[j] / rows as f64) as f32,
                    (self.sums[c + j] / rows as f64) as f32,
                ),
                Mode::Eval => (0.0, 0.0),
            };
        }
        let (mean_dy, mean_dy_xhat) = (&self.mean_dy, &self.mean_dy_xhat);
        let chunk = ROWS_PER_CHUNK * c;
        dx[..rows * c]
            .par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .zip(dy.par_chunks(chunk))
            .for_each(|((dx, x), dy)| {
                for ((dx, x), dy) in dx
                    .chunks_exact_mut(c)
                    .zip(x.chunks_exact(c))
                    .zip(dy.chunks_exact(c))
                {
                    for j in 0..c {
                        let xhat = (x[j] - mean[j]) * inv_std[j];
                        dx[j] =
                            gamma[j] * inv_std[j] * (dy[j] - mean_dy[j] - xhat * mean_dy_xhat[j]);
                    }
                }
            });
    }
}
