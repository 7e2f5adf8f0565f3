//! What a run reads: its data, loaded as a command names it, and its network, a built-in one
//! built for that data or one from a file, refused if it does not fit the data.

use super::error::{bad_input, usage};
use super::paths::Files;
use crate::data::{cifar10, source, DataRequest, Dataset, NamedSet};
use crate::engine::{Network, Precision};
use crate::model::{network_file, zoo, ModelSpec, Shape};
use crate::store::model_file;
use crate::train::checkpoint::{self, ModelFile};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The data a run trains and validates on, cut to `limit` images per split; one line says
/// what it is.
pub fn load_data(request: &DataRequest, limit: Option<usize>) -> Result<Dataset> {
    println!(
        "[INFO] loading {} data...",
        source::describe_source(request)
    );
    // What the user named (a path, or $MINIVGG_DATA) being wrong is bad input; a failed
    // download is not.
    let named_path = match request.source() {
        source::Source::Path(_) => true,
        source::Source::Named(set) => {
            set == NamedSet::Cifar10
                && std::env::var_os(crate::data::download::DATA_ENV).is_some_and(|v| !v.is_empty())
        }
    };
    let started = std::time::Instant::now();
    let mut data = source::load(request).map_err(|e| if named_path { bad_input(e) } else { e })?;
    if let Some(limit) = limit {
        data.limit_per_class(limit);
    }
    // The load time tells a user whether the decoded-image cache was used.
    println!(
        "[INFO] {}, loaded in {:.2}s",
        data.describe(),
        started.elapsed().as_secs_f64()
    );
    if let Some(limit) = limit {
        println!(
            "[INFO] --limit {limit}: {} for training and {} for validation",
            kept_per_class(&data.train, data.classes()),
            kept_per_class(&data.test, data.classes())
        );
    }
    Ok(data)
}

/// How many images of each class `split` holds, in words: `30 of each class`, or the range.
fn kept_per_class(split: &crate::data::Split, classes: usize) -> String {
    let counts = split.class_counts(classes);
    let (least, most) = (counts.iter().min(), counts.iter().max());
    match (least, most) {
        (Some(least), Some(most)) if least == most => format!("{least} of each class"),
        (Some(least), Some(most)) => format!("{least} to {most} of each class"),
        _ => "none".into(),
    }
}

/// Whether `model` (`--model`) names a saved model or a checkpoint (its file, or a directory
/// that holds one), not a built-in network or a network file. A directory counts only if it
/// holds a checkpoint: `--model minivggnet` stays the built-in network beside a directory of
/// that name.
pub fn names_saved_model(model: &str) -> bool {
    let path = Path::new(model);
    !network_file::is_network_file(path)
        && (path.is_file() || path.join(checkpoint::CHECKPOINT_FILE).is_file())
}

/// The network `model` names (`--model`): a built-in one (without its batch normalization
/// where `no_bn`), a network file, a saved model or a checkpoint (its file or directory).
pub fn model_spec(model: &str, no_bn: bool) -> Result<ModelSpec> {
    let path = Path::new(model);
    let from_file = network_file::is_network_file(path) || names_saved_model(model);
    if from_file && no_bn {
        return Err(usage(format!(
            "--no-bn applies to the built-in models, not to the model file {}",
            path.display()
        )));
    }
    if network_file::is_network_file(path) {
        return network_file::read(path).map_err(bad_input);
    }
    if from_file {
        let file = checkpoint::read_spec(path).map_err(bad_input)?;
        say_where_from(&file, "architecture");
        return Ok(file.model);
    }
    zoo::by_name(model, !no_bn).map_err(|e| usage(format!("--model: {e}")))
}

/// [`model_spec`] built for `data`: a built-in network for its image shape and classes; one
/// from a file as it is, if it fits. It carries the data's class names.
pub fn model_spec_for(model: &str, no_bn: bool, data: &Dataset) -> Result<ModelSpec> {
    let mut spec = model_spec(model, no_bn)?;
    if zoo::model_name(model).is_some() && !Path::new(model).exists() {
        spec = zoo::built_for(spec, data.shape().into(), data.classes());
    }
    check_fits_data(&spec, data)?;
    spec.class_names = data.class_names.clone();
    Ok(spec)
}

/// Refuses a network that cannot take `data`'s images or give its classes, naming both.
pub fn check_fits_data(spec: &ModelSpec, data: &Dataset) -> Result<()> {
    let images = Shape::from(data.shape());
    if spec.input != images || spec.classes != data.classes() {
        return Err(usage(format!(
            "--model: {} takes {} inputs and gives {} classes; {} has {images} images ({}) of {} classes",
            spec.name,
            spec.input,
            spec.classes,
            data.name,
            data.shape(),
            data.classes()
        )));
    }
    Ok(())
}

