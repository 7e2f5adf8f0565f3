//! 2×2 max pooling, stride 2, over NHWC images (the GPU twin of `layers/pool.rs`, which also
//! runs its neighbours; here the pool runs alone).

use super::{Backward, Forward, Shared};
use crate::engine::cuda::kernels::{MaxpoolBackward, MaxpoolForward};
use crate::engine::cuda::Gpu;
use crate::model::Shape;
use anyhow::Result;
use cudarc::driver::CudaSlice;

pub struct MaxPool {
    h: usize,
    w: usize,
    c: usize,
    /// Which of the four window positions won, per output value.
    winners: CudaSlice<u8>,
}

impl MaxPool {
    pub fn new(gpu: &Gpu, input: Shape, capacity: usize) -> Result<Self> {
        let Shape::Image { h, w, c } = input else {
            unreachable!("ModelSpec::place checks pool inputs")
        };
        Ok(MaxPool {
            h,
            w,
            c,
            winners: gpu.zeros::<u8>(capacity * (h / 2) * (w / 2) * c)?,
        })
    }

    pub fn forward(&self, shared: Shared, io: Forward) -> Result<()> {
        shared.gpu.launch(MaxpoolForward {
            x: io.x,
            y: io.y,
            winners: shared.gpu.addr(&self.winners),
            n: io.n,
            h: self.h,
            w: self.w,
            c: self.c,
        })
    }

    /// Each input value's gradient: the output's where it won its window, else 0.
    pub fn backward(&self, shared: Shared, io: Backward) -> Result<()> {
        let Some(dx) = io.dx else { return Ok(()) };
        shared.gpu.launch(MaxpoolBackward {
            dy: io.dy,
            winners: shared.gpu.addr(&self.winners),
            dx,
            n: io.n,
            h: self.h,
            w: self.w,
            c: self.c,
        })
    }
}
