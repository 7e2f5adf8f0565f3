//! Keras' `model.fit` for this recipe: shuffle every epoch, train on every batch (the last,
//! partial one too), validate on the test split, and report each epoch; plus where a run
//! stands, so it can stop at any batch and go on from there exactly.

use super::history::{EpochRecord, History};
use crate::data::augment;
use crate::data::batches::{epoch_order, gather};
use crate::data::Split;
use crate::engine::sgd::Sgd;
use crate::engine::{BatchMetrics, Mode, Network};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct FitConfig {
    pub epochs: usize,
    pub seed: u64,
    /// Draws a progress bar per epoch (on a terminal only; indicatif hides it otherwise).
    pub progress: bool,
    /// Set (by Ctrl-C) to stop after the current batch.
    pub stop: Option<Arc<AtomicBool>>,
    /// Random crops and flips of the training images (`--augment`).
    pub augment: bool,
    /// A new random order of the training images every epoch (Keras' `shuffle=True`, what
    /// the command line always does); else their own order.
    pub shuffle: bool,
}

impl FitConfig {
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Epoch `epoch`'s order of the `len` training images.
    pub fn order(&self, len: usize, epoch: usize) -> Vec<usize> {
        if self.shuffle {
            epoch_order(len, self.seed, epoch)
        } else {
            (0..len).collect()
        }
    }

    /// The augmentation key of `epoch`, if the run augments.
    pub fn augment_key(&self, epoch: usize) -> Option<u64> {
        self.augment.then(|| augment::epoch_key(self.seed, epoch))
    }
}

/// Where a run stands: the epochs done, and in the epoch under way the batches done, what
/// they measured and how long they took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub history: History,
    pub batches_done: usize,
    pub partial: BatchMetrics,
    pub partial_seconds: f64,
}

impl Progress {
    /// The epoch under way (or next), from 1.
    pub fn epoch(&self) -> usize {
        self.history.epochs.len() + 1
    }
}

/// A non-finite loss: the run stops there, in `batch` of `epoch` (the GPU checks once per
/// epoch, so it names no batch).
#[derive(Debug, thiserror::Error)]
#[error("training diverged: the loss is {loss} at epoch {epoch}{}", batch.map(|b| format!(", batch {b}")).unwrap_or_default())]
pub struct Diverged {
    pub loss: f64,
    pub epoch: usize,
    pub batch: Option<usize>,
}

/// How a call to [`fit`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished,
    /// Stopped on request after a batch; the checkpoint callback has seen that state.
    Interrupted,
}

/// Trains `net` on `train` from `progress` until `config.epochs` are done, validating on
/// `validation` after every epoch. The batch size is the network's capacity. `on_epoch` sees
/// the network and the history as soon as an epoch is complete (the history's last record is
/// that epoch's); `checkpoint` sees the whole state after every epoch and when a stop is
/// requested. An error from either stops the run.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    net: &mut Network,
    sgd: &mut Sgd,
    train: &Split,
    validation: &Split,
    config: &FitConfig,
    progress: &mut Progress,
    mut on_epoch: impl FnMut(&Network, &History) -> Result<()>,
    mut checkpoint: impl FnMut(&Network, &Sgd, &Progress) -> Result<()>,
) -> Result<Outcome> {
    while progress.history.epochs.len() < config.epochs {
        let started = Instant::now();
        let outcome = train_epoch(net, sgd, train, config, progress, |_| Ok(()))?;
        if outcome == Outcome::Interrupted {
            progress.partial_seconds += started.elapsed().as_secs_f64();
            checkpoint(net, sgd, progress)?;
            return Ok(Outcome::Interrupted);
        }
        let (val, _) = evaluate(net, validation);
        let record = EpochRecord {
            epoch: progress.epoch(),
            seconds: progress.partial_seconds + started.elapsed().as_secs_f64(),
            loss: progress.partial.mean_loss(),
            acc: progress.partial.accuracy(),
            val_loss: val.mean_loss(),
            val_acc: val.accuracy(),
        };
        finish_epoch(progress, record);
        on_epoch(net, &progress.history)?;
        checkpoint(net, sgd, progress)?;
    }
    Ok(Outcome::Finished)
}

