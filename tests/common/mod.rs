//! What the integration tests share: where the real CIFAR-10 is, running the binary, and a
//! small run's settings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real data set: $MINIVGG_DATA (CI sets it), else the copy beside the checkout
/// (`../shared/data/cifar-10-binary.tar.gz`), else the program's own cache, downloading the
/// official archive into it as `minivgg train` would. Never skips: no data is a failure.
pub fn real_data_path() -> PathBuf {
    let beside =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar-10-binary.tar.gz");
    if std::env::var_os("MINIVGG_DATA").is_none() && beside.exists() {
        return beside;
    }
    minivgg::data::download::resolve_data_path(None).unwrap_or_else(|e| {
        panic!("CIFAR-10 is needed for this test and was not found ($MINIVGG_DATA, {}, the cache): {e:#}", beside.display())
    })
}

/// Runs the `minivgg` binary with `args` on the real data.
#[allow(dead_code)] // each test crate compiles this module and not all of them run the binary
pub fn minivgg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minivgg"))
        .args(args)
        .env("MINIVGG_DATA", real_data_path())
        .output()
        .unwrap()
}

#[allow(dead_code)]
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A one-epoch run of batches of 8 in `precision`, its plot at `plot`, with the tutorial's
/// optimizer (tests change what they need with `..`).
#[allow(dead_code)]
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
    }
}

/// The value after ` KEY: ` in a Keras-style epoch line (`- loss: 1.2 - acc: 0.5 - …`).
#[allow(dead_code)]
pub fn epoch_field(line: &str, key: &str) -> f64 {
    let at = line
        .find(&format!(" {key}: "))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 3;
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every network the tests run end to end: the built-in ones and the example network file.
#[allow(dead_code)]
pub fn every_network() -> Vec<minivgg::model::ModelSpec> {
    use minivgg::model::zoo;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/vgg_three_blocks.json");
    vec![
        zoo::minivggnet(true),
        zoo::minivggnet(false),
        zoo::shallownet(),
        zoo::lenet(),
        minivgg::model::file::read(&example).unwrap(),
    ]
}

/// `minivgg export --weights WEIGHTS --output ONNX`.
#[allow(dead_code)]
pub fn export(weights: &Path, onnx: &Path) -> Output {
    minivgg(&[
        "export",
        "--weights",
        weights.to_str().unwrap(),
        "--output",
        onnx.to_str().unwrap(),
    ])
}
