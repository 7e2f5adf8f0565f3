//! Reads the CIFAR-10 "binary version" from a directory or straight from its `.tar.gz`, and
//! turns the file's planar RGB records into interleaved HWC images.

use super::dataset::{Dataset, ImageShape, Split};
use crate::fsutil::open_regular;
use flate2::read::GzDecoder;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

pub const IMAGE_SIDE: usize = 32;
pub const IMAGE_BYTES: usize = IMAGE_SIDE * IMAGE_SIDE * 3;
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
pub const RECORDS_PER_FILE: usize = 10_000;
pub const NUM_CLASSES: usize = 10;
/// The class names of `batches.meta.txt`, in label order; what a saved model predicts.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// Images in the training split (five files of 10,000).
pub const TRAIN_IMAGES: usize = TRAIN_FILES.len() * RECORDS_PER_FILE;
pub const TEST_FILE: &str = "test_batch.bin";
pub const META_FILE: &str = "batches.meta.txt";
pub const BATCHES_DIR: &str = "cifar-10-batches-bin";
/// Size of every batch file: 10,000 records of 3,073 bytes.
pub const BATCH_BYTES: usize = RECORDS_PER_FILE * RECORD_BYTES;
/// The real meta file is 61 bytes; the cap only keeps a bogus one from being read whole.
pub const META_MAX_BYTES: u64 = 64 * 1024;
/// Every file of the binary version, in the order a directory is read (meta first: it is tiny).
pub const ALL_FILES: [&str; 7] = [
    META_FILE,
    TRAIN_FILES[0],
    TRAIN_FILES[1],
    TRAIN_FILES[2],
    TRAIN_FILES[3],
    TRAIN_FILES[4],
    TEST_FILE,
];

const PLANE: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Why the data could not be read. Every message starts with the file it is about: a full
/// path, or `archive.tar.gz: member cifar-10-batches-bin/<file>`. Record numbers are 0-based.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path} does not exist")]
    NotFound { path: String },
    #[error("{path} is neither a directory nor a .tar.gz / .tgz archive")]
    Unsupported { path: String },
    #[error("missing file {file}")]
    MissingFile { file: String },
    #[error("{archive}: no member {member}")]
    MissingMember { archive: String, member: String },
    #[error("{file} is not a regular file")]
    NotAFile { file: String },
    #[error("{file}: cannot read: {cause}")]
    Read { file: String, cause: io::Error },
    #[error("{archive}: damaged gzip or tar archive: {cause}")]
    Archive { archive: String, cause: io::Error },
    #[error(
        "{file}: {bytes} bytes, expected {expected} ({records} records of {record_bytes} bytes)"
    )]
    WrongSize {
        file: String,
        bytes: u64,
        expected: u64,
        records: usize,
        record_bytes: usize,
    },
    #[error("{file}: {bytes} bytes, more than the {max} this file may have")]
    TooLarge { file: String, bytes: u64, max: u64 },
    /// `kind` is `label` (CIFAR-10), `fine label` or `coarse label` (CIFAR-100).
    #[error("{file}: record {record} has {kind} {label}, expected 0..{max}")]
    BadLabel {
        file: String,
        record: usize,
        kind: &'static str,
        label: u8,
        max: usize,
    },
    #[error("{file}: {problem}")]
    BadMeta { file: String, problem: String },
}

/// Loads both splits and the class names. `path` is a directory that contains
/// `cifar-10-batches-bin/`, that directory itself, or a `.tar.gz` / `.tgz` archive, which is
/// streamed in memory rather than extracted.
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    load_members(|take| read_files(path, &LAYOUT, &ALL_FILES, take))
}

/// Loads both splits and the class names from the bytes of a `.tar.gz` archive, as [`load`]
/// does from an archive file; `name` stands for the archive in error messages.
pub fn load_archive_bytes(name: &str, bytes: &[u8]) -> Result<Dataset, DataError> {
    load_members(|take| for_each_member_in(name, bytes, &LAYOUT, &ALL_FILES, take))
}

/// What [`load`] and [`load_archive_bytes`] share: `read` hands each of [`ALL_FILES`] to the
/// callback it is given.
fn load_members(
    read: impl FnOnce(&mut dyn FnMut(Member) -> Result<(), DataError>) -> Result<(), DataError>,
) -> Result<Dataset, DataError> {
    let mut train = Split::zeroed(ImageShape::CIFAR, TRAIN_IMAGES);
    let mut test = Split::zeroed(ImageShape::CIFAR, RECORDS_PER_FILE);
    let mut class_names = Vec::new();
    read(&mut |member| {
        match member.name {
            META_FILE => class_names = parse_meta(&member.label, &member.bytes)?,
            TEST_FILE => parse_into(&member.label, &member.bytes, &FORMAT, &mut test, 0)?,
            name => {
                let batch = TRAIN_FILES
                    .iter()
                    .position(|f| *f == name)
                    .expect("read_files hands over only the names asked for");
                parse_into(
                    &member.label,
                    &member.bytes,
                    &FORMAT,
                    &mut train,
                    batch * RECORDS_PER_FILE,
                )?;
            }
        }
        Ok(())
    })?;
    Ok(Dataset {
        name: "CIFAR-10".into(),
        train,
        test,
        class_names,
    })
}

