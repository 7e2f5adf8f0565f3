//! [`Network`] on the GPU: the same plan (layer list, flat parameter
//! vectors, one buffer per activation and gradient), each layer's forward and backward
//! enqueued as kernels and cuBLAS products that read and write only device memory, so a whole
//! training pass can be captured once as a CUDA graph and replayed.

use super::cudnn::{ConvPath, ConvPlan, ConvShape, Cudnn, WORKSPACE_BYTES};
use super::{elementwise, one_block, parity_tolerance, relative_error, Arg, Gpu};
use crate::engine::cpu::matmul::Layout;
use crate::engine::layers::batchnorm::{EPSILON, MOMENTUM};
use crate::engine::network::{LayerRanges, LayerTimes};
use crate::engine::sgd::Sgd;
use crate::engine::{BatchMetrics, Mode, Network, Precision};
use crate::model::spec::{LayerSpec, PlacedLayer};
use crate::model::Shape;
use anyhow::{bail, Result};
use cudarc::driver::{CudaSlice, LaunchConfig};
use std::collections::HashMap;

/// Indices into the device step state (see `STATE_*` in kernels.cu).
const STATE_TRAIN_STEPS: usize = 0;
const STATE_ITERATIONS: usize = 1;
const STATE_LEN: usize = 4;

/// Column reductions split their rows into at most this many chunks (kernels.cu's
/// `column_partials`), each summed by one block of 32 columns × `LANES` rows.
const MAX_CHUNKS: usize = 256;
const LANES: usize = 8;
const SUM_X: usize = 0;
const SUM_CENTRED_SQ: usize = 1;
const SUM_DY_DY_XHAT: usize = 2;

/// Per-layer device scratch, as the CPU layers keep theirs.
enum Scratch {
    None,
    /// Conv2D: the im2col patches (reused for their gradients in backward), and for cuDNN's
    /// path the kernel and its gradient in KRSC.
    Conv {
        cols: CudaSlice<f32>,
        krsc: CudaSlice<f32>,
        krsc_grad: CudaSlice<f32>,
    },
    /// BatchNorm: mean, 1/std, mean of dy, mean of dy·x̂ (4 × channels), and the batch mean
    /// in f64 for the variance pass.
    BatchNorm(CudaSlice<f32>, CudaSlice<f64>),
    /// MaxPool: which window position won.
    Winners(CudaSlice<u8>),
}

#[derive(Clone, Copy)]
enum Phase {
    Forward,
    Backward,
    Eval,
}

/// Where a pass reads its batch from: images and labels on the device, an order of indices,
/// and the step state's cursor into it.
#[derive(Debug, Clone, Copy)]
pub struct BatchSource {
    pub images: u64,
    pub labels: u64,
    pub order: u64,
    /// Crop and flip each image under the step state's augmentation key (`--augment`).
    pub augment: bool,
}

