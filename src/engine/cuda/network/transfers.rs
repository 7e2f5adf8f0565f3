//! The host's side of a [`CudaNetwork`]: its state copied back into a host network, and
//! the batches, weights and results the parity tests move across, one batch run at once.

use super::{CudaNetwork, STATE_ITERATIONS, STATE_LEN, STATE_TRAIN_STEPS};
use crate::engine::sgd::Sgd;
use crate::engine::{BatchMetrics, Mode, Network};
use anyhow::Result;

impl CudaNetwork {
    /// Copies the trained state back into the host network and optimizer.
    pub fn download_into(&self, net: &mut Network, sgd: &mut Sgd) -> Result<()> {
        net.params = self.gpu.download(&self.params, net.params.len())?;
        net.moving = self.gpu.download(&self.moving, net.moving.len())?;
        sgd.velocity = self.gpu.download(&self.velocity, sgd.velocity.len())?;
        let state = self.gpu.download(&self.state, STATE_LEN)?;
        net.train_steps = state[STATE_TRAIN_STEPS];
        sgd.iterations = state[STATE_ITERATIONS];
        Ok(())
    }

    /// The gradients of the last backward pass (for tests).
    pub fn download_grads(&self) -> Result<Vec<f32>> {
        self.gpu.download(&self.grads, self.param_count())
    }

    pub fn download_moving(&self) -> Result<Vec<f32>> {
        self.gpu
            .download(&self.moving, self.ranges.last().map_or(0, |r| r.moving.end))
    }

    /// Class probabilities of the last forward pass, `[n × classes]`.
    pub fn download_probabilities(&self, n: usize) -> Result<Vec<f32>> {
        self.gpu
            .download(&self.acts[self.placed.len()], n * self.classes)
    }

    /// The input buffer's first `n` images (NHWC f32).
    pub fn download_input(&self, n: usize) -> Result<Vec<f32>> {
        self.gpu
            .download(&self.acts[0], n * self.placed[0].input.len())
    }

    /// Replaces the weights (the optimizer's state stays).
    pub fn upload_params(&mut self, params: &[f32]) -> Result<()> {
        self.gpu.upload(params, &mut self.params)
    }

    /// Puts a host batch (NHWC f32) and its labels on the device (tests; training gathers on
    /// the device).
    pub fn upload_batch(&mut self, input: &[f32], labels: &[u8]) -> Result<()> {
        let labels: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        self.gpu.upload(input, &mut self.acts[0])?;
        self.gpu.upload(&labels, &mut self.labels)
    }

    /// [`Network::train_batch`] from a host batch, run at once: forward in training mode, the
    /// loss and backward, leaving the gradients on the device.
    pub fn train_batch(&mut self, input: &[f32], labels: &[u8]) -> Result<BatchMetrics> {
        self.run_batch(input, labels, Mode::Train)
    }

    /// A forward pass in evaluation mode and the loss, from a host batch, run at once.
    pub fn eval_batch(&mut self, input: &[f32], labels: &[u8]) -> Result<BatchMetrics> {
        self.run_batch(input, labels, Mode::Eval)
    }

    fn run_batch(&mut self, input: &[f32], labels: &[u8], mode: Mode) -> Result<BatchMetrics> {
        let n = labels.len();
        // Before the upload: choosing a convolution's path overwrites activations.
        self.prepare(&[n])?;
        self.upload_batch(input, labels)?;
        let metrics = self.gpu.zeros::<f64>(3)?;
        self.encode_forward(n, mode)?;
        self.encode_loss(n, mode, None, self.gpu.addr(&metrics))?;
        if mode == Mode::Train {
            self.encode_backward(n)?;
            self.encode_end_pass(n, mode)?;
        }
        let m = self.gpu.download(&metrics, 3)?;
        Ok(BatchMetrics {
            loss_sum: m[0],
            correct: m[1] as usize,
            samples: m[2] as usize,
        })
    }

    /// [`Sgd::step`] on the device, run at once.
    pub fn sgd_step(&self) -> Result<()> {
        self.encode_sgd()?;
        self.gpu.synchronize()
    }

    pub fn download_params(&self) -> Result<Vec<f32>> {
        self.gpu.download(&self.params, self.param_count())
    }

    /// The optimizer's velocity, one value per trainable parameter.
    pub fn download_velocity(&self) -> Result<Vec<f32>> {
        self.gpu.download(&self.velocity, self.param_count())
    }
}
