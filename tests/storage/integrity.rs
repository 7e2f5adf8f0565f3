//! Every file minivgg writes carries a checksum of each tensor, so a
//! damaged tensor is refused by name; non-finite weights are refused; files without checksums
//! still load, with a warning; and a checkpoint (file or directory) can stand wherever a
//! model is expected.

use crate::common::{self, command_line, export, minivgg, text};
use minivgg::engine::sgd::Sgd;
use minivgg::engine::{Network, Precision};
use minivgg::model::spec::ParamKind;
use minivgg::model::zoo;
use minivgg::store::model_file::{self, checksum, from_bytes, CHECKSUMS_KEY};
use minivgg::train::checkpoint;
use minivgg::train::fit::Progress;
use safetensors::tensor::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const VELOCITY: &str = "optimizer/velocity";

/// The tensors of a safetensors file in the file's order: name and the byte range of its data
/// within the file (after the 8-byte header length and the JSON header).
fn tensor_ranges(bytes: &[u8]) -> Vec<(String, std::ops::Range<usize>)> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut ranges: Vec<(String, std::ops::Range<usize>)> = header
        .iter()
        .filter(|(name, _)| name.as_str() != "__metadata__")
        .map(|(name, info)| {
            let offsets = &info["data_offsets"];
            let (start, end) = (
                offsets[0].as_u64().unwrap() as usize,
                offsets[1].as_u64().unwrap() as usize,
            );
            (name.clone(), 8 + n + start..8 + n + end)
        })
        .collect();
    ranges.sort_by_key(|(_, range)| range.start);
    ranges
}

fn load_err(path: &Path, bytes: &[u8], extras: &[&str]) -> String {
    match from_bytes(path, bytes, 2, Precision::Fp32, extras) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => format!("{e:#}"),
    }
}

/// Flips one bit of one byte at the start, the middle and the end of every tensor of `bytes`,
/// each time checking the exact error; returns how many files were damaged.
fn every_flip_is_named(path: &Path, bytes: &[u8], extras: &[&str], tensors: usize) -> usize {
    let ranges = tensor_ranges(bytes);
    assert_eq!(ranges.len(), tensors);
    let mut damaged = bytes.to_vec();
    let mut count = 0;
    for (i, (name, range)) in ranges.iter().enumerate() {
        let recorded = checksum(&bytes[range.clone()]);
        let mut positions = vec![range.start, (range.start + range.end) / 2, range.end - 1];
        positions.dedup();
        for (k, &at) in positions.iter().enumerate() {
            let bit = 1u8 << ((i + k) % 8);
            damaged[at] ^= bit;
            let actual = checksum(&damaged[range.clone()]);
            assert_eq!(
                load_err(path, &damaged, extras),
                format!(
                    "{}: tensor {name} is damaged: checksum {actual}, the file records {recorded}",
                    path.display()
                )
            );
            damaged[at] ^= bit;
            count += 1;
        }
    }
    assert_eq!(damaged, bytes);
    count
}

fn minivggnet() -> Network {
    Network::new(&zoo::minivggnet(true), 2, 5).unwrap()
}

fn checkpoint_bytes(net: &Network) -> Vec<u8> {
    let settings = common::small_run(PathBuf::from("plot.png"), Precision::Fp32);
    let mut sgd = Sgd::new(settings.sgd, net.params.len());
    for (i, v) in sgd.velocity.iter_mut().enumerate() {
        *v = (i % 7) as f32 * 1e-3;
    }
    checkpoint::encode(net, &sgd, &settings, &Progress::default()).unwrap()
}

