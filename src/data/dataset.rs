//! The one data set type every loader produces: u8 images in NHWC of one shape, a label per
//! image, the class names, and a training and a validation split. Batching, augmentation, the
//! memory plan, the GPU upload and the reports take their shape and class count from here.

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The most classes a data set may have: labels are stored as one byte.
pub const MAX_CLASSES: usize = 256;

/// The shape of one image: rows, columns, channels (1 grey, 3 RGB), stored row by row with
/// each pixel's channels together (NHWC without the N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl ImageShape {
    /// CIFAR-10's and CIFAR-100's 32×32 RGB.
    pub const CIFAR: ImageShape = ImageShape {
        height: 32,
        width: 32,
        channels: 3,
    };

    /// Bytes per image.
    pub fn len(self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for ImageShape {
    /// `32×32 RGB` or `28×28 grey`: width × height, as image sizes are written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let colour = match self.channels {
            1 => "grey".to_string(),
            3 => "RGB".to_string(),
            c => format!("{c} channels"),
        };
        write!(f, "{}×{} {colour}", self.width, self.height)
    }
}

/// How a split's stored bytes become the engine's input values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelEncoding {
    /// A byte a value, scaled to [0, 1]: the tutorial's `astype("float") / 255.0`. Every data
    /// set the command line reads.
    #[default]
    Scaled,
    /// A byte a value, taken as it is (0 to 255): a uint8 array handed to Keras' `fit`.
    Raw,
    /// Four bytes a value, a little-endian f32: float arrays that are not all k/255.
    Float32,
}

impl PixelEncoding {
    /// Bytes per stored value.
    pub fn value_bytes(self) -> usize {
        match self {
            PixelEncoding::Scaled | PixelEncoding::Raw => 1,
            PixelEncoding::Float32 => 4,
        }
    }

    /// Decodes `bytes` (`value_bytes()` per value) into `values`.
    pub fn decode(self, bytes: &[u8], values: &mut [f32]) {
        match self {
            PixelEncoding::Scaled => {
                for (v, b) in values.iter_mut().zip(bytes) {
                    *v = *b as f32 / 255.0;
                }
            }
            PixelEncoding::Raw => {
                for (v, b) in values.iter_mut().zip(bytes) {
                    *v = *b as f32;
                }
            }
            PixelEncoding::Float32 => {
                for (v, b) in values.iter_mut().zip(bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }
}

/// Where a split's pixels live: in memory, or in a file mapped into memory (the image cache),
/// whose pages the OS reads in as they are touched and may drop again.
#[derive(Clone)]
enum Pixels {
    Owned(Vec<u8>),
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
}

impl Pixels {
    fn bytes(&self) -> &[u8] {
        match self {
            Pixels::Owned(bytes) => bytes,
            Pixels::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }
}

/// One split: `len()` images of `shape()`, image i at `images()[i*L..(i+1)*L]` with
/// L = `image_bytes()` (`shape().len()` values of `encoding()`), and `labels()[i]` its class.
#[derive(Clone)]
pub struct Split {
    shape: ImageShape,
    encoding: PixelEncoding,
    pixels: Pixels,
    labels: Vec<u8>,
}

impl Split {
    /// A split of `labels.len()` images held in memory.
    ///
    /// # Panics
    /// If `images` does not hold exactly one image of `shape` per label.
    pub fn new(shape: ImageShape, images: Vec<u8>, labels: Vec<u8>) -> Split {
        Split::encoded(shape, PixelEncoding::Scaled, images, labels)
    }

    /// A split of `labels.len()` images held in memory, their values stored as `encoding`.
    ///
    /// # Panics
    /// If `images` does not hold exactly one image of `shape` per label.
    pub fn encoded(
        shape: ImageShape,
        encoding: PixelEncoding,
        images: Vec<u8>,
        labels: Vec<u8>,
    ) -> Split {
        assert_eq!(
            images.len(),
            labels.len() * shape.len() * encoding.value_bytes(),
            "one image per label"
        );
        Split {
            shape,
            encoding,
            pixels: Pixels::Owned(images),
            labels,
        }
    }

    /// A split whose images are `map[start..]`, one per label, read from the mapped file as
    /// they are used.
    ///
    /// # Panics
    /// If the map is too short for them.
    pub fn mapped(shape: ImageShape, map: Arc<Mmap>, start: usize, labels: Vec<u8>) -> Split {
        let len = labels.len() * shape.len();
        assert!(
            start + len <= map.len(),
            "the mapped file holds every image"
        );
        Split {
            shape,
            encoding: PixelEncoding::Scaled,
            pixels: Pixels::Mapped { map, start, len },
            labels,
        }
    }

    /// A split of `len` black images, all of class 0: what a loader fills in place.
    pub fn zeroed(shape: ImageShape, len: usize) -> Split {
        Split::new(shape, vec![0; len * shape.len()], vec![0; len])
    }

    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    pub fn encoding(&self) -> PixelEncoding {
        self.encoding
    }

    /// The bytes one image is stored in.
    pub fn image_bytes(&self) -> usize {
        self.shape.len() * self.encoding.value_bytes()
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Every image, one after the other.
    pub fn images(&self) -> &[u8] {
        self.pixels.bytes()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_bytes();
        &self.images()[i * n..(i + 1) * n]
    }

    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The images and labels to fill in place, for a split held in memory.
    ///
    /// # Panics
    /// On a mapped split, which is read-only.
    pub fn parts_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        match &mut self.pixels {
            Pixels::Owned(bytes) => (bytes, &mut self.labels),
            Pixels::Mapped { .. } => panic!("a mapped split is read-only"),
        }
    }

    /// Keeps the first `len` images (all of them if there are fewer).
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len());
        self.labels.truncate(len);
        let bytes = len * self.image_bytes();
        match &mut self.pixels {
            Pixels::Owned(images) => images.truncate(bytes),
            Pixels::Mapped { len, .. } => *len = bytes,
        }
    }

    /// Keeps at most `limit` images with every one of `classes` given as equal a share as its
    /// images allow: a class at a time in turn, each class's images in file order, the ones kept
    /// staying in file order. A quick trial on a folder sorted by class sees every class.
    pub fn limit_per_class(&mut self, limit: usize, classes: usize) {
        if limit >= self.len() {
            return;
        }
        let last = classes.max(1) - 1;
        let mut by_class = vec![Vec::new(); last + 1];
        for (i, &label) in self.labels.iter().enumerate() {
            by_class[usize::from(label).min(last)].push(i);
        }
        let mut kept = Vec::with_capacity(limit);
        'rounds: for round in 0.. {
            let before = kept.len();
            for images in &by_class {
                if let Some(&i) = images.get(round) {
                    kept.push(i);
                    if kept.len() == limit {
                        break 'rounds;
                    }
                }
            }
            if kept.len() == before {
                break;
            }
        }
        kept.sort_unstable();
        *self = self.select(&kept);
    }

    /// The images at `indices`, in that order, as a new split held in memory.
    pub fn select(&self, indices: &[usize]) -> Split {
        let mut images = Vec::with_capacity(indices.len() * self.image_bytes());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Split::encoded(self.shape, self.encoding, images, labels)
    }

    /// The bytes this split keeps in memory: all of them when owned; when mapped, only its
    /// labels, since the OS pages the images in from the file and can drop them again.
    pub fn resident_bytes(&self) -> u64 {
        let images = match self.pixels {
            Pixels::Owned(ref bytes) => bytes.len(),
            Pixels::Mapped { .. } => 0,
        };
        (images + self.labels.len()) as u64
    }

    /// Whether the images come from a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.pixels, Pixels::Mapped { .. })
    }

