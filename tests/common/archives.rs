//! Data files as the data sets ship them: gzip, `.tar.gz` archives, and the MNIST family's IDX
//! files.

use flate2::write::GzEncoder;
use flate2::Compression;
use minivgg::data::idx::{IMAGES_MAGIC, LABELS_MAGIC};
use std::io::Write;

/// `bytes` gzipped.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Members `(name, data)` as a `.tar.gz`; a name ending in `/` becomes a directory. Names are
/// written into the header raw, because `Header::set_path` refuses the `..` and absolute
/// names that some tests need. A header claiming `claimed_size` (if given) gets no data.
pub fn tar_gz_with(
    members: &[(impl AsRef<str>, &[u8])],
    claimed_size: Option<(&str, u64)>,
) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, data) in members {
        let name = name.as_ref();
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        if name.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
        }
        let claimed = claimed_size.filter(|(n, _)| *n == name).map(|(_, s)| s);
        header.set_size(claimed.unwrap_or(data.len() as u64));
        header.set_cksum();
        let data: &[u8] = if claimed.is_some() { &[] } else { data };
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Members `(name, data)` as a `.tar.gz` (see [`tar_gz_with`]).
pub fn tar_gz(members: &[(impl AsRef<str>, &[u8])]) -> Vec<u8> {
    tar_gz_with(members, None)
}

/// An IDX file of `count` images of `rows`×`cols`, its bytes counting up (mod 251).
pub fn idx_images(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [IMAGES_MAGIC, count, rows, cols] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend((0..count * rows * cols).map(|i| (i % 251) as u8));
    bytes
}

/// An IDX file of `labels`.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = LABELS_MAGIC.to_be_bytes().to_vec();
    bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    bytes.extend_from_slice(labels);
    bytes
}