/// Trains the rest of the epoch `progress` is in (its batches from `progress.batches_done`),
/// in batches of the network's capacity, drawn in the order the run's seed gives that epoch.
/// `after_batch` sees where the run stands after each batch; an error from it stops the
/// epoch there. It ends `Interrupted` after the batch during which a stop was requested, and
/// `Finished` after the last batch; the caller validates and files the epoch.
pub fn train_epoch(
    net: &mut Network,
    sgd: &mut Sgd,
    train: &Split,
    config: &FitConfig,
    progress: &mut Progress,
    mut after_batch: impl FnMut(&Progress) -> Result<()>,
) -> Result<Outcome> {
    let batch = net.capacity();
    let mut labels = Vec::with_capacity(batch);
    let batches = train.len().div_ceil(batch);
    let epoch = progress.epoch();
    let order = config.order(train.len(), epoch);
    let augment_key = config.augment_key(epoch);
    let bar = progress_bar(config.progress, batches as u64, epoch, config.epochs);
    bar.set_position(progress.batches_done as u64);
    for (b, indices) in order.chunks(batch).enumerate().skip(progress.batches_done) {
        gather(
            train,
            indices,
            augment_key,
            net.input_mut(indices.len()),
            &mut labels,
        );
        let metrics = net.train_batch(&labels);
        if !metrics.loss_sum.is_finite() {
            bail!(Diverged {
                loss: metrics.loss_sum,
                epoch,
                batch: Some(b + 1),
            });
        }
        sgd.step(&mut net.params, &net.grads);
        progress.partial += metrics;
        progress.batches_done = b + 1;
        bar.inc(1);
        // The running means after every batch, as Keras' bar shows them (the bar itself
        // redraws at most 20 times a second).
        bar.set_message(format!(
            "loss: {:.4} - acc: {:.4}",
            progress.partial.mean_loss(),
            progress.partial.accuracy()
        ));
        after_batch(progress)?;
        if config.stop_requested() {
            bar.finish_and_clear();
            return Ok(Outcome::Interrupted);
        }
    }
    bar.finish_and_clear();
    Ok(Outcome::Finished)
}

/// Files a finished epoch's record and clears the epoch under way.
pub fn finish_epoch(progress: &mut Progress, record: EpochRecord) {
    progress.history.push(record);
    progress.batches_done = 0;
    progress.partial = BatchMetrics::default();
    progress.partial_seconds = 0.0;
}

/// Loss and accuracy over a whole split in evaluation mode, and the predicted class of each
/// image, in batches of the network's capacity.
pub fn evaluate(net: &mut Network, split: &Split) -> (BatchMetrics, Vec<u8>) {
    let mut total = BatchMetrics::default();
    let mut predictions = Vec::with_capacity(split.len());
    for_each_eval_batch(net, split, |net, n, labels| {
        total += net.metrics(labels);
        for probs in net.probabilities(n).chunks_exact(net.classes()) {
            let best = probs
                .iter()
                .enumerate()
                .fold(0, |best, (j, p)| if *p > probs[best] { j } else { best });
            predictions.push(best as u8);
        }
    });
    (total, predictions)
}

/// The class probabilities of every image of `split` in evaluation mode, a row per image.
pub fn predict_probabilities(net: &mut Network, split: &Split) -> Vec<Vec<f32>> {
    let mut rows = Vec::with_capacity(split.len());
    for_each_eval_batch(net, split, |net, n, _| {
        rows.extend(
            net.probabilities(n)
                .chunks_exact(net.classes())
                .map(<[f32]>::to_vec),
        );
    });
    rows
}

/// Runs `split` forward in evaluation mode in batches of the network's capacity, handing each
/// batch's network (outputs in place), size and labels to `each`.
fn for_each_eval_batch(
    net: &mut Network,
    split: &Split,
    mut each: impl FnMut(&Network, usize, &[u8]),
) {
    let batch = net.capacity();
    let mut labels = Vec::with_capacity(batch);
    let indices: Vec<usize> = (0..split.len()).collect();
    for chunk in indices.chunks(batch) {
        gather(split, chunk, None, net.input_mut(chunk.len()), &mut labels);
        net.forward(chunk.len(), Mode::Eval);
        each(net, chunk.len(), &labels);
    }
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
        // Fits an 80-column terminal: `Epoch 12/40 782/782 [==============] 42s - ETA 1m -
        // loss: 1.6293 - acc: 0.4405` is 79 characters.
        "Epoch {prefix} {pos}/{len} [{bar:14}] {elapsed} - ETA {eta} - {msg}",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}