pub struct CudaNetwork {
    pub gpu: Gpu,
    placed: Vec<PlacedLayer>,
    ranges: Vec<LayerRanges>,
    capacity: usize,
    classes: usize,
    dropout_seed: u64,
    sgd: crate::engine::sgd::SgdConfig,
    params: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    velocity: CudaSlice<f32>,
    moving: CudaSlice<f32>,
    acts: Vec<CudaSlice<f32>>,
    grad_acts: Vec<CudaSlice<f32>>,
    scratch: Vec<Scratch>,
    labels: CudaSlice<i32>,
    /// Per-chunk column sums of the reductions (bias gradients, BN statistics), shared by all
    /// layers since the stream runs them one after another.
    partials: CudaSlice<f64>,
    /// Train steps, SGD iterations, cursor (kernels.cu's `STATE_*`).
    pub state: CudaSlice<u64>,
    precision: Precision,
    conv_path: ConvPath,
    /// cuDNN and its workspace, where it is installed and `MINIVGG_CUDA_CONV` allows it.
    cudnn: Option<(Cudnn, CudaSlice<u8>)>,
    /// The (layer, batch size) pairs that run on cuDNN, with their algorithms; the others on
    /// im2col. Filled by [`CudaNetwork::prepare`] before any graph is captured.
    conv_plans: HashMap<(usize, usize), ConvPlan>,
    /// What prepare chose for each (layer, batch size), and why, for `bench`.
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
            _ => match Cudnn::open(&gpu.stream)? {
                Some(cudnn) => Some((cudnn, gpu.zeros::<u8>(WORKSPACE_BYTES)?)),
                None => None,
            },
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
        let scratch = placed
            .iter()
            .map(|layer| {
                Ok(match (&layer.spec, layer.input) {
                    (LayerSpec::Conv2d { filters, kernel }, Shape::Image { h, w, c }) => {
                        let kernel_len = kernel * kernel * c * filters;
                        Scratch::Conv {
                            cols: gpu.zeros::<f32>(capacity * h * w * kernel * kernel * c)?,
                            krsc: gpu.zeros::<f32>(kernel_len)?,
                            krsc_grad: gpu.zeros::<f32>(kernel_len)?,
                        }
                    }
                    (LayerSpec::BatchNorm, input) => Scratch::BatchNorm(
                        gpu.zeros::<f32>(4 * input.channels())?,
                        gpu.zeros::<f64>(input.channels())?,
                    ),
                    (LayerSpec::MaxPool, _) => {
                        Scratch::Winners(gpu.zeros::<u8>(capacity * layer.output.len())?)
                    }
                    _ => Scratch::None,
                })
            })
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
        let partials = gpu.zeros::<f64>(MAX_CHUNKS * 2 * widest)?;
        Ok(CudaNetwork {
            precision: net.precision(),
            conv_path,
            cudnn,
            conv_plans: HashMap::new(),
            conv_choices: Vec::new(),
            partials,
            ranges: net.layer_ranges().to_vec(),
            classes: net.classes(),
            dropout_seed: net.dropout_seed,
            sgd: sgd.config,
            placed,
            capacity,
            params,
            grads,
            velocity,
            moving,
            acts,
            grad_acts,
            scratch,
            labels,
            state,
            gpu,
        })
    }

    /// Copies the trained state back into the host network and optimizer.
    pub fn download_into(&self, net: &mut Network, sgd: &mut Sgd) -> Result<()> {
        net.params = self.gpu.download(&self.params, net.params.len())?;
        net.moving = self.gpu.download(&self.moving, net.moving.len())?;
        sgd.velocity = self.gpu.download(&self.velocity, sgd.velocity.len())?;
        let state = self.gpu.download(&self.state, STATE_LEN)?;
        net.train_steps = state[STATE_TRAIN_STEPS];
        sgd.iterations = state[STATE_ITERATIONS];
        Ok(())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The gradients of the last backward pass (for tests).
    pub fn download_grads(&self) -> Result<Vec<f32>> {
        self.gpu.download(&self.grads, self.param_count())
    }

    pub fn download_moving(&self) -> Result<Vec<f32>> {
        self.gpu
            .download(&self.moving, self.ranges.last().map_or(0, |r| r.moving.end))
    }

    /// Class probabilities of the last forward pass, `[n × classes]`.
    pub fn download_probabilities(&self, n: usize) -> Result<Vec<f32>> {
        self.gpu
            .download(&self.acts[self.placed.len()], n * self.classes)
    }

    /// The input buffer's first `n` images (NHWC f32).
    pub fn download_input(&self, n: usize) -> Result<Vec<f32>> {
        self.gpu
            .download(&self.acts[0], n * self.placed[0].input.len())
    }

    /// Replaces the weights (the optimizer's state stays).
    pub fn upload_params(&mut self, params: &[f32]) -> Result<()> {
        self.gpu.upload(params, &mut self.params)
    }

    /// Puts a host batch (NHWC f32) and its labels on the device (tests; training gathers on
    /// the device).
    pub fn upload_batch(&mut self, input: &[f32], labels: &[u8]) -> Result<()> {
        let labels: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        self.gpu.upload(input, &mut self.acts[0])?;
        self.gpu.upload(&labels, &mut self.labels)
    }

    /// [`Network::train_batch`] from a host batch, run at once: forward in training mode, the
    /// loss and backward, leaving the gradients on the device.
    pub fn train_batch(&mut self, input: &[f32], labels: &[u8]) -> Result<BatchMetrics> {
        self.run_batch(input, labels, Mode::Train)
    }

    /// A forward pass in evaluation mode and the loss, from a host batch, run at once.
    pub fn eval_batch(&mut self, input: &[f32], labels: &[u8]) -> Result<BatchMetrics> {
        self.run_batch(input, labels, Mode::Eval)
    }

    fn run_batch(&mut self, input: &[f32], labels: &[u8], mode: Mode) -> Result<BatchMetrics> {
        let n = labels.len();
        // Before the upload: choosing a convolution's path overwrites activations.
        self.prepare(&[n])?;
        self.upload_batch(input, labels)?;
        let metrics = self.gpu.zeros::<f64>(3)?;
        self.encode_forward(n, mode)?;
        self.encode_loss(n, mode, None, self.gpu.ptr(&metrics))?;
        if mode == Mode::Train {
            self.encode_backward(n)?;
            self.encode_end_pass(n, mode)?;
        }
        let m = self.gpu.download(&metrics, 3)?;
        Ok(BatchMetrics {
            loss_sum: m[0],
            correct: m[1] as usize,
            samples: m[2] as usize,
        })
    }

    /// [`Sgd::step`] on the device, run at once.
    pub fn sgd_step(&self) -> Result<()> {
        self.encode_sgd()?;
        self.gpu.synchronize()
    }

    pub fn download_params(&self) -> Result<Vec<f32>> {
        self.gpu.download(&self.params, self.param_count())
    }

    /// The optimizer's velocity, one value per trainable parameter.
    pub fn download_velocity(&self) -> Result<Vec<f32>> {
        self.gpu.download(&self.velocity, self.param_count())
    }

    fn param_count(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.weights.end)
    }

    fn weights(&self, i: usize) -> (u64, u64) {
        let base = self.gpu.ptr(&self.params);
        let grads = self.gpu.ptr(&self.grads);
        let offset = (self.ranges[i].weights.start * 4) as u64;
        (base + offset, grads + offset)
    }

    fn moving_ptr(&self, i: usize) -> u64 {
        self.gpu.ptr(&self.moving) + (self.ranges[i].moving.start * 4) as u64
    }

    /// Enqueues the gather of the batch of `n` at the cursor of `source`'s order.
    pub fn encode_gather(&self, source: BatchSource, n: usize) -> Result<()> {
        let input = self.placed[0].input;
        let Shape::Image { h, w, c } = input else {
            bail!("the network's input must be an image, not {input:?}");
        };
        let args = [
            Arg(source.images),
            Arg(source.labels),
            Arg(source.order),
            Arg(self.gpu.ptr(&self.state)),
            n.into(),
            h.into(),
            w.into(),
            c.into(),
            usize::from(source.augment).into(),
            (crate::data::augment::PAD as usize).into(),
            Arg(self.gpu.ptr(&self.acts[0])),
            Arg(self.gpu.ptr(&self.labels)),
        ];
        self.gpu
            .launch("gather_batch", elementwise(n * input.len()), &args)
    }

    /// Enqueues every layer's forward pass over the batch in the input buffer.
    pub fn encode_forward(&self, n: usize, mode: Mode) -> Result<()> {
        for (i, layer) in self.placed.iter().enumerate() {
            self.encode_layer_forward(i, layer, n, mode)?;
        }
        Ok(())
    }

    fn encode_layer_forward(
        &self,
        i: usize,
        layer: &PlacedLayer,
        n: usize,
        mode: Mode,
    ) -> Result<()> {
        let gpu = &self.gpu;
        let (x, y) = (gpu.ptr(&self.acts[i]), gpu.ptr(&self.acts[i + 1]));
        let (weights, _) = self.weights(i);
        let (in_len, out_len) = (n * layer.input.len(), n * layer.output.len());
        match (&layer.spec, &self.scratch[i]) {
            (LayerSpec::Conv2d { .. }, Scratch::Conv { .. }) => {
                self.encode_conv_forward(i, n, self.conv_plans.get(&(i, n)))
            }
            (LayerSpec::Dense { units }, _) => {
                self.encode_affine(x, weights, y, n, layer.input.len(), *units)
            }
            (LayerSpec::Relu, _) => gpu.launch(
                "relu_forward",
                elementwise(in_len),
                &[Arg(x), Arg(y), in_len.into()],
            ),
            (LayerSpec::Flatten, _) => gpu.launch(
                "copy",
                elementwise(in_len),
                &[Arg(x), Arg(y), in_len.into()],
            ),
            (LayerSpec::Dropout { rate }, _) => match mode {
                Mode::Eval => gpu.launch(
                    "copy",
                    elementwise(in_len),
                    &[Arg(x), Arg(y), in_len.into()],
                ),
                Mode::Train => self.encode_dropout(x, y, in_len, *rate, i),
            },
            (LayerSpec::MaxPool, Scratch::Winners(winners)) => {
                let Shape::Image { h, w, c } = layer.input else {
                    unreachable!("pool inputs are images")
                };
                let args = [
                    Arg(x),
                    Arg(y),
                    Arg(gpu.ptr(winners)),
                    n.into(),
                    h.into(),
                    w.into(),
                    c.into(),
                ];
                gpu.launch("maxpool_forward", elementwise(out_len), &args)
            }
            (LayerSpec::BatchNorm, Scratch::BatchNorm(stats, mean64)) => {
                let c = layer.input.channels();
                let rows = in_len / c;
                let (mean, inv_std) = (gpu.ptr(stats), gpu.ptr(stats) + 4 * c as u64);
                let (mean64, moving) = (gpu.ptr(mean64), self.moving_ptr(i));
                let moving_var = moving + 4 * c as u64;
                match mode {
                    Mode::Train => {
                        let partials = gpu.ptr(&self.partials);
                        let chunks = self.encode_column_partials(x, 0, 0, 0, 0, rows, c, SUM_X)?;
                        let args = [
                            Arg(partials),
                            chunks.into(),
                            c.into(),
                            rows.into(),
                            Arg(mean64),
                        ];
                        gpu.launch("bn_mean_finish", elementwise(c), &args)?;
                        let chunks = self.encode_column_partials(
                            x,
                            0,
                            mean64,
                            0,
                            0,
                            rows,
                            c,
                            SUM_CENTRED_SQ,
                        )?;
                        let args = [
                            Arg(partials),
                            chunks.into(),
                            c.into(),
                            rows.into(),
                            Arg(mean64),
                            Arg(mean),
                            Arg(inv_std),
                            Arg(moving),
                            Arg(moving_var),
                            MOMENTUM.into(),
                            EPSILON.into(),
                        ];
                        gpu.launch("bn_var_finish", elementwise(c), &args)?;
                    }
                    Mode::Eval => {
                        let args = [
                            Arg(moving),
                            Arg(moving_var),
                            c.into(),
                            EPSILON.into(),
                            Arg(mean),
                            Arg(inv_std),
                        ];
                        gpu.launch("bn_eval_stats", elementwise(c), &args)?;
                    }
                }
                let (gamma, beta) = (weights, weights + 4 * c as u64);
                let args = [
                    Arg(x),
                    Arg(y),
                    Arg(mean),
                    Arg(inv_std),
                    Arg(gamma),
                    Arg(beta),
                    rows.into(),
                    c.into(),
                ];
                gpu.launch("bn_apply", elementwise(in_len), &args)
            }
            // The softmax's probabilities come with the loss (encode_loss).
            (LayerSpec::Softmax, _) => Ok(()),
            (spec, _) => unreachable!("{spec:?} has no scratch of its kind"),
        }
    }

    /// `y[rows × out] = a · kernel + bias` (layers::affine::affine_forward).
    fn encode_affine(
        &self,
        a: u64,
        weights: u64,
        y: u64,
        rows: usize,
        inputs: usize,
        outputs: usize,
    ) -> Result<()> {
        let bias = weights + (inputs * outputs * 4) as u64;
        self.gpu.launch(
            "fill_rows",
            elementwise(rows * outputs),
            &[Arg(y), Arg(bias), rows.into(), outputs.into()],
        )?;
        self.gpu.matmul(
            y,
            a,
            Layout::AsIs,
            weights,
            Layout::AsIs,
            rows,
            inputs,
            outputs,
            true,
        )
    }

    fn encode_dropout(
        &self,
        input: u64,
        out: u64,
        len: usize,
        rate: f32,
        layer: usize,
    ) -> Result<()> {
        let args = [
            Arg(input),
            Arg(out),
            len.into(),
            rate.into(),
            Arg(self.dropout_seed),
            layer.into(),
            Arg(self.gpu.ptr(&self.state)),
        ];
        self.gpu.launch("dropout_apply", elementwise(len), &args)
    }

    /// Enqueues the softmax and the loss over the labels on the device: probabilities, the
    /// logits' gradient when training, predictions at the cursor when `predictions` is given,
    /// and the batch's loss, correct count and samples added to the three f64 at `metrics`.
    pub fn encode_loss(
        &self,
        n: usize,
        mode: Mode,
        predictions: Option<u64>,
        metrics: u64,
    ) -> Result<()> {
        let last = self.placed.len() - 1;
        let gpu = &self.gpu;
        let grad = match mode {
            Mode::Train => gpu.ptr(&self.grad_acts[last]),
            Mode::Eval => 0,
        };
        let args = [
            Arg(gpu.ptr(&self.acts[last])),
            Arg(gpu.ptr(&self.labels)),
            n.into(),
            self.classes.into(),
            Arg(gpu.ptr(&self.acts[last + 1])),
            Arg(grad),
            Arg(predictions.unwrap_or(0)),
            Arg(gpu.ptr(&self.state)),
            Arg(metrics),
        ];
        gpu.launch("softmax_cross_entropy", one_block(), &args)
    }

    /// Enqueues every layer's backward pass, from the loss gradient the loss left.
    pub fn encode_backward(&self, n: usize) -> Result<()> {
        for i in (0..self.placed.len() - 1).rev() {
            self.encode_layer_backward(i, n)?;
        }
        Ok(())
    }

    fn encode_layer_backward(&self, i: usize, n: usize) -> Result<()> {
        let gpu = &self.gpu;
        let layer = &self.placed[i];
        let (x, y) = (gpu.ptr(&self.acts[i]), gpu.ptr(&self.acts[i + 1]));
        let dy = gpu.ptr(&self.grad_acts[i + 1]);
        // The first layer's input gradient is never needed.
        let dx = (i > 0).then(|| gpu.ptr(&self.grad_acts[i]));
        let (weights, grads) = self.weights(i);
        let in_len = n * layer.input.len();
        match (&layer.spec, &self.scratch[i]) {
            (LayerSpec::Conv2d { .. }, Scratch::Conv { .. }) => {
                self.encode_conv_backward(i, n, self.conv_plans.get(&(i, n)))
            }
            (LayerSpec::Dense { units }, _) => {
                let inputs = layer.input.len();
                self.encode_weight_grads(x, dy, grads, n, inputs, *units)?;
                match dx {
                    Some(dx) => gpu.matmul(
                        dx,
                        dy,
                        Layout::AsIs,
                        weights,
                        Layout::Transposed,
                        n,
                        *units,
                        inputs,
                        false,
                    ),
                    None => Ok(()),
                }
            }
            (LayerSpec::Relu, _) => match dx {
                Some(dx) => gpu.launch(
                    "relu_backward",
                    elementwise(in_len),
                    &[Arg(y), Arg(dy), Arg(dx), in_len.into()],
                ),
                None => Ok(()),
            },
            (LayerSpec::Flatten, _) => match dx {
                Some(dx) => gpu.launch(
                    "copy",
                    elementwise(in_len),
                    &[Arg(dy), Arg(dx), in_len.into()],
                ),
                None => Ok(()),
            },
            (LayerSpec::Dropout { rate }, _) => match dx {
                Some(dx) => self.encode_dropout(dy, dx, in_len, *rate, i),
                None => Ok(()),
            },
            (LayerSpec::MaxPool, Scratch::Winners(winners)) => match dx {
                Some(dx) => {
                    let Shape::Image { h, w, c } = layer.input else {
                        unreachable!("pool inputs are images")
                    };
                    let args = [
                        Arg(dy),
                        Arg(gpu.ptr(winners)),
                        Arg(dx),
                        n.into(),
                        h.into(),
                        w.into(),
                        c.into(),
                    ];
                    gpu.launch("maxpool_backward", elementwise(in_len), &args)
                }
                None => Ok(()),
            },
            (LayerSpec::BatchNorm, Scratch::BatchNorm(stats, _)) => {
                let c = layer.input.channels();
                let rows = in_len / c;
                let stat = |k: u64| gpu.ptr(stats) + k * 4 * c as u64;
                let (gamma_grad, beta_grad) = (grads, grads + 4 * c as u64);
                let chunks = self.encode_column_partials(
                    x,
                    dy,
                    0,
                    stat(0),
                    stat(1),
                    rows,
                    c,
                    SUM_DY_DY_XHAT,
                )?;
                // Backward follows a training forward pass: batch statistics.
                let args = [
                    Arg(gpu.ptr(&self.partials)),
                    chunks.into(),
                    c.into(),
                    rows.into(),
                    true.into(),
                    Arg(gamma_grad),
                    Arg(beta_grad),
                    Arg(stat(2)),
                    Arg(stat(3)),
                ];
                gpu.launch("bn_backward_finish", elementwise(c), &args)?;
                match dx {
                    Some(dx) => {
                        let args = [
                            Arg(x),
                            Arg(dy),
                            Arg(stat(0)),
                            Arg(stat(1)),
                            Arg(weights),
                            Arg(stat(2)),
                            Arg(stat(3)),
                            rows.into(),
                            c.into(),
                            Arg(dx),
                        ];
                        gpu.launch("bn_backward_dx", elementwise(in_len), &args)
                    }
                    None => Ok(()),
                }
            }
            (spec, _) => unreachable!("{spec:?} has no backward here"),
        }
    }

    /// Kernel gradient `aᵀ · dy` and bias gradient `Σ_rows dy` (layers::affine::weight_grads).
    fn encode_weight_grads(
        &self,
        a: u64,
        dy: u64,
        grads: u64,
        rows: usize,
        inputs: usize,
        outputs: usize,
    ) -> Result<()> {
        self.gpu.matmul(
            grads,
            a,
            Layout::Transposed,
            dy,
            Layout::AsIs,
            inputs,
            rows,
            outputs,
            false,
        )?;
        self.encode_bias_grad(dy, grads, rows, inputs, outputs)
    }

    /// Bias gradient `Σ_rows dy`, stored after the `inputs × outputs` kernel gradient.
    fn encode_bias_grad(
        &self,
        dy: u64,
        grads: u64,
        rows: usize,
        inputs: usize,
        outputs: usize,
    ) -> Result<()> {
        let bias_grad = grads + (inputs * outputs * 4) as u64;
        let chunks = self.encode_column_partials(dy, 0, 0, 0, 0, rows, outputs, SUM_X)?;
        let args = [
            Arg(self.gpu.ptr(&self.partials)),
            chunks.into(),
            outputs.into(),
            Arg(bias_grad),
        ];
        self.gpu
            .launch("bias_grad_finish", elementwise(outputs), &args)
    }

    /// Enqueues the per-chunk column sums `what` (kernels.cu's SUM_*) of `x[rows × cols]` into
    /// the partials buffer; returns the number of chunks for the finishing kernel. Unused
    /// operands are 0.
    #[allow(clippy::too_many_arguments)]
    fn encode_column_partials(
        &self,
        x: u64,
        dy: u64,
        mean64: u64,
        mean: u64,
        inv_std: u64,
        rows: usize,
        cols: usize,
        what: usize,
    ) -> Result<usize> {
        let rows_per_chunk = rows.div_ceil(MAX_CHUNKS).max(LANES);
        let chunks = rows.div_ceil(rows_per_chunk);
        let config = LaunchConfig {
            grid_dim: (chunks as u32, cols.div_ceil(32) as u32, 1),
            block_dim: (32, LANES as u32, 1),
            shared_mem_bytes: 0,
        };
        let args = [
            Arg(x),
            Arg(dy),
            Arg(mean64),
            Arg(mean),
            Arg(inv_std),
            rows.into(),
            cols.into(),
            rows_per_chunk.into(),
            what.into(),
            Arg(self.gpu.ptr(&self.partials)),
        ];
        self.gpu.launch("column_partials", config, &args)?;
        Ok(chunks)
    }

    /// Enqueues the SGD update of every trainable parameter and counts it (engine::sgd::Sgd::step).
    pub fn encode_sgd(&self) -> Result<()> {
        let len = self.param_count();
        let gpu = &self.gpu;
        let args = [
            Arg(gpu.ptr(&self.params)),
            Arg(gpu.ptr(&self.grads)),
            Arg(gpu.ptr(&self.velocity)),
            len.into(),
            self.sgd.lr.into(),
            self.sgd.decay.into(),
            Arg(self.sgd.anneal_updates),
            self.sgd.momentum.into(),
            self.sgd.nesterov.into(),
            self.sgd.weight_decay.into(),
            Arg(gpu.ptr(&self.state)),
        ];
        gpu.launch("sgd_step", elementwise(len), &args)?;
        gpu.launch("count_update", one_block(), &[Arg(gpu.ptr(&self.state))])
    }

    /// Enqueues the end of a pass of `n` samples: the cursor moves on, a training pass counts.
    pub fn encode_end_pass(&self, n: usize, mode: Mode) -> Result<()> {
        let args = [
            Arg(self.gpu.ptr(&self.state)),
            n.into(),
            (mode == Mode::Train).into(),
        ];
        self.gpu.launch("end_pass", one_block(), &args)
    }

    /// Sets the augmentation key the next passes' gathers draw from.
    pub fn encode_set_augment_key(&self, key: u64) -> Result<()> {
        self.gpu.launch(
            "set_augment_key",
            one_block(),
            &[Arg(self.gpu.ptr(&self.state)), Arg(key)],
        )
    }

    pub fn encode_reset_cursor(&self) -> Result<()> {
        self.gpu.launch(
            "reset_cursor",
            one_block(),
            &[Arg(self.gpu.ptr(&self.state))],
        )
    }

    /// Each layer's GPU time over `rounds` uncaptured passes of the batch of `n` in the input
    /// buffer, from CUDA events around its kernels: training forward and backward, and the
    /// evaluation forward pass; the loss and the SGD update as two more rows. Training passes
    /// here update the BN moving statistics and, through SGD, the weights: for benchmarks only.
    pub fn time_layers(&self, n: usize, rounds: usize) -> Result<Vec<LayerTimes>> {
        let gpu = &self.gpu;
        let metrics = gpu.zeros::<f64>(3)?;
        let layers = self.placed.len();
        let mut times = vec![LayerTimes::default(); layers + 2];
        let (loss_row, sgd_row) = (layers, layers + 1);
        let timed = |encode: &dyn Fn() -> Result<()>| -> Result<_> {
            let start = gpu.timing_event()?;
            encode()?;
            Ok((start, gpu.timing_event()?))
        };
        for _ in 0..rounds {
            let mut events = Vec::new();
            for (i, layer) in self.placed.iter().enumerate() {
                let pair = timed(&|| self.encode_layer_forward(i, layer, n, Mode::Train))?;
                events.push((i, Phase::Forward, pair));
            }
            let pair = timed(&|| self.encode_loss(n, Mode::Train, None, gpu.ptr(&metrics)))?;
            events.push((loss_row, Phase::Forward, pair));
            for i in (0..layers - 1).rev() {
                let pair = timed(&|| self.encode_layer_backward(i, n))?;
                events.push((i, Phase::Backward, pair));
            }
            events.push((sgd_row, Phase::Forward, timed(&|| self.encode_sgd())?));
            for (i, layer) in self.placed.iter().enumerate() {
                let pair = timed(&|| self.encode_layer_forward(i, layer, n, Mode::Eval))?;
                events.push((i, Phase::Eval, pair));
            }
            gpu.synchronize()?;
            for (row, phase, (start, end)) in events {
                let ms = Gpu::elapsed_ms(&start, &end)?;
                let t = &mut times[row];
                *match phase {
                    Phase::Forward => &mut t.forward_ms,
                    Phase::Backward => &mut t.backward_ms,
                    Phase::Eval => &mut t.eval_ms,
                } += ms / rounds as f64;
            }
        }
        Ok(times)
    }

    /// One whole training pass (train::fit's loop body): gather, forward, loss, backward, update.
    pub fn encode_train_pass(&self, source: BatchSource, n: usize, metrics: u64) -> Result<()> {
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
        predictions: u64,
        metrics: u64,
    ) -> Result<()> {
        self.encode_gather(source, n)?;
        self.encode_forward(n, Mode::Eval)?;
        self.encode_loss(n, Mode::Eval, Some(predictions), metrics)?;
        self.encode_end_pass(n, Mode::Eval)
    }
}

