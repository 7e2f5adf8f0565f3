//! What a run shows a person: the classification report, the training plot, and the files
//! the training monitor rewrites after every epoch.

pub mod classification;
pub mod monitor;
pub mod plot;
