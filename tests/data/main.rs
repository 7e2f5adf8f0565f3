//! The data: CIFAR-10's files and download, image folders and their decoded-image cache, and
//! training from the mapped cache.
//!
//! The integration tests are a binary per part of minivgg, named for the part whose promises
//! they check: `engine`, `data`, `storage`, `report`, and `cli` (the commands' own: flags, exit
//! codes, messages, the files a run leaves), each a folder whose modules are its test files.
//! `plan` (its allocator counts the whole process) and `cuda` (built with `--features cuda`)
//! stand alone. Their helpers are in `tests/common`, each once.

#[path = "../common/mod.rs"]
mod common;

mod data;
mod folders;
mod mapped_data;
