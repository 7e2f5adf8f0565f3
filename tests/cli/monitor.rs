//! The tutorial series' callbacks on a real run of the binary: the plot, CSV and JSON history
//! hold every finished epoch while the run goes on, and `--save-best` keeps the model of the
//! lowest val_loss.

use crate::common::{epoch_field, on_real_data, real_data_path};
use minivgg::data::cifar10;
use minivgg::engine::Precision;
use minivgg::train::fit::evaluate;
use minivgg::train::history::History;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const EPOCHS: usize = 4;
const LIMIT: usize = 600;

/// The JSON history's lists, by metric.
fn json_history(path: &Path) -> Option<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => panic!("{} is not a complete JSON object: {text:?}", path.display()),
    }
}

fn epochs_in(json: &serde_json::Map<String, serde_json::Value>) -> usize {
    json["val_loss"].as_array().unwrap().len()
}

#[test]
fn the_monitor_files_hold_every_finished_epoch_and_save_best_keeps_the_lowest_val_loss() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("run.png");
    let (csv, json) = (dir.path().join("run.csv"), dir.path().join("run.json"));
    let (save, best) = (
        dir.path().join("model.safetensors"),
        dir.path().join("model_best.safetensors"),
    );
    let mut child = on_real_data()
        .args([
            "train",
            "--model",
            "shallownet",
            "--seed",
            "4",
            "--lr",
            "0.05",
        ])
        .args([
            "--epochs",
            &EPOCHS.to_string(),
            "--limit",
            &LIMIT.to_string(),
        ])
        .arg("--output")
        .arg(&plot)
        .arg("--save")
        .arg(&save)
        .arg("--save-best")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut finished = 0;
    let mut improved = Vec::new();
    let mut log = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        log += &line;
        log.push('\n');
        if line.contains(": val_loss improved ") {
            improved.push(line.clone());
        }
        if !line.starts_with("Epoch ") {
            continue;
        }
        // An epoch has finished: its files follow within moments, while the next trains,
        // and every version read on the way is complete and consistent.
        finished += 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        let json_now = loop {
            match json_history(&json) {
                Some(j) if epochs_in(&j) >= finished => break j,
                Some(j) => assert_eq!(epochs_in(&j), finished - 1, "epoch {finished}"),
                None => assert_eq!(finished, 1, "the JSON history vanished"),
            }
            assert!(
                Instant::now() < deadline,
                "epoch {finished}'s files never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(epochs_in(&json_now), finished, "{line}");
        for metric in ["loss", "acc", "val_loss", "val_acc"] {
            let last = json_now[metric].as_array().unwrap()[finished - 1]
                .as_f64()
                .unwrap();
            let shown = epoch_field(&line, metric);
            assert!((last - shown).abs() <= 5e-5, "{metric}: {last} vs {line}");
        }
        // The JSON is written first: by the time it holds the epoch, the CSV is being
        // replaced (after the first epoch, written for the first time); it never holds fewer
        // than the epochs before.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let epochs = match std::fs::read_to_string(&csv) {
                Ok(text) => History::from_csv(&text).unwrap().epochs.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && finished == 1 => 0,
                Err(e) => panic!("{csv:?}: {e}"),
            };
            assert!(epochs + 1 >= finished, "{csv:?} fell behind");
            if epochs == finished {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "epoch {finished}'s CSV never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // The plot comes last; renamed into place, any version of it is a whole PNG.
        while !plot.exists() {
            assert!(
                Instant::now() < deadline,
                "epoch {finished}'s plot never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(image::open(&plot).is_ok(), "the plot is not a whole PNG");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{log}");
    assert_eq!(finished, EPOCHS, "{log}");

    // --save-best: the best epoch is the lowest val_loss in the history, the file holds its
    // model, and each improvement was logged.
    let history = History::from_csv(&std::fs::read_to_string(&csv).unwrap()).unwrap();
    let lowest = history
        .epochs
        .iter()
        .min_by(|a, b| a.val_loss.total_cmp(&b.val_loss))
        .unwrap();
    let mut record = f64::INFINITY;
    let improvements = history
        .epochs
        .iter()
        .filter(|e| {
            let better = e.val_loss < record;
            record = record.min(e.val_loss);
            better
        })
        .count();
    assert_eq!(improved.len(), improvements, "{log}");
    assert!(
        log.contains(&format!(
            "[INFO] the best model, epoch {}'s (val_loss {:.4}), is in {}",
            lowest.epoch,
            lowest.val_loss,
            best.display()
        )),
        "{log}"
    );
    let (mut test, _) = cifar10::load_test(&real_data_path()).unwrap();
    test.limit_per_class(LIMIT, 10);
    let mut net = minivgg::store::model_file::load(&best, 64, Precision::Fp32).unwrap();
    let (metrics, _) = evaluate(&mut net, &test);
    assert!(
        (metrics.mean_loss() - lowest.val_loss).abs() < 1e-6,
        "the best file's val_loss {} is not epoch {}'s {}",
        metrics.mean_loss(),
        lowest.epoch,
        lowest.val_loss
    );
    assert!(save.is_file());
}
