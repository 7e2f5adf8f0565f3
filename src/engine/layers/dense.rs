//! Dense: `y = x · kernel + bias`, its forward and backward side by side (the products in
//! `affine.rs`, shared with Conv2D's im2col path). GPU twin: `cuda/layers/dense.rs`.

use super::affine::{affine_forward, input_grads, weight_grads, BiasSums};
use super::{Backward, Forward};
use crate::engine::cpu::reduce::partials_len;
use crate::model::Shape;

pub struct Dense {
    inputs: usize,
    units: usize,
    partials: Vec<f64>,
    sums: Vec<f64>,
}

impl Dense {
    /// The floats it takes per sample of a batch beyond its output, in u128 as the memory
    /// plan counts: `gemm`'s packed copies of the weight gradient's operands (`aᵀ · dy`),
    /// whose depth is the batch, at most `inputs + units` a sample.
    pub fn scratch_per_sample(inputs: usize, units: usize) -> u128 {
        inputs as u128 + units as u128
    }

    pub fn new(input: Shape, units: usize, capacity: usize) -> Self {
        Dense {
            inputs: input.len(),
            units,
            partials: vec![0.0; partials_len(capacity, units)],
            sums: vec![0.0; units],
        }
    }

    pub fn forward(&mut self, io: Forward) {
        affine_forward(io.x, io.weights, io.y, io.n, self.inputs, self.units);
    }

    pub fn backward(&mut self, io: Backward) {
        let bias_sums = BiasSums {
            partials: &mut self.partials,
            sums: &mut self.sums,
        };
        let (n, inputs, units) = (io.n, self.inputs, self.units);
        weight_grads(io.x, io.dy, io.grads, bias_sums, n, inputs, units);
        if let Some(dx) = io.dx {
            input_grads(io.dy, io.weights, dx, io.n, self.inputs, self.units);
        }
    }
}