/// Convolutions, on im2col + cuBLAS or on cuDNN: the same function either way (forward: the
/// bias, then the kernel's products added; backward: the kernel, bias and input gradients).
impl CudaNetwork {
    /// Layer `i`'s shape for a batch of `n`, with its operands' addresses.
    fn conv_operands(&self, i: usize, n: usize) -> (ConvShape, ConvOperands) {
        let layer = &self.placed[i];
        let (LayerSpec::Conv2d { filters, kernel }, Shape::Image { h, w, c }) =
            (&layer.spec, layer.input)
        else {
            unreachable!("layer {i} is a convolution of an image")
        };
        let Scratch::Conv {
            cols,
            krsc,
            krsc_grad,
        } = &self.scratch[i]
        else {
            unreachable!("a convolution's scratch")
        };
        let gpu = &self.gpu;
        let (weights, grads) = self.weights(i);
        let operands = ConvOperands {
            x: gpu.ptr(&self.acts[i]),
            y: gpu.ptr(&self.acts[i + 1]),
            dy: gpu.ptr(&self.grad_acts[i + 1]),
            dx: (i > 0).then(|| gpu.ptr(&self.grad_acts[i])),
            weights,
            grads,
            cols: gpu.ptr(cols),
            krsc: gpu.ptr(krsc),
            krsc_grad: gpu.ptr(krsc_grad),
        };
        let shape = ConvShape {
            n,
            h,
            w,
            c,
            filters: *filters,
            kernel: *kernel,
        };
        (shape, operands)
    }

