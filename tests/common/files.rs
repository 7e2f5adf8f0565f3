//! Files on disk: writing them, listing them, and what a run leaves there.

use std::path::{Path, PathBuf};

/// Writes `bytes` at `path`, making the directories above it; returns the path.
pub fn write_file(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The rows of a run's history CSV at `csv` with every column but the wall time: what a
/// resumed run must write as the uninterrupted one did.
pub fn history_without_times(csv: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    csv.lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// One entry of a [`snapshot`]: a path, and for a file its size, modification time and a
/// hash of its bytes.
pub type Entry = (PathBuf, u64, Option<std::time::SystemTime>, u64);

/// Every file and directory under `root`, files with their size, modification time and a hash
/// of their bytes: what a failed command must leave as it found it. (A directory's own time
/// changes when a probe file comes and goes in it, which leaves nothing behind.)
pub fn snapshot(root: &Path) -> Vec<Entry> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            // Not through links: a link is its target's name, as a FIFO or device is its own
            // entry, never read (one would block, the other never end).
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
                found.push((entry.path(), 0, None, 0));
            } else if !meta.is_file() {
                let target = std::fs::read_link(entry.path()).unwrap_or_default();
                let hash = xxhash_rust::xxh3::xxh3_64(target.as_os_str().as_encoded_bytes());
                found.push((entry.path(), meta.len(), meta.modified().ok(), hash));
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
                found.push((
                    entry.path(),
                    meta.len(),
                    Some(meta.modified().unwrap()),
                    hash,
                ));
            }
        }
    }
    found.sort();
    found
}
