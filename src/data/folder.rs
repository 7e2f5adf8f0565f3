//! Image folders, laid out as Keras' `image_dataset_from_directory` and torchvision's
//! `ImageFolder` take them: `DIR/<class>/…`, the class names the sub-folders' names in byte
//! order, the pictures inside each found recursively; or `DIR/train/<class>/…` with
//! `DIR/test/<class>/…` (or `val/`, `validation/`) as the validation split.
//!
//! Without a test split, `--val-split F` holds out round(F × n) images of each class, chosen
//! by a shuffle seeded with 42 (the series' `train_test_split(test_size=0.25,
//! random_state=42)`), so the validation set does not depend on the run's seed.
//!
//! The decoded images are cached (see [`super::cache`]): the second run on an unchanged folder
//! maps them from the cache file instead of decoding anything.

use super::cache::{self, CacheWriter, Cached};
use super::catalogue::ImageSize;
use super::dataset::{Dataset, ImageShape, MAX_CLASSES};
use super::images::{self, ImageError};
use crate::fsutil::{describe_file_type, FileIdentity};
use crate::words::plural;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};
use xxhash_rust::xxh3::Xxh3;

/// How a folder's pictures are made into a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderOptions {
    /// Every picture is resized to this (`--image-size`).
    pub size: ImageSize,
    /// One grey channel instead of RGB (`--grayscale`).
    pub grayscale: bool,
    /// The fraction of each class held out for validation (`--val-split`), for a folder
    /// without a test split; strictly between 0 and 1.
    pub val_split: Option<f64>,
    /// Skip (and list) files with an image extension that do not decode, instead of failing.
    pub skip_bad_images: bool,
    /// The cache root, in place of `dirs::cache_dir()` (`None`, the user's cache); the file
    /// goes to `ROOT/minivgg/images/<key>.bin`.
    pub cache_dir: Option<PathBuf>,
}

impl Default for FolderOptions {
    fn default() -> FolderOptions {
        FolderOptions {
            size: ImageSize::DEFAULT,
            grayscale: false,
            val_split: None,
            skip_bad_images: false,
            cache_dir: None,
        }
    }
}

impl FolderOptions {
    /// The shape every image is stored in.
    pub fn shape(&self) -> ImageShape {
        ImageShape {
            height: self.size.height,
            width: self.size.width,
            channels: if self.grayscale { 1 } else { 3 },
        }
    }
}

/// What is wrong with an image folder (or the options for it): a bad input, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{path}: no such directory")]
    NotFound { path: String },
    #[error("{path} is not a directory")]
    NotADirectory { path: String },
    #[error("{path}: cannot read: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error(
        "{path}: no images found: expected a folder per class (DIR/<class>/<images>), \
         or DIR/train/<class>/ and DIR/test/<class>/"
    )]
    NoImages { path: String },
    #[error(
        "{path}: {} directly in it and no class folders: move them into a folder per class \
         (DIR/<class>/<images>), named for the class",
        plural(*.count, "image", "images")
    )]
    FlatFolder { path: String, count: usize },
    #[error("{path}: the class folder {class} holds no images")]
    EmptyClass { path: String, class: String },
    #[error("{path}: none of the images of class {class} could be read")]
    NoReadableImages { path: String, class: String },
    #[error(
        "{path}: only one class folder ({class}); a classifier needs at least 2 classes \
         (Keras' categorical labels)"
    )]
    OneClass { path: String, class: String },
    #[error("{path}: {count} class folders, more than the {MAX_CLASSES} classes minivgg takes")]
    TooManyClasses { path: String, count: usize },
    #[error(
        "{path}: {train_dir}/ and {test_dir}/ have different classes: {}",
        differences(only_train, train_dir, only_test, test_dir)
    )]
    ClassesDiffer {
        path: String,
        train_dir: String,
        test_dir: String,
        only_train: Vec<String>,
        only_test: Vec<String>,
    },
    #[error("{path} is {kind}, not a regular file: pictures are read from regular files only")]
    NotRegular { path: String, kind: &'static str },
    #[error(
        "{path}: the class folder {class} is a link to the data set's folder or one above it: \
         it would hold every class"
    )]
    ClassLoop { path: String, class: String },
    /// `links`: which path reaches which again, under which classes, in words.
    #[error("{path}: {links}: a picture cannot have two labels")]
    TwoClasses { path: String, links: String },
    #[error(
        "{path} has no test split: pass --val-split F to hold out a fraction F of each class \
         for validation, or make train/ and test/ folders"
    )]
    NoSplit { path: String },
    #[error("{path} has its own test split ({test_dir}/): --val-split does not apply")]
    OwnTestSplit { path: String, test_dir: String },
    #[error("--val-split must be between 0 and 1 (both excluded), got {value}")]
    BadValSplit { value: f64 },
    #[error(
        "{path}: class {class} has {count} image(s), too few to hold out some for \
         validation and keep some for training (it needs at least 2)"
    )]
    TooFewForSplit {
        path: String,
        class: String,
        count: usize,
    },
    /// A picture that does not decode, or is over the decoding limits: the message names it.
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot write the image cache {path}: {cause}")]
    Cache { path: String, cause: std::io::Error },
}