    fn encode_conv_forward(&self, i: usize, n: usize, plan: Option<&ConvPlan>) -> Result<()> {
        let (s, o) = self.conv_operands(i, n);
        let (rows, patch) = (n * s.h * s.w, s.kernel * s.kernel * s.c);
        let gpu = &self.gpu;
        match (plan, &self.cudnn) {
            (Some(plan), Some((cudnn, workspace))) => {
                let algo = plan.forward.expect("a chosen plan has its algorithms");
                let bias = o.weights + (patch * s.filters * 4) as u64;
                gpu.launch(
                    "transpose",
                    elementwise(patch * s.filters),
                    &[Arg(o.weights), Arg(o.krsc), patch.into(), s.filters.into()],
                )?;
                gpu.launch(
                    "fill_rows",
                    elementwise(rows * s.filters),
                    &[Arg(o.y), Arg(bias), rows.into(), s.filters.into()],
                )?;
                // SAFETY: the plan describes this layer at this batch size; the buffers are
                // the network's, sized for its capacity.
                unsafe { plan.forward(cudnn, algo, (o.x, o.krsc, o.y), gpu.ptr(workspace), 1.0) }
            }
            _ => {
                let geometry = [
                    n.into(),
                    s.h.into(),
                    s.w.into(),
                    s.c.into(),
                    s.kernel.into(),
                ];
                gpu.launch(
                    "im2col",
                    elementwise(rows * patch),
                    &[&[Arg(o.x), Arg(o.cols)][..], &geometry].concat(),
                )?;
                self.encode_affine(o.cols, o.weights, o.y, rows, patch, s.filters)
            }
        }
    }

