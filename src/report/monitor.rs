//! The tutorial series' `TrainingMonitor` callback: after every epoch, the loss and accuracy
//! plot, the history CSV and a JSON history (PyImageSearch's format: a key per metric, a list
//! of its values per epoch) rewritten atomically, so a long run can be watched as it goes.

use super::plot::plot_history;
use crate::fsutil::atomic_write_bytes;
use crate::train::history::History;
use anyhow::Result;
use std::path::PathBuf;

/// Where a run's monitor files go, and the plot's title.
#[derive(Debug, Clone)]
pub struct TrainingMonitor {
    pub plot: PathBuf,
    pub csv: PathBuf,
    pub json: PathBuf,
    pub title: String,
}

impl TrainingMonitor {
    /// Rewrites the three files from the history so far, each atomically.
    pub fn write(&self, history: &History) -> Result<()> {
        atomic_write_bytes(&self.json, history_json(history).as_bytes())?;
        history.write_csv(&self.csv)?;
        plot_history(history, &self.plot, &self.title)
    }
}

/// `{"loss": [...], "acc": [...], "val_loss": [...], "val_acc": [...]}`, the lists in epoch
/// order: what `TrainingMonitor` dumps from Keras' logs, read back with `json.loads`.
pub fn history_json(history: &History) -> String {
    let column = |value: fn(&crate::train::history::EpochRecord) -> f64| -> Vec<f64> {
        history.epochs.iter().map(value).collect()
    };
    let metrics = serde_json::json!({
        "loss": column(|r| r.loss),
        "acc": column(|r| r.acc),
        "val_loss": column(|r| r.val_loss),
        "val_acc": column(|r| r.val_acc),
    });
    metrics.to_string()
}