impl FolderError {
    /// Whether the folder itself is at fault (exit code 2), not the cache's disk.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, FolderError::Cache { .. })
    }
}

fn differences(only_train: &[String], train: &str, only_test: &[String], test: &str) -> String {
    let mut parts = Vec::new();
    if !only_train.is_empty() {
        parts.push(format!("only in {train}/: {}", only_train.join(", ")));
    }
    if !only_test.is_empty() {
        parts.push(format!("only in {test}/: {}", only_test.join(", ")));
    }
    parts.join("; ")
}

/// The extensions (lowercase) of the files taken as pictures.
pub const IMAGE_EXTENSIONS: [&str; 12] = [
    "png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "pnm", "pbm", "pgm", "ppm",
];

/// The seed of the `--val-split` shuffle: the series' `random_state=42`.
pub const VAL_SPLIT_SEED: u64 = 42;

/// Whether `path` names a picture by its extension (one of [`IMAGE_EXTENSIONS`]).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The order names are listed in: by their bytes, whatever the platform's locale.
fn byte_order(a: &std::ffi::OsStr, b: &std::ffi::OsStr) -> std::cmp::Ordering {
    a.as_encoded_bytes().cmp(b.as_encoded_bytes())
}

/// Whether a file or folder name is hidden (starts with a dot): never taken as data.
pub fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

/// One picture found: where, its size and time (for the cache key), its class.
#[derive(Debug, Clone)]
struct Entry {
    /// Relative to the folder given.
    rel: PathBuf,
    size: u64,
    mtime_ns: i128,
    label: u8,
}

/// The pictures of a folder, before decoding: the training ones, then the validation ones,
/// each class by class in file order.
#[derive(Debug)]
struct Listing {
    classes: Vec<String>,
    train: Vec<Entry>,
    test: Vec<Entry>,
    /// Files skipped for not being pictures.
    skipped: usize,
    /// Links passed over (loops, repeats), one line each.
    notes: Vec<String>,
}

fn read_error(path: &Path) -> impl Fn(std::io::Error) -> FolderError + '_ {
    move |cause| FolderError::Read {
        path: path.display().to_string(),
        cause,
    }
}

/// The visible sub-folders of `dir` (links to folders included), in byte order of name.
fn sub_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>, FolderError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
        let entry = entry.map_err(read_error(dir))?;
        let name = entry.file_name();
        let path = entry.path();
        if !is_hidden(&name) && path.is_dir() {
            found.push((name, path));
        }
    }
    found.sort_by(|a, b| byte_order(&a.0, &b.0));
    Ok(found
        .into_iter()
        .map(|(name, path)| (name.to_string_lossy().into_owned(), path))
        .collect())
}

/// What the walk of a data set's folder has reached (both splits), by identity on disk, so
/// that nothing is counted twice however links lead to it: each folder and picture with the
/// class and path it was first reached under, and the loops and repeats passed over, in words.
struct Walk<'a> {
    root: &'a Path,
    /// The data set's folder, every folder above it and its split folders: a link to one of
    /// them is a loop.
    above: Vec<FileIdentity>,
    folders: HashMap<FileIdentity, (u8, PathBuf)>,
    pictures: HashMap<FileIdentity, (u8, PathBuf)>,
    notes: Vec<String>,
    skipped: usize,
    class_names: &'a [(String, PathBuf)],
}

