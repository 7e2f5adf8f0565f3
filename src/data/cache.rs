//! The decoded images of an image folder, kept in one file so that the next run on the same
//! folder maps them instead of decoding every picture again, and so that a data set larger
//! than memory still trains: the OS reads the pixel pages in as they are used.
//!
//! The file, `CACHE/minivgg/images/<key>.bin` (`CACHE` is `dirs::cache_dir()`, which honours
//! `$XDG_CACHE_HOME` on Linux), little-endian:
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0 | 8 | magic `MINIVGGC` |
//! | 8 | 4 | format version ([`FORMAT_VERSION`]) |
//! | 12 | 4 | header length H in bytes (64 + the class names) |
//! | 16 | 4 × 3 | image height, width, channels |
//! | 28 | 4 | class count C |
//! | 32 | 8 × 2 | training and validation image counts |
//! | 48 | 8 | xxh3-64 of every byte after the header (bytes H to the end) |
//! | 56 | 8 | xxh3-64 of the header with these 8 bytes zeroed |
//! | 64 | … | C class names, each a u32 length then UTF-8 |
//!
//! then zeros up to the next multiple of [`PAGE`], the training pixels (NHWC), zeros up to the
//! next multiple of [`PAGE`], the validation pixels, then the training labels and the
//! validation labels (one byte each). The labels come last so that the pixels can be written
//! as they are decoded, a chunk at a time, even when unreadable pictures are skipped.
//!
//! A file is written to a temporary file in the same directory and renamed into place, so
//! there is never a half-written cache file; it is never modified in place afterwards.

use super::dataset::{ImageShape, Split, MAX_CLASSES};
use crate::fsutil::{open_regular, remove_stale_temporaries, temp_file_beside};
use memmap2::Mmap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

pub const MAGIC: &[u8; 8] = b"MINIVGGC";
/// Bumped whenever the layout changes; it is also part of the cache key.
pub const FORMAT_VERSION: u32 = 1;
/// The pixel sections start on page boundaries so they map cleanly.
pub const PAGE: usize = 4096;
/// The fixed part of the header.
const FIXED_HEADER: usize = 64;
/// The longest class name the file takes (a folder name is at most 255 bytes on most systems).
const MAX_NAME: usize = 4096;
/// How long a cache file's temporary goes unwritten before it counts as a killed run's: a
/// live writer appends every chunk of images it decodes, far more often than this.
const WRITER_IDLE: Duration = Duration::from_secs(600);

/// The cache file for `key` under the cache root `root` (what `dirs::cache_dir()` returns).
pub fn cache_path(root: &Path, key: u128) -> PathBuf {
    root.join("minivgg")
        .join("images")
        .join(format!("{key:032x}.bin"))
}

/// The user's cache root, `dirs::cache_dir()`; `None` where the system has none.
pub fn default_root() -> Option<PathBuf> {
    dirs::cache_dir()
}

/// What a cache file holds, mapped: both splits read their pixels from the file.
#[derive(Debug)]
pub struct Cached {
    pub train: Split,
    pub test: Split,
    pub class_names: Vec<String>,
}

/// Why a cache file was not used: what is wrong with it, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged(pub String);

fn align(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE
}

/// Where each section of a file starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    header_len: usize,
    train_start: usize,
    test_start: usize,
    labels_start: usize,
    file_len: usize,
}

impl Layout {
    /// `None` when the sizes overflow (a damaged header).
    fn new(header_len: usize, shape: ImageShape, train: usize, test: usize) -> Option<Layout> {
        let image = shape.len();
        let train_start = align(header_len);
        let train_end = train_start.checked_add(train.checked_mul(image)?)?;
        let test_start = train_end.checked_next_multiple_of(PAGE)?;
        let labels_start = test_start.checked_add(test.checked_mul(image)?)?;
        let file_len = labels_start.checked_add(train.checked_add(test)?)?;
        Some(Layout {
            header_len,
            train_start,
            test_start,
            labels_start,
            file_len,
        })
    }
}

fn header_len(class_names: &[String]) -> usize {
    FIXED_HEADER + class_names.iter().map(|n| 4 + n.len()).sum::<usize>()
}

