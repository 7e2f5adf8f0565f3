//! What `--data` names, and which reader takes it: a data set by name, as `keras.datasets`
//! (`cifar10`, `cifar100`, `mnist`, `fashion-mnist`, downloaded once into the cache), or a
//! path to one of their files, or a folder of images. A run records its [`DataRequest`], so
//! `train --resume` loads the same data.

pub use super::catalogue::{Cifar100Labels, ImageSize, NamedSet};
use super::dataset::{Dataset, ImageShape};
use super::folder::{self, FolderOptions};
use super::{cifar10, cifar100, download, idx};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything that decides which images a run trains and validates on: what `--data` named
/// and the flags that shape it. Recorded in checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataRequest {
    /// `--data` as given; `None` is CIFAR-10 from `$MINIVGG_DATA` or the cache.
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// `--image-size` (image folders): default 32×32.
    #[serde(default)]
    pub image_size: Option<ImageSize>,
    /// `--grayscale` (image folders): one channel.
    #[serde(default)]
    pub grayscale: bool,
    /// `--val-split F` (image folders without a test split): the fraction of each class held
    /// out for validation.
    #[serde(default)]
    pub val_split: Option<f64>,
    /// `--labels` (CIFAR-100).
    #[serde(default)]
    pub labels: Cifar100Labels,
    /// `--skip-bad-images` (image folders): skip files that do not decode, and list them.
    #[serde(default)]
    pub skip_bad_images: bool,
}

/// A data flag that does not apply to the data named: exit code 2, as a bad flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataFlagError(pub String);

/// What a [`DataRequest`] points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Named(NamedSet),
    Path(PathBuf),
}

impl DataRequest {
    /// What `--data` names: a data set's name (a path of that name is written `./NAME`), or a
    /// path; nothing is CIFAR-10, as in the tutorial.
    pub fn source(&self) -> Source {
        match &self.data {
            None => Source::Named(NamedSet::Cifar10),
            Some(path) => match path.to_str().and_then(NamedSet::from_flag) {
                Some(set) => Source::Named(set),
                None => Source::Path(path.clone()),
            },
        }
    }
}

impl DataRequest {
    /// A short name for file names: `cifar10`, `fashion_mnist`, or the folder's own name
    /// (`animals` for `~/animals`), lowercased.
    pub fn slug(&self) -> String {
        let name = match self.source() {
            Source::Named(set) => set.flag_name().to_string(),
            Source::Path(path) => {
                let path = path.canonicalize().unwrap_or(path);
                let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
                let name = name.unwrap_or_default();
                let stem = name.split('.').next().unwrap_or_default().to_string();
                if stem.starts_with("cifar-10") {
                    "cifar10".into()
                } else if stem.starts_with("cifar-100") {
                    "cifar100".into()
                } else {
                    stem
                }
            }
        };
        let slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if slug.is_empty() {
            "data".into()
        } else {
            slug
        }
    }
}

/// Loads what `request` asks for. A path the user named that is not there, or that holds
/// something no reader takes, is a [`cifar10::DataError`] or the reader's own error; a data
/// set with a split that holds no images is an [`EmptySplit`](super::EmptySplit).
pub fn load(request: &DataRequest) -> Result<Dataset> {
    let data = load_any(request)?;
    data.check_not_empty(&describe_source(request))?;
    Ok(data)
}

fn load_any(request: &DataRequest) -> Result<Dataset> {
    let folder_only = [
        ("--image-size", request.image_size.is_some()),
        ("--grayscale", request.grayscale),
        ("--val-split", request.val_split.is_some()),
        ("--skip-bad-images", request.skip_bad_images),
    ];
    let refuse_folder_flags = |what: &str| -> Result<()> {
        if let Some((flag, _)) = folder_only.iter().find(|(_, given)| *given) {
            bail!(DataFlagError(format!(
                "{flag} applies to image folders; {what} has its own image size and test split"
            )));
        }
        Ok(())
    };
    match request.source() {
        Source::Named(set) => {
            refuse_folder_flags(set.title())?;
            let path = download::resolve_named(set)?;
            load_file_set(&path, Some(set), request)
        }
        Source::Path(path) => {
            check_exists(request)?;
            if is_file_set(&path) {
                refuse_folder_flags(&path.display().to_string())?;
                return load_file_set(&path, None, request);
            }
            let options = FolderOptions {
                size: request.image_size.unwrap_or(ImageSize::DEFAULT),
                grayscale: request.grayscale,
                val_split: request.val_split,
                skip_bad_images: request.skip_bad_images,
                cache_dir: None,
            };
            Ok(folder::load(&path, &options)?)
        }
    }
}

/// Refuses a `--data` path that does not exist, suggesting the data set's name it was likely
/// meant to be.
pub fn check_exists(request: &DataRequest) -> Result<()> {
    match request.source() {
        Source::Path(path) if !path.exists() => bail!(
            "data path {} (from --data) does not exist; {}",
            path.display(),
            match closest_named(&path) {
                Some(set) => format!("did you mean --data {}?", set.flag_name()),
                None => format!(
                    "--data takes a path or a data set's name: {}",
                    NamedSet::ALL.map(NamedSet::flag_name).join(", ")
                ),
            }
        ),
        _ => Ok(()),
    }
}