impl<'a> Walk<'a> {
    /// The walk of the data set in `root`, its splits' folders `split_dirs` (none for a folder
    /// of class folders), its classes named as `class_names` says.
    fn new(
        root: &'a Path,
        split_dirs: &[PathBuf],
        class_names: &'a [(String, PathBuf)],
    ) -> Result<Self, FolderError> {
        let canonical = root.canonicalize().map_err(read_error(root))?;
        let mut above = Vec::new();
        for dir in canonical
            .ancestors()
            .chain(split_dirs.iter().map(PathBuf::as_path))
        {
            let meta = std::fs::metadata(dir).map_err(read_error(dir))?;
            above.push(FileIdentity::of(dir, &meta).map_err(read_error(dir))?);
        }
        Ok(Walk {
            root,
            above,
            folders: HashMap::new(),
            pictures: HashMap::new(),
            notes: Vec::new(),
            skipped: 0,
            class_names,
        })
    }

    fn relative<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(self.root).unwrap_or(path)
    }

    /// `path`, first reached under class `label`, or an error if it was reached under another
    /// class first; `Ok(false)` if it was reached under this class already.
    fn first_time(
        &mut self,
        is_folder: bool,
        id: FileIdentity,
        label: u8,
        path: &Path,
    ) -> Result<bool, FolderError> {
        let rel = self.relative(path).to_path_buf();
        let (seen, what) = if is_folder {
            (&mut self.folders, "folder")
        } else {
            (&mut self.pictures, "picture")
        };
        match seen.get(&id) {
            None => {
                seen.insert(id, (label, rel));
                Ok(true)
            }
            Some((first_label, first)) if *first_label != label => Err(FolderError::TwoClasses {
                path: self.root.display().to_string(),
                links: format!(
                    "{} is the {what} {} again (a link), under class {} as well as {}",
                    rel.display(),
                    first.display(),
                    self.class_names[label as usize].0,
                    self.class_names[*first_label as usize].0
                ),
            }),
            Some((_, first)) => {
                self.notes.push(format!(
                    "{} is the {what} {} again (a link): counted once",
                    rel.display(),
                    first.display()
                ));
                Ok(false)
            }
        }
    }

    /// Every picture under the class folder `dir` (recursively, links followed once, hidden
    /// entries ignored), as paths relative to the root with their metadata, in `found`.
    fn class(
        &mut self,
        dir: &Path,
        label: u8,
        found: &mut Vec<(PathBuf, std::fs::Metadata)>,
    ) -> Result<(), FolderError> {
        let meta = std::fs::metadata(dir).map_err(read_error(dir))?;
        let id = FileIdentity::of(dir, &meta).map_err(read_error(dir))?;
        if self.above.contains(&id) {
            return Err(FolderError::ClassLoop {
                path: self.root.display().to_string(),
                class: self.relative(dir).display().to_string(),
            });
        }
        if self.first_time(true, id.clone(), label, dir)? {
            self.folder(dir, label, &mut vec![id], found)?;
        }
        Ok(())
    }

    /// [`Walk::class`] of the folder `dir`, inside the folders `inside` (their identities).
    fn folder(
        &mut self,
        dir: &Path,
        label: u8,
        inside: &mut Vec<FileIdentity>,
        found: &mut Vec<(PathBuf, std::fs::Metadata)>,
    ) -> Result<(), FolderError> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
            let entry = entry.map_err(read_error(dir))?;
            if !is_hidden(&entry.file_name()) {
                entries.push(entry.path());
            }
        }
        // In name order, so that which of two paths to one file is kept never varies.
        entries.sort_by(|a, b| byte_order(a.as_os_str(), b.as_os_str()));
        for path in entries {
            let meta = std::fs::metadata(&path).map_err(read_error(&path))?;
            let id = FileIdentity::of(&path, &meta).map_err(read_error(&path))?;
            if meta.is_dir() {
                if inside.contains(&id) || self.above.contains(&id) {
                    let target = match std::fs::read_link(&path) {
                        Ok(target) => target.display().to_string(),
                        Err(_) => "a folder it is in".into(),
                    };
                    self.notes.push(format!(
                        "{} links back to {target} (a loop): not followed",
                        self.relative(&path).display(),
                    ));
                    continue;
                }
                if self.first_time(true, id.clone(), label, &path)? {
                    inside.push(id);
                    self.folder(&path, label, inside, found)?;
                    inside.pop();
                }
            } else if is_image(&path) {
                if !meta.is_file() {
                    return Err(FolderError::NotRegular {
                        path: path.display().to_string(),
                        kind: describe_file_type(meta.file_type()),
                    });
                }
                if self.first_time(false, id, label, &path)? {
                    found.push((self.relative(&path).to_path_buf(), meta));
                }
            } else {
                self.skipped += 1;
            }
        }
        Ok(())
    }
}

