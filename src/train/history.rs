//! The per-epoch record of a training run (Keras' `History`).

use crate::fsutil::atomic_write_bytes;
use anyhow::{anyhow, bail, Result};
use std::path::Path;

/// One epoch's figures: training metrics are the sample-weighted means over the epoch
/// (dropout active), validation metrics are over the whole test set in evaluation mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub seconds: f64,
    pub loss: f64,
    pub acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
}

/// The CSV header, in the column order of [`EpochRecord`].
const CSV_HEADER: &str = "epoch,seconds,loss,acc,val_loss,val_acc";

impl History {
    pub fn push(&mut self, r: EpochRecord) {
        self.epochs.push(r);
    }

    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The history as CSV (see [`History::to_csv`]), written atomically so a crash mid-run
    /// never leaves a truncated file.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let text = self.to_csv();
        atomic_write_bytes(path, text.as_bytes())
    }

    /// Header `epoch,seconds,loss,acc,val_loss,val_acc`, then one row per epoch. Floats use
    /// `{}`, Rust's shortest form that parses back to the same f64, so a round trip is exact.
    pub fn to_csv(&self) -> String {
        let mut out = String::with_capacity(64 * (self.epochs.len() + 1));
        out.push_str(CSV_HEADER);
        out.push('\n');
        for r in &self.epochs {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.epoch, r.seconds, r.loss, r.acc, r.val_loss, r.val_acc
            ));
        }
        out
    }

    /// Parses what [`History::to_csv`] writes. Strict: the exact header, six fields per row,
    /// no blank lines; an error names the line (1-based) and what is wrong with it.
    pub fn from_csv(text: &str) -> Result<History> {
        // `lines` also accepts CRLF endings, as a spreadsheet may save them.
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, CSV_HEADER)) => {}
            Some((n, other)) => {
                bail!("history CSV line {n}: expected header `{CSV_HEADER}`, found `{other}`")
            }
            None => bail!("history CSV is empty: expected header `{CSV_HEADER}`"),
        }
        let mut history = History::default();
        for (n, line) in lines {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != 6 {
                bail!(
                    "history CSV line {n}: expected 6 comma-separated fields, found {}",
                    fields.len()
                );
            }
            let float = |i: usize| -> Result<f64> {
                let name = CSV_HEADER.split(',').nth(i).unwrap_or("?");
                fields[i].parse::<f64>().map_err(|e| {
                    anyhow!(
                        "history CSV line {n}: field `{name}` = `{}` is not a number: {e}",
                        fields[i]
                    )
                })
            };
            let epoch = fields[0].parse::<usize>().map_err(|e| {
                anyhow!(
                    "history CSV line {n}: field `epoch` = `{}` is not an epoch number: {e}",
                    fields[0]
                )
            })?;
            history.push(EpochRecord {
                epoch,
                seconds: float(1)?,
                loss: float(2)?,
                acc: float(3)?,
                val_loss: float(4)?,
                val_acc: float(5)?,
            });
        }
        Ok(history)
    }
}
