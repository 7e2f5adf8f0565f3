//! [`Network`] on the GPU: the same layer list and flat parameter vectors, one device buffer
//! per activation and gradient, and each layer's forward and backward enqueued by its GPU
//! twin ([`super::layers`]), reading and writing only device memory, so a whole training pass
//! can be captured once as a CUDA graph and replayed.

use super::autotune;
use super::cudnn::{ConvPath, Cudnn};
use super::kernels::{DeviceAddr, EndPass, GatherBatch, ResetCursor, SetAugmentKey};
use super::layers::softmax::{encode_loss, LossIo};
use super::layers::{Backward, Forward, Layer, Shared};
use super::reduce::partials_len;
use super::sgd::{self, SgdBuffers};
use super::Gpu;
use crate::engine::network::LayerRanges;
use crate::engine::sgd::{Sgd, SgdConfig};
use crate::engine::{Mode, Network, Precision};
use crate::model::spec::PlacedLayer;
use crate::model::Shape;
use anyhow::{bail, Result};
use cudarc::driver::CudaSlice;

mod timing;
mod transfers;

/// Indices into the device step state (see `STATE_*` in kernels.cu).
const STATE_TRAIN_STEPS: usize = 0;
const STATE_ITERATIONS: usize = 1;
const STATE_LEN: usize = 4;

/// Where a pass reads its batch from: images and labels on the device, an order of indices,
/// and the step state's cursor into it.
#[derive(Debug, Clone, Copy)]
pub struct BatchSource {
    pub images: DeviceAddr,
    pub labels: DeviceAddr,
    pub order: DeviceAddr,
    /// Crop and flip each image under the step state's augmentation key (`--augment`).
    pub augment: bool,
}

pub struct CudaNetwork {
    pub gpu: Gpu,
    placed: Vec<PlacedLayer>,
    layers: Vec<Layer>,
    ranges: Vec<LayerRanges>,
    capacity: usize,
    classes: usize,
    dropout_seed: u64,
    sgd: SgdConfig,
    params: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    velocity: CudaSlice<f32>,
    moving: CudaSlice<f32>,
    acts: Vec<CudaSlice<f32>>,
    grad_acts: Vec<CudaSlice<f32>>,
    labels: CudaSlice<i32>,
    /// The column reductions' per-chunk sums (see [`super::reduce`]).
    partials: CudaSlice<f64>,
    /// Train steps, SGD iterations, cursor, augmentation key (kernels.cu's `STATE_*`).
    state: CudaSlice<u64>,
    precision: Precision,
    conv_path: ConvPath,
    /// cuDNN, where it is installed and `MINIVGG_CUDA_CONV` allows it.
    cudnn: Option<Cudnn>,
    /// What [`CudaNetwork::prepare`] chose for each (layer, batch size), and why, for `bench`.
    conv_choices: Vec<((usize, usize), String)>,
}