/// Loads only the test split and the class names (an archive is still streamed through).
pub fn load_test(path: &Path) -> Result<(Split, Vec<String>), DataError> {
    let mut test = Split::zeroed(ImageShape::CIFAR, RECORDS_PER_FILE);
    let mut class_names = Vec::new();
    read_files(path, &LAYOUT, &[META_FILE, TEST_FILE], |member| {
        if member.name == META_FILE {
            class_names = parse_meta(&member.label, &member.bytes)?;
        } else {
            parse_into(&member.label, &member.bytes, &FORMAT, &mut test, 0)?;
        }
        Ok(())
    })?;
    Ok((test, class_names))
}

/// Parses one batch file's bytes (exactly 10,000 records); `name` is used in error messages.
pub fn parse_batch(name: &str, bytes: &[u8]) -> Result<Split, DataError> {
    let mut split = Split::zeroed(ImageShape::CIFAR, RECORDS_PER_FILE);
    parse_into(name, bytes, &FORMAT, &mut split, 0)?;
    Ok(split)
}

/// Parses `batches.meta.txt`: exactly 10 non-empty names, one per line; trailing blank lines
/// and surrounding whitespace (such as `\r`) are ignored.
pub fn parse_meta(name: &str, bytes: &[u8]) -> Result<Vec<String>, DataError> {
    parse_names(name, bytes, NUM_CLASSES)
}

/// Parses a file of exactly `count` non-empty class names, one per line, as [`parse_meta`]
/// does (CIFAR-100's `fine_label_names.txt` and `coarse_label_names.txt` too).
pub fn parse_names(name: &str, bytes: &[u8], count: usize) -> Result<Vec<String>, DataError> {
    let bad = |problem: String| DataError::BadMeta {
        file: name.to_string(),
        problem,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 text: {e}")))?;
    let mut names: Vec<&str> = text.lines().map(str::trim).collect();
    while names.last() == Some(&"") {
        names.pop();
    }
    if names.len() != count {
        return Err(bad(format!(
            "{} class names, expected {count} (one per line)",
            names.len()
        )));
    }
    if let Some(line) = names.iter().position(|n| n.is_empty()) {
        return Err(bad(format!(
            "line {} is empty, expected a class name",
            line + 1
        )));
    }
    Ok(names.into_iter().map(String::from).collect())
}

/// How a binary version's records are laid out: `count` records per file, each the label
/// bytes, one per entry of `labels` (what error messages call it, how many classes), then the
/// planar RGB image. `keep` is the label byte the split keeps.
pub(crate) struct RecordFormat {
    pub count: usize,
    pub labels: &'static [(&'static str, usize)],
    pub keep: usize,
}

impl RecordFormat {
    pub fn record_bytes(&self) -> usize {
        self.labels.len() + IMAGE_BYTES
    }

    /// The one size a file of these records may have.
    pub fn size(&self) -> Size {
        Size::Records {
            records: self.count,
            record_bytes: self.record_bytes(),
        }
    }
}

/// CIFAR-10's batch files: 10,000 records of one label byte and an image.
const FORMAT: RecordFormat = RecordFormat {
    count: RECORDS_PER_FILE,
    labels: &[("label", NUM_CLASSES)],
    keep: 0,
};

/// Checks one file of `format`'s records and writes them, converted to HWC, into `out` from
/// image `first` on.
pub(crate) fn parse_into(
    name: &str,
    bytes: &[u8],
    format: &RecordFormat,
    out: &mut Split,
    first: usize,
) -> Result<(), DataError> {
    let (records, record_bytes) = (format.count, format.record_bytes());
    if bytes.len() != records * record_bytes {
        return Err(DataError::WrongSize {
            file: name.to_string(),
            bytes: bytes.len() as u64,
            expected: (records * record_bytes) as u64,
            records,
            record_bytes,
        });
    }
    let label_bytes = format.labels.len();
    let (images, labels) = out.parts_mut();
    let labels = &mut labels[first..first + records];
    let images = &mut images[first * IMAGE_BYTES..(first + records) * IMAGE_BYTES];
    for (record, ((rec, label), image)) in bytes
        .chunks_exact(record_bytes)
        .zip(labels.iter_mut())
        .zip(images.chunks_exact_mut(IMAGE_BYTES))
        .enumerate()
    {
        for (&value, &(kind, classes)) in rec.iter().zip(format.labels) {
            if usize::from(value) >= classes {
                return Err(DataError::BadLabel {
                    file: name.to_string(),
                    record,
                    kind,
                    label: value,
                    max: classes - 1,
                });
            }
        }
        *label = rec[format.keep];
        // The file stores whole R, G and B planes; the network wants each pixel's RGB together.
        let (red, rest) = rec[label_bytes..].split_at(PLANE);
        let (green, blue) = rest.split_at(PLANE);
        for (((px, r), g), b) in image.chunks_exact_mut(3).zip(red).zip(green).zip(blue) {
            px.copy_from_slice(&[*r, *g, *b]);
        }
    }
    Ok(())
}

