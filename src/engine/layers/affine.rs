//! What Dense and Conv2D (on im2col patches) share: `y = a · kernel + bias` over rows, where
//! `a` is the input itself (Dense) or its patches (Conv2D), and its gradients. GPU twin:
//! `cuda/layers/affine.rs`.

use crate::engine::cpu::matmul::{matmul, Layout};
use crate::engine::cpu::reduce::column_sums;

/// `y[rows × out] = a[rows × in] · kernel[in × out] + bias`.
pub(super) fn affine_forward(
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
pub(super) fn weight_grads(
    a: &[f32],
    dy: &[f32],
    grads: &mut [f32],
    bias_sums: BiasSums,
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
    bias_sums.compute(dy, bias_grad, rows);
}

/// The bias gradient `Σ_rows dy`, with its reduction scratch.
pub(super) struct BiasSums<'a> {
    pub partials: &'a mut [f64],
    pub sums: &'a mut [f64],
}

impl BiasSums<'_> {
    pub fn compute(self, dy: &[f32], bias_grad: &mut [f32], rows: usize) {
        let outputs = bias_grad.len();
        column_sums(&dy[..rows * outputs], rows, self.partials, self.sums);
        for (g, s) in bias_grad.iter_mut().zip(self.sums.iter()) {
            *g = *s as f32;
        }
    }
}

/// `da[rows × in] = dy · kernelᵀ`.
pub(super) fn input_grads(
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
