//! `minivgg train`: a new run from the flags or a stopped one from its checkpoint, trained to
//! its end, then its report, plot, history and model.

use super::args::{check_flags, check_png, run_settings, ModelArgs, RecipeArgs};
use super::{set_threads, Cli, Command};
use crate::data::source::{self, Source};
use crate::data::{DataRequest, Dataset};
use crate::run::error::{bad_input, usage};
use crate::run::inputs::declare_inputs;
use crate::run::paths::Files;
use crate::run::{self, beside, load_data, model_spec, model_spec_for, RunControl, RunFiles};
use crate::train::checkpoint::{self, Checkpoint, RunSettings};
use crate::train::device::check_device;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// `output/DATA_MODEL.png`: `output/cifar10_minivggnet_with_bn.png` for the tutorial's run.
fn default_output(model: &ModelArgs, data: &DataRequest) -> Result<PathBuf> {
    let name = match model_spec(&model.model, model.no_bn) {
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
    model_spec(&args.model.model, args.model.no_bn)?;
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
fn start_run(args: &TrainArgs, data: &Dataset, output: PathBuf) -> Result<Checkpoint> {
    if let Some(dir) = &args.resume {
        return run::resume_run(dir, data);
    }
    let spec = model_spec_for(&args.model.model, args.model.no_bn, data)?;
    let seed = args.recipe.seed.unwrap_or_else(rand::random);
    let settings = RunSettings {
        save_best: args.save_best,
        data: args.recipe.data.request()?,
        data_fingerprint: Some(data.fingerprint()),
        ..run_settings(
            &args.recipe,
            seed,
            output,
            args.save.clone(),
            data.train.len(),
        )
    };
    run::check_memory(&spec, settings.batch_size, 1, data.resident_bytes())?;
    run::fresh_run(&spec, settings)
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

pub(super) fn train(args: TrainArgs) -> Result<()> {
    train_with(args, None)
}

/// `train` with `flags` (those after `train`), parsed as the command line parses them.
fn parse_flags(flags: &[String]) -> Result<TrainArgs> {
    let argv = ["minivgg", "train"]
        .into_iter()
        .map(String::from)
        .chain(flags.iter().cloned());
    match super::parse(argv) {
        Ok(Cli {
            command: Command::Train(args),
        }) => Ok(args),
        Ok(_) => Err(usage("not the train command".into())),
        // clap's message without its usage lines, which name the program's command line.
        Err(err) => {
            let text = err.render().to_string();
            let message = text.split("\n\nUsage:").next().unwrap_or(&text);
            Err(usage(
                message.trim_start_matches("error: ").trim().to_string(),
            ))
        }
    }
}

/// Refuses what `train` with `flags` would refuse before it loads any data: a flag or value,
/// the network, a data path that does not exist. A sweep checks each trial's flags so.
pub fn check_flags_of(flags: &[String]) -> Result<()> {
    let args = parse_flags(flags)?;
    run_outputs(&args)?;
    if args.resume.is_none() {
        source::check_exists(&args.recipe.data.request()?).map_err(bad_input)?;
    }
    Ok(())
}

/// Runs `train` with `flags` as the command line does, steered and watched by `control`
/// instead of the process's signals (a Ray Tune trial's process is Ray's).
pub fn train_watched(flags: &[String], control: RunControl) -> Result<()> {
    train_with(parse_flags(flags)?, Some(control))
}

/// The run the flags ask for, stopped by Ctrl-C unless `control` is given.
fn train_with(args: TrainArgs, control: Option<RunControl>) -> Result<()> {
    if let Some(line) = args
        .resume
        .as_deref()
        .and_then(run::files::removed_by_finished_run)
    {
        println!("{line}");
        return Ok(());
    }
    let (mut files, resumed) = run_outputs(&args)?;
    files.tensorboard = args.tensorboard.clone();
    if let (Some(dir), Some((settings, done))) = (&args.resume, &resumed) {
        if files.finished(dir, settings, *done) {
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
    if resumed.is_none() {
        check_png("--output", files.plot())?;
    }
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
    let mut run = start_run(&args, &data, files.plot().to_path_buf())?;
    // Recorded as a full path, so a resume from another directory finds the same data.
    run.settings.data = DataRequest {
        data: match request.source() {
            Source::Path(path) => Some(path.canonicalize().unwrap_or(path)),
            Source::Named(_) => request.data.clone(),
        },
        ..request
    };
    run::train_run(
        run,
        &files,
        lock,
        args.recipe.compute.device,
        &data,
        match control {
            Some(control) => control,
            None => RunControl::stopped_by(stop_on_signal()?),
        },
    )?;
    Ok(())
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
