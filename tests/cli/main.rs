//! The commands end to end, as a user runs the binary: training, resuming, its files and
//! errors, every data format's bad inputs, image folders, experiments and network files.
//!
//! The integration tests are a binary per part of minivgg, named for the part whose promises
//! they check: `engine`, `data`, `storage`, `report`, and `cli` (the commands' own: flags, exit
//! codes, messages, the files a run leaves), each a folder whose modules are its test files.
//! `plan` (its allocator counts the whole process) and `cuda` (built with `--features cuda`)
//! stand alone. Their helpers are in `tests/common`, each once.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod collisions;
mod data_formats_cli;
mod experiments;
mod folder_cli;
mod monitor;
mod network_file;
mod resume_data;
