//! The `minivgg` command line: flags with the tutorial's values as defaults, checked before
//! any work starts, and the subcommands wired to the library: a module per subcommand, the
//! flags several share in [`args`].

pub mod args;
pub mod bench;
pub mod compare;
pub mod data;
pub mod evaluate;
pub mod export;
mod paths;
pub mod predict;
pub mod train;

pub use args::{ComputeArgs, DataArgs, ModelArgs, RecipeArgs, Schedule, SummaryArgs};
pub use bench::BenchArgs;
pub use compare::{comparison_table, CompareArgs};
pub use evaluate::EvaluateArgs;
pub use export::ExportArgs;
pub use predict::{PredictArgs, UnreadableImages};
pub use train::{Interrupted, TrainArgs};

use crate::data::folder::FolderError;
use crate::data::source::DataFlagError;
use crate::data::{cifar10, source, DataRequest, Dataset};
use crate::engine::cpu::simd::UnsupportedCpu;
use crate::engine::device::Device;
use crate::engine::{Network, Precision};
use crate::fsutil::{atomic_write_bytes, NotWritable, WriteError};
use crate::model::{file as network_file, io as model_io, zoo, ModelSpec, Shape};
use crate::report::classification::{
    classification_report, confusion_matrix, format_confusion_matrix,
};
use crate::report::plot::plot_confusion;
use crate::train::checkpoint::{self, DirInUse, ModelFile};
use crate::train::plan::{Memory, MemoryPlan, TooLarge};
use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::{Path, PathBuf};

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

/// An error in what the user asked for (a flag's value): exit code 2, like clap's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// The command line's parser: the derived one, with the rules that derive cannot say.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("train", train::with_resume_rule)
}

/// The `minivgg` command with `args` (the program's name first): parses them, runs the
/// subcommand, prints an error as `error: …`, and returns the exit code. The binary and the
/// Python package's `minivgg` command both call this.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    let parsed = command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
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
            let (spec, data) = model_spec_for_given_data(&args.model, &args.data.request()?)?;
            print!("{}", spec.summary()?);
            let plan = MemoryPlan::for_training(&spec, args.batch_size, 1, data.bytes)?;
            println!("Training on {} needs {plan}", data.name);
            Ok(())
        }
    }
}

fn model_spec(args: &ModelArgs) -> Result<ModelSpec> {
    let path = Path::new(&args.model);
    // A directory counts only if it holds a checkpoint: `--model minivggnet` stays the
    // built-in network beside a directory of that name.
    let checkpoint_dir = path.join(checkpoint::CHECKPOINT_FILE).is_file();
    let from_file = network_file::is_network_file(path) || path.is_file() || checkpoint_dir;
    if from_file && args.no_bn {
        return Err(usage(format!(
            "--no-bn applies to the built-in models, not to the model file {}",
            path.display()
        )));
    }
    if network_file::is_network_file(path) {
        return network_file::read(path).map_err(bad_input);
    }
    if from_file {
        let file = checkpoint::read_spec(path).map_err(bad_input)?;
        say_where_from(&file, "architecture");
        return Ok(file.model);
    }
    zoo::by_name(&args.model, !args.no_bn).map_err(|e| usage(format!("--model: {e}")))
}

/// The file `--weights` reads (a directory's checkpoint); a directory without one is the
/// reader's to refuse.
fn weights_file(weights: &Path) -> PathBuf {
    checkpoint::model_file(weights).unwrap_or_else(|_| weights.to_path_buf())
}

/// Adds what a command reads to `files`: the network file `--model` names (a built-in name
/// reads nothing) and the data's path, from `--data` or `$MINIVGG_DATA`.
fn declare_inputs(files: &mut paths::Files, model: &str, data: &DataRequest) {
    if Path::new(model).exists() && !zoo::MODEL_NAMES.contains(&model) {
        files.reads("--model", Path::new(model));
    }
    let env = crate::data::download::DATA_ENV;
    match data.source() {
        source::Source::Path(path) => {
            files.reads("--data", &path);
        }
        source::Source::Named(_) if data.data.is_none() => {
            if let Some(path) = std::env::var_os(env).filter(|v| !v.is_empty()) {
                files.reads(format!("${env}"), Path::new(&path));
            }
        }
        source::Source::Named(_) => {}
    }
}

/// Refuses a run whose memory `plan` does not fit in what this machine has available (where
/// the OS says: Linux), before anything large is allocated.
fn check_memory(plan: &MemoryPlan) -> Result<()> {
    match Memory::of_this_machine() {
        Some(machine) => Ok(plan.check(&machine)?),
        None => Ok(()),
    }
}

