//! Every bad input of the data readers (image folders, the MNIST family's IDX files,
//! CIFAR-100, and the folder-only flags) through the binary: exit code 2, the whole message
//! naming the path and what is wrong, and nothing written: no plot, no model, no directory
//! for them, the inputs unchanged byte for byte, nothing in the (temporary) user cache. Each
//! run has HOME and the cache in a temporary directory and no $MINIVGG_DATA, so nothing
//! touches the real cache or downloads anything. And --skip-bad-images trains past the
//! pictures that do not decode, naming each.

use crate::common::{
    self, command_line, idx_images, idx_labels, minivgg_offline, png_bytes, png_declaring,
};
use minivgg::data::idx::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use std::path::{Path, PathBuf};

/// A small PNG of one colour.
fn png(colour: [u8; 3]) -> Vec<u8> {
    png_bytes(image::RgbImage::from_pixel(9, 7, image::Rgb(colour)))
}

/// What a case writes before its run, relative to the temporary root.
enum Content {
    Bytes(Vec<u8>),
    /// A file of `len` bytes, `head` then zeros, written sparse.
    Sparse {
        len: u64,
        head: Vec<u8>,
    },
    Dir,
    /// A symbolic link to this target.
    Link(&'static str),
    /// A FIFO (named pipe): opening it to read waits for a writer that never comes.
    Fifo,
}

fn write(path: &Path, content: &Content) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    match content {
        Content::Bytes(bytes) => std::fs::write(path, bytes).unwrap(),
        Content::Sparse { len, head } => {
            let file = std::fs::File::create(path).unwrap();
            file.set_len(*len).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, head, 0).unwrap();
        }
        Content::Dir => std::fs::create_dir_all(path).unwrap(),
        Content::Link(target) => std::os::unix::fs::symlink(target, path).unwrap(),
        Content::Fifo => {
            let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        }
    }
}

/// The four IDX files of a small valid set (5 training and 3 test images of 4×3) in `dir`,
/// each replaced by `changed` where it names it (`None` leaves it out); the other names of
/// `changed` are added.
fn idx_set(dir: &str, changed: &[(&str, Option<Vec<u8>>)]) -> Vec<(String, Content)> {
    let files = [
        (TRAIN_IMAGES.to_string(), idx_images(5, 4, 3)),
        (TRAIN_LABELS.to_string(), idx_labels(&[0, 1, 2, 9, 4])),
        (TEST_IMAGES.to_string(), idx_images(3, 4, 3)),
        (TEST_LABELS.to_string(), idx_labels(&[7, 8, 9])),
    ];
    let mut out: Vec<(String, Content)> = files
        .into_iter()
        .filter(|(name, _)| !changed.iter().any(|(c, _)| c == name))
        .map(|(name, bytes)| (format!("{dir}/{name}"), Content::Bytes(bytes)))
        .collect();
    for (name, bytes) in changed {
        if let Some(bytes) = bytes {
            out.push((format!("{dir}/{name}"), Content::Bytes(bytes.clone())));
        }
    }
    out
}

