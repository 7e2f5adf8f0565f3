//! `minivgg predict`: the top classes of image files under a saved model.

use super::args::count;
use crate::data::folder::{is_hidden, is_image, IMAGE_EXTENSIONS};
use crate::data::{images, Split};
use crate::engine::Precision;
use crate::run::error::{bad_input, usage};
use crate::run::load_weights;
use crate::train::fit::predict_probabilities;
use anyhow::{anyhow, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model saved by `train --save`, or a checkpoint (its file or its directory); `--model`
    /// is the same flag, as `train` names a saved model.
    #[arg(long, visible_alias = "model")]
    pub weights: PathBuf,
    /// Image files (PNG, JPEG, BMP, GIF, WebP, TIFF, PNM), any size: each is resized to the
    /// model's input size (aspect ratio not kept), and made grey for a one-channel model. A
    /// folder stands for the pictures directly in it, in name order.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// How many of the most likely classes to print per image.
    #[arg(long, default_value_t = 3, value_parser = count)]
    pub top: usize,
}

/// The files `paths` name: each file as it is, each folder's pictures (by extension, not
/// hidden, not in subfolders) in name order; a folder without any is refused.
fn pictures(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| bad_input(anyhow!("cannot read the folder {}: {e}", path.display())))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| !p.file_name().is_some_and(is_hidden) && !p.is_dir() && is_image(p))
            .collect();
        if found.is_empty() {
            return Err(bad_input(anyhow!(
                "{} holds no pictures ({}) directly in it",
                path.display(),
                IMAGE_EXTENSIONS.join(", ")
            )));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// A file `predict` could not read: the others are still classified, then exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0} of the images could not be read (see above)")]
pub struct UnreadableImages(pub usize);

pub(super) fn predict(args: PredictArgs) -> Result<()> {
    if args.top == 0 {
        return Err(usage("--top must be at least 1".into()));
    }
    let images = pictures(&args.images)?;
    let mut net = load_weights(&args.weights, 64, Precision::Fp32, |spec| {
        spec.image_shape().map(|_| ())
    })?
    .model;
    let shape = net.spec.image_shape()?;
    let mut readable = Vec::new();
    let mut pixels = Vec::new();
    let mut failed = 0;
    for path in &images {
        match images::load_as(path, shape) {
            Ok(image) => {
                pixels.extend_from_slice(&image);
                readable.push(path);
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    let split = Split::new(shape, pixels, vec![0; readable.len()]);
    let names = net.spec.class_names();
    for (path, probs) in readable.iter().zip(predict_probabilities(&mut net, &split)) {
        let mut ranked: Vec<usize> = (0..probs.len()).collect();
        ranked.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top: Vec<String> = ranked
            .iter()
            .take(args.top)
            .map(|&c| format!("{} {:.1} %", names[c], 100.0 * probs[c]))
            .collect();
        println!("{}: {}", path.display(), top.join(", "));
    }
    if failed > 0 {
        return Err(UnreadableImages(failed).into());
    }
    Ok(())
}
