//! The `minivgg` command line: flags with the tutorial's values as defaults, checked before
//! any work starts, and the subcommands wired to the library.

use crate::data::{cifar10, download};
use crate::engine::device::Device;
use crate::engine::Network;
use crate::fsutil::{atomic_write_bytes, ensure_writable};
use crate::model::{io as model_io, zoo, ModelSpec};
use crate::report::classification::classification_report;
use crate::report::plot::plot_history;
use crate::train::bench::bench;
use crate::train::checkpoint::{self, Checkpoint, RunSettings};
use crate::train::fit::{
    check_device, epoch_line, evaluate_on, fit_on, FitConfig, Outcome, Progress,
};
use crate::train::sgd::{Sgd, SgdConfig};
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
    /// Reload a saved model and print its classification report on the test set.
    Evaluate(EvaluateArgs),
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
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Architecture: minivggnet, shallownet or lenet.
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
    /// The loss/accuracy plot (PNG); the history CSV and report are written beside it.
    /// Default: output/cifar10_minivggnet_with_bn.png, …_without_bn.png, or output/cifar10_<model>.png.
    #[arg(long)]
    pub output: Option<PathBuf>,
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
    /// Time-based learning-rate decay per update. Default: lr / epochs, as the tutorial.
    #[arg(long, allow_negative_numbers = true)]
    pub decay: Option<f32>,
    /// Seed for initialisation, shuffling and dropout. Default: a random seed, printed.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Save the trained model (safetensors with its architecture) to this file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Worker threads. Default: one per CPU core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, or cuda[:N] for an NVIDIA GPU (a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// Where the checkpoint written after every epoch (and on Ctrl-C) goes.
    /// Default: beside the plot, <plot name>_checkpoint/.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Go on with the run whose checkpoint is in DIR, with that run's own settings.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "model", "no_bn", "output", "epochs", "batch_size", "lr", "momentum", "no_nesterov", "decay", "seed", "save",
    ])]
    pub resume: Option<PathBuf>,
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
        Command::Evaluate(args) => evaluate_saved(args),
        Command::Bench(args) => {
            if args.batch_size == 0 || args.steps == 0 {
                return Err(usage("--batch-size and --steps must be at least 1".into()));
            }
            set_threads(args.threads)?;
            print!(
                "{}",
                bench(
                    args.device,
                    &model_spec(&args.model)?,
                    args.batch_size,
                    args.steps,
                    5
                )?
            );
            Ok(())
        }
        Command::Summary(args) => {
            print!("{}", model_spec(&args)?.summary()?);
            Ok(())
        }
    }
}

fn model_spec(args: &ModelArgs) -> Result<ModelSpec> {
    zoo::by_name(&args.model, !args.no_bn).map_err(|e| usage(format!("--model: {e}")))
}

fn check_flags(args: &TrainArgs) -> Result<()> {
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
        if !(decay.is_finite() && decay >= 0.0) {
            return Err(usage(format!(
                "--decay must be a non-negative number, got {decay}"
            )));
        }
    }
    Ok(())
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

/// A run stopped by Ctrl-C (or SIGTERM) after writing its checkpoint: exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; the run is saved in {}: go on with `minivgg train --resume {}`", .0.display(), .0.display())]
pub struct Interrupted(pub PathBuf);

