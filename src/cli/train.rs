//! `minivgg train`: a new run from the flags or a stopped one from its checkpoint, trained to
//! its end, then its report, plot, history and model.

use super::args::{check_flags, run_settings, ModelArgs, RecipeArgs};
use super::paths::Files;
use super::{
    bad_input, beside, check_fits_data, check_memory, declare_inputs, device_label, load_data,
    model_spec, model_spec_for, report_predictions, set_threads, usage,
};
use crate::data::source::Source;
use crate::data::Fingerprint;
use crate::data::{DataRequest, Dataset};
use crate::engine::device::Device;
use crate::engine::sgd::Sgd;
use crate::engine::{Network, Precision};
use crate::fsutil::{ensure_writable, remove_stale_temporaries, BackgroundWriter};
use crate::model::{io as model_io, ModelSpec};
use crate::report::monitor::TrainingMonitor;
use crate::report::tensorboard::EventWriter;
use crate::train::checkpoint::{self, Checkpoint, DirLock, RunSettings, SaveBest};
use crate::train::fit::{check_device, epoch_line, fit_on, Diverged, FitConfig, Outcome, Progress};
use crate::train::history::History;
use crate::train::plan::MemoryPlan;
use anyhow::{Context, Result};
use clap::Args;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The loss/accuracy plot (PNG); the history CSV, report and confusion matrix are written
    /// beside it. Default: output/cifar10_minivggnet_with_bn.png, …_without_bn.png, or
    /// output/cifar10_MODEL.png.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Save the trained model (safetensors with its architecture) to this file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also keep the model of the epoch with the lowest val_loss, beside --save as
    /// NAME_best.safetensors (Keras' ModelCheckpoint(save_best_only=True)).
    #[arg(long)]
    pub save_best: bool,
    /// Where the checkpoint written after every epoch (and on Ctrl-C) goes.
    /// Default: beside the plot, PLOT_checkpoint/.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Also write each epoch's loss, accuracy and learning rate as TensorBoard scalars in
    /// DIR/train, and its val_loss and val_accuracy in DIR/validation, as Keras' TensorBoard
    /// callback lays them out (`tensorboard --logdir DIR` shows them).
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// Go on with the run whose checkpoint is in DIR, with that run's own settings: only
    /// --checkpoint-dir, --tensorboard, --data (where its data is now), --threads and --device
    /// may be given with it.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

/// The flags `--resume` takes: where the run's files and data are now and how it computes.
/// Every other flag of `train` would change the run, which goes on as it was begun.
const WITH_RESUME: [&str; 6] = [
    "resume",
    "checkpoint_dir",
    "tensorboard",
    "data",
    "threads",
    "device",
];

/// `train`'s command with `--resume` conflicting with every flag but [`WITH_RESUME`], so a
/// flag added later is refused with it unless it is added there.
pub(super) fn with_resume_rule(train: clap::Command) -> clap::Command {
    let changes_the_run: Vec<clap::Id> = train
        .get_arguments()
        .map(|arg| arg.get_id().clone())
        .filter(|id| !WITH_RESUME.contains(&id.as_str()))
        .collect();
    train.mut_arg("resume", |resume| {
        resume.conflicts_with_all(changes_the_run)
    })
}

