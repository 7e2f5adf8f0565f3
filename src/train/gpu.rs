//! train::fit on the GPU: the data set sits on the device as bytes, each epoch's order (drawn
//! on the host from the same seeded stream as the CPU path, 200 KB) is the only upload, every
//! pass is a replay of a CUDA graph captured once, and the metrics come back once per epoch.

use crate::data::{PixelEncoding, Split};
use crate::engine::cuda::network::{BatchSource, CudaNetwork};
use crate::engine::cuda::Gpu;
use crate::engine::network::LayerTimes;
use crate::engine::sgd::{Sgd, SgdConfig};
use crate::engine::{BatchMetrics, Network};
use crate::train::fit::{finish_epoch, Diverged, FitConfig, Outcome, Progress};
use crate::train::history::{EpochRecord, History};
use crate::train::plan::{Memory, MemoryPlan};
use anyhow::{bail, Result};
use cudarc::driver::{CudaGraph, CudaSlice};
use std::time::Instant;

/// A split on the device: images (NHWC bytes), labels, and the order passes read it in.
struct DeviceSplit {
    images: CudaSlice<u8>,
    labels: CudaSlice<u8>,
    order: CudaSlice<u32>,
    len: usize,
}

impl DeviceSplit {
    fn upload(gpu: &Gpu, split: &Split) -> Result<DeviceSplit> {
        // The kernels scale bytes by 1/255; other encodings come from Python arrays.
        if split.encoding() != PixelEncoding::Scaled {
            bail!(
                "the GPU trains on pixels stored as bytes scaled by 1/255; these images are {:?}: train them on the CPU",
                split.encoding()
            );
        }
        let mut images = gpu.zeros::<u8>(split.images().len())?;
        let mut labels = gpu.zeros::<u8>(split.len())?;
        let mut order = gpu.zeros::<u32>(split.len())?;
        gpu.upload(split.images(), &mut images)?;
        gpu.upload(split.labels(), &mut labels)?;
        let identity: Vec<u32> = (0..split.len() as u32).collect();
        gpu.upload(&identity, &mut order)?;
        Ok(DeviceSplit {
            images,
            labels,
            order,
            len: split.len(),
        })
    }

    fn source(&self, gpu: &Gpu, augment: bool) -> BatchSource {
        BatchSource {
            images: gpu.addr(&self.images),
            labels: gpu.addr(&self.labels),
            order: gpu.addr(&self.order),
            augment,
        }
    }
}

/// The graphs of one kind of pass over a split: full batches, then the partial last one.
struct EpochGraphs {
    full: CudaGraph,
    tail: Option<CudaGraph>,
    full_batches: usize,
}

impl EpochGraphs {
    fn capture(
        gpu: &Gpu,
        len: usize,
        batch: usize,
        encode: impl Fn(usize) -> Result<()>,
    ) -> Result<EpochGraphs> {
        let full = gpu.capture(|| encode(batch))?;
        let tail = match len % batch {
            0 => None,
            rest => Some(gpu.capture(|| encode(rest))?),
        };
        Ok(EpochGraphs {
            full,
            tail,
            full_batches: len / batch,
        })
    }

    fn replay(&self) -> Result<()> {
        for _ in 0..self.full_batches {
            self.full.launch()?;
        }
        if let Some(tail) = &self.tail {
            tail.launch()?;
        }
        Ok(())
    }
}

/// Where the two metric triples (loss sum, correct, samples) start in the metrics buffer.
const TRAIN_METRICS: usize = 0;
const VALIDATION_METRICS: usize = 3;

pub struct GpuTrainer {
    cuda: CudaNetwork,
    train: DeviceSplit,
    validation: DeviceSplit,
    metrics: CudaSlice<f64>,
    predictions: CudaSlice<i32>,
    train_graphs: EpochGraphs,
    validation_graphs: EpochGraphs,
    augment: bool,
}

