//! The tutorial's driver script, `minivggnet_cifar10.py`, through minivgg's library: load
//! CIFAR-10, build MiniVGGNet, fit it with the tutorial's SGD, print the classification
//! report and plot the history — the same run `minivgg train` makes, by the same function.
//!
//!     cargo run --release --example minivggnet_cifar10 -- --output output/cifar10_minivggnet.png
//!
//! `--epochs N` and `--limit N` (N images of each split, every class's share equal) make a
//! quick trial.

use anyhow::{bail, Result};
use minivgg::data::DataRequest;
use minivgg::engine::device::Device;
use minivgg::engine::sgd::SgdConfig;
use minivgg::engine::Precision;
use minivgg::run::{self, beside, RunControl, RunFiles};
use minivgg::train::checkpoint::RunSettings;
use std::path::PathBuf;

fn main() -> Result<()> {
    // construct the argument parser and parse the arguments
    let (mut output, mut epochs, mut limit) =
        (PathBuf::from("output/cifar10_minivggnet.png"), 40, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "-o" | "--output" => output = value.into(),
            "--epochs" => epochs = value.parse()?,
            "--limit" => limit = Some(value.parse()?),
            _ => bail!("unknown argument {flag}; expected --output, --epochs or --limit"),
        }
    }

    // load the training and testing data (pixels are scaled to [0, 1] as batches are made)
    let request = DataRequest::default();
    let data = run::load_data(&request, limit)?;

    // initialize the optimizer and model: MiniVGGNet with batch normalization, SGD(lr=0.01,
    // decay=0.01 / 40, momentum=0.9, nesterov=True), batches of 64
    let model = run::model_spec_for("minivggnet", false, &data)?;
    let settings = RunSettings {
        epochs,
        batch_size: 64,
        sgd: SgdConfig::TUTORIAL,
        seed: 42,
        output: output.clone(),
        save: None,
        augment: false,
        limit,
        precision: Precision::Fp32,
        save_best: false,
        data_fingerprint: Some(data.fingerprint()),
        data: request,
        keep_checkpoints: false,
    };
    let mut files = RunFiles::new(&settings, beside(&output, "_checkpoint"));
    files.set_data_name(&data.name);
    files.check_writable()?;
    let lock = files.lock()?;

    // train the network, evaluate it (the classification report) and plot the training loss
    // and accuracy, as `minivgg train` does
    let fresh = run::fresh_run(&model, settings)?;
    run::train_run(
        fresh,
        &files,
        lock,
        Device::Cpu,
        &data,
        RunControl::default(),
    )?;
    Ok(())
}
