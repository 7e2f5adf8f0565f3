//! Checkpoints: after every epoch (and on Ctrl-C) the whole state of a run — weights, BN
//! statistics, SGD velocities and step count, the dropout step, the history and where the epoch
//! under way stands — in one safetensors file written atomically, so `train --resume DIR`
//! goes on exactly as if the run had never stopped.

use super::fit::Progress;
use super::history::History;
use crate::data::{DataRequest, Fingerprint};
use crate::engine::sgd::{Sgd, SgdConfig};
use crate::engine::{BatchMetrics, Network, Precision};
use crate::fsutil::{atomic_write_bytes, read_regular, remove_stale_temporaries, BackgroundWriter};
use crate::model::ModelSpec;
use crate::store::model_file;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const RUN_KEY: &str = "minivgg_run";
/// A saved model's metadata key of the data it was trained on ([`DataRequest`] as JSON), so
/// that `evaluate` defaults to it. Absent for CIFAR-10 from `$MINIVGG_DATA` or the cache, the
/// default data, so that a model saved by `minivgg.keras` (which records none) and one saved by
/// `train` from the same training are the same bytes.
const DATA_KEY: &str = "minivgg_data";
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
    /// `--limit N`: only N images of each split, every class's share equal (see
    /// `Dataset::limit_per_class`; a run checkpointed before that took the first N, and its
    /// data's fingerprint no longer matches).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `--precision`: checkpoints from before the flag read as fp32.
    #[serde(default)]
    pub precision: Precision,
    /// `--save-best`: the model of the lowest val_loss beside `save`, as NAME_best.
    #[serde(default)]
    pub save_best: bool,
    /// The data it trains on: checkpoints from before the field trained on CIFAR-10 from
    /// `$MINIVGG_DATA` or the cache, which is what the default request loads.
    #[serde(default)]
    pub data: DataRequest,
    /// The data's fingerprint, checked when the run resumes; `None` in checkpoints from
    /// before it was recorded.
    #[serde(default)]
    pub data_fingerprint: Option<Fingerprint>,
    /// `--keep-checkpoints`: the checkpoint stays once the run has finished (by default it
    /// goes then, see [`DirLock::remove_checkpoint`]).
    #[serde(default)]
    pub keep_checkpoints: bool,
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
    model_file::to_bytes(net, &[(VELOCITY, &sgd.velocity)], metadata)
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

/// Queues the run's checkpoint in `dir` on `writer`: encoded here (a copy of the state), then
/// written, fsynced and renamed off the training thread while the next epoch trains. Still
/// atomic: a reader, or a run killed mid-write, sees the last complete checkpoint.
pub fn submit(
    writer: &mut BackgroundWriter,
    dir: &Path,
    net: &Network,
    sgd: &Sgd,
    settings: &RunSettings,
    progress: &Progress,
) -> Result<()> {
    let bytes = writer.prepare(|| encode(net, sgd, settings, progress))?;
    let dir = dir.to_path_buf();
    writer.submit(move || write_bytes(&dir, &bytes))
}

/// The metadata of a model trained on `data`: what it records of it (see [`DATA_KEY`]).
fn trained_on_metadata(data: &DataRequest) -> Result<HashMap<String, String>> {
    let mut metadata = HashMap::new();
    if *data != DataRequest::default() {
        metadata.insert(DATA_KEY.to_string(), serde_json::to_string(data)?);
    }
    Ok(metadata)
}

/// Saves the model `net`, trained on `data`, to `path` (atomically).
pub fn save_model(net: &Network, data: &DataRequest, path: &Path) -> Result<()> {
    atomic_write_bytes(
        path,
        &model_file::to_bytes(net, &[], trained_on_metadata(data)?)?,
    )
}

/// The data the model of a file with `metadata` was trained on: a checkpoint's run's, a
/// saved model's record (CIFAR-10 without one, see [`DATA_KEY`]).
fn trained_on(path: &Path, metadata: &HashMap<String, String>) -> Result<DataRequest> {
    if let Some(state) = run_state(path, metadata)? {
        return Ok(state.settings.data);
    }
    metadata
        .get(DATA_KEY)
        .map_or(Ok(DataRequest::default()), |json| {
            serde_json::from_str(json)
                .map_err(|e| anyhow!("{}: unreadable record of its data: {e}", path.display()))
        })
}

