//! The training loop (the GPU's epoch loop in `gpu`, with the `cuda` feature), checkpoints,
//! benchmarks and the run's history.

pub mod bench;
pub mod checkpoint;
pub mod fit;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod history;
