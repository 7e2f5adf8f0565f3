//! One file per kind of layer, each with its forward and backward side by side. Every layer
//! reads and writes buffers the [`Network`](crate::engine::Network) allocated for it.

mod affine;
pub mod batchnorm;
pub mod conv;
pub mod dense;
pub mod elementwise;
pub mod pool;
pub mod softmax;

use crate::engine::cpu::simd::Isa;
use crate::model::spec::{LayerSpec, PlacedLayer};

/// Training uses batch statistics and dropout; evaluation uses moving statistics and no dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// What a layer's forward pass reads and writes, for a batch of `n` samples.
pub struct Forward<'a> {
    /// The layer's trainable parameters, in [`ParamSpec`](crate::model::spec::ParamSpec) order.
    pub weights: &'a [f32],
    /// The layer's moving statistics (BN), updated in training.
    pub moving: &'a mut [f32],
    pub x: &'a [f32],
    pub y: &'a mut [f32],
    pub n: usize,
    pub mode: Mode,
    /// Draws dropout masks in training (see [`elementwise::dropout_keeps`]).
    pub dropout_key: u64,
}

/// What a layer's backward pass reads and writes. `dx` is `None` for the first layer, whose
/// input gradient nobody needs.
pub struct Backward<'a> {
    pub weights: &'a [f32],
    pub grads: &'a mut [f32],
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub dy: &'a [f32],
    pub dx: Option<&'a mut [f32]>,
    pub n: usize,
}

pub enum Layer {
    Conv2d(conv::Conv2d),
    Dense(dense::Dense),
    /// Its loops compiled for the network's instruction set.
    Relu(Isa),
    BatchNorm(batchnorm::BatchNorm),
    MaxPool(pool::MaxPool),
    Dropout(elementwise::Dropout),
    Flatten,
    Softmax {
        classes: usize,
    },
    /// A ReLU fused into the BatchNorm after it, which runs it (see `batchnorm.rs`); the
    /// network skips it.
    FusedIntoNext,
    /// A layer fused into the one before it, which runs it (see [`fused_into_previous`]); the
    /// network skips it.
    FusedIntoPrevious,
}

/// Whether layer `i` of `placed` is a ReLU fused into the BatchNorm after it.
pub fn fused_into_next(placed: &[PlacedLayer], i: usize) -> bool {
    placed[i].spec == LayerSpec::Relu
        && placed
            .get(i + 1)
            .is_some_and(|next| next.spec == LayerSpec::BatchNorm)
}

/// Whether layer `i` of `placed` is fused into the layer before it, which runs it: a MaxPool after a
/// BatchNorm (see `batchnorm.rs`), a Dropout after a MaxPool (see `pool.rs`), and any Flatten
/// (NHWC images flatten in Keras' own order: the output of the layer before is already its).
pub fn fused_into_previous(placed: &[PlacedLayer], i: usize) -> bool {
    let previous = match i.checked_sub(1) {
        Some(p) => &placed[p].spec,
        None => return false,
    };
    match placed[i].spec {
        LayerSpec::MaxPool => *previous == LayerSpec::BatchNorm,
        LayerSpec::Dropout { .. } => *previous == LayerSpec::MaxPool,
        LayerSpec::Flatten => true,
        _ => false,
    }
}

/// The last of the layers that layer `i` runs: itself and those after it fused into the layer
/// before them. Its output is layer `i`'s.
pub fn last_fused_with(placed: &[PlacedLayer], i: usize) -> usize {
    let mut last = i;
    while last + 1 < placed.len() && fused_into_previous(placed, last + 1) {
        last += 1;
    }
    last
}

/// Whether layer `i` is fused into a neighbour: the network allocates it no buffers and skips it.
pub fn is_fused(placed: &[PlacedLayer], i: usize) -> bool {
    fused_into_next(placed, i) || fused_into_previous(placed, i)
}

impl Layer {
    /// The layer with its scratch buffers sized for batches of up to `capacity` samples, its
    /// kernels compiled for `isa`.
    pub fn new(isa: Isa, placed: &PlacedLayer, capacity: usize) -> Layer {
        Self::build(isa, placed, capacity, false)
    }

    /// A BatchNorm layer that also runs the ReLU before it.
    pub fn batchnorm_after_relu(isa: Isa, placed: &PlacedLayer, capacity: usize) -> Layer {
        assert_eq!(placed.spec, LayerSpec::BatchNorm);
        Self::build(isa, placed, capacity, true)
    }

