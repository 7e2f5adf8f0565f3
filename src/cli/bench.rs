//! `minivgg bench`: training steps and inference timed, layer by layer, on synthetic data.

use super::args::{ModelArgs, PrecisionArg};
use super::{model_spec, set_threads, usage};
use crate::engine::device::Device;
use crate::train::bench::bench;
use anyhow::Result;
use clap::Args;

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

pub(super) fn run(args: BenchArgs) -> Result<()> {
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
