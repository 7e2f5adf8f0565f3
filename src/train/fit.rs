//! Keras' `model.fit` for this recipe: shuffle every epoch, train on every batch (the last,
//! partial one too), validate on the test split, and report each epoch.

use super::history::{EpochRecord, History};
use super::sgd::Sgd;
use crate::data::batches::{gather, shuffled_order};
use crate::data::cifar10::Split;
use crate::engine::device::Device;
use crate::engine::network::{rng_stream, streams};
use crate::engine::{BatchMetrics, Mode, Network};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

pub struct FitConfig {
    pub epochs: usize,
    pub seed: u64,
    /// Draws a progress bar per epoch (on a terminal only; indicatif hides it otherwise).
    pub progress: bool,
}

/// Trains `net` on `train`, validating on `validation` after every epoch. The batch size is the
/// network's capacity. `on_epoch` sees each epoch's record as soon as it is complete.
pub fn fit(
    net: &mut Network,
    sgd: &mut Sgd,
    train: &Split,
    validation: &Split,
    config: &FitConfig,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<History> {
    let batch = net.capacity();
    let mut shuffle_rng = rng_stream(config.seed, streams::SHUFFLE);
    let mut labels = Vec::with_capacity(batch);
    let mut history = History::default();
    let batches = train.len().div_ceil(batch);
    for epoch in 1..=config.epochs {
        let started = Instant::now();
        let order = shuffled_order(train.len(), &mut shuffle_rng);
        let bar = progress_bar(config.progress, batches as u64, epoch, config.epochs);
        let mut seen = BatchMetrics::default();
        for (b, indices) in order.chunks(batch).enumerate() {
            gather(train, indices, net.input_mut(indices.len()), &mut labels);
            let metrics = net.train_batch(&labels);
            if !metrics.loss_sum.is_finite() {
                bail!(
                    "training diverged: the loss is {} at epoch {epoch}, batch {}",
                    metrics.loss_sum,
                    b + 1
                );
            }
            sgd.step(&mut net.params, &net.grads);
            seen += metrics;
            bar.inc(1);
            if b % 16 == 0 {
                bar.set_message(format!(
                    "loss: {:.4} - acc: {:.4}",
                    seen.mean_loss(),
                    seen.accuracy()
                ));
            }
        }
        bar.finish_and_clear();
        let (val, _) = evaluate(net, validation);
        let record = EpochRecord {
            epoch,
            seconds: started.elapsed().as_secs_f64(),
            loss: seen.mean_loss(),
            acc: seen.accuracy(),
            val_loss: val.mean_loss(),
            val_acc: val.accuracy(),
        };
        on_epoch(&record);
        history.push(record);
    }
    Ok(history)
}

/// Loss and accuracy over a whole split in evaluation mode, and the predicted class of each
/// image, in batches of the network's capacity.
pub fn evaluate(net: &mut Network, split: &Split) -> (BatchMetrics, Vec<u8>) {
    let batch = net.capacity();
    let classes = net.classes();
    let mut labels = Vec::with_capacity(batch);
    let mut total = BatchMetrics::default();
    let mut predictions = Vec::with_capacity(split.len());
    let indices: Vec<usize> = (0..split.len()).collect();
    for chunk in indices.chunks(batch) {
        gather(split, chunk, net.input_mut(chunk.len()), &mut labels);
        net.forward(chunk.len(), Mode::Eval);
        total += net.metrics(&labels);
        for probs in net.probabilities(chunk.len()).chunks_exact(classes) {
            let best = probs
                .iter()
                .enumerate()
                .fold(0, |best, (j, p)| if *p > probs[best] { j } else { best });
            predictions.push(best as u8);
        }
    }
    (total, predictions)
}

/// Trains on `device`, then predicts `validation` with the trained network: the history and
/// the predicted class of each validation image.
pub fn fit_on(
    device: Device,
    net: &mut Network,
    sgd: &mut Sgd,
    train: &Split,
    validation: &Split,
    config: &FitConfig,
    on_epoch: impl FnMut(&EpochRecord),
) -> Result<(History, Vec<u8>)> {
    match device {
        Device::Cpu => {
            let history = fit(net, sgd, train, validation, config, on_epoch)?;
            let (_, predictions) = evaluate(net, validation);
            Ok((history, predictions))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => {
            let gpu = crate::engine::cuda::Gpu::open(ordinal)?;
            crate::engine::cuda::trainer::fit_on_gpu(
                gpu, net, sgd, train, validation, config, on_epoch,
            )
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(no_cuda()),
    }
}

/// [`evaluate`] on `device`.
pub fn evaluate_on(
    device: Device,
    net: &mut Network,
    split: &Split,
) -> Result<(BatchMetrics, Vec<u8>)> {
    match device {
        Device::Cpu => Ok(evaluate(net, split)),
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => {
            let gpu = crate::engine::cuda::Gpu::open(ordinal)?;
            crate::engine::cuda::trainer::evaluate_on_gpu(gpu, net, split)
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

/// Keras' per-epoch line.
pub fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
    format!(
        "Epoch {}/{epochs} - {:.0}s - loss: {:.4} - acc: {:.4} - val_loss: {:.4} - val_acc: {:.4}",
        r.epoch, r.seconds, r.loss, r.acc, r.val_loss, r.val_acc
    )
}

fn progress_bar(enabled: bool, batches: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(batches);
    let style = ProgressStyle::with_template(
        "Epoch {prefix} {pos}/{len} [{bar:30}] {elapsed} - ETA {eta} - {msg}",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}
