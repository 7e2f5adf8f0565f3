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
use crate::train::fit::{check_device, epoch_line, evaluate_on, fit_on, FitConfig};
use crate::train::sgd::{Sgd, SgdConfig};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
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

fn train(args: TrainArgs) -> Result<()> {
    check_flags(&args)?;
    let spec = model_spec(&args.model)?;
    let plot_path = args.output.clone().unwrap_or_else(|| default_output(&spec));
    let csv_path = beside(&plot_path, ".csv");
    let report_path = beside(&plot_path, "_report.txt");
    // Fail now, not after hours of training.
    for path in [
        Some(&plot_path),
        Some(&csv_path),
        Some(&report_path),
        args.save.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        ensure_writable(path)?;
    }
    set_threads(args.threads)?;
    check_device(args.device)?;
    let seed = args.seed.unwrap_or_else(rand::random);

    println!("[INFO] loading CIFAR-10 data...");
    let data_path = download::resolve_data_path(args.data.data.as_deref())?;
    let data = cifar10::load(&data_path)?;

    println!(
        "[INFO] compiling model... ({}, seed {seed}, {} threads)",
        spec.name,
        rayon::current_num_threads()
    );
    let mut net = Network::new(&spec, args.batch_size, seed)?;
    let sgd_config = SgdConfig {
        lr: args.lr,
        momentum: args.momentum,
        nesterov: !args.no_nesterov,
        decay: args.decay.unwrap_or(args.lr / args.epochs as f32),
    };
    let mut sgd = Sgd::new(sgd_config, net.params.len());

    println!("[INFO] training network...");
    let started = Instant::now();
    let config = FitConfig {
        epochs: args.epochs,
        seed,
        progress: true,
    };
    let (history, predictions) = fit_on(
        args.device,
        &mut net,
        &mut sgd,
        &data.train,
        &data.test,
        &config,
        |record| println!("{}", epoch_line(record, args.epochs)),
    )?;
    println!(
        "[INFO] trained {} epochs in {:.1}s",
        args.epochs,
        started.elapsed().as_secs_f64()
    );
    println!("[INFO] evaluating network...");
    let report =
        classification_report(&data.test.labels, &predictions, &data.class_names).to_string();
    print!("{report}");

    history.write_csv(&csv_path)?;
    atomic_write_bytes(&report_path, report.as_bytes())?;
    let title = "Training Loss and Accuracy on CIFAR-10";
    plot_history(&history, &plot_path, title)?;
    println!(
        "[INFO] wrote {}, {} and {}",
        plot_path.display(),
        csv_path.display(),
        report_path.display()
    );
    if let Some(path) = &args.save {
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