    /// Backward after a forward on the same path (cuDNN's reads the KRSC kernel it wrote).
    fn encode_conv_backward(&self, i: usize, n: usize, plan: Option<&ConvPlan>) -> Result<()> {
        let (s, o) = self.conv_operands(i, n);
        let (rows, patch) = (n * s.h * s.w, s.kernel * s.kernel * s.c);
        let gpu = &self.gpu;
        match (plan, &self.cudnn) {
            (Some(plan), Some((cudnn, workspace))) => {
                let workspace = gpu.ptr(workspace);
                let filter = plan
                    .backward_filter
                    .expect("a chosen plan has its algorithms");
                // SAFETY: as in encode_conv_forward.
                unsafe {
                    plan.backward_filter(cudnn, filter, (o.x, o.dy, o.krsc_grad), workspace)?
                };
                gpu.launch(
                    "transpose",
                    elementwise(patch * s.filters),
                    &[
                        Arg(o.krsc_grad),
                        Arg(o.grads),
                        s.filters.into(),
                        patch.into(),
                    ],
                )?;
                self.encode_bias_grad(o.dy, o.grads, rows, patch, s.filters)?;
                if let Some(dx) = o.dx {
                    let data = plan
                        .backward_data
                        .expect("a chosen plan has its algorithms");
                    // SAFETY: as above.
                    unsafe { plan.backward_data(cudnn, data, (o.krsc, o.dy, dx), workspace)? };
                }
                Ok(())
            }
            _ => {
                self.encode_weight_grads(o.cols, o.dy, o.grads, rows, patch, s.filters)?;
                if let Some(dx) = o.dx {
                    gpu.matmul(
                        o.cols,
                        o.dy,
                        Layout::AsIs,
                        o.weights,
                        Layout::Transposed,
                        rows,
                        s.filters,
                        patch,
                        false,
                    )?;
                    let args = [
                        Arg(o.cols),
                        Arg(dx),
                        n.into(),
                        s.h.into(),
                        s.w.into(),
                        s.c.into(),
                        s.kernel.into(),
                    ];
                    gpu.launch("col2im", elementwise(n * s.h * s.w * s.c), &args)?;
                }
                Ok(())
            }
        }
    }