#[test]
fn one_flipped_byte_in_any_tensor_of_a_model_or_a_checkpoint_is_named() {
    let net = minivggnet();
    let tensors = net.tensors().len();
    let model = model_file::to_bytes(&net, &[], HashMap::new()).unwrap();
    let path = Path::new("runs/minivggnet.safetensors");
    let loaded = from_bytes(path, &model, 2, Precision::Fp32, &[]).unwrap();
    assert!(loaded.verified);
    assert_eq!(loaded.net.params, net.params);
    let flips = every_flip_is_named(path, &model, &[], tensors);

    let ckpt = checkpoint_bytes(&net);
    let path = Path::new("runs/plot_checkpoint/checkpoint.safetensors");
    assert!(
        from_bytes(path, &ckpt, 2, Precision::Fp32, &[VELOCITY])
            .unwrap()
            .verified
    );
    let ckpt_flips = every_flip_is_named(path, &ckpt, &[VELOCITY], tensors + 1);
    eprintln!(
        "{flips} flipped bytes in {tensors} tensors of a MiniVGGNet model ({} bytes), \
         {ckpt_flips} in the {} tensors of its checkpoint ({} bytes): all named",
        model.len(),
        tensors + 1,
        ckpt.len()
    );
    assert_eq!(tensors, 32);
    assert_eq!(flips, 3 * tensors);
    assert_eq!(ckpt_flips, 3 * (tensors + 1));

    // Through checkpoint::read, as `train --resume` reads it.
    let dir = tempfile::tempdir().unwrap();
    let (name, range) = &tensor_ranges(&ckpt)[7];
    let mut damaged = ckpt.clone();
    damaged[range.start + 3] ^= 0x10;
    let file = dir.path().join(checkpoint::CHECKPOINT_FILE);
    std::fs::write(&file, &damaged).unwrap();
    let err = checkpoint::read(dir.path())
        .err()
        .expect("a damaged checkpoint");
    assert_eq!(
        format!("{err:#}"),
        format!(
            "{}: tensor {name} is damaged: checksum {}, the file records {}",
            file.display(),
            checksum(&damaged[range.clone()]),
            checksum(&ckpt[range.clone()])
        )
    );
}

/// With several damaged tensors, the one named is the first in the file (by data offset:
/// safetensors orders tensors by name), not the first of the network.
#[test]
fn the_first_damaged_tensor_in_the_file_is_named() {
    let model = model_file::to_bytes(&minivggnet(), &[], HashMap::new()).unwrap();
    let ranges: HashMap<String, std::ops::Range<usize>> =
        tensor_ranges(&model).into_iter().collect();
    let mut damaged = model.clone();
    for name in ["conv2d_1/kernel", "batch_normalization_1/beta"] {
        damaged[ranges[name].start] ^= 1;
    }
    let range = ranges["batch_normalization_1/beta"].clone();
    assert_eq!(
        load_err(Path::new("m.safetensors"), &damaged, &[]),
        format!(
            "m.safetensors: tensor batch_normalization_1/beta is damaged: checksum {}, the file records {}",
            checksum(&damaged[range.clone()]),
            checksum(&model[range])
        )
    );
}

/// The same tensors, with the checksums' metadata replaced by `checksums` (none if `None`).
fn with_checksums(bytes: &[u8], checksums: Option<String>) -> Vec<u8> {
    let file = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    metadata.remove(CHECKSUMS_KEY);
    if let Some(json) = checksums {
        metadata.insert(CHECKSUMS_KEY.to_string(), json);
    }
    safetensors::tensor::serialize(file.tensors(), Some(metadata)).unwrap()
}

fn recorded_checksums(bytes: &[u8]) -> BTreeMap<String, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    serde_json::from_str(&header.metadata().as_ref().unwrap()[CHECKSUMS_KEY]).unwrap()
}