    /// How many images of each of `classes` classes the split holds.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes.max(1)];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(usize::from(label)) {
                *count += 1;
            }
        }
        counts
    }
}

impl PartialEq for Split {
    fn eq(&self, other: &Split) -> bool {
        self.shape == other.shape
            && self.encoding == other.encoding
            && self.labels == other.labels
            && self.images() == other.images()
    }
}

impl Eq for Split {}

// Printing 150 MB of pixels helps nobody: show the size only.
impl fmt::Debug for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Split")
            .field("len", &self.len())
            .field("shape", &self.shape)
            .field("encoding", &self.encoding)
            .field("mapped", &self.is_mapped())
            .finish_non_exhaustive()
    }
}

/// A data set: its name (for titles and logs), its splits and its class names, label order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `CIFAR-10`, `MNIST`, or an image folder's name.
    pub name: String,
    pub train: Split,
    /// What the run validates and reports on: the data set's test split, or the part of the
    /// training images `--val-split` held out.
    pub test: Split,
    pub class_names: Vec<String>,
}

/// A data set with a split that holds no images: nothing to train or to validate on.
#[derive(Debug, thiserror::Error)]
#[error("{data}: its {split} split holds no images: there is nothing to {what} on")]
pub struct EmptySplit {
    /// Where the data set was read from.
    pub data: String,
    pub split: &'static str,
    pub what: &'static str,
}

impl Dataset {
    /// Refuses a data set, read from `source`, with a split that holds no images.
    pub fn check_not_empty(&self, source: &str) -> Result<(), EmptySplit> {
        let empty = |split, what| EmptySplit {
            data: source.to_string(),
            split,
            what,
        };
        if self.train.is_empty() {
            return Err(empty("training", "train"));
        }
        if self.test.is_empty() {
            return Err(empty("validation", "validate"));
        }
        Ok(())
    }

    pub fn shape(&self) -> ImageShape {
        self.train.shape()
    }

    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// Keeps at most `limit` images of each split, every class's share equal (`--limit`; see
    /// [`Split::limit_per_class`]).
    pub fn limit_per_class(&mut self, limit: usize) {
        let classes = self.classes();
        self.train.limit_per_class(limit, classes);
        self.test.limit_per_class(limit, classes);
    }

