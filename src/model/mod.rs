//! Models as data: a [`ModelSpec`] is an input shape and a list of layers. Shapes, parameter
//! counts and the Keras-style summary come from the spec alone; [`zoo`] builds the tutorial's
//! networks, [`io`] saves and loads trained weights and [`onnx`] exports them for other
//! runtimes.

pub mod file;
pub mod io;
pub mod onnx;
pub mod spec;
pub mod zoo;

pub use spec::{LayerSpec, ModelSpec, Shape};
