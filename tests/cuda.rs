//! The CUDA backend. Without a GPU (CI) the build is checked and `--device cuda` must answer
//! with a clear error; the parity tests need an NVIDIA GPU and are ignored elsewhere, saying
//! so: run them with `cargo test --release --features cuda --test cuda -- --include-ignored`.
#![cfg(feature = "cuda")]

use minivgg::data::augment;
use minivgg::data::batches::{epoch_order, gather};
use minivgg::data::cifar10::IMAGE_BYTES;
use minivgg::data::{ImageShape, Split};
use minivgg::engine::cuda::network::CudaNetwork;
use minivgg::engine::cuda::{parity_tolerance, relative_error, Gpu};
use minivgg::engine::sgd::{Sgd, SgdConfig};
use minivgg::engine::{Mode, Network, Precision};
use minivgg::model::{zoo, ModelSpec};
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
