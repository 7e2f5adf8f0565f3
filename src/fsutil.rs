//! File writing that never leaves a half-written file behind.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes `path` through a temporary file in the same directory, fsyncs it and renames it
/// into place, so readers see either the old file or the complete new one.
pub fn atomic_write(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".minivgg-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot write {}: cannot create a file in {}",
                path.display(),
                dir.display()
            )
        })?;
    {
        let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut buffered).with_context(|| format!("cannot write {}", path.display()))?;
        buffered
            .flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes bytes atomically (see [`atomic_write`]).
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write(path, |w| Ok(w.write_all(bytes)?))
}

/// Fails early, before hours of training, if `path` could not be written later: its directory
/// is created if missing and must accept a new file.
pub fn ensure_writable(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "output {} is not writable: cannot create directory {}",
            path.display(),
            dir.display()
        )
    })?;
    if path.is_dir() {
        anyhow::bail!(
            "output {} is a directory, expected a file path",
            path.display()
        );
    }
    tempfile::Builder::new()
        .prefix(".minivgg-probe-")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "output {} is not writable: directory {} does not accept new files",
                path.display(),
                dir.display()
            )
        })?;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
