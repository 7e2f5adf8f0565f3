//! CIFAR-10: reading the official binary layout (directory or `.tar.gz`), the verified
//! download, and turning shuffled records into f32 batches.

pub mod augment;
pub mod batches;
pub mod cifar10;
pub mod download;
pub mod images;
