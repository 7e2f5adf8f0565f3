//! The data: one [`Dataset`] type that every loader produces (CIFAR-10's binary version from a
//! directory or `.tar.gz`, with its verified download; image folders, decoded once into a
//! mapped cache), and turning shuffled images into f32 batches.

pub mod augment;
pub mod batches;
pub mod cache;
pub mod cifar10;
pub mod dataset;
pub mod download;
pub mod folder;
pub mod images;
pub mod source;

pub use dataset::{Dataset, ImageShape, Split};
pub use source::{DataRequest, NamedSet};
