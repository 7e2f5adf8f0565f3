//! Reads the MNIST family's IDX files (MNIST, Fashion-MNIST): four files, each plain or
//! gzipped, in a directory of their own or in torchvision's `MNIST/raw/` layout. An IDX image
//! file is already row by row with one byte a pixel, which is NHWC with one channel.

use super::catalogue::NamedSet;
use super::dataset::{Dataset, ImageShape, Split};
use crate::fsutil::open_regular;
use flate2::read::GzDecoder;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// The four files, each read as NAME or NAME.gz.
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// `0x00000803`: unsigned bytes, three dimensions (count, rows, columns).
pub const IMAGES_MAGIC: u32 = 0x0803;
/// `0x00000801`: unsigned bytes, one dimension (count).
pub const LABELS_MAGIC: u32 = 0x0801;
/// The most bytes one file may have, decompressed (MNIST's training images are 47 MB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;
pub const NUM_CLASSES: usize = 10;
pub const MNIST_CLASS_NAMES: [&str; NUM_CLASSES] =
    ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
pub const FASHION_CLASS_NAMES: [&str; NUM_CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Why IDX files could not be read. Every message starts with the file (or, for a missing
/// file, the directory) it is about; indices are 0-based.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("{dir}: missing {name} (looked for {name} and {name}.gz)")]
    MissingFile { dir: String, name: &'static str },
    #[error("{file}: cannot read: {cause}")]
    Read { file: String, cause: io::Error },
    #[error("{file}: damaged gzip data: {cause}")]
    Gzip { file: String, cause: io::Error },
    #[error("{file}: more than {max} bytes, more than an IDX file may have")]
    TooLarge { file: String, max: u64 },
    #[error("{file}: {bytes} bytes, too short for its {header}-byte IDX header")]
    NoHeader {
        file: String,
        bytes: u64,
        header: usize,
    },
    #[error("{file}: magic number {found:#010x}, expected {expected:#010x} (IDX {what})")]
    BadMagic {
        file: String,
        found: u32,
        expected: u32,
        what: &'static str,
    },
    #[error("{file}: {found} dimensions, expected {expected} (IDX {what})")]
    BadDimensions {
        file: String,
        found: u8,
        expected: u8,
        what: &'static str,
    },
    #[error("{file}: images of {rows}×{cols} pixels, expected at least 1×1")]
    EmptyImages { file: String, rows: u32, cols: u32 },
    #[error("{file}: {bytes} bytes, but its header's {count} {what} take {expected}")]
    WrongSize {
        file: String,
        bytes: u64,
        count: u32,
        what: String,
        expected: u64,
    },
    #[error("{images} holds {images_count} images but {labels} holds {labels_count} labels")]
    CountMismatch {
        images: String,
        images_count: usize,
        labels: String,
        labels_count: usize,
    },
    #[error(
        "{file}: images of {rows}×{cols}, but {other} has images of {other_rows}×{other_cols}"
    )]
    ShapeMismatch {
        file: String,
        rows: usize,
        cols: usize,
        other: String,
        other_rows: usize,
        other_cols: usize,
    },
    #[error("{file}: label {index} is {label}, expected 0..9")]
    BadLabel {
        file: String,
        index: usize,
        label: u8,
    },
}

/// The directory that holds the four files: `path` itself, `path/raw/` (torchvision's
/// `MNIST/raw/`), `path/MNIST/raw/` or `path/FashionMNIST/raw/`, the first that holds all four
/// (plain or `.gz`). Failing that, the first that holds any of them, so that [`load`] names the
/// missing one; `None` if none holds any.
pub fn find_idx_dir(path: &Path) -> Option<PathBuf> {
    let candidates = [
        path.to_path_buf(),
        path.join("raw"),
        path.join("MNIST").join("raw"),
        path.join("FashionMNIST").join("raw"),
    ];
    let count = |dir: &Path| FILES.iter().filter(|f| find_file(dir, f).is_some()).count();
    let complete = candidates.iter().find(|dir| count(dir) == FILES.len());
    complete
        .or_else(|| candidates.iter().find(|dir| count(dir) > 0))
        .cloned()
}

