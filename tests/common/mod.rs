//! What the integration tests share: where the real CIFAR-10 is, running the binary, a small
//! run's settings, what a run leaves on disk, and tract's view of an exported model.

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

/// The binary with its user cache in `cache` (the decoded-image cache and the downloads go
/// there, never to the user's own); the caller adds the arguments and the rest of the
/// environment.
#[allow(dead_code)]
pub fn minivgg_command(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_minivgg"));
    command.env("XDG_CACHE_HOME", cache);
    command
}

/// Ctrl-C for `child`: SIGINT, as a terminal sends it.
#[allow(dead_code)]
pub fn ctrl_c(child: &std::process::Child) {
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Checks that `stopped`, a run stopped by Ctrl-C, exited 130 saying how to go on from
/// `checkpoint`; `log` is shown if not.
#[allow(dead_code)]
pub fn assert_stopped_for_resume(stopped: &Output, checkpoint: &Path, log: &str) {
    let stderr = text(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(130), "{log}{stderr}");
    assert!(
        stderr.contains(&format!(
            "go on with `minivgg train --resume {}`",
            checkpoint.display()
        )),
        "{stderr}"
    );
}

/// `out` without the seconds its data took to load (`…, loaded in 0.91s`), which differ from
/// run to run.
#[allow(dead_code)]
pub fn without_load_times(out: &str) -> String {
    out.lines()
        .map(|line| match line.rfind(", loaded in ") {
            Some(at) if line.ends_with('s') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
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
        keep_checkpoints: false,
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
        minivgg::model::network_file::read(&example).unwrap(),
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

/// The rows of a run's history CSV at `csv` with every column but the wall time: what a
/// resumed run must write as the uninterrupted one did.
#[allow(dead_code)]
pub fn history_without_times(csv: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    csv.lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// One entry of a [`snapshot`]: a path, and for a file its size, modification time and a
/// hash of its bytes.
pub type Entry = (PathBuf, u64, Option<std::time::SystemTime>, u64);

/// Every file and directory under `root`, files with their size, modification time and a hash
/// of their bytes: what a failed command must leave as it found it. (A directory's own time
/// changes when a probe file comes and goes in it, which leaves nothing behind.)
#[allow(dead_code)]
pub fn snapshot(root: &Path) -> Vec<Entry> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            // Not through links: a link is its target's name, as a FIFO or device is its own
            // entry, never read (one would block, the other never end).
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
                found.push((entry.path(), 0, None, 0));
            } else if !meta.is_file() {
                let target = std::fs::read_link(entry.path()).unwrap_or_default();
                let hash = xxhash_rust::xxh3::xxh3_64(target.as_os_str().as_encoded_bytes());
                found.push((entry.path(), meta.len(), meta.modified().ok(), hash));
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
                found.push((
                    entry.path(),
                    meta.len(),
                    Some(meta.modified().unwrap()),
                    hash,
                ));
            }
        }
    }
    found.sort();
    found
}

/// tract's probabilities for `input`, `n` NHWC images of `shape`, under the ONNX file at
/// `path`, which must declare that input (any batch) and `classes` outputs per image.
#[allow(dead_code)]
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