impl CudaNetwork {
    /// The host network and optimizer, copied to the GPU; its products in the network's
    /// precision (fp32 or tf32).
    pub fn from_host(gpu: Gpu, net: &Network, sgd: &Sgd) -> Result<CudaNetwork> {
        gpu.set_precision(net.precision())?;
        let conv_path = ConvPath::from_env()?;
        let cudnn = match conv_path {
            ConvPath::Im2col => None,
            _ => Cudnn::open(&gpu)?,
        };
        let placed = net.placed().to_vec();
        let capacity = net.capacity();
        let upload = |host: &[f32]| -> Result<CudaSlice<f32>> {
            let mut device = gpu.zeros::<f32>(host.len())?;
            gpu.upload(host, &mut device)?;
            Ok(device)
        };
        let (params, velocity, moving) = (
            upload(&net.params)?,
            upload(&sgd.velocity)?,
            upload(&net.moving)?,
        );
        let grads = gpu.zeros::<f32>(net.params.len())?;
        let mut acts = vec![gpu.zeros::<f32>(capacity * net.spec.input.len())?];
        let mut grad_acts = vec![gpu.zeros::<f32>(1)?];
        for layer in &placed {
            acts.push(gpu.zeros::<f32>(capacity * layer.output.len())?);
            grad_acts.push(gpu.zeros::<f32>(capacity * layer.output.len())?);
        }
        let layers = placed
            .iter()
            .map(|layer| Layer::new(&gpu, layer, capacity))
            .collect::<Result<Vec<_>>>()?;
        let mut state = gpu.zeros::<u64>(STATE_LEN)?;
        let mut host_state = [0u64; STATE_LEN];
        host_state[STATE_TRAIN_STEPS] = net.train_steps;
        host_state[STATE_ITERATIONS] = sgd.iterations;
        gpu.upload(&host_state, &mut state)?;
        let labels = gpu.zeros::<i32>(capacity)?;
        let widest = placed
            .iter()
            .map(|l| l.output.channels())
            .max()
            .unwrap_or(1);
        let partials = gpu.zeros::<f64>(partials_len(widest))?;
        Ok(CudaNetwork {
            precision: net.precision(),
            conv_path,
            cudnn,
            conv_choices: Vec::new(),
            partials,
            ranges: net.layer_ranges().to_vec(),
            classes: net.classes(),
            dropout_seed: net.dropout_seed,
            sgd: sgd.config,
            placed,
            layers,
            capacity,
            params,
            grads,
            velocity,
            moving,
            acts,
            grad_acts,
            labels,
            state,
            gpu,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn param_count(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.weights.end)
    }

    /// What every layer's encoders share.
    fn shared(&self) -> Shared<'_> {
        Shared {
            gpu: &self.gpu,
            state: self.gpu.addr(&self.state),
            partials: self.gpu.addr(&self.partials),
            dropout_seed: self.dropout_seed,
            cudnn: self.cudnn.as_ref(),
        }
    }

    /// Layer `i`'s forward operands for a batch of `n`.
    fn forward_io(&self, i: usize, n: usize, mode: Mode) -> Forward {
        let gpu = &self.gpu;
        Forward {
            index: i,
            weights: gpu
                .addr(&self.params)
                .offset::<f32>(self.ranges[i].weights.start),
            moving: gpu
                .addr(&self.moving)
                .offset::<f32>(self.ranges[i].moving.start),
            x: gpu.addr(&self.acts[i]),
            y: gpu.addr(&self.acts[i + 1]),
            n,
            x_len: n * self.placed[i].input.len(),
            mode,
        }
    }

    /// Layer `i`'s backward operands for a batch of `n`.
    fn backward_io(&self, i: usize, n: usize) -> Backward {
        let gpu = &self.gpu;
        let weights = self.ranges[i].weights.start;
        Backward {
            index: i,
            weights: gpu.addr(&self.params).offset::<f32>(weights),
            grads: gpu.addr(&self.grads).offset::<f32>(weights),
            x: gpu.addr(&self.acts[i]),
            y: gpu.addr(&self.acts[i + 1]),
            dy: gpu.addr(&self.grad_acts[i + 1]),
            // The first layer's input gradient is never needed.
            dx: (i > 0).then(|| gpu.addr(&self.grad_acts[i])),
            n,
            x_len: n * self.placed[i].input.len(),
        }
    }

    /// Enqueues the gather of the batch of `n` at the cursor of `source`'s order.
    pub fn encode_gather(&self, source: BatchSource, n: usize) -> Result<()> {
        let input = self.placed[0].input;
        let Shape::Image { h, w, c } = input else {
            bail!("the network's input must be an image, not {input:?}");
        };
        self.gpu.launch(GatherBatch {
            images: source.images,
            labels: source.labels,
            order: source.order,
            state: self.gpu.addr(&self.state),
            n,
            height: h,
            width: w,
            channels: c,
            augment: source.augment,
            pad: crate::data::augment::PAD as usize,
            out: self.gpu.addr(&self.acts[0]),
            out_labels: self.gpu.addr(&self.labels),
        })
    }

    /// Enqueues every layer's forward pass over the batch in the input buffer.
    pub fn encode_forward(&self, n: usize, mode: Mode) -> Result<()> {
        (0..self.layers.len()).try_for_each(|i| self.encode_layer_forward(i, n, mode))
    }

    fn encode_layer_forward(&self, i: usize, n: usize, mode: Mode) -> Result<()> {
        self.layers[i].forward(self.shared(), self.forward_io(i, n, mode))
    }

    /// Enqueues the softmax and the loss over the labels on the device: probabilities, the
    /// logits' gradient when training, predictions at the cursor when `predictions` is given,
    /// and the batch's loss, correct count and samples added to the three f64 at `metrics`.
    pub fn encode_loss(
        &self,
        n: usize,
        mode: Mode,
        predictions: Option<DeviceAddr>,
        metrics: DeviceAddr,
    ) -> Result<()> {
        let last = self.placed.len() - 1;
        let gpu = &self.gpu;
        let io = LossIo {
            logits: gpu.addr(&self.acts[last]),
            labels: gpu.addr(&self.labels),
            probs: gpu.addr(&self.acts[last + 1]),
            grad: gpu.addr(&self.grad_acts[last]),
            n,
            classes: self.classes,
        };
        encode_loss(self.shared(), io, mode, predictions, metrics)
    }

    /// Enqueues every layer's backward pass, from the loss gradient the loss left (the
    /// softmax's own is the loss's).
    pub fn encode_backward(&self, n: usize) -> Result<()> {
        (0..self.layers.len() - 1)
            .rev()
            .try_for_each(|i| self.encode_layer_backward(i, n))
    }

    fn encode_layer_backward(&self, i: usize, n: usize) -> Result<()> {
        self.layers[i].backward(self.shared(), self.backward_io(i, n))
    }

    /// Enqueues the SGD update of every trainable parameter and counts it (engine::sgd::Sgd::step).
    pub fn encode_sgd(&self) -> Result<()> {
        let gpu = &self.gpu;
        let buffers = SgdBuffers {
            weights: gpu.addr(&self.params),
            grads: gpu.addr(&self.grads),
            velocity: gpu.addr(&self.velocity),
            len: self.param_count(),
            state: gpu.addr(&self.state),
        };
        sgd::encode_step(gpu, &self.sgd, buffers)
    }

    /// Enqueues the end of a pass of `n` samples: the cursor moves on, a training pass counts.
    pub fn encode_end_pass(&self, n: usize, mode: Mode) -> Result<()> {
        self.gpu.launch(EndPass {
            state: self.gpu.addr(&self.state),
            n,
            training: mode == Mode::Train,
        })
    }

    /// Sets the augmentation key the next passes' gathers draw from.
    pub fn encode_set_augment_key(&self, key: u64) -> Result<()> {
        self.gpu.launch(SetAugmentKey {
            state: self.gpu.addr(&self.state),
            key,
        })
    }

    pub fn encode_reset_cursor(&self) -> Result<()> {
        self.gpu.launch(ResetCursor {
            state: self.gpu.addr(&self.state),
        })
    }

    /// One whole training pass (train::fit's loop body): gather, forward, loss, backward, update.
    pub fn encode_train_pass(
        &self,
        source: BatchSource,
        n: usize,
        metrics: DeviceAddr,
    ) -> Result<()> {
        self.encode_gather(source, n)?;
        self.encode_forward(n, Mode::Train)?;
        self.encode_loss(n, Mode::Train, None, metrics)?;
        self.encode_backward(n)?;
        self.encode_end_pass(n, Mode::Train)?;
        self.encode_sgd()
    }

    /// One evaluation pass (train::fit::evaluate's loop body), predictions kept at the cursor.
    pub fn encode_eval_pass(
        &self,
        source: BatchSource,
        n: usize,
        predictions: DeviceAddr,
        metrics: DeviceAddr,
    ) -> Result<()> {
        self.encode_gather(source, n)?;
        self.encode_forward(n, Mode::Eval)?;
        self.encode_loss(n, Mode::Eval, Some(predictions), metrics)?;
        self.encode_end_pass(n, Mode::Eval)
    }

    /// Chooses every convolution's path for batches of each size in `sizes`
    /// ([`autotune::choose`]). Call it before capturing a graph (it synchronizes, and it
    /// overwrites activations and gradients); a size it has not seen runs on im2col.
    pub fn prepare(&mut self, sizes: &[usize]) -> Result<()> {
        if self.cudnn.is_none() {
            return Ok(());
        }
        for &n in sizes.iter().filter(|&&n| n > 0 && n <= self.capacity) {
            for i in 0..self.layers.len() {
                let Layer::Conv2d(conv) = &self.layers[i] else {
                    continue;
                };
                if self.conv_choices.iter().any(|(at, _)| *at == (i, n)) {
                    continue;
                }
                let io = (self.forward_io(i, n, Mode::Train), self.backward_io(i, n));
                // cuDNN failing here costs speed, not the run: im2col stays.
                let (chosen, why) =
                    autotune::choose(self.shared(), conv, io, self.precision, self.conv_path)
                        .unwrap_or_else(|e| (None, format!("im2col (cuDNN failed: {e:#})")));
                let line = format!("{} at batch {n}: {why}", self.placed[i].name);
                self.conv_choices.push(((i, n), line));
                if let (Some(chosen), Layer::Conv2d(conv)) = (chosen, &mut self.layers[i]) {
                    conv.run_on_cudnn(n, chosen);
                }
            }
        }
        Ok(())
    }

    /// What [`CudaNetwork::prepare`] chose, a line per layer and batch size.
    pub fn conv_choices(&self) -> Vec<&str> {
        self.conv_choices
            .iter()
            .map(|(_, line)| line.as_str())
            .collect()
    }
}