#[test]
fn edited_checksums_are_caught_or_harmless() {
    let net = Network::new(&zoo::shallownet(), 1, 2).unwrap();
    let model = model_file::to_bytes(&net, &[], HashMap::new()).unwrap();
    let path = Path::new("m.safetensors");
    let sums = recorded_checksums(&model);
    assert_eq!(
        sums.keys().collect::<Vec<_>>(),
        [
            "conv2d_1/bias",
            "conv2d_1/kernel",
            "dense_1/bias",
            "dense_1/kernel"
        ]
    );

    // One hex digit of a recorded checksum changed in place: that tensor is named.
    let recorded = &sums["dense_1/bias"];
    let edited = format!(
        "{}{}",
        if recorded.starts_with('0') { '1' } else { '0' },
        &recorded[1..]
    );
    let at = model
        .windows(16)
        .position(|w| w == recorded.as_bytes())
        .unwrap();
    let mut damaged = model.clone();
    damaged[at..at + 16].copy_from_slice(edited.as_bytes());
    assert_eq!(
        load_err(path, &damaged, &[]),
        format!("m.safetensors: tensor dense_1/bias is damaged: checksum {recorded}, the file records {edited}")
    );

    // Unreadable checksums, one missing, one for a tensor the file does not hold.
    let broken = serde_json::to_string(&sums).unwrap().replace(':', ";");
    let serde_err = serde_json::from_str::<BTreeMap<String, String>>(&broken).unwrap_err();
    assert_eq!(
        load_err(path, &with_checksums(&model, Some(broken)), &[]),
        format!("m.safetensors: unreadable minivgg_checksums: {serde_err}")
    );
    let mut fewer = sums.clone();
    fewer.remove("conv2d_1/kernel");
    assert_eq!(
        load_err(
            path,
            &with_checksums(&model, Some(serde_json::to_string(&fewer).unwrap())),
            &[]
        ),
        "m.safetensors: tensor conv2d_1/kernel has no checksum in minivgg_checksums"
    );
    let mut more = sums.clone();
    more.insert("dense_2/kernel".into(), "0123456789abcdef".into());
    assert_eq!(
        load_err(
            path,
            &with_checksums(&model, Some(serde_json::to_string(&more).unwrap())),
            &[]
        ),
        "m.safetensors: minivgg_checksums names tensor dense_2/kernel, which the file does not hold"
    );

    // The key renamed in place (a flipped byte in its name): the file reads as one without
    // checksums, unverified but whole.
    let key_at = model
        .windows(CHECKSUMS_KEY.len())
        .position(|w| w == CHECKSUMS_KEY.as_bytes())
        .unwrap();
    let mut renamed = model.clone();
    renamed[key_at + CHECKSUMS_KEY.len() - 1] = b'z';
    let loaded = from_bytes(path, &renamed, 1, Precision::Fp32, &[]).unwrap();
    assert!(!loaded.verified);
    assert_eq!(loaded.net.params, net.params);
}

#[test]
fn non_finite_weights_are_refused_by_name() {
    let path = Path::new("m.safetensors");
    let mut net = minivggnet();
    let tensor = |net: &Network, name: &str| {
        net.tensors()
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .clone()
    };
    // With a valid checksum (the file was written with the NaN in it).
    let dense = tensor(&net, "dense_1/kernel");
    assert_eq!(dense.kind, ParamKind::Trainable);
    net.params[dense.offset + 5] = f32::NAN;
    let bytes = model_file::to_bytes(&net, &[], HashMap::new()).unwrap();
    assert_eq!(
        load_err(path, &bytes, &[]),
        "m.safetensors: tensor dense_1/kernel holds NaN at index 5: non-finite weights are refused"
    );
    // Without checksums.
    let mut net = minivggnet();
    let variance = tensor(&net, "batch_normalization_2/moving_variance");
    assert_eq!(variance.kind, ParamKind::Moving);
    net.moving[variance.offset] = f32::INFINITY;
    let bytes = with_checksums(
        &model_file::to_bytes(&net, &[], HashMap::new()).unwrap(),
        None,
    );
    assert_eq!(
        load_err(path, &bytes, &[]),
        "m.safetensors: tensor batch_normalization_2/moving_variance holds inf at index 0: non-finite weights are refused"
    );
    // In a checkpoint's optimizer state.
    let net = Network::new(&zoo::shallownet(), 1, 2).unwrap();
    let settings = common::small_run(PathBuf::from("plot.png"), Precision::Fp32);
    let mut sgd = Sgd::new(settings.sgd, net.params.len());
    sgd.velocity[17] = f32::NEG_INFINITY;
    let bytes = checkpoint::encode(&net, &sgd, &settings, &Progress::default()).unwrap();
    assert_eq!(
        load_err(path, &bytes, &[VELOCITY]),
        "m.safetensors: tensor optimizer/velocity holds -inf at index 17: non-finite weights are refused"
    );
}

