//! One training run from start to end, as the command line's `train` and `compare`, the Rust
//! example and the Python package's `minivgg` command all run it: what it reads ([`inputs`]),
//! the files it writes ([`files`]), its start (new or from a checkpoint), its epochs with their
//! checkpoints, history, plots and TensorBoard events, and its report. Flags and signals are
//! the caller's.

pub mod error;
pub mod files;
pub mod inputs;
pub(crate) mod paths;

pub use error::{is_bad_input, is_interrupted, BadInput, Interrupted, UsageError};
pub use files::{beside, RunFiles};
pub use inputs::{load_data, load_weights, model_spec, model_spec_for, weights_file};

use crate::data::{Dataset, Fingerprint};
use crate::engine::device::Device;
use crate::engine::sgd::Sgd;
use crate::engine::{Network, Precision};
use crate::fsutil::{atomic_write_bytes, BackgroundWriter};
use crate::model::ModelSpec;
use crate::report::classification::{
    classification_report, confusion_matrix, format_confusion_matrix,
};
use crate::report::plot::plot_confusion;
use crate::report::tensorboard::EventWriter;
use crate::train::checkpoint::{self, Checkpoint, DirLock, RunSettings, SaveBest};
use crate::train::device::fit_on;
use crate::train::fit::{epoch_line, Diverged, FitConfig, Outcome, Progress};
use crate::train::history::{EpochRecord, History};
use crate::train::plan::MemoryPlan;
use crate::words::plural;
use anyhow::Result;
use error::{bad_input, usage};
use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// A new run of `spec` from the start, untrained.
pub fn fresh_run(spec: &ModelSpec, settings: RunSettings) -> Result<Checkpoint> {
    let net =
        Network::with_precision(spec, settings.batch_size, settings.seed, settings.precision)?;
    let sgd = Sgd::new(settings.sgd, net.params.len());
    Ok(Checkpoint {
        net,
        sgd,
        settings,
        progress: Progress::default(),
    })
}

/// Refuses to train `spec` in batches of `batch_size` on data that holds `data_bytes` in
/// memory (`networks` of it at once) if that does not fit in this machine's memory, before
/// anything large is allocated.
pub fn check_memory(
    spec: &ModelSpec,
    batch_size: usize,
    networks: u64,
    data_bytes: u64,
) -> Result<()> {
    let plan = MemoryPlan::for_training(spec, batch_size, networks, data_bytes)?;
    Ok(plan.check_here()?)
}

/// The run whose checkpoint is in `dir`, to go on with on `data`: refused if `data` is not the
/// data it trained on, or if it does not fit in memory.
pub fn resume_run(dir: &Path, data: &Dataset) -> Result<Checkpoint> {
    let fingerprint = data.fingerprint();
    let run = checkpoint::read_checked(dir, |spec, settings| {
        check_same_data(dir, settings, &fingerprint)?;
        inputs::check_fits_data(spec, data)?;
        check_memory(spec, settings.batch_size, 1, data.resident_bytes())
    })
    .map_err(bad_input)?;
    // A run with every epoch done was announced by `RunFiles::finished`.
    if run.progress.history.epochs.len() < run.settings.epochs {
        println!(
            "[INFO] resuming {} from {}: epoch {} of {}, after batch {}",
            run.net.spec.name,
            dir.display(),
            run.progress.epoch(),
            run.settings.epochs,
            run.progress.batches_done
        );
    }
    Ok(run)
}

/// Refuses to resume the run in `dir` on data other than its own, which could not end as
/// the run never stopped would; a checkpoint from before fingerprints is let through, saying so.
fn check_same_data(dir: &Path, settings: &RunSettings, now: &Fingerprint) -> Result<()> {
    match &settings.data_fingerprint {
        None => {
            println!(
                "[INFO] {} is from before checkpoints recorded their data: the data could not be checked",
                dir.display()
            );
            Ok(())
        }
        Some(recorded) if recorded == now => Ok(()),
        Some(recorded) => Err(usage(format!(
            "--resume: this is not the data {} trained on: its fingerprint is {now}, the run's {recorded} ({})",
            dir.display(),
            now.difference(recorded)
        ))),
    }
}

/// What computes a run, in words: the CPU's threads or the GPU.
pub fn device_label(device: Device) -> String {
    match device {
        Device::Cpu => format!("{} threads", rayon::current_num_threads()),
        gpu => gpu.to_string(),
    }
}

