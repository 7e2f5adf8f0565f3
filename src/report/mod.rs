//! What a run shows a person: the classification report and the training plot.

pub mod classification;
pub mod plot;
