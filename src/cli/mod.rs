//! The `minivgg` command line: flags with the tutorial's values as defaults, checked before
//! any work starts, and the subcommands wired to the library.

use crate::data::cifar10::{self, Cifar10, Split, IMAGE_BYTES, TRAIN_IMAGES};
use crate::data::{download, images};
use crate::engine::cpu::simd::UnsupportedCpu;
use crate::engine::device::Device;
use crate::engine::sgd::{Sgd, SgdConfig};
use crate::engine::{Network, Precision};
use crate::fsutil::{atomic_write_bytes, ensure_writable, NotWritable, WriteError};
use crate::model::{io as model_io, zoo, ModelSpec};
use crate::report::classification::{
    classification_report, confusion_matrix, format_confusion_matrix,
};
use crate::report::plot::{plot_comparison, plot_confusion, plot_history};
use crate::train::bench::bench;
use crate::train::checkpoint::{self, Checkpoint, RunSettings};
use crate::train::fit::{
    check_device, epoch_line, evaluate_on, fit_on, predict_probabilities, Diverged, FitConfig,
    Outcome, Progress,
};
use crate::train::history::History;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(
    name = "minivgg",
    version,
    about = "Train the MiniVGGNet tutorial's networks on CIFAR-10"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network with the tutorial's recipe, then print the classification report and
    /// save the plot, the history CSV and (with --save) the model.
    Train(TrainArgs),
    /// The tutorial's experiment: MiniVGGNet with and without batch normalization from the
    /// same seed, their curves side by side and a table of both.
    Compare(CompareArgs),
    /// Reload a saved model and print its classification report and confusion matrix on the
    /// test set.
    Evaluate(EvaluateArgs),
    /// Classify PNG or JPEG files of any size with a saved model: top classes per file.
    Predict(PredictArgs),
    /// Print a Keras-style model summary.
    Summary(ModelArgs),
    /// Time training steps and inference, layer by layer, on synthetic data.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Timed steps, after 5 warm-up steps.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

/// `--precision`, shared by `train`, `compare`, `evaluate` and `bench`.
#[derive(Debug, Args)]
pub struct PrecisionArg {
    /// What the convolutions multiply: fp32 (the tutorial's), or bf16 (products of bfloat16
    /// values summed in f32; weights, BN statistics, loss and optimizer stay f32), on CPUs
    /// with AVX512_BF16. The CPU path is the best the CPU has; MINIVGG_CPU=portable|avx2|avx512
    /// forces a lower one.
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
}

impl PrecisionArg {
    /// The precision, if the device runs it.
    fn on(&self, device: Device) -> Result<Precision> {
        if self.precision == Precision::Bf16 && device != Device::Cpu {
            return Err(usage(
                "--precision bf16 runs on the CPU only; the GPU trains in fp32".into(),
            ));
        }
        Ok(self.precision)
    }
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Architecture: minivggnet, shallownet or lenet, or a model file saved by `train --save`.
    #[arg(long, default_value = "minivggnet")]
    pub model: String,
    /// MiniVGGNet without its five batch-normalization layers (the tutorial's ablation).
    #[arg(long)]
    pub no_bn: bool,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The loss/accuracy plot (PNG); the history CSV, report and confusion matrix are written
    /// beside it. Default: output/cifar10_minivggnet_with_bn.png, …_without_bn.png, or
    /// output/cifar10_<model>.png.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Save the trained model (safetensors with its architecture) to this file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Where the checkpoint written after every epoch (and on Ctrl-C) goes.
    /// Default: beside the plot, <plot name>_checkpoint/.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Go on with the run whose checkpoint is in DIR, with that run's own settings.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "model", "no_bn", "output", "epochs", "batch_size", "lr", "momentum", "no_nesterov",
        "decay", "schedule", "weight_decay", "seed", "save", "augment", "limit", "precision",
    ])]
    pub resume: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schedule {
    Keras,
    Linear,
}

