//! Models as data: a [`ModelSpec`] is an input shape and a list of layers. Shapes, parameter
//! counts, size limits and the Keras-style summary come from the spec alone; [`zoo`] builds
//! the tutorial's networks and [`network_file`] reads the user's own from JSON. Trained
//! models as files are `store`'s, above the engine.

pub mod network_file;
pub mod spec;
pub mod zoo;

pub use spec::{LayerSpec, ModelSpec, Shape};