/// A new run of `spec` from the start.
pub(super) fn fresh_run(spec: &ModelSpec, settings: RunSettings) -> Result<Checkpoint> {
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

/// `output/DATA_MODEL.png`: `output/cifar10_minivggnet_with_bn.png` for the tutorial's run.
fn default_output(model: &ModelArgs, data: &DataRequest) -> Result<PathBuf> {
    let name = match model_spec(model) {
        Ok(spec) => spec.name,
        Err(_) => model.model.clone(),
    };
    let stem = match name.as_str() {
        "minivggnet" => "minivggnet_with_bn".to_string(),
        "minivggnet_no_bn" => "minivggnet_without_bn".to_string(),
        other => other.to_string(),
    };
    Ok(PathBuf::from(format!("output/{}_{stem}.png", data.slug())))
}

/// A run stopped by Ctrl-C (or SIGTERM) after writing its checkpoint: exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; the run is saved in {}: go on with `minivgg train --resume {}`", .0.display(), .0.display())]
pub struct Interrupted(pub PathBuf);

/// The outputs of a new run from the flags, or those of the run a checkpoint holds (with its
/// settings and the epochs it has done), and its checkpoint directory: all that is known
/// before the data is loaded.
fn run_outputs(args: &TrainArgs) -> Result<(RunFiles, Option<(RunSettings, usize)>)> {
    if let Some(dir) = &args.resume {
        let (settings, done) = checkpoint::read_progress(dir).map_err(bad_input)?;
        let dir = args.checkpoint_dir.clone().unwrap_or_else(|| dir.clone());
        return Ok((RunFiles::new(&settings, dir), Some((settings, done))));
    }
    check_flags(&args.recipe)?;
    // An unknown network is refused before the data is loaded.
    model_spec(&args.model)?;
    if args.save_best && args.save.is_none() {
        return Err(usage(
            "--save-best needs --save: the best model is kept beside the final one".into(),
        ));
    }
    let output = match &args.output {
        Some(output) => output.clone(),
        None => default_output(&args.model, &args.recipe.data.request()?)?,
    };
    let outputs = RunSettings {
        save_best: args.save_best,
        ..run_settings(&args.recipe, 0, output, args.save.clone(), 0)
    };
    let dir = args
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| beside(&outputs.output, "_checkpoint"));
    Ok((RunFiles::new(&outputs, dir), None))
}

/// The run on `data`: a new one from the flags, or the one whose checkpoint is in `--resume`
/// (its architecture and batch size planned before anything is allocated).
fn start_run(args: &TrainArgs, data: &Dataset, output: &Path) -> Result<Checkpoint> {
    let plan = |spec: &ModelSpec, batch_size: usize| {
        check_memory(&MemoryPlan::for_training(
            spec,
            batch_size,
            1,
            data.resident_bytes(),
        )?)
    };
    let fingerprint = data.fingerprint();
    if let Some(dir) = &args.resume {
        let run = checkpoint::read_checked(dir, |spec, settings| {
            check_same_data(dir, settings, &fingerprint)?;
            check_fits_data(spec, data)?;
            plan(spec, settings.batch_size)
        })
        .map_err(bad_input)?;
        // A run with every epoch done was announced by `finished`.
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
        return Ok(run);
    }
    let spec = model_spec_for(&args.model, data)?;
    let seed = args.recipe.seed.unwrap_or_else(rand::random);
    let settings = RunSettings {
        save_best: args.save_best,
        data: args.recipe.data.request()?,
        data_fingerprint: Some(fingerprint),
        ..run_settings(
            &args.recipe,
            seed,
            output.to_path_buf(),
            args.save.clone(),
            data.train.len(),
        )
    };
    plan(&spec, settings.batch_size)?;
    fresh_run(&spec, settings)
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

/// Ctrl-C and SIGTERM ask the run to stop after the current batch; a second one quits at once.
pub(super) fn stop_on_signal() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\n[INFO] stopping after this batch to write a checkpoint (again to quit at once)"
        );
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// The files one training run writes: its plot, and beside it the history, the report, the
/// confusion matrix and the checkpoint directory; the model where `--save` says.
pub(super) struct RunFiles {
    /// The plot, CSV and JSON history, rewritten after every epoch.
    monitor: TrainingMonitor,
    report: PathBuf,
    confusion: PathBuf,
    checkpoint_dir: PathBuf,
    save: Option<PathBuf>,
    /// `--save-best`: NAME_best.safetensors beside `save`.
    save_best: Option<PathBuf>,
    /// `--tensorboard`: the directory of the run's event file.
    pub(super) tensorboard: Option<PathBuf>,
}

impl RunFiles {
    pub(super) fn new(settings: &RunSettings, checkpoint_dir: PathBuf) -> RunFiles {
        let plot = settings.output.clone();
        let save_best = match &settings.save {
            Some(save) if settings.save_best => Some(beside(save, "_best.safetensors")),
            _ => None,
        };
        RunFiles {
            monitor: TrainingMonitor {
                csv: beside(&plot, ".csv"),
                json: beside(&plot, ".json"),
                plot,
                title: String::new(),
            },
            report: beside(&settings.output, "_report.txt"),
            confusion: beside(&settings.output, "_confusion.png"),
            checkpoint_dir,
            save: settings.save.clone(),
            save_best,
            tensorboard: None,
        }
    }