/// The network of the model that `--weights` names: a saved model, a checkpoint or a
/// checkpoint directory, for batches of up to `capacity` samples, its products in `precision`;
/// `check` sees its architecture before it is allocated.
fn load_weights(
    path: &Path,
    capacity: usize,
    precision: Precision,
    check: impl FnOnce(&ModelSpec) -> Result<()>,
) -> Result<Network> {
    let file = checkpoint::load_model(path, capacity, precision, check).map_err(bad_input)?;
    say_where_from(&file, "model");
    Ok(file.model)
}

/// One line on stderr (stdout stays the command's output) for a model taken from a
/// checkpoint, and one for a file whose tensors could not be verified.
fn say_where_from<T>(file: &ModelFile<T>, what: &str) {
    if let Some(stage) = &file.checkpoint {
        eprintln!(
            "[INFO] {} is a checkpoint ({stage}): using its {what}",
            file.path.display()
        );
    }
    if !file.verified {
        eprintln!("{}", model_io::unverified_warning(&file.path));
    }
}

/// The data a network is built for without being trained on it (`summary`, `export
/// --model`): its name and the bytes it holds in memory.
struct DataFacts {
    name: String,
    bytes: u64,
}

/// The network `--model` names, built for `data` if a data flag is given (loading the data
/// for its shape and classes), else for CIFAR-10, which is not loaded: its size is known.
fn model_spec_for_given_data(
    model: &ModelArgs,
    request: &DataRequest,
) -> Result<(ModelSpec, DataFacts)> {
    if *request == DataRequest::default() {
        let cifar10 = DataFacts {
            name: "CIFAR-10".into(),
            bytes: (cifar10::TRAIN_IMAGES + cifar10::RECORDS_PER_FILE) as u64
                * cifar10::RECORD_BYTES as u64,
        };
        return Ok((model_spec(model)?, cifar10));
    }
    let data = load_data(request, None)?;
    let spec = model_spec_for(model, &data)?;
    let facts = DataFacts {
        name: data.name.clone(),
        bytes: data.resident_bytes(),
    };
    Ok((spec, facts))
}

/// The network `--model` names, built for `data`: a built-in one for its image shape and
/// classes; one from a file as it is, if it fits. It carries the data's class names.
fn model_spec_for(args: &ModelArgs, data: &Dataset) -> Result<ModelSpec> {
    let mut spec = model_spec(args)?;
    if zoo::MODEL_NAMES.contains(&args.model.as_str()) && !Path::new(&args.model).exists() {
        spec = zoo::built_for(spec, data.shape().into(), data.classes());
    }
    check_fits_data(&spec, data)?;
    spec.class_names = data.class_names.clone();
    Ok(spec)
}

/// Refuses a network that cannot take `data`'s images or give its classes, naming both.
fn check_fits_data(spec: &ModelSpec, data: &Dataset) -> Result<()> {
    let images = Shape::from(data.shape());
    if spec.input != images || spec.classes != data.classes() {
        return Err(usage(format!(
            "--model: {} takes {} inputs and gives {} classes; {} has {images} images ({}) of {} classes",
            spec.name,
            spec.input,
            spec.classes,
            data.name,
            data.shape(),
            data.classes()
        )));
    }
    Ok(())
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
            || e.is::<DataFlagError>()
            || e.is::<crate::data::idx::IdxError>()
            || e.downcast_ref::<FolderError>()
                .is_some_and(FolderError::is_bad_input)
            || e.is::<WriteError>()
            || e.is::<NotWritable>()
            || e.is::<UnsupportedCpu>()
            || e.is::<TooLarge>()
            || e.is::<DirInUse>()
    });
    if bad {
        2
    } else {
        1
    }
}

/// The data a run trains and validates on, cut to `--limit` images per split; one line says
/// what it is.
fn load_data(request: &DataRequest, limit: Option<usize>) -> Result<Dataset> {
    println!(
        "[INFO] loading {} data...",
        source::describe_source(request)
    );
    // What the user named (a path, or $MINIVGG_DATA) being wrong is bad input; a failed
    // download is not.
    let named_path = match request.source() {
        source::Source::Path(_) => true,
        source::Source::Named(set) => {
            set == crate::data::NamedSet::Cifar10
                && std::env::var_os(crate::data::download::DATA_ENV).is_some_and(|v| !v.is_empty())
        }
    };
    let started = std::time::Instant::now();
    let mut data = source::load(request).map_err(|e| if named_path { bad_input(e) } else { e })?;
    if let Some(limit) = limit {
        data.truncate(limit);
    }
    // The load time tells a user whether the decoded-image cache was used.
    println!(
        "[INFO] {}, loaded in {:.2}s",
        data.describe(),
        started.elapsed().as_secs_f64()
    );
    Ok(data)
}

fn device_label(device: Device) -> String {
    match device {
        Device::Cpu => format!("{} threads", rayon::current_num_threads()),
        gpu => gpu.to_string(),
    }
}

/// Prints the classification report and the confusion matrix of `predictions` on `data`'s
/// validation split, saves the report as text at `report` (if given) and the matrix as a heat
/// map at `confusion`.
fn report_predictions(
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
