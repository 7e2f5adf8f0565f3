//! The CUDA backend. Without a GPU (CI) the build is checked and `--device cuda` must answer
//! with a clear error; the parity tests need an NVIDIA GPU and are ignored elsewhere, saying
//! so: run them with `cargo test --release --features cuda --test cuda -- --include-ignored`
//! (scripts/gpu_check.sh does, on each convolution path). They compare each layer alone with
//! its CPU twin, then whole networks.
#![cfg(feature = "cuda")]

mod common;

use common::pass;
use cudarc::driver::CudaSlice;
use minivgg::data::augment;
use minivgg::data::batches::{epoch_order, gather};
use minivgg::data::cifar10::IMAGE_BYTES;
use minivgg::data::{ImageShape, Split};
use minivgg::engine::cpu::simd::Isa;
use minivgg::engine::cuda::cudnn::{ConvPath, Cudnn};
use minivgg::engine::cuda::kernels::DeviceAddr;
use minivgg::engine::cuda::layers::softmax::{encode_loss, LossIo};
use minivgg::engine::cuda::layers::{self as gpu_layers, Shared};
use minivgg::engine::cuda::network::CudaNetwork;
use minivgg::engine::cuda::reduce::partials_len;
use minivgg::engine::cuda::{autotune, parity_tolerance, relative_error, Gpu};
use minivgg::engine::layers::elementwise::dropout_key;
use minivgg::engine::layers::softmax::{softmax_cross_entropy, softmax_forward};
use minivgg::engine::layers::{self as cpu_layers};
use minivgg::engine::sgd::{Sgd, SgdConfig};
use minivgg::engine::{Mode, Network, Precision};
use minivgg::model::spec::PlacedLayer;
use minivgg::model::{zoo, LayerSpec, ModelSpec};
use minivgg::train::gpu::GpuTrainer;
use rand::{Rng, SeedableRng};
use std::process::Command;

#[test]
fn device_cuda_either_works_or_says_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_minivgg"))
        .args(["bench", "--device", "cuda", "--steps", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // SAFETY: only tries to load the driver library.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        assert!(
            out.status.success(),
            "a machine with the NVIDIA driver must run the GPU bench: {stderr}"
        );
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            stderr.trim(),
            "error: --device cuda: the NVIDIA driver (libcuda.so) was not found; use --device cpu to train on the CPU"
        );
    }
}

/// The dropout masks' seed in the per-layer tests; the step is 0 on both devices.
const DROPOUT_SEED: u64 = 17;

/// One layer's operands, drawn at random: input, weights (biases and BN's gamma and beta
/// included), moving statistics (variances positive) and the output's gradient.
struct Operands {
    x: Vec<f32>,
    weights: Vec<f32>,
    moving: Vec<f32>,
    dy: Vec<f32>,
}

/// What a layer computes from [`Operands`]: the training forward's output, the moving
/// statistics after it, the weight and input gradients, then the evaluation forward's output.
#[derive(Debug)]
struct Results {
    y: Vec<f32>,
    moving: Vec<f32>,
    grads: Vec<f32>,
    dx: Vec<f32>,
    y_eval: Vec<f32>,
}

fn operands(net: &Network, i: usize, n: usize) -> Operands {
    let placed = &net.placed()[i];
    let ranges = &net.layer_ranges()[i];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(100 + i as u64);
    let mut random = |len: usize, low: f32, high: f32| -> Vec<f32> {
        (0..len).map(|_| rng.random_range(low..high)).collect()
    };
    let moving_len = ranges.moving.len();
    let mut moving = random(moving_len / 2, -0.5, 0.5);
    moving.extend(random(moving_len - moving_len / 2, 0.5, 1.5));
    Operands {
        x: random(n * placed.input.len(), -1.0, 1.0),
        weights: random(ranges.weights.len(), -0.5, 0.5),
        moving,
        dy: random(n * placed.output.len(), -1.0, 1.0),
    }
}

