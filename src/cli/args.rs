//! The flags several subcommands share: the model, the recipe, the data, where it computes.

use crate::data::source::{Cifar100Labels, ImageSize};
use crate::data::DataRequest;
use crate::engine::device::Device;
use crate::engine::sgd::SgdConfig;
use crate::engine::Precision;
use crate::run::error::usage;
use crate::train::checkpoint::RunSettings;
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};

/// Where and how a subcommand computes, shared by `train`, `compare`, `evaluate` and `bench`.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// Worker threads, at most the CPU cores. Default: one per CPU core.
    #[arg(long, value_parser = count)]
    pub threads: Option<usize>,
    /// cpu, or cuda (cuda:N for the Nth) for an NVIDIA GPU (a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// What the products multiply: fp32 (the tutorial's); bf16 on CPUs with AVX512_BF16
    /// (the convolutions' products of bfloat16 values summed in f32); or tf32 on NVIDIA GPUs
    /// (every product on the tensor cores, TensorFloat-32 factors summed in f32). Weights, BN
    /// statistics, loss and optimizer stay f32. The CPU path is the best the CPU has;
    /// MINIVGG_CPU=portable|avx2|avx512 (x86-64) or portable|neon (aarch64) forces a lower one.
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
}

impl ComputeArgs {
    /// The precision, if the device runs it.
    pub(super) fn checked_precision(&self) -> Result<Precision> {
        self.precision.check_device(self.device).map_err(usage)?;
        Ok(self.precision)
    }
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Architecture: minivggnet, shallownet or lenet (any case: MiniVGGNet); a network file
    /// (NAME.json: its format is in docs/network-files.md, an example in
    /// examples/vgg_three_blocks.json); a model saved by `train --save`; or a checkpoint (its
    /// file or its directory).
    #[arg(long, default_value = "minivggnet")]
    pub model: String,
    /// MiniVGGNet without its five batch-normalization layers (the tutorial's ablation).
    #[arg(long)]
    pub no_bn: bool,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The data the network is built for (its image shape and classes) and the memory plan
    /// counts; without --data, CIFAR-10's, without loading it.
    #[command(flatten)]
    pub data: DataArgs,
    /// The batch size whose memory the summary works out; at most 50,000.
    #[arg(long, default_value_t = 64, value_parser = count)]
    pub batch_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schedule {
    Keras,
    Linear,
}

/// The recipe and where it runs: shared by `train` and `compare`.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// At most 10,000.
    #[arg(long, default_value_t = 40, value_parser = count)]
    pub epochs: usize,
    /// At most 50,000 (the training images); with --limit N, batches hold at most N. The
    /// run's memory is worked out first: a run that does not fit is refused with the largest
    /// batch size that does.
    #[arg(long, default_value_t = 64, value_parser = count)]
    pub batch_size: usize,
    /// SGD's learning rate at the first update (the tutorial's `SGD(lr=0.01)`).
    #[arg(long, default_value_t = 0.01)]
    pub lr: f32,
    /// SGD's momentum, in [0, 1) (the tutorial's `momentum=0.9`).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Plain momentum instead of Nesterov's.
    #[arg(long)]
    pub no_nesterov: bool,
    /// Time-based learning-rate decay per update. Default: lr / epochs, as the tutorial
    /// (0 with `--schedule linear`).
    #[arg(long)]
    pub decay: Option<f32>,
    /// How the learning rate falls per update t: `keras`, the tutorial's lr / (1 + decay·t);
    /// or `linear`, which also scales it by 1 − t/T so it reaches 0 at the run's last update
    /// (the series' later polynomial decay, power 1).
    #[arg(long, value_enum, default_value = "keras")]
    pub schedule: Schedule,
    /// Adds wd·w to the gradient of every trainable parameter, as PyTorch's
    /// SGD(weight_decay=wd); Keras' l2(wd / 2) on every weight. The printed loss leaves the
    /// penalty out. The tutorial uses none.
    #[arg(long, value_name = "WD", default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Seed for initialisation, shuffling, dropout and augmentation. Default: a random seed,
    /// printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Augment the training images: a random 32×32 crop of the image padded by 4 pixels, and
    /// a horizontal flip half of the time (drawn from the seed).
    #[arg(long)]
    pub augment: bool,
    /// Use only N training and N test images, every class's share equal, taken a class at a
    /// time in turn (quick trials; the report then covers those N test images). At most 2^24.
    #[arg(long, value_name = "N", value_parser = count)]
    pub limit: Option<usize>,
    /// Keep the checkpoint directory once the run has finished (a finished run removes it:
    /// its plot, history, report and --save model are what is left).
    #[arg(long)]
    pub keep_checkpoints: bool,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// A data set by name, as keras.datasets: cifar10, cifar100, mnist or fashion-mnist
    /// (downloaded once into the user cache); or a path: CIFAR-10's or CIFAR-100's binary
    /// version (directory or .tar.gz), a directory of MNIST's four IDX files, or a folder of
    /// images with one sub-folder per class (DIR/train/ and DIR/test/ as splits, or
    /// --val-split). A directory named like a data set is ./NAME. Default: CIFAR-10 from
    /// $MINIVGG_DATA, else the user cache, downloading the official archive if empty.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Image folders: the size every picture is resized to, N or WxH (default 32, the
    /// series' SimplePreprocessor(32, 32)); the aspect ratio is not kept.
    #[arg(long, value_name = "N|WxH")]
    pub image_size: Option<ImageSize>,
    /// Image folders: one grey channel instead of RGB.
    #[arg(long)]
    pub grayscale: bool,
    /// Image folders without train/ and test/: the fraction of each class held out for
    /// validation (0 < F < 1; the series uses 0.25), drawn from seed 42 whatever --seed is.
    #[arg(long, value_name = "F")]
    pub val_split: Option<f64>,
    /// CIFAR-100: its 100 fine classes or its 20 coarse superclasses.
    #[arg(long, value_enum, default_value = "fine")]
    pub labels: Cifar100Labels,
    /// Image folders: skip files with an image extension that do not decode (they are
    /// listed) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_images: bool,
}

