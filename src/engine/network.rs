//! A model made runnable: every buffer allocated once for a batch capacity, parameters,
//! gradients and moving statistics each in one flat vector (the optimizer is one loop, a
//! checkpoint is a few slices), and forward / backward walking the layer list.

use super::cpu::simd::Isa;
use super::layers::elementwise::dropout_key;
use super::layers::softmax::{softmax_cross_entropy, BatchMetrics};
use super::layers::{is_fused, last_fused_with, Backward, Forward, Layer, Mode};
use super::precision::Precision;
use crate::counter_hash::mix64;
use crate::model::spec::{LayerSpec, ParamKind, PlacedLayer};
use crate::model::ModelSpec;
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

/// Where one named parameter tensor lives.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Keras' full weight name, e.g. `conv2d_1/kernel`.
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
    /// Offset into [`Network::params`] (trainable) or [`Network::moving`].
    pub offset: usize,
}

impl TensorInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where one layer's tensors sit in the flat vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRanges {
    /// Into [`Network::params`] and [`Network::grads`].
    pub weights: std::ops::Range<usize>,
    /// Into [`Network::moving`].
    pub moving: std::ops::Range<usize>,
}

pub struct Network {
    pub spec: ModelSpec,
    /// The instruction set and precision its CPU kernels run.
    isa: Isa,
    /// The precision asked for: the CPU kernels' own, or tf32 for the GPU (`isa` then fp32).
    precision: Precision,
    placed: Vec<PlacedLayer>,
    layers: Vec<Layer>,
    /// Index into `acts` (and `grad_acts`) of each layer's input: its own, i, except after
    /// layers that run inside a neighbour, whose first input it reads (a BatchNorm reads the
    /// input of the ReLU it runs; the layer after a BN that runs the MaxPool and Dropout after
    /// it reads that BN's output, which is theirs).
    inputs: Vec<usize>,
    /// The values per sample of each layer's output: that of the last layer it runs.
    output_lens: Vec<usize>,
    /// The layer whose dropout mask each layer draws: its own, or that of the Dropout it runs
    /// (so the mask is the one that Dropout would draw).
    dropout_layers: Vec<usize>,
    /// The same in evaluation, where a Dropout (or a first-layer Flatten) is skipped (it passes
    /// its input on unchanged): the layer after one reads what it would have copied.
    eval_inputs: Vec<usize>,
    /// The mode of the last forward pass (which buffers it wrote).
    last_mode: Mode,
    capacity: usize,
    /// Trainable parameters, their gradients, and BN moving statistics: flat, in layer order.
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    pub moving: Vec<f32>,
    tensors: Vec<TensorInfo>,
    ranges: Vec<LayerRanges>,
    /// `acts[0]` is the input batch, `acts[i + 1]` the output of layer i.
    acts: Vec<Vec<f32>>,
    /// `grad_acts[i]` is the loss gradient with respect to `acts[i]` (empty for the input).
    grad_acts: Vec<Vec<f32>>,
    /// Dropout masks are a function of (seed, training step, layer): see [`dropout_key`].
    pub dropout_seed: u64,
    /// Training passes done so far.
    pub train_steps: u64,
    /// Per layer (forward, backward) time, accumulated while profiling is on (`bench`).
    profile: Option<Vec<(Duration, Duration)>>,
}

impl Network {
    /// Builds the network for batches of up to `capacity` samples, with Keras' initial values:
    /// Glorot-uniform kernels, zero biases, BN gamma 1, beta 0, moving mean 0, variance 1.
    /// Its kernels run in fp32 on the CPU path `MINIVGG_CPU` names, else the best one.
    pub fn new(spec: &ModelSpec, capacity: usize, seed: u64) -> Result<Network> {
        Self::with_precision(spec, capacity, seed, Precision::Fp32)
    }

    /// As [`Network::new`], the products in `precision` (bf16 needs AVX512_BF16; tf32 is the
    /// GPU's, and the CPU kernels then run fp32).
    pub fn with_precision(
        spec: &ModelSpec,
        capacity: usize,
        seed: u64,
        precision: Precision,
    ) -> Result<Network> {
        let isa = Isa::from_env(precision.on_cpu())?;
        let mut net = Self::with_isa(spec, capacity, seed, isa)?;
        net.precision = precision;
        Ok(net)
    }