fn on_cpu(placed: &PlacedLayer, i: usize, n: usize, op: &Operands) -> Results {
    let mut layer = cpu_layers::Layer::new(Isa::from_env(Precision::Fp32).unwrap(), placed, n);
    let key = dropout_key(DROPOUT_SEED, 0, i);
    let [y, moving, grads, dx] = pass(
        &mut layer,
        &op.x,
        &op.weights,
        &op.moving,
        &op.dy,
        n,
        Mode::Train,
        key,
    );
    let mut y_eval = vec![0.0; op.dy.len()];
    layer.forward(cpu_layers::Forward {
        weights: &op.weights,
        moving: &mut moving.clone(),
        x: &op.x,
        y: &mut y_eval,
        n,
        mode: Mode::Eval,
        dropout_key: 0,
    });
    Results {
        y,
        moving,
        grads,
        dx,
        y_eval,
    }
}

/// The layer's device buffers, filled from [`Operands`].
struct DeviceOperands {
    x: CudaSlice<f32>,
    weights: CudaSlice<f32>,
    moving: CudaSlice<f32>,
    dy: CudaSlice<f32>,
    y: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    dx: CudaSlice<f32>,
    x_len: usize,
}

impl DeviceOperands {
    fn new(gpu: &Gpu, op: &Operands) -> DeviceOperands {
        let upload = |host: &[f32]| upload(gpu, host);
        DeviceOperands {
            x: upload(&op.x),
            weights: upload(&op.weights),
            moving: upload(&op.moving),
            dy: upload(&op.dy),
            y: gpu.zeros(op.dy.len()).unwrap(),
            grads: gpu.zeros(op.weights.len()).unwrap(),
            dx: gpu.zeros(op.x.len()).unwrap(),
            x_len: op.x.len(),
        }
    }

    fn forward(&self, gpu: &Gpu, i: usize, n: usize, mode: Mode) -> gpu_layers::Forward {
        gpu_layers::Forward {
            index: i,
            weights: gpu.addr(&self.weights),
            moving: gpu.addr(&self.moving),
            x: gpu.addr(&self.x),
            y: gpu.addr(&self.y),
            n,
            x_len: self.x_len,
            mode,
        }
    }

    fn backward(&self, gpu: &Gpu, i: usize, n: usize) -> gpu_layers::Backward {
        gpu_layers::Backward {
            index: i,
            weights: gpu.addr(&self.weights),
            grads: gpu.addr(&self.grads),
            x: gpu.addr(&self.x),
            y: gpu.addr(&self.y),
            dy: gpu.addr(&self.dy),
            dx: Some(gpu.addr(&self.dx)),
            n,
            x_len: self.x_len,
        }
    }
}

/// A device copy of `host`.
fn upload<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    gpu: &Gpu,
    host: &[T],
) -> CudaSlice<T> {
    let mut device = gpu.zeros::<T>(host.len()).unwrap();
    gpu.upload(host, &mut device).unwrap();
    device
}

/// The first `len` values (an empty buffer on the device holds one, so it has an address).
fn download(gpu: &Gpu, buffer: &CudaSlice<f32>, len: usize) -> Vec<f32> {
    gpu.download(buffer, len).unwrap()
}

/// The device buffers every layer shares: the step state (zero: step 0) and the partials.
fn shared<'a>(
    gpu: &'a Gpu,
    state: &CudaSlice<u64>,
    partials: &CudaSlice<f64>,
    cudnn: Option<&'a Cudnn>,
) -> Shared<'a> {
    Shared {
        gpu,
        state: gpu.addr(state),
        partials: gpu.addr(partials),
        dropout_seed: DROPOUT_SEED,
        cudnn,
    }
}

fn on_gpu(layer: &gpu_layers::Layer, shared: Shared, i: usize, n: usize, op: &Operands) -> Results {
    let gpu = shared.gpu;
    let device = DeviceOperands::new(gpu, op);
    layer
        .forward(shared, device.forward(gpu, i, n, Mode::Train))
        .unwrap();
    let y = download(gpu, &device.y, op.dy.len());
    layer.backward(shared, device.backward(gpu, i, n)).unwrap();
    let moving = download(gpu, &device.moving, op.moving.len());
    layer
        .forward(shared, device.forward(gpu, i, n, Mode::Eval))
        .unwrap();
    Results {
        y,
        moving,
        grads: download(gpu, &device.grads, op.weights.len()),
        dx: download(gpu, &device.dx, op.x.len()),
        y_eval: download(gpu, &device.y, op.dy.len()),
    }
}

