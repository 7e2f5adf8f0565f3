//! Image folders through the binary: CIFAR-10's test split written out as PNGs scores as the
//! binary split does, and a folder of another shape (48×40 grey, 3 classes of its own) trains,
//! saves, predicts with its own class names and exports.

mod common;

use common::{real_data_path, text};
use minivgg::data::cifar10;
use std::path::Path;
use std::process::{Command, Output};

/// The binary with its user cache in `cache` (the decoded-image cache goes there).
fn minivgg_cached(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minivgg"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env("MINIVGG_DATA", real_data_path())
        .output()
        .unwrap()
}

/// The `[INFO] NAME on N test images: loss L, accuracy A` line of `evaluate`.
fn score_line(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.contains(" test images: loss "))
        .unwrap_or_else(|| panic!("no score in {stdout}"))
        .to_string()
}

#[test]
fn cifar10_as_a_folder_of_pngs_scores_as_the_binary_split() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, folder) = (dir.path().join("cache"), dir.path().join("cifar_png"));
    let (test, names) = cifar10::load_test(&real_data_path()).unwrap();
    // The class names are already in sorted order, so a folder's labels are CIFAR-10's.
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, names);
    for (i, (&label, image)) in test
        .labels()
        .iter()
        .zip(test.images().chunks_exact(3072))
        .enumerate()
    {
        let splits: &[&str] = if i < 200 {
            &["train", "test"]
        } else {
            &["test"]
        };
        for split in splits {
            let class_dir = folder.join(split).join(&names[usize::from(label)]);
            std::fs::create_dir_all(&class_dir).unwrap();
            image::RgbImage::from_raw(32, 32, image.to_vec())
                .unwrap()
                .save(class_dir.join(format!("{i:05}.png")))
                .unwrap();
        }
    }
    let weights = dir.path().join("model.safetensors");
    let out = minivgg_cached(
        &cache,
        &[
            "train",
            "--model",
            "shallownet",
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--seed",
            "1",
            "--output",
            dir.path().join("quick.png").to_str().unwrap(),
            "--save",
            weights.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let evaluate = |data: Option<&Path>| {
        let confusion = dir.path().join("c.png");
        let mut args = vec![
            "evaluate",
            "--weights",
            weights.to_str().unwrap(),
            "--confusion",
            confusion.to_str().unwrap(),
        ];
        if let Some(data) = data {
            args.extend(["--data", data.to_str().unwrap()]);
        }
        let out = minivgg_cached(&cache, &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let binary = score_line(&evaluate(None));
    let first = evaluate(Some(&folder));
    assert!(first.contains("decod"), "the first run decodes: {first}");
    assert_eq!(score_line(&first), binary);
    // The second run maps the cache and scores the same.
    let cached = evaluate(Some(&folder));
    assert!(cached.contains("cache"), "{cached}");
    assert_eq!(score_line(&cached), binary);
}

#[test]
fn a_grey_48_by_40_folder_of_three_classes_trains_saves_predicts_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, folder) = (dir.path().join("cache"), dir.path().join("shapes"));
    // Three classes told apart by brightness; sizes differ, so every image is resized.
    let classes = [("bright", 220u8), ("dark", 30), ("mid", 128)];
    for (class, level) in classes {
        let class_dir = folder.join(class);
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in 0..40u32 {
            let (w, h) = (60 + i, 50 + i % 7);
            let picture = image::RgbImage::from_fn(w, h, |x, y| {
                let noise = ((x * 7 + y * 13 + i * 31) % 23) as u8;
                image::Rgb([level.saturating_add(noise); 3])
            });
            picture.save(class_dir.join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(folder.join("bright").join("notes.txt"), "skipped").unwrap();
    let weights = dir.path().join("shapes.safetensors");
    let flags = [
        "--image-size",
        "48x40",
        "--grayscale",
        "--val-split",
        "0.25",
    ];
    let out = minivgg_cached(
        &cache,
        &[
            &["train", "--data", folder.to_str().unwrap()][..],
            &flags,
            &[
                "--model",
                "lenet",
                "--epochs",
                "15",
                "--batch-size",
                "16",
                "--seed",
                "5",
                "--output",
                dir.path().join("shapes.png").to_str().unwrap(),
                "--save",
                weights.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("shapes: 90 training and 30 validation images, 48×40 grey, 3 classes"),
        "{stdout}"
    );
    assert!(stdout.contains("skipped 1 file"), "{stdout}");
    // The report names the folder's classes.
    for (class, _) in classes {
        assert!(stdout.contains(&format!("{class:>12}")), "{stdout}");
    }
    let accuracy = stdout
        .lines()
        .rfind(|l| l.contains("val_acc: "))
        .map(|l| common::epoch_field(l, "val_acc"))
        .unwrap();
    assert!(accuracy >= 0.9, "val_acc {accuracy}: {stdout}");

    // predict resizes a picture of any size to 48×40 grey and names the folder's classes.
    let picture = dir.path().join("query.png");
    image::RgbImage::from_pixel(300, 200, image::Rgb([35, 30, 25]))
        .save(&picture)
        .unwrap();
    let out = minivgg_cached(
        &cache,
        &[
            "predict",
            "--weights",
            weights.to_str().unwrap(),
            "--top",
            "1",
            picture.to_str().unwrap(),
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!("{}: dark ", picture.display())),
        "{stdout}"
    );

    // The ONNX file takes [batch, 40, 48, 1] and carries the class names.
    let onnx = dir.path().join("shapes.onnx");
    let out = common::export(&weights, &onnx);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&onnx).unwrap();
    let needle = br#"["bright","dark","mid"]"#;
    assert!(bytes.windows(needle.len()).any(|w| w == needle));
}
