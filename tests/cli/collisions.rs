//! Nothing a command reads is lost to what it writes, and files follow the umask: through the
//! binary, every refused command exits 2 with its exact message and leaves every file as it
//! was, byte for byte; the files a run writes have the mode `umask` gives.

use crate::common::{
    assert_exit_2_with, command_line, minivgg_cached, real_data_path, snapshot, text,
    write_class_folders,
};
use std::path::Path;
use std::process::Command;

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let model = root.join("m.safetensors");
    let net = minivgg::engine::Network::new(&minivgg::model::zoo::shallownet(), 1, 1).unwrap();
    std::fs::write(
        &model,
        minivgg::store::model_file::to_bytes(&net, &[], Default::default()).unwrap(),
    )
    .unwrap();
    let hard = root.join("hard.safetensors");
    std::fs::hard_link(&model, &hard).unwrap();
    let link = root.join("link.safetensors");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    let archive = root.join("data.tar.gz");
    std::fs::write(&archive, b"not read: refused before").unwrap();
    // compare's table is its plot's name with .md: data.png's is this link to the archive.
    let table = root.join("data.md");
    std::fs::hard_link(&archive, &table).unwrap();
    let network = root.join("net.json");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/vgg_three_blocks.json");
    std::fs::copy(example, &network).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let run = |args: &[String]| {
        let mut args = args.to_vec();
        if args[0] == "train" || args[0] == "compare" {
            args.extend(["--epochs", "1", "--limit", "64"].map(String::from));
        }
        args
    };
    let p = |name: &str| s(&root.join(name));
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["export".into(), "--weights".into(), s(&model), "--output".into(), s(&model)],
            format!("--output would overwrite --weights ({}), which this command reads: name another file", model.display()),
        ),
        (
            vec!["export".into(), "--weights".into(), s(&model), "--output".into(), s(&hard)],
            format!("--output would overwrite --weights ({}), which this command reads: name another file", hard.display()),
        ),
        (
            vec!["export".into(), "--weights".into(), s(&model), "--output".into(), s(&link)],
            format!("--output would overwrite --weights ({}), which this command reads: name another file", link.display()),
        ),
        (
            vec!["export".into(), "--weights".into(), s(&model), "--output".into(), p("new/../m.safetensors")],
            format!("--output would overwrite --weights ({}), which this command reads: name another file", root.join("new/../m.safetensors").display()),
        ),
        (
            vec!["evaluate".into(), "--weights".into(), s(&model), "--confusion".into(), s(&link)],
            format!("--confusion would overwrite --weights ({}), which this command reads: name another file", link.display()),
        ),
        (
            run(&["train".into(), "--save".into(), p("x"), "--output".into(), p("x")]),
            format!("--output and --save are the same file ({}): one would be lost; name another", root.join("x").display()),
        ),
        (
            run(&["train".into(), "--output".into(), p("p.png"), "--save".into(), p("p.csv")]),
            format!("the CSV beside --output and --save are the same file ({}): one would be lost; name another", root.join("p.csv").display()),
        ),
        (
            run(&["train".into(), "--data".into(), s(&archive), "--output".into(), s(&archive)]),
            format!("--output would overwrite --data ({}), which this command reads: name another file", archive.display()),
        ),
        (
            run(&["train".into(), "--model".into(), s(&network), "--output".into(), p("n.png"), "--save".into(), s(&network)]),
            format!("--save would overwrite --model ({}), which this command reads: name another file", network.display()),
        ),
        (
            run(&["compare".into(), "--data".into(), s(&archive), "--output".into(), p("data.png")]),
            format!("the table beside --output would overwrite --data ({}), which this command reads: name another file", table.display()),
        ),
    ];

    let before = snapshot(root);
    for (args, message) in &cases {
        let out = minivgg_cached(&root.join("cache"), args);
        assert_exit_2_with(&out, message, args);
        assert_eq!(snapshot(root), before, "{args:?} changed the files");
    }
}

#[test]
fn every_file_a_run_writes_has_the_mode_the_umask_gives() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let in_umask = |args: Vec<String>| {
        let status = Command::new("sh")
            .args([
                "-c",
                "umask 027 && exec \"$0\" \"$@\"",
                env!("CARGO_BIN_EXE_minivgg"),
            ])
            .args(&args)
            .env("MINIVGG_DATA", real_data_path())
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{args:?}: {}",
            text(&status.stderr)
        );
    };
    let [plot, model, onnx] = ["p.png", "m.safetensors", "m.onnx"].map(|f| out.join(f));
    let [plot, model, onnx] = [&plot, &model, &onnx].map(|p| p.to_str().unwrap());
    in_umask(command_line(
        "train --model shallownet --epochs 1 --limit 64 --save-best --keep-checkpoints",
        &["--output", plot, "--save", model],
    ));
    in_umask(command_line(
        "export",
        &["--weights", model, "--output", onnx],
    ));
    // An image folder's decoded cache.
    let folder = tmp.path().join("pictures");
    write_class_folders(&folder, &["a", "b"], 4, |_, i| {
        image::RgbImage::from_pixel(8, 8, image::Rgb([i as u8 * 60; 3]))
    });
    in_umask(command_line(
        "data --val-split 0.5",
        &["--data", folder.to_str().unwrap()],
    ));

    let mut seen = Vec::new();
    for root in [out.clone(), tmp.path().join("cache")] {
        for (path, _, modified, _) in snapshot(&root) {
            if modified.is_none() {
                continue; // a directory
            }
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640, "{} has mode {mode:o}", path.display());
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let checkpoint_dir = std::fs::metadata(out.join("p_checkpoint")).unwrap();
    assert_eq!(checkpoint_dir.permissions().mode() & 0o777, 0o750);
    seen.sort();
    // Every kind of file: plot, history, report, heat map, models, checkpoint, ONNX, cache.
    for kind in [
        "p.png",
        "p.csv",
        "p.json",
        "p_report.txt",
        "p_confusion.png",
        "m.safetensors",
        "m_best.safetensors",
        "checkpoint.safetensors",
        "m.onnx",
    ] {
        assert!(seen.iter().any(|s| s == kind), "no {kind} in {seen:?}");
    }
    assert!(
        seen.iter().any(|s| s.ends_with(".bin")),
        "no cache file in {seen:?}"
    );
}