/// The recipe and where it runs: shared by `train` and `compare`.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f32,
    /// Plain momentum instead of Nesterov's.
    #[arg(long)]
    pub no_nesterov: bool,
    /// Time-based learning-rate decay per update. Default: lr / epochs, as the tutorial
    /// (0 with `--schedule linear`).
    #[arg(long, allow_negative_numbers = true)]
    pub decay: Option<f32>,
    /// How the learning rate falls per update t: `keras`, the tutorial's lr / (1 + decay·t);
    /// or `linear`, which also scales it by 1 − t/T so it reaches 0 at the run's last update
    /// (the series' later polynomial decay, power 1).
    #[arg(long, value_enum, default_value = "keras")]
    pub schedule: Schedule,
    /// Adds wd·w to the gradient of every trainable parameter, as PyTorch's
    /// SGD(weight_decay=wd); Keras' l2(wd / 2) on every weight. The printed loss leaves the
    /// penalty out. The tutorial uses none.
    #[arg(
        long,
        value_name = "WD",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub weight_decay: f32,
    /// Seed for initialisation, shuffling, dropout and augmentation. Default: a random seed,
    /// printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Augment the training images: a random 32×32 crop of the image padded by 4 pixels, and
    /// a horizontal flip half of the time (drawn from the seed).
    #[arg(long)]
    pub augment: bool,
    /// Use only the first N training and N test images (quick trials; the report then covers
    /// those N test images).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Worker threads. Default: one per CPU core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, or cuda[:N] for an NVIDIA GPU (a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The side-by-side figure (PNG). The table goes beside it as <name>.md, and each run's
    /// own plot, CSV, report and confusion matrix as <name>_with_bn.png, <name>_without_bn.png…
    #[arg(long, default_value = "output/cifar10_minivggnet_bn_comparison.png")]
    pub output: PathBuf,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model saved by `train --save`.
    #[arg(long)]
    pub weights: PathBuf,
    /// PNG or JPEG files, any size: each is resized to 32×32 (aspect ratio not kept).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// How many of the most likely classes to print per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// CIFAR-10: a cifar-10-batches-bin directory (or its parent) or the .tar.gz archive.
    /// Default: $MINIVGG_DATA, else the user cache, downloading the official archive if empty.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A model saved by `train --save`.
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    #[command(flatten)]
    pub precision: PrecisionArg,
    /// The confusion matrix heat map (PNG). Default: beside the weights, <name>_confusion.png.
    #[arg(long)]
    pub confusion: Option<PathBuf>,
}

/// An error in what the user asked for (a flag's value): exit code 2, like clap's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Compare(args) => compare(args),
        Command::Evaluate(args) => evaluate_saved(args),
        Command::Predict(args) => predict(args),
        Command::Bench(args) => {
            if args.batch_size == 0 || args.steps == 0 {
                return Err(usage("--batch-size and --steps must be at least 1".into()));
            }
            set_threads(args.threads)?;
            let precision = args.precision.on(args.device)?;
            let spec = model_spec(&args.model)?;
            let (batch, steps) = (args.batch_size, args.steps);
            print!("{}", bench(args.device, &spec, precision, batch, steps, 5)?);
            Ok(())
        }
        Command::Summary(args) => {
            print!("{}", model_spec(&args)?.summary()?);
            Ok(())
        }
    }
}

fn model_spec(args: &ModelArgs) -> Result<ModelSpec> {
    let path = Path::new(&args.model);
    if path.is_file() {
        if args.no_bn {
            return Err(usage(format!(
                "--no-bn applies to the built-in models, not to the saved model {}",
                path.display()
            )));
        }
        return model_io::read_spec(path).map_err(bad_input);
    }
    zoo::by_name(&args.model, !args.no_bn).map_err(|e| usage(format!("--model: {e}")))
}

fn check_flags(args: &RecipeArgs) -> Result<()> {
    args.precision.on(args.device)?;
    if args.epochs == 0 {
        return Err(usage("--epochs must be at least 1".into()));
    }
    if args.batch_size == 0 {
        return Err(usage("--batch-size must be at least 1".into()));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(usage(format!(
            "--lr must be a positive number, got {}",
            args.lr
        )));
    }
    if !(0.0..1.0).contains(&args.momentum) {
        return Err(usage(format!(
            "--momentum must be in [0, 1), got {}",
            args.momentum
        )));
    }
    if let Some(decay) = args.decay {
        check_non_negative("--decay", decay)?;
    }
    check_non_negative("--weight-decay", args.weight_decay)?;
    if args.limit == Some(0) {
        return Err(usage("--limit must be at least 1".into()));
    }
    Ok(())
}