    /// As [`Network::new`], on the kernels of `isa` (tests compare the paths).
    pub fn with_isa(spec: &ModelSpec, capacity: usize, seed: u64, isa: Isa) -> Result<Network> {
        if capacity == 0 {
            bail!("batch size must be at least 1");
        }
        let placed = spec.place()?;
        let mut tensors = Vec::new();
        let mut ranges = Vec::new();
        let (mut trainable, mut moving) = (0, 0);
        for layer in &placed {
            let (t0, m0) = (trainable, moving);
            for p in &layer.params {
                let offset = match p.kind {
                    ParamKind::Trainable => &mut trainable,
                    ParamKind::Moving => &mut moving,
                };
                tensors.push(TensorInfo {
                    name: format!("{}/{}", layer.name, p.name),
                    shape: p.shape.clone(),
                    kind: p.kind,
                    offset: *offset,
                });
                *offset += p.len();
            }
            ranges.push(LayerRanges {
                weights: t0..trainable,
                moving: m0..moving,
            });
        }
        let skipped: Vec<bool> = (0..placed.len()).map(|i| is_fused(&placed, i)).collect();
        let layers: Vec<Layer> = (0..placed.len())
            .map(|i| Layer::in_network(isa, &placed, i, capacity))
            .collect();
        let inputs: Vec<usize> = (0..placed.len())
            .map(|i| {
                (0..=i)
                    .rev()
                    .take_while(|&j| j == i || skipped[j])
                    .last()
                    .unwrap_or(i)
            })
            .collect();
        let output_lens: Vec<usize> = (0..placed.len())
            .map(|i| placed[last_fused_with(&placed, i)].output.len())
            .collect();
        let dropout_layers = (0..placed.len())
            .map(|i| {
                let runs = i + 1..=last_fused_with(&placed, i);
                let dropout = |&j: &usize| matches!(placed[j].spec, LayerSpec::Dropout { .. });
                runs.into_iter().find(dropout).unwrap_or(i)
            })
            .collect();
        // holds[b]: the buffer that holds, in evaluation, what acts[b] would.
        let mut holds: Vec<usize> = (0..=placed.len()).collect();
        let eval_inputs = (0..placed.len())
            .map(|i| {
                let input = holds[inputs[i]];
                if passes_input_on_in_eval(&layers[i]) {
                    holds[i + 1] = input;
                }
                input
            })
            .collect();
        let mut acts = vec![vec![0.0; capacity * spec.input.len()]];
        let mut grad_acts = vec![Vec::new()];
        for (i, &output_len) in output_lens.iter().enumerate() {
            // Nobody reads the output of a layer that runs in a neighbour, nor its gradient.
            let len = if skipped[i] { 0 } else { capacity * output_len };
            acts.push(vec![0.0; len]);
            // The first layer's input gradient is never needed, nor the softmax output's.
            let needs_grad = i + 1 < placed.len();
            grad_acts.push(if needs_grad {
                vec![0.0; len]
            } else {
                Vec::new()
            });
        }
        let mut net = Network {
            spec: spec.clone(),
            isa,
            precision: isa.precision(),
            layers,
            inputs,
            output_lens,
            dropout_layers,
            eval_inputs,
            last_mode: Mode::Train,
            placed,
            capacity,
            params: vec![0.0; trainable],
            grads: vec![0.0; trainable],
            moving: vec![0.0; moving],
            tensors,
            ranges,
            acts,
            grad_acts,
            dropout_seed: mix64(seed ^ 0xD50B_D50B),
            train_steps: 0,
            profile: None,
        };
        net.initialize(seed);
        Ok(net)
    }

    /// The same network — weights, BN statistics, dropout state and precision — for batches
    /// of up to `capacity` samples.
    pub fn with_capacity(&self, capacity: usize) -> Result<Network> {
        let mut net = Self::with_isa(&self.spec, capacity, 0, self.isa)?;
        net.precision = self.precision;
        net.params.copy_from_slice(&self.params);
        net.moving.copy_from_slice(&self.moving);
        net.dropout_seed = self.dropout_seed;
        net.train_steps = self.train_steps;
        Ok(net)
    }

    fn initialize(&mut self, seed: u64) {
        // Stream 0 of the seed; shuffling reads stream 1 (data::batches::epoch_order).
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (layer, tensors) in self.placed.iter().zip(self.tensors_by_layer()) {
            for t in tensors {
                let (store, range) = match t.kind {
                    ParamKind::Trainable => (&mut self.params, t.offset..t.offset + t.len()),
                    ParamKind::Moving => (&mut self.moving, t.offset..t.offset + t.len()),
                };
                let values = &mut store[range];
                match t.name.rsplit('/').next().unwrap_or_default() {
                    "kernel" => {
                        let (fan_in, fan_out) = fans(&layer.spec, &t.shape);
                        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
                        values
                            .iter_mut()
                            .for_each(|v| *v = rng.random_range(-limit..limit));
                    }
                    "gamma" | "moving_variance" => values.fill(1.0),
                    _ => values.fill(0.0),
                }
            }
        }
    }

