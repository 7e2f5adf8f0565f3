//! Batch normalization over the last axis of `[rows × channels]`, Keras semantics: batch
//! statistics in training, moving averages in evaluation (the GPU twin of
//! `layers/batchnorm.rs`, which also runs the ReLU before it and the pool after it; here BN
//! runs alone). Statistics are column sums in f64 ([`crate::engine::cuda::reduce`]).

use super::{Backward, Forward, Mode, Shared};
use crate::engine::cuda::kernels::{
    BnApply, BnBackwardDx, BnBackwardFinish, BnEvalStats, BnMeanFinish, BnVarFinish, DeviceAddr,
};
use crate::engine::cuda::reduce::{column_partials, ColumnSums};
use crate::engine::cuda::Gpu;
use crate::engine::layers::batchnorm::{EPSILON, MOMENTUM};
use anyhow::Result;
use cudarc::driver::CudaSlice;

pub struct BatchNorm {
    /// The values of one sample, and its channels (the last axis).
    per_sample: usize,
    channels: usize,
    /// Per channel: the mean, 1/std, the mean of dy and the mean of dy·x̂, one after another.
    stats: CudaSlice<f32>,
    /// The batch mean in f64, for the variance's pass.
    mean64: CudaSlice<f64>,
}

/// Where the four per-channel statistics lie.
struct Stats {
    mean: DeviceAddr,
    inv_std: DeviceAddr,
    mean_dy: DeviceAddr,
    mean_dy_xhat: DeviceAddr,
}

impl BatchNorm {
    pub fn new(gpu: &Gpu, per_sample: usize, channels: usize) -> Result<Self> {
        Ok(BatchNorm {
            per_sample,
            channels,
            stats: gpu.zeros::<f32>(4 * channels)?,
            mean64: gpu.zeros::<f64>(channels)?,
        })
    }

    fn stats(&self, gpu: &Gpu) -> Stats {
        let at = |k: usize| gpu.addr(&self.stats).offset::<f32>(k * self.channels);
        Stats {
            mean: at(0),
            inv_std: at(1),
            mean_dy: at(2),
            mean_dy_xhat: at(3),
        }
    }

    pub fn forward(&self, shared: Shared, io: Forward) -> Result<()> {
        let gpu = shared.gpu;
        let (c, rows) = (self.channels, io.n * self.per_sample / self.channels);
        let Stats { mean, inv_std, .. } = self.stats(gpu);
        let (moving_mean, moving_var) = (io.moving, io.moving.offset::<f32>(c));
        match io.mode {
            Mode::Train => {
                let mean64 = gpu.addr(&self.mean64);
                let values = ColumnSums::Values { x: io.x };
                let chunks = column_partials(gpu, values, rows, c, shared.partials)?;
                gpu.launch(BnMeanFinish {
                    partials: shared.partials,
                    chunks,
                    c,
                    rows,
                    mean64,
                })?;
                let squares = ColumnSums::CentredSquares { x: io.x, mean64 };
                let chunks = column_partials(gpu, squares, rows, c, shared.partials)?;
                gpu.launch(BnVarFinish {
                    partials: shared.partials,
                    chunks,
                    c,
                    rows,
                    mean64,
                    mean,
                    inv_std,
                    moving_mean,
                    moving_var,
                    momentum: MOMENTUM,
                    eps: EPSILON,
                })?;
            }
            Mode::Eval => gpu.launch(BnEvalStats {
                moving_mean,
                moving_var,
                c,
                eps: EPSILON,
                mean,
                inv_std,
            })?,
        }
        gpu.launch(BnApply {
            x: io.x,
            y: io.y,
            mean,
            inv_std,
            gamma: io.weights,
            beta: io.weights.offset::<f32>(c),
            rows,
            c,
        })
    }

    /// After a training forward pass: the batch statistics.
    pub fn backward(&self, shared: Shared, io: Backward) -> Result<()> {
        let gpu = shared.gpu;
        let (c, rows) = (self.channels, io.n * self.per_sample / self.channels);
        let Stats {
            mean,
            inv_std,
            mean_dy,
            mean_dy_xhat,
        } = self.stats(gpu);
        let sums = ColumnSums::GradAndGradTimesNormalized {
            x: io.x,
            dy: io.dy,
            mean,
            inv_std,
        };
        let chunks = column_partials(gpu, sums, rows, c, shared.partials)?;
        gpu.launch(BnBackwardFinish {
            partials: shared.partials,
            chunks,
            c,
            rows,
            training: true,
            gamma_grad: io.grads,
            beta_grad: io.grads.offset::<f32>(c),
            mean_dy,
            mean_dy_xhat,
        })?;
        let Some(dx) = io.dx else { return Ok(()) };
        gpu.launch(BnBackwardDx {
            x: io.x,
            dy: io.dy,
            mean,
            inv_std,
            gamma: io.weights,
            mean_dy,
            mean_dy_xhat,
            rows,
            c,
            dx,
        })
    }
}