fn check_non_negative(flag: &str, value: f32) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(usage(format!(
            "{flag} must be a non-negative number, got {value}"
        )))
    }
}

/// A new run's settings from the recipe flags (`seed` drawn already if not given), its plot
/// at `output`.
fn run_settings(
    recipe: &RecipeArgs,
    seed: u64,
    output: PathBuf,
    save: Option<PathBuf>,
) -> RunSettings {
    RunSettings {
        epochs: recipe.epochs,
        batch_size: recipe.batch_size,
        sgd: SgdConfig {
            lr: recipe.lr,
            momentum: recipe.momentum,
            nesterov: !recipe.no_nesterov,
            decay: recipe.decay.unwrap_or(match recipe.schedule {
                Schedule::Keras => recipe.lr / recipe.epochs as f32,
                Schedule::Linear => 0.0,
            }),
            anneal_updates: match recipe.schedule {
                Schedule::Keras => 0,
                Schedule::Linear => {
                    let images = recipe.limit.map_or(TRAIN_IMAGES, |n| n.min(TRAIN_IMAGES));
                    (recipe.epochs * images.div_ceil(recipe.batch_size)) as u64
                }
            },
            weight_decay: recipe.weight_decay,
        },
        seed,
        output,
        save,
        augment: recipe.augment,
        limit: recipe.limit,
        precision: recipe.precision.precision,
    }
}

/// A new run of `spec` from the start.
fn fresh_run(spec: &ModelSpec, settings: RunSettings) -> Result<Checkpoint> {
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

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            return Err(usage("--threads must be at least 1".into()));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot start the worker threads")?;
    }
    Ok(())
}

fn default_output(spec: &ModelSpec) -> PathBuf {
    let stem = match spec.name.as_str() {
        "minivggnet" => "minivggnet_with_bn".to_string(),
        "minivggnet_no_bn" => "minivggnet_without_bn".to_string(),
        other => other.to_string(),
    };
    PathBuf::from(format!("output/cifar10_{stem}.png"))
}

/// `plot.png` → `plot<suffix>` in the same directory.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}{suffix}"))
}

/// Input the user gave that cannot be used: a data set, a saved model or checkpoint, an
/// output path. Exit code 2, like a bad flag.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct BadInput(pub anyhow::Error);

fn bad_input(err: anyhow::Error) -> anyhow::Error {
    BadInput(err).into()
}

/// The process exit code for `err`: 130 for an interrupted run, as a shell reports Ctrl-C; 2
/// for bad input (a flag, a file, a path that cannot be written, a disk that is full), as
/// clap's own parse errors; 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<Interrupted>()) {
        return 130;
    }
    let bad = err.chain().any(|e| {
        e.is::<UsageError>()
            || e.is::<BadInput>()
            || e.is::<UnreadableImages>()
            || e.is::<cifar10::DataError>()
            || e.is::<WriteError>()
            || e.is::<NotWritable>()
            || e.is::<UnsupportedCpu>()
    });
    if bad {
        2
    } else {
        1
    }
}

/// A run stopped by Ctrl-C (or SIGTERM) after writing its checkpoint: exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; the run is saved in {}: go on with `minivgg train --resume {}`", .0.display(), .0.display())]
pub struct Interrupted(pub PathBuf);

/// A new run from the flags, or the run a checkpoint holds.
fn start_run(args: &TrainArgs) -> Result<(Checkpoint, PathBuf)> {
    if let Some(dir) = &args.resume {
        let run = checkpoint::read(dir).map_err(bad_input)?;
        println!(
            "[INFO] resuming {} from {}: epoch {} of {}, after batch {}",
            run.net.spec.name,
            dir.display(),
            run.progress.epoch(),
            run.settings.epochs,
            run.progress.batches_done
        );
        return Ok((
            run,
            args.checkpoint_dir.clone().unwrap_or_else(|| dir.clone()),
        ));
    }
    check_flags(&args.recipe)?;
    let spec = model_spec(&args.model)?;
    let output = args.output.clone().unwrap_or_else(|| default_output(&spec));
    let seed = args.recipe.seed.unwrap_or_else(rand::random);
    let settings = run_settings(&args.recipe, seed, output, args.save.clone());
    let dir = args
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| beside(&settings.output, "_checkpoint"));
    Ok((fresh_run(&spec, settings)?, dir))
}

