//! `minivgg bench`: training steps and inference timed, layer by layer, on synthetic data.

use super::args::MAX_BATCH_SIZE;
use super::args::{check_size, count, ComputeArgs, ModelArgs};
use super::set_threads;
use crate::run::model_spec;
use crate::train::bench::bench;
use crate::train::plan::MemoryPlan;
use anyhow::Result;
use clap::Args;

/// The most steps `bench` times.
const MAX_STEPS: usize = 10_000;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// At most 50,000.
    #[arg(long, default_value_t = 64, value_parser = count)]
    pub batch_size: usize,
    /// Timed steps, after 5 warm-up steps; at most 10,000.
    #[arg(long, default_value_t = 30, value_parser = count)]
    pub steps: usize,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

pub(super) fn run(args: BenchArgs) -> Result<()> {
    check_size("--batch-size", args.batch_size, MAX_BATCH_SIZE, "")?;
    check_size("--steps", args.steps, MAX_STEPS, "")?;
    set_threads(args.compute.threads)?;
    let precision = args.compute.checked_precision()?;
    let spec = model_spec(&args.model.model, args.model.no_bn)?;
    let plan = MemoryPlan::for_training(&spec, args.batch_size, 1, 0)?;
    plan.check_here()?;
    println!("[INFO] the benchmark needs {plan}");
    let (batch, steps) = (args.batch_size, args.steps);
    print!(
        "{}",
        bench(args.compute.device, &spec, precision, batch, steps, 5)?
    );
    Ok(())
}
