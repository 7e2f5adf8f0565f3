//! The training loop on synthetic data: `--seed` reproduces a run bit for bit, another seed
//! gives another run, and a run stopped after any batch and resumed from its checkpoint file
//! ends exactly where the uninterrupted run ends, with `--augment` too.

use crate::common::{bits, small_run};
use minivgg::data::cifar10::IMAGE_BYTES;
use minivgg::data::{ImageShape, Split};
use minivgg::engine::sgd::{Sgd, SgdConfig};
use minivgg::engine::{Network, Precision};
use minivgg::fsutil::BackgroundWriter;
use minivgg::model::zoo;
use minivgg::train::checkpoint::{self, RunSettings};
use minivgg::train::fit::{fit, FitConfig, Outcome, Progress};
use minivgg::train::history::History;
use rand::{Rng, SeedableRng};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn synthetic(len: usize, seed: u64) -> Split {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let images = (0..len * IMAGE_BYTES).map(|_| rng.random()).collect();
    let labels = (0..len).map(|_| rng.random_range(0..10)).collect();
    Split::new(ImageShape::CIFAR, images, labels)
}

const EPOCHS: usize = 2;

/// A run's end state, with the history's wall times (which no two runs share) zeroed.
fn end_state(net: Network, mut history: History) -> (Vec<f32>, Vec<f32>, History) {
    history.epochs.iter_mut().for_each(|e| e.seconds = 0.0);
    (net.params, net.moving, history)
}

fn train(seed: u64, augment: bool) -> (Vec<f32>, Vec<f32>, History) {
    let (train, validation) = (synthetic(200, 1), synthetic(50, 2));
    let mut net = Network::new(&zoo::minivggnet(true), 64, seed).unwrap();
    let mut sgd = Sgd::new(SgdConfig::TUTORIAL, net.params.len());
    let config = FitConfig {
        epochs: EPOCHS,
        seed,
        progress: false,
        stop: None,
        augment,
        shuffle: true,
    };
    let mut progress = Progress::default();
    let outcome = fit(
        &mut net,
        &mut sgd,
        &train,
        &validation,
        &config,
        &mut progress,
        |_, _| Ok(()),
        |_, _, _| Ok(()),
    );
    assert_eq!(outcome.unwrap(), Outcome::Finished);
    end_state(net, progress.history)
}

#[test]
fn the_same_seed_reproduces_a_run_bit_for_bit() {
    for augment in [false, true] {
        let (params_a, moving_a, history_a) = train(5, augment);
        let (params_b, moving_b, history_b) = train(5, augment);
        assert_eq!(bits(&params_a), bits(&params_b), "augment {augment}");
        assert_eq!(bits(&moving_a), bits(&moving_b), "augment {augment}");
        assert_eq!(history_a, history_b, "augment {augment}");
        let (params_c, _, _) = train(6, augment);
        assert_ne!(
            bits(&params_a),
            bits(&params_c),
            "another seed must give another run"
        );
    }
    assert_ne!(
        bits(&train(5, false).0),
        bits(&train(5, true).0),
        "augmentation must change the run"
    );
}

#[test]
fn a_run_stopped_after_every_batch_and_resumed_from_disk_ends_bit_identical() {
    let seed = 5;
    let (train_split, validation) = (synthetic(200, 1), synthetic(50, 2));
    let dir = tempfile::tempdir().unwrap();
    let settings = RunSettings {
        epochs: EPOCHS,
        batch_size: 64,
        seed,
        augment: true,
        ..small_run(dir.path().join("plot.png"), Precision::Fp32)
    };
    let mut net = Network::new(&zoo::minivggnet(true), 64, seed).unwrap();
    let mut sgd = Sgd::new(settings.sgd, net.params.len());
    let mut progress = Progress::default();
    // A stop requested before the call: every call trains one batch, checkpoints and stops.
    let config = FitConfig {
        epochs: EPOCHS,
        seed,
        progress: false,
        stop: Some(Arc::new(AtomicBool::new(true))),
        augment: settings.augment,
        shuffle: true,
    };
    let mut stops = 0;
    let mut writer = BackgroundWriter::new();
    loop {
        let outcome = fit(
            &mut net,
            &mut sgd,
            &train_split,
            &validation,
            &config,
            &mut progress,
            |_, _| Ok(()),
            |n, s, p| checkpoint::submit(&mut writer, dir.path(), n, s, &settings, p),
        )
        .unwrap();
        // Written off this thread, as the CLI's runs are: complete once waited for.
        writer.wait().unwrap();
        if outcome == Outcome::Finished {
            break;
        }
        stops += 1;
        // Go on as a new process would: from the file alone.
        let resumed = checkpoint::read(dir.path()).unwrap();
        assert_eq!(resumed.settings, settings);
        (net, sgd, progress) = (resumed.net, resumed.sgd, resumed.progress);
    }
    assert_eq!(stops, EPOCHS * 200usize.div_ceil(64), "one stop per batch");
    let (params, moving, history) = end_state(net, progress.history);
    let (want_params, want_moving, want_history) = train(seed, settings.augment);
    assert_eq!(bits(&params), bits(&want_params));
    assert_eq!(bits(&moving), bits(&want_moving));
    assert_eq!(history, want_history);
}

