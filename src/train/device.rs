//! The device a run computes on: the training loop and evaluation on the CPU ([`fit`]) or,
//! with the `cuda` feature, on an NVIDIA GPU (`gpu`), picked here, above both.

use super::fit::{self, FitConfig, Outcome, Progress};
use super::history::History;
use crate::data::Split;
use crate::engine::device::Device;
use crate::engine::sgd::Sgd;
use crate::engine::{BatchMetrics, Network};
use anyhow::Result;

/// [`fit::fit`] on `device`; a finished run then predicts `validation` with the trained network
/// (the predicted class of each image).
#[allow(clippy::too_many_arguments)]
pub fn fit_on(
    device: Device,
    net: &mut Network,
    sgd: &mut Sgd,
    train: &Split,
    validation: &Split,
    config: &FitConfig,
    progress: &mut Progress,
    on_epoch: impl FnMut(&Network, &History) -> Result<()>,
    checkpoint: impl FnMut(&Network, &Sgd, &Progress) -> Result<()>,
) -> Result<(Outcome, Vec<u8>)> {
    match device {
        Device::Cpu => {
            let outcome = fit::fit(
                net, sgd, train, validation, config, progress, on_epoch, checkpoint,
            )?;
            let predictions = match outcome {
                Outcome::Finished => fit::evaluate(net, validation).1,
                Outcome::Interrupted => Vec::new(),
            };
            Ok((outcome, predictions))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => {
            let gpu = crate::engine::cuda::Gpu::open(ordinal)?;
            super::gpu::fit_on_gpu(
                gpu, net, sgd, train, validation, config, progress, on_epoch, checkpoint,
            )
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(no_cuda()),
    }
}

/// [`fit::evaluate`] on `device`.
pub fn evaluate_on(
    device: Device,
    net: &mut Network,
    split: &Split,
) -> Result<(BatchMetrics, Vec<u8>)> {
    match device {
        Device::Cpu => Ok(fit::evaluate(net, split)),
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => {
            let gpu = crate::engine::cuda::Gpu::open(ordinal)?;
            super::gpu::evaluate_on_gpu(gpu, net, split)
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(no_cuda()),
    }
}

/// Fails at once, before any data is loaded, if `device` cannot be used.
pub fn check_device(device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => crate::engine::cuda::Gpu::open(ordinal).map(drop),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(no_cuda()),
    }
}

/// The answer to `--device cuda` in a build without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub fn no_cuda() -> anyhow::Error {
    anyhow::anyhow!(
        "--device cuda: this minivgg was built without CUDA support; rebuild it with \
         `cargo build --release --features cuda`, or use --device cpu"
    )
}
