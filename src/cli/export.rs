//! `minivgg export`: a saved model as an ONNX file.

use super::args::DataArgs;
use crate::data::DataRequest;
use crate::engine::{Network, Precision};
use crate::fsutil::ensure_writable;
use crate::run::error::usage;
use crate::run::inputs::{declare_inputs, model_spec_for_request, names_saved_model};
use crate::run::paths::Files;
use crate::run::{load_weights, weights_file};
use crate::store::onnx;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A model saved by `train --save`, or a checkpoint (its file or its directory).
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub weights: Option<PathBuf>,
    /// Instead of --weights, a network (minivggnet, shallownet, lenet or NAME.json) with its
    /// initial weights: to check that a runtime takes the architecture before training it.
    /// A built-in one is built for --data (CIFAR-10 without it). A saved model or a
    /// checkpoint here is read as --weights reads it, with its trained weights.
    #[arg(long)]
    pub model: Option<String>,
    /// The ONNX file to write: input `input`, float32 NHWC [batch, height, width, channels]
    /// (pixels/255), output `probabilities`, float32 [batch, classes].
    #[arg(long)]
    pub output: PathBuf,
    /// With --model: the data the network is built for.
    #[command(flatten)]
    pub data: DataArgs,
}

pub(super) fn export(args: ExportArgs) -> Result<()> {
    // `--model` naming a saved model is that model, as `train --save` names it.
    let (weights, model, weights_flag) = match (&args.weights, &args.model) {
        (None, Some(model)) if names_saved_model(model) => {
            (Some(PathBuf::from(model)), None, "--model")
        }
        (weights, model) => (weights.clone(), model.clone(), "--weights"),
    };
    let mut paths = Files::default();
    paths.writes("--output", &args.output);
    if let Some(weights) = &weights {
        paths.reads(weights_flag, &weights_file(weights));
    }
    let request = args.data.request()?;
    declare_inputs(&mut paths, model.as_deref().unwrap_or_default(), &request);
    paths.check_distinct()?;
    ensure_writable(&args.output)?;
    let (net, weights) = match (&weights, &model) {
        (Some(weights), _) if request != DataRequest::default() => {
            return Err(usage(format!(
                "the data flags apply to a network that --model builds; {} is a trained model, built for its own data already",
                weights.display()
            )))
        }
        (Some(weights), _) => (
            load_weights(weights, 1, Precision::Fp32, |_| Ok(()))?.model,
            "trained",
        ),
        (None, model) => {
            let model = model.as_deref().unwrap_or_default();
            let (spec, _) = model_spec_for_request(model, false, &request)?;
            (Network::new(&spec, 1, 0)?, "initial")
        }
    };
    onnx::save(&net, &args.output)?;
    println!(
        "[INFO] wrote {} with its {weights} weights as ONNX (opset {}) to {}",
        net.spec.name,
        onnx::OPSET,
        args.output.display()
    );
    Ok(())
}
