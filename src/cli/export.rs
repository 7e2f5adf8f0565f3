//! `minivgg export`: a saved model as an ONNX file.

use super::bad_input;
use crate::engine::Precision;
use crate::fsutil::ensure_writable;
use crate::model::{io as model_io, onnx};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A model saved by `train --save`.
    #[arg(long)]
    pub weights: PathBuf,
    /// The ONNX file to write: input `input`, float32 NHWC [batch, 32, 32, 3] (pixels/255),
    /// output `probabilities`, float32 [batch, classes].
    #[arg(long)]
    pub output: PathBuf,
}

pub(super) fn export(args: ExportArgs) -> Result<()> {
    ensure_writable(&args.output)?;
    let net = model_io::load(&args.weights, 1, Precision::Fp32).map_err(bad_input)?;
    onnx::save(&net, &args.output)?;
    println!(
        "[INFO] wrote {} as ONNX (opset {}) to {}",
        net.spec.name,
        onnx::OPSET,
        args.output.display()
    );
    Ok(())
}