/// Whether `path` holds one of the data sets of fixed files (CIFAR-10's or CIFAR-100's binary
/// version, MNIST's IDX files), not a folder of pictures.
fn is_file_set(path: &Path) -> bool {
    cifar100::is_cifar100(path) || idx::find_idx_dir(path).is_some() || cifar10::is_cifar10(path)
}

/// One of the data sets of fixed files at `path` (`set` if it was named, else told by what
/// `path` holds).
fn load_file_set(path: &Path, set: Option<NamedSet>, request: &DataRequest) -> Result<Dataset> {
    let idx_dir = idx::find_idx_dir(path);
    let set = set.unwrap_or_else(|| {
        if cifar100::is_cifar100(path) {
            NamedSet::Cifar100
        } else if let Some(dir) = &idx_dir {
            idx::set_of_dir(dir)
        } else {
            NamedSet::Cifar10
        }
    });
    Ok(match set {
        NamedSet::Cifar10 => cifar10::load(path)?,
        NamedSet::Cifar100 => cifar100::load(path, request.labels)?,
        NamedSet::Mnist | NamedSet::FashionMnist => {
            idx::load(idx_dir.as_deref().unwrap_or(path), set)?
        }
    })
}

/// The named data set `path`, which names none and does not exist, was likely meant to be: a
/// name in another case or mistyped (`MNIST`, `cifar`, `fashion_mnist`), as clap suggests flags.
fn closest_named(path: &Path) -> Option<NamedSet> {
    let given = path.to_str()?.to_lowercase();
    // A path (`data/cifar-10-batches-bin`, `cifar-10.tar.gz`) was meant as one.
    if given.contains(['/', '\\', '.']) {
        return None;
    }
    NamedSet::ALL
        .into_iter()
        .map(|set| (strsim::jaro_winkler(&given, set.flag_name()), set))
        .filter(|(similarity, _)| *similarity > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, set)| set)
}

/// The shape of the images `request` gives, where it is known without decoding any: a named
/// data set's, or an image folder's from `--image-size` and `--grayscale`. `None` for a path
/// to a data set's files, whose shape only its files say.
pub fn known_shape(request: &DataRequest) -> Option<ImageShape> {
    let named = |set| match set {
        NamedSet::Cifar10 | NamedSet::Cifar100 => ImageShape::CIFAR,
        NamedSet::Mnist | NamedSet::FashionMnist => ImageShape {
            height: 28,
            width: 28,
            channels: 1,
        },
    };
    match request.source() {
        Source::Named(set) => Some(named(set)),
        Source::Path(path) => {
            let size = request.image_size.unwrap_or(ImageSize::DEFAULT);
            (path.is_dir() && !is_file_set(&path)).then_some(ImageShape {
                height: size.height,
                width: size.width,
                channels: if request.grayscale { 1 } else { 3 },
            })
        }
    }
}

/// The path a request's data was read from, for the log and the checkpoint.
pub fn describe_source(request: &DataRequest) -> String {
    match request.source() {
        Source::Named(set) => set.title().to_string(),
        Source::Path(path) => Path::new(&path).display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sizes_read_as_n_or_w_by_h() {
        let size = |s: &str| s.parse::<ImageSize>();
        assert_eq!(
            size("64"),
            Ok(ImageSize {
                width: 64,
                height: 64
            })
        );
        assert_eq!(
            size("48x40"),
            Ok(ImageSize {
                width: 48,
                height: 40
            })
        );
        assert_eq!(
            size("0").unwrap_err(),
            "expected N or WxH with sides from 1 to 1024, got \"0\""
        );
        assert!(size("2000x10").is_err() && size("x").is_err() && size("").is_err());
    }

    #[test]
    fn a_name_close_to_a_data_sets_is_taken_for_it() {
        let closest = |given: &str| closest_named(Path::new(given));
        assert_eq!(closest("cifar"), Some(NamedSet::Cifar10));
        assert_eq!(closest("CIFAR100"), Some(NamedSet::Cifar100));
        assert_eq!(closest("MNIST"), Some(NamedSet::Mnist));
        assert_eq!(closest("fashion_mnist"), Some(NamedSet::FashionMnist));
        assert_eq!(closest("~/photos/animals"), None);
        assert_eq!(closest("cifar-10-batches-bin/"), None);
        assert_eq!(closest("cifar-10.tar.gz"), None);
    }

    #[test]
    fn names_are_data_sets_and_anything_else_a_path() {
        let request = |data: Option<&str>| DataRequest {
            data: data.map(PathBuf::from),
            ..DataRequest::default()
        };
        assert_eq!(request(None).source(), Source::Named(NamedSet::Cifar10));
        assert_eq!(
            request(Some("fashion-mnist")).source(),
            Source::Named(NamedSet::FashionMnist)
        );
        assert_eq!(
            request(Some("./mnist")).source(),
            Source::Path(PathBuf::from("./mnist"))
        );
    }
}
