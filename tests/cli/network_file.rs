//! Networks from a file (`--model NAME.json`) through the binary: the example VGG-family
//! network summarises, trains, reloads and exports; a malformed file (a key given twice, text
//! that is not UTF-8), or one CIFAR-10 cannot feed, is an exit-2 error naming the file and the
//! layer.

use crate::common::{
    assert_exit_2_with, command_line, epoch_field, listing, minivgg, text, write_file,
};
use std::path::Path;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/vgg_three_blocks.json"
);

/// Runs the binary with `args` and checks that it exits 2 with `error: MESSAGE` alone.
fn assert_refused(args: &[&str], message: &str) {
    assert_exit_2_with(&minivgg(args), message, args);
}

#[test]
fn the_example_vgg_network_summarises_trains_reloads_and_exports() {
    let out = minivgg(&["summary", "--model", EXAMPLE]);
    let summary = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        summary.starts_with("Model: \"vgg_three_blocks\"\n"),
        "{summary}"
    );
    // Three (CONV => RELU => BN) * 2 => POOL => DO blocks: the sixth conv has 128 filters on
    // a 8×8 input, and three pools leave 4×4×128 to flatten.
    assert!(
        summary.contains(
            "conv2d_6 (Conv2D)                          (None, 8, 8, 128)         147584"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("flatten_1 (Flatten)                        (None, 2048)"),
        "{summary}"
    );
    assert!(summary.contains("Total params: 1,345,066\n"), "{summary}");

    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("vgg.png");
    let weights = dir.path().join("vgg.safetensors");
    let out = minivgg(&command_line(
        "train --epochs 1 --limit 2000 --seed 1",
        &[
            "--model",
            EXAMPLE,
            "--output",
            plot.to_str().unwrap(),
            "--save",
            weights.to_str().unwrap(),
        ],
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let epoch = stdout
        .lines()
        .find(|l| l.starts_with("Epoch 1/1 - "))
        .expect("an epoch line");
    // One epoch of 2,000 images: well above chance (0.10) on the images it trained on.
    assert!(epoch_field(epoch, "acc") > 0.18, "{epoch}");
    assert!(epoch_field(epoch, "val_loss").is_finite(), "{epoch}");

    let out = minivgg(&["summary", "--model", weights.to_str().unwrap()]);
    assert_eq!(
        text(&out.stdout),
        summary,
        "the saved model is the file's network"
    );

    // It exports, trained or straight from the file (tests/storage/onnx.rs runs the export in
    // tract).
    for (from, source) in [
        ("--weights", weights.to_str().unwrap()),
        ("--model", EXAMPLE),
    ] {
        let onnx = dir.path().join("vgg.onnx");
        let out = minivgg(&["export", from, source, "--output", onnx.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(std::fs::metadata(&onnx).unwrap().len() > 4 * 1_345_066);
    }
}

#[test]
fn a_malformed_network_file_is_refused_naming_the_file_and_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = write_file(&dir.path().join(name), text);
        path.to_str().unwrap().to_string()
    };
    let conv_then_dense = write(
        "conv_then_dense.json",
        r#"{"input": [32, 32, 3], "classes": 10, "layers": [
            {"type": "conv2d", "filters": 8, "kernel": 3},
            {"type": "dense", "units": 10}, {"type": "softmax"}]}"#,
    );
    let plot = dir.path().join("p.png");
    let plot = plot.to_str().unwrap();
    // Each of `commands` on `--model MODEL` (train with a plot) refuses it saying `message`.
    let each_refuses = |commands: &[&str], model: &str, message: &str| {
        for &command in commands {
            let mut args = vec![command, "--model", model];
            if command == "train" {
                args.extend(["--output", plot]);
            }
            assert_refused(&args, message);
        }
    };
    each_refuses(
        &["train", "summary", "bench"],
        &conv_then_dense,
        &format!("{conv_then_dense}: layer 2 (dense): needs a flattened input, got (None, 32, 32, 8); put a flatten layer before it"),
    );
    // serde_json alone would take the last "filters", 32, and train the network.
    let twice = write(
        "twice.json",
        r#"{"input": [32, 32, 3], "classes": 10, "layers": [
            {"type": "conv2d", "filters": 64, "kernel": 3, "filters": 32},
            {"type": "flatten"}, {"type": "dense", "units": 10}, {"type": "softmax"}]}"#,
    );
    each_refuses(
        &["train", "summary"],
        &twice,
        &format!("{twice}: layer 1 (conv2d): field \"filters\" appears twice"),
    );
    let latin1 = dir.path().join("latin1.json");
    std::fs::write(&latin1, b"{\"name\": \"r\xe9seau\"}").unwrap();
    let latin1 = latin1.to_str().unwrap();
    assert_refused(
        &["summary", "--model", latin1],
        &format!("cannot read network file {latin1}: stream did not contain valid UTF-8"),
    );
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    assert_refused(
        &["summary", "--model", missing],
        &format!("cannot read network file {missing}: No such file or directory (os error 2)"),
    );
    let mnist = write(
        "mnist.json",
        r#"{"input": [28, 28, 1], "classes": 10, "layers": [
            {"type": "flatten"}, {"type": "dense", "units": 10}, {"type": "softmax"}]}"#,
    );
    assert_refused(
        &["train", "--model", &mnist, "--output", plot],
        "--model: mnist takes (None, 28, 28, 1) inputs and gives 10 classes; CIFAR-10 has (None, 32, 32, 3) images (32×32 RGB) of 10 classes",
    );
    let no_bn = write(
        "plain.json",
        r#"{"input": [32, 32, 3], "classes": 10, "layers": [
            {"type": "flatten"}, {"type": "dense", "units": 10}, {"type": "softmax"}]}"#,
    );
    assert_refused(
        &["compare", "--model", &no_bn],
        "--model: plain has no batch normalization to compare without",
    );
    assert_refused(
        &["summary", "--model", EXAMPLE, "--no-bn"],
        &format!("--no-bn applies to the built-in models, not to the model file {EXAMPLE}"),
    );
    let written: Vec<_> = listing(dir.path())
        .into_iter()
        .filter(|name| Path::new(name).extension().is_none_or(|e| e != "json"))
        .collect();
    assert!(written.is_empty(), "refused runs wrote {written:?}");
}