/// CIFAR-100's file of fine class names (`fine_names` of them) in `c100/cifar-100-binary/`,
/// and the files of `rest` beside it.
fn cifar100_set(fine_names: usize, rest: Vec<(&str, Content)>) -> Vec<(String, Content)> {
    let names = |prefix: &str, n: usize| -> Vec<u8> {
        (0..n)
            .map(|i| format!("{prefix}{i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let dir = "c100/cifar-100-binary";
    let mut out = vec![(
        format!("{dir}/fine_label_names.txt"),
        Content::Bytes(names("fine", fine_names)),
    )];
    out.extend(
        rest.into_iter()
            .map(|(name, c)| (format!("{dir}/{name}"), c)),
    );
    out
}

/// Two classes (a and b) of `per_class` pictures each in `pictures/`, and the `extra` files.
fn two_classes(per_class: usize, extra: Vec<(&str, Content)>) -> Vec<(String, Content)> {
    let mut out: Vec<(String, Content)> = ["a", "b"]
        .into_iter()
        .flat_map(|class| (0..per_class).map(move |i| format!("pictures/{class}/{i}.png")))
        .map(|f| (f, Content::Bytes(png([200, 30, 30]))))
        .collect();
    out.extend(extra.into_iter().map(|(f, c)| (format!("pictures/{f}"), c)));
    out
}

struct Case {
    name: &'static str,
    files: Vec<(String, Content)>,
    /// What --data names: a path under the root, or a data set's name (where the root holds
    /// nothing of that name); then the other flags.
    data: &'static str,
    flags: &'static [&'static str],
    /// The whole last line of stderr, after `error: `.
    message: String,
    /// Whether the run may leave its decoding in the user cache (it decoded every picture
    /// before finding out what is wrong).
    caches: bool,
}

#[test]
fn every_bad_input_of_the_data_readers_exits_2_naming_it_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let path = |rel: &str| root.join(rel).display().to_string();
    let (pictures, digits, c100) = (path("pictures"), path("digits"), path("c100"));
    let c100_dir = path("c100/cifar-100-binary");
    let idx_file = |name: &str| path(&format!("digits/{name}"));
    let picture = png([1, 2, 3]);
    let case = |name, files, data, flags, message: String| Case {
        name,
        files,
        data,
        flags,
        message,
        caches: false,
    };
    let val_split = &["--val-split", "0.5"][..];
    let mut gif = b"GIF89a".to_vec();
    gif.resize(16, 0);
    let mut cut = idx_images(5, 4, 3);
    cut.pop();
    let mut record = vec![0u8; 3074];
    record[1] = 100;
    let not_regular = |file: &str, kind: &str| {
        format!(
            "{pictures}/{file} is {kind}, not a regular file: pictures are read from regular \
             files only"
        )
    };
    let two_labels = |second: &str, what: &str, first: &str| {
        let class = |p: &str| p.split('/').next().unwrap().to_string();
        format!(
            "{pictures}: {second} is the {what} {first} again (a link), under class {} as well \
             as {}: a picture cannot have two labels",
            class(second),
            class(first)
        )
    };
    let two_labels_in_splits = |second: &str, first: &str| {
        let class = |p: &str| p.split('/').nth(1).unwrap().to_string();
        format!(
            "{pictures}: {second} is the picture {first} again (a link), under class {} as well \
             as {}: a picture cannot have two labels",
            class(second),
            class(first)
        )
    };
    let cases = vec![
        // Files that are not what they seem: never opened, or opened without waiting, and
        // refused naming what they are.
        case(
            "a picture that is a link to /dev/zero",
            two_classes(2, vec![("a/zero.png", Content::Link("/dev/zero"))]),
            "pictures",
            val_split,
            not_regular("a/zero.png", "a character device"),
        ),
        case(
            "a picture that is a FIFO",
            two_classes(2, vec![("b/pipe.png", Content::Fifo)]),
            "pictures",
            val_split,
            not_regular("b/pipe.png", "a FIFO (named pipe)"),
        ),
        case(
            "--data a FIFO named .tar.gz",
            vec![("cifar-10-binary.tar.gz".into(), Content::Fifo)],
            "cifar-10-binary.tar.gz",
            &[],
            format!(
                "{}: cannot read: a FIFO (named pipe), not a regular file",
                path("cifar-10-binary.tar.gz")
            ),
        ),
        case(
            "MNIST's training images a link to /dev/zero",
            idx_set("digits", &[(TRAIN_IMAGES, None)])
                .into_iter()
                .chain([(
                    format!("digits/{TRAIN_IMAGES}"),
                    Content::Link("/dev/zero"),
                )])
                .collect(),
            "digits",
            &[],
            format!(
                "{}: cannot read: a character device, not a regular file",
                idx_file(TRAIN_IMAGES)
            ),
        ),
        // Links in folders: followed once; what they make of a picture cannot be two labels.
        case(
            "a class folder that is a link to another class",
            two_classes(2, vec![("c", Content::Link("a"))]),
            "pictures",
            val_split,
            two_labels("c", "folder", "a"),
        ),
        case(
            "a class folder that is a link to the data set's folder",
            two_classes(2, vec![("c", Content::Link("."))]),
            "pictures",
            val_split,
            format!(
                "{pictures}: the class folder c is a link to the data set's folder or one above \
                 it: it would hold every class"
            ),
        ),
        case(
            "a test picture linked to a training picture of another class",
            ["train/a", "train/b", "test/a", "test/b"]
                .into_iter()
                .map(|d| (format!("pictures/{d}/0.png"), Content::Bytes(picture.clone())))
                .chain([(
                    "pictures/test/b/1.png".to_string(),
                    Content::Link("../../train/a/0.png"),
                )])
                .collect(),
            "pictures",
            &[],
            two_labels_in_splits("test/b/1.png", "train/a/0.png"),
        ),
        case(
            "a picture linked into another class",
            two_classes(2, vec![("b/also.png", Content::Link("../a/0.png"))]),
            "pictures",
            val_split,
            two_labels("b/also.png", "picture", "a/0.png"),
        ),
        // Splits that hold no images.
        case(
            "IDX files whose header counts 0 training images",
            idx_set(
                "digits",
                &[
                    (TRAIN_IMAGES, Some(idx_images(0, 4, 3))),
                    (TRAIN_LABELS, Some(idx_labels(&[]))),
                ],
            ),
            "digits",
            &[],
            format!("{digits}: its training split holds no images: there is nothing to train on"),
        ),
        case(
            "IDX files whose header counts 0 test images",
            idx_set(
                "digits",
                &[
                    (TEST_IMAGES, Some(idx_images(0, 4, 3))),
                    (TEST_LABELS, Some(idx_labels(&[]))),
                ],
            ),
            "digits",
            &[],
            format!(
                "{digits}: its validation split holds no images: there is nothing to validate on"
            ),
        ),
        // Image folders.
        case(
            "a flat folder of pictures",
            (0..3)
                .map(|i| (format!("pictures/{i}.png"), Content::Bytes(picture.clone())))
                .collect(),
            "pictures",
            val_split,
            format!(
                "{pictures}: 3 images directly in it and no class folders: move them into a \
                 folder per class (DIR/<class>/<images>), named for the class"
            ),
        ),
        case(
            "a folder of no class folders",
            vec![("pictures".into(), Content::Dir)],
            "pictures",
            val_split,
            format!(
                "{pictures}: no images found: expected a folder per class (DIR/<class>/<images>), \
                 or DIR/train/<class>/ and DIR/test/<class>/"
            ),
        ),
        case(
            "an empty class folder",
            two_classes(2, vec![("c/notes.txt", Content::Bytes(b"no pictures".to_vec()))]),
            "pictures",
            val_split,
            format!("{pictures}: the class folder c holds no images"),
        ),
        case(
            "a single class",
            vec![
                ("pictures/a/0.png".into(), Content::Bytes(picture.clone())),
                ("pictures/a/1.png".into(), Content::Bytes(picture.clone())),
            ],
            "pictures",
            val_split,
            format!(
                "{pictures}: only one class folder (a); a classifier needs at least 2 classes \
                 (Keras' categorical labels)"
            ),
        ),
        case(
            "a test split whose classes differ from the training split's",
            ["train/a", "train/b", "test/a", "test/c"]
                .into_iter()
                .map(|d| (format!("pictures/{d}/0.png"), Content::Bytes(picture.clone())))
                .collect(),
            "pictures",
            &[],
            format!(
                "{pictures}: train/ and test/ have different classes: only in train/: b; \
                 only in test/: c"
            ),
        ),
        case(
            "--val-split for a folder with its own test split",
            ["train/a", "train/b", "test/a", "test/b"]
                .into_iter()
                .map(|d| (format!("pictures/{d}/0.png"), Content::Bytes(picture.clone())))
                .collect(),
            "pictures",
            val_split,
            format!("{pictures} has its own test split (test/): --val-split does not apply"),
        ),
        case(
            "no test split and no --val-split",
            two_classes(2, vec![]),
            "pictures",
            &[],
            format!(
                "{pictures} has no test split: pass --val-split F to hold out a fraction F of \
                 each class for validation, or make train/ and test/ folders"
            ),
        ),
        case(
            "--val-split 0",
            two_classes(2, vec![]),
            "pictures",
            &["--val-split", "0"],
            "--val-split must be between 0 and 1 (both excluded), got 0".into(),
        ),
        case(
            "--val-split 1",
            two_classes(2, vec![]),
            "pictures",
            &["--val-split", "1"],
            "--val-split must be between 0 and 1 (both excluded), got 1".into(),
        ),
        case(
            "--val-split NaN",
            two_classes(2, vec![]),
            "pictures",
            &["--val-split", "NaN"],
            "--val-split must be between 0 and 1 (both excluded), got NaN".into(),
        ),
        case(
            "a class with too few images for the split",
            two_classes(2, vec![("c/0.png", Content::Bytes(picture.clone()))]),
            "pictures",
            val_split,
            format!(
                "{pictures}: class c has 1 image(s), too few to hold out some for validation \
                 and keep some for training (it needs at least 2)"
            ),
        ),
        case(
            "a PNG header declaring 100000×100000 pixels",
            two_classes(2, vec![("b/huge.png", Content::Bytes(png_declaring(100_000, 100_000)))]),
            "pictures",
            val_split,
            format!(
                "{pictures}/b/huge.png: a picture larger than minivgg decodes (at most 16384 \
                 pixels a side and 128 MiB decoded)"
            ),
        ),
        case(
            "a .png that is not a picture",
            two_classes(2, vec![("a/bad.png", Content::Bytes(b"not a picture".to_vec()))]),
            "pictures",
            val_split,
            format!("{pictures}/a/bad.png: not an image that can be read (The image format could not be determined)"),
        ),
        Case {
            caches: true,
            ..case(
                "--skip-bad-images on a class of which no picture decodes",
                two_classes(2, vec![
                    ("c/0.png", Content::Bytes(b"x".to_vec())),
                    ("c/1.jpg", Content::Bytes(b"y".to_vec())),
                ]),
                "pictures",
                &["--val-split", "0.5", "--skip-bad-images"],
                format!("{pictures}: none of the images of class c could be read"),
            )
        },
        // The MNIST family's IDX files.
        case(
            "IDX images with another file's magic number",
            idx_set("digits", &[(TRAIN_IMAGES, Some(gif))]),
            "digits",
            &[],
            format!(
                "{}: magic number 0x47494638, expected 0x00000803 (IDX images)",
                idx_file(TRAIN_IMAGES)
            ),
        ),
        case(
            "IDX images of one dimension",
            idx_set("digits", &[(TRAIN_IMAGES, Some(idx_labels(&[1, 2])))]),
            "digits",
            &[],
            format!(
                "{}: 1 dimensions, expected 3 (IDX images)",
                idx_file(TRAIN_IMAGES)
            ),
        ),
        case(
            "IDX labels of three dimensions",
            idx_set("digits", &[(TRAIN_LABELS, Some(idx_images(1, 1, 1)))]),
            "digits",
            &[],
            format!(
                "{}: 3 dimensions, expected 1 (IDX labels)",
                idx_file(TRAIN_LABELS)
            ),
        ),
        case(
            "IDX images too short for their header",
            idx_set("digits", &[(TEST_IMAGES, Some(vec![0, 0]))]),
            "digits",
            &[],
            format!(
                "{}: 2 bytes, too short for its 16-byte IDX header",
                idx_file(TEST_IMAGES)
            ),
        ),
        case(
            "IDX images a byte shorter than their header's count",
            idx_set("digits", &[(TRAIN_IMAGES, Some(cut))]),
            "digits",
            &[],
            format!(
                "{}: 75 bytes, but its header's 5 images of 4×3 take 76",
                idx_file(TRAIN_IMAGES)
            ),
        ),
        case(
            "IDX images and labels of different counts",
            idx_set("digits", &[(TRAIN_LABELS, Some(idx_labels(&[0, 1, 2])))]),
            "digits",
            &[],
            format!(
                "{} holds 5 images but {} holds 3 labels",
                idx_file(TRAIN_IMAGES),
                idx_file(TRAIN_LABELS)
            ),
        ),
        case(
            "IDX test images of another size than the training images",
            idx_set("digits", &[(TEST_IMAGES, Some(idx_images(3, 3, 4)))]),
            "digits",
            &[],
            format!(
                "{}: images of 4×3, but {} has images of 3×4",
                idx_file(TRAIN_IMAGES),
                idx_file(TEST_IMAGES)
            ),
        ),
        case(
            "an IDX label outside the 10 classes",
            idx_set("digits", &[(TEST_LABELS, Some(idx_labels(&[7, 10, 9])))]),
            "digits",
            &[],
            format!("{}: label 1 is 10, expected 0..9", idx_file(TEST_LABELS)),
        ),
        case(
            "an IDX file missing",
            idx_set("digits", &[(TEST_LABELS, None)]),
            "digits",
            &[],
            format!(
                "{digits}: missing {TEST_LABELS} (looked for {TEST_LABELS} and {TEST_LABELS}.gz)"
            ),
        ),
        case(
            "an IDX .gz that is not gzip",
            idx_set(
                "digits",
                &[
                    (TEST_LABELS, None),
                    (&format!("{TEST_LABELS}.gz"), Some(b"\x1f\x8b not gzip".to_vec())),
                ],
            ),
            "digits",
            &[],
            format!(
                "{}.gz: damaged gzip data: invalid gzip header",
                idx_file(TEST_LABELS)
            ),
        ),
        case(
            "--skip-bad-images with IDX files",
            idx_set("digits", &[]),
            "digits",
            &["--skip-bad-images"],
            format!("--skip-bad-images applies to image folders; {digits} has its own image size and test split"),
        ),
        // CIFAR-100.
        case(
            "CIFAR-100 with 99 fine class names",
            cifar100_set(99, vec![]),
            "c100",
            &[],
            format!(
                "{c100_dir}/fine_label_names.txt: 99 class names, expected 100 (one per line)"
            ),
        ),
        case(
            "CIFAR-100 without train.bin",
            cifar100_set(100, vec![]),
            "c100",
            &[],
            format!("missing file {c100_dir}/train.bin"),
        ),
        case(
            "CIFAR-100 with a train.bin of one record",
            cifar100_set(100, vec![("train.bin", Content::Bytes(vec![0; 3074]))]),
            "c100",
            &[],
            format!(
                "{c100_dir}/train.bin: 3074 bytes, expected 153700000 (50000 records of 3074 \
                 bytes)"
            ),
        ),
        case(
            "CIFAR-100 with a fine label of 100",
            cifar100_set(
                100,
                vec![(
                    "train.bin",
                    Content::Sparse {
                        len: 50_000 * 3074,
                        head: record,
                    },
                )],
            ),
            "c100",
            &[],
            format!("{c100_dir}/train.bin: record 0 has fine label 100, expected 0..99"),
        ),
        case(
            "CIFAR-100's coarse labels without their names",
            cifar100_set(100, vec![]),
            "c100",
            &["--labels", "coarse"],
            format!("missing file {c100_dir}/coarse_label_names.txt"),
        ),
        case(
            "a CIFAR-100 archive that is not gzip",
            vec![(
                "cifar-100-binary.tar.gz".into(),
                Content::Bytes(b"not an archive".to_vec()),
            )],
            "cifar-100-binary.tar.gz",
            &[],
            format!(
                "{}: damaged gzip or tar archive: invalid gzip header",
                path("cifar-100-binary.tar.gz")
            ),
        ),
        case(
            "--grayscale with CIFAR-100",
            cifar100_set(100, vec![]),
            "c100",
            &["--grayscale"],
            format!("--grayscale applies to image folders; {c100} has its own image size and test split"),
        ),
        // The folder-only flags with a data set by name, refused before anything is
        // downloaded.
        case(
            "--val-split with --data cifar10",
            vec![],
            "cifar10",
            val_split,
            "--val-split applies to image folders; CIFAR-10 has its own image size and test split"
                .into(),
        ),
        case(
            "--image-size with --data mnist",
            vec![],
            "mnist",
            &["--image-size", "28"],
            "--image-size applies to image folders; MNIST has its own image size and test split"
                .into(),
        ),
    ];

    let (plot, save) = (
        root.join("out/plot.png"),
        root.join("out/model.safetensors"),
    );
    let cache = root.join("cache");
    let started = std::time::Instant::now();
    let (count, mut failures) = (cases.len(), Vec::new());
    for case in cases {
        for (rel, content) in &case.files {
            write(&root.join(rel), content);
        }
        let data = if case.data.contains('/') || root.join(case.data).exists() {
            path(case.data)
        } else {
            case.data.to_string()
        };
        let mut args: Vec<String> = [
            "train", "--data", &data, "--model", "lenet", "--epochs", "1",
        ]
        .map(String::from)
        .to_vec();
        args.extend(case.flags.iter().map(|f| f.to_string()));
        args.extend(["--output".into(), plot.display().to_string()]);
        args.extend(["--save".into(), save.display().to_string()]);
        let before = common::snapshot(root);
        let out = minivgg_offline(root, &args);
        let (stdout, stderr) = (common::text(&out.stdout), common::text(&out.stderr));
        let mut problems: Vec<String> = Vec::new();
        if out.status.code() != Some(2) || stderr.contains("panicked") {
            problems.push(format!(
                "exit code {:?}: {stdout}{stderr}",
                out.status.code()
            ));
        }
        let (got, want) = (
            stderr.lines().last().unwrap_or_default(),
            format!("error: {}", case.message),
        );
        if got != want {
            problems.push(format!("\n    got  {got:?}\n    want {want:?}"));
        }
        if plot.exists() || save.exists() {
            problems.push("an output was written".into());
        }
        // Outside the user cache, everything as it was; in it, nothing but (empty)
        // directories, unless the case may cache its decoding.
        let after = common::snapshot(root);
        let (cached, outside): (Vec<_>, Vec<_>) =
            after.into_iter().partition(|(p, ..)| p.starts_with(&cache));
        if outside != before {
            let changed = |a: &[common::Entry], b: &[common::Entry]| -> Vec<PathBuf> {
                let new = a.iter().filter(|e| !b.contains(e));
                new.map(|(p, ..)| p.clone()).collect()
            };
            problems.push(format!(
                "files changed: {:?} are new or rewritten, {:?} are gone or rewritten",
                changed(&outside, &before),
                changed(&before, &outside)
            ));
        }
        let cached_files: Vec<_> = cached
            .iter()
            .filter(|(_, _, time, _)| time.is_some())
            .collect();
        if !case.caches && !cached_files.is_empty() {
            problems.push(format!("left in the cache: {cached_files:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
        for entry in std::fs::read_dir(root).unwrap() {
            let entry = entry.unwrap().path();
            if entry.is_dir() {
                std::fs::remove_dir_all(&entry).unwrap();
            } else {
                std::fs::remove_file(&entry).unwrap();
            }
        }
    }
    println!("{count} cases in {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// With --skip-bad-images, the pictures that do not decode (one that is not a picture, one
/// over the decoding limits) are listed and the run trains on the others.
#[test]
fn skip_bad_images_trains_past_the_pictures_that_do_not_decode_listing_each() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let files = two_classes(
        4,
        vec![
            ("a/bad.png", Content::Bytes(b"not a picture".to_vec())),
            (
                "b/huge.png",
                Content::Bytes(png_declaring(100_000, 100_000)),
            ),
        ],
    );
    for (rel, content) in &files {
        write(&root.join(rel), content);
    }
    let pictures = root.join("pictures").display().to_string();
    let (plot, save) = (
        root.join("out/plot.png"),
        root.join("out/model.safetensors"),
    );
    let args = command_line(
        "train --val-split 0.5 --skip-bad-images --model lenet --epochs 1 --seed 1",
        &[
            "--data",
            &pictures,
            "--output",
            plot.to_str().unwrap(),
            "--save",
            save.to_str().unwrap(),
        ],
    );
    let out = minivgg_offline(root, &args);
    let (stdout, stderr) = (common::text(&out.stdout), common::text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("[WARN]")).collect();
    assert_eq!(
        warnings,
        [
            format!(
                "[WARN] skipped {pictures}/a/bad.png: not an image that can be read (The image \
                 format could not be determined)"
            ),
            format!(
                "[WARN] skipped {pictures}/b/huge.png: a picture larger than minivgg decodes (at \
                 most 16384 pixels a side and 128 MiB decoded)"
            ),
        ]
    );
    assert!(
        stdout.contains("\n[INFO] skipped 2 images that could not be read (--skip-bad-images)\n"),
        "{stdout}"
    );
    // Of the 5 files of each class, 3 are held out: the 8 pictures left are split 3 and 5.
    assert!(
        stdout.contains(
            "\n[INFO] pictures: 3 training and 5 validation images, 32×32 RGB, 2 classes"
        ),
        "{stdout}"
    );
    assert!(plot.exists() && save.exists());
}

/// Links in a folder are followed once: links back up the tree (loops) and second paths to a
/// folder or a picture of the same class are each named in one line of `data`'s output, and
/// nothing is counted twice.
#[test]
fn links_in_a_folder_are_followed_once_and_each_loop_or_repeat_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let links = vec![
        ("a/up", Content::Link("..")),
        ("a/again.png", Content::Link("0.png")),
        ("b/deeper/down", Content::Link("../..")),
        ("b/more", Content::Link("deeper")),
    ];
    for (rel, content) in two_classes(3, links) {
        write(&root.join(rel), &content);
    }
    let pictures = root.join("pictures").display().to_string();
    let args = ["data", "--data", &pictures, "--val-split", "0.34"].map(String::from);
    let out = minivgg_offline(root, &args);
    let stdout = common::text(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        common::text(&out.stderr)
    );
    for note in [
        "a/again.png is the picture a/0.png again (a link): counted once",
        "a/up links back to .. (a loop): not followed",
        "b/deeper/down links back to ../.. (a loop): not followed",
        "b/more is the folder b/deeper again (a link): counted once",
    ] {
        let line = format!("[INFO] {pictures}: {note}\n");
        assert_eq!(stdout.matches(&line).count(), 1, "{line:?} in {stdout}");
    }
    assert!(stdout.contains("decoded 6 images"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "[INFO] {pictures}: --val-split 0.34 held out 2 of the 6 images for validation, \
             drawn with the series' seed 42, the same whatever --seed says\n"
        )),
        "{stdout}"
    );
    // Each class: 2 training images and 1 held out, as on disk.
    for class in ["a", "b"] {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(class))
            .unwrap_or_else(|| panic!("no row for {class} in {stdout}"));
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [class, "2", "1"]
        );
    }
}