/// An epoch that has ended, with its checkpoint on disk: what [`RunControl::on_saved_epoch`]
/// sees.
pub struct SavedEpoch<'a> {
    pub record: &'a EpochRecord,
    /// The epochs the run trains in all.
    pub epochs: usize,
    /// The learning rate the epoch ended at.
    pub lr: f32,
    /// The checkpoint the run goes on from after this epoch (`train --resume` its directory).
    pub checkpoint: &'a Path,
}

/// What a caller runs after each epoch of a run, once its checkpoint is written.
pub type EpochWatcher<'a> = Box<dyn FnMut(&SavedEpoch) -> Result<()> + Send + 'a>;

/// How a caller steers a run and watches it.
#[derive(Default)]
pub struct RunControl<'a> {
    /// Set, it ends the run after the current batch with its checkpoint written:
    /// [`Interrupted`].
    pub stop: Arc<AtomicBool>,
    /// Called after every epoch once its checkpoint is written (a Ray Tune trial reports it
    /// there); an error from it stops the run.
    pub on_saved_epoch: Option<EpochWatcher<'a>>,
}

impl RunControl<'_> {
    /// A run stopped by `stop` and watched by nothing else.
    pub fn stopped_by(stop: Arc<AtomicBool>) -> RunControl<'static> {
        RunControl {
            stop,
            on_saved_epoch: None,
        }
    }
}

/// Trains `run` to its end on `data`, then prints its report and confusion matrix and writes
/// its files; returns its history. `lock`, its checkpoint directory's, is held until then;
/// the finished run then removes its checkpoint, unless its settings keep it.
pub fn train_run(
    run: Checkpoint,
    files: &RunFiles,
    lock: DirLock,
    device: Device,
    data: &Dataset,
    control: RunControl,
) -> Result<History> {
    let RunControl {
        stop,
        mut on_saved_epoch,
    } = control;
    let Checkpoint {
        mut net,
        mut sgd,
        settings,
        mut progress,
    } = run;
    println!(
        "[INFO] compiling model... ({}, seed {}{}{}{}{}, {})",
        net.spec.name,
        settings.seed,
        match settings.precision {
            Precision::Fp32 => String::new(),
            Precision::Tf32 => ", tf32 products on the tensor cores".into(),
            Precision::Bf16 => format!(
                ", {} products on the {} path",
                settings.precision,
                net.isa().path()
            ),
        },
        if settings.augment { ", augmented" } else { "" },
        if settings.sgd.anneal_updates > 0 {
            ", linear schedule"
        } else {
            ""
        },
        match settings.sgd.weight_decay {
            0.0 => String::new(),
            wd => format!(", weight decay {wd}"),
        },
        device_label(device)
    );
    println!(
        "[INFO] training network... (checkpoints in {})",
        files.checkpoint_dir.display()
    );
    let started = Instant::now();
    let config = FitConfig {
        epochs: settings.epochs,
        seed: settings.seed,
        progress: true,
        stop: Some(stop),
        augment: settings.augment,
        shuffle: true,
    };
    // One writer, so each epoch's files land in order: the monitor's, the best model, then
    // the checkpoint that records them.
    let writer = RefCell::new(BackgroundWriter::new());
    let mut save_best = files
        .save_best
        .clone()
        .map(|path| SaveBest::new(path, &settings.data, &progress.history))
        .transpose()?;
    // Keras' TensorBoard callback's layout: DIR/train and DIR/validation, `epoch_` tags.
    let mut events = match &files.tensorboard {
        Some(dir) => Some((
            EventWriter::create(&dir.join("train")).map_err(bad_input)?,
            EventWriter::create(&dir.join("validation")).map_err(bad_input)?,
        )),
        None => None,
    };
    let updates_per_epoch = data.train.len().div_ceil(net.capacity()) as u64;
    // The rate an epoch ended at.
    let lr_after = |epoch: usize| settings.sgd.lr_at(epoch as u64 * updates_per_epoch);
    let fitted = fit_on(
        device,
        &mut net,
        &mut sgd,
        &data.train,
        &data.test,
        &config,
        &mut progress,
        |net, history| {
            let mut writer = writer.borrow_mut();
            if let Some(last) = history.last() {
                println!("{}", epoch_line(last, settings.epochs));
                if let Some((train, validation)) = &mut events {
                    // Steps count epochs from 0, as Keras'.
                    let lr = lr_after(last.epoch);
                    let step = last.epoch as u64 - 1;
                    train.write_scalars(
                        step,
                        [
                            ("epoch_loss", last.loss),
                            ("epoch_accuracy", last.acc),
                            ("epoch_learning_rate", f64::from(lr)),
                        ],
                    )?;
                    validation.write_scalars(
                        step,
                        [
                            ("epoch_loss", last.val_loss),
                            ("epoch_accuracy", last.val_acc),
                        ],
                    )?;
                }
            }
            let (monitor, history_so_far) = (files.monitor.clone(), history.clone());
            writer.submit(move || monitor.write(&history_so_far))?;
            if let Some(save_best) = &mut save_best {
                if let Some(line) = save_best.epoch_end(net, history, &mut writer)? {
                    println!("{line}");
                }
            }
            Ok(())
        },
        |net, sgd, progress| {
            let mut writer = writer.borrow_mut();
            checkpoint::submit(
                &mut writer,
                &files.checkpoint_dir,
                net,
                sgd,
                &settings,
                progress,
            )?;
            let ended = progress
                .history
                .last()
                .filter(|_| progress.batches_done == 0);
            if let (Some(record), Some(observe)) = (ended, &mut on_saved_epoch) {
                writer.wait()?;
                observe(&SavedEpoch {
                    record,
                    epochs: settings.epochs,
                    lr: lr_after(record.epoch),
                    checkpoint: &files.checkpoint_dir.join(checkpoint::CHECKPOINT_FILE),
                })?;
            }
            Ok(())
        },
    );
    // The last checkpoint is on disk before the run reports, whichever way it ended.
    let mut writer = writer.into_inner();
    let written = writer.wait();
    let (outcome, predictions) = fitted.map_err(|e| match e.downcast_ref::<Diverged>() {
        Some(diverged) => anyhow::anyhow!(
            "{diverged}; {}",
            last_good_checkpoint(&files.checkpoint_dir)
        ),
        None => e,
    })?;
    written?;
    if outcome == Outcome::Interrupted {
        return Err(Interrupted(files.checkpoint_dir.clone()).into());
    }
    println!(
        "[INFO] trained {} in {:.1}s (writing files held training up {:.2}s of it)",
        plural(settings.epochs, "epoch", "epochs"),
        started.elapsed().as_secs_f64(),
        writer.blocked().as_secs_f64()
    );
    println!("[INFO] evaluating network...");
    report_predictions(data, &predictions, Some(&files.report), &files.confusion)?;
    let monitor = &files.monitor;
    println!(
        "[INFO] wrote {}, {}, {} and {}",
        monitor.plot.display(),
        monitor.csv.display(),
        monitor.json.display(),
        files.report.display()
    );
    if let Some(path) = &files.save {
        checkpoint::save_model(&net, &settings.data, path)?;
        println!("[INFO] saved model to {}", path.display());
    }
    if let Some(save_best) = &save_best {
        if let Some((epoch, val_loss)) = save_best.best() {
            println!(
                "[INFO] the best model, epoch {epoch}'s (val_loss {val_loss:.4}), is in {}",
                save_best.path().display()
            );
        }
    }
    if settings.keep_checkpoints {
        drop(lock);
    } else {
        lock.remove_checkpoint()?;
        println!(
            "[INFO] removed the checkpoint in {}: the run is over (--keep-checkpoints keeps it)",
            files.checkpoint_dir.display()
        );
    }
    Ok(progress.history)
}

