//! Batch normalization over the last axis of `[rows × channels]`: per channel after a
//! convolution (rows = N·H·W), per feature after a dense layer (rows = N). Keras semantics:
//! batch statistics in training, moving averages in evaluation.
//!
//! A ReLU just before a BN layer (MiniVGGNet's CONV → RELU → BN) can run inside it: the
//! input is then read as max(x, 0), and the gradient handed back only where x > 0. The
//! results are bit for bit those of the two layers apart, and the ReLU's own passes over
//! memory are saved (about 4 of 65 ms in MiniVGGNet's training step, `minivgg bench`).

use super::{Backward, Forward, Mode};
use crate::engine::cpu::reduce::{partials_len, reduce_rows, ROWS_PER_CHUNK};
use crate::engine::cpu::simd::{vectorized, Isa};
use rayon::prelude::*;

pub const MOMENTUM: f64 = 0.99;
pub const EPSILON: f64 = 1e-3;

pub struct BatchNorm {
    /// Its loops are compiled for this instruction set.
    isa: Isa,
    channels: usize,
    per_sample: usize,
    /// The lowest input value taken as is: 0 where the ReLU before runs here, else −∞.
    floor: f32,
    /// Backward differs: batch statistics depend on the input, moving ones do not.
    last_mode: Mode,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// Per-channel factors of the elementwise pass (forward: y = x·scale + shift; backward:
    /// dx = dy·scale + x·x_scale + shift), kept so a step allocates nothing.
    scale: Vec<f32>,
    x_scale: Vec<f32>,
    shift: Vec<f32>,
    partials: Vec<f64>,
    sums: Vec<f64>,
}

impl BatchNorm {
    /// BN over `channels`, sized for `capacity` samples; `relu_input`: the ReLU before it
    /// runs here (see the module's note).
    pub fn new(
        isa: Isa,
        per_sample: usize,
        channels: usize,
        capacity: usize,
        relu_input: bool,
    ) -> Self {
        let rows = capacity * per_sample / channels;
        BatchNorm {
            isa,
            channels,
            per_sample,
            floor: if relu_input { 0.0 } else { f32::NEG_INFINITY },
            last_mode: Mode::Train,
            mean: vec![0.0; channels],
            inv_std: vec![0.0; channels],
            scale: vec![0.0; channels],
            x_scale: vec![0.0; channels],
            shift: vec![0.0; channels],
            partials: vec![0.0; partials_len(rows, 2 * channels)],
            sums: vec![0.0; 2 * channels],
        }
    }