/// `--save-best`, Keras' `ModelCheckpoint(monitor="val_loss", save_best_only=True)`: after
/// each epoch whose val_loss is the lowest yet, the model is saved to one file.
pub struct SaveBest {
    path: PathBuf,
    /// What the model records of its data ([`save_model`]'s).
    metadata: HashMap<String, String>,
    /// The epoch with the lowest val_loss so far, and that loss.
    best: Option<(usize, f64)>,
}

impl SaveBest {
    /// Keeps the best model at `path`; a resumed run's best so far is the lowest val_loss of
    /// its `history` (already in the file: it was written before the checkpoint that holds it).
    pub fn new(path: PathBuf, data: &DataRequest, history: &History) -> Result<SaveBest> {
        let metadata = trained_on_metadata(data)?;
        let mut save_best = SaveBest {
            path,
            metadata,
            best: None,
        };
        for record in &history.epochs {
            save_best.improves(record.epoch, record.val_loss);
        }
        Ok(save_best)
    }

    /// Whether `val_loss` is lower than the best so far (NaN never is); if so it is the best.
    fn improves(&mut self, epoch: usize, val_loss: f64) -> bool {
        let better = self.best.is_none_or(|(_, best)| val_loss < best) && !val_loss.is_nan();
        if better {
            self.best = Some((epoch, val_loss));
        }
        better
    }

    /// After an epoch: queues the model on `writer` if the epoch is the best yet, returning
    /// the log line that says so.
    pub fn epoch_end(
        &mut self,
        net: &Network,
        history: &History,
        writer: &mut BackgroundWriter,
    ) -> Result<Option<String>> {
        let Some(last) = history.last() else {
            return Ok(None);
        };
        let before = self.best;
        if !self.improves(last.epoch, last.val_loss) {
            return Ok(None);
        }
        let bytes = writer.prepare(|| model_file::to_bytes(net, &[], self.metadata.clone()))?;
        let path = self.path.clone();
        writer.submit(move || atomic_write_bytes(&path, &bytes))?;
        let from = match before {
            Some((_, loss)) => format!("from {loss:.4} "),
            None => String::new(),
        };
        Ok(Some(format!(
            "[INFO] epoch {}: val_loss improved {from}to {:.4}, saving the model to {}",
            last.epoch,
            last.val_loss,
            self.path.display()
        )))
    }

    /// The best epoch and its val_loss, once an epoch has finished.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file in a checkpoint directory that a run holds an OS lock on while it writes there.
pub const LOCK_FILE: &str = "lock";

/// A checkpoint directory held by this process: an exclusive OS lock (`flock` on Unix) on
/// `DIR/lock`, which holds the process id. The OS drops the lock when the process ends, however
/// it ends, so a run that was killed never blocks the next one; the next one removes the
/// temporary files a kill mid-write left.
#[derive(Debug)]
pub struct DirLock {
    /// Held open for the lock; `None` once released.
    file: Option<std::fs::File>,
    dir: PathBuf,
    /// The topmost directory this lock created (the checkpoint directory or one of its
    /// parents, such as the plot's), if it created any.
    created: Option<PathBuf>,
}

impl DirLock {
    /// Ends a finished run's hold on its directory and removes its checkpoint (the run's
    /// outputs and model hold what a user keeps of it), then the directory if nothing else is
    /// in it, and the parents this lock created that are then empty.
    pub fn remove_checkpoint(mut self) -> Result<()> {
        let checkpoint = self.dir.join(CHECKPOINT_FILE);
        match std::fs::remove_file(&checkpoint) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", checkpoint.display()))
            }
            _ => {}
        }
        let top = self.created.take().unwrap_or_else(|| self.dir.clone());
        self.remove_lock_and_empty_dirs(&top);
        Ok(())
    }

    /// Closes and removes the lock's file, then the directory and its parents up to `top`,
    /// each as long as it is empty.
    fn remove_lock_and_empty_dirs(&mut self, top: &Path) {
        // The lock's file is closed first: Windows removes no open file.
        drop(self.file.take());
        let _ = std::fs::remove_file(self.dir.join(LOCK_FILE));
        for dir in self.dir.ancestors() {
            if std::fs::remove_dir(dir).is_err() || dir == top {
                break;
            }
        }
    }
}