    /// Chooses every convolution's path for batches of each size in `sizes`, by timing them
    /// here, on this card: cuDNN's fastest deterministic algorithms whose results agree with
    /// im2col's, against im2col itself (`MINIVGG_CUDA_CONV` can force either). Call it before
    /// capturing a graph (it synchronizes, and it overwrites activations and gradients); a
    /// size it has not seen runs on im2col.
    pub fn prepare(&mut self, sizes: &[usize]) -> Result<()> {
        if self.cudnn.is_none() {
            return Ok(());
        }
        let convs: Vec<usize> = (0..self.placed.len())
            .filter(|&i| matches!(self.placed[i].spec, LayerSpec::Conv2d { .. }))
            .collect();
        for &n in sizes {
            if n == 0 || n > self.capacity {
                continue;
            }
            for &i in &convs {
                if self.conv_choices.iter().any(|(at, _)| *at == (i, n)) {
                    continue;
                }
                // cuDNN failing here costs speed, not the run: im2col stays.
                let (plan, why) = self
                    .choose_conv(i, n)
                    .unwrap_or_else(|e| (None, format!("im2col (cuDNN failed: {e:#})")));
                let line = format!("{} at batch {n}: {why}", self.placed[i].name);
                self.conv_choices.push(((i, n), line));
                if let Some(plan) = plan {
                    self.conv_plans.insert((i, n), plan);
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

    /// Layer `i` at batch size `n`: cuDNN's plan if it is to run there, and why in words.
    fn choose_conv(&mut self, i: usize, n: usize) -> Result<(Option<ConvPlan>, String)> {
        let (s, o) = self.conv_operands(i, n);
        let plan = match ConvPlan::new(s, self.precision) {
            Ok(plan) => plan,
            Err(e) => return Ok((None, format!("im2col ({e:#})"))),
        };
        // Random operands, so agreement means something; the weights are the network's.
        let mut rng = rand::rng();
        let mut random = |len: usize| -> Vec<f32> {
            use rand::Rng;
            (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
        };
        let (in_len, out_len) = (n * s.h * s.w * s.c, n * s.h * s.w * s.filters);
        let (x, dy) = (random(in_len), random(out_len));
        self.gpu.upload(&x, &mut self.acts[i])?;
        self.gpu.upload(&dy, &mut self.grad_acts[i + 1])?;
        let kernel_len = s.kernel * s.kernel * s.c * s.filters;
        let tolerance = parity_tolerance(self.precision);

        // im2col: the reference values and times. Its backward overwrites the patches with
        // their gradients, so it is timed after a forward pass each time, as in a real step.
        let im2col_fwd = self.time_ms(|| self.encode_conv_forward(i, n, None))?;
        let y_ref = self.download_at(o.y, out_len)?;
        let im2col_step = self.time_ms(|| {
            self.encode_conv_forward(i, n, None)?;
            self.encode_conv_backward(i, n, None)
        })?;
        let im2col_bwd = (im2col_step - im2col_fwd).max(0.0);
        let grad_ref = self.download_at(o.grads, kernel_len)?;
        let dx_ref = o.dx.map(|dx| self.download_at(dx, in_len)).transpose()?;

        let Some((cudnn, _)) = &self.cudnn else {
            unreachable!("prepare returns early without cuDNN")
        };
        let mut plan = plan;
        // Each candidate's time where it runs and agrees with im2col's result, else None.
        let agreeing = |ms: Result<f64>, want: &[f32], got: u64| -> Result<Option<f64>> {
            let Ok(ms) = ms else { return Ok(None) };
            let error = relative_error(want, &self.download_at(got, want.len())?);
            Ok((error <= tolerance).then_some(ms))
        };
        let candidates = plan.forward_candidates(cudnn)?;
        let best_fwd = fastest(candidates, |candidate| {
            plan.forward = Some(candidate);
            let ms = self.time_ms(|| self.encode_conv_forward(i, n, Some(&plan)));
            agreeing(ms, &y_ref, o.y)
        })?;
        plan.forward = best_fwd.map(|(a, _)| a);
        let (mut best_filter, mut best_data) = (None, None);
        if plan.forward.is_some() {
            // Backward reads the KRSC kernel the forward pass wrote.
            self.encode_conv_forward(i, n, Some(&plan))?;
            let filters = plan.backward_filter_candidates(cudnn)?;
            let datas = match o.dx {
                Some(_) => plan.backward_data_candidates(cudnn)?,
                None => Vec::new(),
            };
            if o.dx.is_some() && datas.is_empty() {
                return Ok((
                    None,
                    "im2col: cuDNN offers no usable input-gradient algorithm".into(),
                ));
            }
            // Time each filter algorithm with the first data one (or none), then each data
            // algorithm with the best filter one: a backward pass needs both.
            plan.backward_data = datas.first().copied();
            best_filter = fastest(filters, |candidate| {
                plan.backward_filter = Some(candidate);
                let ms = self.time_ms(|| self.encode_conv_backward(i, n, Some(&plan)));
                agreeing(ms, &grad_ref, o.grads)
            })?;
            plan.backward_filter = best_filter.map(|(a, _)| a);
            if let (Some(_), Some(dx), Some(dx_ref)) = (plan.backward_filter, o.dx, &dx_ref) {
                best_data = fastest(datas, |candidate| {
                    plan.backward_data = Some(candidate);
                    let ms = self.time_ms(|| self.encode_conv_backward(i, n, Some(&plan)));
                    agreeing(ms, dx_ref, dx)
                })?;
                plan.backward_data = best_data.map(|(a, _)| a);
            }
        }
        let complete = plan.forward.is_some()
            && plan.backward_filter.is_some()
            && (o.dx.is_none() || plan.backward_data.is_some());
        if !complete {
            return Ok((
                None,
                format!(
                    "im2col ({:.3} ms fwd, {:.3} ms bwd): no deterministic cuDNN algorithm agreed \
                     with it within {tolerance:e} for every pass",
                    im2col_fwd, im2col_bwd
                ),
            ));
        }
        let cudnn_bwd = best_filter.map_or(0.0, |(_, ms)| ms);
        // The data gradient's timing ran with the best filter algorithm: the whole pass.
        let cudnn_bwd = best_data.map_or(cudnn_bwd, |(_, ms)| ms);
        let cudnn_fwd = best_fwd.map_or(0.0, |(_, ms)| ms);
        let faster = cudnn_fwd + cudnn_bwd < im2col_fwd + im2col_bwd;
        let times = format!(
            "cuDNN {cudnn_fwd:.3} + {cudnn_bwd:.3} ms against im2col {im2col_fwd:.3} + \
             {im2col_bwd:.3} ms (fwd + bwd)"
        );
        let algos = format!(
            "fwd {:?}, bwd filter {:?}, bwd data {:?}",
            plan.forward, plan.backward_filter, plan.backward_data
        );
        Ok(match (self.conv_path, faster) {
            (ConvPath::Cudnn, _) | (ConvPath::Auto, true) => {
                (Some(plan), format!("cudnn ({algos}): {times}"))
            }
            _ => (None, format!("im2col: {times}")),
        })
    }

    /// Mean milliseconds of `encode`'s work over a few runs after one warm-up, from CUDA
    /// events (uncaptured).
    fn time_ms(&self, encode: impl Fn() -> Result<()>) -> Result<f64> {
        const RUNS: usize = 5;
        encode()?;
        let start = self.gpu.timing_event()?;
        for _ in 0..RUNS {
            encode()?;
        }
        let end = self.gpu.timing_event()?;
        self.gpu.synchronize()?;
        Ok(Gpu::elapsed_ms(&start, &end)? / RUNS as f64)
    }

    /// `len` floats at a device address inside one of the network's buffers.
    fn download_at(&self, ptr: u64, len: usize) -> Result<Vec<f32>> {
        let mut host = vec![0f32; len];
        // SAFETY: `ptr` addresses at least `len` floats of a live buffer of this network.
        unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut host, ptr) }
            .map_err(|e| super::unusable(format!("copy from the GPU failed: {e}")))?;
        Ok(host)
    }
}

/// The fastest of `candidates`, with its time, among those `timed` gives a time for (the
/// ones that run and agree).
fn fastest<A: Copy>(
    candidates: Vec<A>,
    mut timed: impl FnMut(A) -> Result<Option<f64>>,
) -> Result<Option<(A, f64)>> {
    let mut best: Option<(A, f64)> = None;
    for candidate in candidates {
        if let Some(ms) = timed(candidate)? {
            if best.is_none_or(|(_, fastest)| ms < fastest) {
                best = Some((candidate, ms));
            }
        }
    }
    Ok(best)
}

/// The device addresses one convolution reads and writes.
struct ConvOperands {
    x: u64,
    y: u64,
    dy: u64,
    /// None for the first layer, whose input gradient is never needed.
    dx: Option<u64>,
    weights: u64,
    grads: u64,
    cols: u64,
    krsc: u64,
    krsc_grad: u64,
}
