//! Checkpoints: after every epoch (and on Ctrl-C) the whole state of a run — weights, BN
//! statistics, SGD velocities and step count, the dropout step, the history and where the epoch
//! under way stands — in one safetensors file written atomically, so `train --resume DIR`
//! goes on exactly as if the run had never stopped.

use super::fit::Progress;
use super::history::History;
use crate::engine::sgd::{Sgd, SgdConfig};
use crate::engine::{BatchMetrics, Network, Precision};
use crate::fsutil::atomic_write_bytes;
use crate::model::io;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const RUN_KEY: &str = "minivgg_run";
const VELOCITY: &str = "optimizer/velocity";

/// What a run was asked to do: a resumed run takes these, not new flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub sgd: SgdConfig,
    pub seed: u64,
    pub output: PathBuf,
    pub save: Option<PathBuf>,
    /// `--augment`: random crops and flips of the training images.
    #[serde(default)]
    pub augment: bool,
    /// `--limit N`: only the first N images of each split.
    #[serde(default)]
    pub limit: Option<usize>,
    /// `--precision`: checkpoints from before the flag read as fp32.
    #[serde(default)]
    pub precision: Precision,
}

/// The metadata half of a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct RunState {
    settings: RunSettings,
    dropout_seed: u64,
    train_steps: u64,
    iterations: u64,
    history_csv: String,
    batches_done: usize,
    partial_loss_sum: f64,
    partial_correct: usize,
    partial_samples: usize,
    partial_seconds: f64,
}

pub struct Checkpoint {
    pub net: Network,
    pub sgd: Sgd,
    pub settings: RunSettings,
    pub progress: Progress,
}

/// The checkpoint file's bytes: the network, the optimizer's state and where the run stands.
pub fn encode(
    net: &Network,
    sgd: &Sgd,
    settings: &RunSettings,
    progress: &Progress,
) -> Result<Vec<u8>> {
    let state = RunState {
        settings: settings.clone(),
        dropout_seed: net.dropout_seed,
        train_steps: net.train_steps,
        iterations: sgd.iterations,
        history_csv: progress.history.to_csv(),
        batches_done: progress.batches_done,
        partial_loss_sum: progress.partial.loss_sum,
        partial_correct: progress.partial.correct,
        partial_samples: progress.partial.samples,
        partial_seconds: progress.partial_seconds,
    };
    let metadata = HashMap::from([(RUN_KEY.to_string(), serde_json::to_string(&state)?)]);
    io::to_bytes(net, &[(VELOCITY, &sgd.velocity)], metadata)
}

/// Writes `dir/checkpoint.safetensors` now (temporary file, fsync, rename: the last good one
/// stays until the new one is complete).
pub fn write(
    dir: &Path,
    net: &Network,
    sgd: &Sgd,
    settings: &RunSettings,
    progress: &Progress,
) -> Result<()> {
    write_bytes(dir, &encode(net, sgd, settings, progress)?)
}

fn write_bytes(dir: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create checkpoint directory {}", dir.display()))?;
    atomic_write_bytes(&dir.join(CHECKPOINT_FILE), bytes)
}

/// A run's checkpoints, written off the training thread: each is encoded where the run is (a
/// copy of its state), then written, fsynced and renamed by a thread of its own while the next
/// epoch trains. One write is in flight at a time and the next waits for it, so the files land
/// in order and a failed write stops the run at the next checkpoint. Still atomic: a reader,
/// or a run killed mid-write, sees the last complete checkpoint.
pub struct CheckpointWriter {
    dir: PathBuf,
    in_flight: Option<JoinHandle<Result<()>>>,
    /// Time the training thread spent on checkpoints: encoding, and waiting for a write.
    blocked: Duration,
}

impl CheckpointWriter {
    pub fn new(dir: &Path) -> CheckpointWriter {
        CheckpointWriter {
            dir: dir.to_path_buf(),
            in_flight: None,
            blocked: Duration::ZERO,
        }
    }