impl Drop for DirLock {
    /// A directory this run created and never wrote a checkpoint to (it failed first, say on
    /// the data) is removed, with the parents it created that are still empty, so a refused
    /// run leaves nothing behind.
    fn drop(&mut self) {
        // Released by `remove_checkpoint`.
        if self.file.is_none() {
            return;
        }
        let Some(top) = self.created.clone() else {
            return;
        };
        let names: Vec<_> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .map(|entry| entry.map(|e| e.file_name()))
            .collect();
        if matches!(&names[..], [Ok(name)] if name == LOCK_FILE) {
            self.remove_lock_and_empty_dirs(&top);
        }
    }
}

/// Another run holds the checkpoint directory: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error(
    "checkpoint directory {} is in use by another minivgg run (process {holder}): let it finish, \
     or give this run another --checkpoint-dir",
    dir.display()
)]
pub struct DirInUse {
    pub dir: PathBuf,
    /// The holder's process id as it wrote it, or "unknown".
    pub holder: String,
}

/// Locks `dir` (creating it) for this run, or says which process has it.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    let created = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .last()
        .map(Path::to_path_buf);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create checkpoint directory {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "unknown".to_string(),
                pid => pid.to_string(),
            };
            return Err(DirInUse {
                dir: dir.to_path_buf(),
                holder,
            }
            .into());
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(anyhow!("cannot lock {}: {e}", path.display()))
        }
    }
    file.set_len(0)?;
    file.write_all(std::process::id().to_string().as_bytes())?;
    file.flush()?;
    // A run killed mid-write left its temporary file; the directory is ours now.
    remove_stale_temporaries(&dir.join(CHECKPOINT_FILE), Duration::ZERO);
    Ok(DirLock {
        file: Some(file),
        dir: dir.to_path_buf(),
        created,
    })
}

/// The run state in a file's `metadata`, if it is a checkpoint's.
fn run_state(path: &Path, metadata: &HashMap<String, String>) -> Result<Option<RunState>> {
    metadata
        .get(RUN_KEY)
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| anyhow!("{}: unreadable run state: {e}", path.display()))
        })
        .transpose()
}

/// Reads the checkpoint in `dir`; one without checksums is read with
/// [`model_file::unverified_warning`] on stderr.
pub fn read(dir: &Path) -> Result<Checkpoint> {
    read_checked(dir, |_, _| Ok(()))
}

/// The settings of the run whose checkpoint is in `dir`, without building its network: what
/// `--resume` needs to know before it loads the data.
pub fn read_settings(dir: &Path) -> Result<RunSettings> {
    Ok(read_state(dir)?.2.settings)
}

/// [`read_settings`], and how many of the run's epochs are done: a resumed run that has done
/// them all has nothing left to train.
pub fn read_progress(dir: &Path) -> Result<(RunSettings, usize)> {
    let (path, _, state) = read_state(dir)?;
    let done = epochs_done(&path, &state)?;
    Ok((state.settings, done))
}

/// The epochs a run state's history holds.
fn epochs_done(path: &Path, state: &RunState) -> Result<usize> {
    Ok(History::from_csv(&state.history_csv)
        .with_context(|| format!("{}: history", path.display()))?
        .epochs
        .len())
}

/// The checkpoint file in `dir`: its path, its bytes and its run state.
fn read_state(dir: &Path) -> Result<(PathBuf, Vec<u8>, RunState)> {
    let path = dir.join(CHECKPOINT_FILE);
    let bytes =
        read_regular(&path).with_context(|| format!("--resume: cannot read {}", path.display()))?;
    let metadata = model_file::read_metadata(&path, &bytes)?;
    let state = run_state(&path, &metadata)?.ok_or_else(|| {
        anyhow!(
            "{}: not a minivgg checkpoint (no {RUN_KEY})",
            path.display()
        )
    })?;
    Ok((path, bytes, state))
}

