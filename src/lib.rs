//! minivgg: the PyImageSearch MiniVGGNet tutorial (and its ShallowNet and LeNet siblings)
//! trained on CIFAR-10 by a small purpose-built engine.
//!
//! The data flows one way: [`data`] reads CIFAR-10 into bytes, [`train`] shuffles and batches
//! them through an [`engine::Network`] built from a [`model::ModelSpec`], and [`report`] turns
//! the resulting history and predictions into text, CSV and plots. [`run`] makes one training
//! run of them end to end (its files, checkpoints and report), as [`cli`] and the Python
//! package's `minivgg` command run it.

pub mod cli;
pub mod counter_hash;
pub mod data;
pub mod engine;
pub mod fsutil;
pub mod model;
pub mod report;
pub mod run;
pub mod store;
pub mod train;
pub mod words;