    pub fn forward(&mut self, io: Forward) {
        let (c, floor, isa) = (self.channels, self.floor, self.isa);
        let rows = io.n * self.per_sample / c;
        let x = &io.x[..rows * c];
        self.last_mode = io.mode;
        match io.mode {
            Mode::Train => {
                let (moving_mean, moving_var) = io.moving.split_at_mut(c);
                // One pass for Σx and Σx², in f64: with at most a few million rows per
                // channel, E[x²] − E[x]² loses nothing that matters to cancellation.
                reduce_rows(rows, &mut self.partials, &mut self.sums, |range, s| {
                    let (sum, sum_sq) = s.split_at_mut(c);
                    vectorized!(isa, Statistics<'a> {
                        x: &'a [f32] = &x[range.start * c..range.end * c],
                        sum: &'a mut [f64] = sum,
                        sum_sq: &'a mut [f64] = sum_sq,
                        c: usize = c,
                        floor: f32 = floor,
                    } => {
                        for row in x.chunks_exact(c) {
                            for j in 0..c {
                                let v = row[j].max(floor) as f64;
                                sum[j] += v;
                                sum_sq[j] += v * v;
                            }
                        }
                    })
                });
                for j in 0..c {
                    let mean = self.sums[j] / rows as f64;
                    let var = (self.sums[c + j] / rows as f64 - mean * mean).max(0.0);
                    self.mean[j] = mean as f32;
                    self.inv_std[j] = (1.0 / (var + EPSILON).sqrt()) as f32;
                    // The moving variance takes the unbiased estimate, as Keras and PyTorch do.
                    let unbiased = if rows > 1 {
                        var * rows as f64 / (rows - 1) as f64
                    } else {
                        var
                    };
                    moving_mean[j] =
                        (moving_mean[j] as f64 * MOMENTUM + mean * (1.0 - MOMENTUM)) as f32;
                    moving_var[j] =
                        (moving_var[j] as f64 * MOMENTUM + unbiased * (1.0 - MOMENTUM)) as f32;
                }
            }
            Mode::Eval => self.use_moving_statistics(io.moving),
        }
        self.set_affine(io.weights);
        normalize(
            isa,
            x,
            &mut io.y[..rows * c],
            &self.scale,
            &self.shift,
            floor,
        );
    }

    /// The evaluation-mode output as `max(x, 0)·scale + shift` per channel, for a layer that
    /// runs the ReLU before it: `(scale, shift)`, for the convolution before to apply as it
    /// stores its outputs (`Network::forward`).
    pub fn eval_relu_affine(&mut self, weights: &[f32], moving: &[f32]) -> (&[f32], &[f32]) {
        assert_eq!(
            self.floor, 0.0,
            "only a BatchNorm that runs the ReLU before it"
        );
        self.last_mode = Mode::Eval;
        self.use_moving_statistics(moving);
        self.set_affine(weights);
        (&self.scale, &self.shift)
    }

    fn use_moving_statistics(&mut self, moving: &[f32]) {
        let (moving_mean, moving_var) = moving.split_at(self.channels);
        for j in 0..self.channels {
            self.mean[j] = moving_mean[j];
            self.inv_std[j] = (1.0 / (moving_var[j] as f64 + EPSILON).sqrt()) as f32;
        }
    }

    /// y = γ·(x − mean)·inv_std + β, as one multiply-add per value: `scale` and `shift`.
    fn set_affine(&mut self, weights: &[f32]) {
        let (gamma, beta) = weights.split_at(self.channels);
        for j in 0..self.channels {
            self.scale[j] = gamma[j] * self.inv_std[j];
            self.shift[j] = beta[j] - self.mean[j] * self.scale[j];
        }
    }

    pub fn backward(&mut self, io: Backward) {
        let (c, floor, isa) = (self.channels, self.floor, self.isa);
        let rows = io.n * self.per_sample / c;
        let (x, dy) = (&io.x[..rows * c], &io.dy[..rows * c]);
        // sums[..c] = Σ dy (beta's gradient), sums[c..] = Σ dy·x; then Σ dy·x̂ =
        // inv_std·(Σ dy·x − mean·Σ dy) is gamma's gradient.
        reduce_rows(rows, &mut self.partials, &mut self.sums, |range, s| {
            let (sum_dy, sum_dy_x) = s.split_at_mut(c);
            let rows = range.start * c..range.end * c;
            vectorized!(isa, GradStatistics<'a> {
                x: &'a [f32] = &x[rows.clone()],
                dy: &'a [f32] = &dy[rows],
                sum_dy: &'a mut [f64] = sum_dy,
                sum_dy_x: &'a mut [f64] = sum_dy_x,
                c: usize = c,
                floor: f32 = floor,
            } => {
                for (x, dy) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
                    for j in 0..c {
                        sum_dy[j] += dy[j] as f64;
                        sum_dy_x[j] += (dy[j] * x[j].max(floor)) as f64;
                    }
                }
            })
        });
        let (gamma_grad, beta_grad) = io.grads.split_at_mut(c);
        for j in 0..c {
            let (mean, inv_std) = (self.mean[j] as f64, self.inv_std[j] as f64);
            let sum_dy_xhat = inv_std * (self.sums[c + j] - mean * self.sums[j]);
            beta_grad[j] = self.sums[j] as f32;
            gamma_grad[j] = sum_dy_xhat as f32;
            // dx = γ·inv_std·(dy − mean(dy) − x̂·mean(dy·x̂)) in training (the statistics
            // depend on x), γ·inv_std·dy in evaluation: a·dy + b·x + d per channel.
            let a = io.weights[j] as f64 * inv_std;
            let (mean_dy, mean_dy_xhat) = match self.last_mode {
                Mode::Train => (self.sums[j] / rows as f64, sum_dy_xhat / rows as f64),
                Mode::Eval => (0.0, 0.0),
            };
            let b = -a * inv_std * mean_dy_xhat;
            self.scale[j] = a as f32;
            self.x_scale[j] = b as f32;
            self.shift[j] = (-a * mean_dy - b * mean) as f32;
        }
        let Some(dx) = io.dx else { return };
        let factors = (&self.scale[..], &self.x_scale[..], &self.shift[..]);
        input_grad(isa, dy, x, &mut dx[..rows * c], factors, floor);
    }
}

/// `y = max(x, floor)·scale + shift` per channel (the last axis).
fn normalize(isa: Isa, x: &[f32], y: &mut [f32], scale: &[f32], shift: &[f32], floor: f32) {
    let c = scale.len();
    let chunk = ROWS_PER_CHUNK * c;
    y.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(y, x)| {
            vectorized!(isa, Normalize<'a> {
                y: &'a mut [f32] = y,
                x: &'a [f32] = x,
                scale: &'a [f32] = scale,
                shift: &'a [f32] = shift,
                c: usize = c,
                floor: f32 = floor,
            } => {
                for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    for j in 0..c {
                        y[j] = x[j].max(floor) * scale[j] + shift[j];
                    }
                }
            })
        });
}

/// `dx = dy·scale + max(x, floor)·x_scale + shift` per channel where x > floor, else 0.
fn input_grad(
    isa: Isa,
    dy: &[f32],
    x: &[f32],
    dx: &mut [f32],
    (scale, x_scale, shift): (&[f32], &[f32], &[f32]),
    floor: f32,
) {
    let c = scale.len();
    let chunk = ROWS_PER_CHUNK * c;
    dx.par_chunks_mut(chunk)
        .zip(dy.par_chunks(chunk))
        .zip(x.par_chunks(chunk))
        .for_each(|((dx, dy), x)| {
            vectorized!(isa, InputGrad<'a> {
                dx: &'a mut [f32] = dx,
                dy: &'a [f32] = dy,
                x: &'a [f32] = x,
                scale: &'a [f32] = scale,
                x_scale: &'a [f32] = x_scale,
                shift: &'a [f32] = shift,
                c: usize = c,
                floor: f32 = floor,
            } => {
                let rows = dx.chunks_exact_mut(c).zip(dy.chunks_exact(c));
                for ((dx, dy), x) in rows.zip(x.chunks_exact(c)) {
                    for j in 0..c {
                        let v = dy[j] * scale[j] + x[j].max(floor) * x_scale[j] + shift[j];
                        // A bit mask, not a branch, as in ReLU's own backward.
                        let keep = ((x[j] > floor) as u32).wrapping_neg();
                        dx[j] = f32::from_bits(v.to_bits() & keep);
                    }
                }
            })
        });
}
