//! The SGD update on the device, the GPU twin of [`crate::engine::sgd::Sgd::step`]: the same
//! update in the same precision, its step count read from the device's step state so that a
//! captured graph's replays decay the rate as the CPU does.

use super::kernels::{CountUpdate, DeviceAddr, SgdStep};
use super::Gpu;
use crate::engine::sgd::SgdConfig;
use anyhow::Result;

/// What one update reads and writes: `len` weights, their gradients and velocities.
#[derive(Debug, Clone, Copy)]
pub struct SgdBuffers {
    pub weights: DeviceAddr,
    pub grads: DeviceAddr,
    pub velocity: DeviceAddr,
    pub len: usize,
    /// The step state, whose update count the step reads and then counts on.
    pub state: DeviceAddr,
}

/// Enqueues the update of every weight and counts it.
pub fn encode_step(gpu: &Gpu, config: &SgdConfig, buffers: SgdBuffers) -> Result<()> {
    gpu.launch(SgdStep {
        w: buffers.weights,
        g: buffers.grads,
        v: buffers.velocity,
        len: buffers.len,
        lr: config.lr.into(),
        decay: config.decay.into(),
        anneal_updates: config.anneal_updates,
        momentum: config.momentum.into(),
        nesterov: config.nesterov,
        weight_decay: config.weight_decay.into(),
        state: buffers.state,
    })?;
    gpu.launch(CountUpdate {
        state: buffers.state,
    })
}
