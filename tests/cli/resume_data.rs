//! A checkpoint knows its data: `--resume` finds it where the run recorded it, takes it from a
//! new place (`--data`) only if it is the same data by its fingerprint, and refuses other data
//! saying what changed, leaving every file as it was. A checkpoint that records no fingerprint
//! still resumes, saying the data could not be checked.

use crate::common::{
    self, command_line, minivgg_offline, save_picture, snapshot, text, write_class_folders,
};
use minivgg::train::checkpoint::{self, RunSettings};
use std::path::{Path, PathBuf};

/// A folder of two classes of six 8×8 pictures each; `extra` adds a seventh to class "b".
fn write_folder(dir: &Path, extra: bool) {
    let levels = [40, 200];
    write_class_folders(dir, &["a", "b"], 6, |c, i| picture(levels[c] + i as u8));
    if extra {
        save_picture(&dir.join("b").join("6.png"), picture(200 + 6));
    }
}

fn picture(level: u8) -> image::RgbImage {
    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([level + (x + y) as u8; 3]))
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// What is under `dir` (see [`snapshot`]), but the checkpoint directory's lock, which a run
/// takes before it loads any data and which holds the last run's process id.
fn contents(dir: &Path) -> Vec<common::Entry> {
    let mut entries = snapshot(dir);
    entries.retain(|(path, ..)| path.file_name().unwrap() != "lock");
    entries
}

fn copy_tree(from: &Path, to: &Path) {
    for path in walk(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&path, target).unwrap();
    }
}

#[test]
fn resume_checks_its_data_by_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (folder, out) = (root.join("pictures"), root.join("out"));
    write_folder(&folder, false);
    let plot = out.join("p.png");
    let first = minivgg_offline(
        root,
        &command_line(
            "train --image-size 8 --val-split 0.5 --model shallownet --epochs 1 --batch-size 4 \
             --seed 3 --keep-checkpoints",
            &[
                "--data",
                folder.to_str().unwrap(),
                "--output",
                plot.to_str().unwrap(),
            ],
        ),
    );
    assert!(first.status.success(), "{}", text(&first.stderr));

    // The same run as if stopped after the first of two epochs, once per case below; and once
    // more as a checkpoint that records no fingerprint.
    let run = checkpoint::read(&out.join("p_checkpoint")).unwrap();
    let recorded = run
        .settings
        .data_fingerprint
        .clone()
        .expect("no fingerprint recorded");
    let stopped = |name: &str, fingerprint| {
        let dir = root.join(name);
        let settings = RunSettings {
            epochs: 2,
            data_fingerprint: fingerprint,
            ..run.settings.clone()
        };
        checkpoint::write(&dir, &run.net, &run.sgd, &settings, &run.progress).unwrap();
        dir
    };
    let resume = |dir: &Path, data: Option<&Path>| {
        let mut args = vec!["train", "--resume", dir.to_str().unwrap()];
        if let Some(data) = data {
            args.extend(["--data", data.to_str().unwrap()]);
        }
        minivgg_offline(root, &args)
    };
    let refused = |dir: &Path, data: Option<&Path>, change: &str| {
        let before = (contents(&out), contents(dir));
        let result = resume(dir, data);
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{stderr}");
        let prefix = format!(
            "error: --resume: this is not the data {} trained on: its fingerprint is ",
            dir.display()
        );
        assert!(stderr.starts_with(&prefix), "{stderr}");
        let suffix = format!(", the run's {recorded} ({change})\n");
        assert!(stderr.ends_with(&suffix), "{stderr}");
        let after = (contents(&out), contents(dir));
        assert_eq!(after, before, "a refused resume changed files");
    };

    // Other data under --data: refused, naming the new split sizes.
    let grown = root.join("grown");
    write_folder(&grown, true);
    refused(
        &stopped("grown_run", Some(recorded.clone())),
        Some(&grown),
        "6 training and 7 validation images, not 6 and 6",
    );

    // The recorded folder, one picture changed after the run: refused, the same sizes.
    let moved = root.join("moved");
    copy_tree(&folder, &moved);
    picture(90).save(folder.join("a").join("0.png")).unwrap();
    refused(
        &stopped("changed_run", Some(recorded.clone())),
        None,
        "the same sizes, other bytes",
    );

    // The same data in another place: the run goes on there.
    let done = resume(&stopped("moved_run", Some(recorded)), Some(&moved));
    let stdout = text(&done.stdout);
    assert!(done.status.success(), "{stdout}{}", text(&done.stderr));
    assert!(stdout.contains("Epoch 2/2 - "), "{stdout}");

    // A checkpoint without a fingerprint resumes, saying the data could not be checked.
    let old = stopped("old_run", None);
    let done = resume(&old, Some(&moved));
    let stdout = text(&done.stdout);
    assert!(done.status.success(), "{stdout}{}", text(&done.stderr));
    assert!(
        stdout.contains(&format!(
            "[INFO] {} is from before checkpoints recorded their data: the data could not be checked\n",
            old.display()
        )),
        "{stdout}"
    );
}
