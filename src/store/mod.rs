//! Trained models as files, above the engine whose networks they hold: [`model_file`] saves
//! and loads them as safetensors (architecture and weights in one file; checkpoints are the
//! same file with more in it) and [`onnx`] exports them for other runtimes.

pub mod model_file;
pub mod onnx;