    /// The tensors of each layer, in layer order (cloned so callers may mutate the network).
    fn tensors_by_layer(&self) -> Vec<Vec<TensorInfo>> {
        let mut rest = self.tensors.as_slice();
        self.placed
            .iter()
            .map(|l| {
                let (mine, others) = rest.split_at(l.params.len());
                rest = others;
                mine.to_vec()
            })
            .collect()
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The values of tensor `t` (one of [`Network::tensors`]) in `params` or `moving`.
    pub fn values(&self, t: &TensorInfo) -> &[f32] {
        let store = match t.kind {
            ParamKind::Trainable => &self.params,
            ParamKind::Moving => &self.moving,
        };
        &store[t.offset..t.offset + t.len()]
    }

    /// [`Network::values`], to write them.
    pub fn values_mut(&mut self, t: &TensorInfo) -> &mut [f32] {
        let store = match t.kind {
            ParamKind::Trainable => &mut self.params,
            ParamKind::Moving => &mut self.moving,
        };
        &mut store[t.offset..t.offset + t.len()]
    }

    pub fn layer_ranges(&self) -> &[LayerRanges] {
        &self.ranges
    }

    pub fn placed(&self) -> &[PlacedLayer] {
        &self.placed
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The precision the network was built in (see [`Network::with_precision`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn classes(&self) -> usize {
        self.spec.classes
    }

    /// The input buffer for a batch of `n` samples (NHWC f32), to be filled before a pass.
    pub fn input_mut(&mut self, n: usize) -> &mut [f32] {
        let len = n * self.spec.input.len();
        &mut self.acts[0][..len]
    }

    /// Class probabilities of the last forward pass, `[n × classes]`.
    pub fn probabilities(&self, n: usize) -> &[f32] {
        &self.acts[self.layers.len()][..n * self.classes()]
    }

    pub fn forward(&mut self, n: usize, mode: Mode) {
        assert!(
            n >= 1 && n <= self.capacity,
            "batch of {n} outside 1..={}",
            self.capacity
        );
        self.last_mode = mode;
        let mut i = 0;
        while i < self.layers.len() {
            let started = Instant::now();
            let input = match mode {
                Mode::Train => self.inputs[i],
                Mode::Eval => self.eval_inputs[i],
            };
            let done = if mode == Mode::Eval && self.conv_relu_batchnorm_in_one_pass(i) {
                self.forward_conv_relu_batchnorm(i, input, n);
                3
            } else if mode == Mode::Eval && passes_input_on_in_eval(&self.layers[i]) {
                1
            } else {
                if !self.layers[i].is_fused() {
                    self.forward_layer(i, input, n, mode);
                }
                1
            };
            if let Some(profile) = &mut self.profile {
                profile[i].0 += started.elapsed();
            }
            i += done;
        }
    }

    /// Layer i's forward pass, reading `acts[input]`.
    fn forward_layer(&mut self, i: usize, input: usize, n: usize, mode: Mode) {
        let LayerRanges { weights, moving } = self.ranges[i].clone();
        let key = dropout_key(self.dropout_seed, self.train_steps, self.dropout_layers[i]);
        let (before, after) = self.acts.split_at_mut(i + 1);
        self.layers[i].forward(Forward {
            weights: &self.params[weights],
            moving: &mut self.moving[moving],
            x: &before[input][..n * self.placed[i].input.len()],
            y: &mut after[0][..n * self.output_lens[i]],
            n,
            mode,
            dropout_key: key,
        });
    }

    /// Whether layers i, i + 1 and i + 2 are a convolution, a ReLU and the BatchNorm that
    /// runs it (MiniVGGNet's CONV → RELU → BN), which evaluation runs in one pass: where the
    /// BN runs a MaxPool too, only if the convolution can pool as it stores (Winograd's tiles
    /// hold whole 2×2 windows).
    fn conv_relu_batchnorm_in_one_pass(&self, i: usize) -> bool {
        match &self.layers[i..] {
            [Layer::Conv2d(conv), Layer::FusedIntoNext, batchnorm @ Layer::BatchNorm(_), ..] => {
                !batchnorm.is_batchnorm_with_pool() || conv.pools_as_it_stores()
            }
            _ => false,
        }
    }

    /// In evaluation, CONV → RELU → BN in one pass: BN's moving statistics make it
    /// `max(x, 0)·scale + shift` per channel, which the convolution applies as it stores its
    /// outputs, straight into BN's output; where the BN runs the MaxPool after it, the
    /// convolution pools too. Bit for bit the layers' result, without writing and reading
    /// back the convolution's output.
    fn forward_conv_relu_batchnorm(&mut self, i: usize, input: usize, n: usize) {
        let (head, tail) = self.layers.split_at_mut(i + 1);
        let (Layer::Conv2d(conv), Layer::BatchNorm(batchnorm)) = (&mut head[i], &mut tail[1])
        else {
            unreachable!("conv_relu_batchnorm_in_one_pass checked the layers")
        };
        let pool = batchnorm.runs_pool();
        let norm = self.ranges[i + 2].clone();
        let relu_affine =
            batchnorm.eval_relu_affine(&self.params[norm.weights], &self.moving[norm.moving]);
        let LayerRanges { weights, moving } = self.ranges[i].clone();
        let (before, after) = self.acts.split_at_mut(i + 1);
        conv.forward_then_relu_affine(
            Forward {
                weights: &self.params[weights],
                moving: &mut self.moving[moving],
                x: &before[input][..n * self.placed[i].input.len()],
                y: &mut after[2][..n * self.output_lens[i + 2]],
                n,
                mode: Mode::Eval,
                dropout_key: 0,
            },
            Some(relu_affine),
            pool,
        );
    }

    /// Loss and accuracy of the last forward pass against `labels` (one per sample).
    pub fn metrics(&self, labels: &[u8]) -> BatchMetrics {
        let last = self.layers.len() - 1;
        let logits = match self.last_mode {
            Mode::Train => &self.acts[self.inputs[last]],
            Mode::Eval => &self.acts[self.eval_inputs[last]],
        };
        let logits = &logits[..labels.len() * self.classes()];
        softmax_cross_entropy(logits, labels, self.classes(), None)
    }

    /// One training pass over a batch: forward in training mode, the loss, and backward,
    /// leaving the parameter gradients in [`Network::grads`].
    pub fn train_batch(&mut self, labels: &[u8]) -> BatchMetrics {
        let n = labels.len();
        self.forward(n, Mode::Train);
        let last = self.layers.len() - 1;
        let classes = self.classes();
        // The softmax's input: the logits, wherever the layers before it stored them.
        let logits = self.inputs[last];
        let metrics = softmax_cross_entropy(
            &self.acts[logits][..n * classes],
            labels,
            classes,
            Some(&mut self.grad_acts[logits][..n * classes]),
        );
        for i in (0..last).rev() {
            if self.layers[i].is_fused() {
                continue;
            }
            let started = Instant::now();
            let (weights, input) = (self.ranges[i].weights.clone(), self.inputs[i]);
            let in_len = n * self.placed[i].input.len();
            let (grads_before, grads_after) = self.grad_acts.split_at_mut(i + 1);
            let dx = (input > 0).then(|| &mut grads_before[input][..in_len]);
            let out_len = n * self.output_lens[i];
            self.layers[i].backward(Backward {
                weights: &self.params[weights.clone()],
                grads: &mut self.grads[weights],
                x: &self.acts[input][..in_len],
                y: &self.acts[i + 1][..out_len],
                dy: &grads_after[0][..out_len],
                dx,
                n,
            });
            if let Some(profile) = &mut self.profile {
                profile[i].1 += started.elapsed();
            }
        }
        self.train_steps += 1;
        metrics
    }

    /// Starts (or restarts) accumulating per-layer times.
    pub fn start_profiling(&mut self) {
        self.profile = Some(vec![Default::default(); self.layers.len()]);
    }

    /// Per layer (forward, backward) time accumulated since [`Network::start_profiling`].
    pub fn profile(&self) -> Option<&[(Duration, Duration)]> {
        self.profile.as_deref()
    }
}

/// One layer's mean milliseconds per pass, as `bench` reports them (the CPU's from
/// [`Network::profile`], the GPU's from CUDA events).
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerTimes {
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub eval_ms: f64,
}

/// Whether `layer` passes its input on unchanged in evaluation (a Flatten after another layer
/// runs inside it; this is one that comes first).
fn passes_input_on_in_eval(layer: &Layer) -> bool {
    matches!(layer, Layer::Dropout(_) | Layer::Flatten)
}

/// Glorot's fan-in and fan-out: a conv kernel `[k, k, in, out]` counts its receptive field.
fn fans(spec: &LayerSpec, shape: &[usize]) -> (usize, usize) {
    match (spec, shape) {
        (LayerSpec::Conv2d { .. }, [kh, kw, cin, cout]) => (kh * kw * cin, kh * kw * cout),
        (_, [fan_in, fan_out]) => (*fan_in, *fan_out),
        _ => unreachable!("kernels are 2-D or 4-D"),
    }
}