/// The size a file of a binary version may have.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Size {
    /// Exactly this many records of this many bytes.
    Records { records: usize, record_bytes: usize },
    /// A text file: at most this many bytes.
    AtMost(u64),
}

/// Where a binary version keeps its files: the directory inside the archive (and, usually, on
/// disk), every file it has, and the size each may have.
pub(crate) struct Layout {
    pub dir: &'static str,
    pub files: &'static [&'static str],
    pub size: fn(&str) -> Size,
}

/// CIFAR-10's binary version.
pub(crate) const LAYOUT: Layout = Layout {
    dir: BATCHES_DIR,
    files: &ALL_FILES,
    size: |name| {
        if name == META_FILE {
            Size::AtMost(META_MAX_BYTES)
        } else {
            FORMAT.size()
        }
    },
};

/// One file of the binary version, read into memory.
pub(crate) struct Member {
    /// The file's name inside the layout's directory (`cifar-10-batches-bin/`).
    pub name: &'static str,
    /// How error messages refer to it: its path, or `archive: member …`.
    pub label: String,
    pub bytes: Vec<u8>,
}

/// Hands each of `wanted` to `take`, read from a directory or streamed from an archive.
pub(crate) fn read_files(
    path: &Path,
    layout: &Layout,
    wanted: &[&'static str],
    take: impl FnMut(Member) -> Result<(), DataError>,
) -> Result<(), DataError> {
    if path.is_dir() {
        read_dir_files(&batches_dir(path, layout), layout, wanted, take)
    } else if !path.exists() {
        Err(DataError::NotFound {
            path: path.display().to_string(),
        })
    } else if is_archive_name(path) {
        for_each_member(path, layout, wanted, take)
    } else {
        Err(DataError::Unsupported {
            path: path.display().to_string(),
        })
    }
}

/// Whether `path` is CIFAR-10's binary version: a `.tar.gz` / `.tgz` archive, or a directory
/// holding `cifar-10-batches-bin/` or its files.
pub fn is_cifar10(path: &Path) -> bool {
    if path.is_dir() {
        path.join(BATCHES_DIR).is_dir() || ALL_FILES.iter().any(|f| path.join(f).exists())
    } else {
        is_archive_name(path)
    }
}

pub(crate) fn is_archive_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// `path` itself if it is (or looks like) the layout's directory, else
/// `path/cifar-10-batches-bin` (or the layout's), so that a missing file is reported where it
/// was expected.
fn batches_dir(path: &Path, layout: &Layout) -> PathBuf {
    let is_batches = path.file_name().is_some_and(|n| n == layout.dir)
        || layout.files.iter().any(|f| path.join(f).exists());
    if is_batches && !path.join(layout.dir).is_dir() {
        path.to_path_buf()
    } else {
        path.join(layout.dir)
    }
}

fn read_dir_files(
    dir: &Path,
    layout: &Layout,
    wanted: &[&'static str],
    mut take: impl FnMut(Member) -> Result<(), DataError>,
) -> Result<(), DataError> {
    for &name in wanted {
        let path = dir.join(name);
        let label = path.display().to_string();
        let read_err = |cause| DataError::Read {
            file: label.clone(),
            cause,
        };
        let file = match open_regular(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::MissingFile { file: label });
            }
            other => other.map_err(read_err)?,
        };
        let meta = file.metadata().map_err(read_err)?;
        let max = check_size(layout, name, &label, meta.len())?;
        // Read at most one byte past the cap, in case the file grows after the size check.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        check_size(layout, name, &label, bytes.len() as u64)?;
        take(Member { name, label, bytes })?;
    }
    Ok(())
}

/// Rejects a file whose size cannot be right before anything is allocated for it; returns
/// the most bytes it may have.
fn check_size(layout: &Layout, name: &str, label: &str, bytes: u64) -> Result<u64, DataError> {
    match (layout.size)(name) {
        Size::AtMost(max) if bytes > max => Err(DataError::TooLarge {
            file: label.to_string(),
            bytes,
            max,
        }),
        Size::AtMost(max) => Ok(max),
        Size::Records {
            records,
            record_bytes,
        } => {
            let expected = (records * record_bytes) as u64;
            if bytes != expected {
                Err(DataError::WrongSize {
                    file: label.to_string(),
                    bytes,
                    expected,
                    records,
                    record_bytes,
                })
            } else {
                Ok(bytes)
            }
        }
    }
}

