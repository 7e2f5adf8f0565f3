//! The layers that act on each value alone: ReLU, Dropout and Flatten (the GPU twin of
//! `layers/elementwise.rs`).

use super::{Backward, Forward, Mode, Shared};
use crate::engine::cuda::kernels::{
    CopyValues, DeviceAddr, DropoutApply, ReluBackward, ReluForward,
};
use anyhow::Result;

pub fn relu_forward(shared: Shared, io: Forward) -> Result<()> {
    shared.gpu.launch(ReluForward {
        x: io.x,
        y: io.y,
        len: io.x_len,
    })
}

/// Reads the output: where ReLU passed its input on, the gradient passes too.
pub fn relu_backward(shared: Shared, io: Backward) -> Result<()> {
    let Some(dx) = io.dx else { return Ok(()) };
    shared.gpu.launch(ReluBackward {
        y: io.y,
        dy: io.dy,
        dx,
        len: io.x_len,
    })
}

/// NHWC images flatten in Keras' own order, so Flatten only copies.
pub fn flatten_forward(shared: Shared, io: Forward) -> Result<()> {
    shared.gpu.launch(CopyValues {
        x: io.x,
        y: io.y,
        len: io.x_len,
    })
}

pub fn flatten_backward(shared: Shared, io: Backward) -> Result<()> {
    let Some(dx) = io.dx else { return Ok(()) };
    shared.gpu.launch(CopyValues {
        x: io.dy,
        y: dx,
        len: io.x_len,
    })
}

/// Training: each value kept with probability 1 − rate and scaled by 1/(1 − rate), the mask
/// drawn from (seed, training step, layer) as the CPU draws it; evaluation: a copy.
pub fn dropout_forward(shared: Shared, io: Forward, rate: f32) -> Result<()> {
    match io.mode {
        Mode::Train => dropout_apply(shared, io.x, io.y, io.x_len, rate, io.index),
        Mode::Eval => shared.gpu.launch(CopyValues {
            x: io.x,
            y: io.y,
            len: io.x_len,
        }),
    }
}

/// The forward's mask, redrawn, on the gradient.
pub fn dropout_backward(shared: Shared, io: Backward, rate: f32) -> Result<()> {
    let Some(dx) = io.dx else { return Ok(()) };
    dropout_apply(shared, io.dy, dx, io.x_len, rate, io.index)
}

fn dropout_apply(
    shared: Shared,
    input: DeviceAddr,
    output: DeviceAddr,
    len: usize,
    rate: f32,
    layer: usize,
) -> Result<()> {
    shared.gpu.launch(DropoutApply {
        input,
        output,
        len,
        rate: rate.into(),
        seed: shared.dropout_seed,
        layer,
        state: shared.state,
    })
}
