//! The training loop, the optimizer and the run's history.

pub mod bench;
pub mod checkpoint;
pub mod fit;
pub mod history;
pub mod sgd;