    /// A MaxPool layer that also runs the Dropout after it, of `rate`.
    pub fn maxpool_then_dropout(
        isa: Isa,
        placed: &PlacedLayer,
        rate: f32,
        capacity: usize,
    ) -> Layer {
        assert_eq!(placed.spec, LayerSpec::MaxPool);
        Layer::MaxPool(pool::MaxPool::new(isa, placed.input, capacity, Some(rate)))
    }

    /// Layer `i` of `placed` as a network runs it: inside a neighbour, or running itself and
    /// the neighbours that run inside it.
    pub fn in_network(isa: Isa, placed: &[PlacedLayer], i: usize, capacity: usize) -> Layer {
        if fused_into_next(placed, i) {
            return Layer::FusedIntoNext;
        }
        if fused_into_previous(placed, i) {
            return Layer::FusedIntoPrevious;
        }
        let runs = &placed[i + 1..=last_fused_with(placed, i)];
        let dropout = runs.iter().find_map(|l| match l.spec {
            LayerSpec::Dropout { rate } => Some(rate),
            _ => None,
        });
        if placed[i].spec == LayerSpec::MaxPool {
            return Layer::MaxPool(pool::MaxPool::new(isa, placed[i].input, capacity, dropout));
        }
        let relu_input = i > 0 && fused_into_next(placed, i - 1);
        let pool = runs.first().filter(|l| l.spec == LayerSpec::MaxPool);
        match (Self::build(isa, &placed[i], capacity, relu_input), pool) {
            (Layer::BatchNorm(bn), Some(pool)) => Layer::BatchNorm(
                bn.with_pool(pool::MaxPool::new(isa, pool.input, capacity, dropout)),
            ),
            (layer, _) => layer,
        }
    }

    /// Whether the layer is a BatchNorm that runs the MaxPool after it.
    pub fn is_batchnorm_with_pool(&self) -> bool {
        matches!(self, Layer::BatchNorm(bn) if bn.runs_pool())
    }

    fn build(isa: Isa, placed: &PlacedLayer, capacity: usize, relu_input: bool) -> Layer {
        match placed.spec {
            LayerSpec::Conv2d { filters, kernel } => Layer::Conv2d(conv::Conv2d::new(
                isa,
                placed.input,
                filters,
                kernel,
                capacity,
            )),
            LayerSpec::Dense { units } => {
                Layer::Dense(dense::Dense::new(placed.input, units, capacity))
            }
            LayerSpec::Relu => Layer::Relu(isa),
            LayerSpec::BatchNorm => Layer::BatchNorm(batchnorm::BatchNorm::new(
                isa,
                placed.input.len(),
                placed.input.channels(),
                capacity,
                relu_input,
            )),
            LayerSpec::MaxPool => {
                Layer::MaxPool(pool::MaxPool::new(isa, placed.input, capacity, None))
            }
            LayerSpec::Dropout { rate } => Layer::Dropout(elementwise::Dropout::new(
                isa,
                rate,
                capacity * placed.input.len(),
            )),
            LayerSpec::Flatten => Layer::Flatten,
            LayerSpec::Softmax => Layer::Softmax {
                classes: placed.output.len(),
            },
        }
    }

    /// Whether the layer runs inside a neighbour (the network skips it).
    pub fn is_fused(&self) -> bool {
        matches!(self, Layer::FusedIntoNext | Layer::FusedIntoPrevious)
    }

    pub fn forward(&mut self, io: Forward) {
        match self {
            Layer::Conv2d(l) => l.forward(io),
            Layer::Dense(l) => l.forward(io),
            Layer::Relu(isa) => elementwise::relu_forward(*isa, io),
            Layer::BatchNorm(l) => l.forward(io),
            Layer::MaxPool(l) => l.forward(io),
            Layer::Dropout(l) => l.forward(io),
            Layer::Flatten => elementwise::flatten_forward(io),
            Layer::Softmax { classes } => softmax::softmax_forward(io.x, io.y, *classes),
            Layer::FusedIntoNext | Layer::FusedIntoPrevious => unreachable!("the network skips it"),
        }
    }

    /// Softmax has no backward of its own: the loss hands back the logits' gradient.
    pub fn backward(&mut self, io: Backward) {
        match self {
            Layer::Conv2d(l) => l.backward(io),
            Layer::Dense(l) => l.backward(io),
            Layer::Relu(isa) => elementwise::relu_backward(*isa, io),
            Layer::BatchNorm(l) => l.backward(io),
            Layer::MaxPool(l) => l.backward(io),
            Layer::Dropout(l) => l.backward(io),
            Layer::Flatten => elementwise::flatten_backward(io),
            Layer::Softmax { .. } => unreachable!("softmax is fused with the loss"),
            Layer::FusedIntoNext | Layer::FusedIntoPrevious => unreachable!("the network skips it"),
        }
    }
}
