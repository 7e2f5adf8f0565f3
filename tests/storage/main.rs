//! What minivgg stores: the model and checkpoint files' checksums, and the ONNX export against
//! an independent runtime.
//!
//! The integration tests are a binary per part of minivgg, named for the part whose promises
//! they check: `engine`, `data`, `storage`, `report`, and `cli` (the commands' own: flags, exit
//! codes, messages, the files a run leaves), each a folder whose modules are its test files.
//! `plan` (its allocator counts the whole process) and `cuda` (built with `--features cuda`)
//! stand alone. Their helpers are in `tests/common`, each once.

#[path = "../common/mod.rs"]
mod common;

mod integrity;
mod onnx;
