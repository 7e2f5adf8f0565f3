//! The files one training run writes, known before its data is loaded, so that they are
//! checked and locked first.

use super::paths::Files;
use crate::fsutil::{ensure_writable, remove_stale_temporaries};
use crate::report::monitor::TrainingMonitor;
use crate::train::checkpoint::{self, DirLock, RunSettings};
use crate::words::plural;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `plot.png` → `plot<suffix>` in the same directory.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}{suffix}"))
}

/// The line that answers `--resume DIR` where DIR is gone but the history of its run is
/// beside it (`plot_checkpoint` → `plot.csv`): the run finished and removed its checkpoint.
pub fn removed_by_finished_run(dir: &Path) -> Option<String> {
    if dir.exists() {
        return None;
    }
    let name = dir.file_name()?.to_str()?.strip_suffix("_checkpoint")?;
    let csv = dir.with_file_name(format!("{name}.csv"));
    let epochs = std::fs::read_to_string(&csv)
        .ok()?
        .lines()
        .count()
        .checked_sub(1)?;
    Some(format!(
        "[INFO] {} is gone: the run that wrote {} finished ({}) and removed its checkpoint then (--keep-checkpoints keeps it): nothing to resume",
        dir.display(),
        csv.display(),
        plural(epochs, "epoch", "epochs")
    ))
}

/// The files one training run writes: its plot, and beside it the history, the report, the
/// confusion matrix and the checkpoint directory; the model where its settings say.
pub struct RunFiles {
    /// The plot, CSV and JSON history, rewritten after every epoch.
    pub(super) monitor: TrainingMonitor,
    pub(super) report: PathBuf,
    pub(super) confusion: PathBuf,
    pub(super) checkpoint_dir: PathBuf,
    pub(super) save: Option<PathBuf>,
    /// `--save-best`: NAME_best.safetensors beside `save`.
    pub(super) save_best: Option<PathBuf>,
    /// `--tensorboard`: the directory of the run's event files.
    pub tensorboard: Option<PathBuf>,
}

impl RunFiles {
    /// The files of the run `settings` describe, its checkpoints in `checkpoint_dir`.
    pub fn new(settings: &RunSettings, checkpoint_dir: PathBuf) -> RunFiles {
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

    /// The run's plot, which names the others.
    pub fn plot(&self) -> &Path {
        &self.monitor.plot
    }

    /// Where the run's checkpoint goes.
    pub fn checkpoint_dir(&self) -> &Path {
        &self.checkpoint_dir
    }

    /// Titles the plots with the data set's name.
    pub fn set_data_name(&mut self, name: &str) {
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
    pub(crate) fn declare(&self, files: &mut Files, plot: &str) {
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
    pub fn check_writable(&self) -> Result<()> {
        let checkpoint = self.checkpoint_dir.join(checkpoint::CHECKPOINT_FILE);
        for path in self.paths().chain([&checkpoint]) {
            ensure_writable(path)?;
        }
        Ok(())
    }

    /// Locks the checkpoint directory for this run (held until the lock is dropped), or says
    /// which run holds it: before the data is loaded, so a second run is refused at once.
    /// The run's files are then its own: the temporary files a killed run left of them go.
    pub fn lock(&self) -> Result<DirLock> {
        let lock = checkpoint::lock_dir(&self.checkpoint_dir)?;
        for path in self.paths() {
            remove_stale_temporaries(path, Duration::ZERO);
        }
        Ok(lock)
    }

    /// Whether the run in `dir`, `done` of its epochs trained, has nothing left to do: every
    /// epoch done and every file written, said in one line, before anything is loaded or
    /// written (not even the lock). One whose last files are missing is said so, and goes on
    /// to write them.
    pub fn finished(&self, dir: &Path, settings: &RunSettings, done: usize) -> bool {
        if done < settings.epochs {
            return false;
        }
        let list = |paths: Vec<&PathBuf>| {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            names.join(", ")
        };
        let unwritten = self.unwritten_since(&dir.join(checkpoint::CHECKPOINT_FILE));
        if unwritten.is_empty() {
            println!(
                "[INFO] {} holds a finished run ({done} of {} epochs): nothing to resume; its files are {}",
                dir.display(),
                settings.epochs,
                list(self.paths().filter(|p| p.exists()).collect())
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
}
