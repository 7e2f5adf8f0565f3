//! Running the `minivgg` binary: on the real data, with a user cache of the test's own, or
//! with nothing of the user's at all; and what its runs print.

use std::ffi::OsStr;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

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

/// The `minivgg` binary, its environment the tests' own.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_minivgg"))
}

/// The binary on the real data (`$MINIVGG_DATA`); the caller adds the arguments.
pub fn on_real_data() -> Command {
    let mut command = binary();
    command.env("MINIVGG_DATA", real_data_path());
    command
}

/// A command line: the words of `flags` (split at white space), then `more` as they are (a
/// path may hold spaces).
pub fn command_line(flags: &str, more: &[&str]) -> Vec<String> {
    let words = flags.split_whitespace().chain(more.iter().copied());
    words.map(String::from).collect()
}

/// Runs the `minivgg` binary with `args` on the real data.
pub fn minivgg(args: &[impl AsRef<OsStr>]) -> Output {
    on_real_data().args(args).output().unwrap()
}

/// The binary with its user cache in `cache` (the decoded-image cache and the downloads go
/// there, never to the user's own); the caller adds the arguments and the rest of the
/// environment.
pub fn minivgg_command(cache: &Path) -> Command {
    let mut command = binary();
    command.env("XDG_CACHE_HOME", cache);
    command
}

/// Runs the binary with `args` on the real data, its user cache in `cache`.
pub fn minivgg_cached(cache: &Path, args: &[impl AsRef<OsStr>]) -> Output {
    minivgg_command(cache)
        .args(args)
        .env("MINIVGG_DATA", real_data_path())
        .output()
        .unwrap()
}

/// Runs the binary with `args`, HOME in `root`, its user cache in `root/cache`, and no
/// $MINIVGG_DATA: nothing of the user's is read or written (a download would land in the
/// cache under `root`).
pub fn minivgg_offline(root: &Path, args: &[impl AsRef<OsStr>]) -> Output {
    minivgg_command(&root.join("cache"))
        .args(args)
        .env("HOME", root)
        .env_remove("MINIVGG_DATA")
        .output()
        .unwrap()
}

/// Checks that `out` exited 2 (the input or the flags are wrong) without a panic, saying
/// `message` on stderr; `what` (its arguments, say) heads a failure's message.
pub fn assert_exit_2_saying(out: &Output, message: &str, what: impl Debug) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "{what:?}: expected {message:?} in {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Runs the binary with `args` on the real data and checks [`assert_exit_2_saying`] `message`.
pub fn assert_usage_error(args: &[&str], message: &str) {
    assert_exit_2_saying(&minivgg(args), message, args);
}

/// Checks that `out` exited 2 with `error: MESSAGE` as its whole stderr; `what` (its
/// arguments, say) heads a failure's message.
pub fn assert_exit_2_with(out: &Output, message: &str, what: impl Debug) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what:?}: {stderr}");
    assert_eq!(stderr.trim_end(), format!("error: {message}"), "{what:?}");
}

/// Ctrl-C for `child`: SIGINT, as a terminal sends it.
pub fn ctrl_c(child: &Child) {
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Checks that `stopped`, a run stopped by Ctrl-C, exited 130 saying how to go on from
/// `checkpoint`; `log` is shown if not.
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

/// `minivgg export --weights WEIGHTS --output ONNX`.
pub fn export(weights: &Path, onnx: &Path) -> Output {
    minivgg(&[
        "export",
        "--weights",
        weights.to_str().unwrap(),
        "--output",
        onnx.to_str().unwrap(),
    ])
}

/// `bytes`, a run's stdout or stderr, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `out` without the seconds its data took to load (`…, loaded in 0.91s`), which differ from
/// run to run.
pub fn without_load_times(out: &str) -> String {
    out.lines()
        .map(|line| match line.rfind(", loaded in ") {
            Some(at) if line.ends_with('s') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value after ` KEY: ` in a Keras-style epoch line (`- loss: 1.2 - acc: 0.5 - …`).
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