/// The pictures of each of `classes` (folders under `root`), class by class in file order.
fn list_classes(
    walk: &mut Walk,
    classes: &[(String, PathBuf)],
) -> Result<Vec<Vec<Entry>>, FolderError> {
    let root = walk.root;
    let mut all = Vec::new();
    for (label, (_, class_dir)) in classes.iter().enumerate() {
        let mut found = Vec::new();
        walk.class(class_dir, label as u8, &mut found)?;
        if found.is_empty() {
            return Err(FolderError::EmptyClass {
                path: root.display().to_string(),
                class: class_dir
                    .strip_prefix(root)
                    .unwrap_or(class_dir)
                    .display()
                    .to_string(),
            });
        }
        found.sort_by(|a, b| byte_order(a.0.as_os_str(), b.0.as_os_str()));
        let entries = found
            .into_iter()
            .map(|(rel, meta)| Entry {
                rel,
                size: meta.len(),
                mtime_ns: meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i128),
                label: label as u8,
            })
            .collect();
        all.push(entries);
    }
    Ok(all)
}

/// Refuses a split (in `split_dir`, in the data set's `root`) without 2 to 256 classes.
fn check_classes(
    root: &Path,
    split_dir: &Path,
    classes: &[(String, PathBuf)],
) -> Result<(), FolderError> {
    let path = root.display().to_string();
    match classes.len() {
        0 => match pictures_in(split_dir) {
            0 => Err(FolderError::NoImages { path }),
            count => Err(FolderError::FlatFolder { path, count }),
        },
        1 => Err(FolderError::OneClass {
            path,
            class: classes[0].0.clone(),
        }),
        n if n > MAX_CLASSES => Err(FolderError::TooManyClasses { path, count: n }),
        _ => Ok(()),
    }
}

/// How many pictures lie directly in `dir` (not in sub-folders).
fn pictures_in(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| !is_hidden(&e.file_name()) && is_image(&e.path()))
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        .count()
}

/// The split folder names, the first present taken as the validation split.
const TEST_DIRS: [&str; 3] = ["test", "val", "validation"];

fn list(root: &Path, options: &FolderOptions) -> Result<Listing, FolderError> {
    let path = root.display().to_string();
    let test_dir = TEST_DIRS.iter().find(|d| root.join(d).is_dir());
    if let (true, Some(test_dir)) = (root.join("train").is_dir(), test_dir) {
        if options.val_split.is_some() {
            return Err(FolderError::OwnTestSplit {
                path,
                test_dir: test_dir.to_string(),
            });
        }
        let train_classes = sub_folders(&root.join("train"))?;
        let test_classes = sub_folders(&root.join(test_dir))?;
        let names = |c: &[(String, PathBuf)]| c.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let (train_names, test_names) = (names(&train_classes), names(&test_classes));
        if train_names != test_names {
            let only =
                |a: &[String], b: &[String]| a.iter().filter(|n| !b.contains(n)).cloned().collect();
            return Err(FolderError::ClassesDiffer {
                path,
                train_dir: "train".into(),
                test_dir: test_dir.to_string(),
                only_train: only(&train_names, &test_names),
                only_test: only(&test_names, &train_names),
            });
        }
        check_classes(root, &root.join("train"), &train_classes)?;
        // One walk for both splits: a picture linked into both is used once, and never
        // under two classes.
        let split_dirs = [root.join("train"), root.join(test_dir)];
        let mut walk = Walk::new(root, &split_dirs, &train_classes)?;
        let train = list_classes(&mut walk, &train_classes)?;
        let test = list_classes(&mut walk, &test_classes)?;
        return Ok(Listing {
            classes: train_names,
            train: train.into_iter().flatten().collect(),
            test: test.into_iter().flatten().collect(),
            skipped: walk.skipped,
            notes: walk.notes,
        });
    }
    let classes = sub_folders(root)?;
    check_classes(root, root, &classes)?;
    let Some(fraction) = options.val_split else {
        return Err(FolderError::NoSplit { path });
    };
    let mut walk = Walk::new(root, &[], &classes)?;
    let per_class = list_classes(&mut walk, &classes)?;
    let (skipped, notes) = (walk.skipped, walk.notes);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(VAL_SPLIT_SEED);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for ((name, _), entries) in classes.iter().zip(per_class) {
        let n = entries.len();
        if n < 2 {
            return Err(FolderError::TooFewForSplit {
                path,
                class: name.clone(),
                count: n,
            });
        }
        let held_out = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut is_test = vec![false; n];
        for &i in &order[..held_out] {
            is_test[i] = true;
        }
        for (entry, is_test) in entries.into_iter().zip(is_test) {
            if is_test {
                test.push(entry);
            } else {
                train.push(entry);
            }
        }
    }
    Ok(Listing {
        classes: classes.into_iter().map(|(n, _)| n).collect(),
        train,
        test,
        skipped,
        notes,
    })
}