/// A file without checksums (another tool's) loads, said unverified: in the library, and
/// through the binary with one warning line on stderr.
#[test]
fn a_file_without_checksums_loads_with_a_warning() {
    let net = Network::new(&zoo::shallownet(), 1, 4).unwrap();
    let old = with_checksums(
        &model_file::to_bytes(&net, &[], HashMap::new()).unwrap(),
        None,
    );
    let loaded = from_bytes(Path::new("old.safetensors"), &old, 1, Precision::Fp32, &[]).unwrap();
    assert!(!loaded.verified);
    assert_eq!(loaded.net.params, net.params);

    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("old.safetensors");
    std::fs::write(&weights, &old).unwrap();
    let onnx = dir.path().join("old.onnx");
    let out = export(&weights, &onnx);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "[WARN] {} has no checksums (written by an older minivgg or another tool): its tensors could not be verified\n",
            weights.display()
        )
    );
    assert!(onnx.is_file());
    // A file with its checksums loads without a word.
    std::fs::write(
        &weights,
        model_file::to_bytes(&net, &[], HashMap::new()).unwrap(),
    )
    .unwrap();
    let out = export(&weights, &onnx);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

/// How long verifying takes: loading a MiniVGGNet model and its checkpoint with and without
/// their checksums (the NaN scan runs in both), and hashing their tensors alone. Printed, not
/// asserted (timings on a shared machine): run with --nocapture.
#[test]
fn verifying_costs_little() {
    let best_ms = |f: &dyn Fn()| {
        (0..9)
            .map(|_| {
                let start = std::time::Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    let net = minivggnet();
    for (what, bytes, extras) in [
        (
            "model",
            model_file::to_bytes(&net, &[], HashMap::new()).unwrap(),
            &[][..],
        ),
        ("checkpoint", checkpoint_bytes(&net), &[VELOCITY][..]),
    ] {
        let bare = with_checksums(&bytes, None);
        let load = |bytes: &[u8]| {
            best_ms(&|| {
                from_bytes(Path::new("m"), bytes, 1, Precision::Fp32, extras).unwrap();
            })
        };
        let ranges = tensor_ranges(&bytes);
        let hash = best_ms(&|| {
            for (_, range) in &ranges {
                std::hint::black_box(checksum(&bytes[range.clone()]));
            }
        });
        eprintln!(
            "MiniVGGNet {what}, {:.1} MB: load {:.2} ms with checksums, {:.2} ms without; xxh3 of its tensors alone {hash:.2} ms",
            bytes.len() as f64 / 1e6,
            load(&bytes),
            load(&bare)
        );
    }
}

/// A one-epoch ShallowNet run on 256 images: its saved model and its checkpoint directory.
fn short_run(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("model.safetensors");
    let plot = dir.join("run.png");
    let out = minivgg(&command_line(
        "train --epochs 1 --limit 256 --model shallownet --seed 2 --keep-checkpoints",
        &[
            "--output",
            plot.to_str().unwrap(),
            "--save",
            model.to_str().unwrap(),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let checkpoint_dir = dir.join("run_checkpoint");
    assert!(checkpoint_dir.join(checkpoint::CHECKPOINT_FILE).is_file());
    (model, checkpoint_dir)
}

/// The line that says a command takes a checkpoint's model (or architecture).
fn checkpoint_line(file: &Path, what: &str) -> String {
    format!(
        "[INFO] {} is a checkpoint (epoch 1 of 1): using its {what}\n",
        file.display()
    )
}

#[test]
fn evaluate_predict_summary_and_export_take_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (model, checkpoint_dir) = short_run(dir);
    let file = checkpoint_dir.join(checkpoint::CHECKPOINT_FILE);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // summary --model: the checkpoint's architecture, from the directory or the file.
    let built_in = minivgg(&["summary", "--model", "shallownet"]);
    for named in [&checkpoint_dir, &file] {
        let out = minivgg(&["summary", "--model", &s(named)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), text(&built_in.stdout));
        assert_eq!(text(&out.stderr), checkpoint_line(&file, "architecture"));
    }

    // predict --weights: the same classes as the model saved at the end of the same run.
    let image = dir.join("cat.png");
    image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
    })
    .save(&image)
    .unwrap();
    let saved = minivgg(&["predict", "--weights", &s(&model), &s(&image)]);
    assert!(saved.status.success(), "{}", text(&saved.stderr));
    assert_eq!(text(&saved.stderr), "");
    for named in [&checkpoint_dir, &file] {
        let out = minivgg(&["predict", "--weights", &s(named), &s(&image)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), text(&saved.stdout));
        assert_eq!(text(&out.stderr), checkpoint_line(&file, "model"));
    }

    // export --weights: the very same ONNX file.
    let (from_model, from_checkpoint) = (dir.join("model.onnx"), dir.join("checkpoint.onnx"));
    let out = minivgg(&[
        "export",
        "--weights",
        &s(&model),
        "--output",
        &s(&from_model),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = minivgg(&[
        "export",
        "--weights",
        &s(&checkpoint_dir),
        "--output",
        &s(&from_checkpoint),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), checkpoint_line(&file, "model"));
    assert_eq!(
        std::fs::read(&from_model).unwrap(),
        std::fs::read(&from_checkpoint).unwrap()
    );
    // export --model MODEL, as train names a saved model: its trained weights too.
    let by_model_flag = dir.join("by_model_flag.onnx");
    let out = minivgg(&[
        "export",
        "--model",
        &s(&model),
        "--output",
        &s(&by_model_flag),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("with its trained weights"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read(&from_model).unwrap(),
        std::fs::read(&by_model_flag).unwrap()
    );

    // evaluate --weights: the same loss, accuracy, report and confusion matrix.
    let confusion = dir.join("c.png");
    let evaluate = |weights: &Path| {
        let out = minivgg(&[
            "evaluate",
            "--weights",
            &s(weights),
            "--confusion",
            &s(&confusion),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (saved, _) = evaluate(&model);
    let (from_file, said) = evaluate(&file);
    assert!(
        saved.contains("[INFO] shallownet on 10000 test images: loss "),
        "{saved}"
    );
    // A checkpoint knows its data: evaluated on it without --data, and says so.
    let trained_on = format!(
        "[INFO] {} was trained on CIFAR-10: evaluating on its validation split\n",
        file.display()
    );
    assert_eq!(
        common::without_load_times(&from_file),
        common::without_load_times(&format!("{trained_on}{saved}"))
    );
    assert_eq!(said, checkpoint_line(&file, "model"));

    // A damaged checkpoint is refused by tensor, exit 2; a directory without one too.
    let bytes = std::fs::read(&file).unwrap();
    let (name, range) = tensor_ranges(&bytes)
        .into_iter()
        .find(|(name, _)| name == "dense_1/kernel")
        .unwrap();
    let mut damaged = bytes.clone();
    damaged[range.start + 1000] ^= 0x40;
    let damaged_dir = dir.join("damaged_checkpoint");
    std::fs::create_dir(&damaged_dir).unwrap();
    let damaged_file = damaged_dir.join(checkpoint::CHECKPOINT_FILE);
    std::fs::write(&damaged_file, &damaged).unwrap();
    let out = minivgg(&["evaluate", "--weights", &s(&damaged_dir)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}: tensor {name} is damaged: checksum {}, the file records {}\n",
            damaged_file.display(),
            checksum(&damaged[range.clone()]),
            checksum(&bytes[range])
        )
    );
    let empty = dir.join("empty_checkpoint");
    std::fs::create_dir(&empty).unwrap();
    for args in [
        vec!["evaluate", "--weights"],
        vec!["predict", "--weights"],
        vec!["export", "--weights"],
    ] {
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.push(s(&empty));
        match args[0].as_str() {
            "predict" => args.push(s(&image)),
            "export" => args.extend(["--output".into(), s(&dir.join("e.onnx"))]),
            _ => {}
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = minivgg(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: {}: a directory without a checkpoint (checkpoint.safetensors)\n",
                empty.display()
            )
        );
    }
    // `--model` takes a directory only if it holds a checkpoint: otherwise the name is a
    // built-in network's (`--model minivggnet` beside a directory `minivggnet/`), or unknown.
    let out = minivgg(&["summary", "--model", &s(&empty)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: --model: unknown model {:?}; expected one of minivggnet, shallownet, lenet\n",
            s(&empty)
        )
    );
}