/// Refuses, before any image is decoded, a model (from the file `model`) that cannot take the
/// images `request` gives where their shape is known without decoding them
/// ([`source::known_shape`]), naming the flags that would make them fit.
pub fn check_fits_request(spec: &ModelSpec, model: &Path, request: &DataRequest) -> Result<()> {
    let Some(shape) = source::known_shape(request) else {
        return Ok(());
    };
    let Shape::Image { h, w, c } = spec.input else {
        return Ok(());
    };
    if Shape::from(shape) == spec.input {
        return Ok(());
    }
    let fix = match request.source() {
        source::Source::Path(_) => {
            let mut flags = Vec::new();
            if (h, w) != (shape.height, shape.width) {
                flags.push(format!("pass --image-size {w}x{h}"));
            }
            match c {
                _ if c == shape.channels => {}
                1 => flags.push("pass --grayscale".into()),
                3 => flags.push("leave out --grayscale".into()),
                _ => flags.push(format!("images of {c} channels, which no folder gives")),
            }
            flags.join(" and ")
        }
        source::Source::Named(_) => "name the data it was trained on with --data".into(),
    };
    Err(usage(format!(
        "{}: {} takes {} inputs; {} gives {} images: {fix}",
        model.display(),
        spec.name,
        spec.input,
        source::describe_source(request),
        Shape::from(shape),
    )))
}

/// Refuses data whose class names are not those the model (from the file `model`) was
/// trained on, naming both; a model that recorded none (one saved before they were, or by
/// `minivgg.keras` without `class_names`) is taken at its word.
pub fn check_same_classes(spec: &ModelSpec, model: &Path, data: &Dataset) -> Result<()> {
    let named = spec.class_names.len() == spec.classes;
    if !named || spec.class_names == data.class_names {
        return Ok(());
    }
    let list = |names: &[String]| {
        let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
        let more = if names.len() > 5 { ", …" } else { "" };
        format!("{} ({}{more})", names.len(), shown.join(", "))
    };
    Err(usage(format!(
        "{} was trained on the classes {}; {} has the classes {}: name the data it was trained on with --data",
        model.display(),
        list(&spec.class_names),
        data.name,
        list(&data.class_names),
    )))
}

/// The data a network is built for without being trained on it (`summary`, `export
/// --model`): its name and the bytes it holds in memory.
pub struct DataFacts {
    pub name: String,
    pub bytes: u64,
}

/// [`model_spec`] built for the data `request` names if it names any (loading the data for
/// its shape and classes), else for CIFAR-10, which is not loaded: its size is known.
pub fn model_spec_for_request(
    model: &str,
    no_bn: bool,
    request: &DataRequest,
) -> Result<(ModelSpec, DataFacts)> {
    if *request == DataRequest::default() {
        let cifar10 = DataFacts {
            name: "CIFAR-10".into(),
            bytes: (cifar10::TRAIN_IMAGES + cifar10::RECORDS_PER_FILE) as u64
                * cifar10::RECORD_BYTES as u64,
        };
        return Ok((model_spec(model, no_bn)?, cifar10));
    }
    let data = load_data(request, None)?;
    let spec = model_spec_for(model, no_bn, &data)?;
    let facts = DataFacts {
        name: data.name.clone(),
        bytes: data.resident_bytes(),
    };
    Ok((spec, facts))
}

/// Adds what a command reads to `files`: the network file `model` names (a built-in name
/// reads nothing) and the data's path, from `--data` or `$MINIVGG_DATA`.
pub(crate) fn declare_inputs(files: &mut Files, model: &str, data: &DataRequest) {
    if Path::new(model).exists() && zoo::model_name(model).is_none() {
        files.reads("--model", Path::new(model));
    }
    let env = crate::data::download::DATA_ENV;
    match data.source() {
        source::Source::Path(path) => {
            files.reads("--data", &path);
        }
        source::Source::Named(_) if data.data.is_none() => {
            if let Some(path) = std::env::var_os(env).filter(|v| !v.is_empty()) {
                files.reads(format!("${env}"), Path::new(&path));
            }
        }
        source::Source::Named(_) => {}
    }
}

/// The file `--weights` reads (a directory's checkpoint); a directory without one is the
/// reader's to refuse.
pub fn weights_file(weights: &Path) -> PathBuf {
    checkpoint::model_file(weights).unwrap_or_else(|_| weights.to_path_buf())
}

/// The network of the model that `path` names: a saved model, a checkpoint or a checkpoint
/// directory, for batches of up to `capacity` samples, its products in `precision`; `check`
/// sees its architecture before it is allocated. With it, what the file says of it (the data
/// it was trained on, where its run stood).
pub fn load_weights(
    path: &Path,
    capacity: usize,
    precision: Precision,
    check: impl FnOnce(&ModelSpec) -> Result<()>,
) -> Result<ModelFile<Network>> {
    let file = checkpoint::load_model(path, capacity, precision, check).map_err(bad_input)?;
    say_where_from(&file, "model");
    Ok(file)
}

/// One line on stderr (stdout stays the command's output) for a model taken from a
/// checkpoint, and one for a file whose tensors could not be verified.
fn say_where_from<T>(file: &ModelFile<T>, what: &str) {
    if let Some(stage) = &file.checkpoint {
        eprintln!(
            "[INFO] {} is a checkpoint ({stage}): using its {what}",
            file.path.display()
        );
    }
    if !file.verified {
        eprintln!("{}", model_file::unverified_warning(&file.path));
    }
}
