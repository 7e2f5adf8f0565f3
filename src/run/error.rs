//! What went wrong, in the two kinds a caller acts on: input the user gave that cannot be used
//! (a flag's value, a data set, a saved model, a path: the command line's exit code 2, Python's
//! `ValueError`), and everything else.

use crate::data::folder::FolderError;
use crate::data::source::DataFlagError;
use crate::data::{cifar10, idx, EmptySplit};
use crate::engine::cpu::simd::UnsupportedCpu;
use crate::fsutil::{NotWritable, WriteError};
use crate::train::checkpoint::DirInUse;
use crate::train::plan::TooLarge;
use std::path::PathBuf;

/// An error in what the user asked for (a flag's value or an argument).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub(crate) fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// Input the user gave that cannot be used: a data set, a saved model or checkpoint, an
/// output path.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct BadInput(pub anyhow::Error);

pub(crate) fn bad_input(err: anyhow::Error) -> anyhow::Error {
    BadInput(err).into()
}

/// A run stopped by a request (Ctrl-C, SIGTERM) after writing its checkpoint.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; the run is saved in {}: go on with `minivgg train --resume {}`", .0.display(), .0.display())]
pub struct Interrupted(pub PathBuf);

/// Whether `err` was stopped by a request: [`Interrupted`] somewhere in its chain.
pub fn is_interrupted(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<Interrupted>())
}

/// Whether `err` comes from input the user gave (a flag, a file, a path that cannot be
/// written, a disk that is full, a CPU or memory that cannot run what was asked), not from a
/// fault of the program or the machine.
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<UsageError>()
            || e.is::<BadInput>()
            || e.is::<cifar10::DataError>()
            || e.is::<DataFlagError>()
            || e.is::<idx::IdxError>()
            || e.is::<EmptySplit>()
            || e.downcast_ref::<FolderError>()
                .is_some_and(FolderError::is_bad_input)
            || e.is::<WriteError>()
            || e.is::<NotWritable>()
            || e.is::<UnsupportedCpu>()
            || e.is::<TooLarge>()
            || e.is::<DirInUse>()
    })
}
