//! `minivgg bench`: where the time of a training step goes, layer by layer, on synthetic data
//! (timing does not depend on pixel values, so no data set is needed).

use crate::data::cifar10::TRAIN_IMAGES;
use crate::engine::device::Device;
use crate::engine::layers::{fused_into_next, is_fused};
use crate::engine::network::LayerTimes;
use crate::engine::sgd::{Sgd, SgdConfig};
use crate::engine::{Mode, Network, Precision};
use crate::model::spec::{LayerSpec, PlacedLayer};
use crate::model::ModelSpec;
use anyhow::Result;
use rand::Rng;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// Multiply-adds ×2 of a layer's forward pass and of its backward pass, for `n` samples.
fn layer_flops(layer: &PlacedLayer, n: usize, first: bool) -> (f64, f64) {
    let forward = match layer.spec {
        LayerSpec::Conv2d { filters, kernel } => {
            2.0 * (n * layer.output.len() / filters) as f64
                * (kernel * kernel * layer.input.channels() * filters) as f64
        }
        LayerSpec::Dense { units } => 2.0 * (n * layer.input.len() * units) as f64,
        _ => 0.0,
    };
    // Backward: the weight gradient, plus the input gradient except for the first layer.
    (forward, if first { forward } else { 2.0 * forward })
}

/// Each layer's (forward, backward) flops for `n` samples, and their total: one training step.
fn step_flops(placed: &[PlacedLayer], n: usize) -> (Vec<(f64, f64)>, f64) {
    let per_layer: Vec<(f64, f64)> = placed
        .iter()
        .enumerate()
        .map(|(i, layer)| layer_flops(layer, n, i == 0))
        .collect();
    let total = per_layer.iter().map(|(f, b)| f + b).sum();
    (per_layer, total)
}

#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The per-layer table both devices print (a `None` row runs inside a neighbour); returns
/// the training step's flops.
fn layer_table(
    out: &mut String,
    placed: &[PlacedLayer],
    batch: usize,
    rows: &[Option<LayerTimes>],
) -> Result<f64> {
    writeln!(
        out,
        "{:<26}{:>10}{:>10}{:>12}{:>12}{:>10}",
        "layer", "fwd ms", "bwd ms", "fwd GFLOP/s", "bwd GFLOP/s", "eval ms"
    )?;
    let (per_layer, total_flops) = step_flops(placed, batch);
    for (i, ((layer, (f_flops, b_flops)), row)) in
        placed.iter().zip(per_layer).zip(rows).enumerate()
    {
        let Some(row) = row else {
            let neighbour = if fused_into_next(placed, i) {
                "(in the next layer)"
            } else {
                "(in the previous layer)"
            };
            writeln!(out, "{:<26}{:>20}", layer.name, neighbour)?;
            continue;
        };
        let rate = |flops: f64, t: f64| {
            if flops > 0.0 {
                format!("{:.1}", flops / t / 1e6)
            } else {
                "-".into()
            }
        };
        writeln!(
            out,
            "{:<26}{:>10.3}{:>10.3}{:>12}{:>12}{:>10.3}",
            layer.name,
            row.forward_ms,
            row.backward_ms,
            rate(f_flops, row.forward_ms),
            rate(b_flops, row.backward_ms),
            row.eval_ms
        )?;
    }
    Ok(total_flops)
}