/// Fashion-MNIST if any component of `dir` contains "fashion" (any case), else MNIST.
pub fn set_of_dir(dir: &Path) -> NamedSet {
    let fashion = dir.components().any(|c| {
        c.as_os_str()
            .to_string_lossy()
            .to_lowercase()
            .contains("fashion")
    });
    if fashion {
        NamedSet::FashionMnist
    } else {
        NamedSet::Mnist
    }
}

/// Loads the four files in `dir` (each NAME or NAME.gz; see [`find_idx_dir`]) as `set`:
/// Fashion-MNIST's class names for [`NamedSet::FashionMnist`], the digits for any other.
pub fn load(dir: &Path, set: NamedSet) -> Result<Dataset, IdxError> {
    let class_names = match set {
        NamedSet::FashionMnist => FASHION_CLASS_NAMES,
        _ => MNIST_CLASS_NAMES,
    };
    let train = load_split(dir, TRAIN_IMAGES, TRAIN_LABELS)?;
    let test = load_split(dir, TEST_IMAGES, TEST_LABELS)?;
    if train.1 != test.1 {
        return Err(IdxError::ShapeMismatch {
            file: train.2,
            rows: train.1.height,
            cols: train.1.width,
            other: test.2,
            other_rows: test.1.height,
            other_cols: test.1.width,
        });
    }
    Ok(Dataset {
        name: set.title().to_string(),
        train: train.0,
        test: test.0,
        class_names: class_names.iter().map(|n| n.to_string()).collect(),
    })
}

/// One split, its image shape and the images file's name (for messages).
fn load_split(
    dir: &Path,
    images_name: &'static str,
    labels_name: &'static str,
) -> Result<(Split, ImageShape, String), IdxError> {
    let (images_file, images) = read(dir, images_name)?;
    let (labels_file, labels) = read(dir, labels_name)?;
    let (shape, pixels) = parse_images(&images_file, images)?;
    let labels = parse_labels(&labels_file, labels)?;
    let images_count = pixels.len() / shape.len();
    if images_count != labels.len() {
        return Err(IdxError::CountMismatch {
            images: images_file,
            images_count,
            labels: labels_file,
            labels_count: labels.len(),
        });
    }
    Ok((Split::new(shape, pixels, labels), shape, images_file))
}

/// `dir/NAME` or `dir/NAME.gz`, whichever is there and not a directory: one that is a device
/// or a FIFO is found, for the reader to refuse naming what it is.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_dir()))
}

/// Reads `dir/NAME` or, decompressing it, `dir/NAME.gz`: at most [`MAX_FILE_BYTES`] either
/// way, so a bogus file allocates no more than that. Returns the file's name and its bytes.
fn read(dir: &Path, name: &'static str) -> Result<(String, Vec<u8>), IdxError> {
    read_capped(dir, name, MAX_FILE_BYTES)
}

fn read_capped(dir: &Path, name: &'static str, max: u64) -> Result<(String, Vec<u8>), IdxError> {
    let path = find_file(dir, name).ok_or_else(|| IdxError::MissingFile {
        dir: dir.display().to_string(),
        name,
    })?;
    let label = path.display().to_string();
    let read_err = |cause| IdxError::Read {
        file: label.clone(),
        cause,
    };
    let file = open_regular(&path).map_err(read_err)?;
    let gzipped = path.extension().is_some_and(|e| e == "gz");
    let mut bytes = Vec::new();
    let got = if gzipped {
        GzDecoder::new(io::BufReader::new(file))
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|cause| IdxError::Gzip {
                file: label.clone(),
                cause,
            })?
    } else {
        let len = file.metadata().map_err(read_err)?.len();
        if len > max {
            return Err(IdxError::TooLarge { file: label, max });
        }
        bytes.reserve_exact(len as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?
    };
    if got as u64 > max {
        return Err(IdxError::TooLarge { file: label, max });
    }
    Ok((label, bytes))
}