    /// The bytes the data set keeps in memory (see [`Split::resident_bytes`]).
    pub fn resident_bytes(&self) -> u64 {
        self.train.resident_bytes() + self.test.resident_bytes()
    }

    /// What a checkpoint records to know this data again: a hash of its images and labels as
    /// they are trained on (after every flag that shapes them), its shape and class names.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash = xxhash_rust::xxh3::Xxh3::new();
        let shape = self.shape();
        for n in [shape.height, shape.width, shape.channels] {
            hash.update(&(n as u64).to_le_bytes());
        }
        for name in &self.class_names {
            hash.update(&(name.len() as u64).to_le_bytes());
            hash.update(name.as_bytes());
        }
        for split in [&self.train, &self.test] {
            // The command line's data is all Scaled: its fingerprints stay as they were.
            if split.encoding() != PixelEncoding::Scaled {
                hash.update(format!("{:?}", split.encoding()).as_bytes());
            }
            hash.update(&(split.len() as u64).to_le_bytes());
            hash.update(split.images());
            hash.update(split.labels());
        }
        Fingerprint {
            xxh3_128: format!("{:032x}", hash.digest128()),
            train: self.train.len(),
            test: self.test.len(),
        }
    }

    /// One line for the log: `CIFAR-10: 50000 training and 10000 validation images, 32×32
    /// RGB, 10 classes`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} training and {} validation images, {}, {} classes{}",
            self.name,
            self.train.len(),
            self.test.len(),
            self.shape(),
            self.classes(),
            if self.train.is_mapped() {
                ", memory-mapped from the cache"
            } else {
                ""
            }
        )
    }
}

/// A data set's fingerprint (see [`Dataset::fingerprint`]) and its split sizes, which say
/// what changed when two differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub xxh3_128: String,
    pub train: usize,
    pub test: usize,
}

impl Fingerprint {
    /// What differs between `self` and `other`, for a user: the split sizes, or the bytes.
    pub fn difference(&self, other: &Fingerprint) -> String {
        if (self.train, self.test) == (other.train, other.test) {
            "the same sizes, other bytes".into()
        } else {
            format!(
                "{} training and {} validation images, not {} and {}",
                self.train, self.test, other.train, other.test
            )
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.xxh3_128[..16])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 3×2 grey shape: small enough to write its pixels out in a test.
    pub(crate) fn shape() -> ImageShape {
        ImageShape {
            height: 2,
            width: 3,
            channels: 1,
        }
    }

    #[test]
    fn images_are_cut_by_the_shape() {
        let split = Split::new(shape(), (0..18).collect(), vec![0, 1, 1]);
        assert_eq!(split.image(1), &[6, 7, 8, 9, 10, 11]);
        assert_eq!(split.class_counts(3), vec![1, 2, 0]);
        let picked = split.select(&[2, 0]);
        assert_eq!(picked.images()[..6], [12, 13, 14, 15, 16, 17]);
        assert_eq!(picked.labels(), &[1, 0]);
        let mut cut = split.clone();
        cut.truncate(1);
        assert_eq!((cut.len(), cut.images().len()), (1, 6));
    }

    #[test]
    fn a_limit_takes_every_class_in_turn_and_keeps_file_order() {
        let labels = vec![0, 0, 0, 0, 1, 1, 2];
        let split = Split::new(shape(), (0..42).collect(), labels);
        let mut five = split.clone();
        five.limit_per_class(5, 3);
        // Rounds: 0, 4, 6 (every class's first), then 1, 5.
        assert_eq!(five.labels(), &[0, 0, 1, 1, 2]);
        assert_eq!(five.image(2), split.image(4));
        assert_eq!(five.class_counts(3), vec![2, 2, 1]);
        // A class with fewer images gives what it has; the others fill the rest.
        let mut six = split.clone();
        six.limit_per_class(6, 3);
        assert_eq!(six.class_counts(3), vec![3, 2, 1]);
        let mut all = split.clone();
        all.limit_per_class(7, 3);
        assert_eq!(all, split);
    }

    #[test]
    fn a_mapped_split_reads_the_file_and_keeps_only_labels_resident() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pixels");
        std::fs::write(&path, (0..40).collect::<Vec<u8>>()).unwrap();
        let map = unsafe { Mmap::map(&std::fs::File::open(&path).unwrap()).unwrap() };
        let split = Split::mapped(shape(), Arc::new(map), 4, vec![3, 4]);
        assert_eq!(split.image(1), &[10, 11, 12, 13, 14, 15]);
        assert_eq!(split.resident_bytes(), 2);
        assert_eq!(split, Split::new(shape(), (4..16).collect(), vec![3, 4]));
    }

    #[test]
    fn shapes_read_as_image_sizes() {
        assert_eq!(ImageShape::CIFAR.to_string(), "32×32 RGB");
        let odd = ImageShape {
            height: 40,
            width: 48,
            channels: 1,
        };
        assert_eq!(odd.to_string(), "48×40 grey");
    }
}