/// A checkpoint records its run's precision and `--resume` rebuilds the network in it: bf16
/// stays bf16 where the CPU has AVX512_BF16, and elsewhere resuming it is refused, saying why
/// (bf16 is never emulated for a real run).
#[test]
fn a_checkpoint_keeps_its_precision() {
    use minivgg::engine::cpu::simd::{has_bf16_dot_products, CpuPath, Isa};
    let dir = tempfile::tempdir().unwrap();
    let settings = small_run(dir.path().join("plot.png"), Precision::Bf16);
    // Written by a bf16 network (emulated on the portable path, which any CPU runs).
    let isa = Isa::new(CpuPath::Portable, Precision::Bf16).unwrap();
    let net = Network::with_isa(&zoo::minivggnet(true), 8, 3, isa).unwrap();
    let sgd = Sgd::new(settings.sgd, net.params.len());
    checkpoint::write(dir.path(), &net, &sgd, &settings, &Progress::default()).unwrap();
    match checkpoint::read(dir.path()) {
        Ok(resumed) => {
            assert!(
                has_bf16_dot_products(),
                "resumed bf16 without its instructions"
            );
            assert_eq!(resumed.settings.precision, Precision::Bf16);
            assert_eq!(resumed.net.isa().precision(), Precision::Bf16);
            assert_eq!(resumed.net.params, net.params);
        }
        Err(e) => {
            assert!(!has_bf16_dot_products(), "{e:#}");
            assert!(
                format!("{e:#}").contains("--precision bf16 needs a CPU with AVX512_BF16"),
                "{e:#}"
            );
        }
    }
}

/// The background writer leaves the state it was given; a write that fails (the checkpoint
/// directory is a file) is the run's error, not lost, and the jobs behind it do not run.
#[test]
fn the_checkpoint_writer_writes_the_state_it_was_given_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let settings = small_run(dir.path().join("plot.png"), Precision::Fp32);
    let mut net = Network::new(&zoo::shallownet(), 8, 3).unwrap();
    let sgd = Sgd::new(settings.sgd, net.params.len());
    let progress = Progress::default();
    let run = dir.path().join("run");
    let mut writer = BackgroundWriter::new();
    checkpoint::submit(&mut writer, &run, &net, &sgd, &settings, &progress).unwrap();
    // The state changes while the write is in flight; the file holds the state submitted.
    let submitted = net.params.clone();
    net.params.iter_mut().for_each(|p| *p += 1.0);
    writer.wait().unwrap();
    let on_disk = checkpoint::read(&run).unwrap();
    assert!(
        bits(&on_disk.net.params) == bits(&submitted),
        "the file differs from the state submitted"
    );
    assert_eq!(on_disk.settings, settings);

    let blocked = dir.path().join("a_file");
    std::fs::write(&blocked, b"not a directory").unwrap();
    checkpoint::submit(&mut writer, &blocked, &net, &sgd, &settings, &progress).unwrap();
    let after = dir.path().join("after_the_failure");
    let marker = after.clone();
    // Queued behind the failing write, or refused with its error if the writer stopped.
    let err = match writer.submit(move || Ok(std::fs::write(marker, b"")?)) {
        Err(e) => e,
        Ok(()) => writer.wait().unwrap_err(),
    };
    let err = format!("{err:#}");
    assert!(
        err.contains(&format!(
            "cannot create checkpoint directory {}",
            blocked.display()
        )),
        "{err}"
    );
    assert!(!after.exists(), "a job behind a failed write ran");
}