/// Checks an IDX header of `dims` big-endian u32 sizes after the magic number; returns them.
fn header(file: &str, bytes: &[u8], magic: u32, what: &'static str) -> Result<Vec<u32>, IdxError> {
    let dims = (magic & 0xff) as u8;
    let header = 4 + 4 * usize::from(dims);
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    if bytes.len() < 4 {
        return Err(IdxError::NoHeader {
            file: file.to_string(),
            bytes: bytes.len() as u64,
            header,
        });
    }
    let found = word(0);
    if found >> 8 == magic >> 8 && found != magic {
        return Err(IdxError::BadDimensions {
            file: file.to_string(),
            found: (found & 0xff) as u8,
            expected: dims,
            what,
        });
    }
    if found != magic {
        return Err(IdxError::BadMagic {
            file: file.to_string(),
            found,
            expected: magic,
            what,
        });
    }
    if bytes.len() < header {
        return Err(IdxError::NoHeader {
            file: file.to_string(),
            bytes: bytes.len() as u64,
            header,
        });
    }
    Ok((1..=usize::from(dims)).map(word).collect())
}

/// An image file's shape and pixels (the bytes after its header).
fn parse_images(file: &str, mut bytes: Vec<u8>) -> Result<(ImageShape, Vec<u8>), IdxError> {
    let dims = header(file, &bytes, IMAGES_MAGIC, "images")?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(IdxError::EmptyImages {
            file: file.to_string(),
            rows,
            cols,
        });
    }
    // Saturating: an absurd header's size, far beyond the file's, is refused, not wrapped.
    let image = u64::from(rows) * u64::from(cols);
    let expected = 16u64.saturating_add(u64::from(count).saturating_mul(image));
    check_len(
        file,
        &bytes,
        count,
        format!("images of {rows}×{cols}"),
        expected,
    )?;
    bytes.drain(..16);
    let shape = ImageShape {
        height: rows as usize,
        width: cols as usize,
        channels: 1,
    };
    Ok((shape, bytes))
}

/// A label file's labels, each checked to be 0..9.
fn parse_labels(file: &str, mut bytes: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    let count = header(file, &bytes, LABELS_MAGIC, "labels")?[0];
    check_len(file, &bytes, count, "labels".into(), 8 + u64::from(count))?;
    bytes.drain(..8);
    if let Some(index) = bytes.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
        return Err(IdxError::BadLabel {
            file: file.to_string(),
            index,
            label: bytes[index],
        });
    }
    Ok(bytes)
}

