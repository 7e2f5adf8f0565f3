//! Image folders through the binary: CIFAR-10's test split written out as PNGs scores as the
//! binary split does; a folder of another shape (48×40 grey, 3 classes of its own) trains,
//! saves, predicts with its own class names, evaluates on the data it records (and refuses other
//! data, naming what would fit) and exports; and one of 40×48 RGB, stopped and
//! resumed, ends as the run never stopped, and its ONNX file runs in tract as minivgg does.

use crate::common::{
    self, command_line, minivgg_cached, real_data_path, save_picture, text, write_class_folders,
};
use minivgg::data::cifar10;
use std::path::Path;
use std::process::Output;

/// Writes `per_class` pictures of each class into `folder/CLASS/`: the class's colour plus a
/// little noise that varies over the picture, each of another size (60 + i by 50 + i % 7), so
/// that every one is resized.
fn write_class_folder(folder: &Path, classes: &[(&str, [u8; 3])], per_class: u32) {
    let names: Vec<&str> = classes.iter().map(|&(class, _)| class).collect();
    write_class_folders(folder, &names, per_class, |c, i| {
        let (w, h) = (60 + i, 50 + i % 7);
        image::RgbImage::from_fn(w, h, |x, y| {
            let noise = ((x * 7 + y * 13 + i * 31) % 23) as u8;
            image::Rgb(classes[c].1.map(|c| c.saturating_add(noise)))
        })
    });
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
            let picture = image::RgbImage::from_raw(32, 32, image.to_vec()).unwrap();
            save_picture(&class_dir.join(format!("{i:05}.png")), picture);
        }
    }
    let weights = dir.path().join("model.safetensors");
    let quick = dir.path().join("quick.png");
    let out = minivgg_cached(
        &cache,
        &command_line(
            "train --model shallownet --epochs 1 --limit 2000 --seed 1",
            &[
                "--output",
                quick.to_str().unwrap(),
                "--save",
                weights.to_str().unwrap(),
            ],
        ),
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
fn a_grey_48_by_40_folder_of_three_classes_trains_saves_predicts_evaluates_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, folder) = (dir.path().join("cache"), dir.path().join("shapes"));
    // Three classes told apart by brightness.
    let classes = [("bright", [220; 3]), ("dark", [30; 3]), ("mid", [128; 3])];
    write_class_folder(&folder, &classes, 40);
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

    // A folder stands for the pictures in it, in name order; one without any is refused.
    let queries = dir.path().join("queries");
    std::fs::create_dir(&queries).unwrap();
    for (name, grey) in [("b.png", 225), ("a.jpg", 28)] {
        image::RgbImage::from_pixel(64, 64, image::Rgb([grey; 3]))
            .save(queries.join(name))
            .unwrap();
    }
    std::fs::write(queries.join("notes.txt"), "not a picture").unwrap();
    let predict = |what: &Path| {
        let args = [
            "predict",
            "--model",
            weights.to_str().unwrap(),
            "--top",
            "1",
        ];
        minivgg_cached(&cache, &[&args[..], &[what.to_str().unwrap()]].concat())
    };
    let out = predict(&queries);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{}: dark ", queries.join("a.jpg").display())),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("{}: bright ", queries.join("b.png").display())),
        "{lines:?}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = predict(&empty);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("{} holds no pictures (png, jpg", empty.display())),
        "{}",
        text(&out.stderr)
    );

    // The model knows its data: evaluate without --data scores its validation split, as
    // with the flags it was trained with.
    let evaluate = |extra: &[&str]| {
        let confusion = dir.path().join("confusion.png");
        let args = [
            &["evaluate", "--model", weights.to_str().unwrap()][..],
            &["--confusion", confusion.to_str().unwrap()],
            extra,
        ];
        minivgg_cached(&cache, &args.concat())
    };
    let own = evaluate(&[]);
    let stdout = text(&own.stdout);
    assert!(own.status.success(), "{stdout}{}", text(&own.stderr));
    let trained_on = format!(
        "was trained on {}: evaluating on its validation split",
        folder.display()
    );
    assert!(stdout.contains(&trained_on), "{stdout}");
    let flagged = evaluate(&[&["--data", folder.to_str().unwrap()][..], &flags].concat());
    assert!(flagged.status.success(), "{}", text(&flagged.stderr));
    assert_eq!(score_line(&stdout), score_line(&text(&flagged.stdout)));
    // Other data is refused before a picture is decoded, naming what would fit ...
    let refused = |out: Output, expected: &str| {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !text(&out.stdout).contains("loading"),
            "{}",
            text(&out.stdout)
        );
    };
    refused(
        evaluate(&["--data", folder.to_str().unwrap()]),
        "lenet takes (None, 40, 48, 1) inputs; ",
    );
    refused(
        evaluate(&["--data", folder.to_str().unwrap()]),
        "gives (None, 32, 32, 3) images: pass --image-size 48x40 and pass --grayscale",
    );
    refused(
        evaluate(&["--data", "cifar10"]),
        "CIFAR-10 gives (None, 32, 32, 3) images: name the data it was trained on with --data",
    );
    // ... and data of the same shape whose classes are others, naming both.
    let others = dir.path().join("others");
    write_class_folder(
        &others,
        &[("a", [0; 3]), ("b", [90; 3]), ("c", [250; 3])],
        4,
    );
    let out = evaluate(&[&["--data", others.to_str().unwrap()][..], &flags].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let expected = format!(
        "{} was trained on the classes 3 (bright, dark, mid); others has the classes 3 (a, b, c): \
         name the data it was trained on with --data",
        weights.display()
    );
    assert!(
        text(&out.stderr).contains(&expected),
        "{}",
        text(&out.stderr)
    );

    // The ONNX file takes [batch, 40, 48, 1] and carries the class names.
    let onnx = dir.path().join("shapes.onnx");
    let out = common::export(&weights, &onnx);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&onnx).unwrap();
    let needle = br#"["bright","dark","mid"]"#;
    assert!(bytes.windows(needle.len()).any(|w| w == needle));
    let grey = minivgg::data::ImageShape {
        height: 40,
        width: 48,
        channels: 1,
    };
    let probabilities = common::tract_probabilities(&onnx, &vec![0.5; grey.len()], 1, grey, 3);
    assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

