//! The training loop (the GPU's epoch loop in `gpu`, with the `cuda` feature, and the choice
//! between them in `device`), checkpoints, benchmarks, the run's history and its memory plan.

pub mod bench;
pub mod checkpoint;
pub mod device;
pub mod fit;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod history;
pub mod plan;
