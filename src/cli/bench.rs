//! `minivgg bench`: training steps and inference timed, layer by layer, on synthetic data.

use super::args::{ComputeArgs, ModelArgs};
use super::{model_spec, set_threads, usage};
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
    #[command(flatten)]
    pub compute: ComputeArgs,
}

pub(super) fn run(args: BenchArgs) -> Result<()> {
    if args.batch_size == 0 || args.steps == 0 {
        return Err(usage("--batch-size and --steps must be at least 1".into()));
    }
    set_threads(args.compute.threads)?;
    let precision = args.compute.checked_precision()?;
    let spec = model_spec(&args.model)?;
    let (batch, steps) = (args.batch_size, args.steps);
    print!(
        "{}",
        bench(args.compute.device, &spec, precision, batch, steps, 5)?
    );
    Ok(())
}
