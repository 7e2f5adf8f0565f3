//! `minivgg export` against an independent runtime: every built-in model, trained briefly on
//! real CIFAR-10 and given batch normalization statistics far from their initial values, is
//! saved, exported by the binary and run by tract; its probabilities on real test images must
//! be minivgg's own in evaluation mode.

use crate::common::{self, export, max_difference, real_data_path, text, tract_probabilities};
use minivgg::data::batches::gather;
use minivgg::data::{cifar10, ImageShape, Split};
use minivgg::engine::sgd::{Sgd, SgdConfig};
use minivgg::engine::{Mode, Network};
use minivgg::model::{zoo, ModelSpec};
use minivgg::store::model_file;
use rand::{Rng, SeedableRng};

/// Test images compared per model.
const COMPARED: usize = 256;
const TOLERANCE: f32 = 1e-5;

/// A few SGD steps on real images (not the compared ones), then random BN parameters and
/// moving statistics (means in [−0.5, 0.5], variances in [0.5, 2]) so that the export must use
/// them.
fn trained(spec: &ModelSpec, data: &Split, seed: u64) -> Network {
    let batch = 32;
    let mut net = Network::new(spec, COMPARED, seed).unwrap();
    let mut sgd = Sgd::new(SgdConfig::TUTORIAL, net.params.len());
    let mut labels = Vec::new();
    for step in 0..4 {
        let indices: Vec<usize> = (0..batch).map(|i| COMPARED + step * batch + i).collect();
        gather(data, &indices, None, net.input_mut(batch), &mut labels);
        net.train_batch(&labels);
        sgd.step(&mut net.params, &net.grads);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for t in net.tensors().to_vec() {
        let (low, high) = match t.name.rsplit('/').next().unwrap() {
            "gamma" => (0.5, 1.5),
            "beta" | "moving_mean" => (-0.5, 0.5),
            "moving_variance" => (0.5, 2.0),
            _ => continue,
        };
        net.values_mut(&t)
            .iter_mut()
            .for_each(|v| *v = rng.random_range(low..high));
    }
    net
}

#[test]
fn tract_runs_every_exported_model_as_minivgg_does() {
    let (data, _) = cifar10::load_test(&real_data_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = common::every_network();
    for (seed, spec) in models.iter().enumerate() {
        let mut net = trained(spec, &data, seed as u64 + 1);
        let weights = dir.path().join(format!("{}.safetensors", spec.name));
        let onnx = dir.path().join(format!("{}.onnx", spec.name));
        model_file::save(&net, &weights).unwrap();
        let out = export(&weights, &onnx);
        assert!(out.status.success(), "{}", text(&out.stderr));

        let indices: Vec<usize> = (0..COMPARED).collect();
        let mut labels = Vec::new();
        gather(&data, &indices, None, net.input_mut(COMPARED), &mut labels);
        let input = net.input_mut(COMPARED).to_vec();
        net.forward(COMPARED, Mode::Eval);
        let ours = net.probabilities(COMPARED).to_vec();
        // Dynamic batch: the whole batch, then a smaller one.
        for n in [COMPARED, 7] {
            let theirs = tract_probabilities(&onnx, &input[..n * 3072], n, ImageShape::CIFAR, 10);
            let max_diff = max_difference(&ours[..n * 10], &theirs);
            println!(
                "{}: {n} images, max |minivgg − tract| of the probabilities {max_diff:.3e}",
                spec.name
            );
            assert!(
                max_diff <= TOLERANCE,
                "{}: probabilities differ by {max_diff}",
                spec.name
            );
        }
        // The probabilities are not saturated (0 or 1 everywhere), which would hide errors.
        let spread = ours.iter().filter(|p| (0.01..0.99).contains(*p)).count();
        assert!(
            spread > COMPARED,
            "{}: {spread} probabilities in (0.01, 0.99)",
            spec.name
        );
    }
}

#[test]
fn unreadable_weights_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.safetensors");
    let onnx = dir.path().join("m.onnx");
    let out = export(&missing, &onnx);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: cannot read weights file {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    assert!(!onnx.exists());
}

#[test]
fn an_unwritable_output_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("m.safetensors");
    model_file::save(&Network::new(&zoo::shallownet(), 1, 1).unwrap(), &weights).unwrap();
    // The output's directory is a file.
    let output = weights.join("m.onnx");
    let out = export(&weights, &output);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&output.display().to_string()),
        "{}",
        text(&out.stderr)
    );
}
