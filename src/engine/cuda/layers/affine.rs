//! What Dense and Conv2D (on im2col patches) share, the GPU twin of `layers/affine.rs`:
//! `y = a · kernel + bias` over rows and its gradients, as cuBLAS products and column sums.

use super::Shared;
use crate::engine::cpu::matmul::Layout;
use crate::engine::cuda::kernels::{BiasGradFinish, DeviceAddr, FillRows};
use crate::engine::cuda::reduce::{column_partials, ColumnSums};
use anyhow::Result;

/// `y[rows × outputs] = a[rows × inputs] · kernel + bias`, the bias stored after the kernel
/// in `weights`.
pub fn affine_forward(
    shared: Shared,
    a: DeviceAddr,
    weights: DeviceAddr,
    y: DeviceAddr,
    (rows, inputs, outputs): (usize, usize, usize),
) -> Result<()> {
    shared.gpu.launch(FillRows {
        y,
        bias: weights.offset::<f32>(inputs * outputs),
        rows,
        cols: outputs,
    })?;
    shared.gpu.matmul(
        y,
        a,
        Layout::AsIs,
        weights,
        Layout::AsIs,
        rows,
        inputs,
        outputs,
        true,
    )
}

/// The kernel's gradient `aᵀ · dy` and the bias gradient after it in `grads`.
pub fn weight_grads(
    shared: Shared,
    a: DeviceAddr,
    dy: DeviceAddr,
    grads: DeviceAddr,
    (rows, inputs, outputs): (usize, usize, usize),
) -> Result<()> {
    shared.gpu.matmul(
        grads,
        a,
        Layout::Transposed,
        dy,
        Layout::AsIs,
        inputs,
        rows,
        outputs,
        false,
    )?;
    bias_grad(shared, dy, grads, (rows, inputs, outputs))
}

/// The bias gradient `Σ_rows dy`, stored after the `inputs × outputs` kernel gradient.
pub fn bias_grad(
    shared: Shared,
    dy: DeviceAddr,
    grads: DeviceAddr,
    (rows, inputs, outputs): (usize, usize, usize),
) -> Result<()> {
    let chunks = column_partials(
        shared.gpu,
        ColumnSums::Values { x: dy },
        rows,
        outputs,
        shared.partials,
    )?;
    shared.gpu.launch(BiasGradFinish {
        partials: shared.partials,
        chunks,
        cols: outputs,
        out: grads.offset::<f32>(inputs * outputs),
    })
}

/// The input's gradient `dy · kernelᵀ`.
pub fn input_grads(
    shared: Shared,
    dy: DeviceAddr,
    weights: DeviceAddr,
    dx: DeviceAddr,
    (rows, inputs, outputs): (usize, usize, usize),
) -> Result<()> {
    shared.gpu.matmul(
        dx,
        dy,
        Layout::AsIs,
        weights,
        Layout::Transposed,
        rows,
        outputs,
        inputs,
        false,
    )
}