/// Where a stopped run can go on from, in words.
fn last_good_checkpoint(dir: &Path) -> String {
    match checkpoint::read(dir) {
        Ok(run) => format!(
            "the last good checkpoint, after epoch {} batch {}, is in {} (minivgg train --resume {})",
            run.progress.history.epochs.len(),
            run.progress.batches_done,
            dir.display(),
            dir.display()
        ),
        Err(_) => format!("no checkpoint was written yet in {}", dir.display()),
    }
}

/// Prints the classification report and the confusion matrix of `predictions` on `data`'s
/// validation split, saves the report as text at `report` (if given) and the matrix as a heat
/// map at `confusion`.
pub fn report_predictions(
    data: &Dataset,
    predictions: &[u8],
    report: Option<&Path>,
    confusion: &Path,
) -> Result<()> {
    let (test, class_names) = (&data.test, &data.class_names);
    let text = classification_report(test.labels(), predictions, class_names).to_string();
    print!("{text}");
    let cm = confusion_matrix(test.labels(), predictions, class_names.len());
    println!("\n[INFO] confusion matrix (rows: true class, columns: predicted class)");
    print!("{}", format_confusion_matrix(&cm, class_names));
    if let Some(path) = report {
        atomic_write_bytes(path, text.as_bytes())?;
    }
    let title = format!(
        "Confusion matrix on the {} {} validation images",
        test.len(),
        data.name
    );
    plot_confusion(&cm, class_names, &title, confusion)?;
    println!(
        "[INFO] wrote the confusion matrix heat map to {}",
        confusion.display()
    );
    Ok(())
}
