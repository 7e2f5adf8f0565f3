//! File writing that never leaves a half-written file behind, on the calling thread or off it;
//! file reading that takes regular files only.

use anyhow::{anyhow, Result};
use std::fs::{File, FileType};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A file that could not be written (a full disk, a read-only directory, …). The temporary
/// file is gone by then and the target untouched.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {cause}")]
pub struct WriteError {
    pub path: String,
    pub cause: io::Error,
}

/// `path` opened for reading if it is a regular file (through links); anything else — a
/// directory, a FIFO, a socket, a device — is refused with an `InvalidInput` error that says
/// what it is, before it is opened. Should it turn into one between that look and the open,
/// the open does not block (a FIFO cannot hold it up) and the file is looked at again before a
/// byte is read (a device cannot feed a read without end).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let refuse_unless_regular = |kind: FileType| {
        if kind.is_file() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}, not a regular file", describe_file_type(kind)),
            ))
        }
    };
    refuse_unless_regular(std::fs::metadata(path)?.file_type())?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    refuse_unless_regular(file.metadata()?.file_type())?;
    #[cfg(unix)]
    {
        // Reads block as usual from here on: some network file systems answer a non-blocking
        // read of a regular file with EAGAIN.
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns, with flags it just read.
        let cleared = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
        };
        if !cleared {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(file)
}

/// The whole of the regular file at `path` (see [`open_regular`]); a file too large to hold
/// is an error, not an abort.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(file.metadata()?.len() as usize)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The regular file at `path` as UTF-8 text (see [`open_regular`]).
pub fn read_regular_to_string(path: &Path) -> io::Result<String> {
    // std's own words, as `fs::read_to_string` says them.
    String::from_utf8(read_regular(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// What a file on disk is, whatever the path to it: every link and hard link to one file (or
/// folder) has its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileIdentity {
    #[cfg(unix)]
    Inode { device: u64, inode: u64 },
    /// Where there are no inodes: the canonical path (hard links then differ).
    Path(PathBuf),
}

impl FileIdentity {
    /// The identity of the existing file at `path`, `meta` its metadata (links followed).
    pub fn of(path: &Path, meta: &std::fs::Metadata) -> io::Result<FileIdentity> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let _ = path;
            Ok(FileIdentity::Inode {
                device: meta.dev(),
                inode: meta.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Ok(FileIdentity::Path(path.canonicalize()?))
        }
    }
}

/// What a file that is not a regular file is, in words: "a FIFO (named pipe)", "a directory"…
pub fn describe_file_type(kind: FileType) -> &'static str {
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
    }
    "a special file"
}

/// How the temporary files of [`atomic_write`] are named: `.minivgg-NAME-XXXXXX.tmp` for a
/// file NAME, so that it is clear which file each stands for, and whose it is to remove.
const TEMP_SUFFIX: &str = ".tmp";
/// The random characters in a temporary file's name (the XXXXXX).
const TEMP_RANDOM: usize = 6;

fn temp_prefix(path: &Path) -> std::ffi::OsString {
    let mut prefix = std::ffi::OsString::from(".minivgg-");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push("-");
    prefix
}

