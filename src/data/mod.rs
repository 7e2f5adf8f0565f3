//! The data: one [`Dataset`] type that every loader produces (CIFAR-10's and CIFAR-100's
//! binary versions from a directory or `.tar.gz`, MNIST and Fashion-MNIST from IDX files, each
//! with its verified download; image folders, decoded once into a mapped cache), and turning shuffled images into f32 batches.

pub mod augment;
pub mod batches;
pub mod cache;
pub mod catalogue;
pub mod cifar10;
pub mod cifar100;
pub mod dataset;
pub mod download;
pub mod folder;
pub mod idx;
pub mod images;
pub mod source;

pub use catalogue::NamedSet;
pub use dataset::{Dataset, EmptySplit, Fingerprint, ImageShape, PixelEncoding, Split};
pub use source::DataRequest;