impl DataArgs {
    /// The data the flags ask for; `--val-split` outside (0, 1) is refused, in the words of
    /// the folder reader's own check.
    pub fn request(&self) -> Result<DataRequest> {
        if let Some(value) = self.val_split {
            if !(value > 0.0 && value < 1.0) {
                return Err(usage(
                    crate::data::folder::FolderError::BadValSplit { value }.to_string(),
                ));
            }
        }
        Ok(DataRequest {
            data: self.data.clone(),
            image_size: self.image_size,
            grayscale: self.grayscale,
            val_split: self.val_split,
            labels: self.labels,
            skip_bad_images: self.skip_bad_images,
        })
    }
}

/// The largest batch size any command takes; a batch larger than the training images is
/// one batch of them all, as Keras' fit makes it.
pub const MAX_BATCH_SIZE: usize = 65_536;
/// The largest `--limit`.
pub const MAX_LIMIT: usize = 1 << 24;

pub(super) fn check_flags(args: &RecipeArgs) -> Result<()> {
    args.compute.checked_precision()?;
    check_size("--epochs", args.epochs, MAX_EPOCHS, "")?;
    args.data.request()?;
    check_size("--batch-size", args.batch_size, MAX_BATCH_SIZE, "")?;
    if let Some(limit) = args.limit {
        check_size("--limit", limit, MAX_LIMIT, "")?;
        if args.batch_size > limit {
            println!(
                "[INFO] --batch-size {} is more than the {limit} training images of --limit: \
                 batches of {limit}, as Keras' fit makes them",
                args.batch_size
            );
        }
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(usage(format!(
            "--lr must be a positive number, got {}",
            args.lr
        )));
    }
    if !(0.0..1.0).contains(&args.momentum) {
        return Err(usage(format!(
            "--momentum must be in [0, 1), got {}",
            args.momentum
        )));
    }
    if let Some(decay) = args.decay {
        check_non_negative("--decay", decay)?;
    }
    check_non_negative("--weight-decay", args.weight_decay)?;
    Ok(())
}

/// The most epochs a run may ask for.
pub const MAX_EPOCHS: usize = 10_000;

/// clap's parser of a flag that counts (epochs, images, threads…): a whole number, and where
/// the value is not one (`-1`, `2.5`), a message that says what the flag takes; 0 and values
/// over the flag's bound are [`check_size`]'s to refuse.
pub(super) fn count(value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("expected a whole number, at least 1; got {value:?}"))
}