fn assert_agree(cpu: &Results, gpu: &Results, what: &str) {
    let tolerance = parity_tolerance(Precision::Fp32);
    let pairs = [
        ("training output", &cpu.y, &gpu.y),
        ("moving statistics", &cpu.moving, &gpu.moving),
        ("weight gradients", &cpu.grads, &gpu.grads),
        ("input gradient", &cpu.dx, &gpu.dx),
        ("evaluation output", &cpu.y_eval, &gpu.y_eval),
    ];
    for (name, want, got) in pairs {
        assert_eq!(want.len(), got.len(), "{what}: {name}");
        let error = relative_error(want, got);
        assert!(
            error <= tolerance,
            "{what}: {name} off by {error:e} (tolerance {tolerance:e})"
        );
    }
}

/// Every layer of `spec` but the softmax, alone on the CPU and on the GPU from the same
/// random operands; convolutions on im2col, then on cuDNN where it is installed and
/// `MINIVGG_CUDA_CONV` allows it.
fn check_each_layer(spec: &ModelSpec) {
    let n = 8;
    let net = Network::new(spec, n, 5).unwrap();
    let gpu = Gpu::open(0).unwrap();
    let cudnn = match ConvPath::from_env().unwrap() {
        ConvPath::Im2col => None,
        _ => Cudnn::open(&gpu).unwrap(),
    };
    let state = gpu.zeros::<u64>(4).unwrap();
    for (i, placed) in net.placed().iter().enumerate() {
        if placed.spec == LayerSpec::Softmax {
            continue;
        }
        let what = format!("{} layer {i} ({})", spec.name, placed.name);
        let op = operands(&net, i, n);
        let cpu = on_cpu(placed, i, n, &op);
        let widest = placed.input.channels().max(placed.output.channels());
        let partials = gpu.zeros::<f64>(partials_len(widest)).unwrap();
        let mut layer = gpu_layers::Layer::new(&gpu, placed, n).unwrap();
        let plain = shared(&gpu, &state, &partials, None);
        assert_agree(&cpu, &on_gpu(&layer, plain, i, n, &op), &what);
        if let (gpu_layers::Layer::Conv2d(conv), Some(cudnn)) = (&mut layer, &cudnn) {
            let with_cudnn = shared(&gpu, &state, &partials, Some(cudnn));
            let device = DeviceOperands::new(&gpu, &op);
            let io = (
                device.forward(&gpu, i, n, Mode::Train),
                device.backward(&gpu, i, n),
            );
            let (chosen, why) =
                autotune::choose(with_cudnn, conv, io, Precision::Fp32, ConvPath::Cudnn).unwrap();
            let chosen = chosen.unwrap_or_else(|| panic!("{what}: cuDNN was not chosen: {why}"));
            conv.run_on_cudnn(n, chosen);
            let results = on_gpu(&layer, with_cudnn, i, n, &op);
            assert_agree(&cpu, &results, &format!("{what} on cuDNN"));
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn each_layer_of_minivggnet_matches_its_cpu_twin() {
    check_each_layer(&zoo::minivggnet(true));
}

/// LeNet's 5×5 kernels and ShallowNet's single convolution, with dense layers of other widths.
#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn each_layer_of_lenet_and_shallownet_matches_its_cpu_twin() {
    check_each_layer(&zoo::lenet());
    check_each_layer(&zoo::shallownet());
}

/// The fused softmax and cross-entropy: probabilities, the logits' gradient, predictions and
/// the batch's metrics.
#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn the_loss_matches_the_cpu() {
    let (n, classes) = (37, 10);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let logits: Vec<f32> = (0..n * classes)
        .map(|_| rng.random_range(-4.0..4.0))
        .collect();
    let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..classes as u8)).collect();
    let mut probs = vec![0.0; n * classes];
    softmax_forward(&logits, &mut probs, classes);
    let mut grad = vec![0.0; n * classes];
    let cpu = softmax_cross_entropy(&logits, &labels, classes, Some(&mut grad));
    let predictions: Vec<i32> = logits
        .chunks_exact(classes)
        .map(|z| (0..classes).fold(0, |best, j| if z[j] > z[best] { j } else { best }) as i32)
        .collect();

    let gpu = Gpu::open(0).unwrap();
    let device_logits = upload(&gpu, &logits);
    let labels_i32: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
    let device_labels = upload(&gpu, &labels_i32);
    // Zeros, so a kernel that writes nothing fails.
    let (device_probs, device_grad) = (
        gpu.zeros::<f32>(n * classes).unwrap(),
        gpu.zeros::<f32>(n * classes).unwrap(),
    );
    let (state, partials) = (gpu.zeros::<u64>(4).unwrap(), gpu.zeros::<f64>(1).unwrap());
    let device_predictions = gpu.zeros::<i32>(n).unwrap();
    let metrics = gpu.zeros::<f64>(3).unwrap();
    let io = LossIo {
        logits: gpu.addr(&device_logits),
        labels: gpu.addr(&device_labels),
        probs: gpu.addr(&device_probs),
        grad: gpu.addr(&device_grad),
        n,
        classes,
    };
    let predictions_at: DeviceAddr = gpu.addr(&device_predictions);
    let shared = shared(&gpu, &state, &partials, None);
    encode_loss(
        shared,
        io,
        Mode::Train,
        Some(predictions_at),
        gpu.addr(&metrics),
    )
    .unwrap();
    let tolerance = parity_tolerance(Precision::Fp32);
    let len = n * classes;
    assert!(relative_error(&probs, &download(&gpu, &device_probs, len)) <= tolerance);
    assert!(relative_error(&grad, &download(&gpu, &device_grad, len)) <= tolerance);
    assert_eq!(gpu.download(&device_predictions, n).unwrap(), predictions);
    let m = gpu.download(&metrics, 3).unwrap();
    assert!(
        (m[0] - cpu.loss_sum).abs() <= tolerance * cpu.loss_sum.abs(),
        "{m:?} {cpu:?}"
    );
    assert_eq!((m[1] as usize, m[2] as usize), (cpu.correct, n));
}