/// The cache key: every input of the decoded tensor, so that any change to the folder (a
/// file added, removed, renamed, rewritten) or to the options gives another key.
fn cache_key(root: &Path, listing: &Listing, options: &FolderOptions) -> u128 {
    let mut h = Xxh3::new();
    let mut bytes = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    bytes(b"minivgg image folder");
    bytes(&cache::FORMAT_VERSION.to_le_bytes());
    bytes(root.as_os_str().as_encoded_bytes());
    for name in &listing.classes {
        bytes(name.as_bytes());
    }
    for (tag, entries) in [(b"train", &listing.train), (b"test_", &listing.test)] {
        bytes(tag);
        for e in entries {
            bytes(e.rel.as_os_str().as_encoded_bytes());
            bytes(&[e.label]);
            bytes(&e.size.to_le_bytes());
            bytes(&e.mtime_ns.to_le_bytes());
        }
    }
    let shape = options.shape();
    for n in [shape.height, shape.width, shape.channels] {
        bytes(&(n as u64).to_le_bytes());
    }
    bytes(&[options.grayscale as u8, options.skip_bad_images as u8]);
    bytes(
        &options
            .val_split
            .map_or(u64::MAX, f64::to_bits)
            .to_le_bytes(),
    );
    h.digest128()
}

/// How many pictures are decoded at once before their pixels are written: memory stays
/// bounded by a chunk, whatever the size of the folder.
const CHUNK: usize = 1024;