/// Refuses a picture `flag` names that is not a `.png`: the plots are PNG images, and a
/// `plot.jpg` of PNG bytes would open as a broken JPEG.
pub(super) fn check_png(flag: &str, path: &Path) -> Result<()> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(usage(format!(
            "{flag} {}: the picture is written as PNG; name it NAME.png",
            path.display()
        )));
    }
    Ok(())
}

/// Refuses a size flag outside 1..=`max`; `why` says where the bound comes from.
pub(super) fn check_size(flag: &str, value: usize, max: usize, why: &str) -> Result<()> {
    if value == 0 {
        return Err(usage(format!("{flag} must be at least 1")));
    }
    if value > max {
        return Err(usage(format!("{flag} {value}: at most {max}{why}")));
    }
    Ok(())
}

fn check_non_negative(flag: &str, value: f32) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(usage(format!(
            "{flag} must be a non-negative number, got {value}"
        )))
    }
}

/// A new run's settings from the recipe flags (`seed` drawn already if not given), its plot
/// at `output`, on a data set of `train_images` training images.
pub(super) fn run_settings(
    recipe: &RecipeArgs,
    seed: u64,
    output: PathBuf,
    save: Option<PathBuf>,
    train_images: usize,
) -> RunSettings {
    let images = recipe
        .limit
        .map_or(train_images, |n| n.min(train_images))
        .max(1);
    RunSettings {
        epochs: recipe.epochs,
        // A batch never holds more than the training images, as Keras' fit makes them.
        batch_size: recipe.batch_size.min(images),
        sgd: SgdConfig {
            lr: recipe.lr,
            momentum: recipe.momentum,
            nesterov: !recipe.no_nesterov,
            decay: recipe.decay.unwrap_or(match recipe.schedule {
                Schedule::Keras => recipe.lr / recipe.epochs as f32,
                Schedule::Linear => 0.0,
            }),
            anneal_updates: match recipe.schedule {
                Schedule::Keras => 0,
                Schedule::Linear => (recipe.epochs * images.div_ceil(recipe.batch_size)) as u64,
            },
            weight_decay: recipe.weight_decay,
        },
        seed,
        output,
        save,
        augment: recipe.augment,
        limit: recipe.limit,
        precision: recipe.compute.precision,
        save_best: false,
        data: DataRequest::default(),
        data_fingerprint: None,
        keep_checkpoints: recipe.keep_checkpoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn settings_of(flags: &[&str]) -> RunSettings {
        let cli = Cli::try_parse_from(["minivgg", "train"].iter().chain(flags)).unwrap();
        let Command::Train(args) = cli.command else {
            unreachable!()
        };
        run_settings(&args.recipe, 1, PathBuf::from("p.png"), None, 50_000)
    }

    #[test]
    fn the_tutorial_schedule_decays_by_lr_over_epochs_and_never_anneals() {
        let sgd = settings_of(&["--lr", "0.02", "--epochs", "10"]).sgd;
        assert_eq!(sgd.decay, 0.02 / 10.0);
        assert_eq!(sgd.anneal_updates, 0);
    }

    #[test]
    fn the_linear_schedule_ends_at_the_runs_last_update() {
        // 1,000 images in batches of 64: 16 updates per epoch, 3 epochs.
        let flags = ["--schedule", "linear", "--epochs", "3", "--limit", "1000"];
        let sgd = settings_of(&flags).sgd;
        assert_eq!((sgd.decay, sgd.anneal_updates), (0.0, 48));
        assert_eq!(sgd.lr_at(48), 0.0);
        // The whole training split when --limit is absent or larger.
        let flags = [
            "--schedule",
            "linear",
            "--limit",
            "60000",
            "--decay",
            "0.001",
        ];
        let sgd = settings_of(&flags).sgd;
        assert_eq!((sgd.decay, sgd.anneal_updates), (0.001, 40 * 782));
    }

    #[test]
    fn weight_decay_is_none_unless_asked_for() {
        assert_eq!(settings_of(&[]).sgd.weight_decay, 0.0);
        let sgd = settings_of(&["--weight-decay", "0.0005"]).sgd;
        assert_eq!(sgd.weight_decay, 0.0005);
    }
}