/// tf32's correct count is not compared: an argmax may flip between near-equal classes.
fn check_parity(spec: &ModelSpec, precision: Precision) {
    let tol = parity_tolerance(precision);
    let batch = 8;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let input: Vec<f32> = (0..batch * spec.input.len())
        .map(|_| rng.random())
        .collect();
    let labels: Vec<u8> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    // The linear schedule over 3 updates scales the second step's rate by 2/3, and weight
    // decay adds wd·w to each gradient: the velocity check below sees whether the kernel
    // anneals and decays as the CPU does.
    let config = SgdConfig {
        anneal_updates: 3,
        weight_decay: 0.01,
        ..SgdConfig::TUTORIAL
    };
    let mut net = Network::new(spec, batch, 4).unwrap();
    let mut sgd = Sgd::new(config, net.params.len());
    // The same weights (same seed), its products in `precision` on the GPU.
    let on_gpu = Network::with_precision(spec, batch, 4, precision).unwrap();
    let mut cuda = CudaNetwork::from_host(Gpu::open(0).unwrap(), &on_gpu, &sgd).unwrap();
    let name = &spec.name;

    // Two training steps, so the second runs from updated weights and new dropout masks. Each
    // starts from the CPU's weights: two devices' roundings, carried from step to step, would
    // flip ReLUs and max-pool choices near their kinks and compare two different functions.
    for step in 0..2 {
        cuda.upload_params(&net.params).unwrap();
        net.input_mut(batch).copy_from_slice(&input);
        let cpu = net.train_batch(&labels);
        let gpu = cuda.train_batch(&input, &labels).unwrap();
        assert!(
            (cpu.loss_sum - gpu.loss_sum).abs() <= tol * cpu.loss_sum.abs(),
            "{name} step {step}: loss {cpu:?} vs {gpu:?}"
        );
        if precision == Precision::Fp32 {
            assert_eq!(cpu.correct, gpu.correct, "{name} step {step}");
        }
        let probs = cuda.download_probabilities(batch).unwrap();
        assert!(
            relative_error(net.probabilities(batch), &probs) <= tol,
            "{name} step {step}: probabilities"
        );
        let grads = cuda.download_grads().unwrap();
        for t in net
            .tensors()
            .iter()
            .filter(|t| t.kind == minivgg::model::spec::ParamKind::Trainable)
        {
            let range = t.offset..t.offset + t.len();
            let err = relative_error(&net.grads[range.clone()], &grads[range]);
            assert!(
                err <= tol,
                "{name} step {step}: gradient of {} off by {err:e}",
                t.name
            );
        }
        assert!(
            relative_error(&net.moving, &cuda.download_moving().unwrap()) <= tol,
            "{name}: moving statistics"
        );
        sgd.step(&mut net.params, &net.grads);
        cuda.sgd_step().unwrap();
        let err = relative_error(&net.params, &cuda.download_params().unwrap());
        assert!(
            err <= tol,
            "{name} step {step}: parameters after SGD off by {err:e}"
        );
        let err = relative_error(&sgd.velocity, &cuda.download_velocity().unwrap());
        assert!(err <= tol, "{name} step {step}: velocity off by {err:e}");
    }

    // Evaluation mode: moving statistics, no dropout.
    net.input_mut(batch).copy_from_slice(&input);
    net.forward(batch, Mode::Eval);
    let cpu = net.metrics(&labels);
    let gpu = cuda.eval_batch(&input, &labels).unwrap();
    assert!(
        (cpu.loss_sum - gpu.loss_sum).abs() <= tol * cpu.loss_sum.abs(),
        "{name} eval: {cpu:?} vs {gpu:?}"
    );
    assert!(
        relative_error(
            net.probabilities(batch),
            &cuda.download_probabilities(batch).unwrap()
        ) <= tol
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn minivggnet_with_bn_matches_the_cpu() {
    check_parity(&zoo::minivggnet(true), Precision::Fp32);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn minivggnet_without_bn_matches_the_cpu() {
    check_parity(&zoo::minivggnet(false), Precision::Fp32);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn shallownet_matches_the_cpu() {
    check_parity(&zoo::shallownet(), Precision::Fp32);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn lenet_matches_the_cpu() {
    check_parity(&zoo::lenet(), Precision::Fp32);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn minivggnet_in_tf32_matches_the_cpu_within_its_tolerance() {
    check_parity(&zoo::minivggnet(true), Precision::Tf32);
    check_parity(&zoo::lenet(), Precision::Tf32);
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --include-ignored on a machine with one"]
fn gathered_batches_match_the_cpu_with_and_without_augmentation() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let images = (0..300 * IMAGE_BYTES).map(|_| rng.random()).collect();
    let labels = (0..300).map(|_| rng.random_range(0..10)).collect();
    let split = Split::new(ImageShape::CIFAR, images, labels);
    let mut net = Network::new(&zoo::shallownet(), 64, 1).unwrap();
    let sgd = Sgd::new(SgdConfig::TUTORIAL, net.params.len());
    let order = epoch_order(split.len(), 7, 2);
    for augment in [false, true] {
        let key = augment.then(|| augment::epoch_key(7, 2));
        let mut trainer =
            GpuTrainer::new(Gpu::open(0).unwrap(), &net, &sgd, &split, &split, augment).unwrap();
        let gpu = trainer.first_batch(&order, key).unwrap();
        let mut labels = Vec::new();
        gather(&split, &order[..64], key, net.input_mut(64), &mut labels);
        let cpu = net.input_mut(64).to_vec();
        let same = cpu
            .iter()
            .zip(&gpu)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same && cpu.len() == gpu.len(),
            "augment {augment}: batches differ"
        );
    }
}
