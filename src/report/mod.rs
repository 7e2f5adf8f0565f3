//! What a run shows a person: the classification report, the training plot, and the files
//! the training monitor rewrites after every epoch, and TensorBoard's event files.

pub mod classification;
pub mod monitor;
pub mod plot;
pub mod tensorboard;