/// Streams the `.tar.gz` at `archive` and hands each of `wanted` to `take`. Members are matched
/// by their exact name `<layout dir>/<file>` (a leading `./` allowed); every other
/// member is skipped, and no name from the archive is ever used as a path. Each member's size
/// is checked against its header before it is read, so a bogus header allocates nothing.
/// A member that appears twice is handed over twice, later copy last, as `tar x` would keep.
pub(crate) fn for_each_member<E: From<DataError>>(
    archive: &Path,
    layout: &Layout,
    wanted: &[&'static str],
    take: impl FnMut(Member) -> Result<(), E>,
) -> Result<(), E> {
    let archive_label = archive.display().to_string();
    let file = open_regular(archive).map_err(|cause| DataError::Read {
        file: archive_label.clone(),
        cause,
    })?;
    let reader = BufReader::with_capacity(1 << 20, file);
    for_each_member_in(&archive_label, reader, layout, wanted, take)
}

/// [`for_each_member`] on an archive read from `reader`; `archive_label` names it in errors.
fn for_each_member_in<E: From<DataError>>(
    archive_label: &str,
    reader: impl Read,
    layout: &Layout,
    wanted: &[&'static str],
    mut take: impl FnMut(Member) -> Result<(), E>,
) -> Result<(), E> {
    let damaged = |cause| DataError::Archive {
        archive: archive_label.to_string(),
        cause,
    };
    let mut tar = tar::Archive::new(GzDecoder::new(reader));
    let mut seen = vec![false; wanted.len()];
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let path = entry.path_bytes();
        let path = path.strip_prefix(b"./").unwrap_or(&path);
        let Some(index) = wanted
            .iter()
            .position(|w| member_matches(path, layout.dir, w))
        else {
            continue;
        };
        let name = wanted[index];
        let dir = layout.dir;
        let label = format!("{archive_label}: member {dir}/{name}");
        if !entry.header().entry_type().is_file() {
            return Err(DataError::NotAFile { file: label }.into());
        }
        let size = entry.size();
        check_size(layout, name, &label, size)?;
        let mut bytes = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut bytes).map_err(damaged)?;
        if bytes.len() as u64 != size {
            let cause = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "member {dir}/{name} ends after {} of its {size} bytes",
                    bytes.len()
                ),
            );
            return Err(damaged(cause).into());
        }
        seen[index] = true;
        take(Member { name, label, bytes })?;
    }
    // The tar reader stops at its end marker; reading the gzip stream to its end makes the
    // decoder check the CRC and length in the trailer, which catches damage the tar layer misses.
    io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(damaged)?;
    if let Some(missing) = seen.iter().position(|s| !s) {
        let member = format!("{}/{}", layout.dir, wanted[missing]);
        return Err(DataError::MissingMember {
            archive: archive_label.to_string(),
            member,
        }
        .into());
    }
    Ok(())
}

fn member_matches(path: &[u8], dir: &str, name: &str) -> bool {
    path.len() == dir.len() + 1 + name.len()
        && path.starts_with(dir.as_bytes())
        && path[dir.len()] == b'/'
        && path.ends_with(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("{BATCHES_DIR}/{name}"), *bytes)
                .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn size_and_label_messages_are_cifar10s() {
        let err = parse_batch("x/data_batch_1.bin", &vec![0; BATCH_BYTES - 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x/data_batch_1.bin: 30729999 bytes, expected 30730000 (10000 records of 3073 bytes)"
        );
        let mut bytes = vec![0; BATCH_BYTES];
        bytes[17 * RECORD_BYTES] = 12;
        let err = parse_batch("x/data_batch_1.bin", &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x/data_batch_1.bin: record 17 has label 12, expected 0..9"
        );
    }

    #[test]
    fn archive_bytes_load_as_the_archive_file_does() {
        let meta = CLASS_NAMES.join("\n");
        let cases = [
            archive(&[(META_FILE, meta.as_bytes())]),
            archive(&[(META_FILE, meta.as_bytes()), (TEST_FILE, b"short")]),
            archive(&[(META_FILE, b"cat\ndog\n")]),
            b"\x1f\x8b not gzip".to_vec(),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.tar.gz");
        for bytes in cases {
            std::fs::write(&path, &bytes).unwrap();
            let from_file = load(&path).unwrap_err().to_string();
            let from_bytes = load_archive_bytes(&path.display().to_string(), &bytes)
                .unwrap_err()
                .to_string();
            assert_eq!(from_bytes, from_file);
        }
    }
}
