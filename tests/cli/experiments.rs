//! The tutorial's experiments as commands: `compare` (BN against no BN), `predict` on image
//! files, and `summary` of a saved model. Quick runs on the first images of the real data.

use crate::common::{self, command_line, minivgg, text};
use minivgg::data::cifar10::{self, IMAGE_SIDE};
use minivgg::data::images::load_as;
use minivgg::data::{ImageShape, Split};
use minivgg::store::model_file;
use minivgg::train::fit::predict_probabilities;
use std::path::Path;

/// Trains ShallowNet for one epoch on 512 images and saves it to `weights`.
fn quick_model(dir: &Path, weights: &Path) {
    let out = minivgg(&command_line(
        "train --model shallownet --epochs 1 --limit 512 --seed 1",
        &[
            "--output",
            dir.join("quick.png").to_str().unwrap(),
            "--save",
            weights.to_str().unwrap(),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn compare_trains_both_arms_and_writes_figure_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let figure = dir.path().join("cmp.png");
    let out = minivgg(&command_line(
        "compare --epochs 2 --limit 256 --seed 3",
        &["--output", figure.to_str().unwrap()],
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let png = image::open(&figure).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (1600, 600),
        "two 800x600 panels"
    );
    let table = std::fs::read_to_string(dir.path().join("cmp.md")).unwrap();
    assert!(stdout.contains(&table), "the table is printed as saved");
    for (arm, files) in [
        ("MiniVGGNet with batch normalization", "cmp_with_bn"),
        ("MiniVGGNet without batch normalization", "cmp_without_bn"),
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {arm} | 2 | ")))
            .unwrap_or_else(|| panic!("no row for {arm}:\n{table}"));
        // loss, acc, val_loss, val_acc, best val_acc (epoch), s/epoch
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let val_acc: f64 = cells[6].parse().unwrap();
        assert!((0.0..=1.0).contains(&val_acc), "{row}");
        assert!(
            cells[7].ends_with("(1)") || cells[7].ends_with("(2)"),
            "{row}"
        );
        for suffix in [".png", ".csv", "_report.txt", "_confusion.png"] {
            assert!(
                dir.path().join(format!("{files}{suffix}")).is_file(),
                "{files}{suffix}"
            );
        }
    }
    // The same seed for both arms: their epoch lines differ only by the network.
    assert!(
        stdout.contains("(minivggnet, seed 3, ") && stdout.contains("(minivggnet_no_bn, seed 3, ")
    );
}

#[test]
fn predict_classifies_images_of_any_size_and_names_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("model.safetensors");
    quick_model(dir.path(), &weights);

    // A test image saved as a 32x32 PNG reads back as the very same pixels.
    let (test, _) = cifar10::load_test(&common::real_data_path()).unwrap();
    let side = IMAGE_SIDE as u32;
    let exact = dir.path().join("exact.png");
    image::RgbImage::from_raw(side, side, test.image(0).to_vec())
        .unwrap()
        .save(&exact)
        .unwrap();
    assert_eq!(load_as(&exact, ImageShape::CIFAR).unwrap(), test.image(0));
    // Other sizes, a JPEG, a grayscale PNG and a file that is no image at all.
    let large = dir.path().join("large.jpg");
    image::RgbImage::from_fn(200, 120, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .save(&large)
        .unwrap();
    let grey = dir.path().join("grey.png");
    image::GrayImage::from_fn(50, 70, |x, y| image::Luma([(x * 5 + y) as u8]))
        .save(&grey)
        .unwrap();
    let bogus = dir.path().join("notes.png");
    std::fs::write(&bogus, "not an image").unwrap();
    let grey_pixels = load_as(&grey, ImageShape::CIFAR).unwrap();
    assert!(
        grey_pixels.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]),
        "grey stays grey"
    );

    let paths = [&exact, &large, &bogus, &grey];
    let mut args = vec!["predict", "--weights", weights.to_str().unwrap()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let out = minivgg(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {}: not an image that can be read",
            bogus.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of the images could not be read"),
        "{stderr}"
    );

    // Each readable file gets its top 3, as the library computes them on the same pixels.
    let mut net = model_file::load(&weights, 64, minivgg::engine::Precision::Fp32).unwrap();
    for path in [&exact, &large, &grey] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{}: ", path.display())))
            .unwrap_or_else(|| panic!("no prediction for {}:\n{stdout}", path.display()));
        let split = Split::new(
            ImageShape::CIFAR,
            load_as(path, ImageShape::CIFAR).unwrap(),
            vec![0],
        );
        let probs = &predict_probabilities(&mut net, &split)[0];
        let mut ranked: Vec<usize> = (0..10).collect();
        ranked.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let want: Vec<String> = ranked[..3]
            .iter()
            .map(|&c| format!("{} {:.1} %", cifar10::CLASS_NAMES[c], 100.0 * probs[c]))
            .collect();
        assert_eq!(line, format!("{}: {}", path.display(), want.join(", ")));
    }
    assert!(!stdout.contains("notes.png"));
}

#[test]
fn summary_reads_the_architecture_of_a_saved_model() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("model.safetensors");
    quick_model(dir.path(), &weights);
    let saved = minivgg(&["summary", "--model", weights.to_str().unwrap()]);
    let built_in = minivgg(&["summary", "--model", "shallownet"]);
    assert!(saved.status.success(), "{}", text(&saved.stderr));
    assert_eq!(text(&saved.stdout), text(&built_in.stdout));
    let out = minivgg(&["summary", "--model", weights.to_str().unwrap(), "--no-bn"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--no-bn applies to the built-in models"));
}