impl GpuTrainer {
    /// Copies the network, optimizer and data to the GPU and captures the passes' graphs;
    /// training passes crop and flip their images if `augment`.
    pub fn new(
        gpu: Gpu,
        net: &Network,
        sgd: &Sgd,
        train: &Split,
        validation: &Split,
        augment: bool,
    ) -> Result<GpuTrainer> {
        let mut cuda = CudaNetwork::from_host(gpu, net, sgd)?;
        let batch = cuda.capacity();
        cuda.prepare(&[batch, train.len() % batch, validation.len() % batch])?;
        let gpu = &cuda.gpu;
        let (train_split, validation_split) = (
            DeviceSplit::upload(gpu, train)?,
            DeviceSplit::upload(gpu, validation)?,
        );
        let metrics = gpu.zeros::<f64>(6)?;
        let predictions = gpu.zeros::<i32>(validation.len())?;
        let (metrics_addr, predictions_addr) = (gpu.addr(&metrics), gpu.addr(&predictions));
        let train_source = train_split.source(gpu, augment);
        let validation_source = validation_split.source(gpu, false);
        let train_graphs = EpochGraphs::capture(gpu, train.len(), batch, |n| {
            cuda.encode_train_pass(train_source, n, metrics_addr.offset::<f64>(TRAIN_METRICS))
        })?;
        let validation_graphs = EpochGraphs::capture(gpu, validation.len(), batch, |n| {
            cuda.encode_eval_pass(
                validation_source,
                n,
                predictions_addr,
                metrics_addr.offset::<f64>(VALIDATION_METRICS),
            )
        })?;
        Ok(GpuTrainer {
            cuda,
            train: train_split,
            validation: validation_split,
            metrics,
            predictions,
            train_graphs,
            validation_graphs,
            augment,
        })
    }

    /// Puts the epoch's order and augmentation key on the device and the cursor at its start.
    fn start_epoch(&mut self, order: &[usize], augment_key: Option<u64>) -> Result<()> {
        let order: Vec<u32> = order.iter().map(|&i| i as u32).collect();
        self.cuda.gpu.upload(&order, &mut self.train.order)?;
        if let Some(key) = augment_key {
            self.cuda.encode_set_augment_key(key)?;
        }
        self.cuda.encode_reset_cursor()
    }

    /// The first training batch of an epoch in `order` under `augment_key`, as the training
    /// pass gathers it (NHWC f32): what the CPU's `gather` must equal.
    pub fn first_batch(&mut self, order: &[usize], augment_key: Option<u64>) -> Result<Vec<f32>> {
        let n = self.cuda.capacity().min(order.len());
        self.start_epoch(order, augment_key)?;
        let source = self.train.source(&self.cuda.gpu, self.augment);
        self.cuda.encode_gather(source, n)?;
        self.cuda.download_input(n)
    }

    /// One epoch in `order` (indices into the training split), its images augmented under
    /// `augment_key` if the trainer augments, then validation; returns the (loss, acc,
    /// val_loss, val_acc) of the epoch.
    pub fn epoch(&mut self, order: &[usize], augment_key: Option<u64>) -> Result<[f64; 4]> {
        self.cuda.gpu.stream.memset_zeros(&mut self.metrics)?;
        self.start_epoch(order, augment_key)?;
        self.train_graphs.replay()?;
        self.cuda.encode_reset_cursor()?;
        self.validation_graphs.replay()?;
        let m = self.cuda.gpu.download(&self.metrics, 6)?;
        Ok([m[0] / m[2], m[1] / m[2], m[3] / m[5], m[4] / m[5]])
    }

    /// The predicted class of every validation image, from the last epoch's validation.
    pub fn predictions(&self) -> Result<Vec<u8>> {
        let predictions = self
            .cuda
            .gpu
            .download(&self.predictions, self.validation.len)?;
        Ok(predictions.into_iter().map(|p| p as u8).collect())
    }

    /// Times `steps` replays of a full-batch pass, after `warmup`; returns each one's seconds.
    /// Training passes change the weights: for benchmarks only.
    pub fn time_passes(&mut self, which: Pass, steps: usize, warmup: usize) -> Result<Vec<f64>> {
        let gpu = &self.cuda.gpu;
        let graph = match which {
            Pass::Train => &self.train_graphs.full,
            Pass::Eval => &self.validation_graphs.full,
        };
        let mut times = Vec::with_capacity(steps);
        for i in 0..warmup + steps {
            // Keep the cursor inside the data however many steps are timed.
            if i % self
                .train_graphs
                .full_batches
                .min(self.validation_graphs.full_batches)
                .max(1)
                == 0
            {
                self.cuda.encode_reset_cursor()?;
            }
            let started = Instant::now();
            graph.launch()?;
            gpu.synchronize()?;
            if i >= warmup {
                times.push(started.elapsed().as_secs_f64());
            }
        }
        Ok(times)
    }

    /// Each layer's time per full batch, and the loss's and the update's as two last rows,
    /// over `rounds` uncaptured passes of the batch last gathered (see
    /// [`CudaNetwork::time_layers`]). Changes the weights: for benchmarks only.
    pub fn time_layers(&self, rounds: usize) -> Result<Vec<LayerTimes>> {
        self.cuda.time_layers(self.cuda.capacity(), rounds)
    }

    /// Which path each convolution runs on, and why (see [`CudaNetwork::prepare`] and [`crate::engine::cuda::autotune`]).
    pub fn conv_choices(&self) -> Vec<&str> {
        self.cuda.conv_choices()
    }