fn check_len(
    file: &str,
    bytes: &[u8],
    count: u32,
    what: String,
    expected: u64,
) -> Result<(), IdxError> {
    if bytes.len() as u64 != expected {
        return Err(IdxError::WrongSize {
            file: file.to_string(),
            bytes: bytes.len() as u64,
            count,
            what,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn images_file(count: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [IMAGES_MAGIC, count, rows, cols] {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        let pixels = (count * rows * cols) as usize;
        bytes.extend((0..pixels).map(|i| (i % 251) as u8));
        bytes
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut bytes = LABELS_MAGIC.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        bytes.extend_from_slice(labels);
        bytes
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Writes a small, valid set: 5 training and 3 test images of 4×3; the test files gzipped.
    fn write_set(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(TRAIN_IMAGES), images_file(5, 4, 3)).unwrap();
        std::fs::write(dir.join(TRAIN_LABELS), labels_file(&[0, 1, 2, 9, 4])).unwrap();
        let test_images = gz(&images_file(3, 4, 3));
        std::fs::write(dir.join(format!("{TEST_IMAGES}.gz")), test_images).unwrap();
        let test_labels = gz(&labels_file(&[7, 8, 9]));
        std::fs::write(dir.join(format!("{TEST_LABELS}.gz")), test_labels).unwrap();
    }

    fn err(dir: &Path) -> String {
        load(dir, NamedSet::Mnist).unwrap_err().to_string()
    }

    fn file(dir: &Path, name: &str) -> String {
        dir.join(name).display().to_string()
    }

    #[test]
    fn plain_and_gzipped_files_load() {
        let tmp = tempfile::tempdir().unwrap();
        write_set(tmp.path());
        let data = load(tmp.path(), NamedSet::FashionMnist).unwrap();
        assert_eq!(data.name, "Fashion-MNIST");
        assert_eq!(data.class_names, FASHION_CLASS_NAMES);
        let shape = ImageShape {
            height: 4,
            width: 3,
            channels: 1,
        };
        assert_eq!(data.shape(), shape);
        assert_eq!((data.train.len(), data.test.len()), (5, 3));
        assert_eq!(data.train.labels(), &[0, 1, 2, 9, 4]);
        assert_eq!(data.test.labels(), &[7, 8, 9]);
        assert_eq!(data.train.image(1), &(12..24).collect::<Vec<u8>>()[..]);
        assert_eq!(data.test.images(), &images_file(3, 4, 3)[16..]);
        let mnist = load(tmp.path(), NamedSet::Mnist).unwrap();
        assert_eq!(
            (mnist.name.as_str(), mnist.class_names[9].as_str()),
            ("MNIST", "9")
        );
    }

    #[test]
    fn the_directory_is_found_in_torchvision_layouts() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(find_idx_dir(tmp.path()), None);
        let raw = tmp.path().join("FashionMNIST").join("raw");
        write_set(&raw);
        assert_eq!(find_idx_dir(tmp.path()), Some(raw.clone()));
        assert_eq!(find_idx_dir(&raw), Some(raw.clone()));
        assert_eq!(find_idx_dir(&tmp.path().join("FashionMNIST")), Some(raw));
        // An incomplete directory is still found, so that the missing file is named.
        let partial = tmp.path().join("partial");
        std::fs::create_dir(&partial).unwrap();
        std::fs::write(partial.join(TRAIN_LABELS), labels_file(&[1])).unwrap();
        assert_eq!(find_idx_dir(&partial), Some(partial.clone()));
        assert_eq!(
            err(&partial),
            format!(
                "{}: missing {TRAIN_IMAGES} (looked for {TRAIN_IMAGES} and {TRAIN_IMAGES}.gz)",
                partial.display()
            )
        );
    }

    #[test]
    fn the_set_follows_the_directory_name() {
        assert_eq!(
            set_of_dir(Path::new("/data/FashionMNIST/raw")),
            NamedSet::FashionMnist
        );
        assert_eq!(
            set_of_dir(Path::new("my-FASHION/x")),
            NamedSet::FashionMnist
        );
        assert_eq!(set_of_dir(Path::new("/data/MNIST/raw")), NamedSet::Mnist);
    }

    #[test]
    fn wrong_magic_numbers_and_dimensions_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        write_set(tmp.path());
        // A label file where the images belong.
        std::fs::write(tmp.path().join(TRAIN_IMAGES), labels_file(&[1, 2])).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: 1 dimensions, expected 3 (IDX images)",
                file(tmp.path(), TRAIN_IMAGES)
            )
        );
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&[0; 16]);
        std::fs::write(tmp.path().join(TRAIN_IMAGES), png).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: magic number 0x89504e47, expected 0x00000803 (IDX images)",
                file(tmp.path(), TRAIN_IMAGES)
            )
        );
        std::fs::write(tmp.path().join(TRAIN_IMAGES), [0, 0]).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: 2 bytes, too short for its 16-byte IDX header",
                file(tmp.path(), TRAIN_IMAGES)
            )
        );
        write_set(tmp.path());
        std::fs::write(tmp.path().join(TRAIN_LABELS), images_file(1, 1, 1)).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: 3 dimensions, expected 1 (IDX labels)",
                file(tmp.path(), TRAIN_LABELS)
            )
        );
    }

    #[test]
    fn sizes_must_match_the_header() {
        let tmp = tempfile::tempdir().unwrap();
        write_set(tmp.path());
        let mut cut = images_file(5, 4, 3);
        cut.pop();
        std::fs::write(tmp.path().join(TRAIN_IMAGES), &cut).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: 75 bytes, but its header's 5 images of 4×3 take 76",
                file(tmp.path(), TRAIN_IMAGES)
            )
        );
        // An absurd header is refused before anything is allocated for it.
        let mut absurd = images_file(0, 0xffff_ffff, 0xffff_ffff);
        absurd[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        std::fs::write(tmp.path().join(TRAIN_IMAGES), absurd).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: 16 bytes, but its header's 4294967295 images of 4294967295×4294967295 \
                 take 18446744073709551615",
                file(tmp.path(), TRAIN_IMAGES)
            )
        );
        write_set(tmp.path());
        let mut extra = labels_file(&[0, 1, 2, 9, 4]);
        extra.push(0);
        std::fs::write(tmp.path().join(TRAIN_LABELS), extra).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: 14 bytes, but its header's 5 labels take 13",
                file(tmp.path(), TRAIN_LABELS)
            )
        );
        std::fs::write(tmp.path().join(TRAIN_IMAGES), images_file(5, 0, 3)).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: images of 0×3 pixels, expected at least 1×1",
                file(tmp.path(), TRAIN_IMAGES)
            )
        );
    }

    #[test]
    fn counts_shapes_and_labels_must_agree() {
        let tmp = tempfile::tempdir().unwrap();
        write_set(tmp.path());
        std::fs::write(tmp.path().join(TRAIN_LABELS), labels_file(&[0, 1, 2])).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{} holds 5 images but {} holds 3 labels",
                file(tmp.path(), TRAIN_IMAGES),
                file(tmp.path(), TRAIN_LABELS)
            )
        );
        std::fs::write(
            tmp.path().join(TRAIN_LABELS),
            labels_file(&[0, 1, 2, 10, 4]),
        )
        .unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: label 3 is 10, expected 0..9",
                file(tmp.path(), TRAIN_LABELS)
            )
        );
        write_set(tmp.path());
        std::fs::write(tmp.path().join(TRAIN_IMAGES), images_file(5, 3, 4)).unwrap();
        assert_eq!(
            err(tmp.path()),
            format!(
                "{}: images of 3×4, but {} has images of 4×3",
                file(tmp.path(), TRAIN_IMAGES),
                file(tmp.path(), &format!("{TEST_IMAGES}.gz"))
            )
        );
    }

    #[test]
    fn damaged_and_oversized_gzip_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write_set(tmp.path());
        let name = format!("{TEST_LABELS}.gz");
        let mut damaged = gz(&labels_file(&[7, 8, 9]));
        let n = damaged.len();
        damaged[n - 5] ^= 0xff; // the stored CRC
        std::fs::write(tmp.path().join(&name), damaged).unwrap();
        let msg = err(tmp.path());
        assert!(
            msg.starts_with(&format!("{}: damaged gzip data: ", file(tmp.path(), &name))),
            "{msg}"
        );
        std::fs::write(tmp.path().join(&name), b"\x1f\x8b not gzip").unwrap();
        let msg = err(tmp.path());
        assert!(msg.contains("damaged gzip data"), "{msg}");
        // A .gz that inflates past the cap (a "zip bomb") is read no further than the cap.
        std::fs::write(tmp.path().join(&name), gz(&[0; 1000])).unwrap();
        assert_eq!(
            read_capped(tmp.path(), TEST_LABELS, 999)
                .unwrap_err()
                .to_string(),
            format!(
                "{}: more than 999 bytes, more than an IDX file may have",
                file(tmp.path(), &name)
            )
        );
        assert_eq!(
            read_capped(tmp.path(), TEST_LABELS, 1000).unwrap().1.len(),
            1000
        );
        // So is a plain file, by its size.
        assert_eq!(
            read_capped(tmp.path(), TRAIN_LABELS, 12)
                .unwrap_err()
                .to_string(),
            format!(
                "{}: more than 12 bytes, more than an IDX file may have",
                file(tmp.path(), TRAIN_LABELS)
            )
        );
    }
}
