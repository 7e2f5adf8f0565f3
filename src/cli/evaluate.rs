//! `minivgg evaluate`: a saved model's report and confusion matrix on the test split.

use super::args::{check_size, ComputeArgs, DataArgs};
use super::{
    beside, check_memory, load_weights, report_predictions, resolve_data_path, set_threads,
};
use crate::data::cifar10::{self, RECORDS_PER_FILE};
use crate::fsutil::ensure_writable;
use crate::model::ModelSpec;
use crate::train::fit::{check_device, evaluate_on};
use crate::train::plan::MemoryPlan;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A model saved by `train --save`, or a checkpoint (its file or its directory).
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// At most 10,000 (the test images).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// The confusion matrix heat map (PNG). Default: beside the weights, NAME_confusion.png.
    #[arg(long)]
    pub confusion: Option<PathBuf>,
}

pub(super) fn evaluate_saved(args: EvaluateArgs) -> Result<()> {
    check_size(
        "--batch-size",
        args.batch_size,
        RECORDS_PER_FILE,
        " (the test images)",
    )?;
    let confusion = args
        .confusion
        .clone()
        .unwrap_or_else(|| beside(&args.weights, "_confusion.png"));
    ensure_writable(&confusion)?;
    set_threads(args.compute.threads)?;
    check_device(args.compute.device)?;
    let precision = args.compute.checked_precision()?;
    let plan =
        |spec: &ModelSpec| check_memory(&MemoryPlan::for_training(spec, args.batch_size, 1, true)?);
    let mut net = load_weights(&args.weights, args.batch_size, precision, plan)?;
    let data_path = resolve_data_path(&args.data)?;
    let (test, class_names) = cifar10::load_test(&data_path)?;
    let (metrics, predictions) = evaluate_on(args.compute.device, &mut net, &test)?;
    println!(
        "[INFO] {} on {} test images: loss {:.4}, accuracy {:.4}",
        net.spec.name,
        test.len(),
        metrics.mean_loss(),
        metrics.accuracy()
    );
    report_predictions(&test, &predictions, &class_names, None, &confusion)
}
