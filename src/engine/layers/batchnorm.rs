//! Batch normalization over the last axis of `[rows × channels]`: per channel after a
//! convolution (rows = N·H·W), per feature after a dense layer (rows = N). Keras semantics:
//! batch statistics in training, moving averages in evaluation. GPU twin:
//! `cuda/layers/batchnorm.rs` (BN alone: the GPU fuses no neighbours).
//!
//! A ReLU just before a BN layer (MiniVGGNet's CONV → RELU → BN) can run inside it: the
//! input is then read as max(x, 0), and the gradient handed back only where x > 0. The
//! results are bit for bit those of the two layers apart, and the ReLU's own passes over
//! memory are saved.
//!
//! A MaxPool just after a BN layer (…→ BN → POOL) runs inside it too: the pool normalizes as
//! it reads, and the backward pass reads the pool's gradient in place (see `pool.rs`), so
//! neither BN's output nor the pool's input gradient is ever written.

use super::pool::{MaxPool, Normalized, PooledGrad};
use super::{Backward, Forward, Mode};
use crate::engine::cpu::reduce::{partials_len, reduce_rows, ROWS_PER_CHUNK};
use crate::engine::cpu::simd::{vectorized, Isa};
use rayon::prelude::*;
use std::ops::Range;

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
    /// The MaxPool after it, where that runs here: its output is then this layer's.
    pool: Option<MaxPool>,
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
            pool: None,
        }
    }

    /// The floats it keeps per sample of a batch of `per_sample` values each, in u128 as the
    /// memory plan counts: the f64 partial sums of two statistics per channel and row chunk.
    pub fn scratch_per_sample(per_sample: usize) -> u128 {
        (4 * per_sample as u128).div_ceil(ROWS_PER_CHUNK as u128)
    }

    /// Whether the MaxPool after it runs here.
    pub fn runs_pool(&self) -> bool {
        self.pool.is_some()
    }

    /// The layer running `pool`, the MaxPool after it, too.
    pub fn with_pool(self, pool: MaxPool) -> Self {
        BatchNorm {
            pool: Some(pool),
            ..self
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
                        // Slices of exactly c values and zipped loops: no bounds checks, so
                        // the compiler vectorizes over channels (each keeps its row order).
                        let (sum, sum_sq) = (&mut sum[..c], &mut sum_sq[..c]);
                        for row in x.chunks_exact(c) {
                            for ((&x, sum), sum_sq) in row.iter().zip(&mut *sum).zip(&mut *sum_sq) {
                                let v = x.max(floor) as f64;
                                *sum += v;
                                *sum_sq += v * v;
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
        let Some(pool) = &mut self.pool else {
            let y = &mut io.y[..rows * c];
            return normalize(isa, x, y, &self.scale, &self.shift, floor);
        };
        let normalized = Normalized {
            scale: &self.scale,
            shift: &self.shift,
            floor,
        };
        let pooled = Forward {
            weights: &[],
            moving: &mut [],
            x,
            y: io.y,
            n: io.n,
            mode: io.mode,
            dropout_key: io.dropout_key,
        };
        pool.forward_normalized(pooled, Some(normalized));
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
        let x = &io.x[..rows * c];
        // The gradient of this layer's output: given, or read in place from the pool's.
        let dy = match &self.pool {
            Some(pool) => OutputGrad::Pooled(pool.pooled_grad(io.dy)),
            None => OutputGrad::Dense(&io.dy[..rows * c]),
        };
        // sums[..c] = Σ dy (beta's gradient), sums[c..] = Σ dy·x; then Σ dy·x̂ =
        // inv_std·(Σ dy·x − mean·Σ dy) is gamma's gradient.
        reduce_rows(rows, &mut self.partials, &mut self.sums, |range, s| {
            let (sum_dy, sum_dy_x) = s.split_at_mut(c);
            vectorized!(isa, GradStatistics<'a> {
                x: &'a [f32] = &x[range.start * c..range.end * c],
                dy: OutputGrad<'a> = dy,
                first: usize = range.start,
                sums: (&'a mut [f64], &'a mut [f64]) = (sum_dy, sum_dy_x),
                c: usize = c,
                floor: f32 = floor,
            } => {
                grad_statistics(x, dy, c, first, sums, floor)
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

/// The gradient of a BatchNorm's output, row by row: `[rows × c]` values, or the gradient of
/// the MaxPool after it, read in place.
#[derive(Clone, Copy)]
enum OutputGrad<'a> {
    Dense(&'a [f32]),
    Pooled(PooledGrad<'a>),
}

/// Channels at a time that [`OutputGrad::block`] reads: a block of a row fits the stack.
const BLOCK: usize = 64;

impl OutputGrad<'_> {
    /// Channels `channels` of row r of the gradient (of `c` channels): in place where given,
    /// else made in `scratch`.
    #[inline(always)]
    fn block<'s>(
        &'s self,
        r: usize,
        (c, channels): (usize, Range<usize>),
        scratch: &'s mut [f32; BLOCK],
    ) -> &'s [f32] {
        match self {
            OutputGrad::Dense(dy) => &dy[r * c..][channels],
            OutputGrad::Pooled(dy) => {
                let out = &mut scratch[..channels.len()];
                dy.expand(r, channels, out);
                out
            }
        }
    }
}

/// Σ dy and Σ dy·max(x, floor) per channel over the rows of `x`, the first being row `first`.
#[inline(always)]
fn grad_statistics(
    x: &[f32],
    dy: OutputGrad,
    c: usize,
    first: usize,
    (sum_dy, sum_dy_x): (&mut [f64], &mut [f64]),
    floor: f32,
) {
    let mut scratch = [0.0; BLOCK];
    for (r, x) in x.chunks_exact(c).enumerate() {
        for j0 in (0..c).step_by(BLOCK) {
            let js = j0..(j0 + BLOCK).min(c);
            let dy = dy.block(first + r, (c, js.clone()), &mut scratch);
            let sums = sum_dy[js.clone()].iter_mut().zip(&mut sum_dy_x[js.clone()]);
            for ((&dy, &x), (sum_dy, sum_dy_x)) in dy.iter().zip(&x[js]).zip(sums) {
                *sum_dy += dy as f64;
                *sum_dy_x += (dy * x.max(floor)) as f64;
            }
        }
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
                let (scale, shift) = (&scale[..c], &shift[..c]);
                for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    let factors = scale.iter().zip(shift);
                    for ((y, &x), (&scale, &shift)) in y.iter_mut().zip(x).zip(factors) {
                        *y = x.max(floor) * scale + shift;
                    }
                }
            })
        });
}

/// `dx = dy·scale + max(x, floor)·x_scale + shift` per channel where x > floor, else 0.
fn input_grad(
    isa: Isa,
    dy: OutputGrad,
    x: &[f32],
    dx: &mut [f32],
    factors: (&[f32], &[f32], &[f32]),
    floor: f32,
) {
    let c = factors.0.len();
    let chunk = ROWS_PER_CHUNK * c;
    dx.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .enumerate()
        .for_each(|(i, (dx, x))| {
            vectorized!(isa, InputGrad<'a> {
                dx: &'a mut [f32] = dx,
                dy: OutputGrad<'a> = dy,
                first: usize = i * ROWS_PER_CHUNK,
                x: &'a [f32] = x,
                factors: (&'a [f32], &'a [f32], &'a [f32]) = factors,
                floor: f32 = floor,
            } => {
                input_grad_rows(dx, dy, first, x, factors, floor)
            })
        });
}

/// [`input_grad`] of the rows of `dx`, the first being row `first`.
#[inline(always)]
fn input_grad_rows(
    dx: &mut [f32],
    dy: OutputGrad,
    first: usize,
    x: &[f32],
    (scale, x_scale, shift): (&[f32], &[f32], &[f32]),
    floor: f32,
) {
    let c = scale.len();
    let mut scratch = [0.0; BLOCK];
    for (r, (dx, x)) in dx.chunks_exact_mut(c).zip(x.chunks_exact(c)).enumerate() {
        for j0 in (0..c).step_by(BLOCK) {
            let js = j0..(j0 + BLOCK).min(c);
            let dy = dy.block(first + r, (c, js.clone()), &mut scratch);
            let factors = scale[js.clone()]
                .iter()
                .zip(&x_scale[js.clone()])
                .zip(&shift[js.clone()]);
            let values = dx[js.clone()].iter_mut().zip(dy).zip(&x[js]);
            for (((dx, &dy), &x), ((&scale, &x_scale), &shift)) in values.zip(factors) {
                let v = dy * scale + x.max(floor) * x_scale + shift;
                // A bit mask, not a branch, as in ReLU's own backward.
                let keep = ((x > floor) as u32).wrapping_neg();
                *dx = f32::from_bits(v.to_bits() & keep);
            }
        }
    }
}
