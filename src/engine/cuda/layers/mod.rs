//! The GPU twins of [`crate::engine::layers`], one host file per kind of layer under the CPU
//! file's name, each with its forward and backward encoders side by side. An encoder enqueues
//! kernels ([`super::kernels`]) and cuBLAS products on the stream, reading and writing only
//! device memory the [`CudaNetwork`](super::network::CudaNetwork) allocated for it, so a whole
//! pass can be captured as a CUDA graph. The GPU runs every layer on its own: it fuses none.

pub mod affine;
pub mod batchnorm;
pub mod conv;
pub mod dense;
pub mod elementwise;
pub mod pool;
pub mod softmax;

pub use crate::engine::layers::Mode;

use super::cudnn::Cudnn;
use super::kernels::DeviceAddr;
use super::Gpu;
use crate::model::spec::{LayerSpec, PlacedLayer};
use anyhow::Result;

/// What every layer's encoders share: the GPU, the step state (which dropout masks), the
/// reductions' partials, and cuDNN where it is installed.
#[derive(Clone, Copy)]
pub struct Shared<'a> {
    pub gpu: &'a Gpu,
    /// The step state (kernels.cu's `STATE_*`).
    pub state: DeviceAddr,
    /// The column reductions' per-chunk sums (see [`super::reduce`]), shared by all layers
    /// since the stream runs them one after another.
    pub partials: DeviceAddr,
    pub dropout_seed: u64,
    pub cudnn: Option<&'a Cudnn>,
}

/// What a layer's forward pass reads and writes for a batch of `n` (as the CPU's
/// [`crate::engine::layers::Forward`]).
#[derive(Debug, Clone, Copy)]
pub struct Forward {
    /// Its position in the network: dropout masks are drawn per layer.
    pub index: usize,
    /// The layer's trainable parameters, in [`ParamSpec`](crate::model::spec::ParamSpec) order.
    pub weights: DeviceAddr,
    /// Its moving statistics (BN), updated in training.
    pub moving: DeviceAddr,
    pub x: DeviceAddr,
    pub y: DeviceAddr,
    pub n: usize,
    /// The values of x: `n` times the layer's input size.
    pub x_len: usize,
    pub mode: Mode,
}

/// What a layer's backward pass reads and writes. `dx` is `None` for the first layer, whose
/// input gradient nobody needs.
#[derive(Debug, Clone, Copy)]
pub struct Backward {
    pub index: usize,
    pub weights: DeviceAddr,
    pub grads: DeviceAddr,
    pub x: DeviceAddr,
    pub y: DeviceAddr,
    pub dy: DeviceAddr,
    pub dx: Option<DeviceAddr>,
    pub n: usize,
    /// The values of x and of dx.
    pub x_len: usize,
}

pub enum Layer {
    Conv2d(conv::Conv2d),
    Dense(dense::Dense),
    Relu,
    BatchNorm(batchnorm::BatchNorm),
    MaxPool(pool::MaxPool),
    Dropout {
        rate: f32,
    },
    Flatten,
    /// Its probabilities come with the loss ([`softmax::encode_loss`]).
    Softmax,
}

impl Layer {
    /// The layer with its device scratch sized for batches of up to `capacity` samples.
    pub fn new(gpu: &Gpu, placed: &PlacedLayer, capacity: usize) -> Result<Layer> {
        Ok(match placed.spec {
            LayerSpec::Conv2d { filters, kernel } => Layer::Conv2d(conv::Conv2d::new(
                gpu,
                placed.input,
                filters,
                kernel,
                capacity,
            )?),
            LayerSpec::Dense { units } => Layer::Dense(dense::Dense::new(placed.input, units)),
            LayerSpec::Relu => Layer::Relu,
            LayerSpec::BatchNorm => Layer::BatchNorm(batchnorm::BatchNorm::new(
                gpu,
                placed.input.len(),
                placed.input.channels(),
            )?),
            LayerSpec::MaxPool => Layer::MaxPool(pool::MaxPool::new(gpu, placed.input, capacity)?),
            LayerSpec::Dropout { rate } => Layer::Dropout { rate },
            LayerSpec::Flatten => Layer::Flatten,
            LayerSpec::Softmax => Layer::Softmax,
        })
    }

    pub fn forward(&self, shared: Shared, io: Forward) -> Result<()> {
        match self {
            Layer::Conv2d(l) => l.forward(shared, io),
            Layer::Dense(l) => l.forward(shared, io),
            Layer::Relu => elementwise::relu_forward(shared, io),
            Layer::BatchNorm(l) => l.forward(shared, io),
            Layer::MaxPool(l) => l.forward(shared, io),
            Layer::Dropout { rate } => elementwise::dropout_forward(shared, io, *rate),
            Layer::Flatten => elementwise::flatten_forward(shared, io),
            Layer::Softmax => Ok(()),
        }
    }

    /// Softmax has no backward of its own: the loss hands back the logits' gradient.
    pub fn backward(&self, shared: Shared, io: Backward) -> Result<()> {
        match self {
            Layer::Conv2d(l) => l.backward(shared, io),
            Layer::Dense(l) => l.backward(shared, io),
            Layer::Relu => elementwise::relu_backward(shared, io),
            Layer::BatchNorm(l) => l.backward(shared, io),
            Layer::MaxPool(l) => l.backward(shared, io),
            Layer::Dropout { rate } => elementwise::dropout_backward(shared, io, *rate),
            Layer::Flatten => elementwise::flatten_backward(shared, io),
            Layer::Softmax => unreachable!("softmax is fused with the loss"),
        }
    }
}
