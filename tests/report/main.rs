//! The report: the classification report against scikit-learn, the history CSV, the plot.
//!
//! The integration tests are a binary per part of minivgg, named for the part whose promises
//! they check: `engine`, `data`, `storage`, `report`, and `cli` (the commands' own: flags, exit
//! codes, messages, the files a run leaves), each a folder whose modules are its test files.
//! `plan` (its allocator counts the whole process) and `cuda` (built with `--features cuda`)
//! stand alone. Their helpers are in `tests/common`, each once.

#[path = "../common/mod.rs"]
mod common;

mod report;