    /// Titles the plots with the data set's name.
    pub(super) fn set_data_name(&mut self, name: &str) {
        self.monitor.title = format!("Training Loss and Accuracy on {name}");
    }

    /// Every file the run writes (the checkpoint's directory aside).
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        let monitor = &self.monitor;
        [
            &monitor.plot,
            &monitor.csv,
            &monitor.json,
            &self.report,
            &self.confusion,
        ]
        .into_iter()
        .chain(&self.save)
        .chain(&self.save_best)
    }

    /// Adds the run's outputs to `files`, its plot named `plot` ("--output").
    pub(super) fn declare(&self, files: &mut Files, plot: &str) {
        let monitor = &self.monitor;
        files
            .writes(plot, &monitor.plot)
            .writes(format!("the CSV beside {plot}"), &monitor.csv)
            .writes(format!("the JSON beside {plot}"), &monitor.json)
            .writes(format!("the report beside {plot}"), &self.report)
            .writes(
                format!("the confusion matrix beside {plot}"),
                &self.confusion,
            )
            .writes(
                "the checkpoint",
                &self.checkpoint_dir.join(checkpoint::CHECKPOINT_FILE),
            );
        if let Some(save) = &self.save {
            files.writes("--save", save);
        }
        if let Some(best) = &self.save_best {
            files.writes("the best model beside --save", best);
        }
    }

    /// Those written once training ends (the report, the confusion matrix, the model) that are
    /// missing or older than `checkpoint`, the run's last: a run killed after its last epoch.
    /// The others are written before each checkpoint.
    fn unwritten_since(&self, checkpoint: &Path) -> Vec<&PathBuf> {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let trained = modified(checkpoint);
        [&self.report, &self.confusion]
            .into_iter()
            .chain(&self.save)
            .filter(|path| match (modified(path), trained) {
                (None, _) => true,
                (Some(written), Some(trained)) => written < trained,
                (Some(_), None) => false,
            })
            .collect()
    }

    /// Fails now, not after hours of training, if any of them cannot be written.
    pub(super) fn check_writable(&self) -> Result<()> {
        let checkpoint = self.checkpoint_dir.join(checkpoint::CHECKPOINT_FILE);
        for path in self.paths().chain([&checkpoint]) {
            ensure_writable(path)?;
        }
        Ok(())
    }

    /// Locks the checkpoint directory for this run (held until the lock is dropped), or says
    /// which run holds it: before the data is loaded, so a second run is refused at once.
    /// The run's files are then its own: the temporary files a killed run left of them go.
    pub(super) fn lock(&self) -> Result<DirLock> {
        let lock = checkpoint::lock_dir(&self.checkpoint_dir)?;
        for path in self.paths() {
            remove_stale_temporaries(path, Duration::ZERO);
        }
        Ok(lock)
    }
}

/// Whether the run `--resume DIR` names has nothing left to do: every epoch done and every file
/// written, said in one line, before anything is loaded or written (not even the lock). One
/// whose last files are missing is said so, and goes on to write them.
fn finished(dir: &Path, files: &RunFiles, settings: &RunSettings, done: usize) -> bool {
    if done < settings.epochs {
        return false;
    }
    let list = |paths: Vec<&PathBuf>| {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        names.join(", ")
    };
    let unwritten = files.unwritten_since(&dir.join(checkpoint::CHECKPOINT_FILE));
    if unwritten.is_empty() {
        println!(
            "[INFO] {} holds a finished run ({done} of {} epochs): nothing to resume; its files are {}",
            dir.display(),
            settings.epochs,
            list(files.paths().filter(|p| p.exists()).collect())
        );
        return true;
    }
    println!(
        "[INFO] {} holds a trained run ({done} of {} epochs) that did not write {} after its last epoch: evaluating it again to write them",
        dir.display(),
        settings.epochs,
        list(unwritten)
    );
    false
}