fn encode_header(
    shape: ImageShape,
    class_names: &[String],
    train: usize,
    test: usize,
    body_checksum: u64,
) -> Vec<u8> {
    let mut h = Vec::with_capacity(header_len(class_names));
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&(header_len(class_names) as u32).to_le_bytes());
    for n in [shape.height, shape.width, shape.channels, class_names.len()] {
        h.extend_from_slice(&(n as u32).to_le_bytes());
    }
    h.extend_from_slice(&(train as u64).to_le_bytes());
    h.extend_from_slice(&(test as u64).to_le_bytes());
    h.extend_from_slice(&body_checksum.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    for name in class_names {
        h.extend_from_slice(&(name.len() as u32).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
    }
    let checksum = xxh3_64(&h);
    h[56..64].copy_from_slice(&checksum.to_le_bytes());
    h
}

/// Opens the cache file at `path`: `Ok(None)` if there is none, `Err` if it is damaged
/// (truncated, another format version, a wrong checksum, …) and must not be trusted.
/// `shape` and `class_names` are what the folder gives; a file that disagrees is damaged.
pub fn open(
    path: &Path,
    shape: ImageShape,
    class_names: &[String],
) -> Result<Option<Cached>, Damaged> {
    let file = match open_regular(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Damaged(format!("cannot open it: {e}"))),
    };
    // SAFETY: the file is ours: written whole to a temporary file and renamed into place,
    // only ever replaced by another rename (which leaves this mapping on the old inode),
    // never modified in place, so the mapped bytes do not change under us.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Damaged(format!("cannot map it: {e}")))?;
    let cached = parse(Arc::new(map), shape, class_names)?;
    Ok(Some(cached))
}

