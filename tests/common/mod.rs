//! What the integration tests share, each helper once: running the binary (`run`), files on
//! disk and what a run leaves there (`files`), the pictures, archives and IDX files the tests
//! write (`images`, `archives`), comparing numbers (`numbers`), one CPU layer's pass
//! (`layers`); and here a small run's settings, every network the tests know, and tract's
//! view of an exported model.

// Each test binary uses some of the helpers.
#![allow(dead_code, unused_imports)]

mod archives;
mod files;
mod images;
mod layers;
mod numbers;
mod run;

pub use archives::*;
pub use files::*;
pub use images::*;
pub use layers::*;
pub use numbers::*;
pub use run::*;

use std::path::{Path, PathBuf};

/// A one-epoch run of batches of 8 in `precision`, its plot at `plot`, with the tutorial's
/// optimizer (tests change what they need with `..`).
pub fn small_run(
    plot: PathBuf,
    precision: minivgg::engine::Precision,
) -> minivgg::train::checkpoint::RunSettings {
    minivgg::train::checkpoint::RunSettings {
        epochs: 1,
        batch_size: 8,
        sgd: minivgg::engine::sgd::SgdConfig::TUTORIAL,
        seed: 3,
        output: plot,
        save: None,
        augment: false,
        limit: None,
        precision,
        save_best: false,
        data: Default::default(),
        data_fingerprint: None,
        keep_checkpoints: false,
    }
}

/// Every network the tests run end to end: the built-in ones and the example network file.
pub fn every_network() -> Vec<minivgg::model::ModelSpec> {
    use minivgg::model::zoo;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/vgg_three_blocks.json");
    vec![
        zoo::minivggnet(true),
        zoo::minivggnet(false),
        zoo::shallownet(),
        zoo::lenet(),
        minivgg::model::network_file::read(&example).unwrap(),
    ]
}

/// tract's probabilities for `input`, `n` NHWC images of `shape`, under the ONNX file at
/// `path`, which must declare that input (any batch) and `classes` outputs per image.
pub fn tract_probabilities(
    path: &Path,
    input: &[f32],
    n: usize,
    shape: minivgg::data::ImageShape,
    classes: usize,
) -> Vec<f32> {
    use tract_onnx::prelude::*;
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .into_optimized()
        .unwrap();
    let declared: Vec<String> = model
        .input_fact(0)
        .unwrap()
        .shape
        .iter()
        .map(|d| d.to_string())
        .collect();
    let image = [shape.height, shape.width, shape.channels].map(|d| d.to_string());
    assert_eq!(
        declared[1..],
        image,
        "{}: the input it declares",
        path.display()
    );
    let plan = model.into_runnable().unwrap();
    let input = Tensor::from_shape(&[n, shape.height, shape.width, shape.channels], input).unwrap();
    let outputs = plan.run(tvec!(input.into())).unwrap();
    let probs = outputs[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(probs.shape(), [n, classes]);
    probs.iter().copied().collect()
}