/// A folder made 40×48 RGB (taller than wide, so a height and width swapped anywhere shows),
/// trained by MiniVGGNet, whose batch normalization and dropout a resume must restore
/// exactly: stopped by Ctrl-C and resumed, the run ends with the weights, bit for bit, and the
/// history of the run never stopped. Its ONNX file takes [batch, 48, 40, 3] and gives, in
/// tract, minivgg's own probabilities in evaluation mode (within 1e-5).
#[test]
fn a_40_by_48_rgb_folder_stopped_and_resumed_ends_as_the_whole_run_and_runs_in_tract() {
    use minivgg::data::batches::gather;
    use minivgg::data::folder::{self, FolderOptions};
    use minivgg::data::source::ImageSize;
    use minivgg::data::ImageShape;
    use minivgg::engine::{Mode, Precision};
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let (cache, folder) = (dir.path().join("cache"), dir.path().join("colours"));
    let classes = [
        ("blue", [40, 60, 200]),
        ("green", [50, 190, 60]),
        ("red", [200, 50, 40]),
    ];
    write_class_folder(&folder, &classes, 24);
    let shape = ImageShape {
        height: 48,
        width: 40,
        channels: 3,
    };
    const EPOCHS: usize = 12;
    let run = |name: &str| -> Vec<String> {
        let out = dir.path().join(name);
        let (plot, model) = (out.join("plot.png"), out.join("model.safetensors"));
        command_line(
            "train --image-size 40x48 --val-split 0.25 --model minivggnet --batch-size 16 \
             --seed 9 --threads 2",
            &[
                "--epochs",
                &EPOCHS.to_string(),
                "--data",
                folder.to_str().unwrap(),
                "--output",
                plot.to_str().unwrap(),
                "--save",
                model.to_str().unwrap(),
            ],
        )
    };
    let whole = run("whole");
    let out = minivgg_cached(&cache, &whole);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("colours: 54 training and 18 validation images, 40×48 RGB, 3 classes"),
        "{stdout}"
    );

    // Every write held 150 ms: once epoch 2 is reported, ten epochs of writes (four per epoch)
    // are still to come, so the Ctrl-C lands inside the run however fast this machine trains.
    let mut child = common::minivgg_command(&cache)
        .args(run("stopped"))
        .env("MINIVGG_TEST_WRITE_DELAY_MS", "150")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout += &line;
        stdout.push('\n');
        if line.starts_with(&format!("Epoch 2/{EPOCHS} ")) {
            break;
        }
    }
    assert!(
        stdout.contains(&format!("Epoch 2/{EPOCHS} ")),
        "the run ended before its second epoch: {stdout}"
    );
    common::ctrl_c(&child);
    for line in lines {
        stdout += &line.unwrap();
        stdout.push('\n');
    }
    let stopped = child.wait_with_output().unwrap();
    let checkpoint = dir.path().join("stopped/plot_checkpoint");
    common::assert_stopped_for_resume(&stopped, &checkpoint, &stdout);
    let model = |name: &str| dir.path().join(name).join("model.safetensors");
    assert!(
        !model("stopped").exists(),
        "an interrupted run saved a model"
    );

    let out = minivgg_cached(
        &cache,
        &[
            "train",
            "--resume",
            checkpoint.to_str().unwrap(),
            "--threads",
            "2",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "[INFO] resuming minivggnet from {}: epoch ",
            checkpoint.display()
        )),
        "{stdout}"
    );
    println!(
        "{}",
        stdout.lines().find(|l| l.contains("resuming")).unwrap()
    );
    assert!(
        std::fs::read(model("whole")).unwrap() == std::fs::read(model("stopped")).unwrap(),
        "the resumed run's weights differ from the uninterrupted run's"
    );
    let history =
        |name: &str| common::history_without_times(&dir.path().join(name).join("plot.csv"));
    assert_eq!(history("stopped"), history("whole"));
    assert_eq!(
        history("whole").len(),
        EPOCHS + 1,
        "a header and a row per epoch"
    );

    // The ONNX file, in tract, on the validation images (from the cache the runs wrote).
    let onnx = dir.path().join("colours.onnx");
    let out = common::export(&model("whole"), &onnx);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let options = FolderOptions {
        size: ImageSize {
            width: 40,
            height: 48,
        },
        val_split: Some(0.25),
        cache_dir: Some(cache.clone()),
        ..FolderOptions::default()
    };
    let data = folder::load(&folder, &options).unwrap();
    assert_eq!(data.shape(), shape);
    assert!(data.test.is_mapped(), "the runs' cache was not used");
    let n = data.test.len();
    let mut input = vec![0.0; n * shape.len()];
    let mut labels = Vec::new();
    gather(
        &data.test,
        &(0..n).collect::<Vec<_>>(),
        None,
        &mut input,
        &mut labels,
    );
    // And blends of two validation images of different classes in 33 steps: the network goes
    // from sure of one to sure of the other, so some blends' probabilities lie between, where
    // a wrong layout would show (saturated probabilities, 0 or 1 everywhere, would hide it).
    let other = labels.iter().position(|&l| l != labels[0]).unwrap();
    let image = |i: usize| &input[i * shape.len()..(i + 1) * shape.len()];
    let (first, second) = (image(0).to_vec(), image(other).to_vec());
    const BLENDS: usize = 33;
    for k in 0..BLENDS {
        let t = k as f32 / (BLENDS - 1) as f32;
        input.extend(
            first
                .iter()
                .zip(&second)
                .map(|(a, b)| (1.0 - t) * a + t * b),
        );
    }
    let total = input.len() / shape.len();
    let mut net =
        minivgg::store::model_file::load(&model("whole"), total, Precision::Fp32).unwrap();
    net.input_mut(total).copy_from_slice(&input);
    net.forward(total, Mode::Eval);
    let ours = net.probabilities(total).to_vec();
    let predicted = |p: &[f32]| {
        p.chunks(3)
            .map(|c| (0..3).max_by(|&a, &b| c[a].total_cmp(&c[b])).unwrap() as u8)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        predicted(&ours[..n * 3]),
        labels,
        "the trained network's validation predictions"
    );
    for batch in [total, 5] {
        let theirs =
            common::tract_probabilities(&onnx, &input[..batch * shape.len()], batch, shape, 3);
        let max_diff = common::max_difference(&ours[..batch * 3], &theirs);
        println!("{batch} images of 40×48 RGB: max |minivgg − tract| {max_diff:.3e}");
        assert!(max_diff <= 1e-5, "probabilities differ by {max_diff}");
    }
    let spread = ours.iter().filter(|p| (0.01..0.99).contains(*p)).count();
    println!("{spread} of {} probabilities in (0.01, 0.99)", ours.len());
    assert!(spread >= 3, "{spread} probabilities in (0.01, 0.99)");
}