/// A new run from the flags, or the run a checkpoint holds.
fn start_run(args: &TrainArgs) -> Result<(Checkpoint, PathBuf)> {
    if let Some(dir) = &args.resume {
        let run = checkpoint::read(dir)?;
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
    check_flags(args)?;
    let spec = model_spec(&args.model)?;
    let settings = RunSettings {
        epochs: args.epochs,
        batch_size: args.batch_size,
        sgd: SgdConfig {
            lr: args.lr,
            momentum: args.momentum,
            nesterov: !args.no_nesterov,
            decay: args.decay.unwrap_or(args.lr / args.epochs as f32),
        },
        seed: args.seed.unwrap_or_else(rand::random),
        output: args.output.clone().unwrap_or_else(|| default_output(&spec)),
        save: args.save.clone(),
    };
    let net = Network::new(&spec, settings.batch_size, settings.seed)?;
    let sgd = Sgd::new(settings.sgd, net.params.len());
    let dir = args
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| beside(&settings.output, "_checkpoint"));
    Ok((
        Checkpoint {
            net,
            sgd,
            settings,
            progress: Progress::default(),
        },
        dir,
    ))
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

fn train(args: TrainArgs) -> Result<()> {
    let (run, checkpoint_dir) = start_run(&args)?;
    let Checkpoint {
        mut net,
        mut sgd,
        settings,
        mut progress,
    } = run;
    let plot_path = settings.output.clone();
    let csv_path = beside(&plot_path, ".csv");
    let report_path = beside(&plot_path, "_report.txt");
    let checkpoint_path = checkpoint_dir.join(checkpoint::CHECKPOINT_FILE);
    // Fail now, not after hours of training.
    for path in [
        Some(&plot_path),
        Some(&csv_path),
        Some(&report_path),
        Some(&checkpoint_path),
        settings.save.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        ensure_writable(path)?;
    }
    set_threads(args.threads)?;
    check_device(args.device)?;

    println!("[INFO] loading CIFAR-10 data...");
    let data_path = download::resolve_data_path(args.data.data.as_deref())?;
    let data = cifar10::load(&data_path)?;

    let on = match args.device {
        Device::Cpu => format!("{} threads", rayon::current_num_threads()),
        gpu => gpu.to_string(),
    };
    println!(
        "[INFO] compiling model... ({}, seed {}, {on})",
        net.spec.name, settings.seed
    );
    println!(
        "[INFO] training network... (checkpoints in {})",
        checkpoint_dir.display()
    );
    let started = Instant::now();
    let config = FitConfig {
        epochs: settings.epochs,
        seed: settings.seed,
        progress: true,
        stop: Some(stop_on_signal()?),
    };
    let (outcome, predictions) = fit_on(
        args.device,
        &mut net,
        &mut sgd,
        &data.train,
        &data.test,
        &config,
        &mut progress,
        |record| println!("{}", epoch_line(record, settings.epochs)),
        |net, sgd, progress| checkpoint::write(&checkpoint_dir, net, sgd, &settings, progress),
    )?;
    if outcome == Outcome::Interrupted {
        return Err(Interrupted(checkpoint_dir).into());
    }
    let history = progress.history;
    println!(
        "[INFO] trained {} epochs in {:.1}s",
        settings.epochs,
        started.elapsed().as_secs_f64()
    );
    println!("[INFO] evaluating network...");
    let report =
        classification_report(&data.test.labels, &predictions, &data.class_names).to_string();
    print!("{report}");

    history.write_csv(&csv_path)?;
    atomic_write_bytes(&report_path, report.as_bytes())?;
    plot_history(
        &history,
        &plot_path,
        "Training Loss and Accuracy on CIFAR-10",
    )?;
    println!(
        "[INFO] wrote {}, {} and {}",
        plot_path.display(),
        csv_path.display(),
        report_path.display()
    );
    if let Some(path) = &settings.save {
        model_io::save(&net, path)?;
        println!("[INFO] saved model to {}", path.display());
    }
    Ok(())
}

fn evaluate_saved(args: EvaluateArgs) -> Result<()> {
    if args.batch_size == 0 {
        return Err(usage("--batch-size must be at least 1".into()));
    }
    set_threads(args.threads)?;
    check_device(args.device)?;
    let mut net = model_io::load(&args.weights, args.batch_size)?;
    let data_path = download::resolve_data_path(args.data.data.as_deref())?;
    let (test, class_names) = cifar10::load_test(&data_path)?;
    let (metrics, predictions) = evaluate_on(args.device, &mut net, &test)?;
    println!(
        "[INFO] {} on {} test images: loss {:.4}, accuracy {:.4}",
        net.spec.name,
        test.len(),
        metrics.mean_loss(),
        metrics.accuracy()
    );
    print!(
        "{}",
        classification_report(&test.labels, &predictions, &class_names)
    );
    Ok(())
}