pub(super) fn train(args: TrainArgs) -> Result<()> {
    let (mut files, resumed) = run_outputs(&args)?;
    files.tensorboard = args.tensorboard.clone();
    if let (Some(dir), Some((settings, done))) = (&args.resume, &resumed) {
        if finished(dir, &files, settings, *done) {
            return Ok(());
        }
    }
    let resumed = resumed.map(|(settings, _)| settings);
    let (request, limit) = match &resumed {
        // The data the run recorded; --data says where it is now.
        Some(settings) => (
            DataRequest {
                data: args.recipe.data.data.clone().or(settings.data.data.clone()),
                ..settings.data.clone()
            },
            settings.limit,
        ),
        None => (args.recipe.data.request()?, args.recipe.limit),
    };
    // The checkpoint --resume reads is the one the run goes on writing: not an input here.
    let mut paths = Files::default();
    files.declare(&mut paths, "--output");
    declare_inputs(&mut paths, &args.model.model, &request);
    paths.check_distinct()?;
    // A resumed run keeps its precision: the device must run it.
    let precision = resumed
        .as_ref()
        .map_or(args.recipe.compute.precision, |s| s.precision);
    precision
        .check_device(args.recipe.compute.device)
        .map_err(|why| usage(format!("the run trains in {precision}: {why}")))?;
    files.check_writable()?;
    set_threads(args.recipe.compute.threads)?;
    check_device(args.recipe.compute.device)?;
    let lock = files.lock()?;
    let data = load_data(&request, limit)?;
    files.set_data_name(&data.name);
    let mut run = start_run(&args, &data, &files.monitor.plot)?;
    // Recorded as a full path, so a resume from another directory finds the same data.
    run.settings.data = DataRequest {
        data: match request.source() {
            Source::Path(path) => Some(path.canonicalize().unwrap_or(path)),
            Source::Named(_) => request.data.clone(),
        },
        ..request
    };
    train_run(
        run,
        &files,
        lock,
        args.recipe.compute.device,
        &data,
        stop_on_signal()?,
    )?;
    Ok(())
}

/// Trains one run to its end on `data`, then prints its report and confusion matrix and writes
/// its files; returns its history. `_lock`, its checkpoint directory's, is held until then.
pub(super) fn train_run(
    run: Checkpoint,
    files: &RunFiles,
    _lock: DirLock,
    device: Device,
    data: &Dataset,
    stop: Arc<AtomicBool>,
) -> Result<History> {
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
        .map(|path| SaveBest::new(path, &progress.history));
    // Keras' TensorBoard callback's layout: DIR/train and DIR/validation, `epoch_` tags.
    let mut events = match &files.tensorboard {
        Some(dir) => Some((
            EventWriter::create(&dir.join("train")).map_err(bad_input)?,
            EventWriter::create(&dir.join("validation")).map_err(bad_input)?,
        )),
        None => None,
    };
    let updates_per_epoch = data.train.len().div_ceil(net.capacity()) as u64;
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
                    // The rate the epoch ended at; steps count epochs from 0, as Keras'.
                    let lr = settings.sgd.lr_at(last.epoch as u64 * updates_per_epoch);
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
            )
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
        "[INFO] trained {} epochs in {:.1}s (writing files held training up {:.2}s of it)",
        settings.epochs,
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
        model_io::save(&net, path)?;
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

#[cfg(test)]
mod tests {
    use crate::cli::command;

    #[test]
    fn resume_takes_where_the_run_is_and_how_it_computes_and_no_flag_that_changes_it() {
        let parse = |flags: &[&str]| {
            let args = ["minivgg", "train", "--resume", "run"].iter().chain(flags);
            command().try_get_matches_from(args)
        };
        for allowed in [
            &["--checkpoint-dir", "d"][..],
            &["--tensorboard", "d"],
            &["--data", "d"],
            &["--threads", "1"],
            &["--device", "cpu"],
        ] {
            assert!(parse(allowed).is_ok(), "{allowed:?}");
        }
        for refused in [
            &["--epochs", "3"][..],
            &["--precision", "bf16"],
            &["--model", "lenet"],
            &["--seed", "1"],
            &["--image-size", "16"],
            &["--save", "m.safetensors"],
        ] {
            let err = parse(refused).unwrap_err().to_string();
            assert!(err.contains("cannot be used with"), "{refused:?}: {err}");
        }
    }
}
