//! Conv2D, "same" padding, stride 1 (the GPU twin of `layers/conv.rs`): forward and backward
//! side by side, on cuDNN or on im2col patches and the products of `affine.rs`, whichever
//! `cuda/autotune.rs` chose for the batch size. Either way the same function:
//! forward writes the bias, then adds the kernel's products; backward writes the kernel, bias
//! and input gradients.

use super::affine::{affine_forward, bias_grad, input_grads, weight_grads};
use super::{Backward, Forward, Shared};
use crate::engine::cuda::cudnn::{ConvShape, CudnnConv};
use crate::engine::cuda::kernels::{Col2im, FillRows, Im2col, Transpose};
use crate::engine::cuda::Gpu;
use crate::model::Shape;
use anyhow::Result;
use cudarc::driver::CudaSlice;
use std::collections::HashMap;

pub struct Conv2d {
    h: usize,
    w: usize,
    c: usize,
    filters: usize,
    kernel: usize,
    /// The im2col patches, reused for their gradients in backward.
    cols: CudaSlice<f32>,
    /// cuDNN's path: the kernel and its gradient in KRSC.
    krsc: CudaSlice<f32>,
    krsc_grad: CudaSlice<f32>,
    /// The batch sizes that run on cuDNN, each with its descriptors and algorithms; the
    /// others run on im2col. Set before any graph is captured.
    on_cudnn: HashMap<usize, CudnnConv>,
}

impl Conv2d {
    pub fn new(
        gpu: &Gpu,
        input: Shape,
        filters: usize,
        kernel: usize,
        capacity: usize,
    ) -> Result<Self> {
        let Shape::Image { h, w, c } = input else {
            unreachable!("ModelSpec::place checks convolution inputs")
        };
        let kernel_len = kernel * kernel * c * filters;
        Ok(Conv2d {
            h,
            w,
            c,
            filters,
            kernel,
            cols: gpu.zeros::<f32>(capacity * h * w * kernel * kernel * c)?,
            krsc: gpu.zeros::<f32>(kernel_len)?,
            krsc_grad: gpu.zeros::<f32>(kernel_len)?,
            on_cudnn: HashMap::new(),
        })
    }

    /// Its geometry for a batch of `n`.
    pub fn shape(&self, n: usize) -> ConvShape {
        ConvShape {
            n,
            h: self.h,
            w: self.w,
            c: self.c,
            filters: self.filters,
            kernel: self.kernel,
        }
    }

    /// The kernel's values: `k·k·c × filters`.
    pub fn kernel_len(&self) -> usize {
        self.patch() * self.filters
    }

    fn patch(&self) -> usize {
        self.kernel * self.kernel * self.c
    }

    /// Batches of `n` run on cuDNN with `conv`'s algorithms from now on.
    pub fn run_on_cudnn(&mut self, n: usize, conv: CudnnConv) {
        self.on_cudnn.insert(n, conv);
    }

    pub fn forward(&self, shared: Shared, io: Forward) -> Result<()> {
        self.forward_on(shared, io, self.on_cudnn.get(&io.n))
    }

    pub fn backward(&self, shared: Shared, io: Backward) -> Result<()> {
        self.backward_on(shared, io, self.on_cudnn.get(&io.n))
    }

    /// The forward pass on cuDNN with `on_cudnn`'s algorithms, or on im2col.
    pub fn forward_on(
        &self,
        shared: Shared,
        io: Forward,
        on_cudnn: Option<&CudnnConv>,
    ) -> Result<()> {
        let gpu = shared.gpu;
        let (rows, patch, filters) = (io.n * self.h * self.w, self.patch(), self.filters);
        match (on_cudnn, shared.cudnn) {
            (Some(conv), Some(cudnn)) => {
                let algo = conv
                    .forward
                    .expect("a chosen convolution has its algorithms");
                let krsc = gpu.addr(&self.krsc);
                gpu.launch(Transpose {
                    x: io.weights,
                    y: krsc,
                    rows: patch,
                    cols: filters,
                })?;
                let bias = io.weights.offset::<f32>(patch * filters);
                gpu.launch(FillRows {
                    y: io.y,
                    bias,
                    rows,
                    cols: filters,
                })?;
                // SAFETY: `conv` describes this layer at this batch size; the buffers are the
                // network's, sized for its capacity.
                unsafe { conv.forward(cudnn, algo, (io.x, krsc, io.y), 1.0) }
            }
            _ => {
                let cols = gpu.addr(&self.cols);
                gpu.launch(Im2col {
                    x: io.x,
                    cols,
                    n: io.n,
                    h: self.h,
                    w: self.w,
                    c: self.c,
                    k: self.kernel,
                })?;
                affine_forward(shared, cols, io.weights, io.y, (rows, patch, filters))
            }
        }
    }

    /// The backward pass after a forward on the same path (cuDNN's reads the KRSC kernel its
    /// forward wrote; im2col's, the patches).
    pub fn backward_on(
        &self,
        shared: Shared,
        io: Backward,
        on_cudnn: Option<&CudnnConv>,
    ) -> Result<()> {
        let gpu = shared.gpu;
        let sizes = (io.n * self.h * self.w, self.patch(), self.filters);
        match (on_cudnn, shared.cudnn) {
            (Some(conv), Some(cudnn)) => {
                let chosen = "a chosen convolution has its algorithms";
                let krsc_grad = gpu.addr(&self.krsc_grad);
                let filter_algo = conv.backward_filter.expect(chosen);
                // SAFETY: as in forward_on.
                unsafe { conv.backward_filter(cudnn, filter_algo, (io.x, io.dy, krsc_grad))? };
                gpu.launch(Transpose {
                    x: krsc_grad,
                    y: io.grads,
                    rows: self.filters,
                    cols: self.patch(),
                })?;
                bias_grad(shared, io.dy, io.grads, sizes)?;
                if let Some(dx) = io.dx {
                    let data_algo = conv.backward_data.expect(chosen);
                    let krsc = gpu.addr(&self.krsc);
                    // SAFETY: as above.
                    unsafe { conv.backward_data(cudnn, data_algo, (krsc, io.dy, dx))? };
                }
                Ok(())
            }
            _ => {
                let cols = gpu.addr(&self.cols);
                weight_grads(shared, cols, io.dy, io.grads, sizes)?;
                let Some(dx) = io.dx else { return Ok(()) };
                input_grads(shared, io.dy, io.weights, cols, sizes)?;
                gpu.launch(Col2im {
                    cols,
                    dx,
                    n: io.n,
                    h: self.h,
                    w: self.w,
                    c: self.c,
                    k: self.kernel,
                })
            }
        }
    }
}