/// Decodes the listing's pictures in parallel, writing them in order to `writer`.
fn decode(
    root: &Path,
    listing: &Listing,
    options: &FolderOptions,
    mut writer: CacheWriter,
) -> Result<(Cached, usize), FolderError> {
    let shape = options.shape();
    let total = listing.train.len() + listing.test.len();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "decoding images {pos}/{len} [{bar:30}] {elapsed} - ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    let cache_error = |cause| FolderError::Cache {
        path: "(image cache)".into(),
        cause,
    };
    let mut bad = 0;
    for (is_test, entries) in [(false, &listing.train), (true, &listing.test)] {
        if is_test {
            writer.start_test().map_err(cache_error)?;
        }
        for chunk in entries.chunks(CHUNK) {
            let decoded: Vec<Result<Vec<u8>, ImageError>> = chunk
                .par_iter()
                .map(|e| {
                    let path = root.join(&e.rel);
                    let result = images::load_as(&path, shape);
                    bar.inc(1);
                    result
                })
                .collect();
            for (entry, pixels) in chunk.iter().zip(decoded) {
                match pixels {
                    Ok(pixels) => writer.push(&pixels, entry.label).map_err(cache_error)?,
                    Err(e) if options.skip_bad_images => {
                        bar.suspend(|| eprintln!("[WARN] skipped {e}"));
                        bad += 1;
                    }
                    Err(e) => {
                        bar.finish_and_clear();
                        return Err(e.into());
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok((writer.finish().map_err(cache_error)?, bad))
}

/// Every class has a training image (with `--skip-bad-images`, one may have none left).
fn check_readable(path: &str, classes: &[String], cached: &Cached) -> Result<(), FolderError> {
    let counts = cached.train.class_counts(classes.len());
    match counts.iter().position(|&c| c == 0) {
        Some(class) => Err(FolderError::NoReadableImages {
            path: path.to_string(),
            class: classes[class].clone(),
        }),
        None => Ok(()),
    }
}

/// Loads the image folder `dir` (see the module's documentation), from the image cache when
/// an earlier run decoded the same files with the same options. Both splits are mapped from
/// the cache file (or, where there is no cache directory, an unnamed temporary file).
pub fn load(dir: &Path, options: &FolderOptions) -> Result<Dataset, FolderError> {
    if let Some(value) = options.val_split {
        if !(value > 0.0 && value < 1.0) {
            return Err(FolderError::BadValSplit { value });
        }
    }
    let path = dir.display().to_string();
    let meta = std::fs::metadata(dir).map_err(|cause| match cause.kind() {
        std::io::ErrorKind::NotFound => FolderError::NotFound { path: path.clone() },
        _ => FolderError::Read {
            path: path.clone(),
            cause,
        },
    })?;
    if !meta.is_dir() {
        return Err(FolderError::NotADirectory { path });
    }
    let canonical = dir.canonicalize().map_err(read_error(dir))?;
    let name = canonical
        .file_name()
        .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
    let started = Instant::now();
    let listing = list(dir, options)?;
    for note in &listing.notes {
        println!("[INFO] {path}: {note}");
    }
    if let Some(fraction) = options.val_split {
        println!(
            "[INFO] {path}: --val-split {fraction} held out {} of the {} images for validation, \
             drawn with the series' seed 42, the same whatever --seed says",
            listing.test.len(),
            listing.train.len() + listing.test.len()
        );
    }
    if listing.skipped > 0 {
        println!(
            "[INFO] skipped {}",
            plural(
                listing.skipped,
                "file that is not an image",
                "files that are not images"
            )
        );
    }
    let shape = options.shape();
    let key = cache_key(&canonical, &listing, options);
    let target = options
        .cache_dir
        .clone()
        .or_else(cache::default_root)
        .map(|root| cache::cache_path(&root, key));
    let dataset = |cached: Cached| Dataset {
        name: name.clone(),
        train: cached.train,
        test: cached.test,
        class_names: cached.class_names,
    };
    if let Some(target) = &target {
        match cache::open(target, shape, &listing.classes) {
            Ok(Some(cached)) => {
                check_readable(&path, &listing.classes, &cached)?;
                let n = cached.train.len() + cached.test.len();
                println!(
                    "[INFO] {}: {} from the image cache {} in {:.2}s",
                    path,
                    plural(n, "image", "images"),
                    target.display(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(dataset(cached));
            }
            Ok(None) => {}
            Err(cache::Damaged(why)) => println!(
                "[INFO] the image cache {} is damaged ({why}): decoding the folder again",
                target.display()
            ),
        }
    }
    // Where the decoded images go: the cache file, or an unnamed temporary file where there
    // is no cache directory or it cannot be written.
    let mut written_to = target.clone();
    let writer = match &target {
        Some(target) => CacheWriter::create(Some(target), shape, &listing.classes).or_else(|e| {
            eprintln!(
                "[WARN] cannot write the image cache {} ({e}): the images are kept in a \
                 temporary file for this run only",
                target.display()
            );
            written_to = None;
            CacheWriter::create(None, shape, &listing.classes)
        }),
        None => CacheWriter::create(None, shape, &listing.classes),
    };
    let where_written = written_to
        .as_ref()
        .map_or("a temporary file".into(), |t| t.display().to_string());
    let writer = writer.map_err(|cause| FolderError::Cache {
        path: where_written.clone(),
        cause,
    })?;
    let (cached, bad) = decode(dir, &listing, options, writer).map_err(|e| match e {
        FolderError::Cache { cause, .. } => FolderError::Cache {
            path: where_written.clone(),
            cause,
        },
        e => e,
    })?;
    if bad > 0 {
        println!(
            "[INFO] skipped {} that could not be read (--skip-bad-images)",
            plural(bad, "image", "images")
        );
    }
    check_readable(&path, &listing.classes, &cached)?;
    let n = cached.train.len() + cached.test.len();
    println!(
        "[INFO] {}: decoded {} in {:.2}s{}",
        path,
        plural(n, "image", "images"),
        started.elapsed().as_secs_f64(),
        match &written_to {
            Some(t) => format!(", cached in {}", t.display()),
            None => String::new(),
        }
    );
    Ok(dataset(cached))
}