    pub fn download_into(&self, net: &mut Network, sgd: &mut Sgd) -> Result<()> {
        self.cuda.download_into(net, sgd)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Train,
    Eval,
}

/// [`crate::train::fit::evaluate`] on the GPU: loss, accuracy and predictions over a split.
pub fn evaluate_on_gpu(gpu: Gpu, net: &Network, split: &Split) -> Result<(BatchMetrics, Vec<u8>)> {
    // Evaluation needs no optimizer state; an idle one fills the network's optimizer buffers.
    let idle = Sgd::new(
        SgdConfig {
            lr: 0.0,
            momentum: 0.0,
            nesterov: false,
            decay: 0.0,
            anneal_updates: 0,
            weight_decay: 0.0,
        },
        net.params.len(),
    );
    let mut cuda = CudaNetwork::from_host(gpu, net, &idle)?;
    let batch = cuda.capacity();
    cuda.prepare(&[batch, split.len() % batch])?;
    let gpu = &cuda.gpu;
    let data = DeviceSplit::upload(gpu, split)?;
    let metrics = gpu.zeros::<f64>(3)?;
    let predictions = gpu.zeros::<i32>(split.len())?;
    cuda.encode_reset_cursor()?;
    for start in (0..split.len()).step_by(batch) {
        let n = batch.min(split.len() - start);
        cuda.encode_eval_pass(
            data.source(gpu, false),
            n,
            gpu.addr(&predictions),
            gpu.addr(&metrics),
        )?;
    }
    let m = gpu.download(&metrics, 3)?;
    let totals = BatchMetrics {
        loss_sum: m[0],
        correct: m[1] as usize,
        samples: m[2] as usize,
    };
    let predictions = gpu
        .download(&predictions, split.len())?
        .into_iter()
        .map(|p| p as u8)
        .collect();
    Ok((totals, predictions))
}

/// Refuses a run whose buffers do not fit in the GPU's free memory, before they are allocated.
/// The plan is the GPU's own (every layer's buffers, and both splits, `data_bytes`); where the
/// driver cannot say what is free, the allocation decides.
fn check_gpu_memory(gpu: &Gpu, net: &Network, data_bytes: u64) -> Result<()> {
    let plan = MemoryPlan::for_training_on_gpu(&net.spec, net.capacity(), data_bytes)?;
    if gpu.stream.context().bind_to_thread().is_err() {
        return Ok(());
    }
    let Ok((free, total)) = cudarc::driver::result::mem_get_info() else {
        return Ok(());
    };
    let gpu_memory = Memory {
        total: total as u64,
        available: free as u64,
        holder: "the GPU",
    };
    Ok(plan.check(&gpu_memory)?)
}

/// [`crate::train::fit::fit`] on the GPU; a finished run also returns the final validation
/// predictions. Stops and checkpoints at epoch boundaries (an epoch takes well under a second).
#[allow(clippy::too_many_arguments)]
pub fn fit_on_gpu(
    gpu: Gpu,
    net: &mut Network,
    sgd: &mut Sgd,
    train: &Split,
    validation: &Split,
    config: &FitConfig,
    progress: &mut Progress,
    mut on_epoch: impl FnMut(&Network, &History) -> Result<()>,
    mut checkpoint: impl FnMut(&Network, &Sgd, &Progress) -> Result<()>,
) -> Result<(Outcome, Vec<u8>)> {
    if progress.batches_done > 0 {
        bail!(
            "--device cuda resumes at epoch boundaries, and this checkpoint stopped in epoch {} after \
             batch {}: resume it with --device cpu",
            progress.epoch(),
            progress.batches_done
        );
    }
    let data_bytes =
        (train.images().len() + train.len()) + (validation.images().len() + validation.len());
    check_gpu_memory(&gpu, net, data_bytes as u64)?;
    let mut trainer = GpuTrainer::new(gpu, net, sgd, train, validation, config.augment)?;
    while progress.history.epochs.len() < config.epochs {
        let epoch = progress.epoch();
        let started = Instant::now();
        let order = config.order(train.len(), epoch);
        let [loss, acc, val_loss, val_acc] = trainer.epoch(&order, config.augment_key(epoch))?;
        if !loss.is_finite() {
            bail!(Diverged {
                loss,
                epoch,
                batch: None
            });
        }
        let record = EpochRecord {
            epoch,
            seconds: started.elapsed().as_secs_f64(),
            loss,
            acc,
            val_loss,
            val_acc,
        };
        finish_epoch(progress, record);
        trainer.download_into(net, sgd)?;
        on_epoch(net, &progress.history)?;
        checkpoint(net, sgd, progress)?;
        if config.stop_requested() {
            return Ok((Outcome::Interrupted, Vec::new()));
        }
    }
    Ok((Outcome::Finished, trainer.predictions()?))
}