/// [`read`], where `check` sees the run's architecture and settings before its buffers are
/// allocated, and can refuse them (the command line checks its memory plan).
pub fn read_checked(
    dir: &Path,
    check: impl FnOnce(&ModelSpec, &RunSettings) -> Result<()>,
) -> Result<Checkpoint> {
    let (path, bytes, state) = read_state(dir)?;
    check(&model_file::spec_in(&path, &bytes)?, &state.settings)?;
    let (capacity, precision) = (state.settings.batch_size, state.settings.precision);
    let mut loaded = model_file::from_bytes(&path, &bytes, capacity, precision, &[VELOCITY])?;
    if !loaded.verified {
        eprintln!("{}", model_file::unverified_warning(&path));
    }
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

/// The file that `--weights` or `--model` names: `path` itself, or for a directory the
/// checkpoint in it.
pub fn model_file(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let file = path.join(CHECKPOINT_FILE);
    if !file.is_file() {
        bail!(
            "{}: a directory without a checkpoint ({CHECKPOINT_FILE})",
            path.display()
        );
    }
    Ok(file)
}

/// Where the run of a checkpoint stood, as `epoch 3 of 40` (and `, 120 batches into epoch 4`
/// for one written mid-epoch); `None` for a file that is not a checkpoint.
fn checkpoint_stage(path: &Path, metadata: &HashMap<String, String>) -> Result<Option<String>> {
    let Some(state) = run_state(path, metadata)? else {
        return Ok(None);
    };
    let done = epochs_done(path, &state)?;
    let mut stage = format!("epoch {done} of {}", state.settings.epochs);
    if state.batches_done > 0 {
        stage += &format!(", {} batches into epoch {}", state.batches_done, done + 1);
    }
    Ok(Some(stage))
}

/// A model read from a saved model, a checkpoint or a checkpoint directory ([`load_model`]).
pub struct ModelFile<T> {
    /// The model, or its architecture.
    pub model: T,
    /// The file it came from (a directory's checkpoint).
    pub path: PathBuf,
    /// For a checkpoint, where its run stood (`epoch 3 of 40`).
    pub checkpoint: Option<String>,
    /// Whether its tensors were verified against their checksums (always true for a bare
    /// architecture, whose tensors are not read).
    pub verified: bool,
    /// The data it was trained on, as far as the file says.
    pub trained_on: DataRequest,
}

/// The network of a saved model, or of a checkpoint (file or directory) without its
/// optimizer's state, for batches of up to `capacity` samples, its products in `precision`.
/// `check` sees the architecture before the network is allocated, and can refuse it (the
/// command line checks its memory plan).
pub fn load_model(
    path: &Path,
    capacity: usize,
    precision: Precision,
    check: impl FnOnce(&ModelSpec) -> Result<()>,
) -> Result<ModelFile<Network>> {
    let path = model_file(path)?;
    let bytes = model_file::read(&path)?;
    let metadata = model_file::read_metadata(&path, &bytes)?;
    let checkpoint = checkpoint_stage(&path, &metadata)?;
    let trained_on = trained_on(&path, &metadata)?;
    check(&model_file::spec_in(&path, &bytes)?)?;
    let extras: &[&str] = if checkpoint.is_some() {
        &[VELOCITY]
    } else {
        &[]
    };
    let loaded = model_file::from_bytes(&path, &bytes, capacity, precision, extras)?;
    Ok(ModelFile {
        model: loaded.net,
        path,
        checkpoint,
        verified: loaded.verified,
        trained_on,
    })
}

/// The architecture of a saved model or of a checkpoint (file or directory).
pub fn read_spec(path: &Path) -> Result<ModelFile<ModelSpec>> {
    let path = model_file(path)?;
    let bytes = model_file::read(&path)?;
    let metadata = model_file::read_metadata(&path, &bytes)?;
    Ok(ModelFile {
        model: model_file::spec_in(&path, &bytes)?,
        checkpoint: checkpoint_stage(&path, &metadata)?,
        trained_on: trained_on(&path, &metadata)?,
        path,
        verified: true,
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

    #[test]
    fn a_lock_never_used_removes_the_directories_it_created_and_no_others() {
        let tmp = tempfile::tempdir().unwrap();
        let kept = tmp.path().join("kept");
        std::fs::create_dir(&kept).unwrap();
        let dir = kept.join("out/plot_checkpoint");
        drop(lock_dir(&dir).unwrap());
        assert!(kept.is_dir() && !kept.join("out").exists());
        // A directory that holds something else once the run is over stays, with its parents.
        let lock = lock_dir(&dir).unwrap();
        std::fs::write(dir.join(CHECKPOINT_FILE), "x").unwrap();
        drop(lock);
        assert!(dir.join(CHECKPOINT_FILE).is_file() && dir.join(LOCK_FILE).is_file());
        // A parent that was there already stays, though empty.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        drop(lock_dir(&empty.join("ckpt")).unwrap());
        assert!(empty.is_dir() && !empty.join("ckpt").exists());
    }
}