fn parse(map: Arc<Mmap>, shape: ImageShape, expected: &[String]) -> Result<Cached, Damaged> {
    let bad = |why: String| Err(Damaged(why));
    let bytes: &[u8] = &map;
    if bytes.len() < FIXED_HEADER {
        return bad(format!(
            "{} bytes, shorter than its {FIXED_HEADER}-byte header",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return bad("not a minivgg image cache".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let version = u32_at(8) as u32;
    if version != FORMAT_VERSION {
        return bad(format!(
            "format version {version}, this build reads {FORMAT_VERSION}"
        ));
    }
    let header_len = u32_at(12);
    if header_len < FIXED_HEADER || header_len > bytes.len() {
        return bad(format!(
            "a header of {header_len} bytes in a file of {}",
            bytes.len()
        ));
    }
    let mut header = bytes[..header_len].to_vec();
    header[56..64].fill(0);
    if xxh3_64(&header) != u64_at(56) {
        return bad("its header's checksum does not match".into());
    }
    let found = ImageShape {
        height: u32_at(16),
        width: u32_at(20),
        channels: u32_at(24),
    };
    let classes = u32_at(28);
    let (train, test) = (u64_at(32), u64_at(40));
    let mut names = Vec::new();
    let mut at = FIXED_HEADER;
    for _ in 0..classes.min(MAX_CLASSES + 1) {
        if at + 4 > header_len {
            return bad("its class names run past the header".into());
        }
        let len = u32_at(at);
        at += 4;
        if len > MAX_NAME || at + len > header_len {
            return bad("its class names run past the header".into());
        }
        match std::str::from_utf8(&bytes[at..at + len]) {
            Ok(name) => names.push(name.to_string()),
            Err(_) => return bad("a class name is not UTF-8".into()),
        }
        at += len;
    }
    if at != header_len || names.len() != classes {
        return bad("its class names do not fill the header".into());
    }
    if found != shape {
        return bad(format!("it holds {found} images, expected {shape}"));
    }
    if names != expected {
        return bad("its class names are not the folder's".into());
    }
    let (Ok(train), Ok(test)) = (usize::try_from(train), usize::try_from(test)) else {
        return bad("impossible image counts".into());
    };
    let Some(layout) = Layout::new(header_len, shape, train, test) else {
        return bad("impossible image counts".into());
    };
    if layout.file_len != bytes.len() {
        return bad(format!(
            "{train} training and {test} validation images take {} bytes, the file has {}",
            layout.file_len,
            bytes.len()
        ));
    }
    if xxh3_64(&bytes[header_len..]) != u64_at(48) {
        return bad("its checksum does not match".into());
    }
    let labels = &bytes[layout.labels_start..];
    if let Some(&label) = labels.iter().find(|&&l| usize::from(l) >= classes) {
        return bad(format!("label {label} of {classes} classes"));
    }
    let (train_labels, test_labels) = (labels[..train].to_vec(), labels[train..].to_vec());
    Ok(Cached {
        train: Split::mapped(shape, map.clone(), layout.train_start, train_labels),
        test: Split::mapped(shape, map, layout.test_start, test_labels),
        class_names: names,
    })
}

/// Writes a cache file image by image: the training images, then [`CacheWriter::start_test`],
/// then the validation images, then [`CacheWriter::finish`], which puts the file in place and
/// maps it. Dropped before `finish`, it leaves nothing behind.
pub struct CacheWriter {
    out: BufWriter<File>,
    /// The temporary file to rename to `target`; `None` for an unnamed file (no cache).
    temp: Option<(tempfile::TempPath, PathBuf)>,
    shape: ImageShape,
    class_names: Vec<String>,
    hasher: Xxh3,
    at: usize,
    header_len: usize,
    train_labels: Vec<u8>,
    test_labels: Vec<u8>,
    in_test: bool,
}

impl CacheWriter {
    /// A writer of the cache file `target`, through a temporary file beside it (its directory
    /// created if need be), or with `None` of an unnamed temporary file that is gone once
    /// unmapped (for a system with no cache directory, or one that cannot be written).
    pub fn create(
        target: Option<&Path>,
        shape: ImageShape,
        class_names: &[String],
    ) -> io::Result<CacheWriter> {
        assert!(class_names.len() <= MAX_CLASSES);
        assert!(class_names.iter().all(|n| n.len() <= MAX_NAME));
        let (file, temp) = match target {
            Some(target) => {
                // Another run may be writing this key now: only temporaries idle this long
                // are a killed run's.
                remove_stale_temporaries(target, WRITER_IDLE);
                let (file, path) = temp_file_beside(target)?.into_parts();
                (file, Some((path, target.to_path_buf())))
            }
            None => (tempfile::tempfile()?, None),
        };
        let header_len = header_len(class_names);
        let mut writer = CacheWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            temp,
            shape,
            class_names: class_names.to_vec(),
            hasher: Xxh3::new(),
            at: 0,
            header_len,
            train_labels: Vec::new(),
            test_labels: Vec::new(),
            in_test: false,
        };
        // The header's place, written last; then the padding to the first page.
        writer.out.write_all(&vec![0; header_len])?;
        writer.at = header_len;
        writer.pad()?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.at += bytes.len();
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let zeros = vec![0; align(self.at) - self.at];
        self.write(&zeros)
    }

    /// Appends one image of the shape (its `shape().len()` bytes) and its label.
    pub fn push(&mut self, pixels: &[u8], label: u8) -> io::Result<()> {
        assert_eq!(pixels.len(), self.shape.len(), "one image of the shape");
        assert!(usize::from(label) < self.class_names.len(), "a known class");
        self.write(pixels)?;
        if self.in_test {
            self.test_labels.push(label);
        } else {
            self.train_labels.push(label);
        }
        Ok(())
    }

    /// The images pushed from now on are the validation split's.
    pub fn start_test(&mut self) -> io::Result<()> {
        assert!(!self.in_test, "one validation split");
        self.pad()?;
        self.in_test = true;
        Ok(())
    }

    /// The training images pushed so far.
    pub fn train_len(&self) -> usize {
        self.train_labels.len()
    }

    /// Writes the labels and the header, puts the file in place (a rename over any older
    /// file of that name) and maps it.
    pub fn finish(mut self) -> io::Result<Cached> {
        if !self.in_test {
            self.start_test()?;
        }
        let labels = [self.train_labels.clone(), self.test_labels.clone()].concat();
        self.write(&labels)?;
        let (train, test) = (self.train_labels.len(), self.test_labels.len());
        let layout = Layout::new(self.header_len, self.shape, train, test).expect("it was written");
        debug_assert_eq!(layout.file_len, self.at);
        let header = encode_header(
            self.shape,
            &self.class_names,
            train,
            test,
            self.hasher.digest(),
        );
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        if let Some((temp, target)) = self.temp.take() {
            file.sync_all()?;
            temp.persist(&target).map_err(|e| e.error)?;
        }
        // SAFETY: as in `open`: the file is complete and no one writes it again; an unnamed
        // file is this process's alone.
        let map = Arc::new(unsafe { Mmap::map(&file) }?);
        parse(map, self.shape, &self.class_names)
            .map_err(|Damaged(why)| io::Error::other(format!("the file just written: {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::tests::shape;

    fn names() -> Vec<String> {
        vec!["cat".into(), "dog".into()]
    }

    #[test]
    fn a_written_file_opens_with_the_same_images() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), 0xabc);
        let mut w = CacheWriter::create(Some(&path), shape(), &names()).unwrap();
        w.push(&[1; 6], 0).unwrap();
        w.push(&[2; 6], 1).unwrap();
        w.start_test().unwrap();
        w.push(&[3; 6], 1).unwrap();
        let written = w.finish().unwrap();
        let read = open(&path, shape(), &names()).unwrap().unwrap();
        assert_eq!(read.train, written.train);
        assert_eq!(read.test, written.test);
        assert!(read.train.is_mapped() && read.test.is_mapped());
        assert_eq!(read.train.labels(), &[0, 1]);
        assert_eq!(read.test.image(0), &[3; 6]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * 4096 + 6 + 3);
        // No temporary file is left beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[4096] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = open(&path, shape(), &names()).unwrap_err();
        assert_eq!(err.0, "its checksum does not match");
        assert!(open(&dir.path().join("none"), shape(), &names())
            .unwrap()
            .is_none());
    }

    #[test]
    fn an_unnamed_file_maps_too() {
        let mut w = CacheWriter::create(None, shape(), &names()).unwrap();
        w.push(&[7; 6], 1).unwrap();
        let cached = w.finish().unwrap();
        assert_eq!((cached.train.len(), cached.test.len()), (1, 0));
        assert!(cached.train.is_mapped());
        assert_eq!(cached.train.image(0), &[7; 6]);
    }
}
