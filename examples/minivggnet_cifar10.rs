//! The tutorial's driver script, `minivggnet_cifar10.py`, through minivgg's library: load
//! CIFAR-10, build MiniVGGNet, fit it with the tutorial's SGD, print the classification
//! report and plot the history.
//!
//!     cargo run --release --example minivggnet_cifar10 -- --output output/cifar10_minivggnet.png
//!
//! `--epochs N` and `--limit N` (the first N images of each split) make a quick trial.

use anyhow::{bail, Result};
use minivgg::data::{cifar10, download};
use minivgg::engine::sgd::{Sgd, SgdConfig};
use minivgg::engine::Network;
use minivgg::model::zoo;
use minivgg::report::classification::classification_report;
use minivgg::report::plot::plot_history;
use minivgg::train::fit::{epoch_line, evaluate, fit, FitConfig, Progress};
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
    println!("[INFO] loading CIFAR-10 data...");
    let mut data = cifar10::load(&download::resolve_data_path(None)?)?;
    if let Some(n) = limit {
        data.train.truncate(n);
        data.test.truncate(n);
    }

    // initialize the optimizer and model
    println!("[INFO] compiling model...");
    let seed = 42;
    let mut model = Network::new(&zoo::minivggnet(true), 64, seed)?;
    let mut opt = Sgd::new(SgdConfig::TUTORIAL, model.params.len());

    // train the network
    println!("[INFO] training network...");
    let config = FitConfig {
        epochs,
        seed,
        progress: true,
        stop: None,
        augment: false,
        shuffle: true,
    };
    let mut history = Progress::default();
    fit(
        &mut model,
        &mut opt,
        &data.train,
        &data.test,
        &config,
        &mut history,
        |_, h| {
            println!("{}", epoch_line(h.last().expect("an epoch"), epochs));
            Ok(())
        },
        |_, _, _| Ok(()),
    )?;

    // evaluate the network
    println!("[INFO] evaluating network...");
    let (_, predictions) = evaluate(&mut model, &data.test);
    print!(
        "{}",
        classification_report(data.test.labels(), &predictions, &data.class_names)
    );

    // plot the training loss and accuracy
    plot_history(
        &history.history,
        &output,
        "Training Loss and Accuracy on CIFAR-10",
    )?;
    println!("[INFO] wrote {}", output.display());
    Ok(())
}
