//! Conv2D and Dense: both are `y = a · kernel + bias` over rows, where `a` is the input itself
//! (Dense) or its im2col patches (Conv2D). Forward and backward of both sit here.

use super::{Backward, Forward};
use crate::engine::cpu::im2col::{col2im, im2col, ConvGeometry};
use crate::engine::cpu::matmul::{matmul, Layout};
use crate::engine::cpu::reduce::{column_sums, partials_len};
use crate::model::Shape;

/// `y[rows × out] = a[rows × in] · kernel[in × out] + bias`.
fn affine_forward(
    a: &[f32],
    weights: &[f32],
    y: &mut [f32],
    rows: usize,
    inputs: usize,
    outputs: usize,
) {
    let (kernel, bias) = weights.split_at(inputs * outputs);
    for row in y[..rows * outputs].chunks_exact_mut(outputs) {
        row.copy_from_slice(bias);
    }
    matmul(
        y,
        a,
        Layout::AsIs,
        kernel,
        Layout::AsIs,
        rows,
        inputs,
        outputs,
        true,
    );
}

/// Kernel gradient `aᵀ · dy` and bias gradient `Σ_rows dy`, written into `grads` (kernel, bias).
struct WeightGrads<'a> {
    partials: &'a mut [f64],
    sums: &'a mut [f64],
}

impl WeightGrads<'_> {
    fn compute(
        self,
        a: &[f32],
        dy: &[f32],
        grads: &mut [f32],
        rows: usize,
        inputs: usize,
        outputs: usize,
    ) {
        let (kernel_grad, bias_grad) = grads.split_at_mut(inputs * outputs);
        matmul(
            kernel_grad,
            a,
            Layout::Transposed,
            dy,
            Layout::AsIs,
            inputs,
            rows,
            outputs,
            false,
        );
        column_sums(&dy[..rows * outputs], rows, self.partials, self.sums);
        for (g, s) in bias_grad.iter_mut().zip(self.sums.iter()) {
            *g = *s as f32;
        }
    }
}

/// `da[rows × in] = dy · kernelᵀ`.
fn input_grads(
    dy: &[f32],
    weights: &[f32],
    da: &mut [f32],
    rows: usize,
    inputs: usize,
    outputs: usize,
) {
    let kernel = &weights[..inputs * outputs];
    matmul(
        da,
        dy,
        Layout::AsIs,
        kernel,
        Layout::Transposed,
        rows,
        outputs,
        inputs,
        false,
    );
}

pub struct Dense {
    inputs: usize,
    units: usize,
    partials: Vec<f64>,
    sums: Vec<f64>,
}

impl Dense {
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
        let grads = WeightGrads {
            partials: &mut self.partials,
            sums: &mut self.sums,
        };
        grads.compute(io.x, io.dy, io.grads, io.n, self.inputs, self.units);
        if let Some(dx) = io.dx {
            input_grads(io.dy, io.weights, dx, io.n, self.inputs, self.units);
        }
    }
}

pub struct Conv2d {
    geometry: ConvGeometry,
    filters: usize,
    /// The im2col patches of the last forward pass, reused for the patch gradients in backward.
    cols: Vec<f32>,
    partials: Vec<f64>,
    sums: Vec<f64>,
}

impl Conv2d {
    pub fn new(input: Shape, filters: usize, kernel: usize, capacity: usize) -> Self {
        let Shape::Image { h, w, c } = input else {
            unreachable!("ModelSpec::place checks conv inputs")
        };
        let geometry = ConvGeometry { h, w, c, k: kernel };
        let rows = capacity * h * w;
        Conv2d {
            geometry,
            filters,
            cols: vec![0.0; rows * geometry.patch_len()],
            partials: vec![0.0; partials_len(rows, filters)],
            sums: vec![0.0; filters],
        }
    }

    fn rows(&self, n: usize) -> usize {
        n * self.geometry.h * self.geometry.w
    }

    pub fn forward(&mut self, io: Forward) {
        let (rows, patch) = (self.rows(io.n), self.geometry.patch_len());
        let cols = &mut self.cols[..rows * patch];
        im2col(self.geometry, io.x, cols);
        affine_forward(cols, io.weights, io.y, rows, patch, self.filters);
    }

    pub fn backward(&mut self, io: Backward) {
        let (rows, patch) = (self.rows(io.n), self.geometry.patch_len());
        let cols = &mut self.cols[..rows * patch];
        let grads = WeightGrads {
            partials: &mut self.partials,
            sums: &mut self.sums,
        };
        grads.compute(cols, io.dy, io.grads, rows, patch, self.filters);
        if let Some(dx) = io.dx {
            // The patches are no longer needed: their buffer takes the patch gradients.
            input_grads(io.dy, io.weights, cols, rows, patch, self.filters);
            col2im(self.geometry, cols, dx);
        }
    }
}