/// Ctrl-C and SIGTERM ask the run to stop after the current batch; a second one quits at once.
fn stop_on_signal() -> Result<Arc<AtomicBool>> {
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
struct RunFiles {
    plot: PathBuf,
    csv: PathBuf,
    report: PathBuf,
    confusion: PathBuf,
    checkpoint_dir: PathBuf,
    save: Option<PathBuf>,
}

impl RunFiles {
    fn new(settings: &RunSettings, checkpoint_dir: PathBuf) -> RunFiles {
        let plot = settings.output.clone();
        RunFiles {
            csv: beside(&plot, ".csv"),
            report: beside(&plot, "_report.txt"),
            confusion: beside(&plot, "_confusion.png"),
            plot,
            checkpoint_dir,
            save: settings.save.clone(),
        }
    }

    /// Fails now, not after hours of training, if any of them cannot be written.
    fn check_writable(&self) -> Result<()> {
        let checkpoint = self.checkpoint_dir.join(checkpoint::CHECKPOINT_FILE);
        for path in [
            &self.plot,
            &self.csv,
            &self.report,
            &self.confusion,
            &checkpoint,
        ]
        .into_iter()
        .chain(&self.save)
        {
            ensure_writable(path)?;
        }
        Ok(())
    }
}

/// The data a run trains and validates on: CIFAR-10, cut to `--limit` images per split.
fn load_data(data: &DataArgs, limit: Option<usize>) -> Result<Cifar10> {
    println!("[INFO] loading CIFAR-10 data...");
    let data_path = resolve_data_path(data)?;
    let mut data = cifar10::load(&data_path)?;
    if let Some(limit) = limit {
        data.train.truncate(limit);
        data.test.truncate(limit);
    }
    Ok(data)
}

/// Where the data is; a path the user named (flag or environment) that is not there is bad
/// input, a failed download is not.
fn resolve_data_path(data: &DataArgs) -> Result<PathBuf> {
    let named =
        data.data.is_some() || std::env::var_os(download::DATA_ENV).is_some_and(|v| !v.is_empty());
    download::resolve_data_path(data.data.as_deref())
        .map_err(|e| if named { bad_input(e) } else { e })
}

fn device_label(device: Device) -> String {
    match device {
        Device::Cpu => format!("{} threads", rayon::current_num_threads()),
        gpu => gpu.to_string(),
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let (run, checkpoint_dir) = start_run(&args)?;
    let files = RunFiles::new(&run.settings, checkpoint_dir);
    files.check_writable()?;
    set_threads(args.recipe.threads)?;
    check_device(args.recipe.device)?;
    let data = load_data(&args.recipe.data, run.settings.limit)?;
    train_run(run, &files, args.recipe.device, &data, stop_on_signal()?)?;
    Ok(())
}

/// Trains one run to its end on `data`, then prints its report and confusion matrix and writes
/// its files; returns its history.
fn train_run(
    run: Checkpoint,
    files: &RunFiles,
    device: Device,
    data: &Cifar10,
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
            _ => format!(
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
    };
    let (outcome, predictions) = fit_on(
        device,
        &mut net,
        &mut sgd,
        &data.train,
        &data.test,
        &config,
        &mut progress,
        |record| println!("{}", epoch_line(record, settings.epochs)),
        |net, sgd, progress| {
            checkpoint::write(&files.checkpoint_dir, net, sgd, &settings, progress)
        },
    )
    .map_err(|e| match e.downcast_ref::<Diverged>() {
        Some(diverged) => anyhow::anyhow!(
            "{diverged}; {}",
            last_good_checkpoint(&files.checkpoint_dir)
        ),
        None => e,
    })?;
    if outcome == Outcome::Interrupted {
        return Err(Interrupted(files.checkpoint_dir.clone()).into());
    }
    println!(
        "[INFO] trained {} epochs in {:.1}s",
        settings.epochs,
        started.elapsed().as_secs_f64()
    );
    println!("[INFO] evaluating network...");
    report_predictions(
        &data.test,
        &predictions,
        &data.class_names,
        Some(&files.report),
        &files.confusion,
    )?;
    progress.history.write_csv(&files.csv)?;
    plot_history(
        &progress.history,
        &files.plot,
        "Training Loss and Accuracy on CIFAR-10",
    )?;
    println!(
        "[INFO] wrote {}, {} and {}",
        files.plot.display(),
        files.csv.display(),
        files.report.display()
    );
    if let Some(path) = &files.save {
        model_io::save(&net, path)?;
        println!("[INFO] saved model to {}", path.display());
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

/// Prints the classification report and the confusion matrix of `predictions` on `test`,
/// saves the report as text at `report` (if given) and the matrix as a heat map at `confusion`.
fn report_predictions(
    test: &Split,
    predictions: &[u8],
    class_names: &[String],
    report: Option<&Path>,
    confusion: &Path,
) -> Result<()> {
    let text = classification_report(&test.labels, predictions, class_names).to_string();
    print!("{text}");
    let cm = confusion_matrix(&test.labels, predictions, class_names.len());
    println!("\n[INFO] confusion matrix (rows: true class, columns: predicted class)");
    print!("{}", format_confusion_matrix(&cm, class_names));
    if let Some(path) = report {
        atomic_write_bytes(path, text.as_bytes())?;
    }
    plot_confusion(&cm, class_names, confusion)?;
    println!(
        "[INFO] wrote the confusion matrix heat map to {}",
        confusion.display()
    );
    Ok(())
}

/// The two arms of the tutorial's ablation: (file suffix, with BN, figure title).
const COMPARED: [(&str, bool, &str); 2] = [
    ("_with_bn", true, "MiniVGGNet with batch normalization"),
    (
        "_without_bn",
        false,
        "MiniVGGNet without batch normalization",
    ),
];

fn compare(args: CompareArgs) -> Result<()> {
    check_flags(&args.recipe)?;
    // One seed for both arms, drawn once if not given: the comparison is of BN alone.
    let seed = args.recipe.seed.unwrap_or_else(rand::random);
    let table_path = args.output.with_extension("md");
    let arms: Vec<(Checkpoint, RunFiles, &str)> = COMPARED
        .iter()
        .map(|&(suffix, bn, title)| {
            let plot = beside(&args.output, &format!("{suffix}.png"));
            let settings = run_settings(&args.recipe, seed, plot, None);
            let dir = beside(&settings.output, "_checkpoint");
            let files = RunFiles::new(&settings, dir);
            Ok((fresh_run(&zoo::minivggnet(bn), settings)?, files, title))
        })
        .collect::<Result<_>>()?;
    for path in [&args.output, &table_path] {
        ensure_writable(path)?;
    }
    for (_, files, _) in &arms {
        files.check_writable()?;
    }
    set_threads(args.recipe.threads)?;
    check_device(args.recipe.device)?;
    let data = load_data(&args.recipe.data, args.recipe.limit)?;
    let stop = stop_on_signal()?;
    let mut histories = Vec::new();
    for (run, files, title) in arms {
        println!("[INFO] {title}");
        histories.push((
            train_run(run, &files, args.recipe.device, &data, stop.clone())?,
            title,
        ));
    }
    let panels: Vec<(&History, &str)> = histories.iter().map(|(h, t)| (h, *t)).collect();
    plot_comparison(&panels, &args.output)?;
    let table = comparison_table(&panels, seed, args.recipe.device);
    atomic_write_bytes(&table_path, table.as_bytes())?;
    println!("\n{table}");
    println!(
        "[INFO] wrote {} and {}",
        args.output.display(),
        table_path.display()
    );
    Ok(())
}

/// The comparison as a Markdown table: each run's last epoch, its best validation accuracy
/// and the mean time per epoch.
pub fn comparison_table(runs: &[(&History, &str)], seed: u64, device: Device) -> String {
    let mut out = format!(
        "MiniVGGNet on CIFAR-10 with and without batch normalization (seed {seed}, {})\n\n\
         | run | epochs | loss | acc | val_loss | val_acc | best val_acc (epoch) | s/epoch |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        device_label(device)
    );
    for (history, title) in runs {
        let Some(last) = history.last() else { continue };
        let best = history
            .epochs
            .iter()
            .fold(last, |b, e| if e.val_acc > b.val_acc { e } else { b });
        let seconds =
            history.epochs.iter().map(|e| e.seconds).sum::<f64>() / history.epochs.len() as f64;
        out.push_str(&format!(
            "| {title} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} ({}) | {seconds:.1} |\n",
            history.epochs.len(),
            last.loss,
            last.acc,
            last.val_loss,
            last.val_acc,
            best.val_acc,
            best.epoch
        ));
    }
    out
}

fn evaluate_saved(args: EvaluateArgs) -> Result<()> {
    if args.batch_size == 0 {
        return Err(usage("--batch-size must be at least 1".into()));
    }
    let confusion = args
        .confusion
        .clone()
        .unwrap_or_else(|| beside(&args.weights, "_confusion.png"));
    ensure_writable(&confusion)?;
    set_threads(args.threads)?;
    check_device(args.device)?;
    let precision = args.precision.on(args.device)?;
    let mut net = model_io::load(&args.weights, args.batch_size, precision).map_err(bad_input)?;
    let data_path = resolve_data_path(&args.data)?;
    let (test, class_names) = cifar10::load_test(&data_path)?;
    let (metrics, predictions) = evaluate_on(args.device, &mut net, &test)?;
    println!(
        "[INFO] {} on {} test images: loss {:.4}, accuracy {:.4}",
        net.spec.name,
        test.len(),
        metrics.mean_loss(),
        metrics.accuracy()
    );
    report_predictions(&test, &predictions, &class_names, None, &confusion)
}

/// A file `predict` could not read: the others are still classified, then exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0} of the images could not be read (see above)")]
pub struct UnreadableImages(pub usize);

fn predict(args: PredictArgs) -> Result<()> {
    if args.top == 0 {
        return Err(usage("--top must be at least 1".into()));
    }
    let mut net = model_io::load(&args.weights, 64, Precision::Fp32).map_err(bad_input)?;
    let mut readable = Vec::new();
    let mut split = Split {
        images: Vec::new(),
        labels: Vec::new(),
    };
    let mut failed = 0;
    for path in &args.images {
        match images::load_as_cifar(path) {
            Ok(pixels) => {
                split.images.extend_from_slice(&pixels);
                split.labels.push(0);
                readable.push(path);
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    debug_assert_eq!(split.images.len(), readable.len() * IMAGE_BYTES);
    let names = cifar10::CLASS_NAMES;
    for (path, probs) in readable.iter().zip(predict_probabilities(&mut net, &split)) {
        let mut ranked: Vec<usize> = (0..probs.len()).collect();
        ranked.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top: Vec<String> = ranked
            .iter()
            .take(args.top)
            .map(|&c| format!("{} {:.1} %", names[c], 100.0 * probs[c]))
            .collect();
        println!("{}: {}", path.display(), top.join(", "));
    }
    if failed > 0 {
        return Err(UnreadableImages(failed).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_of(flags: &[&str]) -> RunSettings {
        let cli = Cli::try_parse_from(["minivgg", "train"].iter().chain(flags)).unwrap();
        let Command::Train(args) = cli.command else {
            unreachable!()
        };
        run_settings(&args.recipe, 1, PathBuf::from("p.png"), None)
    }

    #[test]
    fn the_tutorial_schedule_decays_by_lr_over_epochs_and_never_anneals() {
        let sgd = settings_of(&["--lr", "0.02", "--epochs", "10"]).sgd;
        assert_eq!(sgd.decay, 0.02 / 10.0);
        assert_eq!(sgd.anneal_updates, 0);
    }

    #[test]
    fn the_linear_schedule_ends_at_the_runs_last_update() {
        // 1,000 images in batches of 64: 16 updates per epoch, 3 epochs.
        let flags = ["--schedule", "linear", "--epochs", "3", "--limit", "1000"];
        let sgd = settings_of(&flags).sgd;
        assert_eq!((sgd.decay, sgd.anneal_updates), (0.0, 48));
        assert_eq!(sgd.lr_at(48), 0.0);
        // The whole training split when --limit is absent or larger.
        let flags = [
            "--schedule",
            "linear",
            "--limit",
            "60000",
            "--decay",
            "0.001",
        ];
        let sgd = settings_of(&flags).sgd;
        assert_eq!((sgd.decay, sgd.anneal_updates), (0.001, 40 * 782));
    }

    #[test]
    fn weight_decay_is_none_unless_asked_for() {
        assert_eq!(settings_of(&[]).sgd.weight_decay, 0.0);
        let sgd = settings_of(&["--weight-decay", "0.0005"]).sgd;
        assert_eq!(sgd.weight_decay, 0.0005);
    }
}
