//! `minivgg compare`: the tutorial's experiment, MiniVGGNet (or a network from a file) with
//! and without batch normalization from one seed, side by side.

use super::args::{check_flags, check_png, run_settings, RecipeArgs};
use super::set_threads;
use super::train::stop_on_signal;
use crate::engine::device::Device;
use crate::fsutil::{atomic_write_bytes, ensure_writable};
use crate::model::LayerSpec;
use crate::report::plot::plot_comparison;
use crate::run::error::usage;
use crate::run::inputs::declare_inputs;
use crate::run::paths::Files;
use crate::run::{
    self, beside, device_label, fresh_run, load_data, model_spec, model_spec_for, train_run,
    RunControl, RunFiles,
};
use crate::train::checkpoint::{Checkpoint, RunSettings};
use crate::train::device::check_device;
use crate::train::history::History;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The side-by-side figure (PNG). The table goes beside it as NAME.md, and each run's
    /// own plot, CSV, report and confusion matrix as NAME_with_bn.png, NAME_without_bn.png…
    #[arg(long, default_value = "output/cifar10_minivggnet_bn_comparison.png")]
    pub output: PathBuf,
    /// The network compared with and without its batch-normalization layers: minivggnet (the
    /// tutorial's) or a network file (NAME.json).
    #[arg(long, default_value = "minivggnet")]
    pub model: String,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

pub(super) fn compare(args: CompareArgs) -> Result<()> {
    check_flags(&args.recipe)?;
    // One seed for both arms, drawn once if not given: the comparison is of BN alone.
    let seed = args.recipe.seed.unwrap_or_else(rand::random);
    let table_path = args.output.with_extension("md");
    let with_bn = model_spec(&args.model, false)?;
    if !with_bn.layers.contains(&LayerSpec::BatchNorm) {
        return Err(usage(format!(
            "--model: {} has no batch normalization to compare without",
            with_bn.name
        )));
    }
    let shown = match with_bn.name.as_str() {
        "minivggnet" => "MiniVGGNet".to_string(),
        name => name.to_string(),
    };
    let request = args.recipe.data.request()?;
    // The two arms of the ablation: their files (known before the data is loaded, so that
    // they are checked and locked first) and their titles.
    let arms = [
        ("_with_bn", true, "with batch normalization"),
        ("_without_bn", false, "without batch normalization"),
    ];
    let mut outputs: Vec<(RunFiles, PathBuf)> = arms
        .iter()
        .map(|(suffix, _, _)| {
            let plot = beside(&args.output, &format!("{suffix}.png"));
            let settings = run_settings(&args.recipe, seed, plot.clone(), None, 0);
            let dir = beside(&settings.output, "_checkpoint");
            (RunFiles::new(&settings, dir), plot)
        })
        .collect();
    let mut paths = Files::default();
    paths
        .writes("--output", &args.output)
        .writes("the table beside --output", &table_path);
    for ((_, _, arm), (files, _)) in arms.iter().zip(&outputs) {
        files.declare(&mut paths, &format!("the plot of the run {arm}"));
    }
    declare_inputs(&mut paths, &args.model, &request);
    paths.check_distinct()?;
    check_png("--output", &args.output)?;
    for path in [&args.output, &table_path] {
        ensure_writable(path)?;
    }
    for (files, _) in &outputs {
        files.check_writable()?;
    }
    set_threads(args.recipe.compute.threads)?;
    check_device(args.recipe.compute.device)?;
    let locks = outputs
        .iter()
        .map(|(files, _)| files.lock())
        .collect::<Result<Vec<_>>>()?;
    let data = load_data(&request, args.recipe.limit)?;
    let with_bn = model_spec_for(&args.model, false, &data)?;
    let fingerprint = data.fingerprint();
    let mut runs: Vec<(Checkpoint, String)> = Vec::new();
    for ((_, batch_norm, arm), (files, plot)) in arms.iter().zip(&mut outputs) {
        files.set_data_name(&data.name);
        let spec = if *batch_norm {
            with_bn.clone()
        } else {
            with_bn.without_batch_norm()
        };
        let settings = RunSettings {
            data: request.clone(),
            data_fingerprint: Some(fingerprint.clone()),
            ..run_settings(&args.recipe, seed, plot.clone(), None, data.train.len())
        };
        if runs.is_empty() {
            run::check_memory(&spec, settings.batch_size, 2, data.resident_bytes())?;
        }
        runs.push((fresh_run(&spec, settings)?, format!("{shown} {arm}")));
    }
    let stop = stop_on_signal()?;
    let mut histories = Vec::new();
    for (((run, title), (files, _)), lock) in runs.into_iter().zip(&outputs).zip(locks) {
        println!("[INFO] {title}");
        let device = args.recipe.compute.device;
        histories.push((
            train_run(
                run,
                files,
                lock,
                device,
                &data,
                RunControl::stopped_by(stop.clone()),
            )?,
            title,
        ));
    }
    let panels: Vec<(&History, &str)> = histories.iter().map(|(h, t)| (h, t.as_str())).collect();
    plot_comparison(&panels, &args.output)?;
    let table = comparison_table(
        &shown,
        &data.name,
        &panels,
        seed,
        args.recipe.compute.device,
    );
    atomic_write_bytes(&table_path, table.as_bytes())?;
    println!("\n{table}");
    println!(
        "[INFO] wrote {} and {}",
        args.output.display(),
        table_path.display()
    );
    Ok(())
}

/// The comparison of `model`'s runs on `data` as a Markdown table: each run's last epoch, its
/// best validation accuracy and the mean time per epoch.
pub fn comparison_table(
    model: &str,
    data: &str,
    runs: &[(&History, &str)],
    seed: u64,
    device: Device,
) -> String {
    let mut out = format!(
        "{model} on {data} with and without batch normalization (seed {seed}, {})\n\n\
         | run | epochs | loss | acc | val_loss | val_acc | best val_acc (epoch) | s/epoch |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        device_label(device)
    );
    for (history, title) in runs {
        let Some(last) = history.last() else { continue };
        let best = history
            .epochs
            .iter()
            .fold(last, |b, e| if e.val_acc > b.val_acc { e } else { b });
        let seconds =
            history.epochs.iter().map(|e| e.seconds).sum::<f64>() / history.epochs.len() as f64;
        out.push_str(&format!(
            "| {title} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} ({}) | {seconds:.1} |\n",
            history.epochs.len(),
            last.loss,
            last.acc,
            last.val_loss,
            last.val_acc,
            best.val_acc,
            best.epoch
        ));
    }
    out
}
