//! `minivgg evaluate`: a saved model's report and confusion matrix on the test split.

use super::args::{check_png, check_size, count, ComputeArgs, DataArgs, MAX_BATCH_SIZE};
use super::set_threads;
use crate::data::DataRequest;
use crate::engine::Network;
use crate::fsutil::ensure_writable;
use crate::model::ModelSpec;
use crate::run::inputs::{check_fits_data, check_fits_request, check_same_classes, declare_inputs};
use crate::run::paths::Files;
use crate::run::{self, beside, load_data, load_weights, report_predictions, weights_file};
use crate::train::checkpoint::ModelFile;
use crate::train::device::{check_device, evaluate_on};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A model saved by `train --save`, or a checkpoint (its file or its directory); `--model`
    /// is the same flag, as `train` names a saved model.
    #[arg(long, visible_alias = "model")]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// At most 65,536; batches never hold more than the test images.
    #[arg(long, default_value_t = 64, value_parser = count)]
    pub batch_size: usize,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// The confusion matrix heat map (PNG). Default: beside the weights, NAME_confusion.png.
    #[arg(long)]
    pub confusion: Option<PathBuf>,
}

pub(super) fn evaluate_saved(args: EvaluateArgs) -> Result<()> {
    check_size("--batch-size", args.batch_size, MAX_BATCH_SIZE, "")?;
    let confusion = args
        .confusion
        .clone()
        .unwrap_or_else(|| beside(&args.weights, "_confusion.png"));
    let mut paths = Files::default();
    paths
        .reads("--weights", &weights_file(&args.weights))
        .writes("--confusion", &confusion);
    paths.check_distinct()?;
    check_png("--confusion", &confusion)?;
    ensure_writable(&confusion)?;
    set_threads(args.compute.threads)?;
    check_device(args.compute.device)?;
    let precision = args.compute.checked_precision()?;
    // The model first: a file that is no model is refused before the data is loaded, and
    // the file says which data that is (then checked against the output too). Its memory is
    // planned without the data, then again with it.
    let plan =
        |spec: &ModelSpec, data_bytes: u64| run::check_memory(spec, args.batch_size, 1, data_bytes);
    let file = load_weights(&args.weights, args.batch_size, precision, |spec| {
        plan(spec, 0)
    })?;
    let request = data_request(&args, &file)?;
    declare_inputs(&mut paths, "", &request);
    paths.check_distinct()?;
    let mut net = file.model;
    check_fits_request(&net.spec, &args.weights, &request)?;
    let data = load_data(&request, None)?;
    check_same_classes(&net.spec, &args.weights, &data)?;
    check_fits_data(&net.spec, &data)?;
    plan(&net.spec, data.resident_bytes())?;
    let test = &data.test;
    let (metrics, predictions) = evaluate_on(args.compute.device, &mut net, test)?;
    println!(
        "[INFO] {} on {} test images: loss {:.4}, accuracy {:.4}",
        net.spec.name,
        test.len(),
        metrics.mean_loss(),
        metrics.accuracy()
    );
    report_predictions(&data, &predictions, None, &confusion)
}

/// The data to evaluate on: the data flags; without `--data`, the data the model was trained
/// on (a checkpoint's; the record of a saved model, see `checkpoint::save_model`), its
/// validation split; CIFAR-10 for a model that records none.
fn data_request(args: &EvaluateArgs, file: &ModelFile<Network>) -> Result<DataRequest> {
    let flags = args.data.request()?;
    if flags.data.is_some() {
        return Ok(flags);
    }
    if file.checkpoint.is_some() || file.trained_on != DataRequest::default() {
        println!(
            "[INFO] {} was trained on {}: evaluating on its validation split",
            args.weights.display(),
            crate::data::source::describe_source(&file.trained_on)
        );
    }
    // The other data flags, where given, change what it recorded.
    let recorded = file.trained_on.clone();
    Ok(DataRequest {
        data: recorded.data,
        image_size: flags.image_size.or(recorded.image_size),
        grayscale: flags.grayscale || recorded.grayscale,
        val_split: flags.val_split.or(recorded.val_split),
        labels: if flags.labels == Default::default() {
            recorded.labels
        } else {
            flags.labels
        },
        skip_bad_images: flags.skip_bad_images || recorded.skip_bad_images,
    })
}
