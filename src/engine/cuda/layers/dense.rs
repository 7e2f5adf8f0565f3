//! Dense: `y = x · kernel + bias`, forward and backward side by side (the GPU twin of
//! `layers/dense.rs`; the products in `affine.rs`).

use super::affine::{affine_forward, input_grads, weight_grads};
use super::{Backward, Forward, Shared};
use crate::model::Shape;
use anyhow::Result;

pub struct Dense {
    inputs: usize,
    units: usize,
}

impl Dense {
    pub fn new(input: Shape, units: usize) -> Self {
        Dense {
            inputs: input.len(),
            units,
        }
    }

    pub fn forward(&self, shared: Shared, io: Forward) -> Result<()> {
        let sizes = (io.n, self.inputs, self.units);
        affine_forward(shared, io.x, io.weights, io.y, sizes)
    }

    pub fn backward(&self, shared: Shared, io: Backward) -> Result<()> {
        let sizes = (io.n, self.inputs, self.units);
        weight_grads(shared, io.x, io.dy, io.grads, sizes)?;
        match io.dx {
            Some(dx) => input_grads(shared, io.dy, io.weights, dx, sizes),
            None => Ok(()),
        }
    }
}
