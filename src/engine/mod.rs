//! The engine: a static list of layers over buffers allocated once, explicit forward and
//! backward per layer, the optimizer's update ([`sgd`]), and the heavy arithmetic in [`cpu`]
//! kernels (and `cuda`'s, with the `cuda` feature).
//!
//! Layout: NHWC (Keras' channels_last). A k×k "same" convolution is then one matrix product
//! `[N·H·W × k·k·C] · [k·k·C × F]` whose kernel is Keras' HWIO tensor as it is stored, the
//! output rows are already the next layer's NHWC input, BN after a convolution or a dense layer
//! is the same per-column reduction, and Flatten changes nothing in Keras' order (the network
//! runs it inside the layer before; `layers::fused_into_previous`).

pub mod cpu;
pub mod device;
pub mod footprint;
pub mod layers;
pub mod network;
pub mod precision;
pub mod sgd;

pub use layers::softmax::BatchMetrics;
pub use layers::Mode;
pub use network::Network;
pub use precision::Precision;
#[cfg(feature = "cuda")]
pub mod cuda;
