//! The `minivgg` command line: flags with the tutorial's values as defaults, checked before
//! any work starts, and the subcommands wired to the library: a module per subcommand, the
//! flags several share in [`args`].

pub mod args;
pub mod bench;
pub mod compare;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod predict;
pub mod train;

pub use args::{ComputeArgs, DataArgs, ModelArgs, RecipeArgs, Schedule, SummaryArgs};
pub use bench::BenchArgs;
pub use compare::{comparison_table, CompareArgs};
pub use evaluate::EvaluateArgs;
pub use export::ExportArgs;
pub use predict::{PredictArgs, UnreadableImages};
pub use train::TrainArgs;

use crate::run::{self, inputs::model_spec_for_request};
use crate::train::plan::MemoryPlan;
use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "minivgg",
    version,
    about = "Train the MiniVGGNet tutorial's networks on CIFAR-10, the series' other data sets or your own image folders"
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
    /// Classify image files of any size with a saved model: top classes per file.
    Predict(PredictArgs),
    /// Write a saved model as ONNX (opset 13), for onnxruntime, OpenCV's dnn and others.
    Export(ExportArgs),
    /// Print a Keras-style model summary, and the memory a run in batches of --batch-size needs.
    Summary(SummaryArgs),
    /// Time training steps and inference, layer by layer, on synthetic data.
    Bench(BenchArgs),
    /// Load a data set as `train` would (decoding and caching an image folder) and print its
    /// splits, image shape, classes and images per class.
    Data(data::DataCommandArgs),
}

/// The command line's parser: the derived one, with the rules that derive cannot say.
pub fn command() -> clap::Command {
    let mut command = Cli::command().mut_subcommand("train", train::with_resume_rule);
    // `--epochs -1` is the value -1, refused as `--epochs=-1` is, naming the flag; not an
    // unknown flag `-1`.
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in subcommands {
        command = command.mut_subcommand(name, |s| s.allow_negative_numbers(true));
    }
    command
}

/// `args` (the program's name first) parsed as the command line takes them.
pub(crate) fn parse(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<Cli, clap::Error> {
    command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches))
}

/// The `minivgg` command with `args` (the program's name first): parses them, runs the
/// subcommand, prints an error as `error: …`, and returns the exit code. The binary and the
/// Python package's `minivgg` command both call this.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap's own text: usage errors on stderr, --help and --version on stdout.
            let _ = err.print();
            return err.exit_code() as u8;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_code(&err)
        }
    }
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`minivgg data | head`) panics; the
/// default action ends the program quietly, as every Unix tool does. For a process that is
/// the command: call it first, before any thread exists.
pub fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: SIG_DFL is a valid action; callers run it before starting threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::train(args),
        Command::Compare(args) => compare::compare(args),
        Command::Evaluate(args) => evaluate::evaluate_saved(args),
        Command::Predict(args) => predict::predict(args),
        Command::Export(args) => export::export(args),
        Command::Bench(args) => bench::run(args),
        Command::Data(args) => data::show(args),
        Command::Summary(args) => {
            args::check_size("--batch-size", args.batch_size, args::MAX_BATCH_SIZE, "")?;
            let request = args.data.request()?;
            let (spec, data) =
                model_spec_for_request(&args.model.model, args.model.no_bn, &request)?;
            print!("{}", spec.summary()?);
            let plan = MemoryPlan::for_training(&spec, args.batch_size, 1, data.bytes)?;
            println!("Training on {} needs {plan}", data.name);
            Ok(())
        }
    }
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        args::check_size("--threads", n, cores, " (the CPU cores of this machine)")?;
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot start the worker threads")?;
    }
    Ok(())
}

/// The process exit code for `err`: 130 for an interrupted run, as a shell reports Ctrl-C; 2
/// for bad input (a flag, a file, a path that cannot be written, a disk that is full), as
/// clap's own parse errors; 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if run::is_interrupted(err) {
        130
    } else if run::is_bad_input(err) || err.chain().any(|e| e.is::<UnreadableImages>()) {
        2
    } else {
        1
    }
}