/// Times `steps` training steps (after warm-up) and as many inference batches on `device`,
/// the CPU's products in `precision`; returns the report.
pub fn bench(
    device: Device,
    spec: &ModelSpec,
    precision: Precision,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<String> {
    match device {
        Device::Cpu => bench_cpu(spec, precision, batch, steps, warmup),
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => bench_gpu(ordinal, spec, precision, batch, steps, warmup),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(crate::train::device::no_cuda()),
    }
}

/// The lines both devices print: step and inference times, throughput, and the epoch.
fn summary(
    out: &mut String,
    batch: usize,
    flops: f64,
    train: Stats,
    infer: Stats,
    epoch: &str,
) -> Result<()> {
    writeln!(
        out,
        "train step: median {:.3} ms (min {:.3}, max {:.3}), {:.0} images/s, {:.1} GFLOP/s",
        ms(train.median),
        ms(train.min),
        ms(train.max),
        batch as f64 / train.median.as_secs_f64(),
        flops / train.median.as_secs_f64() / 1e9
    )?;
    writeln!(
        out,
        "inference (eval mode): median {:.3} ms/batch (min {:.3}, max {:.3}), {:.0} images/s",
        ms(infer.median),
        ms(infer.min),
        ms(infer.max),
        batch as f64 / infer.median.as_secs_f64()
    )?;
    writeln!(out, "{epoch}")?;
    Ok(())
}

#[cfg(feature = "cuda")]
fn bench_gpu(
    ordinal: usize,
    spec: &ModelSpec,
    precision: Precision,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<String> {
    use crate::data::Split;
    use crate::engine::cuda::Gpu;
    use crate::train::gpu::{GpuTrainer, Pass};
    let gpu = Gpu::open(ordinal)?;
    let name = gpu.name.clone();
    let net = Network::with_precision(spec, batch, 1, precision)?;
    let sgd = Sgd::new(SgdConfig::TUTORIAL, net.params.len());
    let mut rng = rand::rng();
    let shape = spec.image_shape()?;
    let mut synthetic = |len: usize| {
        Split::new(
            shape,
            (0..len * shape.len()).map(|_| rng.random()).collect(),
            (0..len)
                .map(|_| rng.random_range(0..spec.classes.min(256)) as u8)
                .collect(),
        )
    };
    let (train, validation) = (
        synthetic(TRAIN_IMAGES),
        synthetic(crate::data::cifar10::RECORDS_PER_FILE),
    );
    let mut trainer = GpuTrainer::new(gpu, &net, &sgd, &train, &validation, false)?;
    let to_stats =
        |times: Vec<f64>| stats(times.into_iter().map(Duration::from_secs_f64).collect());
    let train_steps = to_stats(trainer.time_passes(Pass::Train, steps, warmup)?);
    let infer = to_stats(trainer.time_passes(Pass::Eval, steps, warmup)?);
    let order: Vec<usize> = (0..train.len()).collect();
    trainer.epoch(&order, None)?;
    let started = Instant::now();
    trainer.epoch(&order, None)?;
    let epoch = started.elapsed().as_secs_f64();
    let times = trainer.time_layers(steps)?;
    let mut out = String::new();
    writeln!(out, "{} on {name} (cuda:{ordinal}) — batch {batch}, {steps} steps after {warmup} warm-up, CUDA graphs, {precision} products", spec.name)?;
    writeln!(
        out,
        "convolutions ({}=auto|im2col|cudnn):",
        crate::engine::cuda::cudnn::CONV_VARIABLE
    )?;
    let choices = trainer.conv_choices();
    if choices.is_empty() {
        writeln!(out, "  all on im2col (forced, or libcudnn.so.9 not found)")?;
    }
    for line in choices {
        writeln!(out, "  {line}")?;
    }
    writeln!(
        out,
        "per layer: CUDA events around each layer's kernels, {steps} uncaptured passes"
    )?;
    let layers = net.placed().len();
    let rows: Vec<Option<LayerTimes>> = times[..layers].iter().copied().map(Some).collect();
    let flops = layer_table(&mut out, net.placed(), batch, &rows)?;
    let (loss, sgd_step) = (times[layers], times[layers + 1]);
    writeln!(
        out,
        "{:<26}{:>10.3}\n{:<26}{:>10.3}",
        "loss", loss.forward_ms, "sgd update", sgd_step.forward_ms
    )?;
    let uncaptured: f64 = times.iter().map(|t| t.forward_ms + t.backward_ms).sum();
    writeln!(
        out,
        "sum of the rows: {uncaptured:.3} ms per training step, uncaptured (the step below is the \
         same kernels replayed as one graph)"
    )?;
    let epoch_line =
        format!("epoch (measured, 50,000 train + 10,000 validation images): {epoch:.2} s");
    summary(&mut out, batch, flops, train_steps, infer, &epoch_line)?;
    Ok(out)
}

fn bench_cpu(
    spec: &ModelSpec,
    precision: Precision,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<String> {
    let mut net = Network::with_precision(spec, batch, 1, precision)?;
    let mut rng = rand::rng();
    net.input_mut(batch)
        .iter_mut()
        .for_each(|v| *v = rng.random());
    let labels: Vec<u8> = (0..batch)
        .map(|_| rng.random_range(0..spec.classes as u8))
        .collect();
    let config = SgdConfig::TUTORIAL;
    let mut sgd = Sgd::new(config, net.params.len());
    let mut step = |net: &mut Network| {
        let started = Instant::now();
        net.train_batch(&labels);
        sgd.step(&mut net.params, &net.grads);
        started.elapsed()
    };
    for _ in 0..warmup {
        step(&mut net);
    }
    net.start_profiling();
    let train = stats((0..steps).map(|_| step(&mut net)).collect());
    let profile = net.profile().expect("profiling is on").to_vec();
    net.start_profiling();
    let infer = stats(
        (0..steps)
            .map(|_| {
                let started = Instant::now();
                net.forward(batch, Mode::Eval);
                started.elapsed()
            })
            .collect(),
    );
    let eval_profile = net.profile().expect("profiling is on").to_vec();

    let mut out = String::new();
    writeln!(
        out,
        "{} — batch {batch}, {steps} steps after {warmup} warm-up, {} threads",
        spec.name,
        rayon::current_num_threads()
    )?;
    writeln!(out, "cpu kernels: {}", net.isa().describe())?;
    let rows: Vec<Option<LayerTimes>> = profile
        .iter()
        .zip(&eval_profile)
        .enumerate()
        .map(|(i, ((fwd, bwd), (eval, _)))| {
            let per_step = |d: &Duration| ms(*d) / steps as f64;
            (!is_fused(net.placed(), i)).then(|| LayerTimes {
                forward_ms: per_step(fwd),
                backward_ms: per_step(bwd),
                eval_ms: per_step(eval),
            })
        })
        .collect();
    let total_flops = layer_table(&mut out, net.placed(), batch, &rows)?;
    writeln!(
        out,
        "(eval ms: the inference pass, where CONV → RELU → BN, and a MaxPool after them on\n \
         Winograd's path, run as one, on the conv's line)"
    )?;
    let epoch = train.median.as_secs_f64() * TRAIN_IMAGES.div_ceil(batch) as f64
        + infer.median.as_secs_f64() * 10_000usize.div_ceil(batch) as f64;
    let epoch_line =
        format!("epoch estimate (50,000 train + 10,000 validation images): {epoch:.1} s");
    summary(&mut out, batch, total_flops, train, infer, &epoch_line)?;
    Ok(out)
}