/// A new temporary file in `path`'s directory (created if need be), named for `path`, to be
/// renamed onto it. It has the mode a plain create gives (0666 less the umask), not
/// tempfile's private 0600: the rename keeps the mode, and the user's team must be able to
/// read the plot as they can any file the user writes.
pub fn temp_file_beside(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    let prefix = temp_prefix(path);
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(&prefix)
        .suffix(TEMP_SUFFIX)
        .rand_bytes(TEMP_RANDOM);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Writes `path` through a temporary file in the same directory, fsyncs it and renames it
/// into place, so readers see either the old file or the complete new one. I/O failures are
/// [`WriteError`]s; `write`'s own errors come back as they are, with the path.
pub fn atomic_write(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let failed = |cause: io::Error| WriteError {
        path: path.display().to_string(),
        cause,
    };
    let mut tmp = temp_file_beside(path).map_err(failed)?;
    {
        let mut buffered = io::BufWriter::new(tmp.as_file_mut());
        write(&mut buffered).map_err(|e| match e.downcast::<io::Error>() {
            Ok(cause) => failed(cause).into(),
            Err(other) => other.context(format!("cannot write {}", path.display())),
        })?;
        buffered.flush().map_err(failed)?;
    }
    hold_for_tests();
    tmp.as_file().sync_all().map_err(failed)?;
    // Dropping `tmp` on any error above deletes the temporary file.
    tmp.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

/// The soak test's hook: `MINIVGG_TEST_WRITE_DELAY_MS` holds every write this long before its
/// fsync and rename, so that the kills it sends land inside writes too.
fn hold_for_tests() {
    if let Some(ms) = std::env::var_os("MINIVGG_TEST_WRITE_DELAY_MS") {
        let ms = ms.to_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Removes the temporary files that writes of `path` left when their process was killed
/// mid-write (a process that ends normally removes its own) and that nothing has written to
/// for `idle`: zero for a file this process alone writes, longer for one that another
/// process may be writing now. Returns how many it removed.
pub fn remove_stale_temporaries(path: &Path, idle: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(parent_dir(path)) else {
        return 0;
    };
    let prefix = temp_prefix(path);
    let (prefix, suffix) = (prefix.as_encoded_bytes(), TEMP_SUFFIX.as_bytes());
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.as_encoded_bytes();
            // Exactly NAME's: not those of a file whose name merely starts with NAME-.
            name.len() == prefix.len() + TEMP_RANDOM + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        })
        .filter(|e| {
            let modified = e.metadata().and_then(|m| m.modified());
            modified.is_ok_and(|t| t.elapsed().unwrap_or_default() >= idle)
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Writes bytes atomically (see [`atomic_write`]).
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write(path, |w| Ok(w.write_all(bytes)?))
}

/// Fails early, before hours of training, if `path` could not be written later: it must not
/// be a directory, and its directory — or, where that does not exist yet, the nearest
/// ancestor that does, in which it would be created — must accept a new file. Creates
/// nothing, so a run that fails before writing leaves no trace.
pub fn ensure_writable(path: &Path) -> Result<(), NotWritable> {
    let output = path.display().to_string();
    let not_writable = |why: String| NotWritable {
        output: output.clone(),
        why,
    };
    if path.is_dir() {
        return Err(not_writable(
            "it is a directory, expected a file path".into(),
        ));
    }
    let mut dir = parent_dir(path);
    while !dir.exists() {
        match dir.parent() {
            Some(up) if !up.as_os_str().is_empty() => dir = up,
            _ => {
                dir = Path::new(".");
                break;
            }
        }
    }
    if !dir.is_dir() {
        return Err(not_writable(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    tempfile::Builder::new()
        .prefix(".minivgg-probe-")
        .tempfile_in(dir)
        .map_err(|e| {
            not_writable(format!(
                "directory {} does not accept new files: {e}",
                dir.display()
            ))
        })?;
    Ok(())
}

/// An output path that [`ensure_writable`] found unusable.
#[derive(Debug, thiserror::Error)]
#[error("output {output} is not writable: {why}")]
pub struct NotWritable {
    pub output: String,
    pub why: String,
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

type WriteJob = Box<dyn FnOnce() -> Result<()> + Send>;

/// How many jobs may wait for the [`BackgroundWriter`]: an epoch submits up to three.
pub const QUEUED_WRITES: usize = 4;

/// File writes off the training thread (checkpoints, the best model, the plot, CSV and JSON of
/// every epoch), done one after another in the order they were submitted, so a later file
/// never lands before an earlier one (a checkpoint never records a best model that is not on
/// disk yet). At most [`QUEUED_WRITES`] jobs wait behind the one being written (an epoch's
/// files queue without holding training up), so a run that produces files faster than the
/// disk takes them is held up rather than holding them all in memory. A failed
/// job stops the ones behind it; its error comes back from the next `submit` or `wait`.
#[derive(Default)]
pub struct BackgroundWriter {
    queue: Option<(SyncSender<WriteJob>, JoinHandle<Result<()>>)>,
    /// Time the calling thread spent on the writer: preparing files, and waiting for it.
    blocked: Duration,
}

impl BackgroundWriter {
    pub fn new() -> BackgroundWriter {
        BackgroundWriter::default()
    }

    /// Queues `job` behind the jobs before it.
    pub fn submit(&mut self, job: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
        let started = Instant::now();
        let (jobs, _) = self.queue.get_or_insert_with(|| {
            let (jobs, queued) = sync_channel::<WriteJob>(QUEUED_WRITES);
            let worker = std::thread::spawn(move || queued.into_iter().try_for_each(|job| job()));
            (jobs, worker)
        });
        let sent = jobs.send(Box::new(job));
        self.blocked += started.elapsed();
        match sent {
            Ok(()) => Ok(()),
            // The worker stopped at a failed job: that job's error.
            Err(_) => self.wait(),
        }
    }

    /// Runs `prepare` (encoding a file, say) on the calling thread, counting it as time the
    /// writer held that thread up.
    pub fn prepare<T>(&mut self, prepare: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let prepared = prepare();
        self.blocked += started.elapsed();
        prepared
    }

    /// Waits until every job submitted is on disk: the first error, if one failed.
    pub fn wait(&mut self) -> Result<()> {
        let started = Instant::now();
        let written = match self.queue.take() {
            Some((jobs, worker)) => {
                drop(jobs);
                worker
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("the file writer thread panicked")))
            }
            None => Ok(()),
        };
        self.blocked += started.elapsed();
        written
    }

    /// Time the calling thread has spent on the writer so far.
    pub fn blocked(&self) -> Duration {
        self.blocked
    }
}

impl Drop for BackgroundWriter {
    /// A run that ends on an error still leaves the files it submitted complete on disk.
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            eprintln!("error: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_temporaries_of_the_named_file_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let plot = dir.path().join("plot.png");
        // What kills mid-write leave: two of the plot's, two of other files'.
        for name in [
            ".minivgg-plot.png-a1b2c3.tmp",
            ".minivgg-plot.png-d4e5f6.tmp",
            ".minivgg-plot.png.csv-a1b2c3.tmp",
            ".minivgg-plot.png-old-a1b2c3.tmp",
            "plot.png.tmp",
        ] {
            std::fs::write(dir.path().join(name), b"partial").unwrap();
        }
        atomic_write_bytes(&plot, b"whole").unwrap();
        assert_eq!(remove_stale_temporaries(&plot, Duration::ZERO), 2);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".minivgg-plot.png-old-a1b2c3.tmp",
                ".minivgg-plot.png.csv-a1b2c3.tmp",
                "plot.png",
                "plot.png.tmp"
            ]
        );
    }

    #[test]
    fn a_temporary_written_to_within_idle_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("key.bin");
        let live = temp_file_beside(&cache).unwrap();
        assert_eq!(
            remove_stale_temporaries(&cache, Duration::from_secs(600)),
            0
        );
        assert!(live.path().exists());
        assert_eq!(remove_stale_temporaries(&cache, Duration::ZERO), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_written_file_has_the_mode_the_umask_gives() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (written, plain) = (dir.path().join("a"), dir.path().join("b"));
        atomic_write_bytes(&written, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&written), mode(&plain));
    }
}