/// `--limit` on a folder, whose images come class by class, keeps every class: a class at a
/// time in turn, the log saying how many of each it kept, the report covering them all.
#[test]
fn a_limit_on_a_folder_sorted_by_class_keeps_an_equal_share_of_every_class() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, folder) = (dir.path().join("cache"), dir.path().join("shapes"));
    let classes = [
        ("circle", [200, 30, 30]),
        ("square", [30, 200, 30]),
        ("star", [30, 30, 200]),
    ];
    write_class_folder(&folder, &classes, 6);
    let plot = dir.path().join("out/plot.png");
    let (folder, plot_arg) = (folder.to_str().unwrap(), plot.to_str().unwrap());
    let out = minivgg_cached(
        &cache,
        &[
            "train",
            "--data",
            folder,
            "--val-split",
            "0.5",
            "--limit",
            "6",
            "--epochs",
            "1",
            "--model",
            "lenet",
            "--output",
            plot_arg,
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "[INFO] --limit 6: 2 of each class for training and 2 of each class for validation\n"
        ),
        "{stdout}"
    );
    let report = std::fs::read_to_string(dir.path().join("out/plot_report.txt")).unwrap();
    for (class, _) in classes {
        let row = report
            .lines()
            .find(|l| l.split_whitespace().next() == Some(class))
            .unwrap_or_else(|| panic!("no {class} in {report}"));
        assert_eq!(row.split_whitespace().last(), Some("2"), "{row}");
    }
}