    /// Starts writing this state as the run's checkpoint, once the previous write is done.
    pub fn submit(
        &mut self,
        net: &Network,
        sgd: &Sgd,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<()> {
        let started = Instant::now();
        let bytes = encode(net, sgd, settings, progress)?;
        self.blocked += started.elapsed();
        // Counts its own waiting.
        self.wait()?;
        let dir = self.dir.clone();
        self.in_flight = Some(std::thread::spawn(move || write_bytes(&dir, &bytes)));
        Ok(())
    }

    /// Waits for the write in flight, if any: its error, if it failed.
    pub fn wait(&mut self) -> Result<()> {
        let started = Instant::now();
        let written = match self.in_flight.take() {
            Some(write) => write
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the checkpoint writer thread panicked"))),
            None => Ok(()),
        };
        self.blocked += started.elapsed();
        written
    }

    /// Time the training thread has spent on checkpoints so far.
    pub fn blocked(&self) -> Duration {
        self.blocked
    }
}

impl Drop for CheckpointWriter {
    /// A run that ends on an error still leaves its last checkpoint complete on disk.
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            eprintln!("error: {e:#}");
        }
    }
}

/// Reads the checkpoint in `dir`.
pub fn read(dir: &Path) -> Result<Checkpoint> {
    let path = dir.join(CHECKPOINT_FILE);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("--resume: cannot read {}", path.display()))?;
    let metadata = io::read_metadata(&path, &bytes)?;
    let state: RunState = metadata
        .get(RUN_KEY)
        .ok_or_else(|| {
            anyhow!(
                "{}: not a minivgg checkpoint (no {RUN_KEY})",
                path.display()
            )
        })
        .and_then(|json| {
            serde_json::from_str(json)
                .map_err(|e| anyhow!("{}: unreadable run state: {e}", path.display()))
        })?;
    let (capacity, precision) = (state.settings.batch_size, state.settings.precision);
    let mut loaded = io::from_bytes(&path, &bytes, capacity, precision, &[VELOCITY])?;
    let velocity = loaded.extras.remove(VELOCITY).unwrap_or_default();
    if velocity.len() != loaded.net.params.len() {
        return Err(anyhow!(
            "{}: {VELOCITY} has {} values, expected {}",
            path.display(),
            velocity.len(),
            loaded.net.params.len()
        ));
    }
    let mut net = loaded.net;
    net.train_steps = state.train_steps;
    net.dropout_seed = state.dropout_seed;
    let sgd = Sgd {
        config: state.settings.sgd,
        iterations: state.iterations,
        velocity,
    };
    let history = History::from_csv(&state.history_csv)
        .with_context(|| format!("{}: history", path.display()))?;
    let progress = Progress {
        history,
        batches_done: state.batches_done,
        partial: BatchMetrics {
            loss_sum: state.partial_loss_sum,
            correct: state.partial_correct,
            samples: state.partial_samples,
        },
        partial_seconds: state.partial_seconds,
    };
    Ok(Checkpoint {
        net,
        sgd,
        settings: state.settings,
        progress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_before_the_precision_flag_read_as_fp32() {
        let json = r#"{"epochs":40,"batch_size":64,"sgd":{"lr":0.01,"momentum":0.9,"nesterov":true,"decay":0.00025},"seed":42,"output":"p.png","save":null}"#;
        let settings: RunSettings = serde_json::from_str(json).unwrap();
        assert_eq!(settings.precision, Precision::Fp32);
        let bf16 = RunSettings {
            precision: Precision::Bf16,
            ..settings
        };
        let json = serde_json::to_string(&bf16).unwrap();
        assert!(json.contains(r#""precision":"bf16""#), "{json}");
        assert_eq!(serde_json::from_str::<RunSettings>(&json).unwrap(), bf16);
    }
}
